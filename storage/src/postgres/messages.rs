//! Messages, reactions and pins on PostgreSQL.
//!
//! History reads are single range scans of the `messages` primary key (see the module docs of
//! `postgres` for why no second index is needed). `Around` is one statement with both sides
//! and the anchor, so it reads one snapshot like the embedded store does.
//!
//! Reactions are rows of `reactions`, with per-emoji counts and first-added order in
//! `reaction_emoji`. Adding is one statement (insert the reaction; only if that inserted,
//! count it). Removing decrements under the count row's lock and deletes the row at zero in the
//! same transaction, so a concurrent add either counts on the old row or starts a new one after
//! it, last in order. Bulk removals delete the count rows before the reactions: a reaction
//! whose insert is still uncommitted then either lands in a fresh count row or was already
//! counted in a row being deleted, in which case the second delete sees it committed.
//!
//! Pins keep the message's `pinned` flag and the `pins` index in one transaction; every path
//! that changes a pin first locks the message's row (upsert, update or delete), so a pin check
//! and its write cannot race for the same message. Pin times come from the channel's row in
//! `pin_clocks`, taken on the database's clock, so nodes with skewed clocks still order pins.

use std::collections::HashMap;

use async_trait::async_trait;
use enrichment_protocol::Snowflake;
use enrichment_protocol::models::{Attachment, Embed, MessageReference, Nonce};
use enrichment_protocol::rest::HistoryAnchor;
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use super::batch::MessageRow;
use super::nodes::check_fence;
use super::{Db, PostgresStore, col, db_error, read_u32, snowflake, sql_id, timestamp};
use crate::fence::FencedWrites;
use crate::{
    GuildOwner, GuildWrite, MessageRecord, MessageStore, PinnedMessage, ReactionCount, StoreError,
    StoreResult, WebhookAuthor, bucket_of,
};

/// The columns a [`MessageRecord`] is read from, on the `messages` table aliased `m`.
macro_rules! message_columns {
    () => {
        "m.channel_id, m.message_id, m.guild_id, m.author_id, m.content, m.edited_at, m.tts, \
         m.mention_everyone, m.mentions, m.mention_roles, m.attachments, m.embeds, m.pinned, \
         m.kind, m.flags, m.nonce, m.message_reference, m.webhook"
    };
}

const GET: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages m WHERE m.channel_id = $1 AND m.bucket = $2 AND m.message_id = $3"
);

const LATEST: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages m WHERE m.channel_id = $1
      ORDER BY m.bucket DESC, m.message_id DESC LIMIT $2"
);

const BEFORE: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages m WHERE m.channel_id = $1 AND (m.bucket, m.message_id) < ($2, $3)
      ORDER BY m.bucket DESC, m.message_id DESC LIMIT $4"
);

const AFTER: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages m WHERE m.channel_id = $1 AND (m.bucket, m.message_id) > ($2, $3)
      ORDER BY m.bucket, m.message_id LIMIT $4"
);

/// Newer side (oldest first, up to $4), the anchor, older side (newest first, up to $5), each
/// tagged so the parts can be told apart.
const AROUND: &str = concat!(
    "(SELECT 0::int2, ",
    message_columns!(),
    " FROM messages m WHERE m.channel_id = $1 AND (m.bucket, m.message_id) > ($2, $3)
      ORDER BY m.bucket, m.message_id LIMIT $4)
     UNION ALL
     (SELECT 1::int2, ",
    message_columns!(),
    " FROM messages m WHERE m.channel_id = $1 AND m.bucket = $2 AND m.message_id = $3)
     UNION ALL
     (SELECT 2::int2, ",
    message_columns!(),
    " FROM messages m WHERE m.channel_id = $1 AND (m.bucket, m.message_id) < ($2, $3)
      ORDER BY m.bucket DESC, m.message_id DESC LIMIT $5)"
);

/// The newest message id of each channel in $1 that has one.
const LAST_MESSAGE_IDS: &str = "SELECT c.id, newest.message_id
    FROM unnest($1::bigint[]) AS c(id)
    CROSS JOIN LATERAL (
        SELECT m.message_id FROM messages m WHERE m.channel_id = c.id
        ORDER BY m.bucket DESC, m.message_id DESC LIMIT 1
    ) AS newest";

