//! `enrichment`: the Enrichment server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use enrichment_node::Node;
use enrichment_node::config::{
    BlobKind, Config, Consistency, LogFormat, ReplicationStrategy, Secret, StorageKind,
};

#[derive(Parser, Debug)]
#[command(
    name = "enrichment",
    version,
    about = "A Discord API v10 compatible chat server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a node (on the embedded store by default).
    Serve(ServeArgs),
    /// Brings the configured store's schema up to date (PostgreSQL migrations, ScyllaDB
    /// keyspace and tables) and exits. `serve` does the same at startup; several nodes may run
    /// it at once.
    Migrate(MigrateArgs),
}

#[derive(clap::Args, Debug)]
struct MigrateArgs {
    /// TOML config file.
    #[arg(long, env = "ENRICHMENT_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (the embedded store).
    #[arg(long, env = "ENRICHMENT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    backends: BackendArgs,
}

/// Which store, blob store and Redis a node uses, and how to reach them.
#[derive(clap::Args, Debug)]
struct BackendArgs {
    /// Store: embedded (one node), postgres or scylla.
    #[arg(long, env = "ENRICHMENT_STORAGE", value_enum)]
    storage: Option<StorageKind>,
    /// postgres://user:password@host:port/database (storage = postgres).
    #[arg(long, env = "ENRICHMENT_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,
    /// ScyllaDB contact points, host:port,host:port (storage = scylla).
    #[arg(long, env = "ENRICHMENT_SCYLLA_NODES", value_delimiter = ',')]
    scylla_nodes: Option<Vec<String>>,
    #[arg(long, env = "ENRICHMENT_SCYLLA_KEYSPACE")]
    scylla_keyspace: Option<String>,
    /// Replication strategy used when the keyspace is created.
    #[arg(long, env = "ENRICHMENT_SCYLLA_REPLICATION", value_enum)]
    scylla_replication: Option<ReplicationStrategy>,
    #[arg(long, env = "ENRICHMENT_SCYLLA_REPLICATION_FACTOR")]
    scylla_replication_factor: Option<u32>,
    #[arg(long, env = "ENRICHMENT_SCYLLA_CONSISTENCY", value_enum)]
    scylla_consistency: Option<Consistency>,
    #[arg(long, env = "ENRICHMENT_SCYLLA_LOCAL_DATACENTER")]
    scylla_local_datacenter: Option<String>,
    /// redis://host:port: sessions, presence and rate limits shared across nodes.
    #[arg(long, env = "ENRICHMENT_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Attachment bytes: fs (under the data dir) or s3.
    #[arg(long, env = "ENRICHMENT_BLOBS", value_enum)]
    blobs: Option<BlobKind>,
    #[arg(long, env = "ENRICHMENT_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    #[arg(long, env = "ENRICHMENT_S3_BUCKET")]
    s3_bucket: Option<String>,
    #[arg(long, env = "ENRICHMENT_S3_REGION")]
    s3_region: Option<String>,
    #[arg(long, env = "ENRICHMENT_S3_ACCESS_KEY", hide_env_values = true)]
    s3_access_key: Option<String>,
    #[arg(long, env = "ENRICHMENT_S3_SECRET_KEY", hide_env_values = true)]
    s3_secret_key: Option<String>,
    /// Path-style S3 URLs (http://host/bucket/key): true or false.
    #[arg(long, env = "ENRICHMENT_S3_PATH_STYLE")]
    s3_path_style: Option<bool>,
    /// Largest attachment, in bytes.
    #[arg(long, env = "ENRICHMENT_MAX_ATTACHMENT_BYTES")]
    max_attachment_bytes: Option<u64>,
    /// Base of attachment URLs, e.g. https://cdn.example.com.
    #[arg(long, env = "ENRICHMENT_ATTACHMENTS_PUBLIC_URL")]
    attachments_public_url: Option<String>,
}

