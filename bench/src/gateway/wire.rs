//! What the leader of a multi-process run and its workers say to each other: one JSON object
//! per line, over the worker's stdin (commands) and stdout (reports).
//!
//! Times cross the process boundary as nanoseconds since the run's epoch. Each worker maps
//! that epoch onto its own monotonic clock once, through the wall clock ([`local_epoch`]), so
//! the send time a message carries and the moment a worker reads it are on one time line.
//! Latencies cross as the non-empty buckets of an HdrHistogram ([`Buckets`]), which merge
//! exactly: the leader's percentiles are those of one histogram fed every sample.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::client::Arrivals;
use crate::run::new_histogram;

/// Leader to worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// The worker's share of the run; the first line a worker reads.
    Assign(Assignment),
    /// Every connection heartbeats now, so the server may drop its READY and GUILD_CREATE.
    Beat,
    /// Latencies of messages sent from this time (ns since the epoch) on are recorded.
    MeasureFrom(u64),
    /// The connections `range` drop their sockets and resume.
    Storm { start: usize, end: usize },
    /// The connections `range` stop reading.
    Stall { start: usize, end: usize },
    /// Close every connection, hand in what each received, and exit.
    Stop,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Assignment {
    pub worker: usize,
    /// The run's epoch, as ns since the Unix epoch.
    pub epoch_unix_ns: u128,
    /// Each node's gateway: its address and its URL.
    pub gateways: Vec<(SocketAddr, String)>,
    pub sources: Vec<IpAddr>,
    pub intents: u64,
    pub identify_concurrency: usize,
    /// The run's connections this worker opens: `first .. first + users.len()`...
    pub first: usize,
    /// ...each as an index into `tokens` (a user's sessions share its token).
    pub users: Vec<u32>,
    pub tokens: Vec<String>,
}

/// Worker to leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// Sent once a second, on the epoch's whole seconds.
    Tick(Tick),
    /// Every assigned connection identified or failed.
    Opened {
        identified: usize,
        failed: usize,
        elapsed_ms: u64,
    },
    /// Every connection of a storm got RESUMED (or failed), at this time (ns since the epoch).
    Resumed {
        resumed: u64,
        failed: u64,
        at_ns: u64,
    },
    /// The last report: what each connection received, and the samples since the last tick.
    Done(Done),
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tick {
    /// Whole seconds since the epoch.
    pub second: u64,
    pub identified: u64,
    /// MESSAGE_CREATE frames received, since the start.
    pub messages: u64,
    pub failed: u64,
    pub ended: u64,
    pub resumed: u64,
    /// Latencies recorded since the previous tick.
    pub latency: Buckets,
    /// This worker process's CPU time (user + system, clock ticks) and RSS (KiB).
    pub cpu_ticks: u64,
    pub rss_kib: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Done {
    pub tick: Tick,
    pub arrivals: Vec<(usize, Arrivals)>,
    pub heartbeats_sent: u64,
    pub frames: u64,
    pub stalled: u64,
    pub resume_failed: u64,
    pub errors: Vec<String>,
}

/// A histogram as its non-empty buckets: `(value, count)`, values in the histogram's unit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buckets(pub Vec<(u64, u64)>);

impl Buckets {
    pub fn of(h: &Histogram<u64>) -> Buckets {
        Buckets(
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    /// Adds these samples to `h`.
    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for &(value, count) in &self.0 {
            h.saturating_record_n(value, count);
        }
    }

    pub fn to_histogram(&self) -> anyhow::Result<Histogram<u64>> {
        let mut h = new_histogram()?;
        self.add_to(&mut h);
        Ok(h)
    }

    pub fn samples(&self) -> u64 {
        self.0.iter().map(|(_, c)| c).sum()
    }
}

/// Ns since the Unix epoch, now.
pub fn unix_now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// This process's `Instant` for the run's epoch, given as ns since the Unix epoch by the
/// leader. The wall clock is read once, here; from then on only the monotonic clock is.
pub fn local_epoch(epoch_unix_ns: u128) -> Instant {
    let now = Instant::now();
    let wall = unix_now_ns();
    if wall >= epoch_unix_ns {
        let since = Duration::from_nanos(u64::try_from(wall - epoch_unix_ns).unwrap_or(u64::MAX));
        now.checked_sub(since).unwrap_or(now)
    } else {
        now + Duration::from_nanos(u64::try_from(epoch_unix_ns - wall).unwrap_or(0))
    }
}

/// One line of JSON.
pub fn line<T: Serialize>(msg: &T) -> anyhow::Result<String> {
    let mut s = serde_json::to_string(msg)?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::mix::splitmix64;

    #[test]
    fn histograms_split_over_processes_merge_to_the_one_histogram_of_every_sample() {
        // The same samples, recorded in one histogram and spread over three "workers".
        let mut whole = new_histogram().unwrap();
        let mut parts = [
            new_histogram().unwrap(),
            new_histogram().unwrap(),
            new_histogram().unwrap(),
        ];
        for i in 0..30_000u64 {
            // 1 µs .. ~2 s, heavy-tailed.
            let v = 1 + splitmix64(i) % 1_000 * (1 + splitmix64(i + 7) % 2_000);
            whole.record(v).unwrap();
            parts[(i % 3) as usize].record(v).unwrap();
        }
        let mut merged = new_histogram().unwrap();
        for p in &parts {
            let wire: Buckets =
                serde_json::from_str(&serde_json::to_string(&Buckets::of(p)).unwrap()).unwrap();
            wire.add_to(&mut merged);
        }
        assert_eq!(merged.len(), whole.len());
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                merged.value_at_quantile(q),
                whole.value_at_quantile(q),
                "quantile {q}"
            );
        }
        assert_eq!(merged.max(), whole.max());
        assert_eq!(merged.min(), whole.min());
        assert_eq!(Buckets::of(&merged), Buckets::of(&whole));
    }

    #[test]
    fn a_worker_maps_the_epoch_onto_its_own_clock() {
        let wall = unix_now_ns();
        let epoch = local_epoch(wall - 2_000_000_000);
        let since = epoch.elapsed();
        assert!(
            since >= Duration::from_millis(1_990) && since < Duration::from_millis(2_500),
            "{since:?}"
        );
        let ahead = local_epoch(wall + 1_000_000_000);
        assert!(ahead > Instant::now() + Duration::from_millis(500));
    }

    #[test]
    fn commands_and_reports_are_one_line_each() {
        let c = line(&Command::Storm { start: 5, end: 9 }).unwrap();
        assert_eq!(c, "{\"storm\":{\"start\":5,\"end\":9}}\n");
        let back: Command = serde_json::from_str(c.trim_end()).unwrap();
        assert!(matches!(back, Command::Storm { start: 5, end: 9 }));
        let r = line(&Report::Tick(Tick::default())).unwrap();
        assert_eq!(r.matches('\n').count(), 1);
        assert_eq!(line(&Command::Stop).unwrap(), "\"stop\"\n");
    }
}
