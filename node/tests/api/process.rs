//! The `enrichment` binary as a real process: flags, environment, JSON logs, shutdown.

use std::process::Command;

use crate::support::Binary;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_with_flags_env_and_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("node.log");
    let mut node = Binary::start(
        &dir.path().join("data"),
        &["--log-format", "json"],
        &[
            ("ENRICHMENT_GATEWAY_URL", "wss://gateway.example.test"),
            ("ENRICHMENT_LOG", "info"),
        ],
        &log,
    )
    .await;
    let http = reqwest::Client::new();
    let base = &node.base;
    let gw: serde_json::Value = http
        .get(format!("{base}/api/v10/gateway"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        gw["url"], "wss://gateway.example.test",
        "environment reaches the config"
    );
    assert!(
        dir.path().join("data/store").is_dir() && dir.path().join("data/node-id").is_file(),
        "data dir from the environment"
    );
    // SIGTERM drains: a gateway client gets RECONNECT and a resumable close; the process exits
    // cleanly.
    let mut gw = crate::gw::Gw::connect_url(&format!(
        "ws://127.0.0.1:{}/?v=10&encoding=json",
        node.gateway_port
    ))
    .await;
    node.terminate();
    let reconnect = gw.recv().await;
    assert_eq!(reconnect.op, enrichment_protocol::gateway::op::RECONNECT);
    assert_eq!(gw.closed().await, Some(4000));
    let status = node.wait();
    assert!(status.success(), "exit status {status}");
    // Every log line is one JSON object with a level and a message.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let logs: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        logs.iter()
            .any(|l| l["fields"]["message"] == "enrichment node listening"),
        "{lines:?}"
    );
    assert!(logs.iter().all(|l| l["level"].is_string()));
}

#[test]
fn bad_config_fails_at_startup_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "worker_id = 99\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_enrichment"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("worker_id"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&cfg, "listne = \"x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_enrichment"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listne"));
}

#[test]
fn a_bad_environment_value_stops_the_binary_naming_the_key_and_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_enrichment"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("ENRICHMENT_GUILDS_MAX_PINS", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("guilds.max_pins") && stderr.contains("ENRICHMENT_GUILDS_MAX_PINS"),
        "{stderr}"
    );
}
