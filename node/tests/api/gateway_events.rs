//! Every dispatch event is emitted by its REST action, and only to those who may see it.

use std::time::Duration;

use enrichment_protocol::gateway::{intents, op};
use serde_json::{Value, json};

use crate::gw::{ALL, Gw};
use crate::support::{TestNode, id_of};

/// The next event other than presence and audit-log entries (which an owner gets beside
/// every change; `audit_log.rs` tests them); its name and `d`.
async fn next_change(gw: &mut Gw) -> (String, Value) {
    loop {
        let (t, d) = gw.next_event().await;
        if t != "GUILD_AUDIT_LOG_ENTRY_CREATE" {
            return (t, d);
        }
    }
}

/// The next change must be `t`; returns its `d`.
async fn expect(gw: &mut Gw, t: &str) -> Value {
    let (got, d) = next_change(gw).await;
    assert_eq!(got, t, "expected {t}, got {got}: {d}");
    d
}

const QUIET: Duration = Duration::from_millis(300);

/// The gateway query of every encoding and compression a client may ask for.
const EVERY_ENCODING: [&str; 6] = [
    "v=10&encoding=json",
    "v=10&encoding=msgpack",
    "v=10&encoding=json&compress=zlib-stream",
    "v=10&encoding=msgpack&compress=zlib-stream",
    "v=10&encoding=json&compress=zstd-stream",
    "v=10&encoding=msgpack&compress=zstd-stream",
];

