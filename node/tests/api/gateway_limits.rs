//! Gateway close codes, resume failures, zombies, slow consumers, identify limits and drain,
//! over real sockets.

use std::time::Duration;

use enrichment_protocol::gateway::{intents, op};
use serde_json::json;

use crate::gw::{ALL, Ended, Gw, identify_body};
use crate::support::TestNode;

#[tokio::test]
async fn each_protocol_violation_gets_its_close_code() {
    let node = TestNode::start_with(|c| c.gateway.inbound_per_window = 5).await;
    let alice = node.register("alice").await;
    node.guild(&alice, "home").await;

    // 4012: an API version we do not speak; 4002: an encoding we do not speak.
    assert_eq!(Gw::connect_raw(&node, "v=6").await, Some(4012));
    assert_eq!(
        Gw::connect_raw(&node, "v=10&encoding=etf").await,
        Some(4002)
    );

    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send(42, json!(null)).await;
    assert_eq!(gw.closed().await, Some(4001), "unknown opcode");

    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send_raw(b"{not json".to_vec()).await;
    assert_eq!(gw.closed().await, Some(4002), "undecodable payload");

    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send(op::HEARTBEAT, json!("x".repeat(5000))).await;
    assert_eq!(gw.closed().await, Some(4002), "payload over 4096 bytes");

    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send(
        op::PRESENCE_UPDATE,
        json!({"status": "idle", "activities": [], "afk": false, "since": null}),
    )
    .await;
    assert_eq!(gw.closed().await, Some(4003), "not authenticated yet");

    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send(op::IDENTIFY, identify_body("Bearer nonsense", ALL))
        .await;
    assert_eq!(gw.closed().await, Some(4004), "bad token");

    let (mut gw, _) = Gw::identify(&node, &alice.token, ALL).await;
    gw.send(op::IDENTIFY, identify_body(&alice.token, ALL))
        .await;
    assert_eq!(gw.closed().await, Some(4005), "already authenticated");

    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send(op::IDENTIFY, identify_body(&alice.token, 1 << 30))
        .await;
    assert_eq!(gw.closed().await, Some(4013), "undefined intent bits");

    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    let mut body = identify_body(&alice.token, ALL);
    body["shard"] = json!([2, 2]);
    gw.send(op::IDENTIFY, body).await;
    assert_eq!(gw.closed().await, Some(4010), "shard id out of range");

    let (mut gw, _) = Gw::identify(&node, &alice.token, ALL).await;
    for _ in 0..6 {
        gw.send(op::HEARTBEAT, json!(null)).await;
    }
    assert_eq!(gw.closed().await, Some(4008), "over the inbound rate");
}

