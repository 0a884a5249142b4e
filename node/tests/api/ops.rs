//! Health, readiness, metrics, OpenAPI and gateway discovery.

use reqwest::Method;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_openapi_gateway() {
    let t = TestNode::start().await;
    let root = t.base.trim_end_matches("/api/v10").to_owned();
    let get = |p: String| {
        let http = t.http.clone();
        async move { http.get(p).send().await.unwrap() }
    };
    assert_eq!(get(format!("{root}/healthz")).await.status(), 200);
    assert_eq!(get(format!("{root}/readyz")).await.status(), 200);
    let a = t.register("opsuser").await;
    let (_, c) = t.guild(&a, "Ops").await;
    t.send(&a, &c, "count me").await;
    let metrics = get(format!("{root}/metrics")).await.text().await.unwrap();
    for needle in [
        "enrichment_http_requests_total",
        "enrichment_http_request_seconds_bucket",
        "enrichment_store_seconds",
        "enrichment_guild_actors",
        "enrichment_events_total",
        "route=\"/api/v10/channels/{channel_id}/messages\"",
    ] {
        assert!(metrics.contains(needle), "metrics lack {needle}");
    }
    let doc: serde_json::Value = get(format!("{}/openapi.json", t.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/users/@me",
        "/guilds",
        "/guilds/{guild_id}/channels",
        "/guilds/{guild_id}/members/{user_id}",
        "/guilds/{guild_id}/bans/{user_id}",
        "/channels/{channel_id}/messages",
        "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
        "/channels/{channel_id}/pins/{message_id}",
        "/invites/{code}",
        "/oauth2/authorize",
        "/gateway/bot",
        "/guilds/{guild_id}/audit-logs",
        "/channels/{channel_id}/webhooks",
        "/webhooks/{webhook_id}/{token}",
        "/webhooks/{webhook_id}/{token}/messages/{message_id}",
        "/users/@me/channels",
        "/users/@me/relationships/{user_id}",
        "/channels/{channel_id}/recipients/{user_id}",
        "/guilds/{guild_id}/emojis",
        "/guilds/{guild_id}/emojis/{emoji_id}",
    ] {
        assert!(paths.contains_key(p), "openapi lacks {p}");
    }
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(operations, 103, "every route handler is documented");
    assert!(doc["components"]["schemas"]["Message"].is_object());
    // /gateway needs no token; /gateway/bot does.
    let gw = t.call(Method::GET, "/gateway", None, None).await.ok(200);
    assert!(gw["url"].as_str().unwrap().starts_with("ws://"));
    t.call(Method::GET, "/gateway/bot", None, None)
        .await
        .err(401, 40001);
    // The v9 and unversioned prefixes serve the same API.
    let v9 = t
        .http
        .get(format!("{root}/api/v9/users/@me"))
        .header("Authorization", &a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(v9.status(), 200);
    let bare = t
        .http
        .get(format!("{root}/api/users/@me"))
        .header("Authorization", &a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_guild_actors_stop_and_start_again_from_storage() {
    let t =
        TestNode::start_with(|c| c.guilds.idle_timeout = std::time::Duration::from_secs(1)).await;
    let a = t.register("idler").await;
    let (gid, c) = t.guild(&a, "Idle").await;
    t.send(&a, &c, "before the nap").await;
    let root = t.base.trim_end_matches("/api/v10").to_owned();
    // `/readyz` reports this node's own count (the Prometheus gauge is process-wide, and other
    // tests run nodes in this process too).
    let actors = || {
        let http = t.http.clone();
        let url = format!("{root}/readyz");
        async move {
            let body: serde_json::Value = http.get(url).send().await.unwrap().json().await.unwrap();
            body["guild_actors"].as_u64().unwrap()
        }
    };
    assert!(actors().await >= 1);
    // Ticks come every quarter of the timeout; wait for the stop, bounded.
    let mut stopped = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if actors().await == 0 {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "the idle guild actor did not stop");
    // The next command starts it again from storage, with everything in place.
    let history = t
        .get(&format!("/channels/{c}/messages"), &a.token)
        .await
        .ok(200);
    assert_eq!(history[0]["content"], "before the nap");
    assert_eq!(
        t.get(&format!("/guilds/{gid}"), &a.token).await.ok(200)["name"],
        "Idle"
    );
    assert!(actors().await >= 1);
}
