//! The leader of a multi-process run (`enrichment-gateway-load scenario FILE`): it builds the
//! run's world through the API, starts the worker processes that hold the sessions, sends the
//! open-loop message schedule itself, stirs up the scenario's storm and slow consumers, shows
//! the run as it goes, and at the end merges what the workers handed in into one result —
//! `result.json`, `summary.md` and SVG plots in the output directory.
//!
//! Server CPU and RSS are sampled from `/proc` once a second, apart from the generator's
//! (the leader and its workers, summed), so the two can be told apart in the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::Semaphore;

use super::client::Arrivals;
use super::modes::{Check, Ctx, LatencyReport, Percentiles, check_arrivals};
use super::posting::{PostStats, Schedule, schedule};
use super::procfs;
use super::scenario::Scenario;
use super::wire::{self, Assignment, Command, Done, Report, Tick};
use super::world::WorldPlan;
use crate::run::{Pacing, new_histogram};

/// What a scenario run found; written as `result.json`: the figures of a latency run
/// ([`LatencyReport`], whose fields sit at the top level of the JSON) and what only a scenario
/// has.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    #[serde(flatten)]
    pub run: LatencyReport,
    pub workers: usize,
    pub nodes: usize,
    pub identify_failed: usize,
    /// From the first connect to the last session identified, over every worker.
    pub identify_secs: f64,
    pub identifies_per_sec: f64,
    /// Server RSS (all nodes) per identified session: after identifying and a heartbeat,
    /// against before the first connection.
    pub server_rss_kib_per_session: f64,
    pub server_rss_peak_mib: f64,
    pub generator_cpu_us_per_delivery: f64,
    pub server_cpu_cores: f64,
    pub generator_cpu_cores: f64,
    pub storm: Option<StormResult>,
    pub slow_consumers: Option<SlowResult>,
    pub timeline: Vec<Second>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StormResult {
    pub sessions: usize,
    pub resumed: u64,
    pub failed: u64,
    /// From the leader's command to the last session's RESUMED.
    pub all_resumed_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SlowResult {
    /// Sessions that stopped reading.
    pub stalled: u64,
    /// Connections the nodes closed for not reading (their slow-consumer counter), during the
    /// run.
    pub closed_by_server: u64,
}

/// One second of the run, `t` seconds after the measured window began (negative before).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Second {
    pub t: i64,
    pub identified: u64,
    /// MESSAGE_CREATE frames received in this second, warmup included.
    pub deliveries: u64,
    /// Latency percentiles of the measured deliveries read in this second (ms).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Percent of one core.
    pub server_cpu: f64,
    pub generator_cpu: f64,
    pub server_rss_mib: f64,
    pub generator_rss_mib: f64,
}

