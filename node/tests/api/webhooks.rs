//! Webhooks: made by members with MANAGE_WEBHOOKS, then driven by their id and token alone:
//! execute (with `wait`, a `username` override), read, edit and delete their own messages,
//! change and delete themselves; every change announced and in the audit log.

use reqwest::Method;
use serde_json::{Value, json};

use crate::gw::Gw;
use crate::support::*;

/// The next dispatch other than presences and audit-log entries (the owner gets those too).
async fn next_change(gw: &mut Gw) -> (String, Value) {
    loop {
        let (name, d) = gw.next_event().await;
        if name != "GUILD_AUDIT_LOG_ENTRY_CREATE" {
            return (name, d);
        }
    }
}

/// A request with no `Authorization`: the token in the path is the authority.
async fn anonymous(t: &TestNode, method: Method, path: &str, body: Option<Value>) -> Resp {
    t.call(method, path, None, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_posts_as_itself_with_its_token_alone() {
    let mut t = TestNode::start().await;
    let a = t.register("hookowner").await;
    let b = t.register("hookmember").await;
    let (gid, general) = t.guild(&a, "Hooked").await;
    t.join(&a, &general, &b).await;
    let mut owner = Gw::joined(&t, "v=10&encoding=json", &a.token, &gid).await;

    // Who may make one, and with what name.
    let path = format!("/channels/{general}/webhooks");
    t.post(&path, &b.token, json!({"name": "Mine"}))
        .await
        .err(403, 50013);
    for bad in ["", "Clyde helper", "my discord bot", &"x".repeat(81)] {
        t.post(&path, &a.token, json!({"name": bad}))
            .await
            .err(400, 50035);
    }
    let hook = t
        .post(&path, &a.token, json!({"name": "Deploys"}))
        .await
        .ok(200);
    let id = id_of(&hook);
    let token = hook["token"].as_str().expect("token shown once").to_owned();
    assert_eq!(hook["type"], 1);
    assert_eq!(hook["channel_id"], general.as_str());
    assert_eq!(hook["guild_id"], gid.as_str());
    assert_eq!(hook["user"]["id"], a.id.as_str());
    let (name, d) = next_change(&mut owner).await;
    assert_eq!(name, "WEBHOOKS_UPDATE");
    assert_eq!(d, json!({"guild_id": gid, "channel_id": general}));

    // Listed to managers, never with the token again.
    let listed = t.get(&path, &a.token).await.ok(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("token").is_none(), "{listed}");
    t.get(&path, &b.token).await.err(403, 50013);
    let in_guild = t
        .get(&format!("/guilds/{gid}/webhooks"), &a.token)
        .await
        .ok(200);
    assert_eq!(in_guild[0]["id"], id.as_str());

    // The token alone reads it; a wrong one or an unknown id does not.
    let with_token = format!("/webhooks/{id}/{token}");
    let seen = anonymous(&t, Method::GET, &with_token, None).await.ok(200);
    assert_eq!(seen["name"], "Deploys");
    assert!(seen.get("user").is_none(), "no creator for a token: {seen}");
    anonymous(&t, Method::GET, &format!("/webhooks/{id}/{token}x"), None)
        .await
        .err(401, 50027);
    anonymous(&t, Method::GET, &format!("/webhooks/1/{token}"), None)
        .await
        .err(404, 10015);

    // Execute: with wait the stored message, else 204; the author is the webhook.
    let posted = anonymous(
        &t,
        Method::POST,
        &format!("{with_token}?wait=true"),
        Some(json!({"content": "v1.2 shipped", "username": "Release"})),
    )
    .await
    .ok(200);
    assert_eq!(posted["webhook_id"], id.as_str());
    assert_eq!(posted["author"]["id"], id.as_str());
    assert_eq!(posted["author"]["username"], "Release");
    assert_eq!(posted["author"]["bot"], true);
    let (name, created) = next_change(&mut owner).await;
    assert_eq!(name, "MESSAGE_CREATE");
    assert_eq!(created["id"], posted["id"]);
    assert_eq!(created["webhook_id"], id.as_str());
    assert!(created.get("member").is_none(), "a webhook is not a member");
    anonymous(
        &t,
        Method::POST,
        &with_token,
        Some(json!({"embeds": [{"title": "no wait"}]})),
    )
    .await
    .ok(204);
    let history = t
        .get(&format!("/channels/{general}/messages?limit=2"), &a.token)
        .await
        .ok(200);
    assert_eq!(history[0]["author"]["username"], "Deploys");
    assert_eq!(history[0]["embeds"][0]["title"], "no wait");
    assert_eq!(history[1]["id"], posted["id"]);
    assert_eq!(history[1]["author"]["username"], "Release");
    for (query, body, status, code) in [
        ("", json!({}), 400, 50006),
        (
            "",
            json!({"content": "x", "username": "discord"}),
            400,
            50035,
        ),
        (
            "",
            json!({"content": "x", "avatar_url": "ftp://x"}),
            400,
            50035,
        ),
        ("?thread_id=1", json!({"content": "x"}), 404, 10003),
    ] {
        anonymous(
            &t,
            Method::POST,
            &format!("{with_token}{query}"),
            Some(body),
        )
        .await
        .err(status, code);
    }
    anonymous(
        &t,
        Method::POST,
        &format!("/webhooks/{id}/nope"),
        Some(json!({"content": "x"})),
    )
    .await
    .err(401, 50027);

    // Its own messages: read, edit, delete; nobody else's.
    let mine = format!("{with_token}/messages/{}", id_of(&posted));
    let edited = anonymous(&t, Method::PATCH, &mine, Some(json!({"content": "v1.2.1"})))
        .await
        .ok(200);
    assert_eq!(edited["content"], "v1.2.1");
    assert_eq!(edited["author"]["username"], "Release");
    assert!(edited["edited_timestamp"].is_string());
    assert_eq!(next_change(&mut owner).await.0, "MESSAGE_CREATE");
    assert_eq!(next_change(&mut owner).await.0, "MESSAGE_UPDATE");
    let users = t.send(&a, &general, "a user's").await;
    anonymous(
        &t,
        Method::GET,
        &format!("{with_token}/messages/{}", id_of(&users)),
        None,
    )
    .await
    .err(404, 10008);
    assert_eq!(
        anonymous(&t, Method::GET, &mine, None).await.ok(200)["content"],
        "v1.2.1"
    );
    anonymous(&t, Method::DELETE, &mine, None).await.ok(204);
    anonymous(&t, Method::GET, &mine, None)
        .await
        .err(404, 10008);

    // Changed by its token (name) and by a manager (channel); a token cannot move it.
    let renamed = anonymous(
        &t,
        Method::PATCH,
        &with_token,
        Some(json!({"name": "Renamed"})),
    )
    .await
    .ok(200);
    assert_eq!(renamed["name"], "Renamed");
    anonymous(
        &t,
        Method::PATCH,
        &with_token,
        Some(json!({"channel_id": general})),
    )
    .await
    .err(400, 50035);
    let other = t
        .post(
            &format!("/guilds/{gid}/channels"),
            &a.token,
            json!({"name": "ops"}),
        )
        .await
        .ok(201);
    let moved = t
        .patch(
            &format!("/webhooks/{id}"),
            &a.token,
            json!({"channel_id": other["id"]}),
        )
        .await
        .ok(200);
    assert_eq!(moved["channel_id"], other["id"]);
    t.patch(&format!("/webhooks/{id}"), &b.token, json!({"name": "x"}))
        .await
        .err(403, 50013);

    // Deleted by its token: gone for everyone.
    anonymous(&t, Method::DELETE, &with_token, None)
        .await
        .ok(204);
    anonymous(
        &t,
        Method::POST,
        &with_token,
        Some(json!({"content": "late"})),
    )
    .await
    .err(404, 10015);
    t.get(&format!("/webhooks/{id}"), &a.token)
        .await
        .err(404, 10015);

    // The audit log: created and moved by the owner, renamed and deleted by the token.
    let log = t
        .get(&format!("/guilds/{gid}/audit-logs?limit=100"), &a.token)
        .await
        .ok(200);
    let hooks: Vec<&Value> = log["audit_log_entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| (50..=52).contains(&e["action_type"].as_u64().unwrap()))
        .collect();
    let kinds: Vec<u64> = hooks
        .iter()
        .map(|e| e["action_type"].as_u64().unwrap())
        .collect();
    assert_eq!(kinds, vec![52, 51, 51, 50], "{log}");
    assert!(hooks.iter().all(|e| e["target_id"] == id.as_str()));
    assert_eq!(hooks[3]["user_id"], a.id.as_str());
    assert_eq!(
        hooks[2]["user_id"],
        Value::Null,
        "the token's rename names no user"
    );
    assert_eq!(hooks[1]["user_id"], a.id.as_str());

    // Messages it posted keep their author across a restart.
    t.restart().await;
    let history = t
        .get(&format!("/channels/{general}/messages?limit=5"), &a.token)
        .await
        .ok(200);
    let by_hook: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["webhook_id"] == id.as_str())
        .collect();
    assert_eq!(by_hook.len(), 1, "{history}");
    assert_eq!(by_hook[0]["author"]["username"], "Deploys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_holds_at_most_fifteen_webhooks_and_takes_them_along_when_deleted() {
    let t = TestNode::start().await;
    let a = t.register("hooklimits").await;
    let (gid, _) = t.guild(&a, "Limits").await;
    let ch = t
        .post(
            &format!("/guilds/{gid}/channels"),
            &a.token,
            json!({"name": "busy"}),
        )
        .await
        .ok(201);
    let ch = id_of(&ch);
    let path = format!("/channels/{ch}/webhooks");
    let mut made = Vec::new();
    for i in 0..15 {
        let h = t
            .post(&path, &a.token, json!({"name": format!("hook {i}")}))
            .await
            .ok(200);
        made.push((id_of(&h), h["token"].as_str().unwrap().to_owned()));
    }
    t.post(&path, &a.token, json!({"name": "one too many"}))
        .await
        .err(400, 30007);
    // A category holds no messages, so no webhook either.
    let category = t
        .post(
            &format!("/guilds/{gid}/channels"),
            &a.token,
            json!({"name": "Section", "type": 4}),
        )
        .await
        .ok(201);
    t.post(
        &format!("/channels/{}/webhooks", id_of(&category)),
        &a.token,
        json!({"name": "nope"}),
    )
    .await
    .err(400, 50035);

    t.delete(&format!("/channels/{ch}"), &a.token).await.ok(200);
    for (id, token) in &made {
        t.call(Method::GET, &format!("/webhooks/{id}/{token}"), None, None)
            .await
            .err(404, 10015);
    }
    assert_eq!(
        t.get(&format!("/guilds/{gid}/webhooks"), &a.token)
            .await
            .ok(200),
        json!([])
    );
}
