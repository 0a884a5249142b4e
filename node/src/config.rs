//! The node's configuration: one typed struct, [`Config`], with its defaults and the checks
//! of its values. Where the values come from (defaults, TOML file, `ENRICHMENT_*` environment
//! variables, flags, each overriding the one before) is [`load`]'s business.
//!
//! Defaults are written once: sections that a library struct owns are that struct
//! (`[guilds]` is the guild actors' [`GuildLimits`]), and the `[gateway]` section takes its
//! protocol defaults from the actors' gateway config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use enrichment_actors::gateway::{GatewayConfig as ProtocolConfig, IdentifyLimits, SessionLimits};
use enrichment_actors::guild::GuildLimits;
use enrichment_actors::users::UserCacheLimits;
use enrichment_cluster::ClusterConfig;
use enrichment_protocol::IdPair;
use serde::{Deserialize, Serialize};

pub mod load;

pub use load::{Overrides, Sources};

/// Bounds of `id_lease_secs`: renewals every third of it must leave time to retry, and a
/// killed node's pair should come free within the hour.
pub const MIN_ID_LEASE_SECS: u64 = 3;
pub const MAX_ID_LEASE_SECS: u64 = 3600;

/// Everything a node needs to run. Defaults suit a single node on a laptop.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// REST listener.
    pub listen: SocketAddr,
    /// Where the embedded store, JWT keys and other local state live.
    pub data_dir: PathBuf,
    /// Where the WebSocket gateway listens (its own listener, as Discord's is).
    pub gateway_listen: SocketAddr,
    /// The WebSocket URL `GET /gateway` returns; `ws://{gateway_listen}` when unset.
    pub gateway_url: Option<String>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// This node's name in the cluster (admin API, ring): letters, digits, `-`, `_`, `.`, at
    /// most 64. Unset: generated once (`node-` and 8 hex digits) and kept in `{data_dir}/node-id`.
    pub node_id: Option<String>,
    /// Bearer token of the admin API (`/admin/v1`), at least 16 characters. Unset: generated
    /// once (32 random bytes, hex) into `{data_dir}/admin-token` with mode 0600.
    pub admin_token: Option<Secret>,
    /// Snowflake worker and process ids (0 to 31 each). On the embedded store the node mints
    /// with them (0 when unset). On a shared store, setting either makes the node claim exactly
    /// that pair (the other id 0) and refuse to start while a live node holds it; leaving both
    /// unset (the default) claims any free pair.
    pub worker_id: Option<u8>,
    pub process_id: Option<u8>,
    /// On a shared store, how long the lease on the node's id pair lasts; the node renews it
    /// every third of this, and stops (fail-stop) when it cannot renew in time. A killed
    /// node's pair is free for others this long after its last renewal.
    pub id_lease_secs: u64,
    /// HTTP worker threads; 0 means one per core.
    pub http_workers: usize,
    /// Connections the REST and gateway listeners queue before they are accepted (the kernel
    /// caps it at `net.core.somaxconn`). Deep enough for a reconnect storm: a SYN dropped
    /// from a full queue is retried only after the client's 1-s retransmission timeout.
    pub listen_backlog: u32,
    /// Largest accepted JSON body, in bytes.
    pub max_json_bytes: usize,
    /// Where guilds, users and messages live: `embedded` (fjall in `data_dir`, one node),
    /// `postgres` or `scylla` (shared by every node of a cluster).
    pub storage: StorageKind,
    /// Where attachment bytes live: `fs` (files under `data_dir/blobs`) or `s3`.
    pub blobs: BlobKind,
    pub auth: AuthConfig,
    pub rate_limits: RateLimitConfig,
    /// The guild actors' limits and timings: their own struct, so its defaults are the only ones.
    pub guilds: GuildLimits,
    pub users: UsersConfig,
    pub gateway: GatewayConfig,
    pub postgres: PostgresConfig,
    pub scylla: ScyllaConfig,
    pub redis: RedisConfig,
    pub s3: S3Config,
    pub attachments: AttachmentConfig,
    /// Membership of a cluster of nodes (gossip address, seeds, secret, failure detection).
    /// Off by default; on, it needs a shared store, Redis and S3 blobs.
    pub cluster: ClusterConfig,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    #[default]
    Embedded,
    Postgres,
    Scylla,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    #[default]
    Fs,
    S3,
}

