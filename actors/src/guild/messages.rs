//! Message, reaction, pin and typing commands: the hot path.
//!
//! Sends and edits are validated against in-memory state, then their durable write goes to
//! the commit queue; the caller's reply and the event leave when the write is durable, in
//! submission order. Reads check permissions in the actor and then run in their own task, so
//! a long history read never holds up the guild's mailbox.

use std::sync::Arc;
use std::time::{Duration, Instant};

use enrichment_protocol::models::{
    Attachment, AuditEntryInfo, AuditLogEntry, Message, Nonce, PinnedMessage, Reaction,
    ReactionCountDetails, User, audit_action, message_type,
};
use enrichment_protocol::rest::{CreateMessage, EditMessage};
use enrichment_protocol::{ApiError, ErrorCode, FormErrors, Permissions, Snowflake, Timestamp};
use enrichment_storage::blobs::BlobKey;
use enrichment_storage::{GuildWrite, MessageRecord, ReactionCount, StoreError, WebhookAuthor};
use futures::FutureExt;

use super::actor::{GuildActorState, GuildContext, publish};
use super::blobs;
use super::commit::{Applied, Change, Completion, apply};
use super::requests::{self, Request, Responder};
use super::state::GuildState;
use super::text::{emoji_of_key, parse_mentions};
use crate::events::{
    Audience, ChannelPinsData, Dispatch, GuildEvent, MessageData, MessageDeleteBulkData,
    MessageDeleteData, ReactionData, ReactionRemoveAllData, ReactionRemoveEmojiData,
    TypingStartData,
};

/// Discord refuses to bulk-delete messages older than two weeks.
const BULK_DELETE_MAX_AGE_MS: u64 = 14 * 24 * 3600 * 1000;

/// Turns a stored message into its wire form for `viewer` (whose `me` flags are set).
pub(super) async fn hydrate(
    ctx: &GuildContext,
    rec: MessageRecord,
    viewer: Snowflake,
    with_reference: bool,
) -> Result<Message, ApiError> {
    let counts = ctx
        .stores
        .messages
        .reaction_counts(rec.channel_id, rec.id, viewer)
        .await
        .map_err(GuildContext::store_error)?;
    assemble(ctx, rec, counts, viewer, with_reference).await
}

/// A page of one channel's messages, with one reaction read for the whole page: a history
/// read must not cost a storage round trip per message.
pub(super) async fn hydrate_page(
    ctx: &GuildContext,
    records: Vec<MessageRecord>,
    viewer: Snowflake,
) -> Result<Vec<Message>, ApiError> {
    let Some(channel) = records.first().map(|r| r.channel_id) else {
        return Ok(Vec::new());
    };
    let ids: Vec<Snowflake> = records.iter().map(|r| r.id).collect();
    let counts = ctx
        .stores
        .messages
        .reaction_counts_many(channel, &ids, viewer)
        .await
        .map_err(GuildContext::store_error)?;
    let mut out = Vec::with_capacity(records.len());
    for (rec, counts) in records.into_iter().zip(counts) {
        out.push(assemble(ctx, rec, counts, viewer, true).await?);
    }
    Ok(out)
}

/// Builds the wire message; a reply also gets its referenced message (one level deep).
async fn assemble(
    ctx: &GuildContext,
    rec: MessageRecord,
    counts: Vec<ReactionCount>,
    viewer: Snowflake,
    with_reference: bool,
) -> Result<Message, ApiError> {
    let store_err = GuildContext::store_error;
    let target = rec
        .message_reference
        .as_ref()
        .and_then(|r| r.message_id)
        .filter(|_| with_reference && rec.kind == message_type::REPLY);
    let referenced = match target {
        Some(id) => Some(
            match ctx
                .stores
                .messages
                .get_message(rec.channel_id, id)
                .await
                .map_err(store_err)?
            {
                Some(m) => {
                    let counts = ctx
                        .stores
                        .messages
                        .reaction_counts(m.channel_id, m.id, viewer)
                        .await
                        .map_err(store_err)?;
                    Some(Box::new(assemble_flat(ctx, m, counts).await?))
                }
                None => None,
            },
        ),
        None => None,
    };
    let mut msg = assemble_flat(ctx, rec, counts).await?;
    msg.referenced_message = referenced;
    Ok(msg)
}

pub(super) async fn assemble_flat(
    ctx: &GuildContext,
    rec: MessageRecord,
    counts: Vec<ReactionCount>,
) -> Result<Message, ApiError> {
    let store_err = GuildContext::store_error;
    let author = match &rec.webhook {
        Some(w) => webhook_user(w),
        None => ctx
            .users
            .get_or_deleted(rec.author_id)
            .await
            .map_err(store_err)?,
    };
    let mentions = ctx.users.get_many(&rec.mentions).await.map_err(store_err)?;
    let reactions = counts
        .into_iter()
        .map(|r| Reaction {
            count: r.count,
            count_details: ReactionCountDetails {
                burst: 0,
                normal: r.count,
            },
            me: r.me,
            me_burst: false,
            emoji: emoji_of_key(&r.emoji),
            burst_colors: Vec::new(),
        })
        .collect();
    Ok(to_wire(rec, author, mentions, reactions))
}

