//! Routing requests to guild actors.
//!
//! [`GuildRouter`] is the one way the REST layer and the gateway reach a guild; it hides where
//! the guild's actor lives. What it carries is the guild protocol: an [`Envelope`] (a user's
//! request, answered by an [`AnyReply`]) or a [`SessionOp`], both serializable, so a router that
//! forwards them to another node fits the same trait. Callers use the typed `request` (on
//! `dyn GuildRouter`), which returns the request's own reply type.
//!
//! [`LocalGuildRouter`] runs every guild on this node: a supervisor actor starts guild actors
//! lazily, restarts one from storage if it fails, and forgets one that stopped (idle or
//! deleted) so the next request starts it afresh. Right after an actor starts, before any
//! request can reach it, the supervisor asks the [`GuildStartHook`] (the gateway side) for the
//! sessions that already follow the guild and hands them to the new actor. The cluster layer
//! provides a ring-aware implementation of the same trait.
//!
//! In a cluster a guild's writes are fenced by its ownership record (`enrichment_storage::fence`):
//! once a [`GuildOwnership`] is set, the supervisor asks it for the record before starting an
//! actor, starts the actor on stores fenced by that record, and starts none when this node does
//! not own the guild. Without one (a single node) actors write unfenced.
//!
//! ractor mailboxes are unbounded. They stay bounded in practice because every request is a
//! call: its sender waits for the answer (at most `command_timeout`), so a guild's mailbox
//! never holds more requests than there are calls in flight, which the HTTP server and the
//! gateway's connections cap.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use enrichment_protocol::{ApiError, ErrorCode, Snowflake};
use enrichment_storage::GuildOwner;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::guild::actor::UnknownGuild;
use crate::guild::requests::{
    AnyReply, AnyResult, Caller, Envelope, Request, SessionOp, SessionRef,
};
use crate::guild::{GuildActor, GuildContext, GuildMsg};

#[async_trait]
pub trait GuildRouter: Send + Sync + 'static {
    /// Sends a request to the guild's actor and waits for its answer.
    async fn send(&self, guild_id: Snowflake, envelope: Envelope) -> AnyResult;
    /// Hands a session op to the guild's actor and waits until it was carried out.
    async fn session_op(&self, guild_id: Snowflake, op: SessionOp) -> Result<(), ApiError>;
    /// The guild a channel belongs to (404 Unknown Channel if none).
    async fn guild_of_channel(&self, channel_id: Snowflake) -> Result<Snowflake, ApiError>;
    /// The guild an invite code belongs to (404 Unknown Invite if none).
    async fn guild_of_invite(&self, code: &str) -> Result<Snowflake, ApiError>;
    /// Guild actors running on this node.
    fn local_actor_count(&self) -> usize;
    /// Whether the guild's actor runs on this node now (without starting it).
    fn is_running(&self, guild_id: Snowflake) -> bool;
    /// Makes the guild's actor on this node reload the guild from storage, keeping its
    /// followers ([`LocalGuildRouter::reload`]). False when it does not run here.
    fn reload_here(&self, guild_id: Snowflake) -> bool;
}

impl dyn GuildRouter {
    /// Sends a typed request and returns its typed answer.
    pub async fn request<R: Request>(
        &self,
        guild_id: Snowflake,
        caller: Caller,
        request: R,
    ) -> Result<R::Reply, ApiError> {
        let envelope = Envelope {
            caller,
            request: request.into_any(),
        };
        let reply = self.send(guild_id, envelope).await?;
        R::reply_from_any(reply).ok_or_else(|| {
            tracing::error!(
                request = R::NAME,
                "guild answered with the reply of another request"
            );
            ApiError::internal()
        })
    }
}

/// Told when a guild actor starts on this node, before any request reaches it: the gateway
/// side answers with the sessions that already followed the guild (the actor restarted after a
/// failure, or was reloaded), which the new actor takes first.
pub trait GuildStartHook: Send + Sync + 'static {
    fn guild_started(&self, guild_id: Snowflake) -> Option<SessionOp>;
}

