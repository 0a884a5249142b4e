//! The guild itself: reading it, the caller's partial view, its settings, and deleting it.

use enrichment_protocol::models::{AuditLogEntry, Guild, PartialGuild, audit_action};
use enrichment_protocol::rest::ModifyGuild;
use enrichment_protocol::{ApiError, FormErrors, Permissions, Snowflake};
use enrichment_storage::blobs::BlobKey;
use enrichment_storage::{EmojiRecord, GuildWrite};

use super::actor::GuildActorState;
use super::audit::changes;
use super::commit::{Change, apply};
use crate::events::{Audience, GuildDeleteData, GuildEvent};

impl GuildActorState {
    pub(super) fn get_guild(&self, actor: Snowflake) -> Result<Guild, ApiError> {
        self.state.guild_permissions(actor, self.now())?;
        Ok(self.state.wire_guild())
    }

    pub(super) fn partial_guild(&self, actor: Snowflake) -> Result<PartialGuild, ApiError> {
        let permissions = self.state.guild_permissions(actor, self.now())?;
        let g = &self.state.guild;
        Ok(PartialGuild {
            id: g.id,
            name: g.name.clone(),
            icon: g.icon.clone(),
            banner: g.banner.clone(),
            owner: g.owner_id == actor,
            permissions,
            features: g.features.clone(),
        })
    }

    pub(super) async fn modify_guild(
        &mut self,
        actor: Snowflake,
        body: ModifyGuild,
    ) -> Result<Guild, ApiError> {
        self.state
            .require_guild(actor, Permissions::MANAGE_GUILD, self.now())?;
        let mut g = self.state.guild.clone();
        let mut e = FormErrors::default();
        if let Some(n) = body.name {
            g.name = n.trim().to_owned();
        }
        if let Some(d) = body.description {
            g.description = d;
        }
        if let Some(i) = body.icon {
            g.icon = i;
        }
        for (field, value, target) in [
            (
                "system_channel_id",
                body.system_channel_id,
                &mut g.system_channel_id,
            ),
            ("afk_channel_id", body.afk_channel_id, &mut g.afk_channel_id),
        ] {
            if let Some(v) = value {
                if let Some(id) = v
                    && !self.state.channels.contains_key(&id)
                {
                    e.add(&[field], "CHANNEL_INVALID", "Unknown channel.");
                }
                *target = v;
            }
        }
        if let Some(t) = body.afk_timeout {
            g.afk_timeout = t;
        }
        if let Some(v) = body.verification_level {
            g.verification_level = v;
        }
        if let Some(v) = body.default_message_notifications {
            g.default_message_notifications = v;
        }
        if let Some(v) = body.explicit_content_filter {
            g.explicit_content_filter = v;
        }
        if let Some(l) = body.preferred_locale {
            g.preferred_locale = l;
        }
        if let Some(owner) = body.owner_id {
            if actor != self.state.guild.owner_id {
                return Err(ApiError::missing_permissions());
            }
            if !self.state.members.contains_key(&owner) {
                e.add(
                    &["owner_id"],
                    "GUILD_OWNER_INVALID",
                    "The new owner must be a member.",
                );
            }
            g.owner_id = owner;
        }
        e.finish()?;
        let fields = changes(Some(&self.state.guild), Some(&g), &["id", "roles"]);
        let entries = if fields.is_empty() {
            Vec::new()
        } else {
            vec![AuditLogEntry {
                changes: fields,
                ..self.audit_entry(audit_action::GUILD_UPDATE, Some(g.id))
            }]
        };
        self.write_logged(vec![GuildWrite::PutGuild(g.clone())], entries)
            .await?;
        self.state.guild = g;
        let wire = self.state.wire_guild();
        self.emit(Audience::Guild, GuildEvent::GuildUpdate(wire.clone()));
        Ok(wire)
    }

    pub(super) async fn delete_guild(&mut self, actor: Snowflake) -> Result<(), ApiError> {
        self.state.guild_permissions(actor, self.now())?;
        if actor != self.state.guild.owner_id {
            return Err(ApiError::missing_permissions());
        }
        let id = self.state.id();
        self.write(vec![GuildWrite::DeleteGuild(id)]).await?;
        let members: Vec<Snowflake> = self.state.members.keys().copied().collect();
        let channels: Vec<Snowflake> = self.state.channels.keys().copied().collect();
        let stores = self.ctx.stores.clone();
        // The guild is gone once its metadata is; message rows and attachment blobs are
        // unreachable from then on and are cleared in the background.
        self.ctx.discard_channel_blobs(channels.clone());
        let emoji_images = self
            .state
            .emojis
            .keys()
            .filter_map(|e| BlobKey::new(EmojiRecord::blob_key(*e)).ok())
            .collect();
        self.ctx.discard_blobs(emoji_images);
        tokio::spawn(async move {
            for c in channels {
                if let Err(e) = apply(&stores, Change::ClearChannel(c)).await {
                    tracing::warn!(channel_id = %c, error = %e, "could not clear messages of a deleted guild");
                }
            }
        });
        self.emit(
            Audience::Users(members),
            GuildEvent::GuildDelete(GuildDeleteData {
                id,
                unavailable: false,
            }),
        );
        self.deleted = true;
        Ok(())
    }
}
