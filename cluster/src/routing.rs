//! Guild work goes to the node that owns the guild; the guild's events come back to sessions
//! on every node.
//!
//! [`ClusterRouter`] is the node's [`GuildRouter`] in a cluster. For each request or session op
//! it picks the node placement names (rendezvous hashing over the ready members, the same on
//! every node), or this node when it already holds the guild. Work for this node runs on its
//! [`LocalGuildRouter`] once the node holds the guild's lease in the store
//! ([`LeaseStore::claim_guild`]); work for another node travels as a control frame over the
//! [`ClusterTransport`] and its outcome comes back the same way.
//!
//! - **One owner.** Gossip views disagree while they converge; the lease does not. A node that
//!   is asked to run a guild another node holds answers "owned by N", and the asking node sends
//!   the work there once more. Work is re-sent only on that answer, which says it never ran.
//! - **No retry after a timeout.** A forwarded request that gets no answer in time may have run:
//!   the caller gets a retryable 503 and decides.
//! - **Rate limits** are enforced where the request came in (the REST and gateway layers); a
//!   forwarded request is not limited again.
//! - **Fanout across nodes.** A session op that names sessions of another node registers them
//!   on the owner as [`RemoteRecipient`]s, which all share that node's [`NodeRelay`]. An event
//!   goes to each other node as one fanout frame ([`FanoutBatch`]): the variants of the event
//!   the owner encoded (JSON or MessagePack, with or without message content), then the key of
//!   each recipient session there with the variant it gets. It travels on the same link as the
//!   sessions' GUILD_CREATEs, so nothing overtakes them, and the session's node hands each
//!   session its bytes unchanged.
//!
//! - **Losing an owner.** A session's node remembers which node owns each guild its sessions
//!   follow remotely (the owner tells it when a session starts following). When that node
//!   says it is leaving (a control frame after its last events, on the same link), leaves the
//!   view (the failure detector gave up on it) or comes back as a new process, each such
//!   session gets GUILD_DELETE with `unavailable: true`, Discord's own
//!   signal that a guild's stream broke, and is subscribed again: the work goes to the node
//!   placement now names, which claims the guild once the old owner's lease is gone and sends
//!   a fresh GUILD_CREATE. So a gap is never silent.
//!
//! - **Handoff.** A node claims a guild only when placement names it (or nobody is ready).
//!   When the view changes so that placement names another node for a guild this node holds
//!   (a node joined, or this one is draining), the node hands it off, and live sessions see
//!   neither a gap nor a duplicate:
//!   1. new work for the guild is sent on, work in flight finishes;
//!   2. the actor says who follows the guild (sessions here and on other nodes), drains its
//!      mailbox and stops: its last events are on their way, each on its node's link;
//!   3. the followers go to the next owner ([`Control::Adopt`]), which registers them and
//!      acknowledges; the actor it starts (once it claims the guild) fans out to them from its
//!      first event, without a new GUILD_CREATE;
//!   4. the lease is released, and every other node hears `GuildMoved` naming the next owner:
//!      the end-of-epoch marker, after the guild's last events on each link.
//!
//!   A session's node holds the frames of a guild it follows that come from another node
//!   than the guild's owner as it knows it, and hands them on, in order, when the marker
//!   arrives. Frames cannot be held forever: past `hold_bytes` or [`HOLD_FOR`], or when the
//!   old owner turns out dead, the guild's sessions resync instead. When the next owner does
//!   not acknowledge the followers in time, the handoff falls back to the resync: `GuildMoved`
//!   names no next owner, and the sessions get GUILD_DELETE `unavailable: true`, then a fresh
//!   GUILD_CREATE from the next owner.
//! - **Gaps.** Frames lost on a link (a queue overflowed, a connection broke) resync the
//!   guilds between the two nodes, both ways.
//!
//! - **Restarts.** The owner remembers which sessions of other nodes followed each guild it
//!   runs; an actor that restarts (after a failure, or reloaded by an operator) takes them back
//!   with this node's own, as the start hook of the local router.
//!
//! - **Sessions.** A RESUME at another node than the session's takes the session over: see
//!   `routing/takeover.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use dashmap::DashMap;
use enrichment_actors::gateway::{ResumeError, Session, SessionRegistry};
use enrichment_actors::guild::fanout::{Relay, Variants, send_event};
use enrichment_actors::guild::requests::AnyReply;
use enrichment_actors::guild::{
    Envelope, Recipient, RecipientDirectory, SessionKey, SessionOp, SessionRef,
};
use enrichment_actors::router::{GuildOwnership, GuildStartHook};
use enrichment_actors::router::{GuildRouter, LocalGuildRouter};
use enrichment_protocol::gateway::{Encoding, PresenceUpdate, UnavailableGuild};
use enrichment_protocol::models::User;
use enrichment_protocol::node::NodeIdentity;
use enrichment_protocol::{ApiError, IdPair, Snowflake};
use enrichment_storage::{GuildClaim, GuildOwner, LeaseStore};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use crate::transport::frame::decode_control;
use crate::transport::{ClusterTransport, ClusterTransportExt, FrameKind, Inbound};
use crate::view::ClusterView;

mod holding;
mod takeover;

use holding::{Hold, Holdings};
use takeover::Wanted;

/// Work for a guild's actor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Work {
    Request(Envelope),
    Session(SessionOp),
}

/// What became of forwarded work.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Outcome {
    /// The request's answer.
    Reply(AnyReply),
    /// The session op was carried out.
    Done,
    /// The guild's actor refused or failed it; the error is the caller's.
    Failed(ApiError),
    /// The node named holds the guild: the work did not run here.
    OwnedBy(String),
}

/// Control frames between routers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Control {
    /// Run `work` on `guild_id`; answer with [`Control::Outcome`] and the same `id`.
    Work {
        id: u64,
        guild_id: Snowflake,
        work: Work,
    },
    Outcome {
        id: u64,
        outcome: Outcome,
    },
    /// The session (on the receiving node) now follows the guild.
    Follow {
        key: SessionKey,
        guild_id: Snowflake,
    },
    Unfollow {
        key: SessionKey,
        guild_id: Snowflake,
    },
    /// The session (on the sending node) ended: deliver nothing more to it.
    SessionGone {
        key: SessionKey,
    },
    /// An operator asked (on the sending node) for the receiving node to drain.
    Drain,
    /// The sending node stops: it owns nothing from here on. Sent on every link after the
    /// node's last events, so a session's node has every event before it acts on this.
    Leaving,
    /// The sending node handed the guild off: its last events came before this. `to`, when
    /// set, is the next owner, which already fans out to the guild's followers (their node
    /// hands on the frames it held from it); without it the followers resync.
    GuildMoved {
        guild_id: Snowflake,
        #[serde(default)]
        to: Option<String>,
    },
    /// The sending node hands the guild to the receiving one: these are its followers, by
    /// node. Answered like work, with [`Control::Outcome`] (`Done`) and the same `id`, once
    /// registered.
    Adopt {
        id: u64,
        guild_id: Snowflake,
        followers: Vec<(String, Vec<SessionRef>)>,
    },
    /// A user joined a guild, or a private channel (`private`), through the sending node: the
    /// user's sessions here follow it.
    UserJoined {
        user_id: Snowflake,
        guild_id: Snowflake,
        #[serde(default)]
        private: bool,
    },
    /// A user changed their account through the sending node: USER_UPDATE to their sessions.
    UserUpdated {
        user: User,
    },
    /// Frames from the receiving node to the sending one were lost: the receiver's sessions
    /// that follow the sender's guilds may have missed a follow, so they follow them afresh.
    Resync,
    /// The sending node takes over a session of the receiving one, whose client saw up to
    /// `seq` (its RESUME reached the sender). Answered at once with [`Control::SessionOffer`],
    /// then, once the owners of the session's guilds deliver to the sender (or
    /// [`MOVE_WAIT`] passed), with [`Control::SessionHandover`], both with the same `id`.
    TakeSession {
        id: u64,
        session_id: String,
        user_id: Snowflake,
        seq: u64,
        encoding: Encoding,
    },
    SessionOffer {
        id: u64,
        offer: Result<SessionOffer, ResumeError>,
    },
    SessionHandover {
        id: u64,
        handover: Result<SessionHandover, ResumeError>,
    },
    /// The guild's owner (the sender) delivers to the session at its new node from now on:
    /// its last event for the session here came before this.
    HandedOver {
        key: SessionKey,
        guild_id: Snowflake,
    },
}

