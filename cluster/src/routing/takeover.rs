//! Taking a session over on RESUME at another node.
//!
//! A client whose session lives on node A resumes at node B (its own node is draining, or a
//! load balancer sent it elsewhere). B takes the session over through the transport, and the
//! client sees what a RESUME at A would have given it: every dispatch it missed, once, in
//! order per guild, then RESUMED.
//!
//! 1. B asks A for the session ([`Control::TakeSession`]). A checks the user, the encoding and
//!    the client's sequence number, supersedes the connection still attached there, and
//!    answers with what B needs to know ([`Control::SessionOffer`]): who the session is, its
//!    presence, the guilds it follows. From then on the session collects dispatches at A
//!    without a connection.
//! 2. B makes a session of its own under a new key, which holds whatever is delivered to it,
//!    and asks the owner of each guild to move the follower there ([`SessionOp::Move`]). An
//!    owner does it between two events: everything before went to A, everything after goes to
//!    B, and it tells A so right behind its last event for the session, on the same link (or
//!    directly, when it is A itself).
//! 3. Once every owner has told A (or [`MOVE_WAIT`] passed), A ends its session and sends B
//!    what the client has not seen ([`Control::SessionHandover`]). B puts it in front of what
//!    it held, and the client resumes.
//!
//! A guild whose owner did not tell A in time (the owner is dying, or the guild is changing
//! hands) may have lost events on the way: the session gets GUILD_DELETE with
//! `unavailable: true` for it, then a fresh GUILD_CREATE, as after any gap. A takeover that
//! fails leaves the client with op 9, to identify anew.
//!
//! Not carried: per-user events (a guild joined, USER_UPDATE) that reach B while the session
//! is arriving go to B's other sessions of the user only; at A they reach it and come with the
//! handover.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use enrichment_actors::gateway::{
    ResumeError, Session, SessionInfo, SessionTakeover, TakeoverRequest,
};
use enrichment_actors::guild::{SessionOp, SessionRef};
use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::Encoding;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::{ClusterRouter, Control, MOVE_WAIT, Outcome, SessionHandover, SessionOffer, Work};
use crate::transport::ClusterTransportExt;

/// The session a node asks another for.
#[derive(Debug)]
pub(super) struct Wanted {
    pub session_id: String,
    pub user_id: Snowflake,
    pub seq: u64,
    pub encoding: Encoding,
}

/// How often the old node looks whether every owner moved the session.
const POLL: Duration = Duration::from_millis(10);

/// A node's side of taking sessions over (see the module docs).
pub(crate) struct Takeover(pub Arc<ClusterRouter>);

impl std::fmt::Debug for Takeover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Takeover").finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionTakeover for Takeover {
    async fn take_over(
        &self,
        node_id: &str,
        request: TakeoverRequest,
    ) -> Result<Arc<Session>, ResumeError> {
        let router = &self.0;
        let outcome = router.take_over(node_id, request).await;
        let label = match &outcome {
            Ok(_) => "taken",
            Err(ResumeError::InvalidSeq) => "invalid_seq",
            Err(ResumeError::Lost) => "lost",
        };
        debug!(%node_id, outcome = label, "session takeover");
        metrics::counter!("enrichment_cluster_session_takeovers_total", "outcome" => label)
            .increment(1);
        outcome
    }
}

impl ClusterRouter {
    /// What RESUMEs of sessions held by other nodes call to take them over here.
    pub fn takeover(self: &Arc<Self>) -> Arc<dyn SessionTakeover> {
        Arc::new(Takeover(self.clone()))
    }

