//! `enrichment-gateway-load`: many gateway sessions against one node (loopback only).
//!
//! See the `enrichment_bench::gateway` module docs for what each mode measures.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use enrichment_bench::check_loopback;
use enrichment_bench::cli::{LoadArgs, ensure_open_files, seconds};
use enrichment_bench::gateway::leader;
use enrichment_bench::gateway::modes::{self, Ctx, FanoutPlan, IdlePlan, LatencyPlan};
use enrichment_bench::gateway::procfs;
use enrichment_bench::gateway::scenario::Scenario;
use enrichment_protocol::gateway::intents;

#[derive(Parser, Debug)]
#[command(
    name = "enrichment-gateway-load",
    version,
    about = "Gateway sessions against an Enrichment node: idle memory, fanout rate, delivery latency (loopback only)"
)]
struct Cli {
    /// API base URL, e.g. http://127.0.0.1:8080/api/v10 (loopback only). Given once per node
    /// of a cluster: setup and posts go to the first, connections are spread over every
    /// node's gateway, and the nodes' counters are summed.
    #[arg(long = "api", global = true)]
    apis: Vec<String>,
    /// The server's process id, for its RSS and CPU time from /proc; once per node of a
    /// cluster (summed).
    #[arg(long = "server-pid", global = true)]
    server_pids: Vec<u32>,
    #[command(flatten)]
    load: LoadArgs,
    /// Connections identifying at once.
    #[arg(long, global = true, default_value_t = 256)]
    identify_concurrency: usize,
    /// Concurrent REST requests during setup.
    #[arg(long, global = true, default_value_t = 16)]
    setup_parallelism: usize,
    /// Intents sent in IDENTIFY (default: GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT; no
    /// presences, so users coming online do not fan out to every session).
    #[arg(long, global = true, default_value_t = intents::GUILDS | intents::GUILD_MESSAGES | intents::MESSAGE_CONTENT)]
    intents: u64,
    /// Print the result as one JSON object on stdout (latency mode); the running commentary
    /// still goes to stderr.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// N identified connections in one guild that only heartbeat: identify rate, memory.
    Idle(IdleArgs),
    /// S sessions in one guild: deliveries per second, batched and one event at a time.
    Fanout(FanoutArgs),
    /// G guilds x M members, open-loop message rate: delivery latency percentiles.
    Latency(LatencyArgs),
    /// A scenario file (bench/scenarios/*.toml): a latency run spread over several worker
    /// processes, with an optional storm of resumes and slow consumers; writes result.json,
    /// summary.md and SVG plots.
    Scenario(ScenarioArgs),
    /// One worker process of a scenario, started by the scenario's leader.
    #[command(hide = true)]
    Worker,
}

