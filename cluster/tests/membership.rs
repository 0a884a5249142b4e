//! Nodes gossiping over real UDP on loopback: joining, authentication, failure detection,
//! state changes and leaving. Every wait is bounded and ends as soon as its condition holds.

use std::net::SocketAddr;
use std::time::Duration;

use enrichment_cluster::{
    ClusterConfig, ClusterError, ClusterSecret, ClusterView, ConfigError, LocalNode, MemberLoad,
    MemberState, Membership,
};
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use tokio::time::{Instant, timeout};

const SECRET: &str = "a cluster secret of some length";

/// Fast gossip so tests converge in a second or two; `dead_after` spans ten rounds.
fn config(secret: &str, seeds: &[SocketAddr], dead_after: Duration) -> ClusterConfig {
    ClusterConfig {
        enabled: true,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        advertise: None,
        seeds: seeds.iter().map(ToString::to_string).collect(),
        secret: Some(ClusterSecret::new(secret)),
        cluster_id: "enrichment-test".into(),
        gossip_interval: Duration::from_millis(200),
        dead_after,
        replay_window: Duration::from_secs(60),
        ..ClusterConfig::default()
    }
}

fn local(node_id: &str, generation: u64) -> LocalNode {
    LocalNode::joining(
        NodeIdentity::new(node_id, GenerationId(generation)),
        format!("ws://{node_id}.test:8081"),
        format!("{node_id}.test:8080"),
    )
}

async fn join(node_id: &str, generation: u64, config: &ClusterConfig) -> Membership {
    Membership::join(config, local(node_id, generation))
        .await
        .expect("joins")
}

/// Three ready nodes, `b` and `c` introduced through `a` alone.
async fn three_ready(dead_after: Duration) -> [Membership; 3] {
    let a = join("a", 101, &config(SECRET, &[], dead_after)).await;
    let seeds = [a.advertise_addr()];
    let b = join("b", 102, &config(SECRET, &seeds, dead_after)).await;
    let c = join("c", 103, &config(SECRET, &seeds, dead_after)).await;
    for node in [&a, &b, &c] {
        node.set_state(MemberState::Ready).await;
    }
    for node in [&a, &b, &c] {
        wait_for(node, "all three ready", |v| v.ready.len() == 3).await;
    }
    [a, b, c]
}

/// The first view of `node` that satisfies `condition`, or a failure after ten seconds.
async fn wait_for(
    node: &Membership,
    what: &str,
    condition: impl FnMut(&ClusterView) -> bool,
) -> ClusterView {
    wait_within(node, what, Duration::from_secs(10), condition).await
}

async fn wait_within(
    node: &Membership,
    what: &str,
    limit: Duration,
    condition: impl FnMut(&ClusterView) -> bool,
) -> ClusterView {
    let mut views = node.views();
    match timeout(limit, views.wait_for(condition)).await {
        Ok(Ok(view)) => view.clone(),
        Ok(Err(_)) => panic!("{}: membership stopped before {what}", node.identity()),
        Err(_) => panic!(
            "{}: not {what} within {limit:?}; last view {:#?}",
            node.identity(),
            node.view()
        ),
    }
}

fn ids(members: &[enrichment_cluster::Member]) -> Vec<&str> {
    members.iter().map(|m| m.node_id()).collect()
}

#[tokio::test]
async fn three_nodes_joining_through_one_seed_each_see_all_three_ready_with_what_they_published() {
    let [a, b, c] = three_ready(Duration::from_secs(5)).await;
    for node in [&a, &b, &c] {
        let view = node.view();
        assert_eq!(ids(&view.ready), ["a", "b", "c"], "sorted by node id");
        assert_eq!(view.members, view.ready);
        assert!(view.epoch >= 1);
        for (member, peer, generation) in [(0, &a, 101), (1, &b, 102), (2, &c, 103)] {
            let m = &view.ready[member];
            assert_eq!(m.identity.generation, GenerationId(generation));
            assert_eq!(m.gateway_url, format!("ws://{}.test:8081", m.node_id()));
            assert_eq!(m.rest_addr, format!("{}.test:8080", m.node_id()));
            assert_eq!(m.cluster_addr, peer.advertise_addr());
            assert_eq!(m.state, MemberState::Ready);
        }
    }

    // Load travels too, and does not count as a change of placement.
    let epoch = b.view().epoch;
    let load = MemberLoad {
        guild_actors: 7,
        connections: 1_234,
    };
    a.set_load(load).await;
    let view = wait_for(&b, "a's new load", |v| {
        v.member("a").is_some_and(|m| m.load == load)
    })
    .await;
    assert_eq!(view.epoch, epoch);
    assert_eq!(a.rejected_datagrams(), Default::default());
}

