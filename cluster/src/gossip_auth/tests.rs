use std::net::SocketAddr;
use std::time::Duration;

use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatEnvelope, ChitchatMessage, ProtocolVersion};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

use super::*;

const SECRET: &str = "correct horse battery staple";
const WINDOW: Duration = Duration::from_secs(60);
const LOOPBACK: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

/// The only chitchat message whose parts are all public: enough to carry through the framing.
fn envelope() -> ChitchatEnvelope {
    ChitchatEnvelope {
        version: ProtocolVersion::V0,
        message: ChitchatMessage::BadCluster,
    }
}

fn auth(secret: &str) -> DatagramAuth {
    DatagramAuth::new(&ClusterSecret::new(secret), WINDOW)
}

/// chitchat's encoding of [`envelope`].
async fn body() -> Vec<u8> {
    let mut codec = EnvelopeCodec::open(RECV_BUFFER_BYTES).await.unwrap();
    let mut out = Vec::new();
    codec.encode(envelope(), &mut out).await.unwrap();
    out
}

async fn sealed(auth: &DatagramAuth, timestamp_ms: u64) -> Vec<u8> {
    let mut out = Vec::new();
    auth.seal(timestamp_ms, &body().await, &mut out);
    out
}

/// A receiving socket of the transport, and a plain UDP socket to throw datagrams at it.
async fn receiver() -> (AuthenticatedUdpTransport, Box<dyn Socket>, UdpSocket) {
    let transport = AuthenticatedUdpTransport::new(&ClusterSecret::new(SECRET), WINDOW);
    let socket = transport.open(LOOPBACK.into()).await.unwrap();
    let sender = UdpSocket::bind(SocketAddr::from(LOOPBACK)).await.unwrap();
    (transport, socket, sender)
}

/// Sends `bad` and then a good datagram; the socket must hand over the good one only.
async fn only_the_good_one_arrives(bad: &[u8]) -> RejectedDatagrams {
    let (transport, mut socket, sender) = receiver().await;
    let to = socket.local_addr().unwrap();
    sender.send_to(bad, to).await.unwrap();
    let good = sealed(&auth(SECRET), unix_millis()).await;
    sender.send_to(&good, to).await.unwrap();
    let outcome = timeout(Duration::from_secs(5), socket.recv())
        .await
        .expect("the good datagram arrives")
        .unwrap();
    assert_eq!(outcome.envelope, envelope());
    assert_eq!(outcome.from_addr, sender.local_addr().unwrap());
    assert_eq!(outcome.num_bytes_received, good.len());
    transport.rejected()
}

#[tokio::test]
async fn the_framing_adds_a_version_a_timestamp_and_a_tag_to_chitchats_own_encoding() {
    let bytes = sealed(&auth(SECRET), 1_700_000_000_123).await;
    let body = body().await;
    assert_eq!(bytes.len(), body.len() + OVERHEAD_BYTES);
    assert_eq!(bytes[0], WIRE_VERSION);
    assert_eq!(&bytes[1..9], &1_700_000_000_123u64.to_le_bytes());
    assert_eq!(&bytes[9..9 + body.len()], &body[..]);
    let range = auth(SECRET).open(&bytes, 1_700_000_000_123).unwrap();
    assert_eq!(&bytes[range], &body[..]);
}

#[tokio::test]
async fn two_sockets_with_the_same_secret_exchange_envelopes() {
    let transport = AuthenticatedUdpTransport::new(&ClusterSecret::new(SECRET), WINDOW);
    let mut a = transport.open(LOOPBACK.into()).await.unwrap();
    let mut b = transport.open(LOOPBACK.into()).await.unwrap();
    let sent = a.send(b.local_addr().unwrap(), envelope()).await.unwrap();
    assert_eq!(sent.num_bytes_sent, body().await.len() + OVERHEAD_BYTES);
    let received = timeout(Duration::from_secs(5), b.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received.envelope, envelope());
    assert_eq!(received.from_addr, a.local_addr().unwrap());
    assert_eq!(transport.rejected(), RejectedDatagrams::default());
}

#[tokio::test]
async fn a_datagram_signed_with_another_secret_is_dropped_as_a_bad_tag() {
    let forged = sealed(&auth("a different secret, same length!"), unix_millis()).await;
    let rejected = only_the_good_one_arrives(&forged).await;
    assert_eq!(
        rejected,
        RejectedDatagrams {
            bad_tag: 1,
            ..RejectedDatagrams::default()
        }
    );
}