const LIST_PINS: &str = concat!(
    "SELECT p.pinned_at, ",
    message_columns!(),
    " FROM pins p JOIN messages m ON m.channel_id = p.channel_id AND m.bucket = p.bucket
          AND m.message_id = p.message_id
      WHERE p.channel_id = $1 ORDER BY p.pinned_at DESC"
);

/// Pins ($1 channel, $2 message, $3 bucket) unless already pinned, at max(now, the channel's
/// latest pin + 1 ms) on the database's clock. The caller holds the message row's lock.
pub(super) const PIN_IF_ABSENT: &str = "WITH clock AS (
    INSERT INTO pin_clocks (channel_id, last_pinned_at)
    SELECT $1::bigint, date_trunc('milliseconds', clock_timestamp())
    WHERE NOT EXISTS (SELECT 1 FROM pins WHERE channel_id = $1::bigint AND message_id = $2::bigint)
    ON CONFLICT (channel_id) DO UPDATE SET last_pinned_at =
        GREATEST(excluded.last_pinned_at, pin_clocks.last_pinned_at + interval '1 millisecond')
    RETURNING last_pinned_at
)
INSERT INTO pins (channel_id, message_id, bucket, pinned_at)
SELECT $1::bigint, $2::bigint, $3::int, last_pinned_at FROM clock";

/// Replaces every column of an existing message ($1..$3 its key); the arrays and JSON come as
/// text, like the batch insert's.
const UPDATE: &str = "UPDATE messages SET guild_id = $4, author_id = $5, content = $6,
        edited_at = $7, tts = $8, mention_everyone = $9, mentions = $10::text::bigint[],
        mention_roles = $11::text::bigint[], attachments = $12::text::jsonb,
        embeds = $13::text::jsonb, pinned = $14, kind = $15, flags = $16,
        nonce = $17::text::jsonb, message_reference = $18::text::jsonb,
        webhook = $19::text::jsonb
    WHERE channel_id = $1 AND bucket = $2 AND message_id = $3";

const UNPIN: &str = "DELETE FROM pins WHERE channel_id = $1 AND message_id = $2";

/// Adds a reactor and counts it, in one statement; returns 1 when the reactor was new.
const ADD_REACTION: &str = "WITH added AS (
        INSERT INTO reactions (channel_id, message_id, emoji, user_id)
        VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1
    ), counted AS (
        INSERT INTO reaction_emoji (channel_id, message_id, emoji, count)
        SELECT $1::bigint, $2::bigint, $3::text, 1 FROM added
        ON CONFLICT (channel_id, message_id, emoji)
        DO UPDATE SET count = reaction_emoji.count + 1
    )
    SELECT count(*) FROM added";

const REACTION_COUNTS: &str = "SELECT e.message_id, e.emoji, e.count,
        EXISTS (SELECT 1 FROM reactions r
                WHERE r.channel_id = e.channel_id AND r.message_id = e.message_id
                  AND r.emoji = e.emoji AND r.user_id = $3)
    FROM reaction_emoji e
    WHERE e.channel_id = $1 AND e.message_id = ANY($2)
    ORDER BY e.message_id, e.first_added";

/// The largest id whose `i64` form keeps `u64` order.
const MAX_ORDERED: u64 = i64::MAX as u64;

/// `(bucket, id)` of a message as stored. Ids from 2^63 up are refused: their `i64` form is
/// negative and would sort before every other message of the channel.
pub(super) fn message_key(id: Snowflake) -> StoreResult<(i32, i64)> {
    if id.get() > MAX_ORDERED {
        return Err(StoreError::Backend(format!(
            "message id {id} is beyond the snowflake range this store orders (2^63 - 1)"
        )));
    }
    let bucket = i32::try_from(bucket_of(id))
        .map_err(|_| StoreError::Backend(format!("bucket of message id {id} is out of range")))?;
    Ok((bucket, sql_id(id)))
}

