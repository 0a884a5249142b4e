//! What a guild actor does for gateway sessions: GUILD_CREATE on subscription, presence
//! updates, and op 8 member requests.

use std::sync::Arc;

use enrichment_protocol::gateway::{
    GuildCreate, GuildMembersChunk, Presence, RequestGuildMembers, intents,
};
use enrichment_protocol::models::Member;
use enrichment_protocol::{ApiError, Snowflake};

use super::actor::GuildActorState;
use super::command::{GuildResult, Reply};
use crate::events::{Audience, GuildEvent};
use crate::gateway::Session;

/// Op 8 answers at most this many members for a query or a list of ids (Discord's cap).
const QUERY_LIMIT: usize = 100;

impl GuildActorState {
    /// Sends the session its GUILD_CREATE and starts fanning out to it.
    pub(super) async fn subscribe(&mut self, session: Arc<Session>) -> GuildResult {
        let gid = self.state.id();
        let me = session.user_id();
        let Some(record) = self.state.members.get(&me).cloned() else {
            return Err(ApiError::missing_access());
        };
        if !session.info.carries(gid) || session.is_ended() {
            return Err(ApiError::missing_access());
        }
        let presences_ok = session.info.intents & intents::GUILD_PRESENCES != 0;
        let member_count = self.state.members.len();
        let large = member_count > session.info.large_threshold as usize;
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
        session.send_event("GUILD_CREATE", &payload);
        session.follow(gid);
        self.fanout.add(session);
        Ok(Reply::Done)
    }

    /// Gives a member's live sessions the guild they just joined.
    pub(super) async fn welcome(&mut self, user: Snowflake) {
        let gid = self.state.id();
        for s in self.ctx.sessions.sessions_of(user) {
            if s.info.carries(gid) && !s.follows(gid) {
                let _ = self.subscribe(s).await;
            }
        }
    }

    /// A member's visible presence changed.
    pub(super) fn presence(&mut self, user: Snowflake, presence: Presence) -> GuildResult {
        if !self.state.members.contains_key(&user) {
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
        Ok(Reply::Done)
    }

    /// Op 8: members matching a name prefix or a list of ids, in GUILD_MEMBERS_CHUNK dispatches.
    pub(super) async fn request_members(
        &mut self,
        session: Arc<Session>,
        req: RequestGuildMembers,
    ) -> GuildResult {
        let gid = self.state.id();
        if !self.state.members.contains_key(&session.user_id()) {
            return Err(ApiError::missing_access());
        }
        let may_list_all = !session.info.bot || session.info.intents & intents::GUILD_MEMBERS != 0;
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
            req.presences == Some(true) && session.info.intents & intents::GUILD_PRESENCES != 0;
        let nonce = req.nonce.filter(|n| n.len() <= 32);
        let size = self.ctx.limits.member_chunk_size.max(1);
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
            session.send_event("GUILD_MEMBERS_CHUNK", &payload);
        }
        Ok(Reply::Done)
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
