//! The gateway end to end: real WebSocket clients against a real node.

use enrichment_protocol::gateway::{intents, op};
use serde_json::json;

use crate::gw::{ALL, Gw};
use crate::support::TestNode;

#[tokio::test]
async fn identify_gives_ready_then_guild_create() {
    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    let (mut gw, ready) = Gw::identify(&node, &alice.token, ALL).await;
    assert_eq!(ready["v"], 10);
    assert_eq!(ready["user"]["id"], alice.id.as_str());
    assert_eq!(ready["guilds"], json!([{"id": gid, "unavailable": true}]));
    assert!(
        ready["resume_gateway_url"]
            .as_str()
            .unwrap()
            .starts_with("ws://127.0.0.1:")
    );
    assert_eq!(gw.seq, Some(1), "READY is sequence 1");
    let g = gw.guild_create(&gid).await;
    assert_eq!(g["name"], "home");
    assert_eq!(g["member_count"], 1);
    assert_eq!(g["large"], false);
    assert!(g["joined_at"].is_string());
    assert_eq!(g["channels"][0]["id"], ch.as_str());
    assert_eq!(g["members"][0]["user"]["id"], alice.id.as_str());
    assert!(
        g["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == gid.as_str())
    );
    // Heartbeats are acknowledged.
    assert_eq!(gw.heartbeat().await.op, op::HEARTBEAT_ACK);
}

#[tokio::test]
async fn two_users_see_each_others_messages_in_order() {
    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    node.join(&alice, &ch, &bob).await;
    let (mut a, _) = Gw::identify(&node, &alice.token, ALL).await;
    let (mut b, _) = Gw::identify(&node, &bob.token, ALL).await;
    a.guild_create(&gid).await;
    b.guild_create(&gid).await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let who = if i % 2 == 0 { &alice } else { &bob };
        sent.push(node.send(who, &ch, &format!("m{i}")).await["id"].clone());
    }
    for gw in [&mut a, &mut b] {
        let mut got = Vec::new();
        while got.len() < 20 {
            let (t, d) = gw.next_event().await;
            if t == "MESSAGE_CREATE" {
                assert_eq!(d["channel_id"], ch.as_str());
                assert_eq!(d["guild_id"], gid.as_str());
                assert!(
                    d["member"]["roles"].is_array(),
                    "gateway messages carry the member"
                );
                got.push(d["id"].clone());
            }
        }
        assert_eq!(got, sent, "every recipient sees messages in id order");
    }
}

#[tokio::test]
async fn resume_after_a_dropped_connection_replays_the_missed_events() {
    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    let (mut gw, _) = Gw::identify(&node, &alice.token, ALL).await;
    gw.guild_create(&gid).await;
    node.send(&alice, &ch, "before").await;
    assert_eq!(gw.dispatch("MESSAGE_CREATE").await["content"], "before");
    let (seq, session, url) = (
        gw.seq.unwrap(),
        gw.session_id.clone(),
        gw.resume_url.clone(),
    );
    gw.drop_connection();
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(node.send(&alice, &ch, &format!("missed {i}")).await["id"].clone());
    }
    let mut gw = Gw::connect_url(&format!("{url}/?v=10&encoding=json")).await;
    gw.send_resume(&alice.token, &session, seq).await;
    assert_eq!(
        gw.replayed_messages().await,
        missed,
        "exactly the missed messages, in order"
    );
    node.send(&alice, &ch, "after").await;
    assert_eq!(gw.dispatch("MESSAGE_CREATE").await["content"], "after");
}

#[tokio::test]
async fn message_content_is_hidden_from_bots_without_the_intent() {
    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let (gid, ch) = node.guild(&alice, "home").await;
    let bot = node.bot(&alice, "helper", &gid, 3072).await;
    let (bot_token, bot_id) = (bot.token.clone(), bot.user_id.clone());
    let (mut bot, _) =
        Gw::identify(&node, &bot_token, intents::GUILDS | intents::GUILD_MESSAGES).await;
    bot.guild_create(&gid).await;
    node.send(&alice, &ch, "secret").await;
    let d = bot.dispatch("MESSAGE_CREATE").await;
    assert_eq!(d["content"], "", "no MESSAGE_CONTENT intent");
    node.send(&alice, &ch, &format!("hey <@{bot_id}>")).await;
    let d = bot.dispatch("MESSAGE_CREATE").await;
    assert_eq!(
        d["content"],
        format!("hey <@{bot_id}>"),
        "a mention shows the content"
    );
    // Privileged intents need the application's flags.
    let mut gw = Gw::connect(&node, "v=10&encoding=json").await;
    gw.send(
        op::IDENTIFY,
        json!({"token": bot_token, "intents": intents::MESSAGE_CONTENT, "properties": {}}),
    )
    .await;
    assert_eq!(gw.closed().await, Some(4014));
    // The application turns the limited flag on for itself; other flags stay out of reach.
    node.patch(
        "/applications/@me",
        &bot_token,
        json!({"flags": 1u64 << 23}),
    )
    .await
    .err(400, 50035);
    let app = node
        .patch(
            "/applications/@me",
            &bot_token,
            json!({"flags": 1u64 << 19}),
        )
        .await
        .ok(200);
    assert_eq!(app["flags"], 1u64 << 19);
    let (mut bot, ready) = Gw::identify(
        &node,
        &bot_token,
        intents::GUILDS | intents::GUILD_MESSAGES | intents::MESSAGE_CONTENT,
    )
    .await;
    assert_eq!(ready["application"]["flags"], 1u64 << 19);
    bot.guild_create(&gid).await;
    node.send(&alice, &ch, "now readable").await;
    assert_eq!(
        bot.dispatch("MESSAGE_CREATE").await["content"],
        "now readable"
    );
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_frame() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let node = TestNode::start().await;
    let alice = node.register("alice").await;
    let (mut gw, _) = Gw::identify(&node, &alice.token, ALL).await;
    gw.ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    // RFC 6455: the server answers with a Close frame before it closes the TCP connection, so
    // libraries see a clean close, not a dropped socket (which they treat as a failure).
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match gw.ws.next().await {
                Some(Ok(Message::Close(frame))) => return Ok(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the stream ended".to_owned()),
            }
        }
    })
    .await
    .expect("an answer within 5 s");
    assert_eq!(answer, Ok(Some(1000)));
}
