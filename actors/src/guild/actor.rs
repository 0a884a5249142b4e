//! The guild actor's lifecycle and mailbox: what it shares with every guild actor of the node
//! ([`GuildContext`]), what it keeps ([`GuildActorState`]), and its start, ticks and stop.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use enrichment_protocol::gateway::Presence;
use enrichment_protocol::models::{Message, Nonce, User};
use enrichment_protocol::{ApiError, Snowflake, SnowflakeGenerator, Timestamp};
use enrichment_storage::blobs::BlobStore;
use enrichment_storage::{GuildOwner, GuildWrite, StoreError, StoreResult, Stores};
use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use serde_with::{As, DurationSeconds};

use super::commit::{Applied, Change, CommitQueue, Completion, apply};
use super::fanout::{self, Fanout, Follower, Recipient, RecipientDirectory, Recipients};
use super::requests::{AnyResult, Caller, Envelope, SessionOp, SessionRef};
use super::state::GuildState;
use crate::events::{Audience, Dispatch, EventBus, GuildEvent};
use crate::users::UserDirectory;

/// What the guild actors enforce and how long they wait; Discord's values by default.
///
/// This is the node's `[guilds]` config section as it is, under the same key names (durations
/// in whole seconds, `idle_timeout_secs`), so each default is written here and nowhere else.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuildLimits {
    /// An actor with no command and no subscribed session for this long stops; the next
    /// command starts it again.
    #[serde(rename = "idle_timeout_secs", with = "As::<DurationSeconds<u64>>")]
    pub idle_timeout: Duration,
    /// How long a caller (a REST route) waits for a guild actor's answer.
    #[serde(rename = "command_timeout_secs", with = "As::<DurationSeconds<u64>>")]
    pub command_timeout: Duration,
    /// Message writes in flight per guild before the actor waits.
    pub commit_depth: usize,
    pub max_pins: usize,
    pub max_guilds_per_user: usize,
    pub max_roles: usize,
    pub max_channels: usize,
    pub max_invites: usize,
    /// Webhooks per channel (Discord's 15).
    pub max_webhooks_per_channel: usize,
    /// Distinct emoji per message.
    pub max_reactions_per_message: usize,
    /// Custom emojis per guild, of each kind (static and animated; Discord's 50 without boosts).
    pub max_emojis: usize,
    /// The largest custom emoji image, in bytes (Discord's 256 KiB).
    pub max_emoji_bytes: usize,
    /// Remembered (channel, author, nonce) triples for `enforce_nonce`.
    pub nonce_memory: usize,
    /// Bounded buffer of the in-process [`EventBus`]; a subscriber further behind loses events.
    pub event_buffer: usize,
}

impl Default for GuildLimits {
    fn default() -> Self {
        GuildLimits {
            idle_timeout: Duration::from_secs(300),
            command_timeout: Duration::from_secs(10),
            commit_depth: 256,
            max_pins: 50,
            max_guilds_per_user: 100,
            max_roles: 250,
            max_channels: 500,
            max_invites: 1000,
            max_webhooks_per_channel: 15,
            max_reactions_per_message: 20,
            max_emojis: 50,
            max_emoji_bytes: 256 * 1024,
            nonce_memory: 4096,
            event_buffer: 4096,
        }
    }
}

/// Where a starting guild actor learns which of its members are online (the gateway side
/// knows: its own sessions, and what other nodes announced).
#[async_trait]
pub trait PresenceSource: Send + Sync + 'static {
    /// The presences of those of `users` who are visible as anything but offline.
    async fn online(&self, users: &[Snowflake]) -> Vec<Presence>;
}

/// What every guild actor shares.
pub struct GuildContext {
    pub stores: Stores,
    pub users: UserDirectory,
    pub bus: EventBus,
    /// Turns the sessions that ask to follow a guild into recipients of its events.
    pub recipients: Arc<dyn RecipientDirectory>,
    /// Who is online, asked once when an actor starts; later changes arrive as session ops.
    pub presences: Arc<dyn PresenceSource>,
    pub ids: Arc<SnowflakeGenerator>,
    pub limits: GuildLimits,
    /// Members per GUILD_MEMBERS_CHUNK: a gateway setting
    /// ([`crate::gateway::GatewayConfig::member_chunk_size`]) that the guild actors apply, since
    /// they build the chunks.
    pub member_chunk_size: usize,
    /// Attachment bytes; the actor removes them once the messages or channels that own them
    /// are gone.
    pub blobs: Arc<dyn BlobStore>,
}