#[tokio::test]
async fn every_rest_action_emits_its_dispatch() {
    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    let carol = node.register("carol").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    let (mut gw, _) = Gw::identify(&node, &alice.token, ALL).await;
    gw.guild_create(&gid).await;

    node.patch(
        &format!("/guilds/{gid}"),
        &alice.token,
        json!({"name": "renamed"}),
    )
    .await
    .ok(200);
    assert_eq!(expect(&mut gw, "GUILD_UPDATE").await["name"], "renamed");

    let c2 = id_of(
        &node
            .post(
                &format!("/guilds/{gid}/channels"),
                &alice.token,
                json!({"name": "second"}),
            )
            .await
            .ok(201),
    );
    assert_eq!(expect(&mut gw, "CHANNEL_CREATE").await["id"], c2.as_str());
    node.patch(
        &format!("/channels/{c2}"),
        &alice.token,
        json!({"topic": "news"}),
    )
    .await
    .ok(200);
    assert_eq!(expect(&mut gw, "CHANNEL_UPDATE").await["topic"], "news");

    let role = id_of(
        &node
            .post(
                &format!("/guilds/{gid}/roles"),
                &alice.token,
                json!({"name": "mods"}),
            )
            .await
            .ok(200),
    );
    let d = expect(&mut gw, "GUILD_ROLE_CREATE").await;
    assert_eq!(
        (d["guild_id"].as_str(), d["role"]["id"].as_str()),
        (Some(gid.as_str()), Some(role.as_str()))
    );
    node.patch(
        &format!("/guilds/{gid}/roles/{role}"),
        &alice.token,
        json!({"name": "moderators"}),
    )
    .await
    .ok(200);
    assert_eq!(
        expect(&mut gw, "GUILD_ROLE_UPDATE").await["role"]["name"],
        "moderators"
    );

    let invite = node
        .post(&format!("/channels/{ch}/invites"), &alice.token, json!({}))
        .await
        .ok(200);
    let code = invite["code"].as_str().unwrap().to_owned();
    let d = expect(&mut gw, "INVITE_CREATE").await;
    assert_eq!(
        (d["code"].as_str(), d["channel_id"].as_str()),
        (Some(code.as_str()), Some(ch.as_str()))
    );
    node.post(&format!("/invites/{code}"), &bob.token, json!({}))
        .await
        .ok(200);
    let d = expect(&mut gw, "GUILD_MEMBER_ADD").await;
    assert_eq!(
        (d["guild_id"].as_str(), d["user"]["id"].as_str()),
        (Some(gid.as_str()), Some(bob.id.as_str()))
    );
    node.put(
        &format!("/guilds/{gid}/members/{}/roles/{role}", bob.id),
        &alice.token,
        json!({}),
    )
    .await
    .ok(204);
    assert_eq!(
        expect(&mut gw, "GUILD_MEMBER_UPDATE").await["roles"],
        json!([role])
    );
    node.delete(&format!("/guilds/{gid}/roles/{role}"), &alice.token)
        .await
        .ok(204);
    assert_eq!(
        expect(&mut gw, "GUILD_ROLE_DELETE").await["role_id"],
        role.as_str()
    );

    let m = node.send(&alice, &ch, "hello").await;
    let mid = id_of(&m);
    assert_eq!(expect(&mut gw, "MESSAGE_CREATE").await["content"], "hello");
    node.patch(
        &format!("/channels/{ch}/messages/{mid}"),
        &alice.token,
        json!({"content": "edited"}),
    )
    .await
    .ok(200);
    let d = expect(&mut gw, "MESSAGE_UPDATE").await;
    assert_eq!(
        (d["content"].as_str(), d["edited_timestamp"].is_string()),
        (Some("edited"), true)
    );
    let react = format!("/channels/{ch}/messages/{mid}/reactions/%F0%9F%91%8D/@me");
    node.put(&react, &alice.token, json!({})).await.ok(204);
    let d = expect(&mut gw, "MESSAGE_REACTION_ADD").await;
    assert_eq!(
        (d["emoji"]["name"].as_str(), d["user_id"].as_str()),
        (Some("👍"), Some(alice.id.as_str()))
    );
    node.delete(&react, &alice.token).await.ok(204);
    expect(&mut gw, "MESSAGE_REACTION_REMOVE").await;
    node.put(&react, &alice.token, json!({})).await.ok(204);
    expect(&mut gw, "MESSAGE_REACTION_ADD").await;
    node.delete(
        &format!("/channels/{ch}/messages/{mid}/reactions/%F0%9F%91%8D"),
        &alice.token,
    )
    .await
    .ok(204);
    assert_eq!(
        expect(&mut gw, "MESSAGE_REACTION_REMOVE_EMOJI").await["emoji"]["name"],
        "👍"
    );
    node.put(&react, &alice.token, json!({})).await.ok(204);
    expect(&mut gw, "MESSAGE_REACTION_ADD").await;
    node.delete(
        &format!("/channels/{ch}/messages/{mid}/reactions"),
        &alice.token,
    )
    .await
    .ok(204);
    assert_eq!(
        expect(&mut gw, "MESSAGE_REACTION_REMOVE_ALL").await["message_id"],
        mid.as_str()
    );
    node.put(
        &format!("/channels/{ch}/pins/{mid}"),
        &alice.token,
        json!({}),
    )
    .await
    .ok(204);
    let d = expect(&mut gw, "CHANNEL_PINS_UPDATE").await;
    assert!(d["last_pin_timestamp"].is_string(), "{d}");
    node.delete(&format!("/channels/{ch}/messages/{mid}"), &alice.token)
        .await
        .ok(204);
    assert_eq!(expect(&mut gw, "MESSAGE_DELETE").await["id"], mid.as_str());
    let ids: Vec<String> = [
        id_of(&node.send(&alice, &ch, "a").await),
        id_of(&node.send(&alice, &ch, "b").await),
    ]
    .into();
    expect(&mut gw, "MESSAGE_CREATE").await;
    expect(&mut gw, "MESSAGE_CREATE").await;
    node.post(
        &format!("/channels/{ch}/messages/bulk-delete"),
        &alice.token,
        json!({"messages": ids}),
    )
    .await
    .ok(204);
    let mut bulk: Vec<String> =
        serde_json::from_value(expect(&mut gw, "MESSAGE_DELETE_BULK").await["ids"].clone())
            .unwrap();
    bulk.sort();
    assert_eq!(bulk, ids);

    node.post(&format!("/channels/{ch}/typing"), &bob.token, json!({}))
        .await
        .ok(204);
    let d = expect(&mut gw, "TYPING_START").await;
    assert_eq!(
        (d["user_id"].as_str(), d["channel_id"].as_str()),
        (Some(bob.id.as_str()), Some(ch.as_str()))
    );

    node.delete(&format!("/invites/{code}"), &alice.token)
        .await
        .ok(200);
    assert_eq!(
        expect(&mut gw, "INVITE_DELETE").await["code"],
        code.as_str()
    );
    node.delete(&format!("/channels/{c2}"), &alice.token)
        .await
        .ok(200);
    assert_eq!(expect(&mut gw, "CHANNEL_DELETE").await["id"], c2.as_str());

    node.patch(
        "/users/@me",
        &alice.token,
        json!({"global_name": "Alice A."}),
    )
    .await
    .ok(200);
    assert_eq!(
        expect(&mut gw, "USER_UPDATE").await["global_name"],
        "Alice A."
    );

    node.join(&alice, &ch, &carol).await;
    expect(&mut gw, "INVITE_CREATE").await;
    expect(&mut gw, "GUILD_MEMBER_ADD").await;
    node.delete(&format!("/guilds/{gid}/members/{}", carol.id), &alice.token)
        .await
        .ok(204);
    assert_eq!(
        expect(&mut gw, "GUILD_MEMBER_REMOVE").await["user"]["id"],
        carol.id.as_str()
    );

    node.put(
        &format!("/guilds/{gid}/bans/{}", bob.id),
        &alice.token,
        json!({}),
    )
    .await
    .ok(204);
    let mut got = [next_change(&mut gw).await, next_change(&mut gw).await];
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got[0].0, "GUILD_BAN_ADD");
    assert_eq!(got[0].1["user"]["id"], bob.id.as_str());
    assert_eq!(got[1].0, "GUILD_MEMBER_REMOVE");
    node.delete(&format!("/guilds/{gid}/bans/{}", bob.id), &alice.token)
        .await
        .ok(204);
    assert_eq!(
        expect(&mut gw, "GUILD_BAN_REMOVE").await["user"]["id"],
        bob.id.as_str()
    );

    node.delete(&format!("/guilds/{gid}"), &alice.token)
        .await
        .ok(204);
    assert_eq!(expect(&mut gw, "GUILD_DELETE").await["id"], gid.as_str());
    gw.expect_quiet(QUIET).await;
}