impl StorageKind {
    pub fn name(self) -> &'static str {
        match self {
            StorageKind::Embedded => "embedded",
            StorageKind::Postgres => "postgres",
            StorageKind::Scylla => "scylla",
        }
    }
}

impl BlobKind {
    pub fn name(self) -> &'static str {
        match self {
            BlobKind::Fs => "fs",
            BlobKind::S3 => "s3",
        }
    }
}

/// The PostgreSQL store (`storage = "postgres"`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: Option<Secret>,
    /// Connections per node.
    pub pool_size: usize,
    /// How long startup waits for the server before giving up.
    pub connect_timeout_secs: u64,
    /// Most messages written in one group commit.
    pub message_batch_max: usize,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: None,
            pool_size: 16,
            connect_timeout_secs: 5,
            message_batch_max: 256,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationStrategy {
    Simple,
    #[default]
    NetworkTopology,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    One,
    LocalOne,
    Quorum,
    #[default]
    LocalQuorum,
    All,
}

/// The ScyllaDB store (`storage = "scylla"`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// Used when `enrichment migrate` creates the keyspace.
    pub replication: ReplicationStrategy,
    pub replication_factor: u32,
    /// Reads and writes; LOCAL_QUORUM keeps a datacenter consistent with itself.
    pub consistency: Consistency,
    /// The datacenter whose replicas are preferred (token- and DC-aware routing).
    pub local_datacenter: Option<String>,
    pub connect_timeout_secs: u64,
}

impl Default for ScyllaConfig {
    fn default() -> Self {
        ScyllaConfig {
            nodes: Vec::new(),
            keyspace: "enrichment".into(),
            replication: ReplicationStrategy::NetworkTopology,
            replication_factor: 1,
            consistency: Consistency::LocalQuorum,
            local_datacenter: None,
            connect_timeout_secs: 5,
        }
    }
}

/// Redis, for what every node must see but may be lost: the gateway session registry,
/// presence, rate-limit counters and IDENTIFY pacing. Unset: all of it stays in-process.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`.
    pub url: Option<Secret>,
    /// Prefix of every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// How long startup waits for the server before giving up.
    pub connect_timeout_secs: u64,
    /// A command slower than this counts as a failure (the node then degrades, see README).
    pub command_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            key_prefix: "enrichment".into(),
            connect_timeout_secs: 5,
            command_timeout_ms: 500,
        }
    }
}

/// The S3 bucket for attachments (`blobs = "s3"`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// `http(s)://host:port` of any S3-compatible server.
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: String,
    pub access_key: Option<Secret>,
    pub secret_key: Option<Secret>,
    /// `http://host/bucket/key` rather than `http://bucket.host/key`.
    pub path_style: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: None,
            bucket: None,
            region: "us-east-1".into(),
            access_key: None,
            secret_key: None,
            path_style: true,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentConfig {
    /// Largest file, in bytes; larger uploads are refused while they stream (40005).
    pub max_bytes: u64,
    /// Files per message.
    pub max_files: usize,
    /// Base of attachment URLs (`{public_url}/attachments/{channel}/{id}/{name}`), e.g.
    /// `https://cdn.example.com`. Unset: `http://` and the upload request's `Host` header,
    /// which the uploader controls; set it wherever the node is reachable from outside.
    pub public_url: Option<String>,
}

impl Default for AttachmentConfig {
    fn default() -> Self {
        AttachmentConfig {
            max_bytes: 25 * 1024 * 1024,
            max_files: 10,
            public_url: None,
        }
    }
}

