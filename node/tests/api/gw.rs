//! A real WebSocket gateway client for tests (tokio-tungstenite), speaking JSON, MessagePack,
//! zlib-stream and zstd-stream exactly as a Discord library would. zstd-stream is decoded with
//! the zstd crate's streaming decoder directly, as twilight and discord.py do, not with the
//! protocol crate's.

use std::time::Duration;

use enrichment_protocol::gateway::{Encoding, Outbound, ZlibInflater, client_frame, intents, op};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::TestNode;

/// Every non-privileged intent plus the privileged ones (users may use them all).
pub const ALL: u64 = intents::ALL;

/// An IDENTIFY payload for `token` with `intents`.
pub fn identify_body(token: &str, intents: u64) -> serde_json::Value {
    json!({"token": token, "intents": intents, "properties": {"os": "linux", "browser": "t", "device": "t"}})
}

pub struct Gw {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub encoding: Encoding,
    inflate: Option<Inflate>,
    /// zstd-stream WebSocket messages received so far, and how many of them opened a zstd
    /// frame (began with its magic number).
    pub zstd_messages: usize,
    pub zstd_frames: usize,
    /// Gateway frames received so far.
    pub frames: usize,
    pub seq: Option<u64>,
    pub session_id: String,
    pub resume_url: String,
    pub heartbeat_interval: u64,
    /// WebSocket pongs received so far (skipped by [`Gw::recv`]).
    pub pongs: usize,
}

/// The client side of the connection's transport compression.
enum Inflate {
    Zlib(ZlibInflater),
    Zstd(zstd::stream::raw::Decoder<'static>),
}

/// Decodes one zstd-stream WebSocket message, which must hold one whole gateway message: all
/// its input is taken and the decoder has nothing more to give.
fn zstd_message(z: &mut zstd::stream::raw::Decoder<'static>, data: &[u8]) -> Vec<u8> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    let mut input = InBuffer::around(data);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let mut output = OutBuffer::around(&mut chunk[..]);
        z.run(&mut input, &mut output).expect("zstd-stream decodes");
        let written = output.pos();
        out.extend_from_slice(&chunk[..written]);
        if input.pos() == data.len() && written < chunk.len() {
            return out;
        }
    }
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Closed(Option<u16>),
    Dropped,
}

impl Gw {
    /// Connects to the node's gateway with the given query string and reads HELLO.
    pub async fn connect(node: &TestNode, query: &str) -> Gw {
        let url = format!("{}/?{query}", gateway_url(node));
        Self::connect_url(&url).await
    }

