//! Group commit for `create_message`.
//!
//! Every `create_message` turns its record into a row (so a record that cannot be encoded fails
//! only its own caller) and queues it to one writer task through a bounded channel; a full
//! queue makes callers wait, which is the backpressure. The writer takes every row waiting, up
//! to `message_batch_max`, and commits them as **one** multi-row insert: one statement over
//! arrays (`unnest`), so one plan and one round trip whatever the batch size, and one
//! transaction, so one WAL flush acknowledges every caller in it. While a batch commits, the
//! next one fills up; up to `message_batches_in_flight` batches commit at once, each on its own
//! pooled connection, so a batch can be sent while the previous one waits for its flush.
//!
//! A create never replaces a message: the insert is `ON CONFLICT DO NOTHING` and returns the
//! keys it stored, so a row whose key was already taken (by an earlier batch, a batch committing
//! beside this one, or an earlier row of the same batch) is answered alone with
//! `Conflict("id")` while the others in its batch succeed. Within a batch the first row queued
//! for a key is the one inserted. A caller's future resolves only after its batch committed; a
//! failed batch fails every caller in it, and none of its rows is stored.
//!
//! Rows are sorted by primary key, so every batch takes its index locks in one global order
//! and two batches in flight never deadlock on each other. A batch with a pinned record runs
//! in an explicit transaction that also pins what it inserted, taking the channel's pin clock.
//! A fenced create (a guild owner's, see [`crate::fence`]) carries its ownership record; a batch
//! holding one runs [`FENCED_INSERT`], which share-locks the live records the batch names and
//! inserts a fenced row only under one of them, still in one statement. A row whose fence is
//! not live is answered `Fenced` alone. Edits do not come through here: `update_message` is its own statement
//! (`messages.rs`), because an update must find its row and an insert must not.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use deadpool_postgres::Pool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::messages::{PIN_IF_ABSENT, message_key};
use super::nodes::live_owner;
use super::{Db, col, db_error, describe, encode_error, sql_id, sql_time};
use crate::{GuildOwner, MessageRecord, StoreError, StoreResult};

/// A message as the `messages` table stores it, encoded by its caller.
pub(super) struct MessageRow {
    pub(super) channel_id: i64,
    pub(super) bucket: i32,
    pub(super) message_id: i64,
    pub(super) guild_id: Option<i64>,
    pub(super) author_id: i64,
    pub(super) content: String,
    pub(super) edited_at: Option<SystemTime>,
    pub(super) tts: bool,
    pub(super) mention_everyone: bool,
    /// `BIGINT[]` literals: arrays of arrays cannot go through `unnest`, which flattens them.
    pub(super) mentions: String,
    pub(super) mention_roles: String,
    pub(super) attachments: String,
    pub(super) embeds: String,
    pub(super) pinned: bool,
    pub(super) kind: i16,
    pub(super) flags: i64,
    pub(super) nonce: Option<String>,
    pub(super) message_reference: Option<String>,
    pub(super) webhook: Option<String>,
}

/// `{1,2,3}`, the text form of a `BIGINT[]`.
fn id_array(ids: &[enrichment_protocol::Snowflake]) -> String {
    let parts: Vec<String> = ids.iter().map(|id| sql_id(*id).to_string()).collect();
    format!("{{{}}}", parts.join(","))
}

impl MessageRow {
    pub(super) fn new(m: &MessageRecord) -> StoreResult<MessageRow> {
        let (bucket, message_id) = message_key(m.id)?;
        Ok(MessageRow {
            channel_id: sql_id(m.channel_id),
            bucket,
            message_id,
            guild_id: m.guild_id.map(sql_id),
            author_id: sql_id(m.author_id),
            content: m.content.clone(),
            edited_at: m.edited_timestamp.map(sql_time),
            tts: m.tts,
            mention_everyone: m.mention_everyone,
            mentions: id_array(&m.mentions),
            mention_roles: id_array(&m.mention_roles),
            attachments: json(&m.attachments)?,
            embeds: json(&m.embeds)?,
            pinned: m.pinned,
            kind: i16::from(m.kind),
            flags: m.flags as i64,
            nonce: m.nonce.as_ref().map(json).transpose()?,
            message_reference: m.message_reference.as_ref().map(json).transpose()?,
            webhook: m.webhook.as_ref().map(json).transpose()?,
        })
    }

