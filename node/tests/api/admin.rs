//! The admin API (`/admin/v1`): the admin token and nothing else opens it; status, ring and
//! drain report and do what the node really does.

use std::time::{Duration, Instant};

use enrichment_protocol::admin::{ClusterRing, ClusterStatus, NodeInfo, NodeStatus};
use enrichment_protocol::gateway::op;
use reqwest::Method;
use serde_json::{Value, json};

use crate::gw::{ALL, Gw};
use crate::support::*;

fn admin_url(t: &TestNode) -> String {
    t.node.as_ref().unwrap().admin_url()
}

/// The token the node generated into its data directory.
fn file_token(t: &TestNode) -> String {
    std::fs::read_to_string(t.config.data_dir.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned()
}

/// An admin request with the given `Authorization` header (none when `None`).
async fn admin(t: &TestNode, method: Method, path: &str, auth: Option<&str>) -> (u16, Value) {
    let mut req = t.http.request(method, format!("{}{path}", admin_url(t)));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn status(t: &TestNode, token: &str) -> NodeInfo {
    let (code, body) = admin(
        t,
        Method::GET,
        "/cluster/status",
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let mut s: ClusterStatus = serde_json::from_value(body).unwrap();
    assert_eq!(s.nodes.len(), 1);
    s.nodes.remove(0)
}

#[tokio::test]
async fn only_the_admin_token_opens_the_admin_api() {
    let t = TestNode::start().await;
    let alice = t.register("alice").await;
    let (gid, _) = t.guild(&alice, "home").await;
    let bot = t.bot(&alice, "Helper", &gid, 0).await;
    let unauthorized = json!({"message": "401: Unauthorized", "code": 0});
    let jwt = format!("Bearer {}", alice.token);
    let wrong = format!("Bearer {}x", file_token(&t));
    for path in [
        "/cluster/status",
        "/cluster/ring",
        "/cluster/ring?guild_id=1",
        "/no/such/route",
    ] {
        for auth in [
            None,
            Some("Bearer"),
            Some(wrong.as_str()),
            Some(jwt.as_str()),
            Some(alice.token.as_str()),
            Some(bot.token.as_str()),
        ] {
            let (code, body) = admin(&t, Method::GET, path, auth).await;
            assert_eq!((code, &body), (401, &unauthorized), "{path} with {auth:?}");
        }
    }
    let node_id = t.node.as_ref().unwrap().node_id.clone();
    let drain = format!("/cluster/nodes/{node_id}/drain");
    let (code, body) = admin(&t, Method::POST, &drain, Some(&jwt)).await;
    assert_eq!((code, body), (401, unauthorized));
    let me = status(&t, &file_token(&t)).await;
    assert_eq!(
        me.status,
        NodeStatus::Healthy,
        "a refused drain does nothing"
    );
    // The admin token is no user token either.
    t.get("/users/@me", &format!("Bearer {}", file_token(&t)))
        .await
        .err(401, 40001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_node_as_it_is_and_is_not_rate_limited() {
    let t = TestNode::start_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.global.limit = 5;
    })
    .await;
    let token = file_token(&t);
    let node = t.node.as_ref().unwrap();
    let before = status(&t, &token).await;
    assert_eq!(before.id, node.node_id);
    assert_eq!(before.rest_address, node.addr.to_string());
    assert_eq!(before.gateway_url, node.gateway_url);
    assert_eq!(before.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(before.status, NodeStatus::Healthy);
    assert_eq!(
        (before.gateway_connections, before.sessions),
        (0, 0),
        "{before:?}"
    );
    assert_eq!(before.generation, node.ids.identity.generation);
    assert!(before.generation.0 > 1_700_000_000_000, "{before:?}");
    assert_eq!(before.id_pair, node.ids.pair);
    if !shared_backends() {
        assert_eq!(
            before.id_pair,
            enrichment_protocol::IdPair::default(),
            "a single node mints with 0/0 unless told otherwise"
        );
    }
    let alice = t.register("alice").await;
    let (gid, _) = t.guild(&alice, "home").await;
    let (mut gw, _) = Gw::identify(&t, &alice.token, ALL).await;
    gw.guild_create(&gid).await;
    let after = status(&t, &token).await;
    assert_eq!(after.gateway_connections, 1, "{after:?}");
    assert_eq!(after.sessions, 1, "{after:?}");
    assert!(after.guild_actors >= 1, "the guild's actor runs: {after:?}");
    assert_eq!(after.started_at, before.started_at);
    // Far past the global limit of 5 per second: the admin API has no bot rate limits.
    for _ in 0..30 {
        status(&t, &token).await;
    }
    gw.close(1000).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while status(&t, &token).await.gateway_connections != 0 {
        assert!(
            Instant::now() < deadline,
            "the closed connection is no longer counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn ring_names_the_owner_of_a_guild() {
    let t = TestNode::start().await;
    let bearer = format!("Bearer {}", file_token(&t));
    let node_id = t.node.as_ref().unwrap().node_id.clone();
    let (code, body) = admin(&t, Method::GET, "/cluster/ring", Some(&bearer)).await;
    assert_eq!(code, 200);
    let ring: ClusterRing = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(ring.nodes.len(), 1);
    assert_eq!(ring.nodes[0].id, node_id);
    assert!(
        ring.owner.is_none() && body.get("owner").is_none(),
        "{body}"
    );
    let (code, body) = admin(
        &t,
        Method::GET,
        "/cluster/ring?guild_id=175928847299117063",
        Some(&bearer),
    )
    .await;
    assert_eq!(code, 200);
    let ring: ClusterRing = serde_json::from_value(body).unwrap();
    let owner = ring.owner.unwrap();
    assert_eq!(owner.guild_id.0, 175928847299117063);
    assert_eq!(owner.node_id, node_id);
    let (code, body) = admin(
        &t,
        Method::GET,
        "/cluster/ring?guild_id=general",
        Some(&bearer),
    )
    .await;
    assert_eq!((code, body["code"].as_u64()), (400, Some(50035)), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_reconnects_clients_and_refuses_new_connections() {
    let t = TestNode::start().await;
    let token = file_token(&t);
    let bearer = format!("Bearer {token}");
    let alice = t.register("alice").await;
    let (gid, _) = t.guild(&alice, "home").await;
    let (mut gw, _) = Gw::identify(&t, &alice.token, ALL).await;
    gw.guild_create(&gid).await;

    let (code, body) = admin(
        &t,
        Method::POST,
        "/cluster/nodes/elsewhere/drain",
        Some(&bearer),
    )
    .await;
    assert_eq!(
        (code, body),
        (404, json!({"message": "Unknown Node", "code": 0}))
    );
    assert_eq!(status(&t, &token).await.status, NodeStatus::Healthy);

    let node_id = t.node.as_ref().unwrap().node_id.clone();
    let drain = format!("/cluster/nodes/{node_id}/drain");
    let (code, body) = admin(&t, Method::POST, &drain, Some(&bearer)).await;
    assert_eq!(code, 200, "{body}");
    let drained: NodeInfo = serde_json::from_value(body).unwrap();
    assert_eq!(drained.status, NodeStatus::Draining);
    let (got_reconnect, code) = gw.closed_after(op::RECONNECT).await;
    assert!(got_reconnect, "op 7 before the close");
    assert_eq!(code, Some(4000), "a resumable close");

    // New gateway connections are refused; REST keeps answering; readiness says draining.
    let url = format!("{}/?v=10&encoding=json", crate::gw::gateway_url(&t));
    assert!(
        tokio_tungstenite::connect_async(&url).await.is_err(),
        "a draining node takes no new gateway connections"
    );
    t.get("/users/@me", &alice.token).await.ok(200);
    let root = t.base.trim_end_matches("/api/v10").to_owned();
    let ready = t.http.get(format!("{root}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"status": "draining"})
    );
    let after = status(&t, &token).await;
    assert_eq!(after.status, NodeStatus::Draining);
    assert_eq!(after.gateway_connections, 0, "{after:?}");
    // Draining again is harmless.
    let (code, _) = admin(&t, Method::POST, &drain, Some(&bearer)).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn generated_token_is_private_and_survives_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let mut t = TestNode::start().await;
    let path = t.config.data_dir.join("admin-token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the node's user may read it");
    let token = file_token(&t);
    assert_eq!(token.len(), 64, "32 random bytes, hex");
    let node_id = t.node.as_ref().unwrap().node_id.clone();
    assert_eq!(status(&t, &token).await.id, node_id);
    t.restart().await;
    assert_eq!(file_token(&t), token, "a restart reads the same token");
    assert_eq!(
        status(&t, &token).await.id,
        node_id,
        "and keeps its node id"
    );

    // A configured token and node id win over the files.
    t.node.take().unwrap().stop().await;
    t.config.admin_token = Some(enrichment_node::config::Secret::new(
        "configured-admin-token",
    ));
    t.config.node_id = Some("edge-1".into());
    t.restart().await;
    assert_eq!(status(&t, "configured-admin-token").await.id, "edge-1");
    let (code, _) = admin(
        &t,
        Method::GET,
        "/cluster/status",
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(code, 401, "the file's token no longer opens it");
}

async fn status_code(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/admin/v1/cluster/status"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_prints_a_generated_token_once_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = |name: &str| dir.path().join(name);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();

    let node = Binary::start(&data, &[], &[], &log("first.log")).await;
    let base = node.base.clone();
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(status_code(&base, &token).await, 200);
    node.stop();
    let first = read("first.log");
    assert!(
        first.contains(&token) && first.contains(&data.join("admin-token").display().to_string()),
        "the first start shows the token and where it is kept: {first}"
    );

    let node = Binary::start(&data, &[], &[], &log("second.log")).await;
    let base = node.base.clone();
    assert_eq!(status_code(&base, &token).await, 200);
    node.stop();
    assert!(
        !read("second.log").contains(&token),
        "later starts stay quiet"
    );

    // The environment beats the config file, which beats the generated file.
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        "admin_token = \"from-the-config-file\"\nnode_id = \"from-file\"\n",
    )
    .unwrap();
    let node = Binary::start(
        &data,
        &["--config", config.to_str().unwrap()],
        &[
            ("ENRICHMENT_ADMIN_TOKEN", "from-the-environment"),
            ("ENRICHMENT_NODE_ID", "edge-7"),
        ],
        &log("third.log"),
    )
    .await;
    let base = node.base.clone();
    assert_eq!(status_code(&base, "from-the-environment").await, 200);
    assert_eq!(status_code(&base, "from-the-config-file").await, 401);
    assert_eq!(status_code(&base, &token).await, 401);
    let s: ClusterStatus = reqwest::Client::new()
        .get(format!("{base}/admin/v1/cluster/status"))
        .bearer_auth("from-the-environment")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s.nodes[0].id, "edge-7");
    node.stop();
    assert!(!read("third.log").contains("from-the-environment"));
}

#[tokio::test]
async fn rotating_the_signing_key_keeps_old_tokens_valid_across_restarts() {
    let mut t = TestNode::start().await;
    let auth = format!("Bearer {}", file_token(&t));
    let alice = t.register("alice").await;
    let first_kid = jwt_kid(&alice.token);
    let (code, keys) = admin(&t, Method::GET, "/keys", Some(&auth)).await;
    assert_eq!(code, 200, "{keys}");
    assert_eq!(keys["current_kid"], first_kid.as_str());
    assert_eq!(keys["kids"], json!([first_kid]));
    let (code, _) = admin(&t, Method::POST, "/keys/rotate", Some("Bearer nope")).await;
    assert_eq!(code, 401);

    let (code, rotated) = admin(&t, Method::POST, "/keys/rotate", Some(&auth)).await;
    assert_eq!(code, 200, "{rotated}");
    let new_kid = rotated["current_kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, first_kid);
    assert_eq!(rotated["kids"].as_array().unwrap().len(), 2);
    // Old tokens verify; new ones are signed with the new key.
    t.get("/users/@me", &alice.token).await.ok(200);
    let again = t
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"login": "alice", "password": "correct horse battery"})),
        )
        .await
        .ok(200);
    let token = again["token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_kid(&token), new_kid);
    // Both keys live in the store: a restarted node still takes both tokens.
    t.restart().await;
    t.get("/users/@me", &alice.token).await.ok(200);
    t.get("/users/@me", &token).await.ok(200);
    let (_, keys) = admin(&t, Method::GET, "/keys", Some(&auth)).await;
    assert_eq!(keys["current_kid"], new_kid.as_str());
}

#[tokio::test]
async fn keys_from_the_data_dir_of_an_earlier_version_are_imported() {
    let dir = tempfile::tempdir().unwrap();
    // What an earlier version left in its data dir: `jwt/{kid}.pem` and `jwt/current`.
    let legacy =
        enrichment_actors::auth::JwtKeys::new_record(enrichment_protocol::Timestamp::now())
            .unwrap();
    let legacy_kid = legacy.kid.clone();
    let jwt = dir.path().join("jwt");
    std::fs::create_dir_all(&jwt).unwrap();
    std::fs::write(jwt.join(format!("{legacy_kid}.pem")), &legacy.private_pem).unwrap();
    std::fs::write(jwt.join("current"), format!("{legacy_kid}\n")).unwrap();
    let mut config = test_config(dir.path());
    config.admin_token = Some(enrichment_node::config::Secret::new(
        "import-test-admin-token",
    ));
    let node = enrichment_node::Node::start(config).await.unwrap();
    let keys: Value = reqwest::Client::new()
        .get(format!("{}/keys", node.admin_url()))
        .header("Authorization", "Bearer import-test-admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys["current_kid"], legacy_kid.as_str());
    assert_eq!(keys["kids"], json!([legacy_kid]));
    node.stop().await;
}
