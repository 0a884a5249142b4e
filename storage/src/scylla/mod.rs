//! The ScyllaDB store (scylla driver 1.9), for Discord-scale clusters.
//!
//! - Every data statement is prepared once at startup (`Statements`) and runs at the
//!   configured consistency (LOCAL_QUORUM by default); lightweight transactions run at
//!   LOCAL_SERIAL and only where uniqueness must hold: usernames, emails, invite codes, the
//!   DM of a pair of users, refresh-token rotation, snowflake id leases, and every write of a
//!   message row.
//! - A message create is `INSERT ... IF NOT EXISTS`, one lightweight transaction (a Paxos
//!   round, about four round trips instead of one) per message. The id lease each node holds
//!   (`nodes.rs`) is the first guard against two nodes minting the same id; this is the
//!   second, for whatever slips past it (a node that kept minting after its lease ran out, a
//!   clock stepped backwards): a plain insert would silently replace the other node's
//!   acknowledged message. Because ScyllaDB orders lightweight transactions and plain writes
//!   of one row by different clocks, mixing them on a row is unsafe, so edits, pin flags and
//!   deletes of a message are conditional too (`UPDATE ... IF EXISTS`, `DELETE ... IF
//!   EXISTS`). Only a channel's deletion removes its partitions with plain deletes, after
//!   which the channel takes no writes.
//! - Concurrent identical reads of a message or of a history page share one query
//!   (`Coalescer`, the pattern of Discord's data services): a burst of clients opening the
//!   same channel costs the cluster one read.
//! - Guild metadata has a single writer, its guild actor, so the read-then-write steps here
//!   (reaction order, pin times) do not race; a guild batch is one logged batch, with its
//!   writes folded to their final effect first because statements of one batch share a
//!   timestamp.
//!
//! The schema lives in [`schema`] and is applied by [`ScyllaStore::migrate`]
//! (`enrichment migrate`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::response::query_result::QueryResult;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlValue, Row};

use crate::{StoreError, StoreResult, Stores};

mod guilds;
mod messages;
mod nodes;
pub mod schema;
mod users;

/// Single-partition reads a batched read (`get_users`, `last_message_ids`) keeps in flight at
/// once: concurrent partition reads rather than one `IN` query, which one coordinator would
/// have to fan out and wait on in full.
pub(crate) const READ_CONCURRENCY: usize = 64;

/// Replication of a keyspace `enrichment migrate` creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    Simple,
    NetworkTopology,
}

/// Consistency of reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CqlConsistency {
    One,
    LocalOne,
    Quorum,
    LocalQuorum,
    All,
}

impl CqlConsistency {
    fn driver(self) -> Consistency {
        match self {
            CqlConsistency::One => Consistency::One,
            CqlConsistency::LocalOne => Consistency::LocalOne,
            CqlConsistency::Quorum => Consistency::Quorum,
            CqlConsistency::LocalQuorum => Consistency::LocalQuorum,
            CqlConsistency::All => Consistency::All,
        }
    }
}

/// How to reach the cluster and lay out the keyspace.
#[derive(Clone, Debug)]
pub struct ScyllaOptions {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    pub keyspace: String,
    pub replication: Replication,
    pub replication_factor: u32,
    pub consistency: CqlConsistency,
    /// Replicas of this datacenter are preferred.
    pub local_datacenter: Option<String>,
    pub connect_timeout: Duration,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct ScyllaStore {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    keyspace: String,
    st: Option<Statements>,
    /// Buckets known to be listed in `channel_buckets`, so each is written once per process.
    known_buckets: Mutex<std::collections::HashSet<(i64, i32)>>,
    message_reads: Coalescer<(i64, i64), Option<String>>,
    page_reads: Coalescer<(i64, u8, i64, usize), Vec<String>>,
}

impl std::fmt::Debug for ScyllaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaStore")
            .field("keyspace", &self.inner.keyspace)
            .finish_non_exhaustive()
    }
}

