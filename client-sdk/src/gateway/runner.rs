//! The task behind a [`Gateway`](super::Gateway): connects, identifies or resumes,
//! heartbeats, reads frames into events, and decides after every drop how to come back.

use std::time::Duration;

use enrichment_protocol::gateway::{
    CloseCode, ConnectionProperties, Decompressor, Encoding, Hello, Identify, Outbound, Resume,
    client_frame, op,
};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;

use super::{Command, Event, GatewayError, GatewayOptions, SessionInfo};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What to do after a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Resume,
    Identify,
    Stop,
}

#[derive(Debug)]
struct Ended {
    next: Next,
    code: Option<u16>,
    /// READY or RESUMED was seen, so the connection counts as a success.
    established: bool,
}

enum Failure {
    /// The connection could not be opened or did not say HELLO; try again later.
    Connect(String),
    /// The server said no in a way that retrying cannot change.
    Fatal(GatewayError),
}

pub(crate) struct Runner {
    base_url: String,
    token: String,
    options: GatewayOptions,
    events: mpsc::Sender<Result<Event, GatewayError>>,
    commands: mpsc::UnboundedReceiver<Command>,
    info: watch::Sender<SessionInfo>,
}

impl Runner {
    pub fn new(
        base_url: String,
        token: String,
        options: GatewayOptions,
        events: mpsc::Sender<Result<Event, GatewayError>>,
        commands: mpsc::UnboundedReceiver<Command>,
        info: watch::Sender<SessionInfo>,
    ) -> Runner {
        Runner {
            base_url,
            token,
            options,
            events,
            commands,
            info,
        }
    }

    pub async fn run(mut self) {
        let mut failures = 0u32;
        let mut after_invalid_session = false;
        loop {
            let resume_url = {
                let i = self.info.borrow();
                i.session_id
                    .as_ref()
                    .and(i.resume_url.clone())
                    .filter(|u| !u.is_empty())
            };
            let url = resume_url.unwrap_or_else(|| self.base_url.clone());
            let ended = match self.connection(&url).await {
                Ok(ended) => ended,
                Err(Failure::Fatal(e)) => {
                    tracing::warn!(error = %e, "gateway session ended");
                    let _ = self.events.send(Err(e)).await;
                    return;
                }
                Err(Failure::Connect(reason)) => {
                    failures += 1;
                    tracing::debug!(%reason, failures, "gateway connection failed");
                    if self.options.max_attempts.is_some_and(|m| failures >= m) {
                        let _ = self
                            .events
                            .send(Err(GatewayError::GaveUp {
                                attempts: failures,
                                last: reason,
                            }))
                            .await;
                        return;
                    }
                    if !self.pause(self.backoff(failures)).await {
                        return;
                    }
                    continue;
                }
            };
            self.info.send_modify(|i| i.connected = false);
            if ended.next == Next::Stop {
                return;
            }
            if ended.next == Next::Identify {
                self.info.send_modify(|i| {
                    i.session_id = None;
                    i.seq = None;
                    i.resume_url = None;
                });
            }
            failures = if ended.established { 0 } else { failures + 1 };
            let resuming = self.info.borrow().session_id.is_some();
            let notice = Event::Disconnected {
                code: ended.code,
                resuming,
            };
            if self.events.send(Ok(notice)).await.is_err() {
                return;
            }
            // Discord asks for a short random wait before identifying after INVALID_SESSION.
            after_invalid_session |= ended.next == Next::Identify;
            let wait = if failures > 0 {
                self.backoff(failures)
            } else if after_invalid_session {
                after_invalid_session = false;
                self.jitter(self.options.base_backoff * 2)
            } else {
                Duration::ZERO
            };
            if !wait.is_zero() && !self.pause(wait).await {
                return;
            }
        }
    }

    fn jitter(&self, ceiling: Duration) -> Duration {
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }

    fn backoff(&self, failures: u32) -> Duration {
        let ceiling = self
            .options
            .base_backoff
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(self.options.max_backoff);
        self.jitter(ceiling)
    }

