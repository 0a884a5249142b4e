//! DMs, group DMs and blocking, over REST and real gateway connections: opening a DM (once
//! per pair), messages, reactions, pins and typing in it without a guild, the DIRECT_MESSAGE*
//! intents and the MESSAGE_CONTENT exemption, who may open one, blocks, and a group's
//! recipients coming and going.

use std::time::Duration;

use enrichment_protocol::gateway::intents;
use serde_json::{Value, json};

use crate::gw::{ALL, Gw};
use crate::support::*;

/// Three users in one guild; the first owns it. Returns the general channel too.
async fn three(t: &TestNode, tag: &str) -> (User, User, User, String) {
    let a = t.register(&format!("{tag}a")).await;
    let b = t.register(&format!("{tag}b")).await;
    let c = t.register(&format!("{tag}c")).await;
    let (_, general) = t.guild(&a, &format!("{tag} guild")).await;
    t.join(&a, &general, &b).await;
    t.join(&a, &general, &c).await;
    (a, b, c, general)
}

/// The next dispatch named `t`, skipping every other (guild events of the shared guild).
async fn next_named(gw: &mut Gw, t: &str) -> Value {
    loop {
        let (name, d) = gw.next_event().await;
        if name == t {
            return d;
        }
    }
}

/// Asserts that no dispatch named `t` arrives within `wait` (others may).
async fn hears_no(gw: &mut Gw, t: &str, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match gw.try_dispatch(left).await {
            Ok((name, d)) => assert_ne!(name, t, "unexpected {t}: {d}"),
            Err(e) if e.contains("silence") => return,
            Err(e) => panic!("the connection failed: {e}"),
        }
    }
}

