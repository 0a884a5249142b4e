//! The TCP transport: a listener that authenticates and reads inbound links, and one task per
//! peer that dials it, authenticates, and writes its queue.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use enrichment_protocol::node::NodeIdentity;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::frame::{Frame, FrameCodec, FrameError, WireKind};
use super::handshake::{self, Dialer, HandshakeError, HandshakeMessage, LinkSecret, Listener};
use super::inbound::{InboundLink, InboundSide, LinkEnd, OpenError, OpenRefusal};
use super::outbound::{OutboundPeers, PeerQueue};
use super::stats::{self, LinkGauge, Stats};
use super::timing::{Backoff, WarnLimiter};
use super::{
    ClusterTransport, FrameKind, Inbound, Peer, SendError, TransportConfig, TransportStats,
};

/// Handshake messages are small; until a peer has proved the secret, a frame may not be longer.
const HANDSHAKE_MAX_FRAME: usize = 4096;
/// Bytes a writer takes from its queue per write.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Connections that may be in their handshake at once; more are closed on arrival.
const MAX_PENDING_HANDSHAKES: usize = 128;

type Link = Framed<TcpStream, FrameCodec>;

/// The cluster transport over TCP. Dropping it closes every link.
#[derive(Debug)]
pub struct TcpTransport {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    local: NodeIdentity,
    secret: LinkSecret,
    config: TransportConfig,
    local_addr: SocketAddr,
    outbound: OutboundPeers,
    inbound: Arc<InboundSide>,
    stats: Arc<Stats>,
    stop: CancellationToken,
    refusal_warnings: parking_lot::Mutex<WarnLimiter>,
}

impl TcpTransport {
    /// Listens on `listen` and returns the transport with the receiver of its inbound events.
    /// No peer is dialled until [`ClusterTransport::set_peers`].
    pub async fn bind(
        local: NodeIdentity,
        secret: LinkSecret,
        listen: impl ToSocketAddrs,
        config: TransportConfig,
    ) -> io::Result<(TcpTransport, mpsc::Receiver<Inbound>)> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let (inbound, rx) = InboundSide::new(config.inbound_capacity, stats.clone(), stop.clone());
        let outbound = OutboundPeers::new(
            &local.node_id,
            config.queue_bytes,
            config.max_frame_length,
            false,
            stats.clone(),
        );
        let shared = Arc::new(Shared {
            refusal_warnings: parking_lot::Mutex::new(WarnLimiter::new(
                config.refusal_warn_interval,
            )),
            local,
            secret,
            config,
            local_addr,
            outbound,
            inbound,
            stats,
            stop,
        });
        let span = info_span!("cluster_listener", node = %shared.local.node_id, addr = %local_addr);
        tokio::spawn(accept_loop(shared.clone(), listener).instrument(span));
        Ok((TcpTransport { shared }, rx))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }
}

impl ClusterTransport for TcpTransport {
    fn local(&self) -> &NodeIdentity {
        &self.shared.local
    }

    fn set_peers(&self, peers: &[Peer]) {
        let shared = &self.shared;
        shared.outbound.set_peers(peers, |peer| {
            let stop = shared.stop.child_token();
            let span =
                info_span!("cluster_link", node = %shared.local.node_id, peer = %peer.node_id);
            tokio::spawn(dial_loop(shared.clone(), peer.clone(), stop.clone()).instrument(span));
            stop
        });
    }

    fn remove_peer(&self, node_id: &str) {
        self.shared.outbound.remove(node_id);
    }

    fn link_up(&self, to: &str) -> bool {
        self.shared.outbound.link_up(to)
    }

    fn send(&self, to: &str, kind: FrameKind, payload: Bytes) -> Result<u64, SendError> {
        self.shared.outbound.send(to, kind, payload)
    }

    fn stats(&self) -> TransportStats {
        self.shared.stats.snapshot()
    }

