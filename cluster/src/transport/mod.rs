//! The inter-node transport: numbered frames over authenticated TCP links.
//!
//! # Links
//! Every node dials every peer it is told about ([`ClusterTransport::set_peers`]) and uses that
//! connection for its **outbound** traffic only; connections a node accepts are read-only (after
//! the handshake the accepting side never writes). Each ordered pair of nodes therefore has one
//! TCP connection with one writer task, and FIFO order per pair falls out of TCP itself: there is
//! no tie-break between two nodes dialling each other at once, no sharing of a socket between
//! directions, and each direction reconnects on its own. The price is two connections per pair
//! instead of one, which is nothing at the tens of nodes a cluster has.
//!
//! # Frames
//! A frame is a length-delimited record (tokio-util's `LengthDelimitedCodec` layout: a 4-byte
//! big-endian length, then the body) whose body starts with a 10-byte header:
//! `version: u8` ([`frame::VERSION`]), `kind: u8`, `seq: u64` big-endian, then the payload.
//! [`FrameKind::Control`] payloads are MessagePack named maps ([`frame::encode_control`],
//! [`frame::decode_control`]); [`FrameKind::Fanout`] payloads are bytes encoded once by the
//! sender and handed to the receiver as a slice of the read buffer, never re-encoded or copied.
//! A frame with an unknown version or kind, or longer than the receiver's
//! [`TransportConfig::max_frame_length`], closes the link (logged as an error); the dialler then
//! reconnects and the receiver reports what was lost as a gap.
//!
//! # Authentication
//! When a link opens, both sides prove knowledge of the cluster secret with an HMAC-SHA256 over
//! both identities (node id and generation) and both sides' fresh random nonces. A peer with
//! another secret gets no link; a recorded handshake replayed later fails on the new nonce.
//! Refusals are counted and logged with the peer's address, at most one warning per
//! [`TransportConfig::refusal_warn_interval`]. The handshake authenticates the link, not each
//! frame, and nothing is encrypted: links belong on a private network.
//!
//! # Numbering and gaps
//! Frames are numbered per sender per peer, from 0 when the sender's process starts; a frame
//! refused for a full queue ([`SendError::Overflow`]) still uses its number. When a link opens,
//! the sender states the next number it will send and where its stream to this process of the
//! receiver began; the receiver compares with the last number it saw from that sender's
//! generation. So what a receiver sees from one sender is always: frames in increasing order,
//! and every missing number covered by an [`Inbound::Gap`] that comes before the next frame. A
//! new generation of a sender starts a new stream, reported as [`Inbound::PeerRestarted`]. A
//! gap is reported when the next frame arrives, when the link reopens, or, on an idle link, by
//! the sender's next keep-alive (the next number it will use).
//!
//! There is no retransmission: a frame in flight when a connection breaks is lost, and the
//! receiver learns *that* it was lost, never its content. The consumer resynchronises (for a
//! guild, from its owner) on a gap.
//!
//! # Queues and backpressure
//! [`ClusterTransport::send`] never waits: it appends to the peer's queue or, when the queue's
//! bytes would pass [`TransportConfig::queue_bytes`], refuses the frame. Frames queue while the
//! peer is unreachable, up to that cap, and go out after the next handshake. The receiving side
//! hands events to a bounded channel of [`TransportConfig::inbound_capacity`]; when the consumer
//! falls behind, the link readers wait for room and stop reading their sockets, TCP pushes back
//! to the senders' writers, and their queues fill until `send` reports overflow. Memory stays
//! bounded on both sides.
//!
//! # Implementations
//! [`TcpTransport`] is the real one. [`MemoryNetwork`] creates [`MemoryTransport`]s that keep the
//! same numbering, gap and queue rules in one process, with partitions, delays and drops to
//! inject.

pub mod frame;
mod handshake;
mod inbound;
mod memory;
mod outbound;
mod stats;
mod tcp;
mod timing;

use std::time::Duration;

use bytes::Bytes;
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use serde::Serialize;

pub use frame::FrameKind;
pub use handshake::{LinkSecret, SecretError};
pub use memory::{MemoryNetwork, MemoryTransport};
pub use stats::TransportStats;
pub use tcp::TcpTransport;

/// The cluster transport a node holds as `Arc<dyn ClusterTransport>`.
///
/// The receiving side is the channel of [`Inbound`] events returned when the transport is
/// created. See the module documentation for the guarantees.
pub trait ClusterTransport: Send + Sync + std::fmt::Debug {
    /// This node, as its peers see it.
    fn local(&self) -> &NodeIdentity;

    /// Sets the peers this node dials. Peers not listed any more stop being dialled and their
    /// queued frames are discarded (they surface as a gap if the peer comes back); listed peers
    /// whose address changed are dialled at the new address from the next attempt. This node's
    /// own id is ignored.
    fn set_peers(&self, peers: &[Peer]);

