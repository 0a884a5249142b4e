//! The `enrichment` command line: its subcommands and flags, and how the flags that were given
//! become the last layer of the configuration ([`crate::config::load`]).
//!
//! Flags cover the common keys only; every key, flagged or not, also has its `ENRICHMENT_*`
//! variable, which the config loader reads (clap reads only `ENRICHMENT_CONFIG`, the file's
//! path, which is no key). A flag that is not given sets nothing, so the environment, the file
//! or the default stands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{
    BlobKind, Config, Consistency, LogFormat, Overrides, ReplicationStrategy, Sources, StorageKind,
};

#[derive(Parser, Debug)]
#[command(
    name = "enrichment",
    version,
    about = "A Discord API v10 compatible chat server",
    after_help = "Every config key can also be set by an environment variable: ENRICHMENT_ and \
                  the key path in upper case, joined by _ (guilds.max_pins: \
                  ENRICHMENT_GUILDS_MAX_PINS). Flags override the environment, which overrides \
                  the config file, which overrides the defaults."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Runs a node (on the embedded store by default).
    Serve(ServeArgs),
    /// Brings the configured store's schema up to date (PostgreSQL migrations, ScyllaDB
    /// keyspace and tables) and exits. `serve` does the same at startup; several nodes may run
    /// it at once.
    Migrate(MigrateArgs),
}

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// TOML config file.
    #[arg(long, env = "ENRICHMENT_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (the embedded store).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    backends: BackendArgs,
}

/// Which store, blob store and Redis a node uses, and how to reach them.
#[derive(clap::Args, Debug)]
struct BackendArgs {
    /// Store: embedded (one node), postgres or scylla.
    #[arg(long, value_enum)]
    storage: Option<StorageKind>,
    /// postgres://user:password@host:port/database (storage = postgres).
    #[arg(long)]
    postgres_url: Option<String>,
    /// ScyllaDB contact points, host:port,host:port (storage = scylla).
    #[arg(long, value_delimiter = ',')]
    scylla_nodes: Option<Vec<String>>,
    #[arg(long)]
    scylla_keyspace: Option<String>,
    /// Replication strategy used when the keyspace is created.
    #[arg(long, value_enum)]
    scylla_replication: Option<ReplicationStrategy>,
    #[arg(long)]
    scylla_replication_factor: Option<u32>,
    #[arg(long, value_enum)]
    scylla_consistency: Option<Consistency>,
    #[arg(long)]
    scylla_local_datacenter: Option<String>,
    /// redis://host:port: sessions, presence and rate limits shared across nodes.
    #[arg(long)]
    redis_url: Option<String>,
    /// Attachment bytes: fs (under the data dir) or s3.
    #[arg(long, value_enum)]
    blobs: Option<BlobKind>,
    #[arg(long)]
    s3_endpoint: Option<String>,
    #[arg(long)]
    s3_bucket: Option<String>,
    #[arg(long)]
    s3_region: Option<String>,
    #[arg(long)]
    s3_access_key: Option<String>,
    #[arg(long)]
    s3_secret_key: Option<String>,
    /// Path-style S3 URLs (http://host/bucket/key): true or false.
    #[arg(long)]
    s3_path_style: Option<bool>,
    /// Largest attachment, in bytes.
    #[arg(long)]
    max_attachment_bytes: Option<u64>,
    /// Base of attachment URLs, e.g. `https://cdn.example.com`.
    #[arg(long)]
    attachments_public_url: Option<String>,
}