fn to_wire(
    rec: MessageRecord,
    author: enrichment_protocol::models::User,
    mentions: Vec<enrichment_protocol::models::User>,
    reactions: Vec<Reaction>,
) -> Message {
    Message {
        id: rec.id,
        channel_id: rec.channel_id,
        guild_id: rec.guild_id,
        author,
        content: rec.content,
        timestamp: rec.id.timestamp(),
        edited_timestamp: rec.edited_timestamp,
        tts: rec.tts,
        mention_everyone: rec.mention_everyone,
        mentions,
        mention_roles: rec.mention_roles,
        attachments: rec.attachments,
        embeds: rec.embeds,
        reactions,
        nonce: rec.nonce,
        pinned: rec.pinned,
        kind: rec.kind,
        flags: rec.flags,
        message_reference: rec.message_reference,
        referenced_message: None,
        components: Vec::new(),
        webhook_id: rec.webhook.map(|w| w.webhook_id),
    }
}

/// The author a webhook's message shows: the webhook, as a bot user with the name and avatar
/// it posted under, as Discord shows it.
fn webhook_user(w: &WebhookAuthor) -> User {
    User {
        discriminator: "0000".into(),
        avatar: w.avatar.clone(),
        bot: true,
        ..User::new(w.webhook_id, w.username.clone())
    }
}

/// Resolved mentions for a message.
pub(super) struct Resolved {
    pub(super) users: Vec<Snowflake>,
    pub(super) roles: Vec<Snowflake>,
    pub(super) everyone: bool,
}

impl GuildActorState {
    /// Applies Discord's mention rules: only members are mentioned, roles only when mentionable
    /// or the author may mention everyone, `@everyone` only with MENTION_EVERYONE; then
    /// `allowed_mentions` narrows what is kept.
    pub(super) fn resolve_mentions(
        &self,
        content: &str,
        perms: Permissions,
        allowed: Option<&enrichment_protocol::rest::AllowedMentions>,
    ) -> Resolved {
        let parsed = parse_mentions(content);
        let may_everyone = perms.contains(Permissions::MENTION_EVERYONE);
        // Without `allowed_mentions` every parsed mention counts; with it, only what its
        // `parse` kinds or explicit id lists allow.
        let by_parse = |kind: &str| {
            allowed.is_none_or(|a| {
                a.parse
                    .as_ref()
                    .is_some_and(|p| p.iter().any(|x| x == kind))
            })
        };
        let user_ok = |id: &Snowflake| {
            by_parse("users")
                || allowed.is_some_and(|a| a.users.as_ref().is_some_and(|u| u.contains(id)))
        };
        let role_ok = |id: &Snowflake| {
            by_parse("roles")
                || allowed.is_some_and(|a| a.roles.as_ref().is_some_and(|r| r.contains(id)))
        };
        Resolved {
            users: parsed
                .users
                .into_iter()
                .filter(|u| self.state.members.contains_key(u) && user_ok(u))
                .collect(),
            roles: parsed
                .roles
                .into_iter()
                .filter(|r| {
                    self.state
                        .roles
                        .get(r)
                        .is_some_and(|role| role.mentionable || may_everyone)
                        && role_ok(r)
                })
                .collect(),
            everyone: parsed.everyone && may_everyone && by_parse("everyone"),
        }
    }

    fn slowmode_check(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        perms: Permissions,
        seconds: u32,
    ) -> Result<(), ApiError> {
        if seconds == 0
            || perms.intersects(
                Permissions::MANAGE_MESSAGES
                    | Permissions::MANAGE_CHANNELS
                    | Permissions::BYPASS_SLOWMODE,
            )
        {
            return Ok(());
        }
        let window = Duration::from_secs(seconds.into());
        if let Some(at) = self.last_sent.get(&(ch, actor))
            && at.elapsed() < window
        {
            return Err(ApiError::new(
                429,
                ErrorCode::General,
                "This action cannot be performed due to slowmode rate limit.",
            ));
        }
        self.last_sent.insert((ch, actor), Instant::now());
        Ok(())
    }

    fn remember_nonce(&mut self, key: (Snowflake, Snowflake, Nonce), msg: Arc<Message>) {
        if self.nonce_order.len() >= self.ctx.limits.nonce_memory
            && let Some(old) = self.nonce_order.pop_front()
        {
            self.nonces.remove(&old);
        }
        self.nonce_order.push_back(key.clone());
        self.nonces.insert(key, msg);
    }