    /// The new node's side (see the module docs).
    async fn take_over(
        self: &Arc<Self>,
        node_id: &str,
        request: TakeoverRequest,
    ) -> Result<Arc<Session>, ResumeError> {
        if !self.link_opens(node_id).await {
            return Err(ResumeError::Lost);
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (offer_tx, offer_rx) = oneshot::channel();
        let (handover_tx, handover_rx) = oneshot::channel();
        self.offers.insert(id, offer_tx);
        self.handovers.insert(id, handover_tx);
        let result = self
            .take_over_as(id, node_id, request, offer_rx, handover_rx)
            .await;
        self.offers.remove(&id);
        self.handovers.remove(&id);
        result
    }

    async fn take_over_as(
        self: &Arc<Self>,
        id: u64,
        node_id: &str,
        request: TakeoverRequest,
        offer: oneshot::Receiver<Result<SessionOffer, ResumeError>>,
        handover: oneshot::Receiver<Result<SessionHandover, ResumeError>>,
    ) -> Result<Arc<Session>, ResumeError> {
        let ask = Control::TakeSession {
            id,
            session_id: request.session_id.clone(),
            user_id: request.user_id,
            seq: request.seq,
            encoding: request.encoding,
        };
        if let Err(e) = self.transport.send_control(node_id, &ask) {
            debug!(%node_id, error = %e, "cannot ask for a session");
            return Err(ResumeError::Lost);
        }
        let offer = match tokio::time::timeout(self.timeout, offer).await {
            Ok(Ok(offer)) => offer?,
            _ => {
                debug!(%node_id, "no answer to a session takeover");
                return Err(ResumeError::Lost);
            }
        };
        let old = offer.session;
        if old.user_id != request.user_id || old.encoding != request.encoding {
            return Err(ResumeError::Lost);
        }
        let info = SessionInfo {
            session_id: request.session_id,
            user_id: old.user_id,
            bot: old.bot,
            intents: old.intents,
            encoding: old.encoding,
            shard: old.shard,
            large_threshold: old.large_threshold,
        };
        let session = Arc::new(Session::arriving(
            info,
            self.registry.next_key(),
            request.limits,
            offer.presence,
        ));
        self.registry.insert_arriving(session.clone());
        let to = session.reference().clone();
        let deadline = tokio::time::Instant::now() + MOVE_WAIT;
        let moves = offer
            .guilds
            .iter()
            .map(|g| self.move_follower(*g, &old, &to, deadline));
        let moved = futures::future::join_all(moves).await;
        let handover = match tokio::time::timeout(MOVE_WAIT + self.timeout, handover).await {
            Ok(Ok(handover)) => handover,
            _ => {
                warn!(%node_id, "a session's old node did not hand it over in time");
                Err(ResumeError::Lost)
            }
        };
        let installed =
            handover.and_then(|h| session.install(h.seq, h.frames).map(|()| h.unsynced));
        let unsynced = match installed {
            Ok(unsynced) => unsynced,
            Err(e) => {
                debug!(%node_id, error = ?e, "a session handed over could not be installed");
                // Guilds that moved it drop it at their next delivery.
                self.registry.remove(&session);
                return Err(e);
            }
        };
        self.registry.arrived(session.clone());
        let unknown = offer
            .guilds
            .iter()
            .zip(moved)
            .filter(|(_, settled)| !settled)
            .map(|(g, _)| *g);
        let mut resync: Vec<Snowflake> = unsynced.into_iter().chain(unknown).collect();
        resync.sort_unstable();
        resync.dedup();
        for guild_id in resync {
            debug!(%guild_id, "a session taken over resyncs a guild");
            self.stream_lost(&session, guild_id);
        }
        Ok(session)
    }

    /// Asks a guild's owner to deliver to the session at this node instead of `from`, until it
    /// answers or `deadline` passes. True when the answer is known: it moved, or the session
    /// is no longer entitled to the guild (its old node had the last word on that, in the
    /// events it hands over).
    async fn move_follower(
        &self,
        guild_id: Snowflake,
        from: &SessionRef,
        to: &SessionRef,
        deadline: tokio::time::Instant,
    ) -> bool {
        loop {
            let op = SessionOp::Move {
                from: from.clone(),
                to: to.clone(),
            };
            match self.route(guild_id, Work::Session(op)).await {
                Ok(Outcome::Done) => return true,
                Ok(Outcome::Failed(e)) if e.status != 503 => return true,
                // Moving twice is moving once: the owner keeps one follower per key.
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The old node's side (see the module docs).
    pub(super) async fn give_session(self: Arc<Self>, to: String, id: u64, wanted: Wanted) {
        let session = self.registry.get(&wanted.session_id).filter(|s| {
            s.user_id() == wanted.user_id && s.info.encoding == wanted.encoding && !s.is_ended()
        });
        let offer = match &session {
            Some(s) => s.begin_leaving(wanted.seq).map(|leaving| SessionOffer {
                session: s.reference().clone(),
                presence: leaving.presence,
                guilds: leaving.guilds,
            }),
            None => Err(ResumeError::Lost),
        };
        let leaving = offer.is_ok();
        let sent = self
            .transport
            .send_control(&to, &Control::SessionOffer { id, offer })
            .is_ok();
        let Some(session) = session.filter(|_| leaving) else {
            return;
        };
        if !sent {
            // Nobody was asked to move it: it stays.
            session.stay();
            return;
        }
        debug!(key = session.key, awaiting = ?session.awaiting(), node = %to, "giving a session over");
        let deadline = tokio::time::Instant::now() + MOVE_WAIT;
        while !session.awaiting().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        let unsynced = session.awaiting();
        let handover = session
            .finish_leaving(wanted.seq)
            .map(|(seq, frames)| SessionHandover {
                seq,
                frames,
                unsynced,
            });
        self.registry.handed_over(&session);
        self.forget_follower(session.key);
        if let Err(e) = self
            .transport
            .send_control(&to, &Control::SessionHandover { id, handover })
        {
            warn!(node = %to, error = %e, "a session's handover was not sent");
        }
    }

    /// A session here no longer follows anything through this node.
    fn forget_follower(&self, key: u64) {
        for (_, keys) in self.followed.lock().values_mut() {
            keys.remove(&key);
        }
    }
}
