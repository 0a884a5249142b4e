//! Incoming webhooks: created by members with MANAGE_WEBHOOKS, executed by anyone holding
//! their id and token, and the messages they post.
//!
//! A webhook is a guild row ([`WebhookRecord`]) the actor keeps in memory like invites. Its
//! token is shown once, in the answer that creates it; the store keeps its SHA-256, and a
//! presented token is hashed and compared in constant time, so neither a stored record nor a
//! timing difference gives it away. Requests made with a token carry no user
//! ([`Caller::actor`](super::Caller) is 0): the token is their authority, and audit entries they
//! cause name no user.
//!
//! A message a webhook posts is a message like any other (the same commit path, fanout and
//! history) whose record names the webhook and the name and avatar it posted under
//! ([`WebhookAuthor`]); reads show that as its author.

use std::sync::Arc;

use enrichment_protocol::models::{AuditLogEntry, Message, Webhook, audit_action, message_type};
use enrichment_protocol::rest::{CreateWebhook, EditMessage, ModifyWebhook};
use enrichment_protocol::{ApiError, ErrorCode, Permissions, Snowflake};
use enrichment_storage::{GuildWrite, MessageRecord, WebhookAuthor, WebhookRecord};
use subtle::ConstantTimeEq;

use super::actor::{GuildActorState, GuildContext};
use super::audit::changes;
use super::blobs;
use super::commit::{Applied, Change};
use super::messages::assemble_flat;
use super::requests::{self, Responder};
use crate::auth::{hash_token, new_refresh_token};
use crate::events::{Audience, GuildEvent, MessageDeleteData, WebhooksUpdateData};

/// What a webhook's audit entries leave out of their changes.
const WEBHOOK_SKIP: &[&str] = &["id", "guild_id", "creator_id", "token_hash"];

