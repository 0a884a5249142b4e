//! Gossip that only members of the cluster can speak: chitchat's UDP transport with every
//! datagram signed by the cluster secret.
//!
//! chitchat checks a cluster id, which is no secret: anyone who can send a datagram to the
//! gossip port could otherwise announce nodes, mark them draining or feed the failure detector.
//! This module implements chitchat's [`Transport`] and [`Socket`] over UDP and frames each
//! [`ChitchatEnvelope`], in chitchat's own encoding (reached through chitchat's UDP socket by
//! the private `codec` module, since chitchat 0.13 does not expose it directly), as
//!
//! ```text
//! version (1 byte) | sender time, Unix ms (u64 LE) | envelope | HMAC-SHA256 (32 bytes)
//! ```
//!
//! where the HMAC, keyed with the cluster secret, covers everything before it. A receiver drops
//! a datagram whose tag does not verify (compared in constant time), whose version it does not
//! know, or whose timestamp is further than the replay window from its own clock. The window
//! bounds replays. Within it a replay changes no state (chitchat ignores heartbeats and
//! versions it already has), but a replayed SYN is still answered, so keep gossip on a network
//! outsiders cannot send on and the window short. Gossip is signed, not encrypted: what nodes
//! publish about themselves (addresses, state, load) is visible on the network, and nothing
//! secret goes into it.
//!
//! Each drop is counted in `enrichment_cluster_gossip_rejected_total{reason}` (`bad_tag`,
//! `stale`, `malformed`) and in counters the membership exposes, and logged at warn with the
//! peer's address, at most once a minute per address, so a node with the wrong secret is
//! easy to find without a flood of lines.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_trait::async_trait;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::time::Instant;
use tracing::warn;

use crate::config::ClusterSecret;

mod codec;

use codec::{Decoded, EnvelopeCodec};

/// The framing's version; a receiver drops any other.
const WIRE_VERSION: u8 = 1;
const TIMESTAMP_LEN: usize = 8;
const HEADER_LEN: usize = 1 + TIMESTAMP_LEN;
const TAG_LEN: usize = 32;

/// Bytes the framing adds to each envelope.
pub const OVERHEAD_BYTES: usize = HEADER_LEN + TAG_LEN;

/// The largest datagram sent: the largest UDP payload over IPv4, which is also the size
/// chitchat plans its envelopes for. The framing adds [`OVERHEAD_BYTES`] that chitchat does not
/// know about, so an envelope it filled to the brim no longer fits. That happens only when the
/// state a peer lacks fills a whole datagram even compressed (a node joining a cluster of many
/// hundreds of nodes); such a datagram is dropped and logged on send, as lost as one the
/// network drops, and the exchange is retried in the next rounds, whose digests differ. The
/// budget needs revisiting before clusters of that size.
pub const MAX_DATAGRAM_BYTES: usize = 65_507;

/// A received datagram may be up to the largest UDP payload; anything past
/// [`MAX_DATAGRAM_BYTES`] is not ours, but reading it whole lets it be rejected as such.
const RECV_BUFFER_BYTES: usize = 65_536;

/// How often a peer's rejected datagrams, or an oversize send to it, are logged at most.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Peers remembered for rate-limiting warnings. Spoofed source addresses could otherwise grow
/// the map without bound; past this, warnings for new peers are skipped until old entries age
/// out (the counters still count every datagram).
const WARN_PEERS_MAX: usize = 1024;

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Too short, an unknown version, or an envelope chitchat cannot decode.
    Malformed,
    /// The HMAC does not verify: another secret, or tampering.
    BadTag,
    /// Signed correctly, but the timestamp is outside the replay window.
    Stale,
}

impl Rejection {
    fn label(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::BadTag => "bad_tag",
            Rejection::Stale => "stale",
        }
    }
}

/// Datagrams dropped since the socket opened, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RejectedDatagrams {
    pub bad_tag: u64,
    pub stale: u64,
    pub malformed: u64,
}

#[derive(Debug, Default)]
struct RejectionCounters {
    bad_tag: AtomicU64,
    stale: AtomicU64,
    malformed: AtomicU64,
}