    /// Connects with a query the server refuses; returns the close code it sends instead of
    /// HELLO.
    pub async fn connect_raw(node: &TestNode, query: &str) -> Option<u16> {
        let url = format!("{}/?{query}", gateway_url(node));
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("gateway connects");
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(other))) => panic!("expected a close, got {other:?}"),
            _ => None,
        }
    }

    pub async fn connect_url(url: &str) -> Gw {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("gateway connects");
        let encoding = if url.contains("encoding=msgpack") {
            Encoding::MsgPack
        } else {
            Encoding::Json
        };
        let inflate = if url.contains("compress=zlib-stream") {
            Some(Inflate::Zlib(ZlibInflater::new()))
        } else if url.contains("compress=zstd-stream") {
            Some(Inflate::Zstd(
                zstd::stream::raw::Decoder::new().expect("zstd decoder"),
            ))
        } else {
            None
        };
        let mut gw = Gw {
            ws,
            encoding,
            inflate,
            zstd_messages: 0,
            zstd_frames: 0,
            frames: 0,
            seq: None,
            session_id: String::new(),
            resume_url: String::new(),
            heartbeat_interval: 0,
            pongs: 0,
        };
        let hello = gw.recv().await;
        assert_eq!(hello.op, op::HELLO, "first frame is HELLO: {hello:?}");
        gw.heartbeat_interval = hello.d["heartbeat_interval"].as_u64().expect("interval");
        gw
    }

    /// Connects with JSON and identifies; returns READY's `d`.
    pub async fn identify(node: &TestNode, token: &str, intents: u64) -> (Gw, Value) {
        let mut gw = Gw::connect(node, "v=10&encoding=json").await;
        let ready = gw.send_identify(token, intents).await;
        (gw, ready)
    }

    /// Connects with `query`, identifies with every intent and waits for `guild_id`'s
    /// GUILD_CREATE.
    pub async fn joined(node: &TestNode, query: &str, token: &str, guild_id: &str) -> Gw {
        let mut gw = Gw::connect(node, query).await;
        gw.send_identify(token, ALL).await;
        gw.guild_create(guild_id).await;
        gw
    }

    pub async fn send_identify(&mut self, token: &str, intents: u64) -> Value {
        self.send(
            op::IDENTIFY,
            json!({"token": token, "intents": intents, "properties": {"os": "linux", "browser": "test", "device": "test"}}),
        )
        .await;
        let ready = self.dispatch("READY").await;
        self.session_id = ready["session_id"].as_str().expect("session_id").to_owned();
        self.resume_url = ready["resume_gateway_url"]
            .as_str()
            .expect("resume url")
            .to_owned();
        ready
    }

    pub async fn send(&mut self, opcode: u8, d: Value) {
        let bytes = client_frame(self.encoding, opcode, &d).expect("encodes");
        self.send_raw(bytes).await;
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        let msg = match self.encoding {
            Encoding::Json => Message::Text(String::from_utf8(bytes).expect("utf8").into()),
            Encoding::MsgPack => Message::Binary(bytes.into()),
        };
        self.ws.send(msg).await.expect("frame sent");
    }

    /// The next frame (panics after 10 s or if the connection ends).
    pub async fn recv(&mut self) -> Outbound {
        match self.try_recv(Duration::from_secs(10)).await {
            Ok(Some(f)) => f,
            Ok(None) => panic!("no frame within 10 s"),
            Err(end) => panic!("connection ended: {end:?}"),
        }
    }

    /// The next frame within `wait`; `Ok(None)` on silence, `Err` when the connection ended.
    pub async fn try_recv(&mut self, wait: Duration) -> Result<Option<Outbound>, Ended> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(Ended::Dropped),
                Ok(Some(Err(_))) => return Err(Ended::Dropped),
                Ok(Some(Ok(m))) => m,
            };
            let bytes: Vec<u8> = match msg {
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Binary(b) => b.to_vec(),
                Message::Close(frame) => {
                    return Err(Ended::Closed(frame.map(|f| u16::from(f.code))));
                }
                Message::Pong(_) => {
                    self.pongs += 1;
                    continue;
                }
                _ => continue,
            };
            let bytes = match &mut self.inflate {
                Some(Inflate::Zlib(z)) => match z.push(&bytes).expect("inflates") {
                    Some(b) => b,
                    None => continue,
                },
                Some(Inflate::Zstd(z)) => {
                    self.zstd_messages += 1;
                    if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                        self.zstd_frames += 1;
                    }
                    zstd_message(z, &bytes)
                }
                None => bytes,
            };
            let f = Outbound::decode(self.encoding, &bytes).expect("server frame decodes");
            self.frames += 1;
            if let Some(s) = f.s {
                if let Some(prev) = self.seq {
                    assert_eq!(s, prev + 1, "sequence numbers increase by exactly one");
                }
                self.seq = Some(s);
            }
            return Ok(Some(f));
        }
    }

    /// The next dispatch named `t`, skipping other frames; returns its `d`.
    pub async fn dispatch(&mut self, t: &str) -> Value {
        loop {
            let f = self.recv().await;
            if f.op == op::DISPATCH && f.t.as_deref() == Some(t) {
                return f.d;
            }
            if f.op == op::INVALID_SESSION {
                panic!("INVALID_SESSION while waiting for {t}");
            }
        }
    }

    /// The next dispatch, skipping other frames: its name and `d`. An error says why none
    /// came: no frame at all within `wait`, the connection's end, or INVALID_SESSION.
    pub async fn try_dispatch(&mut self, wait: Duration) -> Result<(String, Value), String> {
        loop {
            match self.try_recv(wait).await {
                Ok(Some(f)) if f.op == op::INVALID_SESSION => {
                    return Err("INVALID_SESSION".to_owned());
                }
                Ok(Some(Outbound {
                    op: op::DISPATCH,
                    t: Some(t),
                    d,
                    ..
                })) => return Ok((t, d)),
                Ok(Some(_)) => {}
                Ok(None) => return Err(format!("{} s of silence", wait.as_secs())),
                Err(end) => return Err(format!("connection ended: {end:?}")),
            }
        }
    }

    /// The next dispatch that is not a presence update (those arrive whenever users come and go).
    pub async fn next_event(&mut self) -> (String, Value) {
        loop {
            let f = self.recv().await;
            if f.op == op::DISPATCH && f.t.as_deref() != Some("PRESENCE_UPDATE") {
                return (f.t.unwrap_or_default(), f.d);
            }
        }
    }

    /// Asserts that no dispatch other than presence arrives within `wait`.
    pub async fn expect_quiet(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv(left).await {
                Ok(None) => return,
                Ok(Some(f))
                    if f.op == op::DISPATCH && f.t.as_deref() != Some("PRESENCE_UPDATE") =>
                {
                    panic!("unexpected {:?}: {}", f.t, f.d)
                }
                Ok(Some(_)) => {}
                Err(e) => panic!("connection ended while it should stay quiet: {e:?}"),
            }
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.try_recv(Duration::from_secs(10)).await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the server did not close within 10 s"),
                Err(Ended::Closed(code)) => return code,
                Err(Ended::Dropped) => return None,
            }
        }
    }

    /// Waits for GUILD_CREATE of `guild_id`.
    pub async fn guild_create(&mut self, guild_id: &str) -> Value {
        loop {
            let d = self.dispatch("GUILD_CREATE").await;
            if d["id"] == guild_id {
                return d;
            }
        }
    }

    /// Sends RESUME for `session`, having seen everything up to `seq`.
    pub async fn send_resume(&mut self, token: &str, session: &str, seq: u64) {
        self.seq = Some(seq);
        self.send(
            op::RESUME,
            json!({"token": token, "session_id": session, "seq": seq}),
        )
        .await;
    }

    /// The ids of the MESSAGE_CREATEs replayed before RESUMED; any other replayed event (but
    /// presence) fails the test.
    pub async fn replayed_messages(&mut self) -> Vec<Value> {
        let mut ids = Vec::new();
        loop {
            let (t, d) = self.next_event().await;
            match t.as_str() {
                "MESSAGE_CREATE" => ids.push(d["id"].clone()),
                "RESUMED" => return ids,
                other => panic!("unexpected {other} during a resume: {d}"),
            }
        }
    }

    /// Reads until the server closes; returns whether a frame with `opcode` came first, and
    /// the close code.
    pub async fn closed_after(&mut self, opcode: u8) -> (bool, Option<u16>) {
        let mut seen = false;
        loop {
            match self.try_recv(Duration::from_secs(10)).await {
                Ok(Some(f)) => seen |= f.op == opcode,
                Ok(None) => panic!("the server did not close within 10 s"),
                Err(Ended::Closed(code)) => return (seen, code),
                Err(Ended::Dropped) => return (seen, None),
            }
        }
    }

    pub async fn heartbeat(&mut self) -> Outbound {
        let seq = self.seq;
        self.send(op::HEARTBEAT, json!(seq)).await;
        loop {
            let f = self.recv().await;
            if f.op == op::HEARTBEAT_ACK {
                return f;
            }
        }
    }

    /// Closes from the client side with `code`.
    pub async fn close(mut self, code: u16) {
        let _ = self
            .ws
            .close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            }))
            .await;
        // Let the server see the close before the test goes on.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// Drops the TCP connection without a close frame (a network failure).
    pub fn drop_connection(self) {
        drop(self);
    }
}

pub fn gateway_url(node: &TestNode) -> String {
    let n = node.node.as_ref().expect("node running");
    n.gateway_url.clone()
}
