//! `enrichment-store-bench`: durable message writes and history reads against the PostgreSQL
//! store, without a node in between.
//!
//! It measures what the guild actors ask of the store on the hot path. Each **writer** is one
//! channel's commit queue, like one guild actor: it creates a message, awaits `create_message`
//! (which resolves only once the message is committed), then creates the next. Many writers
//! at once are many guild actors; the store's group commit turns their concurrent creates into
//! shared transactions. **Readers** meanwhile page history (`list_messages`, `Latest`, 50 per
//! page) at a fixed ratio of reads to completed writes, like clients opening channels.
//!
//! Writers run closed loop by default (each sends its next message as soon as the previous
//! one is acknowledged), which finds the most the store sustains with that many writers. With
//! `--rate`, they run open loop instead: message `i` of a writer is due at a fixed time, and
//! its latency counts from then, so a stall shows in the latencies rather than slowing the
//! load down (coordinated omission).
//!
//! Unless `--postgres-url` is given, it starts its own PostgreSQL (Debian's package, on an
//! ephemeral loopback port in a temporary directory) with the default durability: `fsync` and
//! `synchronous_commit` on, so every acknowledged message is on disk. The report prints the
//! settings it ran with.
//!
//! What the numbers mean:
//! - **writes persisted**: `create_message` calls acknowledged within the measured window (after
//!   `--warmup`), and that count divided by the window (msgs/s).
//! - **write ack**: from the call (or, open loop, from its due time) to its acknowledgement.
//! - **read**: one `list_messages` call, from call to answer.
//! - **batches**: transactions the group commit made in the window, and rows per batch.
//!
//! With `--fenced`, each writer is the owner of a guild of its own (one node claims an id pair
//! and every writer's guild) and writes through `Stores::fenced`, as a guild actor of a cluster
//! does: the cost of fencing on the hot path.

// It measures the store itself, under the guild actors' write pattern, so it calls the write
// methods the rest of the workspace reaches only through the guild actor's commit path.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use enrichment_protocol::rest::HistoryAnchor;
use enrichment_protocol::{Snowflake, SnowflakeGenerator};
use enrichment_storage::postgres::{PostgresOptions, PostgresStore};
use enrichment_storage::{GuildClaim, IdClaim, MessageRecord, MessageStore};
use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(
    name = "enrichment-store-bench",
    version,
    about = "Durable message writes and history reads against the PostgreSQL store"
)]
struct Cli {
    /// Database to use (it is migrated first). Without it, a durable PostgreSQL is started in a
    /// temporary directory and removed afterwards.
    #[arg(long)]
    postgres_url: Option<String>,
    /// Measured seconds (after warmup).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Warmup seconds, under the same load, not recorded.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Concurrent writers, each one channel with sequential awaits (one guild actor each).
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// Total messages per second offered, open loop, spread evenly over the writers. 0 runs
    /// the writers closed loop (as fast as acknowledgements come).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// History reads per completed write.
    #[arg(long, default_value_t = 0.1)]
    read_ratio: f64,
    /// Concurrent readers sharing the reads.
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Connections in the store's pool.
    #[arg(long, default_value_t = 16)]
    pool_size: usize,
    /// Most messages per group commit.
    #[arg(long, default_value_t = 256)]
    batch_max: usize,
    /// Group commits in flight at once.
    #[arg(long, default_value_t = 2)]
    in_flight: usize,
    /// Bytes of content per message.
    #[arg(long, default_value_t = 100)]
    content_bytes: usize,
    /// Each writer writes as the owner of a guild of its own, through stores fenced by that
    /// ownership (as a guild actor in a cluster does): every batch checks and share-locks the
    /// ownership records it names.
    #[arg(long)]
    fenced: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

const HIST_MAX_US: u64 = 60_000_000;

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).context("creating a histogram")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(HIST_MAX_US)
        .clamp(1, HIST_MAX_US)
}

/// The measured window, shared by every task.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

struct Shared {
    store: Arc<PostgresStore>,
    window: Window,
    stop: AtomicBool,
    writes_done: AtomicU64,
    reads_done: AtomicU64,
}

struct WriterResult {
    acks: Histogram<u64>,
    persisted: u64,
    errors: u64,
    /// The last message this writer had acknowledged, checked after the run.
    last: Option<(Snowflake, Snowflake)>,
}

