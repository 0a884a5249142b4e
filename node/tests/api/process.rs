//! The `enrichment` binary as a real process: flags, environment, JSON logs, shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_with_flags_env_and_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let gateway_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_enrichment"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--gateway-listen",
            &format!("127.0.0.1:{gateway_port}"),
            "--log-format",
            "json",
        ])
        .env("ENRICHMENT_DATA_DIR", dir.path())
        .env("ENRICHMENT_GATEWAY_URL", "wss://gateway.example.test")
        .env("ENRICHMENT_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
        dir.path().join("store").is_dir() && dir.path().join("node-id").is_file(),
        "data dir from the environment"
    );
    // SIGTERM drains: a gateway client gets RECONNECT and a resumable close; the process exits
    // cleanly.
    let mut gw = crate::gw::Gw::connect_url(&format!(
        "ws://127.0.0.1:{gateway_port}/?v=10&encoding=json"
    ))
    .await;
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let reconnect = gw.recv().await;
    assert_eq!(reconnect.op, enrichment_protocol::gateway::op::RECONNECT);
    assert_eq!(gw.closed().await, Some(4000));
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    // Every log line is one JSON object with a level and a message.
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = BufReader::new(stderr)
        .lines()
        .chain(BufReader::new(stdout).lines())
        .map_while(Result::ok)
        .collect();
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
