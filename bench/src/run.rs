//! The open-loop scheduler: fixed send times, bounded in-flight requests, per-op recording.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use enrichment_protocol::rest::CreateMessage;
use hdrhistogram::Histogram;
use reqwest::{Client, StatusCode};
use tokio::sync::Semaphore;

use crate::mix::{Mix, Op, splitmix64};
use crate::setup::World;

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, at 3 significant digits.
const HIST_MAX_US: u64 = 600_000_000;
const HIST_SIGFIG: u8 = 3;
/// How many distinct transport-error messages to keep for the report.
const ERROR_SAMPLES: usize = 8;

/// The shape of one run.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    pub rate: f64,
    pub warmup: Duration,
    pub duration: Duration,
    pub mix: Mix,
    pub connections: usize,
    pub seed: u64,
    pub content_bytes: usize,
}

pub fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIST_MAX_US, HIST_SIGFIG).context("creating a histogram")
}

/// An open-loop schedule: request `i` is due at `start + i / rate`, fixed before the run and
/// whatever the server does; the first `warmup_n` are warmup, the rest are measured.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    pub start: Instant,
    interval_ns: f64,
    /// Requests over warmup and measured window together.
    pub total: u64,
    pub warmup_n: u64,
}

impl Pacing {
    /// `rate` per second for `warmup` then `duration`, starting at `start`.
    pub fn new(start: Instant, rate: f64, warmup: Duration, duration: Duration) -> Pacing {
        Pacing {
            start,
            interval_ns: 1e9 / rate,
            total: ((warmup + duration).as_secs_f64() * rate).round() as u64,
            warmup_n: (warmup.as_secs_f64() * rate).round() as u64,
        }
    }

    /// When request `i` is due.
    pub fn at(&self, i: u64) -> Instant {
        self.start + Duration::from_nanos((i as f64 * self.interval_ns) as u64)
    }

    pub fn measured(&self, i: u64) -> bool {
        i >= self.warmup_n
    }

    /// When the measured window begins: the first measured request's time.
    pub fn measure_start(&self) -> Instant {
        self.at(self.warmup_n)
    }

    /// Sleeps this thread until request `i` is due (at once when it is late); returns its due
    /// time. The schedule loops run on threads of their own and sleep with
    /// `std::thread::sleep` (nanosleep, tens of microseconds of slack) rather than on the
    /// runtime's 1 ms timer wheel, so requests leave close to their time.
    pub fn wait_for(&self, i: u64) -> Instant {
        let due = self.at(i);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        due
    }
}

/// Counters and latencies of one operation within the measured window.
#[derive(Debug)]
pub struct OpStats {
    pub scheduled: u64,
    pub dropped: u64,
    pub status_2xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub status_other: u64,
    pub errors: u64,
    /// Exact status codes seen (a small sorted list).
    pub codes: Vec<(u16, u64)>,
    /// Scheduled time to last body byte, microseconds, HTTP responses only.
    pub latency: Histogram<u64>,
}

impl OpStats {
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(OpStats {
            scheduled: 0,
            dropped: 0,
            status_2xx: 0,
            status_4xx: 0,
            status_5xx: 0,
            status_other: 0,
            errors: 0,
            codes: Vec::new(),
            latency: new_histogram()?,
        })
    }

    pub fn sent(&self) -> u64 {
        self.scheduled - self.dropped
    }

    pub fn responses(&self) -> u64 {
        self.status_2xx + self.status_4xx + self.status_5xx + self.status_other
    }

    fn record_status(&mut self, status: StatusCode, latency_us: u64) {
        match status.as_u16() {
            200..=299 => self.status_2xx += 1,
            400..=499 => self.status_4xx += 1,
            500..=599 => self.status_5xx += 1,
            _ => self.status_other += 1,
        }
        let code = status.as_u16();
        match self.codes.binary_search_by_key(&code, |&(c, _)| c) {
            Ok(i) => self.codes[i].1 += 1,
            Err(i) => self.codes.insert(i, (code, 1)),
        }
        self.latency.saturating_record(latency_us.max(1));
    }
}

/// One second of the measured window, by *scheduled* time: shows stalls and cliffs that the
/// whole-run percentiles average away.
#[derive(Debug)]
pub struct Second {
    pub scheduled: u64,
    pub dropped: u64,
    pub responses: u64,
    pub non_2xx: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
}

impl Second {
    fn new() -> anyhow::Result<Self> {
        Ok(Second {
            scheduled: 0,
            dropped: 0,
            responses: 0,
            non_2xx: 0,
            errors: 0,
            latency: new_histogram()?,
        })
    }
}

/// Everything recorded during a run.
#[derive(Debug)]
pub struct Recorded {
    /// Indexed by [`Op::index`].
    pub ops: Vec<OpStats>,
    /// How late the generator started each measured request (µs), sent requests only.
    pub dispatch_lag: Histogram<u64>,
    /// Requests sent during warmup (not otherwise recorded).
    pub warmup_sent: u64,
    pub warmup_dropped: u64,
    /// The measured window: its start, and the last response to a measured request.
    pub measure_start: Option<Instant>,
    pub last_response: Option<Instant>,
    /// The peak number of requests in flight at once.
    pub peak_in_flight: usize,
    pub error_samples: Vec<String>,
    /// Per second of the measured window.
    pub timeline: Vec<Second>,
}

