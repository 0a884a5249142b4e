//! A caller never learns anything about a guild it is not in.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_guild_ids_give_errors_never_data() {
    let t = TestNode::start().await;
    let owner = t.register("victim").await;
    let outsider = t.register("outsider").await;
    let (gid, c) = t.guild(&owner, "Private Guild").await;
    let m = id_of(&t.send(&owner, &c, "private words").await);
    let role = id_of(
        &t.post(
            &format!("/guilds/{gid}/roles"),
            &owner.token,
            json!({"name": "r"}),
        )
        .await
        .ok(200),
    );
    t.put(
        &format!("/channels/{c}/messages/{m}/reactions/%F0%9F%91%8D/@me"),
        &owner.token,
        json!({}),
    )
    .await
    .ok(204);
    t.put(&format!("/channels/{c}/pins/{m}"), &owner.token, json!({}))
        .await
        .ok(204);
    let o = &owner.id;
    let e = "%F0%9F%91%8D";
    let body = || Some(json!({"name": "xx", "content": "x", "messages": [m, m], "type": 0}));
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/guilds/{gid}"), None),
        (Method::PATCH, format!("/guilds/{gid}"), body()),
        (Method::DELETE, format!("/guilds/{gid}"), None),
        (Method::GET, format!("/guilds/{gid}/channels"), None),
        (Method::POST, format!("/guilds/{gid}/channels"), body()),
        (
            Method::PATCH,
            format!("/guilds/{gid}/channels"),
            Some(json!([{"id": c, "position": 1}])),
        ),
        (Method::GET, format!("/guilds/{gid}/roles"), None),
        (Method::POST, format!("/guilds/{gid}/roles"), body()),
        (Method::GET, format!("/guilds/{gid}/roles/{role}"), None),
        (Method::PATCH, format!("/guilds/{gid}/roles/{role}"), body()),
        (Method::DELETE, format!("/guilds/{gid}/roles/{role}"), None),
        (
            Method::PATCH,
            format!("/guilds/{gid}/roles"),
            Some(json!([{"id": role, "position": 1}])),
        ),
        (Method::GET, format!("/guilds/{gid}/members"), None),
        (Method::GET, format!("/guilds/{gid}/members/{o}"), None),
        (
            Method::PATCH,
            format!("/guilds/{gid}/members/{o}"),
            Some(json!({"nick": "x"})),
        ),
        (
            Method::PATCH,
            format!("/guilds/{gid}/members/@me"),
            Some(json!({"nick": "x"})),
        ),
        (Method::DELETE, format!("/guilds/{gid}/members/{o}"), None),
        (
            Method::PUT,
            format!("/guilds/{gid}/members/{o}/roles/{role}"),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("/guilds/{gid}/members/{o}/roles/{role}"),
            None,
        ),
        (Method::GET, format!("/guilds/{gid}/bans"), None),
        (Method::GET, format!("/guilds/{gid}/bans/{o}"), None),
        (
            Method::PUT,
            format!("/guilds/{gid}/bans/{o}"),
            Some(json!({})),
        ),
        (Method::DELETE, format!("/guilds/{gid}/bans/{o}"), None),
        (Method::GET, format!("/guilds/{gid}/invites"), None),
        (Method::GET, format!("/users/@me/guilds/{gid}/member"), None),
        (Method::DELETE, format!("/users/@me/guilds/{gid}"), None),
        (Method::GET, format!("/channels/{c}"), None),
        (Method::PATCH, format!("/channels/{c}"), body()),
        (Method::DELETE, format!("/channels/{c}"), None),
        (
            Method::PUT,
            format!("/channels/{c}/permissions/{gid}"),
            Some(json!({"type": 0})),
        ),
        (
            Method::DELETE,
            format!("/channels/{c}/permissions/{gid}"),
            None,
        ),
        (Method::GET, format!("/channels/{c}/invites"), None),
        (
            Method::POST,
            format!("/channels/{c}/invites"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/channels/{c}/typing"),
            Some(json!({})),
        ),
        (Method::GET, format!("/channels/{c}/messages"), None),
        (Method::POST, format!("/channels/{c}/messages"), body()),
        (Method::GET, format!("/channels/{c}/messages/{m}"), None),
        (Method::PATCH, format!("/channels/{c}/messages/{m}"), body()),
        (Method::DELETE, format!("/channels/{c}/messages/{m}"), None),
        (
            Method::POST,
            format!("/channels/{c}/messages/bulk-delete"),
            body(),
        ),
        (
            Method::PUT,
            format!("/channels/{c}/messages/{m}/reactions/{e}/@me"),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("/channels/{c}/messages/{m}/reactions/{e}/@me"),
            None,
        ),
        (
            Method::DELETE,
            format!("/channels/{c}/messages/{m}/reactions/{e}/{o}"),
            None,
        ),
        (
            Method::GET,
            format!("/channels/{c}/messages/{m}/reactions/{e}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/channels/{c}/messages/{m}/reactions"),
            None,
        ),
        (
            Method::DELETE,
            format!("/channels/{c}/messages/{m}/reactions/{e}"),
            None,
        ),
        (Method::GET, format!("/channels/{c}/pins"), None),
        (
            Method::PUT,
            format!("/channels/{c}/pins/{m}"),
            Some(json!({})),
        ),
        (Method::DELETE, format!("/channels/{c}/pins/{m}"), None),
        (
            Method::PUT,
            format!("/channels/{c}/messages/pins/{m}"),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("/channels/{c}/messages/pins/{m}"),
            None,
        ),
    ];
    for (method, path, body) in routes {
        let r = t
            .call(method.clone(), &path, Some(&outsider.token), body)
            .await;
        assert!(
            r.status == 403 || r.status == 404,
            "{method} {path} answered {}: {}",
            r.status,
            r.body
        );
        let keys: Vec<&String> = r
            .body
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: {}", r.body))
            .keys()
            .collect();
        assert!(
            keys.iter()
                .all(|k| ["code", "message"].contains(&k.as_str())),
            "{method} {path} leaked: {}",
            r.body
        );
        assert!(
            !r.body.to_string().contains("private words")
                && !r.body.to_string().contains("Private Guild")
        );
    }
    // Nothing changed for the owner.
    let g = t.get(&format!("/guilds/{gid}"), &owner.token).await.ok(200);
    assert_eq!(g["name"], "Private Guild");
    assert_eq!(
        t.get(&format!("/channels/{c}/messages"), &owner.token)
            .await
            .ok(200)[0]["content"],
        "private words"
    );
    assert_eq!(
        t.get(&format!("/guilds/{gid}/members?limit=100"), &owner.token)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        t.get("/users/@me/guilds", &outsider.token).await.ok(200),
        json!([])
    );
    // Ids of another guild's channel used under one's own guild are unknown, not shared.
    let (own_gid, _) = t.guild(&outsider, "Own").await;
    t.get(&format!("/guilds/{own_gid}/roles/{role}"), &outsider.token)
        .await
        .err(404, 10011);
    t.get(&format!("/guilds/{own_gid}/members/{o}"), &outsider.token)
        .await
        .err(404, 10007);
}
