//! Rate limits: a burst far above the server's limit completes without a 429 reaching the
//! caller, because the client waits as the server's headers and 429s tell it to.

use std::time::{Duration, Instant};

use enrichment_client::protocol::rest::{CreateMessage, MessagesQuery};
use enrichment_node::config::Limit;

use crate::support::TestNode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_waits_instead_of_failing() {
    let t = TestNode::start_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.message_create = Limit {
            limit: 5,
            per_secs: 1.0,
        };
    })
    .await;
    let owner = t.user("owner").await;
    let (_, ch) = t.guild(&owner, "Busy").await;

    let started = Instant::now();
    let sends = (0..20).map(|i| {
        let c = owner.clone();
        tokio::spawn(async move {
            c.create_message(
                ch,
                &CreateMessage {
                    content: Some(format!("burst {i}")),
                    ..CreateMessage::default()
                },
            )
            .await
        })
    });
    for (i, s) in futures::future::join_all(sends)
        .await
        .into_iter()
        .enumerate()
    {
        s.expect("task")
            .unwrap_or_else(|e| panic!("send {i} surfaced an error: {e}"));
    }
    let elapsed = started.elapsed();
    let history = owner
        .get_channel_messages(
            ch,
            &MessagesQuery {
                limit: Some(100),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("history");
    assert_eq!(history.len(), 20, "every message was stored once");
    // 5 per second: the 15 beyond the first window need at least 3 more seconds, which
    // only happens if the client waited rather than hammered.
    assert!(elapsed >= Duration::from_millis(2800), "{elapsed:?}");
    let stats = owner.rate_limit_stats();
    assert!(
        stats.bucket_waits > 0,
        "the client waited on the bucket: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_limit_is_waited_out() {
    let t = TestNode::start_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.global = Limit {
            limit: 4,
            per_secs: 1.0,
        };
    })
    .await;
    let user = t.user("reader").await;
    // Ten calls on different routes: only the global limit applies.
    for i in 0..10 {
        if i % 2 == 0 {
            user.current_user().await.expect("me");
        } else {
            user.get_gateway_bot().await.expect("gateway");
        }
    }
    let stats = user.rate_limit_stats();
    // The server's global 429 held every route of this token, not just the one refused.
    assert!(
        stats.rate_limited >= 1 && stats.global_waits >= 1,
        "{stats:?}"
    );
}