    pub(super) async fn create_message(
        &mut self,
        actor: Snowflake,
        request: requests::CreateMessage,
        reply: Responder<requests::CreateMessage>,
    ) {
        let requests::CreateMessage {
            channel_id: ch,
            body,
            attachments,
        } = request;
        match self.prepare_message(actor, ch, *body, attachments).await {
            Ok(Prepared::Duplicate(msg)) => {
                // Answered after the original's write, through the same ordered queue.
                self.after_queued(move || reply.send(Ok((*msg).clone())))
                    .await;
            }
            Ok(Prepared::New {
                record,
                message,
                member,
            }) => {
                self.commit_created(record, message, Some(member), move |r| reply.send(r))
                    .await
            }
            Err(e) => reply.send(Err(e)),
        }
    }

    /// Queues a new message's write; once durable (and after every earlier completion) the
    /// sender is answered and the channel gets MESSAGE_CREATE. Pipelined: the actor takes its
    /// next command meanwhile.
    pub(super) async fn commit_created(
        &mut self,
        record: MessageRecord,
        message: Arc<Message>,
        member: Option<enrichment_protocol::models::Member>,
        reply: impl FnOnce(Result<Message, ApiError>) + Send + 'static,
    ) {
        let ch = record.channel_id;
        let member = member.filter(|_| !self.state.is_private());
        let bus = self.ctx.bus.clone();
        let recipients = self.recipients(&Audience::Channel(ch));
        let dispatch = Dispatch {
            guild_id: self.state.id(),
            audience: Audience::Channel(ch),
            event: GuildEvent::MessageCreate(MessageData {
                message: (*message).clone(),
                member,
            }),
        };
        let (message_id, channel_id) = (record.id, record.channel_id);
        self.commit_then(Change::CreateMessage(record), move |outcome| match outcome {
            Ok(_) => {
                reply(Ok((*message).clone()));
                publish(&bus, &recipients, dispatch);
            }
            Err(StoreError::Conflict(_)) => {
                // Another writer minted this id too. No retry under a new id: it would land
                // out of order in the channel.
                tracing::error!(
                    %message_id,
                    %channel_id,
                    "message id already stored: two writers minted the same snowflake; the message was refused"
                );
                metrics::counter!("enrichment_message_id_conflicts_total").increment(1);
                reply(Err(ApiError::internal()));
            }
            Err(e) => reply(Err(GuildContext::store_error(e))),
        })
        .await;
    }

    /// May `actor` upload files to `ch`? The same checks a create with files makes.
    pub(super) fn check_upload(&self, actor: Snowflake, ch: Snowflake) -> Result<(), ApiError> {
        self.sendable(actor, ch, true)?;
        Ok(())
    }

    /// The sender's permissions in a text channel it may send to (and attach files to, when
    /// `with_files`).
    fn sendable(
        &self,
        actor: Snowflake,
        ch: Snowflake,
        with_files: bool,
    ) -> Result<Permissions, ApiError> {
        let need = if with_files {
            Permissions::SEND_MESSAGES | Permissions::ATTACH_FILES
        } else {
            Permissions::SEND_MESSAGES
        };
        let perms = self.state.require_channel(actor, ch, need, self.now())?;
        if !self.state.channel(ch)?.kind.is_text_based() {
            return Err(ApiError::new(
                400,
                ErrorCode::General,
                "Cannot send messages in a non-text channel",
            ));
        }
        Ok(perms)
    }

