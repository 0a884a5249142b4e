//! One WebSocket's gateway state machine, and the node-wide [`GatewayService`] it calls.
//!
//! The socket owner (the node's listener) calls [`Connection::receive`] with each inbound
//! message, [`Connection::tick`] when [`Connection::next_tick`] comes, and
//! [`Connection::drain`] whenever the session signals new dispatches; it writes what those
//! return and closes the socket with the [`Close`] they fail with. Everything the protocol
//! decides (which opcode is allowed when, heartbeats and zombies, the 120-per-minute limit,
//! IDENTIFY and RESUME checks, every close code) is decided here.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use enrichment_protocol::gateway::{
    self, CloseCode, ConnectParams, Encoding, Hello, Identify, Presence, PresenceUpdate, Ready,
    ReadyApplication, RequestGuildMembers, Resume, UnavailableGuild, app_flags, intents, op,
};
use enrichment_protocol::models::User;
use enrichment_protocol::{ApiError, Snowflake};
use enrichment_storage::Stores;
use futures::StreamExt;

use super::GatewayConfig;
use super::registry::SessionRegistry;
use super::session::{Detach, ResumeError, Session, SessionInfo};
use super::shared::{Elsewhere, SessionTakeover, SharedGateway, StartLimit, TakeoverRequest};
use crate::accounts::AccountService;
use crate::guild::requests::GetChannel;
use crate::guild::{Caller, SessionOp};
use crate::router::GuildRouter;

/// How and why to close a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

impl From<CloseCode> for Close {
    fn from(c: CloseCode) -> Self {
        Close {
            code: c.code(),
            reason: c.reason(),
        }
    }
}

impl Close {
    /// The outbox passed its cap.
    pub const SLOW_CONSUMER: Close = Close {
        code: 4000,
        reason: "Outbound queue full; resume to continue.",
    };
    const SUPERSEDED: Close = Close {
        code: 4000,
        reason: "Session resumed on another connection.",
    };
    const ENDED: Close = Close {
        code: 4009,
        reason: "Session ended.",
    };
    /// The session lives on another node: reconnect to `resume_gateway_url` and resume there.
    pub const ELSEWHERE: Close = Close {
        code: 4000,
        reason: "Session is held by another node; resume at resume_gateway_url.",
    };
    /// The node is draining: reconnect (op 7 was sent first).
    pub const RECONNECT: Close = Close {
        code: 4000,
        reason: "Node is restarting; reconnect and resume.",
    };
}

/// Inbound message kinds the state machine distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    Text(&'a [u8]),
    Binary(&'a [u8]),
}

/// What every connection on the node shares.
pub struct GatewayService {
    pub config: GatewayConfig,
    pub registry: Arc<SessionRegistry>,
    accounts: Arc<AccountService>,
    router: Arc<dyn GuildRouter>,
    stores: Stores,
    /// IDENTIFY budgets, session locations and presence: in-process, or shared by the cluster.
    shared: SharedGateway,
    /// Takes over sessions of other nodes on RESUME, in a cluster.
    takeover: std::sync::OnceLock<Arc<dyn SessionTakeover>>,
}

impl std::fmt::Debug for GatewayService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayService")
            .field("sessions", &self.registry.len())
            .finish_non_exhaustive()
    }
}

enum IdentifyOutcome {
    Ready(Arc<Session>),
    /// Refused for now (identify limits): op 9 with `d=false`, connection stays open.
    Invalid,
}

impl GatewayService {
    pub fn new(
        config: GatewayConfig,
        registry: Arc<SessionRegistry>,
        accounts: Arc<AccountService>,
        router: Arc<dyn GuildRouter>,
        stores: Stores,
    ) -> Self {
        GatewayService {
            config,
            registry,
            accounts,
            router,
            stores,
            shared: SharedGateway::in_process(),
            takeover: std::sync::OnceLock::new(),
        }
    }

