//! Snowflake id pairs across the nodes of a cluster, with the real `enrichment` binary on one
//! PostgreSQL: nodes left at their defaults claim distinct pairs, so messages sent through
//! both at once keep their own ids; an explicit pair held by a live node stops a second one at
//! startup, naming the holder, and a killed node's pair is free again once its lease ran out;
//! a node that can no longer renew its lease stops, and one whose lease was taken refuses to
//! mint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use enrichment_protocol::IdPair;
use enrichment_protocol::admin::{ClusterStatus, NodeInfo};
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use enrichment_storage::postgres::{PostgresOptions, PostgresStore};
use enrichment_storage::{IdClaim, NodeStore};
use serde_json::{Value, json};

use crate::support::*;

/// A config file putting a node on `database` (and, when given, a Redis key prefix of its own).
fn config_file(dir: &Path, database: &str, redis: Option<&str>, extra: &str) -> PathBuf {
    let mut text = format!("storage = \"postgres\"\n{extra}\n[postgres]\nurl = \"{database}\"\n");
    if let Some(prefix) = redis {
        text.push_str(&format!(
            "[redis]\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n",
            servers().redis.url()
        ));
    }
    let path = dir.join("node.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A binary node with its own data dir under `dir`.
async fn start(dir: &Path, name: &str, config: &Path, flags: &[&str]) -> Binary {
    let mut args = vec!["--config", config.to_str().unwrap(), "--no-rate-limits"];
    args.extend_from_slice(flags);
    Binary::start(
        &dir.join(name),
        &args,
        &[],
        &dir.join(format!("{name}.log")),
    )
    .await
}

/// The node as its own admin API reports it.
async fn status(http: &reqwest::Client, node: &Binary, data_dir: &Path) -> NodeInfo {
    let token = std::fs::read_to_string(data_dir.join("admin-token")).unwrap();
    let mut s: ClusterStatus = http
        .get(format!("{}/admin/v1/cluster/status", node.base))
        .header("Authorization", format!("Bearer {}", token.trim()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    s.nodes.remove(0)
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_at_their_defaults_never_hand_out_one_message_id_twice() {
    let place = SharedPlace::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &place.database, Some(&place.prefix), "");
    let a = start(dir.path(), "a", &config, &[]).await;
    let b = start(dir.path(), "b", &config, &[]).await;
    let http = reqwest::Client::new();
    let api = |node: &Binary, path: &str| format!("{}/api/v10{path}", node.base);
    let (code, user) = call(
        &http,
        reqwest::Method::POST,
        api(&a, "/auth/register"),
        None,
        Some(json!({"username": "sender", "email": "sender@example.com",
                    "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(code, 201, "{user}");
    let token = user["token"].as_str().unwrap().to_owned();
    let (code, guild) = call(
        &http,
        reqwest::Method::POST,
        api(&a, "/guilds"),
        Some(&token),
        Some(json!({"name": "busy"})),
    )
    .await;
    assert_eq!(code, 201, "{guild}");
    let (_, channels) = call(
        &http,
        reqwest::Method::GET,
        api(
            &a,
            &format!("/guilds/{}/channels", guild["id"].as_str().unwrap()),
        ),
        Some(&token),
        None,
    )
    .await;
    let channel = channels[0]["id"].as_str().unwrap().to_owned();

    // 2 nodes × 4 tasks × 100 messages into one channel, all at once.
    let mut tasks = Vec::new();
    for (name, node) in [("a", &a), ("b", &b)] {
        for t in 0..4 {
            let (http, token) = (http.clone(), token.clone());
            let url = api(node, &format!("/channels/{channel}/messages"));
            tasks.push(tokio::spawn(async move {
                let mut sent = Vec::new();
                for n in 0..100 {
                    let content = format!("{name}{t}-{n}");
                    let (code, body) = call(
                        &http,
                        reqwest::Method::POST,
                        url.clone(),
                        Some(&token),
                        Some(json!({ "content": content })),
                    )
                    .await;
                    assert_eq!(code, 200, "{content}: {body}");
                    assert_eq!(body["content"], content.as_str());
                    sent.push((body["id"].as_str().unwrap().to_owned(), content));
                }
                sent
            }));
        }
    }
    let mut sent: HashMap<String, String> = HashMap::new();
    for task in tasks {
        for (id, content) in task.await.unwrap() {
            assert!(
                sent.insert(id.clone(), content).is_none(),
                "id {id} was handed out twice"
            );
        }
    }
    assert_eq!(sent.len(), 800);

    // Every acknowledged message reads back, through either node, with its own content.
    let mut stored: HashMap<String, String> = HashMap::new();
    let mut before: Option<String> = None;
    loop {
        let query = match &before {
            Some(id) => format!("?limit=100&before={id}"),
            None => "?limit=100".to_owned(),
        };
        let (code, page) = call(
            &http,
            reqwest::Method::GET,
            api(&b, &format!("/channels/{channel}/messages{query}")),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(code, 200, "{page}");
        let page = page.as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        before = Some(last["id"].as_str().unwrap().to_owned());
        for m in &page {
            stored.insert(
                m["id"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            );
        }
    }
    assert_eq!(stored, sent);

    let (sa, sb) = (
        status(&http, &a, &dir.path().join("a")).await,
        status(&http, &b, &dir.path().join("b")).await,
    );
    assert_ne!(
        sa.id_pair, sb.id_pair,
        "each node claimed a pair of its own"
    );
    assert_ne!(sa.id, sb.id);
    assert!(sa.generation.0 > 0 && sb.generation.0 > 0);
    assert!(a.stop().success());
    assert!(b.stop().success());
}

/// Runs `enrichment serve` expecting it to fail at startup; returns what it printed.
async fn refused_start(dir: &Path, name: &str, config: &Path, flags: &[&str]) -> String {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_enrichment"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
        .args(flags)
        .env_remove("ENRICHMENT_ADMIN_TOKEN")
        .env_remove("ENRICHMENT_NODE_ID")
        .env("ENRICHMENT_DATA_DIR", dir.join(name))
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the node started although its pair is held: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    std::fs::read_to_string(&log).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_pair_stops_startup_naming_its_holder_and_a_killed_nodes_pair_frees_after_its_lease()
{
    let place = SharedPlace::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &place.database, None, "id_lease_secs = 3");
    let pair = ["--worker-id", "5", "--process-id", "6"];
    let http = reqwest::Client::new();
    let first = start(dir.path(), "first", &config, &pair).await;
    let held = status(&http, &first, &dir.path().join("first")).await;
    assert_eq!(held.id_pair, IdPair::new(5, 6).unwrap());

    let output = refused_start(dir.path(), "second", &config, &pair).await;
    for needle in [
        "worker_id 5, process_id 6".to_owned(),
        format!("node {} (generation {})", held.id, held.generation),
        "ENRICHMENT_WORKER_ID".to_owned(),
    ] {
        assert!(output.contains(&needle), "{needle:?} not in: {output}");
    }

    // Killed: no release. The pair comes free when the lease (3 s from its last renewal) ran
    // out.
    first.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let third = start(dir.path(), "third", &config, &pair).await;
    let now = status(&http, &third, &dir.path().join("third")).await;
    assert_eq!(now.id_pair, IdPair::new(5, 6).unwrap());
    assert_ne!(now.id, held.id);
    assert!(killed.elapsed() < Duration::from_secs(60));
    assert!(third.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_renew_its_lease_stops_with_an_error() {
    let mut pg = enrichment_testkit::Postgres::start().unwrap();
    let database = pg.fresh_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &database, None, "id_lease_secs = 3");
    let mut node = start(dir.path(), "lonely", &config, &[]).await;
    pg.stop();
    let status = node
        .exited_within(Duration::from_secs(30))
        .await
        .expect("the node stops once its lease can run out");
    assert!(!status.success(), "{status}");
    let log = std::fs::read_to_string(dir.path().join("lonely.log")).unwrap();
    assert!(log.contains("lost the snowflake id lease"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_lease_was_taken_is_not_ready_and_mints_no_more() {
    let place = SharedPlace::new();
    let t = TestNode::start_with(|c| {
        place.apply(c);
        c.id_lease_secs = 3;
    })
    .await;
    let alice = t.register("alice").await;
    let (_, channel) = t.guild(&alice, "home").await;
    t.send(&alice, &channel, "before").await;
    let ready = t
        .http
        .get(format!("http://{}/readyz", t.node.as_ref().unwrap().addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // Behind the node's back, its pair is released and claimed by someone else.
    let ids = &t.node.as_ref().unwrap().ids;
    let other = PostgresStore::connect(&place.database, PostgresOptions::default())
        .await
        .unwrap();
    assert!(
        other
            .release_id_pair(&ids.identity, ids.pair)
            .await
            .unwrap()
    );
    let thief = NodeIdentity::new("thief", GenerationId(1));
    assert!(matches!(
        other
            .claim_id_pair(&thief, Some(ids.pair), Duration::from_secs(60))
            .await
            .unwrap(),
        IdClaim::Claimed(_)
    ));

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = t
            .http
            .get(format!("http://{}/readyz", t.node.as_ref().unwrap().addr))
            .send()
            .await
            .unwrap();
        if res.status() == 503 {
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["status"], "id_lease_lost");
            break;
        }
        assert!(Instant::now() < deadline, "the node never noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = t
        .post(
            &format!("/channels/{channel}/messages"),
            &alice.token,
            json!({"content": "after"}),
        )
        .await;
    assert_eq!(refused.status, 503, "{}", refused.body);
}
