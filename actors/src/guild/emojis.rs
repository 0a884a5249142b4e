//! A guild's custom emojis: listed to members, made and changed by those with the expressions
//! permissions, announced as GUILD_EMOJIS_UPDATE, usable in reactions as `name:id`.
//!
//! The image is a blob of its own. The route stores it between two requests to the actor:
//! [`CheckEmoji`] (the permission and the guild's room for one more, before a byte is stored)
//! and [`CreateEmoji`] (the record, checked again, committed with its audit-log entry). A
//! failed create leaves the route to delete the blob, so no record ever names a missing image;
//! a deleted emoji's image is removed once its record is gone.
//!
//! A reaction stores its custom emoji as `name:id` (`a:name:id` when animated), the name the
//! emoji had when the reaction was added: reactions added after a rename count apart from
//! those before it.

use enrichment_protocol::models::{AuditLogEntry, Emoji, audit_action};
use enrichment_protocol::rest::ModifyEmoji;
use enrichment_protocol::{ApiError, ErrorCode, FormErrors, Permissions, Snowflake};
use enrichment_storage::blobs::BlobKey;
use enrichment_storage::{EmojiRecord, GuildWrite};

use super::actor::GuildActorState;
use super::audit::changes;
use super::requests::*;
use super::state::GuildState;
use super::text::{ReactionEmoji, custom_emoji_key, parse_reaction_emoji};
use crate::events::{Audience, GuildEmojisUpdateData, GuildEvent};

/// Record fields that are no change of the emoji's own (its ids, who made it).
const EMOJI_SKIP: &[&str] = &["id", "guild_id", "creator_id"];

impl GuildActorState {
    /// Members may list the guild's emojis; the uploader is shown to those who may manage them.
    pub(super) async fn list_emojis(&self, actor: Snowflake) -> Result<Vec<Emoji>, ApiError> {
        let manage = self.may_manage_emojis(actor)?;
        let mut out = Vec::with_capacity(self.state.emojis.len());
        for e in self.state.emojis.values() {
            out.push(self.wire_emoji(e, manage).await?);
        }
        Ok(out)
    }

    pub(super) async fn get_emoji(
        &self,
        actor: Snowflake,
        id: Snowflake,
    ) -> Result<Emoji, ApiError> {
        let manage = self.may_manage_emojis(actor)?;
        let e = self.emoji(id)?;
        self.wire_emoji(e, manage).await
    }

    /// Whether `actor`, a member, holds either expressions permission.
    fn may_manage_emojis(&self, actor: Snowflake) -> Result<bool, ApiError> {
        let p = self.state.guild_permissions(actor, self.now())?;
        Ok(p.intersects(
            Permissions::CREATE_GUILD_EXPRESSIONS | Permissions::MANAGE_GUILD_EXPRESSIONS,
        ))
    }

