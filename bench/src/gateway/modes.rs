//! The three measurements: `idle` (memory per connection, identify rate), `fanout` (deliveries
//! per second and server CPU per delivery, batched and one event at a time) and `latency`
//! (delivery latency under an open-loop message rate).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use enrichment_protocol::Snowflake;
use futures::StreamExt;
use hdrhistogram::Histogram;
use reqwest::Client;
use reqwest::header::HeaderValue;
use tokio::sync::Semaphore;

use super::client::{Arrivals, Latencies, Shared, Target};
use super::fleet::{Fleet, Opened};
use super::posting::{PostStats, Schedule, post, schedule};
use super::procfs::{self, CpuUsed, CpuWindow};
use super::world::{self, GwWorld, WorldPlan};
use crate::run::{Pacing, new_histogram};

/// What every mode needs.
#[derive(Debug)]
pub struct Ctx {
    pub client: Client,
    /// Where setup and posts go: the first node's API.
    pub api: String,
    /// Every node's API (the first is `api`), for their `/metrics`.
    pub nodes: Vec<String>,
    pub target: Target,
    /// Every node's process: RSS and CPU are their sums.
    pub server_pids: Vec<u32>,
    pub ticks: u64,
    pub identify_concurrency: usize,
    pub setup_parallelism: usize,
    /// Printed as it goes (stderr) and returned at the end (stdout).
    pub report: String,
}

impl Ctx {
    /// A context for the nodes at `apis` (loopback only; setup and posts go to the first),
    /// their gateways found through `GET /gateway`, connections spread over `sources`
    /// addresses 127.0.0.1 ..= 127.0.0.N.
    pub async fn new(
        apis: Vec<String>,
        server_pids: Vec<u32>,
        sources: u8,
        intents: u64,
        identify_concurrency: usize,
        setup_parallelism: usize,
    ) -> anyhow::Result<Ctx> {
        anyhow::ensure!(sources >= 1, "at least one source address");
        let client = Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        let nodes: Vec<String> = apis
            .iter()
            .map(|a| a.trim_end_matches('/').to_owned())
            .collect();
        anyhow::ensure!(!nodes.is_empty(), "no node to run against");
        let mut gateways = Vec::with_capacity(nodes.len());
        for api in &nodes {
            crate::check_loopback(api)?;
            gateways.push(gateway(&client, api).await?);
        }
        let sources = crate::cli::loopback_sources(sources);
        Ok(Ctx {
            client,
            api: nodes[0].clone(),
            nodes,
            target: Target {
                gateways,
                sources,
                intents,
                identify_timeout: Duration::from_secs(60),
                identify: true,
            },
            server_pids,
            ticks: procfs::clock_ticks(),
            identify_concurrency,
            setup_parallelism,
            report: String::new(),
        })
    }

    pub(crate) fn note(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        eprintln!("{line}");
        self.report.push_str(line);
        self.report.push('\n');
    }

    pub(crate) fn rss(&self) -> anyhow::Result<u64> {
        self.server_pids.iter().map(|p| procfs::rss_kib(*p)).sum()
    }

    fn threads(&self) -> u64 {
        self.server_pids
            .iter()
            .map(|p| procfs::threads(*p).unwrap_or(0))
            .sum()
    }

    fn cpu(&self) -> anyhow::Result<CpuWindow> {
        CpuWindow::start(&self.server_pids)
    }

    fn used(&self, w: &CpuWindow) -> anyhow::Result<CpuUsed> {
        w.end(&self.server_pids, self.ticks)
    }

    /// The nodes' gateway write counters, from their `/metrics`, summed (zeros where
    /// unavailable).
    async fn counters(&self) -> Counters {
        let [writes, frames, deliveries] = self
            .metrics([
                "enrichment_gateway_writes_total",
                "enrichment_gateway_frames_written_total",
                "enrichment_gateway_deliveries_total",
            ])
            .await;
        Counters {
            writes,
            frames,
            deliveries,
        }
    }

    /// Unlabelled metrics from every node's `/metrics`, summed over the nodes (zero where one
    /// is unavailable).
    pub(crate) async fn metrics<const N: usize>(&self, names: [&str; N]) -> [f64; N] {
        let mut sum = [0.0; N];
        for api in &self.nodes {
            let root = api.trim_end_matches("/api/v10");
            let text = match self.client.get(format!("{root}/metrics")).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            for (name, total) in names.iter().zip(sum.iter_mut()) {
                *total += text
                    .lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                    .unwrap_or(0.0);
            }
        }
        sum
    }