type StartHook = Arc<OnceLock<Arc<dyn GuildStartHook>>>;

/// Which guilds this node owns, and under which ownership record (the cluster layer).
#[async_trait]
pub trait GuildOwnership: Send + Sync + 'static {
    /// The record the guild's actor is to write under: this node's live ownership of the
    /// guild, as the store has it now; `None` when this node does not own it.
    async fn owner(&self, guild_id: Snowflake) -> Option<GuildOwner>;
}

type Ownership = Arc<OnceLock<Arc<dyn GuildOwnership>>>;

/// Messages to the supervisor.
pub enum SupervisorMsg {
    /// The running actor for a guild, started if needed.
    Get(
        Snowflake,
        RpcReplyPort<Result<ActorRef<GuildMsg>, ApiError>>,
    ),
}

impl std::fmt::Debug for SupervisorMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SupervisorMsg::Get(id, _) => write!(f, "Get({id})"),
        }
    }
}

/// Starts, supervises and forgets guild actors.
#[derive(Debug)]
pub struct GuildSupervisor;

pub struct SupervisorState {
    ctx: Arc<GuildContext>,
    actors: Arc<DashMap<Snowflake, ActorRef<GuildMsg>>>,
    hook: StartHook,
    ownership: Ownership,
}

impl std::fmt::Debug for SupervisorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorState")
            .field("actors", &self.actors.len())
            .finish_non_exhaustive()
    }
}

impl SupervisorState {
    async fn start(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        guild_id: Snowflake,
    ) -> Result<ActorRef<GuildMsg>, ApiError> {
        let ctx = match self.ownership.get() {
            None => self.ctx.clone(),
            Some(ownership) => match ownership.owner(guild_id).await {
                Some(owner) => Arc::new(self.ctx.fenced(owner)),
                None => {
                    return Err(ApiError::unavailable(
                        "The guild is changing nodes; try again",
                    ));
                }
            },
        };
        match Actor::spawn_linked(None, GuildActor, (guild_id, ctx), myself.get_cell()).await {
            Ok((actor, _)) => {
                // Before anyone can send it a request: only the supervisor knows the new actor
                // until `Get` answers.
                if let Some(op) = self.hook.get().and_then(|h| h.guild_started(guild_id)) {
                    let _ = actor.send_message(GuildMsg::Session(op, None));
                }
                self.actors.insert(guild_id, actor.clone());
                Ok(actor)
            }
            Err(ractor::SpawnErr::StartupFailed(e))
                if e.downcast_ref::<UnknownGuild>().is_some() =>
            {
                Err(ApiError::unknown(ErrorCode::UnknownGuild))
            }
            Err(e) => {
                tracing::error!(%guild_id, error = %e, "guild actor failed to start");
                Err(ApiError::unavailable("Guild temporarily unavailable"))
            }
        }
    }

    /// The guild an actor serves, if it is still in the map.
    fn guild_of(&self, cell: &ractor::ActorCell) -> Option<Snowflake> {
        self.actors
            .iter()
            .find(|e| e.value().get_id() == cell.get_id())
            .map(|e| *e.key())
    }
}

