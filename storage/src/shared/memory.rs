//! [`SharedState`] in this process: what a single node uses, and the twin a cluster node falls
//! back on while Redis is away ([`super::fallback`]).
//!
//! It keeps the Redis implementation's semantics exactly, so callers need not know which one
//! answers (the conformance suite in [`super::testsuite`] runs unchanged on both):
//! - GCRA over several keys, all or nothing: the same small algorithm as the Redis Lua script,
//!   in integer microseconds. `governor` cannot do this: it has no way to refuse a request on
//!   its second key without having spent the first.
//! - Fixed windows opened by their first hit, as the Redis window script does.
//! - Session locations and presences with TTLs, read as absent once expired.
//! - Presence changes and invalidations broadcast to this process's subscribers (there are no
//!   other nodes to reach).
//!
//! State is split into shards by the keys' hash tag (the part in braces, the unit a call's
//! keys share, as in Redis Cluster), so requests of different principals do not contend on
//! one lock; a call whose keys span shards locks them in shard order. Expired entries are read
//! as absent and swept from a shard at most once per [`SWEEP_EVERY`], so memory follows the
//! live keys, not every token ever seen.
//!
//! Time comes from a clock passed in ([`MemoryShared::with_clock`]), so tests can step it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::{Presence, Status};
use tokio::sync::broadcast;

use super::{
    Invalidation, PresenceChange, RateLimit, RateOutcome, SessionLocation, SharedHealth,
    SharedState, WindowOutcome, keys,
};
use crate::{StoreError, StoreResult};

/// Shards of the state; a power of two well above the cores of a node.
const SHARDS: usize = 32;

/// How often a shard drops its expired entries (checked when it is used).
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Announcements buffered per subscriber, as in the Redis implementation.
const BROADCAST_BUFFER: usize = 1024;

/// Where time comes from.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Microseconds since the state's origin; every deadline below is in this unit.
type Micros = i64;

#[derive(Default)]
struct Shard {
    /// GCRA theoretical arrival time per key.
    tats: HashMap<String, Micros>,
    /// Fixed windows: hits counted, and when the window ends.
    windows: HashMap<String, (u32, Micros)>,
    sessions: HashMap<String, (SessionLocation, Micros)>,
    presences: HashMap<Snowflake, (Presence, Micros)>,
    last_sweep: Micros,
}

impl Shard {
    fn sweep(&mut self, now: Micros) {
        if now - self.last_sweep < micros(SWEEP_EVERY) {
            return;
        }
        self.last_sweep = now;
        self.tats.retain(|_, tat| *tat > now);
        self.windows.retain(|_, (_, ends)| *ends > now);
        self.sessions.retain(|_, (_, until)| *until > now);
        self.presences.retain(|_, (_, until)| *until > now);
    }
}

/// Shared state held by this process alone.
pub struct MemoryShared {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    clock: Clock,
    origin: Instant,
    presence: broadcast::Sender<PresenceChange>,
    invalidations: broadcast::Sender<Invalidation>,
}

impl std::fmt::Debug for MemoryShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryShared").finish_non_exhaustive()
    }
}

impl Default for MemoryShared {
    fn default() -> Self {
        MemoryShared::new()
    }
}

fn micros(d: Duration) -> Micros {
    Micros::try_from(d.as_micros()).unwrap_or(Micros::MAX / 4)
}