    /// Lets a RESUME of a session another node holds take it over here (once; later calls
    /// change nothing). Without it the client is sent to that node's gateway.
    pub fn set_takeover(&self, takeover: Arc<dyn SessionTakeover>) {
        let _ = self.takeover.set(takeover);
    }

    /// Keeps IDENTIFY budgets, session locations and presence in `shared` (the cluster's)
    /// instead of a state of this service's own.
    /// Which nodes are up, for RESUMEs of sessions held elsewhere (see
    /// [`super::shared::NodeLiveness`]).
    pub fn set_node_liveness(&self, liveness: Arc<dyn super::shared::NodeLiveness>) {
        self.shared.set_liveness(liveness);
    }

    pub fn with_shared(mut self, shared: SharedGateway) -> Self {
        self.shared = shared;
        self
    }

    /// The `session_start_limit` of `GET /gateway/bot`.
    pub async fn start_limit(&self, user_id: Snowflake) -> StartLimit {
        self.shared
            .start_limit(user_id, &self.config.identify)
            .await
    }

    async fn identify(
        self: &Arc<Self>,
        id: Identify,
        encoding: Encoding,
    ) -> Result<IdentifyOutcome, Close> {
        if id.intents & !intents::ALL != 0 {
            return Err(CloseCode::InvalidIntents.into());
        }
        let who = self
            .accounts
            .authenticate(&id.token)
            .await
            .map_err(|_| Close::from(CloseCode::AuthenticationFailed))?;
        let user = self
            .accounts
            .me(who)
            .await
            .map_err(|_| Close::from(CloseCode::AuthenticationFailed))?;
        let application = if who.bot {
            let app = self
                .stores
                .applications
                .application_by_bot(who.user_id)
                .await
                .map_err(|_| Close::from(CloseCode::UnknownError))?
                .ok_or(Close::from(CloseCode::AuthenticationFailed))?;
            let privileged = id.intents & intents::PRIVILEGED;
            if privileged & !app_flags::allowed_intents(app.flags) != 0 {
                return Err(CloseCode::DisallowedIntents.into());
            }
            Some(ReadyApplication {
                id: app.id,
                flags: app.flags,
            })
        } else {
            None
        };
        let shard = match id.shard {
            Some([shard_id, count]) if count == 0 || shard_id >= count => {
                return Err(CloseCode::InvalidShard.into());
            }
            other => other,
        };
        let shard_id = shard.map_or(0, |s| s[0]);
        let allowed = self
            .shared
            .try_identify(who.user_id, who.bot, shard_id, &self.config.identify)
            .await;
        if !allowed {
            return Ok(IdentifyOutcome::Invalid);
        }
        let key = self.registry.next_key();
        let info = SessionInfo {
            session_id: session_id(key),
            user_id: who.user_id,
            bot: who.bot,
            intents: id.intents,
            encoding,
            shard,
            large_threshold: id.large_threshold.unwrap_or(50).clamp(50, 250),
        };
        let guilds: Vec<Snowflake> = self
            .stores
            .guilds
            .user_guilds(who.user_id)
            .await
            .map_err(|_| Close::from(CloseCode::UnknownError))?
            .into_iter()
            .filter(|g| info.carries(*g))
            .collect();
        if guilds.len() > self.config.max_guilds_per_shard {
            return Err(CloseCode::ShardingRequired.into());
        }
        // DMs go to shard 0, as Discord sends them.
        let private: Vec<Snowflake> = if info.carries_private() {
            self.stores
                .guilds
                .user_private_channels(who.user_id)
                .await
                .map_err(|_| Close::from(CloseCode::UnknownError))?
        } else {
            Vec::new()
        };
        // A user's READY lists their DMs, as Discord's does; a bot's lists none.
        let private_channels = if who.bot {
            Vec::new()
        } else {
            self.private_channels(who.user_id, &private).await
        };
        let session = Arc::new(Session::new(
            info,
            key,
            self.config.session,
            id.presence.unwrap_or_default(),
        ));
        let ready = Ready {
            v: 10,
            user,
            guilds: guilds
                .iter()
                .map(|g| UnavailableGuild {
                    id: *g,
                    unavailable: true,
                })
                .collect(),
            session_id: session.info.session_id.clone(),
            resume_gateway_url: self.config.resume_url.clone(),
            shard,
            application,
            private_channels,
            relationships: Vec::new(),
        };
        session.send_event("READY", &ready);
        self.registry.insert(session.clone());
        self.shared
            .session_started(&session, &self.config.resume_url);
        metrics::counter!("enrichment_gateway_identifies_total").increment(1);
        // The session follows its DMs before its connection writes READY (it writes once this
        // returns): a client that has READY hears every DM sent after it. Following a private
        // channel sends nothing, so nothing can come before READY.
        futures::stream::iter(private)
            .for_each_concurrent(16, |c| self.subscribe(c, session.clone()))
            .await;
        // GUILD_CREATEs follow READY; the connection keeps writing while they are built.
        // Each guild hears the user is online before it builds the user's GUILD_CREATE (one
        // actor takes both in order), so whoever subscribes after that GUILD_CREATE sees the
        // user online in their own.
        let svc = self.clone();
        let s = session.clone();
        tokio::spawn(async move {
            let user_id = s.user_id();
            let presence = svc.recompute_presence(user_id);
            futures::stream::iter(guilds.iter().copied())
                .for_each_concurrent(16, |g| {
                    let (svc, s, presence) = (&svc, s.clone(), presence.clone());
                    async move {
                        if let Some(p) = presence {
                            svc.tell_presence(g, user_id, p).await;
                        }
                        svc.subscribe(g, s).await;
                    }
                })
                .await;
            if let Some(p) = presence {
                let told: HashSet<Snowflake> = guilds.into_iter().collect();
                svc.announce_presence(user_id, p, false, &told).await;
            }
        });
        Ok(IdentifyOutcome::Ready(session))
    }