impl Actor for GuildSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = (
        Arc<GuildContext>,
        Arc<DashMap<Snowflake, ActorRef<GuildMsg>>>,
        StartHook,
        Ownership,
    );

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (ctx, actors, hook, ownership): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SupervisorState {
            ctx,
            actors,
            hook,
            ownership,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Get(guild_id, port) => {
                let existing = state.actors.get(&guild_id).map(|a| a.clone());
                let result = match existing {
                    Some(a) if a.get_status() == ractor::ActorStatus::Running => Ok(a),
                    _ => state.start(&myself, guild_id).await,
                };
                let _ = port.send(result);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(g) = state.guild_of(&cell) {
                    tracing::debug!(guild_id = %g, ?reason, "guild actor stopped");
                    state.actors.remove(&g);
                }
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                if let Some(g) = state.guild_of(&cell) {
                    tracing::error!(guild_id = %g, %error, "guild actor failed; restarting from storage");
                    metrics::counter!("enrichment_guild_actor_restarts_total").increment(1);
                    state.actors.remove(&g);
                    // Restart at once so the guild is live again before the next command; a
                    // failure here is logged and the next command tries again.
                    let _ = state.start(&myself, g).await;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Runs every guild on this node.
pub struct LocalGuildRouter {
    ctx: Arc<GuildContext>,
    supervisor: ActorRef<SupervisorMsg>,
    actors: Arc<DashMap<Snowflake, ActorRef<GuildMsg>>>,
    channels: DashMap<Snowflake, Snowflake>,
    timeout: Duration,
    hook: StartHook,
    ownership: Ownership,
}

impl std::fmt::Debug for LocalGuildRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalGuildRouter")
            .field("actors", &self.actors.len())
            .finish()
    }
}

impl LocalGuildRouter {
    /// Starts the supervisor on the current tokio runtime.
    pub async fn start(
        ctx: Arc<GuildContext>,
        timeout: Duration,
    ) -> Result<Arc<Self>, ractor::SpawnErr> {
        let actors = Arc::new(DashMap::new());
        let hook = StartHook::default();
        let ownership = Ownership::default();
        let (supervisor, _) = Actor::spawn(
            None,
            GuildSupervisor,
            (ctx.clone(), actors.clone(), hook.clone(), ownership.clone()),
        )
        .await?;
        Ok(Arc::new(LocalGuildRouter {
            ctx,
            supervisor,
            actors,
            channels: DashMap::new(),
            timeout,
            hook,
            ownership,
        }))
    }

    /// Sets who hears of guild actors starting (once; the gateway side, which is built after
    /// the router it sends through). False when one was set already.
    pub fn set_start_hook(&self, hook: Arc<dyn GuildStartHook>) -> bool {
        self.hook.set(hook).is_ok()
    }

    /// Fences every guild actor started from now on by the ownership `ownership` gives it, and
    /// starts none for a guild this node does not own (once; the cluster layer, which is built
    /// after this router). False when one was set already.
    pub fn set_ownership(&self, ownership: Arc<dyn GuildOwnership>) -> bool {
        self.ownership.set(ownership).is_ok()
    }

    pub fn context(&self) -> &Arc<GuildContext> {
        &self.ctx
    }

    async fn actor_for(&self, guild_id: Snowflake) -> Result<ActorRef<GuildMsg>, ApiError> {
        if let Some(a) = self.actors.get(&guild_id) {
            return Ok(a.clone());
        }
        match ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Get,
            self.timeout.as_millis() as u64,
            guild_id
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(%guild_id, error = %e, "guild supervisor did not answer");
                Err(ApiError::unavailable("Guild temporarily unavailable"))
            }
        }
    }

    /// Makes a running guild actor fail so its supervisor restarts it from storage; sessions
    /// that followed the guild keep receiving its events. False when the guild is not running.
    pub fn reload(&self, guild_id: Snowflake) -> bool {
        match self.actors.get(&guild_id) {
            Some(a) => a.send_message(GuildMsg::Reload).is_ok(),
            None => false,
        }
    }

    /// The sessions that follow a running guild, each with its node when that is another;
    /// `None` when the guild does not run here or its actor does not answer within `timeout`.
    pub async fn followers(
        &self,
        guild_id: Snowflake,
        timeout: Duration,
    ) -> Option<Vec<(Option<String>, SessionRef)>> {
        let actor = self.actors.get(&guild_id).map(|a| a.clone())?;
        ractor::call_t!(actor, GuildMsg::Followers, timeout.as_millis() as u64).ok()
    }

    /// Lets a guild's actor finish everything it was sent, then stops it (its guild moves to
    /// another node). False when it did not stop within `timeout`.
    pub async fn retire(&self, guild_id: Snowflake, timeout: Duration) -> bool {
        let Some(actor) = self.actors.get(&guild_id).map(|a| a.clone()) else {
            return true;
        };
        let stopped = actor.drain_and_wait(Some(timeout)).await.is_ok();
        self.actors
            .remove_if(&guild_id, |_, a| a.get_id() == actor.get_id());
        stopped
    }

    /// Stops every guild actor and the supervisor (node shutdown).
    pub fn stop(&self) {
        self.supervisor.stop(Some("shutdown".into()));
    }
}