fn duration(us: Micros) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard leaves counters, never a broken invariant: keep going.
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryShared {
    /// In-process state on the system's monotonic clock.
    pub fn new() -> MemoryShared {
        MemoryShared::with_clock(Arc::new(Instant::now))
    }

    /// In-process state reading time from `clock` (tests step it by hand).
    pub fn with_clock(clock: Clock) -> MemoryShared {
        let origin = clock();
        MemoryShared {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            clock,
            origin,
            presence: broadcast::channel(BROADCAST_BUFFER).0,
            invalidations: broadcast::channel(BROADCAST_BUFFER).0,
        }
    }

    fn now(&self) -> Micros {
        micros((self.clock)().saturating_duration_since(self.origin))
    }

    fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(keys::hash_tag(key)) as usize) % SHARDS
    }

    /// Runs `f` on the shard that holds `key`, after sweeping it if its time has come.
    fn with_shard<T>(&self, key: &str, f: impl FnOnce(&mut Shard, Micros) -> T) -> T {
        let now = self.now();
        let mut shard = lock(&self.shards[self.shard_of(key)]);
        shard.sweep(now);
        f(&mut shard, now)
    }

    /// GCRA over `keys`, exactly as the Redis script: all keys are checked before any is
    /// charged. Returns the outcome and, when allowed, `(remaining, reset_after)` of the last
    /// key.
    fn gcra(&self, keys: &[(String, RateLimit)], cost: u32) -> StoreResult<RateOutcome> {
        if keys.is_empty() {
            return Err(StoreError::Backend(
                "rate_limit needs at least one key".into(),
            ));
        }
        let now = self.now();
        // Lock every shard the keys live in, in shard order, so two calls never deadlock.
        let mut wanted: Vec<usize> = keys.iter().map(|(k, _)| self.shard_of(k)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> = wanted
            .into_iter()
            .map(|i| {
                let mut g = lock(&self.shards[i]);
                g.sweep(now);
                (i, g)
            })
            .collect();
        let shard = |key: &str| -> usize {
            let i = self.shard_of(key);
            guards.iter().position(|(s, _)| *s == i).unwrap_or_default()
        };
        let cost = Micros::from(cost);
        let mut new_tats = Vec::with_capacity(keys.len());
        let mut last = (0, 0);
        for (i, (key, limit)) in keys.iter().enumerate() {
            let interval = micros(limit.interval()).max(1);
            let burst = Micros::from(limit.limit.max(1));
            let g = shard(key);
            let tat = guards[g].1.tats.get(key).copied().unwrap_or(now).max(now);
            let new_tat = tat + interval * cost;
            let allow_at = new_tat - interval * burst;
            if now < allow_at {
                return Ok(RateOutcome::Limited {
                    index: i,
                    retry_after: duration(allow_at - now),
                });
            }
            new_tats.push((g, new_tat));
            last = ((now - allow_at) / interval, new_tat - now);
        }
        if cost > 0 {
            for ((key, _), (g, new_tat)) in keys.iter().zip(new_tats) {
                if new_tat > now {
                    guards[g].1.tats.insert(key.clone(), new_tat);
                }
            }
        }
        Ok(RateOutcome::Allowed {
            remaining: u32::try_from(last.0).unwrap_or(u32::MAX),
            reset_after: duration(last.1),
        })
    }

    /// Broadcasts `change` to this process's subscribers.
    fn announce(&self, change: &PresenceChange) {
        // No subscriber yet is fine: nobody needs this change.
        let _ = self.presence.send(change.clone());
    }
}

#[async_trait]
impl SharedState for MemoryShared {
    fn health(&self) -> SharedHealth {
        SharedHealth::InProcess
    }

    async fn rate_limit(&self, keys: &[(String, RateLimit)]) -> StoreResult<RateOutcome> {
        self.gcra(keys, 1)
    }

    async fn rate_peek(&self, key: &str, limit: RateLimit) -> StoreResult<(u32, Duration)> {
        match self.gcra(&[(key.to_owned(), limit)], 0)? {
            RateOutcome::Allowed {
                remaining,
                reset_after,
            } => Ok((remaining.min(limit.limit), reset_after)),
            // A peek charges nothing, so its own key always has room for nothing more.
            RateOutcome::Limited { retry_after, .. } => Ok((0, retry_after)),
        }
    }

