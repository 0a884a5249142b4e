//! Who receives a guild's events, and the delivery itself.
//!
//! The guild actor keeps the recipients that follow its guild ([`Fanout`]) and, per channel, the
//! cached list of those allowed to view it. The caches are dropped whenever something that
//! decides visibility changes (roles, overwrites, channels, membership, subscriptions), so a
//! revoked user stops receiving with the very next event. [`deliver`] encodes an event at most
//! once per (encoding, content variant) and hands the same `Bytes` to every recipient, which
//! splices in its own sequence number when it writes.
//!
//! A recipient is anything that takes pre-encoded dispatches for one gateway session
//! ([`Recipient`]): a session of this node, or a session of another node reached through a
//! [`Relay`]. [`deliver`] hands each relay the event once, with the keys of its recipients and
//! which encoding each gets, so one event costs one message per other node however many of its
//! sessions follow the guild. The actor never holds a session itself; it learns of followers
//! from [`SessionOp`]s (which name sessions by [`SessionRef`]) and turns those into recipients
//! through the node's [`RecipientDirectory`].
//!
//! [`SessionOp`]: super::requests::SessionOp

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use enrichment_protocol::gateway::{Encoding, dispatch_prefix, intents};
use enrichment_protocol::{Permissions, Snowflake, Timestamp};
use serde::Serialize;

use super::requests::{SessionKey, SessionRef};
use super::state::GuildState;
use crate::events::{Audience, GuildEvent, MessageData};

/// One gateway session as fanout sees it: who it is and what it asked for ([`SessionRef`]),
/// and a sink for its dispatches.
pub trait Recipient: Send + Sync + std::fmt::Debug + 'static {
    /// The session's key, user, intents, encoding and bot flag.
    fn session(&self) -> &SessionRef;
    /// Appends a dispatch whose frame prefix is already encoded in the session's encoding.
    /// False once the session is gone (the caller may forget it).
    fn deliver(&self, prefix: Bytes) -> bool;
    /// Whether the session ended: nothing more reaches it.
    fn is_gone(&self) -> bool;
    /// The session now follows the guild (its side re-subscribes it when the guild's actor
    /// restarts). False when it is gone.
    fn follow(&self, guild_id: Snowflake) -> bool;
    /// The session no longer follows the guild (removed from it, or the guild was deleted).
    fn unfollow(&self, guild_id: Snowflake);
    /// The guild delivers to this session at its new node from now on
    /// ([`super::SessionOp::Move`]): every event it had for the session came before this call.
    fn handed_over(&self, _guild_id: Snowflake) {}
    /// [`Recipient::deliver`], leaving the wake-up of the session's connection to the caller:
    /// `None` when the session is gone, else whether the caller must call [`Recipient::wake`]
    /// (once, for however many dispatches it delivered meanwhile). A recipient with nothing
    /// to wake delivers and says false.
    fn deliver_unwoken(&self, prefix: Bytes) -> Option<bool> {
        self.deliver(prefix).then_some(false)
    }
    /// Wakes the session's connection after [`Recipient::deliver_unwoken`].
    fn wake(&self) {}
    /// The relay this recipient is reached through, for a session of another node. [`deliver`]
    /// gives such recipients' events to their relay in one batch instead of one by one.
    fn relay(&self) -> Option<&Arc<dyn Relay>> {
        None
    }
}

/// The variants of one event a batch may carry, indexed as [`variant_index`] numbers them:
/// [full, content-stripped] x [JSON, MessagePack].
pub type Variants = [Option<Bytes>; 4];

/// The index of a variant in [`Variants`].
pub fn variant_index(stripped: bool, encoding: Encoding) -> u8 {
    u8::from(stripped) * 2 + u8::from(encoding == Encoding::MsgPack)
}

/// Carries events to the sessions of one other node: the event once, and for each recipient
/// its key and the variant it gets.
pub trait Relay: Send + Sync + std::fmt::Debug + 'static {
    /// Sends one event of a guild (`None`: a dispatch for one session alone, such as its
    /// GUILD_CREATE) to the sessions named. Returns how many it queued (all or none).
    fn deliver_batch(
        &self,
        guild_id: Option<Snowflake>,
        variants: &Variants,
        recipients: &[(SessionKey, u8)],
    ) -> usize;
    /// The node whose sessions this relay reaches.
    fn node_id(&self) -> &str;
}

/// Turns the sessions named in session ops into recipients.
pub trait RecipientDirectory: Send + Sync + 'static {
    /// The recipient for `session`, or `None` when it is gone.
    fn recipient(&self, session: &SessionRef) -> Option<Arc<dyn Recipient>>;
}

