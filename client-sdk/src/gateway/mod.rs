//! The gateway client: one WebSocket session that survives dropped connections.
//!
//! [`Gateway::connect`] finds the gateway (`GET /gateway/bot` for bots, `GET /gateway`
//! otherwise) and starts a background task that owns the socket. That task identifies,
//! heartbeats (the first beat after a random part of the interval, as Discord asks), and
//! treats a heartbeat that was not acknowledged before the next one as a dead ("zombie")
//! connection. When a connection ends it reconnects with jittered exponential backoff: to
//! `resume_gateway_url` with RESUME when the session can continue (a resumable close, op 7,
//! op 9 `true`, a zombie), so no event is lost, or with a new IDENTIFY when it cannot. Close
//! codes that no retry can fix (bad token, bad intents, bad shard) end the stream with an
//! error. Events reach the caller through [`Gateway::next_event`]; when the caller stops
//! reading, the task stops reading the socket too (so the server sees a slow consumer)
//! but keeps heartbeating.

mod event;
mod runner;

use std::time::Duration;

use enrichment_protocol::gateway::{
    Encoding, PresenceUpdate, RequestGuildMembers, TransportCompression,
};
use tokio::sync::{mpsc, watch};

pub use event::Event;

use crate::client::Client;
use crate::error::{Error, Result};

/// A gateway failure that reconnecting cannot fix, or a frame that could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GatewayError {
    /// The server closed the connection with a code that forbids reconnecting
    /// (4004 authentication failed, 4010–4014 shard and intent errors).
    #[error("closed by the server with {code}: {reason}")]
    Closed {
        /// The close code.
        code: u16,
        /// The server's reason text.
        reason: String,
    },
    /// A dispatch whose payload did not match its event's type; the session goes on.
    #[error("cannot read {event}: {reason}")]
    Decode {
        /// The dispatch name.
        event: String,
        /// What did not match.
        reason: String,
    },
    /// The configured reconnect attempts ran out.
    #[error("gave up after {attempts} failed connection attempts: {last}")]
    GaveUp {
        /// How many attempts failed in a row.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// How to connect.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// Intents (see `enrichment_protocol::gateway::intents`).
    pub intents: u64,
    /// JSON or MessagePack frames.
    pub encoding: Encoding,
    /// Transport compression: `compress=zlib-stream` or `compress=zstd-stream` (one context
    /// for the connection's life; every message is decompressed as it arrives).
    pub compress: TransportCompression,
    /// `[shard_id, num_shards]`, for bots that shard.
    pub shard: Option<[u32; 2]>,
    /// The presence to start with.
    pub presence: Option<PresenceUpdate>,
    /// A gateway URL to use instead of asking the REST API.
    pub url: Option<String>,
    /// Events buffered for the caller before the client stops reading the socket.
    pub event_buffer: usize,
    /// First reconnect backoff; doubles per failed attempt, with full jitter.
    pub base_backoff: Duration,
    /// Upper bound of one reconnect backoff.
    pub max_backoff: Duration,
    /// Failed connection attempts in a row before giving up (`None`: never).
    pub max_attempts: Option<u32>,
    /// How long to wait for HELLO and for the socket to open.
    pub connect_timeout: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            intents: enrichment_protocol::gateway::intents::GUILDS
                | enrichment_protocol::gateway::intents::GUILD_MESSAGES,
            encoding: Encoding::Json,
            compress: TransportCompression::None,
            shard: None,
            presence: None,
            url: None,
            event_buffer: 1024,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_attempts: None,
            connect_timeout: Duration::from_secs(20),
        }
    }
}

/// Where a session stands, for callers that want to watch it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id from READY.
    pub session_id: Option<String>,
    /// The last sequence number received.
    pub seq: Option<u64>,
    /// Where the session resumes.
    pub resume_url: Option<String>,
    /// Whether a connection is open and identified (or resumed) right now.
    pub connected: bool,
    /// How many times the session resumed after a drop.
    pub resumes: u32,
    /// How many times the client had to identify (1 at start, more after lost sessions).
    pub identifies: u32,
    /// The last heartbeat's round trip.
    pub latency: Option<Duration>,
}

/// Requests from the caller to the connection task.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        op: u8,
        d: serde_json::Value,
    },
    /// Drop the socket without a close frame, as a network failure would.
    Drop,
    Close,
}

/// A live gateway session. Dropping it closes the connection.
#[derive(Debug)]
pub struct Gateway {
    events: mpsc::Receiver<Result<Event, GatewayError>>,
    commands: mpsc::UnboundedSender<Command>,
    info: watch::Receiver<SessionInfo>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Finds the gateway and starts the session. Returns once the task runs; READY (or an
    /// error) is the first thing [`Gateway::next_event`] yields.
    pub async fn connect(client: &Client, options: GatewayOptions) -> Result<Gateway> {
        let token = client.token().cloned().ok_or(Error::NoToken)?;
        let url = match &options.url {
            Some(u) => u.clone(),
            None if token.is_bot() => client.get_gateway_bot().await?.url,
            None => client.get_gateway().await?.url,
        };
        let (events_tx, events) = mpsc::channel(options.event_buffer.max(1));
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (info_tx, info) = watch::channel(SessionInfo::default());
        let runner = runner::Runner::new(
            url,
            token.secret().to_owned(),
            options,
            events_tx,
            commands_rx,
            info_tx,
        );
        let task = tokio::spawn(runner.run());
        Ok(Gateway {
            events,
            commands,
            info,
            task: Some(task),
        })
    }

    /// The next event; `None` once the session is over (closed, or ended by an error that
    /// was yielded just before).
    pub async fn next_event(&mut self) -> Option<Result<Event, GatewayError>> {
        self.events.recv().await
    }

    /// The session's current state.
    pub fn session(&self) -> SessionInfo {
        self.info.borrow().clone()
    }

    /// Waits until the session state satisfies `f` (e.g. connected again after a drop).
    pub async fn wait_for(&self, f: impl Fn(&SessionInfo) -> bool) -> SessionInfo {
        let mut info = self.info.clone();
        // An error means the task ended: its last state is final.
        let reached = info.wait_for(|i| f(i)).await.map(|i| i.clone());
        reached.unwrap_or_else(|_| info.borrow().clone())
    }

    /// Op 3: changes this session's presence.
    pub fn update_presence(&self, presence: &PresenceUpdate) {
        self.send(enrichment_protocol::gateway::op::PRESENCE_UPDATE, presence);
    }

    /// Op 8: asks for members; answers arrive as [`Event::GuildMembersChunk`].
    pub fn request_guild_members(&self, request: &RequestGuildMembers) {
        self.send(
            enrichment_protocol::gateway::op::REQUEST_GUILD_MEMBERS,
            request,
        );
    }

    /// Drops the current connection without a close frame, as a network failure would;
    /// the client then resumes. Useful to test an application's own recovery.
    pub fn drop_connection(&self) {
        let _ = self.commands.send(Command::Drop);
    }

    /// Closes the session cleanly (close code 1000: the server ends the session).
    pub async fn close(mut self) {
        let _ = self.commands.send(Command::Close);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    fn send<T: serde::Serialize>(&self, op: u8, d: &T) {
        if let Ok(d) = serde_json::to_value(d) {
            let _ = self.commands.send(Command::Send { op, d });
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