impl GuildActorState {
    fn webhook(&self, id: Snowflake) -> Result<&WebhookRecord, ApiError> {
        self.state
            .webhooks
            .get(&id)
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownWebhook))
    }

    /// The webhook, if `token` is its token (compared in constant time), or if there is no
    /// token and the caller holds MANAGE_WEBHOOKS in its channel.
    fn authorized_webhook(
        &self,
        actor: Snowflake,
        id: Snowflake,
        token: Option<&str>,
    ) -> Result<WebhookRecord, ApiError> {
        let w = self.webhook(id)?;
        match token {
            Some(t) => {
                let presented = hash_token(t);
                if bool::from(presented.as_bytes().ct_eq(w.token_hash.as_bytes())) {
                    Ok(w.clone())
                } else {
                    Err(ApiError::new(
                        401,
                        ErrorCode::InvalidWebhookToken,
                        "Invalid Webhook Token",
                    ))
                }
            }
            None => {
                self.state.require_channel(
                    actor,
                    w.channel_id,
                    Permissions::MANAGE_WEBHOOKS,
                    self.now(),
                )?;
                Ok(w.clone())
            }
        }
    }

    /// Checks that `actor` may put a webhook in `ch` (MANAGE_WEBHOOKS) and that `ch` holds
    /// messages.
    fn webhook_channel(&self, actor: Snowflake, ch: Snowflake) -> Result<(), ApiError> {
        self.state
            .require_channel(actor, ch, Permissions::MANAGE_WEBHOOKS, self.now())?;
        if !self.state.channel(ch)?.kind.is_text_based() {
            return Err(ApiError::form(
                &["channel_id"],
                "CHANNEL_TYPE_INVALID",
                "Webhooks can only post to text channels.",
            ));
        }
        Ok(())
    }

    /// The wire webhook; `token` only in the answer that creates it.
    async fn wire_webhook(
        &self,
        w: &WebhookRecord,
        token: Option<String>,
        with_user: bool,
    ) -> Result<Webhook, ApiError> {
        let user = if with_user {
            Some(self.user_or_deleted(w.creator_id).await?)
        } else {
            None
        };
        Ok(Webhook {
            id: w.id,
            kind: 1,
            guild_id: Some(w.guild_id),
            channel_id: Some(w.channel_id),
            user,
            name: Some(w.name.clone()),
            avatar: w.avatar.clone(),
            token,
            application_id: None,
        })
    }

    fn webhooks_update(&mut self, channel_id: Snowflake) {
        let guild_id = self.state.id();
        self.emit(
            Audience::Channel(channel_id),
            GuildEvent::WebhooksUpdate(WebhooksUpdateData {
                guild_id,
                channel_id,
            }),
        );
    }

    /// An audit entry of a webhook change: by the caller, or by nobody when the webhook's
    /// token did it.
    fn webhook_entry(
        &self,
        action: u16,
        old: Option<&WebhookRecord>,
        new: Option<&WebhookRecord>,
    ) -> Option<AuditLogEntry> {
        let id = new.or(old)?.id;
        let fields = changes(old, new, WEBHOOK_SKIP);
        if action == audit_action::WEBHOOK_UPDATE && fields.is_empty() {
            return None;
        }
        let mut entry = AuditLogEntry {
            changes: fields,
            ..self.audit_entry(action, Some(id))
        };
        if self.caller.actor == Snowflake(0) {
            entry.user_id = None;
        }
        Some(entry)
    }

    pub(super) async fn create_webhook(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        body: CreateWebhook,
    ) -> Result<Webhook, ApiError> {
        self.webhook_channel(actor, ch)?;
        body.validate()?;
        let max = self.ctx.limits.max_webhooks_per_channel;
        if self
            .state
            .webhooks
            .values()
            .filter(|w| w.channel_id == ch)
            .count()
            >= max
        {
            return Err(ApiError::new(
                400,
                ErrorCode::MaxWebhooks,
                format!("Maximum number of webhooks reached ({max})"),
            ));
        }
        let token = new_refresh_token();
        let record = WebhookRecord {
            id: self.ctx.ids.next_id(),
            guild_id: self.state.id(),
            channel_id: ch,
            creator_id: actor,
            name: body.name,
            avatar: body.avatar,
            token_hash: hash_token(&token),
        };
        let entry = self.webhook_entry(audit_action::WEBHOOK_CREATE, None, Some(&record));
        self.write_logged(
            vec![GuildWrite::PutWebhook(record.clone())],
            entry.into_iter().collect(),
        )
        .await?;
        self.state.webhooks.insert(record.id, record.clone());
        self.webhooks_update(ch);
        self.wire_webhook(&record, Some(token), true).await
    }

    /// A channel's webhooks (`Some`), or the guild's (MANAGE_WEBHOOKS at guild level).
    pub(super) async fn list_webhooks(
        &self,
        actor: Snowflake,
        ch: Option<Snowflake>,
    ) -> Result<Vec<Webhook>, ApiError> {
        let now = self.now();
        match ch {
            Some(ch) => {
                self.state
                    .require_channel(actor, ch, Permissions::MANAGE_WEBHOOKS, now)?;
            }
            None => {
                self.state
                    .require_guild(actor, Permissions::MANAGE_WEBHOOKS, now)?;
            }
        }
        let mut list: Vec<&WebhookRecord> = self
            .state
            .webhooks
            .values()
            .filter(|w| ch.is_none_or(|c| w.channel_id == c))
            .collect();
        list.sort_by_key(|w| w.id);
        let mut out = Vec::with_capacity(list.len());
        for w in list {
            out.push(self.wire_webhook(w, None, true).await?);
        }
        Ok(out)
    }

    pub(super) async fn get_webhook(
        &self,
        actor: Snowflake,
        id: Snowflake,
        token: Option<String>,
    ) -> Result<Webhook, ApiError> {
        let with_user = token.is_none();
        let w = self.authorized_webhook(actor, id, token.as_deref())?;
        self.wire_webhook(&w, None, with_user).await
    }

    pub(super) async fn modify_webhook(
        &mut self,
        actor: Snowflake,
        id: Snowflake,
        token: Option<String>,
        body: ModifyWebhook,
    ) -> Result<Webhook, ApiError> {
        let old = self.authorized_webhook(actor, id, token.as_deref())?;
        body.validate()?;
        let mut w = old.clone();
        if let Some(n) = body.name {
            w.name = n;
        }
        if let Some(a) = body.avatar {
            w.avatar = a;
        }
        if let Some(ch) = body.channel_id {
            if token.is_some() {
                return Err(ApiError::form(
                    &["channel_id"],
                    "BASE_TYPE_INVALID",
                    "A webhook's token cannot move it; use a user's token.",
                ));
            }
            // Moving needs MANAGE_WEBHOOKS where it goes too.
            self.webhook_channel(actor, ch)?;
            w.channel_id = ch;
        }
        let entry = self.webhook_entry(audit_action::WEBHOOK_UPDATE, Some(&old), Some(&w));
        self.write_logged(
            vec![GuildWrite::PutWebhook(w.clone())],
            entry.into_iter().collect(),
        )
        .await?;
        self.state.webhooks.insert(id, w.clone());
        self.webhooks_update(old.channel_id);
        if w.channel_id != old.channel_id {
            self.webhooks_update(w.channel_id);
        }
        self.wire_webhook(&w, None, token.is_none()).await
    }

    pub(super) async fn delete_webhook(
        &mut self,
        actor: Snowflake,
        id: Snowflake,
        token: Option<String>,
    ) -> Result<(), ApiError> {
        let w = self.authorized_webhook(actor, id, token.as_deref())?;
        let entry = self.webhook_entry(audit_action::WEBHOOK_DELETE, Some(&w), None);
        self.write_logged(
            vec![GuildWrite::DeleteWebhook {
                guild_id: w.guild_id,
                webhook_id: id,
            }],
            entry.into_iter().collect(),
        )
        .await?;
        self.state.webhooks.remove(&id);
        self.webhooks_update(w.channel_id);
        Ok(())
    }

    /// Posts a message as the webhook; answered once it is durable, like any send.
    pub(super) async fn execute_webhook(
        &mut self,
        request: requests::ExecuteWebhook,
        reply: Responder<requests::ExecuteWebhook>,
    ) {
        match self.prepare_execution(request).await {
            Ok((record, message)) => {
                self.commit_created(record, message, None, move |r| reply.send(r))
                    .await
            }
            Err(e) => reply.send(Err(e)),
        }
    }

    async fn prepare_execution(
        &mut self,
        request: requests::ExecuteWebhook,
    ) -> Result<(MessageRecord, Arc<Message>), ApiError> {
        let requests::ExecuteWebhook {
            webhook_id,
            token,
            thread_id,
            body,
        } = request;
        let w = self.authorized_webhook(Snowflake(0), webhook_id, Some(&token))?;
        // There are no threads yet, so any thread named is one this channel does not have.
        if thread_id.is_some() {
            return Err(ApiError::unknown(ErrorCode::UnknownChannel));
        }
        body.validate()?;
        let author = WebhookAuthor {
            webhook_id,
            username: body.username.clone().unwrap_or_else(|| w.name.clone()),
            avatar: w.avatar.clone(),
        };
        let create = body.message();
        let content = create.content.clone().unwrap_or_default();
        // A webhook may mention anyone, roles and @everyone; `allowed_mentions` narrows it.
        let resolved = self.resolve_mentions(
            &content,
            Permissions::MENTION_EVERYONE,
            create.allowed_mentions.as_ref(),
        );
        let record = MessageRecord {
            id: self.ctx.ids.next_id(),
            channel_id: w.channel_id,
            guild_id: Some(self.state.id()),
            author_id: webhook_id,
            content,
            edited_timestamp: None,
            tts: create.tts.unwrap_or(false),
            mention_everyone: resolved.everyone,
            mentions: resolved.users,
            mention_roles: resolved.roles,
            attachments: Vec::new(),
            embeds: create.embeds.unwrap_or_default(),
            pinned: false,
            kind: message_type::DEFAULT,
            flags: create.flags.unwrap_or(0) & super::messages::SETTABLE_FLAGS,
            nonce: None,
            message_reference: None,
            webhook: Some(author),
        };
        // Shown as every read shows it: the webhook as author, no reactions yet.
        let message = assemble_flat(&self.ctx, record.clone(), Vec::new()).await?;
        self.last_message.insert(record.channel_id, record.id);
        Ok((record, Arc::new(message)))
    }

    /// One of the webhook's own messages, with its token.
    async fn webhook_message(
        &self,
        webhook_id: Snowflake,
        token: &str,
        message_id: Snowflake,
    ) -> Result<MessageRecord, ApiError> {
        let w = self.authorized_webhook(Snowflake(0), webhook_id, Some(token))?;
        let rec = self
            .ctx
            .stores
            .messages
            .get_message(w.channel_id, message_id)
            .await
            .map_err(GuildContext::store_error)?
            .filter(|m| {
                m.webhook
                    .as_ref()
                    .is_some_and(|a| a.webhook_id == webhook_id)
            })
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownMessage))?;
        Ok(rec)
    }

    pub(super) async fn get_webhook_message(
        &self,
        request: requests::GetWebhookMessage,
    ) -> Result<Message, ApiError> {
        let rec = self
            .webhook_message(request.webhook_id, &request.token, request.message_id)
            .await?;
        super::messages::hydrate(&self.ctx, rec, Snowflake(0), true).await
    }

    pub(super) async fn edit_webhook_message(
        &mut self,
        request: requests::EditWebhookMessage,
        reply: Responder<requests::EditWebhookMessage>,
    ) {
        let prepared = async {
            request.body.validate()?;
            let mut rec = self
                .webhook_message(request.webhook_id, &request.token, request.message_id)
                .await?;
            let body: EditMessage = request.body;
            let removed = self.apply_edit(
                &mut rec,
                body,
                Permissions::MENTION_EVERYONE | Permissions::EMBED_LINKS,
                self.now(),
            )?;
            Ok::<_, ApiError>((rec, removed))
        }
        .await;
        match prepared {
            Ok((rec, removed)) => {
                self.commit_edit(Snowflake(0), rec, removed, move |r| reply.send(r))
                    .await
            }
            Err(e) => reply.send(Err(e)),
        }
    }

    pub(super) async fn delete_webhook_message(
        &mut self,
        request: requests::DeleteWebhookMessage,
    ) -> Result<(), ApiError> {
        let rec = self
            .webhook_message(request.webhook_id, &request.token, request.message_id)
            .await?;
        let ch = rec.channel_id;
        let applied = self
            .commit(Change::DeleteMessages {
                channel_id: ch,
                message_ids: vec![rec.id],
            })
            .await?;
        if applied == Applied::Deleted(vec![rec.id]) {
            self.ctx.discard_blobs(blobs::keys_of(&rec));
            let guild_id = self.state.id();
            self.emit(
                Audience::Channel(ch),
                GuildEvent::MessageDelete(MessageDeleteData {
                    id: rec.id,
                    channel_id: ch,
                    guild_id: Some(guild_id),
                }),
            );
        }
        Ok(())
    }

    /// Webhook rows of a channel that is being deleted: they go with it.
    pub(super) fn webhooks_of_channel(&self, ch: Snowflake) -> Vec<GuildWrite> {
        self.state
            .webhooks
            .values()
            .filter(|w| w.channel_id == ch)
            .map(|w| GuildWrite::DeleteWebhook {
                guild_id: w.guild_id,
                webhook_id: w.id,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_kept_as_its_hash_and_only_the_same_token_matches_it() {
        let token = new_refresh_token();
        let stored = hash_token(&token);
        assert_ne!(stored, token);
        assert_eq!(stored.len(), 64, "hex SHA-256");
        assert!(bool::from(
            hash_token(&token).as_bytes().ct_eq(stored.as_bytes())
        ));
        let mut other = token.clone();
        other.push('x');
        assert!(!bool::from(
            hash_token(&other).as_bytes().ct_eq(stored.as_bytes())
        ));
    }
}