    /// Stops dialling one peer, as if [`set_peers`](Self::set_peers) had left it out.
    fn remove_peer(&self, node_id: &str);

    /// Whether a link to the peer is open now (dialled and past its handshake). A frame sent
    /// while it is not waits in the queue for the next link, and may wait long: the peer may be
    /// restarting, or dead.
    fn link_up(&self, to: &str) -> bool;

    /// Queues one frame for a peer. Never waits. Returns the frame's sequence number.
    fn send(&self, to: &str, kind: FrameKind, payload: Bytes) -> Result<u64, SendError>;

    /// Counters since the transport started.
    fn stats(&self) -> TransportStats;

    /// Closes every link and stops dialling; later sends fail with [`SendError::Closed`].
    /// Dropping the transport does the same.
    fn shutdown(&self);
}

/// Typed sending on top of any [`ClusterTransport`], `dyn` included.
pub trait ClusterTransportExt: ClusterTransport {
    /// Encodes `message` as a MessagePack named map and queues it as a control frame.
    fn send_control<M: Serialize + ?Sized>(&self, to: &str, message: &M) -> Result<u64, SendError> {
        let payload = frame::encode_control(message).map_err(SendError::Encode)?;
        self.send(to, FrameKind::Control, payload)
    }
}

impl<T: ClusterTransport + ?Sized> ClusterTransportExt for T {}

/// A peer to dial: its node id and the address of its cluster listener (`host:port`, resolved
/// at each connection attempt).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub node_id: String,
    pub addr: String,
}

impl Peer {
    pub fn new(node_id: impl Into<String>, addr: impl Into<String>) -> Peer {
        Peer {
            node_id: node_id.into(),
            addr: addr.into(),
        }
    }
}

/// What the receiving side of a transport reports, in order per sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A frame from `from`; `seq` is larger than that of every earlier frame or gap from the same
    /// generation of the sender.
    Frame {
        from: NodeIdentity,
        kind: FrameKind,
        seq: u64,
        payload: Bytes,
    },
    /// Frames `expected..got` from `from` were lost (refused for a full queue at the sender,
    /// discarded, or in flight on a broken connection). The next frame, if any, has `seq >= got`.
    Gap {
        from: NodeIdentity,
        expected: u64,
        got: u64,
    },
    /// A link from `peer` is up (after authentication).
    PeerUp { peer: NodeIdentity },
    /// The link from `peer` closed; it may come back (`PeerUp`).
    PeerDown { peer: NodeIdentity },
    /// `peer` is a new process of a node id that had `previous` as its generation: its stream
    /// starts anew, and nothing the previous process sent will follow. Comes before the new
    /// link's `PeerUp`.
    PeerRestarted {
        peer: NodeIdentity,
        previous: GenerationId,
    },
}

/// Why [`ClusterTransport::send`] did not queue a frame.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The peer is not among those this node dials.
    #[error("unknown peer {node_id}")]
    UnknownPeer { node_id: String },
    /// The peer's queue is full. The frame's number `seq` is spent: the peer will see a gap.
    #[error("queue to {node_id} is full ({queued_bytes} of {cap} bytes); frame {seq} dropped")]
    Overflow {
        node_id: String,
        seq: u64,
        queued_bytes: usize,
        cap: usize,
    },
    /// The frame would be longer than the maximum frame length. Nothing was queued and no number
    /// was spent.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    /// A control message could not be encoded.
    #[error("control message: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// The transport was shut down.
    #[error("transport is shut down")]
    Closed,
}

/// Limits and timings of a transport. The defaults suit a cluster on one network.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// The longest frame (header and payload) this node sends or accepts. Larger incoming frames
    /// close the link. Default 16 MiB.
    pub max_frame_length: usize,
    /// Bytes (payloads plus frame headers) that may wait in one peer's outbound queue. Default
    /// 64 MiB.
    pub queue_bytes: usize,
    /// Events the inbound channel holds before link readers wait. Default 4096.
    pub inbound_capacity: usize,
    /// Time allowed for connecting and for the whole handshake. Default 5 s.
    pub handshake_timeout: Duration,
    /// First delay before redialling a peer; it doubles at each failure. Default 100 ms.
    pub reconnect_min: Duration,
    /// Cap of the redial delay. Default 5 s.
    pub reconnect_max: Duration,
    /// An idle link sends a keep-alive this often. Default 5 s.
    pub keepalive_interval: Duration,
    /// A link on which nothing arrives for this long is closed by its reader. Default 20 s.
    pub idle_timeout: Duration,
    /// At most one warning per this interval for refused handshakes (the rest are counted and
    /// logged at debug level). Default 10 s.
    pub refusal_warn_interval: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_frame_length: 16 * 1024 * 1024,
            queue_bytes: 64 * 1024 * 1024,
            inbound_capacity: 4096,
            handshake_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(20),
            refusal_warn_interval: Duration::from_secs(10),
        }
    }
}
