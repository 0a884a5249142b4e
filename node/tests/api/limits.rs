//! Every guild limit is configurable, and crossing it gives Discord's error.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_guild_limits_are_enforced() {
    let t = TestNode::start_with(|c| {
        c.guilds.max_guilds_per_user = 2;
        c.guilds.max_roles = 2;
        c.guilds.max_channels = 2;
        c.guilds.max_invites = 1;
        c.guilds.max_reactions_per_message = 2;
    })
    .await;
    let a = t.register("limiter").await;
    let b = t.register("joiner").await;
    let (gid, c) = t.guild(&a, "One").await;
    t.guild(&a, "Two").await;
    t.post("/guilds", &a.token, json!({"name": "Three"}))
        .await
        .err(400, 30001);
    // Roles: @everyone plus one.
    t.post(
        &format!("/guilds/{gid}/roles"),
        &a.token,
        json!({"name": "r1"}),
    )
    .await
    .ok(200);
    t.post(
        &format!("/guilds/{gid}/roles"),
        &a.token,
        json!({"name": "r2"}),
    )
    .await
    .err(400, 30005);
    // Channels: #general plus one.
    t.post(
        &format!("/guilds/{gid}/channels"),
        &a.token,
        json!({"name": "c2"}),
    )
    .await
    .ok(201);
    t.post(
        &format!("/guilds/{gid}/channels"),
        &a.token,
        json!({"name": "c3"}),
    )
    .await
    .err(400, 30013);
    // Invites.
    t.post(
        &format!("/channels/{c}/invites"),
        &a.token,
        json!({"unique": true}),
    )
    .await
    .ok(200);
    t.post(
        &format!("/channels/{c}/invites"),
        &a.token,
        json!({"unique": true}),
    )
    .await
    .err(400, 30016);
    // Reactions: two distinct emoji per message; joining an existing one is still fine.
    let m = id_of(&t.send(&a, &c, "react").await);
    let base = format!("/channels/{c}/messages/{m}/reactions");
    t.put(&format!("{base}/%F0%9F%91%8D/@me"), &a.token, json!({}))
        .await
        .ok(204);
    t.put(&format!("{base}/%E2%9D%A4/@me"), &a.token, json!({}))
        .await
        .ok(204);
    let r = t
        .put(&format!("{base}/%F0%9F%8E%89/@me"), &a.token, json!({}))
        .await;
    r.err(400, 30010);
    assert!(
        r.body["message"].as_str().unwrap().contains("(2)"),
        "the message names the configured limit"
    );
    // A user in two guilds cannot join a third.
    let (_, c3) = t.guild(&b, "B1").await;
    let _ = c3;
    t.guild(&b, "B2").await;
    let inv = t
        .get(&format!("/channels/{c}/invites"), &a.token)
        .await
        .ok(200);
    t.post(
        &format!("/invites/{}", inv[0]["code"].as_str().unwrap()),
        &b.token,
        json!({}),
    )
    .await
    .err(400, 30001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_queue_of_one_still_orders_and_acknowledges_every_send() {
    let t = TestNode::start_with(|c| c.guilds.commit_depth = 1).await;
    let a = t.register("queued").await;
    let (_, c) = t.guild(&a, "Queue").await;
    let sends = (0..40).map(|i| {
        let t = &t;
        let a = &a;
        let c = &c;
        async move {
            t.post(
                &format!("/channels/{c}/messages"),
                &a.token,
                json!({"content": format!("n{i}")}),
            )
            .await
        }
    });
    let results = futures::future::join_all(sends).await;
    assert!(results.iter().all(|r| r.status == 200));
    let history = t
        .get(&format!("/channels/{c}/messages?limit=100"), &a.token)
        .await
        .ok(200);
    assert_eq!(history.as_array().unwrap().len(), 40);
    let ids: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| id_of(m).parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no duplicates"
    );
}