    pub(super) fn key(&self) -> (i64, i32, i64) {
        (self.channel_id, self.bucket, self.message_id)
    }
}

fn json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(encode_error)
}

/// The insert of a whole batch; returns the keys it stored (the rows whose key was free) and
/// whether each is pinned. Inserts keep the order of the arrays, which the writer sorts.
const INSERT: &str = "INSERT INTO messages (channel_id, bucket, message_id, guild_id, author_id,
        content, edited_at, tts, mention_everyone, mentions, mention_roles, attachments, embeds,
        pinned, kind, flags, nonce, message_reference, webhook)
    SELECT channel_id, bucket, message_id, guild_id, author_id, content, edited_at, tts,
        mention_everyone, mentions::bigint[], mention_roles::bigint[], attachments::jsonb,
        embeds::jsonb, pinned, kind, flags, nonce::jsonb, message_reference::jsonb, webhook::jsonb
    FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[],
        $6::text[], $7::timestamptz[], $8::bool[], $9::bool[], $10::text[], $11::text[],
        $12::text[], $13::text[], $14::bool[], $15::int2[], $16::bigint[], $17::text[],
        $18::text[], $19::text[])
    AS t(channel_id, bucket, message_id, guild_id, author_id, content, edited_at, tts,
        mention_everyone, mentions, mention_roles, attachments, embeds, pinned, kind, flags,
        nonce, message_reference, webhook)
    ON CONFLICT (channel_id, bucket, message_id) DO NOTHING
    RETURNING channel_id, bucket, message_id, pinned";

/// [`INSERT`] for a batch where some rows are fenced (see [`crate::fence`]): `live` share-locks
/// the ownership records the rows name that are live, a fenced row is inserted only when its
/// fence is one of them, and the statement returns the stored keys followed by the live
/// fences (keys `NULL`). One statement still: the check costs no round trip.
const FENCED_INSERT: &str = concat!(
    "WITH live AS (
        SELECT o.guild_id, o.node_id, o.generation, o.epoch
        FROM guild_owners o JOIN id_leases l ON l.pair = o.pair
        WHERE o.guild_id = ANY($20::bigint[]) AND ",
    live_owner!(),
    "
        FOR SHARE OF o
    ), stored AS (
        INSERT INTO messages (channel_id, bucket, message_id, guild_id, author_id,
            content, edited_at, tts, mention_everyone, mentions, mention_roles, attachments,
            embeds, pinned, kind, flags, nonce, message_reference, webhook)
        SELECT channel_id, bucket, message_id, guild_id, author_id, content, edited_at, tts,
            mention_everyone, mentions::bigint[], mention_roles::bigint[], attachments::jsonb,
            embeds::jsonb, pinned, kind, flags, nonce::jsonb, message_reference::jsonb,
            webhook::jsonb
        FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[],
            $6::text[], $7::timestamptz[], $8::bool[], $9::bool[], $10::text[], $11::text[],
            $12::text[], $13::text[], $14::bool[], $15::int2[], $16::bigint[], $17::text[],
            $18::text[], $19::text[], $20::bigint[], $21::text[], $22::bigint[], $23::bigint[])
        AS t(channel_id, bucket, message_id, guild_id, author_id, content, edited_at, tts,
            mention_everyone, mentions, mention_roles, attachments, embeds, pinned, kind, flags,
            nonce, message_reference, webhook, f_guild, f_node, f_generation, f_epoch)
        WHERE t.f_guild IS NULL OR EXISTS (SELECT 1 FROM live w
            WHERE w.guild_id = t.f_guild AND w.node_id = t.f_node
                AND w.generation = t.f_generation AND w.epoch = t.f_epoch)
        ON CONFLICT (channel_id, bucket, message_id) DO NOTHING
        RETURNING channel_id, bucket, message_id, pinned
    )
    SELECT channel_id, bucket, message_id, pinned,
        NULL::bigint, NULL::text, NULL::bigint, NULL::bigint FROM stored
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, guild_id, node_id, generation, epoch FROM live"
);