    /// Asks a guild's actor to send the session its GUILD_CREATE and start fanning out to it.
    pub async fn subscribe(&self, guild_id: Snowflake, session: Arc<Session>) {
        let op = SessionOp::Subscribe {
            session: session.reference().clone(),
        };
        self.session_op(guild_id, op).await;
    }

    /// Hands a session op to a guild; a refusal (not a member any more, the guild is gone) is
    /// only logged: the session simply does not get the guild.
    async fn session_op(&self, guild_id: Snowflake, op: SessionOp) {
        let name = op.name();
        if let Err(e) = self.router.session_op(guild_id, op).await {
            tracing::debug!(%guild_id, op = name, code = e.body.code, "session op refused");
        }
    }

    /// A user joined (or created) a guild: its live sessions on the right shard follow it.
    pub async fn joined_guild(&self, user_id: Snowflake, guild_id: Snowflake) {
        for s in self.registry.sessions_of(user_id) {
            if s.info.carries(guild_id) && !s.follows(guild_id) {
                self.subscribe(guild_id, s).await;
            }
        }
    }

    /// The user's private channels as they see them, for READY. One that cannot be read now
    /// is left out (and logged): the session still follows it.
    async fn private_channels(
        &self,
        user_id: Snowflake,
        ids: &[Snowflake],
    ) -> Vec<serde_json::Value> {
        let read = |id: Snowflake| async move {
            let got = self
                .router
                .request(id, Caller::new(user_id), GetChannel { channel_id: id })
                .await;
            match got.map(|c| serde_json::to_value(&c)) {
                Ok(Ok(v)) => Some(v),
                Ok(Err(e)) => {
                    tracing::warn!(channel_id = %id, error = %e, "a private channel did not serialize");
                    None
                }
                Err(e) => {
                    tracing::warn!(channel_id = %id, code = e.body.code, "a private channel could not be read for READY");
                    None
                }
            }
        };
        futures::stream::iter(ids.iter().copied())
            .map(read)
            .buffered(16)
            .filter_map(|c| async move { c })
            .collect()
            .await
    }