pub(crate) fn be(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("scylla: {e}"))
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Snowflakes are stored as `bigint`; every id we generate is below 2^63.
pub(crate) fn big(id: enrichment_protocol::Snowflake) -> i64 {
    id.get() as i64
}

pub(crate) fn sf(v: i64) -> enrichment_protocol::Snowflake {
    enrichment_protocol::Snowflake(v as u64)
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(corrupt)
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(corrupt)
}

/// Whether a lightweight transaction applied. A reply without the `[applied]` column (a
/// server without LWT support, such as the in-memory test server) counts as applied.
pub(crate) fn applied(result: QueryResult) -> StoreResult<bool> {
    if !result.is_rows() {
        return Ok(true);
    }
    let rows = result.into_rows_result().map_err(be)?;
    let row: Option<Row> = rows.maybe_first_row::<Row>().map_err(be)?;
    Ok(
        match row.and_then(|r| r.columns.into_iter().next().flatten()) {
            Some(CqlValue::Boolean(b)) => b,
            _ => true,
        },
    )
}

/// Literals are bound, never written into statements: every value goes through the driver's
/// typed serialisation.
macro_rules! statements {
    ($($name:ident: $lwt:literal = $cql:literal;)*) => {
        /// Every statement the store runs, prepared at startup.
        pub(crate) struct Statements {
            $(pub(crate) $name: PreparedStatement,)*
        }

        impl Statements {
            async fn prepare(session: &Session, ks: &str, consistency: Consistency) -> StoreResult<Statements> {
                Ok(Statements {
                    $($name: prepare(session, &$cql.replace("{ks}", ks), consistency, $lwt).await?,)*
                })
            }
        }
    };
}

