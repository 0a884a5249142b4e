//! Nodes sharing real backends. With one Redis: REST rate limits hold across nodes, and a
//! Redis outage under load degrades the node to local state without failing requests, then
//! recovers by itself. With one PostgreSQL database too (a cluster of two): any node verifies
//! any token, also after a key rotation; IDENTIFY budgets, presence and RESUME span the nodes;
//! a logout, a reused refresh token or a password change on one node ends the session's
//! tokens on the other at once and for good; failed logins count across nodes. And a backend
//! that cannot be reached stops a node at startup, naming the setting.

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
    let (_refusing, port) = enrichment_testkit::refusing_port().unwrap();
    config.redis.url = Some(Secret::new(format!("redis://127.0.0.1:{port}")));
    config.redis.connect_timeout_secs = 1;
    let err = enrichment_node::Node::start(config)
        .await
        .expect_err("the node must not start without its Redis");
    let msg = format!("{err:#}");
    assert!(msg.contains("ENRICHMENT_REDIS_URL"), "{msg}");
    assert!(msg.contains(&port.to_string()), "{msg}");
}

/// Two nodes of one cluster: one PostgreSQL database and one Redis key prefix, gateway
/// limits as Discord's (one bot IDENTIFY per 5 s).
async fn pair() -> (TestNode, TestNode) {
    let place = SharedPlace::new();
    let start = || {
        let place = place.clone();
        TestNode::start_with(move |c| {
            place.apply(c);
            c.admin_token = Some(Secret::new("shared-state-admin-token"));
            c.gateway.identify_max_concurrency = 1;
            c.gateway.identify_window_secs = 5;
        })
    };
    let a = start().await;
    let b = start().await;
    assert_ne!(
        a.node.as_ref().unwrap().node_id,
        b.node.as_ref().unwrap().node_id
    );
    (a, b)
}

