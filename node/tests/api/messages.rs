//! Messages, history, replies, nonces, mentions, reactions and pins.

use serde_json::json;

use crate::support::*;

/// The README walkthrough: register → guild → channel → invite → message → history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_register_guild_channel_invite_message_history() {
    let t = TestNode::start().await;
    let alice = t.register("alice").await;
    let bob = t.register("bob").await;
    let (gid, general) = t.guild(&alice, "Walkthrough").await;
    let chan = t
        .post(
            &format!("/guilds/{gid}/channels"),
            &alice.token,
            json!({"name": "Team Chat", "topic": "plans"}),
        )
        .await
        .ok(201);
    assert_eq!(chan["name"], "team-chat");
    assert_eq!(chan["type"], 0);
    assert_eq!(chan["guild_id"], gid.as_str());
    let cid = id_of(&chan);
    t.join(&alice, &general, &bob).await;
    let members = t
        .get(&format!("/guilds/{gid}/members?limit=10"), &alice.token)
        .await
        .ok(200);
    assert_eq!(members.as_array().unwrap().len(), 2);
    let m1 = t.send(&alice, &cid, "hello bob").await;
    let m2 = t.send(&bob, &cid, "hi alice").await;
    assert_eq!(m1["author"]["id"], alice.id.as_str());
    assert_eq!(m1["channel_id"], cid.as_str());
    assert!(m1["timestamp"].as_str().unwrap().ends_with("+00:00"));
    let history = t
        .get(&format!("/channels/{cid}/messages"), &bob.token)
        .await
        .ok(200);
    let ids: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![m2["id"].as_str().unwrap(), m1["id"].as_str().unwrap()],
        "newest first"
    );
    let ch = t.get(&format!("/channels/{cid}"), &bob.token).await.ok(200);
    assert_eq!(ch["last_message_id"], m2["id"]);
    let guilds = t.get("/users/@me/guilds", &bob.token).await.ok(200);
    assert_eq!(guilds[0]["id"], gid.as_str());
    assert_eq!(guilds[0]["owner"], false);
    assert!(guilds[0]["permissions"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_cursors_before_after_around_and_limits() {
    let t = TestNode::start().await;
    let a = t.register("hist").await;
    let (_, c) = t.guild(&a, "History").await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(id_of(&t.send(&a, &c, &format!("m{i}")).await));
    }
    let list =
        |v: serde_json::Value| -> Vec<String> { v.as_array().unwrap().iter().map(id_of).collect() };
    let latest = list(
        t.get(&format!("/channels/{c}/messages?limit=5"), &a.token)
            .await
            .ok(200),
    );
    assert_eq!(
        latest,
        ids[25..30].iter().rev().cloned().collect::<Vec<_>>()
    );
    let before = list(
        t.get(
            &format!("/channels/{c}/messages?before={}&limit=3", ids[10]),
            &a.token,
        )
        .await
        .ok(200),
    );
    assert_eq!(before, vec![ids[9].clone(), ids[8].clone(), ids[7].clone()]);
    let after = list(
        t.get(
            &format!("/channels/{c}/messages?after={}&limit=3", ids[10]),
            &a.token,
        )
        .await
        .ok(200),
    );
    assert_eq!(
        after,
        vec![ids[13].clone(), ids[12].clone(), ids[11].clone()]
    );
    let around = list(
        t.get(
            &format!("/channels/{c}/messages?around={}&limit=5", ids[10]),
            &a.token,
        )
        .await
        .ok(200),
    );
    assert!(around.contains(&ids[10]), "around includes the anchor");
    assert_eq!(around.len(), 5);
    assert!(
        around
            .windows(2)
            .all(|w| w[0] > w[1] || w[0].len() > w[1].len()),
        "newest first"
    );
    assert_eq!(
        list(
            t.get(&format!("/channels/{c}/messages"), &a.token)
                .await
                .ok(200)
        )
        .len(),
        30
    );
    t.get(&format!("/channels/{c}/messages?limit=0"), &a.token)
        .await
        .err(400, 50035);
    t.get(&format!("/channels/{c}/messages?limit=101"), &a.token)
        .await
        .err(400, 50035);
    t.get(
        &format!("/channels/{c}/messages?before=1&after=2"),
        &a.token,
    )
    .await
    .err(400, 50035);
    t.get(&format!("/channels/{c}/messages?before=abc"), &a.token)
        .await
        .err(400, 50035);
    let one = t
        .get(&format!("/channels/{c}/messages/{}", ids[3]), &a.token)
        .await
        .ok(200);
    assert_eq!(one["content"], "m3");
    t.get(&format!("/channels/{c}/messages/12345"), &a.token)
        .await
        .err(404, 10008);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_nonces_and_mentions() {
    let t = TestNode::start().await;
    let a = t.register("replier").await;
    let b = t.register("mentioned").await;
    let (gid, c) = t.guild(&a, "Replies").await;
    t.join(&a, &c, &b).await;
    let first = t.send(&b, &c, "original").await;
    let reply = t
        .post(
            &format!("/channels/{c}/messages"),
            &a.token,
            json!({"content": "a reply", "message_reference": {"message_id": first["id"]}}),
        )
        .await
        .ok(200);
    assert_eq!(reply["type"], 19);
    assert_eq!(reply["referenced_message"]["id"], first["id"]);
    assert_eq!(reply["message_reference"]["channel_id"], c.as_str());
    assert_eq!(
        reply["mentions"][0]["id"],
        b.id.as_str(),
        "the replied-to author is mentioned"
    );
    let r = t
        .post(
            &format!("/channels/{c}/messages"),
            &a.token,
            json!({"content": "x", "message_reference": {"message_id": "99999"}}),
        )
        .await;
    r.err(400, 50035);
    assert!(r.body["errors"]["message_reference"].is_object());
    let fetched = t
        .get(
            &format!("/channels/{c}/messages/{}", id_of(&reply)),
            &a.token,
        )
        .await
        .ok(200);
    assert_eq!(fetched["referenced_message"]["content"], "original");

    // enforce_nonce returns the first message for a repeated nonce.
    let body = json!({"content": "once", "nonce": "abc123", "enforce_nonce": true});
    let n1 = t
        .post(&format!("/channels/{c}/messages"), &a.token, body.clone())
        .await
        .ok(200);
    let n2 = t
        .post(&format!("/channels/{c}/messages"), &a.token, body)
        .await
        .ok(200);
    assert_eq!(n1["id"], n2["id"]);
    assert_eq!(n1["nonce"], "abc123");
    let n3 = t
        .post(
            &format!("/channels/{c}/messages"),
            &a.token,
            json!({"content": "twice", "nonce": "abc123"}),
        )
        .await
        .ok(200);
    assert_ne!(
        n3["id"], n1["id"],
        "without enforce_nonce a nonce does not deduplicate"
    );

    // Mentions: members only; @everyone only with MENTION_EVERYONE; roles when mentionable.
    let role = t
        .post(
            &format!("/guilds/{gid}/roles"),
            &a.token,
            json!({"name": "ops", "mentionable": true}),
        )
        .await
        .ok(200);
    let m = t
        .send(
            &a,
            &c,
            &format!(
                "hey <@{}> <@!12345> <@&{}> @everyone",
                b.id,
                role["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(m["mentions"].as_array().unwrap().len(), 1);
    assert_eq!(m["mentions"][0]["id"], b.id.as_str());
    assert_eq!(m["mention_roles"][0], role["id"]);
    assert_eq!(
        m["mention_everyone"], true,
        "the owner may mention everyone"
    );
    let everyone_role = gid.clone();
    t.patch(
        &format!("/guilds/{gid}/roles/{everyone_role}"),
        &a.token,
        json!({"permissions": "3072"}),
    )
    .await
    .ok(200);
    let m = t.send(&b, &c, "@everyone hi").await;
    assert_eq!(
        m["mention_everyone"], false,
        "no MENTION_EVERYONE, no @everyone"
    );
    let m = t
        .post(
            &format!("/channels/{c}/messages"),
            &a.token,
            json!({"content": format!("<@{}>", b.id), "allowed_mentions": {"parse": []}}),
        )
        .await
        .ok(200);
    assert_eq!(
        m["mentions"].as_array().unwrap().len(),
        0,
        "allowed_mentions suppresses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_delete_and_bulk_delete() {
    let t = TestNode::start().await;
    let a = t.register("editor").await;
    let b = t.register("other").await;
    let (_, c) = t.guild(&a, "Edits").await;
    t.join(&a, &c, &b).await;
    let m = t.send(&a, &c, "draft").await;
    let mid = id_of(&m);
    let e = t
        .patch(
            &format!("/channels/{c}/messages/{mid}"),
            &a.token,
            json!({"content": "final"}),
        )
        .await
        .ok(200);
    assert_eq!(e["content"], "final");
    assert!(e["edited_timestamp"].is_string());
    t.patch(
        &format!("/channels/{c}/messages/{mid}"),
        &b.token,
        json!({"content": "hijack"}),
    )
    .await
    .err(403, 50005);
    t.patch(
        &format!("/channels/{c}/messages/{mid}"),
        &a.token,
        json!({"content": "x".repeat(2001)}),
    )
    .await
    .err(400, 50035);
    assert_eq!(
        t.get(&format!("/channels/{c}/messages/{mid}"), &b.token)
            .await
            .ok(200)["content"],
        "final"
    );
    // Only the author or MANAGE_MESSAGES deletes.
    let bm = t.send(&b, &c, "mine").await;
    t.delete(&format!("/channels/{c}/messages/{mid}"), &b.token)
        .await
        .err(403, 50013);
    t.delete(&format!("/channels/{c}/messages/{}", id_of(&bm)), &b.token)
        .await
        .ok(204);
    t.delete(&format!("/channels/{c}/messages/{mid}"), &a.token)
        .await
        .ok(204);
    t.get(&format!("/channels/{c}/messages/{mid}"), &a.token)
        .await
        .err(404, 10008);
    t.delete(&format!("/channels/{c}/messages/{mid}"), &a.token)
        .await
        .err(404, 10008);
    let ids: Vec<String> = futures_ids(&t, &a, &c, 5).await;
    t.post(
        &format!("/channels/{c}/messages/bulk-delete"),
        &a.token,
        json!({"messages": [ids[0]]}),
    )
    .await
    .err(400, 50035);
    t.post(
        &format!("/channels/{c}/messages/bulk-delete"),
        &b.token,
        json!({"messages": ids}),
    )
    .await
    .err(403, 50013);
    // A snowflake from 2015 is older than two weeks.
    t.post(
        &format!("/channels/{c}/messages/bulk-delete"),
        &a.token,
        json!({"messages": [ids[0], "4194304"]}),
    )
    .await
    .err(400, 50034);
    t.post(
        &format!("/channels/{c}/messages/bulk-delete"),
        &a.token,
        json!({"messages": ids[..4]}),
    )
    .await
    .ok(204);
    let left = t
        .get(&format!("/channels/{c}/messages"), &a.token)
        .await
        .ok(200);
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], ids[4].as_str());
}

async fn futures_ids(t: &TestNode, u: &User, c: &str, n: usize) -> Vec<String> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(id_of(&t.send(u, c, &format!("bulk {i}")).await));
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_add_list_remove() {
    let t = TestNode::start().await;
    let a = t.register("reactor").await;
    let b = t.register("reactor2").await;
    let (gid, c) = t.guild(&a, "Reactions").await;
    t.join(&a, &c, &b).await;
    let m = id_of(&t.send(&a, &c, "react to me").await);
    let thumbs = "%F0%9F%91%8D";
    let base = format!("/channels/{c}/messages/{m}/reactions");
    t.put(&format!("{base}/{thumbs}/@me"), &a.token, json!({}))
        .await
        .ok(204);
    t.put(&format!("{base}/{thumbs}/@me"), &a.token, json!({}))
        .await
        .ok(204);
    t.put(&format!("{base}/{thumbs}/@me"), &b.token, json!({}))
        .await
        .ok(204);
    t.put(&format!("{base}/%E2%9D%A4/@me"), &b.token, json!({}))
        .await
        .ok(204);
    t.put(&format!("{base}/notanemoji/@me"), &b.token, json!({}))
        .await
        .err(400, 10014);
    t.put(&format!("{base}/custom:123/@me"), &b.token, json!({}))
        .await
        .err(400, 10014);
    let msg = t
        .get(&format!("/channels/{c}/messages/{m}"), &a.token)
        .await
        .ok(200);
    assert_eq!(msg["reactions"][0]["emoji"]["name"], "👍");
    assert_eq!(msg["reactions"][0]["count"], 2);
    assert_eq!(msg["reactions"][0]["me"], true);
    assert_eq!(msg["reactions"][1]["emoji"]["name"], "❤");
    assert_eq!(msg["reactions"][1]["me"], false);
    let users = t.get(&format!("{base}/{thumbs}"), &a.token).await.ok(200);
    assert_eq!(users.as_array().unwrap().len(), 2);
    let page = t
        .get(&format!("{base}/{thumbs}?limit=1"), &a.token)
        .await
        .ok(200);
    assert_eq!(page.as_array().unwrap().len(), 1);
    t.get(&format!("{base}/{thumbs}?limit=0"), &a.token)
        .await
        .err(400, 50035);
    // Removing someone else's reaction needs MANAGE_MESSAGES.
    t.delete(&format!("{base}/{thumbs}/{}", a.id), &b.token)
        .await
        .err(403, 50013);
    t.delete(&format!("{base}/{thumbs}/@me"), &b.token)
        .await
        .ok(204);
    t.delete(&format!("{base}/{thumbs}/{}", a.id), &a.token)
        .await
        .ok(204);
    let msg = t
        .get(&format!("/channels/{c}/messages/{m}"), &a.token)
        .await
        .ok(200);
    assert_eq!(
        msg["reactions"].as_array().unwrap().len(),
        1,
        "only ❤ left: {msg}"
    );
    t.delete(&base, &b.token).await.err(403, 50013);
    t.delete(&base, &a.token).await.ok(204);
    let msg = t
        .get(&format!("/channels/{c}/messages/{m}"), &a.token)
        .await
        .ok(200);
    assert!(
        msg.get("reactions")
            .is_none_or(|r| r.as_array().unwrap().is_empty())
    );
    // A new emoji needs ADD_REACTIONS; joining an existing one does not.
    t.put(&format!("{base}/{thumbs}/@me"), &a.token, json!({}))
        .await
        .ok(204);
    t.patch(
        &format!("/guilds/{gid}/roles/{gid}"),
        &a.token,
        json!({"permissions": (1u64 << 10 | 1 << 11 | 1 << 16).to_string()}),
    )
    .await
    .ok(200);
    t.put(&format!("{base}/%F0%9F%8E%89/@me"), &b.token, json!({}))
        .await
        .err(403, 50013);
    t.put(&format!("{base}/{thumbs}/@me"), &b.token, json!({}))
        .await
        .ok(204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_and_their_limit() {
    let t = TestNode::start_with(|c| c.guilds.max_pins = 3).await;
    let a = t.register("pinner").await;
    let b = t.register("pinless").await;
    let (_, c) = t.guild(&a, "Pins").await;
    t.join(&a, &c, &b).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(id_of(&t.send(&a, &c, &format!("p{i}")).await));
    }
    for id in &ids[..3] {
        t.put(&format!("/channels/{c}/pins/{id}"), &a.token, json!({}))
            .await
            .ok(204);
    }
    t.put(
        &format!("/channels/{c}/pins/{}", ids[3]),
        &a.token,
        json!({}),
    )
    .await
    .err(400, 30003);
    t.put(
        &format!("/channels/{c}/pins/{}", ids[3]),
        &b.token,
        json!({}),
    )
    .await
    .err(403, 50013);
    let pins = t
        .get(&format!("/channels/{c}/pins"), &b.token)
        .await
        .ok(200);
    let got: Vec<String> = pins.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(
        got,
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()],
        "most recently pinned first"
    );
    assert_eq!(pins[0]["pinned"], true);
    t.delete(&format!("/channels/{c}/messages/pins/{}", ids[1]), &a.token)
        .await
        .ok(204);
    t.put(
        &format!("/channels/{c}/messages/pins/{}", ids[3]),
        &a.token,
        json!({}),
    )
    .await
    .ok(204);
    let pins = t
        .get(&format!("/channels/{c}/pins"), &a.token)
        .await
        .ok(200);
    assert_eq!(pins.as_array().unwrap().len(), 3);
    assert!(
        t.get(&format!("/channels/{c}"), &a.token).await.ok(200)["last_pin_timestamp"].is_string()
    );
    t.put(&format!("/channels/{c}/pins/777"), &a.token, json!({}))
        .await
        .err(404, 10008);
    // Typing needs SEND_MESSAGES and answers 204.
    t.post(&format!("/channels/{c}/typing"), &b.token, json!({}))
        .await
        .ok(204);
}