    async fn window_hit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
        cost: u32,
    ) -> StoreResult<WindowOutcome> {
        let window = micros(window).max(1);
        Ok(self.with_shard(key, |shard, now| {
            let (mut n, ends) = match shard.windows.get(key) {
                Some(&(n, ends)) if ends > now => (n, Some(ends)),
                _ => (0, None),
            };
            let mut ttl = ends.map_or(window, |e| e - now);
            if cost > 0 {
                if u64::from(n) + u64::from(cost) > u64::from(limit) {
                    return WindowOutcome {
                        allowed: false,
                        remaining: limit.saturating_sub(n),
                        reset_after: duration(ttl),
                    };
                }
                n += cost;
                let ends = ends.unwrap_or_else(|| {
                    ttl = window;
                    now + window
                });
                shard.windows.insert(key.to_owned(), (n, ends));
            }
            WindowOutcome {
                allowed: true,
                remaining: limit.saturating_sub(n),
                reset_after: duration(ttl),
            }
        }))
    }

    async fn put_session(
        &self,
        session_id: &str,
        location: &SessionLocation,
        ttl: Duration,
    ) -> StoreResult<()> {
        self.with_shard(session_id, |shard, now| {
            shard.sessions.insert(
                session_id.to_owned(),
                (location.clone(), now + micros(ttl).max(1)),
            );
        });
        Ok(())
    }

    async fn session(&self, session_id: &str) -> StoreResult<Option<SessionLocation>> {
        Ok(self.with_shard(session_id, |shard, now| {
            shard
                .sessions
                .get(session_id)
                .filter(|(_, until)| *until > now)
                .map(|(loc, _)| loc.clone())
        }))
    }

    async fn remove_session(&self, session_id: &str) -> StoreResult<()> {
        self.with_shard(session_id, |shard, _| shard.sessions.remove(session_id));
        Ok(())
    }

    async fn put_presence(&self, change: &PresenceChange, ttl: Duration) -> StoreResult<()> {
        let p = &change.presence;
        let user = p.user.id;
        self.with_shard(&user.get().to_string(), |shard, now| {
            if p.status == Status::Offline {
                shard.presences.remove(&user);
            } else {
                shard
                    .presences
                    .insert(user, (p.clone(), now + micros(ttl).max(1)));
            }
        });
        self.announce(change);
        Ok(())
    }

    async fn presences(&self, user_ids: &[Snowflake]) -> StoreResult<Vec<Option<Presence>>> {
        Ok(user_ids
            .iter()
            .map(|id| {
                self.with_shard(&id.get().to_string(), |shard, now| {
                    shard
                        .presences
                        .get(id)
                        .filter(|(_, until)| *until > now)
                        .map(|(p, _)| p.clone())
                })
            })
            .collect())
    }

    fn presence_changes(&self) -> broadcast::Receiver<PresenceChange> {
        self.presence.subscribe()
    }

    async fn publish_invalidation(&self, invalidation: &Invalidation) -> StoreResult<()> {
        let _ = self.invalidations.send(invalidation.clone());
        Ok(())
    }

    fn invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.invalidations.subscribe()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    /// A clock the test steps by hand.
    fn manual() -> (Clock, Arc<Mutex<Instant>>) {
        let now = Arc::new(Mutex::new(Instant::now()));
        let read = now.clone();
        (Arc::new(move || *read.lock().unwrap()), now)
    }

    fn advance(now: &Mutex<Instant>, by: Duration) {
        *now.lock().unwrap() += by;
    }

    fn limit(n: u32, secs: u64) -> RateLimit {
        RateLimit {
            limit: n,
            period: Duration::from_secs(secs),
        }
    }

    #[tokio::test]
    async fn gcra_refills_one_request_per_interval_and_reports_exact_waits() {
        let (clock, now) = manual();
        let s = MemoryShared::with_clock(clock);
        let k = || vec![("rl:{t}:r".to_owned(), limit(4, 8))];
        for left in [3, 2, 1, 0] {
            assert!(matches!(
                s.rate_limit(&k()).await.unwrap(),
                RateOutcome::Allowed { remaining, .. } if remaining == left
            ));
        }
        assert_eq!(
            s.rate_limit(&k()).await.unwrap(),
            RateOutcome::Limited {
                index: 0,
                retry_after: Duration::from_secs(2)
            }
        );
        advance(&now, Duration::from_millis(1999));
        assert!(matches!(
            s.rate_limit(&k()).await.unwrap(),
            RateOutcome::Limited { retry_after, .. } if retry_after == Duration::from_millis(1)
        ));
        advance(&now, Duration::from_millis(1));
        assert_eq!(
            s.rate_limit(&k()).await.unwrap(),
            RateOutcome::Allowed {
                remaining: 0,
                reset_after: Duration::from_secs(8)
            }
        );
        // A full period later the whole burst is back.
        advance(&now, Duration::from_secs(8));
        assert_eq!(
            s.rate_peek("rl:{t}:r", limit(4, 8)).await.unwrap(),
            (4, Duration::ZERO)
        );
    }

    #[tokio::test]
    async fn a_refusal_on_a_later_key_charges_no_earlier_key_even_across_shards() {
        let (clock, _) = manual();
        let s = MemoryShared::with_clock(clock);
        // Different hash tags, so (most likely) different shards: still all or nothing.
        let first = ("rl:{a}:global".to_owned(), limit(10, 1));
        let second = ("rl:{b}:route".to_owned(), limit(1, 60));
        assert!(matches!(
            s.rate_limit(&[first.clone(), second.clone()])
                .await
                .unwrap(),
            RateOutcome::Allowed { .. }
        ));
        for _ in 0..5 {
            assert!(matches!(
                s.rate_limit(&[first.clone(), second.clone()])
                    .await
                    .unwrap(),
                RateOutcome::Limited { index: 1, .. }
            ));
        }
        assert_eq!(s.rate_peek(&first.0, first.1).await.unwrap().0, 9);
    }

    #[tokio::test]
    async fn windows_sessions_and_presences_expire_with_the_clock_and_are_swept() {
        let (clock, now) = manual();
        let s = MemoryShared::with_clock(clock);
        let w = Duration::from_secs(10);
        assert!(s.window_hit("w:{u}", 1, w, 1).await.unwrap().allowed);
        advance(&now, Duration::from_secs(4));
        let full = s.window_hit("w:{u}", 1, w, 1).await.unwrap();
        assert!(!full.allowed);
        assert_eq!(full.reset_after, Duration::from_secs(6));
        let loc = SessionLocation {
            node: enrichment_protocol::node::NodeIdentity::new(
                "n",
                enrichment_protocol::node::GenerationId(1),
            ),
            user_id: Snowflake(1),
            gateway_url: "ws://x".into(),
        };
        s.put_session("s1", &loc, Duration::from_secs(5))
            .await
            .unwrap();
        advance(&now, Duration::from_secs(6));
        assert!(s.window_hit("w:{u}", 1, w, 1).await.unwrap().allowed);
        assert_eq!(s.session("s1").await.unwrap(), None);
        advance(&now, SWEEP_EVERY);
        // Any use of a shard past its sweep time drops what expired in it.
        for shard in &s.shards {
            lock(shard).sweep(s.now());
        }
        let left: usize = s
            .shards
            .iter()
            .map(|sh| {
                let sh = lock(sh);
                sh.tats.len() + sh.windows.len() + sh.sessions.len() + sh.presences.len()
            })
            .sum();
        assert_eq!(left, 0);
    }
}
