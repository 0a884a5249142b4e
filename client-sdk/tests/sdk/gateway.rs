//! The gateway client against a real node: events, resume without loss, re-identify when
//! the session is gone, fatal closes, encodings; and a scripted peer for zombie detection.

use std::time::Duration;

use enrichment_client::gateway::{Event, Gateway, GatewayError, GatewayOptions};
use enrichment_client::protocol::Snowflake;
use enrichment_client::protocol::gateway::{Encoding, TransportCompression, intents};
use enrichment_client::protocol::rest::{CreateInvite, CreateMessage};
use enrichment_client::{Client, Token};
use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use crate::support::TestNode;

const MESSAGES: u64 = intents::GUILDS | intents::GUILD_MESSAGES | intents::MESSAGE_CONTENT;

fn options(intents: u64) -> GatewayOptions {
    GatewayOptions {
        intents,
        base_backoff: Duration::from_millis(50),
        ..GatewayOptions::default()
    }
}

/// The next event that `f` accepts, skipping others; panics after 20 s.
async fn wait_for<T>(gw: &mut Gateway, mut f: impl FnMut(Event) -> Option<T>) -> T {
    timeout(Duration::from_secs(20), async {
        loop {
            let ev = gw.next_event().await.expect("stream open").expect("event");
            if let Some(t) = f(ev) {
                return t;
            }
        }
    })
    .await
    .expect("event in time")
}

async fn member_of(t: &TestNode, owner: &Client, channel: Snowflake, name: &str) -> Client {
    let user = t.user(name).await;
    let invite = owner
        .create_channel_invite(channel, &CreateInvite::default())
        .await
        .expect("invite");
    user.accept_invite(&invite.code).await.expect("join");
    user
}