impl RejectionCounters {
    fn record(&self, rejection: Rejection) {
        let counter = match rejection {
            Rejection::Malformed => &self.malformed,
            Rejection::BadTag => &self.bad_tag,
            Rejection::Stale => &self.stale,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("enrichment_cluster_gossip_rejected_total", "reason" => rejection.label())
            .increment(1);
    }

    fn snapshot(&self) -> RejectedDatagrams {
        RejectedDatagrams {
            bad_tag: self.bad_tag.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
        }
    }
}

/// Signs and checks datagrams with the cluster secret.
struct DatagramAuth {
    /// Keyed once; each datagram clones the keyed state instead of rehashing the key.
    mac: Hmac<Sha256>,
    replay_window_ms: u64,
}

impl DatagramAuth {
    fn new(secret: &ClusterSecret, replay_window: Duration) -> DatagramAuth {
        DatagramAuth {
            mac: keyed(secret.expose()),
            replay_window_ms: u64::try_from(replay_window.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Starts a datagram in `out`: the version and the timestamp. The envelope's bytes are
    /// appended next, then [`DatagramAuth::sign`].
    fn begin(timestamp_ms: u64, out: &mut Vec<u8>) {
        out.clear();
        out.push(WIRE_VERSION);
        out.extend_from_slice(&timestamp_ms.to_le_bytes());
    }

    /// Appends the tag over everything in `out`.
    fn sign(&self, out: &mut Vec<u8>) {
        let mut mac = self.mac.clone();
        mac.update(out);
        out.extend_from_slice(&mac.finalize().into_bytes());
    }

    /// A whole datagram for an envelope already encoded as `body`.
    #[cfg(test)]
    fn seal(&self, timestamp_ms: u64, body: &[u8], out: &mut Vec<u8>) {
        DatagramAuth::begin(timestamp_ms, out);
        out.extend_from_slice(body);
        self.sign(out);
    }

    /// Where the envelope's bytes are in `datagram`, if it verifies and is fresh at `now_ms`.
    fn open(&self, datagram: &[u8], now_ms: u64) -> Result<Range<usize>, Rejection> {
        if datagram.len() < OVERHEAD_BYTES || datagram.len() > MAX_DATAGRAM_BYTES {
            return Err(Rejection::Malformed);
        }
        let body_end = datagram.len() - TAG_LEN;
        let (signed, tag) = datagram.split_at(body_end);
        if signed[0] != WIRE_VERSION {
            return Err(Rejection::Malformed);
        }
        // The tag first: until it verifies nothing else in the datagram is trusted, so a
        // forgery counts as one whatever timestamp it claims.
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac.verify_slice(tag).map_err(|_| Rejection::BadTag)?;
        let mut timestamp = [0u8; TIMESTAMP_LEN];
        timestamp.copy_from_slice(&signed[1..HEADER_LEN]);
        if u64::from_le_bytes(timestamp).abs_diff(now_ms) > self.replay_window_ms {
            return Err(Rejection::Stale);
        }
        Ok(HEADER_LEN..body_end)
    }
}

fn keyed(secret: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// At most one warning per peer address per [`WARN_EVERY`].
#[derive(Debug)]
struct WarnLimiter {
    last: HashMap<SocketAddr, Instant>,
}

impl WarnLimiter {
    fn new() -> WarnLimiter {
        WarnLimiter {
            last: HashMap::new(),
        }
    }

    fn should_warn(&mut self, peer: SocketAddr, now: Instant) -> bool {
        if let Some(last) = self.last.get_mut(&peer) {
            if now.duration_since(*last) < WARN_EVERY {
                return false;
            }
            *last = now;
            return true;
        }
        if self.last.len() >= WARN_PEERS_MAX {
            self.last
                .retain(|_, last| now.duration_since(*last) < WARN_EVERY);
            if self.last.len() >= WARN_PEERS_MAX {
                return false;
            }
        }
        self.last.insert(peer, now);
        true
    }
}

/// chitchat's [`Transport`] over UDP with signed datagrams.
pub struct AuthenticatedUdpTransport {
    auth: Arc<DatagramAuth>,
    counters: Arc<RejectionCounters>,
    /// A socket bound before chitchat starts, handed over when chitchat opens its address.
    /// Binding first is how a node listening on port 0 learns the port to advertise.
    prebound: Mutex<Option<tokio::net::UdpSocket>>,
}

impl std::fmt::Debug for AuthenticatedUdpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticatedUdpTransport")
            .field("replay_window_ms", &self.auth.replay_window_ms)
            .field("rejected", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

impl AuthenticatedUdpTransport {
    pub fn new(secret: &ClusterSecret, replay_window: Duration) -> AuthenticatedUdpTransport {
        AuthenticatedUdpTransport {
            auth: Arc::new(DatagramAuth::new(secret, replay_window)),
            counters: Arc::default(),
            prebound: Mutex::new(None),
        }
    }

    /// Opens on `socket` when chitchat asks for its local address, instead of binding anew.
    pub fn with_bound_socket(self, socket: tokio::net::UdpSocket) -> AuthenticatedUdpTransport {
        *self.prebound.lock().unwrap_or_else(PoisonError::into_inner) = Some(socket);
        self
    }

    /// Datagrams dropped by every socket this transport opened.
    pub fn rejected(&self) -> RejectedDatagrams {
        self.counters.snapshot()
    }

    /// A handle on the counters that outlives the transport (chitchat keeps only the socket).
    pub fn rejection_reader(&self) -> RejectionReader {
        RejectionReader(self.counters.clone())
    }

    fn take_prebound(&self, addr: SocketAddr) -> Option<tokio::net::UdpSocket> {
        let mut slot = self.prebound.lock().unwrap_or_else(PoisonError::into_inner);
        let matches = slot
            .as_ref()
            .and_then(|socket| socket.local_addr().ok())
            .is_some_and(|bound| bound == addr);
        if matches { slot.take() } else { None }
    }
}

/// Reads the rejection counters of a transport.
#[derive(Clone, Debug)]
pub struct RejectionReader(Arc<RejectionCounters>);

impl RejectionReader {
    pub fn snapshot(&self) -> RejectedDatagrams {
        self.0.snapshot()
    }
}

#[async_trait]
impl Transport for AuthenticatedUdpTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = match self.take_prebound(listen_addr) {
            Some(socket) => socket,
            None => tokio::net::UdpSocket::bind(listen_addr)
                .await
                .with_context(|| format!("cannot bind {listen_addr}/UDP for gossip"))?,
        };
        Ok(Box::new(
            AuthenticatedUdpSocket::new(socket, self.auth.clone(), self.counters.clone()).await?,
        ))
    }
}

/// One gossip socket: signs what it sends, drops what does not verify.
pub(crate) struct AuthenticatedUdpSocket {
    socket: tokio::net::UdpSocket,
    auth: Arc<DatagramAuth>,
    counters: Arc<RejectionCounters>,
    codec: EnvelopeCodec,
    buf_send: Vec<u8>,
    buf_recv: Box<[u8]>,
    /// A datagram that verified and is being decoded: its sender, where its envelope lies in
    /// `buf_recv`, and its length. Kept here so a `recv` that chitchat drops half-way (it does
    /// at each gossip tick) resumes with it instead of losing it.
    pending: Option<(SocketAddr, Range<usize>, usize)>,
    rejected_warnings: WarnLimiter,
    /// Problems on this side (a datagram too large, a codec failure), per peer.
    local_warnings: WarnLimiter,
}

impl std::fmt::Debug for AuthenticatedUdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticatedUdpSocket")
            .field("local_addr", &self.socket.local_addr().ok())
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl AuthenticatedUdpSocket {
    async fn new(
        socket: tokio::net::UdpSocket,
        auth: Arc<DatagramAuth>,
        counters: Arc<RejectionCounters>,
    ) -> anyhow::Result<AuthenticatedUdpSocket> {
        Ok(AuthenticatedUdpSocket {
            socket,
            auth,
            counters,
            codec: EnvelopeCodec::open(RECV_BUFFER_BYTES).await?,
            buf_send: Vec::with_capacity(RECV_BUFFER_BYTES),
            buf_recv: vec![0u8; RECV_BUFFER_BYTES].into_boxed_slice(),
            pending: None,
            rejected_warnings: WarnLimiter::new(),
            local_warnings: WarnLimiter::new(),
        })
    }

    /// Sends the datagram sealed in `buf_send`; the bytes sent, 0 when it was too large.
    async fn send_sealed(&mut self, to: SocketAddr) -> anyhow::Result<usize> {
        if self.buf_send.len() > MAX_DATAGRAM_BYTES {
            // Not an error to chitchat: an error here means "this socket is broken", and it is
            // not. The datagram is as lost as one the network drops, which gossip tolerates.
            if self.local_warnings.should_warn(to, Instant::now()) {
                warn!(
                    peer = %to,
                    bytes = self.buf_send.len(),
                    max = MAX_DATAGRAM_BYTES,
                    "gossip datagram too large to send once signed; dropped"
                );
            }
            metrics::counter!("enrichment_cluster_gossip_oversize_total").increment(1);
            return Ok(0);
        }
        self.socket
            .send_to(&self.buf_send, to)
            .await
            .with_context(|| format!("cannot send gossip to {to}"))
    }

    /// Counts and (rate-limited) logs a dropped datagram.
    fn reject(&mut self, rejection: Rejection, peer: SocketAddr, len: usize) {
        self.counters.record(rejection);
        if self.rejected_warnings.should_warn(peer, Instant::now()) {
            warn!(
                %peer,
                reason = rejection.label(),
                bytes = len,
                "dropped a gossip datagram that is not from this cluster (wrong secret, forged, \
                 replayed, from a clock off by more than the replay window, or unreadable); \
                 further ones from this address are counted, not logged, for a minute"
            );
        }
    }

    /// One datagram: `Ok(None)` when it was dropped or a transient error occurred.
    async fn receive_one(&mut self) -> anyhow::Result<Option<RecvOutcome>> {
        let (peer, body, len) = match self.pending.clone() {
            Some(pending) => pending,
            None => {
                let (len, peer) = match self.socket.recv_from(&mut self.buf_recv).await {
                    Ok(received) => received,
                    Err(err) if is_transient(&err) => return Ok(None),
                    Err(err) => return Err(err).context("gossip socket cannot receive"),
                };
                match self.auth.open(&self.buf_recv[..len], unix_millis()) {
                    Ok(body) => {
                        self.pending = Some((peer, body.clone(), len));
                        (peer, body, len)
                    }
                    Err(rejection) => {
                        self.reject(rejection, peer, len);
                        return Ok(None);
                    }
                }
            }
        };
        let decoded = self.codec.decode(&self.buf_recv[body]).await;
        self.pending = None;
        match decoded {
            Ok(Decoded::Envelope(envelope)) => Ok(Some(RecvOutcome {
                from_addr: peer,
                envelope,
                num_bytes_received: len,
            })),
            Ok(Decoded::Invalid) => {
                // Signed by a member, yet not an envelope this chitchat reads: most likely a
                // node running another version.
                self.reject(Rejection::Malformed, peer, len);
                Ok(None)
            }
            Err(err) => {
                if self.local_warnings.should_warn(peer, Instant::now()) {
                    warn!(%peer, error = %err, "gossip datagram lost while decoding; the codec starts afresh");
                }
                Ok(None)
            }
        }
    }
}

/// Errors after which the socket still works: what a peer's ICMP or a full buffer causes.
fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::OutOfMemory
    )
}

#[async_trait]
impl Socket for AuthenticatedUdpSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.socket
            .local_addr()
            .context("gossip socket has no local address")
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        DatagramAuth::begin(unix_millis(), &mut self.buf_send);
        self.codec.encode(envelope, &mut self.buf_send).await?;
        self.auth.sign(&mut self.buf_send);
        let num_bytes_sent = self.send_sealed(to).await?;
        Ok(SendOutcome { num_bytes_sent })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        // Cancel-safe: a datagram being decoded is kept in `pending`, and the codec resumes.
        loop {
            if let Some(outcome) = self.receive_one().await? {
                return Ok(outcome);
            }
        }
    }
}

#[cfg(test)]
mod tests;