#[tokio::test]
async fn sharding_is_required_past_the_guilds_per_shard_limit_and_filters_guilds() {
    let node = TestNode::start_with(|c| c.gateway.max_guilds_per_shard = 2).await;
    let alice = node.register("alice").await;
    let mut gids = Vec::new();
    for i in 0..3 {
        gids.push(node.guild(&alice, &format!("g{i}")).await.0);
    }
    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send(op::IDENTIFY, identify_body(&alice.token, ALL))
        .await;
    assert_eq!(gw.closed().await, Some(4011));
    // Two shards: each carries exactly the guilds with (id >> 22) % 2 == shard, and a shard
    // that would carry more than two still needs more shards.
    for shard in 0..2u64 {
        let mut expected: Vec<String> = gids
            .iter()
            .filter(|g| (g.parse::<u64>().unwrap() >> 22) % 2 == shard)
            .cloned()
            .collect();
        expected.sort();
        let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
        let mut body = identify_body(&alice.token, ALL);
        body["shard"] = json!([shard, 2]);
        gw.send(op::IDENTIFY, body).await;
        if expected.len() > 2 {
            assert_eq!(gw.closed().await, Some(4011));
            continue;
        }
        let ready = gw.dispatch("READY").await;
        assert_eq!(ready["shard"], json!([shard, 2]));
        let mut got: Vec<String> = ready["guilds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_owned())
            .collect();
        got.sort();
        assert_eq!(got, expected, "shard {shard}");
    }
}

#[tokio::test]
async fn bots_are_held_to_identify_concurrency_and_the_daily_budget() {
    let node = TestNode::start_with(|c| {
        c.gateway.identify_max_concurrency = 1;
        c.gateway.identify_window_secs = 5;
        c.gateway.identify_per_day = 3;
    })
    .await;
    let alice = node.register("alice").await;
    let (gid, _) = node.guild(&alice, "home").await;
    let bot = node.bot(&alice, "helper", &gid, 0).await;
    let (_first, ready) = Gw::identify(&node, &bot.token, intents::GUILDS).await;
    assert_eq!(ready["user"]["id"], bot.user_id.as_str());
    assert_eq!(ready["application"]["id"], bot.app_id.as_str());
    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send(op::IDENTIFY, identify_body(&bot.token, intents::GUILDS))
        .await;
    let f = gw.recv().await;
    assert_eq!(
        (f.op, f.d.clone()),
        (op::INVALID_SESSION, json!(false)),
        "second identify within 5 s"
    );
    let limit = node.get("/gateway/bot", &bot.token).await.ok(200)["session_start_limit"].clone();
    assert_eq!(limit["total"], 3);
    assert_eq!(limit["remaining"], 2);
    assert_eq!(limit["max_concurrency"], 1);
    assert!(limit["reset_after"].as_u64().unwrap() > 86_000_000);
    // People are not held to the concurrency window.
    let (_a, _) = Gw::identify(&node, &alice.token, ALL).await;
    let (_b, _) = Gw::identify(&node, &alice.token, ALL).await;
}

/// `session_start_limit` is read from the budget IDENTIFY is charged to: every IDENTIFY the bot
/// makes takes one from `remaining`, `reset_after` counts down to the end of the window the first
/// one opened, and once `remaining` is 0 IDENTIFY is refused.
#[tokio::test]
async fn gateway_bot_reports_what_identifies_have_spent_of_the_budget() {
    let node = TestNode::start_with(|c| {
        // Four buckets, so the identifies below are held back by the daily budget only.
        c.gateway.identify_max_concurrency = 4;
        c.gateway.identify_window_secs = 5;
        c.gateway.identify_per_day = 3;
    })
    .await;
    let alice = node.register("alice").await;
    let (gid, _) = node.guild(&alice, "home").await;
    let bot = node.bot(&alice, "helper", &gid, 0).await;
    let start_limit = || async {
        node.get("/gateway/bot", &bot.token).await.ok(200)["session_start_limit"].clone()
    };
    let before = start_limit().await;
    assert_eq!(
        (&before["total"], &before["remaining"]),
        (&json!(3), &json!(3))
    );
    assert_eq!(before["max_concurrency"], 4);
    assert_eq!(before["reset_after"], 86_400_000, "no window open yet");

    let identify_shard = |shard: u32| {
        let mut body = identify_body(&bot.token, intents::GUILDS);
        body["shard"] = json!([shard, 4]);
        body
    };
    let mut held = Vec::new();
    for shard in 0..2 {
        let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
        gw.send(op::IDENTIFY, identify_shard(shard)).await;
        let ready = gw.dispatch("READY").await;
        assert_eq!(ready["shard"], json!([shard, 4]));
        held.push(gw);
    }
    let after_two = start_limit().await;
    assert_eq!(after_two["remaining"], 1, "{after_two}");
    let reset = after_two["reset_after"].as_u64().unwrap();
    assert!((86_000_000..86_400_000).contains(&reset), "{reset}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = start_limit().await["reset_after"].as_u64().unwrap();
    assert!(
        later <= reset - 1000,
        "reset_after counts down: {reset} then {later}"
    );

    // The last one of the day, then a refusal on a bucket of its own: the budget, not the
    // concurrency window, says no.
    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send(op::IDENTIFY, identify_shard(2)).await;
    gw.dispatch("READY").await;
    held.push(gw);
    assert_eq!(start_limit().await["remaining"], 0);
    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send(op::IDENTIFY, identify_shard(3)).await;
    let f = gw.recv().await;
    assert_eq!((f.op, f.d), (op::INVALID_SESSION, json!(false)));
    assert_eq!(
        start_limit().await["remaining"],
        0,
        "a refused identify costs nothing"
    );
}

#[tokio::test]
async fn resume_is_refused_when_the_gap_is_lost_or_the_session_expired() {
    let node = TestNode::start_with(|c| {
        c.gateway.replay_frames = 3;
        c.gateway.resume_window_secs = 1;
    })
    .await;
    let alice = node.register("alice").await;
    let (gid, ch) = node.guild(&alice, "home").await;

    // Too old: five events missed, three kept.
    let (mut gw, _) = Gw::identify(&node, &alice.token, ALL).await;
    gw.guild_create(&gid).await;
    let (seq, session) = (gw.seq.unwrap(), gw.session_id.clone());
    gw.drop_connection();
    for i in 0..5 {
        node.send(&alice, &ch, &format!("m{i}")).await;
    }
    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send_resume(&alice.token, &session, seq).await;
    let f = gw.recv().await;
    assert_eq!((f.op, f.d), (op::INVALID_SESSION, json!(false)));

    // A seq the session never sent: 4007.
    let (mut gw, _) = Gw::identify(&node, &alice.token, ALL).await;
    gw.guild_create(&gid).await;
    let session = gw.session_id.clone();
    gw.drop_connection();
    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send_resume(&alice.token, &session, 999).await;
    assert_eq!(gw.closed().await, Some(4007));

    // Expired: nobody resumed within the window.
    let (gw, _) = Gw::identify(&node, &alice.token, ALL).await;
    let session = gw.session_id.clone();
    gw.drop_connection();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send_resume(&alice.token, &session, 1).await;
    let f = gw.recv().await;
    assert_eq!((f.op, f.d), (op::INVALID_SESSION, json!(false)));

    // Closed with 1000: the session is over.
    let (gw, _) = Gw::identify(&node, &alice.token, ALL).await;
    let session = gw.session_id.clone();
    gw.close(1000).await;
    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send_resume(&alice.token, &session, 1).await;
    let f = gw.recv().await;
    assert_eq!(f.op, op::INVALID_SESSION);
}

#[tokio::test]
async fn a_silent_client_is_asked_to_heartbeat_then_closed_as_a_zombie_and_can_resume() {
    let node = TestNode::start_with(|c| c.gateway.heartbeat_interval_ms = 400).await;
    let alice = node.register("alice").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    let (mut gw, _) = Gw::identify(&node, &alice.token, ALL).await;
    assert_eq!(gw.heartbeat_interval, 400);
    gw.guild_create(&gid).await;
    // Say nothing: op 1 after one interval, close 4009 after one and a half.
    let (asked, code) = gw.closed_after(op::HEARTBEAT).await;
    assert!(asked, "the server asked for a heartbeat first");
    assert_eq!(code, Some(4009));
    node.send(&alice, &ch, "while away").await;
    let (seq, session) = (gw.seq.unwrap(), gw.session_id.clone());
    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send_resume(&alice.token, &session, seq).await;
    assert_eq!(gw.dispatch("MESSAGE_CREATE").await["content"], "while away");
    gw.dispatch("RESUMED").await;
    // A client that heartbeats stays.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        gw.heartbeat().await;
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_without_slowing_the_others() {
    let node = TestNode::start_with(|c| {
        c.gateway.outbox_frames = 64;
        c.gateway.write_timeout_secs = 1;
        c.gateway.send_buffer_bytes = 4096;
    })
    .await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    node.join(&alice, &ch, &bob).await;
    let (mut reader, _) = Gw::identify(&node, &alice.token, ALL).await;
    reader.guild_create(&gid).await;
    let (mut sleeper, _) = Gw::identify(&node, &bob.token, ALL).await;
    sleeper.guild_create(&gid).await;
    let seen_by_sleeper = sleeper.seq.unwrap();
    // The sleeper stops reading; the reader keeps up with every message as it arrives.
    let total = 400;
    let reading = tokio::spawn(async move {
        let mut got = 0;
        while got < total {
            if reader.next_event().await.0 == "MESSAGE_CREATE" {
                got += 1;
            }
        }
        got
    });
    let text = "x".repeat(1500);
    let mut ids = Vec::new();
    for _ in 0..total {
        ids.push(node.send(&alice, &ch, &text).await["id"].clone());
    }
    assert_eq!(reading.await.unwrap(), total);
    // The sleeper's connection was closed by the server.
    let ended = loop {
        match sleeper.try_recv(Duration::from_secs(10)).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the slow client was never disconnected"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(ended, Ended::Dropped | Ended::Closed(Some(4000))),
        "resumable close, got {ended:?}"
    );
    let addr = node.node.as_ref().unwrap().addr;
    let metrics = node
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let slow: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("enrichment_gateway_slow_consumers_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(slow >= 1.0, "counted as a slow consumer");
    // Its session kept the backlog: a resume from what it saw gets everything, in order.
    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send_resume(&bob.token, &sleeper.session_id, seen_by_sleeper)
        .await;
    assert_eq!(gw.replayed_messages().await, ids);
}

#[tokio::test]
async fn draining_sends_reconnect_and_a_resumable_close() {
    let mut node = TestNode::start().await;
    let alice = node.register("alice").await;
    let (gid, _) = node.guild(&alice, "home").await;
    let (mut gw, _) = Gw::identify(&node, &alice.token, ALL).await;
    gw.guild_create(&gid).await;
    let stopping = tokio::spawn(node.node.take().unwrap().stop());
    let (got_reconnect, code) = gw.closed_after(op::RECONNECT).await;
    assert!(got_reconnect, "op 7 before the close");
    assert_eq!(code, Some(4000));
    stopping.await.unwrap();
}

#[tokio::test]
async fn connections_past_max_connections_are_refused() {
    let node = TestNode::start_with(|c| c.gateway.max_connections = 2).await;
    let _a = Gw::connect(&node, "v=10&encoding=json").await;
    let b = Gw::connect(&node, "v=10&encoding=json").await;
    let url = format!("{}/?v=10&encoding=json", crate::gw::gateway_url(&node));
    assert!(
        tokio_tungstenite::connect_async(&url).await.is_err(),
        "a third connection is refused"
    );
    // A slot frees when a connection ends.
    b.close(1000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _c = Gw::connect(&node, "v=10&encoding=json").await;
}
