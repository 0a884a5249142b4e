//! What a guild actor does for gateway sessions ([`SessionOp`]): GUILD_CREATE on subscription,
//! taking back its followers after a restart, presence updates, and op 8 member requests.
//!
//! The gateway side pushes these in; the actor never looks for sessions itself. A session is
//! named by its [`SessionRef`] and reached through the node's recipient directory, so the same
//! ops will serve sessions on other nodes.

use std::sync::Arc;

use enrichment_protocol::gateway::{
    GuildCreate, GuildMembersChunk, Presence, RequestGuildMembers, intents,
};
use enrichment_protocol::models::Member;
use enrichment_protocol::{ApiError, Snowflake};

use super::actor::GuildActorState;
use super::fanout::{Recipient, send_event};
use super::requests::{SessionOp, SessionRef};
use crate::events::{Audience, GuildEvent};

/// Op 8 answers at most this many members for a query or a list of ids (Discord's cap).
const QUERY_LIMIT: usize = 100;

impl GuildActorState {
    /// Runs one session op.
    pub(super) async fn session_op(&mut self, op: SessionOp) -> Result<(), ApiError> {
        match op {
            SessionOp::Subscribe { session } => {
                let recipient = self.recipient(&session)?;
                self.subscribe(&session, recipient).await
            }
            SessionOp::JoinedPrivate { session } => {
                let recipient = self.recipient(&session)?;
                self.joined_private(&session, recipient).await
            }
            SessionOp::Resync { session } => {
                let recipient = self.recipient(&session)?;
                if self.fanout.remove_session(session.user_id, session.key) {
                    tracing::debug!(guild_id = %self.state.id(), key = session.key.0, "resyncing a session");
                }
                self.subscribe(&session, recipient).await
            }
            SessionOp::Resubscribe { sessions } => {
                self.resubscribe(sessions);
                Ok(())
            }
            SessionOp::Presence { user_id, presence } => self.presence(user_id, presence),
            SessionOp::RequestMembers { session, request } => {
                let recipient = self.recipient(&session)?;
                self.request_members(&session, recipient.as_ref(), request)
                    .await
            }
            SessionOp::Move { from, to } => self.move_session(&from, &to).await,
        }
    }

    /// A session's events go to it at its new node from now on. Its old node hears so after
    /// the last event it got, whatever becomes of the new one: it waits for that word from
    /// each guild the session follows before it hands the session's replay buffer over.
    async fn move_session(&mut self, from: &SessionRef, to: &SessionRef) -> Result<(), ApiError> {
        if from.user_id != to.user_id {
            return Err(ApiError::missing_access());
        }
        let gid = self.state.id();
        let old = self.ctx.recipients.recipient(from);
        self.fanout.remove_session(from.user_id, from.key);
        let entitled = self.state.members.contains_key(&to.user_id) && self.carries(to);
        let moved = match self.ctx.recipients.recipient(to) {
            _ if self.fanout.contains(to.user_id, to.key) => Ok(()),
            Some(r) if entitled && !r.is_gone() => {
                r.follow(gid);
                self.fanout.add(r);
                Ok(())
            }
            _ => Err(ApiError::missing_access()),
        };
        tracing::debug!(guild_id = %gid, from = from.key.0, to = to.key.0, moved = moved.is_ok(), had_old = old.is_some(), "moved a follower");
        if let Some(old) = old {
            // Events whose writes are in flight still go to the old recipient (their
            // recipients were taken when they were queued): the word follows them.
            self.after_queued(move || old.handed_over(gid)).await;
        }
        moved
    }

    /// Whether the session's shard carries this unit: a guild by its id, a private channel on
    /// shard 0.
    fn carries(&self, session: &SessionRef) -> bool {
        if self.state.is_private() {
            session.carries_private()
        } else {
            session.carries(self.state.id())
        }
    }

    fn recipient(&self, session: &SessionRef) -> Result<Arc<dyn Recipient>, ApiError> {
        self.ctx
            .recipients
            .recipient(session)
            .ok_or_else(ApiError::missing_access)
    }

    /// Sessions that followed the guild before its actor started follow it again, without a
    /// new GUILD_CREATE (they already have the guild; nothing happened in between, since the
    /// actor takes this before any request). A session no longer entitled is left out.
    fn resubscribe(&mut self, sessions: Vec<SessionRef>) {
        for s in sessions {
            if !self.state.members.contains_key(&s.user_id) || !self.carries(&s) {
                continue;
            }
            if let Some(r) = self.ctx.recipients.recipient(&s) {
                self.fanout.add(r);
            }
        }
    }

