//! The node's live sessions: by session id (for RESUME), by key (the name guilds know a session
//! by), by user (a user's sessions, presence and new guild memberships), plus the IDENTIFY
//! limits.
//!
//! Guilds reach it only through three narrow traits: a [`RecipientDirectory`] (a session named in
//! a session op, as a recipient of the guild's events), a [`PresenceSource`] (who is online, asked
//! once by a starting guild actor), and a [`GuildStartHook`] (the sessions that already followed
//! a guild whose actor just started, pushed into it before any request).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::{ClientStatus, Presence, PresenceUser, Status};
use parking_lot::Mutex;

use super::session::Session;
use crate::guild::{PresenceSource, Recipient, RecipientDirectory, SessionOp, SessionRef};
use crate::router::GuildStartHook;

/// IDENTIFY limits (Discord's: 1000 per day, `max_concurrency` per 5 s).
#[derive(Clone, Copy, Debug)]
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

#[derive(Debug, Default)]
struct IdentifyHistory {
    /// Identify times within the last day, oldest first.
    day: VecDeque<Instant>,
    /// Rate-limit buckets (`shard_id % max_concurrency`) that identified within the current
    /// window, with when. Only buckets in use are kept: `max_concurrency` may be large.
    buckets: Vec<(u32, Instant)>,
}

const DAY: Duration = Duration::from_secs(86_400);

#[derive(Debug, Default)]
pub struct SessionRegistry {
    by_id: DashMap<String, Arc<Session>>,
    by_key: DashMap<u64, Arc<Session>>,
    by_user: DashMap<Snowflake, Vec<Arc<Session>>>,
    /// The presence others see, per online user with sessions here.
    presences: DashMap<Snowflake, Presence>,
    /// Presences announced by other nodes, for users without sessions here.
    remote_presences: DashMap<Snowflake, Presence>,
    identifies: DashMap<Snowflake, Mutex<IdentifyHistory>>,
    next_key: AtomicU64,
}