    fn shutdown(&self) {
        self.shared.outbound.shutdown();
        self.shared.stop.cancel();
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Why a link could not open or stopped.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("timed out")]
    Timeout,
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("malformed handshake message: {0}")]
    Malformed(#[from] rmp_serde::decode::Error),
    #[error("a {0:?} frame where a handshake message was expected")]
    NotHandshake(WireKind),
    #[error("the peer sent a {0:?} frame on a link it only reads")]
    Unexpected(WireKind),
    #[error("refused: {0}")]
    Refused(#[from] OpenRefusal),
    #[error("the connection closed")]
    Closed,
    #[error("the transport is closing")]
    ShuttingDown,
}

impl LinkError {
    /// The reason label of a refused handshake, or `None` for failures that are not refusals
    /// (a peer that is down, a dropped connection).
    fn refusal(&self) -> Option<&'static str> {
        Some(match self {
            LinkError::Frame(FrameError::Io(_)) => return None,
            LinkError::Handshake(HandshakeError::BadProof) => "bad_proof",
            LinkError::Handshake(HandshakeError::WrongNode { .. }) => "wrong_node",
            LinkError::Handshake(HandshakeError::SelfLink) => "self_link",
            LinkError::Handshake(HandshakeError::Unexpected { .. })
            | LinkError::Malformed(_)
            | LinkError::NotHandshake(_)
            | LinkError::Frame(_) => "protocol",
            LinkError::Refused(OpenRefusal::Stale { .. }) => "stale_generation",
            LinkError::Refused(OpenRefusal::Backwards { .. }) => "sequence",
            _ => return None,
        })
    }
}

impl From<OpenError> for LinkError {
    fn from(error: OpenError) -> LinkError {
        match error {
            OpenError::Refused(refusal) => LinkError::Refused(refusal),
            OpenError::Closed => LinkError::ShuttingDown,
        }
    }
}

impl Shared {
    /// Counts a refused handshake and warns, at most once per interval, naming the address.
    fn refused(
        &self,
        addr: &dyn std::fmt::Display,
        side: &'static str,
        reason: &'static str,
        error: &LinkError,
    ) {
        stats::handshake_refused(&self.stats, reason);
        let allowed = self.refusal_warnings.lock().check(Instant::now());
        match allowed {
            Some(suppressed) => warn!(
                peer_addr = %addr, side, reason, %error, suppressed,
                "cluster handshake refused"
            ),
            None => debug!(peer_addr = %addr, side, reason, %error, "cluster handshake refused"),
        }
    }
}

async fn send_handshake(link: &mut Link, message: &HandshakeMessage) -> Result<(), LinkError> {
    let payload = rmp_serde::to_vec_named(message)
        .map(Bytes::from)
        .map_err(|error| {
            LinkError::Frame(FrameError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                error,
            )))
        })?;
    link.send(Frame {
        kind: WireKind::Handshake,
        seq: 0,
        payload,
    })
    .await?;
    Ok(())
}

async fn next_handshake(link: &mut Link) -> Result<HandshakeMessage, LinkError> {
    let frame = link.next().await.ok_or(LinkError::Closed)??;
    if frame.kind != WireKind::Handshake {
        return Err(LinkError::NotHandshake(frame.kind));
    }
    Ok(rmp_serde::from_slice(&frame.payload)?)
}

