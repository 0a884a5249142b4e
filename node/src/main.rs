//! `enrichment`: the Enrichment server.

use anyhow::Context;
use clap::Parser;
use enrichment_node::Node;
use enrichment_node::cli::{Cli, Command};
use enrichment_node::config::LogFormat;

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
            let config = args.load()?;
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
            let config = args.load()?;
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
