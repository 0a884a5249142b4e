//! A fleet of gateway connections: opened in phases with bounded identify concurrency,
//! commanded together (heartbeat now, stop), and counted through one [`Shared`]. The opening
//! itself ([`open_phase`]) serves the baseline generator's connections too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use super::client::{self, Control, Gate, Shared, Target};

/// How one identify phase went.
#[derive(Clone, Copy, Debug)]
pub struct Opened {
    pub requested: usize,
    pub identified: usize,
    pub failed: usize,
    /// From the first connect to the last GUILD_CREATE.
    pub elapsed: Duration,
}

impl Opened {
    pub fn rate(&self) -> f64 {
        self.identified as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One phase of opening connections, for any kind of connection: takes a slot of
/// `concurrency` per item (the connection releases it once it is ready or has failed), hands
/// item and slot to `spawn`, and waits until `ready` has counted every new connection ready or
/// `failed` has counted it failed, at most `limit` (after which no more are started).
pub async fn open_phase<T>(
    ready: &Gate,
    failed: &AtomicU64,
    concurrency: &Arc<Semaphore>,
    items: Vec<T>,
    limit: Duration,
    mut spawn: impl FnMut(T, OwnedSemaphorePermit),
) -> Opened {
    let failed_now = || failed.load(Ordering::Relaxed) as usize;
    let n = items.len();
    let before_ok = ready.count() as usize;
    let before_failed = failed_now();
    ready.arm((before_ok + n) as u64);
    let started = Instant::now();
    let hard = started + limit;
    for item in items {
        let Ok(permit) = concurrency.clone().acquire_owned().await else {
            break;
        };
        spawn(item, permit);
        if Instant::now() > hard {
            break;
        }
    }
    let done_at = loop {
        let step = Instant::now() + Duration::from_millis(200);
        match ready.wait(step).await {
            Ok(at) => break at,
            Err(ok) => {
                let settled = ok as usize - before_ok + failed_now().saturating_sub(before_failed);
                if settled >= n || Instant::now() > hard {
                    break Instant::now();
                }
            }
        }
    };
    Opened {
        requested: n,
        identified: ready.count() as usize - before_ok,
        failed: failed_now().saturating_sub(before_failed),
        elapsed: done_at.saturating_duration_since(started),
    }
}

#[derive(Debug)]
pub struct Fleet {
    pub shared: Arc<Shared>,
    target: Arc<Target>,
    control: watch::Sender<Control>,
    handles: Vec<JoinHandle<()>>,
    concurrency: Arc<Semaphore>,
    /// The index of the first connection (a worker process holds a slice of a run's).
    first: usize,
    opened: usize,
}

impl Fleet {
    pub fn new(target: Target, shared: Shared, identify_concurrency: usize) -> Fleet {
        Fleet {
            shared: Arc::new(shared),
            target: Arc::new(target),
            control: watch::channel(Control::default()).0,
            handles: Vec::new(),
            concurrency: Arc::new(Semaphore::new(identify_concurrency.max(1))),
            first: 0,
            opened: 0,
        }
    }

    /// The same fleet, numbering its connections from `first` (its slice of a run spread over
    /// several processes: the index picks the source address, the gateway and the guild).
    pub fn numbered_from(mut self, first: usize) -> Fleet {
        self.first = first;
        self
    }

    pub fn len(&self) -> usize {
        self.opened
    }

    pub fn is_empty(&self) -> bool {
        self.opened == 0
    }

    /// Opens one connection per `(token, guild count)` and waits until each has identified
    /// (READY and its GUILD_CREATEs) or failed, at most `limit`.
    pub async fn open(&mut self, conns: Vec<(Arc<str>, usize)>, limit: Duration) -> Opened {
        let shared = self.shared.clone();
        open_phase(
            &shared.identified,
            &shared.failed,
            &self.concurrency,
            conns,
            limit,
            |(token, guilds), permit| {
                let i = self.first + self.opened;
                self.opened += 1;
                self.handles.push(tokio::spawn(client::run(
                    i,
                    token,
                    guilds,
                    self.target.clone(),
                    shared.clone(),
                    permit,
                    self.control.subscribe(),
                )));
            },
        )
        .await
    }

    /// Every connection heartbeats now with the last sequence it saw, so the server may drop
    /// what it kept for resume.
    pub fn heartbeat_now(&self) {
        self.control.send_modify(|c| c.beat += 1);
    }

    /// The connections numbered `range` drop their sockets at once and resume on new ones.
    pub fn storm(&self, range: std::ops::Range<usize>) {
        self.control.send_modify(|c| {
            c.storm += 1;
            c.storm_range = (range.start, range.end);
        });
    }

    /// The connections numbered `range` stop reading for the rest of the run.
    pub fn stall(&self, range: std::ops::Range<usize>) {
        self.control
            .send_modify(|c| c.stall_range = (range.start, range.end));
    }

    /// Closes every connection (1000) and waits for their tasks, at most `limit`.
    pub async fn stop(self, limit: Duration) {
        self.control.send_modify(|c| c.stop = true);
        let all = futures::future::join_all(self.handles);
        let _ = tokio::time::timeout(limit, all).await;
    }
}
