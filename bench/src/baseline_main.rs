//! `enrichment-baseline-load`: the gateway measurements against the Node.js baselines in
//! `bench/baselines/` (loopback only), and the rate sweep of a node through
//! `enrichment-gateway-load`.
//!
//! See the `enrichment_bench::baseline` module docs for what each mode measures.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use enrichment_bench::baseline::conn::{Flavor, Target};
use enrichment_bench::baseline::modes::{
    self, Ctx, FanoutPlan, IdlePlan, LatencyPlan, SweepReport,
};
use enrichment_bench::baseline::sweep::{StepResult, Sweep};
use enrichment_bench::cli::{LoadArgs, ensure_open_files, loopback_sources, seconds};
use enrichment_bench::gateway::procfs;

#[derive(Parser, Debug)]
#[command(
    name = "enrichment-baseline-load",
    version,
    about = "Room broadcast load against the Node.js baselines (Socket.IO, ws): idle memory, fanout rate, delivery latency and rate sweeps (loopback only)"
)]
struct Cli {
    /// The baseline server, e.g. http://127.0.0.1:3000 (loopback only).
    #[arg(long, global = true)]
    server: Option<String>,
    /// What the server speaks.
    #[arg(long, global = true, value_enum)]
    flavor: Option<Flavor>,
    /// The server's process id, for its RSS and CPU time from /proc.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// A process whose CPU counts as the server's too (Redis behind the Socket.IO adapter);
    /// may be repeated.
    #[arg(long = "helper-pid", global = true)]
    helper_pids: Vec<u32>,
    #[command(flatten)]
    load: LoadArgs,
    /// Connections connecting and joining at once.
    #[arg(long, global = true, default_value_t = 256)]
    connect_concurrency: usize,
    /// Print the result as one JSON object on stdout; the running commentary still goes to
    /// stderr.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// N connections joined into rooms: server RSS per connection.
    Idle(IdleArgs),
    /// S connections in one room, bursts of K posts at once: deliveries/s, CPU per delivery.
    Fanout(FanoutArgs),
    /// G rooms x M members at one open-loop rate: delivery latency percentiles.
    Latency(LatencyArgs),
    /// Latency steps at rising rates: the most deliveries/s with p99 within the bound.
    Sweep(SweepArgs),
    /// The same sweep, running a command once per rate with `--rate R` appended; its stdout
    /// must be the JSON of `enrichment-gateway-load latency --json`.
    SweepCommand(SweepCommandArgs),
}

#[derive(Args, Debug)]
struct IdleArgs {
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Connections per room.
    #[arg(long, default_value_t = 100)]
    room_size: usize,
    /// Seconds to wait before each memory reading.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
}

#[derive(Args, Debug)]
struct FanoutArgs {
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// Messages per burst, all posted at once.
    #[arg(long, default_value_t = 200)]
    burst: usize,
    #[arg(long, default_value_t = 3)]
    burst_rounds: usize,
    /// Padding added to each message's content, in bytes.
    #[arg(long, default_value_t = 64)]
    content_bytes: usize,
}

#[derive(Args, Debug)]
struct StepArgs {
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Connections per room.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Measured seconds per step.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Warmup seconds at the same rate before each step's measured window.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// HTTP posts in flight at most; a message scheduled while all are busy is dropped.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    #[arg(long, default_value_t = 64)]
    content_bytes: usize,
    /// The p99 delivery latency a step must stay within to pass, in ms.
    #[arg(long, default_value_t = 50.0)]
    p99_ms: f64,
}

#[derive(Args, Debug)]
struct LatencyArgs {
    #[command(flatten)]
    step: StepArgs,
    /// Messages per second, over all rooms.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
}

#[derive(Args, Debug, Clone)]
struct SweepRates {
    /// The first rate, in messages per second over all rooms.
    #[arg(long, default_value_t = 200.0)]
    start: f64,
    /// Rates grow by this factor while steps pass.
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    /// Bisections between the highest pass and the lowest failure.
    #[arg(long, default_value_t = 2)]
    refine: usize,
    #[arg(long, default_value_t = 10)]
    max_steps: usize,
}

impl SweepRates {
    fn sweep(&self) -> anyhow::Result<Sweep> {
        Sweep::new(self.start, self.factor, self.refine, self.max_steps)
    }
}

#[derive(Args, Debug)]
struct SweepArgs {
    #[command(flatten)]
    step: StepArgs,
    #[command(flatten)]
    rates: SweepRates,
}

