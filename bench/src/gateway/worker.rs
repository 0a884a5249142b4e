//! A worker process of a multi-process run (`enrichment-gateway-load worker`, started by the
//! leader, never by hand): it holds its slice of the run's sessions, obeys the leader's
//! commands from stdin and reports on stdout (see [`super::wire`]).
//!
//! A process may hold at most 20,000 sockets here, so a run of 100,000 sessions needs at least
//! six of these; each reads the frames of its own sessions, records their latencies and hands
//! in, when told to stop, what every session received.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::client::{Latencies, Shared, Target};
use super::fleet::Fleet;
use super::procfs;
use super::wire::{self, Assignment, Buckets, Command, Done, Report, Tick};

/// Runs a worker until the leader says stop (or closes its stdin).
pub async fn run() -> anyhow::Result<()> {
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    let first = commands
        .next_line()
        .await?
        .context("the leader sent nothing")?;
    let Command::Assign(a) = serde_json::from_str(&first).context("the first command")? else {
        anyhow::bail!("the first command must be an assignment");
    };
    let (tx, rx) = mpsc::unbounded_channel::<Report>();
    let writer = tokio::spawn(write_reports(rx));

    let epoch = wire::local_epoch(a.epoch_unix_ns);
    let mut fleet = Fleet::new(
        Target {
            gateways: a.gateways.clone(),
            sources: a.sources.clone(),
            intents: a.intents,
            identify_timeout: Duration::from_secs(120),
            identify: true,
        },
        Shared::new(Some(Latencies::new(epoch)?)),
        a.identify_concurrency,
    )
    .numbered_from(a.first);
    let shared = fleet.shared.clone();
    let ticker = tokio::spawn(tick_every_second(shared.clone(), epoch, tx.clone()));

    // Commands are read while the sessions identify, so that a stop is never stuck behind it.
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<Command>();
    tokio::spawn(async move {
        while let Ok(Some(l)) = commands.next_line().await {
            match serde_json::from_str::<Command>(&l) {
                Ok(c) => {
                    if cmd_tx.send(c).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("worker: bad command {l:?}: {e}"),
            }
        }
        // stdin closed: the leader is gone, so stop.
        let _ = cmd_tx.send(Command::Stop);
    });

    let conns = sessions(&a);
    let opened = fleet.open(conns, Duration::from_secs(600)).await;
    let _ = tx.send(Report::Opened {
        identified: opened.identified,
        failed: opened.failed,
        elapsed_ms: opened.elapsed.as_millis() as u64,
    });

    while let Some(c) = cmd_rx.recv().await {
        match c {
            Command::Assign(_) => eprintln!("worker {}: a second assignment, ignored", a.worker),
            Command::Beat => fleet.heartbeat_now(),
            Command::MeasureFrom(ns) => {
                if let Some(l) = &shared.latencies {
                    l.measure_from_ns.store(ns, Ordering::Relaxed);
                }
            }
            Command::Storm { start, end } => {
                let before = (
                    shared.resumed.count(),
                    shared.resume_failed.load(Ordering::Relaxed),
                );
                shared.resumed.arm(before.0 + (end - start) as u64);
                fleet.storm(start..end);
                tokio::spawn(report_resumed(
                    shared.clone(),
                    before,
                    (end - start) as u64,
                    epoch,
                    tx.clone(),
                ));
            }
            Command::Stall { start, end } => fleet.stall(start..end),
            Command::Stop => break,
        }
    }

    fleet.stop(Duration::from_secs(30)).await;
    ticker.abort();
    let arrivals = std::mem::take(&mut *shared.arrivals.lock().unwrap_or_else(|e| e.into_inner()));
    let done = Done {
        tick: tick(&shared, epoch)?,
        arrivals,
        heartbeats_sent: shared.heartbeats_sent.load(Ordering::Relaxed),
        frames: shared.frames.load(Ordering::Relaxed),
        stalled: shared.stalled.load(Ordering::Relaxed),
        resume_failed: shared.resume_failed.load(Ordering::Relaxed),
        errors: shared.errors.samples(),
    };
    let _ = tx.send(Report::Done(done));
    drop(tx);
    writer.await.context("the report writer")??;
    Ok(())
}

/// The assignment's connections, each with its user's token (shared by that user's sessions).
fn sessions(a: &Assignment) -> Vec<(Arc<str>, usize)> {
    let tokens: Vec<Arc<str>> = a.tokens.iter().map(|t| Arc::from(t.as_str())).collect();
    a.users
        .iter()
        .map(|u| (tokens[*u as usize].clone(), 1))
        .collect()
}

async fn write_reports(mut rx: mpsc::UnboundedReceiver<Report>) -> anyhow::Result<()> {
    let mut out = tokio::io::stdout();
    while let Some(r) = rx.recv().await {
        out.write_all(wire::line(&r)?.as_bytes()).await?;
        out.flush().await?;
    }
    Ok(())
}

/// The counters now and the latencies since the last tick.
fn tick(shared: &Shared, epoch: Instant) -> anyhow::Result<Tick> {
    let me = std::process::id();
    Ok(Tick {
        second: epoch.elapsed().as_secs_f64().round() as u64,
        identified: shared.identified.count(),
        messages: shared.messages.count(),
        failed: shared.failed.load(Ordering::Relaxed),
        ended: shared.ended.load(Ordering::Relaxed),
        resumed: shared.resumed.count(),
        latency: match &shared.latencies {
            Some(l) => Buckets::of(&l.take()?),
            None => Buckets::default(),
        },
        cpu_ticks: procfs::cpu_ticks(me).unwrap_or(0),
        rss_kib: procfs::rss_kib(me).unwrap_or(0),
    })
}

/// A tick on each of the epoch's whole seconds, so that every worker's second `k` covers the
/// same stretch of time.
async fn tick_every_second(shared: Arc<Shared>, epoch: Instant, tx: mpsc::UnboundedSender<Report>) {
    let mut k = epoch.elapsed().as_secs() + 1;
    loop {
        tokio::time::sleep_until((epoch + Duration::from_secs(k)).into()).await;
        match tick(&shared, epoch) {
            Ok(t) => {
                if tx.send(Report::Tick(t)).is_err() {
                    return;
                }
            }
            Err(e) => eprintln!("worker: {e:#}"),
        }
        k = epoch.elapsed().as_secs() + 1;
    }
}

/// Waits until the storm's `n` connections have resumed or failed to (at most two minutes)
/// and says when.
async fn report_resumed(
    shared: Arc<Shared>,
    before: (u64, u64),
    n: u64,
    epoch: Instant,
    tx: mpsc::UnboundedSender<Report>,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let at = loop {
        match shared
            .resumed
            .wait(Instant::now() + Duration::from_millis(100))
            .await
        {
            Ok(at) => break at,
            Err(resumed) => {
                let failed = shared.resume_failed.load(Ordering::Relaxed) - before.1;
                if resumed - before.0 + failed >= n || Instant::now() > deadline {
                    break Instant::now();
                }
            }
        }
    };
    let _ = tx.send(Report::Resumed {
        resumed: shared.resumed.count() - before.0,
        failed: shared.resume_failed.load(Ordering::Relaxed) - before.1,
        at_ns: at.saturating_duration_since(epoch).as_nanos() as u64,
    });
}