/// A value that must not show up in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    /// Lifetime of an access token (JWT).
    pub access_ttl_secs: u64,
    /// Lifetime of a refresh token.
    pub refresh_ttl_secs: u64,
    /// argon2id cost: memory in KiB, iterations, lanes.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_lanes: u32,
    /// Failed logins allowed per account, and per client IP, per `login_window_secs`.
    pub login_attempts_per_account: u32,
    pub login_attempts_per_ip: u32,
    pub login_window_secs: u64,
    /// How long a node trusts what it read of a session (live or revoked) before reading the
    /// store again: the longest a logout on another node goes unnoticed here when its
    /// announcement is lost (Redis down). 0 reads the store on every request.
    pub session_cache_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "enrichment".into(),
            audience: "enrichment-api".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_lanes: 1,
            login_attempts_per_account: 5,
            login_attempts_per_ip: 20,
            login_window_secs: 60,
            session_cache_secs: 30,
        }
    }
}

/// A bucket's allowance: `limit` requests per `per_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    pub limit: u32,
    pub per_secs: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Per token (or per IP when unauthenticated), across all routes.
    pub global: Limit,
    /// `POST /channels/{id}/messages`, per channel per token.
    pub message_create: Limit,
    /// Reaction add/remove, per channel per token.
    pub reactions: Limit,
    /// Every other route, per route and major id per token.
    pub default_route: Limit,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            global: Limit {
                limit: 50,
                per_secs: 1.0,
            },
            message_create: Limit {
                limit: 5,
                per_secs: 5.0,
            },
            reactions: Limit {
                limit: 10,
                per_secs: 2.5,
            },
            default_route: Limit {
                limit: 30,
                per_secs: 10.0,
            },
        }
    }
}

/// The node's cache of public user objects (`enrichment_actors::users`), which every message
/// and member on the wire is hydrated from.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersConfig {
    /// Users kept at most; the least recently used go first.
    pub cache_entries: u64,
    /// How long a cached user is trusted: a change made through another node shows here
    /// within this time.
    pub cache_ttl_secs: u64,
}

impl Default for UsersConfig {
    fn default() -> Self {
        let limits = UserCacheLimits::default();
        UsersConfig {
            cache_entries: limits.max_entries,
            cache_ttl_secs: limits.ttl.as_secs(),
        }
    }
}

impl UsersConfig {
    pub fn limits(&self) -> UserCacheLimits {
        UserCacheLimits {
            max_entries: self.cache_entries,
            ttl: Duration::from_secs(self.cache_ttl_secs),
        }
    }
}

/// The `[gateway]` section: the gateway protocol's timings and limits (Discord's values by
/// default) and the node's listener (connections, buffers, write timeout).
///
/// The file keeps both in one flat table, so this struct lists the protocol's fields under
/// their key names instead of embedding the actors' [`ProtocolConfig`] (serde's `flatten`
/// would buffer the values, and errors would lose their key paths and environment variables
/// their reading as numbers); the defaults still come from there, see `Default`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Sent in HELLO; a client silent for 1.5 intervals is closed as a zombie (4009).
    pub heartbeat_interval_ms: u64,
    /// How long a session without a connection stays resumable.
    pub resume_window_secs: u64,
    /// Largest frame a client may send (4002 above).
    pub max_inbound_bytes: usize,
    /// Frames a client may send per `inbound_window_secs` (4008 above).
    pub inbound_per_window: u32,
    pub inbound_window_secs: u64,
    /// IDENTIFYs per user per day, and per `identify_window_secs` per rate-limit bucket
    /// (`shard_id % identify_max_concurrency`); over either, INVALID_SESSION.
    pub identify_per_day: u32,
    pub identify_max_concurrency: u32,
    pub identify_window_secs: u64,
    /// Dispatches (and bytes) a session keeps for RESUME.
    pub replay_frames: usize,
    pub replay_bytes: usize,
    /// Dispatches (and bytes) queued for one connection before it is closed as a slow
    /// consumer (resumable).
    pub outbox_frames: usize,
    pub outbox_bytes: usize,
    /// A write that cannot complete for this long closes the connection as a slow consumer.
    pub write_timeout_secs: u64,
    /// Guilds per shard before IDENTIFY needs sharding (4011).
    pub max_guilds_per_shard: usize,
    /// Members per GUILD_MEMBERS_CHUNK.
    pub member_chunk_size: usize,
    /// Open gateway connections this node accepts; further ones are refused at once.
    pub max_connections: usize,
    /// Initial read buffer per connection (grows for larger frames).
    pub read_buffer_bytes: usize,
    /// Output buffer a connection keeps between writes; a larger batch allocates for its write
    /// and gives the memory back after it. 0 (the default) allocates for every write: one
    /// allocation per system call costs nothing measurable, while a kept buffer costs an idle
    /// connection up to this much for good.
    pub write_buffer_bytes: usize,
    /// The kernel send buffer per connection (SO_SNDBUF); 0 keeps the OS default.
    pub send_buffer_bytes: usize,
}