    pub(crate) async fn world(&mut self, plan: WorldPlan) -> anyhow::Result<GwWorld> {
        let started = Instant::now();
        let w = tokio::time::timeout(
            Duration::from_secs(600),
            world::build(&self.client, &self.api, &plan),
        )
        .await
        .context("setup timed out")??;
        self.note(format!(
            "setup: {} users in {} guild(s) ({} per guild) in {:.1} s",
            w.users.len(),
            w.guilds.len(),
            plan.users_per_guild,
            started.elapsed().as_secs_f64()
        ));
        Ok(w)
    }

    fn opened(&mut self, what: &str, o: &Opened, cpu: &CpuUsed) {
        self.note(format!(
            "{what}: {} of {} identified ({} failed) in {:.2} s = {:.0} identifies/s; {}",
            o.identified,
            o.requested,
            o.failed,
            o.elapsed.as_secs_f64(),
            o.rate(),
            cpu.describe()
        ));
    }

    fn errors(&mut self, shared: &Shared) {
        let failed = shared.failed.load(Ordering::Relaxed);
        let ended = shared.ended.load(Ordering::Relaxed);
        self.note(format!(
            "connections: {failed} failed to identify, {ended} ended early; {} heartbeats sent, {} frames received after identify",
            shared.heartbeats_sent.load(Ordering::Relaxed),
            shared.frames.load(Ordering::Relaxed)
        ));
        for e in shared.errors.samples() {
            self.note(format!("  error: {e}"));
        }
    }
}

/// `ws://host:port` from `GET /gateway`, resolved to a loopback socket address.
async fn gateway(client: &Client, api: &str) -> anyhow::Result<(SocketAddr, String)> {
    let body: serde_json::Value = client
        .get(format!("{api}/gateway"))
        .send()
        .await
        .context("GET /gateway")?
        .error_for_status()?
        .json()
        .await?;
    let url = body["url"].as_str().context("GET /gateway has no url")?;
    let hostport = url
        .strip_prefix("ws://")
        .context("the gateway URL is not ws://")?
        .trim_end_matches('/');
    let addr = hostport
        .to_socket_addrs()
        .with_context(|| format!("resolving {hostport}"))?
        .find(|a| a.is_ipv4())
        .context("no IPv4 address for the gateway")?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the gateway {addr} is not on loopback"
    );
    Ok((addr, format!("ws://{hostport}/?v=10&encoding=json")))
}

/// Gateway counters the server exports: socket writes (one flush each), frames written, and
/// dispatches fanned out by guild actors.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    writes: f64,
    frames: f64,
    deliveries: f64,
}

impl Counters {
    fn since(&self, before: &Counters) -> String {
        let w = self.writes - before.writes;
        let f = self.frames - before.frames;
        let d = self.deliveries - before.deliveries;
        format!(
            "server fanned out {d:.0} dispatches and wrote {f:.0} frames in {w:.0} flushes ({:.2} frames per write)",
            f / w.max(1.0)
        )
    }
}

/// The connections of a run: connection `c` belongs to user `c % users` of the world.
fn sessions(world: &GwWorld, n: usize) -> Vec<(Arc<str>, usize)> {
    let tokens: Vec<Arc<str>> = world
        .users
        .iter()
        .map(|u| Arc::from(u.token.as_str()))
        .collect();
    (0..n)
        .map(|c| (tokens[c % tokens.len()].clone(), 1))
        .collect()
}

/// Posts `k` messages with at most `concurrency` requests in flight; returns how many got 2xx.
async fn post_many(
    ctx: &Ctx,
    channel: Snowflake,
    auth: &HeaderValue,
    k: usize,
    concurrency: usize,
    padding: &str,
) -> usize {
    futures::stream::iter(0..k)
        .map(|m| {
            post(
                &ctx.client,
                &ctx.api,
                channel,
                auth,
                format!("burst {m} {padding}"),
            )
        })
        .buffer_unordered(if concurrency == 0 {
            k.max(1)
        } else {
            concurrency
        })
        .filter(|r| futures::future::ready(matches!(r, Ok(s) if s.is_success())))
        .count()
        .await
}