async fn writer(
    shared: Arc<Shared>,
    messages: Arc<dyn MessageStore>,
    index: usize,
    (guild, channel): (Snowflake, Snowflake),
    interval: Option<Duration>,
    content: String,
) -> anyhow::Result<WriterResult> {
    // Worker and process bits differ per writer, so ids never collide across writers.
    let ids = SnowflakeGenerator::new((index % 32) as u8, (index / 32 % 32) as u8);
    let mut out = WriterResult {
        acks: histogram()?,
        persisted: 0,
        errors: 0,
        last: None,
    };
    let first_due = Instant::now();
    let mut n: u32 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let due = match interval {
            Some(interval) => {
                let due = first_due + interval * n;
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        n = n.saturating_add(1);
        let id = ids.next_id();
        let message = MessageRecord::text(
            id,
            channel,
            Some(guild),
            Snowflake(2 + index as u64),
            content.clone(),
        );
        let result = messages.create_message(&message).await;
        let acked = Instant::now();
        shared.writes_done.fetch_add(1, Ordering::Relaxed);
        if !shared.window.contains(acked) {
            if acked >= shared.window.end {
                break;
            }
            continue;
        }
        match result {
            Ok(()) => {
                out.persisted += 1;
                out.acks.record(micros(acked - due))?;
                out.last = Some((channel, id));
            }
            Err(e) => {
                out.errors += 1;
                show_error(&e);
            }
        }
    }
    Ok(out)
}

fn show_error(e: &dyn std::fmt::Display) {
    // The first few errors are worth seeing; a failing database would flood the terminal.
    static SHOWN: AtomicU64 = AtomicU64::new(0);
    if SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("error: {e}");
    }
}

struct ReaderResult {
    latency: Histogram<u64>,
    reads: u64,
    errors: u64,
}