impl BackendArgs {
    fn overrides(self, o: &mut Overrides) {
        o.given("storage", self.storage);
        o.given("postgres.url", self.postgres_url);
        o.given("scylla.nodes", self.scylla_nodes);
        o.given("scylla.keyspace", self.scylla_keyspace);
        o.given("scylla.replication", self.scylla_replication);
        o.given("scylla.replication_factor", self.scylla_replication_factor);
        o.given("scylla.consistency", self.scylla_consistency);
        o.given("scylla.local_datacenter", self.scylla_local_datacenter);
        o.given("redis.url", self.redis_url);
        o.given("blobs", self.blobs);
        o.given("s3.endpoint", self.s3_endpoint);
        o.given("s3.bucket", self.s3_bucket);
        o.given("s3.region", self.s3_region);
        o.given("s3.access_key", self.s3_access_key);
        o.given("s3.secret_key", self.s3_secret_key);
        o.given("s3.path_style", self.s3_path_style);
        o.given("attachments.max_bytes", self.max_attachment_bytes);
        o.given("attachments.public_url", self.attachments_public_url);
    }
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "ENRICHMENT_CONFIG")]
    config: Option<PathBuf>,
    /// REST listen address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (embedded store, JWT keys).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Gateway listen address (reported by `GET /gateway`).
    #[arg(long)]
    gateway_listen: Option<SocketAddr>,
    /// Public gateway URL, when it differs from `ws://{gateway_listen}`.
    #[arg(long)]
    gateway_url: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// This node's id in the cluster (default: generated once into {data_dir}/node-id).
    #[arg(long)]
    node_id: Option<String>,
    /// Admin API bearer token, 16+ characters (default: generated once into
    /// {data_dir}/admin-token). Prefer ENRICHMENT_ADMIN_TOKEN: flags show up in `ps`.
    #[arg(long)]
    admin_token: Option<String>,
    /// Snowflake worker id (0–31). On a shared store: claim exactly this pair (with
    /// --process-id) instead of any free one.
    #[arg(long)]
    worker_id: Option<u8>,
    /// Snowflake process id (0–31); see --worker-id.
    #[arg(long)]
    process_id: Option<u8>,
    /// Seconds a shared store's lease on this node's id pair lasts (renewed every third).
    #[arg(long)]
    id_lease_secs: Option<u64>,
    /// HTTP worker threads (0 = one per core).
    #[arg(long)]
    http_workers: Option<usize>,
    /// Turn HTTP rate limits off (load tests only).
    #[arg(long)]
    no_rate_limits: bool,
    /// Join a cluster (needs a shared store, Redis and S3 blobs). Implied by --cluster-listen
    /// and --seeds.
    #[arg(long)]
    cluster: bool,
    /// Where cluster gossip listens (UDP), e.g. 10.0.0.5:8082.
    #[arg(long)]
    cluster_listen: Option<SocketAddr>,
    /// The cluster address peers reach this node at, when it differs from --cluster-listen.
    #[arg(long)]
    cluster_advertise: Option<SocketAddr>,
    /// Nodes to join through, host:port,host:port (any members; the first node needs none).
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<String>>,
    /// The secret every node of the cluster shares, 16+ bytes. Prefer
    /// ENRICHMENT_CLUSTER_SECRET: flags show up in `ps`.
    #[arg(long)]
    cluster_secret: Option<String>,
    #[command(flatten)]
    backends: BackendArgs,
}

impl MigrateArgs {
    /// The configuration, with this process's environment.
    pub fn load(self) -> anyhow::Result<Config> {
        let (file, flags) = self.into_parts();
        Config::load(Sources::process(file, flags))
    }

    fn into_parts(self) -> (Option<PathBuf>, Overrides) {
        let mut o = Overrides::default();
        o.given("data_dir", self.data_dir);
        self.backends.overrides(&mut o);
        (self.config, o)
    }
}

impl ServeArgs {
    /// The configuration, with this process's environment.
    pub fn load(self) -> anyhow::Result<Config> {
        let (file, flags) = self.into_parts();
        Config::load(Sources::process(file, flags))
    }

    fn into_parts(self) -> (Option<PathBuf>, Overrides) {
        let mut o = Overrides::default();
        o.given("listen", self.listen);
        o.given("data_dir", self.data_dir);
        o.given("gateway_listen", self.gateway_listen);
        o.given("gateway_url", self.gateway_url);
        o.given("log_format", self.log_format);
        o.given("node_id", self.node_id);
        o.given("admin_token", self.admin_token);
        o.given("worker_id", self.worker_id);
        o.given("process_id", self.process_id);
        o.given("id_lease_secs", self.id_lease_secs);
        o.given("http_workers", self.http_workers);
        if self.no_rate_limits {
            o.set("rate_limits.enabled", false);
        }
        if self.cluster || self.cluster_listen.is_some() || self.seeds.is_some() {
            o.set("cluster.enabled", true);
        }
        o.given("cluster.listen", self.cluster_listen);
        o.given("cluster.advertise", self.cluster_advertise);
        o.given("cluster.seeds", self.seeds);
        o.given("cluster.secret", self.cluster_secret);
        self.backends.overrides(&mut o);
        (self.config, o)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::ffi::OsString;

    use super::*;

    const EVERY_SERVE_FLAG: &[&str] = &[
        "enrichment",
        "serve",
        "--listen=127.0.0.1:1",
        "--data-dir=/d",
        "--gateway-listen=127.0.0.1:2",
        "--gateway-url=ws://g",
        "--log-format=json",
        "--node-id=n",
        "--admin-token=0123456789abcdef",
        "--worker-id=1",
        "--http-workers=1",
        "--no-rate-limits",
        "--storage=postgres",
        "--postgres-url=postgres://h/d",
        "--scylla-nodes=a:1,b:2",
        "--scylla-keyspace=k",
        "--scylla-replication=simple",
        "--scylla-replication-factor=3",
        "--scylla-consistency=one",
        "--scylla-local-datacenter=dc",
        "--redis-url=redis://r",
        "--blobs=s3",
        "--s3-endpoint=http://s3",
        "--s3-bucket=b",
        "--s3-region=r",
        "--s3-access-key=a",
        "--s3-secret-key=s",
        "--s3-path-style=false",
        "--max-attachment-bytes=7",
        "--attachments-public-url=https://cdn",
        "--cluster",
        "--cluster-listen=127.0.0.1:3",
        "--cluster-advertise=127.0.0.1:4",
        "--seeds=127.0.0.1:5,h:6",
        "--cluster-secret=0123456789abcdef",
    ];

    fn serve(argv: &[&str]) -> ServeArgs {
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => args,
            Command::Migrate(_) => unreachable!("serve was asked for"),
        }
    }