#[tokio::test]
async fn hidden_channels_revoked_roles_kicks_and_bans_stop_delivery_at_once() {
    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    node.join(&alice, &ch, &bob).await;
    // A private channel: @everyone may not view it; the "staff" role may.
    let staff = id_of(
        &node
            .post(
                &format!("/guilds/{gid}/roles"),
                &alice.token,
                json!({"name": "staff"}),
            )
            .await
            .ok(200),
    );
    let private = id_of(
        &node
            .post(
                &format!("/guilds/{gid}/channels"),
                &alice.token,
                json!({"name": "staff-only", "permission_overwrites": [
                    {"id": gid, "type": 0, "deny": "1024", "allow": "0"},
                    {"id": staff, "type": 0, "allow": "1024", "deny": "0"}
                ]}),
            )
            .await
            .ok(201),
    );
    let (mut b, _) = Gw::identify(&node, &bob.token, ALL).await;
    b.guild_create(&gid).await;
    node.send(&alice, &private, "secret 1").await;
    node.send(&alice, &ch, "public 1").await;
    assert_eq!(b.dispatch("MESSAGE_CREATE").await["content"], "public 1");

    node.put(
        &format!("/guilds/{gid}/members/{}/roles/{staff}", bob.id),
        &alice.token,
        json!({}),
    )
    .await
    .ok(204);
    node.send(&alice, &private, "secret 2").await;
    assert_eq!(
        b.dispatch("MESSAGE_CREATE").await["content"],
        "secret 2",
        "the role grants the view"
    );
    node.delete(
        &format!("/guilds/{gid}/members/{}/roles/{staff}", bob.id),
        &alice.token,
    )
    .await
    .ok(204);
    node.send(&alice, &private, "secret 3").await;
    node.send(&alice, &ch, "public 2").await;
    assert_eq!(
        b.dispatch("MESSAGE_CREATE").await["content"],
        "public 2",
        "revoked at once"
    );

    // An overwrite that hides the public channel from bob alone.
    node.put(
        &format!("/channels/{ch}/permissions/{}", bob.id),
        &alice.token,
        json!({"type": 1, "deny": "1024", "allow": "0"}),
    )
    .await
    .ok(204);
    node.send(&alice, &ch, "hidden from bob").await;
    node.delete(
        &format!("/channels/{ch}/permissions/{}", bob.id),
        &alice.token,
    )
    .await
    .ok(204);
    node.send(&alice, &ch, "visible again").await;
    assert_eq!(
        b.dispatch("MESSAGE_CREATE").await["content"],
        "visible again"
    );

    // Kicked: GUILD_DELETE, then nothing more from that guild.
    node.delete(&format!("/guilds/{gid}/members/{}", bob.id), &alice.token)
        .await
        .ok(204);
    let d = b.dispatch("GUILD_DELETE").await;
    assert_eq!(d["id"], gid.as_str());
    assert!(
        d.get("unavailable").is_none(),
        "a removal, not an outage: {d}"
    );
    node.send(&alice, &ch, "after kick").await;
    node.patch(
        &format!("/guilds/{gid}"),
        &alice.token,
        json!({"name": "xy"}),
    )
    .await
    .ok(200);
    b.expect_quiet(QUIET).await;

    // Rejoining brings GUILD_CREATE; a ban then removes the guild again.
    node.join(&alice, &ch, &bob).await;
    b.guild_create(&gid).await;
    node.send(&alice, &ch, "welcome back").await;
    assert_eq!(
        b.dispatch("MESSAGE_CREATE").await["content"],
        "welcome back"
    );
    node.put(
        &format!("/guilds/{gid}/bans/{}", bob.id),
        &alice.token,
        json!({}),
    )
    .await
    .ok(204);
    assert_eq!(b.dispatch("GUILD_DELETE").await["id"], gid.as_str());
    node.send(&alice, &ch, "after ban").await;
    b.expect_quiet(QUIET).await;
}

