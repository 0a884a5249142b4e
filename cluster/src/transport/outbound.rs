//! The sending half: one byte-capped, numbered queue per peer, and the table of peers.
//!
//! [`OutboundQueue`] is plain data (no I/O, time passed in): it numbers frames, refuses what
//! does not fit, and remembers which receiver process it last opened a stream to, so a link
//! can state where that process's part of the stream starts. Both transports drive it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use enrichment_protocol::node::GenerationId;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::frame::{Frame, FrameKind, HEADER_LEN, PREFIX_LEN};
use super::stats::{SendMeter, Stats};
use super::{Peer, SendError};

/// What a sender tells a receiver when a link opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamHello {
    /// The number of the next frame (or keep-alive) on this link.
    pub next_seq: u64,
    /// The first number not handed to a link towards an earlier process of the receiver: a
    /// receiver with no record of this sender's generation expects this one.
    pub stream_start: u64,
}

/// A frame waiting in a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Queued {
    pub seq: u64,
    pub kind: FrameKind,
    pub payload: Bytes,
    /// When it was queued, where a transport needs it (the in-memory one delays from it).
    pub enqueued_at: Option<Instant>,
}

impl Queued {
    pub fn wire_len(&self) -> usize {
        wire_len(self.payload.len())
    }

    pub fn into_frame(self) -> Frame {
        Frame {
            kind: self.kind.into(),
            seq: self.seq,
            payload: self.payload,
        }
    }
}

fn wire_len(payload_len: usize) -> usize {
    PREFIX_LEN + HEADER_LEN + payload_len
}

/// A frame refused for a full queue; its number is spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Overflow {
    pub seq: u64,
    pub queued_bytes: usize,
    pub cap: usize,
}

/// The numbered queue of one ordered pair.
#[derive(Debug)]
pub(crate) struct OutboundQueue {
    cap: usize,
    next_seq: u64,
    entries: VecDeque<Queued>,
    queued_bytes: usize,
    /// The last number handed to a link (written to it, or lost with it).
    handed_through: Option<u64>,
    /// The receiver process the stream was last opened to, and the `stream_start` it was given.
    opened_to: Option<(GenerationId, u64)>,
}

impl OutboundQueue {
    pub fn new(cap: usize) -> OutboundQueue {
        OutboundQueue {
            cap,
            next_seq: 0,
            entries: VecDeque::new(),
            queued_bytes: 0,
            handed_through: None,
            opened_to: None,
        }
    }

    /// Numbers a frame and queues it, or refuses it when its bytes would pass the cap. Either
    /// way the number is used.
    pub fn push(
        &mut self,
        kind: FrameKind,
        payload: Bytes,
        now: Option<Instant>,
    ) -> Result<u64, Overflow> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let cost = wire_len(payload.len());
        if self.queued_bytes + cost > self.cap {
            return Err(Overflow {
                seq,
                queued_bytes: self.queued_bytes,
                cap: self.cap,
            });
        }
        self.queued_bytes += cost;
        self.entries.push_back(Queued {
            seq,
            kind,
            payload,
            enqueued_at: now,
        });
        Ok(seq)
    }

    /// The number the next frame or keep-alive on a link carries: the head of the queue, or the
    /// next number to be given when the queue is empty.
    pub fn next_to_send(&self) -> u64 {
        self.entries.front().map_or(self.next_seq, |q| q.seq)
    }

    /// Opens the stream on a new link to the receiver process `receiver`.
    pub fn open(&mut self, receiver: GenerationId) -> StreamHello {
        let stream_start = match self.opened_to {
            Some((generation, start)) if generation == receiver => start,
            _ => {
                // A process this stream never reached: its part starts after what was handed
                // to links to earlier processes.
                let start = self.handed_through.map_or(0, |seq| seq + 1);
                self.opened_to = Some((receiver, start));
                start
            }
        };
        StreamHello {
            next_seq: self.next_to_send(),
            stream_start,
        }
    }

    /// Hands the head of the queue to a link.
    pub fn pop(&mut self) -> Option<Queued> {
        let queued = self.entries.pop_front()?;
        self.queued_bytes -= queued.wire_len();
        self.handed_through = Some(queued.seq);
        Some(queued)
    }

    /// Hands frames to a link, at least one if any is queued, and no more than `max_bytes` after
    /// the first.
    pub fn pop_batch(&mut self, max_bytes: usize, out: &mut Vec<Queued>) {
        let mut bytes = 0;
        while let Some(front) = self.entries.front() {
            if !out.is_empty() && bytes + front.wire_len() > max_bytes {
                break;
            }
            bytes += front.wire_len();
            if let Some(queued) = self.pop() {
                out.push(queued);
            }
        }
    }

    /// Throws away every queued frame; returns how many. Their numbers stay spent.
    pub fn discard(&mut self) -> usize {
        let frames = self.entries.len();
        self.entries.clear();
        self.queued_bytes = 0;
        frames
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }
}