fn kib(bytes_kib: i64, n: usize) -> String {
    format!(
        "{:.0} B ({:.2} KiB)",
        bytes_kib as f64 * 1024.0 / n.max(1) as f64,
        bytes_kib as f64 / n.max(1) as f64
    )
}

/// Waits for `settle`, then reads the server's RSS.
async fn settled_rss(ctx: &Ctx, settle: Duration) -> anyhow::Result<u64> {
    tokio::time::sleep(settle).await;
    ctx.rss()
}

#[derive(Clone, Debug)]
pub struct IdlePlan {
    pub connections: usize,
    pub users: usize,
    pub burst: usize,
    pub burst_concurrency: usize,
    pub settle: Duration,
    pub hold: Duration,
    pub content_bytes: usize,
    /// Connections stop after HELLO (no session): the cost of the socket and its task alone.
    pub hello_only: bool,
}

/// `idle`: N identified connections in one guild that only heartbeat. Memory before any
/// connection, at N/2 and N (before and after the first heartbeat acknowledges READY and
/// GUILD_CREATE), after a burst of messages and after that burst is acknowledged.
pub async fn idle(ctx: &mut Ctx, plan: IdlePlan) -> anyhow::Result<()> {
    let n = plan.connections;
    let world = ctx
        .world(WorldPlan {
            guilds: 1,
            users_per_guild: plan.users,
            parallelism: ctx.setup_parallelism,
        })
        .await?;
    let guild = world.guilds[0].clone();
    let sender = world.users[guild.members.start].auth.clone();
    let mut target = ctx.target.clone();
    target.identify = !plan.hello_only;
    if plan.hello_only {
        ctx.note("connections stop after HELLO: no IDENTIFY, no session, no burst");
    }
    let mut fleet = Fleet::new(target, Shared::new(None), ctx.identify_concurrency);
    let conns = sessions(&world, n);
    let (first, second) = conns.split_at(n / 2);

    let rss0 = settled_rss(ctx, plan.settle).await?;
    ctx.note(format!(
        "server RSS before any connection: {rss0} KiB (threads {})",
        ctx.threads()
    ));
    let limit = Duration::from_secs(300);

    let cpu = ctx.cpu()?;
    let a = fleet.open(first.to_vec(), limit).await;
    let cpu_a = ctx.used(&cpu)?;
    ctx.opened("identify phase 1 (N/2)", &a, &cpu_a);
    let rss_half_unacked = settled_rss(ctx, plan.settle).await?;
    fleet.heartbeat_now();
    let rss_half = settled_rss(ctx, plan.settle).await?;

    let cpu = ctx.cpu()?;
    let b = fleet.open(second.to_vec(), limit).await;
    let cpu_b = ctx.used(&cpu)?;
    ctx.opened("identify phase 2 (rest)", &b, &cpu_b);
    let rss_full_unacked = settled_rss(ctx, plan.settle).await?;
    fleet.heartbeat_now();
    let rss_full = settled_rss(ctx, plan.settle).await?;
    let open = a.identified + b.identified;
    let total_elapsed = a.elapsed + b.elapsed;
    let identify_cpu = cpu_a.server_s + cpu_b.server_s;
    ctx.note(format!(
        "identify: {open} connections in {:.2} s = {:.0} identifies/s; server {:.1} µs CPU per identify",
        total_elapsed.as_secs_f64(),
        open as f64 / total_elapsed.as_secs_f64().max(1e-9),
        1e6 * identify_cpu / open.max(1) as f64
    ));

    // A burst into the guild everyone is in.
    let burst = if plan.hello_only { 0 } else { plan.burst };
    let expect = (open * burst) as u64;
    let before = fleet.shared.messages.count();
    fleet.shared.messages.arm(before + expect);
    let padding = "x".repeat(plan.content_bytes);
    let counters = ctx.counters().await;
    let cpu = ctx.cpu()?;
    let t0 = Instant::now();
    let ok = post_many(
        ctx,
        guild.channel,
        &sender,
        burst,
        plan.burst_concurrency,
        &padding,
    )
    .await;
    let delivered = fleet
        .shared
        .messages
        .wait(Instant::now() + Duration::from_secs(120))
        .await;
    let cpu_burst = ctx.used(&cpu)?;
    let written = ctx.counters().await.since(&counters);
    match delivered {
        Ok(_) if burst == 0 => ctx.note("burst: none (no sessions to deliver to)"),
        Ok(at) => ctx.note(format!(
            "burst: {ok} of {} messages posted, {expect} deliveries in {:.2} s; {written}; {}",
            plan.burst,
            at.saturating_duration_since(t0).as_secs_f64(),
            cpu_burst.describe()
        )),
        Err(got) => ctx.note(format!(
            "burst: {ok} of {} messages posted, only {} of {expect} deliveries arrived within 120 s",
            plan.burst,
            got - before
        )),
    }
    let rss_burst = settled_rss(ctx, plan.settle).await?;
    fleet.heartbeat_now();
    let rss_burst_acked = settled_rss(ctx, plan.settle).await?;

    let half = a.identified;
    let rest = b.identified;
    let d = |x: u64, y: u64| x as i64 - y as i64;
    ctx.note(format!(
        "server RSS (KiB): before {rss0}; N/2={half}: {rss_half_unacked} unacked, {rss_half} acked; N={open}: {rss_full_unacked} unacked, {rss_full} acked; after burst {rss_burst}, burst acked {rss_burst_acked}"
    ));
    ctx.note(format!(
        "per connection, (RSS - RSS before) / N: identified+acked {}; identified, READY/GUILD_CREATE not yet acked {}; after the burst {}; burst acked {}",
        kib(d(rss_full, rss0), open),
        kib(d(rss_full_unacked, rss0), open),
        kib(d(rss_burst, rss0), open),
        kib(d(rss_burst_acked, rss0), open),
    ));
    ctx.note(format!(
        "per connection, marginal (N/2 -> N): acked {}; unacked {}",
        kib(d(rss_full, rss_half), rest),
        kib(d(rss_full_unacked, rss_half_unacked), rest),
    ));
    let anon: Option<u64> = ctx
        .server_pids
        .iter()
        .map(|p| procfs::rss_anon_kib(*p))
        .sum();
    if let Some(anon) = anon {
        ctx.note(format!(
            "server RssAnon now: {anon} KiB; threads {}",
            ctx.threads()
        ));
    }
    if !plan.hold.is_zero() {
        let cpu = ctx.cpu()?;
        tokio::time::sleep(plan.hold).await;
        let used = ctx.used(&cpu)?;
        let rss_hold = ctx.rss()?;
        ctx.note(format!(
            "holding {open} idle connections: {}; RSS after {rss_hold} KiB",
            used.describe()
        ));
    }
    ctx.errors(&fleet.shared.clone());
    fleet.stop(Duration::from_secs(20)).await;
    Ok(())
}

