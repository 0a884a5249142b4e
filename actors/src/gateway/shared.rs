//! The gateway's use of the shared state ([`SharedState`]): IDENTIFY budgets (Discord's daily
//! total and, for bots, one IDENTIFY per `max_concurrency` bucket per window), a record of which
//! node holds each session (so a RESUME that reaches another node takes the session over from
//! it, through the cluster layer's [`SessionTakeover`]), and presence announced to every node.
//!
//! The state is in-process on a single node and Redis (with its in-process twin while Redis is
//! down) in a cluster; this code does not know which: with the in-process state the budgets
//! are the node's own, a RESUME of a session this node does not hold finds no record and is
//! refused as on a single node, and presence announcements come back to this node only.
//! Writes here never hold up a connection: they run in the background and a failure only
//! costs the cross-node view until the next write.

use std::sync::Arc;
use std::time::Duration;

use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::{Encoding, Presence, Status};
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use enrichment_storage::shared::memory::MemoryShared;
use enrichment_storage::shared::{
    PresenceChange, RateLimit, RateOutcome, SessionLocation, SharedHealth, SharedState, keys,
};

use super::registry::SessionRegistry;
use super::session::{ResumeError, Session, SessionLimits};
use crate::guild::PresenceSource;

/// IDENTIFY limits (Discord's: 1000 per day, `max_concurrency` per 5 s).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IdentifyLimits {
    pub per_day: u32,
    pub max_concurrency: u32,
    pub concurrency_window: Duration,
}

impl Default for IdentifyLimits {
    fn default() -> Self {
        IdentifyLimits {
            per_day: 1000,
            max_concurrency: 1,
            concurrency_window: Duration::from_secs(5),
        }
    }
}

/// What `GET /gateway/bot` reports as `session_start_limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartLimit {
    pub total: u32,
    pub remaining: u32,
    pub reset_after: Duration,
    pub max_concurrency: u32,
}

const DAY: Duration = Duration::from_secs(86_400);

/// How long a session's location and a user's presence live in the shared state without a
/// refresh; [`SharedGateway::refresh_every`] rewrites them well before that.
const RECORD_TTL: Duration = Duration::from_secs(600);

/// Whether a node that holds sessions still serves them: the cluster layer knows.
pub trait NodeLiveness: Send + Sync + 'static {
    /// Whether `node` (that very process) is a ready member of the cluster now.
    fn is_live(&self, node: &NodeIdentity) -> bool;
}

/// What a RESUME of a session another node holds asks of the cluster layer.
#[derive(Clone, Debug)]
pub struct TakeoverRequest {
    pub session_id: String,
    /// The user the RESUME's token names: the session must be theirs.
    pub user_id: Snowflake,
    /// The last sequence number the client saw.
    pub seq: u64,
    /// The connection's encoding: the session's must be the same.
    pub encoding: Encoding,
    /// This node's caps for the session.
    pub limits: SessionLimits,
}

/// Takes a session over from the node that holds it: the cluster layer does, through its
/// transport.
#[async_trait::async_trait]
pub trait SessionTakeover: Send + Sync + 'static {
    /// Takes the session over from `node_id`. On success it is in this node's registry,
    /// detached, with the old node's replay buffer and then what reached it here meanwhile;
    /// the caller resumes it. `InvalidSeq` is the old node's verdict on the client's sequence
    /// number; anything else that goes wrong is `Lost`.
    async fn take_over(
        &self,
        node_id: &str,
        request: TakeoverRequest,
    ) -> Result<Arc<Session>, ResumeError>;
}

/// This node's handle on the shared state.
#[derive(Clone)]
pub struct SharedGateway {
    pub state: Arc<dyn SharedState>,
    /// Prefix of the keys this node writes.
    pub prefix: String,
    /// This node, as its records and announcements name it.
    pub node: NodeIdentity,
    /// Set by the cluster layer ([`SharedGateway::set_liveness`]); without it every node a
    /// session record names is taken as up.
    pub liveness: Arc<std::sync::OnceLock<Arc<dyn NodeLiveness>>>,
}

impl std::fmt::Debug for SharedGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedGateway")
            .field("node", &self.node)
            .field("health", &self.state.health())
            .finish()
    }
}