    async fn prepare_message(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        body: CreateMessage,
        attachments: Vec<Attachment>,
    ) -> Result<Prepared, ApiError> {
        let perms = self.sendable(actor, ch, !attachments.is_empty())?;
        self.check_not_blocked()?;
        let channel = self.state.channel(ch)?.clone();
        body.validate_with_files(attachments.len())?;
        if let (Some(nonce), Some(true)) = (&body.nonce, body.enforce_nonce)
            && let Some(existing) = self.nonces.get(&(ch, actor, nonce.clone()))
        {
            return Ok(Prepared::Duplicate(existing.clone()));
        }
        let mut reference = body.message_reference.clone();
        let mut replied_to = None;
        if let Some(r) = &mut reference {
            if !perms.contains(Permissions::READ_MESSAGE_HISTORY) {
                return Err(ApiError::new(
                    403,
                    ErrorCode::ReplyWithoutHistory,
                    "Cannot reply without permission to read message history",
                ));
            }
            let target = match r.message_id {
                Some(id) if r.channel_id.is_none_or(|c| c == ch) => self
                    .ctx
                    .stores
                    .messages
                    .get_message(ch, id)
                    .await
                    .map_err(GuildContext::store_error)?,
                _ => None,
            };
            match target {
                Some(t) => {
                    r.channel_id = Some(ch);
                    r.guild_id = self.state.wire_guild_id();
                    r.kind = Some(0);
                    // A send-time option: the stored reference reads like Discord's.
                    r.fail_if_not_exists = true;
                    replied_to = Some(t);
                }
                None if r.fail_if_not_exists => {
                    let mut e = FormErrors::default();
                    e.add(
                        &["message_reference"],
                        "REPLIES_UNKNOWN_MESSAGE",
                        "Unknown message",
                    );
                    return Err(e.into_error());
                }
                None => reference = None,
            }
        }
        self.slowmode_check(actor, ch, perms, channel.rate_limit_per_user)?;

        let content = body.content.unwrap_or_default();
        let mut resolved = self.resolve_mentions(&content, perms, body.allowed_mentions.as_ref());
        if let Some(t) = &replied_to {
            let ping = body
                .allowed_mentions
                .as_ref()
                .and_then(|a| a.replied_user)
                .unwrap_or(true);
            if ping
                && !resolved.users.contains(&t.author_id)
                && self.state.members.contains_key(&t.author_id)
            {
                resolved.users.push(t.author_id);
            }
        }
        let embeds = if perms.contains(Permissions::EMBED_LINKS) {
            body.embeds.unwrap_or_default()
        } else {
            Vec::new()
        };
        let record = MessageRecord {
            id: self.ctx.ids.next_id(),
            channel_id: ch,
            guild_id: self.state.wire_guild_id(),
            author_id: actor,
            content,
            edited_timestamp: None,
            tts: body.tts.unwrap_or(false) && perms.contains(Permissions::SEND_TTS_MESSAGES),
            mention_everyone: resolved.everyone,
            mentions: resolved.users,
            mention_roles: resolved.roles,
            attachments,
            embeds,
            pinned: false,
            kind: if reference.is_some() {
                message_type::REPLY
            } else {
                message_type::DEFAULT
            },
            flags: body.flags.unwrap_or(0) & SETTABLE_FLAGS,
            nonce: body.nonce.clone(),
            message_reference: reference,
            webhook: None,
        };
        let author = self.user_or_deleted(actor).await?;
        let mentions = self
            .ctx
            .users
            .get_many(&record.mentions)
            .await
            .map_err(GuildContext::store_error)?;
        let mut message = to_wire(record.clone(), author.clone(), mentions, Vec::new());
        if let Some(t) = replied_to {
            message.referenced_message =
                Some(Some(Box::new(hydrate(&self.ctx, t, actor, false).await?)));
        }
        let message = Arc::new(message);
        if let Some(n) = body.nonce
            && body.enforce_nonce == Some(true)
        {
            self.remember_nonce((ch, actor, n), message.clone());
        }
        self.last_message.insert(ch, record.id);
        let member = GuildState::wire_member(self.state.member(actor)?, None);
        Ok(Prepared::New {
            record,
            message,
            member,
        })
    }

