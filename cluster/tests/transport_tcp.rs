//! The TCP transport between real sockets on 127.0.0.1: order and bytes, authentication, queue
//! overflow and backpressure, broken links, restarts, and the frame length limit.

// Test helpers panic on anything unexpected; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod transport_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use enrichment_cluster::transport::frame::{decode_control, encode_control};
use enrichment_cluster::transport::{
    ClusterTransport, ClusterTransportExt, FrameKind, Inbound, LinkSecret, Peer, SendError,
    TcpTransport, TransportConfig,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use transport_common::{StreamCheck, WAIT, fast, next, node, secret};

async fn bind(
    id: &str,
    generation: u64,
    config: TransportConfig,
) -> (TcpTransport, mpsc::Receiver<Inbound>) {
    TcpTransport::bind(node(id, generation), secret(), "127.0.0.1:0", config)
        .await
        .unwrap()
}

/// Binds `addr` again, waiting for the previous listener on it to be gone.
async fn rebind(
    id: &str,
    generation: u64,
    addr: SocketAddr,
    config: TransportConfig,
) -> (TcpTransport, mpsc::Receiver<Inbound>) {
    for _ in 0..200 {
        match TcpTransport::bind(node(id, generation), secret(), addr, config.clone()).await {
            Ok(bound) => return bound,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("{addr} stayed in use");
}

fn peer(id: &str, transport: &TcpTransport) -> Peer {
    Peer::new(id, transport.local_addr().to_string())
}

/// Receives until `done` says the view is complete, feeding every event to `check`.
async fn receive_until(
    rx: &mut mpsc::Receiver<Inbound>,
    check: &mut StreamCheck,
    mut done: impl FnMut(&StreamCheck) -> bool,
) {
    timeout(WAIT, async {
        while !done(check) {
            let event = rx.recv().await.expect("the inbound channel closed");
            check.observe(&event);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("incomplete view: {check:?}"));
}

fn covers(seq: u64) -> impl FnMut(&StreamCheck) -> bool {
    move |check| check.position().is_some_and(|position| position > seq)
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Numbered {
    index: u64,
    note: String,
}

/// The frame number `i` of the exchange test: even ones control, odd ones fanout of varied length.
fn frame_of(i: u64) -> (FrameKind, Bytes) {
    if i.is_multiple_of(2) {
        let message = Numbered {
            index: i,
            note: "x".repeat((i % 50) as usize),
        };
        (FrameKind::Control, encode_control(&message).unwrap())
    } else {
        let len = (i * 37 % 3000) as usize;
        let bytes: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
        (FrameKind::Fanout, Bytes::from(bytes))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mixed_frames_cross_both_ways_in_order_with_their_bytes_intact() {
    const FRAMES: u64 = 10_000;
    let (a, mut rx_a) = bind("a", 1, fast()).await;
    let (b, mut rx_b) = bind("b", 1, fast()).await;
    a.set_peers(&[peer("b", &b)]);
    b.set_peers(&[peer("a", &a)]);
    for i in 0..FRAMES {
        let (kind, payload) = frame_of(i);
        assert_eq!(a.send("b", kind, payload.clone()).unwrap(), i);
        assert_eq!(b.send("a", kind, payload).unwrap(), i);
    }
    for (rx, sender) in [(&mut rx_b, node("a", 1)), (&mut rx_a, node("b", 1))] {
        assert_eq!(
            next(rx).await,
            Inbound::PeerUp {
                peer: sender.clone()
            }
        );
        for i in 0..FRAMES {
            let Inbound::Frame {
                from,
                kind,
                seq,
                payload,
            } = next(rx).await
            else {
                panic!("frame {i} expected")
            };
            let (expected_kind, expected_payload) = frame_of(i);
            assert_eq!((&from, kind, seq), (&sender, expected_kind, i));
            assert_eq!(payload, expected_payload, "payload of frame {i}");
            if kind == FrameKind::Control {
                let message: Numbered = decode_control(&payload).unwrap();
                assert_eq!(message.index, i);
            }
        }
    }
    let stats = a.stats();
    assert_eq!((stats.frames_sent, stats.frames_received), (FRAMES, FRAMES));
    assert_eq!(
        (stats.gaps, stats.overflows, stats.handshakes_refused),
        (0, 0, 0)
    );
    assert_eq!(stats.bytes_sent, b.stats().bytes_received);
    assert!(a.link_up("b") && b.link_up("a"));
    assert!(!a.link_up("c"), "no link to a node never named");
}

#[tokio::test]
async fn a_peer_with_the_wrong_secret_gets_no_link_and_nothing_it_is_sent_is_delivered() {
    let (a, mut rx_a) = bind("a", 1, fast()).await;
    let other = LinkSecret::new(b"another cluster's secret........".to_vec()).unwrap();
    let (b, mut rx_b) = TcpTransport::bind(node("b", 1), other, "127.0.0.1:0", fast())
        .await
        .unwrap();
    a.set_peers(&[peer("b", &b)]);
    b.set_peers(&[peer("a", &a)]);
    for i in 0..10u64 {
        a.send_control("b", &i).unwrap();
        b.send_control("a", &i).unwrap();
    }
    // Each dialler refuses the listener's proof, again at every redial.
    timeout(WAIT, async {
        while a.stats().handshakes_refused < 3 || b.stats().handshakes_refused < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(rx_a.try_recv().is_err(), "a heard from b");
    assert!(rx_b.try_recv().is_err(), "b heard from a");
    assert!(!a.link_up("b") && !b.link_up("a"), "no link is up");
    assert_eq!(a.stats().frames_sent, 0);
    assert_eq!(b.stats().frames_received, 0);
}

#[tokio::test]
async fn a_full_queue_refuses_frames_at_the_sender_and_the_receiver_hears_of_the_gap() {
    // Room for 20 frames of 100 bytes (114 on the wire).
    let config = TransportConfig {
        queue_bytes: 20 * 114,
        ..fast()
    };
    let (a, _rx_a) = bind("a", 1, config).await;
    // Nobody listens at b's address yet.
    let b_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    a.set_peers(&[Peer::new("b", b_addr.to_string())]);
    let payload = Bytes::from(vec![1u8; 100]);
    let mut refused = Vec::new();
    for i in 0..100u64 {
        match a.send("b", FrameKind::Fanout, payload.clone()) {
            Ok(seq) => assert_eq!(seq, i),
            Err(SendError::Overflow { seq, cap, .. }) => {
                assert_eq!((seq, cap), (i, 20 * 114));
                refused.push(seq);
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(refused, (20..100).collect::<Vec<_>>());
    assert_eq!(a.stats().overflows, 80);

    let (b, mut rx_b) = rebind("b", 1, b_addr, fast()).await;
    assert_eq!(
        next(&mut rx_b).await,
        Inbound::PeerUp { peer: node("a", 1) }
    );
    for i in 0..20 {
        assert!(matches!(next(&mut rx_b).await, Inbound::Frame { seq, .. } if seq == i));
    }
    // Announced as soon as the queue drained, before any further frame.
    assert_eq!(
        next(&mut rx_b).await,
        Inbound::Gap {
            from: node("a", 1),
            expected: 20,
            got: 100
        }
    );
    assert_eq!(a.send("b", FrameKind::Fanout, payload).unwrap(), 100);
    assert!(matches!(
        next(&mut rx_b).await,
        Inbound::Frame { seq: 100, .. }
    ));
    assert_eq!((b.stats().gaps, b.stats().frames_missed), (1, 80));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_makes_the_senders_queue_overflow_instead_of_memory_grow() {
    const CAPACITY: usize = 16;
    let (a, _rx_a) = bind(
        "a",
        1,
        TransportConfig {
            queue_bytes: 256 * 1024,
            ..fast()
        },
    )
    .await;
    let (b, mut rx_b) = bind(
        "b",
        1,
        TransportConfig {
            inbound_capacity: CAPACITY,
            ..fast()
        },
    )
    .await;
    a.set_peers(&[peer("b", &b)]);
    let payload = Bytes::from(vec![5u8; 8 * 1024]);
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    // Sent in small rounds with pauses, so that only a stalled link can fill the queue.
    'rounds: for _ in 0..5_000 {
        for _ in 0..16 {
            match a.send("b", FrameKind::Fanout, payload.clone()) {
                Ok(seq) => accepted.push(seq),
                Err(SendError::Overflow { seq, .. }) => refused.push(seq),
                Err(other) => panic!("{other}"),
            }
        }
        if refused.len() >= 32 {
            break 'rounds;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(refused.len() >= 32, "the queue never filled");
    // The receiving side holds no more than its channel's capacity.
    assert_eq!(rx_b.len(), CAPACITY);

    let last = a
        .send("b", FrameKind::Fanout, Bytes::from_static(b"end"))
        .unwrap();
    accepted.push(last);
    let mut check = StreamCheck::new("a", Some(0));
    receive_until(&mut rx_b, &mut check, covers(last)).await;
    // Nothing broke, so exactly what was refused is missing and everything else arrived.
    assert_eq!(check.delivered, accepted);
    for seq in &refused {
        assert!(check.accounted_for(*seq));
    }
    assert_eq!(check.missed(), refused.len() as u64);
}

/// A TCP relay between a dialler and a listener that can swallow traffic and cut connections.
struct Relay {
    addr: SocketAddr,
    swallow: Arc<AtomicBool>,
    cut: Arc<parking_lot::Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            swallow: Arc::default(),
            cut: Arc::default(),
            stop: CancellationToken::new(),
        };
        let (swallow, cut, stop) = (relay.swallow.clone(), relay.cut.clone(), relay.stop.clone());
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted.unwrap(),
                };
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let cut = cut.lock().clone();
                tokio::spawn(pump(client, server, swallow.clone(), cut));
            }
        });
        relay
    }

    /// Drops every byte from dialler to listener from now on (or stops doing so).
    fn swallow(&self, on: bool) {
        self.swallow.store(on, Ordering::SeqCst);
    }

    /// Closes every relayed connection; new ones are relayed as before.
    fn cut(&self) {
        let old = std::mem::take(&mut *self.cut.lock());
        old.cancel();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

async fn pump(
    client: TcpStream,
    server: TcpStream,
    swallow: Arc<AtomicBool>,
    cut: CancellationToken,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            if !swallow.load(Ordering::SeqCst) {
                server_write.write_all(&buf[..n]).await?;
            }
        }
    };
    let down = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        _ = cut.cancelled() => {}
        _ = up => {}
        _ = down => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_lost_with_a_broken_connection_are_reported_as_a_gap_after_the_redial() {
    let (b, mut rx_b) = bind("b", 1, fast()).await;
    let relay = Relay::start(b.local_addr()).await;
    let (a, _rx_a) = bind("a", 1, fast()).await;
    let a = Arc::new(a);
    a.set_peers(&[Peer::new("b", relay.addr.to_string())]);

    let mut check = StreamCheck::new("a", Some(0));
    let send_range = |range: std::ops::Range<u64>| {
        for i in range {
            assert_eq!(a.send_control("b", &i).unwrap(), i);
        }
    };
    send_range(0..1000);
    receive_until(&mut rx_b, &mut check, covers(999)).await;

    // The path starts losing bytes; the sender cannot tell and writes on.
    relay.swallow(true);
    send_range(1000..2000);
    tokio::time::sleep(Duration::from_millis(50)).await;
    relay.cut();
    relay.swallow(false);
    // Once the sender has dialled again, what it sends arrives.
    receive_until(&mut rx_b, &mut check, |check| check.ups >= 2).await;
    send_range(2000..3000);
    receive_until(&mut rx_b, &mut check, covers(2999)).await;

    assert!(
        !check.gaps.is_empty(),
        "frames were lost yet no gap was reported"
    );
    assert!((0..3000).all(|seq| check.accounted_for(seq)));
    assert!((2000..3000).all(|seq| check.delivered.contains(&seq)));
    assert_eq!(check.downs, 1, "{check:?}");
    assert!(a.stats().reconnects >= 1);
    assert_eq!(b.stats().frames_missed, check.missed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_receiver_gets_a_fresh_stream_and_a_restarted_sender_is_reported_as_such() {
    let (a, _rx_a) = bind("a", 1, fast()).await;
    let (b, mut rx_b) = bind("b", 1, fast()).await;
    let b_addr = b.local_addr();
    a.set_peers(&[peer("b", &b)]);
    for i in 0..100u64 {
        a.send_control("b", &i).unwrap();
    }
    let mut check = StreamCheck::new("a", Some(0));
    receive_until(&mut rx_b, &mut check, covers(99)).await;

    // b restarts on the same address while a keeps sending.
    drop((b, rx_b));
    for i in 100..200u64 {
        a.send_control("b", &i).unwrap();
    }
    let (b, mut rx_b) = rebind("b", 2, b_addr, fast()).await;
    assert_eq!(
        next(&mut rx_b).await,
        Inbound::PeerUp { peer: node("a", 1) }
    );
    for i in 200..300u64 {
        a.send_control("b", &i).unwrap();
    }
    // The new process's part of the stream starts after what was handed to the old one's
    // connection (lost with it, and none of the new process's business): no gap, and all that
    // was sent once it was linked.
    let mut fresh = StreamCheck::new("a", None);
    receive_until(&mut rx_b, &mut fresh, covers(299)).await;
    assert!(fresh.gaps.is_empty(), "{fresh:?}");
    assert!((200..300).all(|seq| fresh.delivered.contains(&seq)));

    // a restarts: b is told before anything from the new process arrives.
    drop(a);
    let (a, _rx_a) = bind("a", 2, fast()).await;
    a.set_peers(&[Peer::new("b", b_addr.to_string())]);
    a.send_control("b", "hello again").unwrap();
    assert_eq!(
        next(&mut rx_b).await,
        Inbound::PeerDown { peer: node("a", 1) }
    );
    assert_eq!(
        next(&mut rx_b).await,
        Inbound::PeerRestarted {
            peer: node("a", 2),
            previous: node("a", 1).generation
        }
    );
    assert_eq!(
        next(&mut rx_b).await,
        Inbound::PeerUp { peer: node("a", 2) }
    );
    assert!(matches!(
        next(&mut rx_b).await,
        Inbound::Frame { seq: 0, .. }
    ));
    assert_eq!(b.stats().peer_restarts, 1);
}

#[tokio::test]
async fn a_frame_over_the_receivers_limit_closes_the_link_without_a_panic_and_becomes_a_gap() {
    let (a, _rx_a) = bind("a", 1, fast()).await;
    let (b, mut rx_b) = bind(
        "b",
        1,
        TransportConfig {
            max_frame_length: 1024,
            ..fast()
        },
    )
    .await;
    a.set_peers(&[peer("b", &b)]);
    a.send("b", FrameKind::Fanout, Bytes::from_static(b"small"))
        .unwrap();
    let mut check = StreamCheck::new("a", Some(0));
    receive_until(&mut rx_b, &mut check, covers(0)).await;

    // a allows 16 MiB; b allows 1 KiB.
    a.send("b", FrameKind::Fanout, Bytes::from(vec![0u8; 4096]))
        .unwrap();
    a.send("b", FrameKind::Fanout, Bytes::from_static(b"after"))
        .unwrap();
    receive_until(&mut rx_b, &mut check, |check| check.ups >= 2).await;
    let last = a
        .send("b", FrameKind::Fanout, Bytes::from_static(b"later"))
        .unwrap();
    receive_until(&mut rx_b, &mut check, covers(last)).await;

    assert!(!check.delivered.contains(&1));
    assert!(check.accounted_for(1));
    assert!(check.delivered.contains(&last));
    assert_eq!(check.downs, 1);
    // A sender refuses what its own limit would refuse: nothing queued, no number spent.
    b.set_peers(&[peer("a", &a)]);
    assert!(matches!(
        b.send("a", FrameKind::Fanout, Bytes::from(vec![0u8; 2048])),
        Err(SendError::TooLarge {
            len: 2058,
            max: 1024
        })
    ));
    assert_eq!(b.send_control("a", &0).unwrap(), 0);
}

#[tokio::test]
async fn a_removed_peer_is_no_longer_dialled_and_a_shut_down_transport_refuses_to_send() {
    let (a, _rx_a) = bind("a", 1, fast()).await;
    let (b, mut rx_b) = bind("b", 1, fast()).await;
    a.set_peers(&[peer("b", &b), Peer::new("a", "ignored:1")]);
    a.send_control("b", &1).unwrap();
    assert_eq!(
        next(&mut rx_b).await,
        Inbound::PeerUp { peer: node("a", 1) }
    );
    assert!(matches!(
        next(&mut rx_b).await,
        Inbound::Frame { seq: 0, .. }
    ));
    assert!(matches!(
        a.send_control("a", &1),
        Err(SendError::UnknownPeer { .. })
    ));

    a.remove_peer("b");
    assert_eq!(
        next(&mut rx_b).await,
        Inbound::PeerDown { peer: node("a", 1) }
    );
    assert!(matches!(
        a.send_control("b", &2),
        Err(SendError::UnknownPeer { .. })
    ));

    // Added back, it continues its numbering.
    a.set_peers(&[peer("b", &b)]);
    assert_eq!(a.send_control("b", &3).unwrap(), 1);
    assert_eq!(
        next(&mut rx_b).await,
        Inbound::PeerUp { peer: node("a", 1) }
    );
    assert!(matches!(
        next(&mut rx_b).await,
        Inbound::Frame { seq: 1, .. }
    ));

    a.shutdown();
    assert!(matches!(a.send_control("b", &4), Err(SendError::Closed)));
    assert_eq!(
        next(&mut rx_b).await,
        Inbound::PeerDown { peer: node("a", 1) }
    );
}