statements! {
    // users
    get_user: false = "SELECT data FROM {ks}.users WHERE id = ?";
    put_user: false = "INSERT INTO {ks}.users (id, data) VALUES (?, ?)";
    claim_username: true = "INSERT INTO {ks}.usernames (login, user_id) VALUES (?, ?) IF NOT EXISTS";
    get_username: false = "SELECT user_id FROM {ks}.usernames WHERE login = ?";
    release_username: true = "DELETE FROM {ks}.usernames WHERE login = ? IF user_id = ?";
    claim_email: true = "INSERT INTO {ks}.emails (login, user_id) VALUES (?, ?) IF NOT EXISTS";
    get_email: false = "SELECT user_id FROM {ks}.emails WHERE login = ?";
    release_email: true = "DELETE FROM {ks}.emails WHERE login = ? IF user_id = ?";
    get_credentials: false = "SELECT data FROM {ks}.credentials WHERE user_id = ?";
    put_credentials: false = "INSERT INTO {ks}.credentials (user_id, data) VALUES (?, ?)";
    put_refresh: false = "INSERT INTO {ks}.refresh_tokens (token_hash, family_id, user_id, expires_at, spent) VALUES (?, ?, ?, ?, ?)";
    get_refresh: false = "SELECT family_id, user_id, expires_at, spent FROM {ks}.refresh_tokens WHERE token_hash = ?";
    spend_refresh: true = "UPDATE {ks}.refresh_tokens SET spent = ? WHERE token_hash = ? IF spent = ?";
    revoke_family: false = "INSERT INTO {ks}.revoked_families (family_id) VALUES (?)";
    get_revoked: false = "SELECT family_id FROM {ks}.revoked_families WHERE family_id = ?";
    put_user_family: false = "INSERT INTO {ks}.user_refresh_families (user_id, family_id) VALUES (?, ?)";
    list_user_families: false = "SELECT family_id FROM {ks}.user_refresh_families WHERE user_id = ?";
    // applications
    put_app: false = "INSERT INTO {ks}.applications (id, data) VALUES (?, ?)";
    get_app: false = "SELECT data FROM {ks}.applications WHERE id = ?";
    put_app_by_bot: false = "INSERT INTO {ks}.applications_by_bot (bot_user_id, app_id) VALUES (?, ?)";
    get_app_by_bot: false = "SELECT app_id FROM {ks}.applications_by_bot WHERE bot_user_id = ?";
    put_bot_token: false = "INSERT INTO {ks}.bot_tokens (token_hash, bot_user_id) VALUES (?, ?)";
    del_bot_token: false = "DELETE FROM {ks}.bot_tokens WHERE token_hash = ?";
    get_bot_token: false = "SELECT bot_user_id FROM {ks}.bot_tokens WHERE token_hash = ?";
    put_bot_token_of: false = "INSERT INTO {ks}.bot_token_of (bot_user_id, token_hash) VALUES (?, ?)";
    get_bot_token_of: false = "SELECT token_hash FROM {ks}.bot_token_of WHERE bot_user_id = ?";
    // relationships
    put_relationship: false = "INSERT INTO {ks}.relationships (user_id, target_id, data) VALUES (?, ?, ?)";
    get_relationship: false = "SELECT target_id FROM {ks}.relationships WHERE user_id = ? AND target_id = ?";
    del_relationship: false = "DELETE FROM {ks}.relationships WHERE user_id = ? AND target_id = ?";
    list_relationships: false = "SELECT data FROM {ks}.relationships WHERE user_id = ?";
    // guilds
    get_guild: false = "SELECT data FROM {ks}.guilds WHERE guild_id = ?";
    put_guild: false = "INSERT INTO {ks}.guilds (guild_id, data) VALUES (?, ?)";
    del_guild: false = "DELETE FROM {ks}.guilds WHERE guild_id = ?";
    list_roles: false = "SELECT data FROM {ks}.guild_roles WHERE guild_id = ?";
    put_role: false = "INSERT INTO {ks}.guild_roles (guild_id, role_id, data) VALUES (?, ?, ?)";
    del_role: false = "DELETE FROM {ks}.guild_roles WHERE guild_id = ? AND role_id = ?";
    del_roles: false = "DELETE FROM {ks}.guild_roles WHERE guild_id = ?";
    list_channels: false = "SELECT data FROM {ks}.guild_channels WHERE guild_id = ?";
    put_channel: false = "INSERT INTO {ks}.guild_channels (guild_id, channel_id, data) VALUES (?, ?, ?)";
    del_channel: false = "DELETE FROM {ks}.guild_channels WHERE guild_id = ? AND channel_id = ?";
    del_channels: false = "DELETE FROM {ks}.guild_channels WHERE guild_id = ?";
    put_channel_guild: false = "INSERT INTO {ks}.channel_guild (channel_id, guild_id) VALUES (?, ?)";
    del_channel_guild: false = "DELETE FROM {ks}.channel_guild WHERE channel_id = ?";
    get_channel_guild: false = "SELECT guild_id FROM {ks}.channel_guild WHERE channel_id = ?";
    list_members: false = "SELECT data FROM {ks}.guild_members WHERE guild_id = ?";
    put_member: false = "INSERT INTO {ks}.guild_members (guild_id, user_id, data) VALUES (?, ?, ?)";
    del_member: false = "DELETE FROM {ks}.guild_members WHERE guild_id = ? AND user_id = ?";
    del_members: false = "DELETE FROM {ks}.guild_members WHERE guild_id = ?";
    put_user_guild: false = "INSERT INTO {ks}.user_guilds (user_id, guild_id) VALUES (?, ?)";
    del_user_guild: false = "DELETE FROM {ks}.user_guilds WHERE user_id = ? AND guild_id = ?";
    list_user_guilds: false = "SELECT guild_id FROM {ks}.user_guilds WHERE user_id = ?";
    list_bans: false = "SELECT data FROM {ks}.guild_bans WHERE guild_id = ?";
    put_ban: false = "INSERT INTO {ks}.guild_bans (guild_id, user_id, data) VALUES (?, ?, ?)";
    del_ban: false = "DELETE FROM {ks}.guild_bans WHERE guild_id = ? AND user_id = ?";
    del_bans: false = "DELETE FROM {ks}.guild_bans WHERE guild_id = ?";
    list_webhooks: false = "SELECT data FROM {ks}.guild_webhooks WHERE guild_id = ?";
    put_webhook: false = "INSERT INTO {ks}.guild_webhooks (guild_id, webhook_id, data) VALUES (?, ?, ?)";
    del_webhook: false = "DELETE FROM {ks}.guild_webhooks WHERE guild_id = ? AND webhook_id = ?";
    del_webhooks: false = "DELETE FROM {ks}.guild_webhooks WHERE guild_id = ?";
    put_webhook_guild: false = "INSERT INTO {ks}.webhook_guild (webhook_id, guild_id) VALUES (?, ?)";
    del_webhook_guild: false = "DELETE FROM {ks}.webhook_guild WHERE webhook_id = ?";
    get_webhook_guild: false = "SELECT guild_id FROM {ks}.webhook_guild WHERE webhook_id = ?";
    list_guild_emojis: false = "SELECT data FROM {ks}.guild_emojis WHERE guild_id = ?";
    put_guild_emoji: false = "INSERT INTO {ks}.guild_emojis (guild_id, emoji_id, data) VALUES (?, ?, ?)";
    del_guild_emoji: false = "DELETE FROM {ks}.guild_emojis WHERE guild_id = ? AND emoji_id = ?";
    del_guild_emojis: false = "DELETE FROM {ks}.guild_emojis WHERE guild_id = ?";
    get_private: false = "SELECT data FROM {ks}.private_channels WHERE channel_id = ?";
    put_private: false = "INSERT INTO {ks}.private_channels (channel_id, data) VALUES (?, ?)";
    list_user_private: false = "SELECT channel_id FROM {ks}.user_private_channels WHERE user_id = ?";
    put_user_private: false = "INSERT INTO {ks}.user_private_channels (user_id, channel_id) VALUES (?, ?)";
    del_user_private: false = "DELETE FROM {ks}.user_private_channels WHERE user_id = ? AND channel_id = ?";
    claim_dm_pair: true = "INSERT INTO {ks}.dm_pairs (low_user_id, high_user_id, channel_id, claimed_at) VALUES (?, ?, ?, ?) IF NOT EXISTS";
    take_dm_pair: true = "UPDATE {ks}.dm_pairs SET channel_id = ?, claimed_at = ? WHERE low_user_id = ? AND high_user_id = ? IF channel_id = ?";
    release_dm_pair: true = "DELETE FROM {ks}.dm_pairs WHERE low_user_id = ? AND high_user_id = ? IF channel_id = ?";
    get_dm_pair: false = "SELECT channel_id, claimed_at FROM {ks}.dm_pairs WHERE low_user_id = ? AND high_user_id = ?";
    put_audit: false = "INSERT INTO {ks}.audit_log (guild_id, entry_id, data) VALUES (?, ?, ?)";
    del_audit: false = "DELETE FROM {ks}.audit_log WHERE guild_id = ?";
    list_audit_desc: false = "SELECT data FROM {ks}.audit_log WHERE guild_id = ? AND entry_id >= ? AND entry_id <= ?";
    list_audit_asc: false = "SELECT data FROM {ks}.audit_log WHERE guild_id = ? AND entry_id >= ? AND entry_id <= ? ORDER BY entry_id ASC";
    list_guild_invites: false = "SELECT data FROM {ks}.guild_invites WHERE guild_id = ?";
    put_guild_invite: false = "INSERT INTO {ks}.guild_invites (guild_id, code, data) VALUES (?, ?, ?)";
    del_guild_invite: false = "DELETE FROM {ks}.guild_invites WHERE guild_id = ? AND code = ?";
    del_guild_invites: false = "DELETE FROM {ks}.guild_invites WHERE guild_id = ?";
    claim_invite: true = "INSERT INTO {ks}.invites (code, guild_id, data) VALUES (?, ?, ?) IF NOT EXISTS";
    release_invite: true = "DELETE FROM {ks}.invites WHERE code = ? IF guild_id = ?";
    put_invite: false = "INSERT INTO {ks}.invites (code, guild_id, data) VALUES (?, ?, ?)";
    del_invite: false = "DELETE FROM {ks}.invites WHERE code = ?";
    get_invite: false = "SELECT guild_id, data FROM {ks}.invites WHERE code = ?";
    // messages
    create_message: true = "INSERT INTO {ks}.messages (channel_id, bucket, message_id, data) VALUES (?, ?, ?, ?) IF NOT EXISTS";
    update_message: true = "UPDATE {ks}.messages SET data = ? WHERE channel_id = ? AND bucket = ? AND message_id = ? IF EXISTS";
    get_message: false = "SELECT data FROM {ks}.messages WHERE channel_id = ? AND bucket = ? AND message_id = ?";
    del_message: true = "DELETE FROM {ks}.messages WHERE channel_id = ? AND bucket = ? AND message_id = ? IF EXISTS";
    del_bucket: false = "DELETE FROM {ks}.messages WHERE channel_id = ? AND bucket = ?";
    bucket_head: false = "SELECT data FROM {ks}.messages WHERE channel_id = ? AND bucket = ?";
    bucket_ids: false = "SELECT message_id FROM {ks}.messages WHERE channel_id = ? AND bucket = ?";
    bucket_before: false = "SELECT data FROM {ks}.messages WHERE channel_id = ? AND bucket = ? AND message_id < ?";
    bucket_after: false = "SELECT data FROM {ks}.messages WHERE channel_id = ? AND bucket = ? AND message_id > ? ORDER BY message_id ASC";
    put_bucket: false = "INSERT INTO {ks}.channel_buckets (channel_id, bucket) VALUES (?, ?)";
    list_buckets: false = "SELECT bucket FROM {ks}.channel_buckets WHERE channel_id = ?";
    del_buckets: false = "DELETE FROM {ks}.channel_buckets WHERE channel_id = ?";
    // reactions
    get_reaction: false = "SELECT user_id FROM {ks}.reactions WHERE channel_id = ? AND message_id = ? AND emoji = ? AND user_id = ?";
    put_reaction: false = "INSERT INTO {ks}.reactions (channel_id, message_id, emoji, user_id) VALUES (?, ?, ?, ?)";
    del_reaction: false = "DELETE FROM {ks}.reactions WHERE channel_id = ? AND message_id = ? AND emoji = ? AND user_id = ?";
    del_emoji_reactions: false = "DELETE FROM {ks}.reactions WHERE channel_id = ? AND message_id = ? AND emoji = ?";
    del_reactions: false = "DELETE FROM {ks}.reactions WHERE channel_id = ? AND message_id = ?";
    any_reaction: false = "SELECT user_id FROM {ks}.reactions WHERE channel_id = ? AND message_id = ? AND emoji = ? LIMIT 1";
    reaction_users: false = "SELECT user_id FROM {ks}.reactions WHERE channel_id = ? AND message_id = ? AND emoji = ? AND user_id > ?";
    all_reactions: false = "SELECT emoji, user_id FROM {ks}.reactions WHERE channel_id = ? AND message_id = ?";
    list_emojis: false = "SELECT emoji, seq FROM {ks}.reaction_emojis WHERE channel_id = ? AND message_id = ?";
    put_emoji: false = "INSERT INTO {ks}.reaction_emojis (channel_id, message_id, emoji, seq) VALUES (?, ?, ?, ?)";
    del_emoji: false = "DELETE FROM {ks}.reaction_emojis WHERE channel_id = ? AND message_id = ? AND emoji = ?";
    del_emojis: false = "DELETE FROM {ks}.reaction_emojis WHERE channel_id = ? AND message_id = ?";
    // pins
    latest_pin: false = "SELECT pinned_at FROM {ks}.pins WHERE channel_id = ? LIMIT 1";
    list_pins: false = "SELECT pinned_at, message_id FROM {ks}.pins WHERE channel_id = ?";
    put_pin: false = "INSERT INTO {ks}.pins (channel_id, pinned_at, message_id) VALUES (?, ?, ?)";
    del_pin: false = "DELETE FROM {ks}.pins WHERE channel_id = ? AND pinned_at = ? AND message_id = ?";
    del_pins: false = "DELETE FROM {ks}.pins WHERE channel_id = ?";
    get_pin_of: false = "SELECT pinned_at FROM {ks}.pin_of WHERE channel_id = ? AND message_id = ?";
    put_pin_of: false = "INSERT INTO {ks}.pin_of (channel_id, message_id, pinned_at) VALUES (?, ?, ?)";
    del_pin_of: false = "DELETE FROM {ks}.pin_of WHERE channel_id = ? AND message_id = ?";
    del_pins_of: false = "DELETE FROM {ks}.pin_of WHERE channel_id = ?";
    // signing keys
    list_keys: false = "SELECT kid, private_pem, created_at, retired FROM {ks}.signing_keys WHERE scope = ?";
    insert_key: true = "INSERT INTO {ks}.signing_keys (scope, kid, private_pem, created_at, retired) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS";
    retire_key: true = "UPDATE {ks}.signing_keys SET retired = ? WHERE scope = ? AND kid = ? IF EXISTS";
    remove_key: true = "DELETE FROM {ks}.signing_keys WHERE scope = ? AND kid = ? IF EXISTS";
    // snowflake id leases
    list_leases: false = "SELECT pair FROM {ks}.id_leases";
    get_lease: false = "SELECT node_id, generation, expires_at FROM {ks}.id_leases WHERE pair = ?";
    claim_lease: true = "INSERT INTO {ks}.id_leases (pair, node_id, generation, expires_at) VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ?";
    renew_lease: true = "UPDATE {ks}.id_leases USING TTL ? SET node_id = ?, generation = ?, expires_at = ? WHERE pair = ? IF node_id = ? AND generation = ?";
    release_lease: true = "DELETE FROM {ks}.id_leases WHERE pair = ? IF node_id = ? AND generation = ?";
    // guild ownership
    get_owner: false = "SELECT node_id, generation, pair, epoch, released FROM {ks}.guild_owners WHERE guild_id = ?";
    first_owner: true = "INSERT INTO {ks}.guild_owners (guild_id, node_id, generation, pair, epoch, released) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS";
    take_over: true = "UPDATE {ks}.guild_owners SET node_id = ?, generation = ?, pair = ?, epoch = ?, released = ? WHERE guild_id = ? IF epoch = ?";
    release_owner: true = "UPDATE {ks}.guild_owners SET released = ? WHERE guild_id = ? IF node_id = ? AND generation = ? AND epoch = ? AND released = ?";
    list_owned: false = "SELECT guild_id FROM {ks}.guilds_by_owner WHERE node_id = ? AND generation = ?";
    put_owned: false = "INSERT INTO {ks}.guilds_by_owner (node_id, generation, guild_id) VALUES (?, ?, ?)";
    del_owned: false = "DELETE FROM {ks}.guilds_by_owner WHERE node_id = ? AND generation = ? AND guild_id = ?";
}