/// Where a RESUME should go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Elsewhere {
    /// Another node holds the session and has its own gateway URL: reconnect there.
    Node {
        node_id: String,
        gateway_url: String,
    },
    /// Unknown here and to the shared state (or it is down).
    Nowhere,
}

impl SharedGateway {
    /// A node of its own: in-process state, and an identity that names no configured node.
    pub fn in_process() -> SharedGateway {
        SharedGateway {
            state: Arc::new(MemoryShared::new()),
            prefix: "enrichment".into(),
            node: NodeIdentity::new("local", GenerationId::now()),
            liveness: Default::default(),
        }
    }

    /// Tells RESUMEs for sessions of other nodes which of those nodes are up (once).
    pub fn set_liveness(&self, liveness: Arc<dyn NodeLiveness>) {
        let _ = self.liveness.set(liveness);
    }

    /// How often live sessions and presences are rewritten so they do not expire.
    pub fn refresh_every() -> Duration {
        RECORD_TTL / 3
    }

    fn bucket_key(&self, user_id: Snowflake, shard_id: u32, l: &IdentifyLimits) -> String {
        let bucket = shard_id % l.max_concurrency.max(1);
        keys::rate(
            &self.prefix,
            &format!("u{}", user_id.get()),
            &format!("identify-b{bucket}"),
        )
    }

    fn day_key(&self, user_id: Snowflake) -> String {
        keys::rate(&self.prefix, &format!("u{}", user_id.get()), "identify-day")
    }

    /// Counts an IDENTIFY against the user's budget; `false` means refuse it (op 9). Bots
    /// first need their concurrency bucket free (one IDENTIFY per window, as Discord's
    /// `max_concurrency`), then room in the day; people opening several devices at once are
    /// held to the daily total only. A shared state that cannot answer at all lets the
    /// IDENTIFY through: limits protect the node, an outage must not lock everyone out.
    pub async fn try_identify(
        &self,
        user_id: Snowflake,
        bot: bool,
        shard_id: u32,
        limits: &IdentifyLimits,
    ) -> bool {
        let day_key = self.day_key(user_id);
        match self
            .state
            .window_hit(&day_key, limits.per_day, DAY, 0)
            .await
        {
            Ok(d) if d.remaining == 0 => return false,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "identify budget unavailable; allowing");
                return true;
            }
        }
        if bot && !limits.concurrency_window.is_zero() {
            let bucket = (
                self.bucket_key(user_id, shard_id, limits),
                RateLimit {
                    limit: 1,
                    period: limits.concurrency_window,
                },
            );
            match self.state.rate_limit(&[bucket]).await {
                Ok(RateOutcome::Allowed { .. }) => {}
                Ok(RateOutcome::Limited { .. }) => return false,
                Err(e) => tracing::warn!(error = %e, "identify concurrency unavailable"),
            }
        }
        match self
            .state
            .window_hit(&day_key, limits.per_day, DAY, 1)
            .await
        {
            Ok(d) => d.allowed,
            Err(e) => {
                tracing::warn!(error = %e, "identify budget unavailable; allowing");
                true
            }
        }
    }

    /// The `session_start_limit` of `GET /gateway/bot` (the whole budget when the shared
    /// state cannot answer).
    pub async fn start_limit(&self, user_id: Snowflake, limits: &IdentifyLimits) -> StartLimit {
        let (remaining, reset_after) = match self
            .state
            .window_hit(&self.day_key(user_id), limits.per_day, DAY, 0)
            .await
        {
            Ok(d) => (d.remaining, d.reset_after),
            Err(_) => (limits.per_day, DAY),
        };
        StartLimit {
            total: limits.per_day,
            remaining,
            reset_after,
            max_concurrency: limits.max_concurrency.max(1),
        }
    }

    fn location(&self, session: &Session, gateway_url: &str) -> SessionLocation {
        SessionLocation {
            node: self.node.clone(),
            user_id: session.user_id(),
            gateway_url: gateway_url.to_owned(),
        }
    }

    /// Whether session locations are worth writing. The in-process state has one reader, this
    /// node, which finds its own sessions in its registry: writing them there would only cost
    /// every idle connection a record (about 0.7 KiB).
    fn records_sessions(&self) -> bool {
        self.state.health() != SharedHealth::InProcess
    }

    /// Records that this node holds `session` (in the background).
    pub fn session_started(&self, session: &Session, gateway_url: &str) {
        if !self.records_sessions() {
            return;
        }
        let me = self.clone();
        let id = session.info.session_id.clone();
        let loc = self.location(session, gateway_url);
        tokio::spawn(async move {
            if let Err(e) = me.state.put_session(&id, &loc, RECORD_TTL).await {
                tracing::debug!(error = %e, "session location not recorded");
            }
        });
    }

    /// Forgets a session that ended here (in the background).
    pub fn session_ended(&self, session_id: &str) {
        if !self.records_sessions() {
            return;
        }
        let me = self.clone();
        let id = session_id.to_owned();
        tokio::spawn(async move {
            if let Err(e) = me.state.remove_session(&id).await {
                tracing::debug!(error = %e, "session location not removed");
            }
        });
    }

    /// Where a session this node does not hold lives. A record left by an earlier life of
    /// this node id names a session that died with it: nowhere.
    pub async fn locate(&self, session_id: &str, own_url: &str) -> Elsewhere {
        match self.state.session(session_id).await {
            Ok(Some(loc))
                if loc.node.node_id != self.node.node_id && loc.gateway_url != own_url =>
            {
                // A dead or draining node's record outlives it (until its TTL): sending the
                // client there would only fail again. Op 9 lets it identify anew here.
                if self
                    .liveness
                    .get()
                    .is_some_and(|live| !live.is_live(&loc.node))
                {
                    tracing::debug!(node = %loc.node, "RESUME for a session of a node that is gone");
                    return Elsewhere::Nowhere;
                }
                Elsewhere::Node {
                    node_id: loc.node.node_id,
                    gateway_url: loc.gateway_url,
                }
            }
            _ => Elsewhere::Nowhere,
        }
    }

    /// Stores and announces a user's presence (in the background).
    pub fn presence_changed(&self, presence: Presence) {
        let me = self.clone();
        tokio::spawn(async move {
            let change = PresenceChange {
                node: me.node.clone(),
                presence,
            };
            if let Err(e) = me.state.put_presence(&change, RECORD_TTL).await {
                tracing::debug!(error = %e, "presence not shared");
            }
        });
    }

    /// Rewrites the locations of live sessions and the presences of their users, so that
    /// neither expires while it is true.
    pub async fn refresh(
        &self,
        sessions: &[Arc<Session>],
        presences: Vec<Presence>,
        gateway_url: &str,
    ) {
        let sessions = sessions.iter().filter(|_| self.records_sessions());
        for s in sessions.filter(|s| !s.is_ended()) {
            let loc = self.location(s, gateway_url);
            if self
                .state
                .put_session(&s.info.session_id, &loc, RECORD_TTL)
                .await
                .is_err()
            {
                return;
            }
        }
        for presence in presences {
            let change = PresenceChange {
                node: self.node.clone(),
                presence,
            };
            if self.state.put_presence(&change, RECORD_TTL).await.is_err() {
                return;
            }
        }
    }
}

