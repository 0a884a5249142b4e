//! A restarted node on the same data directory has everything it acknowledged.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_users_guilds_messages_tokens_and_bots() {
    let mut t = TestNode::start().await;
    let a = t.register("durable").await;
    let b = t.register("durable2").await;
    let (gid, c) = t.guild(&a, "Durable").await;
    t.join(&a, &c, &b).await;
    let role = id_of(
        &t.post(
            &format!("/guilds/{gid}/roles"),
            &a.token,
            json!({"name": "kept"}),
        )
        .await
        .ok(200),
    );
    t.put(
        &format!("/guilds/{gid}/members/{}/roles/{role}", b.id),
        &a.token,
        json!({}),
    )
    .await
    .ok(204);
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(id_of(&t.send(&b, &c, &format!("msg {i}")).await));
    }
    t.put(
        &format!(
            "/channels/{c}/messages/{}/reactions/%F0%9F%91%8D/@me",
            ids[0]
        ),
        &a.token,
        json!({}),
    )
    .await
    .ok(204);
    t.put(
        &format!("/channels/{c}/pins/{}", ids[1]),
        &a.token,
        json!({}),
    )
    .await
    .ok(204);
    let app = id_of(
        &t.post("/applications", &a.token, json!({"name": "Keeper"}))
            .await
            .ok(201),
    );
    let bot = t
        .post(
            &format!("/applications/{app}/bot/reset"),
            &a.token,
            json!({}),
        )
        .await
        .ok(200)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let invite = t
        .post(
            &format!("/channels/{c}/invites"),
            &a.token,
            json!({"max_age": 0}),
        )
        .await
        .ok(200)["code"]
        .as_str()
        .unwrap()
        .to_owned();

    t.restart().await;

    // Access tokens still verify: the signing keys live in the data directory.
    let g = t.get(&format!("/guilds/{gid}"), &a.token).await.ok(200);
    assert_eq!(g["name"], "Durable");
    assert_eq!(
        t.get(&format!("/guilds/{gid}/members/{}", b.id), &a.token)
            .await
            .ok(200)["roles"][0],
        role.as_str()
    );
    let history = t
        .get(&format!("/channels/{c}/messages?limit=100"), &b.token)
        .await
        .ok(200);
    let got: Vec<String> = history
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(id_of)
        .collect();
    assert_eq!(got, ids);
    let first = t
        .get(&format!("/channels/{c}/messages/{}", ids[0]), &a.token)
        .await
        .ok(200);
    assert_eq!(first["reactions"][0]["count"], 1);
    assert_eq!(
        t.get(&format!("/channels/{c}/pins"), &a.token)
            .await
            .ok(200)[0]["id"],
        ids[1].as_str()
    );
    assert_eq!(
        t.get(&format!("/channels/{c}"), &a.token).await.ok(200)["last_message_id"],
        ids[19].as_str()
    );
    t.get("/users/@me", &format!("Bot {bot}")).await.ok(200);
    let c2 = t.register("durable3").await;
    t.post(&format!("/invites/{invite}"), &c2.token, json!({}))
        .await
        .ok(200);
    let login = t
        .call(
            reqwest::Method::POST,
            "/auth/login",
            None,
            Some(json!({"login": "durable", "password": "correct horse battery"})),
        )
        .await
        .ok(200);
    assert!(login["token"].is_string());
    // Refresh tokens survive too.
    t.call(
        reqwest::Method::POST,
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": a.refresh_token})),
    )
    .await
    .ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_token_and_a_token_of_a_revoked_family_stay_refused_after_a_restart() {
    let mut t = TestNode::start().await;
    let alice = t.register("alice").await;
    let bob = t.register("bob").await;
    let carol = t.register("carol").await;
    let r = t
        .call(
            reqwest::Method::POST,
            "/auth/logout",
            Some(&alice.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 204);
    let refresh = |token: &str| {
        t.call(
            reqwest::Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": token})),
        )
    };
    let rotated = refresh(&bob.refresh_token).await.ok(200)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The rotated token presented again revokes bob's whole family.
    assert_eq!(refresh(&bob.refresh_token).await.status, 401);
    let ended = [&alice.token, &bob.token, &rotated];
    for token in ended {
        assert_eq!(t.get("/users/@me", token).await.status, 401);
    }

    t.restart().await;
    for token in ended {
        assert_eq!(t.get("/users/@me", token).await.status, 401);
    }
    t.get("/users/@me", &carol.token).await.ok(200);
}