thread_local! {
    /// The recipients to wake at the end of the [`batched_wakes`] running on this thread.
    static WAKES: RefCell<Option<Vec<Arc<dyn Recipient>>>> = const { RefCell::new(None) };
}

/// Runs `f`, which delivers events, and wakes each recipient it delivered to once, at the
/// end, rather than once per event: a connection then writes a whole run of events (a group
/// commit's messages, say) in one go. Nested calls wake at the end of the outermost.
pub fn batched_wakes<R>(f: impl FnOnce() -> R) -> R {
    let outermost = WAKES.with(|w| {
        let mut w = w.borrow_mut();
        w.is_none().then(|| *w = Some(Vec::new())).is_some()
    });
    let out = f();
    if outermost && let Some(wakes) = WAKES.with(|w| w.borrow_mut().take()) {
        for r in wakes {
            r.wake();
        }
    }
    out
}

/// Wakes `r` at the end of the batch running on this thread, or now outside of one.
fn wake_later(r: &Arc<dyn Recipient>) {
    let now = WAKES.with(|w| match w.borrow_mut().as_mut() {
        Some(wakes) => {
            wakes.push(r.clone());
            false
        }
        None => true,
    });
    if now {
        r.wake();
    }
}

/// Encodes one dispatch for one recipient alone (GUILD_CREATE, member chunks) and delivers it.
pub fn send_event<T: Serialize + ?Sized>(r: &dyn Recipient, t: &str, d: &T) -> bool {
    match dispatch_prefix(r.session().encoding, t, d) {
        Ok(prefix) => r.deliver(prefix),
        Err(e) => {
            tracing::error!(event = t, error = %e, "cannot encode dispatch");
            !r.is_gone()
        }
    }
}

/// A recipient as fanout keeps it: what it filters on, copied out of the [`SessionRef`] when the
/// session subscribed, next to the sink. Filtering ten thousand followers then reads these
/// lists and nothing else; only a recipient that gets the event is touched.
#[derive(Clone, Debug)]
pub struct Follower {
    pub user_id: Snowflake,
    pub intents: u64,
    pub encoding: Encoding,
    pub bot: bool,
    pub sink: Arc<dyn Recipient>,
}

impl Follower {
    pub fn new(sink: Arc<dyn Recipient>) -> Follower {
        let s = sink.session();
        Follower {
            user_id: s.user_id,
            intents: s.intents,
            encoding: s.encoding,
            bot: s.bot,
            sink,
        }
    }
}

/// A shared, immutable recipient list.
pub type Recipients = Arc<[Follower]>;

#[derive(Debug, Default)]
pub struct Fanout {
    by_user: HashMap<Snowflake, Vec<Follower>>,
    channels: HashMap<Snowflake, Recipients>,
    members: Option<Recipients>,
}

impl Fanout {
    /// Starts fanning out to a recipient. False if it already was.
    pub fn add(&mut self, s: Arc<dyn Recipient>) -> bool {
        let key = s.session().key;
        let list = self.by_user.entry(s.session().user_id).or_default();
        if list.iter().any(|x| x.sink.session().key == key) {
            return false;
        }
        list.push(Follower::new(s));
        self.invalidate();
        true
    }

