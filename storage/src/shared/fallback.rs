//! A [`SharedState`] decorator, in the manner of Quickwit's storage decorators: a primary
//! (Redis) with the in-process state as its twin.
//!
//! Each call goes to the primary while it is up, and to the in-process state while the primary
//! is down or when the call fails, so every caller gets an answer without an `Option` or a
//! fallback of its own. While Redis is away the node runs on its own counters and records (rate
//! limits and IDENTIFY budgets per node, presence and session locations per node); when the
//! primary's probe sees it back, calls return to it. Nothing is copied between the two: what
//! the in-process state learnt meanwhile is rewritten to Redis by its owners' periodic refresh
//! (session locations, presences) or simply ages out (counters).
//!
//! The broadcast streams deliver from both: a relay task per stream forwards what the primary
//! and the in-process state announce into one channel per kind. An announcement goes to
//! whichever of the two took the call, so nothing is delivered twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::Presence;
use futures::future::BoxFuture;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::{
    Invalidation, PresenceChange, RateLimit, RateOutcome, SessionLocation, SharedHealth,
    SharedState, WindowOutcome,
};
use crate::StoreResult;

/// Announcements buffered per subscriber of the merged streams.
const BROADCAST_BUFFER: usize = 1024;

/// The primary while it answers, else the in-process state. Dropping it stops its relays.
pub struct FallbackShared {
    primary: Arc<dyn SharedState>,
    local: Arc<dyn SharedState>,
    presence: broadcast::Sender<PresenceChange>,
    invalidations: broadcast::Sender<Invalidation>,
    relays: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for FallbackShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackShared")
            .field("primary", &self.primary.health())
            .finish_non_exhaustive()
    }
}

impl Drop for FallbackShared {
    fn drop(&mut self) {
        for relay in &self.relays {
            relay.abort();
        }
    }
}

/// Forwards everything `from` delivers into `to` until `from` closes.
fn relay<T: Clone + Send + 'static>(
    mut from: broadcast::Receiver<T>,
    to: broadcast::Sender<T>,
    what: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match from.recv().await {
                Ok(v) => {
                    // No subscriber yet is fine: nobody needs this announcement.
                    let _ = to.send(v);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, what, "shared-state announcements skipped");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

impl FallbackShared {
    /// Decorates `primary` with `local`. Must run inside a tokio runtime (it starts the
    /// relays of the broadcast streams).
    pub fn new(primary: Arc<dyn SharedState>, local: Arc<dyn SharedState>) -> FallbackShared {
        let (presence, _) = broadcast::channel(BROADCAST_BUFFER);
        let (invalidations, _) = broadcast::channel(BROADCAST_BUFFER);
        let relays = vec![
            relay(primary.presence_changes(), presence.clone(), "presence"),
            relay(local.presence_changes(), presence.clone(), "presence"),
            relay(
                primary.invalidations(),
                invalidations.clone(),
                "invalidations",
            ),
            relay(
                local.invalidations(),
                invalidations.clone(),
                "invalidations",
            ),
        ];
        FallbackShared {
            primary,
            local,
            presence,
            invalidations,
            relays,
        }
    }

    /// Runs `call` on the primary while it is up; on the in-process state when it is down or
    /// the call failed (which the primary's breaker has then noted).
    async fn route<'a, T>(
        &'a self,
        call: impl Fn(&'a dyn SharedState) -> BoxFuture<'a, StoreResult<T>>,
    ) -> StoreResult<T> {
        if self.primary.health() != SharedHealth::Down {
            match call(&*self.primary).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    tracing::debug!(error = %e, "shared state: answering in-process");
                }
            }
        }
        metrics::counter!("enrichment_shared_state_local_answers_total").increment(1);
        call(&*self.local).await
    }
}

#[async_trait]
impl SharedState for FallbackShared {
    fn health(&self) -> SharedHealth {
        self.primary.health()
    }

    async fn rate_limit(&self, keys: &[(String, RateLimit)]) -> StoreResult<RateOutcome> {
        self.route(|s| s.rate_limit(keys)).await
    }

    async fn rate_peek(&self, key: &str, limit: RateLimit) -> StoreResult<(u32, Duration)> {
        self.route(|s| s.rate_peek(key, limit)).await
    }

    async fn window_hit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
        cost: u32,
    ) -> StoreResult<WindowOutcome> {
        self.route(|s| s.window_hit(key, limit, window, cost)).await
    }

    async fn put_session(
        &self,
        session_id: &str,
        location: &SessionLocation,
        ttl: Duration,
    ) -> StoreResult<()> {
        self.route(|s| s.put_session(session_id, location, ttl))
            .await
    }

    async fn session(&self, session_id: &str) -> StoreResult<Option<SessionLocation>> {
        self.route(|s| s.session(session_id)).await
    }

    async fn remove_session(&self, session_id: &str) -> StoreResult<()> {
        self.route(|s| s.remove_session(session_id)).await
    }

    async fn put_presence(&self, change: &PresenceChange, ttl: Duration) -> StoreResult<()> {
        self.route(|s| s.put_presence(change, ttl)).await
    }

    async fn presences(&self, user_ids: &[Snowflake]) -> StoreResult<Vec<Option<Presence>>> {
        self.route(|s| s.presences(user_ids)).await
    }

    fn presence_changes(&self) -> broadcast::Receiver<PresenceChange> {
        self.presence.subscribe()
    }

    async fn publish_invalidation(&self, invalidation: &Invalidation) -> StoreResult<()> {
        self.route(|s| s.publish_invalidation(invalidation)).await
    }

    fn invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.invalidations.subscribe()
    }
}
