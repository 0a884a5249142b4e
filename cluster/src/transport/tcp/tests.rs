//! The listener against raw clients on real sockets: handshakes driven by hand, recorded and
//! replayed, and frames the transport itself would never write.

use std::time::Duration;

use enrichment_protocol::node::GenerationId;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

use super::*;
use crate::transport::outbound::StreamHello;

const WAIT: Duration = Duration::from_secs(5);

fn secret() -> LinkSecret {
    LinkSecret::new(b"the cluster secret, 32 bytes....".to_vec()).unwrap()
}

fn node(id: &str, generation: u64) -> NodeIdentity {
    NodeIdentity::new(id, GenerationId(generation))
}

async fn listener() -> (TcpTransport, mpsc::Receiver<Inbound>) {
    TcpTransport::bind(
        node("b", 1),
        secret(),
        "127.0.0.1:0",
        TransportConfig::default(),
    )
    .await
    .unwrap()
}

async fn dial(transport: &TcpTransport) -> Link {
    let stream = TcpStream::connect(transport.local_addr()).await.unwrap();
    Framed::new(stream, FrameCodec::new(1 << 20))
}

async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    timeout(WAIT, rx.recv()).await.unwrap().unwrap()
}

/// Waits until the listener closes the connection.
async fn closed(link: &mut Link) {
    loop {
        match timeout(WAIT, link.next()).await.unwrap() {
            None | Some(Err(_)) => return,
            Some(Ok(frame)) => assert_ne!(frame.kind, WireKind::Handshake, "{frame:?}"),
        }
    }
}

/// A genuine dialer's handshake; returns the messages it sent, for replaying.
async fn handshake(
    link: &mut Link,
    secret: LinkSecret,
    me: NodeIdentity,
    hello: StreamHello,
) -> (HandshakeMessage, HandshakeMessage) {
    let (dialer, greeting) = Dialer::start(secret, me, "b", rand::random());
    send_handshake(link, &greeting).await.unwrap();
    let verified = dialer
        .on_challenge(next_handshake(link).await.unwrap())
        .unwrap();
    let (_, answer) = verified.answer(hello);
    send_handshake(link, &answer).await.unwrap();
    (greeting, answer)
}