    /// Sends the session its GUILD_CREATE and starts fanning out to it.
    pub(super) async fn subscribe(
        &mut self,
        session: &SessionRef,
        recipient: Arc<dyn Recipient>,
    ) -> Result<(), ApiError> {
        let gid = self.state.id();
        let me = session.user_id;
        let Some(record) = self.state.members.get(&me).cloned() else {
            return Err(ApiError::missing_access());
        };
        if !self.carries(session) || recipient.is_gone() {
            return Err(ApiError::missing_access());
        }
        if self.fanout.contains(me, session.key) {
            return Ok(());
        }
        if self.state.is_private() {
            // The channel reached the session as CHANNEL_CREATE, or is listed in its own
            // `GET /users/@me/channels`: following sends nothing.
            recipient.follow(gid);
            self.fanout.add(recipient);
            return Ok(());
        }
        let presences_ok = session.intents & intents::GUILD_PRESENCES != 0;
        let member_count = self.state.members.len();
        let large = member_count > session.large_threshold as usize;
        // A large guild lists the session's own member and, with the presence intent, the
        // online ones; a small one lists everyone.
        let mut ids: Vec<Snowflake> = if large {
            let mut ids = vec![me];
            if presences_ok {
                ids.extend(self.online.keys().filter(|u| **u != me));
            }
            ids
        } else {
            self.state.members.keys().copied().collect()
        };
        ids.sort_unstable();
        let mut members = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(m) = self.state.members.get(id) {
                members.push(self.wire_member(m).await?);
            }
        }
        let presences = if presences_ok {
            self.online
                .values()
                .map(|p| Presence {
                    guild_id: Some(gid),
                    ..p.clone()
                })
                .collect()
        } else {
            Vec::new()
        };
        let payload = GuildCreate {
            guild: self.state.wire_guild(),
            joined_at: Some(record.joined_at),
            large,
            unavailable: false,
            member_count: member_count as u64,
            members,
            channels: self.state.channels.values().cloned().collect(),
            threads: Vec::new(),
            presences,
            voice_states: Vec::new(),
            stage_instances: Vec::new(),
            guild_scheduled_events: Vec::new(),
            soundboard_sounds: Vec::new(),
        };
        // Following before the event is queued would let another event overtake GUILD_CREATE;
        // both happen here, in the actor, so nothing can come between them.
        send_event(recipient.as_ref(), "GUILD_CREATE", &payload);
        recipient.follow(gid);
        self.fanout.add(recipient);
        Ok(())
    }

    /// A member's visible presence changed.
    pub(super) fn presence(&mut self, user: Snowflake, presence: Presence) -> Result<(), ApiError> {
        if !self.state.members.contains_key(&user) || self.state.is_private() {
            return Err(ApiError::missing_access());
        }
        let p = Presence {
            guild_id: Some(self.state.id()),
            ..presence
        };
        if p.status == enrichment_protocol::gateway::Status::Offline {
            self.online.remove(&user);
        } else {
            self.online.insert(user, p.clone());
        }
        self.emit(Audience::Guild, GuildEvent::PresenceUpdate(p));
        Ok(())
    }

    /// Op 8: members matching a name prefix or a list of ids, in GUILD_MEMBERS_CHUNK dispatches.
    pub(super) async fn request_members(
        &mut self,
        session: &SessionRef,
        recipient: &dyn Recipient,
        req: RequestGuildMembers,
    ) -> Result<(), ApiError> {
        let gid = self.state.id();
        if !self.state.members.contains_key(&session.user_id) || self.state.is_private() {
            return Err(ApiError::missing_access());
        }
        let may_list_all = !session.bot || session.intents & intents::GUILD_MEMBERS != 0;
        let mut not_found = None;
        let ids: Vec<Snowflake> = if let Some(wanted) = req.user_ids {
            let mut wanted = wanted.into_vec();
            wanted.truncate(QUERY_LIMIT);
            let (found, missing): (Vec<_>, Vec<_>) = wanted
                .into_iter()
                .partition(|u| self.state.members.contains_key(u));
            not_found = Some(missing);
            found
        } else {
            let query = req.query.unwrap_or_default().to_lowercase();
            let limit = match req.limit as usize {
                0 if query.is_empty() && may_list_all => usize::MAX,
                0 if query.is_empty() => 0,
                0 => QUERY_LIMIT,
                n if query.is_empty() && may_list_all => n,
                n => n.min(QUERY_LIMIT),
            };
            let mut ids = Vec::new();
            let mut sorted: Vec<Snowflake> = self.state.members.keys().copied().collect();
            sorted.sort_unstable();
            for id in sorted {
                if ids.len() >= limit {
                    break;
                }
                if query.is_empty() || self.name_matches(id, &query).await {
                    ids.push(id);
                }
            }
            ids
        };
        let mut members: Vec<Member> = Vec::with_capacity(ids.len());
        for id in &ids {
            members.push(self.wire_member(&self.state.members[id]).await?);
        }
        let with_presences =
            req.presences == Some(true) && session.intents & intents::GUILD_PRESENCES != 0;
        let nonce = req.nonce.filter(|n| n.len() <= 32);
        let size = self.ctx.member_chunk_size.max(1);
        let chunk_count = members.len().div_ceil(size).max(1);
        let mut chunks: Vec<Vec<Member>> = members.chunks(size).map(<[Member]>::to_vec).collect();
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        for (i, chunk) in chunks.into_iter().enumerate() {
            let presences = with_presences.then(|| {
                chunk
                    .iter()
                    .filter_map(|m| m.user.as_ref())
                    .filter_map(|u| self.online.get(&u.id).cloned())
                    .collect()
            });
            let payload = GuildMembersChunk {
                guild_id: gid,
                members: chunk,
                chunk_index: i as u32,
                chunk_count: chunk_count as u32,
                not_found: if i == 0 { not_found.take() } else { None },
                presences,
                nonce: nonce.clone(),
            };
            send_event(recipient, "GUILD_MEMBERS_CHUNK", &payload);
        }
        Ok(())
    }

    async fn name_matches(&self, id: Snowflake, query: &str) -> bool {
        let m = &self.state.members[&id];
        if m.nick
            .as_deref()
            .is_some_and(|n| n.to_lowercase().starts_with(query))
        {
            return true;
        }
        match self.user_or_deleted(id).await {
            Ok(u) => {
                u.username.to_lowercase().starts_with(query)
                    || u.global_name
                        .is_some_and(|g| g.to_lowercase().starts_with(query))
            }
            Err(_) => false,
        }
    }
}
