//! The guild actor's lifecycle and mailbox.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use enrichment_protocol::models::{Message, Nonce, User};
use enrichment_protocol::{ApiError, Snowflake, SnowflakeGenerator, Timestamp};
use enrichment_storage::blobs::BlobStore;
use enrichment_storage::{GuildWrite, StoreError, Stores};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::command::{GuildRequest, GuildResult};
use super::commit::CommitQueue;
use super::fanout::{self, Fanout, Recipients};
use super::state::GuildState;
use crate::events::{Audience, Dispatch, EventBus, GuildEvent};
use crate::gateway::SessionRegistry;
use crate::users::UserDirectory;
use enrichment_protocol::gateway::Presence;

/// Limits a guild enforces; Discord's values by default.
#[derive(Clone, Debug)]
pub struct GuildLimits {
    pub max_roles: usize,
    pub max_channels: usize,
    pub max_pins: usize,
    pub max_invites: usize,
    pub max_reactions_per_message: usize,
    pub max_guilds_per_user: usize,
    /// Message writes in flight per guild before the actor waits.
    pub commit_depth: usize,
    /// Remembered (channel, author, nonce) triples for `enforce_nonce`.
    pub nonce_memory: usize,
    /// An actor with no command and no subscribed session for this long stops; the next
    /// command starts it again.
    pub idle_timeout: Duration,
    /// Members per GUILD_MEMBERS_CHUNK dispatch.
    pub member_chunk_size: usize,
}

impl Default for GuildLimits {
    fn default() -> Self {
        GuildLimits {
            max_roles: 250,
            max_channels: 500,
            max_pins: 50,
            max_invites: 1000,
            max_reactions_per_message: 20,
            max_guilds_per_user: 100,
            commit_depth: 256,
            nonce_memory: 4096,
            idle_timeout: Duration::from_secs(300),
            member_chunk_size: 1000,
        }
    }
}

/// What every guild actor shares.
#[derive(Debug)]
pub struct GuildContext {
    pub stores: Stores,
    pub users: UserDirectory,
    pub bus: EventBus,
    /// The node's gateway sessions, for fanout to members who join and for restoring
    /// subscriptions when an actor restarts.
    pub sessions: Arc<SessionRegistry>,
    pub ids: Arc<SnowflakeGenerator>,
    pub limits: GuildLimits,
    /// Attachment bytes; the actor removes them once the messages or channels that own them
    /// are gone.
    pub blobs: Arc<dyn BlobStore>,
}

impl GuildContext {
    pub fn store_error(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(field) => ApiError::form(
                &[field],
                "ALREADY_EXISTS",
                format!("{field} is already taken."),
            ),
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::internal()
            }
        }
    }
}

pub enum GuildMsg {
    Request(GuildRequest, RpcReplyPort<GuildResult>),
    /// Periodic: stop when idle.
    Tick,
    /// Fail on purpose so the supervisor reloads the guild from storage: the operator's way to
    /// pick up changes made to storage behind the actor's back, and the same path a crash takes.
    Reload,
}

impl std::fmt::Debug for GuildMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuildMsg::Request(r, _) => f.debug_tuple("Request").field(r).finish(),
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
    /// The gateway sessions following this guild.
    pub(super) fanout: Fanout,
    /// Members visible as online, with their presence.
    pub(super) online: HashMap<Snowflake, Presence>,
}

impl GuildActorState {
    pub(super) fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    pub(super) async fn write(&self, writes: Vec<GuildWrite>) -> Result<(), ApiError> {
        let started = Instant::now();
        let r = self
            .ctx
            .stores
            .guilds
            .write_guild(self.state.id(), writes)
            .await
            .map_err(GuildContext::store_error);
        metrics::histogram!("enrichment_store_seconds", "op" => "write_guild")
            .record(started.elapsed().as_secs_f64());
        r
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
    /// completion hands them to [`fanout::deliver`].
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
        fanout::deliver(&recipients, &event);
        let gid = self.state.id();
        if let GuildEvent::GuildDelete(_) = &event {
            let gone = match &audience {
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
        self.ctx.bus.publish(Dispatch {
            guild_id: gid,
            audience,
            event,
        });
    }
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
        // Sessions that already followed this guild (the actor restarted, or stopped while
        // they were detached) are picked up again.
        let mut fanout = Fanout::default();
        let mut online = HashMap::new();
        for m in state.members.keys() {
            for s in ctx.sessions.sessions_of(*m) {
                if s.follows(state.id()) {
                    fanout.add(s);
                }
            }
            if ctx.sessions.is_online(*m) {
                online.insert(*m, ctx.sessions.presence(*m));
            }
        }
        myself.send_interval(tick_period(ctx.limits.idle_timeout), || GuildMsg::Tick);
        metrics::gauge!("enrichment_guild_actors").increment(1.0);
        Ok(GuildActorState {
            state,
            commits: CommitQueue::start(ctx.limits.commit_depth),
            ctx,
            last_activity: Instant::now(),
            last_message,
            last_sent: HashMap::new(),
            nonces: HashMap::new(),
            nonce_order: VecDeque::new(),
            deleted: false,
            fanout,
            online,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
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
            GuildMsg::Request(req, port) => {
                state.last_activity = Instant::now();
                let span = tracing::debug_span!("guild_command", guild_id = %state.state.id(), actor = %req.actor);
                let _enter = span.enter();
                state.dispatch(req, port).await;
                if state.deleted {
                    myself.stop(Some("guild deleted".into()));
                }
            }
            GuildMsg::Reload => return Err(Box::new(ReloadRequested)),
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
