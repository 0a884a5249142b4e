//! The in-memory network: the same promises as TCP, and the faults it injects. Time is tokio's
//! paused clock, so delays cost nothing.

// Test helpers panic on anything unexpected; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod transport_common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use enrichment_cluster::transport::{
    ClusterTransport, ClusterTransportExt, FrameKind, Inbound, MemoryNetwork, MemoryTransport,
    Peer, SendError, TransportConfig,
};
use parking_lot::Mutex;
use proptest::prelude::*;
use tokio::sync::mpsc;
use transport_common::{StreamCheck, WAIT, next, node};

fn join(
    network: &MemoryNetwork,
    id: &str,
    peers: &[&str],
) -> (MemoryTransport, mpsc::Receiver<Inbound>) {
    let (transport, rx) = network.transport(node(id, 1));
    let peers: Vec<Peer> = peers
        .iter()
        .map(|peer| Peer::new(*peer, "memory"))
        .collect();
    transport.set_peers(&peers);
    (transport, rx)
}

/// Everything the channel holds once the network has had time to settle.
async fn settled(rx: &mut mpsc::Receiver<Inbound>) -> Vec<Inbound> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    events
}

fn seqs(events: &[Inbound]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|event| match event {
            Inbound::Frame { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

fn gap(from: &str, expected: u64, got: u64) -> Inbound {
    Inbound::Gap {
        from: node(from, 1),
        expected,
        got,
    }
}

#[tokio::test(start_paused = true)]
async fn memory_transports_deliver_in_order_with_the_bytes_sent() {
    let network = MemoryNetwork::new();
    let (a, mut rx_a) = join(&network, "a", &["b"]);
    let (b, mut rx_b) = join(&network, "b", &["a"]);
    for i in 0..1000u64 {
        let payload = Bytes::from(i.to_be_bytes().to_vec());
        assert_eq!(a.send("b", FrameKind::Fanout, payload.clone()).unwrap(), i);
        assert_eq!(b.send_control("a", &i).unwrap(), i);
    }
    assert_eq!(
        next(&mut rx_b).await,
        Inbound::PeerUp { peer: node("a", 1) }
    );
    assert_eq!(
        next(&mut rx_a).await,
        Inbound::PeerUp { peer: node("b", 1) }
    );
    for i in 0..1000u64 {
        assert_eq!(
            next(&mut rx_b).await,
            Inbound::Frame {
                from: node("a", 1),
                kind: FrameKind::Fanout,
                seq: i,
                payload: Bytes::from(i.to_be_bytes().to_vec())
            }
        );
        let Inbound::Frame {
            kind, seq, payload, ..
        } = next(&mut rx_a).await
        else {
            panic!("frame expected")
        };
        assert_eq!((kind, seq), (FrameKind::Control, i));
        let decoded: u64 = enrichment_cluster::transport::frame::decode_control(&payload).unwrap();
        assert_eq!(decoded, i);
    }
    assert_eq!(a.stats().frames_sent, 1000);
    assert_eq!(b.stats().frames_received, 1000);
}

#[tokio::test(start_paused = true)]
async fn a_partition_stops_delivery_both_ways_and_healing_restores_it_with_the_loss_reported() {
    let network = MemoryNetwork::new();
    let (a, mut rx_a) = join(&network, "a", &["b"]);
    let (b, mut rx_b) = join(&network, "b", &["a"]);
    for i in 0..10u64 {
        a.send_control("b", &i).unwrap();
        b.send_control("a", &i).unwrap();
    }
    assert_eq!(seqs(&settled(&mut rx_b).await), (0..10).collect::<Vec<_>>());
    assert_eq!(seqs(&settled(&mut rx_a).await), (0..10).collect::<Vec<_>>());
    assert!(a.link_up("b") && b.link_up("a"));

    // Frames 10..20 are on their way when the network splits: they are lost.
    network.delay("a", "b", Duration::from_millis(50));
    for i in 10..20u64 {
        a.send_control("b", &i).unwrap();
    }
    network.partition("a", "b");
    // Sent while split: they wait.
    for i in 20..30u64 {
        a.send_control("b", &i).unwrap();
    }
    for i in 10..20u64 {
        b.send_control("a", &i).unwrap();
    }
    assert_eq!(
        settled(&mut rx_b).await,
        [Inbound::PeerDown { peer: node("a", 1) }]
    );
    assert_eq!(
        settled(&mut rx_a).await,
        [Inbound::PeerDown { peer: node("b", 1) }]
    );
    assert!(!a.link_up("b") && !b.link_up("a"), "split apart");

    network.heal();
    let at_b = settled(&mut rx_b).await;
    assert_eq!(
        at_b[..2],
        [Inbound::PeerUp { peer: node("a", 1) }, gap("a", 10, 20)]
    );
    assert_eq!(seqs(&at_b), (20..30).collect::<Vec<_>>());
    // Nothing was on its way from b: no gap, everything arrives.
    let at_a = settled(&mut rx_a).await;
    assert_eq!(at_a[0], Inbound::PeerUp { peer: node("b", 1) });
    assert_eq!(seqs(&at_a), (10..20).collect::<Vec<_>>());
    assert_eq!(at_a.len(), 11);
    assert!(a.link_up("b") && b.link_up("a"), "healed");
}

#[tokio::test(start_paused = true)]
async fn an_isolated_node_reaches_nobody_while_the_others_still_talk() {
    let network = MemoryNetwork::new();
    let (a, mut rx_a) = join(&network, "a", &["b", "c"]);
    let (b, mut rx_b) = join(&network, "b", &["a", "c"]);
    let (c, mut rx_c) = join(&network, "c", &["a", "b"]);
    network.isolate("a");
    a.send_control("b", "from a").unwrap();
    b.send_control("a", "from b").unwrap();
    b.send_control("c", "b to c").unwrap();
    c.send_control("b", "c to b").unwrap();
    assert!(seqs(&settled(&mut rx_a).await).is_empty());
    let at_b = settled(&mut rx_b).await;
    assert_eq!(at_b.len(), 2, "{at_b:?}");
    assert!(matches!(&at_b[1], Inbound::Frame { from, .. } if from.node_id == "c"));
    assert_eq!(seqs(&settled(&mut rx_c).await), [0]);

    network.heal();
    assert_eq!(seqs(&settled(&mut rx_a).await), [0]);
    let at_b = settled(&mut rx_b).await;
    assert!(matches!(&at_b[1], Inbound::Frame { from, seq: 0, .. } if from.node_id == "a"));
}

#[tokio::test(start_paused = true)]
async fn a_delay_holds_frames_back_but_keeps_their_order() {
    let network = MemoryNetwork::new();
    let (a, _rx_a) = join(&network, "a", &["b"]);
    let (_b, mut rx_b) = join(&network, "b", &["a"]);
    // Links open as soon as both ends are on the network.
    assert_eq!(
        settled(&mut rx_b).await,
        [Inbound::PeerUp { peer: node("a", 1) }]
    );
    network.delay("a", "b", Duration::from_millis(100));
    let start = tokio::time::Instant::now();
    for i in 0..50u64 {
        a.send_control("b", &i).unwrap();
    }
    // Shortened while frame 0 is on its way: later frames may not overtake it.
    tokio::time::sleep(Duration::from_millis(10)).await;
    network.delay("a", "b", Duration::from_millis(1));
    for i in 50..100u64 {
        a.send_control("b", &i).unwrap();
    }
    assert!(matches!(
        next(&mut rx_b).await,
        Inbound::Frame { seq: 0, .. }
    ));
    assert!(start.elapsed() >= Duration::from_millis(100));
    let rest = settled(&mut rx_b).await;
    assert_eq!(seqs(&rest), (1..100).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn dropped_frames_surface_as_gaps_in_the_middle_and_at_the_end_of_a_stream() {
    let network = MemoryNetwork::new();
    let (a, _rx_a) = join(&network, "a", &["b"]);
    let (b, mut rx_b) = join(&network, "b", &["a"]);
    network.drop_next("a", "b", 3);
    for i in 0..10u64 {
        a.send_control("b", &i).unwrap();
    }
    let events = settled(&mut rx_b).await;
    assert_eq!(
        events[..2],
        [Inbound::PeerUp { peer: node("a", 1) }, gap("a", 0, 3)]
    );
    assert_eq!(seqs(&events), (3..10).collect::<Vec<_>>());

    // The last frames lost: reported once the queue is empty, without waiting for more.
    network.drop_next("a", "b", 2);
    a.send_control("b", &10).unwrap();
    a.send_control("b", &11).unwrap();
    assert_eq!(settled(&mut rx_b).await, [gap("a", 10, 12)]);
    assert_eq!((b.stats().gaps, b.stats().frames_missed), (2, 5));
}

/// The seqs `b` receives from `a` over a lossy direction seeded with `seed`.
async fn lossy_run(seed: u64) -> Vec<u64> {
    let network = MemoryNetwork::with_config(TransportConfig::default(), seed);
    let (a, _rx_a) = join(&network, "a", &["b"]);
    let (_b, mut rx_b) = join(&network, "b", &["a"]);
    network.drop_probability("a", "b", 0.3);
    for i in 0..200u64 {
        a.send_control("b", &i).unwrap();
    }
    let events = settled(&mut rx_b).await;
    let mut check = StreamCheck::new("a", Some(0));
    events.iter().for_each(|event| check.observe(event));
    assert!((0..200).all(|seq| check.accounted_for(seq)));
    check.delivered
}

#[tokio::test(start_paused = true)]
async fn random_drops_follow_the_seed_and_are_all_reported() {
    let first = lossy_run(7).await;
    assert!(
        first.len() > 100 && first.len() < 180,
        "{} of 200",
        first.len()
    );
    assert_eq!(lossy_run(7).await, first);
    assert_ne!(lossy_run(8).await, first);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_the_sender_and_the_receiver_hears_of_it_when_it_joins() {
    let config = TransportConfig {
        queue_bytes: 5 * 114,
        ..TransportConfig::default()
    };
    let network = MemoryNetwork::with_config(config, 0);
    let (a, _rx_a) = join(&network, "a", &["b"]);
    let payload = Bytes::from(vec![0u8; 100]);
    let results: Vec<_> = (0..8)
        .map(|_| a.send("b", FrameKind::Fanout, payload.clone()))
        .collect();
    assert!(results[..5].iter().all(Result::is_ok));
    assert!(
        results[5..]
            .iter()
            .all(|result| matches!(result, Err(SendError::Overflow { .. })))
    );
    let (_b, mut rx_b) = join(&network, "b", &["a"]);
    let events = settled(&mut rx_b).await;
    assert_eq!(seqs(&events), [0, 1, 2, 3, 4]);
    assert_eq!(events.last(), Some(&gap("a", 5, 8)));
}

#[tokio::test(start_paused = true)]
async fn a_node_started_again_under_its_id_is_a_restart_and_its_old_self_is_closed() {
    let network = MemoryNetwork::new();
    let (a1, _rx_a1) = join(&network, "a", &["b"]);
    let (_b, mut rx_b) = join(&network, "b", &["a"]);
    a1.send_control("b", &0).unwrap();
    a1.send_control("b", &1).unwrap();
    assert_eq!(seqs(&settled(&mut rx_b).await), [0, 1]);

    let (a2, _rx_a2) = network.transport(node("a", 2));
    a2.set_peers(&[Peer::new("b", "memory")]);
    assert!(matches!(a1.send_control("b", &2), Err(SendError::Closed)));
    a2.send_control("b", &0).unwrap();
    assert_eq!(
        settled(&mut rx_b).await,
        [
            Inbound::PeerDown { peer: node("a", 1) },
            Inbound::PeerRestarted {
                peer: node("a", 2),
                previous: node("a", 1).generation
            },
            Inbound::PeerUp { peer: node("a", 2) },
            Inbound::Frame {
                from: node("a", 2),
                kind: FrameKind::Control,
                seq: 0,
                payload: enrichment_cluster::transport::frame::encode_control(&0).unwrap()
            },
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The model: whatever the schedule, each receiver sees its sender's frames in order, and every
// number it does not see is covered by a gap.

#[derive(Clone, Debug)]
enum Step {
    Send { from_a: bool, len: usize },
    DropNext { from_a: bool, n: u64 },
    DropSome { from_a: bool, percent: u8 },
    Delay { from_a: bool, ms: u64 },
    Partition,
    Heal,
    Wait { ms: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (any::<bool>(), 0usize..400).prop_map(|(from_a, len)| Step::Send { from_a, len }),
        1 => (any::<bool>(), 1u64..4).prop_map(|(from_a, n)| Step::DropNext { from_a, n }),
        1 => (any::<bool>(), 0u8..60).prop_map(|(from_a, percent)| Step::DropSome { from_a, percent }),
        1 => (any::<bool>(), 0u64..30).prop_map(|(from_a, ms)| Step::Delay { from_a, ms }),
        1 => Just(Step::Partition),
        1 => Just(Step::Heal),
        2 => (0u64..40).prop_map(|ms| Step::Wait { ms }),
    ]
}

/// Collects a receiver's events as they come.
fn collect(mut rx: mpsc::Receiver<Inbound>) -> Arc<Mutex<Vec<Inbound>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            sink.lock().push(event);
        }
    });
    events
}

async fn run_schedule(steps: Vec<Step>, seed: u64) {
    // A small queue and channel, so overflows happen too.
    let config = TransportConfig {
        queue_bytes: 2048,
        inbound_capacity: 4,
        ..TransportConfig::default()
    };
    let network = MemoryNetwork::with_config(config, seed);
    let (a, rx_a) = join(&network, "a", &["b"]);
    let (b, rx_b) = join(&network, "b", &["a"]);
    let (at_a, at_b) = (collect(rx_a), collect(rx_b));
    let direction = |from_a: bool| if from_a { ("a", "b") } else { ("b", "a") };
    for step in steps {
        match step {
            Step::Send { from_a, len } => {
                let (sender, to) = if from_a { (&a, "b") } else { (&b, "a") };
                match sender.send(to, FrameKind::Fanout, Bytes::from(vec![1u8; len])) {
                    Ok(_) | Err(SendError::Overflow { .. }) => {}
                    Err(other) => panic!("{other}"),
                }
            }
            Step::DropNext { from_a, n } => {
                let (from, to) = direction(from_a);
                network.drop_next(from, to, n);
            }
            Step::DropSome { from_a, percent } => {
                let (from, to) = direction(from_a);
                network.drop_probability(from, to, f64::from(percent) / 100.0);
            }
            Step::Delay { from_a, ms } => {
                let (from, to) = direction(from_a);
                network.delay(from, to, Duration::from_millis(ms));
            }
            Step::Partition => network.partition("a", "b"),
            Step::Heal => network.heal(),
            Step::Wait { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
    }
    // Calm the network, let the queues drain, and send one last frame each way.
    network.heal();
    network.clear_faults();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last_ab = a
        .send("b", FrameKind::Fanout, Bytes::from_static(b"last"))
        .unwrap();
    let last_ba = b
        .send("a", FrameKind::Fanout, Bytes::from_static(b"last"))
        .unwrap();
    for (events, sender, last) in [(&at_b, "a", last_ab), (&at_a, "b", last_ba)] {
        tokio::time::timeout(WAIT, async {
            loop {
                let arrived = events.lock().iter().any(
                    |event| matches!(event, Inbound::Frame { from, seq, .. } if from.node_id == sender && *seq == last),
                );
                if arrived {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the last frame from {sender} never arrived"));
        let mut check = StreamCheck::new(sender, Some(0));
        for event in events.lock().iter() {
            check.observe(event);
        }
        assert!((0..=last).all(|seq| check.accounted_for(seq)), "{check:?}");
        assert_eq!(
            check.ups,
            check.downs + 1,
            "every link that went down came back: {check:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn under_any_schedule_a_receiver_sees_frames_in_order_and_every_missing_one_reported(
        steps in prop::collection::vec(step(), 1..80),
        seed in any::<u64>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(run_schedule(steps, seed));
    }
}