#[tokio::test]
async fn a_node_with_the_wrong_secret_neither_sees_nor_is_seen_and_its_datagrams_are_counted() {
    let dead_after = Duration::from_secs(5);
    let a = join("a", 101, &config(SECRET, &[], dead_after)).await;
    let seeds = [a.advertise_addr()];
    let b = join("b", 102, &config(SECRET, &seeds, dead_after)).await;
    let intruder = join(
        "intruder",
        103,
        &config("another secret, just as long", &seeds, dead_after),
    )
    .await;
    for node in [&a, &b, &intruder] {
        node.set_state(MemberState::Ready).await;
    }
    wait_for(&a, "b ready", |v| v.ready.len() == 2).await;
    wait_for(&b, "a ready", |v| v.ready.len() == 2).await;

    // The intruder knocks on its seed every round; each of its datagrams is dropped there.
    let start = Instant::now();
    while a.rejected_datagrams().bad_tag < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the seed counted {:?}",
            a.rejected_datagrams()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rejected = a.rejected_datagrams();
    assert_eq!((rejected.stale, rejected.malformed), (0, 0));

    // Five of its rounds later, nobody has heard of anybody across the secret.
    assert_eq!(ids(&a.view().members), ["a", "b"]);
    assert_eq!(ids(&b.view().members), ["a", "b"]);
    assert_eq!(ids(&intruder.view().members), ["intruder"]);
    assert_eq!(
        intruder.rejected_datagrams(),
        Default::default(),
        "nobody answers it, so it has nothing to reject"
    );
}

#[tokio::test]
async fn a_node_dropped_without_leaving_is_reported_dead_within_dead_after() {
    let dead_after = Duration::from_secs(2);
    let [a, b, c] = three_ready(dead_after).await;
    let epoch = a.view().epoch;
    let crashed = Instant::now();
    drop(c);
    for node in [&a, &b] {
        let view = wait_within(node, "rid of c", Duration::from_secs(6), |v| {
            v.member("c").is_none()
        })
        .await;
        assert_eq!(ids(&view.ready), ["a", "b"]);
    }
    let detected = crashed.elapsed();
    assert!(a.view().epoch > epoch);
    // Loose on purpose: the machine may be busy. The derivation promises `dead_after`.
    assert!(
        detected <= dead_after + Duration::from_secs(2),
        "took {detected:?}"
    );
}

#[tokio::test]
async fn a_draining_node_leaves_the_ready_set_and_placement_but_stays_a_member() {
    let [a, b, c] = three_ready(Duration::from_secs(5)).await;
    let before = a.view();
    assert!(
        (0..1_000u64).any(|g| before.owner(g).is_some_and(|m| m.node_id() == "c")),
        "c owned some guilds while ready"
    );
    c.set_state(MemberState::Draining).await;
    for node in [&a, &b, &c] {
        let view = wait_for(node, "c draining", |v| {
            v.member("c")
                .is_some_and(|m| m.state == MemberState::Draining)
        })
        .await;
        assert_eq!(ids(&view.ready), ["a", "b"]);
        assert_eq!(ids(&view.members), ["a", "b", "c"]);
        for guild in 0..1_000u64 {
            let owner = view.owner(guild).expect("two ready members");
            assert_ne!(owner.node_id(), "c");
            if let Some(old) = before.owner(guild).filter(|m| m.node_id() != "c") {
                assert_eq!(
                    owner.node_id(),
                    old.node_id(),
                    "guild {guild} moved needlessly"
                );
            }
        }
    }
    assert!(a.view().epoch > before.epoch);
}

#[tokio::test]
async fn a_node_that_leaves_is_dropped_by_its_peers_without_waiting_for_the_failure_detector() {
    // Long enough that only the goodbye can explain a quick removal.
    let dead_after = Duration::from_secs(30);
    let [a, b, c] = three_ready(dead_after).await;
    let left = Instant::now();
    c.leave().await.expect("leaves");
    for node in [&a, &b] {
        wait_within(node, "rid of c", Duration::from_secs(5), |v| {
            v.member("c").is_none()
        })
        .await;
    }
    assert!(left.elapsed() < dead_after / 2);
}

#[tokio::test]
async fn joining_without_a_secret_or_with_values_peers_could_not_read_fails_clearly() {
    let mut no_secret = config(SECRET, &[], Duration::from_secs(5));
    no_secret.secret = None;
    let err = Membership::join(&no_secret, local("a", 1))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ClusterError::Config(ConfigError::MissingSecret)
    ));

    let mut disabled = no_secret.clone();
    disabled.enabled = false;
    let err = Membership::join(&disabled, local("a", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClusterError::Config(ConfigError::MissingSecret)),
        "joining needs a secret whatever `enabled` says"
    );

    let mut unreadable = local("a", 1);
    unreadable.gateway_url = String::new();
    let err = Membership::join(&config(SECRET, &[], Duration::from_secs(5)), unreadable)
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Unpublishable(_)), "{err}");
    assert!(err.to_string().contains("gateway_url"), "{err}");
}
