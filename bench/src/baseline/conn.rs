//! One client connection to a baseline server, and the fleet that opens and stops them.
//!
//! A connection connects from a chosen loopback source address, joins its room (Socket.IO:
//! open packet, namespace connect, the server's `joined` event; `ws`: the `{"joined":...}`
//! frame), then only reads: it counts room messages, records the latency of those that carry
//! a scheduled send time, keeps what it received for the end-of-step check, and answers
//! Socket.IO's pings. It connects and reads through the gateway client's socket helpers
//! (`connect_from`, `read_ready`): every frame its socket has ready is read before it
//! touches anything shared, so the shared counters cost once per wake-up, not per frame.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::SinkExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::wire::{self, Eio, Sio};
use crate::gateway::client::{
    Arrivals, ErrorSamples, Gate, Latencies, READ_BATCH, Ws, connect_from, latency_mark, next_text,
    read_ready,
};
use crate::gateway::fleet::{Opened, open_phase};

/// Which baseline a connection speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// Socket.IO 4 over its websocket transport (engine.io protocol 4).
    Socketio,
    /// Plain WebSocket, one JSON text frame per message.
    Ws,
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Target {
    pub server: SocketAddr,
    pub flavor: Flavor,
    /// Loopback source addresses, used round-robin (more than one gives more local ports).
    pub sources: Vec<IpAddr>,
    pub join_timeout: Duration,
}