    /// Stops fanning out to a user's sessions; returns them.
    pub fn remove_user(&mut self, user: Snowflake) -> Vec<Arc<dyn Recipient>> {
        let gone: Vec<_> = self
            .by_user
            .remove(&user)
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.sink)
            .collect();
        if !gone.is_empty() {
            self.invalidate();
        }
        gone
    }

    /// Stops fanning out to everyone; returns who was subscribed.
    pub fn clear(&mut self) -> Vec<Arc<dyn Recipient>> {
        self.invalidate();
        self.by_user
            .drain()
            .flat_map(|(_, v)| v)
            .map(|f| f.sink)
            .collect()
    }

    /// Forgets sessions that ended. Returns how many.
    pub fn prune(&mut self) -> usize {
        let before = self.len();
        self.by_user.retain(|_, v| {
            v.retain(|f| !f.sink.is_gone());
            !v.is_empty()
        });
        let pruned = before - self.len();
        if pruned > 0 {
            self.invalidate();
        }
        pruned
    }

    pub fn len(&self) -> usize {
        self.by_user.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// Stops fanning out to one session. False if it was not a recipient.
    pub fn remove_session(&mut self, user: Snowflake, key: SessionKey) -> bool {
        let Some(list) = self.by_user.get_mut(&user) else {
            return false;
        };
        let before = list.len();
        list.retain(|f| f.sink.session().key != key);
        let removed = list.len() < before;
        if list.is_empty() {
            self.by_user.remove(&user);
        }
        if removed {
            self.invalidate();
        }
        removed
    }

    /// Every recipient's session, with the node it is on when that is another (its relay's).
    pub fn followers(&self) -> Vec<(Option<String>, SessionRef)> {
        self.by_user
            .values()
            .flatten()
            .map(|f| {
                (
                    f.sink.relay().map(|r| r.node_id().to_owned()),
                    f.sink.session().clone(),
                )
            })
            .collect()
    }

    /// Whether a session (by key) is among the recipients.
    pub fn contains(&self, user: Snowflake, key: SessionKey) -> bool {
        self.sessions_of(user)
            .iter()
            .any(|f| f.sink.session().key == key)
    }

    /// Visibility may have changed: recompute recipient lists on next use.
    pub fn invalidate(&mut self) {
        self.channels.clear();
        self.members = None;
    }

    pub fn sessions_of(&self, user: Snowflake) -> &[Follower] {
        self.by_user.get(&user).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The sessions an event for `audience` goes to, given the guild as it is now.
    pub fn recipients(
        &mut self,
        state: &GuildState,
        audience: &Audience,
        now: Timestamp,
    ) -> Recipients {
        match audience {
            Audience::Guild => {
                if let Some(r) = &self.members {
                    return r.clone();
                }
                let r: Recipients = self
                    .by_user
                    .iter()
                    .filter(|(u, _)| state.members.contains_key(u))
                    .flat_map(|(_, v)| v.iter().cloned())
                    .collect();
                self.members = Some(r.clone());
                r
            }
            Audience::Channel(c) => {
                if let Some(r) = self.channels.get(c) {
                    return r.clone();
                }
                let r = self.with_permission(state, *c, Permissions::VIEW_CHANNEL, now);
                self.channels.insert(*c, r.clone());
                r
            }
            Audience::ChannelManagers(c) => self.with_permission(
                state,
                *c,
                Permissions::VIEW_CHANNEL | Permissions::MANAGE_CHANNELS,
                now,
            ),
            Audience::Users(ids) => ids
                .iter()
                .flat_map(|u| self.sessions_of(*u).iter().cloned())
                .collect(),
            Audience::GuildPermission(need) => self
                .by_user
                .iter()
                .filter(|(u, _)| {
                    state
                        .guild_permissions(**u, now)
                        .is_ok_and(|p| p.contains(*need))
                })
                .flat_map(|(_, v)| v.iter().cloned())
                .collect(),
        }
    }

    fn with_permission(
        &self,
        state: &GuildState,
        channel: Snowflake,
        need: Permissions,
        now: Timestamp,
    ) -> Recipients {
        let Some(c) = state.channels.get(&channel) else {
            return Arc::from(Vec::new());
        };
        let overwrites: Vec<_> = c.permission_overwrites.iter().map(|o| o.as_ref()).collect();
        let voice = c.kind.is_voice();
        self.by_user
            .iter()
            .filter(|(u, _)| {
                state.members.get(u).is_some_and(|m| {
                    state
                        .channel_permissions_with(m, &overwrites, voice, now)
                        .contains(need)
                })
            })
            .flat_map(|(_, v)| v.iter().cloned())
            .collect()
    }
}

/// An event's encodings, made on first use: [full, content-stripped] x [json, msgpack].
#[derive(Default)]
struct Encoded {
    slots: [OnceCell<Option<Bytes>>; 4],
}

impl Encoded {
    fn get(&self, event: &GuildEvent, stripped: bool, encoding: Encoding) -> Option<Bytes> {
        let i = usize::from(variant_index(stripped, encoding));
        self.slots[i]
            .get_or_init(|| {
                let r = if stripped {
                    dispatch_prefix(encoding, event.name(), &strip_content(event))
                } else {
                    dispatch_prefix(encoding, event.name(), event)
                };
                r.map_err(|e| tracing::error!(event = event.name(), error = %e, "cannot encode"))
                    .ok()
            })
            .clone()
    }

    /// The variants encoded so far.
    fn variants(&self) -> Variants {
        std::array::from_fn(|i| self.slots[i].get().cloned().flatten())
    }
}

/// Whether a session must get the message without its content: a bot without the
/// MESSAGE_CONTENT intent, unless it wrote the message, is mentioned in it or it is a DM.
fn hides_content(s: &Follower, event: &GuildEvent) -> bool {
    let (GuildEvent::MessageCreate(m) | GuildEvent::MessageUpdate(m)) = event else {
        return false;
    };
    if m.message.guild_id.is_none() {
        return false;
    }
    let me = s.user_id;
    s.bot
        && s.intents & intents::MESSAGE_CONTENT == 0
        && m.message.author.id != me
        && !m.message.mentions.iter().any(|u| u.id == me)
}

fn strip_content(event: &GuildEvent) -> GuildEvent {
    let strip = |m: &MessageData| {
        let mut m = m.clone();
        m.message.content.clear();
        m.message.embeds.clear();
        m.message.attachments.clear();
        m.message.components.clear();
        m
    };
    match event {
        GuildEvent::MessageCreate(m) => GuildEvent::MessageCreate(strip(m)),
        GuildEvent::MessageUpdate(m) => GuildEvent::MessageUpdate(strip(m)),
        other => other.clone(),
    }
}

/// One relay's share of an event: the relay and its recipients with their variants.
type Batch<'a> = (&'a Arc<dyn Relay>, Vec<(SessionKey, u8)>);