    /// A user is in a new private channel: its live sessions on shard 0 follow it, each
    /// hearing CHANNEL_CREATE first.
    pub async fn joined_private(&self, user_id: Snowflake, channel_id: Snowflake) {
        for s in self.registry.sessions_of(user_id) {
            if s.info.carries_private() && !s.follows(channel_id) {
                let op = SessionOp::JoinedPrivate {
                    session: s.reference().clone(),
                };
                self.session_op(channel_id, op).await;
            }
        }
    }

    /// USER_UPDATE to the user's own sessions.
    pub fn user_updated(&self, user: &User) {
        for s in self.registry.sessions_of(user.id) {
            s.send_event("USER_UPDATE", user);
        }
    }

    /// Recomputes a user's visible presence; if it changed, every guild of the user announces it.
    pub async fn presence_changed(&self, user_id: Snowflake) {
        let Some(presence) = self.recompute_presence(user_id) else {
            return;
        };
        self.announce_presence(user_id, presence, false, &HashSet::new())
            .await;
    }

    /// Recomputes a user's visible presence from the sessions here and, when it changed,
    /// publishes it to the other nodes. Telling the guilds is the caller's part.
    fn recompute_presence(&self, user_id: Snowflake) -> Option<Presence> {
        let presence = self.registry.recompute_presence(user_id)?;
        self.shared.presence_changed(presence.clone());
        Some(presence)
    }

    /// While the service lives: relays presence changes announced by other nodes to the
    /// guilds here, and rewrites this node's session locations and presences before they
    /// expire.
    pub fn spawn_shared_upkeep(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let shared = self.shared.clone();
        let mut changes = shared.state.presence_changes();
        let svc = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut refresh = tokio::time::interval(SharedGateway::refresh_every());
            refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    change = changes.recv() => {
                        let Some(svc) = svc.upgrade() else { return };
                        match change {
                            Ok(c) if c.node != shared.node => {
                                let user_id = c.presence.user.id;
                                if let Some(p) = svc.registry.remote_presence(c.presence) {
                                    svc.announce_presence(user_id, p, true, &HashSet::new()).await;
                                }
                            }
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                tracing::warn!(skipped = n, "presence announcements skipped");
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        }
                    }
                    _ = refresh.tick() => {
                        let Some(svc) = svc.upgrade() else { return };
                        let sessions = svc.registry.all();
                        let presences = svc.registry.local_presences();
                        shared.refresh(&sessions, presences, &svc.config.resume_url).await;
                    }
                }
            }
        })
    }

    /// Tells the user's guilds, except those in `told`, a presence changed. For a change
    /// announced by another node (`remote`), only guild actors already running here hear of
    /// it: a guild nobody on this node follows has nobody to tell.
    async fn announce_presence(
        &self,
        user_id: Snowflake,
        presence: Presence,
        remote: bool,
        told: &HashSet<Snowflake>,
    ) {
        let guilds = match self.stores.guilds.user_guilds(user_id).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(%user_id, error = %e, "cannot list guilds for a presence update");
                return;
            }
        };
        for g in guilds {
            if told.contains(&g) || (remote && !self.router.is_running(g)) {
                continue;
            }
            self.tell_presence(g, user_id, presence.clone()).await;
        }
    }

    /// Tells one guild's actor a member's presence changed.
    async fn tell_presence(&self, guild_id: Snowflake, user_id: Snowflake, presence: Presence) {
        self.session_op(guild_id, SessionOp::Presence { user_id, presence })
            .await;
    }

    /// Ends a session for good and updates the user's presence.
    pub async fn end_session(&self, session: &Session) {
        self.registry.remove(session);
        self.shared.session_ended(&session.info.session_id);
        self.presence_changed(session.user_id()).await;
    }

    /// Whether a session has been without a connection for its whole resume window.
    fn expired(&self, session: &Session, now: Instant) -> bool {
        session
            .detached_since()
            .is_some_and(|t| now.saturating_duration_since(t) >= self.config.resume_window)
    }

    /// Ends sessions whose resume window has passed. Returns how many.
    pub async fn sweep(&self, now: Instant) -> usize {
        let expired = self.registry.expired(self.config.resume_window, now);
        for s in &expired {
            self.end_session(s).await;
        }
        expired.len()
    }

    async fn request_members(&self, session: &Arc<Session>, request: RequestGuildMembers) {
        let guild_id = request.guild_id;
        let op = SessionOp::RequestMembers {
            session: session.reference().clone(),
            request,
        };
        self.session_op(guild_id, op).await;
    }
}