    fn emoji(&self, id: Snowflake) -> Result<&EmojiRecord, ApiError> {
        self.state
            .emojis
            .get(&id)
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownEmoji))
    }

    async fn wire_emoji(&self, e: &EmojiRecord, with_user: bool) -> Result<Emoji, ApiError> {
        let user = if with_user {
            Some(self.user_or_deleted(e.creator_id).await?)
        } else {
            None
        };
        Ok(GuildState::wire_emoji(e, user))
    }

    /// May `actor` add an emoji of this kind? CREATE_GUILD_EXPRESSIONS (or
    /// MANAGE_GUILD_EXPRESSIONS), and room under `guilds.max_emojis` for its kind.
    pub(super) fn check_emoji(&self, actor: Snowflake, animated: bool) -> Result<(), ApiError> {
        if !self.may_manage_emojis(actor)? {
            return Err(ApiError::missing_permissions());
        }
        let max = self.ctx.limits.max_emojis;
        let held = self
            .state
            .emojis
            .values()
            .filter(|e| e.animated == animated)
            .count();
        if held >= max {
            let kind = if animated { "animated" } else { "static" };
            return Err(ApiError::new(
                400,
                ErrorCode::MaxEmojis,
                format!("Maximum number of {kind} emojis reached ({max})"),
            ));
        }
        Ok(())
    }

    /// Roles an emoji may be limited to must be the guild's.
    fn check_emoji_roles(&self, roles: &[Snowflake]) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        for (i, r) in roles.iter().enumerate() {
            if !self.state.roles.contains_key(r) {
                e.add(
                    &["roles", &i.to_string()],
                    "ROLE_INVALID",
                    format!("Unknown role {r}"),
                );
            }
        }
        e.finish()
    }

    /// Records an emoji whose image the route has stored under its id.
    pub(super) async fn create_emoji(
        &mut self,
        actor: Snowflake,
        r: CreateEmoji,
    ) -> Result<Emoji, ApiError> {
        self.check_emoji(actor, r.animated)?;
        let roles = r.roles.unwrap_or_default();
        self.check_emoji_roles(&roles)?;
        let record = EmojiRecord {
            id: r.emoji_id,
            guild_id: self.state.id(),
            name: r.name,
            roles,
            creator_id: actor,
            animated: r.animated,
        };
        let entry = AuditLogEntry {
            changes: changes(None, Some(&record), EMOJI_SKIP),
            ..self.audit_entry(audit_action::EMOJI_CREATE, Some(record.id))
        };
        self.write_logged(vec![GuildWrite::PutEmoji(record.clone())], vec![entry])
            .await?;
        self.state.emojis.insert(record.id, record.clone());
        self.emojis_update();
        self.wire_emoji(&record, true).await
    }

    /// MANAGE_GUILD_EXPRESSIONS, or CREATE_GUILD_EXPRESSIONS for one's own emoji.
    fn may_change_emoji(&self, actor: Snowflake, e: &EmojiRecord) -> Result<(), ApiError> {
        let p = self.state.guild_permissions(actor, self.now())?;
        if p.contains(Permissions::MANAGE_GUILD_EXPRESSIONS)
            || (e.creator_id == actor && p.contains(Permissions::CREATE_GUILD_EXPRESSIONS))
        {
            Ok(())
        } else {
            Err(ApiError::missing_permissions())
        }
    }

    pub(super) async fn modify_emoji(
        &mut self,
        actor: Snowflake,
        id: Snowflake,
        body: ModifyEmoji,
    ) -> Result<Emoji, ApiError> {
        let old = self.emoji(id)?.clone();
        self.may_change_emoji(actor, &old)?;
        body.validate()?;
        let mut new = old.clone();
        if let Some(n) = body.name {
            new.name = n;
        }
        if let Some(roles) = body.roles {
            let roles = roles.unwrap_or_default();
            self.check_emoji_roles(&roles)?;
            new.roles = roles;
        }
        let fields = changes(Some(&old), Some(&new), EMOJI_SKIP);
        if fields.is_empty() {
            return self.wire_emoji(&new, true).await;
        }
        let entry = AuditLogEntry {
            changes: fields,
            ..self.audit_entry(audit_action::EMOJI_UPDATE, Some(id))
        };
        self.write_logged(vec![GuildWrite::PutEmoji(new.clone())], vec![entry])
            .await?;
        self.state.emojis.insert(id, new.clone());
        self.emojis_update();
        self.wire_emoji(&new, true).await
    }

    pub(super) async fn delete_emoji(
        &mut self,
        actor: Snowflake,
        id: Snowflake,
    ) -> Result<(), ApiError> {
        let old = self.emoji(id)?.clone();
        self.may_change_emoji(actor, &old)?;
        let entry = AuditLogEntry {
            changes: changes(Some(&old), None, EMOJI_SKIP),
            ..self.audit_entry(audit_action::EMOJI_DELETE, Some(id))
        };
        self.write_logged(
            vec![GuildWrite::DeleteEmoji {
                guild_id: self.state.id(),
                emoji_id: id,
            }],
            vec![entry],
        )
        .await?;
        self.state.emojis.remove(&id);
        if let Ok(key) = BlobKey::new(EmojiRecord::blob_key(id)) {
            self.ctx.discard_blobs(vec![key]);
        }
        self.emojis_update();
        Ok(())
    }

    /// GUILD_EMOJIS_UPDATE with the whole list, to every member (GUILD_EXPRESSIONS).
    fn emojis_update(&mut self) {
        let data = GuildEmojisUpdateData {
            guild_id: self.state.id(),
            emojis: self.state.wire_emojis(),
        };
        self.emit(Audience::Guild, GuildEvent::EmojisUpdate(data));
    }

    /// The stored key of a reaction's emoji. A custom emoji must be this guild's (else 10014);
    /// one limited to roles may be added (`adding`) only by a member holding one of them.
    pub(super) fn reaction_key(
        &self,
        raw: &str,
        adding: Option<Snowflake>,
    ) -> Result<String, ApiError> {
        let unknown = || ApiError::new(400, ErrorCode::UnknownEmoji, "Unknown Emoji");
        match parse_reaction_emoji(raw)? {
            ReactionEmoji::Unicode(name) => Ok(name),
            ReactionEmoji::Custom { id, .. } => {
                let e = self.state.emojis.get(&id).ok_or_else(unknown)?;
                if let Some(user) = adding
                    && !e.roles.is_empty()
                {
                    let held = self
                        .state
                        .members
                        .get(&user)
                        .is_some_and(|m| m.roles.iter().any(|r| e.roles.contains(r)));
                    if !held && user != self.state.guild.owner_id {
                        return Err(unknown());
                    }
                }
                Ok(custom_emoji_key(&e.name, e.id, e.animated))
            }
        }
    }
}