/// The ownership a row is written under, as [`FENCED_INSERT`] compares it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FenceKey {
    guild_id: i64,
    node_id: String,
    generation: i64,
    epoch: i64,
}

impl FenceKey {
    fn of(owner: &GuildOwner) -> FenceKey {
        FenceKey {
            guild_id: sql_id(owner.guild_id),
            node_id: owner.node.node_id.clone(),
            generation: owner.node.generation.0 as i64,
            epoch: owner.epoch as i64,
        }
    }
}

/// What the writer tells one caller.
#[derive(Clone, Debug)]
enum Answer {
    Stored,
    /// The key was taken; nothing of this caller's row was written.
    Taken,
    /// The row's fence is not the guild's live ownership; nothing of it was written.
    Fenced,
    /// The whole batch failed.
    Failed(String),
}

type Reply = oneshot::Sender<Answer>;

struct Pending {
    row: MessageRow,
    /// `None` for an unfenced write.
    fence: Option<FenceKey>,
    reply: Reply,
}

/// Counters of the writer since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageWriterStats {
    /// Batches committed (each one transaction).
    pub batches: u64,
    /// Rows those batches stored.
    pub rows: u64,
    /// `create_message` calls answered by those batches, refused ones included.
    pub calls: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    rows: AtomicU64,
    calls: AtomicU64,
}

/// The handle callers queue rows on; the writer task ends when it is dropped.
pub(super) struct MessageWriter {
    queue: mpsc::Sender<Pending>,
    counters: Arc<Counters>,
}

