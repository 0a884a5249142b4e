//! The gateway's domain: sessions, their registry, and the per-connection state machine.
//!
//! Nothing here touches a socket. The node's listener owns each WebSocket and feeds this code
//! the frames it reads; it writes what [`Connection`] and the [`Session`] outbox give it. That is
//! why the whole protocol (HELLO, IDENTIFY/RESUME, heartbeats and zombies, sequence numbers,
//! replay, limits, close codes) is tested here without a network.
//!
//! - [`session`]: one identified client: sequence, replay buffer, bounded outbox;
//! - [`registry`]: the node's sessions by id and by user, and presence;
//! - [`connection`]: the state machine of one socket and the [`GatewayService`] it calls;
//! - [`shared`]: what the gateway keeps in the shared state (IDENTIFY budgets, session
//!   locations, presence), in-process on one node and in Redis across a cluster.
//!
//! Fanout itself (who receives an event) belongs to the guild actors: see
//! [`crate::guild`]'s `fanout` module.

use std::time::Duration;

pub mod connection;
pub mod registry;
pub mod session;
pub mod shared;

pub use connection::{Close, Connection, GatewayService, Inbound};
pub use registry::SessionRegistry;
pub use session::{Detach, ResumeError, Session, SessionInfo, SessionLimits};
pub use shared::{
    IdentifyLimits, NodeLiveness, Presences, SessionTakeover, SharedGateway, StartLimit,
    TakeoverRequest,
};

/// Gateway limits and timings; Discord's values by default. These defaults are the node's too:
/// its `[gateway]` config section starts from them.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayConfig {
    /// Sent in HELLO.
    pub heartbeat_interval: Duration,
    /// How long a session without a connection stays resumable.
    pub resume_window: Duration,
    /// Largest frame a client may send (close 4002 above).
    pub max_inbound_bytes: usize,
    /// Frames a client may send per `inbound_window` (close 4008 above).
    pub inbound_per_window: u32,
    pub inbound_window: Duration,
    pub identify: IdentifyLimits,
    pub session: SessionLimits,
    /// Guilds one shard may carry before IDENTIFY needs sharding (close 4011).
    pub max_guilds_per_shard: usize,
    /// Members per GUILD_MEMBERS_CHUNK. The guild actors build the chunks, so the node hands
    /// this value to them too ([`crate::guild::GuildContext::member_chunk_size`]).
    pub member_chunk_size: usize,
    /// URL sent as READY's `resume_gateway_url`.
    pub resume_url: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            heartbeat_interval: Duration::from_millis(41_250),
            resume_window: Duration::from_secs(180),
            max_inbound_bytes: 4096,
            inbound_per_window: 120,
            inbound_window: Duration::from_secs(60),
            identify: IdentifyLimits::default(),
            session: SessionLimits::default(),
            max_guilds_per_shard: 2500,
            member_chunk_size: 1000,
            resume_url: String::new(),
        }
    }
}