#[derive(Args, Debug)]
struct ScenarioArgs {
    /// The scenario file.
    file: std::path::PathBuf,
    /// Where to write result.json, summary.md and the plots (default: ./NAME-UNIXTIME).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
struct IdleArgs {
    #[arg(long, default_value_t = 15_000)]
    connections: usize,
    /// Users the connections are spread over (each has connections / users sessions).
    #[arg(long, default_value_t = 150)]
    users: usize,
    /// Messages posted into the guild after everyone is identified.
    #[arg(long, default_value_t = 50)]
    burst: usize,
    #[arg(long, default_value_t = 8)]
    burst_concurrency: usize,
    /// Seconds to wait before each memory reading.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
    /// Seconds to hold the idle connections at the end (server CPU while idle).
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// Padding added to each message's content, in bytes.
    #[arg(long, default_value_t = 64)]
    content_bytes: usize,
    /// Stop each connection after HELLO (no IDENTIFY): what a socket costs without a session.
    #[arg(long)]
    hello_only: bool,
}

#[derive(Args, Debug)]
struct FanoutArgs {
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Messages per burst, posted concurrently.
    #[arg(long, default_value_t = 200)]
    burst: usize,
    #[arg(long, default_value_t = 3)]
    burst_rounds: usize,
    /// HTTP requests in flight during a burst; 0 posts the whole burst at once. Fewer in
    /// flight means smaller group commits, so fewer events per connection wake-up.
    #[arg(long, default_value_t = 0)]
    burst_concurrency: usize,
    /// Messages sent one at a time, each after the previous reached every session.
    #[arg(long, default_value_t = 100)]
    events: usize,
    #[arg(long, default_value_t = 64)]
    content_bytes: usize,
}

#[derive(Args, Debug)]
struct LatencyArgs {
    #[arg(long, default_value_t = 100)]
    guilds: usize,
    /// Sessions per guild.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Sessions per user (members / sessions-per-user users per guild).
    #[arg(long, default_value_t = 1)]
    sessions_per_user: usize,
    /// Messages per second, over all guilds.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Warmup seconds at the same rate, not recorded.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// HTTP posts in flight at most; a message scheduled while all are busy is dropped.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    #[arg(long, default_value_t = 64)]
    content_bytes: usize,
}

/// The sockets this process opens itself (a scenario's are in its workers).
fn connections_needed(mode: &Mode) -> usize {
    match mode {
        Mode::Idle(a) => a.connections,
        Mode::Fanout(a) => a.sessions,
        Mode::Latency(a) => a.guilds * a.members,
        Mode::Scenario(_) | Mode::Worker => 0,
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Mode::Worker = cli.mode {
        return enrichment_bench::gateway::worker::run().await;
    }
    // Read before anything starts, so that a bad file costs nothing.
    let scenario = match &cli.mode {
        Mode::Scenario(a) => Some(Scenario::load(&a.file)?),
        _ => None,
    };
    anyhow::ensure!(!cli.apis.is_empty(), "--api is required");
    for api in &cli.apis {
        check_loopback(api)?;
    }
    anyhow::ensure!(!cli.server_pids.is_empty(), "--server-pid is required");
    for pid in &cli.server_pids {
        procfs::rss_kib(*pid).context("--server-pid must be a running process")?;
    }
    anyhow::ensure!(cli.load.sources >= 1, "--sources must be at least 1");
    let need = connections_needed(&cli.mode);
    ensure_open_files(need, 200)?;
    anyhow::ensure!(
        !cli.json || matches!(cli.mode, Mode::Latency(_) | Mode::Scenario(_)),
        "--json is offered by the latency and scenario modes"
    );
    let mut ctx = Ctx::new(
        cli.apis,
        cli.server_pids,
        cli.load.sources,
        cli.intents,
        cli.identify_concurrency,
        cli.setup_parallelism,
    )
    .await?;
    match cli.mode {
        Mode::Idle(a) => {
            modes::idle(
                &mut ctx,
                IdlePlan {
                    connections: a.connections,
                    users: a.users,
                    burst: a.burst,
                    burst_concurrency: a.burst_concurrency,
                    settle: seconds("settle", a.settle)?,
                    hold: seconds("hold", a.hold)?,
                    content_bytes: a.content_bytes,
                    hello_only: a.hello_only,
                },
            )
            .await?
        }
        Mode::Fanout(a) => {
            modes::fanout(
                &mut ctx,
                FanoutPlan {
                    sessions: a.sessions,
                    users: a.users,
                    burst: a.burst,
                    burst_rounds: a.burst_rounds,
                    burst_concurrency: a.burst_concurrency,
                    events: a.events,
                    content_bytes: a.content_bytes,
                },
            )
            .await?
        }
        Mode::Latency(a) => {
            anyhow::ensure!(
                a.rate.is_finite() && a.rate > 0.0,
                "--rate must be positive"
            );
            let report = modes::latency(
                &mut ctx,
                LatencyPlan {
                    guilds: a.guilds,
                    members: a.members,
                    sessions_per_user: a.sessions_per_user,
                    rate: a.rate,
                    duration: seconds("duration", a.duration)?,
                    warmup: seconds("warmup", a.warmup)?,
                    in_flight: a.in_flight,
                    content_bytes: a.content_bytes,
                },
            )
            .await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
        }
        Mode::Scenario(a) => {
            let scenario = scenario.context("the scenario was read above")?;
            let out = a.out.unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                format!("{}-{now}", scenario.name).into()
            });
            let result = leader::run(&mut ctx, &scenario, &out).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&result)?);
                return Ok(());
            }
        }
        Mode::Worker => unreachable!("handled above"),
    }
    print!("{}", ctx.report);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = cli.load.runtime()?;
    rt.block_on(run(cli))
}
