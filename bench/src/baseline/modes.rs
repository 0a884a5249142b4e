//! The baseline measurements, each the counterpart of one of the gateway generator's modes:
//! `idle` (server RSS per connection), `fanout` (bursts into one room: deliveries per second
//! and server CPU per delivery), `latency` (one open-loop step over G rooms × M members) and
//! `sweep` (latency steps at rising rates until p99 passes the bound).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use reqwest::Client;
use tokio::sync::Semaphore;

use super::conn::{Fleet, Shared, Target};
use super::sweep::{StepResult, Sweep};
use super::wire;
use crate::gateway::client::{Arrivals, LATENCY_MARK};
use crate::gateway::fleet::Opened;
use crate::gateway::modes::{Check, check_arrivals, pct};
use crate::gateway::procfs::{self, CpuUsed, CpuWindow};
use crate::mix::splitmix64;
use crate::run::Pacing;

/// What every mode needs.
#[derive(Debug)]
pub struct Ctx {
    pub client: Client,
    /// `http://127.0.0.1:PORT`, where the rooms' message route is.
    pub http: String,
    pub target: Target,
    /// The server process: its RSS, and its CPU.
    pub server_pid: u32,
    /// Processes whose CPU counts as the server's too (Redis behind the Socket.IO adapter).
    pub helper_pids: Vec<u32>,
    pub ticks: u64,
    pub connect_concurrency: usize,
    /// Printed as it goes (stderr) and returned at the end (stdout).
    pub report: String,
}

/// CPU of the server process alone and with its helpers, over one window.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    pub used: CpuUsed,
    /// `used.server_s` plus the helpers'.
    pub with_helpers_s: f64,
}

impl Ctx {
    pub fn new(
        http: &str,
        target: Target,
        server_pid: u32,
        helper_pids: Vec<u32>,
    ) -> anyhow::Result<Ctx> {
        crate::check_loopback(http)?;
        let client = Client::builder()
            .pool_max_idle_per_host(512)
            // Node closes idle keep-alive connections after 5 s; never reuse one it may have
            // closed, or a post between two steps fails with a transport error.
            .pool_idle_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Ctx {
            client,
            http: http.trim_end_matches('/').to_owned(),
            target,
            server_pid,
            helper_pids,
            ticks: procfs::clock_ticks(),
            connect_concurrency: 256,
            report: String::new(),
        })
    }

    pub fn note(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        eprintln!("{line}");
        self.report.push_str(line);
        self.report.push('\n');
    }

    fn rss(&self) -> anyhow::Result<u64> {
        procfs::rss_kib(self.server_pid)
    }

    fn cpu(&self) -> anyhow::Result<(CpuWindow, u64)> {
        Ok((CpuWindow::start(&[self.server_pid])?, self.helper_ticks()?))
    }

    fn helper_ticks(&self) -> anyhow::Result<u64> {
        self.helper_pids.iter().map(|p| procfs::cpu_ticks(*p)).sum()
    }

    fn used(&self, (w, helpers): &(CpuWindow, u64)) -> anyhow::Result<Cpu> {
        let used = w.end(&[self.server_pid], self.ticks)?;
        let helpers_s = self.helper_ticks()?.saturating_sub(*helpers) as f64 / self.ticks as f64;
        Ok(Cpu {
            used,
            with_helpers_s: used.server_s + helpers_s,
        })
    }

    fn describe(&self, cpu: &Cpu) -> String {
        if self.helper_pids.is_empty() {
            cpu.used.describe()
        } else {
            format!(
                "{}; helpers (Redis) {:.2} CPU-s",
                cpu.used.describe(),
                cpu.with_helpers_s - cpu.used.server_s
            )
        }
    }

    fn opened(&mut self, what: &str, o: &Opened, cpu: &Cpu) {
        self.note(format!(
            "{what}: {} of {} joined their room ({} failed) in {:.2} s = {:.0} joins/s; {}",
            o.identified,
            o.requested,
            o.failed,
            o.elapsed.as_secs_f64(),
            o.rate(),
            self.describe(cpu)
        ));
    }

    fn errors(&mut self, shared: &Shared) {
        let failed = shared.failed.load(Ordering::Relaxed);
        let ended = shared.ended.load(Ordering::Relaxed);
        self.note(format!(
            "connections: {failed} failed to join, {ended} ended early; {} pings answered",
            shared.pongs.load(Ordering::Relaxed)
        ));
        for e in shared.errors.samples() {
            self.note(format!("  error: {e}"));
        }
    }

    fn fleet(&self, connections: usize) -> anyhow::Result<Fleet> {
        Ok(Fleet::new(
            self.target.clone(),
            Shared::new(connections, Instant::now())?,
            self.connect_concurrency,
        ))
    }

    /// Posts one message to a room; true on a 2xx.
    async fn post(&self, room: &str, content: &str) -> anyhow::Result<bool> {
        let body = wire::body(content).context("message content needs escaping")?;
        let res = self
            .client
            .post(format!("{}/rooms/{room}/messages", self.http))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let ok = res.status().is_success();
        let _ = res.bytes().await?;
        Ok(ok)
    }
}

