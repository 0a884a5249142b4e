//! Fanout across nodes, both ends: one event to 10,000 sessions all on the owner's node, the
//! same 10,000 spread over three nodes (the owner's own third delivered in place, the rest as
//! one batch frame per other node over the in-memory transport), and a receiving node handing
//! a 3,333-session batch to its sessions. The sessions are the gateway's real `Session`s.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use enrichment_actors::events::{GuildEvent, MessageDeleteData};
use enrichment_actors::gateway::{Session, SessionInfo, SessionLimits, SessionRegistry};
use enrichment_actors::guild::fanout::{self, Follower};
use enrichment_actors::guild::{Recipient, RecipientDirectory};
use enrichment_cluster::routing::{ClusterDirectory, FanoutBatch};
use enrichment_cluster::transport::{ClusterTransport, MemoryNetwork, Peer};
use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::{Encoding, PresenceUpdate, intents};
use enrichment_protocol::node::{GenerationId, NodeIdentity};

/// The guild the benchmarked events are of.
const GUILD: Snowflake = Snowflake(7);

const SESSIONS: u64 = 10_000;

/// A session of node `node` (0, 1 or 2): keys carry the node in their top bits, as
/// `SessionRegistry::for_node` makes them. One in ten speaks MessagePack.
fn session(node: u64, i: u64) -> Arc<Session> {
    let limits = SessionLimits {
        replay_frames: 64,
        ..SessionLimits::default()
    };
    Arc::new(Session::new(
        SessionInfo {
            session_id: format!("{node}-{i:016x}"),
            user_id: Snowflake(175_928_847_299_117_063 + i),
            bot: false,
            intents: intents::GUILDS | intents::GUILD_MESSAGES,
            encoding: if i % 10 == 9 {
                Encoding::MsgPack
            } else {
                Encoding::Json
            },
            shard: None,
            large_threshold: 50,
        },
        (node << 48) | (i + 1),
        limits,
        PresenceUpdate::default(),
    ))
}

fn event() -> GuildEvent {
    GuildEvent::MessageDelete(MessageDeleteData {
        id: Snowflake(1_100_000_000_000_000_000),
        channel_id: Snowflake(1_000_000_000_000_000_001),
        guild_id: Some(Snowflake(1_000_000_000_000_000_000)),
    })
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let mut group = c.benchmark_group("cross_node_fanout");
    group.throughput(Throughput::Elements(SESSIONS));

    // All on the owner's node.
    let local: Vec<Follower> = (0..SESSIONS)
        .map(|i| Follower::new(session(0, i) as Arc<dyn Recipient>))
        .collect();
    let event = event();
    group.bench_function("one_node", |b| {
        b.iter(|| black_box(fanout::deliver(&local, GUILD, &event)))
    });

    // Spread over three nodes: the owner's third in place, two batch frames.
    let network = MemoryNetwork::new();
    let id = |n: &str| NodeIdentity::new(n, GenerationId(1));
    let (owner, _owner_rx) = network.transport(id("owner"));
    let owner: Arc<dyn ClusterTransport> = Arc::new(owner);
    owner.set_peers(&[Peer::new("b", "memory"), Peer::new("c", "memory")]);
    for name in ["b", "c"] {
        let (peer, mut rx) = network.transport(id(name));
        // The receivers keep reading so the links never push back.
        runtime.spawn(async move {
            let _peer = peer;
            while rx.recv().await.is_some() {}
        });
    }
    let directory = ClusterDirectory::new(Arc::new(SessionRegistry::new()), owner.clone());
    let spread: Vec<Follower> = (0..SESSIONS)
        .map(|i| {
            let node = i % 3;
            let s = session(node, i);
            if node == 0 {
                return Follower::new(s as Arc<dyn Recipient>);
            }
            let reference = s.reference().clone();
            directory.register_sessions(
                ["", "b", "c"][node as usize],
                std::slice::from_ref(&reference),
            );
            Follower::new(directory.recipient(&reference).expect("registered"))
        })
        .collect();
    group.bench_function("three_nodes_owner", |b| {
        b.iter(|| black_box(fanout::deliver(&spread, GUILD, &event)))
    });

    // A receiving node: one batch for its 3,333 sessions, handed over without re-encoding.
    let registry = SessionRegistry::new();
    let mine: Vec<(enrichment_actors::guild::SessionKey, u8)> = (0..SESSIONS)
        .filter(|i| i % 3 == 1)
        .map(|i| {
            let s = session(1, i);
            s.follow(GUILD);
            let entry = (s.reference().key, if i % 10 == 9 { 1 } else { 0 });
            registry.insert(s);
            entry
        })
        .collect();
    let variants = [
        Some(bytes::Bytes::from_static(
            br#"{"t":"MESSAGE_DELETE","op":0,"d":{"id":"1100000000000000000"},"s":"#,
        )),
        Some(bytes::Bytes::from_static(b"\x84\xa1t\xaeMESSAGE_DELETE")),
        None,
        None,
    ];
    let frame = FanoutBatch::encode(Some(GUILD), &variants, &mine);
    group.throughput(Throughput::Elements(mine.len() as u64));
    group.bench_function("three_nodes_receiver", |b| {
        b.iter(|| {
            // As the router hands a frame on: a guild's event reaches the sessions that follow it.
            let batch = FanoutBatch::decode(&frame).expect("frame");
            let guild = batch.guild_id.expect("a guild's event");
            let mut delivered = 0;
            let mut wake = Vec::with_capacity(batch.sessions.len());
            for (key, v) in batch.sessions {
                if let (Some(bytes), Some(s)) = (
                    batch.variants[usize::from(v)].clone(),
                    registry.by_key(key.0),
                ) && s.deliver_unwoken(Some(guild), bytes).is_some()
                {
                    delivered += 1;
                    wake.push(s);
                }
            }
            // Woken once each, after the frame: the router does it after a batch of frames.
            for s in wake {
                s.wake();
            }
            assert_eq!(delivered, mine.len());
            black_box(delivered)
        })
    });
    group.finish();
    drop(runtime);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
