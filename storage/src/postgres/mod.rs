//! The PostgreSQL backend: every store in one PostgreSQL database, shared by the nodes of a
//! cluster.
//!
//! It owns the SQL schema (`storage/migrations/postgres/*.sql`, applied by
//! [`PostgresStore::migrate`]) and keeps the crate's contract: a write is committed, and so
//! durable under the server's `synchronous_commit`, and visible to every later read when its
//! future resolves `Ok`; a write that fails leaves nothing behind because each trait method is
//! one statement or one transaction. The behaviour of every method is the embedded backend's,
//! checked by the same conformance suite.
//!
//! # Schema
//!
//! - **Ids** are snowflakes in `BIGINT` columns: the `u64` bit pattern reinterpreted as `i64`.
//!   Every id round-trips, and real snowflakes (below 2^63 until the year 2084) keep their value
//!   and their order, so the tables read naturally in `psql`. Where an order over arbitrary ids
//!   is part of the contract (reactors of an emoji, the guilds of a user) the backend restores
//!   `u64` order itself; message ids must be below 2^63 and a larger one is refused, because
//!   history order is the primary key's order.
//! - **Messages** follow Discord's ScyllaDB layout: primary key `(channel_id, bucket,
//!   message_id)` with `bucket` = [`crate::bucket_of`]. Because the bucket is a monotonic
//!   function of the id, `(bucket, message_id)` sorts exactly like `message_id` within a
//!   channel, so every history read (`Latest`, `Before`, `After`, each side of `Around`) is one
//!   range scan of the primary key, written as a row comparison `(bucket, message_id) < ($b,
//!   $id)` that PostgreSQL uses as an index bound; no second index on `(channel_id, message_id)`
//!   is needed, and none is paid for on every insert. Walking buckets one query at a time, as
//!   ScyllaDB must, would cost a round trip per empty bucket for nothing here.
//! - **Usernames and emails** are unique through `username_key` / `email_key`, the values
//!   lowercased by the application with Rust's Unicode rules, under unique indexes. A unique
//!   index on `lower(username)` would follow the database's `LC_CTYPE` instead (a C-locale
//!   database folds only ASCII) and could disagree with the embedded store and with itself
//!   across deployments.
//! - Records with many optional or nested fields (users, guilds, roles, channels, members,
//!   bans, invites, webhooks, emojis, private channels) are `JSONB` next to the columns that
//!   queries use; relationships are columns, and so are messages, with `JSONB` only for
//!   attachments, embeds, nonce and reference.
//! - **Private channels** (DMs and group DMs) are units of their own: a row of
//!   `private_channels` keyed by the channel's id, which is also the index `channel_guild`
//!   reads for them. `dm_pairs` keys each DM by its two users, lower id first, so a pair has
//!   one DM; `user_private_channels` lists the ones each user has open.
//! - Unique violations (SQLSTATE 23505) on the username, email, invite-code and DM-pair keys
//!   become [`StoreError::Conflict`] with `"username"`, `"email"`, `"code"` or `"recipients"`,
//!   like the embedded store; so does an invite or DM upsert whose `WHERE` keeps another
//!   holder's row.
//!
//! # Writes of messages: group commit, and a create never replaces
//!
//! Each guild actor awaits its `create_message` before answering the client, so under load
//! many actors wait on a commit at once. [`PostgresStore`] funnels them through one writer task
//! (`batch.rs`) that turns every `create_message` waiting in its queue into one multi-row
//! insert, committed as one transaction: one WAL flush acknowledges the whole batch. Each
//! caller's future resolves after its batch committed, so a message written and then read is
//! there. The insert is `ON CONFLICT DO NOTHING`: a message whose id is already stored is
//! refused (`Conflict("id")`) and the stored one is left as it was, so two nodes that ever
//! minted the same id cannot overwrite each other's acknowledged messages. Edits
//! (`update_message`) are plain updates, and change nothing when the message is gone.
//!
//! # Connections
//!
//! A [deadpool](https://docs.rs/deadpool-postgres) pool of `tokio-postgres` connections; every
//! statement is prepared once per connection (`prepare_cached`). Connecting does not touch the
//! schema: the node calls [`PostgresStore::migrate`] at startup, or `enrichment migrate` does.
//! Connections are plain TCP (no TLS connector is wired yet), so the database belongs on a
//! private network or behind a tunnel.