/// Delivers an event of `guild_id` to each recipient whose intents ask for it. Returns how many
/// got it (for recipients behind a relay: how many the relay queued).
pub fn deliver(recipients: &[Follower], guild_id: Snowflake, event: &GuildEvent) -> usize {
    let intent = event.intent();
    let encoded = Encoded::default();
    let mut delivered = 0;
    // A handful of other nodes at most: a list beats a map.
    let mut batches: Vec<Batch<'_>> = Vec::new();
    for f in recipients {
        if intent != 0 && f.intents & intent == 0 {
            continue;
        }
        let stripped = hides_content(f, event);
        let Some(bytes) = encoded.get(event, stripped, f.encoding) else {
            return delivered;
        };
        if let Some(relay) = f.sink.relay() {
            if f.sink.is_gone() {
                continue;
            }
            let entry = (f.sink.session().key, variant_index(stripped, f.encoding));
            match batches.iter_mut().find(|(r, _)| Arc::ptr_eq(r, relay)) {
                Some((_, keys)) => keys.push(entry),
                None => batches.push((relay, vec![entry])),
            }
            continue;
        }
        if let Some(wake) = f.sink.deliver_unwoken(bytes) {
            delivered += 1;
            if wake {
                wake_later(&f.sink);
            }
        }
    }
    if !batches.is_empty() {
        let variants = encoded.variants();
        for (relay, keys) in &batches {
            delivered += relay.deliver_batch(Some(guild_id), &variants, keys);
        }
    }
    metrics::counter!("enrichment_gateway_deliveries_total").increment(delivered as u64);
    delivered
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::FutureExt;

    use super::*;
    use crate::events::MessageDeleteData;
    use crate::gateway::session::{Session, SessionInfo, SessionLimits};

    const GUILD: Snowflake = Snowflake(1_000_000_000_000_000_000);

    fn session() -> Arc<Session> {
        Arc::new(Session::new(
            SessionInfo {
                session_id: "s".into(),
                user_id: Snowflake(7),
                bot: false,
                intents: intents::GUILDS | intents::GUILD_MESSAGES,
                encoding: Encoding::Json,
                shard: None,
                large_threshold: 50,
            },
            1,
            SessionLimits::default(),
            Default::default(),
        ))
    }

    fn deleted(id: u64) -> GuildEvent {
        GuildEvent::MessageDelete(MessageDeleteData {
            id: Snowflake(id),
            channel_id: Snowflake(1_000_000_000_000_000_001),
            guild_id: Some(GUILD),
        })
    }

    #[test]
    fn a_batch_of_events_wakes_each_connection_once_at_its_end() {
        let s = session();
        let followers = [Follower::new(s.clone())];
        batched_wakes(|| {
            for id in 1..=3 {
                assert_eq!(deliver(&followers, GUILD, &deleted(id)), 1);
            }
            assert!(
                s.notified().now_or_never().is_none(),
                "not woken before the batch ends"
            );
        });
        assert!(s.notified().now_or_never().is_some(), "woken at its end");
        assert!(s.notified().now_or_never().is_none(), "once");
        let mut out = Vec::new();
        s.take_pending(0, &mut out).unwrap();
        assert_eq!(out.len(), 3, "with every event");

        // Outside a batch each event wakes at once.
        deliver(&followers, GUILD, &deleted(4));
        assert!(s.notified().now_or_never().is_some());
    }
}