/// One peer this node sends to: its queue, the wake-up of its link task, and whether it is
/// dialled. Entries outlive removal so that a peer added back continues its numbering.
#[derive(Debug)]
pub(crate) struct PeerQueue {
    pub node_id: String,
    addr: Mutex<String>,
    pub queue: Mutex<OutboundQueue>,
    /// Signalled on every push; the link task waits on it when the queue is empty.
    pub wake: Notify,
    pub meter: SendMeter,
    /// The running link task's stop signal, while the peer is dialled.
    task: Mutex<Option<CancellationToken>>,
    /// Whether a link to the peer is open (past its handshake) right now.
    up: AtomicBool,
}

impl PeerQueue {
    pub fn addr(&self) -> String {
        self.addr.lock().clone()
    }

    /// The link task says whether its link is open.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
    }
}

/// The peers of one transport.
#[derive(Debug)]
pub(crate) struct OutboundPeers {
    local_id: String,
    queue_bytes: usize,
    max_frame_length: usize,
    /// Whether queued frames carry the time they were queued.
    stamp_time: bool,
    peers: RwLock<HashMap<String, Arc<PeerQueue>>>,
    closed: AtomicBool,
    pub stats: Arc<Stats>,
}

impl OutboundPeers {
    pub fn new(
        local_id: &str,
        queue_bytes: usize,
        max_frame_length: usize,
        stamp_time: bool,
        stats: Arc<Stats>,
    ) -> OutboundPeers {
        OutboundPeers {
            local_id: local_id.to_owned(),
            queue_bytes,
            max_frame_length,
            stamp_time,
            peers: RwLock::new(HashMap::new()),
            closed: AtomicBool::new(false),
            stats,
        }
    }

    /// Whether a link to `to` is open now.
    pub fn link_up(&self, to: &str) -> bool {
        !self.closed.load(Ordering::Acquire)
            && self
                .peers
                .read()
                .get(to)
                .is_some_and(|peer| peer.up.load(Ordering::Acquire))
    }