/// Who is online, as a starting guild actor asks it ([`PresenceSource`]): a user with sessions on
/// this node is as those sessions say; anyone else as the shared state last stored them (their
/// own node writes and refreshes that record), or, while it cannot answer, as their node last
/// announced to this one.
pub struct Presences {
    pub registry: Arc<SessionRegistry>,
    pub shared: Arc<dyn SharedState>,
}

impl std::fmt::Debug for Presences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presences").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl PresenceSource for Presences {
    async fn online(&self, users: &[Snowflake]) -> Vec<Presence> {
        let (here, elsewhere): (Vec<Snowflake>, Vec<Snowflake>) = users
            .iter()
            .copied()
            .partition(|u| self.registry.has_sessions(*u));
        let mut online: Vec<Presence> = here
            .into_iter()
            .filter(|u| self.registry.is_online(*u))
            .map(|u| self.registry.presence(u))
            .collect();
        if elsewhere.is_empty() {
            return online;
        }
        match self.shared.presences(&elsewhere).await {
            Ok(stored) => online.extend(
                stored
                    .into_iter()
                    .flatten()
                    .filter(|p| p.status != Status::Offline),
            ),
            Err(e) => {
                tracing::debug!(error = %e, "stored presences unavailable; using announced ones");
                online.extend(
                    elsewhere
                        .into_iter()
                        .filter(|u| self.registry.is_online(*u))
                        .map(|u| self.registry.presence(u)),
                );
            }
        }
        online
    }
}
