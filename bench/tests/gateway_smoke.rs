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