impl SessionRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn insert(&self, s: Arc<Session>) {
        self.by_user.entry(s.user_id()).or_default().push(s.clone());
        self.by_key.insert(s.key, s.clone());
        self.by_id.insert(s.info.session_id.clone(), s);
        metrics::gauge!("enrichment_gateway_sessions").set(self.by_id.len() as f64);
    }

    pub fn get(&self, session_id: &str) -> Option<Arc<Session>> {
        self.by_id.get(session_id).map(|s| s.clone())
    }

    /// Live sessions of a user.
    pub fn sessions_of(&self, user_id: Snowflake) -> Vec<Arc<Session>> {
        self.by_user
            .get(&user_id)
            .map(|v| v.iter().filter(|s| !s.is_ended()).cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Ends and forgets a session. Returns true when it was the user's last one.
    pub fn remove(&self, s: &Session) -> bool {
        s.end();
        self.by_id.remove(&s.info.session_id);
        self.by_key.remove(&s.key);
        metrics::gauge!("enrichment_gateway_sessions").set(self.by_id.len() as f64);
        let mut last = false;
        self.by_user.remove_if_mut(&s.user_id(), |_, v| {
            v.retain(|x| x.key != s.key && !x.is_ended());
            last = v.is_empty();
            last
        });
        last
    }

    /// Sessions detached for longer than `window`.
    pub fn expired(&self, window: Duration, now: Instant) -> Vec<Arc<Session>> {
        self.by_id
            .iter()
            .filter(|e| {
                e.value()
                    .detached_since()
                    .is_some_and(|t| now.saturating_duration_since(t) >= window)
            })
            .map(|e| e.value().clone())
            .collect()
    }

    /// Every live session (for drain).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.by_id.iter().map(|e| e.value().clone()).collect()
    }

    /// The user's visible presence, derived from its sessions: the most recently set status of
    /// a live session wins; none left means offline. Returns the new presence if it changed.
    pub fn recompute_presence(&self, user_id: Snowflake) -> Option<Presence> {
        let sessions = self.sessions_of(user_id);
        let next = sessions.last().map(|s| {
            let p = s.presence();
            let status = p.status.visible();
            Presence {
                user: PresenceUser { id: user_id },
                guild_id: None,
                status,
                activities: if status == Status::Offline {
                    Vec::new()
                } else {
                    p.activities
                },
                client_status: if status == Status::Offline {
                    ClientStatus::default()
                } else {
                    ClientStatus {
                        desktop: Some(status),
                        ..ClientStatus::default()
                    }
                },
            }
        });
        let next = next.unwrap_or_else(|| offline(user_id));
        let previous = self
            .presences
            .get(&user_id)
            .map(|p| p.clone())
            .unwrap_or_else(|| offline(user_id));
        if previous.status == next.status && previous.activities == next.activities {
            return None;
        }
        if next.status == Status::Offline {
            self.presences.remove(&user_id);
        } else {
            self.presences.insert(user_id, next.clone());
        }
        Some(next)
    }

    /// What others see of a user now: from its sessions here, else as another node
    /// announced it.
    pub fn presence(&self, user_id: Snowflake) -> Presence {
        self.presences
            .get(&user_id)
            .or_else(|| self.remote_presences.get(&user_id))
            .map(|p| p.clone())
            .unwrap_or_else(|| offline(user_id))
    }

    /// Whether a user is visible as anything but offline, here or on another node.
    pub fn is_online(&self, user_id: Snowflake) -> bool {
        self.presences.contains_key(&user_id) || self.remote_presences.contains_key(&user_id)
    }

    /// Presences of the users with sessions on this node.
    pub fn local_presences(&self) -> Vec<Presence> {
        self.presences.iter().map(|e| e.value().clone()).collect()
    }

    /// Takes in a presence another node announced. Returns it when it changes what this node
    /// shows, so the user's guilds here can announce it; `None` when the user has sessions
    /// here (those decide) or nothing changed.
    pub fn remote_presence(&self, presence: Presence) -> Option<Presence> {
        let user_id = presence.user.id;
        if self.presences.contains_key(&user_id) {
            return None;
        }
        let offline = presence.status == Status::Offline;
        let unchanged = match self.remote_presences.get(&user_id) {
            Some(p) => p.status == presence.status && p.activities == presence.activities,
            None => offline,
        };
        if unchanged {
            return None;
        }
        if offline {
            self.remote_presences.remove(&user_id);
        } else {
            self.remote_presences.insert(user_id, presence.clone());
        }
        Some(presence)
    }

    /// Counts an IDENTIFY against the user's limits; `false` means refuse it (op 9). The
    /// concurrency buckets apply to bots (as Discord's `max_concurrency` does); people opening
    /// several devices at once are held only to the daily total.
    pub fn try_identify(
        &self,
        user_id: Snowflake,
        bot: bool,
        shard_id: u32,
        limits: &IdentifyLimits,
        now: Instant,
    ) -> bool {
        let entry = self.identifies.entry(user_id).or_default();
        let mut h = entry.lock();
        while h
            .day
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= DAY)
        {
            h.day.pop_front();
        }
        if h.day.len() >= limits.per_day as usize {
            return false;
        }
        if !bot {
            h.day.push_back(now);
            return true;
        }
        let window = limits.concurrency_window;
        h.buckets
            .retain(|(_, t)| now.saturating_duration_since(*t) < window);
        let bucket = shard_id % limits.max_concurrency.max(1);
        if h.buckets.iter().any(|(b, _)| *b == bucket) {
            return false;
        }
        h.buckets.push((bucket, now));
        h.day.push_back(now);
        true
    }

    /// The `session_start_limit` of `GET /gateway/bot`.
    pub fn start_limit(
        &self,
        user_id: Snowflake,
        limits: &IdentifyLimits,
        now: Instant,
    ) -> StartLimit {
        let (used, oldest) = self
            .identifies
            .get(&user_id)
            .map(|h| {
                let h = h.lock();
                let live: Vec<_> = h
                    .day
                    .iter()
                    .filter(|t| now.saturating_duration_since(**t) < DAY)
                    .copied()
                    .collect();
                (live.len() as u32, live.first().copied())
            })
            .unwrap_or((0, None));
        StartLimit {
            total: limits.per_day,
            remaining: limits.per_day.saturating_sub(used),
            reset_after: oldest
                .map(|t| DAY.saturating_sub(now.saturating_duration_since(t)))
                .unwrap_or(DAY),
            max_concurrency: limits.max_concurrency.max(1),
        }
    }

    /// Drops identify history older than a day.
    pub fn housekeep(&self, now: Instant) {
        self.identifies.retain(|_, h| {
            h.get_mut()
                .day
                .back()
                .is_some_and(|t| now.saturating_duration_since(*t) < DAY)
        });
    }
}

impl RecipientDirectory for SessionRegistry {
    fn recipient(&self, session: &SessionRef) -> Option<Arc<dyn Recipient>> {
        let s = self.by_key.get(&session.key.0)?.clone();
        (!s.is_ended() && s.user_id() == session.user_id).then_some(s as Arc<dyn Recipient>)
    }
}

#[async_trait::async_trait]
impl PresenceSource for SessionRegistry {
    async fn online(&self, users: &[Snowflake]) -> Vec<Presence> {
        users
            .iter()
            .filter(|u| self.is_online(**u))
            .map(|u| self.presence(*u))
            .collect()
    }
}

impl GuildStartHook for SessionRegistry {
    /// The live sessions here that follow the guild.
    fn guild_started(&self, guild_id: Snowflake) -> Option<SessionOp> {
        let sessions: Vec<SessionRef> = self
            .by_key
            .iter()
            .filter(|e| !e.value().is_ended() && e.value().follows(guild_id))
            .map(|e| e.value().reference().clone())
            .collect();
        (!sessions.is_empty()).then_some(SessionOp::Resubscribe { sessions })
    }
}

