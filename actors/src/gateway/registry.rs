//! The node's live sessions: by session id (for RESUME), by key (the name guilds know a session
//! by), by user (a user's sessions, presence and new guild memberships). IDENTIFY budgets are
//! counted in the shared state (see [`super::shared`]), not here.
//!
//! Guilds reach it only through two narrow traits: a [`RecipientDirectory`] (a session named in a
//! session op, as a recipient of the guild's events) and a [`GuildStartHook`] (the sessions that
//! already followed a guild whose actor just started, pushed into it before any request).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::{ClientStatus, Presence, PresenceUser, Status};

use super::session::Session;
use crate::guild::{Recipient, RecipientDirectory, SessionOp, SessionRef};
use crate::router::GuildStartHook;

#[derive(Debug, Default)]
pub struct SessionRegistry {
    by_id: DashMap<String, Arc<Session>>,
    by_key: DashMap<u64, Arc<Session>>,
    by_user: DashMap<Snowflake, Vec<Arc<Session>>>,
    /// The presence others see, per online user with sessions here.
    presences: DashMap<Snowflake, Presence>,
    /// Presences announced by other nodes, for users without sessions here.
    remote_presences: DashMap<Snowflake, Presence>,
    next_key: AtomicU64,
}

impl SessionRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry whose session keys are unique across the nodes of a cluster: they start at
    /// `node_index << 48`, where `node_index` is the node's snowflake id pair index, which no
    /// two live nodes share. A guild owned elsewhere then knows a session by its key alone.
    pub fn for_node(node_index: u16) -> Self {
        SessionRegistry {
            next_key: AtomicU64::new(u64::from(node_index) << 48),
            ..Self::default()
        }
    }

    /// The live session with this key.
    pub fn by_key(&self, key: u64) -> Option<Arc<Session>> {
        self.by_key
            .get(&key)
            .map(|s| s.clone())
            .filter(|s| !s.is_ended())
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

    /// A session being taken over from another node ([`Session::arriving`]): guilds may
    /// deliver to it (by key) before its client can resume it here (by id, see
    /// [`SessionRegistry::arrived`]).
    pub fn insert_arriving(&self, s: Arc<Session>) {
        self.by_key.insert(s.key, s);
    }

    /// A session taken over from another node is this node's now.
    pub fn arrived(&self, s: Arc<Session>) {
        self.insert(s);
    }

    /// Forgets a session another node took over. Unlike [`SessionRegistry::remove`] with a
    /// presence announcement, the user's presence here changes silently: the user is still
    /// online, and the new node says so.
    pub fn handed_over(&self, s: &Session) {
        self.remove(s);
        let _ = self.recompute_presence(s.user_id());
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

    /// Whether the user has live sessions on this node (whose presence then decides theirs).
    pub fn has_sessions(&self, user_id: Snowflake) -> bool {
        self.by_user
            .get(&user_id)
            .is_some_and(|v| v.iter().any(|s| !s.is_ended()))
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
}

impl RecipientDirectory for SessionRegistry {
    fn recipient(&self, session: &SessionRef) -> Option<Arc<dyn Recipient>> {
        let s = self.by_key.get(&session.key.0)?.clone();
        (!s.is_ended() && s.user_id() == session.user_id).then_some(s as Arc<dyn Recipient>)
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
}