    /// Sleeps, unless the caller closes meanwhile; `false` means stop.
    async fn pause(&mut self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        loop {
            tokio::select! {
                _ = sleep_until(deadline) => return true,
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Close) => return false,
                    // Nothing to send on or drop while disconnected.
                    Some(_) => {}
                },
            }
        }
    }

    fn connect_url(&self, base: &str) -> String {
        let base = base.split('?').next().unwrap_or(base).trim_end_matches('/');
        let encoding = match self.options.encoding {
            Encoding::Json => "json",
            Encoding::MsgPack => "msgpack",
        };
        let mut url = format!("{base}/?v=10&encoding={encoding}");
        if let Some(compress) = self.options.compress.query_value() {
            url.push_str("&compress=");
            url.push_str(compress);
        }
        url
    }

    async fn connection(&mut self, base: &str) -> Result<Ended, Failure> {
        let url = self.connect_url(base);
        let connect_timeout = self.options.connect_timeout;
        let (ws, _) = match timeout(connect_timeout, tokio_tungstenite::connect_async(&url)).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => return Err(Failure::Connect(format!("{url}: {e}"))),
            Err(_) => return Err(Failure::Connect(format!("{url}: timed out"))),
        };
        let mut conn = Conn {
            ws,
            encoding: self.options.encoding,
            inflater: Decompressor::new(self.options.compress).map_err(Failure::Connect)?,
        };
        let hello = match timeout(connect_timeout, conn.read()).await {
            Ok(Ok(Some(f))) if f.op == op::HELLO => f,
            Ok(Ok(Some(f))) => {
                return Err(Failure::Connect(format!("expected HELLO, got op {}", f.op)));
            }
            Ok(Ok(None)) => return Err(Failure::Connect("closed before HELLO".into())),
            Ok(Err(e)) => return Err(Failure::Connect(e)),
            Err(_) => return Err(Failure::Connect("no HELLO in time".into())),
        };
        let hello: Hello = serde_json::from_value(hello.d)
            .map_err(|e| Failure::Connect(format!("bad HELLO: {e}")))?;
        let interval = Duration::from_millis(hello.heartbeat_interval.max(1));

        let (session_id, seq) = {
            let i = self.info.borrow();
            (i.session_id.clone(), i.seq)
        };
        let sent = match (session_id, seq) {
            (Some(session_id), Some(seq)) => {
                conn.send(
                    op::RESUME,
                    &Resume {
                        token: self.token.clone(),
                        session_id,
                        seq,
                    },
                )
                .await
            }
            _ => conn.send(op::IDENTIFY, &self.identify()).await,
        };
        if let Err(e) = sent {
            return Err(Failure::Connect(e));
        }

        // The first beat lands at a random point of the first interval, so clients that
        // reconnect together do not beat together.
        let mut next_beat = Instant::now() + interval.mul_f64(rand::rng().random::<f64>());
        let mut acked = true;
        let mut beat_sent: Option<Instant> = None;
        let mut pending: Option<Result<Event, GatewayError>> = None;
        let mut established = false;
        let ended = |next, code, established| {
            Ok(Ended {
                next,
                code,
                established,
            })
        };
        loop {
            tokio::select! {
                _ = sleep_until(next_beat) => {
                    if !acked {
                        tracing::debug!("heartbeat not acknowledged; reconnecting");
                        conn.close(4000, "zombie connection").await;
                        return ended(Next::Resume, None, established);
                    }
                    let seq = self.info.borrow().seq;
                    if conn.send(op::HEARTBEAT, &seq).await.is_err() {
                        return ended(Next::Resume, None, established);
                    }
                    acked = false;
                    beat_sent = Some(Instant::now());
                    next_beat = Instant::now() + interval;
                }
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Close) => {
                        conn.close(1000, "closing").await;
                        return ended(Next::Stop, None, established);
                    }
                    Some(Command::Drop) => return ended(Next::Resume, None, established),
                    Some(Command::Send { op, d }) => {
                        if conn.send(op, &d).await.is_err() {
                            return ended(Next::Resume, None, established);
                        }
                    }
                },
                permit = self.events.reserve(), if pending.is_some() => match permit {
                    Ok(permit) => {
                        if let Some(ev) = pending.take() {
                            permit.send(ev);
                        }
                    }
                    // Nobody listens any more.
                    Err(_) => {
                        conn.close(1000, "closing").await;
                        return ended(Next::Stop, None, established);
                    }
                },
                frame = conn.read(), if pending.is_none() => {
                    let frame = match frame {
                        Ok(Some(f)) => f,
                        Ok(None) => return ended(Next::Resume, None, established),
                        Err(e) => match close_code(&e) {
                            Some((code, reason)) => return self.closed(code, reason, established),
                            None => return ended(Next::Resume, None, established),
                        },
                    };
                    match frame.op {
                        op::DISPATCH => {
                            if let Some(s) = frame.s {
                                self.info.send_modify(|i| i.seq = Some(s));
                            }
                            let name = frame.t.unwrap_or_default();
                            // Read once; the session's own state comes from the typed event.
                            let event = Event::from_dispatch(&name, frame.d);
                            match &event {
                                Ok(Event::Ready(ready)) => {
                                    self.info.send_modify(|i| {
                                        i.session_id = Some(ready.session_id.clone());
                                        i.resume_url = Some(ready.resume_gateway_url.clone());
                                        i.identifies += 1;
                                        i.connected = true;
                                    });
                                    established = true;
                                }
                                Ok(Event::Resumed) => {
                                    self.info.send_modify(|i| {
                                        i.resumes += 1;
                                        i.connected = true;
                                    });
                                    established = true;
                                }
                                _ => {}
                            }
                            pending = Some(event.map_err(|e| GatewayError::Decode {
                                event: name,
                                reason: e.to_string(),
                            }));
                        }
                        op::HEARTBEAT => {
                            let seq = self.info.borrow().seq;
                            if conn.send(op::HEARTBEAT, &seq).await.is_err() {
                                return ended(Next::Resume, None, established);
                            }
                        }
                        op::RECONNECT => {
                            conn.close(4000, "reconnect requested").await;
                            return ended(Next::Resume, None, established);
                        }
                        op::INVALID_SESSION => {
                            let resumable = frame.d.as_bool().unwrap_or(false);
                            conn.close(4000, "invalid session").await;
                            let next = if resumable { Next::Resume } else { Next::Identify };
                            return ended(next, None, established);
                        }
                        op::HEARTBEAT_ACK => {
                            acked = true;
                            if let Some(t) = beat_sent.take() {
                                let latency = t.elapsed();
                                self.info.send_modify(|i| i.latency = Some(latency));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// The server closed with `code`: resume, identify anew, or give up.
    fn closed(&self, code: u16, reason: &str, established: bool) -> Result<Ended, Failure> {
        let next = match CloseCode::from_code(code) {
            Some(c) if !c.reconnectable() => {
                return Err(Failure::Fatal(GatewayError::Closed {
                    code,
                    reason: reason.to_owned(),
                }));
            }
            Some(CloseCode::InvalidSeq | CloseCode::SessionTimedOut) => Next::Identify,
            _ => Next::Resume,
        };
        Ok(Ended {
            next,
            code: Some(code),
            established,
        })
    }

    fn identify(&self) -> Identify {
        Identify {
            token: self.token.clone(),
            properties: ConnectionProperties {
                os: std::env::consts::OS.to_owned(),
                browser: "enrichment-client".to_owned(),
                device: "enrichment-client".to_owned(),
            },
            intents: self.options.intents,
            shard: self.options.shard,
            large_threshold: None,
            presence: self.options.presence.clone(),
            compress: None,
        }
    }
}

/// A close frame is reported as an error string `closed:<code>:<reason>`.
fn close_code(e: &str) -> Option<(u16, &str)> {
    let (code, reason) = e.strip_prefix("closed:")?.split_once(':')?;
    Some((code.parse().ok()?, reason))
}

/// One open socket with its codec.
struct Conn {
    ws: Ws,
    encoding: Encoding,
    inflater: Option<Decompressor>,
}

impl Conn {
    async fn send<T: serde::Serialize>(&mut self, op: u8, d: &T) -> Result<(), String> {
        let bytes = client_frame(self.encoding, op, d).map_err(|e| e.to_string())?;
        let msg = match self.encoding {
            Encoding::Json => {
                Message::Text(String::from_utf8(bytes).map_err(|e| e.to_string())?.into())
            }
            Encoding::MsgPack => Message::Binary(bytes.into()),
        };
        self.ws.send(msg).await.map_err(|e| e.to_string())
    }

    /// The next gateway frame; `Ok(None)` when the socket ended without a close frame.
    async fn read(&mut self) -> Result<Option<Outbound>, String> {
        loop {
            let data = match self.ws.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                Some(Ok(Message::Binary(b))) => b.to_vec(),
                Some(Ok(Message::Close(frame))) => {
                    return Err(match frame {
                        Some(f) => format!("closed:{}:{}", u16::from(f.code), f.reason),
                        None => "closed without a code".to_owned(),
                    });
                }
                Some(Ok(_)) => continue,
            };
            let data = match &mut self.inflater {
                Some(z) => match z.push(&data)? {
                    Some(d) => d,
                    None => continue,
                },
                None => data,
            };
            return Outbound::decode(self.encoding, &data).map(Some);
        }
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: WsCloseCode::from(code),
            reason: reason.to_owned().into(),
        };
        // Best effort: the connection may already be gone.
        let _ = timeout(Duration::from_secs(2), self.ws.close(Some(frame))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_errors_carry_their_code() {
        assert_eq!(
            close_code("closed:4004:Authentication failed."),
            Some((4004, "Authentication failed."))
        );
        assert_eq!(close_code("closed without a code"), None);
        assert_eq!(close_code("connection reset"), None);
    }
}