impl Recorded {
    fn new(seconds: usize) -> anyhow::Result<Self> {
        Ok(Recorded {
            ops: Op::ALL
                .iter()
                .map(|_| OpStats::new())
                .collect::<anyhow::Result<_>>()?,
            dispatch_lag: new_histogram()?,
            warmup_sent: 0,
            warmup_dropped: 0,
            measure_start: None,
            last_response: None,
            peak_in_flight: 0,
            error_samples: Vec::new(),
            timeline: (0..seconds)
                .map(|_| Second::new())
                .collect::<anyhow::Result<_>>()?,
        })
    }

    /// The timeline slot of a request scheduled at `at`, if it is in the measured window.
    fn second(&mut self, at: Instant) -> Option<&mut Second> {
        let start = self.measure_start?;
        let i = usize::try_from(at.checked_duration_since(start)?.as_secs()).ok()?;
        self.timeline.get_mut(i)
    }
}

/// A poisoned lock only means another task panicked mid-record; the counters are still usable.
fn lock(m: &Mutex<Recorded>) -> MutexGuard<'_, Recorded> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A request ready to go: everything is decided at schedule time.
struct Job {
    op: Op,
    url: String,
    auth: reqwest::header::HeaderValue,
    body: Option<Vec<u8>>,
    scheduled: Instant,
    measured: bool,
}

