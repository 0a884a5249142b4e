//! Guild metadata on PostgreSQL: one table per kind of row, each keyed by guild.
//!
//! A batch is one transaction whose statements run in the batch's order, so later writes see
//! earlier ones (a member put then deleted is gone) and a failure anywhere rolls back all of
//! it. Invite codes are unique through the `invites` primary key: a put of a code that another
//! guild holds updates nothing (the upsert's `WHERE` keeps the holder's row), which fails the
//! batch with `Conflict("code")`; a racing insert waits on the holder's uncommitted index entry
//! and then sees the same. A DM's pair of users is unique the same way, through the `dm_pairs`
//! primary key: a DM whose pair names another channel fails the batch with
//! `Conflict("recipients")`.
//!
//! A private channel (DM or group DM) is a unit of its own: its row in `private_channels` is
//! what `load_guild` returns for its id, and that table's primary key is how `channel_guild`
//! finds it (a private channel is its own unit), so it needs no row in `guild_channels`.

use async_trait::async_trait;
use enrichment_protocol::Snowflake;
use enrichment_protocol::models::{AuditLogEntry, Channel, Guild, Role};
use enrichment_protocol::rest::AuditLogFilter;
use tokio_postgres::types::Json;

use super::nodes::check_fence;
use super::{Db, PostgresStore, col, db_error, snowflake, sql_id};
use crate::{
    BanRecord, EmojiRecord, GuildOwner, GuildSnapshot, GuildStore, GuildWrite, InviteRecord,
    MemberRecord, PrivateChannelRecord, StoreError, StoreResult, WebhookRecord,
};

const CONTEXT: &str = "writing a guild batch";

/// Every table that holds rows of a guild, in the order a guild is deleted.
const GUILD_TABLES: [&str; 9] = [
    "DELETE FROM audit_log_entries WHERE guild_id = $1",
    "DELETE FROM guild_webhooks WHERE guild_id = $1",
    "DELETE FROM guild_emojis WHERE guild_id = $1",
    "DELETE FROM guild_roles WHERE guild_id = $1",
    "DELETE FROM guild_channels WHERE guild_id = $1",
    "DELETE FROM guild_members WHERE guild_id = $1",
    "DELETE FROM guild_bans WHERE guild_id = $1",
    "DELETE FROM invites WHERE guild_id = $1",
    "DELETE FROM guilds WHERE id = $1",
];