impl LocalGuildRouter {
    /// Calls the guild's actor with the message `make` builds. A cached actor may have stopped
    /// (idle, or failed) since; one retry reaches its successor. The message was not processed
    /// in that case, so retrying is safe.
    async fn call<T: Send + std::fmt::Debug + 'static>(
        &self,
        guild_id: Snowflake,
        make: impl Fn(RpcReplyPort<Result<T, ApiError>>) -> GuildMsg + Send + Sync + 'static,
    ) -> Result<T, ApiError> {
        let make = Arc::new(make);
        for attempt in 0..2 {
            let actor = self.actor_for(guild_id).await?;
            let make = make.clone();
            match actor.call(move |port| make(port), Some(self.timeout)).await {
                Ok(CallResult::Success(result)) => return result,
                Ok(CallResult::Timeout) => {
                    tracing::warn!(%guild_id, "guild request timed out");
                    return Err(ApiError::unavailable("Guild did not answer in time"));
                }
                Ok(CallResult::SenderError) | Err(_) => {
                    self.actors
                        .remove_if(&guild_id, |_, a| a.get_id() == actor.get_id());
                    tracing::debug!(%guild_id, attempt, "guild actor gone, retrying");
                }
            }
        }
        Err(ApiError::unavailable("Guild temporarily unavailable"))
    }
}

#[async_trait]
impl GuildRouter for LocalGuildRouter {
    async fn send(&self, guild_id: Snowflake, envelope: Envelope) -> Result<AnyReply, ApiError> {
        let started = Instant::now();
        let result = self
            .call(guild_id, move |port| {
                GuildMsg::Request(envelope.clone(), port)
            })
            .await;
        metrics::histogram!("enrichment_guild_command_seconds")
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn session_op(&self, guild_id: Snowflake, op: SessionOp) -> Result<(), ApiError> {
        self.call(guild_id, move |port| {
            GuildMsg::Session(op.clone(), Some(port))
        })
        .await
    }

    async fn guild_of_channel(&self, channel_id: Snowflake) -> Result<Snowflake, ApiError> {
        if let Some(g) = self.channels.get(&channel_id) {
            return Ok(*g);
        }
        let g = self
            .ctx
            .stores
            .guilds
            .channel_guild(channel_id)
            .await
            .map_err(GuildContext::store_error)?
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownChannel))?;
        // A channel never moves between guilds, so a found mapping stays true; a deleted
        // channel is answered by its guild's actor, which no longer knows it.
        self.channels.insert(channel_id, g);
        Ok(g)
    }

    async fn guild_of_invite(&self, code: &str) -> Result<Snowflake, ApiError> {
        self.ctx
            .stores
            .guilds
            .get_invite(code)
            .await
            .map_err(GuildContext::store_error)?
            .map(|i| i.guild_id)
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownInvite))
    }

    fn local_actor_count(&self) -> usize {
        self.actors.len()
    }

    fn is_running(&self, guild_id: Snowflake) -> bool {
        self.actors.contains_key(&guild_id)
    }

    fn reload_here(&self, guild_id: Snowflake) -> bool {
        self.reload(guild_id)
    }
}