fn room_name(r: usize) -> Arc<str> {
    Arc::from(format!("r{r}"))
}

fn per_conn(kib: i64, n: usize) -> f64 {
    kib as f64 * 1024.0 / n.max(1) as f64
}

/// What `idle` found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct IdleReport {
    pub connections: usize,
    pub joined: usize,
    pub rss_before_kib: u64,
    pub rss_half_kib: u64,
    pub rss_full_kib: u64,
    /// (RSS at N − RSS before any connection) / N.
    pub bytes_per_connection: f64,
    /// (RSS at N − RSS at N/2) / (N/2).
    pub marginal_bytes_per_connection: f64,
    pub joins_per_sec: f64,
}

#[derive(Clone, Debug)]
pub struct IdlePlan {
    pub connections: usize,
    pub room_size: usize,
    pub settle: Duration,
}

/// `idle`: N connections joined into rooms of `room_size`; the server's RSS before any
/// connection, at N/2 and at N, each read after `settle`.
pub async fn idle(ctx: &mut Ctx, plan: IdlePlan) -> anyhow::Result<IdleReport> {
    let n = plan.connections;
    let rooms = n.div_ceil(plan.room_size.max(1)).max(1);
    let mut fleet = ctx.fleet(n)?;
    let names: Vec<Arc<str>> = (0..n).map(|c| room_name(c % rooms)).collect();
    let (first, second) = names.split_at(n / 2);
    tokio::time::sleep(plan.settle).await;
    let rss0 = ctx.rss()?;
    ctx.note(format!(
        "server RSS before any connection: {rss0} KiB (threads {})",
        procfs::threads(ctx.server_pid).unwrap_or(0)
    ));
    let limit = Duration::from_secs(300);
    let cpu = ctx.cpu()?;
    let a = fleet.open(first.to_vec(), limit).await;
    let used = ctx.used(&cpu)?;
    ctx.opened("join phase 1 (N/2)", &a, &used);
    tokio::time::sleep(plan.settle).await;
    let rss_half = ctx.rss()?;
    let cpu = ctx.cpu()?;
    let b = fleet.open(second.to_vec(), limit).await;
    let used = ctx.used(&cpu)?;
    ctx.opened("join phase 2 (rest)", &b, &used);
    tokio::time::sleep(plan.settle).await;
    let rss_full = ctx.rss()?;
    let joined = a.identified + b.identified;
    let elapsed = (a.elapsed + b.elapsed).as_secs_f64().max(1e-9);
    let report = IdleReport {
        connections: n,
        joined,
        rss_before_kib: rss0,
        rss_half_kib: rss_half,
        rss_full_kib: rss_full,
        bytes_per_connection: per_conn(rss_full as i64 - rss0 as i64, joined),
        marginal_bytes_per_connection: per_conn(rss_full as i64 - rss_half as i64, b.identified),
        joins_per_sec: joined as f64 / elapsed,
    };
    ctx.note(format!(
        "server RSS (KiB): before {rss0}; N/2={}: {rss_half}; N={joined}: {rss_full}",
        a.identified
    ));
    ctx.note(format!(
        "per connection, (RSS - RSS before) / N: {:.0} B ({:.2} KiB); marginal (N/2 -> N): {:.0} B ({:.2} KiB); {rooms} rooms",
        report.bytes_per_connection,
        report.bytes_per_connection / 1024.0,
        report.marginal_bytes_per_connection,
        report.marginal_bytes_per_connection / 1024.0,
    ));
    ctx.errors(&fleet.shared.clone());
    fleet.stop(Duration::from_secs(20)).await;
    Ok(report)
}

