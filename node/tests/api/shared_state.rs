//! Nodes sharing a real Redis: REST rate limits hold across nodes, and a Redis outage under
//! load degrades the node to local state without failing requests, then recovers by itself.

use std::time::{Duration, Instant};

use enrichment_node::config::Secret;
use enrichment_protocol::admin::ClusterStatus;
use enrichment_testkit::Redis;

use crate::support::*;

fn with_redis(redis: &Redis) -> impl FnOnce(&mut enrichment_node::Config) + '_ {
    move |c| {
        c.redis.url = Some(Secret::new(redis.url()));
        c.redis.key_prefix = format!("shared-{}", redis.port());
        c.redis.command_timeout_ms = 300;
        c.admin_token = Some(Secret::new("shared-state-admin-token"));
    }
}

/// The node's `shared_state` as the admin API reports it.
async fn shared_state(t: &TestNode) -> String {
    let url = format!("{}/cluster/status", t.node.as_ref().unwrap().admin_url());
    let res = t
        .http
        .get(url)
        .header("Authorization", "Bearer shared-state-admin-token")
        .send()
        .await
        .unwrap();
    let status: ClusterStatus = res.json().await.unwrap();
    status.nodes[0].shared_state.clone()
}

#[tokio::test]
async fn the_global_limit_holds_across_two_nodes() {
    let redis = Redis::start().unwrap();
    let limited = |c: &mut enrichment_node::Config| {
        with_redis(&redis)(c);
        c.rate_limits.enabled = true;
        c.rate_limits.global.limit = 6;
        c.rate_limits.global.per_secs = 60.0;
    };
    let a = TestNode::start_with(limited).await;
    let b = TestNode::start_with(limited).await;
    assert_eq!(shared_state(&a).await, "up");
    // The same token on both nodes (unverified tokens count too: limits come before auth).
    let token = "Bot not-a-real-token";
    let mut statuses = Vec::new();
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        statuses.push(node.get("/users/@me", token).await.status);
    }
    let allowed = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((allowed, refused), (6, 4), "{statuses:?}");
    // Another token is untouched.
    assert_eq!(a.get("/users/@me", "Bot another").await.status, 401);
}

#[tokio::test]
async fn a_redis_outage_degrades_then_recovers_without_a_restart() {
    let mut redis = Redis::start().unwrap();
    let t = TestNode::start_with(|c| {
        with_redis(&redis)(c);
        c.rate_limits.enabled = true;
    })
    .await;
    let alice = t.register("alice").await;
    let (_, channel) = t.guild(&alice, "home").await;
    assert_eq!(shared_state(&t).await, "up");
    let sent = |n: usize| format!("message {n}");
    let mut n = 0;
    // Light load before, during and after the outage: every request is served.
    for phase in ["before", "during", "after"] {
        match phase {
            "during" => redis.stop(),
            "after" => {
                redis.restart().unwrap();
                let deadline = Instant::now() + Duration::from_secs(15);
                while shared_state(&t).await != "up" {
                    assert!(Instant::now() < deadline, "the node never saw Redis back");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            _ => {}
        }
        for _ in 0..4 {
            let r = t.get("/users/@me", &alice.token).await;
            assert_eq!(r.status, 200, "{phase}: {}", r.body);
            n += 1;
            let posted = t
                .post(
                    &format!("/channels/{channel}/messages"),
                    &alice.token,
                    serde_json::json!({"content": sent(n)}),
                )
                .await;
            assert_eq!(posted.status, 200, "{phase}: {}", posted.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if phase == "during" {
            assert_eq!(shared_state(&t).await, "down");
        }
    }
    let metrics = t
        .http
        .get(format!("http://{}/metrics", t.node.as_ref().unwrap().addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("enrichment_redis_errors_total"),
        "the outage is counted"
    );
    // Limits are enforced again after recovery: the per-channel message limit (5 per 5 s)
    // refuses the next burst.
    let mut codes = Vec::new();
    for i in 0..6 {
        let r = t
            .post(
                &format!("/channels/{channel}/messages"),
                &alice.token,
                serde_json::json!({"content": format!("burst {i}")}),
            )
            .await;
        codes.push(r.status);
    }
    assert!(codes.contains(&429), "{codes:?}");
    let history = t
        .get(
            &format!("/channels/{channel}/messages?limit=100"),
            &alice.token,
        )
        .await
        .ok(200);
    for i in 1..=n {
        assert!(
            history
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["content"] == sent(i)),
            "message {i} was stored"
        );
    }
}

#[tokio::test]
async fn an_unreachable_redis_stops_the_node_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let port = enrichment_testkit::free_port().unwrap();
    config.redis.url = Some(Secret::new(format!("redis://127.0.0.1:{port}")));
    config.redis.connect_timeout_secs = 1;
    let err = enrichment_node::Node::start(config)
        .await
        .expect_err("the node must not start without its Redis");
    let msg = format!("{err:#}");
    assert!(msg.contains("ENRICHMENT_REDIS_URL"), "{msg}");
    assert!(msg.contains(&port.to_string()), "{msg}");
}