/// A session as its old node offers it to the node taking it over.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionOffer {
    /// How guilds know it on the old node.
    pub session: SessionRef,
    pub presence: PresenceUpdate,
    /// The guilds it follows: the new node asks each owner to move it
    /// ([`SessionOp::Move`]).
    pub guilds: Vec<Snowflake>,
}

/// What the client of a session taken over has not seen, from its old node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionHandover {
    /// The last sequence number the old node gave.
    pub seq: u64,
    /// The dispatches after the client's sequence number, up to `seq`.
    pub frames: Vec<Bytes>,
    /// Guilds whose owners did not say in time that they deliver to the new node: what
    /// they sent meanwhile may be lost, so the session resyncs them.
    pub unsynced: Vec<Snowflake>,
}

/// The gateway side of this node, for the per-user events other nodes pass on.
pub trait UserEvents: Send + Sync + 'static {
    /// The user joined a guild (GUILD_CREATE), or a private channel when `private`: this
    /// node's sessions of theirs follow it.
    fn joined_guild(&self, user_id: Snowflake, guild_id: Snowflake, private: bool);
    /// USER_UPDATE to this node's sessions of the user.
    fn user_updated(&self, user: &User);
}

/// How long work for another node waits for a link to it that is not open: enough for a
/// link being redialled (the transport retries from 100 ms) to open, far less than the
/// forward timeout.
const LINK_WAIT: Duration = Duration::from_secs(1);

/// How long a handoff waits for the next owner to take the guild's followers before it falls
/// back to resyncing them.
const ADOPT_WAIT: Duration = Duration::from_secs(2);

/// How long adopted followers wait for the guild's actor to start here; past it they are
/// stale (the guild went elsewhere).
const ADOPTION_KEPT_FOR: Duration = Duration::from_secs(60);

/// How long a session's old node waits for the owners of its guilds to deliver to the node
/// taking it over (and that node keeps asking them) before the guilds left resync.
pub const MOVE_WAIT: Duration = Duration::from_secs(3);

/// How long a session's node holds a guild's frames from its next owner, waiting for the
/// previous owner's end-of-epoch marker, before it resyncs the guild's sessions instead.
pub const HOLD_FOR: Duration = Duration::from_secs(10);

/// A guild this node holds: the epoch of its claim, and a gate that work passes through
/// (shared) and a handoff closes (exclusive), so that a handoff waits for work in flight and
/// work that comes after it is sent on.
#[derive(Debug)]
struct Held {
    epoch: u64,
    moving: tokio::sync::RwLock<bool>,
}

/// A session of another node, as a guild's actor here delivers to it.
#[derive(Debug)]
pub struct RemoteRecipient {
    session: SessionRef,
    node_id: String,
    transport: Arc<dyn ClusterTransport>,
    relay: Arc<dyn Relay>,
    gone: AtomicBool,
}

/// One event for several sessions of one node: what a fanout frame carries.
///
/// Layout (big-endian): the number of variants `v` (u8); `v` times the variant's index (u8,
/// as [`enrichment_actors::guild::fanout::variant_index`] numbers them), its length (u32) and
/// its bytes; the number of sessions `n` (u32); `n` times a session key (u64) and the index of
/// the variant it gets (u8).
#[derive(Debug, PartialEq, Eq)]
pub struct FanoutBatch {
    /// The guild whose event this is; `None` for a dispatch to one session alone.
    pub guild_id: Option<Snowflake>,
    pub variants: Variants,
    pub sessions: Vec<(SessionKey, u8)>,
}

