//! The gateway load generator against a real node: a short latency run of 200 sessions must
//! produce its report with every delivery accounted for.

use std::time::Duration;

use enrichment_bench::gateway::modes::{Ctx, LatencyPlan, latency};
use enrichment_node::Node;
use enrichment_node::config::Config;
use enrichment_protocol::gateway::intents;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_session_latency_run_reports_every_delivery_and_loses_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(Config::ephemeral(dir.path()))
        .await
        .expect("node starts");
    // The node runs in this process: the CPU and memory figures include the generator's.
    let mut ctx = Ctx::new(
        vec![node.api_url()],
        vec![std::process::id()],
        2,
        intents::GUILDS | intents::GUILD_MESSAGES | intents::MESSAGE_CONTENT,
        64,
        8,
    )
    .await
    .expect("the generator reaches the node");
    let plan = LatencyPlan {
        guilds: 2,
        members: 100,
        sessions_per_user: 10,
        rate: 20.0,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(1),
        in_flight: 64,
        content_bytes: 16,
    };
    let report = latency(&mut ctx, plan).await.expect("the run completes");
    node.stop().await;

    assert_eq!(report.sessions, 200);
    assert_eq!(report.identified, 200, "{report:#?}");
    assert_eq!(report.connections_failed, 0, "{report:#?}");
    assert_eq!(
        report.post_errors + report.post_non_2xx + report.post_dropped,
        0
    );
    // 11 s at 20 msg/s, each message to the 100 sessions of its guild.
    assert_eq!(report.posted_ok, 220, "{report:#?}");
    assert_eq!(report.deliveries_expected, 220 * 100);
    assert_eq!(report.deliveries, report.deliveries_expected, "{report:#?}");
    assert_eq!((report.lost, report.unexpected), (0, 0), "{report:#?}");
    assert_eq!(
        (report.sessions_wrong_set, report.sessions_out_of_order),
        (0, 0),
        "{report:#?}"
    );
    // The measured window's deliveries all have a latency, and the text report says so.
    assert_eq!(report.delivery_ms.samples, 200 * 100, "{report:#?}");
    assert!(report.delivery_ms.p50 > 0.0 && report.delivery_ms.p99 >= report.delivery_ms.p50);
    assert!(
        ctx.report.contains("0 lost, 0 unexpected"),
        "{}",
        ctx.report
    );
}

/// The multi-process harness end to end: the scenario's leader (the real binary) starts two
/// worker processes against a node, drops 50 sessions mid-run so that they resume, stalls 5 %
/// of them, and must write its result, summary and plots with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_over_two_worker_processes_survives_a_storm_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(Config::ephemeral(dir.path()))
        .await
        .expect("node starts");
    let out = dir.path().join("out");
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_enrichment-gateway-load"))
        .args(["--api", &node.api_url(), "--server-pid"])
        .arg(std::process::id().to_string())
        .args(["--sources", "2", "--threads", "1", "scenario"])
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .kill_on_drop(true)
        .output();
    let run = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the run ends within 3 minutes")
        .expect("the harness starts");
    node.stop().await;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");

    let result: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("result.json")).expect("result.json written"),
    )
    .expect("result.json is JSON");
    let n = |k: &str| result[k].as_u64().unwrap_or(u64::MAX);
    assert_eq!(
        (n("sessions"), n("identified"), n("workers")),
        (200, 200, 2),
        "{result:#}"
    );
    // 11 s at 20 msg/s, alternating between the two guilds.
    assert_eq!(n("posted_ok"), 220, "{result:#}");
    // The last 5 % of each worker's 100 connections (95..100 and 195..200) stall; they are
    // sessions of users 15..20, all members of guild 1.
    assert_eq!(result["slow_consumers"]["stalled"], 10, "{result:#}");
    assert_eq!(n("deliveries_expected"), 110 * 100 + 110 * 90, "{result:#}");
    assert_eq!(n("deliveries"), n("deliveries_expected"), "{result:#}");
    assert_eq!((n("lost"), n("unexpected")), (0, 0), "{result:#}");
    assert_eq!(
        (n("sessions_wrong_set"), n("sessions_out_of_order")),
        (0, 0),
        "{result:#}"
    );
    assert_eq!(n("connections_failed"), 0, "{result:#}");
    // Every dropped session resumed, without a missed event (checked above with the rest).
    assert_eq!(result["storm"]["sessions"], 50, "{result:#}");
    assert_eq!(result["storm"]["resumed"], 50, "{result:#}");
    assert_eq!(result["storm"]["failed"], 0, "{result:#}");
    assert!(result["storm"]["all_resumed_ms"].as_f64().unwrap_or(-1.0) > 0.0);
    assert!(result["delivery_ms"]["p99"].as_f64().unwrap_or(0.0) > 0.0);
    // One row per second of the run, with deliveries in the measured window.
    let timeline = result["timeline"].as_array().expect("a timeline");
    assert!(
        timeline
            .iter()
            .filter(|s| s["t"].as_i64() >= Some(0) && s["deliveries"].as_u64() > Some(0))
            .count()
            >= 8,
        "{result:#}"
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary.md written");
    assert!(
        summary.contains("| lost / unexpected | **0** / 0 |"),
        "{summary}"
    );
    for plot in ["latency.svg", "throughput.svg", "memory.svg"] {
        let svg = std::fs::read_to_string(out.join(plot)).expect("plot written");
        assert!(svg.contains("<polyline"), "{plot} has a line");
    }
}