async fn apply(db: &Db<'_>, batch_guild: Snowflake, write: GuildWrite) -> StoreResult<()> {
    match write {
        GuildWrite::PutGuild(mut guild) => {
            guild.roles.clear();
            db.execute(
                "INSERT INTO guilds (id, record) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                &[&sql_id(guild.id), &Json(&guild)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::DeleteGuild(guild_id) => {
            for sql in GUILD_TABLES {
                db.execute(sql, &[&sql_id(guild_id)], CONTEXT).await?;
            }
        }
        GuildWrite::PutRole { guild_id, role } => {
            db.execute(
                "INSERT INTO guild_roles (guild_id, role_id, record) VALUES ($1, $2, $3)
                 ON CONFLICT (guild_id, role_id) DO UPDATE SET record = excluded.record",
                &[&sql_id(guild_id), &sql_id(role.id), &Json(&role)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::DeleteRole { guild_id, role_id } => {
            db.execute(
                "DELETE FROM guild_roles WHERE guild_id = $1 AND role_id = $2",
                &[&sql_id(guild_id), &sql_id(role_id)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::PutChannel(channel) => {
            let guild_id = channel.guild_id.unwrap_or(batch_guild);
            db.execute(
                "INSERT INTO guild_channels (channel_id, guild_id, record) VALUES ($1, $2, $3)
                 ON CONFLICT (channel_id) DO UPDATE
                 SET guild_id = excluded.guild_id, record = excluded.record",
                &[&sql_id(channel.id), &sql_id(guild_id), &Json(&channel)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::DeleteChannel {
            guild_id,
            channel_id,
        } => {
            db.execute(
                "DELETE FROM guild_channels WHERE channel_id = $1 AND guild_id = $2",
                &[&sql_id(channel_id), &sql_id(guild_id)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::PutMember(member) => {
            db.execute(
                "INSERT INTO guild_members (guild_id, user_id, record) VALUES ($1, $2, $3)
                 ON CONFLICT (guild_id, user_id) DO UPDATE SET record = excluded.record",
                &[
                    &sql_id(member.guild_id),
                    &sql_id(member.user_id),
                    &Json(&member),
                ],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::DeleteMember { guild_id, user_id } => {
            db.execute(
                "DELETE FROM guild_members WHERE guild_id = $1 AND user_id = $2",
                &[&sql_id(guild_id), &sql_id(user_id)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::PutBan(ban) => {
            db.execute(
                "INSERT INTO guild_bans (guild_id, user_id, record) VALUES ($1, $2, $3)
                 ON CONFLICT (guild_id, user_id) DO UPDATE SET record = excluded.record",
                &[&sql_id(ban.guild_id), &sql_id(ban.user_id), &Json(&ban)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::DeleteBan { guild_id, user_id } => {
            db.execute(
                "DELETE FROM guild_bans WHERE guild_id = $1 AND user_id = $2",
                &[&sql_id(guild_id), &sql_id(user_id)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::PutInvite(invite) => {
            let written = db
                .execute(
                    "INSERT INTO invites (code, guild_id, record) VALUES ($1, $2, $3)
                     ON CONFLICT (code) DO UPDATE SET record = excluded.record
                     WHERE invites.guild_id = excluded.guild_id",
                    &[&invite.code, &sql_id(invite.guild_id), &Json(&invite)],
                    CONTEXT,
                )
                .await?;
            if written == 0 {
                return Err(StoreError::Conflict("code"));
            }
        }
        GuildWrite::DeleteInvite { code } => {
            db.execute("DELETE FROM invites WHERE code = $1", &[&code], CONTEXT)
                .await?;
        }
        GuildWrite::PutWebhook(webhook) => {
            db.execute(
                "INSERT INTO guild_webhooks (webhook_id, guild_id, record) VALUES ($1, $2, $3)
                 ON CONFLICT (webhook_id) DO UPDATE SET record = excluded.record",
                &[
                    &sql_id(webhook.id),
                    &sql_id(webhook.guild_id),
                    &Json(&webhook),
                ],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::DeleteWebhook {
            guild_id,
            webhook_id,
        } => {
            db.execute(
                "DELETE FROM guild_webhooks WHERE webhook_id = $1 AND guild_id = $2",
                &[&sql_id(webhook_id), &sql_id(guild_id)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::PutEmoji(emoji) => {
            db.execute(
                "INSERT INTO guild_emojis (guild_id, emoji_id, record) VALUES ($1, $2, $3)
                 ON CONFLICT (guild_id, emoji_id) DO UPDATE SET record = excluded.record",
                &[&sql_id(emoji.guild_id), &sql_id(emoji.id), &Json(&emoji)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::DeleteEmoji { guild_id, emoji_id } => {
            db.execute(
                "DELETE FROM guild_emojis WHERE guild_id = $1 AND emoji_id = $2",
                &[&sql_id(guild_id), &sql_id(emoji_id)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::PutPrivateChannel(channel) => {
            if let Some((low, high)) = channel.dm_pair() {
                let written = db
                    .execute(
                        "INSERT INTO dm_pairs (low_user_id, high_user_id, channel_id)
                         VALUES ($1, $2, $3)
                         ON CONFLICT (low_user_id, high_user_id) DO UPDATE
                         SET channel_id = excluded.channel_id
                         WHERE dm_pairs.channel_id = excluded.channel_id",
                        &[&sql_id(low), &sql_id(high), &sql_id(channel.id)],
                        CONTEXT,
                    )
                    .await?;
                if written == 0 {
                    return Err(StoreError::Conflict("recipients"));
                }
            }
            db.execute(
                "INSERT INTO private_channels (id, record) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                &[&sql_id(channel.id), &Json(&channel)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::OpenPrivateChannel {
            channel_id,
            user_id,
        } => {
            db.execute(
                "INSERT INTO user_private_channels (user_id, channel_id) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&sql_id(user_id), &sql_id(channel_id)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::ClosePrivateChannel {
            channel_id,
            user_id,
        } => {
            db.execute(
                "DELETE FROM user_private_channels WHERE user_id = $1 AND channel_id = $2",
                &[&sql_id(user_id), &sql_id(channel_id)],
                CONTEXT,
            )
            .await?;
        }
        GuildWrite::PutAuditEntry { guild_id, entry } => {
            db.execute(
                "INSERT INTO audit_log_entries (guild_id, entry_id, user_id, action_type, record)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &sql_id(guild_id),
                    &sql_id(entry.id),
                    &entry.user_id.map(sql_id),
                    &i32::from(entry.action_type),
                    &Json(&entry),
                ],
                CONTEXT,
            )
            .await?;
        }
    }
    Ok(())
}

impl PostgresStore {
    /// A batch, under a fence or none (see [`crate::fence`]).
    pub(super) async fn write_guild_in(
        &self,
        fence: Option<&GuildOwner>,
        guild_id: Snowflake,
        writes: Vec<GuildWrite>,
    ) -> StoreResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(CONTEXT))?;
        let db = Db::Tx(&tx);
        check_fence(&db, fence).await?;
        for write in writes {
            apply(&db, guild_id, write).await?;
        }
        tx.commit().await.map_err(db_error(CONTEXT))
    }
}

#[async_trait]
impl GuildStore for PostgresStore {
    async fn write_guild(&self, guild_id: Snowflake, writes: Vec<GuildWrite>) -> StoreResult<()> {
        self.write_guild_in(None, guild_id, writes).await
    }

    /// One statement, so one snapshot: a batch committed meanwhile is seen whole or not at all.
    /// A private channel's row comes with it, and is the answer when there is no guild row.
    async fn load_guild(&self, guild_id: Snowflake) -> StoreResult<Option<GuildSnapshot>> {
        let client = self.client().await?;
        let rows = Db::Conn(&client)
            .query(
                "SELECT 0::int2, record FROM guilds WHERE id = $1
                 UNION ALL SELECT 1::int2, record FROM guild_roles WHERE guild_id = $1
                 UNION ALL SELECT 2::int2, record FROM guild_channels WHERE guild_id = $1
                 UNION ALL SELECT 3::int2, record FROM guild_members WHERE guild_id = $1
                 UNION ALL SELECT 4::int2, record FROM guild_bans WHERE guild_id = $1
                 UNION ALL SELECT 5::int2, record FROM invites WHERE guild_id = $1
                 UNION ALL SELECT 6::int2, record FROM guild_webhooks WHERE guild_id = $1
                 UNION ALL SELECT 7::int2, record FROM private_channels WHERE id = $1
                 UNION ALL SELECT 8::int2, record FROM guild_emojis WHERE guild_id = $1",
                &[&sql_id(guild_id)],
                "loading a guild",
            )
            .await?;
        let mut out = GuildSnapshot::default();
        let mut private = None;
        for row in &rows {
            match col::<i16>(row, 0)? {
                0 => out.guild = Some(col::<Json<Guild>>(row, 1)?.0),
                1 => out.roles.push(col::<Json<Role>>(row, 1)?.0),
                2 => out.channels.push(col::<Json<Channel>>(row, 1)?.0),
                3 => out.members.push(col::<Json<MemberRecord>>(row, 1)?.0),
                4 => out.bans.push(col::<Json<BanRecord>>(row, 1)?.0),
                6 => out.webhooks.push(col::<Json<WebhookRecord>>(row, 1)?.0),
                7 => private = Some(col::<Json<PrivateChannelRecord>>(row, 1)?.0),
                8 => out.emojis.push(col::<Json<EmojiRecord>>(row, 1)?.0),
                _ => out.invites.push(col::<Json<InviteRecord>>(row, 1)?.0),
            }
        }
        if out.guild.is_some() {
            return Ok(Some(out));
        }
        Ok(private.map(|private| GuildSnapshot {
            private: Some(private),
            ..GuildSnapshot::default()
        }))
    }

    /// Ascending as `u64`, which the stored `i64` bits do not sort as when an id has its top
    /// bit set; a user's guild list is small enough to sort here.
    async fn user_guilds(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>> {
        let client = self.client().await?;
        let rows = Db::Conn(&client)
            .query(
                "SELECT guild_id FROM guild_members WHERE user_id = $1",
                &[&sql_id(user_id)],
                "listing a user's guilds",
            )
            .await?;
        let mut guilds = rows
            .iter()
            .map(|r| col(r, 0).map(snowflake))
            .collect::<StoreResult<Vec<_>>>()?;
        guilds.sort();
        Ok(guilds)
    }

    /// A guild's channel, or a private channel, which is its own unit.
    async fn channel_guild(&self, channel_id: Snowflake) -> StoreResult<Option<Snowflake>> {
        let client = self.client().await?;
        let row = Db::Conn(&client)
            .query_opt(
                "SELECT guild_id FROM guild_channels WHERE channel_id = $1
                 UNION ALL SELECT id FROM private_channels WHERE id = $1
                 LIMIT 1",
                &[&sql_id(channel_id)],
                "finding a channel's guild",
            )
            .await?;
        row.map(|r| col(&r, 0).map(snowflake)).transpose()
    }

    async fn webhook_guild(&self, webhook_id: Snowflake) -> StoreResult<Option<Snowflake>> {
        let client = self.client().await?;
        let row = Db::Conn(&client)
            .query_opt(
                "SELECT guild_id FROM guild_webhooks WHERE webhook_id = $1",
                &[&sql_id(webhook_id)],
                "finding a webhook's guild",
            )
            .await?;
        row.map(|r| col(&r, 0).map(snowflake)).transpose()
    }

    /// Ascending as `u64`, like [`GuildStore::user_guilds`].
    async fn user_private_channels(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>> {
        let client = self.client().await?;
        let rows = Db::Conn(&client)
            .query(
                "SELECT channel_id FROM user_private_channels WHERE user_id = $1",
                &[&sql_id(user_id)],
                "listing a user's private channels",
            )
            .await?;
        let mut channels = rows
            .iter()
            .map(|r| col(r, 0).map(snowflake))
            .collect::<StoreResult<Vec<_>>>()?;
        channels.sort();
        Ok(channels)
    }

    async fn dm_channel(&self, a: Snowflake, b: Snowflake) -> StoreResult<Option<Snowflake>> {
        let client = self.client().await?;
        let row = Db::Conn(&client)
            .query_opt(
                "SELECT channel_id FROM dm_pairs WHERE low_user_id = $1 AND high_user_id = $2",
                &[&sql_id(a.min(b)), &sql_id(a.max(b))],
                "finding a DM",
            )
            .await?;
        row.map(|r| col(&r, 0).map(snowflake)).transpose()
    }

    /// One statement; the cursors and filters are `NULL` when unset, so one plan serves every
    /// combination. Ids compare as the stored `i64`, which is id order for every id minted
    /// (the top bit is set only some 290 million years after the epoch).
    async fn audit_log(
        &self,
        guild_id: Snowflake,
        filter: &AuditLogFilter,
    ) -> StoreResult<Vec<AuditLogEntry>> {
        let client = self.client().await?;
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let order = if filter.after.is_some() {
            "ASC"
        } else {
            "DESC"
        };
        let sql = format!(
            "SELECT record FROM audit_log_entries
             WHERE guild_id = $1
               AND ($2::int8 IS NULL OR entry_id < $2)
               AND ($3::int8 IS NULL OR entry_id > $3)
               AND ($4::int8 IS NULL OR user_id = $4)
               AND ($5::int4 IS NULL OR action_type = $5)
             ORDER BY entry_id {order} LIMIT $6"
        );
        let rows = Db::Conn(&client)
            .query(
                &sql,
                &[
                    &sql_id(guild_id),
                    &filter.before.map(sql_id),
                    &filter.after.map(sql_id),
                    &filter.user_id.map(sql_id),
                    &filter.action_type.map(i32::from),
                    &limit,
                ],
                "reading an audit log",
            )
            .await?;
        let mut out = rows
            .iter()
            .map(|r| col::<Json<AuditLogEntry>>(r, 0).map(|j| j.0))
            .collect::<StoreResult<Vec<_>>>()?;
        if filter.after.is_some() {
            out.reverse();
        }
        Ok(out)
    }

    async fn get_invite(&self, code: &str) -> StoreResult<Option<InviteRecord>> {
        let client = self.client().await?;
        let row = Db::Conn(&client)
            .query_opt(
                "SELECT record FROM invites WHERE code = $1",
                &[&code],
                "reading an invite",
            )
            .await?;
        Ok(row
            .map(|r| col::<Json<InviteRecord>>(&r, 0))
            .transpose()?
            .map(|j| j.0))
    }
}