/// Why a fanout frame could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed fanout frame: {0}")]
pub struct MalformedFanout(&'static str);

impl FanoutBatch {
    /// Encodes the guild (0 for none), the variants the sessions use, and the sessions.
    pub fn encode(
        guild_id: Option<Snowflake>,
        variants: &Variants,
        sessions: &[(SessionKey, u8)],
    ) -> Bytes {
        let mut used = [false; 4];
        for (_, v) in sessions {
            if let Some(u) = used.get_mut(usize::from(*v)) {
                *u = true;
            }
        }
        let present: Vec<(u8, &Bytes)> = (0u8..4)
            .filter(|i| used[usize::from(*i)])
            .filter_map(|i| variants[usize::from(i)].as_ref().map(|b| (i, b)))
            .collect();
        let len = 8
            + 1
            + present.iter().map(|(_, b)| 5 + b.len()).sum::<usize>()
            + 4
            + sessions.len() * 9;
        let mut out = BytesMut::with_capacity(len);
        out.put_u64(guild_id.map_or(0, Snowflake::get));
        out.put_u8(present.len() as u8);
        for (i, bytes) in &present {
            out.put_u8(*i);
            out.put_u32(bytes.len() as u32);
            out.put_slice(bytes);
        }
        out.put_u32(sessions.len() as u32);
        for (key, v) in sessions {
            out.put_u64(key.0);
            out.put_u8(*v);
        }
        out.freeze()
    }

    /// Reads a frame; the variants are slices of `payload`, not copies.
    pub fn decode(payload: &Bytes) -> Result<FanoutBatch, MalformedFanout> {
        let mut at = 0usize;
        let take = |at: &mut usize, n: usize| -> Result<std::ops::Range<usize>, MalformedFanout> {
            let end = at
                .checked_add(n)
                .filter(|end| *end <= payload.len())
                .ok_or(MalformedFanout("truncated"))?;
            let range = *at..end;
            *at = end;
            Ok(range)
        };
        let guild = u64::from_be_bytes(
            payload[take(&mut at, 8)?]
                .try_into()
                .map_err(|_| MalformedFanout("guild"))?,
        );
        let guild_id = (guild != 0).then_some(Snowflake(guild));
        let count = payload[take(&mut at, 1)?][0];
        let mut variants: Variants = Default::default();
        for _ in 0..count {
            let index = usize::from(payload[take(&mut at, 1)?][0]);
            let len = u32::from_be_bytes(
                payload[take(&mut at, 4)?]
                    .try_into()
                    .map_err(|_| MalformedFanout("length"))?,
            ) as usize;
            let slot = variants
                .get_mut(index)
                .ok_or(MalformedFanout("variant index"))?;
            *slot = Some(payload.slice(take(&mut at, len)?));
        }
        let n = u32::from_be_bytes(
            payload[take(&mut at, 4)?]
                .try_into()
                .map_err(|_| MalformedFanout("count"))?,
        ) as usize;
        if payload.len() - at != n.saturating_mul(9) {
            return Err(MalformedFanout("session list length"));
        }
        let mut sessions = Vec::with_capacity(n);
        for _ in 0..n {
            let key = u64::from_be_bytes(
                payload[take(&mut at, 8)?]
                    .try_into()
                    .map_err(|_| MalformedFanout("key"))?,
            );
            let v = payload[take(&mut at, 1)?][0];
            if variants.get(usize::from(v)).is_none_or(Option::is_none) {
                return Err(MalformedFanout("a session's variant is missing"));
            }
            sessions.push((SessionKey(key), v));
        }
        Ok(FanoutBatch {
            guild_id,
            variants,
            sessions,
        })
    }
}

/// Carries events to the sessions of one other node, one frame per event.
#[derive(Debug)]
pub struct NodeRelay {
    node_id: String,
    transport: Arc<dyn ClusterTransport>,
}

impl Relay for NodeRelay {
    fn deliver_batch(
        &self,
        guild_id: Option<Snowflake>,
        variants: &Variants,
        sessions: &[(SessionKey, u8)],
    ) -> usize {
        let frame = FanoutBatch::encode(guild_id, variants, sessions);
        match self.transport.send(&self.node_id, FrameKind::Fanout, frame) {
            Ok(_) => {
                metrics::histogram!("enrichment_cluster_fanout_batch_sessions")
                    .record(sessions.len() as f64);
                sessions.len()
            }
            // The frame's number is spent: the session's node sees the gap.
            Err(crate::transport::SendError::Overflow { .. }) => sessions.len(),
            Err(e) => {
                debug!(node = %self.node_id, error = %e, "fanout to a node not sent");
                0
            }
        }
    }

    fn node_id(&self) -> &str {
        &self.node_id
    }
}

impl RemoteRecipient {
    fn control(&self, message: &Control) -> bool {
        match self.transport.send_control(&self.node_id, message) {
            Ok(_) => true,
            Err(e) => {
                debug!(node = %self.node_id, error = %e, "control frame to a session's node not sent");
                false
            }
        }
    }
}

impl Recipient for RemoteRecipient {
    fn session(&self) -> &SessionRef {
        &self.session
    }

    fn deliver(&self, prefix: Bytes) -> bool {
        if self.is_gone() {
            return false;
        }
        // A dispatch for this session alone (GUILD_CREATE, member chunks): a batch of one.
        let variants = [Some(prefix), None, None, None];
        if self
            .relay
            .deliver_batch(None, &variants, &[(self.session.key, 0)])
            == 1
        {
            true
        } else {
            self.gone.store(true, Ordering::Relaxed);
            false
        }
    }

    fn relay(&self) -> Option<&Arc<dyn Relay>> {
        Some(&self.relay)
    }

    fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    fn follow(&self, guild_id: Snowflake) -> bool {
        !self.is_gone()
            && self.control(&Control::Follow {
                key: self.session.key,
                guild_id,
            })
    }

    fn unfollow(&self, guild_id: Snowflake) {
        self.control(&Control::Unfollow {
            key: self.session.key,
            guild_id,
        });
    }

    fn handed_over(&self, guild_id: Snowflake) {
        self.control(&Control::HandedOver {
            key: self.session.key,
            guild_id,
        });
    }
}

/// The sessions guild actors here deliver to: this node's own, and those of other nodes that
/// asked to follow a guild owned here. Session keys are unique across live nodes
/// ([`SessionRegistry::for_node`]), so a key names one session wherever it lives.
#[derive(Debug)]
pub struct ClusterDirectory {
    local: Arc<SessionRegistry>,
    remote: DashMap<u64, Arc<RemoteRecipient>>,
    /// One relay per other node, shared by its sessions so fanout can batch by node.
    relays: DashMap<String, Arc<dyn Relay>>,
    transport: Arc<dyn ClusterTransport>,
}

impl ClusterDirectory {
    pub fn new(local: Arc<SessionRegistry>, transport: Arc<dyn ClusterTransport>) -> Self {
        ClusterDirectory {
            local,
            remote: DashMap::new(),
            relays: DashMap::new(),
            transport,
        }
    }

    /// Remembers the sessions an op from `node_id` names, so the actor can deliver to them.
    fn register(&self, node_id: &str, op: &SessionOp) {
        self.register_sessions(node_id, op.sessions());
    }

    /// Remembers sessions of `node_id`, reached through that node's relay.
    pub fn register_sessions(&self, node_id: &str, sessions: &[SessionRef]) {
        let relay = self
            .relays
            .entry(node_id.to_owned())
            .or_insert_with(|| {
                Arc::new(NodeRelay {
                    node_id: node_id.to_owned(),
                    transport: self.transport.clone(),
                })
            })
            .clone();
        for session in sessions {
            let fresh = || {
                Arc::new(RemoteRecipient {
                    session: session.clone(),
                    node_id: node_id.to_owned(),
                    transport: self.transport.clone(),
                    relay: relay.clone(),
                    gone: AtomicBool::new(false),
                })
            };
            let mut entry = self.remote.entry(session.key.0).or_insert_with(fresh);
            if entry.is_gone() || entry.node_id != node_id || entry.session != *session {
                *entry = fresh();
            }
        }
    }

    fn gone(&self, key: SessionKey) {
        if let Some((_, r)) = self.remote.remove(&key.0) {
            r.gone.store(true, Ordering::Relaxed);
        }
    }

    /// Every session of `node_id` is gone (it restarted or left).
    fn node_gone(&self, node_id: &str) {
        self.remote.retain(|_, r| {
            let keep = r.node_id != node_id;
            if !keep {
                r.gone.store(true, Ordering::Relaxed);
            }
            keep
        });
    }
}

impl RecipientDirectory for ClusterDirectory {
    fn recipient(&self, session: &SessionRef) -> Option<Arc<dyn Recipient>> {
        if let Some(r) = self.local.recipient(session) {
            return Some(r);
        }
        let r = self.remote.get(&session.key.0)?.clone();
        (!r.is_gone() && r.session.user_id == session.user_id).then_some(r as Arc<dyn Recipient>)
    }
}

/// The node's [`GuildRouter`] in a cluster (see the module docs).
pub struct ClusterRouter {
    local: Arc<LocalGuildRouter>,
    me: NodeIdentity,
    pair: IdPair,
    views: watch::Receiver<ClusterView>,
    transport: Arc<dyn ClusterTransport>,
    leases: Arc<dyn LeaseStore>,
    directory: Arc<ClusterDirectory>,
    registry: Arc<SessionRegistry>,
    /// Guilds this node holds, with the epoch of its claim.
    held: DashMap<Snowflake, Arc<Held>>,
    pending: DashMap<u64, oneshot::Sender<Outcome>>,
    next_id: AtomicU64,
    /// How long forwarded work may take: the owner's own command timeout and a margin.
    timeout: Duration,
    /// Guilds owned elsewhere that sessions here follow: the owner's node id and the keys of
    /// the following sessions.
    followed: parking_lot::Mutex<HashMap<Snowflake, (String, HashSet<u64>)>>,
    /// How long a session keeps trying to follow a guild again after its owner was lost.
    resubscribe_for: Duration,
    /// Woken when another node passes on an operator's request that this node drain.
    drain_requested: Arc<tokio::sync::Notify>,
    /// Where per-user events from other nodes go; set once the gateway side exists.
    user_events: std::sync::OnceLock<Arc<dyn UserEvents>>,
    /// Followers handed over by a guild's previous owner, for its actor here to start with.
    adopted: DashMap<Snowflake, (Instant, Vec<SessionRef>)>,
    /// Sessions of other nodes that asked to follow each guild run here: what an actor that
    /// restarts (after a failure, or reloaded) takes back, beside this node's own sessions. A
    /// superset: the actor keeps only members still entitled, and the directory drops ended
    /// sessions.
    remote_follows: DashMap<Snowflake, HashMap<u64, SessionRef>>,
    /// Frames held per guild until its previous owner's end-of-epoch marker; decoded, their
    /// variants are slices of the frames, not copies.
    holding: parking_lot::Mutex<Holdings<FanoutBatch>>,
    /// Sessions given frames from other nodes whose connections are yet to be woken.
    wakes: parking_lot::Mutex<Vec<Arc<Session>>>,
    /// Sessions being taken over from other nodes: their offers and handovers, by id.
    offers: DashMap<u64, oneshot::Sender<Result<SessionOffer, ResumeError>>>,
    handovers: DashMap<u64, oneshot::Sender<Result<SessionHandover, ResumeError>>>,
}

impl std::fmt::Debug for ClusterRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRouter")
            .field("me", &self.me)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

/// What a [`ClusterRouter`] is built from.
pub struct ClusterRouterParts {
    pub local: Arc<LocalGuildRouter>,
    /// This node and the id pair whose lease keeps its guild claims alive.
    pub me: NodeIdentity,
    pub pair: IdPair,
    pub views: watch::Receiver<ClusterView>,
    pub transport: Arc<dyn ClusterTransport>,
    pub leases: Arc<dyn LeaseStore>,
    pub directory: Arc<ClusterDirectory>,
    pub registry: Arc<SessionRegistry>,
    pub timeout: Duration,
    /// How long a session keeps trying to follow a guild again after its owner was lost: the
    /// failure detector's delay plus the id lease, which must run out before another node may
    /// take the guild, and a margin.
    pub resubscribe_for: Duration,
    /// Woken when another node passes on an operator's request that this node drain.
    pub drain_requested: Arc<tokio::sync::Notify>,
    /// The most bytes of one guild's frames held while its handoff completes (see the module
    /// docs); past it the guild's sessions here resync.
    pub hold_bytes: usize,
}

impl std::fmt::Debug for ClusterRouterParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRouterParts")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// What the local router asks before it starts a guild's actor: this node's claim on the
/// guild, if the store still has it, which the actor's writes are then fenced by.
struct Ownership(std::sync::Weak<ClusterRouter>);

/// Who a guild's actor starts with: the sessions here that follow the guild, and those of
/// other nodes that its previous owner handed over ([`Control::Adopt`]).
struct StartHook(std::sync::Weak<ClusterRouter>);

impl GuildStartHook for StartHook {
    fn guild_started(&self, guild_id: Snowflake) -> Option<SessionOp> {
        let router = self.0.upgrade()?;
        let mut sessions = match router.registry.guild_started(guild_id) {
            Some(SessionOp::Resubscribe { sessions }) => sessions,
            _ => Vec::new(),
        };
        if let Some((_, (at, adopted))) = router.adopted.remove(&guild_id)
            && at.elapsed() < ADOPTION_KEPT_FOR
        {
            router.remember_remote(guild_id, &adopted);
        }
        // Those of other nodes that followed it here before, still reachable.
        if let Some(mut remote) = router.remote_follows.get_mut(&guild_id) {
            remote.retain(|_, s| router.directory.recipient(s).is_some());
            sessions.extend(remote.values().cloned());
        }
        (!sessions.is_empty()).then_some(SessionOp::Resubscribe { sessions })
    }
}

#[async_trait]
impl GuildOwnership for Ownership {
    async fn owner(&self, guild_id: Snowflake) -> Option<GuildOwner> {
        let router = self.0.upgrade()?;
        let epoch = router.held.get(&guild_id).map(|h| h.epoch)?;
        let mine = GuildOwner {
            guild_id,
            node: router.me.clone(),
            pair: router.pair,
            epoch,
        };
        // Checked again: an actor restarting on a claim that the store no longer has (this
        // node was paused past its lease, say) would only have every write refused.
        match router.leases.guild_owner(guild_id).await {
            Ok(Some(current)) if current == mine => Some(mine),
            Ok(current) => {
                warn!(%guild_id, epoch, ?current, "this node's claim on the guild is gone");
                router.held.remove_if(&guild_id, |_, h| h.epoch == epoch);
                None
            }
            Err(e) => {
                warn!(%guild_id, error = %e, "cannot read the guild's owner");
                None
            }
        }
    }
}

impl ClusterRouter {
    /// The router, and the task that serves what other nodes send it (`inbound` is the
    /// transport's receiving side).
    pub fn start(
        parts: ClusterRouterParts,
        inbound: mpsc::Receiver<Inbound>,
    ) -> (Arc<ClusterRouter>, tokio::task::JoinHandle<()>) {
        let router = Arc::new(ClusterRouter {
            local: parts.local,
            me: parts.me,
            pair: parts.pair,
            views: parts.views,
            transport: parts.transport,
            leases: parts.leases,
            directory: parts.directory,
            registry: parts.registry,
            held: DashMap::new(),
            pending: DashMap::new(),
            next_id: AtomicU64::new(1),
            timeout: parts.timeout,
            followed: parking_lot::Mutex::new(HashMap::new()),
            resubscribe_for: parts.resubscribe_for,
            drain_requested: parts.drain_requested,
            user_events: std::sync::OnceLock::new(),
            adopted: DashMap::new(),
            remote_follows: DashMap::new(),
            holding: parking_lot::Mutex::new(Holdings::new(parts.hold_bytes, HOLD_FOR)),
            offers: DashMap::new(),
            handovers: DashMap::new(),
            wakes: parking_lot::Mutex::new(Vec::new()),
        });
        // Weak: the local router is the cluster router's, not the other way round.
        router
            .local
            .set_ownership(Arc::new(Ownership(Arc::downgrade(&router))));
        router
            .local
            .set_start_hook(Arc::new(StartHook(Arc::downgrade(&router))));
        let serving = tokio::spawn(serve(router.clone(), inbound));
        let watching = tokio::spawn(watch_owners(router.clone(), router.views.clone()));
        let sweeping = tokio::spawn(sweep_holdings(router.clone()));
        let task = tokio::spawn(async move {
            let _ = serving.await;
            watching.abort();
            sweeping.abort();
        });
        (router, task)
    }

    /// Guilds this node holds now.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    /// A node left the cluster or came back as a new process: its sessions are gone from
    /// every guild run here, and the guilds it owned lost their owner.
    fn node_lost(self: &Arc<Self>, node_id: &str) {
        self.directory.node_gone(node_id);
        self.remote_follows.retain(|_, follows| {
            follows.retain(|_, s| self.directory.recipient(s).is_some());
            !follows.is_empty()
        });
        self.owner_lost(node_id);
    }

    /// Remembers sessions of other nodes as followers of a guild run here.
    fn remember_remote(&self, guild_id: Snowflake, sessions: &[SessionRef]) {
        if sessions.is_empty() {
            return;
        }
        let mut follows = self.remote_follows.entry(guild_id).or_default();
        for s in sessions {
            follows.insert(s.key.0, s.clone());
        }
    }

    /// Waits until this node holds no guild (a draining node handed them all off), at most
    /// `timeout`. False when some are still held: there was nobody to take them, or the
    /// handoffs did not finish in time.
    pub async fn until_handed_off(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.held.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Tells every other member this node owns nothing any more. Sent when it stops, after
    /// its guild actors stopped, so on each link it comes after the node's last events.
    pub fn announce_leaving(&self) {
        self.tell_every_member(&Control::Leaving);
    }

    /// Sends a control message to every other member, each on its own link (so after
    /// everything sent to it before).
    fn tell_every_member(&self, message: &Control) {
        let peers: Vec<String> = self
            .views
            .borrow()
            .members
            .iter()
            .filter(|m| m.node_id() != self.me.node_id)
            .map(|m| m.node_id().to_owned())
            .collect();
        for peer in peers {
            if let Err(e) = self.transport.send_control(&peer, message) {
                debug!(%peer, error = %e, ?message, "control message not sent");
            }
        }
    }

    /// Where per-user events from other nodes go. Set once; later calls change nothing.
    pub fn set_user_events(&self, events: Arc<dyn UserEvents>) {
        let _ = self.user_events.set(events);
    }

    /// Tells every other node a user joined a guild (or a private channel) through this one,
    /// so the user's sessions there follow it too.
    pub fn announce_user_joined(&self, user_id: Snowflake, guild_id: Snowflake, private: bool) {
        self.tell_every_member(&Control::UserJoined {
            user_id,
            guild_id,
            private,
        });
    }

    /// Tells every other node a user changed their account through this one.
    pub fn announce_user_updated(&self, user: &User) {
        self.tell_every_member(&Control::UserUpdated { user: user.clone() });
    }

    /// Passes an operator's drain request on to another member.
    pub fn request_drain(&self, node_id: &str) -> Result<(), ApiError> {
        self.transport
            .send_control(node_id, &Control::Drain)
            .map(|_| ())
            .map_err(|e| {
                debug!(%node_id, error = %e, "drain request not sent");
                ApiError::unavailable("The node is unreachable")
            })
    }

    /// Where work for `guild_id` goes first: here when this node holds it or nobody is ready,
    /// else the node placement names.
    fn target(&self, guild_id: Snowflake) -> Option<String> {
        if self.held.contains_key(&guild_id) {
            return None;
        }
        let view = self.views.borrow();
        match view.owner(guild_id.get()) {
            Some(m) if m.node_id() != self.me.node_id => Some(m.node_id().to_owned()),
            _ => None,
        }
    }

    async fn route(&self, guild_id: Snowflake, work: Work) -> Result<Outcome, ApiError> {
        let mut target = self.target(guild_id);
        for _ in 0..2 {
            let outcome = match &target {
                None => self.run_here(guild_id, work.clone()).await,
                Some(node) => self.forward(node, guild_id, work.clone()).await?,
            };
            match outcome {
                Outcome::OwnedBy(node) => {
                    metrics::counter!("enrichment_cluster_rerouted_total").increment(1);
                    target = (node != self.me.node_id).then_some(node);
                }
                done => return Ok(done),
            }
        }
        Err(ApiError::unavailable(
            "The guild is changing nodes; try again",
        ))
    }

    /// The node placement names for a guild, when it is another node.
    fn placed_elsewhere(&self, guild_id: Snowflake) -> Option<String> {
        let view = self.views.borrow();
        view.owner(guild_id.get())
            .filter(|m| m.node_id() != self.me.node_id)
            .map(|m| m.node_id().to_owned())
    }

    /// Runs work here, once this node holds the guild.
    async fn run_here(&self, guild_id: Snowflake, work: Work) -> Outcome {
        let existing = self.held.get(&guild_id).map(|h| h.clone());
        let held = match existing {
            Some(held) => held,
            None => match self.claim(guild_id).await {
                Ok(held) => held,
                Err(outcome) => return outcome,
            },
        };
        let gate = held.moving.read().await;
        if *gate {
            return match self.placed_elsewhere(guild_id) {
                Some(node) => Outcome::OwnedBy(node),
                None => Outcome::Failed(ApiError::unavailable(
                    "The guild is changing nodes; try again",
                )),
            };
        }
        let outcome = match work {
            Work::Request(envelope) => match self.local.send(guild_id, envelope).await {
                Ok(reply) => Outcome::Reply(reply),
                Err(e) => Outcome::Failed(e),
            },
            Work::Session(op) => match self.local.session_op(guild_id, op).await {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::Failed(e),
            },
        };
        drop(gate);
        outcome
    }

    /// Claims a guild placement gives this node; any other answer is the work's outcome.
    async fn claim(&self, guild_id: Snowflake) -> Result<Arc<Held>, Outcome> {
        // A guild placed elsewhere is not taken, even when it is free: it is on its way to
        // that node (handed off from here, or its owner died).
        if let Some(node) = self.placed_elsewhere(guild_id) {
            return Err(Outcome::OwnedBy(node));
        }
        match self.leases.claim_guild(guild_id, &self.me, self.pair).await {
            Ok(GuildClaim::Claimed(owner)) => {
                debug!(%guild_id, epoch = owner.epoch, "claimed guild");
                let held = Arc::new(Held {
                    epoch: owner.epoch,
                    moving: tokio::sync::RwLock::new(false),
                });
                Ok(self.held.entry(guild_id).or_insert(held).clone())
            }
            Ok(GuildClaim::Held(owner)) => Err(Outcome::OwnedBy(owner.node.node_id)),
            Ok(GuildClaim::NotLeased) => Err(Outcome::Failed(ApiError::unavailable(
                "This node is leaving the cluster; try again",
            ))),
            Err(e) => {
                warn!(%guild_id, error = %e, "cannot claim guild");
                Err(Outcome::Failed(ApiError::unavailable(
                    "Guild temporarily unavailable",
                )))
            }
        }
    }

    /// Hands off every guild this node holds that placement now gives another node.
    fn rebalance(self: &Arc<Self>) {
        let moving: Vec<Snowflake> = self
            .held
            .iter()
            .map(|h| *h.key())
            .filter(|g| self.placed_elsewhere(*g).is_some())
            .collect();
        if moving.is_empty() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            for guild_id in moving {
                me.hand_off(guild_id).await;
            }
        });
    }

    /// Hands one guild off (see the module docs).
    async fn hand_off(self: &Arc<Self>, guild_id: Snowflake) {
        let Some(held) = self.held.get(&guild_id).map(|h| h.clone()) else {
            return;
        };
        {
            // Waits for the work in flight; work after it is sent on.
            let mut moving = held.moving.write().await;
            if *moving {
                return;
            }
            *moving = true;
        }
        let started = std::time::Instant::now();
        let next = self.placed_elsewhere(guild_id);
        // Asked before the actor stops; nothing can follow or unfollow it meanwhile, since
        // session ops pass the same gate as requests.
        let followers = self.local.followers(guild_id, self.timeout).await;
        if !self.local.retire(guild_id, self.timeout).await {
            warn!(%guild_id, "the guild's actor did not finish its work in time; handing off anyway");
        }
        // The sessions here among the followers: the actor's word, or, when it did not answer,
        // each session's own (a scan of every session here).
        let keys: HashSet<u64> = match &followers {
            Some(followers) => followers
                .iter()
                .filter(|(node, _)| node.is_none())
                .map(|(_, s)| s.key.0)
                .collect(),
            None => match self.registry.guild_started(guild_id) {
                Some(SessionOp::Resubscribe { sessions }) => {
                    sessions.iter().map(|s| s.key.0).collect()
                }
                _ => HashSet::new(),
            },
        };
        let adopted_by = match (next, followers) {
            (Some(next), Some(followers)) => {
                self.adopt(&next, guild_id, followers).await.then_some(next)
            }
            _ => None,
        };
        let owner = GuildOwner {
            guild_id,
            node: self.me.clone(),
            pair: self.pair,
            epoch: held.epoch,
        };
        match self.leases.release_guild(&owner).await {
            Ok(true) => {}
            Ok(false) => warn!(%guild_id, "the guild's lease had already moved on"),
            Err(e) => {
                warn!(%guild_id, error = %e, "cannot release the guild's lease; it frees with this node's id lease")
            }
        }
        self.held.remove(&guild_id);
        // Its next owner follows them now.
        self.remote_follows.remove(&guild_id);
        self.tell_every_member(&Control::GuildMoved {
            guild_id,
            to: adopted_by.clone(),
        });
        match &adopted_by {
            // The sessions here keep following the guild, now at its next owner.
            Some(next) if !keys.is_empty() => {
                self.followed.lock().insert(guild_id, (next.clone(), keys));
            }
            Some(_) => {}
            None => self.resync(vec![(guild_id, keys)]),
        }
        let seamless = if adopted_by.is_some() {
            "true"
        } else {
            "false"
        };
        metrics::counter!("enrichment_cluster_handoffs_total", "seamless" => seamless).increment(1);
        metrics::histogram!("enrichment_cluster_handoff_seconds")
            .record(started.elapsed().as_secs_f64());
        debug!(%guild_id, epoch = held.epoch, "handed the guild off");
    }

    /// Hands a guild's followers to its next owner; true once it took them within
    /// [`ADOPT_WAIT`].
    async fn adopt(
        &self,
        next: &str,
        guild_id: Snowflake,
        followers: Vec<(Option<String>, SessionRef)>,
    ) -> bool {
        let mut by_node: HashMap<String, Vec<SessionRef>> = HashMap::new();
        for (node, session) in followers {
            let node = node.unwrap_or_else(|| self.me.node_id.clone());
            by_node.entry(node).or_default().push(session);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.insert(id, tx);
        // A node that just joined may not be linked yet.
        let sent = self.link_opens_within(next, ADOPT_WAIT).await
            && self
                .transport
                .send_control(
                    next,
                    &Control::Adopt {
                        id,
                        guild_id,
                        followers: by_node.into_iter().collect(),
                    },
                )
                .is_ok();
        let taken = sent
            && matches!(
                tokio::time::timeout(ADOPT_WAIT, rx).await,
                Ok(Ok(Outcome::Done))
            );
        self.pending.remove(&id);
        if !taken {
            warn!(%guild_id, %next, "the next owner did not take the guild's followers; they resync");
        }
        taken
    }

    async fn forward(
        &self,
        node: &str,
        guild_id: Snowflake,
        work: Work,
    ) -> Result<Outcome, ApiError> {
        // Work queued for a node with no link could wait out the whole timeout (the node is
        // restarting, or dead and not yet known so): a link that does not open soon fails
        // the work at once, unsent, so the caller may safely try again.
        if !self.link_opens(node).await {
            metrics::counter!("enrichment_cluster_forward_unreachable_total").increment(1);
            return Err(ApiError::unavailable(
                "The guild's node is unreachable; try again",
            ));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.insert(id, tx);
        let sent = self
            .transport
            .send_control(node, &Control::Work { id, guild_id, work });
        if let Err(e) = sent {
            self.pending.remove(&id);
            debug!(%node, error = %e, "cannot forward guild work");
            return Err(ApiError::unavailable(
                "The guild's node is unreachable; try again",
            ));
        }
        metrics::counter!("enrichment_cluster_forwarded_total").increment(1);
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            _ => {
                self.pending.remove(&id);
                metrics::counter!("enrichment_cluster_forward_timeouts_total").increment(1);
                Err(ApiError::unavailable(
                    "The guild's node did not answer in time; the request may have been carried out",
                ))
            }
        }
    }

    /// Whether the link to `node` is open, or opens within [`LINK_WAIT`].
    async fn link_opens(&self, node: &str) -> bool {
        self.link_opens_within(node, LINK_WAIT).await
    }

    async fn link_opens_within(&self, node: &str, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.transport.link_up(node) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Handles one frame from another node.
    async fn on_frame(self: &Arc<Self>, from: NodeIdentity, kind: FrameKind, payload: Bytes) {
        match kind {
            FrameKind::Fanout => self.on_fanout(&from, payload),
            FrameKind::Control => match decode_control::<Control>(&payload) {
                Ok(control) => self.on_control(from, control),
                Err(e) => warn!(from = %from, error = %e, "unreadable control frame"),
            },
        }
    }

    fn on_fanout(self: &Arc<Self>, from: &NodeIdentity, payload: Bytes) {
        let batch = match FanoutBatch::decode(&payload) {
            Ok(batch) => batch,
            Err(e) => {
                warn!(from = %from, error = %e, "fanout frame dropped");
                return;
            }
        };
        let batch = match batch.guild_id {
            Some(guild_id) => match self.hold(guild_id, &from.node_id, batch, payload.len()) {
                Some(batch) => batch,
                None => return,
            },
            None => batch,
        };
        self.hand_on(&from.node_id, batch);
    }

    /// Holds a frame of a guild that comes from another node than the guild's owner as this
    /// node knows it: the guild is changing hands, and the frame waits for the previous
    /// owner's marker. Gives the frame back when it is to be handed on now. A holding that
    /// grows past its bounds is given up: the guild's sessions here resync.
    fn hold(
        self: &Arc<Self>,
        guild_id: Snowflake,
        from: &str,
        batch: FanoutBatch,
        wire_len: usize,
    ) -> Option<FanoutBatch> {
        let owner = match self.followed.lock().get(&guild_id) {
            Some((owner, _)) => owner.clone(),
            None => return Some(batch),
        };
        if owner == from {
            return Some(batch);
        }
        let held = self
            .holding
            .lock()
            .hold(guild_id, from, batch, wire_len, Instant::now());
        match held {
            Hold::Pass(batch) => return Some(batch),
            Hold::Held => {}
            Hold::GaveUp => {
                warn!(%guild_id, %from, "held too much of a guild's stream waiting for its handoff; its sessions resync");
                self.give_up_holding(guild_id);
            }
        }
        metrics::counter!("enrichment_cluster_held_frames_total").increment(1);
        None
    }

    /// Holdings past [`HOLD_FOR`] are given up even when no frame comes after them: a marker
    /// that never arrives must not leave the frames held, and the sessions waiting, for good.
    fn expire_holdings(self: &Arc<Self>) {
        let expired = self.holding.lock().expire(Instant::now());
        for guild_id in expired {
            warn!(%guild_id, "no end-of-epoch marker came for a guild's held frames; its sessions resync");
            self.give_up_holding(guild_id);
        }
    }

    /// The guild's sessions here resync instead of waiting for what was held.
    fn give_up_holding(self: &Arc<Self>, guild_id: Snowflake) {
        let lost = self.followed.lock().remove(&guild_id);
        self.resync(lost.map(|(_, keys)| (guild_id, keys)).into_iter().collect());
    }

    /// Hands each session of a fanout frame its bytes. Their connections are woken once the
    /// frames that came in together are all handed on ([`ClusterRouter::wake_sessions`]), so
    /// each writes them in one go.
    fn hand_on(&self, from: &str, batch: FanoutBatch) {
        let mut wakes = self.wakes.lock();
        for (key, v) in batch.sessions {
            let bytes = batch.variants[usize::from(v)].clone();
            let session = self.registry.by_key(key.0);
            let delivered = match (bytes, session) {
                (Some(bytes), Some(s)) => match s.deliver_unwoken(batch.guild_id, bytes) {
                    Some(wake) => {
                        // True once per session until it is woken.
                        if wake {
                            wakes.push(s);
                        }
                        true
                    }
                    None => false,
                },
                _ => false,
            };
            if !delivered {
                debug!(key = key.0, %from, "a session a fanout frame names is gone here");
                let _ = self
                    .transport
                    .send_control(from, &Control::SessionGone { key });
            }
        }
    }

    /// Wakes the sessions given frames since the last call.
    fn wake_sessions(&self) {
        let sessions = std::mem::take(&mut *self.wakes.lock());
        for s in sessions {
            s.wake();
        }
    }

    /// The previous owner's marker for a guild that moved to `next`, which already fans out
    /// to the sessions here: they follow it there, and what was held from it goes on, in
    /// order.
    fn moved_to(&self, from: &str, guild_id: Snowflake, next: &str) {
        {
            let mut followed = self.followed.lock();
            match followed.get_mut(&guild_id) {
                Some((owner, _)) if owner == from => {
                    if next == self.me.node_id {
                        // Its events reach the sessions here straight from the actor now.
                        followed.remove(&guild_id);
                    } else {
                        *owner = next.to_owned();
                    }
                }
                _ => return,
            }
        }
        let held = self.holding.lock().release(guild_id, next);
        for batch in held {
            self.hand_on(next, batch);
        }
    }

    fn on_control(self: &Arc<Self>, from: NodeIdentity, control: Control) {
        match control {
            Control::Work { id, guild_id, work } => {
                let mut follow = None;
                if let Work::Session(op) = &work {
                    self.directory.register(&from.node_id, op);
                    if let SessionOp::Move { from, .. } = op
                        && let Some(mut follows) = self.remote_follows.get_mut(&guild_id)
                    {
                        follows.remove(&from.key.0);
                    }
                    if op.follows() {
                        follow = Some(op.sessions().to_vec());
                    }
                }
                let me = self.clone();
                tokio::spawn(async move {
                    let outcome = me.run_here(guild_id, work).await;
                    // Remembered once they follow, not before: an actor this op starts takes
                    // the remembered sessions in without a word to them, and a session it
                    // took in so would not be told it follows the guild (a Move finds its
                    // target there already), nor kept from events meant for the session it
                    // replaces.
                    if let (Some(sessions), Outcome::Done) = (follow, &outcome) {
                        me.remember_remote(guild_id, &sessions);
                    }
                    if let Err(e) = me
                        .transport
                        .send_control(&from.node_id, &Control::Outcome { id, outcome })
                    {
                        debug!(node = %from, error = %e, "outcome not sent back");
                    }
                });
            }
            Control::Outcome { id, outcome } => {
                if let Some((_, tx)) = self.pending.remove(&id) {
                    let _ = tx.send(outcome);
                }
            }
            Control::Follow { key, guild_id } => match self.registry.by_key(key.0) {
                Some(s) => {
                    s.follow(guild_id);
                    let mut followed = self.followed.lock();
                    // Another owner than the one known here: the guild is being handed over,
                    // and the previous owner's marker moves the entry (a lost owner's entry
                    // is gone already).
                    followed
                        .entry(guild_id)
                        .or_insert_with(|| (from.node_id.clone(), HashSet::new()))
                        .1
                        .insert(key.0);
                }
                None => {
                    debug!(key = key.0, %guild_id, from = %from, "a session told to follow a guild is gone here");
                    let _ = self
                        .transport
                        .send_control(&from.node_id, &Control::SessionGone { key });
                }
            },
            Control::Unfollow { key, guild_id } => {
                if let Some(s) = self.registry.by_key(key.0) {
                    s.unfollow(guild_id);
                }
                if let Some((_, keys)) = self.followed.lock().get_mut(&guild_id) {
                    keys.remove(&key.0);
                }
            }
            Control::SessionGone { key } => {
                self.directory.gone(key);
                for mut follows in self.remote_follows.iter_mut() {
                    follows.remove(&key.0);
                }
            }
            Control::Drain => {
                warn!(from = %from, "drain requested through another node");
                self.drain_requested.notify_one();
            }
            Control::Leaving | Control::Resync => self.owner_lost(&from.node_id),
            Control::UserJoined {
                user_id,
                guild_id,
                private,
            } => {
                if let Some(events) = self.user_events.get() {
                    events.joined_guild(user_id, guild_id, private);
                }
            }
            Control::UserUpdated { user } => {
                if let Some(events) = self.user_events.get() {
                    events.user_updated(&user);
                }
            }
            Control::GuildMoved {
                guild_id,
                to: Some(next),
            } => {
                self.moved_to(&from.node_id, guild_id, &next);
                if next == self.me.node_id {
                    // Claim and start it now rather than at its next request: its followers
                    // are waiting for its events.
                    let me = self.clone();
                    tokio::spawn(async move {
                        let wake = Work::Session(SessionOp::Resubscribe {
                            sessions: Vec::new(),
                        });
                        if let Err(e) = me.route(guild_id, wake).await {
                            debug!(%guild_id, error = ?e, "a guild handed over did not start here yet");
                        }
                    });
                }
            }
            Control::Adopt {
                id,
                guild_id,
                followers,
            } => {
                let mut adopted = Vec::new();
                for (node, sessions) in followers {
                    // This node's own sessions are found here when the actor starts.
                    if node != self.me.node_id {
                        self.directory.register_sessions(&node, &sessions);
                        adopted.extend(sessions);
                    }
                }
                self.adopted.insert(guild_id, (Instant::now(), adopted));
                // A node that just joined may hear from a peer before its own view lists
                // that peer (and dials it): the answer waits for the link, within what the
                // sender waits.
                let me = self.clone();
                tokio::spawn(async move {
                    let node = from.node_id;
                    if !me.link_opens_within(&node, ADOPT_WAIT).await
                        || me
                            .transport
                            .send_control(
                                &node,
                                &Control::Outcome {
                                    id,
                                    outcome: Outcome::Done,
                                },
                            )
                            .is_err()
                    {
                        debug!(%node, "adoption not acknowledged");
                    }
                });
            }
            Control::TakeSession {
                id,
                session_id,
                user_id,
                seq,
                encoding,
            } => {
                let me = self.clone();
                let wanted = Wanted {
                    session_id,
                    user_id,
                    seq,
                    encoding,
                };
                tokio::spawn(async move { me.give_session(from.node_id, id, wanted).await });
            }
            Control::SessionOffer { id, offer } => {
                if let Some((_, tx)) = self.offers.remove(&id) {
                    let _ = tx.send(offer);
                }
            }
            Control::SessionHandover { id, handover } => {
                if let Some((_, tx)) = self.handovers.remove(&id) {
                    let _ = tx.send(handover);
                }
            }
            Control::HandedOver { key, guild_id } => {
                debug!(key = key.0, %guild_id, from = %from, "a guild's owner moved a leaving session on");
                if let Some(s) = self.registry.by_key(key.0) {
                    s.guild_handed_over(guild_id);
                }
            }
            Control::GuildMoved { guild_id, to: None } => {
                self.holding.lock().drop_guilds([&guild_id]);
                let moved = {
                    let mut followed = self.followed.lock();
                    match followed.get(&guild_id) {
                        Some((owner, _)) if *owner == from.node_id => {
                            followed.remove(&guild_id).map(|(_, keys)| (guild_id, keys))
                        }
                        _ => None,
                    }
                };
                self.resync(moved.into_iter().collect());
            }
        }
    }
}

impl ClusterRouter {
    /// `node_id` no longer runs the guilds it owned (it left, died, or restarted): their
    /// sessions here hear that each guild became unavailable, and follow it again wherever it
    /// goes next.
    fn owner_lost(self: &Arc<Self>, node_id: &str) {
        // Guilds handed to it whose handoff had not completed here lose their stream too.
        let handed = self.holding.lock().drop_from(node_id);
        let lost: Vec<(Snowflake, HashSet<u64>)> = {
            let mut followed = self.followed.lock();
            let guilds: Vec<Snowflake> = followed
                .iter()
                .filter(|(g, (owner, _))| owner == node_id || handed.contains(g))
                .map(|(g, _)| *g)
                .collect();
            // What they were waiting for will not come.
            self.holding.lock().drop_guilds(&guilds);
            guilds
                .into_iter()
                .filter_map(|g| followed.remove(&g).map(|(_, keys)| (g, keys)))
                .collect()
        };
        self.resync(lost);
    }

    /// Frames from `node_id` were lost (its queue to this node overflowed, or a connection
    /// broke with frames in flight). They may have been events of its guilds for sessions here,
    /// so those sessions resync as if the owner had been lost; and since frames the other way
    /// may be lost too, `node_id` is asked to do the same for its sessions.
    fn link_gap(self: &Arc<Self>, node_id: &str) {
        self.owner_lost(node_id);
        if let Err(e) = self.transport.send_control(node_id, &Control::Resync) {
            debug!(%node_id, error = %e, "resync request not sent");
        }
    }

    /// The sessions named (by key) lost these guilds' streams: each hears the guild is
    /// unavailable, and follows it again wherever it is now.
    fn resync(self: &Arc<Self>, lost: Vec<(Snowflake, HashSet<u64>)>) {
        for (guild_id, keys) in lost {
            metrics::counter!("enrichment_cluster_guild_resyncs_total").increment(1);
            for key in keys {
                let Some(session) = self.registry.by_key(key) else {
                    continue;
                };
                if session.follows(guild_id) {
                    self.stream_lost(&session, guild_id);
                }
            }
        }
    }

    /// A session lost a guild's stream: it hears the guild is unavailable, and follows it
    /// again wherever it is now.
    fn stream_lost(self: &Arc<Self>, session: &Session, guild_id: Snowflake) {
        session.unfollow(guild_id);
        let unavailable = UnavailableGuild {
            id: guild_id,
            unavailable: true,
        };
        if !send_event(session, "GUILD_DELETE", &unavailable) {
            return;
        }
        let me = self.clone();
        let reference = Recipient::session(session).clone();
        tokio::spawn(async move { me.resubscribe(guild_id, reference).await });
    }

    /// Subscribes a session to a guild whose owner was lost, until the guild's new owner takes
    /// it (after the old owner's lease ran out) or `resubscribe_for` has passed.
    async fn resubscribe(&self, guild_id: Snowflake, session: SessionRef) {
        let deadline = tokio::time::Instant::now() + self.resubscribe_for;
        loop {
            // A resync, not a subscribe: after a gap the owner may still count the session
            // among its recipients, and it must send the guild again all the same.
            let op = SessionOp::Resync {
                session: session.clone(),
            };
            match self.route(guild_id, Work::Session(op)).await {
                // The owner sends the GUILD_CREATE and the follow before its answer, on the
                // same link: a session that does not follow the guild now lost them in a gap
                // (its queue to this node overflowed again) and asks once more. Without it the
                // session would wait for a GUILD_CREATE that never comes.
                Ok(Outcome::Done)
                    if self
                        .registry
                        .by_key(session.key.0)
                        .is_none_or(|s| s.follows(guild_id)) =>
                {
                    return;
                }
                Ok(Outcome::Done) => {
                    debug!(%guild_id, "a session's fresh GUILD_CREATE was lost on the way; asking again");
                }
                Ok(Outcome::Failed(e)) if e.status != 503 => {
                    debug!(%guild_id, error = ?e, "a session cannot follow the guild again");
                    return;
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline
                || self.registry.by_key(session.key.0).is_none()
            {
                warn!(%guild_id, "a session could not follow the guild again in time");
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Watches the membership: an owner that is no longer a member lost its guilds.
async fn watch_owners(router: Arc<ClusterRouter>, mut views: watch::Receiver<ClusterView>) {
    let mut members: HashSet<String> = HashSet::new();
    loop {
        let now: HashSet<String> = views
            .borrow_and_update()
            .members
            .iter()
            .map(|m| m.node_id().to_owned())
            .collect();
        for gone in members.difference(&now) {
            router.node_lost(gone);
        }
        members = now;
        router.rebalance();
        if views.changed().await.is_err() {
            return;
        }
    }
}

/// Gives up holdings that waited past [`HOLD_FOR`], checked once a second.
async fn sweep_holdings(router: Arc<ClusterRouter>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        router.expire_holdings();
    }
}

/// Inbound events taken at once: what has queued up while the last ones were handled. Their
/// sessions are woken once, after all of them.
const INBOUND_BATCH: usize = 256;

/// Serves the transport's inbound side until it closes.
async fn serve(router: Arc<ClusterRouter>, mut inbound: mpsc::Receiver<Inbound>) {
    let mut events = Vec::with_capacity(INBOUND_BATCH);
    while inbound.recv_many(&mut events, INBOUND_BATCH).await > 0 {
        for event in events.drain(..) {
            serve_one(&router, event).await;
        }
        router.wake_sessions();
    }
}

async fn serve_one(router: &Arc<ClusterRouter>, event: Inbound) {
    match event {
        Inbound::Frame {
            from,
            kind,
            payload,
            ..
        } => router.on_frame(from, kind, payload).await,
        Inbound::Gap {
            from,
            expected,
            got,
        } => {
            metrics::counter!("enrichment_cluster_link_gaps_total").increment(1);
            warn!(
                from = %from,
                expected,
                got,
                "frames from a node were lost; resyncing the guilds between us"
            );
            router.link_gap(&from.node_id);
        }
        Inbound::PeerRestarted { peer, .. } => {
            router.node_lost(&peer.node_id);
        }
        Inbound::PeerUp { .. } | Inbound::PeerDown { .. } => {}
    }
}

fn outcome_reply(outcome: Outcome) -> Result<AnyReply, ApiError> {
    match outcome {
        Outcome::Reply(reply) => Ok(reply),
        Outcome::Failed(e) => Err(e),
        Outcome::Done | Outcome::OwnedBy(_) => {
            tracing::error!("a guild request was answered as a session op");
            Err(ApiError::internal())
        }
    }
}

#[async_trait]
impl GuildRouter for ClusterRouter {
    async fn send(&self, guild_id: Snowflake, envelope: Envelope) -> Result<AnyReply, ApiError> {
        outcome_reply(self.route(guild_id, Work::Request(envelope)).await?)
    }

    async fn session_op(&self, guild_id: Snowflake, op: SessionOp) -> Result<(), ApiError> {
        match self.route(guild_id, Work::Session(op)).await? {
            Outcome::Done => Ok(()),
            Outcome::Failed(e) => Err(e),
            Outcome::Reply(_) | Outcome::OwnedBy(_) => {
                tracing::error!("a session op was answered as a request");
                Err(ApiError::internal())
            }
        }
    }

    async fn guild_of_channel(&self, channel_id: Snowflake) -> Result<Snowflake, ApiError> {
        self.local.guild_of_channel(channel_id).await
    }

    async fn guild_of_invite(&self, code: &str) -> Result<Snowflake, ApiError> {
        self.local.guild_of_invite(code).await
    }

    fn local_actor_count(&self) -> usize {
        self.local.local_actor_count()
    }

    fn is_running(&self, guild_id: Snowflake) -> bool {
        self.local.is_running(guild_id)
    }

    fn reload_here(&self, guild_id: Snowflake) -> bool {
        self.local.reload(guild_id)
    }
}