    pub fn send(&self, to: &str, kind: FrameKind, payload: Bytes) -> Result<u64, SendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let len = HEADER_LEN + payload.len();
        if len > self.max_frame_length {
            return Err(SendError::TooLarge {
                len,
                max: self.max_frame_length,
            });
        }
        let peers = self.peers.read();
        let Some(peer) = peers.get(to).filter(|peer| peer.task.lock().is_some()) else {
            return Err(SendError::UnknownPeer {
                node_id: to.to_owned(),
            });
        };
        let now = self
            .stamp_time
            .then(|| tokio::time::Instant::now().into_std());
        let pushed = {
            let mut queue = peer.queue.lock();
            let pushed = queue.push(kind, payload, now);
            peer.meter.queue_bytes(queue.queued_bytes());
            pushed
        };
        match pushed {
            Ok(seq) => {
                peer.wake.notify_one();
                Ok(seq)
            }
            Err(overflow) => {
                peer.meter.overflow(&self.stats);
                // The link task announces the spent number when the queue drains.
                peer.wake.notify_one();
                Err(SendError::Overflow {
                    node_id: to.to_owned(),
                    seq: overflow.seq,
                    queued_bytes: overflow.queued_bytes,
                    cap: overflow.cap,
                })
            }
        }
    }

    /// Makes `peers` the dialled set: `start` runs the link task of each newly dialled peer and
    /// returns its stop signal.
    pub fn set_peers(
        &self,
        peers: &[Peer],
        mut start: impl FnMut(&Arc<PeerQueue>) -> CancellationToken,
    ) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut table = self.peers.write();
        for peer in peers.iter().filter(|peer| peer.node_id != self.local_id) {
            let entry = table.entry(peer.node_id.clone()).or_insert_with(|| {
                Arc::new(PeerQueue {
                    node_id: peer.node_id.clone(),
                    addr: Mutex::new(peer.addr.clone()),
                    queue: Mutex::new(OutboundQueue::new(self.queue_bytes)),
                    wake: Notify::new(),
                    meter: SendMeter::new(&peer.node_id),
                    task: Mutex::new(None),
                    up: AtomicBool::new(false),
                })
            });
            *entry.addr.lock() = peer.addr.clone();
            let mut task = entry.task.lock();
            if task.is_none() {
                *task = Some(start(entry));
            }
        }
        for (node_id, entry) in table.iter() {
            if !peers.iter().any(|peer| &peer.node_id == node_id) {
                self.stop(entry);
            }
        }
    }

    pub fn remove(&self, node_id: &str) {
        if let Some(entry) = self.peers.read().get(node_id) {
            self.stop(entry);
        }
    }

    /// Stops every link task and refuses later sends.
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        for entry in self.peers.read().values() {
            self.stop(entry);
        }
    }

    /// Throws away what is queued for one peer, as if it had been written to a connection that
    /// then broke.
    pub fn discard_queued(&self, node_id: &str) {
        if let Some(entry) = self.peers.read().get(node_id) {
            let discarded = entry.queue.lock().discard();
            entry.meter.queue_bytes(0);
            if discarded > 0 {
                entry.meter.discarded(&self.stats, discarded);
            }
        }
    }

    fn stop(&self, entry: &PeerQueue) {
        let Some(task) = entry.task.lock().take() else {
            return;
        };
        task.cancel();
        let mut queue = entry.queue.lock();
        let discarded = queue.discard();
        entry.meter.queue_bytes(0);
        if discarded > 0 {
            entry.meter.discarded(&self.stats, discarded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(len: usize) -> Bytes {
        Bytes::from(vec![7u8; len])
    }

    #[test]
    fn frames_are_numbered_in_order_and_an_overflow_spends_its_number() {
        // Room for two frames of 100 bytes (114 on the wire each).
        let mut queue = OutboundQueue::new(2 * 114);
        assert_eq!(queue.push(FrameKind::Control, payload(100), None), Ok(0));
        assert_eq!(queue.push(FrameKind::Fanout, payload(100), None), Ok(1));
        assert_eq!(
            queue.push(FrameKind::Fanout, payload(1), None),
            Err(Overflow {
                seq: 2,
                queued_bytes: 228,
                cap: 228
            })
        );
        assert_eq!(queue.queued_bytes(), 228);
        assert_eq!(queue.pop().map(|q| q.seq), Some(0));
        assert_eq!(queue.push(FrameKind::Fanout, payload(100), None), Ok(3));
        let mut batch = Vec::new();
        queue.pop_batch(usize::MAX, &mut batch);
        assert_eq!(batch.iter().map(|q| q.seq).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(queue.queued_bytes(), 0);
        assert_eq!(queue.next_to_send(), 4);
    }

    #[test]
    fn a_batch_holds_at_least_one_frame_and_stops_at_the_byte_budget() {
        let mut queue = OutboundQueue::new(usize::MAX);
        for _ in 0..5 {
            queue.push(FrameKind::Fanout, payload(100), None).unwrap();
        }
        let mut batch = Vec::new();
        queue.pop_batch(10, &mut batch);
        assert_eq!(batch.len(), 1);
        batch.clear();
        queue.pop_batch(300, &mut batch);
        assert_eq!(batch.len(), 2);
    }

    #[test]
    fn a_stream_to_a_new_receiver_process_starts_after_what_earlier_ones_were_handed() {
        let mut queue = OutboundQueue::new(usize::MAX);
        for _ in 0..3 {
            queue.push(FrameKind::Control, payload(1), None).unwrap();
        }
        // First process of the receiver: everything is its.
        assert_eq!(
            queue.open(GenerationId(10)),
            StreamHello {
                next_seq: 0,
                stream_start: 0
            }
        );
        queue.pop();
        queue.pop();
        // The same process again (a reconnect): the start does not move.
        assert_eq!(
            queue.open(GenerationId(10)),
            StreamHello {
                next_seq: 2,
                stream_start: 0
            }
        );
        // A new process: frames 0 and 1 went to its predecessor.
        assert_eq!(
            queue.open(GenerationId(11)),
            StreamHello {
                next_seq: 2,
                stream_start: 2
            }
        );
        // Frames spent while no link was up belong to whoever comes next.
        assert_eq!(queue.discard(), 1);
        assert_eq!(
            queue.open(GenerationId(12)),
            StreamHello {
                next_seq: 3,
                stream_start: 2
            }
        );
    }
}