#[tokio::test]
async fn a_datagram_altered_after_signing_is_dropped_as_a_bad_tag() {
    let mut altered = sealed(&auth(SECRET), unix_millis()).await;
    let last_body_byte = altered.len() - TAG_LEN - 1;
    altered[last_body_byte] ^= 1;
    assert_eq!(only_the_good_one_arrives(&altered).await.bad_tag, 1);

    let mut retimed = sealed(&auth(SECRET), unix_millis()).await;
    retimed[1] ^= 1;
    assert_eq!(only_the_good_one_arrives(&retimed).await.bad_tag, 1);
}

#[tokio::test]
async fn a_correctly_signed_datagram_from_outside_the_replay_window_is_dropped_as_stale() {
    let window_ms = WINDOW.as_millis() as u64;
    let replayed = sealed(&auth(SECRET), unix_millis() - window_ms - 5_000).await;
    assert_eq!(
        only_the_good_one_arrives(&replayed).await,
        RejectedDatagrams {
            stale: 1,
            ..RejectedDatagrams::default()
        }
    );
    let from_the_future = sealed(&auth(SECRET), unix_millis() + window_ms + 5_000).await;
    assert_eq!(only_the_good_one_arrives(&from_the_future).await.stale, 1);

    // The window is inclusive on both sides, to the millisecond.
    let now = 1_700_000_000_000;
    let a = auth(SECRET);
    assert!(a.open(&sealed(&a, now - window_ms).await, now).is_ok());
    assert!(a.open(&sealed(&a, now + window_ms).await, now).is_ok());
    assert_eq!(
        a.open(&sealed(&a, now - window_ms - 1).await, now),
        Err(Rejection::Stale)
    );
}

#[tokio::test]
async fn junk_an_unknown_version_and_an_undecodable_envelope_are_dropped_as_malformed() {
    assert_eq!(only_the_good_one_arrives(b"junk").await.malformed, 1);

    let mut other_version = sealed(&auth(SECRET), unix_millis()).await;
    other_version[0] = 2;
    assert_eq!(only_the_good_one_arrives(&other_version).await.malformed, 1);

    // Correctly signed, but the body is not a chitchat envelope.
    let mut not_chitchat = Vec::new();
    auth(SECRET).seal(unix_millis(), &[0xff; 5], &mut not_chitchat);
    assert_eq!(only_the_good_one_arrives(&not_chitchat).await.malformed, 1);
}

#[tokio::test]
async fn each_rejection_increments_the_rejected_counter_with_its_reason() {
    // Single-threaded test runtime: the socket runs on this thread, under this recorder.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let forged = sealed(&auth("a different secret, same length!"), unix_millis()).await;
    only_the_good_one_arrives(&forged).await;
    only_the_good_one_arrives(&forged).await;
    only_the_good_one_arrives(b"junk").await;

    let mut counts = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        if key.name() != "enrichment_cluster_gossip_rejected_total" {
            continue;
        }
        let reason = key
            .labels()
            .find(|l| l.key() == "reason")
            .map(|l| l.value().to_owned())
            .unwrap();
        let DebugValue::Counter(n) = value else {
            panic!("not a counter")
        };
        counts.insert(reason, n);
    }
    assert_eq!(
        counts,
        [("bad_tag".to_owned(), 2), ("malformed".to_owned(), 1)].into()
    );
}

#[tokio::test]
async fn an_envelope_too_large_to_send_once_signed_is_dropped_without_an_error() {
    let socket = UdpSocket::bind(SocketAddr::from(LOOPBACK)).await.unwrap();
    let peer = UdpSocket::bind(SocketAddr::from(LOOPBACK)).await.unwrap();
    let mut socket = AuthenticatedUdpSocket::new(
        socket,
        Arc::new(auth(SECRET)),
        Arc::new(RejectionCounters::default()),
    )
    .await
    .unwrap();
    socket.buf_send = vec![0; MAX_DATAGRAM_BYTES + 1];
    let to = peer.local_addr().unwrap();
    assert_eq!(socket.send_sealed(to).await.unwrap(), 0);
    socket.buf_send.truncate(MAX_DATAGRAM_BYTES);
    assert_eq!(
        socket.send_sealed(to).await.unwrap(),
        MAX_DATAGRAM_BYTES,
        "the largest datagram chitchat plans for still goes out"
    );
}

#[tokio::test]
async fn a_socket_bound_in_advance_is_the_one_chitchat_opens() {
    let bound = UdpSocket::bind(SocketAddr::from(LOOPBACK)).await.unwrap();
    let addr = bound.local_addr().unwrap();
    let transport = AuthenticatedUdpTransport::new(&ClusterSecret::new(SECRET), WINDOW)
        .with_bound_socket(bound);
    let socket = transport.open(addr).await.unwrap();
    assert_eq!(socket.local_addr().unwrap(), addr);
    // Handed over once: a second open binds, and finds the address taken.
    assert!(transport.open(addr).await.is_err());
}