fn recipient_ids(channel: &Value) -> Vec<String> {
    channel["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_carries_messages_reactions_pins_and_typing_without_a_guild() {
    let t = TestNode::start().await;
    let (a, b, c, _) = three(&t, "dm").await;
    let (mut gw_a, _) = Gw::identify(&t, &a.token, ALL).await;
    let (mut gw_b, _) = Gw::identify(&t, &b.token, ALL).await;

    let dm = t
        .post(
            "/users/@me/channels",
            &b.token,
            json!({"recipient_id": a.id}),
        )
        .await
        .ok(200);
    let id = id_of(&dm);
    assert_eq!(dm["type"], 1, "{dm}");
    assert!(dm.get("guild_id").is_none(), "{dm}");
    assert!(dm.get("name").is_none(), "{dm}");
    assert_eq!(recipient_ids(&dm), [a.id.as_str()]);
    for (gw, other) in [(&mut gw_a, &b), (&mut gw_b, &a)] {
        let created = next_named(gw, "CHANNEL_CREATE").await;
        assert_eq!(created["id"], id.as_str());
        assert_eq!(
            recipient_ids(&created),
            [other.id.as_str()],
            "each sees the other"
        );
    }

    // One DM per pair, whoever asks and however.
    let again = t
        .post(
            "/users/@me/channels",
            &a.token,
            json!({"recipients": [b.id]}),
        )
        .await
        .ok(200);
    assert_eq!(id_of(&again), id);
    assert_eq!(recipient_ids(&again), [b.id.as_str()]);
    let listed = t.get("/users/@me/channels", &a.token).await.ok(200);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(id_of(&listed[0]), id);
    assert!(
        t.get("/users/@me/channels", &c.token)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A message, with no guild and no member on the wire.
    let sent = t.send(&b, &id, "hello in private").await;
    assert!(sent.get("guild_id").is_none(), "{sent}");
    let created = next_named(&mut gw_a, "MESSAGE_CREATE").await;
    assert_eq!(created["content"], "hello in private");
    assert!(created.get("guild_id").is_none(), "{created}");
    assert!(created.get("member").is_none(), "{created}");
    let msg = id_of(&sent);

    // Reactions, pins (every recipient may pin in a DM) and typing.
    t.put(
        &format!("/channels/{id}/messages/{msg}/reactions/%F0%9F%91%8D/@me"),
        &a.token,
        json!({}),
    )
    .await
    .ok(204);
    let reacted = next_named(&mut gw_b, "MESSAGE_REACTION_ADD").await;
    assert_eq!(reacted["user_id"], a.id.as_str());
    assert!(reacted.get("guild_id").is_none(), "{reacted}");
    assert!(reacted.get("member").is_none(), "{reacted}");
    t.put(&format!("/channels/{id}/pins/{msg}"), &a.token, json!({}))
        .await
        .ok(204);
    let pins = next_named(&mut gw_b, "CHANNEL_PINS_UPDATE").await;
    assert!(pins.get("guild_id").is_none(), "{pins}");
    assert!(pins["last_pin_timestamp"].is_string(), "{pins}");
    let pinned = t
        .get(&format!("/channels/{id}/pins"), &b.token)
        .await
        .ok(200);
    assert_eq!(pinned.as_array().unwrap().len(), 1);
    t.post(&format!("/channels/{id}/typing"), &a.token, json!({}))
        .await
        .ok(204);
    let typing = next_named(&mut gw_b, "TYPING_START").await;
    assert_eq!(typing["channel_id"], id.as_str());
    assert!(typing.get("guild_id").is_none() && typing.get("member").is_none());
    let history = t
        .get(&format!("/channels/{id}/messages"), &a.token)
        .await
        .ok(200);
    assert_eq!(history[0]["content"], "hello in private");
    assert_eq!(history[0]["reactions"][0]["count"], 1);
    // The pin survives the actor: the channel reads it back.
    let read = t.get(&format!("/channels/{id}"), &a.token).await.ok(200);
    assert!(read["last_pin_timestamp"].is_string(), "{read}");

    // Nobody deletes the other's message; each their own.
    t.delete(&format!("/channels/{id}/messages/{msg}"), &a.token)
        .await
        .err(403, 50013);
    let mine = t.send(&a, &id, "mine").await;
    t.delete(
        &format!("/channels/{id}/messages/{}", id_of(&mine)),
        &a.token,
    )
    .await
    .ok(204);

    // Outsiders see nothing of it, and a DM is no guild.
    t.get(&format!("/channels/{id}"), &c.token)
        .await
        .err(403, 50001);
    t.get(&format!("/channels/{id}/messages"), &c.token)
        .await
        .err(403, 50001);
    t.post(
        &format!("/channels/{id}/messages"),
        &c.token,
        json!({"content": "hi"}),
    )
    .await
    .err(403, 50001);
    t.get(&format!("/guilds/{id}"), &a.token)
        .await
        .err(404, 10004);
    t.post(&format!("/channels/{id}/invites"), &a.token, json!({}))
        .await
        .err(403, 50003);
    t.post(
        &format!("/channels/{id}/messages/bulk-delete"),
        &a.token,
        json!({"messages": [msg, msg]}),
    )
    .await
    .err(403, 50003);
    t.post(
        &format!("/channels/{id}/webhooks"),
        &a.token,
        json!({"name": "x"}),
    )
    .await
    .err(403, 50003);
    // Closing a DM answers it and keeps it: its users still hear of new messages.
    let closed = t.delete(&format!("/channels/{id}"), &a.token).await.ok(200);
    assert_eq!(id_of(&closed), id);
    t.send(&b, &id, "still here").await;
    assert_eq!(
        next_named(&mut gw_a, "MESSAGE_CREATE").await["content"],
        "mine"
    );
    assert_eq!(
        next_named(&mut gw_a, "MESSAGE_CREATE").await["content"],
        "still here"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_dms_follow_it_after_identify_and_a_bot_gets_them_by_its_dm_intents() {
    let t = TestNode::start().await;
    let a = t.register("dmbotowner").await;
    let (gid, _) = t.guild(&a, "Bots").await;
    let bot = t.bot(&a, "Helper", &gid, 0).await;

    // The bot opens the DM, as discord.js's `user.createDM()` does.
    let dm = t
        .post(
            "/users/@me/channels",
            &bot.token,
            json!({"recipient_id": a.id}),
        )
        .await
        .ok(200);
    let id = id_of(&dm);
    assert_eq!(recipient_ids(&dm), [a.id.as_str()]);

    // Sessions identified after the DM exists follow it: a user's, and a bot's with the DM
    // intent but without MESSAGE_CONTENT, which a DM's content is exempt from.
    let (mut user, ready) = Gw::identify(&t, &a.token, ALL).await;
    // A user's READY lists their DMs, as they see them; a bot's lists none.
    assert_eq!(ready["private_channels"][0]["id"], id.as_str(), "{ready}");
    assert_eq!(
        ready["private_channels"][0]["recipients"][0]["id"],
        bot.user_id.as_str()
    );
    let dm_intents = intents::GUILDS | intents::DIRECT_MESSAGES | intents::DIRECT_MESSAGE_TYPING;
    let (mut with_dms, bot_ready) = Gw::identify(&t, &bot.token, dm_intents).await;
    assert_eq!(bot_ready["private_channels"], json!([]));
    let (mut without_dms, _) =
        Gw::identify(&t, &bot.token, intents::GUILDS | intents::GUILD_MESSAGES).await;
    // A second shard never hears DMs: Discord sends them to shard 0.
    let mut shard_one = Gw::connect(&t, "v=10&encoding=json").await;
    shard_one
        .send(
            2,
            json!({"token": bot.token, "intents": dm_intents, "shard": [1, 2], "properties": {"os": "linux", "browser": "test", "device": "test"}}),
        )
        .await;
    shard_one.dispatch("READY").await;
    // READY comes once a session follows its DMs: no wait is needed before the message.

    t.send(&a, &id, "secret recipe").await;
    let got = next_named(&mut with_dms, "MESSAGE_CREATE").await;
    assert_eq!(
        got["content"], "secret recipe",
        "no MESSAGE_CONTENT needed in a DM"
    );
    assert_eq!(got["author"]["id"], a.id.as_str());
    hears_no(
        &mut without_dms,
        "MESSAGE_CREATE",
        Duration::from_millis(500),
    )
    .await;
    hears_no(&mut shard_one, "MESSAGE_CREATE", Duration::from_millis(200)).await;

    // The bot answers; the user's session hears it.
    t.post(
        &format!("/channels/{id}/messages"),
        &bot.token,
        json!({"content": "on it"}),
    )
    .await
    .ok(200);
    // The user's own message came back to their session first.
    let first = next_named(&mut user, "MESSAGE_CREATE").await;
    assert_eq!(first["content"], "secret recipe");
    assert_eq!(
        next_named(&mut user, "MESSAGE_CREATE").await["content"],
        "on it"
    );
    assert_eq!(
        next_named(&mut with_dms, "MESSAGE_CREATE").await["content"],
        "on it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_users_who_share_a_guild_open_dms_and_a_block_refuses_them() {
    let t = TestNode::start().await;
    let (a, b, _, _) = three(&t, "blk").await;
    let stranger = t.register("blkstranger").await;

    // Who may be asked.
    t.post(
        "/users/@me/channels",
        &stranger.token,
        json!({"recipient_id": a.id}),
    )
    .await
    .err(403, 50007);
    t.post(
        "/users/@me/channels",
        &a.token,
        json!({"recipient_id": "12345"}),
    )
    .await
    .err(404, 10013);
    for bad in [
        json!({"recipient_id": a.id}),
        json!({}),
        json!({"recipients": []}),
        json!({"recipient_id": b.id, "recipients": [b.id]}),
        json!({"recipient_id": "not a snowflake"}),
    ] {
        t.post("/users/@me/channels", &a.token, bad)
            .await
            .err(400, 50035);
    }
    let id = id_of(
        &t.post(
            "/users/@me/channels",
            &a.token,
            json!({"recipient_id": b.id}),
        )
        .await
        .ok(200),
    );
    t.send(&b, &id, "before").await;

    // A block, either way, refuses new messages in the DM.
    t.put(
        &format!("/users/@me/relationships/{}", b.id),
        &a.token,
        json!({"type": 1}),
    )
    .await
    .err(400, 50035);
    t.put(
        &format!("/users/@me/relationships/{}", a.id),
        &a.token,
        json!({"type": 2}),
    )
    .await
    .err(400, 50035);
    t.put(
        &format!("/users/@me/relationships/{}", b.id),
        &a.token,
        json!({"type": 2}),
    )
    .await
    .ok(204);
    let rels = t.get("/users/@me/relationships", &a.token).await.ok(200);
    assert_eq!(rels[0]["id"], b.id.as_str());
    assert_eq!(rels[0]["type"], 2);
    assert_eq!(rels[0]["user"]["id"], b.id.as_str());
    assert!(
        t.get("/users/@me/relationships", &b.token)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .is_empty(),
        "a block is one-way"
    );
    for who in [&b, &a] {
        t.post(
            &format!("/channels/{id}/messages"),
            &who.token,
            json!({"content": "blocked"}),
        )
        .await
        .err(403, 50007);
    }
    // History stays readable.
    let history = t
        .get(&format!("/channels/{id}/messages"), &b.token)
        .await
        .ok(200);
    assert_eq!(history[0]["content"], "before");

    t.delete(&format!("/users/@me/relationships/{}", b.id), &a.token)
        .await
        .ok(204);
    t.delete(&format!("/users/@me/relationships/{}", b.id), &a.token)
        .await
        .err(404, 10013);
    t.send(&b, &id, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_dm_takes_in_and_lets_go_of_recipients() {
    let t = TestNode::start().await;
    let (a, b, c, general) = three(&t, "grp").await;
    let d = t.register("grpd").await;
    t.join(&a, &general, &d).await;
    let (mut gw_a, _) = Gw::identify(&t, &a.token, ALL).await;
    let (mut gw_c, _) = Gw::identify(&t, &c.token, ALL).await;
    let (mut gw_d, _) = Gw::identify(&t, &d.token, ALL).await;

    let group = t
        .post(
            "/users/@me/channels",
            &a.token,
            json!({"recipients": [b.id, c.id, a.id, b.id]}),
        )
        .await
        .ok(200);
    let id = id_of(&group);
    assert_eq!(group["type"], 3);
    assert_eq!(group["owner_id"], a.id.as_str());
    assert_eq!(recipient_ids(&group), [b.id.clone(), c.id.clone()]);
    next_named(&mut gw_c, "CHANNEL_CREATE").await;

    // A recipient adds someone: they get the channel, the others hear of them.
    t.put(
        &format!("/channels/{id}/recipients/{}", d.id),
        &b.token,
        json!({}),
    )
    .await
    .ok(204);
    let joined = next_named(&mut gw_d, "CHANNEL_CREATE").await;
    assert_eq!(joined["id"], id.as_str());
    assert_eq!(recipient_ids(&joined).len(), 3);
    let added = next_named(&mut gw_a, "CHANNEL_RECIPIENT_ADD").await;
    assert_eq!(added["user"]["id"], d.id.as_str());
    t.send(&b, &id, "welcome").await;
    assert_eq!(
        next_named(&mut gw_d, "MESSAGE_CREATE").await["content"],
        "welcome"
    );

    // A name for the group.
    let renamed = t
        .patch(
            &format!("/channels/{id}"),
            &c.token,
            json!({"name": "crew"}),
        )
        .await
        .ok(200);
    assert_eq!(renamed["name"], "crew");
    assert_eq!(
        next_named(&mut gw_a, "CHANNEL_UPDATE").await["name"],
        "crew"
    );

    // Only the owner removes others; anyone leaves.
    t.delete(&format!("/channels/{id}/recipients/{}", c.id), &b.token)
        .await
        .err(403, 50013);
    t.delete(&format!("/channels/{id}"), &c.token).await.ok(200);
    let gone = next_named(&mut gw_c, "CHANNEL_DELETE").await;
    assert_eq!(gone["id"], id.as_str());
    let removed = next_named(&mut gw_a, "CHANNEL_RECIPIENT_REMOVE").await;
    assert_eq!(removed["user"]["id"], c.id.as_str());
    t.get(&format!("/channels/{id}/messages"), &c.token)
        .await
        .err(403, 50001);
    assert!(
        t.get("/users/@me/channels", &c.token)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .is_empty()
    );
    t.send(&a, &id, "after c left").await;
    hears_no(&mut gw_c, "MESSAGE_CREATE", Duration::from_millis(300)).await;
    t.delete(&format!("/channels/{id}/recipients/{}", d.id), &a.token)
        .await
        .ok(204);
    assert_eq!(
        next_named(&mut gw_d, "CHANNEL_DELETE").await["id"],
        id.as_str()
    );

    // The owner leaving hands the group on.
    t.delete(&format!("/channels/{id}"), &a.token).await.ok(200);
    let read = t.get(&format!("/channels/{id}"), &b.token).await.ok(200);
    assert_eq!(read["owner_id"], b.id.as_str());
    assert!(recipient_ids(&read).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_dm_holds_ten_people_at_most() {
    let t = TestNode::start().await;
    let owner = t.register("capowner").await;
    let (_, general) = t.guild(&owner, "Cap").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let u = t.register(&format!("capuser{i}")).await;
        t.join(&owner, &general, &u).await;
        ids.push(u.id);
    }
    t.post(
        "/users/@me/channels",
        &owner.token,
        json!({"recipients": ids}),
    )
    .await
    .err(400, 50035);
    let group = t
        .post(
            "/users/@me/channels",
            &owner.token,
            json!({"recipients": ids[..9]}),
        )
        .await
        .ok(200);
    let id = id_of(&group);
    assert_eq!(recipient_ids(&group).len(), 9);
    t.put(
        &format!("/channels/{id}/recipients/{}", ids[9]),
        &owner.token,
        json!({}),
    )
    .await
    .err(400, 30004);
}