/// The message record in `row`, whose columns are [`message_columns!`] from `at` on.
fn message(row: &Row, at: usize) -> StoreResult<MessageRecord> {
    let ids = |i: usize| -> StoreResult<Vec<Snowflake>> {
        Ok(col::<Vec<i64>>(row, at + i)?
            .into_iter()
            .map(snowflake)
            .collect())
    };
    let kind: i16 = col(row, at + 13)?;
    Ok(MessageRecord {
        channel_id: snowflake(col(row, at)?),
        id: snowflake(col(row, at + 1)?),
        guild_id: col::<Option<i64>>(row, at + 2)?.map(snowflake),
        author_id: snowflake(col(row, at + 3)?),
        content: col(row, at + 4)?,
        edited_timestamp: col::<Option<std::time::SystemTime>>(row, at + 5)?.map(timestamp),
        tts: col(row, at + 6)?,
        mention_everyone: col(row, at + 7)?,
        mentions: ids(8)?,
        mention_roles: ids(9)?,
        attachments: col::<Json<Vec<Attachment>>>(row, at + 10)?.0,
        embeds: col::<Json<Vec<Embed>>>(row, at + 11)?.0,
        pinned: col(row, at + 12)?,
        kind: u8::try_from(kind)
            .map_err(|_| StoreError::Corrupt(format!("message kind {kind} is out of range")))?,
        flags: col::<i64>(row, at + 14)? as u64,
        nonce: col::<Option<Json<Nonce>>>(row, at + 15)?.map(|j| j.0),
        message_reference: col::<Option<Json<MessageReference>>>(row, at + 16)?.map(|j| j.0),
        webhook: col::<Option<Json<WebhookAuthor>>>(row, at + 17)?.map(|j| j.0),
    })
}