#[derive(Clone, Debug)]
pub struct FanoutPlan {
    pub sessions: usize,
    pub users: usize,
    pub burst: usize,
    pub burst_rounds: usize,
    pub burst_concurrency: usize,
    pub events: usize,
    pub content_bytes: usize,
}

/// The value at quantile `q`, in ms (0 for an empty histogram).
pub fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn summary_ms(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    format!(
        "n={} p50 {:.2} p90 {:.2} p95 {:.2} p99 {:.2} max {:.2} ms (mean {:.2})",
        h.len(),
        pct(h, 0.50),
        pct(h, 0.90),
        pct(h, 0.95),
        pct(h, 0.99),
        h.max() as f64 / 1000.0,
        h.mean() / 1000.0
    )
}

/// `fanout`: S sessions in one guild with one channel. Bursts of K concurrent posts (deliveries
/// per second from the first send to the last delivery), then events one at a time.
pub async fn fanout(ctx: &mut Ctx, plan: FanoutPlan) -> anyhow::Result<()> {
    let s = plan.sessions;
    let world = ctx
        .world(WorldPlan {
            guilds: 1,
            users_per_guild: plan.users,
            parallelism: ctx.setup_parallelism,
        })
        .await?;
    let guild = world.guilds[0].clone();
    let sender = world.users[guild.members.start].auth.clone();
    let mut fleet = Fleet::new(
        ctx.target.clone(),
        Shared::new(None),
        ctx.identify_concurrency,
    );
    let cpu = ctx.cpu()?;
    let opened = fleet
        .open(sessions(&world, s), Duration::from_secs(300))
        .await;
    let used = ctx.used(&cpu)?;
    ctx.opened("identify", &opened, &used);
    let s = opened.identified;
    anyhow::ensure!(s > 0, "no session identified");
    fleet.heartbeat_now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let padding = "x".repeat(plan.content_bytes);
    let deadline = || Instant::now() + Duration::from_secs(120);

    // Warm up: the first message builds the channel's recipient list.
    let before = fleet.shared.messages.count();
    fleet.shared.messages.arm(before + s as u64);
    let t0 = Instant::now();
    post(
        &ctx.client,
        &ctx.api,
        guild.channel,
        &sender,
        format!("warmup {padding}"),
    )
    .await?;
    let warm = fleet.shared.messages.wait(deadline()).await;
    ctx.note(format!(
        "warmup message: {}",
        match warm {
            Ok(at) => format!(
                "all {s} sessions had it after {:.1} ms",
                at.saturating_duration_since(t0).as_secs_f64() * 1e3
            ),
            Err(got) => format!("only {} of {s} deliveries", got - before),
        }
    ));
    fleet.heartbeat_now();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // (i) Bursts.
    let mut total_deliveries = 0u64;
    let mut total_time = Duration::ZERO;
    let mut total_server = 0.0;
    let mut total_gen = 0.0;
    for round in 0..plan.burst_rounds {
        let expect = (s * plan.burst) as u64;
        let before = fleet.shared.messages.count();
        fleet.shared.messages.arm(before + expect);
        let counters = ctx.counters().await;
        let cpu = ctx.cpu()?;
        let t0 = Instant::now();
        let ok = post_many(
            ctx,
            guild.channel,
            &sender,
            plan.burst,
            plan.burst_concurrency,
            &padding,
        )
        .await;
        let posted = t0.elapsed();
        let r = fleet.shared.messages.wait(deadline()).await;
        let used = ctx.used(&cpu)?;
        let written = ctx.counters().await.since(&counters);
        match r {
            Ok(at) => {
                let took = at.saturating_duration_since(t0);
                total_deliveries += expect;
                total_time += took;
                total_server += used.server_s;
                total_gen += used.generator_s;
                ctx.note(format!(
                    "burst {round}: {ok} of {} posted (last 200 after {:.0} ms), {expect} deliveries in {:.3} s = {:.0} deliveries/s; server {:.2} µs CPU/delivery; {written}; {}",
                    plan.burst,
                    posted.as_secs_f64() * 1e3,
                    took.as_secs_f64(),
                    expect as f64 / took.as_secs_f64().max(1e-9),
                    1e6 * used.server_s / expect as f64,
                    used.describe()
                ));
            }
            Err(got) => ctx.note(format!(
                "burst {round}: {ok} of {} posted; only {} of {expect} deliveries within 120 s; {}",
                plan.burst,
                got - before,
                used.describe()
            )),
        }
        fleet.heartbeat_now();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if total_deliveries > 0 {
        ctx.note(format!(
            "bursts overall: {total_deliveries} deliveries in {:.3} s = {:.0} deliveries/s; server {:.3} µs CPU per delivery, generator {:.3} µs",
            total_time.as_secs_f64(),
            total_deliveries as f64 / total_time.as_secs_f64().max(1e-9),
            1e6 * total_server / total_deliveries as f64,
            1e6 * total_gen / total_deliveries as f64,
        ));
    }

    // (ii) One event at a time.
    let mut complete = new_histogram()?;
    let mut http = new_histogram()?;
    let mut missed = 0;
    let counters = ctx.counters().await;
    let cpu = ctx.cpu()?;
    let t_all = Instant::now();
    let mut delivered = 0u64;
    for m in 0..plan.events {
        let before = fleet.shared.messages.count();
        fleet.shared.messages.arm(before + s as u64);
        let t0 = Instant::now();
        let status = post(
            &ctx.client,
            &ctx.api,
            guild.channel,
            &sender,
            format!("event {m} {padding}"),
        )
        .await?;
        http.saturating_record(t0.elapsed().as_micros() as u64);
        anyhow::ensure!(status.is_success(), "posting a message: {status}");
        match fleet
            .shared
            .messages
            .wait(Instant::now() + Duration::from_secs(30))
            .await
        {
            Ok(at) => {
                complete.saturating_record(at.saturating_duration_since(t0).as_micros() as u64);
                delivered += s as u64;
            }
            Err(got) => {
                missed += 1;
                delivered += got - before;
            }
        }
        if m % 20 == 19 {
            fleet.heartbeat_now();
        }
    }
    let wall = t_all.elapsed();
    let used = ctx.used(&cpu)?;
    let written = ctx.counters().await.since(&counters);
    ctx.note(format!(
        "one at a time: {} events x {s} sessions = {delivered} deliveries in {:.3} s = {:.0} deliveries/s ({missed} events incomplete); server {:.3} µs CPU per delivery, generator {:.3} µs; {written}; {}",
        plan.events,
        wall.as_secs_f64(),
        delivered as f64 / wall.as_secs_f64().max(1e-9),
        1e6 * used.server_s / delivered.max(1) as f64,
        1e6 * used.generator_s / delivered.max(1) as f64,
        used.describe()
    ));
    ctx.note(format!(
        "  per event, send -> last session has it: {}",
        summary_ms(&complete)
    ));
    ctx.note(format!(
        "  per event, send -> HTTP 200 (durable):  {}",
        summary_ms(&http)
    ));
    ctx.errors(&fleet.shared.clone());
    fleet.stop(Duration::from_secs(20)).await;
    Ok(())
}

/// Percentiles of a latency histogram, in ms.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Percentiles {
    pub samples: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            samples: h.len(),
            p50: pct(h, 0.50),
            p90: pct(h, 0.90),
            p99: pct(h, 0.99),
            p999: pct(h, 0.999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

/// What a `latency` run found (`--json` prints it).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LatencyReport {
    pub sessions: usize,
    pub identified: usize,
    pub offered_rate: f64,
    pub measured_secs: f64,
    pub posted: u64,
    pub posted_ok: u64,
    pub post_non_2xx: u64,
    pub post_errors: u64,
    /// Scheduled while every in-flight slot was busy, so never sent.
    pub post_dropped: u64,
    /// Every 2xx message times the sessions of its guild, over the whole run.
    pub deliveries_expected: u64,
    /// Deliveries that arrived, up to what each session was to get.
    pub deliveries: u64,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// Deliveries beyond what a session was to get: duplicates, or messages whose post did not
    /// get its 2xx and were delivered all the same.
    pub unexpected: u64,
    /// Sessions that got as many messages as their guild was sent, but not the same ones.
    pub sessions_wrong_set: u64,
    /// Sessions that saw their guild's messages in another order than most of its sessions.
    pub sessions_out_of_order: u64,
    /// Connections that failed to identify or ended before the run did.
    pub connections_failed: u64,
    pub delivery_ms: Percentiles,
    pub post_ms: Percentiles,
    pub deliveries_per_sec: f64,
    pub server_cpu_us_per_delivery: f64,
}

#[derive(Clone, Debug)]
pub struct LatencyPlan {
    pub guilds: usize,
    pub members: usize,
    pub sessions_per_user: usize,
    pub rate: f64,
    pub duration: Duration,
    pub warmup: Duration,
    pub in_flight: usize,
    pub content_bytes: usize,
}

/// `latency`: G guilds of M members, an open-loop message rate spread over the guilds; every
/// message carries its scheduled send time and every receiver records its delivery latency.
pub async fn latency(ctx: &mut Ctx, plan: LatencyPlan) -> anyhow::Result<LatencyReport> {
    let per_user = plan.sessions_per_user.max(1);
    anyhow::ensure!(
        plan.members.is_multiple_of(per_user),
        "--members must be a multiple of --sessions-per-user"
    );
    let users_per_guild = plan.members / per_user;
    let world = ctx
        .world(WorldPlan {
            guilds: plan.guilds,
            users_per_guild,
            parallelism: ctx.setup_parallelism,
        })
        .await?;
    let epoch = Instant::now();
    let mut fleet = Fleet::new(
        ctx.target.clone(),
        Shared::new(Some(Latencies::new(epoch)?)),
        ctx.identify_concurrency,
    );
    let n = world.users.len() * per_user;
    let cpu = ctx.cpu()?;
    let opened = fleet
        .open(sessions(&world, n), Duration::from_secs(300))
        .await;
    let used = ctx.used(&cpu)?;
    ctx.opened("identify", &opened, &used);
    fleet.heartbeat_now();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let pacing = Pacing::new(
        Instant::now() + Duration::from_millis(100),
        plan.rate,
        plan.warmup,
        plan.duration,
    );
    let measure_start = pacing.measure_start();
    let shared = fleet.shared.clone();
    let lat = shared.latencies.as_ref().context("latencies are on")?;
    lat.measure_from_ns.store(
        measure_start.saturating_duration_since(epoch).as_nanos() as u64,
        Ordering::Relaxed,
    );

    let stats = Arc::new(PostStats::new(plan.guilds)?);
    let sem = Arc::new(Semaphore::new(plan.in_flight.max(1)));
    let guilds = world.post_targets();
    let sched = Schedule {
        client: ctx.client.clone(),
        api: ctx.api.clone(),
        guilds,
        padding: "x".repeat(plan.content_bytes),
        epoch,
        pacing,
        sem: sem.clone(),
        stats: stats.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let scheduler = tokio::task::spawn_blocking(move || schedule(sched));
    tokio::time::sleep_until(tokio::time::Instant::from_std(measure_start)).await;
    let counters = ctx.counters().await;
    let cpu = ctx.cpu()?;
    scheduler.await.context("the scheduler thread failed")?;
    let used = ctx.used(&cpu)?;
    let written = ctx.counters().await.since(&counters);
    let in_flight = u32::try_from(plan.in_flight.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(30), sem.acquire_many(in_flight)).await;

    // Every 2xx message reaches every session of its guild.
    let ok = stats.ok.load(Ordering::Relaxed);
    let expect = ok * plan.members as u64;
    fleet.shared.messages.arm(expect);
    let arrived = fleet
        .shared
        .messages
        .wait(Instant::now() + Duration::from_secs(30))
        .await;
    let got = match arrived {
        Ok(_) => expect,
        Err(got) => got,
    };
    // Give anything still on its way (a duplicate, say) a moment to show up, then close every
    // connection: each hands in what it received as it ends.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let connections_failed =
        fleet.shared.failed.load(Ordering::Relaxed) + fleet.shared.ended.load(Ordering::Relaxed);
    fleet.stop(Duration::from_secs(20)).await;
    let arrivals = std::mem::take(&mut *shared.arrivals.lock().unwrap_or_else(|e| e.into_inner()));
    let sent: Vec<Arrivals> = Arrivals::sent(&stats.per_guild);
    // Connection c is user c % users' session; user u is in guild u / users_per_guild.
    let users = world.users.len();
    let check = check_arrivals(&sent, &arrivals, |c| (c % users) / users_per_guild);
    let h = lat.merged()?;
    let http = stats.merged()?;
    let measured_msgs = stats.measured.load(Ordering::Relaxed);
    ctx.note(format!(
        "offered {} msg/s for {:.0} s (+{:.0} s warmup) over {} guilds x {} sessions: {} posted, {ok} got 2xx, {} non-2xx, {} errors, {} dropped (all {} slots busy)",
        plan.rate,
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        plan.guilds,
        plan.members,
        stats.sent.load(Ordering::Relaxed),
        stats.non_2xx.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed),
        stats.dropped.load(Ordering::Relaxed),
        plan.in_flight,
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
        "deliveries: {got} of {expect} expected (whole run): {} lost, {} unexpected; sessions with other messages than their guild was sent: {}, in another order than their guild's other sessions: {}; measured window: {measured_msgs} messages, {} deliveries recorded = {:.0} deliveries/s",
        check.lost,
        check.unexpected,
        check.wrong_set,
        check.out_of_order,
        h.len(),
        h.len() as f64 / plan.duration.as_secs_f64()
    ));
    ctx.note(format!(
        "delivery latency (scheduled send -> frame read by the receiver): {}; p99.9 {:.2} ms",
        summary_ms(&h),
        pct(&h, 0.999)
    ));
    ctx.note(format!(
        "HTTP latency of the posts (scheduled send -> 200): {}",
        summary_ms(&http)
    ));
    ctx.note(format!(
        "CPU during the measured window: {}; server {:.2} µs per delivery; {written}",
        used.describe(),
        1e6 * used.server_s / h.len().max(1) as f64
    ));
    ctx.errors(&shared);
    let report = LatencyReport {
        sessions: n,
        identified: opened.identified,
        offered_rate: plan.rate,
        measured_secs: plan.duration.as_secs_f64(),
        posted: stats.sent.load(Ordering::Relaxed),
        posted_ok: ok,
        post_non_2xx: stats.non_2xx.load(Ordering::Relaxed),
        post_errors: stats.errors.load(Ordering::Relaxed),
        post_dropped: stats.dropped.load(Ordering::Relaxed),
        deliveries_expected: expect,
        deliveries: check.delivered,
        lost: check.lost,
        unexpected: check.unexpected,
        sessions_wrong_set: check.wrong_set,
        sessions_out_of_order: check.out_of_order,
        connections_failed,
        delivery_ms: Percentiles::of(&h),
        post_ms: Percentiles::of(&http),
        deliveries_per_sec: h.len() as f64 / plan.duration.as_secs_f64(),
        server_cpu_us_per_delivery: 1e6 * used.server_s / h.len().max(1) as f64,
    };
    Ok(report)
}

/// What the sessions received against what their guilds were sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Check {
    pub delivered: u64,
    pub lost: u64,
    pub unexpected: u64,
    pub wrong_set: u64,
    pub out_of_order: u64,
}

