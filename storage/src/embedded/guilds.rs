//! Guild metadata on fjall: one key range per guild plus the global indexes.

use async_trait::async_trait;
use enrichment_protocol::Snowflake;
use fjall::Readable;

use enrichment_protocol::models::AuditLogEntry;
use enrichment_protocol::rest::AuditLogFilter;

use super::keys::{GuildRow, concat, guild_row, id, read_id, user_guild};
use super::{EmbeddedStore, Inner, Ks, Tx, decode, lock};
use crate::{GuildSnapshot, GuildStore, GuildWrite, InviteRecord, StoreError, StoreResult};

fn apply(tx: &mut Tx<'_>, batch_guild: Snowflake, write: GuildWrite) -> StoreResult<()> {
    match write {
        GuildWrite::PutGuild(mut guild) => {
            guild.roles.clear();
            tx.put_json(
                Ks::Guilds,
                guild_row(guild.id, GuildRow::Guild, &[]),
                &guild,
            )?;
        }
        GuildWrite::DeleteGuild(guild_id) => delete_guild(tx, guild_id)?,
        GuildWrite::PutRole { guild_id, role } => {
            tx.put_json(
                Ks::Guilds,
                guild_row(guild_id, GuildRow::Role, &id(role.id)),
                &role,
            )?;
        }
        GuildWrite::DeleteRole { guild_id, role_id } => {
            tx.del(
                Ks::Guilds,
                guild_row(guild_id, GuildRow::Role, &id(role_id)),
            );
        }
        GuildWrite::PutChannel(channel) => {
            let guild_id = channel.guild_id.unwrap_or(batch_guild);
            tx.put_json(
                Ks::Guilds,
                guild_row(guild_id, GuildRow::Channel, &id(channel.id)),
                &channel,
            )?;
            tx.put(Ks::ChannelGuild, id(channel.id), id(guild_id));
        }
        GuildWrite::DeleteChannel {
            guild_id,
            channel_id,
        } => {
            tx.del(
                Ks::Guilds,
                guild_row(guild_id, GuildRow::Channel, &id(channel_id)),
            );
            tx.del(Ks::ChannelGuild, id(channel_id));
        }
        GuildWrite::PutMember(member) => {
            let key = guild_row(member.guild_id, GuildRow::Member, &id(member.user_id));
            tx.put_json(Ks::Guilds, key, &member)?;
            tx.put(
                Ks::UserGuilds,
                user_guild(member.user_id, member.guild_id),
                Vec::new(),
            );
        }
        GuildWrite::DeleteMember { guild_id, user_id } => {
            tx.del(
                Ks::Guilds,
                guild_row(guild_id, GuildRow::Member, &id(user_id)),
            );
            tx.del(Ks::UserGuilds, user_guild(user_id, guild_id));
        }
        GuildWrite::PutBan(ban) => {
            tx.put_json(
                Ks::Guilds,
                guild_row(ban.guild_id, GuildRow::Ban, &id(ban.user_id)),
                &ban,
            )?;
        }
        GuildWrite::DeleteBan { guild_id, user_id } => {
            tx.del(Ks::Guilds, guild_row(guild_id, GuildRow::Ban, &id(user_id)));
        }
        GuildWrite::PutInvite(invite) => {
            let code = invite.code.as_bytes();
            if let Some(held) = tx.get_json::<InviteRecord>(Ks::Invites, code)?
                && held.guild_id != invite.guild_id
            {
                return Err(StoreError::Conflict("code"));
            }
            tx.put(
                Ks::Guilds,
                guild_row(invite.guild_id, GuildRow::Invite, code),
                Vec::new(),
            );
            tx.put_json(Ks::Invites, code.to_vec(), &invite)?;
        }
        GuildWrite::DeleteInvite { code } => {
            if let Some(held) = tx.get_json::<InviteRecord>(Ks::Invites, code.as_bytes())? {
                tx.del(
                    Ks::Guilds,
                    guild_row(held.guild_id, GuildRow::Invite, code.as_bytes()),
                );
            }
            tx.del(Ks::Invites, code.into_bytes());
        }
        GuildWrite::PutWebhook(webhook) => {
            tx.put_json(
                Ks::Guilds,
                guild_row(webhook.guild_id, GuildRow::Webhook, &id(webhook.id)),
                &webhook,
            )?;
            tx.put(Ks::WebhookGuild, id(webhook.id), id(webhook.guild_id));
        }
        GuildWrite::DeleteWebhook {
            guild_id,
            webhook_id,
        } => {
            tx.del(
                Ks::Guilds,
                guild_row(guild_id, GuildRow::Webhook, &id(webhook_id)),
            );
            tx.del(Ks::WebhookGuild, id(webhook_id));
        }
        GuildWrite::PutEmoji(emoji) => {
            tx.put_json(
                Ks::Guilds,
                guild_row(emoji.guild_id, GuildRow::Emoji, &id(emoji.id)),
                &emoji,
            )?;
        }
        GuildWrite::DeleteEmoji { guild_id, emoji_id } => {
            tx.del(
                Ks::Guilds,
                guild_row(guild_id, GuildRow::Emoji, &id(emoji_id)),
            );
        }
        GuildWrite::PutPrivateChannel(channel) => {
            if let Some((low, high)) = channel.dm_pair() {
                let pair = concat(&[&id(low), &id(high)]);
                if let Some(held) = tx.get(Ks::DmPairs, &pair)?
                    && read_id(&held, 0)? != channel.id
                {
                    return Err(StoreError::Conflict("recipients"));
                }
                tx.put(Ks::DmPairs, pair, id(channel.id).to_vec());
            }
            tx.put_json(
                Ks::Guilds,
                guild_row(channel.id, GuildRow::Private, &[]),
                &channel,
            )?;
            tx.put(Ks::ChannelGuild, id(channel.id), id(channel.id));
        }
        GuildWrite::OpenPrivateChannel {
            channel_id,
            user_id,
        } => tx.put(Ks::UserPrivate, user_guild(user_id, channel_id), Vec::new()),
        GuildWrite::ClosePrivateChannel {
            channel_id,
            user_id,
        } => tx.del(Ks::UserPrivate, user_guild(user_id, channel_id)),
        GuildWrite::PutAuditEntry { guild_id, entry } => {
            tx.put_json(
                Ks::AuditLog,
                concat(&[&id(guild_id), &id(entry.id)]),
                &entry,
            )?;
        }
    }
    Ok(())
}

