//! `enrichment-load`: an open-loop, fixed-rate REST load generator for Enrichment.
//!
//! See the `enrichment_bench` crate docs for what "open loop" means here and what every number in
//! the report is. Loopback targets only.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use enrichment_bench::report::{Report, RunConfig};
use enrichment_bench::run::{LoadPlan, run_load};
use enrichment_bench::setup::{SETUP_TIMEOUT, SetupPlan, build_world};
use enrichment_bench::{Mix, check_loopback};

#[derive(Parser, Debug)]
#[command(
    name = "enrichment-load",
    version,
    about = "Open-loop, fixed offered rate HTTP load against an Enrichment node (loopback only)"
)]
struct Cli {
    /// API base URL, e.g. http://127.0.0.1:8080/api/v10 (must be a loopback address).
    #[arg(long)]
    api: String,
    /// Offered rate in requests per second, held constant whatever the server does.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Measured duration in seconds (after warmup).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Warmup seconds at the same rate, not recorded.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Request mix as op=weight pairs; ops: create, list, channel.
    #[arg(long, default_value = "create=50,list=50")]
    mix: Mix,
    /// Users to register (argon2id on the server: keep it modest).
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// Guilds to create; every user joins every guild.
    #[arg(long, default_value_t = 4)]
    guilds: usize,
    /// Text channels per guild (the default `general` plus created ones).
    #[arg(long, default_value_t = 4)]
    channels_per_guild: usize,
    /// Maximum requests in flight (and connection pool size). A request scheduled while all are
    /// busy is dropped and reported, never queued.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Messages posted to each channel during setup.
    #[arg(long, default_value_t = 50)]
    seed_messages: usize,
    /// Padding added to each created message's content, in bytes.
    #[arg(long, default_value_t = 64)]
    content_bytes: usize,
    /// Per-request timeout in milliseconds (a timeout counts as an error).
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Seed for the op/channel/user choice of each request.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Generator worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON object instead of the table (it always includes the timeline).
    #[arg(long)]
    json: bool,
    /// Also print a per-second timeline (by scheduled time) after the table.
    #[arg(long)]
    timeline: bool,
}

fn seconds(name: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("--{name} {v} is not a duration"))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    check_loopback(&cli.api)?;
    anyhow::ensure!(
        cli.rate.is_finite() && cli.rate > 0.0,
        "--rate must be positive"
    );
    anyhow::ensure!(cli.duration > 0.0, "--duration must be positive");
    anyhow::ensure!(cli.connections > 0, "--connections must be positive");
    let timeout = Duration::from_millis(cli.timeout_ms);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(cli.connections)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(timeout)
        .no_proxy()
        .build()
        .context("building the HTTP client")?;

    let setup_plan = SetupPlan {
        users: cli.users,
        guilds: cli.guilds,
        channels_per_guild: cli.channels_per_guild,
        seed_messages: cli.seed_messages,
        parallelism: 8,
    };
    if !cli.json {
        eprintln!(
            "setting up {} users, {} guilds x {} channels, {} seed messages per channel...",
            cli.users, cli.guilds, cli.channels_per_guild, cli.seed_messages
        );
    }
    let setup_started = Instant::now();
    let world = tokio::time::timeout(SETUP_TIMEOUT, build_world(&client, &cli.api, &setup_plan))
        .await
        .context("setup timed out")?
        .context("setup failed")?;
    let setup_s = setup_started.elapsed().as_secs_f64();

    let plan = LoadPlan {
        rate: cli.rate,
        warmup: seconds("warmup", cli.warmup)?,
        duration: seconds("duration", cli.duration)?,
        mix: cli.mix.clone(),
        connections: cli.connections,
        seed: cli.seed,
        content_bytes: cli.content_bytes,
    };
    if !cli.json {
        eprintln!(
            "setup took {setup_s:.1} s; offering {} req/s for {} s + {} s warmup...",
            cli.rate, cli.duration, cli.warmup
        );
    }
    let recorded = run_load(
        &client,
        &cli.api,
        &world,
        &plan,
        timeout + Duration::from_secs(5),
    )
    .await?;

    let config = RunConfig {
        api: cli.api.clone(),
        rate: cli.rate,
        duration_s: cli.duration,
        warmup_s: cli.warmup,
        mix: cli.mix.to_string(),
        users: world.users.len(),
        guilds: world.guilds.len(),
        channels_per_guild: cli.channels_per_guild,
        channels: world.channels.len(),
        connections: cli.connections,
        seed_messages: cli.seed_messages,
        content_bytes: cli.content_bytes,
        timeout_ms: cli.timeout_ms,
    };
    let report = Report::build(config, &recorded, setup_s)?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("encoding the report")?
        );
    } else {
        print!("{}", report.to_table());
        if cli.timeline {
            print!("{}", report.timeline_table());
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if cli.threads > 0 {
        rt.worker_threads(cli.threads);
    }
    let rt = rt.build().context("starting the runtime")?;
    rt.block_on(run(cli))
}