mod batch;
mod guilds;
mod messages;
mod migrate;
mod nodes;
mod signing_keys;
mod users;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use enrichment_protocol::{Snowflake, Timestamp};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{NoTls, Row};

use crate::{StoreError, StoreResult, Stores};

pub use batch::MessageWriterStats;
pub use migrate::LATEST_SCHEMA_VERSION;

/// Where operators set the database URL, named in connection errors.
const URL_SETTING: &str = "ENRICHMENT_POSTGRES_URL / postgres.url";

/// How to reach and use the database.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Connections in the pool, shared by reads, writes and the message writer.
    pub pool_size: usize,
    /// How long to wait for a new connection (TCP, startup and authentication) before failing.
    pub connect_timeout: Duration,
    /// The most `create_message` calls committed together in one transaction.
    pub message_batch_max: usize,
    /// Message batches committing at once. More than one lets a batch be sent while the
    /// previous one waits for its WAL flush.
    pub message_batches_in_flight: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            message_batch_max: 256,
            message_batches_in_flight: 2,
        }
    }
}

/// Why the store could not be opened or its schema brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The URL does not parse.
    #[error("{URL_SETTING} is not a valid PostgreSQL URL: {0}")]
    InvalidUrl(String),
    /// Nothing answered, or the server refused the connection (authentication, database).
    #[error("cannot connect to PostgreSQL at {target} (set by {URL_SETTING}): {reason}")]
    Unreachable { target: String, reason: String },
    /// The database was migrated by a newer release; running on it could corrupt its data.
    #[error(
        "the database schema is at version {found}, newer than the {known} this release knows: \
         run a release that knows it, or restore a backup"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// A migration failed; its transaction was rolled back.
    #[error("migration {version} ({name}) failed: {reason}")]
    Migration {
        version: i64,
        name: &'static str,
        reason: String,
    },
    /// Anything else the database or the pool reported.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every store on one PostgreSQL database. Cheap to share: wrap it in an [`Arc`] and call