impl std::fmt::Debug for GuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuildContext")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl GuildContext {
    /// This context with the guild's writes fenced by `owner` (see
    /// [`crate::router::GuildOwnership`]).
    pub fn fenced(&self, owner: GuildOwner) -> GuildContext {
        GuildContext {
            stores: self.stores.fenced(owner),
            users: self.users.clone(),
            bus: self.bus.clone(),
            recipients: self.recipients.clone(),
            presences: self.presences.clone(),
            ids: self.ids.clone(),
            limits: self.limits.clone(),
            member_chunk_size: self.member_chunk_size,
            blobs: self.blobs.clone(),
        }
    }

    pub fn store_error(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(field) => ApiError::form(
                &[field],
                "ALREADY_EXISTS",
                format!("{field} is already taken."),
            ),
            // Another node owns the guild now: nothing was written, and the caller's retry
            // reaches the new owner.
            StoreError::Fenced(why) => {
                tracing::warn!(reason = %why, "a write of a deposed guild owner was refused");
                metrics::counter!("enrichment_guild_fenced_writes_total").increment(1);
                ApiError::unavailable("The guild is changing nodes; try again")
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::internal()
            }
        }
    }
}

pub enum GuildMsg {
    /// A request of a user (a REST route, here or on another node).
    Request(Envelope, RpcReplyPort<AnyResult>),
    /// A request of the gateway side for one of its sessions.
    /// A request of the gateway side for its sessions; the supervisor sends one unanswered
    /// (`None`) when the actor starts.
    Session(SessionOp, Option<RpcReplyPort<Result<(), ApiError>>>),
    /// The sessions that follow the guild now, each with the node it is on (`None`: this one).
    Followers(RpcReplyPort<Vec<(Option<String>, SessionRef)>>),
    /// Periodic: stop when idle.
    Tick,
    /// Fail on purpose so the supervisor reloads the guild from storage: the operator's way to
    /// pick up changes made to storage behind the actor's back, and the same path a crash takes.
    Reload,
}

impl std::fmt::Debug for GuildMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuildMsg::Request(r, _) => f.debug_tuple("Request").field(&r.request.name()).finish(),
            GuildMsg::Session(op, _) => f.debug_tuple("Session").field(&op.name()).finish(),
            GuildMsg::Followers(_) => f.write_str("Followers"),
            GuildMsg::Tick => f.write_str("Tick"),
            GuildMsg::Reload => f.write_str("Reload"),
        }
    }
}

#[derive(Debug)]
pub struct GuildActor;

/// The actor's state: the guild plus bookkeeping that need not be durable.
#[derive(Debug)]
pub struct GuildActorState {
    pub(super) state: GuildState,
    pub(super) ctx: Arc<GuildContext>,
    pub(super) commits: CommitQueue,
    pub(super) last_activity: Instant,
    /// Newest message id per channel (`last_message_id`), rebuilt from storage on start.
    pub(super) last_message: HashMap<Snowflake, Snowflake>,
    /// When a user last sent in a channel, for slowmode.
    pub(super) last_sent: HashMap<(Snowflake, Snowflake), Instant>,
    /// Recently created messages by (channel, author, nonce), bounded by `nonce_memory`.
    pub(super) nonces: HashMap<(Snowflake, Snowflake, Nonce), Arc<Message>>,
    pub(super) nonce_order: VecDeque<(Snowflake, Snowflake, Nonce)>,
    /// Set when the guild was deleted: the actor stops after answering.
    pub(super) deleted: bool,
    /// The sessions following this guild.
    pub(super) fanout: Fanout,
    /// Members visible as online, with their presence.
    pub(super) online: HashMap<Snowflake, Presence>,
    /// Who sent the request being run, and why: the author of the audit-log entries it
    /// writes. Set for each request before its handler runs.
    pub(super) caller: Caller,
}

