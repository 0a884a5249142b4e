//! Custom emojis: uploaded as image data by members with the expressions permissions, kept in
//! the blob store and served at `/emojis/{id}.png`, announced as GUILD_EMOJIS_UPDATE, listed
//! in GUILD_CREATE, usable in reactions as `name:id`, renamed, limited, deleted.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::gw::{ALL, Gw};
use crate::support::*;

/// A tiny PNG (its header is what the node sniffs) padded to `extra` more bytes.
fn png(extra: usize) -> Vec<u8> {
    let mut b =
        b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0\0\0\0\0".to_vec();
    b.extend((0..extra).map(|i| (i % 251) as u8));
    b
}

fn gif() -> Vec<u8> {
    let mut b = b"GIF89a\x10\x00\x10\x00\x80\x00\x00".to_vec();
    b.extend([0u8; 32]);
    b
}

fn data_uri(kind: &str, bytes: &[u8]) -> String {
    format!("data:{kind};base64,{}", STANDARD.encode(bytes))
}

/// The next GUILD_EMOJIS_UPDATE, skipping the rest (audit-log entries, presences).
async fn emojis_update(gw: &mut Gw) -> Value {
    loop {
        let (name, d) = gw.next_event().await;
        if name == "GUILD_EMOJIS_UPDATE" {
            return d;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emoji_is_uploaded_served_announced_reacted_with_renamed_and_deleted() {
    let t = TestNode::start().await;
    let owner = t.register("emojiowner").await;
    let member = t.register("emojimember").await;
    let (gid, general) = t.guild(&owner, "Expressive").await;
    t.join(&owner, &general, &member).await;
    let mut gw = Gw::joined(&t, "v=10&encoding=json", &member.token, &gid).await;
    let path = format!("/guilds/{gid}/emojis");
    let image = png(500);

    // Who may add one, and what.
    t.post(
        &path,
        &member.token,
        json!({"name": "nope", "image": data_uri("image/png", &image)}),
    )
    .await
    .err(403, 50013);
    for (name, img) in [
        ("x", data_uri("image/png", &image)),
        ("has space", data_uri("image/png", &image)),
        ("textual", data_uri("image/png", b"just some text")),
        ("garbled", "data:image/png;base64,@@@".to_owned()),
        // Past `guilds.max_emoji_bytes` (256 KiB), though the body fits.
        ("huge", data_uri("image/png", &png(257 * 1024))),
    ] {
        t.post(&path, &owner.token, json!({"name": name, "image": img}))
            .await
            .err(400, 50035);
    }
    // A body far past what an image of the limit needs is cut off unread.
    let r = t
        .post(
            &path,
            &owner.token,
            json!({"name": "vast", "image": data_uri("image/png", &png(600 * 1024))}),
        )
        .await;
    assert_eq!(r.status, 413, "{:?}", r.body);

    let emoji = t
        .post(
            &path,
            &owner.token,
            json!({"name": "party_blob", "image": data_uri("image/png", &image)}),
        )
        .await
        .ok(201);
    let id = id_of(&emoji);
    assert_eq!(emoji["name"], "party_blob");
    assert!(!emoji["animated"].as_bool().unwrap_or(false), "{emoji}");
    assert_eq!(emoji["require_colons"], true);
    assert_eq!(emoji["roles"], json!([]));
    assert_eq!(emoji["user"]["id"], owner.id.as_str());
    let update = emojis_update(&mut gw).await;
    assert_eq!(update["guild_id"], gid.as_str());
    assert_eq!(update["emojis"][0]["id"], id.as_str());
    assert!(update["emojis"][0].get("user").is_none(), "{update}");

    // The image, as stored.
    let res = t
        .http
        .get(t.base.replace("/api/v10", &format!("/emojis/{id}.png")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.bytes().await.unwrap().to_vec(), image);

    // Members list it; a new session's GUILD_CREATE carries it.
    let listed = t.get(&path, &member.token).await.ok(200);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0].get("user").is_none(), "{listed}");
    let mut fresh = Gw::connect(&t, "v=10&encoding=json").await;
    fresh.send_identify(&member.token, ALL).await;
    let created = fresh.guild_create(&gid).await;
    assert_eq!(created["emojis"][0]["name"], "party_blob");

    // A reaction with it, as `name:id`; an emoji from nowhere is unknown.
    let msg = id_of(&t.send(&owner, &general, "react to me").await);
    t.put(
        &format!("/channels/{general}/messages/{msg}/reactions/party_blob:{id}/@me"),
        &member.token,
        json!({}),
    )
    .await
    .ok(204);
    let read = t
        .get(&format!("/channels/{general}/messages/{msg}"), &owner.token)
        .await
        .ok(200);
    assert_eq!(
        read["reactions"][0]["emoji"],
        json!({"id": id, "name": "party_blob"})
    );
    let users = t
        .get(
            &format!("/channels/{general}/messages/{msg}/reactions/party_blob:{id}"),
            &owner.token,
        )
        .await
        .ok(200);
    assert_eq!(users[0]["id"], member.id.as_str());
    t.put(
        &format!("/channels/{general}/messages/{msg}/reactions/ghost:12345/@me"),
        &member.token,
        json!({}),
    )
    .await
    .err(400, 10014);

    // Limited to a role the member lacks: they cannot react with it.
    let role = t
        .post(
            &format!("/guilds/{gid}/roles"),
            &owner.token,
            json!({"name": "vip"}),
        )
        .await
        .ok(200);
    let renamed = t
        .patch(
            &format!("{path}/{id}"),
            &owner.token,
            json!({"name": "party_time", "roles": [id_of(&role)]}),
        )
        .await
        .ok(200);
    assert_eq!(renamed["name"], "party_time");
    assert_eq!(
        emojis_update(&mut gw).await["emojis"][0]["name"],
        "party_time"
    );
    let other = id_of(&t.send(&owner, &general, "another").await);
    t.put(
        &format!("/channels/{general}/messages/{other}/reactions/party_time:{id}/@me"),
        &member.token,
        json!({}),
    )
    .await
    .err(400, 10014);
    t.patch(
        &format!("{path}/{id}"),
        &member.token,
        json!({"name": "mine_now"}),
    )
    .await
    .err(403, 50013);
    t.patch(
        &format!("{path}/{id}"),
        &owner.token,
        json!({"roles": ["1"]}),
    )
    .await
    .err(400, 50035);

    // Deleted: gone from the list, the image and the audit log says so.
    t.delete(&format!("{path}/{id}"), &owner.token)
        .await
        .ok(204);
    assert!(
        emojis_update(&mut gw).await["emojis"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    t.get(&format!("{path}/{id}"), &owner.token)
        .await
        .err(404, 10014);
    let log = t
        .get(&format!("/guilds/{gid}/audit-logs?limit=10"), &owner.token)
        .await
        .ok(200);
    let actions: Vec<u64> = log["audit_log_entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action_type"].as_u64())
        .collect();
    for action in [60, 61, 62] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let mut gone = 0;
    // The image goes once the record has; its removal runs in the background.
    for _ in 0..50 {
        let status = t
            .http
            .get(t.base.replace("/api/v10", &format!("/emojis/{id}.png")))
            .send()
            .await
            .unwrap()
            .status();
        if status == 404 {
            gone += 1;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(gone, 1, "the image was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guild_holds_as_many_emojis_of_each_kind_as_configured() {
    let t = TestNode::start_with(|c| c.guilds.max_emojis = 2).await;
    let owner = t.register("emojicap").await;
    let (gid, _) = t.guild(&owner, "Capped").await;
    let path = format!("/guilds/{gid}/emojis");
    for n in 0..2 {
        t.post(
            &path,
            &owner.token,
            json!({"name": format!("still_{n}"), "image": data_uri("image/png", &png(n))}),
        )
        .await
        .ok(201);
    }
    t.post(
        &path,
        &owner.token,
        json!({"name": "one_more", "image": data_uri("image/png", &png(9))}),
    )
    .await
    .err(400, 30008);
    // Animated ones count apart.
    let moving = t
        .post(
            &path,
            &owner.token,
            json!({"name": "moving", "image": data_uri("image/gif", &gif())}),
        )
        .await
        .ok(201);
    assert_eq!(moving["animated"], true);
    assert_eq!(
        t.get(&path, &owner.token)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