impl Default for GatewayConfig {
    /// The gateway protocol's defaults are the actors' ([`ProtocolConfig::default`]); only the
    /// listener's own values are written here.
    fn default() -> Self {
        let protocol = ProtocolConfig::default();
        GatewayConfig {
            heartbeat_interval_ms: millis(protocol.heartbeat_interval),
            resume_window_secs: protocol.resume_window.as_secs(),
            max_inbound_bytes: protocol.max_inbound_bytes,
            inbound_per_window: protocol.inbound_per_window,
            inbound_window_secs: protocol.inbound_window.as_secs(),
            identify_per_day: protocol.identify.per_day,
            identify_max_concurrency: protocol.identify.max_concurrency,
            identify_window_secs: protocol.identify.concurrency_window.as_secs(),
            replay_frames: protocol.session.replay_frames,
            replay_bytes: protocol.session.replay_bytes,
            outbox_frames: protocol.session.outbox_frames,
            outbox_bytes: protocol.session.outbox_bytes,
            max_guilds_per_shard: protocol.max_guilds_per_shard,
            member_chunk_size: protocol.member_chunk_size,
            write_timeout_secs: 10,
            max_connections: 100_000,
            read_buffer_bytes: 512,
            write_buffer_bytes: 0,
            send_buffer_bytes: 0,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            gateway_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            gateway_url: None,
            log_format: LogFormat::Text,
            node_id: None,
            admin_token: None,
            worker_id: None,
            process_id: None,
            id_lease_secs: 30,
            http_workers: 0,
            listen_backlog: 4096,
            max_json_bytes: 256 * 1024,
            storage: StorageKind::Embedded,
            blobs: BlobKind::Fs,
            auth: AuthConfig::default(),
            rate_limits: RateLimitConfig::default(),
            guilds: GuildLimits::default(),
            users: UsersConfig::default(),
            gateway: GatewayConfig::default(),
            postgres: PostgresConfig::default(),
            scylla: ScyllaConfig::default(),
            redis: RedisConfig::default(),
            s3: S3Config::default(),
            attachments: AttachmentConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Config {
    /// A node for tests and tools that start one in-process: REST and gateway on ephemeral
    /// loopback ports, data under `data_dir`, the cheapest password hashing, no REST rate
    /// limits and no IDENTIFY pacing (tests that need those turn them back on).
    pub fn ephemeral(data_dir: &std::path::Path) -> Config {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut c = Config {
            listen: loopback,
            data_dir: data_dir.to_path_buf(),
            gateway_listen: loopback,
            http_workers: 1,
            ..Config::default()
        };
        c.gateway.identify_max_concurrency = 10_000;
        c.gateway.identify_window_secs = 0;
        c.auth.argon2_memory_kib = 8;
        c.auth.argon2_iterations = 1;
        c.rate_limits.enabled = false;
        c
    }

    /// Reads a TOML file alone (no environment, no flags); unknown keys are an error so typos
    /// do not pass silently.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Config> {
        load::read_file(path).map(|(config, _)| config)
    }

    /// Checks values that would only fail later, so they fail at startup instead.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.worker_id.is_none_or(|w| w < 32),
            "worker_id (ENRICHMENT_WORKER_ID) must be below 32"
        );
        anyhow::ensure!(
            self.process_id.is_none_or(|p| p < 32),
            "process_id (ENRICHMENT_PROCESS_ID) must be below 32"
        );
        anyhow::ensure!(
            (MIN_ID_LEASE_SECS..=MAX_ID_LEASE_SECS).contains(&self.id_lease_secs),
            "id_lease_secs (ENRICHMENT_ID_LEASE_SECS) must be {MIN_ID_LEASE_SECS} to {MAX_ID_LEASE_SECS}"
        );
        if let Some(id) = &self.node_id {
            anyhow::ensure!(
                valid_node_id(id),
                "node_id must be 1 to 64 letters, digits, '-', '_' or '.'"
            );
        }
        if let Some(token) = &self.admin_token {
            let t = token.expose();
            anyhow::ensure!(
                t.len() >= 16 && t.len() <= 512 && t.bytes().all(|b| b.is_ascii_graphic()),
                "admin_token must be 16 to 512 printable characters without spaces"
            );
        }
        anyhow::ensure!(
            self.listen_backlog >= 1,
            "listen_backlog (ENRICHMENT_LISTEN_BACKLOG) must be at least 1"
        );
        anyhow::ensure!(
            self.max_json_bytes >= 1024,
            "max_json_bytes must be at least 1024"
        );
        anyhow::ensure!(
            self.auth.access_ttl_secs > 0,
            "auth.access_ttl_secs must be positive"
        );
        anyhow::ensure!(
            self.auth.refresh_ttl_secs > 0,
            "auth.refresh_ttl_secs must be positive"
        );
        for (name, l) in [
            ("global", self.rate_limits.global),
            ("message_create", self.rate_limits.message_create),
            ("reactions", self.rate_limits.reactions),
            ("default_route", self.rate_limits.default_route),
        ] {
            anyhow::ensure!(
                l.limit > 0 && l.per_secs > 0.0,
                "rate_limits.{name} needs a positive limit and per_secs"
            );
        }
        anyhow::ensure!(
            self.users.cache_entries > 0 && self.users.cache_ttl_secs > 0,
            "users.cache_entries and users.cache_ttl_secs must be positive"
        );
        let g = &self.gateway;
        anyhow::ensure!(
            g.heartbeat_interval_ms >= 100,
            "gateway.heartbeat_interval_ms must be at least 100"
        );
        anyhow::ensure!(
            g.max_inbound_bytes >= 512,
            "gateway.max_inbound_bytes must be at least 512"
        );
        anyhow::ensure!(
            g.inbound_per_window > 0 && g.inbound_window_secs > 0,
            "gateway.inbound_per_window and inbound_window_secs must be positive"
        );
        anyhow::ensure!(
            g.identify_per_day > 0 && g.identify_max_concurrency > 0,
            "gateway.identify_per_day and identify_max_concurrency must be positive"
        );
        anyhow::ensure!(
            g.replay_frames > 0 && g.outbox_frames > 0 && g.replay_bytes > 0 && g.outbox_bytes > 0,
            "gateway replay and outbox caps must be positive"
        );
        anyhow::ensure!(
            g.member_chunk_size > 0 && g.max_connections > 0 && g.write_timeout_secs > 0,
            "gateway.member_chunk_size, max_connections and write_timeout_secs must be positive"
        );
        self.validate_backends()?;
        self.validate_cluster()
    }