fn messages(rows: &[Row]) -> StoreResult<Vec<MessageRecord>> {
    rows.iter().map(|r| message(r, 0)).collect()
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Newest first; see [`MessageStore::list_messages`] and the embedded store's `list`.
async fn list(
    db: &Db<'_>,
    channel: Snowflake,
    anchor: HistoryAnchor,
    limit: usize,
) -> StoreResult<Vec<MessageRecord>> {
    const CONTEXT: &str = "reading message history";
    if limit == 0 {
        return Ok(Vec::new());
    }
    let ch = sql_id(channel);
    // Every stored id is at most MAX_ORDERED, so an anchor above it is past the newest message.
    let beyond = |x: Snowflake| x.get() > MAX_ORDERED;
    match anchor {
        HistoryAnchor::Latest => {
            messages(&db.query(LATEST, &[&ch, &sql_limit(limit)], CONTEXT).await?)
        }
        HistoryAnchor::Before(x) if beyond(x) => {
            messages(&db.query(LATEST, &[&ch, &sql_limit(limit)], CONTEXT).await?)
        }
        HistoryAnchor::Before(x) => {
            let (bucket, id) = message_key(x)?;
            let rows = db
                .query(BEFORE, &[&ch, &bucket, &id, &sql_limit(limit)], CONTEXT)
                .await?;
            messages(&rows)
        }
        HistoryAnchor::After(x) if beyond(x) => Ok(Vec::new()),
        HistoryAnchor::After(x) => {
            // The oldest `limit` after x, which is what paging forward needs.
            let (bucket, id) = message_key(x)?;
            let rows = db
                .query(AFTER, &[&ch, &bucket, &id, &sql_limit(limit)], CONTEXT)
                .await?;
            let mut out = messages(&rows)?;
            out.reverse();
            Ok(out)
        }
        HistoryAnchor::Around(x) if beyond(x) => {
            let rows = db
                .query(LATEST, &[&ch, &sql_limit(limit / 2)], CONTEXT)
                .await?;
            messages(&rows)
        }
        HistoryAnchor::Around(x) => {
            // `limit / 2` older, x if it exists, and newer ones up to what is left but at most
            // `limit / 2`. Whether x exists is only known from the result, so the newer side
            // asks for the larger of its two possible sizes and is cut here.
            let half = limit / 2;
            let (bucket, id) = message_key(x)?;
            let rows = db
                .query(
                    AROUND,
                    &[
                        &ch,
                        &bucket,
                        &id,
                        &sql_limit(limit - half),
                        &sql_limit(half),
                    ],
                    CONTEXT,
                )
                .await?;
            let (mut newer, mut at, mut older) = (Vec::new(), None, Vec::new());
            for row in &rows {
                let record = message(row, 1)?;
                match col::<i16>(row, 0)? {
                    0 => newer.push(record),
                    1 => at = Some(record),
                    _ => older.push(record),
                }
            }
            newer.sort_by_key(|m| m.id);
            newer.truncate(if at.is_some() { limit - 1 - half } else { half });
            newer.reverse();
            older.sort_by_key(|m| std::cmp::Reverse(m.id));
            older.truncate(half);
            newer.extend(at);
            newer.extend(older);
            Ok(newer)
        }
    }
}

/// The writes, each under a fence or none (see [`crate::fence`]).
impl PostgresStore {
    /// One transaction: the update locks the row (the pin paths lock it too), then the pin
    /// index follows `pinned`.
    pub(super) async fn update_message_in(
        &self,
        fence: Option<&GuildOwner>,
        message: &MessageRecord,
    ) -> StoreResult<bool> {
        let context = "updating a message";
        if message_key(message.id).is_err() {
            // Beyond what this store can hold, so not stored.
            return Ok(false);
        }
        let r = MessageRow::new(message)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        check_fence(&db, fence).await?;
        let found = db
            .execute(
                UPDATE,
                &[
                    &r.channel_id,
                    &r.bucket,
                    &r.message_id,
                    &r.guild_id,
                    &r.author_id,
                    &r.content,
                    &r.edited_at,
                    &r.tts,
                    &r.mention_everyone,
                    &r.mentions,
                    &r.mention_roles,
                    &r.attachments,
                    &r.embeds,
                    &r.pinned,
                    &r.kind,
                    &r.flags,
                    &r.nonce,
                    &r.message_reference,
                    &r.webhook,
                ],
                context,
            )
            .await?;
        if found == 0 {
            return Ok(false);
        }
        if r.pinned {
            db.execute(
                PIN_IF_ABSENT,
                &[&r.channel_id, &r.message_id, &r.bucket],
                context,
            )
            .await?;
        } else {
            db.execute(UNPIN, &[&r.channel_id, &r.message_id], context)
                .await?;
        }
        tx.commit().await.map_err(db_error(context))?;
        Ok(true)
    }

    pub(super) async fn delete_messages_in(
        &self,
        fence: Option<&GuildOwner>,
        channel_id: Snowflake,
        ids: &[Snowflake],
    ) -> StoreResult<Vec<Snowflake>> {
        let context = "deleting messages";
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ch = sql_id(channel_id);
        let all: Vec<i64> = ids.iter().map(|id| sql_id(*id)).collect();
        let (buckets, stored): (Vec<i32>, Vec<i64>) =
            ids.iter().filter_map(|id| message_key(*id).ok()).unzip();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        check_fence(&db, fence).await?;
        // The message rows first: every pin path locks them before the pin.
        let deleted = db
            .query(
                "DELETE FROM messages
                 WHERE channel_id = $1 AND bucket = ANY($2) AND message_id = ANY($3)
                 RETURNING message_id",
                &[&ch, &buckets, &stored],
                context,
            )
            .await?;
        db.execute(
            "DELETE FROM pins WHERE channel_id = $1 AND message_id = ANY($2)",
            &[&ch, &all],
            context,
        )
        .await?;
        // Reactions go even without their message: one racing the delete may have landed
        // after it.
        for sql in [
            "DELETE FROM reaction_emoji WHERE channel_id = $1 AND message_id = ANY($2)",
            "DELETE FROM reactions WHERE channel_id = $1 AND message_id = ANY($2)",
        ] {
            db.execute(sql, &[&ch, &all], context).await?;
        }
        tx.commit().await.map_err(db_error(context))?;
        let deleted: Vec<i64> = deleted
            .iter()
            .map(|r| col(r, 0))
            .collect::<StoreResult<_>>()?;
        // In the order asked, each once, like the embedded store.
        let mut out: Vec<Snowflake> = Vec::new();
        for id in ids {
            if deleted.contains(&sql_id(*id)) && !out.contains(id) {
                out.push(*id);
            }
        }
        Ok(out)
    }

    pub(super) async fn delete_channel_in(
        &self,
        fence: Option<&GuildOwner>,
        channel_id: Snowflake,
    ) -> StoreResult<()> {
        let context = "deleting a channel's messages";
        let ch = sql_id(channel_id);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        check_fence(&db, fence).await?;
        for sql in [
            "DELETE FROM messages WHERE channel_id = $1",
            "DELETE FROM pins WHERE channel_id = $1",
            "DELETE FROM pin_clocks WHERE channel_id = $1",
            "DELETE FROM reaction_emoji WHERE channel_id = $1",
            "DELETE FROM reactions WHERE channel_id = $1",
        ] {
            db.execute(sql, &[&ch], context).await?;
        }
        tx.commit().await.map_err(db_error(context))
    }

    pub(super) async fn add_reaction_in(
        &self,
        fence: Option<&GuildOwner>,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        let context = "adding a reaction";
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [
            &sql_id(channel_id),
            &sql_id(message_id),
            &emoji,
            &sql_id(user_id),
        ];
        let mut client = self.client().await?;
        // Unfenced it is one statement; fenced, the check shares its transaction.
        let row = match fence {
            None => {
                Db::Conn(&client)
                    .query_opt(ADD_REACTION, &params, context)
                    .await?
            }
            Some(_) => {
                let tx = client.transaction().await.map_err(db_error(context))?;
                let db = Db::Tx(&tx);
                check_fence(&db, fence).await?;
                let row = db.query_opt(ADD_REACTION, &params, context).await?;
                tx.commit().await.map_err(db_error(context))?;
                row
            }
        };
        Ok(row.map(|r| col::<i64>(&r, 0)).transpose()?.unwrap_or(0) > 0)
    }

    pub(super) async fn remove_reaction_in(
        &self,
        fence: Option<&GuildOwner>,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        let context = "removing a reaction";
        let (ch, m) = (sql_id(channel_id), sql_id(message_id));
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        check_fence(&db, fence).await?;
        let removed = db
            .execute(
                "DELETE FROM reactions
                 WHERE channel_id = $1 AND message_id = $2 AND emoji = $3 AND user_id = $4",
                &[&ch, &m, &emoji, &sql_id(user_id)],
                context,
            )
            .await?;
        if removed == 0 {
            return Ok(false);
        }
        let left = db
            .query_opt(
                "UPDATE reaction_emoji SET count = count - 1
                 WHERE channel_id = $1 AND message_id = $2 AND emoji = $3 RETURNING count",
                &[&ch, &m, &emoji],
                context,
            )
            .await?;
        if left
            .map(|r| col::<i32>(&r, 0))
            .transpose()?
            .is_some_and(|n| n <= 0)
        {
            db.execute(
                "DELETE FROM reaction_emoji
                 WHERE channel_id = $1 AND message_id = $2 AND emoji = $3",
                &[&ch, &m, &emoji],
                context,
            )
            .await?;
        }
        tx.commit().await.map_err(db_error(context))?;
        Ok(true)
    }

    pub(super) async fn remove_reactions_in(
        &self,
        fence: Option<&GuildOwner>,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: Option<&str>,
    ) -> StoreResult<()> {
        let context = "removing reactions";
        let (ch, m) = (sql_id(channel_id), sql_id(message_id));
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        check_fence(&db, fence).await?;
        match emoji {
            None => {
                for sql in [
                    "DELETE FROM reaction_emoji WHERE channel_id = $1 AND message_id = $2",
                    "DELETE FROM reactions WHERE channel_id = $1 AND message_id = $2",
                ] {
                    db.execute(sql, &[&ch, &m], context).await?;
                }
            }
            Some(emoji) => {
                for sql in [
                    "DELETE FROM reaction_emoji
                     WHERE channel_id = $1 AND message_id = $2 AND emoji = $3",
                    "DELETE FROM reactions
                     WHERE channel_id = $1 AND message_id = $2 AND emoji = $3",
                ] {
                    db.execute(sql, &[&ch, &m, &emoji], context).await?;
                }
            }
        }
        tx.commit().await.map_err(db_error(context))
    }

    pub(super) async fn set_pinned_in(
        &self,
        fence: Option<&GuildOwner>,
        channel_id: Snowflake,
        message_id: Snowflake,
        pinned: bool,
    ) -> StoreResult<bool> {
        let context = "pinning a message";
        let Ok((bucket, id)) = message_key(message_id) else {
            return Ok(false);
        };
        let ch = sql_id(channel_id);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        check_fence(&db, fence).await?;
        let found = db
            .execute(
                "UPDATE messages SET pinned = $4
                 WHERE channel_id = $1 AND bucket = $2 AND message_id = $3",
                &[&ch, &bucket, &id, &pinned],
                context,
            )
            .await?;
        if found == 0 {
            return Ok(false);
        }
        if pinned {
            db.execute(PIN_IF_ABSENT, &[&ch, &id, &bucket], context)
                .await?;
        } else {
            db.execute(UNPIN, &[&ch, &id], context).await?;
        }
        tx.commit().await.map_err(db_error(context))?;
        Ok(true)
    }
}

#[async_trait]
impl MessageStore for PostgresStore {
    async fn update_message(&self, message: &MessageRecord) -> StoreResult<bool> {
        self.update_message_in(None, message).await
    }

    async fn delete_messages(
        &self,
        channel_id: Snowflake,
        ids: &[Snowflake],
    ) -> StoreResult<Vec<Snowflake>> {
        self.delete_messages_in(None, channel_id, ids).await
    }

    async fn delete_channel(&self, channel_id: Snowflake) -> StoreResult<()> {
        self.delete_channel_in(None, channel_id).await
    }

    async fn add_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        self.add_reaction_in(None, channel_id, message_id, emoji, user_id)
            .await
    }

    async fn remove_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        self.remove_reaction_in(None, channel_id, message_id, emoji, user_id)
            .await
    }

    async fn remove_reactions(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: Option<&str>,
    ) -> StoreResult<()> {
        self.remove_reactions_in(None, channel_id, message_id, emoji)
            .await
    }

    async fn set_pinned(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        pinned: bool,
    ) -> StoreResult<bool> {
        self.set_pinned_in(None, channel_id, message_id, pinned)
            .await
    }

    /// Goes through the group-commit writer (`batch.rs`); resolves once the batch committed.
    /// Also pins the message when its record says so.
    async fn create_message(&self, message: &MessageRecord) -> StoreResult<()> {
        let row = MessageRow::new(message)?;
        self.writer.create(row, None).await
    }

    async fn get_message(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
    ) -> StoreResult<Option<MessageRecord>> {
        let Ok((bucket, id)) = message_key(message_id) else {
            return Ok(None);
        };
        let client = self.client().await?;
        let row = Db::Conn(&client)
            .query_opt(
                GET,
                &[&sql_id(channel_id), &bucket, &id],
                "reading a message",
            )
            .await?;
        row.map(|r| message(&r, 0)).transpose()
    }

    async fn list_messages(
        &self,
        channel_id: Snowflake,
        anchor: HistoryAnchor,
        limit: usize,
    ) -> StoreResult<Vec<MessageRecord>> {
        let client = self.client().await?;
        list(&Db::Conn(&client), channel_id, anchor, limit).await
    }

    /// One query: per channel, the first entry of a backward scan of its primary-key range.
    async fn last_message_ids(
        &self,
        channel_ids: &[Snowflake],
    ) -> StoreResult<Vec<Option<Snowflake>>> {
        if channel_ids.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<i64> = channel_ids.iter().map(|id| sql_id(*id)).collect();
        let client = self.client().await?;
        let rows = Db::Conn(&client)
            .query(
                LAST_MESSAGE_IDS,
                &[&wanted],
                "reading the newest message ids",
            )
            .await?;
        let mut newest = HashMap::with_capacity(rows.len());
        for row in &rows {
            newest.insert(col::<i64>(row, 0)?, col::<i64>(row, 1)?);
        }
        Ok(wanted
            .iter()
            .map(|c| newest.get(c).copied().map(snowflake))
            .collect())
    }

    /// Ascending as `u64`: ids below 2^63 (stored non-negative) first, then the rest (stored
    /// negative, in order among themselves), each half one range scan of the primary key.
    async fn reaction_users(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        after: Snowflake,
        limit: usize,
    ) -> StoreResult<Vec<Snowflake>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Strictly after `after`: in the low half above it, and in the high half from its
        // successor (from the start of the half when `after` is in the low half).
        let (low_after, high_from) = if after.get() <= MAX_ORDERED {
            (sql_id(after), i64::MIN)
        } else {
            (i64::MAX, sql_id(after).wrapping_add(1))
        };
        let client = self.client().await?;
        let rows = Db::Conn(&client)
            .query(
                "(SELECT 0::int2, user_id FROM reactions
                  WHERE channel_id = $1 AND message_id = $2 AND emoji = $3 AND user_id > $4
                  ORDER BY user_id LIMIT $6)
                 UNION ALL
                 (SELECT 1::int2, user_id FROM reactions
                  WHERE channel_id = $1 AND message_id = $2 AND emoji = $3
                    AND user_id >= $5 AND user_id < 0
                  ORDER BY user_id LIMIT $6)",
                &[
                    &sql_id(channel_id),
                    &sql_id(message_id),
                    &emoji,
                    &low_after,
                    &high_from,
                    &sql_limit(limit),
                ],
                "listing reactors",
            )
            .await?;
        let mut users = rows
            .iter()
            .map(|r| Ok((col::<i16>(r, 0)?, col::<i64>(r, 1)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        users.sort_unstable();
        Ok(users
            .into_iter()
            .take(limit)
            .map(|(_, id)| snowflake(id))
            .collect())
    }

    async fn reaction_counts(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        viewer: Snowflake,
    ) -> StoreResult<Vec<ReactionCount>> {
        let mut many = self
            .reaction_counts_many(channel_id, &[message_id], viewer)
            .await?;
        Ok(many.pop().unwrap_or_default())
    }

    /// One query for the whole page.
    async fn reaction_counts_many(
        &self,
        channel_id: Snowflake,
        message_ids: &[Snowflake],
        viewer: Snowflake,
    ) -> StoreResult<Vec<Vec<ReactionCount>>> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = message_ids.iter().map(|id| sql_id(*id)).collect();
        let client = self.client().await?;
        let rows = Db::Conn(&client)
            .query(
                REACTION_COUNTS,
                &[&sql_id(channel_id), &ids, &sql_id(viewer)],
                "counting reactions",
            )
            .await?;
        let mut by_message: HashMap<i64, Vec<ReactionCount>> = HashMap::new();
        for row in &rows {
            let count = read_u32(i64::from(col::<i32>(row, 2)?), "reaction count")?;
            by_message
                .entry(col(row, 0)?)
                .or_default()
                .push(ReactionCount {
                    emoji: col(row, 1)?,
                    count,
                    me: col(row, 3)?,
                });
        }
        Ok(ids
            .iter()
            .map(|id| by_message.get(id).cloned().unwrap_or_default())
            .collect())
    }

    async fn list_pins(&self, channel_id: Snowflake) -> StoreResult<Vec<PinnedMessage>> {
        let client = self.client().await?;
        let rows = Db::Conn(&client)
            .query(LIST_PINS, &[&sql_id(channel_id)], "listing pins")
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PinnedMessage {
                    pinned_at: timestamp(col(row, 0)?),
                    message: message(row, 1)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl FencedWrites for PostgresStore {
    async fn write_guild_fenced(
        &self,
        fence: &GuildOwner,
        guild_id: Snowflake,
        writes: Vec<GuildWrite>,
    ) -> StoreResult<()> {
        self.write_guild_in(Some(fence), guild_id, writes).await
    }

    async fn create_message_fenced(
        &self,
        fence: &GuildOwner,
        message: &MessageRecord,
    ) -> StoreResult<()> {
        let row = MessageRow::new(message)?;
        self.writer.create(row, Some(fence)).await
    }

    async fn update_message_fenced(
        &self,
        fence: &GuildOwner,
        message: &MessageRecord,
    ) -> StoreResult<bool> {
        self.update_message_in(Some(fence), message).await
    }

    async fn delete_messages_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        ids: &[Snowflake],
    ) -> StoreResult<Vec<Snowflake>> {
        self.delete_messages_in(Some(fence), channel_id, ids).await
    }

    async fn delete_channel_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
    ) -> StoreResult<()> {
        self.delete_channel_in(Some(fence), channel_id).await
    }

    async fn add_reaction_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        self.add_reaction_in(Some(fence), channel_id, message_id, emoji, user_id)
            .await
    }

    async fn remove_reaction_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        self.remove_reaction_in(Some(fence), channel_id, message_id, emoji, user_id)
            .await
    }

    async fn remove_reactions_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: Option<&str>,
    ) -> StoreResult<()> {
        self.remove_reactions_in(Some(fence), channel_id, message_id, emoji)
            .await
    }

    async fn set_pinned_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        message_id: Snowflake,
        pinned: bool,
    ) -> StoreResult<bool> {
        self.set_pinned_in(Some(fence), channel_id, message_id, pinned)
            .await
    }
}