async fn execute(client: Client, job: Job, rec: Arc<Mutex<Recorded>>) {
    let dispatched = Instant::now();
    let mut req = match job.op {
        Op::Create => client.post(&job.url),
        Op::List | Op::Channel => client.get(&job.url),
    };
    req = req.header(reqwest::header::AUTHORIZATION, job.auth);
    if let Some(body) = job.body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    // Read the whole body: the response is complete only when its last byte has arrived.
    let outcome = match req.send().await {
        Ok(res) => {
            let status = res.status();
            res.bytes().await.map(|_| status)
        }
        Err(e) => Err(e),
    };
    let done = Instant::now();
    if !job.measured {
        return;
    }
    let latency = micros(done.saturating_duration_since(job.scheduled));
    let lag = micros(dispatched.saturating_duration_since(job.scheduled));
    let mut r = lock(&rec);
    r.dispatch_lag.saturating_record(lag.max(1));
    if let Some(sec) = r.second(job.scheduled) {
        match &outcome {
            Ok(status) => {
                sec.responses += 1;
                sec.non_2xx += u64::from(!status.is_success());
                sec.latency.saturating_record(latency.max(1));
            }
            Err(_) => sec.errors += 1,
        }
    }
    let stats = &mut r.ops[job.op.index()];
    match outcome {
        Ok(status) => {
            stats.record_status(status, latency);
            r.last_response = Some(r.last_response.map_or(done, |t| t.max(done)));
        }
        Err(e) => {
            stats.errors += 1;
            let msg = format!("{}: {}", job.op, error_chain(&e));
            if r.error_samples.len() < ERROR_SAMPLES && !r.error_samples.contains(&msg) {
                r.error_samples.push(msg);
            }
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Everything the scheduler thread needs.
struct Schedule {
    client: Client,
    base: String,
    world: World,
    plan: LoadPlan,
    rec: Arc<Mutex<Recorded>>,
    sem: Arc<Semaphore>,
    runtime: tokio::runtime::Handle,
    pacing: Pacing,
}

/// The schedule loop, on a blocking-pool thread of its own (see [`Pacing::wait_for`]); the
/// requests themselves run on the runtime.
fn schedule(s: Schedule) -> anyhow::Result<()> {
    let padding = "x".repeat(s.plan.content_bytes);
    let channels = s.world.channels.len() as u64;
    let users = s.world.users.len() as u64;
    for i in 0..s.pacing.total {
        let scheduled = s.pacing.wait_for(i);
        let measured = s.pacing.measured(i);
        let op = s.plan.mix.pick(s.plan.seed, i);
        let h = splitmix64(s.plan.seed.wrapping_add(i));
        let channel = s.world.channels[(h % channels) as usize];
        let user = &s.world.users[((h >> 32) % users) as usize];
        let Ok(permit) = s.sem.clone().try_acquire_owned() else {
            // Every slot is busy: drop this request rather than delay the schedule.
            let mut r = lock(&s.rec);
            if measured {
                let st = &mut r.ops[op.index()];
                st.scheduled += 1;
                st.dropped += 1;
                if let Some(sec) = r.second(scheduled) {
                    sec.scheduled += 1;
                    sec.dropped += 1;
                }
            } else {
                r.warmup_dropped += 1;
            }
            continue;
        };
        {
            let in_flight = s.plan.connections - s.sem.available_permits();
            let mut r = lock(&s.rec);
            if measured {
                r.ops[op.index()].scheduled += 1;
                r.peak_in_flight = r.peak_in_flight.max(in_flight);
                if let Some(sec) = r.second(scheduled) {
                    sec.scheduled += 1;
                }
            } else {
                r.warmup_sent += 1;
            }
        }
        let base = &s.base;
        let (url, body) = match op {
            Op::Create => {
                let msg = CreateMessage {
                    content: Some(format!("load {i} {padding}")),
                    ..Default::default()
                };
                let body = serde_json::to_vec(&msg).context("encoding a message")?;
                (format!("{base}/channels/{channel}/messages"), Some(body))
            }
            Op::List => (format!("{base}/channels/{channel}/messages?limit=50"), None),
            Op::Channel => (format!("{base}/channels/{channel}"), None),
        };
        let job = Job {
            op,
            url,
            auth: user.auth.clone(),
            body,
            scheduled,
            measured,
        };
        let client = s.client.clone();
        let rec = s.rec.clone();
        s.runtime.spawn(async move {
            execute(client, job, rec).await;
            drop(permit);
        });
    }
    Ok(())
}

/// Runs the schedule to completion and returns what was recorded.
pub async fn run_load(
    client: &Client,
    base: &str,
    world: &World,
    plan: &LoadPlan,
    drain_timeout: Duration,
) -> anyhow::Result<Recorded> {
    anyhow::ensure!(plan.rate > 0.0, "--rate must be positive");
    anyhow::ensure!(plan.connections > 0, "--connections must be positive");
    anyhow::ensure!(!world.channels.is_empty(), "no channels to load");
    anyhow::ensure!(!world.users.is_empty(), "no users to load with");
    let seconds = plan.duration.as_secs_f64().ceil() as usize;
    let rec = Arc::new(Mutex::new(Recorded::new(seconds)?));
    let sem = Arc::new(Semaphore::new(plan.connections));
    let connections = u32::try_from(plan.connections).context("--connections is too large")?;
    // Start a little in the future so request 0 is not already late.
    let pacing = Pacing::new(
        Instant::now() + Duration::from_millis(50),
        plan.rate,
        plan.warmup,
        plan.duration,
    );
    lock(&rec).measure_start = Some(pacing.measure_start());

    let sched = Schedule {
        client: client.clone(),
        base: base.trim_end_matches('/').to_owned(),
        world: world.clone(),
        plan: plan.clone(),
        rec: rec.clone(),
        sem: sem.clone(),
        runtime: tokio::runtime::Handle::current(),
        pacing,
    };
    tokio::task::spawn_blocking(move || schedule(sched))
        .await
        .context("the scheduler thread failed")??;

    // Wait for every in-flight request (each is bounded by the client timeout).
    let drained = tokio::time::timeout(drain_timeout, sem.acquire_many(connections)).await;
    match drained {
        Ok(Ok(_all)) => {}
        Ok(Err(e)) => anyhow::bail!("waiting for in-flight requests: {e}"),
        Err(_) => anyhow::bail!("in-flight requests did not finish within {drain_timeout:?}"),
    }
    let rec = Arc::try_unwrap(rec)
        .map_err(|_| anyhow::anyhow!("a request task still holds the recorder"))?
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_puts_each_request_at_its_fixed_slot_and_splits_warmup_from_measured() {
        let start = Instant::now();
        let p = Pacing::new(
            start,
            250.0,
            Duration::from_secs(2),
            Duration::from_secs(10),
        );
        assert_eq!((p.total, p.warmup_n), (3_000, 500));
        assert_eq!(p.at(0), start);
        assert_eq!(p.at(1) - p.at(0), Duration::from_millis(4));
        assert_eq!(p.at(2_999) - start, Duration::from_micros(11_996_000));
        assert!(!p.measured(499) && p.measured(500));
        assert_eq!(p.measure_start() - start, Duration::from_secs(2));
        // Rates that do not divide a second: slots never drift from i / rate.
        let p = Pacing::new(start, 3.0, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(p.total, 3);
        assert_eq!(p.at(2) - start, Duration::from_nanos(666_666_666));
        assert!(p.measured(0));
    }

    #[test]
    fn a_request_never_leaves_before_its_slot_and_a_late_one_leaves_at_once() {
        let p = Pacing::new(
            Instant::now() + Duration::from_millis(20),
            1000.0,
            Duration::ZERO,
            Duration::from_millis(5),
        );
        for i in 0..p.total {
            let due = p.wait_for(i);
            assert_eq!(due, p.at(i));
            assert!(Instant::now() >= due, "request {i} left early");
        }
        // A slot already past: no sleep, the due time is still the slot's.
        let late = Pacing::new(
            Instant::now() - Duration::from_secs(1),
            1.0,
            Duration::ZERO,
            Duration::from_secs(1),
        );
        let before = Instant::now();
        assert_eq!(late.wait_for(0), late.start);
        assert!(
            before.elapsed() < Duration::from_secs(1),
            "no wait for a late slot"
        );
    }
}