fn session_id(key: u64) -> String {
    use rand::Rng;
    let salt: u64 = rand::rng().random();
    format!("{key:x}{salt:016x}")
}

/// The state of one socket.
pub struct Connection {
    svc: Arc<GatewayService>,
    params: ConnectParams,
    session: Option<Arc<Session>>,
    generation: u64,
    /// When the client last heartbeated (or connected).
    last_beat: Instant,
    asked_beat: bool,
    window_start: Instant,
    window_count: u32,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("params", &self.params)
            .field(
                "session",
                &self.session.as_ref().map(|s| &s.info.session_id),
            )
            .finish_non_exhaustive()
    }
}

fn control<T: serde::Serialize>(encoding: Encoding, opcode: u8, d: &T) -> Vec<u8> {
    // Our control payloads are plain structs and literals; encoding them cannot fail.
    gateway::control_frame(encoding, opcode, d).unwrap_or_default()
}

impl Connection {
    pub fn new(svc: Arc<GatewayService>, params: ConnectParams, now: Instant) -> Self {
        Connection {
            svc,
            params,
            session: None,
            generation: 0,
            last_beat: now,
            asked_beat: false,
            window_start: now,
            window_count: 0,
        }
    }

    pub fn params(&self) -> ConnectParams {
        self.params
    }

    pub fn session(&self) -> Option<&Arc<Session>> {
        self.session.as_ref()
    }

    /// The first frame: op 10 with the heartbeat interval.
    pub fn hello(&self) -> Vec<u8> {
        control(
            self.params.encoding,
            op::HELLO,
            &Hello {
                heartbeat_interval: self.svc.config.heartbeat_interval.as_millis() as u64,
            },
        )
    }

    /// Op 7, sent to every connection when the node drains.
    pub fn reconnect(&self) -> Vec<u8> {
        control(self.params.encoding, op::RECONNECT, &())
    }

    /// Handles one inbound message; returns control frames to send now.
    pub async fn receive(&mut self, msg: Inbound<'_>, now: Instant) -> Result<Vec<Vec<u8>>, Close> {
        let bytes = match msg {
            Inbound::Text(b) | Inbound::Binary(b) => b,
        };
        if bytes.len() > self.svc.config.max_inbound_bytes {
            return Err(CloseCode::DecodeError.into());
        }
        if now.saturating_duration_since(self.window_start) >= self.svc.config.inbound_window {
            self.window_start = now;
            self.window_count = 0;
        }
        self.window_count += 1;
        if self.window_count > self.svc.config.inbound_per_window {
            return Err(CloseCode::RateLimited.into());
        }
        let frame = gateway::Inbound::decode(self.params.encoding, bytes)
            .map_err(|_| Close::from(CloseCode::DecodeError))?;
        let enc = self.params.encoding;
        match frame.op {
            op::HEARTBEAT => {
                self.last_beat = now;
                self.asked_beat = false;
                if let (Some(s), Some(seq)) = (&self.session, frame.d.as_u64()) {
                    s.ack(seq);
                }
                Ok(vec![control(enc, op::HEARTBEAT_ACK, &())])
            }
            op::IDENTIFY => {
                if self.session.is_some() {
                    return Err(CloseCode::AlreadyAuthenticated.into());
                }
                let id: Identify = frame
                    .data()
                    .map_err(|_| Close::from(CloseCode::DecodeError))?;
                match self.svc.identify(id, enc).await? {
                    IdentifyOutcome::Ready(s) => {
                        self.session = Some(s);
                        self.generation = 0;
                        Ok(Vec::new())
                    }
                    IdentifyOutcome::Invalid => Ok(vec![control(enc, op::INVALID_SESSION, &false)]),
                }
            }
            op::RESUME => {
                if self.session.is_some() {
                    return Err(CloseCode::AlreadyAuthenticated.into());
                }
                let r: Resume = frame
                    .data()
                    .map_err(|_| Close::from(CloseCode::DecodeError))?;
                self.resume(r, now).await
            }
            op::PRESENCE_UPDATE => {
                let s = self.identified()?.clone();
                let p: PresenceUpdate = frame
                    .data()
                    .map_err(|_| Close::from(CloseCode::DecodeError))?;
                s.set_presence(p);
                let svc = self.svc.clone();
                tokio::spawn(async move { svc.presence_changed(s.user_id()).await });
                Ok(Vec::new())
            }
            op::REQUEST_GUILD_MEMBERS => {
                let s = self.identified()?.clone();
                let req: RequestGuildMembers = frame
                    .data()
                    .map_err(|_| Close::from(CloseCode::DecodeError))?;
                if req.query.is_none() && req.user_ids.is_none() {
                    return Err(CloseCode::DecodeError.into());
                }
                let svc = self.svc.clone();
                tokio::spawn(async move { svc.request_members(&s, req).await });
                Ok(Vec::new())
            }
            // No voice yet: a voice state update is valid and has no effect.
            op::VOICE_STATE_UPDATE => {
                self.identified()?;
                Ok(Vec::new())
            }
            _ => Err(CloseCode::UnknownOpcode.into()),
        }
    }

