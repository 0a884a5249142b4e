//! State every node of a cluster must see, but that may be lost: where each gateway session
//! lives (so a RESUME that lands on the wrong node is sent to the right one), who is online
//! (presence), rate-limit counters and fixed windows (so a limit holds across nodes rather than
//! per node), and two broadcasts to every node: presence changes and cache invalidations.
//!
//! Nothing durable lives here: whatever must survive a restart is in the store, and the shared
//! state only makes it known sooner.
//!
//! Callers hold one `Arc<dyn SharedState>` and never ask which kind it is:
//! - [`memory::MemoryShared`], in-process, with the same semantics as Redis (a single node, and
//!   the twin a cluster node falls back on);
//! - [`redis::RedisShared`] (feature `redis`), shared by the nodes of a cluster;
//! - [`fallback::FallbackShared`], a decorator over a primary (Redis) and the in-process state:
//!   each call goes to the primary while it is up and to the in-process state while it is down
//!   or when the call fails, so a cluster keeps serving, with per-node limits and per-node
//!   presence, while Redis is away.
//!
//! [`testsuite`] (feature `testsuite`) is the conformance suite every implementation runs.

use std::time::Duration;

use async_trait::async_trait;
use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::Presence;
use enrichment_protocol::node::NodeIdentity;
use serde::{Deserialize, Serialize};

use crate::StoreResult;

pub mod fallback;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "testsuite")]
pub mod testsuite;

/// An allowance: `limit` requests per `period`, the whole allowance usable as a burst.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub limit: u32,
    pub period: Duration,
}

impl RateLimit {
    /// Time between two requests at the sustained rate (GCRA's emission interval).
    pub fn interval(&self) -> Duration {
        self.period / self.limit.max(1)
    }
}

/// The answer of a rate-limit check over several keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateOutcome {
    /// Every key had room; the request counted against each. `remaining` and `reset_after`
    /// describe the last key (the most specific bucket).
    Allowed {
        remaining: u32,
        reset_after: Duration,
    },
    /// The key at `index` had no room; nothing was counted against any key.
    Limited { index: usize, retry_after: Duration },
}

/// The answer of a fixed-window count ([`SharedState::window_hit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowOutcome {
    /// Whether the hit was counted (false: the window is full; nothing was counted).
    pub allowed: bool,
    /// Hits left in the window.
    pub remaining: u32,
    /// Time until the window ends and the count starts again (the whole window when no hit
    /// opened one yet).
    pub reset_after: Duration,
}

/// Where a gateway session lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLocation {
    /// The node, and the life of it, that holds the session.
    pub node: NodeIdentity,
    pub user_id: Snowflake,
    /// The gateway URL of that node (its `resume_gateway_url`).
    pub gateway_url: String,
}

/// A presence change announced by a node to the others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresenceChange {
    /// The node where the user's sessions are.
    pub node: NodeIdentity,
    pub presence: Presence,
}

/// A small message telling every node to forget or distrust something it may have cached.
/// The change itself is already in the store when it is published: a node that misses the
/// message (Redis was down) catches up when its cache entry expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Invalidation {
    /// A session (refresh family) ended: its access tokens stop working.
    SessionRevoked { session_id: Snowflake },
    /// A user's stored record changed (profile, MFA flag, password).
    UserChanged { user_id: Snowflake },
    /// A bot's token was replaced: the old one stops working.
    BotTokenReset { bot_user_id: Snowflake },
}

/// Where the shared state's answers come from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedHealth {
    /// In-process only: no shared backend is configured.
    InProcess,
    /// The shared backend answers.
    Up,
    /// The shared backend is configured but unavailable; answers come from the in-process
    /// state (or fail at once, for the backend itself).
    Down,
}

impl SharedHealth {
    /// As the admin API reports it: `off`, `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            SharedHealth::InProcess => "off",
            SharedHealth::Up => "up",
            SharedHealth::Down => "down",
        }
    }
}

#[async_trait]
pub trait SharedState: Send + Sync + 'static {
    /// Where answers come from now. A backend that is down fails calls at once instead of
    /// waiting for a timeout, and a background probe notices when it is back.
    fn health(&self) -> SharedHealth;

    /// GCRA over `keys` in order, atomically: when every key has room the request counts
    /// against all of them, otherwise against none. Keys of one call must share a hash tag.
    async fn rate_limit(&self, keys: &[(String, RateLimit)]) -> StoreResult<RateOutcome>;

    /// What is left of a key's allowance, without counting a request: `(remaining,
    /// reset_after)`, where `reset_after` is the time until the allowance is whole again.
    async fn rate_peek(&self, key: &str, limit: RateLimit) -> StoreResult<(u32, Duration)>;

    /// A fixed window of `limit` hits: the first hit opens a window of `window`, and the
    /// count starts again when it ends (Discord's daily IDENTIFY budget). `cost` 0 only reads.
    async fn window_hit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
        cost: u32,
    ) -> StoreResult<WindowOutcome>;

    /// Records (or refreshes) where a session lives, for `ttl`.
    async fn put_session(
        &self,
        session_id: &str,
        location: &SessionLocation,
        ttl: Duration,
    ) -> StoreResult<()>;

    async fn session(&self, session_id: &str) -> StoreResult<Option<SessionLocation>>;

    async fn remove_session(&self, session_id: &str) -> StoreResult<()>;

    /// Stores a user's presence for `ttl` (removing it when offline) and announces the
    /// change to every node.
    async fn put_presence(&self, change: &PresenceChange, ttl: Duration) -> StoreResult<()>;

    /// The stored presences of these users, in order (`None`: offline or unknown).
    async fn presences(&self, user_ids: &[Snowflake]) -> StoreResult<Vec<Option<Presence>>>;

    /// Presence changes announced by any node (this one included), from now on. The stream
    /// survives reconnections of the backend; changes announced while it was away are lost.
    fn presence_changes(&self) -> tokio::sync::broadcast::Receiver<PresenceChange>;

    /// Announces an invalidation to every node this state reaches (this one included).
    async fn publish_invalidation(&self, invalidation: &Invalidation) -> StoreResult<()>;

    /// Invalidations published by any node (this one included), from now on; as lossy as
    /// [`SharedState::presence_changes`].
    fn invalidations(&self) -> tokio::sync::broadcast::Receiver<Invalidation>;
}

/// Keys: everything under one prefix; the part in braces is the Redis Cluster hash tag, so
/// the keys one call touches (a token's rate limits, a user's IDENTIFY budget) share a slot.
pub mod keys {
    pub fn rate(prefix: &str, principal: &str, name: &str) -> String {
        format!("{prefix}:rl:{{{principal}}}:{name}")
    }

    pub fn session(prefix: &str, session_id: &str) -> String {
        format!("{prefix}:session:{{{session_id}}}")
    }

    pub fn presence(prefix: &str, user_id: u64) -> String {
        format!("{prefix}:presence:{{{user_id}}}")
    }

    pub fn presence_channel(prefix: &str) -> String {
        format!("{prefix}:presence-changes")
    }

    pub fn invalidation_channel(prefix: &str) -> String {
        format!("{prefix}:invalidations")
    }

    /// The hash tag of a key (the part in braces), or the whole key when it has none: the
    /// unit a call's keys must share, and the unit the in-process state locks.
    pub fn hash_tag(key: &str) -> &str {
        key.split_once('{')
            .and_then(|(_, rest)| rest.split_once('}'))
            .map(|(tag, _)| tag)
            .filter(|tag| !tag.is_empty())
            .unwrap_or(key)
    }
}
