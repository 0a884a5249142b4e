//! HTTP rate limits: headers on every response, 429 with Discord's body when crossed.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_bucket_headers_and_429() {
    let t = TestNode::start_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.message_create.limit = 3;
        c.rate_limits.message_create.per_secs = 30.0;
    })
    .await;
    let a = t.register("limited").await;
    let (gid, c) = t.guild(&a, "Limits").await;
    for expected_remaining in ["2", "1", "0"] {
        let r = t
            .post(
                &format!("/channels/{c}/messages"),
                &a.token,
                json!({"content": "x"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            r.header("x-ratelimit-remaining").as_deref(),
            Some(expected_remaining)
        );
        assert!(
            r.header("x-ratelimit-reset")
                .unwrap()
                .parse::<f64>()
                .unwrap()
                > 1.7e9
        );
        assert!(
            r.header("x-ratelimit-reset-after")
                .unwrap()
                .parse::<f64>()
                .unwrap()
                > 0.0
        );
        assert!(r.header("x-ratelimit-bucket").is_some());
    }
    let r = t
        .post(
            &format!("/channels/{c}/messages"),
            &a.token,
            json!({"content": "x"}),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["global"], false);
    assert_eq!(r.body["message"], "You are being rate limited.");
    let retry = r.body["retry_after"].as_f64().unwrap();
    assert!(retry > 5.0 && retry <= 10.0, "{retry}");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 6);
    assert_eq!(r.header("x-ratelimit-scope").as_deref(), Some("user"));
    // The 429 wrote nothing.
    assert_eq!(
        t.get(&format!("/channels/{c}/messages"), &a.token)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Another channel is another bucket; another user has their own allowance.
    let other = id_of(
        &t.post(
            &format!("/guilds/{gid}/channels"),
            &a.token,
            json!({"name": "other"}),
        )
        .await
        .ok(201),
    );
    assert_eq!(
        t.post(
            &format!("/channels/{other}/messages"),
            &a.token,
            json!({"content": "x"})
        )
        .await
        .status,
        200
    );
    let b = t.register("limited2").await;
    t.join(&a, &c, &b).await;
    assert_eq!(
        t.post(
            &format!("/channels/{c}/messages"),
            &b.token,
            json!({"content": "x"})
        )
        .await
        .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_limit_per_token() {
    let t = TestNode::start_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.global.limit = 5;
        c.rate_limits.global.per_secs = 60.0;
        c.rate_limits.default_route.limit = 100;
    })
    .await;
    let a = t.register("globalist").await;
    // Registration used one request of the client's (IP-keyed) allowance, not the token's.
    for _ in 0..5 {
        t.get("/users/@me", &a.token).await.ok(200);
    }
    let r = t.get("/users/@me", &a.token).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["global"], true);
    assert_eq!(r.header("x-ratelimit-global").as_deref(), Some("true"));
    assert_eq!(r.header("x-ratelimit-scope").as_deref(), Some("global"));
}
