//! Fanout across nodes: one event to sessions spread over three nodes costs one frame per
//! other node, carrying the event once and every recipient's key, and the receiving side reads
//! back exactly what was meant for each session.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use enrichment_actors::events::{GuildEvent, MessageDeleteData};
use enrichment_actors::guild::fanout::{self, Follower, variant_index};
use enrichment_actors::guild::{Recipient, SessionKey, SessionRef};
use enrichment_cluster::routing::{ClusterDirectory, FanoutBatch};
use enrichment_cluster::transport::{ClusterTransport, FrameKind, Inbound, MemoryNetwork, Peer};
use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::{Encoding, intents};
use enrichment_protocol::node::{GenerationId, NodeIdentity};

/// A session of the owner's own node that counts what it gets.
#[derive(Debug)]
struct Local {
    session: SessionRef,
    got: AtomicUsize,
}

impl Recipient for Local {
    fn session(&self) -> &SessionRef {
        &self.session
    }
    fn deliver(&self, _prefix: Bytes) -> bool {
        self.got.fetch_add(1, Ordering::Relaxed);
        true
    }
    fn is_gone(&self) -> bool {
        false
    }
    fn follow(&self, _guild_id: Snowflake) -> bool {
        true
    }
    fn unfollow(&self, _guild_id: Snowflake) {}
}

fn session(key: u64, encoding: Encoding) -> SessionRef {
    SessionRef {
        key: SessionKey(key),
        user_id: Snowflake(1_000 + key),
        bot: false,
        intents: intents::GUILD_MESSAGES,
        encoding,
        shard: None,
        large_threshold: 50,
    }
}

#[tokio::test]
async fn one_event_to_ten_thousand_sessions_on_three_nodes_is_two_frames() {
    let network = MemoryNetwork::new();
    let id = |n: &str| NodeIdentity::new(n, GenerationId(1));
    let (owner, _owner_rx) = network.transport(id("owner"));
    let owner: Arc<dyn ClusterTransport> = Arc::new(owner);
    owner.set_peers(&[Peer::new("b", "memory"), Peer::new("c", "memory")]);
    let (_b, mut b_rx) = network.transport(id("b"));
    let (_c, mut c_rx) = network.transport(id("c"));

    let directory = ClusterDirectory::new(
        Arc::new(enrichment_actors::gateway::SessionRegistry::new()),
        owner.clone(),
    );
    let mut followers = Vec::new();
    let mut locals = Vec::new();
    let mut expected: std::collections::HashMap<&str, Vec<(u64, u8)>> = Default::default();
    for n in 0..10_000u64 {
        // A third on each node; a few in MessagePack.
        let encoding = if n % 7 == 0 {
            Encoding::MsgPack
        } else {
            Encoding::Json
        };
        let node = ["owner", "b", "c"][(n % 3) as usize];
        let key = ((n % 3) << 48) | n;
        let s = session(key, encoding);
        let recipient: Arc<dyn Recipient> = if node == "owner" {
            let local = Arc::new(Local {
                session: s,
                got: AtomicUsize::new(0),
            });
            locals.push(local.clone());
            local
        } else {
            expected
                .entry(node)
                .or_default()
                .push((key, variant_index(false, encoding)));
            directory.register_sessions(node, std::slice::from_ref(&s));
            use enrichment_actors::guild::RecipientDirectory;
            directory.recipient(&s).unwrap()
        };
        followers.push(Follower::new(recipient));
    }
    let event = GuildEvent::MessageDelete(MessageDeleteData {
        id: Snowflake(9),
        channel_id: Snowflake(8),
        guild_id: Some(Snowflake(7)),
    });
    let before = owner.stats().frames_sent;
    let delivered = fanout::deliver(&followers, Snowflake(7), &event);
    assert_eq!(delivered, 10_000);
    assert!(locals.iter().all(|l| l.got.load(Ordering::Relaxed) == 1));

    for (node, rx) in [("b", &mut b_rx), ("c", &mut c_rx)] {
        let payload = loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap()
            {
                Inbound::Frame {
                    kind: FrameKind::Fanout,
                    payload,
                    ..
                } => break payload,
                _ => continue,
            }
        };
        let batch = FanoutBatch::decode(&payload).unwrap();
        assert_eq!(
            batch.guild_id,
            Some(Snowflake(7)),
            "the frame names its guild"
        );
        let got: Vec<(u64, u8)> = batch.sessions.iter().map(|(k, v)| (k.0, *v)).collect();
        assert_eq!(
            got, expected[node],
            "{node} gets every key with its variant"
        );
        let json = batch.variants[usize::from(variant_index(false, Encoding::Json))]
            .clone()
            .unwrap();
        assert!(
            std::str::from_utf8(&json)
                .unwrap()
                .contains("MESSAGE_DELETE"),
            "the JSON variant is the dispatch as encoded"
        );
        assert!(batch.variants[usize::from(variant_index(false, Encoding::MsgPack))].is_some());
        assert!(batch.variants[usize::from(variant_index(true, Encoding::Json))].is_none());
    }
    // Links write in the background: once both frames arrived, nothing else was sent.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        owner.stats().frames_sent - before,
        2,
        "one frame per other node"
    );
    assert!(b_rx.try_recv().is_err() && c_rx.try_recv().is_err());
}

#[test]
fn a_fanout_frame_reads_back_and_malformed_ones_are_refused() {
    let variants = [
        Some(Bytes::from_static(b"json")),
        Some(Bytes::from_static(b"msgpack")),
        Some(Bytes::from_static(b"unused")),
        None,
    ];
    let sessions = vec![(SessionKey(1), 0), (SessionKey(2), 1), (SessionKey(3), 0)];
    let frame = FanoutBatch::encode(Some(Snowflake(42)), &variants, &sessions);
    let back = FanoutBatch::decode(&frame).unwrap();
    assert_eq!(back.guild_id, Some(Snowflake(42)));
    assert_eq!(back.sessions, sessions);
    let alone = FanoutBatch::encode(None, &variants, &sessions[..1]);
    assert_eq!(FanoutBatch::decode(&alone).unwrap().guild_id, None);
    assert_eq!(
        back.variants,
        [variants[0].clone(), variants[1].clone(), None, None],
        "only the variants someone gets travel"
    );
    for cut in 0..frame.len() {
        assert!(FanoutBatch::decode(&frame.slice(..cut)).is_err(), "{cut}");
    }
    let mut extra = frame.to_vec();
    extra.push(0);
    assert!(FanoutBatch::decode(&Bytes::from(extra)).is_err());
    // A session pointing at a variant the frame does not carry.
    let bad = FanoutBatch::encode(None, &variants, &[(SessionKey(1), 0)]).to_vec();
    let mut bad = bad;
    let last = bad.len() - 1;
    bad[last] = 1;
    assert!(FanoutBatch::decode(&Bytes::from(bad)).is_err());
}