/// Runs `scenario` against the nodes of `ctx` and writes its result into `out`.
pub async fn run(ctx: &mut Ctx, scenario: &Scenario, out: &Path) -> anyhow::Result<ScenarioResult> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    ctx.note(format!(
        "scenario {}: {} guilds x {} sessions ({} per user) = {} sessions over {} worker processes and {} node(s); {} msg/s for {} s after {} s warmup",
        scenario.name,
        scenario.guilds,
        scenario.members,
        scenario.sessions_per_user,
        scenario.sessions(),
        scenario.workers,
        ctx.nodes.len(),
        scenario.rate,
        scenario.duration_secs,
        scenario.warmup_secs
    ));
    let world = ctx
        .world(WorldPlan {
            guilds: scenario.guilds,
            users_per_guild: scenario.users_per_guild(),
            parallelism: ctx.setup_parallelism,
        })
        .await?;
    let rss_before = ctx.rss()?;

    let epoch = Instant::now();
    let epoch_unix_ns = wire::unix_now_ns();
    let tokens: Vec<String> = world.users.iter().map(|u| u.token.clone()).collect();
    let state = Arc::new(Mutex::new(Collected::new(scenario.workers)?));
    let mut workers = Vec::with_capacity(scenario.workers);
    for w in 0..scenario.workers {
        let slice = scenario.slice(w);
        let users = slice
            .clone()
            .map(|c| (c % tokens.len()) as u32)
            .collect::<Vec<_>>();
        // A worker gets only the tokens of its users.
        let mut mine: Vec<String> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let users = users
            .into_iter()
            .map(|u| {
                *index.entry(u).or_insert_with(|| {
                    mine.push(tokens[u as usize].clone());
                    (mine.len() - 1) as u32
                })
            })
            .collect();
        let assignment = Assignment {
            worker: w,
            epoch_unix_ns,
            gateways: ctx.target.gateways.clone(),
            sources: ctx.target.sources.clone(),
            intents: ctx.target.intents,
            identify_concurrency: scenario.identify_concurrency,
            first: slice.start,
            users,
            tokens: mine,
        };
        workers.push(Worker::start(w, assignment, state.clone()).await?);
    }
    let worker_pids: Vec<u32> = workers.iter().filter_map(|w| w.pid).collect();
    let sampler = tokio::spawn(sample_every_second(
        ctx.server_pids.clone(),
        worker_pids.clone(),
        epoch,
        state.clone(),
        scenario.sessions() as u64,
    ));

    // Identify.
    let identify_started = Instant::now();
    wait_until(Duration::from_secs(900), || {
        lock(&state).opened.iter().all(Option::is_some) || lock(&state).exited()
    })
    .await;
    let (identified, identify_failed, identify_secs) = {
        let s = lock(&state);
        anyhow::ensure!(!s.exited(), "a worker exited early: {}", s.exit_note());
        let opened: Vec<_> = s.opened.iter().flatten().collect();
        (
            opened.iter().map(|o| o.0).sum::<usize>(),
            opened.iter().map(|o| o.1).sum::<usize>(),
            identify_started.elapsed().as_secs_f64(),
        )
    };
    ctx.note(format!(
        "identify: {identified} of {} sessions identified ({identify_failed} failed) in {identify_secs:.1} s = {:.0}/s",
        scenario.sessions(),
        identified as f64 / identify_secs.max(1e-9)
    ));
    for w in &mut workers {
        w.send(&Command::Beat).await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_identified = ctx.rss()?;
    let rss_per_session = (rss_identified as f64 - rss_before as f64) / identified.max(1) as f64;
    ctx.note(format!(
        "server RSS: {:.0} MiB before the first connection, {:.0} MiB with {identified} sessions identified = {rss_per_session:.2} KiB per session",
        rss_before as f64 / 1024.0,
        rss_identified as f64 / 1024.0
    ));

    // The schedule.
    let pacing = Pacing::new(
        Instant::now() + Duration::from_millis(200),
        scenario.rate,
        scenario.warmup(),
        scenario.duration(),
    );
    let measure_start = pacing.measure_start();
    let measure_ns = measure_start.saturating_duration_since(epoch).as_nanos() as u64;
    lock(&state).measure_from = Some(measure_start.saturating_duration_since(epoch).as_secs());
    for w in &mut workers {
        w.send(&Command::MeasureFrom(measure_ns)).await?;
    }
    let stats = Arc::new(PostStats::new(scenario.guilds)?);
    let sem = Arc::new(Semaphore::new(scenario.in_flight));
    let guilds = world.post_targets();
    let scheduler = tokio::task::spawn_blocking({
        let s = Schedule {
            client: ctx.client.clone(),
            api: ctx.api.clone(),
            guilds,
            padding: "x".repeat(scenario.content_bytes),
            epoch,
            pacing,
            sem: sem.clone(),
            stats: stats.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        move || schedule(s)
    });

    // The disturbances, at their times in the measured window.
    let slow_before = ctx
        .metrics(["enrichment_gateway_slow_consumers_total"])
        .await[0];
    let mut events: Vec<(Duration, Disturbance)> = Vec::new();
    if let Some(st) = scenario.storm {
        events.push((Duration::from_secs_f64(st.at_secs), Disturbance::Storm));
    }
    if let Some(sc) = scenario.slow_consumers {
        events.push((Duration::from_secs_f64(sc.at_secs), Disturbance::Stall));
    }
    events.sort_by_key(|e| e.0);
    let mut storm_at_ns = None;
    for (at, what) in events {
        tokio::time::sleep_until((measure_start + at).into()).await;
        if what == Disturbance::Storm {
            storm_at_ns = Some(epoch.elapsed().as_nanos() as u64);
        }
        for (w, worker) in workers.iter_mut().enumerate() {
            let (range, cmd): (_, fn(usize, usize) -> Command) = match what {
                Disturbance::Storm => (scenario.storm_range(w), |start, end| Command::Storm {
                    start,
                    end,
                }),
                Disturbance::Stall => (scenario.stall_range(w), |start, end| Command::Stall {
                    start,
                    end,
                }),
            };
            worker.send(&cmd(range.start, range.end)).await?;
        }
        ctx.note(format!(
            "{what:?} at {:.1} s into the measured window",
            at.as_secs_f64()
        ));
    }

    tokio::time::sleep_until(measure_start.into()).await;
    let cpu_start = cpu_now(&ctx.server_pids, &worker_pids)?;
    scheduler.await.context("the scheduler thread failed")?;
    let cpu_end = cpu_now(&ctx.server_pids, &worker_pids)?;
    let in_flight = u32::try_from(scenario.in_flight).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(30), sem.acquire_many(in_flight)).await;

    // Wait for the deliveries still on their way: until every session that kept reading has
    // its guild's messages, or nothing has arrived for two seconds.
    let ok = stats.ok.load(Ordering::Relaxed);
    let stalled_per_guild = stalled_per_guild(scenario);
    let expected: u64 = stats
        .per_guild
        .iter()
        .enumerate()
        .map(|(g, (count, _))| {
            count.load(Ordering::Relaxed) * (scenario.members - stalled_per_guild[g]) as u64
        })
        .sum();
    let mut last = (0, Instant::now());
    wait_until(Duration::from_secs(60), || {
        let got = lock(&state).messages();
        if got != last.0 {
            last = (got, Instant::now());
        }
        let quiet = last.1.elapsed() > Duration::from_secs(2);
        (stalled_per_guild.iter().all(|s| *s == 0) && got >= expected) || quiet
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if storm_at_ns.is_some() {
        wait_until(Duration::from_secs(120), || {
            lock(&state).resumed.iter().all(Option::is_some)
        })
        .await;
    }
    let slow_after = ctx
        .metrics(["enrichment_gateway_slow_consumers_total"])
        .await[0];

    for w in &mut workers {
        w.send(&Command::Stop).await?;
    }
    wait_until(Duration::from_secs(90), || {
        lock(&state).done.iter().all(Option::is_some) || lock(&state).exited()
    })
    .await;
    for w in workers {
        w.finish().await;
    }
    sampler.abort();

    let s = std::mem::replace(&mut *lock(&state), Collected::new(0)?);
    let done: Vec<&Done> = s.done.iter().flatten().collect();
    anyhow::ensure!(
        done.len() == scenario.workers,
        "{} of {} workers handed in their results: {}",
        done.len(),
        scenario.workers,
        s.exit_note()
    );
    // Every tick's samples, the last ones included, are in the seconds.
    let mut h = new_histogram()?;
    for second in s.seconds.values() {
        h.add(&second.latency)
            .map_err(|e| anyhow::anyhow!("merging histograms: {e}"))?;
    }
    let arrivals: Vec<(usize, Arrivals)> = done
        .iter()
        .flat_map(|d| d.arrivals.iter().copied())
        .collect();
    let sent: Vec<Arrivals> = Arrivals::sent(&stats.per_guild);
    let check: Check = check_arrivals(&sent, &arrivals, |c| scenario.guild_of(c));
    let stalled: u64 = done.iter().map(|d| d.stalled).sum();
    let failed_or_ended: u64 = done.iter().map(|d| d.tick.failed + d.tick.ended).sum();
    let duration = scenario.duration_secs;
    let server_s = cpu_end.0 - cpu_start.0;
    let generator_s = cpu_end.1 - cpu_start.1;
    let timeline = s.timeline(measure_start.saturating_duration_since(epoch).as_secs());
    let result = ScenarioResult {
        scenario: scenario.name.clone(),
        run: LatencyReport {
            sessions: scenario.sessions(),
            identified,
            offered_rate: scenario.rate,
            measured_secs: duration,
            posted: stats.sent.load(Ordering::Relaxed),
            posted_ok: ok,
            post_non_2xx: stats.non_2xx.load(Ordering::Relaxed),
            post_errors: stats.errors.load(Ordering::Relaxed),
            post_dropped: stats.dropped.load(Ordering::Relaxed),
            deliveries_expected: expected,
            deliveries: check.delivered,
            lost: check.lost,
            unexpected: check.unexpected,
            sessions_wrong_set: check.wrong_set,
            sessions_out_of_order: check.out_of_order,
            connections_failed: failed_or_ended,
            delivery_ms: Percentiles::of(&h),
            post_ms: Percentiles::of(&stats.merged()?),
            deliveries_per_sec: h.len() as f64 / duration,
            server_cpu_us_per_delivery: 1e6 * server_s / h.len().max(1) as f64,
        },
        workers: scenario.workers,
        nodes: ctx.nodes.len(),
        identify_failed,
        identify_secs,
        identifies_per_sec: identified as f64 / identify_secs.max(1e-9),
        server_rss_kib_per_session: rss_per_session,
        server_rss_peak_mib: s.server_rss_peak_kib as f64 / 1024.0,
        generator_cpu_us_per_delivery: 1e6 * generator_s / h.len().max(1) as f64,
        server_cpu_cores: server_s / duration,
        generator_cpu_cores: generator_s / duration,
        storm: scenario.storm.map(|st| {
            let resumed: Vec<_> = s.resumed.iter().flatten().collect();
            let last = resumed.iter().map(|r| r.2).max().unwrap_or(0);
            StormResult {
                sessions: st.sessions,
                resumed: resumed.iter().map(|r| r.0).sum(),
                failed: resumed.iter().map(|r| r.1).sum(),
                all_resumed_ms: last.saturating_sub(storm_at_ns.unwrap_or(last)) as f64 / 1e6,
            }
        }),
        slow_consumers: scenario.slow_consumers.map(|_| SlowResult {
            stalled,
            closed_by_server: (slow_after - slow_before).max(0.0) as u64,
        }),
        timeline,
    };
    for d in &done {
        for e in &d.errors {
            ctx.note(format!("  worker error: {e}"));
        }
    }
    write_outputs(out, scenario, &result)?;
    ctx.note(summary(scenario, &result));
    ctx.note(format!("results in {}", out.display()));
    Ok(result)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Disturbance {
    Storm,
    Stall,
}

/// How many of each guild's sessions stop reading.
fn stalled_per_guild(s: &Scenario) -> Vec<usize> {
    let mut per = vec![0; s.guilds];
    for w in 0..s.workers {
        for c in s.stall_range(w) {
            per[s.guild_of(c)] += 1;
        }
    }
    per
}

/// Server and generator (this process and the workers) CPU seconds so far.
fn cpu_now(server: &[u32], workers: &[u32]) -> anyhow::Result<(f64, f64)> {
    let t = procfs::clock_ticks() as f64;
    let (u, s) = procfs::cpu_split_all(server)?;
    let mut generator = procfs::cpu_ticks(std::process::id())?;
    for w in workers {
        generator += procfs::cpu_ticks(*w).unwrap_or(0);
    }
    Ok(((u + s) as f64 / t, generator as f64 / t))
}

async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the workers reported and the sampler measured, as it comes in.
struct Collected {
    /// Per worker: identified, failed, ms.
    opened: Vec<Option<(usize, usize, u64)>>,
    /// Per worker: resumed, failed, at (ns since the epoch).
    resumed: Vec<Option<(u64, u64, u64)>>,
    done: Vec<Option<Done>>,
    /// Per worker, its latest tick's counters.
    latest: Vec<Tick>,
    exits: Vec<String>,
    seconds: BTreeMap<u64, Bucket>,
    measure_from: Option<u64>,
    server_rss_peak_kib: u64,
    /// An empty histogram of the harness's bounds, to make each second's from.
    empty: Histogram<u64>,
}

/// One epoch second, summed over the workers.
struct Bucket {
    identified: u64,
    deliveries: u64,
    latency: Histogram<u64>,
    server_cpu: f64,
    generator_cpu: f64,
    server_rss_kib: u64,
    generator_rss_kib: u64,
}

impl Collected {
    fn new(workers: usize) -> anyhow::Result<Collected> {
        Ok(Collected {
            opened: vec![None; workers],
            resumed: vec![None; workers],
            done: (0..workers).map(|_| None).collect(),
            latest: vec![Tick::default(); workers],
            exits: Vec::new(),
            seconds: BTreeMap::new(),
            measure_from: None,
            server_rss_peak_kib: 0,
            empty: new_histogram()?,
        })
    }

    fn bucket(&mut self, second: u64) -> &mut Bucket {
        let empty = &self.empty;
        self.seconds.entry(second).or_insert_with(|| Bucket {
            identified: 0,
            deliveries: 0,
            latency: Histogram::new_from(empty),
            server_cpu: 0.0,
            generator_cpu: 0.0,
            server_rss_kib: 0,
            generator_rss_kib: 0,
        })
    }

    fn on_report(&mut self, w: usize, r: Report) {
        match r {
            Report::Tick(t) => self.on_tick(w, t),
            Report::Opened {
                identified,
                failed,
                elapsed_ms,
            } => self.opened[w] = Some((identified, failed, elapsed_ms)),
            Report::Resumed {
                resumed,
                failed,
                at_ns,
            } => self.resumed[w] = Some((resumed, failed, at_ns)),
            Report::Done(mut d) => {
                let last = Tick {
                    latency: std::mem::take(&mut d.tick.latency),
                    ..d.tick.clone()
                };
                self.on_tick(w, last);
                self.done[w] = Some(d);
            }
        }
    }

    fn on_tick(&mut self, w: usize, mut t: Tick) {
        let latency = std::mem::take(&mut t.latency);
        let delivered = t.messages.saturating_sub(self.latest[w].messages);
        let second = t.second;
        self.latest[w] = t;
        let identified: u64 = self.latest.iter().map(|l| l.identified).sum();
        let b = self.bucket(second);
        b.deliveries += delivered;
        latency.add_to(&mut b.latency);
        b.identified = b.identified.max(identified);
    }

    fn messages(&self) -> u64 {
        self.latest.iter().map(|t| t.messages).sum()
    }

    fn exited(&self) -> bool {
        !self.exits.is_empty()
    }

    fn exit_note(&self) -> String {
        self.exits.join("; ")
    }

    fn timeline(&self, measure_second: u64) -> Vec<Second> {
        let ms = |h: &Histogram<u64>, q: f64| {
            (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
        };
        self.seconds
            .iter()
            .map(|(k, b)| Second {
                t: *k as i64 - measure_second as i64,
                identified: b.identified,
                deliveries: b.deliveries,
                p50_ms: ms(&b.latency, 0.5),
                p99_ms: ms(&b.latency, 0.99),
                max_ms: ms(&b.latency, 1.0),
                server_cpu: b.server_cpu,
                generator_cpu: b.generator_cpu,
                server_rss_mib: b.server_rss_kib as f64 / 1024.0,
                generator_rss_mib: b.generator_rss_kib as f64 / 1024.0,
            })
            .collect()
    }
}

/// One worker process and the task reading its reports.
struct Worker {
    w: usize,
    pid: Option<u32>,
    child: Child,
    stdin: ChildStdin,
    reader: tokio::task::JoinHandle<()>,
}

impl Worker {
    async fn start(
        w: usize,
        a: Assignment,
        state: Arc<Mutex<Collected>>,
    ) -> anyhow::Result<Worker> {
        let exe = std::env::current_exe().context("finding this program")?;
        let mut child = tokio::process::Command::new(exe)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a worker process")?;
        let mut stdin = child.stdin.take().context("the worker's stdin")?;
        let stdout = child.stdout.take().context("the worker's stdout")?;
        stdin
            .write_all(wire::line(&Command::Assign(a))?.as_bytes())
            .await?;
        stdin.flush().await?;
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            loop {
                match lines.next_line().await {
                    Ok(Some(l)) => match serde_json::from_str::<Report>(&l) {
                        Ok(r) => lock(&state).on_report(w, r),
                        Err(e) => lock(&state)
                            .exits
                            .push(format!("worker {w} sent {:?}: {e}", truncate(&l))),
                    },
                    Ok(None) => {
                        let mut s = lock(&state);
                        if s.done[w].is_none() {
                            s.exits
                                .push(format!("worker {w} ended without its results"));
                        }
                        return;
                    }
                    Err(e) => {
                        lock(&state).exits.push(format!("worker {w}: {e}"));
                        return;
                    }
                }
            }
        });
        Ok(Worker {
            w,
            pid: child.id(),
            child,
            stdin,
            reader,
        })
    }

    async fn send(&mut self, c: &Command) -> anyhow::Result<()> {
        self.stdin
            .write_all(wire::line(c)?.as_bytes())
            .await
            .with_context(|| format!("commanding worker {}", self.w))?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// Waits for the process to exit (killing it after 30 s).
    async fn finish(mut self) {
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let _ = self.reader.await;
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(120) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Once a second: the server's and the generator's CPU and RSS into the timeline, and a
/// progress line on stderr (every second on a terminal, every five otherwise).
async fn sample_every_second(
    server: Vec<u32>,
    workers: Vec<u32>,
    epoch: Instant,
    state: Arc<Mutex<Collected>>,
    sessions: u64,
) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let t = procfs::clock_ticks() as f64;
    let mut me: Vec<u32> = vec![std::process::id()];
    me.extend(&workers);
    let cpu = |pids: &[u32]| -> f64 {
        pids.iter()
            .map(|p| procfs::cpu_ticks(*p).unwrap_or(0))
            .sum::<u64>() as f64
            / t
    };
    let rss = |pids: &[u32]| -> u64 { pids.iter().map(|p| procfs::rss_kib(*p).unwrap_or(0)).sum() };
    let mut prev = (cpu(&server), cpu(&me), Instant::now());
    let mut k = epoch.elapsed().as_secs() + 1;
    loop {
        tokio::time::sleep_until((epoch + Duration::from_secs(k)).into()).await;
        let now = (cpu(&server), cpu(&me), Instant::now());
        let wall = now.2.duration_since(prev.2).as_secs_f64().max(1e-9);
        let (server_rss, generator_rss) = (rss(&server), rss(&me));
        let line = {
            let mut s = lock(&state);
            s.server_rss_peak_kib = s.server_rss_peak_kib.max(server_rss);
            let measure_from = s.measure_from;
            let b = s.bucket(k);
            b.server_cpu = 100.0 * (now.0 - prev.0) / wall;
            b.generator_cpu = 100.0 * (now.1 - prev.1) / wall;
            b.server_rss_kib = server_rss;
            b.generator_rss_kib = generator_rss;
            let (server_cpu, generator_cpu) = (b.server_cpu, b.generator_cpu);
            // The deliveries and latencies of the second before: every worker has reported it.
            let (deliveries, p99) = s
                .seconds
                .get(&(k - 1))
                .map(|b| {
                    (
                        b.deliveries,
                        (!b.latency.is_empty())
                            .then(|| b.latency.value_at_quantile(0.99) as f64 / 1000.0),
                    )
                })
                .unwrap_or((0, None));
            let identified: u64 = s.latest.iter().map(|l| l.identified).sum();
            let t = match measure_from {
                Some(m) => format!("t={:+}s", k as i64 - m as i64),
                None => format!("{k}s"),
            };
            format!(
                "[{t}] identified {identified}/{sessions}  deliveries/s {deliveries}  p99 {}  server CPU {server_cpu:.0}% RSS {:.0} MiB  generator CPU {generator_cpu:.0}%",
                p99.map_or("-".to_owned(), |p| format!("{p:.1} ms")),
                server_rss as f64 / 1024.0,
            )
        };
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else if k.is_multiple_of(5) {
            eprintln!("{line}");
        }
        prev = now;
        k = epoch.elapsed().as_secs() + 1;
    }
}

/// `result.json`, `summary.md` and the plots.
fn write_outputs(out: &Path, scenario: &Scenario, r: &ScenarioResult) -> anyhow::Result<()> {
    let path = |f: &str| -> PathBuf { out.join(f) };
    std::fs::write(path("result.json"), serde_json::to_string_pretty(r)?)?;
    std::fs::write(path("summary.md"), summary(scenario, r))?;
    super::plot::latency(&path("latency.svg"), &r.timeline)?;
    super::plot::throughput(&path("throughput.svg"), &r.timeline)?;
    super::plot::memory(&path("memory.svg"), &r.timeline)?;
    Ok(())
}

/// The Markdown summary of a run.
pub fn summary(scenario: &Scenario, r: &ScenarioResult) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!("# Scenario `{}`\n", r.scenario));
    line(format!(
        "{} sessions ({} guilds × {} members, {} per user) on {} node(s), held by {} generator processes; {} msg/s offered for {} s after {} s of warmup.\n",
        r.run.sessions,
        scenario.guilds,
        scenario.members,
        scenario.sessions_per_user,
        r.nodes,
        r.workers,
        r.run.offered_rate,
        r.run.measured_secs,
        scenario.warmup_secs
    ));
    line("| figure | value |".into());
    line("|---|---:|".into());
    let d = &r.run.delivery_ms;
    let rows = [
        (
            "sessions identified",
            format!(
                "{} of {} ({} failed)",
                r.run.identified, r.run.sessions, r.identify_failed
            ),
        ),
        (
            "identify rate",
            format!("{:.0}/s ({:.1} s)", r.identifies_per_sec, r.identify_secs),
        ),
        (
            "server RSS per session",
            format!("{:.2} KiB", r.server_rss_kib_per_session),
        ),
        (
            "server RSS peak (all nodes)",
            format!("{:.0} MiB", r.server_rss_peak_mib),
        ),
        (
            "messages posted / 2xx / dropped",
            format!(
                "{} / {} / {}",
                r.run.posted, r.run.posted_ok, r.run.post_dropped
            ),
        ),
        (
            "deliveries/s (measured window)",
            format!("{:.0}", r.run.deliveries_per_sec),
        ),
        (
            "delivery p50 / p90 / p99 / p99.9 / max",
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2} / {:.2} ms",
                d.p50, d.p90, d.p99, d.p999, d.max
            ),
        ),
        (
            "post p50 / p99",
            format!("{:.2} / {:.2} ms", r.run.post_ms.p50, r.run.post_ms.p99),
        ),
        (
            "deliveries expected / arrived",
            format!("{} / {}", r.run.deliveries_expected, r.run.deliveries),
        ),
        (
            "lost / unexpected",
            format!("**{}** / {}", r.run.lost, r.run.unexpected),
        ),
        (
            "sessions with a wrong set / out of order",
            format!(
                "{} / {}",
                r.run.sessions_wrong_set, r.run.sessions_out_of_order
            ),
        ),
        (
            "connections failed or ended early",
            format!("{}", r.run.connections_failed),
        ),
        (
            "server CPU per delivery",
            format!(
                "{:.2} µs ({:.2} cores)",
                r.run.server_cpu_us_per_delivery, r.server_cpu_cores
            ),
        ),
        (
            "generator CPU per delivery",
            format!(
                "{:.2} µs ({:.2} cores)",
                r.generator_cpu_us_per_delivery, r.generator_cpu_cores
            ),
        ),
    ];
    for (k, v) in rows {
        line(format!("| {k} | {v} |"));
    }
    if let Some(st) = &r.storm {
        line(format!(
            "| storm: sessions dropped / resumed / failed | {} / {} / {} |",
            st.sessions, st.resumed, st.failed
        ));
        line(format!(
            "| storm: command → last RESUMED | {:.0} ms |",
            st.all_resumed_ms
        ));
    }
    if let Some(sc) = &r.slow_consumers {
        line(format!(
            "| slow consumers: stalled / closed by the server | {} / {} |",
            sc.stalled, sc.closed_by_server
        ));
    }
    line(String::new());
    line("Latency is from a message's scheduled send time to a receiver reading its frame; the percentiles are over every measured delivery to a session that kept reading. Plots: [latency](latency.svg), [throughput](throughput.svg), [memory](memory.svg).".into());
    s
}