impl GuildActorState {
    pub(super) fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    /// Writes a change durably, in order after every write queued before it: the awaited form
    /// of the one write path (see [`super::commit`]).
    pub(super) async fn commit(&self, change: Change) -> Result<Applied, ApiError> {
        self.try_commit(change)
            .await
            .map_err(GuildContext::store_error)
    }

    /// [`GuildActorState::commit`], keeping the store's own error (a caller that retries on
    /// a conflict needs to tell it apart).
    pub(super) async fn try_commit(&self, change: Change) -> StoreResult<Applied> {
        self.commits
            .submit_and_wait(self.ctx.stores.clone(), change)
            .await
    }

    /// Writes a batch of guild metadata ([`GuildActorState::commit`]).
    pub(super) async fn write(&self, writes: Vec<GuildWrite>) -> Result<(), ApiError> {
        self.commit(Change::Guild {
            guild_id: self.state.id(),
            writes,
        })
        .await
        .map(|_| ())
    }

    /// The pipelined form of the one write path: queues the change and returns at once;
    /// `then` runs with the outcome once the change is durable and every earlier completion
    /// has run (so replies and events leave in submission order).
    pub(super) async fn commit_then(
        &self,
        change: Change,
        then: impl FnOnce(StoreResult<Applied>) + Send + 'static,
    ) {
        let stores = self.ctx.stores.clone();
        self.commits
            .submit(
                async move {
                    let outcome = apply(&stores, change).await;
                    Box::new(move || then(outcome)) as Completion
                }
                .boxed(),
            )
            .await;
    }

    /// Answers in submission order without writing anything (a repeated nonce's original).
    pub(super) async fn after_queued(&self, then: impl FnOnce() + Send + 'static) {
        self.commits.after_queued(then).await;
    }

    /// A user for display, or Discord's "Deleted User" when the account is gone.
    pub(super) async fn user_or_deleted(&self, id: Snowflake) -> Result<User, ApiError> {
        self.ctx
            .users
            .get_or_deleted(id)
            .await
            .map_err(GuildContext::store_error)
    }

    /// Recipients for an event about to be committed through the ordered queue; the
    /// completion hands them to [`publish`].
    pub(super) fn recipients(&mut self, audience: &Audience) -> Recipients {
        let now = self.now();
        self.fanout.recipients(&self.state, audience, now)
    }

    /// Publishes an event whose change is already durable and applied to the state.
    pub(super) fn emit(&mut self, audience: Audience, event: GuildEvent) {
        if changes_visibility(&event) {
            self.fanout.invalidate();
        }
        let recipients = self.recipients(&audience);
        let gid = self.state.id();
        let removed = matches!(event, GuildEvent::GuildDelete(_));
        publish(
            &self.ctx.bus,
            &recipients,
            Dispatch {
                guild_id: gid,
                audience: audience.clone(),
                event,
            },
        );
        if removed {
            let gone: Vec<Arc<dyn Recipient>> = match &audience {
                Audience::Users(ids) => ids
                    .iter()
                    .flat_map(|u| self.fanout.remove_user(*u))
                    .collect(),
                _ => self.fanout.clear(),
            };
            for s in gone {
                s.unfollow(gid);
            }
        }
    }
}

/// The one way a committed change reaches its audience: the sessions that follow the guild
/// (fanout), then the bus (consumers that are not sessions).
pub(super) fn publish(bus: &EventBus, recipients: &[Follower], dispatch: Dispatch) {
    fanout::deliver(recipients, dispatch.guild_id, &dispatch.event);
    bus.publish(dispatch);
}

/// Events after which who-may-see-what must be recomputed.
fn changes_visibility(event: &GuildEvent) -> bool {
    matches!(
        event,
        GuildEvent::ChannelCreate(_)
            | GuildEvent::ChannelUpdate(_)
            | GuildEvent::ChannelDelete(_)
            | GuildEvent::RoleCreate(_)
            | GuildEvent::RoleUpdate(_)
            | GuildEvent::RoleDelete(_)
            | GuildEvent::MemberAdd(_)
            | GuildEvent::MemberUpdate(_)
            | GuildEvent::MemberRemove(_)
            | GuildEvent::GuildUpdate(_)
    )
}