impl Target {
    fn url(&self, room: &str) -> String {
        match self.flavor {
            Flavor::Socketio => format!(
                "ws://{}/socket.io/?EIO=4&transport=websocket&room={room}",
                self.server
            ),
            Flavor::Ws => format!("ws://{}/?room={room}", self.server),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every connection of a run shares.
#[derive(Debug)]
pub struct Shared {
    /// Connections that joined their room.
    pub joined: Gate,
    /// Room messages received, all connections together.
    pub messages: Gate,
    /// Bytes of the frames that carried them (the frame payload, without WebSocket headers).
    pub message_bytes: AtomicU64,
    /// Connections that failed to connect or join, or ended before the run did.
    pub failed: AtomicU64,
    pub ended: AtomicU64,
    /// Pings answered (Socket.IO).
    pub pongs: AtomicU64,
    /// Delivery latencies of the current step; reset between the steps of a sweep.
    pub latencies: Latencies,
    /// Per connection, what it received of the latency messages since the last
    /// [`Shared::take_arrivals`].
    arrivals: Vec<Mutex<Arrivals>>,
    /// Up to eight distinct error messages seen.
    pub errors: ErrorSamples,
}

impl Shared {
    /// For at most `connections` connections.
    pub fn new(connections: usize, epoch: Instant) -> anyhow::Result<Shared> {
        Ok(Shared {
            joined: Gate::default(),
            messages: Gate::default(),
            message_bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            pongs: AtomicU64::new(0),
            latencies: Latencies::new(epoch)?,
            arrivals: (0..connections)
                .map(|_| Mutex::new(Arrivals::default()))
                .collect(),
            errors: ErrorSamples::default(),
        })
    }

    /// Every connection's arrivals, emptied for the next step.
    pub fn take_arrivals(&self) -> Vec<(usize, Arrivals)> {
        self.arrivals
            .iter()
            .enumerate()
            .map(|(c, a)| (c, std::mem::take(&mut *lock(a))))
            .collect()
    }
}

async fn connect(target: &Target, i: usize, room: &str) -> anyhow::Result<Ws> {
    let source = target.sources[i % target.sources.len()];
    connect_from(source, target.server, &target.url(room)).await
}

async fn send(ws: &mut Ws, text: String) -> anyhow::Result<()> {
    ws.send(Message::Text(text.into())).await?;
    Ok(())
}

/// Connects and waits until the server says the connection is in its room.
async fn join(target: &Target, i: usize, room: &str) -> anyhow::Result<Ws> {
    let mut ws = connect(target, i, room).await?;
    match target.flavor {
        Flavor::Ws => loop {
            if wire::ws_joined(&next_text(&mut ws).await?) {
                return Ok(ws);
            }
        },
        Flavor::Socketio => loop {
            let t = next_text(&mut ws).await?;
            match wire::eio(&t) {
                Ok(Eio::Open(_)) => send(&mut ws, wire::CONNECT_DEFAULT.to_owned()).await?,
                Ok(Eio::Ping(d)) => send(&mut ws, wire::pong(d)).await?,
                Ok(Eio::Message(Sio::Event { name: "joined", .. })) => return Ok(ws),
                Ok(Eio::Message(Sio::ConnectError(e))) => anyhow::bail!("connect refused: {e}"),
                Ok(Eio::Close | Eio::Message(Sio::Disconnect)) => {
                    anyhow::bail!("closed by the server during the handshake")
                }
                Ok(_) => {}
                Err(_) => anyhow::bail!("unreadable frame during the handshake: {t:?}"),
            }
        },
    }
}

/// What one read held, once classified.
#[derive(Debug, Default)]
struct Batch {
    messages: u64,
    bytes: u64,
    /// Send times (ns since the epoch) and indices of latency messages, in arrival order.
    marks: Vec<(u64, u64)>,
    /// Frames to send back (Socket.IO pongs).
    replies: Vec<String>,
}

/// Classifies one read's frames (and empties `frames`).
fn classify(flavor: Flavor, frames: &mut Vec<Utf8Bytes>, out: &mut Batch) -> anyhow::Result<()> {
    for t in frames.drain(..) {
        let payload = match flavor {
            Flavor::Ws if wire::ws_joined(&t) => continue,
            Flavor::Ws => t.as_str(),
            Flavor::Socketio => match wire::eio(&t) {
                Ok(Eio::Message(Sio::Event {
                    name: "message",
                    arg,
                })) => arg,
                Ok(Eio::Ping(d)) => {
                    out.replies.push(wire::pong(d));
                    continue;
                }
                Ok(Eio::Close | Eio::Message(Sio::Disconnect)) => {
                    anyhow::bail!("closed by the server")
                }
                Ok(_) => continue,
                Err(_) => anyhow::bail!("unreadable frame: {:?}", &t[..t.len().min(80)]),
            },
        };
        out.messages += 1;
        out.bytes += t.len() as u64;
        if let Some(mark) = latency_mark(payload.as_bytes()) {
            out.marks.push(mark);
        }
    }
    Ok(())
}

/// One connection, from connect to the end of the run. `permit` (the connect concurrency
/// slot) is released once joined.
async fn run(
    i: usize,
    room: Arc<str>,
    target: Arc<Target>,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let joined = tokio::time::timeout(target.join_timeout, join(&target, i, &room)).await;
    drop(permit);
    let mut ws = match joined {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            shared.errors.add(format!("join: {e:#}"));
            return;
        }
        Err(_) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            shared.errors.add("join: timed out".into());
            return;
        }
    };
    shared.joined.add(1);
    let mut frames = Vec::with_capacity(READ_BATCH);
    let mut batch = Batch::default();
    let mut sent_ns = Vec::new();
    let result: anyhow::Result<()> = loop {
        tokio::select! {
            end = std::future::poll_fn(|cx| read_ready(&mut ws, cx, &mut frames)) => {
                let now = Instant::now();
                let classified = classify(target.flavor, &mut frames, &mut batch);
                if !batch.marks.is_empty() {
                    sent_ns.clear();
                    sent_ns.extend(batch.marks.iter().map(|m| m.0));
                    shared.latencies.record_all(i, &sent_ns, now);
                    if let Some(slot) = shared.arrivals.get(i) {
                        let mut a = lock(slot);
                        batch.marks.iter().for_each(|m| a.observe(m.1));
                    }
                    batch.marks.clear();
                }
                if batch.messages > 0 {
                    shared.message_bytes.fetch_add(batch.bytes, Ordering::Relaxed);
                    shared.messages.add(batch.messages);
                    batch.messages = 0;
                    batch.bytes = 0;
                }
                let mut replied = Ok(());
                for r in batch.replies.drain(..) {
                    shared.pongs.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = send(&mut ws, r).await {
                        replied = Err(e);
                        break;
                    }
                }
                if let Err(e) = classified.and(replied) {
                    break Err(e);
                }
                if let Some(e) = end {
                    break Err(e);
                }
            },
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                break Ok(());
            }
        }
    };
    if let Err(e) = result {
        shared.ended.fetch_add(1, Ordering::Relaxed);
        shared.errors.add(format!("after join: {e:#}"));
    }
}