#[tokio::test]
async fn any_node_verifies_tokens_from_any_other_even_after_a_rotation() {
    let (a, b) = pair().await;
    let alice = a.register("alice").await;
    assert_eq!(
        b.get("/users/@me", &alice.token).await.ok(200)["id"],
        alice.id.as_str()
    );
    let (gid, _) = a.guild(&alice, "home").await;
    let bot = a.bot(&alice, "helper", &gid, 0).await;
    b.get("/users/@me", &bot.token).await.ok(200);
    // A refresh token issued on one node rotates on the other.
    let refreshed = b
        .call(
            reqwest::Method::POST,
            "/auth/refresh",
            None,
            Some(serde_json::json!({"refresh_token": alice.refresh_token})),
        )
        .await
        .ok(200);
    a.get("/users/@me", refreshed["token"].as_str().unwrap())
        .await
        .ok(200);

    let rotated: serde_json::Value = a
        .http
        .post(format!(
            "{}/keys/rotate",
            a.node.as_ref().unwrap().admin_url()
        ))
        .header("Authorization", "Bearer shared-state-admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_kid = rotated["current_kid"].as_str().unwrap().to_owned();
    let login = a
        .call(
            reqwest::Method::POST,
            "/auth/login",
            None,
            Some(serde_json::json!({"login": "alice", "password": "correct horse battery"})),
        )
        .await
        .ok(200);
    let token = login["token"].as_str().unwrap();
    assert_eq!(jwt_kid(token), new_kid);
    // B has never seen that key: it reads the keys again and accepts the token.
    b.get("/users/@me", token).await.ok(200);
    b.get("/users/@me", &alice.token).await.ok(200);
}

#[tokio::test]
async fn identify_budgets_presence_and_resume_span_the_cluster() {
    use crate::gw::{ALL, Gw};
    use enrichment_protocol::gateway::{intents, op};
    let (a, b) = pair().await;
    let alice = a.register("alice").await;
    let bob = a.register("bob").await;
    let (gid, channel) = a.guild(&alice, "home").await;
    a.join(&alice, &channel, &bob).await;
    let bot = a.bot(&alice, "helper", &gid, 0).await;

    // One bot IDENTIFY per 5 s across the cluster, not per node.
    let (_bot_on_a, _) = Gw::identify(&a, &bot.token, intents::GUILDS).await;
    let mut bot_on_b = Gw::connect(&b, "v=10&encoding=json").await;
    bot_on_b
        .send(
            op::IDENTIFY,
            crate::gw::identify_body(&bot.token, intents::GUILDS),
        )
        .await;
    let refused = bot_on_b.recv().await;
    assert_eq!(
        (refused.op, refused.d),
        (op::INVALID_SESSION, serde_json::json!(false))
    );

    // Bob follows the guild on B; alice comes online on A and B tells bob.
    let (mut bob_gw, _) = Gw::identify(&b, &bob.token, ALL).await;
    bob_gw.guild_create(&gid).await;
    let (alice_gw, _) = Gw::identify(&a, &alice.token, ALL).await;
    loop {
        let p = bob_gw.dispatch("PRESENCE_UPDATE").await;
        if p["user"]["id"] == alice.id.as_str() {
            assert_eq!(p["status"], "online");
            assert_eq!(p["guild_id"], gid.as_str());
            break;
        }
    }

    // A RESUME that reaches B for a session A holds is sent back to A.
    let session = alice_gw.session_id.clone();
    let seq = alice_gw.seq.unwrap_or(0);
    alice_gw.drop_connection();
    let mut wrong = Gw::connect(&b, "v=10&encoding=json").await;
    wrong.send_resume(&alice.token, &session, seq).await;
    assert_eq!(wrong.closed().await, Some(4000));
    let mut right = Gw::connect(&a, "v=10&encoding=json").await;
    right.send_resume(&alice.token, &session, seq).await;
    right.dispatch("RESUMED").await;
}

#[tokio::test]
async fn an_unreachable_postgres_stops_the_node_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let (_refusing, port) = enrichment_testkit::refusing_port().unwrap();
    config.storage = enrichment_node::config::StorageKind::Postgres;
    config.postgres.url = Some(Secret::new(format!(
        "postgres://enrichment:secret@127.0.0.1:{port}/enrichment"
    )));
    config.postgres.connect_timeout_secs = 1;
    let started = Instant::now();
    let err = enrichment_node::Node::start(config)
        .await
        .expect_err("the node must not start without its database");
    assert!(started.elapsed() < Duration::from_secs(10));
    let msg = format!("{err:#}");
    assert!(msg.contains("ENRICHMENT_POSTGRES_URL"), "{msg}");
    assert!(msg.contains(&port.to_string()), "{msg}");
    assert!(
        !msg.contains("secret"),
        "the password stays out of the message: {msg}"
    );
}