impl MessageWriter {
    pub(super) fn start(pool: Pool, batch_max: usize, in_flight: usize) -> MessageWriter {
        // Room for a full batch per slot and one filling: beyond that callers wait.
        let (queue, rx) = mpsc::channel(batch_max.saturating_mul(in_flight + 1));
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(pool, rx, batch_max, in_flight, Arc::clone(&counters)));
        MessageWriter { queue, counters }
    }

    pub(super) fn stats(&self) -> MessageWriterStats {
        MessageWriterStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            rows: self.counters.rows.load(Ordering::Relaxed),
            calls: self.counters.calls.load(Ordering::Relaxed),
        }
    }

    /// Queues `row` and waits until the batch holding it committed; `Conflict("id")` when its
    /// key was already taken, `Fenced` when `fence` is not the guild's live ownership.
    pub(super) async fn create(
        &self,
        row: MessageRow,
        fence: Option<&GuildOwner>,
    ) -> StoreResult<()> {
        let (reply, done) = oneshot::channel();
        let stopped = || StoreError::Backend("the PostgreSQL message writer stopped".into());
        self.queue
            .send(Pending {
                row,
                fence: fence.map(FenceKey::of),
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        match done.await.map_err(|_| stopped())? {
            Answer::Stored => Ok(()),
            Answer::Taken => Err(StoreError::Conflict("id")),
            Answer::Fenced => Err(fence.map_or_else(
                || StoreError::Backend("an unfenced row was fenced".into()),
                crate::fence::deposed,
            )),
            Answer::Failed(e) => Err(StoreError::Backend(e)),
        }
    }
}

async fn run(
    pool: Pool,
    mut rx: mpsc::Receiver<Pending>,
    batch_max: usize,
    in_flight: usize,
    counters: Arc<Counters>,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut batch = Vec::with_capacity(batch_max);
    loop {
        // Take a slot before draining the queue: while every slot commits, rows pile up and the
        // next batch takes them all.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        if rx.recv_many(&mut batch, batch_max).await == 0 {
            return;
        }
        let pending = std::mem::replace(&mut batch, Vec::with_capacity(batch_max));
        let pool = pool.clone();
        let counters = Arc::clone(&counters);
        tokio::spawn(async move {
            match commit(&pool, &pending).await {
                Ok(stored) => {
                    counters.batches.fetch_add(1, Ordering::Relaxed);
                    counters.rows.fetch_add(
                        stored
                            .iter()
                            .filter(|s| matches!(s, Answer::Stored))
                            .count() as u64,
                        Ordering::Relaxed,
                    );
                    counters
                        .calls
                        .fetch_add(pending.len() as u64, Ordering::Relaxed);
                    for (p, answer) in pending.into_iter().zip(stored) {
                        // A caller that went away does not care; its row is committed all the
                        // same.
                        let _ = p.reply.send(answer);
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    tracing::warn!(calls = pending.len(), error = %e, "message batch failed");
                    for p in pending {
                        let _ = p.reply.send(Answer::Failed(e.clone()));
                    }
                }
            }
            drop(slot);
        });
    }
}

/// Column arrays of a batch, in primary key order, one entry per distinct message.
#[derive(Default)]
struct Columns<'a> {
    channel_id: Vec<i64>,
    bucket: Vec<i32>,
    message_id: Vec<i64>,
    guild_id: Vec<Option<i64>>,
    author_id: Vec<i64>,
    content: Vec<&'a str>,
    edited_at: Vec<Option<SystemTime>>,
    tts: Vec<bool>,
    mention_everyone: Vec<bool>,
    mentions: Vec<&'a str>,
    mention_roles: Vec<&'a str>,
    attachments: Vec<&'a str>,
    embeds: Vec<&'a str>,
    pinned: Vec<bool>,
    kind: Vec<i16>,
    flags: Vec<i64>,
    nonce: Vec<Option<&'a str>>,
    message_reference: Vec<Option<&'a str>>,
    webhook: Vec<Option<&'a str>>,
    fence_guild: Vec<Option<i64>>,
    fence_node: Vec<Option<&'a str>>,
    fence_generation: Vec<Option<i64>>,
    fence_epoch: Vec<Option<i64>>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, r: &'a MessageRow, fence: Option<&'a FenceKey>) {
        self.fence_guild.push(fence.map(|f| f.guild_id));
        self.fence_node.push(fence.map(|f| f.node_id.as_str()));
        self.fence_generation.push(fence.map(|f| f.generation));
        self.fence_epoch.push(fence.map(|f| f.epoch));
        self.channel_id.push(r.channel_id);
        self.bucket.push(r.bucket);
        self.message_id.push(r.message_id);
        self.guild_id.push(r.guild_id);
        self.author_id.push(r.author_id);
        self.content.push(&r.content);
        self.edited_at.push(r.edited_at);
        self.tts.push(r.tts);
        self.mention_everyone.push(r.mention_everyone);
        self.mentions.push(&r.mentions);
        self.mention_roles.push(&r.mention_roles);
        self.attachments.push(&r.attachments);
        self.embeds.push(&r.embeds);
        self.pinned.push(r.pinned);
        self.kind.push(r.kind);
        self.flags.push(r.flags);
        self.nonce.push(r.nonce.as_deref());
        self.message_reference.push(r.message_reference.as_deref());
        self.webhook.push(r.webhook.as_deref());
    }
}