    /// A cluster's nodes must see one another's data: everything durable in the shared store,
    /// sessions and rate limits in Redis, attachment bytes in S3.
    fn validate_cluster(&self) -> anyhow::Result<()> {
        self.cluster.validate()?;
        if !self.cluster.enabled {
            return Ok(());
        }
        anyhow::ensure!(
            self.storage != StorageKind::Embedded,
            "cluster.enabled (ENRICHMENT_CLUSTER_ENABLED) needs a store every node shares: \
             storage = \"postgres\" or \"scylla\" (ENRICHMENT_STORAGE); the embedded store \
             belongs to one node"
        );
        anyhow::ensure!(
            self.redis.url.is_some(),
            "cluster.enabled (ENRICHMENT_CLUSTER_ENABLED) needs redis.url (ENRICHMENT_REDIS_URL): \
             the nodes share sessions, presence and rate limits through Redis"
        );
        anyhow::ensure!(
            self.blobs == BlobKind::S3,
            "cluster.enabled (ENRICHMENT_CLUSTER_ENABLED) needs blobs = \"s3\" \
             (ENRICHMENT_BLOBS): attachments on one node's disk are invisible to the others"
        );
        Ok(())
    }

    /// The backends a node needs must be fully described before it starts; each error names
    /// the setting (file key and environment variable) to fix.
    fn validate_backends(&self) -> anyhow::Result<()> {
        match self.storage {
            StorageKind::Embedded => {}
            StorageKind::Postgres => {
                let url = self.postgres.url.as_ref().ok_or_else(|| {
                    anyhow::anyhow!(
                        "storage = \"postgres\" needs postgres.url (ENRICHMENT_POSTGRES_URL)"
                    )
                })?;
                let u = url.expose();
                anyhow::ensure!(
                    u.starts_with("postgres://") || u.starts_with("postgresql://"),
                    "postgres.url (ENRICHMENT_POSTGRES_URL) must start with postgres:// or postgresql://"
                );
                anyhow::ensure!(
                    self.postgres.pool_size > 0 && self.postgres.message_batch_max > 0,
                    "postgres.pool_size and postgres.message_batch_max must be positive"
                );
            }
            StorageKind::Scylla => {
                let s = &self.scylla;
                anyhow::ensure!(
                    !s.nodes.is_empty(),
                    "storage = \"scylla\" needs scylla.nodes (ENRICHMENT_SCYLLA_NODES, host:port,...)"
                );
                for node in &s.nodes {
                    anyhow::ensure!(
                        node.rsplit_once(':')
                            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
                        "scylla.nodes (ENRICHMENT_SCYLLA_NODES): {node:?} is not host:port"
                    );
                }
                anyhow::ensure!(
                    !s.keyspace.is_empty()
                        && s.keyspace.len() <= 48
                        && s.keyspace
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        && s.keyspace.as_bytes()[0].is_ascii_alphabetic(),
                    "scylla.keyspace (ENRICHMENT_SCYLLA_KEYSPACE) must be 1 to 48 letters, digits or '_', starting with a letter"
                );
                anyhow::ensure!(
                    s.replication_factor > 0,
                    "scylla.replication_factor (ENRICHMENT_SCYLLA_REPLICATION_FACTOR) must be positive"
                );
            }
        }
        if let Some(url) = &self.redis.url {
            let u = url.expose();
            anyhow::ensure!(
                u.starts_with("redis://") || u.starts_with("rediss://"),
                "redis.url (ENRICHMENT_REDIS_URL) must start with redis:// or rediss://"
            );
            anyhow::ensure!(
                self.redis.command_timeout_ms > 0,
                "redis.command_timeout_ms must be positive"
            );
        }
        if self.blobs == BlobKind::S3 {
            let s3 = &self.s3;
            let endpoint = s3.endpoint.as_deref().ok_or_else(|| {
                anyhow::anyhow!("blobs = \"s3\" needs s3.endpoint (ENRICHMENT_S3_ENDPOINT)")
            })?;
            anyhow::ensure!(
                endpoint.starts_with("http://") || endpoint.starts_with("https://"),
                "s3.endpoint (ENRICHMENT_S3_ENDPOINT) must start with http:// or https://"
            );
            anyhow::ensure!(
                s3.bucket.as_deref().is_some_and(|b| !b.is_empty()),
                "blobs = \"s3\" needs s3.bucket (ENRICHMENT_S3_BUCKET)"
            );
            anyhow::ensure!(
                s3.access_key.is_some() && s3.secret_key.is_some(),
                "blobs = \"s3\" needs s3.access_key and s3.secret_key (ENRICHMENT_S3_ACCESS_KEY, ENRICHMENT_S3_SECRET_KEY)"
            );
        }
        anyhow::ensure!(
            self.attachments.max_bytes > 0 && self.attachments.max_files > 0,
            "attachments.max_bytes and attachments.max_files must be positive"
        );
        if let Some(url) = &self.attachments.public_url {
            anyhow::ensure!(
                (url.starts_with("http://") || url.starts_with("https://"))
                    && !url.contains(char::is_whitespace),
                "attachments.public_url (ENRICHMENT_ATTACHMENTS_PUBLIC_URL) must be an http:// or https:// URL"
            );
        }
        Ok(())
    }