impl BackendArgs {
    fn apply(self, c: &mut Config) {
        if let Some(v) = self.storage {
            c.storage = v;
        }
        if let Some(v) = self.postgres_url {
            c.postgres.url = Some(Secret::new(v));
        }
        if let Some(v) = self.scylla_nodes {
            c.scylla.nodes = v;
        }
        if let Some(v) = self.scylla_keyspace {
            c.scylla.keyspace = v;
        }
        if let Some(v) = self.scylla_replication {
            c.scylla.replication = v;
        }
        if let Some(v) = self.scylla_replication_factor {
            c.scylla.replication_factor = v;
        }
        if let Some(v) = self.scylla_consistency {
            c.scylla.consistency = v;
        }
        if let Some(v) = self.scylla_local_datacenter {
            c.scylla.local_datacenter = Some(v);
        }
        if let Some(v) = self.redis_url {
            c.redis.url = Some(Secret::new(v));
        }
        if let Some(v) = self.blobs {
            c.blobs = v;
        }
        if let Some(v) = self.s3_endpoint {
            c.s3.endpoint = Some(v);
        }
        if let Some(v) = self.s3_bucket {
            c.s3.bucket = Some(v);
        }
        if let Some(v) = self.s3_region {
            c.s3.region = v;
        }
        if let Some(v) = self.s3_access_key {
            c.s3.access_key = Some(Secret::new(v));
        }
        if let Some(v) = self.s3_secret_key {
            c.s3.secret_key = Some(Secret::new(v));
        }
        if let Some(v) = self.s3_path_style {
            c.s3.path_style = v;
        }
        if let Some(v) = self.max_attachment_bytes {
            c.attachments.max_bytes = v;
        }
        if let Some(v) = self.attachments_public_url {
            c.attachments.public_url = Some(v);
        }
    }
}

/// Every flag can also be set through its `ENRICHMENT_*` variable; flags beat the environment,
/// which beats the config file, which beats the defaults.
#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "ENRICHMENT_CONFIG")]
    config: Option<PathBuf>,
    /// REST listen address.
    #[arg(long, env = "ENRICHMENT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory (embedded store, JWT keys).
    #[arg(long, env = "ENRICHMENT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Gateway listen address (reported by `GET /gateway`).
    #[arg(long, env = "ENRICHMENT_GATEWAY_LISTEN")]
    gateway_listen: Option<SocketAddr>,
    /// Public gateway URL, when it differs from `ws://{gateway_listen}`.
    #[arg(long, env = "ENRICHMENT_GATEWAY_URL")]
    gateway_url: Option<String>,
    /// Log format.
    #[arg(long, env = "ENRICHMENT_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// This node's id in the cluster (default: generated once into {data_dir}/node-id).
    #[arg(long, env = "ENRICHMENT_NODE_ID")]
    node_id: Option<String>,
    /// Admin API bearer token, 16+ characters (default: generated once into
    /// {data_dir}/admin-token). Prefer the environment variable: flags show up in `ps`.
    #[arg(long, env = "ENRICHMENT_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Snowflake worker id (0–31). On a shared store: claim exactly this pair (with
    /// --process-id) instead of any free one.
    #[arg(long, env = "ENRICHMENT_WORKER_ID")]
    worker_id: Option<u8>,
    /// Snowflake process id (0–31); see --worker-id.
    #[arg(long, env = "ENRICHMENT_PROCESS_ID")]
    process_id: Option<u8>,
    /// Seconds a shared store's lease on this node's id pair lasts (renewed every third).
    #[arg(long, env = "ENRICHMENT_ID_LEASE_SECS")]
    id_lease_secs: Option<u64>,
    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "ENRICHMENT_HTTP_WORKERS")]
    http_workers: Option<usize>,
    /// Turn HTTP rate limits off (load tests only).
    #[arg(long, env = "ENRICHMENT_NO_RATE_LIMITS")]
    no_rate_limits: bool,
    #[command(flatten)]
    backends: BackendArgs,
}

impl MigrateArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        self.backends.apply(&mut c);
        Ok(c)
    }
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.gateway_listen {
            c.gateway_listen = v;
        }
        if let Some(v) = self.gateway_url {
            c.gateway_url = Some(v);
        }
        if let Some(v) = self.log_format {
            c.log_format = v;
        }
        if let Some(v) = self.node_id {
            c.node_id = Some(v);
        }
        if let Some(v) = self.admin_token {
            c.admin_token = Some(Secret::new(v));
        }
        if let Some(v) = self.worker_id {
            c.worker_id = Some(v);
        }
        if let Some(v) = self.process_id {
            c.process_id = Some(v);
        }
        if let Some(v) = self.id_lease_secs {
            c.id_lease_secs = v;
        }
        if let Some(v) = self.http_workers {
            c.http_workers = v;
        }
        if self.no_rate_limits {
            c.rate_limits.enabled = false;
        }
        self.backends.apply(&mut c);
        Ok(c)
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENRICHMENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = args.into_config()?;
            init_logging(config.log_format);
            // One multi-threaded runtime hosts the guild actors; actix runs its HTTP workers on
            // their own threads and reaches the actors through bounded mailboxes.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(async move {
                let node = Node::start(config).await?;
                println!(
                    "enrichment listening on http://{} (API at {})",
                    node.addr,
                    node.api_url()
                );
                node.wait().await
            })
        }
        Command::Migrate(args) => {
            let config = args.into_config()?;
            init_logging(LogFormat::Text);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(async move {
                let report = enrichment_node::backends::migrate(&config).await?;
                println!("{report}");
                Ok(())
            })
        }
    }
}
