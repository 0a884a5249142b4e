//! `enrichment`: the Enrichment server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use enrichment_node::Node;
use enrichment_node::config::{Config, LogFormat, Secret};

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
    /// Snowflake worker id (0–31), unique per node.
    #[arg(long, env = "ENRICHMENT_WORKER_ID")]
    worker_id: Option<u8>,
    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "ENRICHMENT_HTTP_WORKERS")]
    http_workers: Option<usize>,
    /// Turn HTTP rate limits off (load tests only).
    #[arg(long, env = "ENRICHMENT_NO_RATE_LIMITS")]
    no_rate_limits: bool,
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
            c.worker_id = v;
        }
        if let Some(v) = self.http_workers {
            c.http_workers = v;
        }
        if self.no_rate_limits {
            c.rate_limits.enabled = false;
        }
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
    }
}