async fn prepare(
    session: &Session,
    cql: &str,
    consistency: Consistency,
    lwt: bool,
) -> StoreResult<PreparedStatement> {
    let mut p = session
        .prepare(cql)
        .await
        .map_err(|e| StoreError::Backend(format!("scylla: preparing {cql:?}: {e}")))?;
    p.set_consistency(consistency);
    if lwt {
        p.set_serial_consistency(Some(SerialConsistency::LocalSerial));
    } else {
        p.set_is_idempotent(true);
    }
    Ok(p)
}

/// Concurrent calls with the same key share one execution of the first caller's future.
pub(crate) struct Coalescer<K, V: Clone> {
    inflight: Mutex<HashMap<K, SharedRead<V>>>,
}

/// A read in flight that several callers await.
type SharedRead<V> = Shared<BoxFuture<'static, Result<V, String>>>;

impl<K: Eq + Hash + Clone, V: Clone> Coalescer<K, V> {
    /// Detaches in-flight reads matching `stale`: a read that starts after a write must
    /// not join one that started before it.
    pub(crate) fn forget(&self, stale: impl Fn(&K) -> bool) {
        if let Ok(mut map) = self.inflight.lock() {
            map.retain(|k, _| !stale(k));
        }
    }

    fn new() -> Self {
        Coalescer {
            inflight: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn run(
        &self,
        key: K,
        make: impl FnOnce() -> BoxFuture<'static, Result<V, String>>,
    ) -> StoreResult<V> {
        let fut = {
            let mut map = self.inflight.lock().map_err(|_| be("coalescer poisoned"))?;
            map.entry(key.clone())
                .or_insert_with(|| make().shared())
                .clone()
        };
        let out = fut.clone().await;
        if let Ok(mut map) = self.inflight.lock()
            && map.get(&key).is_some_and(|f| f.ptr_eq(&fut))
        {
            map.remove(&key);
        }
        out.map_err(StoreError::Backend)
    }
}

impl ScyllaStore {
    /// Connects to the cluster, naming the setting when it cannot. With `prepare` the data
    /// statements are prepared too, which needs the schema ([`ScyllaStore::migrate`]).
    async fn open_session(options: &ScyllaOptions) -> StoreResult<Session> {
        let consistency = options.consistency.driver();
        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &options.local_datacenter {
            policy = policy.prefer_datacenter(dc.clone());
        }
        let profile = ExecutionProfile::builder()
            .consistency(consistency)
            .serial_consistency(Some(SerialConsistency::LocalSerial))
            .load_balancing_policy(policy.build())
            .build();
        let builder = SessionBuilder::new()
            .known_nodes(&options.nodes)
            .connection_timeout(options.connect_timeout)
            .default_execution_profile_handle(profile.into_handle())
            // Migrations wait for schema agreement themselves, once, after all their DDL.
            .auto_await_schema_agreement(false);
        let build = builder.build();
        tokio::time::timeout(options.connect_timeout * 2, build)
            .await
            .map_err(|_| {
                StoreError::Backend(format!(
                    "cannot reach ScyllaDB at {} (scylla.nodes / ENRICHMENT_SCYLLA_NODES): no answer within {:?}",
                    options.nodes.join(","),
                    options.connect_timeout * 2
                ))
            })?
            .map_err(|e| {
                StoreError::Backend(format!(
                    "cannot reach ScyllaDB at {} (scylla.nodes / ENRICHMENT_SCYLLA_NODES): {e}",
                    options.nodes.join(",")
                ))
            })
    }

    /// Connects and prepares every statement. The keyspace and its tables must exist
    /// ([`ScyllaStore::migrate`] creates them).
    pub async fn connect(options: ScyllaOptions) -> StoreResult<ScyllaStore> {
        let session = Self::open_session(&options).await?;
        let st = Statements::prepare(
            &session,
            &options.keyspace,
            options.consistency.driver(),
        )
        .await
        .map_err(|e| {
            StoreError::Backend(format!(
                "{e} (is the schema applied? run `enrichment migrate` with storage = \"scylla\")"
            ))
        })?;
        Ok(ScyllaStore {
            inner: Arc::new(Inner {
                session,
                keyspace: options.keyspace.clone(),
                st: Some(st),
                known_buckets: Mutex::new(std::collections::HashSet::new()),
                message_reads: Coalescer::new(),
                page_reads: Coalescer::new(),
            }),
        })
    }

    /// Creates the keyspace (with the configured replication) and every table, waits for the
    /// cluster to agree on the schema, and records the version. Safe to run again and from
    /// several nodes: every statement is `IF NOT EXISTS`. Returns the schema version.
    pub async fn migrate(options: &ScyllaOptions) -> StoreResult<i32> {
        let session = Self::open_session(options).await?;
        let ks = &options.keyspace;
        let rf = options.replication_factor.max(1);
        let replication = match options.replication {
            Replication::Simple => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}")
            }
            Replication::NetworkTopology => match &options.local_datacenter {
                Some(dc) => format!("{{'class': 'NetworkTopologyStrategy', '{dc}': {rf}}}"),
                None => {
                    format!("{{'class': 'NetworkTopologyStrategy', 'replication_factor': {rf}}}")
                }
            },
        };
        let mut ddl = vec![format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {replication}"
        )];
        ddl.extend(schema::TABLES.iter().map(|t| t.replace("{ks}", ks)));
        for statement in &ddl {
            session
                .query_unpaged(statement.as_str(), ())
                .await
                .map_err(|e| be(format!("{statement}: {e}")))?;
        }
        if let Err(e) = session.await_schema_agreement().await {
            tracing::warn!(error = %e, "ScyllaDB schema agreement not confirmed after migration");
        }
        let record = session
            .prepare(format!(
                "INSERT INTO {ks}.schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"
            ))
            .await
            .map_err(be)?;
        let now = enrichment_protocol::Timestamp::now().unix_ms();
        session
            .execute_unpaged(&record, (schema::VERSION, schema::DESCRIPTION, now))
            .await
            .map_err(be)?;
        Ok(schema::VERSION)
    }

    /// The stores a node runs on.
    pub fn stores(&self) -> Stores {
        let s = Arc::new(self.clone());
        Stores {
            users: s.clone(),
            applications: s.clone(),
            guilds: s.clone(),
            messages: s.clone(),
            keys: s.clone(),
            nodes: s.clone(),
            leases: s,
        }
    }

    pub(crate) fn st(&self) -> StoreResult<&Statements> {
        self.inner
            .st
            .as_ref()
            .ok_or_else(|| be("statements are not prepared"))
    }

    pub(crate) fn session(&self) -> &Session {
        &self.inner.session
    }

    /// Runs a prepared statement and returns its result.
    pub(crate) async fn exec(
        &self,
        st: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> StoreResult<QueryResult> {
        self.inner
            .session
            .execute_unpaged(st, values)
            .await
            .map_err(be)
    }

    /// The first row of a query, if any.
    pub(crate) async fn one<R>(
        &self,
        st: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> StoreResult<Option<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        let r = self.exec(st, values).await?;
        let rows = r.into_rows_result().map_err(be)?;
        rows.maybe_first_row::<R>().map_err(be)
    }

    /// The first `n` rows of a query. Pages of `n` rows stand in for `LIMIT ?`: the server may
    /// end a page early, so pages are read until `n` rows arrived or the rows ran out.
    pub(crate) async fn first<R>(
        &self,
        st: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
        n: usize,
    ) -> StoreResult<Vec<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        use scylla::response::{PagingState, PagingStateResponse};
        let mut out = Vec::new();
        if n == 0 {
            return Ok(out);
        }
        let mut st = st.clone();
        st.set_page_size(i32::try_from(n).unwrap_or(i32::MAX));
        let mut paging = PagingState::start();
        loop {
            let (result, next) = self
                .inner
                .session
                .execute_single_page(&st, &values, paging)
                .await
                .map_err(be)?;
            let rows = result.into_rows_result().map_err(be)?;
            for row in rows.rows::<R>().map_err(be)? {
                out.push(row.map_err(be)?);
            }
            match next {
                PagingStateResponse::HasMorePages { state } if out.len() < n => paging = state,
                _ => break,
            }
        }
        out.truncate(n);
        Ok(out)
    }

    /// Every row of a query, paging through large partitions.
    pub(crate) async fn all<R>(
        &self,
        st: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> StoreResult<Vec<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm> + 'static,
    {
        use futures::TryStreamExt;
        let pager = self
            .inner
            .session
            .execute_iter(st.clone(), values)
            .await
            .map_err(be)?;
        pager
            .rows_stream::<R>()
            .map_err(be)?
            .try_collect()
            .await
            .map_err(be)
    }
}