/// Compares each connection's arrivals with what its guild (`guild_of(connection)`) was sent
/// (`sent[guild]`, whose `order` is ignored). A session that got the right messages has them
/// in the wrong order when its order differs from the one most such sessions of its guild saw.
pub fn check_arrivals(
    sent: &[Arrivals],
    arrivals: &[(usize, Arrivals)],
    guild_of: impl Fn(usize) -> usize,
) -> Check {
    let mut c = Check::default();
    let mut orders: Vec<std::collections::HashMap<u64, u64>> = vec![Default::default(); sent.len()];
    for (conn, a) in arrivals {
        let g = guild_of(*conn);
        let Some(want) = sent.get(g) else {
            c.unexpected += a.count;
            continue;
        };
        c.delivered += a.count.min(want.count);
        c.lost += want.count.saturating_sub(a.count);
        c.unexpected += a.count.saturating_sub(want.count);
        if a.count == want.count && a.set != want.set {
            c.wrong_set += 1;
        }
        // Only sessions that got exactly their guild's messages vote on its order; the others
        // are counted above already.
        if a.count == want.count && a.set == want.set {
            *orders[g].entry(a.order).or_default() += 1;
        }
    }
    for by_order in &orders {
        let total: u64 = by_order.values().sum();
        let most = by_order.values().copied().max().unwrap_or(0);
        c.out_of_order += total - most;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(ix: &[u64]) -> Arrivals {
        let mut a = Arrivals::default();
        ix.iter().for_each(|i| a.observe(*i));
        a
    }

    #[test]
    fn arrivals_are_checked_against_what_each_guild_was_sent() {
        // Guild 0 was sent 0, 2, 4 (in any order); guild 1 was sent 1, 3.
        let sent = [of(&[0, 2, 4]), of(&[1, 3])];
        let guild_of = |c: usize| c % 2;
        let all_good = [(0, of(&[2, 0, 4])), (2, of(&[2, 0, 4])), (1, of(&[1, 3]))];
        let c = check_arrivals(&sent, &all_good, guild_of);
        assert_eq!(
            c,
            Check {
                delivered: 8,
                ..Check::default()
            },
            "the server's order, the same for every session, is fine"
        );

        let bad = [
            (0, of(&[0, 2, 4])),
            (2, of(&[0, 2, 4])),
            (4, of(&[2, 0, 4])), // overtaken at this session only
            (6, of(&[0, 2, 2])), // a duplicate in place of 4
            (1, of(&[1])),       // 3 lost
            (3, of(&[1, 3, 3])), // 3 twice
        ];
        let c = check_arrivals(&sent, &bad, guild_of);
        assert_eq!(c.lost, 1);
        assert_eq!(c.unexpected, 1);
        assert_eq!(c.wrong_set, 1);
        assert_eq!(c.out_of_order, 1, "4 differs from guild 0's common order");
        assert_eq!(c.delivered, 3 * 4 + 1 + 2);
    }
}