fn offline(user_id: Snowflake) -> Presence {
    Presence {
        user: PresenceUser { id: user_id },
        guild_id: None,
        status: Status::Offline,
        activities: Vec::new(),
        client_status: ClientStatus::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::session::{SessionInfo, SessionLimits};
    use enrichment_protocol::gateway::{Encoding, PresenceUpdate};

    fn session(reg: &SessionRegistry, user: u64, status: Status) -> Arc<Session> {
        let key = reg.next_key();
        let s = Arc::new(Session::new(
            SessionInfo {
                session_id: format!("s{key}"),
                user_id: Snowflake(user),
                bot: false,
                intents: 0,
                encoding: Encoding::Json,
                shard: None,
                large_threshold: 50,
            },
            key,
            SessionLimits::default(),
            PresenceUpdate {
                status,
                ..PresenceUpdate::default()
            },
        ));
        reg.insert(s.clone());
        s
    }

    #[test]
    fn presence_follows_the_latest_session_and_goes_offline_with_the_last() {
        let reg = SessionRegistry::new();
        let a = session(&reg, 7, Status::Online);
        assert_eq!(
            reg.recompute_presence(Snowflake(7)).map(|p| p.status),
            Some(Status::Online)
        );
        assert_eq!(reg.recompute_presence(Snowflake(7)), None, "unchanged");
        let b = session(&reg, 7, Status::Dnd);
        assert_eq!(
            reg.recompute_presence(Snowflake(7)).map(|p| p.status),
            Some(Status::Dnd)
        );
        assert!(!reg.remove(&b));
        assert_eq!(
            reg.recompute_presence(Snowflake(7)).map(|p| p.status),
            Some(Status::Online)
        );
        assert!(reg.remove(&a));
        assert_eq!(
            reg.recompute_presence(Snowflake(7)).map(|p| p.status),
            Some(Status::Offline)
        );
        assert!(!reg.is_online(Snowflake(7)));
        assert!(reg.is_empty());
    }

    #[test]
    fn invisible_users_look_offline() {
        let reg = SessionRegistry::new();
        let _a = session(&reg, 7, Status::Invisible);
        assert_eq!(reg.recompute_presence(Snowflake(7)), None);
        assert!(!reg.is_online(Snowflake(7)));
    }

    #[test]
    fn identify_limits_cap_concurrency_and_the_daily_total() {
        let reg = SessionRegistry::new();
        let limits = IdentifyLimits {
            per_day: 3,
            max_concurrency: 2,
            concurrency_window: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        let u = Snowflake(1);
        assert!(reg.try_identify(u, true, 0, &limits, t0));
        assert!(reg.try_identify(u, true, 1, &limits, t0), "another bucket");
        assert!(
            !reg.try_identify(u, true, 2, &limits, t0),
            "bucket 0 is busy"
        );
        let t1 = t0 + Duration::from_secs(5);
        assert!(reg.try_identify(u, true, 2, &limits, t1));
        let t2 = t1 + Duration::from_secs(5);
        assert!(
            !reg.try_identify(u, true, 0, &limits, t2),
            "daily total spent"
        );
        let s = reg.start_limit(u, &limits, t2);
        assert_eq!((s.total, s.remaining, s.max_concurrency), (3, 0, 2));
        assert!(s.reset_after <= DAY - Duration::from_secs(10));
        assert!(reg.try_identify(u, true, 0, &limits, t0 + DAY));
        // People are held to the daily total only.
        let person = Snowflake(2);
        for _ in 0..3 {
            assert!(reg.try_identify(person, false, 0, &limits, t0));
        }
        assert!(!reg.try_identify(person, false, 0, &limits, t0));
    }

    #[test]
    fn a_large_max_concurrency_keeps_only_the_buckets_in_use() {
        let reg = SessionRegistry::new();
        let limits = IdentifyLimits {
            per_day: 1_000_000,
            max_concurrency: u32::MAX,
            concurrency_window: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        let u = Snowflake(1);
        assert!(reg.try_identify(u, true, 7, &limits, t0));
        assert!(
            !reg.try_identify(u, true, 7, &limits, t0),
            "bucket 7 is busy"
        );
        assert!(reg.try_identify(u, true, 8, &limits, t0));
        let later = t0 + Duration::from_secs(5);
        assert!(
            reg.try_identify(u, true, 7, &limits, later),
            "the window passed"
        );
        let entry = reg.identifies.get(&u).expect("the user has identified");
        assert_eq!(entry.lock().buckets.len(), 1, "expired buckets are dropped");
        drop(entry);
        // A zero window never refuses.
        let open = IdentifyLimits {
            concurrency_window: Duration::ZERO,
            ..limits
        };
        assert!(reg.try_identify(u, true, 7, &open, later));
        assert!(reg.try_identify(u, true, 7, &open, later));
    }
}