    /// The actors' view of the gateway settings.
    pub fn gateway_settings(&self, resume_url: String) -> ProtocolConfig {
        let g = &self.gateway;
        ProtocolConfig {
            heartbeat_interval: Duration::from_millis(g.heartbeat_interval_ms),
            resume_window: Duration::from_secs(g.resume_window_secs),
            max_inbound_bytes: g.max_inbound_bytes,
            inbound_per_window: g.inbound_per_window,
            inbound_window: Duration::from_secs(g.inbound_window_secs),
            identify: IdentifyLimits {
                per_day: g.identify_per_day,
                max_concurrency: g.identify_max_concurrency,
                concurrency_window: Duration::from_secs(g.identify_window_secs),
            },
            session: SessionLimits {
                replay_frames: g.replay_frames,
                replay_bytes: g.replay_bytes,
                outbox_frames: g.outbox_frames,
                outbox_bytes: g.outbox_bytes,
            },
            max_guilds_per_shard: g.max_guilds_per_shard,
            member_chunk_size: g.member_chunk_size,
            resume_url,
        }
    }

    /// The id pair asked for: `None` when neither id is set, otherwise both (0 for the unset
    /// one).
    pub fn wanted_id_pair(&self) -> Option<IdPair> {
        if self.worker_id.is_none() && self.process_id.is_none() {
            return None;
        }
        Some(IdPair {
            worker_id: self.worker_id.unwrap_or(0),
            process_id: self.process_id.unwrap_or(0),
        })
    }