    fn load(argv: &[&str], env: &[(&str, &str)]) -> Config {
        let (file, flags) = serve(argv).into_parts();
        Config::load(Sources {
            file,
            env: env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect(),
            flags,
        })
        .unwrap()
    }

    #[test]
    fn every_flag_sets_a_key_that_exists_and_loads() {
        let known: BTreeSet<String> = crate::config::load::keys()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let (_, flags) = serve(EVERY_SERVE_FLAG).into_parts();
        let keys: Vec<&str> = flags.keys().collect();
        assert_eq!(keys.len(), EVERY_SERVE_FLAG.len() - 2, "one key per flag");
        for key in &keys {
            assert!(known.contains(*key), "a flag sets {key}, which is no key");
        }
        let c = load(EVERY_SERVE_FLAG, &[]);
        assert_eq!(c.listen, "127.0.0.1:1".parse().unwrap());
        assert!(!c.rate_limits.enabled);
        assert_eq!(c.storage, StorageKind::Postgres);
        assert_eq!(c.scylla.nodes, ["a:1", "b:2"]);
        assert_eq!(c.scylla.consistency, Consistency::One);
        assert_eq!(c.admin_token.unwrap().expose(), "0123456789abcdef");
        assert!(!c.s3.path_style);
        assert_eq!(c.attachments.max_bytes, 7);
        assert!(c.cluster.enabled);
        assert_eq!(c.cluster.seeds, ["127.0.0.1:5", "h:6"]);
        assert_eq!(c.cluster.advertise, Some("127.0.0.1:4".parse().unwrap()));
        assert_eq!(c.cluster.secret.unwrap().expose(), b"0123456789abcdef");
    }

    #[test]
    fn flags_not_given_leave_the_environment_and_flags_given_beat_it() {
        let env = [
            ("ENRICHMENT_HTTP_WORKERS", "3"),
            ("ENRICHMENT_WORKER_ID", "4"),
            ("ENRICHMENT_STORAGE", "scylla"),
        ];
        let c = load(&["enrichment", "serve", "--worker-id", "9"], &env);
        assert_eq!(
            (c.http_workers, c.worker_id, c.storage),
            (3, Some(9), StorageKind::Scylla)
        );
        let c = load(
            &["enrichment", "serve"],
            &[("ENRICHMENT_NO_RATE_LIMITS", "1")],
        );
        assert!(!c.rate_limits.enabled, "the legacy switch still works");
        let c = load(
            &["enrichment", "serve"],
            &[("ENRICHMENT_RATE_LIMITS_ENABLED", "false")],
        );
        assert!(!c.rate_limits.enabled);
        let c = load(&["enrichment", "serve"], &[]);
        assert!(c.rate_limits.enabled, "no flag, no variable: the default");
    }

    #[test]
    fn migrate_takes_its_flags_through_the_same_layers() {
        let Command::Migrate(args) = Cli::try_parse_from([
            "enrichment",
            "migrate",
            "--data-dir=/m",
            "--storage=postgres",
        ])
        .unwrap()
        .command
        else {
            unreachable!("migrate was asked for")
        };
        let (file, flags) = args.into_parts();
        let c = Config::load(Sources {
            file,
            env: vec![("ENRICHMENT_POSTGRES_POOL_SIZE".into(), "2".into())],
            flags,
        })
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/m"));
        assert_eq!(c.storage, StorageKind::Postgres);
        assert_eq!(c.postgres.pool_size, 2);
    }
}