/// Refused within `within`: the revocation travels as one pub/sub message from the revoking
/// node to this one, far inside the session cache's lifetime (600 s in these tests), so only
/// that message can have ended the token here.
async fn refused_within(node: &TestNode, token: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let status = node.get("/users/@me", token).await.status;
        if status == 401 {
            return;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < deadline,
            "the token still works on the other node"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A cluster of two whose nodes trust what they read of a session for 600 s: a token they
/// have seen live stays live there unless a revocation is heard.
async fn pair_with_long_session_cache() -> (TestNode, TestNode) {
    let place = SharedPlace::new();
    let start = || {
        let place = place.clone();
        TestNode::start_with(move |c| {
            place.apply(c);
            c.auth.session_cache_secs = 600;
        })
    };
    (start().await, start().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_reuse_and_password_change_on_one_node_end_the_tokens_on_the_other_for_good() {
    use reqwest::Method;
    use serde_json::json;
    let (mut a, mut b) = pair_with_long_session_cache().await;
    let alice = a.register("alice").await;
    let bob = a.register("bob").await;
    let carol = a.register("carol").await;
    for u in [&alice, &bob, &carol] {
        b.get("/users/@me", &u.token).await.ok(200);
    }

    // Logout on A.
    let r = a
        .call(
            Method::POST,
            "/auth/logout",
            Some(&alice.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    refused_within(&b, &alice.token, Duration::from_secs(1)).await;

    // Bob's refresh token is rotated on A, then the rotated one is presented again: theft.
    let refresh = |token: &str| {
        a.call(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": token})),
        )
    };
    let rotated = refresh(&bob.refresh_token).await.ok(200);
    let bob_second = rotated["token"].as_str().unwrap().to_owned();
    b.get("/users/@me", &bob_second).await.ok(200);
    assert_eq!(refresh(&bob.refresh_token).await.status, 401);
    refused_within(&b, &bob.token, Duration::from_secs(1)).await;
    refused_within(&b, &bob_second, Duration::from_secs(1)).await;

    // Carol changes her password on A: every session of hers ends, a new one begins.
    let wrong = a
        .patch(
            "/users/@me",
            &carol.token,
            json!({"password": "not it", "new_password": "a better passphrase"}),
        )
        .await;
    wrong.err(400, 50035);
    assert_eq!(
        wrong.body["errors"]["password"]["_errors"][0]["code"],
        "PASSWORD_DOES_NOT_MATCH"
    );
    b.get("/users/@me", &carol.token).await.ok(200);
    let changed = a
        .patch(
            "/users/@me",
            &carol.token,
            json!({"password": "correct horse battery", "new_password": "a better passphrase"}),
        )
        .await
        .ok(200);
    assert_eq!(changed["id"], carol.id.as_str());
    assert_eq!(changed["username"], "carol");
    let carol_new = changed["token"].as_str().unwrap().to_owned();
    assert!(changed["refresh_token"].is_string());
    refused_within(&b, &carol.token, Duration::from_secs(1)).await;
    assert_eq!(a.get("/users/@me", &carol.token).await.status, 401);
    b.get("/users/@me", &carol_new).await.ok(200);
    let login = |password: &str| {
        b.call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"login": "carol", "password": password})),
        )
    };
    assert_eq!(login("correct horse battery").await.status, 400);
    login("a better passphrase").await.ok(200);
    let old_refresh = a
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": carol.refresh_token})),
        )
        .await;
    assert_eq!(old_refresh.status, 401);

    // The revocations are in the store: restarts forget nothing.
    let ended = [&alice.token, &bob.token, &bob_second, &carol.token];
    a.restart().await;
    for t in ended {
        assert_eq!(a.get("/users/@me", t).await.status, 401);
    }
    b.restart().await;
    for t in ended {
        assert_eq!(b.get("/users/@me", t).await.status, 401);
    }
    a.get("/users/@me", &carol_new).await.ok(200);
    b.get("/users/@me", &carol_new).await.ok(200);
}

#[tokio::test]
async fn failed_logins_on_one_node_count_on_the_other() {
    use reqwest::Method;
    use serde_json::json;
    let place = SharedPlace::new();
    let start = || {
        let place = place.clone();
        TestNode::start_with(move |c| {
            place.apply(c);
            c.auth.login_attempts_per_account = 3;
        })
    };
    let (a, b) = (start().await, start().await);
    a.register("alice").await;
    async fn login(node: &TestNode, password: &str) -> Resp {
        node.call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"login": "alice", "password": password})),
        )
        .await
    }
    assert_eq!(login(&a, "wrong one").await.status, 400);
    assert_eq!(login(&b, "wrong two").await.status, 400);
    assert_eq!(login(&a, "wrong three").await.status, 400);
    // Three failures across the cluster: the account is throttled on both nodes, even with
    // the right password.
    let refused = login(&b, "correct horse battery").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(login(&a, "correct horse battery").await.status, 429);
}