#[test]
fn a_peer_is_warned_about_at_most_once_a_minute() {
    let mut limiter = WarnLimiter::new();
    let t0 = Instant::now();
    let a: SocketAddr = "10.0.0.1:8082".parse().unwrap();
    let b: SocketAddr = "10.0.0.2:8082".parse().unwrap();
    assert!(limiter.should_warn(a, t0));
    assert!(!limiter.should_warn(a, t0 + Duration::from_secs(59)));
    assert!(limiter.should_warn(b, t0 + Duration::from_secs(1)));
    assert!(limiter.should_warn(a, t0 + Duration::from_secs(60)));
    assert!(!limiter.should_warn(a, t0 + Duration::from_secs(61)));
}

#[test]
fn the_warning_memory_stays_bounded_when_source_addresses_are_spoofed() {
    let mut limiter = WarnLimiter::new();
    let t0 = Instant::now();
    let peer = |i: usize| SocketAddr::from(([10, 0, (i / 256) as u8, (i % 256) as u8], 8082));
    for i in 0..WARN_PEERS_MAX {
        assert!(limiter.should_warn(peer(i), t0));
    }
    assert!(
        !limiter.should_warn(peer(WARN_PEERS_MAX), t0 + Duration::from_secs(1)),
        "full, and nothing old enough to forget"
    );
    assert_eq!(limiter.last.len(), WARN_PEERS_MAX);
    assert!(limiter.should_warn(peer(WARN_PEERS_MAX), t0 + WARN_EVERY));
    assert_eq!(limiter.last.len(), 1);
}

#[tokio::test]
async fn the_codec_reads_back_what_it_wrote_and_says_when_chitchat_cannot_read_bytes() {
    let mut codec = EnvelopeCodec::open(RECV_BUFFER_BYTES).await.unwrap();
    let v1 = ChitchatEnvelope {
        version: ProtocolVersion::V1,
        message: ChitchatMessage::BadCluster,
    };
    let mut bytes = Vec::new();
    codec
        .encode(
            ChitchatEnvelope {
                version: ProtocolVersion::V1,
                message: ChitchatMessage::BadCluster,
            },
            &mut bytes,
        )
        .await
        .unwrap();
    assert_eq!(codec.decode(&bytes).await.unwrap(), Decoded::Envelope(v1));
    assert_eq!(
        codec.decode(b"not chitchat").await.unwrap(),
        Decoded::Invalid
    );
    assert_eq!(codec.decode(&[]).await.unwrap(), Decoded::Invalid);
    // The marker itself is answered without the detour, and stays unambiguous.
    let marker = body().await;
    assert_eq!(
        codec.decode(&marker).await.unwrap(),
        Decoded::Envelope(envelope())
    );
}

#[tokio::test]
async fn a_decode_interrupted_half_way_resumes_on_the_next_call() {
    let mut codec = EnvelopeCodec::open(RECV_BUFFER_BYTES).await.unwrap();
    let mut bytes = Vec::new();
    let v1 = ChitchatEnvelope {
        version: ProtocolVersion::V1,
        message: ChitchatMessage::BadCluster,
    };
    codec
        .encode(
            ChitchatEnvelope {
                version: ProtocolVersion::V1,
                message: ChitchatMessage::BadCluster,
            },
            &mut bytes,
        )
        .await
        .unwrap();
    // Polled once and dropped, as chitchat's server drops `recv` when its timer fires.
    let first = codec.decode(&bytes);
    assert!(
        futures_poll_once(first).await.is_none(),
        "still waiting on loopback"
    );
    assert!(matches!(codec.decoding, codec::Decoding::Pending { .. }));
    assert_eq!(codec.decode(&bytes).await.unwrap(), Decoded::Envelope(v1));
    // And the pair is still in step afterwards.
    assert_eq!(codec.decode(b"junk").await.unwrap(), Decoded::Invalid);
}

#[tokio::test]
async fn a_broken_codec_is_rebuilt_on_fresh_sockets() {
    let mut codec = EnvelopeCodec::open(RECV_BUFFER_BYTES).await.unwrap();
    codec.break_pipe();
    let mut bytes = Vec::new();
    codec.encode(envelope(), &mut bytes).await.unwrap();
    assert_eq!(bytes, body().await);
    codec.break_pipe();
    assert_eq!(codec.decode(b"junk").await.unwrap(), Decoded::Invalid);
}

/// Polls `future` once, then drops it.
async fn futures_poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        std::task::Poll::Ready(out) => std::task::Poll::Ready(Some(out)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}