    pub fn id_lease(&self) -> Duration {
        Duration::from_secs(self.id_lease_secs)
    }
}

/// Node ids appear in URLs (`/admin/v1/cluster/nodes/{node_id}/drain`) and logs.
pub fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/enrichment.example.toml");
        let parsed = Config::from_file(&path).unwrap();
        parsed.validate().unwrap();
        let defaults = Config::default();
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            serde_json::to_value(&defaults).unwrap(),
            "the example documents the defaults"
        );
    }

    #[test]
    fn the_gateway_section_defaults_to_the_actors_gateway_defaults() {
        assert_eq!(
            Config::default().gateway_settings(String::new()),
            ProtocolConfig::default(),
            "the node's [gateway] defaults and the actors' agree, both ways"
        );
    }

    #[test]
    fn guild_durations_are_whole_seconds_under_their_key_names() {
        let c: Config =
            toml::from_str("[guilds]\nidle_timeout_secs = 7\ncommand_timeout_secs = 3").unwrap();
        assert_eq!(c.guilds.idle_timeout, Duration::from_secs(7));
        assert_eq!(c.guilds.command_timeout, Duration::from_secs(3));
        let back = toml::to_string(&c).unwrap();
        assert!(back.contains("idle_timeout_secs = 7"), "{back}");
        assert!(toml::from_str::<Config>("[guilds]\nidle_timeout = 7").is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Config>("listne = \"1.2.3.4:5\"").is_err());
        let c: Config = toml::from_str("worker_id = 40").unwrap();
        assert!(c.validate().is_err());
        let c: Config = toml::from_str("process_id = 32").unwrap();
        assert!(c.validate().is_err());
        for secs in [0, 2, 3601] {
            let c: Config = toml::from_str(&format!("id_lease_secs = {secs}")).unwrap();
            assert!(c.validate().is_err(), "{secs}");
        }
        for users in ["cache_entries = 0", "cache_ttl_secs = 0"] {
            let c: Config = toml::from_str(&format!("[users]\n{users}")).unwrap();
            assert!(c.validate().is_err(), "{users}");
        }
        let c: Config = toml::from_str("node_id = \"a/b\"").unwrap();
        assert!(c.validate().is_err());
        let c: Config = toml::from_str("admin_token = \"short\"").unwrap();
        assert!(c.validate().is_err());
        let c: Config = toml::from_str("admin_token = \"0123456789abcdef\"").unwrap();
        c.validate().unwrap();
        assert!(
            !format!("{c:?}").contains("0123456789abcdef"),
            "the token stays out of Debug"
        );
        let c: Config =
            toml::from_str("[rate_limits]\nglobal = { limit = 0, per_secs = 1.0 }").unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn an_id_pair_is_wanted_once_either_id_is_set() {
        let pair = |text: &str| toml::from_str::<Config>(text).unwrap().wanted_id_pair();
        assert_eq!(pair(""), None);
        assert_eq!(pair("worker_id = 3"), IdPair::new(3, 0));
        assert_eq!(pair("process_id = 4"), IdPair::new(0, 4));
        assert_eq!(pair("worker_id = 3\nprocess_id = 4"), IdPair::new(3, 4));
    }

    #[track_caller]
    fn refused(toml_text: &str, names: &str) {
        let c: Config = toml::from_str(toml_text).unwrap();
        let err = c.validate().expect_err(toml_text).to_string();
        assert!(err.contains(names), "{err:?} should name {names}");
    }

    #[test]
    fn backends_must_be_fully_described() {
        refused("storage = \"postgres\"", "ENRICHMENT_POSTGRES_URL");
        refused(
            "storage = \"postgres\"\n[postgres]\nurl = \"mysql://x\"",
            "ENRICHMENT_POSTGRES_URL",
        );
        refused("storage = \"scylla\"", "ENRICHMENT_SCYLLA_NODES");
        refused(
            "storage = \"scylla\"\n[scylla]\nnodes = [\"db1\"]",
            "ENRICHMENT_SCYLLA_NODES",
        );
        refused(
            "storage = \"scylla\"\n[scylla]\nnodes = [\"db1:9042\"]\nkeyspace = \"a-b\"",
            "ENRICHMENT_SCYLLA_KEYSPACE",
        );
        refused("[redis]\nurl = \"http://x\"", "ENRICHMENT_REDIS_URL");
        refused(
            "[attachments]\npublic_url = \"cdn.example.com\"",
            "ENRICHMENT_ATTACHMENTS_PUBLIC_URL",
        );
        refused("blobs = \"s3\"", "ENRICHMENT_S3_ENDPOINT");
        refused(
            "blobs = \"s3\"\n[s3]\nendpoint = \"http://127.0.0.1:9000\"",
            "ENRICHMENT_S3_BUCKET",
        );
        refused(
            "blobs = \"s3\"\n[s3]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"b\"",
            "ENRICHMENT_S3_ACCESS_KEY",
        );
        let c: Config = toml::from_str(
            "storage = \"postgres\"\nblobs = \"s3\"\n[postgres]\nurl = \"postgres://u:pw@h:5432/d\"\n\
             [s3]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"b\"\naccess_key = \"a\"\nsecret_key = \"s\"\n\
             [redis]\nurl = \"redis://127.0.0.1:6379\"",
        )
        .unwrap();
        c.validate().unwrap();
        assert!(
            !format!("{c:?}").contains("pw@"),
            "the URL stays out of Debug"
        );
    }

    #[test]
    fn a_cluster_needs_a_shared_store_redis_and_s3_blobs() {
        let cluster = "[cluster]\nenabled = true\nsecret = \"0123456789abcdef\"\n";
        let postgres = "storage = \"postgres\"\n[postgres]\nurl = \"postgres://h/d\"\n";
        let redis = "[redis]\nurl = \"redis://127.0.0.1:6379\"\n";
        let s3 = "[s3]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"b\"\naccess_key = \"a\"\nsecret_key = \"s\"\n";
        refused(cluster, "ENRICHMENT_STORAGE");
        refused(&format!("{postgres}{cluster}"), "ENRICHMENT_REDIS_URL");
        refused(
            &format!("{postgres}{redis}{cluster}"),
            "attachments on one node's disk",
        );
        refused(
            &format!("blobs = \"s3\"\n{postgres}{redis}{s3}[cluster]\nenabled = true\n"),
            "ENRICHMENT_CLUSTER_SECRET",
        );
        let c: Config =
            toml::from_str(&format!("blobs = \"s3\"\n{postgres}{redis}{s3}{cluster}")).unwrap();
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }
}