/// What `fanout` found, over all its rounds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FanoutReport {
    pub sessions: usize,
    pub deliveries: u64,
    pub seconds: f64,
    pub deliveries_per_sec: f64,
    /// Server process and its helpers (Redis), per delivery.
    pub server_cpu_us_per_delivery: f64,
    /// The server process alone.
    pub process_cpu_us_per_delivery: f64,
    pub generator_cpu_us_per_delivery: f64,
    /// Mean WebSocket payload per delivery.
    pub frame_bytes: f64,
    /// Rounds in which not every delivery arrived within 120 s.
    pub incomplete_rounds: usize,
}

#[derive(Clone, Debug)]
pub struct FanoutPlan {
    pub sessions: usize,
    pub burst: usize,
    pub rounds: usize,
    pub content_bytes: usize,
}

/// `fanout`: S connections in one room; `rounds` bursts of K messages posted at once.
/// Deliveries per second = S × K / (last delivery − first send), counted at the receivers.
pub async fn fanout(ctx: &mut Ctx, plan: FanoutPlan) -> anyhow::Result<FanoutReport> {
    let room = room_name(0);
    let mut fleet = ctx.fleet(plan.sessions)?;
    let cpu = ctx.cpu()?;
    let opened = fleet
        .open(vec![room.clone(); plan.sessions], Duration::from_secs(300))
        .await;
    let used = ctx.used(&cpu)?;
    ctx.opened("join", &opened, &used);
    let s = opened.identified;
    anyhow::ensure!(s > 0, "no connection joined");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let padding = "x".repeat(plan.content_bytes);
    let deadline = || Instant::now() + Duration::from_secs(120);
    let shared = fleet.shared.clone();

    let before = shared.messages.count();
    shared.messages.arm(before + s as u64);
    let t0 = Instant::now();
    ctx.post(&room, &format!("warmup {padding}")).await?;
    let warm = shared.messages.wait(deadline()).await;
    ctx.note(format!(
        "warmup message: {}",
        match warm {
            Ok(at) => format!(
                "all {s} connections had it after {:.1} ms",
                at.saturating_duration_since(t0).as_secs_f64() * 1e3
            ),
            Err(got) => format!("only {} of {s} deliveries", got - before),
        }
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut deliveries = 0u64;
    let mut time = Duration::ZERO;
    let (mut server, mut process, mut generator) = (0.0, 0.0, 0.0);
    let mut incomplete = 0;
    let bytes0 = shared.message_bytes.load(Ordering::Relaxed);
    let count0 = shared.messages.count();
    for round in 0..plan.rounds {
        let expect = (s * plan.burst) as u64;
        let before = shared.messages.count();
        shared.messages.arm(before + expect);
        let cpu = ctx.cpu()?;
        let t0 = Instant::now();
        let ok = futures::stream::iter(0..plan.burst)
            .map(|m| {
                let content = format!("burst {m} {padding}");
                let ctx = &*ctx;
                let room = room.clone();
                async move { ctx.post(&room, &content).await }
            })
            .buffer_unordered(plan.burst.max(1))
            .filter(|r| futures::future::ready(matches!(r, Ok(true))))
            .count()
            .await;
        let posted = t0.elapsed();
        let r = shared.messages.wait(deadline()).await;
        let used = ctx.used(&cpu)?;
        match r {
            Ok(at) => {
                let took = at.saturating_duration_since(t0);
                deliveries += expect;
                time += took;
                server += used.with_helpers_s;
                process += used.used.server_s;
                generator += used.used.generator_s;
                ctx.note(format!(
                    "burst {round}: {ok} of {} posted (all answered after {:.0} ms), {expect} deliveries in {:.3} s = {:.0} deliveries/s; server {:.2} µs CPU/delivery; {}",
                    plan.burst,
                    posted.as_secs_f64() * 1e3,
                    took.as_secs_f64(),
                    expect as f64 / took.as_secs_f64().max(1e-9),
                    1e6 * used.with_helpers_s / expect as f64,
                    ctx.describe(&used)
                ));
            }
            Err(got) => {
                incomplete += 1;
                ctx.note(format!(
                    "burst {round}: {ok} of {} posted; only {} of {expect} deliveries within 120 s; {}",
                    plan.burst,
                    got - before,
                    ctx.describe(&used)
                ));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let received = shared.messages.count() - count0;
    let frame_bytes =
        (shared.message_bytes.load(Ordering::Relaxed) - bytes0) as f64 / received.max(1) as f64;
    let per = |cpu: f64| 1e6 * cpu / deliveries.max(1) as f64;
    let report = FanoutReport {
        sessions: s,
        deliveries,
        seconds: time.as_secs_f64(),
        deliveries_per_sec: deliveries as f64 / time.as_secs_f64().max(1e-9),
        server_cpu_us_per_delivery: per(server),
        process_cpu_us_per_delivery: per(process),
        generator_cpu_us_per_delivery: per(generator),
        frame_bytes,
        incomplete_rounds: incomplete,
    };
    ctx.note(format!(
        "bursts overall: {deliveries} deliveries in {:.3} s = {:.0} deliveries/s; server {:.3} µs CPU per delivery ({:.3} µs the server process alone), generator {:.3} µs; {:.0} bytes per frame",
        report.seconds,
        report.deliveries_per_sec,
        report.server_cpu_us_per_delivery,
        report.process_cpu_us_per_delivery,
        report.generator_cpu_us_per_delivery,
        report.frame_bytes,
    ));
    ctx.errors(&shared);
    fleet.stop(Duration::from_secs(20)).await;
    Ok(report)
}

#[derive(Clone, Debug)]
pub struct LatencyPlan {
    pub rooms: usize,
    pub members: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub in_flight: usize,
    pub content_bytes: usize,
    pub p99_limit_ms: f64,
}

/// Opens G × M connections, connection `c` in room `c % G`.
async fn open_rooms(ctx: &mut Ctx, plan: &LatencyPlan) -> anyhow::Result<Fleet> {
    let n = plan.rooms * plan.members;
    let mut fleet = ctx.fleet(n)?;
    let cpu = ctx.cpu()?;
    let names: Vec<Arc<str>> = (0..n).map(|c| room_name(c % plan.rooms)).collect();
    let opened = fleet.open(names, Duration::from_secs(300)).await;
    let used = ctx.used(&cpu)?;
    ctx.opened("join", &opened, &used);
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(fleet)
}

/// `latency`: one open-loop step at `rate` messages per second over G rooms × M members.
pub async fn latency(ctx: &mut Ctx, plan: LatencyPlan, rate: f64) -> anyhow::Result<StepResult> {
    let fleet = open_rooms(ctx, &plan).await?;
    let r = step(ctx, &fleet, &plan, rate, 0).await;
    ctx.errors(&fleet.shared.clone());
    fleet.stop(Duration::from_secs(20)).await;
    r
}

/// What `sweep` found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SweepReport {
    pub p99_limit_ms: f64,
    pub steps: Vec<StepResult>,
    /// The passing step with the most deliveries per second.
    pub best: Option<StepResult>,
}

impl SweepReport {
    pub fn new(p99_limit_ms: f64, steps: Vec<StepResult>) -> SweepReport {
        let best = steps
            .iter()
            .filter(|s| s.passed(p99_limit_ms))
            .max_by(|a, b| a.deliveries_per_sec.total_cmp(&b.deliveries_per_sec))
            .copied();
        SweepReport {
            p99_limit_ms,
            steps,
            best,
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::from(
            "| msg/s | deliveries/s | p50 | p99 | p99.9 | max | lost | unexpected | dropped | failed posts | server µs/delivery | pass |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for s in &self.steps {
            let _ = writeln!(
                out,
                "| {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {:.2} | {} |",
                s.rate,
                s.deliveries_per_sec,
                s.p50_ms,
                s.p99_ms,
                s.p999_ms,
                s.max_ms,
                s.lost,
                s.unexpected,
                s.dropped,
                s.failed_posts,
                s.server_cpu_us_per_delivery,
                if s.passed(self.p99_limit_ms) {
                    "yes"
                } else {
                    "no"
                }
            );
        }
        match &self.best {
            Some(b) => {
                let _ = writeln!(
                    out,
                    "best with p99 <= {} ms: {:.0} deliveries/s ({:.0} msg/s, p99 {:.2} ms)",
                    self.p99_limit_ms, b.deliveries_per_sec, b.rate, b.p99_ms
                );
            }
            None => {
                let _ = writeln!(out, "no step passed with p99 <= {} ms", self.p99_limit_ms);
            }
        }
        out
    }
}

/// `sweep`: latency steps on one set of connections, at the rates [`Sweep`] picks.
pub async fn sweep(
    ctx: &mut Ctx,
    plan: LatencyPlan,
    mut rates: Sweep,
) -> anyhow::Result<SweepReport> {
    let fleet = open_rooms(ctx, &plan).await?;
    let mut steps = Vec::new();
    let mut base = 0u64;
    while let Some(rate) = rates.next_rate() {
        let r = step(ctx, &fleet, &plan, rate, base).await?;
        base += 1 << 32;
        rates.record(r.passed(plan.p99_limit_ms));
        steps.push(r);
        // A step the server could not keep up with may still be delivering: let that end
        // first, or the next step would count those late messages against itself.
        quiesce(&fleet.shared, Duration::from_secs(120)).await;
    }
    ctx.errors(&fleet.shared.clone());
    fleet.stop(Duration::from_secs(20)).await;
    let report = SweepReport::new(plan.p99_limit_ms, steps);
    ctx.note(report.table());
    Ok(report)
}

/// Waits until no message has arrived for two seconds, at most `limit`.
async fn quiesce(shared: &Shared, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = shared.messages.count();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = shared.messages.count();
        if now == last {
            return;
        }
        last = now;
    }
}

/// Posts of one step, counted.
struct PostStats {
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// Per room, the messages that got a 2xx: how many, and the sum of their hashed indices.
    per_room: Vec<(AtomicU64, AtomicU64)>,
    error_samples: std::sync::Mutex<Vec<String>>,
}

struct Schedule {
    ctx_client: Client,
    http: String,
    rooms: Vec<Arc<str>>,
    padding: String,
    epoch: Instant,
    pacing: Pacing,
    base: u64,
    sem: Arc<Semaphore>,
    stats: Arc<PostStats>,
    runtime: tokio::runtime::Handle,
}

/// Sends message `i` when `pacing` has it due, to room `i % G`. Runs on a thread of its own
/// (see [`Pacing::wait_for`]).
fn schedule(s: Schedule) {
    let g = s.rooms.len() as u64;
    for i in 0..s.pacing.total {
        let scheduled = s.pacing.wait_for(i);
        let Ok(permit) = s.sem.clone().try_acquire_owned() else {
            s.stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let room = (i % g) as usize;
        let index = s.base + i;
        let sent_ns = scheduled.saturating_duration_since(s.epoch).as_nanos() as u64;
        let mut content = String::with_capacity(40 + s.padding.len());
        let _ = write!(content, "{LATENCY_MARK}{sent_ns} {index} {}", s.padding);
        let Some(body) = wire::body(&content) else {
            continue;
        };
        let url = format!("{}/rooms/{}/messages", s.http, s.rooms[room]);
        let client = s.ctx_client.clone();
        let stats = s.stats.clone();
        stats.sent.fetch_add(1, Ordering::Relaxed);
        s.runtime.spawn(async move {
            let r = async {
                let res = client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = res.status();
                let _ = res.bytes().await?;
                anyhow::Ok(status)
            }
            .await;
            match r {
                Ok(st) if st.is_success() => {
                    stats.ok.fetch_add(1, Ordering::Relaxed);
                    let (count, set) = &stats.per_room[room];
                    count.fetch_add(1, Ordering::Relaxed);
                    set.fetch_add(splitmix64(index), Ordering::Relaxed);
                }
                Ok(st) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    let mut e = stats
                        .error_samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    if e.len() < 4 {
                        e.push(format!("status {st}"));
                    }
                }
                Err(err) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    let mut e = stats
                        .error_samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    let msg = format!("{err:#}");
                    if e.len() < 4 && !e.contains(&msg) {
                        e.push(msg);
                    }
                }
            }
            drop(permit);
        });
    }
}

/// One open-loop step on open connections: `warmup + duration` seconds at `rate`, message
/// indices from `base` (so a late delivery from an earlier step shows as unexpected).
async fn step(
    ctx: &mut Ctx,
    fleet: &Fleet,
    plan: &LatencyPlan,
    rate: f64,
    base: u64,
) -> anyhow::Result<StepResult> {
    anyhow::ensure!(rate.is_finite() && rate > 0.0, "the rate must be positive");
    let shared = fleet.shared.clone();
    let g = plan.rooms;
    let _ = shared.take_arrivals();
    let count0 = shared.messages.count();
    let pacing = Pacing::new(
        Instant::now() + Duration::from_millis(100),
        rate,
        plan.warmup,
        plan.duration,
    );
    let measure_start = pacing.measure_start();
    shared.latencies.restart(measure_start);
    let stats = Arc::new(PostStats {
        sent: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        per_room: (0..g)
            .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
            .collect(),
        error_samples: std::sync::Mutex::new(Vec::new()),
    });
    let in_flight = plan.in_flight.max(1);
    let sem = Arc::new(Semaphore::new(in_flight));
    let sched = Schedule {
        ctx_client: ctx.client.clone(),
        http: ctx.http.clone(),
        rooms: (0..g).map(room_name).collect(),
        padding: "x".repeat(plan.content_bytes),
        epoch: shared.latencies.epoch,
        pacing,
        base,
        sem: sem.clone(),
        stats: stats.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let scheduler = tokio::task::spawn_blocking(move || schedule(sched));
    tokio::time::sleep_until(tokio::time::Instant::from_std(measure_start)).await;
    let cpu = ctx.cpu()?;
    scheduler.await.context("the scheduler thread failed")?;
    let used = ctx.used(&cpu)?;
    let permits = u32::try_from(in_flight).unwrap_or(u32::MAX);
    if let Ok(Ok(p)) =
        tokio::time::timeout(Duration::from_secs(30), sem.acquire_many(permits)).await
    {
        drop(p);
    }

    // Every 2xx message reaches every member of its room.
    let ok = stats.ok.load(Ordering::Relaxed);
    let expect = ok * plan.members as u64;
    shared.messages.arm(count0 + expect);
    let got = match shared
        .messages
        .wait(Instant::now() + Duration::from_secs(30))
        .await
    {
        Ok(_) => expect,
        Err(got) => got - count0,
    };
    // Anything still on its way (a duplicate, say) gets a moment to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    shared.latencies.pause();
    let arrivals = shared.take_arrivals();
    let sent: Vec<Arrivals> = Arrivals::sent(&stats.per_room);
    let check: Check = check_arrivals(&sent, &arrivals, |c| c % g);
    let h = shared.latencies.merged()?;
    let deliveries_per_sec = h.len() as f64 / plan.duration.as_secs_f64().max(1e-9);
    let result = StepResult {
        rate,
        deliveries_per_sec,
        p50_ms: pct(&h, 0.50),
        p99_ms: pct(&h, 0.99),
        p999_ms: pct(&h, 0.999),
        max_ms: h.max() as f64 / 1000.0,
        lost: check.lost,
        unexpected: check.unexpected + check.wrong_set + check.out_of_order,
        dropped: stats.dropped.load(Ordering::Relaxed),
        failed_posts: stats.failed.load(Ordering::Relaxed),
        server_cpu_us_per_delivery: 1e6 * used.with_helpers_s / h.len().max(1) as f64,
    };
    ctx.note(format!(
        "step {rate:.0} msg/s for {:.0} s (+{:.0} s warmup) over {g} rooms x {}: {} posted, {ok} got 2xx, {} failed, {} dropped (all {in_flight} slots busy)",
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        plan.members,
        stats.sent.load(Ordering::Relaxed),
        result.failed_posts,
        result.dropped,
    ));
    for e in stats
        .error_samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        ctx.note(format!("  post error: {e}"));
    }
    ctx.note(format!(
        "  deliveries: {got} of {expect} expected (whole step): {} lost, {} unexpected; connections with other messages than their room was sent: {}, in another order than the rest of their room: {}; measured: {} deliveries = {deliveries_per_sec:.0} deliveries/s",
        check.lost,
        check.unexpected,
        check.wrong_set,
        check.out_of_order,
        h.len(),
    ));
    ctx.note(format!(
        "  delivery latency (scheduled send -> frame read): p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms; {}",
        result.p50_ms,
        pct(&h, 0.90),
        result.p99_ms,
        result.p999_ms,
        result.max_ms,
        if result.passed(plan.p99_limit_ms) { "pass" } else { "FAIL" }
    ));
    ctx.note(format!(
        "  CPU during the measured window: {}; server {:.2} µs per delivery",
        ctx.describe(&used),
        result.server_cpu_us_per_delivery
    ));
    Ok(result)
}