async fn refusals_reach(transport: &TcpTransport, n: u64) {
    timeout(WAIT, async {
        while transport.stats().handshakes_refused < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_recorded_handshake_replayed_on_a_new_connection_gets_no_link() {
    let (b, mut rx) = listener().await;
    let mut genuine = dial(&b).await;
    let hello = StreamHello {
        next_seq: 0,
        stream_start: 0,
    };
    let (greeting, answer) = handshake(&mut genuine, secret(), node("a", 1), hello).await;
    assert_eq!(
        next_handshake(&mut genuine).await.unwrap(),
        HandshakeMessage::Accept
    );
    assert_eq!(next(&mut rx).await, Inbound::PeerUp { peer: node("a", 1) });

    // Someone who saw that exchange, without the secret, plays it back.
    let mut replay = dial(&b).await;
    send_handshake(&mut replay, &greeting).await.unwrap();
    let challenge = next_handshake(&mut replay).await.unwrap();
    assert!(matches!(challenge, HandshakeMessage::Challenge { .. }));
    send_handshake(&mut replay, &answer).await.unwrap();
    closed(&mut replay).await;
    refusals_reach(&b, 1).await;

    // The genuine link is untouched and still carries frames.
    genuine
        .send(Frame {
            kind: WireKind::Control,
            seq: 0,
            payload: Bytes::from_static(b"\x80"),
        })
        .await
        .unwrap();
    assert!(matches!(next(&mut rx).await, Inbound::Frame { seq: 0, .. }));
    assert_eq!(b.stats().handshakes_refused, 1);
}

#[tokio::test]
async fn an_answer_proved_with_another_secret_is_refused_and_counted() {
    let (b, mut rx) = listener().await;
    let mut forged = dial(&b).await;
    let other = LinkSecret::new(b"not the cluster secret at all...".to_vec()).unwrap();
    let (_, greeting) = Dialer::start(other.clone(), node("a", 1), "b", rand::random());
    send_handshake(&mut forged, &greeting).await.unwrap();
    // The forger cannot verify the challenge; it answers with whatever it can compute.
    let HandshakeMessage::Challenge { .. } = next_handshake(&mut forged).await.unwrap() else {
        panic!("no challenge")
    };
    send_handshake(
        &mut forged,
        &HandshakeMessage::Answer {
            proof: [0; 32],
            next_seq: 0,
            stream_start: 0,
        },
    )
    .await
    .unwrap();
    closed(&mut forged).await;
    refusals_reach(&b, 1).await;
    assert!(rx.try_recv().is_err(), "no event for a refused peer");
}

#[tokio::test]
async fn an_older_generation_of_a_linked_node_is_refused() {
    let (b, mut rx) = listener().await;
    let hello = StreamHello {
        next_seq: 0,
        stream_start: 0,
    };
    let mut current = dial(&b).await;
    handshake(&mut current, secret(), node("a", 5), hello).await;
    next_handshake(&mut current).await.unwrap();
    assert_eq!(next(&mut rx).await, Inbound::PeerUp { peer: node("a", 5) });

    let mut leftover = dial(&b).await;
    handshake(&mut leftover, secret(), node("a", 4), hello).await;
    closed(&mut leftover).await;
    refusals_reach(&b, 1).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn a_frame_with_an_unknown_version_closes_an_authenticated_link() {
    let (b, mut rx) = listener().await;
    let mut link = dial(&b).await;
    let hello = StreamHello {
        next_seq: 0,
        stream_start: 0,
    };
    handshake(&mut link, secret(), node("a", 1), hello).await;
    next_handshake(&mut link).await.unwrap();
    assert_eq!(next(&mut rx).await, Inbound::PeerUp { peer: node("a", 1) });
    link.send(Frame {
        kind: WireKind::Fanout,
        seq: 0,
        payload: Bytes::from_static(b"ok"),
    })
    .await
    .unwrap();
    // Version 2 of something this node does not speak.
    link.get_mut()
        .write_all(b"\x00\x00\x00\x0c\x02\x01\x00\x00\x00\x00\x00\x00\x00\x01zz")
        .await
        .unwrap();
    assert!(matches!(next(&mut rx).await, Inbound::Frame { seq: 0, .. }));
    assert_eq!(
        next(&mut rx).await,
        Inbound::PeerDown { peer: node("a", 1) }
    );
    closed(&mut link).await;
}

#[tokio::test]
async fn an_unauthenticated_client_cannot_make_the_listener_buffer_a_large_frame() {
    let (b, mut rx) = listener().await;
    let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
    // Claims a 2 GiB frame before any handshake.
    raw.write_all(b"\x7f\xff\xff\xff").await.unwrap();
    let mut link = Framed::new(raw, FrameCodec::new(1 << 20));
    closed(&mut link).await;
    refusals_reach(&b, 1).await;

    // A frame of another kind where the greeting should be.
    let mut link = dial(&b).await;
    link.send(Frame {
        kind: WireKind::Control,
        seq: 0,
        payload: Bytes::new(),
    })
    .await
    .unwrap();
    closed(&mut link).await;
    refusals_reach(&b, 2).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_cut_off() {
    let config = TransportConfig {
        handshake_timeout: Duration::from_millis(100),
        ..TransportConfig::default()
    };
    let (b, _rx) = TcpTransport::bind(node("b", 1), secret(), "127.0.0.1:0", config)
        .await
        .unwrap();
    let mut silent = dial(&b).await;
    closed(&mut silent).await;
    assert_eq!(
        b.stats().handshakes_refused,
        0,
        "a timeout is not a refusal"
    );
}

/// Keeps every counter and gauge registered while it is the thread's recorder.
#[derive(Default)]
struct Recorded {
    values:
        parking_lot::Mutex<std::collections::HashMap<String, Arc<std::sync::atomic::AtomicU64>>>,
}

impl Recorded {
    fn slot(&self, key: &metrics::Key) -> Arc<std::sync::atomic::AtomicU64> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.values.lock().entry(name).or_default().clone()
    }

    fn counter(&self, name: &str) -> u64 {
        self.values
            .lock()
            .get(name)
            .map_or(0, |value| value.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn gauge(&self, name: &str) -> f64 {
        f64::from_bits(self.counter(name))
    }
}

impl metrics::Recorder for Recorded {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.slot(key))
    }

    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.slot(key))
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[test]
fn what_links_do_is_counted_under_enrichment_cluster_metrics() {
    let recorded = Recorded::default();
    // One thread runs every task, so they all see this thread's recorder.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorded, || {
        runtime.block_on(async {
            let (a, _rx_a) = TcpTransport::bind(
                node("a", 1),
                secret(),
                "127.0.0.1:0",
                TransportConfig {
                    queue_bytes: 1000,
                    ..TransportConfig::default()
                },
            )
            .await
            .unwrap();
            let (b, mut rx_b) = listener().await;
            a.set_peers(&[Peer::new("b", b.local_addr().to_string())]);
            for i in 0..3u8 {
                a.send("b", FrameKind::Control, Bytes::from(vec![i; 10]))
                    .unwrap();
            }
            // Larger than the whole queue: refused, and a gap for b.
            a.send("b", FrameKind::Fanout, Bytes::from(vec![0; 1000]))
                .unwrap_err();
            a.send("b", FrameKind::Fanout, Bytes::from_static(b"after"))
                .unwrap();
            let mut frames = 0;
            while frames < 4 {
                if let Inbound::Frame { .. } = next(&mut rx_b).await {
                    frames += 1;
                }
            }
            // A node of another cluster dials b and is refused by its own side.
            let other = LinkSecret::new(b"another cluster, another secret.".to_vec()).unwrap();
            let (c, _rx_c) = TcpTransport::bind(
                node("c", 1),
                other,
                "127.0.0.1:0",
                TransportConfig::default(),
            )
            .await
            .unwrap();
            c.set_peers(&[Peer::new("b", b.local_addr().to_string())]);
            refusals_reach(&c, 1).await;
            // a's link to b, seen from both ends; c never got one.
            assert_eq!(
                recorded.gauge("enrichment_cluster_links{direction=outbound}"),
                1.0
            );
            assert_eq!(
                recorded.gauge("enrichment_cluster_links{direction=inbound}"),
                1.0
            );
        });
    });
    let c = |name: &str| recorded.counter(name);
    assert_eq!(
        c("enrichment_cluster_sent_frames_total{kind=control,peer=b}"),
        3
    );
    assert_eq!(
        c("enrichment_cluster_sent_frames_total{kind=fanout,peer=b}"),
        1
    );
    assert_eq!(
        c("enrichment_cluster_received_frames_total{kind=control,peer=a}"),
        3
    );
    assert_eq!(
        c("enrichment_cluster_received_frames_total{kind=fanout,peer=a}"),
        1
    );
    let sent = c("enrichment_cluster_sent_bytes_total{peer=b}");
    assert_eq!(sent, 3 * (14 + 10) + 14 + 5);
    assert_eq!(c("enrichment_cluster_received_bytes_total{peer=a}"), sent);
    assert_eq!(c("enrichment_cluster_send_overflows_total{peer=b}"), 1);
    assert_eq!(c("enrichment_cluster_gaps_total{peer=a}"), 1);
    assert_eq!(c("enrichment_cluster_missed_frames_total{peer=a}"), 1);
    assert!(c("enrichment_cluster_handshakes_refused_total{reason=bad_proof}") >= 1);
    assert_eq!(
        recorded.gauge("enrichment_cluster_queue_bytes{peer=b}"),
        0.0
    );
}