    fn identified(&self) -> Result<&Arc<Session>, Close> {
        self.session
            .as_ref()
            .ok_or(Close::from(CloseCode::NotAuthenticated))
    }

    async fn resume(&mut self, r: Resume, now: Instant) -> Result<Vec<Vec<u8>>, Close> {
        let enc = self.params.encoding;
        let who = self
            .svc
            .accounts
            .authenticate(&r.token)
            .await
            .map_err(|_: ApiError| Close::from(CloseCode::AuthenticationFailed))?;
        let invalid = || Ok(vec![control(enc, op::INVALID_SESSION, &false)]);
        let (s, taken) = match self.svc.registry.get(&r.session_id) {
            Some(s) => (s, false),
            None => match self.take_over(&r, who.user_id).await {
                Ok(Some(s)) => (s, true),
                Ok(None) => return invalid(),
                Err(close) => return Err(close),
            },
        };
        if s.user_id() != who.user_id || s.info.encoding != enc {
            return invalid();
        }
        // Past its window a session is over, whether or not the sweeper got to it yet.
        if self.svc.expired(&s, now) {
            self.svc.end_session(&s).await;
            return invalid();
        }
        let resumed = gateway::dispatch_prefix(enc, "RESUMED", &serde_json::Value::Null)
            .map_err(|_| Close::from(CloseCode::UnknownError))?;
        let outcome = s.resume_with(r.seq, resumed);
        if outcome.is_err() && taken {
            // It exists here only for this RESUME.
            self.svc.end_session(&s).await;
        }
        match outcome {
            Ok(generation) => {
                self.session = Some(s);
                self.generation = generation;
                metrics::counter!("enrichment_gateway_resumes_total").increment(1);
                Ok(Vec::new())
            }
            Err(ResumeError::InvalidSeq) => Err(CloseCode::InvalidSeq.into()),
            Err(ResumeError::Lost) => invalid(),
        }
    }