/// The connections of a run, opened in phases with bounded concurrency and stopped together.
#[derive(Debug)]
pub struct Fleet {
    pub shared: Arc<Shared>,
    target: Arc<Target>,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
    concurrency: Arc<Semaphore>,
    opened: usize,
}

impl Fleet {
    pub fn new(target: Target, shared: Shared, connect_concurrency: usize) -> Fleet {
        Fleet {
            shared: Arc::new(shared),
            target: Arc::new(target),
            stop: watch::channel(false).0,
            handles: Vec::new(),
            concurrency: Arc::new(Semaphore::new(connect_concurrency.max(1))),
            opened: 0,
        }
    }

    /// Connections opened so far; connection `c` is the `c`-th opened.
    pub fn len(&self) -> usize {
        self.opened
    }

    pub fn is_empty(&self) -> bool {
        self.opened == 0
    }

    /// Opens one connection per room name given and waits until each has joined or failed,
    /// at most `limit`.
    pub async fn open(&mut self, rooms: Vec<Arc<str>>, limit: Duration) -> Opened {
        let shared = self.shared.clone();
        open_phase(
            &shared.joined,
            &shared.failed,
            &self.concurrency,
            rooms,
            limit,
            |room, permit| {
                let i = self.opened;
                self.opened += 1;
                self.handles.push(tokio::spawn(run(
                    i,
                    room,
                    self.target.clone(),
                    shared.clone(),
                    permit,
                    self.stop.subscribe(),
                )));
            },
        )
        .await
    }

    /// Closes every connection and waits for their tasks, at most `limit`.
    pub async fn stop(self, limit: Duration) {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.handles);
        let _ = tokio::time::timeout(limit, all).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_a_socket_io_read() {
        let mut frames: Vec<Utf8Bytes> = vec![
            r#"42["message",{"content":"lat 100 3 xx"}]"#.into(),
            "2".into(),
            r#"42["message",{"content":"burst 1 xx"}]"#.into(),
            r#"42["other",1]"#.into(),
        ];
        let mut b = Batch::default();
        classify(Flavor::Socketio, &mut frames, &mut b).unwrap_or_else(|e| panic!("{e}"));
        assert!(frames.is_empty());
        assert_eq!(b.messages, 2);
        assert_eq!(b.marks, vec![(100, 3)]);
        assert_eq!(b.replies, vec!["3".to_owned()]);
        let mut bad: Vec<Utf8Bytes> = vec!["41".into()];
        assert!(classify(Flavor::Socketio, &mut bad, &mut Batch::default()).is_err());
    }

    #[test]
    fn classifies_a_ws_read() {
        let mut frames: Vec<Utf8Bytes> = vec![
            r#"{"joined":"r1"}"#.into(),
            r#"{"content":"lat 5 9 x"}"#.into(),
        ];
        let mut b = Batch::default();
        classify(Flavor::Ws, &mut frames, &mut b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.messages, 1);
        assert_eq!(b.bytes, r#"{"content":"lat 5 9 x"}"#.len() as u64);
        assert_eq!(b.marks, vec![(5, 9)]);
        assert!(b.replies.is_empty());
    }
}