// ---------------------------------------------------------------------------------------------
// Inbound: accept, authenticate, read.

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            _ = shared.stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, addr)) => {
                let Ok(permit) = pending.clone().try_acquire_owned() else {
                    debug!(peer_addr = %addr, "too many cluster handshakes in progress; closing");
                    continue;
                };
                let span = info_span!("cluster_inbound", peer_addr = %addr);
                tokio::spawn(serve_inbound(shared.clone(), stream, addr, permit).instrument(span));
            }
            Err(error) => {
                // Out of file descriptors, usually: wait a little instead of spinning.
                warn!(%error, "cluster listener could not accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_inbound(
    shared: Arc<Shared>,
    stream: TcpStream,
    addr: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let mut link = Framed::new(stream, FrameCodec::new(HANDSHAKE_MAX_FRAME));
    let authenticated = tokio::select! {
        _ = shared.stop.cancelled() => return,
        result = tokio::time::timeout(
            shared.config.handshake_timeout,
            listener_handshake(&shared, &mut link),
        ) => result.unwrap_or(Err(LinkError::Timeout)),
    };
    let (peer, hello) = match authenticated {
        Ok(proved) => proved,
        Err(error) => {
            match error.refusal() {
                Some(reason) => shared.refused(&addr, "listener", reason, &error),
                None => debug!(%error, "inbound cluster handshake did not complete"),
            }
            return;
        }
    };
    // Not under the handshake timeout: once the slot has recorded the link, its events must
    // all reach the channel, however long a slow consumer makes that take.
    let reader = match shared.inbound.open(peer.clone(), hello).await {
        Ok(reader) => reader,
        Err(error) => {
            let error = LinkError::from(error);
            if let Some(reason) = error.refusal() {
                shared.refused(&addr, "listener", reason, &error);
            }
            return;
        }
    };
    let accepted = tokio::time::timeout(
        shared.config.handshake_timeout,
        send_handshake(&mut link, &HandshakeMessage::Accept),
    )
    .await
    .unwrap_or(Err(LinkError::Timeout));
    drop(permit);
    if let Err(error) = accepted {
        debug!(%error, "could not accept an authenticated cluster link");
        reader.close().await;
        return;
    }
    link.codec_mut()
        .set_max_frame_length(shared.config.max_frame_length);
    info!(peer = %peer, "inbound cluster link up");
    let end = read_link(&shared, &mut link, &reader).await;
    match &end {
        Err(LinkError::Closed | LinkError::ShuttingDown) => {
            info!(peer = %peer, "inbound cluster link closed")
        }
        Err(error @ LinkError::Timeout) => {
            warn!(peer = %peer, %error, "inbound cluster link idle; closing")
        }
        Err(error) => error!(peer = %peer, %error, "closing inbound cluster link"),
        Ok(()) => debug!(peer = %peer, "inbound cluster link replaced by a newer one"),
    }
    reader.close().await;
}

async fn listener_handshake(
    shared: &Shared,
    link: &mut Link,
) -> Result<(NodeIdentity, super::outbound::StreamHello), LinkError> {
    let greeting = next_handshake(link).await?;
    let (listener, challenge) = Listener::on_greeting(
        shared.secret.clone(),
        shared.local.clone(),
        greeting,
        rand::random(),
    )?;
    send_handshake(link, &challenge).await?;
    let answer = next_handshake(link).await?;
    debug!(claimed = %listener.claimed_peer(), "checking the answer");
    Ok(listener.on_answer(answer)?)
}

/// Reads frames until the link closes; `Ok` when a newer link from the same peer took over.
async fn read_link(
    shared: &Shared,
    link: &mut Link,
    reader: &InboundLink,
) -> Result<(), LinkError> {
    let idle = shared.config.idle_timeout;
    loop {
        let next = tokio::select! {
            _ = shared.stop.cancelled() => return Err(LinkError::ShuttingDown),
            next = tokio::time::timeout(idle, link.next()) => next,
        };
        let frame = next
            .map_err(|_| LinkError::Timeout)?
            .ok_or(LinkError::Closed)??;
        let delivered = match frame.kind {
            WireKind::Control => {
                reader
                    .frame(FrameKind::Control, frame.seq, frame.payload)
                    .await
            }
            WireKind::Fanout => {
                reader
                    .frame(FrameKind::Fanout, frame.seq, frame.payload)
                    .await
            }
            WireKind::Keepalive => reader.next_hint(frame.seq).await,
            WireKind::Handshake => return Err(LinkError::Unexpected(frame.kind)),
        };
        match delivered {
            Ok(()) => {}
            Err(LinkEnd::Superseded) => return Ok(()),
            Err(LinkEnd::Closed) => return Err(LinkError::ShuttingDown),
            Err(LinkEnd::Backwards { expected, got }) => {
                return Err(LinkError::Refused(OpenRefusal::Backwards { expected, got }));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Outbound: dial, authenticate, write.

async fn dial_loop(shared: Arc<Shared>, peer: Arc<PeerQueue>, stop: CancellationToken) {
    let mut backoff = Backoff::new(shared.config.reconnect_min, shared.config.reconnect_max);
    let mut links_opened = 0u64;
    // Attempts that failed since the last link was up: the first is worth an info line, the
    // rest of a peer's downtime only debug lines.
    let mut failures = 0u64;
    loop {
        let addr = peer.addr();
        let mut was_up = false;
        let ended = tokio::select! {
            _ = stop.cancelled() => return,
            ended = run_outbound(&shared, &peer, &addr, &mut links_opened, &mut was_up) => ended,
        };
        if was_up {
            backoff.reset();
            failures = 0;
        } else {
            failures += 1;
        }
        match &ended {
            LinkError::Closed if was_up => info!(%addr, "outbound cluster link closed by the peer"),
            error => match error.refusal() {
                Some(reason) => shared.refused(&addr, "dialer", reason, error),
                None if was_up => info!(%addr, %error, "outbound cluster link lost"),
                None if failures == 1 => {
                    info!(%addr, %error, "could not open a cluster link; retrying")
                }
                None => debug!(%addr, %error, failures, "could not open a cluster link"),
            },
        }
        let delay = backoff.next_delay(rand::random());
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One connection's life: connect, handshake, write until it breaks. Returns why it ended.
async fn run_outbound(
    shared: &Shared,
    peer: &PeerQueue,
    addr: &str,
    links_opened: &mut u64,
    was_up: &mut bool,
) -> LinkError {
    let timeout = shared.config.handshake_timeout;
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return LinkError::Timeout,
        Ok(Err(error)) => return LinkError::Connect(error),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    let mut link = Framed::new(stream, FrameCodec::new(HANDSHAKE_MAX_FRAME));
    let opened = tokio::time::timeout(timeout, dialer_handshake(shared, peer, &mut link))
        .await
        .unwrap_or(Err(LinkError::Timeout));
    let (listener, next_seq) = match opened {
        Ok(opened) => opened,
        Err(error) => return error,
    };
    *links_opened += 1;
    if *links_opened > 1 {
        peer.meter.reconnected(&shared.stats);
    }
    *was_up = true;
    let _up = LinkGauge::up("outbound");
    link.codec_mut()
        .set_max_frame_length(shared.config.max_frame_length);
    info!(peer = %listener, "outbound cluster link up");
    peer.set_up(true);
    let ended = match write_link(shared, peer, &mut link, next_seq).await {
        Ok(never) => match never {},
        Err(error) => error,
    };
    peer.set_up(false);
    ended
}

/// Returns the listener's identity and the number the link starts at.
async fn dialer_handshake(
    shared: &Shared,
    peer: &PeerQueue,
    link: &mut Link,
) -> Result<(NodeIdentity, u64), LinkError> {
    let (dialer, greeting) = Dialer::start(
        shared.secret.clone(),
        shared.local.clone(),
        &peer.node_id,
        rand::random(),
    );
    send_handshake(link, &greeting).await?;
    let verified = dialer.on_challenge(next_handshake(link).await?)?;
    let hello = peer.queue.lock().open(verified.peer().generation);
    let (listener, answer) = verified.answer(hello);
    send_handshake(link, &answer).await?;
    handshake::expect_accept(next_handshake(link).await?)?;
    Ok((listener, hello.next_seq))
}

/// Writes the queue to the link. Returns only with the reason the link broke.
async fn write_link(
    shared: &Shared,
    peer: &PeerQueue,
    link: &mut Link,
    mut announced: u64,
) -> Result<std::convert::Infallible, LinkError> {
    let mut batch = Vec::new();
    loop {
        let next = {
            let mut queue = peer.queue.lock();
            queue.pop_batch(WRITE_BATCH_BYTES, &mut batch);
            peer.meter.queue_bytes(queue.queued_bytes());
            queue.next_to_send()
        };
        if !batch.is_empty() {
            for queued in batch.drain(..) {
                announced = queued.seq + 1;
                peer.meter
                    .sent(&shared.stats, queued.kind, queued.wire_len());
                link.feed(queued.into_frame()).await?;
            }
            link.flush().await?;
            continue;
        }
        if next > announced {
            // Numbers were spent on refused frames since the last one written: say so now, so
            // the receiver hears of the gap without waiting for the next frame.
            link.send(keepalive(next)).await?;
            announced = next;
            continue;
        }
        tokio::select! {
            _ = peer.wake.notified() => {}
            _ = tokio::time::sleep(shared.config.keepalive_interval) => {
                let next = peer.queue.lock().next_to_send();
                link.send(keepalive(next)).await?;
                announced = next;
            }
            // The listener writes nothing after accepting: anything readable is its close.
            read = link.next() => {
                return Err(match read {
                    None => LinkError::Closed,
                    Some(Err(error)) => error.into(),
                    Some(Ok(frame)) => LinkError::Unexpected(frame.kind),
                });
            }
        }
    }
}

fn keepalive(next: u64) -> Frame {
    Frame {
        kind: WireKind::Keepalive,
        seq: next,
        payload: Bytes::new(),
    }
}

#[cfg(test)]
mod tests;