    /// A RESUME of a session this node does not hold: taken over from the node that does, in
    /// a cluster; else that node's gateway is where the client should go. `None` when no live
    /// node holds it.
    async fn take_over(
        &self,
        r: &Resume,
        user_id: Snowflake,
    ) -> Result<Option<Arc<Session>>, Close> {
        let svc = &self.svc;
        let Elsewhere::Node { node_id, .. } = svc
            .shared
            .locate(&r.session_id, &svc.config.resume_url)
            .await
        else {
            return Ok(None);
        };
        let Some(takeover) = svc.takeover.get() else {
            // The client reconnects to its `resume_gateway_url`, which is that node's.
            tracing::debug!(%node_id, "RESUME for a session held by another node");
            metrics::counter!("enrichment_gateway_resumes_redirected_total").increment(1);
            return Err(Close::ELSEWHERE);
        };
        let request = TakeoverRequest {
            session_id: r.session_id.clone(),
            user_id,
            seq: r.seq,
            encoding: self.params.encoding,
            limits: svc.config.session,
        };
        match takeover.take_over(&node_id, request).await {
            Ok(s) => {
                metrics::counter!("enrichment_gateway_sessions_taken_over_total").increment(1);
                tracing::debug!(%node_id, key = s.key, "took a session over");
                svc.shared.session_started(&s, &svc.config.resume_url);
                let (svc, user) = (svc.clone(), s.user_id());
                tokio::spawn(async move { svc.presence_changed(user).await });
                Ok(Some(s))
            }
            Err(ResumeError::InvalidSeq) => Err(CloseCode::InvalidSeq.into()),
            Err(ResumeError::Lost) => {
                tracing::debug!(%node_id, "a session could not be taken over");
                Ok(None)
            }
        }
    }

    /// When [`Connection::tick`] should next run.
    pub fn next_tick(&self) -> Instant {
        let interval = self.svc.config.heartbeat_interval;
        if self.asked_beat {
            self.last_beat + interval + interval / 2
        } else {
            self.last_beat + interval
        }
    }

    /// Heartbeat supervision: after one interval without a heartbeat the server asks for one
    /// (op 1); after one and a half the connection is a zombie and closes (its session stays
    /// resumable).
    pub fn tick(&mut self, now: Instant) -> Result<Option<Vec<u8>>, Close> {
        let interval = self.svc.config.heartbeat_interval;
        let silent = now.saturating_duration_since(self.last_beat);
        if silent >= interval + interval / 2 {
            return Err(CloseCode::SessionTimedOut.into());
        }
        if silent >= interval && !self.asked_beat {
            self.asked_beat = true;
            return Ok(Some(control(self.params.encoding, op::HEARTBEAT, &())));
        }
        Ok(None)
    }

    /// Dispatches waiting for this connection, as `(seq, shared prefix)`.
    pub fn drain(&self, out: &mut Vec<(u64, Bytes)>) -> Result<(), Close> {
        self.drain_with(|seq, prefix| out.push((seq, prefix.clone())))
            .map(drop)
    }

    /// Hands each dispatch waiting for this connection to `write` as `(seq, shared prefix)`,
    /// under the session's lock ([`Session::write_pending`]). Returns how many.
    pub fn drain_with(&self, write: impl FnMut(u64, &Bytes)) -> Result<usize, Close> {
        match &self.session {
            None => Ok(0),
            Some(s) => s
                .write_pending(self.generation, write)
                .map_err(|d| match d {
                    Detach::SlowConsumer => Close::SLOW_CONSUMER,
                    Detach::Superseded => Close::SUPERSEDED,
                    Detach::Ended => Close::ENDED,
                }),
        }
    }

    /// Appends a complete dispatch frame for `(seq, prefix)` in this connection's encoding.
    pub fn finish(&self, seq: u64, prefix: &[u8], out: &mut bytes::BytesMut) {
        gateway::finish_dispatch(self.params.encoding, prefix, seq, out);
    }

    /// The socket is gone. A client close with 1000 or 1001 ends the session; anything else
    /// (or no close frame at all) leaves it resumable. A connection another one superseded
    /// by resuming has no say in the session any more.
    pub async fn closed(self, client_code: Option<u16>, now: Instant) {
        let Some(s) = self.session else { return };
        match client_code {
            Some(1000 | 1001) if s.is_attached(self.generation) => self.svc.end_session(&s).await,
            _ => s.detach(self.generation, now),
        }
    }
}

#[cfg(test)]
mod tests;