impl Actor for GuildActor {
    type Msg = GuildMsg;
    type State = GuildActorState;
    type Arguments = (Snowflake, Arc<GuildContext>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (guild_id, ctx): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let snapshot = ctx.stores.guilds.load_guild(guild_id).await?;
        let state = snapshot
            .and_then(GuildState::from_snapshot)
            .ok_or_else(|| Box::new(UnknownGuild) as ActorProcessingErr)?;
        // One store call per kind of data, however large the guild: a handoff waits on this.
        let text: Vec<Snowflake> = state
            .channels
            .values()
            .filter(|c| c.kind.is_text_based())
            .map(|c| c.id)
            .collect();
        let newest = ctx.stores.messages.last_message_ids(&text).await?;
        let last_message: HashMap<Snowflake, Snowflake> = text
            .into_iter()
            .zip(newest)
            .filter_map(|(c, m)| Some((c, m?)))
            .collect();
        // Warm the user cache with members so hydration on the hot path rarely waits.
        let members: Vec<Snowflake> = state.members.keys().copied().collect();
        ctx.users.get_many(&members).await?;
        // Sessions that already followed this guild (the actor restarted) are pushed in by the
        // gateway side before the first request; presence is asked for once, then kept up to
        // date by session ops.
        let online: HashMap<Snowflake, Presence> = ctx
            .presences
            .online(&members)
            .await
            .into_iter()
            .filter(|p| state.members.contains_key(&p.user.id))
            .map(|p| (p.user.id, p))
            .collect();
        myself.send_interval(tick_period(ctx.limits.idle_timeout), || GuildMsg::Tick);
        metrics::gauge!("enrichment_guild_actors").increment(1.0);
        let mut actor = GuildActorState {
            state,
            commits: CommitQueue::start(ctx.limits.commit_depth),
            ctx,
            last_activity: Instant::now(),
            last_message,
            last_sent: HashMap::new(),
            nonces: HashMap::new(),
            nonce_order: VecDeque::new(),
            deleted: false,
            fanout: Fanout::default(),
            online,
            caller: Caller::new(Snowflake(0)),
        };
        if actor.state.is_private() {
            actor.refresh_blocks().await?;
        }
        Ok(actor)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Message writes are pipelined: the mailbox can be empty while some are in flight,
        // and their completions (the reply, the event) would otherwise run after the actor
        // stopped. Whoever waits for the stop (a handoff, before it sends its end-of-epoch
        // marker) must know the guild's last events are out.
        state.commits.flush().await;
        metrics::gauge!("enrichment_guild_actors").decrement(1.0);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GuildMsg::Request(envelope, port) => {
                state.last_activity = Instant::now();
                let span = tracing::debug_span!(
                    "guild_request",
                    guild_id = %state.state.id(),
                    actor = %envelope.caller.actor,
                    request = envelope.request.name(),
                );
                let _enter = span.enter();
                state.dispatch(envelope, port).await;
                if state.deleted {
                    myself.stop(Some("guild deleted".into()));
                }
            }
            GuildMsg::Session(op, port) => {
                state.last_activity = Instant::now();
                let result = state.session_op(op).await;
                if let Some(port) = port {
                    let _ = port.send(result);
                }
            }
            GuildMsg::Reload => return Err(Box::new(ReloadRequested)),
            GuildMsg::Followers(port) => {
                state.fanout.prune();
                let _ = port.send(state.fanout.followers());
            }
            GuildMsg::Tick => {
                state.fanout.prune();
                if state.fanout.is_empty()
                    && state.last_activity.elapsed() >= state.ctx.limits.idle_timeout
                {
                    tracing::debug!(guild_id = %state.state.id(), "guild actor idle, stopping");
                    myself.stop(Some("idle".into()));
                }
            }
        }
        Ok(())
    }
}

fn tick_period(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30))
}

/// The actor was asked to reload from storage.
#[derive(Debug, thiserror::Error)]
#[error("reload requested")]
pub struct ReloadRequested;

/// `pre_start` failed because the guild does not exist.
#[derive(Debug, thiserror::Error)]
#[error("unknown guild")]
pub struct UnknownGuild;
