//! Bad input gets Discord-style errors, never a panic, never a half-written record.

use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_types_lengths_and_ids() {
    let t = TestNode::start_with(|c| c.max_json_bytes = 4096).await;
    let a = t.register("badinput").await;
    let (gid, c) = t.guild(&a, "Bad Input").await;
    let raw = |path: String, body: &'static str, ct: &'static str| {
        let req = t
            .http
            .post(format!("{}{}", t.base, path))
            .header("Authorization", a.token.clone())
            .header("Content-Type", ct)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (s, b) = raw(
        format!("/channels/{c}/messages"),
        "{\"content\": ",
        "application/json",
    )
    .await;
    assert_eq!((s, b["code"].as_u64()), (400, Some(50109)));
    let (s, b) = raw(
        format!("/channels/{c}/messages"),
        "[1,2]",
        "application/json",
    )
    .await;
    assert_eq!((s, b["code"].as_u64()), (400, Some(50035)));
    let (s, b) = raw(
        format!("/channels/{c}/messages"),
        "content=hi",
        "text/plain",
    )
    .await;
    assert_eq!((s, b["code"].as_u64()), (400, Some(50035)));
    let big: &'static str =
        Box::leak(format!("{{\"content\": \"{}\"}}", "x".repeat(5000)).into_boxed_str());
    let (s, _) = raw(format!("/channels/{c}/messages"), big, "application/json").await;
    assert_eq!(s, 413);
    // Wrong types and limits name the field.
    let r = t
        .post(
            &format!("/channels/{c}/messages"),
            &a.token,
            json!({"content": ["x"]}),
        )
        .await;
    r.err(400, 50035);
    assert!(r.body["errors"]["content"]["_errors"].is_array());
    let r = t
        .post(
            &format!("/channels/{c}/messages"),
            &a.token,
            json!({"content": "x".repeat(2001)}),
        )
        .await;
    r.err(400, 50035);
    assert_eq!(
        r.body["errors"]["content"]["_errors"][0]["code"],
        "BASE_TYPE_MAX_LENGTH"
    );
    t.post(&format!("/channels/{c}/messages"), &a.token, json!({}))
        .await
        .err(400, 50006);
    t.post(
        &format!("/channels/{c}/messages"),
        &a.token,
        json!({"content": "x", "embeds": vec![json!({"title": "t"}); 11]}),
    )
    .await
    .err(400, 50035);
    let r = t
        .post(
            &format!("/guilds/{gid}/channels"),
            &a.token,
            json!({"name": ""}),
        )
        .await;
    r.err(400, 50035);
    assert!(r.body["errors"]["name"].is_object());
    let r = t.post(&format!("/guilds/{gid}/channels"), &a.token, json!({"name": "ok", "permission_overwrites": [{"id": "nope", "type": 0, "allow": "0", "deny": "0"}]})).await;
    r.err(400, 50035);
    assert!(
        r.body["errors"]["permission_overwrites"]["0"]["id"].is_object(),
        "{}",
        r.body
    );
    t.post(
        &format!("/guilds/{gid}/roles"),
        &a.token,
        json!({"permissions": "lots"}),
    )
    .await
    .err(400, 50035);
    t.post(
        &format!("/guilds/{gid}/roles"),
        &a.token,
        json!({"color": 16777216}),
    )
    .await
    .err(400, 50035);
    t.post("/guilds", &a.token, json!({"name": "x"}))
        .await
        .err(400, 50035);
    t.post("/guilds", &a.token, json!({"name": 5}))
        .await
        .err(400, 50035);
    // Malformed and unknown ids.
    t.get("/channels/12ab/messages", &a.token)
        .await
        .err(400, 50035);
    t.get("/guilds/-1", &a.token).await.err(400, 50035);
    t.get("/guilds/99999999999999999999", &a.token)
        .await
        .err(400, 50035);
    t.get("/guilds/123", &a.token).await.err(404, 10004);
    t.get("/channels/123", &a.token).await.err(404, 10003);
    t.get(&format!("/channels/{c}/messages/123"), &a.token)
        .await
        .err(404, 10008);
    t.get("/users/123", &a.token).await.err(404, 10013);
    t.get("/invites/nothere", &a.token).await.err(404, 10006);
    t.get(&format!("/guilds/{gid}/members/123"), &a.token)
        .await
        .err(404, 10007);
    t.get(&format!("/guilds/{gid}/members?limit=1001"), &a.token)
        .await
        .err(400, 50035);
    t.get(&format!("/guilds/{gid}/members?limit=abc"), &a.token)
        .await
        .err(400, 50035);
    // Registration input.
    let r = t
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({"username": "Bad Name!", "email": "not-an-email", "password": "short"})),
        )
        .await;
    r.err(400, 50035);
    for f in ["username", "email", "password"] {
        assert!(r.body["errors"][f].is_object(), "{f}: {}", r.body);
    }
    t.call(
        Method::POST,
        "/auth/register",
        None,
        Some(json!({"username": "nopw"})),
    )
    .await
    .err(400, 50035);
    // Unknown routes answer with a JSON 404.
    let r = t.get("/no/such/route", &a.token).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["code"], 0);
    // Nothing half-written: the guild still has exactly its general channel and no messages.
    let chans = t
        .get(&format!("/guilds/{gid}/channels"), &a.token)
        .await
        .ok(200);
    assert_eq!(chans.as_array().unwrap().len(), 1);
    assert_eq!(
        t.get(&format!("/channels/{c}/messages"), &a.token)
            .await
            .ok(200),
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_leaves_nothing_behind() {
    // Role deletion rewrites members and channels in one batch: after an invalid request the
    // state is exactly as before, and after a valid one every part changed together.
    let t = TestNode::start().await;
    let a = t.register("atomic").await;
    let b = t.register("atomic2").await;
    let (gid, c) = t.guild(&a, "Atomic").await;
    t.join(&a, &c, &b).await;
    let role = id_of(
        &t.post(
            &format!("/guilds/{gid}/roles"),
            &a.token,
            json!({"name": "r"}),
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
    t.put(
        &format!("/channels/{c}/permissions/{role}"),
        &a.token,
        json!({"type": 0, "allow": "2048"}),
    )
    .await
    .ok(204);
    t.delete(&format!("/guilds/{gid}/roles/{role}"), &b.token)
        .await
        .err(403, 50013);
    assert_eq!(
        t.get(&format!("/guilds/{gid}/members/{}", b.id), &a.token)
            .await
            .ok(200)["roles"][0],
        role.as_str()
    );
    t.delete(&format!("/guilds/{gid}/roles/{role}"), &a.token)
        .await
        .ok(204);
    assert_eq!(
        t.get(&format!("/guilds/{gid}/members/{}", b.id), &a.token)
            .await
            .ok(200)["roles"],
        json!([])
    );
    let ch = t.get(&format!("/channels/{c}"), &a.token).await.ok(200);
    assert!(
        ch["permission_overwrites"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["id"] != role.as_str())
    );
}