#[tokio::test]
async fn a_new_guild_reaches_its_owners_sessions() {
    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let (mut gw, ready) = Gw::identify(&node, &alice.token, ALL).await;
    assert_eq!(ready["guilds"], json!([]));
    let (gid, ch) = node.guild(&alice, "fresh").await;
    let g = gw.guild_create(&gid).await;
    assert_eq!(g["channels"][0]["id"], ch.as_str());
    node.send(&alice, &ch, "first").await;
    assert_eq!(gw.dispatch("MESSAGE_CREATE").await["content"], "first");
}

#[tokio::test]
async fn intents_filter_what_a_session_receives() {
    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    // Only GUILDS: channel events yes, messages, typing and reactions no.
    let (mut gw, _) = Gw::identify(&node, &alice.token, intents::GUILDS).await;
    gw.guild_create(&gid).await;
    let m = node.send(&alice, &ch, "not for this session").await;
    node.post(&format!("/channels/{ch}/typing"), &alice.token, json!({}))
        .await
        .ok(204);
    node.put(
        &format!(
            "/channels/{ch}/messages/{}/reactions/%F0%9F%91%8D/@me",
            id_of(&m)
        ),
        &alice.token,
        json!({}),
    )
    .await
    .ok(204);
    node.post(
        &format!("/guilds/{gid}/channels"),
        &alice.token,
        json!({"name": "new"}),
    )
    .await
    .ok(201);
    let (t, _) = gw.next_event().await;
    assert_eq!(t, "CHANNEL_CREATE");
    gw.expect_quiet(QUIET).await;
}

