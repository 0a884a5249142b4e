//! The open-loop message schedule of a latency run: message `i` is posted at `start + i / rate`
//! whatever the server does, carries its scheduled time and index in its content, and is
//! dropped (counted, never queued) when every in-flight slot is busy. Shared by the `latency`
//! mode and the multi-process scenarios.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use enrichment_protocol::Snowflake;
use enrichment_protocol::rest::CreateMessage;
use hdrhistogram::Histogram;
use reqwest::Client;
use reqwest::header::HeaderValue;
use tokio::sync::Semaphore;

use super::client::LATENCY_MARK;
use crate::mix::splitmix64;
use crate::run::{Pacing, new_histogram};

/// Posts one message; its status once the whole answer is read.
pub(crate) async fn post(
    client: &Client,
    api: &str,
    channel: Snowflake,
    auth: &HeaderValue,
    content: String,
) -> anyhow::Result<reqwest::StatusCode> {
    let body = serde_json::to_vec(&CreateMessage {
        content: Some(content),
        ..Default::default()
    })?;
    let res = client
        .post(format!("{api}/channels/{channel}/messages"))
        .header(reqwest::header::AUTHORIZATION, auth.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await?;
    let status = res.status();
    let _ = res.bytes().await?;
    Ok(status)
}

pub(crate) struct PostStats {
    pub(crate) sent: AtomicU64,
    pub(crate) ok: AtomicU64,
    pub(crate) non_2xx: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) measured: AtomicU64,
    /// Per guild, the messages that got a 2xx: how many, and the sum of their hashed indices
    /// (see [`Arrivals`]).
    pub(crate) per_guild: Vec<(AtomicU64, AtomicU64)>,
    pub(crate) http: [std::sync::Mutex<Histogram<u64>>; 4],
    /// The first few distinct transport errors, so a report with errors says what they were.
    pub(crate) error_samples: std::sync::Mutex<Vec<String>>,
}

impl PostStats {
    pub(crate) fn new(guilds: usize) -> anyhow::Result<PostStats> {
        let h = || new_histogram().map(std::sync::Mutex::new);
        Ok(PostStats {
            sent: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            non_2xx: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            measured: AtomicU64::new(0),
            per_guild: (0..guilds)
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
            http: [h()?, h()?, h()?, h()?],
            error_samples: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn error_sample(&self, msg: String) {
        let mut samples = self.error_samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() < 4 && !samples.contains(&msg) {
            samples.push(msg);
        }
    }

    pub(crate) fn merged(&self) -> anyhow::Result<Histogram<u64>> {
        let mut out = new_histogram()?;
        for h in &self.http {
            let h = h.lock().unwrap_or_else(|e| e.into_inner());
            out.add(&*h)
                .map_err(|e| anyhow::anyhow!("merging histograms: {e}"))?;
        }
        Ok(out)
    }
}

pub(crate) struct Schedule {
    pub(crate) client: Client,
    pub(crate) api: String,
    /// Per guild: its channel and its members' `Authorization` headers.
    pub(crate) guilds: Vec<(Snowflake, Vec<HeaderValue>)>,
    pub(crate) padding: String,
    pub(crate) epoch: Instant,
    pub(crate) pacing: Pacing,
    pub(crate) sem: Arc<Semaphore>,
    pub(crate) stats: Arc<PostStats>,
    pub(crate) runtime: tokio::runtime::Handle,
}

/// Sends message `i` when `pacing` has it due, to guild `i % G`, by one of its members in
/// turn. Runs on a thread of its own (see [`Pacing::wait_for`]).
pub(crate) fn schedule(s: Schedule) {
    let g = s.guilds.len() as u64;
    for i in 0..s.pacing.total {
        let scheduled = s.pacing.wait_for(i);
        let Ok(permit) = s.sem.clone().try_acquire_owned() else {
            s.stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let measured = s.pacing.measured(i);
        let (channel, members) = &s.guilds[(i % g) as usize];
        let auth = members[((i / g) % members.len() as u64) as usize].clone();
        let sent_ns = scheduled.saturating_duration_since(s.epoch).as_nanos() as u64;
        let mut content = String::with_capacity(40 + s.padding.len());
        let _ = write!(content, "{LATENCY_MARK}{sent_ns} {i} {}", s.padding);
        let client = s.client.clone();
        let api = s.api.clone();
        let channel = *channel;
        let stats = s.stats.clone();
        s.stats.sent.fetch_add(1, Ordering::Relaxed);
        s.runtime.spawn(async move {
            let r = post(&client, &api, channel, &auth, content).await;
            let took = Instant::now().saturating_duration_since(scheduled);
            match r {
                Ok(st) if st.is_success() => {
                    stats.ok.fetch_add(1, Ordering::Relaxed);
                    let (count, set) = &stats.per_guild[(i % g) as usize];
                    count.fetch_add(1, Ordering::Relaxed);
                    set.fetch_add(splitmix64(i), Ordering::Relaxed);
                }
                Ok(_) => {
                    stats.non_2xx.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    stats.error_sample(format!("{e:#}"));
                }
            }
            if measured {
                stats.measured.fetch_add(1, Ordering::Relaxed);
                let shard = (i % 4) as usize;
                stats.http[shard]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .saturating_record((took.as_micros() as u64).max(1));
            }
            drop(permit);
        });
    }
}