/// Commits one batch; returns, per pending call in order, what to answer it.
async fn commit(pool: &Pool, pending: &[Pending]) -> StoreResult<Vec<Answer>> {
    let context = "committing a message batch";
    // The first row queued for a key is the one offered to the table; the map also sorts by
    // primary key.
    let mut rows: BTreeMap<(i64, i32, i64), &Pending> = BTreeMap::new();
    for p in pending {
        rows.entry(p.row.key()).or_insert(p);
    }
    let mut columns = Columns::default();
    for p in rows.values() {
        columns.push(&p.row, p.fence.as_ref());
    }
    let fenced = pending.iter().any(|p| p.fence.is_some());
    let insert = if fenced { FENCED_INSERT } else { INSERT };
    let c = &columns;
    let all: [&(dyn tokio_postgres::types::ToSql + Sync); 23] = [
        &c.channel_id,
        &c.bucket,
        &c.message_id,
        &c.guild_id,
        &c.author_id,
        &c.content,
        &c.edited_at,
        &c.tts,
        &c.mention_everyone,
        &c.mentions,
        &c.mention_roles,
        &c.attachments,
        &c.embeds,
        &c.pinned,
        &c.kind,
        &c.flags,
        &c.nonce,
        &c.message_reference,
        &c.webhook,
        &c.fence_guild,
        &c.fence_node,
        &c.fence_generation,
        &c.fence_epoch,
    ];
    let params = if fenced { &all[..] } else { &all[..19] };
    let mut client = pool
        .get()
        .await
        .map_err(|e| StoreError::Backend(format!("PostgreSQL connection: {}", describe(&e))))?;
    let mut inserted: BTreeSet<(i64, i32, i64)> = BTreeSet::new();
    let mut live: BTreeSet<FenceKey> = BTreeSet::new();
    if !c.pinned.contains(&true) {
        // One statement is one transaction: no BEGIN/COMMIT round trips on the hot path.
        for row in Db::Conn(&client).query(insert, params, context).await? {
            match returned(&row)? {
                Returned::Stored(key, _) => inserted.insert(key),
                Returned::Live(fence) => live.insert(fence),
            };
        }
    } else {
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        let mut to_pin = Vec::new();
        for row in db.query(insert, params, context).await? {
            match returned(&row)? {
                Returned::Stored(key, pinned) => {
                    inserted.insert(key);
                    if pinned {
                        to_pin.push((key.0, key.2, key.1));
                    }
                }
                Returned::Live(fence) => {
                    live.insert(fence);
                }
            }
        }
        // Pin clocks are locked in channel order, like the rows.
        to_pin.sort_unstable();
        for (channel_id, message_id, bucket) in to_pin {
            db.execute(PIN_IF_ABSENT, &[&channel_id, &message_id, &bucket], context)
                .await?;
        }
        tx.commit().await.map_err(db_error(context))?;
    }
    // A key is stored for the first caller that queued it: later callers of the same key, and
    // every caller of a key the table already held, were refused.
    // A fenced row whose fence was not live was never offered: that is its answer.
    let mut answered = BTreeSet::new();
    Ok(pending
        .iter()
        .map(|p| {
            if p.fence.as_ref().is_some_and(|f| !live.contains(f)) {
                Answer::Fenced
            } else if inserted.contains(&p.row.key()) && answered.insert(p.row.key()) {
                Answer::Stored
            } else {
                Answer::Taken
            }
        })
        .collect())
}

/// A row [`INSERT`] or [`FENCED_INSERT`] returned.
enum Returned {
    /// `(channel_id, bucket, message_id)` of a stored row, and whether it is pinned.
    Stored((i64, i32, i64), bool),
    /// A live fence ([`FENCED_INSERT`] only).
    Live(FenceKey),
}

fn returned(row: &tokio_postgres::Row) -> StoreResult<Returned> {
    match col::<Option<i64>>(row, 0)? {
        Some(channel_id) => Ok(Returned::Stored(
            (channel_id, col(row, 1)?, col(row, 2)?),
            col(row, 3)?,
        )),
        None => Ok(Returned::Live(FenceKey {
            guild_id: col(row, 4)?,
            node_id: col(row, 5)?,
            generation: col(row, 6)?,
            epoch: col(row, 7)?,
        })),
    }
}
