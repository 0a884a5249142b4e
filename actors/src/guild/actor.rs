//! The guild actor's lifecycle and mailbox.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use enrichment_protocol::models::{Message, Nonce, User};
use enrichment_protocol::{ApiError, Snowflake, SnowflakeGenerator, Timestamp};
use enrichment_storage::{GuildWrite, StoreError, Stores};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::command::{GuildRequest, GuildResult};
use super::commit::CommitQueue;
use super::state::GuildState;
use crate::events::{Audience, Dispatch, EventBus, GuildEvent};
use crate::users::UserDirectory;

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
    /// An actor with no command for this long stops; the next command starts it again.
    pub idle_timeout: Duration,
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
        }
    }
}

/// What every guild actor shares.
#[derive(Debug)]
pub struct GuildContext {
    pub stores: Stores,
    pub users: UserDirectory,
    pub bus: EventBus,
    pub ids: Arc<SnowflakeGenerator>,
    pub limits: GuildLimits,
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
}

impl std::fmt::Debug for GuildMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuildMsg::Request(r, _) => f.debug_tuple("Request").field(r).finish(),
            GuildMsg::Tick => f.write_str("Tick"),
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

    pub(super) fn emit(&self, audience: Audience, event: GuildEvent) {
        self.ctx.bus.publish(Dispatch {
            guild_id: self.state.id(),
            audience,
            event,
        });
    }
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
        let mut last_message = HashMap::new();
        for c in state.channels.values().filter(|c| c.kind.is_text_based()) {
            let newest = ctx
                .stores
                .messages
                .list_messages(c.id, enrichment_protocol::rest::HistoryAnchor::Latest, 1)
                .await?;
            if let Some(m) = newest.first() {
                last_message.insert(c.id, m.id);
            }
        }
        // Warm the user cache with members so hydration on the hot path rarely waits.
        for m in state.members.keys() {
            ctx.users.get(*m).await?;
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
            GuildMsg::Tick => {
                if state.last_activity.elapsed() >= state.ctx.limits.idle_timeout {
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

/// `pre_start` failed because the guild does not exist.
#[derive(Debug, thiserror::Error)]
#[error("unknown guild")]
pub struct UnknownGuild;