    async fn load_message(&self, ch: Snowflake, id: Snowflake) -> Result<MessageRecord, ApiError> {
        self.ctx
            .stores
            .messages
            .get_message(ch, id)
            .await
            .map_err(GuildContext::store_error)?
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownMessage))
    }

    pub(super) async fn edit_message(
        &mut self,
        actor: Snowflake,
        request: requests::EditMessage,
        reply: Responder<requests::EditMessage>,
    ) {
        let requests::EditMessage {
            channel_id: ch,
            message_id: id,
            body,
        } = request;
        let prepared = async {
            let now = self.now();
            let perms = self
                .state
                .require_channel(actor, ch, Permissions::VIEW_CHANNEL, now)?;
            body.validate()?;
            let mut rec = self.load_message(ch, id).await?;
            if rec.author_id != actor {
                return Err(ApiError::new(
                    403,
                    ErrorCode::CannotEditOthersMessage,
                    "Cannot edit a message authored by another user",
                ));
            }
            let removed = self.apply_edit(&mut rec, body, perms, now)?;
            Ok::<_, ApiError>((rec, removed))
        }
        .await;
        match prepared {
            Ok((rec, removed)) => {
                self.commit_edit(actor, rec, removed, move |r| reply.send(r))
                    .await
            }
            Err(e) => reply.send(Err(e)),
        }
    }

    /// Applies an edit body to a stored message, with `perms` deciding mentions and embeds;
    /// returns the blob keys of the attachments it drops.
    pub(super) fn apply_edit(
        &self,
        rec: &mut MessageRecord,
        body: EditMessage,
        perms: Permissions,
        now: Timestamp,
    ) -> Result<Vec<BlobKey>, ApiError> {
        let ch = rec.channel_id;
        if let Some(content) = body.content {
            rec.content = content.unwrap_or_default();
            let r = self.resolve_mentions(&rec.content, perms, None);
            rec.mentions = r.users;
            rec.mention_roles = r.roles;
            rec.mention_everyone = r.everyone;
        }
        if let Some(embeds) = body.embeds {
            rec.embeds = if perms.contains(Permissions::EMBED_LINKS) {
                embeds.unwrap_or_default()
            } else {
                Vec::new()
            };
        }
        if let Some(flags) = body.flags {
            rec.flags = flags.unwrap_or(0) & SETTABLE_FLAGS;
        }
        // Discord's rule: attachments left out of `attachments` are removed.
        let mut removed = Vec::new();
        if let Some(keep) = &body.attachments {
            let (kept, gone) = std::mem::take(&mut rec.attachments)
                .into_iter()
                .partition(|a| keep.iter().any(|k| k.id == a.id));
            rec.attachments = kept;
            removed = blobs::attachment_keys(ch, &gone);
        }
        if rec.content.trim().is_empty() && rec.embeds.is_empty() && rec.attachments.is_empty() {
            return Err(ApiError::new(
                400,
                ErrorCode::EmptyMessage,
                "Cannot send an empty message",
            ));
        }
        rec.edited_timestamp = Some(now);
        Ok(removed)
    }

    /// Queues an edited message's write; once durable it is answered and announced as
    /// stored, reactions included (hydrated for `viewer`).
    pub(super) async fn commit_edit(
        &mut self,
        viewer: Snowflake,
        rec: MessageRecord,
        removed: Vec<BlobKey>,
        reply: impl FnOnce(Result<Message, ApiError>) + Send + 'static,
    ) {
        let ch = rec.channel_id;
        let ctx = self.ctx.clone();
        let gid = self.state.id();
        let recipients = self.recipients(&Audience::Channel(ch));
        // The edit is answered and announced with the message as stored, reactions included:
        // hydrated after the write, inside the queued entry, so its completion still runs in
        // submission order.
        self.commits
            .submit(
                async move {
                    let result = match apply(&ctx.stores, Change::UpdateMessage(rec.clone())).await
                    {
                        Ok(Applied::Changed(false)) => {
                            Err(ApiError::unknown(ErrorCode::UnknownMessage))
                        }
                        Ok(_) => hydrate(&ctx, rec, viewer, true).await,
                        Err(e) => Err(GuildContext::store_error(e)),
                    };
                    Box::new(move || match result {
                        Ok(message) => {
                            ctx.discard_blobs(removed);
                            reply(Ok(message.clone()));
                            publish(
                                &ctx.bus,
                                &recipients,
                                Dispatch {
                                    guild_id: gid,
                                    audience: Audience::Channel(ch),
                                    event: GuildEvent::MessageUpdate(MessageData {
                                        message,
                                        member: None,
                                    }),
                                },
                            );
                        }
                        Err(e) => reply(Err(e)),
                    }) as Completion
                }
                .boxed(),
            )
            .await;
    }

    pub(super) async fn delete_message(
        &mut self,
        actor: Snowflake,
        request: requests::DeleteMessage,
        reply: Responder<requests::DeleteMessage>,
    ) {
        let requests::DeleteMessage {
            channel_id: ch,
            message_id: id,
        } = request;
        let checked = async {
            let perms =
                self.state
                    .require_channel(actor, ch, Permissions::VIEW_CHANNEL, self.now())?;
            let rec = self.load_message(ch, id).await?;
            if rec.author_id != actor && !perms.contains(Permissions::MANAGE_MESSAGES) {
                return Err(ApiError::missing_permissions());
            }
            Ok::<_, ApiError>((rec.author_id, blobs::keys_of(&rec)))
        }
        .await;
        let (author, doomed_blobs) = match checked {
            Ok(found) => found,
            Err(e) => return reply.send(Err(e)),
        };
        let ctx = self.ctx.clone();
        let (gid, wire_gid) = (self.state.id(), self.state.wire_guild_id());
        if author != actor {
            // A moderator's deletion goes in the audit log, after the message is gone; it is
            // rare enough to be awaited rather than pipelined.
            let entry = AuditLogEntry {
                options: Some(AuditEntryInfo {
                    channel_id: Some(ch),
                    count: Some("1".into()),
                    ..AuditEntryInfo::default()
                }),
                ..self.audit_entry(audit_action::MESSAGE_DELETE, Some(author))
            };
            let change = Change::DeleteMessages {
                channel_id: ch,
                message_ids: vec![id],
            };
            match self.commit(change).await {
                Ok(_) => {
                    ctx.discard_blobs(doomed_blobs);
                    reply.send(Ok(()));
                    self.emit(
                        Audience::Channel(ch),
                        GuildEvent::MessageDelete(MessageDeleteData {
                            id,
                            channel_id: ch,
                            guild_id: wire_gid,
                        }),
                    );
                    self.log_after(vec![entry]).await;
                }
                Err(e) => reply.send(Err(e)),
            }
            return;
        }
        let recipients = self.recipients(&Audience::Channel(ch));
        let change = Change::DeleteMessages {
            channel_id: ch,
            message_ids: vec![id],
        };
        self.commit_then(change, move |outcome| match outcome {
            Ok(_) => {
                ctx.discard_blobs(doomed_blobs);
                reply.send(Ok(()));
                publish(
                    &ctx.bus,
                    &recipients,
                    Dispatch {
                        guild_id: gid,
                        audience: Audience::Channel(ch),
                        event: GuildEvent::MessageDelete(MessageDeleteData {
                            id,
                            channel_id: ch,
                            guild_id: wire_gid,
                        }),
                    },
                );
            }
            Err(e) => reply.send(Err(GuildContext::store_error(e))),
        })
        .await;
    }

    /// Checks read access in the actor, then reads in a task of its own.
    fn spawn_read<R, F, Fut>(
        &self,
        actor: Snowflake,
        ch: Snowflake,
        reply: Responder<R>,
        without_history: Option<R::Reply>,
        read: F,
    ) where
        R: Request,
        F: FnOnce(Arc<GuildContext>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<R::Reply, ApiError>> + Send,
    {
        let perms =
            match self
                .state
                .require_channel(actor, ch, Permissions::VIEW_CHANNEL, self.now())
            {
                Ok(p) => p,
                Err(e) => return reply.send(Err(e)),
            };
        if !perms.contains(Permissions::READ_MESSAGE_HISTORY) {
            return reply.send(without_history.ok_or_else(ApiError::missing_permissions));
        }
        let ctx = self.ctx.clone();
        tokio::spawn(async move { reply.send(read(ctx).await) });
    }

    pub(super) fn get_message(
        &self,
        actor: Snowflake,
        request: requests::GetMessage,
        reply: Responder<requests::GetMessage>,
    ) {
        let requests::GetMessage {
            channel_id: ch,
            message_id: id,
        } = request;
        self.spawn_read(actor, ch, reply, None, move |ctx| async move {
            let rec = ctx
                .stores
                .messages
                .get_message(ch, id)
                .await
                .map_err(GuildContext::store_error)?
                .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownMessage))?;
            hydrate(&ctx, rec, actor, true).await
        });
    }

    pub(super) fn list_messages(
        &self,
        actor: Snowflake,
        request: requests::ListMessages,
        reply: Responder<requests::ListMessages>,
    ) {
        let requests::ListMessages {
            channel_id: ch,
            anchor,
            limit,
        } = request;
        self.spawn_read(actor, ch, reply, Some(Vec::new()), move |ctx| async move {
            let started = Instant::now();
            let records = ctx
                .stores
                .messages
                .list_messages(ch, anchor, limit)
                .await
                .map_err(GuildContext::store_error)?;
            metrics::histogram!("enrichment_store_seconds", "op" => "list_messages")
                .record(started.elapsed().as_secs_f64());
            hydrate_page(&ctx, records, actor).await
        });
    }

    pub(super) fn list_pins(
        &self,
        actor: Snowflake,
        request: requests::ListPins,
        reply: Responder<requests::ListPins>,
    ) {
        let ch = request.channel_id;
        self.spawn_read(actor, ch, reply, Some(Vec::new()), move |ctx| async move {
            let records = ctx
                .stores
                .messages
                .list_pins(ch)
                .await
                .map_err(GuildContext::store_error)?;
            let times: Vec<Timestamp> = records.iter().map(|p| p.pinned_at).collect();
            let messages = records.into_iter().map(|p| p.message).collect();
            let page = hydrate_page(&ctx, messages, actor).await?;
            Ok(times
                .into_iter()
                .zip(page)
                .map(|(pinned_at, message)| PinnedMessage { pinned_at, message })
                .collect())
        });
    }

    pub(super) async fn list_reactions(
        &self,
        actor: Snowflake,
        request: requests::ListReactions,
        reply: Responder<requests::ListReactions>,
    ) {
        let requests::ListReactions {
            channel_id: ch,
            message_id: id,
            emoji,
            after,
            limit,
        } = request;
        let key = match self.reaction_key(&emoji, None) {
            Ok(k) => k,
            Err(e) => return reply.send(Err(e)),
        };
        self.spawn_read(actor, ch, reply, None, move |ctx| async move {
            let store = &ctx.stores.messages;
            if store
                .get_message(ch, id)
                .await
                .map_err(GuildContext::store_error)?
                .is_none()
            {
                return Err(ApiError::unknown(ErrorCode::UnknownMessage));
            }
            let ids = store
                .reaction_users(ch, id, &key, after, limit)
                .await
                .map_err(GuildContext::store_error)?;
            ctx.users
                .get_many(&ids)
                .await
                .map_err(GuildContext::store_error)
        });
    }

    pub(super) async fn bulk_delete(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        mut ids: Vec<Snowflake>,
    ) -> Result<(), ApiError> {
        self.state
            .require_channel(actor, ch, Permissions::MANAGE_MESSAGES, self.now())?;
        let oldest_allowed =
            (self.now().unix_ms().max(0) as u64).saturating_sub(BULK_DELETE_MAX_AGE_MS);
        if ids.iter().any(|id| id.unix_ms() < oldest_allowed) {
            return Err(ApiError::new(
                400,
                ErrorCode::MessageTooOldToBulkDelete,
                "You can only bulk delete messages that are under 14 days old.",
            ));
        }
        ids.sort_unstable();
        ids.dedup();
        // The records say which blobs go with them; read before they are gone.
        let store = &self.ctx.stores.messages;
        let records =
            futures::future::try_join_all(ids.iter().map(|id| store.get_message(ch, *id)))
                .await
                .map_err(GuildContext::store_error)?;
        let deleted = match self
            .commit(Change::DeleteMessages {
                channel_id: ch,
                message_ids: ids,
            })
            .await?
        {
            Applied::Deleted(ids) => ids,
            _ => Vec::new(),
        };
        self.ctx.discard_blobs(
            records
                .iter()
                .flatten()
                .filter(|r| deleted.contains(&r.id))
                .flat_map(blobs::keys_of)
                .collect(),
        );
        if !deleted.is_empty() {
            let entry = AuditLogEntry {
                options: Some(AuditEntryInfo {
                    count: Some(deleted.len().to_string()),
                    ..AuditEntryInfo::default()
                }),
                ..self.audit_entry(audit_action::MESSAGE_BULK_DELETE, Some(ch))
            };
            self.emit(
                Audience::Channel(ch),
                GuildEvent::MessageDeleteBulk(MessageDeleteBulkData {
                    ids: deleted,
                    channel_id: ch,
                    guild_id: self.state.wire_guild_id(),
                }),
            );
            self.log_after(vec![entry]).await;
        }
        Ok(())
    }

    fn reaction_data(
        &self,
        user: Snowflake,
        ch: Snowflake,
        id: Snowflake,
        key: &str,
        with_member: bool,
    ) -> ReactionData {
        ReactionData {
            user_id: user,
            channel_id: ch,
            message_id: id,
            guild_id: self.state.wire_guild_id(),
            member: if with_member && !self.state.is_private() {
                self.state
                    .members
                    .get(&user)
                    .map(|m| GuildState::wire_member(m, self.ctx.users.cached(user)))
            } else {
                None
            },
            emoji: emoji_of_key(key),
            burst: false,
            kind: 0,
        }
    }

    pub(super) async fn add_reaction(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        id: Snowflake,
        emoji: String,
    ) -> Result<(), ApiError> {
        let perms =
            self.state
                .require_channel(actor, ch, Permissions::READ_MESSAGE_HISTORY, self.now())?;
        let key = self.reaction_key(&emoji, Some(actor))?;
        self.load_message(ch, id).await?;
        let store = &self.ctx.stores.messages;
        let counts = store
            .reaction_counts(ch, id, actor)
            .await
            .map_err(GuildContext::store_error)?;
        if !counts.iter().any(|c| c.emoji == key) {
            // Adding a new emoji needs ADD_REACTIONS; joining an existing one does not.
            if !perms.contains(Permissions::ADD_REACTIONS) {
                return Err(ApiError::missing_permissions());
            }
            if counts.len() >= self.ctx.limits.max_reactions_per_message {
                return Err(ApiError::new(
                    400,
                    ErrorCode::MaxReactions,
                    format!(
                        "Maximum number of reactions reached ({})",
                        self.ctx.limits.max_reactions_per_message
                    ),
                ));
            }
        }
        let added = self
            .commit(Change::AddReaction {
                channel_id: ch,
                message_id: id,
                emoji: key.clone(),
                user_id: actor,
            })
            .await?;
        if added == Applied::Changed(true) {
            self.emit(
                Audience::Channel(ch),
                GuildEvent::ReactionAdd(self.reaction_data(actor, ch, id, &key, true)),
            );
        }
        Ok(())
    }

    pub(super) async fn remove_reaction(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        id: Snowflake,
        emoji: String,
        user: Snowflake,
    ) -> Result<(), ApiError> {
        let need = if user == actor {
            Permissions::VIEW_CHANNEL
        } else {
            Permissions::MANAGE_MESSAGES
        };
        self.state.require_channel(actor, ch, need, self.now())?;
        let key = self.reaction_key(&emoji, None)?;
        self.load_message(ch, id).await?;
        let removed = self
            .commit(Change::RemoveReaction {
                channel_id: ch,
                message_id: id,
                emoji: key.clone(),
                user_id: user,
            })
            .await?;
        if removed == Applied::Changed(true) {
            self.emit(
                Audience::Channel(ch),
                GuildEvent::ReactionRemove(self.reaction_data(user, ch, id, &key, false)),
            );
        }
        Ok(())
    }

    pub(super) async fn remove_all_reactions(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        id: Snowflake,
        emoji: Option<String>,
    ) -> Result<(), ApiError> {
        self.state
            .require_channel(actor, ch, Permissions::MANAGE_MESSAGES, self.now())?;
        let key = emoji
            .as_deref()
            .map(|e| self.reaction_key(e, None))
            .transpose()?;
        self.load_message(ch, id).await?;
        self.commit(Change::RemoveReactions {
            channel_id: ch,
            message_id: id,
            emoji: key.clone(),
        })
        .await?;
        let event = match key {
            Some(k) => GuildEvent::ReactionRemoveEmoji(ReactionRemoveEmojiData {
                channel_id: ch,
                guild_id: self.state.wire_guild_id(),
                message_id: id,
                emoji: emoji_of_key(&k),
            }),
            None => GuildEvent::ReactionRemoveAll(ReactionRemoveAllData {
                channel_id: ch,
                message_id: id,
                guild_id: self.state.wire_guild_id(),
            }),
        };
        self.emit(Audience::Channel(ch), event);
        Ok(())
    }

    pub(super) async fn set_pin(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        id: Snowflake,
        pin: bool,
    ) -> Result<(), ApiError> {
        let now = self.now();
        let perms = self
            .state
            .require_channel(actor, ch, Permissions::VIEW_CHANNEL, now)?;
        if !perms.intersects(Permissions::MANAGE_MESSAGES | Permissions::PIN_MESSAGES) {
            return Err(ApiError::missing_permissions());
        }
        let rec = self.load_message(ch, id).await?;
        if rec.pinned == pin {
            return Ok(());
        }
        let store = &self.ctx.stores.messages;
        if pin
            && store
                .list_pins(ch)
                .await
                .map_err(GuildContext::store_error)?
                .len()
                >= self.ctx.limits.max_pins
        {
            return Err(ApiError::new(
                400,
                ErrorCode::MaxPins,
                format!(
                    "Maximum number of pins reached ({})",
                    self.ctx.limits.max_pins
                ),
            ));
        }
        let set = self
            .commit(Change::SetPinned {
                channel_id: ch,
                message_id: id,
                pinned: pin,
            })
            .await?;
        if set != Applied::Changed(true) {
            return Err(ApiError::unknown(ErrorCode::UnknownMessage));
        }
        // `last_pin_timestamp` follows the newest remaining pin, as Discord reports it.
        let newest = store
            .list_pins(ch)
            .await
            .map_err(GuildContext::store_error)?
            .first()
            .map(|p| p.pinned_at);
        let action = if pin {
            audit_action::MESSAGE_PIN
        } else {
            audit_action::MESSAGE_UNPIN
        };
        let entry = AuditLogEntry {
            options: Some(AuditEntryInfo {
                channel_id: Some(ch),
                message_id: Some(id),
                ..AuditEntryInfo::default()
            }),
            ..self.audit_entry(action, Some(rec.author_id))
        };
        let mut channel = self.state.channel(ch)?.clone();
        if channel.last_pin_timestamp != newest {
            channel.last_pin_timestamp = newest;
            self.write_logged(vec![GuildWrite::PutChannel(channel.clone())], vec![entry])
                .await?;
            self.state.channels.insert(ch, channel.clone());
        } else {
            self.log_after(vec![entry]).await;
        }
        self.emit(
            Audience::Channel(ch),
            GuildEvent::ChannelPinsUpdate(ChannelPinsData {
                guild_id: self.state.wire_guild_id(),
                channel_id: ch,
                last_pin_timestamp: channel.last_pin_timestamp,
            }),
        );
        Ok(())
    }

    pub(super) async fn typing(&mut self, actor: Snowflake, ch: Snowflake) -> Result<(), ApiError> {
        self.state
            .require_channel(actor, ch, Permissions::SEND_MESSAGES, self.now())?;
        let member = self.state.member(actor)?;
        let data = TypingStartData {
            channel_id: ch,
            guild_id: self.state.wire_guild_id(),
            user_id: actor,
            timestamp: (Timestamp::now().unix_ms().max(0) / 1000) as u64,
            member: (!self.state.is_private())
                .then(|| GuildState::wire_member(member, self.ctx.users.cached(actor))),
        };
        self.emit(Audience::Channel(ch), GuildEvent::TypingStart(data));
        Ok(())
    }
}

/// Message flags a sender may set: SUPPRESS_EMBEDS (1<<2) and SUPPRESS_NOTIFICATIONS (1<<12).
pub(super) const SETTABLE_FLAGS: u64 = (1 << 2) | (1 << 12);

enum Prepared {
    Duplicate(Arc<Message>),
    New {
        record: MessageRecord,
        message: Arc<Message>,
        member: enrichment_protocol::models::Member,
    },
}
