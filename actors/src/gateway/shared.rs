//! The gateway's use of cluster-wide shared state ([`SharedState`], Redis in practice):
//! IDENTIFY budgets that hold across nodes, a record of which node holds each session (so a
//! RESUME that reaches the wrong node is sent where its session is), and presence announced
//! to every node.
//!
//! Each use has an in-process fallback, taken whenever the shared state is not configured or
//! is down: IDENTIFY limits fall back to the node's own [`super::SessionRegistry`] counts,
//! a RESUME of a session this node does not hold is refused as it would be on a single node,
//! and presence stays local. Writes here never hold up a connection: they run in the
//! background and a failure only costs the cross-node view until the next write.

use std::sync::Arc;
use std::time::Duration;

use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::Presence;
use enrichment_storage::shared::{
    PresenceChange, RateLimit, RateOutcome, SessionLocation, SharedState, keys,
};

use super::registry::{IdentifyLimits, StartLimit};
use super::session::Session;

const DAY: Duration = Duration::from_secs(86_400);

/// How long a session's location and a user's presence live in the shared state without a
/// refresh; [`SharedGateway::refresh_every`] rewrites them well before that.
const RECORD_TTL: Duration = Duration::from_secs(600);

/// This node's handle on the shared state.
#[derive(Clone)]
pub struct SharedGateway {
    pub state: Arc<dyn SharedState>,
    /// Prefix of the keys this node writes.
    pub prefix: String,
    pub node_id: String,
}

impl std::fmt::Debug for SharedGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedGateway")
            .field("node_id", &self.node_id)
            .field("up", &self.state.is_up())
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

    /// Counts an IDENTIFY against the user's cluster-wide budget: `Some(allowed)`, or `None`
    /// when the shared state cannot answer (the caller then counts locally). Bots first need
    /// their concurrency bucket free (one IDENTIFY per window), then room in the day.
    pub async fn try_identify(
        &self,
        user_id: Snowflake,
        bot: bool,
        shard_id: u32,
        limits: &IdentifyLimits,
    ) -> Option<bool> {
        if !self.state.is_up() {
            return None;
        }
        let day_key = self.day_key(user_id);
        match self
            .state
            .window_hit(&day_key, limits.per_day, DAY, 0)
            .await
        {
            Ok(d) if d.remaining == 0 => return Some(false),
            Ok(_) => {}
            Err(_) => return None,
        }
        if bot {
            let bucket = (
                self.bucket_key(user_id, shard_id, limits),
                RateLimit {
                    limit: 1,
                    period: limits.concurrency_window,
                },
            );
            match self.state.rate_limit(&[bucket]).await {
                Ok(RateOutcome::Allowed { .. }) => {}
                Ok(RateOutcome::Limited { .. }) => return Some(false),
                Err(_) => return None,
            }
        }
        match self
            .state
            .window_hit(&day_key, limits.per_day, DAY, 1)
            .await
        {
            Ok(d) => Some(d.allowed),
            Err(e) => {
                tracing::debug!(error = %e, "identify budget: shared state unavailable");
                None
            }
        }
    }

    /// The cluster-wide `session_start_limit`, or `None` when the shared state cannot answer.
    pub async fn start_limit(
        &self,
        user_id: Snowflake,
        limits: &IdentifyLimits,
    ) -> Option<StartLimit> {
        if !self.state.is_up() {
            return None;
        }
        let d = self
            .state
            .window_hit(&self.day_key(user_id), limits.per_day, DAY, 0)
            .await
            .ok()?;
        Some(StartLimit {
            total: limits.per_day,
            remaining: d.remaining,
            reset_after: d.reset_after,
            max_concurrency: limits.max_concurrency.max(1),
        })
    }

    fn location(&self, session: &Session, gateway_url: &str) -> SessionLocation {
        SessionLocation {
            node_id: self.node_id.clone(),
            user_id: session.user_id(),
            gateway_url: gateway_url.to_owned(),
        }
    }

    /// Records that this node holds `session` (in the background).
    pub fn session_started(&self, session: &Session, gateway_url: &str) {
        let me = self.clone();
        let id = session.info.session_id.clone();
        let loc = self.location(session, gateway_url);
        tokio::spawn(async move {
            if me.state.is_up()
                && let Err(e) = me.state.put_session(&id, &loc, RECORD_TTL).await
            {
                tracing::debug!(error = %e, "session location not recorded");
            }
        });
    }

    /// Forgets a session that ended here (in the background).
    pub fn session_ended(&self, session_id: &str) {
        let me = self.clone();
        let id = session_id.to_owned();
        tokio::spawn(async move {
            if me.state.is_up()
                && let Err(e) = me.state.remove_session(&id).await
            {
                tracing::debug!(error = %e, "session location not removed");
            }
        });
    }

    /// Where a session this node does not hold lives.
    pub async fn locate(&self, session_id: &str, own_url: &str) -> Elsewhere {
        if !self.state.is_up() {
            return Elsewhere::Nowhere;
        }
        match self.state.session(session_id).await {
            Ok(Some(loc)) if loc.node_id != self.node_id && loc.gateway_url != own_url => {
                Elsewhere::Node {
                    node_id: loc.node_id,
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
            if !me.state.is_up() {
                return;
            }
            let change = PresenceChange {
                node_id: me.node_id.clone(),
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
        if !self.state.is_up() {
            return;
        }
        for s in sessions.iter().filter(|s| !s.is_ended()) {
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
                node_id: self.node_id.clone(),
                presence,
            };
            if self.state.put_presence(&change, RECORD_TTL).await.is_err() {
                return;
            }
        }
    }
}