/// [`PostgresStore::stores`].
pub struct PostgresStore {
    pool: Pool,
    writer: batch::MessageWriter,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`).
    ///
    /// Opens one connection before returning, so a wrong URL, a server that is down or refuses
    /// fails here, within `connect_timeout`, with an error naming the setting and the
    /// `host:port` (never the password). Does not create or change any table; see
    /// [`PostgresStore::migrate`]. Must be called inside a tokio runtime, which then runs the
    /// message writer.
    pub async fn connect(
        url: &str,
        options: PostgresOptions,
    ) -> Result<PostgresStore, PostgresError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| PostgresError::InvalidUrl(describe(&e)))?;
        config.connect_timeout(options.connect_timeout);
        let target = target_of(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Backend(format!("PostgreSQL pool: {e}")))?;
        // tokio-postgres bounds each attempt by connect_timeout and the pool bounds the whole
        // creation; the outer bound is the promise made to the caller, whatever the layers do.
        let timeout = options.connect_timeout;
        let no_answer = || format!("no answer within {timeout:?} (connect_timeout)");
        let first = tokio::time::timeout(timeout, pool.get())
            .await
            .map_err(|_| no_answer())
            .and_then(|got| {
                got.map_err(|e| match e {
                    PoolError::Backend(e) => describe(&e),
                    PoolError::Timeout(_) => no_answer(),
                    other => describe(&other),
                })
            });
        if let Err(reason) = first {
            return Err(PostgresError::Unreachable { target, reason });
        }
        let writer = batch::MessageWriter::start(
            pool.clone(),
            options.message_batch_max.max(1),
            options.message_batches_in_flight.max(1),
        );
        Ok(PostgresStore { pool, writer })
    }

    /// Every store, all backed by this one database.
    pub fn stores(self: Arc<Self>) -> Stores {
        Stores {
            users: self.clone(),
            applications: self.clone(),
            guilds: self.clone(),
            messages: self.clone(),
            keys: self.clone(),
            nodes: self.clone(),
            leases: self,
        }
    }

    /// What the group-commit writer of `create_message` has done so far: batches, rows, calls.
    pub fn message_writer_stats(&self) -> MessageWriterStats {
        self.writer.stats()
    }

    /// A pooled connection.
    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("PostgreSQL connection: {}", describe(&e))))
    }
}

/// `host:port` of every host in the URL, for error messages; the password is never part of it.
fn target_of(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let targets: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            // libpq's rule: one port for all hosts, or one per host; 5432 when none is given.
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
            }
        })
        .collect();
    if targets.is_empty() {
        "localhost:5432".to_owned()
    } else {
        targets.join(",")
    }
}

/// An error with its causes: tokio-postgres puts the server's message and the I/O error in the
/// source, and its own `Display` says only "db error" or "error connecting to server".
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Maps a driver error to a [`StoreError`]: unique violations on the indexes that the traits
/// name become conflicts, everything else a backend error saying what was being done.
fn db_error(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| {
        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            let constraint = e.as_db_error().and_then(|d| d.constraint());
            match constraint {
                Some("users_username_key") => return StoreError::Conflict("username"),
                Some("users_email_key") => return StoreError::Conflict("email"),
                Some("invites_pkey") => return StoreError::Conflict("code"),
                Some("dm_pairs_pkey") => return StoreError::Conflict("recipients"),
                _ => {}
            }
        }
        StoreError::Backend(format!("PostgreSQL, {context}: {}", describe(&e)))
    }
}

fn encode_error(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("encode: {e}"))
}

/// A snowflake as stored: its bits as an `i64`.
pub(crate) fn sql_id(id: Snowflake) -> i64 {
    id.get() as i64
}

/// A stored id back as a snowflake.
pub(crate) fn snowflake(v: i64) -> Snowflake {
    Snowflake(v as u64)
}

pub(crate) fn sql_time(t: Timestamp) -> SystemTime {
    let ms = t.unix_ms();
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

pub(crate) fn timestamp(t: SystemTime) -> Timestamp {
    let ms = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    };
    // `from_unix_ms` takes the bits of a u64; the round trip through `as` keeps negative ones.
    Timestamp::from_unix_ms(ms as u64)
}

/// A `u32` field stored in a `BIGINT`.
pub(crate) fn read_u32(v: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} is out of range")))
}

/// Reads column `idx` of `row`; a type mismatch means the row is not what this build wrote.
pub(crate) fn col<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx)
        .map_err(|e| StoreError::Corrupt(format!("column {idx}: {}", describe(&e))))
}

/// What statements run on: a pooled connection, or a transaction on one. Every statement is
/// prepared once per connection and cached there.
pub(crate) enum Db<'a> {
    Conn(&'a deadpool_postgres::Client),
    Tx(&'a deadpool_postgres::Transaction<'a>),
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl Db<'_> {
    async fn prepare(&self, sql: &str) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        match self {
            Db::Conn(c) => c.prepare_cached(sql).await,
            Db::Tx(t) => t.prepare_cached(sql).await,
        }
    }

    /// Runs `sql`, returning the number of rows it changed.
    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &Params<'_>,
        context: &'static str,
    ) -> StoreResult<u64> {
        let stmt = self.prepare(sql).await.map_err(db_error(context))?;
        match self {
            Db::Conn(c) => c.execute(&stmt, params).await,
            Db::Tx(t) => t.execute(&stmt, params).await,
        }
        .map_err(db_error(context))
    }

    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &Params<'_>,
        context: &'static str,
    ) -> StoreResult<Vec<Row>> {
        let stmt = self.prepare(sql).await.map_err(db_error(context))?;
        match self {
            Db::Conn(c) => c.query(&stmt, params).await,
            Db::Tx(t) => t.query(&stmt, params).await,
        }
        .map_err(db_error(context))
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &Params<'_>,
        context: &'static str,
    ) -> StoreResult<Option<Row>> {
        let stmt = self.prepare(sql).await.map_err(db_error(context))?;
        match self {
            Db::Conn(c) => c.query_opt(&stmt, params).await,
            Db::Tx(t) => t.query_opt(&stmt, params).await,
        }
        .map_err(db_error(context))
    }
}