/// Deletes every row under the guild's prefix, and the index entries each row owns.
fn delete_guild(tx: &mut Tx<'_>, guild_id: Snowflake) -> StoreResult<()> {
    for key in tx.keys_with_prefix(Ks::Guilds, &id(guild_id))? {
        let sub = key.get(9..).unwrap_or_default();
        match key.get(8).copied().and_then(GuildRow::from_byte) {
            Some(GuildRow::Channel) => tx.del(Ks::ChannelGuild, sub.to_vec()),
            Some(GuildRow::Member) => {
                tx.del(Ks::UserGuilds, user_guild(read_id(sub, 0)?, guild_id))
            }
            Some(GuildRow::Invite) => tx.del(Ks::Invites, sub.to_vec()),
            Some(GuildRow::Webhook) => tx.del(Ks::WebhookGuild, sub.to_vec()),
            _ => {}
        }
        tx.del(Ks::Guilds, key);
    }
    tx.del_prefix(Ks::AuditLog, &id(guild_id))
}

/// The guild's entries in the filter's id range, walked from the end the filter pages from,
/// matched as they come, and returned newest first.
fn audit_log(
    inner: &Inner,
    guild_id: Snowflake,
    filter: &AuditLogFilter,
) -> StoreResult<Vec<AuditLogEntry>> {
    let g = id(guild_id);
    // Exclusive cursors as inclusive key bounds; ids 0 and u64::MAX cannot be inside a range
    // that excludes them, so saturating keeps the bounds right.
    let low = filter.after.map_or(0, |a| a.get().saturating_add(1));
    let high = filter
        .before
        .map_or(u64::MAX, |b| b.get().saturating_sub(1));
    if filter.limit == 0 || low > high || filter.after.is_some_and(|a| a.get() == u64::MAX) {
        return Ok(Vec::new());
    }
    let range = concat(&[&g, &low.to_be_bytes()])..=concat(&[&g, &high.to_be_bytes()]);
    let snap = inner.db.snapshot();
    let ks = inner.ks(Ks::AuditLog);
    let mut out = Vec::new();
    let mut take = |value: &[u8]| -> StoreResult<bool> {
        let entry: AuditLogEntry = decode(value)?;
        if filter.in_range(entry.id) && filter.matches(entry.user_id, entry.action_type) {
            out.push(entry);
        }
        Ok(out.len() < filter.limit)
    };
    if filter.after.is_some() {
        for kv in snap.range(ks, range) {
            if !take(&kv.value()?)? {
                break;
            }
        }
        out.reverse();
    } else {
        for kv in snap.range(ks, range).rev() {
            if !take(&kv.value()?)? {
                break;
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl GuildStore for EmbeddedStore {
    async fn write_guild(&self, guild_id: Snowflake, writes: Vec<GuildWrite>) -> StoreResult<()> {
        self.write(move |inner| {
            let _guard = lock(&inner.guilds_lock);
            let mut tx = Tx::new(inner);
            for write in writes {
                apply(&mut tx, guild_id, write)?;
            }
            Ok(((), tx.commit()?))
        })
        .await
    }

    async fn load_guild(&self, guild_id: Snowflake) -> StoreResult<Option<GuildSnapshot>> {
        self.blocking(move |inner| {
            // One snapshot, so a batch committed mid-scan is seen entirely or not at all.
            let snap = inner.db.snapshot();
            let guilds = inner.ks(Ks::Guilds);
            let Some(row) = snap.get(guilds, guild_row(guild_id, GuildRow::Guild, &[]))? else {
                let private = snap.get(guilds, guild_row(guild_id, GuildRow::Private, &[]))?;
                return private
                    .map(|row| {
                        Ok(GuildSnapshot {
                            private: Some(decode(&row)?),
                            ..GuildSnapshot::default()
                        })
                    })
                    .transpose();
            };
            let mut out = GuildSnapshot {
                guild: Some(decode(&row)?),
                ..GuildSnapshot::default()
            };
            for entry in snap.prefix(guilds, id(guild_id)) {
                let (key, value) = entry.into_inner()?;
                match key.get(8).copied().and_then(GuildRow::from_byte) {
                    Some(GuildRow::Guild | GuildRow::Private) => {}
                    Some(GuildRow::Role) => out.roles.push(decode(&value)?),
                    Some(GuildRow::Channel) => out.channels.push(decode(&value)?),
                    Some(GuildRow::Member) => out.members.push(decode(&value)?),
                    Some(GuildRow::Ban) => out.bans.push(decode(&value)?),
                    Some(GuildRow::Webhook) => out.webhooks.push(decode(&value)?),
                    Some(GuildRow::Emoji) => out.emojis.push(decode(&value)?),
                    Some(GuildRow::Invite) => {
                        let code = key.get(9..).unwrap_or_default();
                        match snap.get(inner.ks(Ks::Invites), code)? {
                            Some(invite) => out.invites.push(decode(&invite)?),
                            None => return Err(StoreError::Corrupt("dangling invite row".into())),
                        }
                    }
                    None => return Err(StoreError::Corrupt("unknown guild row kind".into())),
                }
            }
            Ok(Some(out))
        })
        .await
    }

    async fn user_guilds(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>> {
        self.blocking(move |inner| {
            inner
                .ks(Ks::UserGuilds)
                .prefix(id(user_id))
                .map(|entry| read_id(&entry.key()?, 8))
                .collect()
        })
        .await
    }

    async fn user_private_channels(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>> {
        self.blocking(move |inner| {
            inner
                .ks(Ks::UserPrivate)
                .prefix(id(user_id))
                .map(|entry| read_id(&entry.key()?, 8))
                .collect()
        })
        .await
    }

    async fn dm_channel(&self, a: Snowflake, b: Snowflake) -> StoreResult<Option<Snowflake>> {
        self.blocking(move |inner| {
            inner
                .get(Ks::DmPairs, &concat(&[&id(a.min(b)), &id(a.max(b))]))?
                .map(|v| read_id(&v, 0))
                .transpose()
        })
        .await
    }

    async fn channel_guild(&self, channel_id: Snowflake) -> StoreResult<Option<Snowflake>> {
        self.blocking(move |inner| {
            inner
                .get(Ks::ChannelGuild, &id(channel_id))?
                .map(|v| read_id(&v, 0))
                .transpose()
        })
        .await
    }

    async fn get_invite(&self, code: &str) -> StoreResult<Option<InviteRecord>> {
        let code = code.as_bytes().to_vec();
        self.blocking(move |inner| inner.get_json(Ks::Invites, &code))
            .await
    }

    async fn webhook_guild(&self, webhook_id: Snowflake) -> StoreResult<Option<Snowflake>> {
        self.blocking(move |inner| {
            inner
                .get(Ks::WebhookGuild, &id(webhook_id))?
                .map(|v| read_id(&v, 0))
                .transpose()
        })
        .await
    }

    async fn audit_log(
        &self,
        guild_id: Snowflake,
        filter: &AuditLogFilter,
    ) -> StoreResult<Vec<AuditLogEntry>> {
        let filter = filter.clone();
        self.blocking(move |inner| audit_log(inner, guild_id, &filter))
            .await
    }
}