fn text(content: String) -> CreateMessage {
    CreateMessage {
        content: Some(content),
        ..CreateMessage::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_forced_drops_without_losing_an_event() {
    let t = TestNode::start().await;
    let owner = t.user("owner").await;
    let (gid, ch) = t.guild(&owner, "Resume").await;
    let reader = member_of(&t, &owner, ch, "reader").await;

    let mut gw = Gateway::connect(&reader, options(MESSAGES))
        .await
        .expect("connect");
    let ready = wait_for(&mut gw, |e| match e {
        Event::Ready(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(ready.guilds.len(), 1);
    let guild = wait_for(&mut gw, |e| match e {
        Event::GuildCreate(g) => Some(g),
        _ => None,
    })
    .await;
    assert_eq!(guild.guild.id, gid);

    let total = 60;
    let sender = tokio::spawn({
        let owner = owner.clone();
        async move {
            let mut ids = Vec::new();
            for i in 0..total {
                ids.push(
                    owner
                        .create_message(ch, &text(format!("m{i}")))
                        .await
                        .expect("send")
                        .id,
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ids
        }
    });
    let mut seen = Vec::new();
    let mut disconnects = Vec::new();
    timeout(Duration::from_secs(60), async {
        while seen.len() < total {
            match gw.next_event().await.expect("open").expect("event") {
                Event::MessageCreate(m) => {
                    assert_eq!(m.content, format!("m{}", seen.len()), "in order, once");
                    seen.push(m.id);
                    // Two drops while the sender keeps going: what is sent meanwhile
                    // must come back in the resume's replay.
                    if seen.len() == 10 || seen.len() == 30 {
                        gw.drop_connection();
                    }
                }
                Event::Disconnected { resuming, .. } => disconnects.push(resuming),
                Event::Ready(_) => panic!("the session was lost instead of resumed"),
                _ => {}
            }
        }
    })
    .await
    .expect("all messages in time");
    let sent = sender.await.expect("sender");
    assert_eq!(seen, sent, "every message exactly once, in order");
    assert_eq!(disconnects, vec![true, true]);
    let s = gw.session();
    assert_eq!((s.identifies, s.resumes), (1, 2), "{s:?}");
    assert!(s.connected);
    gw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifies_again_when_the_session_cannot_resume() {
    // With no resume window a detached session is gone at once.
    let t = TestNode::start_with(|c| c.gateway.resume_window_secs = 0).await;
    let owner = t.user("owner").await;
    let (_, ch) = t.guild(&owner, "Lost").await;
    let mut gw = Gateway::connect(&owner, options(MESSAGES))
        .await
        .expect("connect");
    let first = wait_for(&mut gw, |e| match e {
        Event::Ready(r) => Some(r.session_id),
        _ => None,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.drop_connection();
    let second = wait_for(&mut gw, |e| match e {
        Event::Ready(r) => Some(r.session_id),
        _ => None,
    })
    .await;
    assert_ne!(first, second, "a new session");
    // And the new session delivers.
    owner
        .create_message(ch, &text("after".into()))
        .await
        .expect("send");
    let content = wait_for(&mut gw, |e| match e {
        Event::MessageCreate(m) => Some(m.content.clone()),
        _ => None,
    })
    .await;
    assert_eq!(content, "after");
    assert_eq!(gw.session().identifies, 2);
}

/// The error a refused session ends with; panics if an event comes first or after 20 s.
async fn refusal(gw: &mut Gateway) -> GatewayError {
    timeout(Duration::from_secs(20), gw.next_event())
        .await
        .expect("in time")
        .expect("an item")
        .expect_err("refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrecoverable_closes_end_the_stream_with_their_code() {
    let t = TestNode::start().await;
    let bad = t.anon.with_token(Token::Bearer("not-a-token".into()));
    let mut gw = Gateway::connect(
        &bad,
        GatewayOptions {
            url: Some(t.anon.get_gateway().await.expect("gateway").url),
            ..options(MESSAGES)
        },
    )
    .await
    .expect("connect");
    let err = refusal(&mut gw).await;
    assert!(
        matches!(err, GatewayError::Closed { code: 4004, .. }),
        "{err:?}"
    );
    assert!(gw.next_event().await.is_none(), "the stream ends");

    // Intents outside Discord's set: 4013.
    let owner = t.user("owner").await;
    let mut gw = Gateway::connect(&owner, options(1 << 40))
        .await
        .expect("connect");
    let err = refusal(&mut gw).await;
    assert!(
        matches!(err, GatewayError::Closed { code: 4013, .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgpack_zlib_stream_and_zstd_stream_carry_the_same_events() {
    let t = TestNode::start().await;
    let owner = t.user("owner").await;
    let (_, ch) = t.guild(&owner, "Codecs").await;
    let mut clients = Vec::new();
    for (encoding, compress) in [
        (Encoding::Json, TransportCompression::ZlibStream),
        (Encoding::MsgPack, TransportCompression::None),
        (Encoding::MsgPack, TransportCompression::ZlibStream),
        (Encoding::Json, TransportCompression::ZstdStream),
        (Encoding::MsgPack, TransportCompression::ZstdStream),
    ] {
        let mut gw = Gateway::connect(
            &owner,
            GatewayOptions {
                encoding,
                compress,
                ..options(MESSAGES)
            },
        )
        .await
        .expect("connect");
        wait_for(&mut gw, |e| {
            matches!(e, Event::GuildCreate(_)).then_some(())
        })
        .await;
        clients.push(gw);
    }
    let sent = owner
        .create_message(ch, &text("über 🎉".into()))
        .await
        .expect("send");
    for gw in &mut clients {
        let m = wait_for(gw, |e| match e {
            Event::MessageCreate(m) => Some(m),
            _ => None,
        })
        .await;
        assert_eq!((m.id, m.content.as_str()), (sent.id, "über 🎉"));
    }
}

/// A scripted gateway that says HELLO with a short interval, answers IDENTIFY with READY
/// and never acknowledges a heartbeat. The client must declare the connection dead and
/// come back with RESUME for the session and sequence it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_heartbeat_means_reconnect_and_resume() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    let resume_url = url.clone();
    let peer = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
            ws.send(Message::text(r#"{"op":10,"d":{"heartbeat_interval":150}}"#))
                .await
                .expect("hello");
            let first = read_json(&mut ws).await;
            seen.push(first.clone());
            if first["op"] == 2 {
                let ready = serde_json::json!({"op": 0, "t": "READY", "s": 1, "d": {
                    "v": 10, "session_id": "abc", "resume_gateway_url": resume_url,
                    "guilds": [], "user": {"id": "1", "username": "u", "discriminator": "0",
                    "global_name": null, "avatar": null, "banner": null, "accent_color": null,
                    "public_flags": 0, "flags": 0}}});
                ws.send(Message::text(ready.to_string()))
                    .await
                    .expect("ready");
                // Read (and ignore) heartbeats until the client gives up on us.
                while let Some(Ok(_)) = ws.next().await {}
            }
        }
        seen
    });
    let client = Client::builder(format!("http://{}", "127.0.0.1:9"))
        .token(Token::Bot("t".into()))
        .build()
        .expect("client");
    let mut gw = Gateway::connect(
        &client,
        GatewayOptions {
            url: Some(url.clone()),
            ..options(MESSAGES)
        },
    )
    .await
    .expect("connect");
    wait_for(&mut gw, |e| matches!(e, Event::Ready(_)).then_some(())).await;
    let resuming = wait_for(&mut gw, |e| match e {
        Event::Disconnected { resuming, .. } => Some(resuming),
        _ => None,
    })
    .await;
    assert!(resuming);
    let seen = timeout(Duration::from_secs(20), peer)
        .await
        .expect("peer done")
        .expect("peer");
    assert_eq!(seen[0]["op"], 2, "IDENTIFY first");
    assert_eq!(seen[1]["op"], 6, "then RESUME");
    assert_eq!(seen[1]["d"]["session_id"], "abc");
    assert_eq!(seen[1]["d"]["seq"], 1);
}

async fn read_json(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> serde_json::Value {
    loop {
        match ws.next().await.expect("frame").expect("ok") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("json"),
            _ => continue,
        }
    }
}