async fn reader(
    shared: Arc<Shared>,
    channels: Arc<Vec<Snowflake>>,
    offset: usize,
    ratio: f64,
) -> anyhow::Result<ReaderResult> {
    let mut out = ReaderResult {
        latency: histogram()?,
        reads: 0,
        errors: 0,
    };
    let mut next = offset;
    while !shared.stop.load(Ordering::Relaxed) {
        let allowed = (shared.writes_done.load(Ordering::Relaxed) as f64 * ratio) as u64;
        if shared.reads_done.load(Ordering::Relaxed) >= allowed {
            tokio::time::sleep(Duration::from_micros(500)).await;
            continue;
        }
        shared.reads_done.fetch_add(1, Ordering::Relaxed);
        let channel = channels[next % channels.len()];
        next = next.wrapping_add(7);
        let started = Instant::now();
        let result = shared
            .store
            .list_messages(channel, HistoryAnchor::Latest, 50)
            .await;
        let done = Instant::now();
        if done >= shared.window.end {
            break;
        }
        if !shared.window.contains(started) {
            continue;
        }
        match result {
            Ok(_) => {
                out.reads += 1;
                out.latency.record(micros(done - started))?;
            }
            Err(e) => {
                out.errors += 1;
                show_error(&e);
            }
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct Latency {
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
        )
    }
}

#[derive(Serialize)]
struct Report {
    server: String,
    fsync: String,
    synchronous_commit: String,
    cores: usize,
    cpu: String,
    writers: usize,
    fenced: bool,
    mode: String,
    offered_rate: Option<f64>,
    read_ratio: f64,
    readers: usize,
    pool_size: usize,
    batch_max: usize,
    in_flight: usize,
    content_bytes: usize,
    warmup_s: f64,
    duration_s: f64,
    writes_persisted: u64,
    writes_per_s: f64,
    write_errors: u64,
    write_ack: Latency,
    reads: u64,
    reads_per_s: f64,
    read_errors: u64,
    read: Latency,
    batches: u64,
    rows_per_batch: f64,
    verified_writers: usize,
}

impl Report {
    fn table(&self) -> String {
        format!(
            "server            {} (fsync={}, synchronous_commit={})\n\
             machine           {} cores, {}\n\
             load              {} writers{} {}, {} readers at {} reads/write, {} B content\n\
             store             pool {}, batch max {}, {} batches in flight\n\
             window            {:.1} s after {:.1} s warmup\n\
             writes persisted  {} ({:.0} msgs/s), {} errors\n\
             write ack ms      {}\n\
             reads             {} ({:.0}/s), {} errors\n\
             read ms           {}\n\
             group commit      {} batches, {:.1} rows per batch\n\
             verified          the last acknowledged message of {} writers reads back\n",
            self.server,
            self.fsync,
            self.synchronous_commit,
            self.cores,
            self.cpu,
            self.writers,
            if self.fenced { " (fenced)" } else { "" },
            self.mode,
            self.readers,
            self.read_ratio,
            self.content_bytes,
            self.pool_size,
            self.batch_max,
            self.in_flight,
            self.duration_s,
            self.warmup_s,
            self.writes_persisted,
            self.writes_per_s,
            self.write_errors,
            self.write_ack.line(),
            self.reads,
            self.reads_per_s,
            self.read_errors,
            self.read.line(),
            self.batches,
            self.rows_per_batch,
            self.verified_writers,
        )
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The server's version and durability settings, read over a plain connection.
async fn server_settings(url: &str) -> anyhow::Result<(String, String, String)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to read the server's settings")?;
    let task = tokio::spawn(connection);
    let mut values = Vec::new();
    for setting in ["server_version", "fsync", "synchronous_commit"] {
        let row = client
            .query_one(&format!("SHOW {setting}"), &[])
            .await
            .with_context(|| format!("SHOW {setting}"))?;
        values.push(row.get::<_, String>(0));
    }
    drop(client);
    let _ = task.await;
    let mut values = values.into_iter();
    let mut next = || values.next().unwrap_or_default();
    Ok((format!("PostgreSQL {}", next()), next(), next()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    anyhow::ensure!(cli.writers > 0, "--writers must be positive");
    anyhow::ensure!(cli.duration > 0.0, "--duration must be positive");
    anyhow::ensure!(
        cli.rate >= 0.0 && cli.rate.is_finite(),
        "--rate must be 0 or positive"
    );
    anyhow::ensure!(cli.read_ratio >= 0.0, "--read-ratio must not be negative");
    let warmup = Duration::try_from_secs_f64(cli.warmup).context("--warmup")?;
    let duration = Duration::try_from_secs_f64(cli.duration).context("--duration")?;

    // Declared before the store so that the server outlives it.
    let own_server = match cli.postgres_url {
        Some(_) => None,
        None => {
            if !cli.json {
                eprintln!("starting a durable PostgreSQL (fsync on) in a temporary directory...");
            }
            Some(enrichment_testkit::Postgres::start_durable()?)
        }
    };
    let url = match (&cli.postgres_url, &own_server) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => server.fresh_database()?,
        (None, None) => anyhow::bail!("no database to run against"),
    };
    let (server, fsync, synchronous_commit) = server_settings(&url).await?;
    let store = PostgresStore::connect(
        &url,
        PostgresOptions {
            pool_size: cli.pool_size,
            message_batch_max: cli.batch_max,
            message_batches_in_flight: cli.in_flight,
            ..PostgresOptions::default()
        },
    )
    .await?;
    store.migrate().await?;
    let store = Arc::new(store);

    // Fresh channels per run, so an existing database's history does not skew the reads.
    let base = SnowflakeGenerator::new(31, 31).next_id().get();
    let channels: Arc<Vec<Snowflake>> = Arc::new(
        (0..cli.writers as u64)
            .map(|i| Snowflake(base + i))
            .collect(),
    );
    let start = Instant::now() + warmup;
    let shared = Arc::new(Shared {
        store: Arc::clone(&store),
        window: Window {
            start,
            end: start + duration,
        },
        stop: AtomicBool::new(false),
        writes_done: AtomicU64::new(0),
        reads_done: AtomicU64::new(0),
    });
    let interval = (cli.rate > 0.0)
        .then(|| Duration::try_from_secs_f64(cli.writers as f64 / cli.rate))
        .transpose()
        .context("--rate")?;
    if !cli.json {
        eprintln!(
            "{} writers{} for {:.0} s + {:.0} s warmup...",
            cli.writers,
            interval.map_or(" (closed loop)".to_owned(), |_| format!(
                " at {} msgs/s total",
                cli.rate
            )),
            cli.duration,
            cli.warmup
        );
    }
    let content = "x".repeat(cli.content_bytes);
    // A guild per writer (its channel's id, plus one), owned by one node when fenced.
    let mut stores = Vec::with_capacity(channels.len());
    let all = Arc::clone(&store).stores();
    let owner = if cli.fenced {
        let me = NodeIdentity::new("store-bench", GenerationId::now());
        match all
            .nodes
            .claim_id_pair(&me, None, Duration::from_secs(3600))
            .await?
        {
            IdClaim::Claimed(lease) => Some((me, lease.pair)),
            other => anyhow::bail!("cannot claim an id pair: {other:?}"),
        }
    } else {
        None
    };
    for &channel in channels.iter() {
        let guild = Snowflake(channel.get() + (1 << 40));
        let messages = match &owner {
            Some((me, pair)) => match all.leases.claim_guild(guild, me, *pair).await? {
                GuildClaim::Claimed(record) => all.fenced(record).messages,
                other => anyhow::bail!("cannot claim guild {guild}: {other:?}"),
            },
            None => Arc::clone(&all.messages),
        };
        stores.push((guild, messages));
    }
    let writers: Vec<_> = channels
        .iter()
        .zip(stores)
        .enumerate()
        .map(|(i, (&channel, (guild, messages)))| {
            tokio::spawn(writer(
                Arc::clone(&shared),
                messages,
                i,
                (guild, channel),
                interval,
                content.clone(),
            ))
        })
        .collect();
    let readers: Vec<_> = (0..cli.readers)
        .map(|i| {
            tokio::spawn(reader(
                Arc::clone(&shared),
                Arc::clone(&channels),
                i,
                cli.read_ratio,
            ))
        })
        .collect();

    tokio::time::sleep_until(start.into()).await;
    let stats_before = store.message_writer_stats();
    tokio::time::sleep_until(shared.window.end.into()).await;
    let stats_after = store.message_writer_stats();
    shared.stop.store(true, Ordering::Relaxed);

    let mut acks = histogram()?;
    let (mut persisted, mut write_errors) = (0, 0);
    let mut last = Vec::new();
    for task in writers {
        let r = task.await.context("writer task")??;
        acks.add(&r.acks)?;
        persisted += r.persisted;
        write_errors += r.errors;
        last.extend(r.last);
    }
    let mut read_latency = histogram()?;
    let (mut reads, mut read_errors) = (0, 0);
    for task in readers {
        let r = task.await.context("reader task")??;
        read_latency.add(&r.latency)?;
        reads += r.reads;
        read_errors += r.errors;
    }
    // Acknowledged means stored: every writer's last acknowledged message reads back.
    for &(channel, id) in &last {
        anyhow::ensure!(
            store.get_message(channel, id).await?.is_some(),
            "message {id} of channel {channel} was acknowledged but is not stored"
        );
    }

    let window_s = duration.as_secs_f64();
    let batches = stats_after.batches - stats_before.batches;
    let rows = stats_after.rows - stats_before.rows;
    let report = Report {
        server,
        fsync,
        synchronous_commit,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu: cpu_model(),
        writers: cli.writers,
        fenced: cli.fenced,
        mode: if cli.rate > 0.0 {
            "open loop".into()
        } else {
            "closed loop".into()
        },
        offered_rate: (cli.rate > 0.0).then_some(cli.rate),
        read_ratio: cli.read_ratio,
        readers: cli.readers,
        pool_size: cli.pool_size,
        batch_max: cli.batch_max,
        in_flight: cli.in_flight,
        content_bytes: cli.content_bytes,
        warmup_s: cli.warmup,
        duration_s: window_s,
        writes_persisted: persisted,
        writes_per_s: persisted as f64 / window_s,
        write_errors,
        write_ack: Latency::of(&acks),
        reads,
        reads_per_s: reads as f64 / window_s,
        read_errors,
        read: Latency::of(&read_latency),
        batches,
        rows_per_batch: if batches == 0 {
            0.0
        } else {
            rows as f64 / batches as f64
        },
        verified_writers: last.len(),
    };
    if cli.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("encoding the report")?
        );
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run(cli))
}