#[tokio::test]
async fn presence_goes_online_idle_dnd_and_offline() {
    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    node.join(&alice, &ch, &bob).await;
    let (mut a, _) = Gw::identify(&node, &alice.token, ALL).await;
    a.guild_create(&gid).await;
    let (mut b, _) = Gw::identify(&node, &bob.token, ALL).await;
    let g = b.guild_create(&gid).await;
    // Alice's guild heard she is online before it built her GUILD_CREATE, so Bob, who
    // subscribed after it, sees her online in his.
    assert!(
        g["presences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["user"]["id"] == alice.id.as_str() && p["status"] == "online"),
        "GUILD_CREATE lists who is online: {}",
        g["presences"]
    );
    let bob_status = |d: &Value| {
        (d["user"]["id"] == bob.id.as_str()).then(|| d["status"].as_str().unwrap().to_owned())
    };
    let next_bob = async |a: &mut Gw| loop {
        let d = a.dispatch("PRESENCE_UPDATE").await;
        assert_eq!(d["guild_id"], gid.as_str());
        if let Some(s) = bob_status(&d) {
            return s;
        }
    };
    assert_eq!(next_bob(&mut a).await, "online");
    for status in ["idle", "dnd"] {
        b.send(op::PRESENCE_UPDATE, json!({"since": null, "activities": [{"name": "tests", "type": 0}], "status": status, "afk": false}))
            .await;
        assert_eq!(next_bob(&mut a).await, status);
    }
    b.close(1000).await;
    assert_eq!(
        next_bob(&mut a).await,
        "offline",
        "the last session closed with 1000"
    );
}

#[tokio::test]
async fn request_guild_members_answers_in_chunks() {
    let node = TestNode::start_with(|c| c.gateway.member_chunk_size = 2).await;
    let alice = node.register("alice").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    let mut others = Vec::new();
    for name in ["anna", "andrew", "boris"] {
        let u = node.register(name).await;
        node.join(&alice, &ch, &u).await;
        others.push(u);
    }
    let (mut gw, _) = Gw::identify(&node, &alice.token, ALL).await;
    gw.guild_create(&gid).await;
    // Prefix query.
    gw.send(
        op::REQUEST_GUILD_MEMBERS,
        json!({"guild_id": gid, "query": "an", "limit": 10, "nonce": "q1"}),
    )
    .await;
    let d = gw.dispatch("GUILD_MEMBERS_CHUNK").await;
    assert_eq!(d["nonce"], "q1");
    let mut names: Vec<&str> = d["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"]["username"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["andrew", "anna"]);
    assert_eq!(
        (d["chunk_index"].as_u64(), d["chunk_count"].as_u64()),
        (Some(0), Some(1))
    );
    // Ids, with one unknown.
    gw.send(
        op::REQUEST_GUILD_MEMBERS,
        json!({"guild_id": gid, "user_ids": [others[2].id, "12345"], "limit": 0, "presences": true}),
    )
    .await;
    let d = gw.dispatch("GUILD_MEMBERS_CHUNK").await;
    assert_eq!(d["members"][0]["user"]["id"], others[2].id.as_str());
    assert_eq!(d["not_found"], json!(["12345"]));
    assert!(d["presences"].is_array());
    // Everyone (query "" and limit 0), two members per chunk.
    gw.send(
        op::REQUEST_GUILD_MEMBERS,
        json!({"guild_id": gid, "query": "", "limit": 0}),
    )
    .await;
    let mut seen = 0;
    for i in 0..2 {
        let d = gw.dispatch("GUILD_MEMBERS_CHUNK").await;
        assert_eq!(
            (d["chunk_index"].as_u64(), d["chunk_count"].as_u64()),
            (Some(i), Some(2))
        );
        seen += d["members"].as_array().unwrap().len();
    }
    assert_eq!(seen, 4);
}

#[tokio::test]
async fn every_encoding_and_compression_carries_the_same_events() {
    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    let mut clients = Vec::new();
    for q in EVERY_ENCODING {
        clients.push(Gw::joined(&node, q, &alice.token, &gid).await);
    }
    let sent = node.send(&alice, &ch, "same everywhere ✓").await;
    let mut seen = Vec::new();
    for gw in &mut clients {
        let mut d = gw.dispatch("MESSAGE_CREATE").await;
        d.as_object_mut().unwrap().remove("member");
        seen.push(d);
    }
    assert_eq!(seen[0]["id"], sent["id"]);
    assert_eq!(seen[0]["content"], "same everywhere ✓");
    for other in &seen[1..] {
        assert_eq!(other, &seen[0]);
    }
}

/// zstd-stream as Discord sends it: one zstd frame for the connection, never ended, and one
/// WebSocket message per gateway message that decodes whole on arrival, from HELLO through
/// READY to a dispatch sent later.
#[tokio::test]
async fn zstd_stream_sends_one_flushed_message_per_frame_on_one_stream() {
    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    for query in [
        "v=10&encoding=json&compress=zstd-stream",
        "v=10&encoding=msgpack&compress=zstd-stream",
    ] {
        let mut gw = Gw::connect(&node, query).await;
        assert_eq!((gw.zstd_messages, gw.frames), (1, 1), "{query}: HELLO");
        let ready = gw.send_identify(&alice.token, ALL).await;
        assert_eq!(ready["user"]["username"], "alice");
        gw.guild_create(&gid).await;
        let sent = node.send(&alice, &ch, "squeezed").await;
        let d = gw.dispatch("MESSAGE_CREATE").await;
        assert_eq!((&d["id"], &d["content"]), (&sent["id"], &json!("squeezed")));
        assert_eq!(
            gw.zstd_messages, gw.frames,
            "{query}: one message per frame"
        );
        assert_eq!(gw.zstd_frames, 1, "{query}: one zstd frame per connection");
    }
    // What is not zstd-stream or zlib-stream is refused as before.
    assert_eq!(
        Gw::connect_raw(&node, "v=10&encoding=json&compress=zstd").await,
        Some(4002)
    );
}

/// The node writes dispatch frames itself, batched, next to the pongs tungstenite answers pings
/// with: each must arrive whole and in order, whatever the encoding.
#[tokio::test]
async fn pings_between_dispatches_get_their_pongs_and_every_frame_arrives_whole() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    const N: usize = 30;
    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    for query in EVERY_ENCODING {
        let mut gw = Gw::joined(&node, query, &alice.token, &gid).await;
        let posts = async {
            for i in 0..N {
                node.send(&alice, &ch, &format!("{query} {i}")).await;
            }
        };
        let reads = async {
            let mut seen = Vec::new();
            while seen.len() < N {
                let ping = Message::Ping(format!("{}", seen.len()).into_bytes().into());
                gw.ws.send(ping).await.expect("ping sent");
                let (t, d) = gw.next_event().await;
                if t == "MESSAGE_CREATE" {
                    seen.push(d["content"].as_str().expect("content").to_owned());
                }
            }
            seen
        };
        let ((), seen) = tokio::join!(posts, reads);
        let sent: Vec<_> = (0..N).map(|i| format!("{query} {i}")).collect();
        assert_eq!(seen, sent, "{query}: every message, whole and in order");

        // A message after the last ping: its frame comes behind the last pong.
        node.send(&alice, &ch, "last").await;
        assert_eq!(expect(&mut gw, "MESSAGE_CREATE").await["content"], "last");
        assert_eq!(gw.pongs, N, "{query}: a pong for every ping");
    }
}