#[derive(Args, Debug)]
struct SweepCommandArgs {
    #[command(flatten)]
    rates: SweepRates,
    /// The p99 delivery latency a step must stay within to pass, in ms.
    #[arg(long, default_value_t = 50.0)]
    p99_ms: f64,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

impl StepArgs {
    fn plan(&self) -> anyhow::Result<LatencyPlan> {
        anyhow::ensure!(
            self.rooms > 0 && self.members > 0,
            "rooms and members must be positive"
        );
        Ok(LatencyPlan {
            rooms: self.rooms,
            members: self.members,
            duration: seconds("duration", self.duration)?,
            warmup: seconds("warmup", self.warmup)?,
            in_flight: self.in_flight,
            content_bytes: self.content_bytes,
            p99_limit_ms: self.p99_ms,
        })
    }
}

fn connections_needed(mode: &Mode) -> usize {
    match mode {
        Mode::Idle(a) => a.connections,
        Mode::Fanout(a) => a.sessions,
        Mode::Latency(a) => a.step.rooms * a.step.members,
        Mode::Sweep(a) => a.step.rooms * a.step.members,
        Mode::SweepCommand(_) => 0,
    }
}

/// The server's socket address, from `--server` (loopback only).
fn server_addr(http: &str) -> anyhow::Result<SocketAddr> {
    enrichment_bench::check_loopback(http)?;
    let url = reqwest::Url::parse(http)?;
    let host = url.host_str().context("--server has no host")?;
    let port = url.port().context("--server needs a port")?;
    (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .find(|a| a.is_ipv4())
        .context("no IPv4 address for --server")
}

/// Runs the sweep with an external command per step.
fn sweep_command(a: SweepCommandArgs) -> anyhow::Result<SweepReport> {
    let mut rates = a.rates.sweep()?;
    let mut steps = Vec::new();
    let (program, args) = a.command.split_first().context("no command")?;
    while let Some(rate) = rates.next_rate() {
        eprintln!("sweep step: {rate:.0} msg/s");
        let out = std::process::Command::new(program)
            .args(args)
            .arg("--rate")
            .arg(format!("{rate}"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {program}"))?;
        anyhow::ensure!(
            out.status.success(),
            "{program} at {rate} msg/s failed: {}",
            out.status
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("{program} did not print one JSON object"))?;
        let r = StepResult::from_gateway_json(&v)?;
        rates.record(r.passed(a.p99_ms));
        steps.push(r);
        std::thread::sleep(Duration::from_secs(2));
    }
    Ok(SweepReport::new(a.p99_ms, steps))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let http = cli.server.clone().context("--server is required")?;
    let flavor = cli.flavor.context("--flavor is required")?;
    let server_pid = cli.server_pid.context("--server-pid is required")?;
    procfs::rss_kib(server_pid).context("--server-pid must be a running process")?;
    for pid in &cli.helper_pids {
        procfs::cpu_ticks(*pid).context("--helper-pid must be a running process")?;
    }
    anyhow::ensure!(cli.load.sources >= 1, "--sources must be at least 1");
    let need = connections_needed(&cli.mode);
    ensure_open_files(need, 600)?;
    let target = Target {
        server: server_addr(&http)?,
        flavor,
        sources: loopback_sources(cli.load.sources),
        join_timeout: Duration::from_secs(60),
    };
    let mut ctx = Ctx::new(&http, target, server_pid, cli.helper_pids.clone())?;
    ctx.connect_concurrency = cli.connect_concurrency;
    ctx.note(format!(
        "{flavor:?} baseline at {http} (pid {server_pid}{})",
        if cli.helper_pids.is_empty() {
            String::new()
        } else {
            format!(", helper pids {:?} counted as server CPU", cli.helper_pids)
        }
    ));
    let json = match cli.mode {
        Mode::Idle(a) => serde_json::to_value(
            modes::idle(
                &mut ctx,
                IdlePlan {
                    connections: a.connections,
                    room_size: a.room_size,
                    settle: seconds("settle", a.settle)?,
                },
            )
            .await?,
        )?,
        Mode::Fanout(a) => serde_json::to_value(
            modes::fanout(
                &mut ctx,
                FanoutPlan {
                    sessions: a.sessions,
                    burst: a.burst,
                    rounds: a.burst_rounds,
                    content_bytes: a.content_bytes,
                },
            )
            .await?,
        )?,
        Mode::Latency(a) => {
            anyhow::ensure!(
                a.rate.is_finite() && a.rate > 0.0,
                "--rate must be positive"
            );
            serde_json::to_value(modes::latency(&mut ctx, a.step.plan()?, a.rate).await?)?
        }
        Mode::Sweep(a) => {
            serde_json::to_value(modes::sweep(&mut ctx, a.step.plan()?, a.rates.sweep()?).await?)?
        }
        Mode::SweepCommand(_) => anyhow::bail!("sweep-command runs without a server"),
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", ctx.report);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Mode::SweepCommand(a) = cli.mode {
        let json = cli.json;
        let report = sweep_command(a)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.table());
        }
        return Ok(());
    }
    let rt = cli.load.runtime()?;
    rt.block_on(run(cli))
}
