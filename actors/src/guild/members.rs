//! Member, ban, invite and bot-authorization commands.

use enrichment_protocol::models::{
    AuditLogChange, AuditLogEntry, Ban, Invite, InviteChannel, InviteGuild, Member, Role, RoleTags,
    audit_action,
};
use enrichment_protocol::rest::{CreateInvite, ModifyMember};
use enrichment_protocol::{ApiError, ErrorCode, Permissions, Snowflake, Timestamp};
use enrichment_storage::{BanRecord, GuildWrite, InviteRecord, MemberRecord, StoreError};
use rand::Rng;
use rand::distr::Alphanumeric;

use super::actor::{GuildActorState, GuildContext};
use super::audit::changes;
use super::commit::{Applied, Change};
use super::state::GuildState;
use crate::events::{
    Audience, GuildDeleteData, GuildEvent, GuildUserData, InviteCreateData, InviteDeleteData,
    MemberData, MessageDeleteBulkData,
};

/// What an invite's audit entry leaves out of its changes: the guild and when it was made
/// (the entry's own id says when).
const INVITE_SKIP: &[&str] = &["guild_id", "created_at"];

impl GuildActorState {
    pub(super) async fn wire_member(&self, m: &MemberRecord) -> Result<Member, ApiError> {
        let user = self.user_or_deleted(m.user_id).await?;
        Ok(GuildState::wire_member(m, Some(user)))
    }

    pub(super) async fn list_members(
        &self,
        actor: Snowflake,
        limit: usize,
        after: Snowflake,
    ) -> Result<Vec<Member>, ApiError> {
        self.state.guild_permissions(actor, self.now())?;
        let mut ids: Vec<Snowflake> = self
            .state
            .members
            .keys()
            .copied()
            .filter(|id| *id > after)
            .collect();
        ids.sort_unstable();
        ids.truncate(limit);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.wire_member(&self.state.members[&id]).await?);
        }
        Ok(out)
    }

    pub(super) async fn get_member(
        &self,
        actor: Snowflake,
        user: Snowflake,
    ) -> Result<Member, ApiError> {
        self.state.guild_permissions(actor, self.now())?;
        let m = self.state.member(user)?;
        self.wire_member(m).await
    }

    pub(super) async fn modify_member(
        &mut self,
        actor: Snowflake,
        user: Snowflake,
        body: ModifyMember,
    ) -> Result<Member, ApiError> {
        let now = self.now();
        body.validate(now)?;
        let held = self.state.guild_permissions(actor, now)?;
        let old = self.state.member(user)?.clone();
        let mut m = old.clone();
        let need = |p: Permissions| {
            if held.contains(p) {
                Ok(())
            } else {
                Err(ApiError::missing_permissions())
            }
        };
        if let Some(nick) = body.nick {
            if user == actor {
                if !held.intersects(Permissions::CHANGE_NICKNAME | Permissions::MANAGE_NICKNAMES) {
                    return Err(ApiError::missing_permissions());
                }
            } else {
                need(Permissions::MANAGE_NICKNAMES)?;
                if !self.state.can_moderate(actor, user) {
                    return Err(ApiError::missing_permissions());
                }
            }
            m.nick = nick.filter(|n| !n.is_empty());
        }
        if let Some(roles) = body.roles {
            need(Permissions::MANAGE_ROLES)?;
            let mut roles = roles.unwrap_or_default();
            roles.sort_unstable();
            roles.dedup();
            let gid = self.state.id();
            let before = m.roles.clone();
            for r in before
                .iter()
                .filter(|r| !roles.contains(r))
                .chain(roles.iter().filter(|r| !before.contains(r)))
            {
                let role = self.state.role(*r)?;
                if role.id == gid || role.managed || !self.state.can_manage_role(actor, role) {
                    return Err(ApiError::missing_permissions());
                }
            }
            m.roles = roles;
        }
        if let Some(mute) = body.mute {
            need(Permissions::MUTE_MEMBERS)?;
            m.mute = mute;
        }
        if let Some(deaf) = body.deaf {
            need(Permissions::DEAFEN_MEMBERS)?;
            m.deaf = deaf;
        }
        if let Some(until) = body.communication_disabled_until {
            need(Permissions::MODERATE_MEMBERS)?;
            // Nobody can time out the owner, an administrator, or someone at or above them.
            let target_admin = self
                .state
                .guild_permissions(user, now)?
                .contains(Permissions::ADMINISTRATOR);
            if target_admin || !self.state.can_moderate(actor, user) {
                return Err(ApiError::missing_permissions());
            }
            m.communication_disabled_until = until.filter(|t| *t > now);
        }
        let mut entries = Vec::new();
        let fields = changes(
            Some(&old),
            Some(&m),
            &[
                "guild_id",
                "user_id",
                "roles",
                "joined_at",
                "avatar",
                "flags",
            ],
        );
        if !fields.is_empty() {
            entries.push(AuditLogEntry {
                changes: fields,
                ..self.audit_entry(audit_action::MEMBER_UPDATE, Some(user))
            });
        }
        entries.extend(self.role_update_entry(user, &old.roles, &m.roles));
        self.put_member(m, entries).await
    }

    /// MEMBER_ROLE_UPDATE for a change of a member's roles, with Discord's `$add` and
    /// `$remove` keys (each a list of `{id, name}`); `None` when the roles did not change.
    fn role_update_entry(
        &self,
        user: Snowflake,
        before: &[Snowflake],
        after: &[Snowflake],
    ) -> Option<AuditLogEntry> {
        let partial = |ids: Vec<&Snowflake>| -> Option<serde_json::Value> {
            (!ids.is_empty()).then(|| {
                ids.into_iter()
                    .map(|id| {
                        let name = self.state.roles.get(id).map(|r| r.name.clone());
                        serde_json::json!({ "id": id, "name": name })
                    })
                    .collect()
            })
        };
        let added = partial(after.iter().filter(|r| !before.contains(r)).collect());
        let removed = partial(before.iter().filter(|r| !after.contains(r)).collect());
        let changes: Vec<AuditLogChange> = [("$add", added), ("$remove", removed)]
            .into_iter()
            .filter_map(|(key, value)| {
                Some(AuditLogChange {
                    key: key.into(),
                    new_value: Some(value?),
                    old_value: None,
                })
            })
            .collect();
        (!changes.is_empty()).then(|| AuditLogEntry {
            changes,
            ..self.audit_entry(audit_action::MEMBER_ROLE_UPDATE, Some(user))
        })
    }

    pub(super) async fn modify_current_member(
        &mut self,
        actor: Snowflake,
        nick: Option<Option<String>>,
    ) -> Result<Member, ApiError> {
        self.modify_member(
            actor,
            actor,
            ModifyMember {
                nick,
                ..Default::default()
            },
        )
        .await
    }

    async fn put_member(
        &mut self,
        m: MemberRecord,
        entries: Vec<AuditLogEntry>,
    ) -> Result<Member, ApiError> {
        self.write_logged(vec![GuildWrite::PutMember(m.clone())], entries)
            .await?;
        self.state.members.insert(m.user_id, m.clone());
        let wire = self.wire_member(&m).await?;
        self.emit(
            Audience::Guild,
            GuildEvent::MemberUpdate(MemberData {
                guild_id: self.state.id(),
                member: wire.clone(),
            }),
        );
        Ok(wire)
    }

    pub(super) async fn member_role(
        &mut self,
        actor: Snowflake,
        user: Snowflake,
        role_id: Snowflake,
        add: bool,
    ) -> Result<(), ApiError> {
        self.state
            .require_guild(actor, Permissions::MANAGE_ROLES, self.now())?;
        let role = self.state.role(role_id)?;
        if role.id == self.state.id() || role.managed || !self.state.can_manage_role(actor, role) {
            return Err(ApiError::missing_permissions());
        }
        let mut m = self.state.member(user)?.clone();
        let had = m.roles.contains(&role_id);
        if add == had {
            return Ok(());
        }
        let before = m.roles.clone();
        if add {
            m.roles.push(role_id);
        } else {
            m.roles.retain(|r| *r != role_id);
        }
        let entry = self.role_update_entry(user, &before, &m.roles);
        self.put_member(m, entry.into_iter().collect()).await?;
        Ok(())
    }

    /// Removes a member and tells the guild and the removed user.
    async fn remove_member(
        &mut self,
        user: Snowflake,
        extra: Vec<GuildWrite>,
        entries: Vec<AuditLogEntry>,
    ) -> Result<(), ApiError> {
        let gid = self.state.id();
        let mut writes = extra;
        let was_member = self.state.members.contains_key(&user);
        if was_member {
            writes.push(GuildWrite::DeleteMember {
                guild_id: gid,
                user_id: user,
            });
        }
        self.write_logged(writes, entries).await?;
        if was_member {
            self.state.members.remove(&user);
            let u = self.user_or_deleted(user).await?;
            self.emit(
                Audience::Guild,
                GuildEvent::MemberRemove(GuildUserData {
                    guild_id: gid,
                    user: u,
                }),
            );
            self.emit(
                Audience::Users(vec![user]),
                GuildEvent::GuildDelete(GuildDeleteData {
                    id: gid,
                    unavailable: false,
                }),
            );
        }
        Ok(())
    }

    pub(super) async fn kick(&mut self, actor: Snowflake, user: Snowflake) -> Result<(), ApiError> {
        self.state
            .require_guild(actor, Permissions::KICK_MEMBERS, self.now())?;
        self.state.member(user)?;
        if !self.state.can_moderate(actor, user) {
            return Err(ApiError::missing_permissions());
        }
        let entry = self.audit_entry(audit_action::MEMBER_KICK, Some(user));
        self.remove_member(user, Vec::new(), vec![entry]).await?;
        Ok(())
    }

    pub(super) async fn leave(&mut self, actor: Snowflake) -> Result<(), ApiError> {
        self.state
            .member(actor)
            .map_err(|_| ApiError::unknown(ErrorCode::UnknownGuild))?;
        if actor == self.state.guild.owner_id {
            return Err(ApiError::form(
                &["guild_id"],
                "GUILD_OWNER_CANNOT_LEAVE",
                "The owner cannot leave; transfer ownership or delete the guild.",
            ));
        }
        self.remove_member(actor, Vec::new(), Vec::new()).await?;
        Ok(())
    }

    async fn wire_ban(&self, b: &BanRecord) -> Result<Ban, ApiError> {
        let user = self.user_or_deleted(b.user_id).await?;
        Ok(Ban {
            reason: b.reason.clone(),
            user,
        })
    }

    pub(super) async fn list_bans(&self, actor: Snowflake) -> Result<Vec<Ban>, ApiError> {
        self.state
            .require_guild(actor, Permissions::BAN_MEMBERS, self.now())?;
        let mut bans: Vec<&BanRecord> = self.state.bans.values().collect();
        bans.sort_by_key(|b| b.user_id);
        let mut out = Vec::with_capacity(bans.len());
        for b in bans {
            out.push(self.wire_ban(b).await?);
        }
        Ok(out)
    }

    pub(super) async fn get_ban(&self, actor: Snowflake, user: Snowflake) -> Result<Ban, ApiError> {
        self.state
            .require_guild(actor, Permissions::BAN_MEMBERS, self.now())?;
        let b = self
            .state
            .bans
            .get(&user)
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownBan))?;
        self.wire_ban(b).await
    }

    pub(super) async fn ban(
        &mut self,
        actor: Snowflake,
        user: Snowflake,
        delete_secs: u32,
    ) -> Result<(), ApiError> {
        let now = self.now();
        self.state
            .require_guild(actor, Permissions::BAN_MEMBERS, now)?;
        if self
            .ctx
            .users
            .get(user)
            .await
            .map_err(GuildContext::store_error)?
            .is_none()
        {
            return Err(ApiError::unknown(ErrorCode::UnknownUser));
        }
        if user == actor || !self.state.can_moderate(actor, user) {
            return Err(ApiError::missing_permissions());
        }
        let gid = self.state.id();
        let ban = BanRecord {
            guild_id: gid,
            user_id: user,
            reason: self.caller.reason.clone(),
        };
        let entry = self.audit_entry(audit_action::MEMBER_BAN_ADD, Some(user));
        self.remove_member(user, vec![GuildWrite::PutBan(ban.clone())], vec![entry])
            .await?;
        self.state.bans.insert(user, ban.clone());
        let wire = self.wire_ban(&ban).await?;
        self.emit(
            Audience::Guild,
            GuildEvent::BanAdd(GuildUserData {
                guild_id: gid,
                user: wire.user,
            }),
        );
        if delete_secs > 0 {
            self.delete_recent_messages_of(user, now.plus_secs(-i64::from(delete_secs)))
                .await;
        }
        Ok(())
    }

    /// Deletes a user's messages newer than `since` in every text channel (ban cleanup).
    async fn delete_recent_messages_of(&mut self, user: Snowflake, since: Timestamp) {
        let store = self.ctx.stores.messages.clone();
        let from = Snowflake::from_unix_ms(since.unix_ms().max(0) as u64);
        let channels: Vec<Snowflake> = self
            .state
            .channels
            .values()
            .filter(|c| c.kind.is_text_based())
            .map(|c| c.id)
            .collect();
        for ch in channels {
            let mut cursor = from;
            // Each doomed message with its attachments' blob keys.
            let mut doomed = Vec::new();
            loop {
                let page = match store
                    .list_messages(
                        ch,
                        enrichment_protocol::rest::HistoryAnchor::After(cursor),
                        100,
                    )
                    .await
                {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(channel_id = %ch, error = %e, "ban cleanup could not list messages");
                        break;
                    }
                };
                let Some(newest) = page.first().map(|m| m.id) else {
                    break;
                };
                doomed.extend(
                    page.iter()
                        .filter(|m| m.author_id == user)
                        .map(|m| (m.id, super::blobs::keys_of(m))),
                );
                cursor = newest;
                if page.len() < 100 {
                    break;
                }
            }
            for chunk in doomed.chunks(100) {
                let ids: Vec<Snowflake> = chunk.iter().map(|(id, _)| *id).collect();
                let change = Change::DeleteMessages {
                    channel_id: ch,
                    message_ids: ids,
                };
                match self.commit(change).await.map(|a| match a {
                    Applied::Deleted(ids) => ids,
                    _ => Vec::new(),
                }) {
                    Ok(ids) if !ids.is_empty() => {
                        self.ctx.discard_blobs(
                            chunk
                                .iter()
                                .filter(|(id, _)| ids.contains(id))
                                .flat_map(|(_, keys)| keys.iter().cloned())
                                .collect(),
                        );
                        self.emit(
                            Audience::Channel(ch),
                            GuildEvent::MessageDeleteBulk(MessageDeleteBulkData {
                                ids,
                                channel_id: ch,
                                guild_id: Some(self.state.id()),
                            }),
                        )
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(channel_id = %ch, error = %e, "ban cleanup could not delete messages")
                    }
                }
            }
        }
    }

    pub(super) async fn unban(
        &mut self,
        actor: Snowflake,
        user: Snowflake,
    ) -> Result<(), ApiError> {
        self.state
            .require_guild(actor, Permissions::BAN_MEMBERS, self.now())?;
        if !self.state.bans.contains_key(&user) {
            return Err(ApiError::unknown(ErrorCode::UnknownBan));
        }
        let gid = self.state.id();
        let entry = self.audit_entry(audit_action::MEMBER_BAN_REMOVE, Some(user));
        self.write_logged(
            vec![GuildWrite::DeleteBan {
                guild_id: gid,
                user_id: user,
            }],
            vec![entry],
        )
        .await?;
        self.state.bans.remove(&user);
        let u = self.user_or_deleted(user).await?;
        self.emit(
            Audience::Guild,
            GuildEvent::BanRemove(GuildUserData {
                guild_id: gid,
                user: u,
            }),
        );
        Ok(())
    }

    // ------------------------------------------------------------ invites

    /// The invite as Discord shows it; `with_meta` adds uses and limits for managers.
    pub(super) async fn wire_invite(
        &self,
        i: &InviteRecord,
        with_meta: bool,
    ) -> Result<Invite, ApiError> {
        let channel = self
            .state
            .channels
            .get(&i.channel_id)
            .map(|c| InviteChannel {
                id: c.id,
                name: c.name.clone(),
                kind: c.kind,
            });
        let inviter = self
            .ctx
            .users
            .get(i.inviter_id)
            .await
            .map_err(GuildContext::store_error)?;
        let g = &self.state.guild;
        Ok(Invite {
            kind: 0,
            code: i.code.clone(),
            guild: Some(InviteGuild {
                id: g.id,
                name: g.name.clone(),
                icon: g.icon.clone(),
                features: g.features.clone(),
            }),
            channel,
            inviter,
            expires_at: i.expires_at(),
            approximate_member_count: Some(self.state.members.len() as u64),
            uses: with_meta.then_some(i.uses),
            max_uses: with_meta.then_some(i.max_uses),
            max_age: with_meta.then_some(i.max_age),
            temporary: with_meta.then_some(i.temporary),
            created_at: with_meta.then_some(i.created_at),
        })
    }

    pub(super) async fn create_invite(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        body: CreateInvite,
    ) -> Result<Invite, ApiError> {
        let now = self.now();
        self.state
            .require_channel(actor, ch, Permissions::CREATE_INSTANT_INVITE, now)?;
        body.validate()?;
        let max_age = body.max_age.unwrap_or(86_400);
        let max_uses = body.max_uses.unwrap_or(0);
        let temporary = body.temporary.unwrap_or(false);
        if !body.unique.unwrap_or(false)
            && let Some(existing) = self.state.invites.values().find(|i| {
                i.channel_id == ch
                    && i.inviter_id == actor
                    && i.max_age == max_age
                    && i.max_uses == max_uses
                    && i.temporary == temporary
                    && !i.is_expired(now)
            })
        {
            return self.wire_invite(existing, true).await;
        }
        if self.state.invites.len() >= self.ctx.limits.max_invites {
            return Err(ApiError::new(
                400,
                ErrorCode::MaxInvites,
                format!(
                    "Maximum number of invites reached ({})",
                    self.ctx.limits.max_invites
                ),
            ));
        }
        // A fresh random code colliding is rare; a few tries make failure practically impossible.
        let mut last_err = None;
        for _ in 0..4 {
            let code: String = rand::rng()
                .sample_iter(&Alphanumeric)
                .take(8)
                .map(char::from)
                .collect();
            let rec = InviteRecord {
                code: code.clone(),
                guild_id: self.state.id(),
                channel_id: ch,
                inviter_id: actor,
                max_age,
                max_uses,
                uses: 0,
                temporary,
                created_at: now,
            };
            let entry = AuditLogEntry {
                changes: changes(None, Some(&rec), INVITE_SKIP),
                ..self.audit_entry(audit_action::INVITE_CREATE, None)
            };
            let change = Change::Guild {
                guild_id: self.state.id(),
                writes: vec![
                    GuildWrite::PutInvite(rec.clone()),
                    GuildWrite::PutAuditEntry {
                        guild_id: self.state.id(),
                        entry: entry.clone(),
                    },
                ],
            };
            match self.try_commit(change).await {
                Ok(_) => {
                    self.announce(vec![entry]);
                    self.state.invites.insert(code, rec.clone());
                    let invite = self.wire_invite(&rec, true).await?;
                    self.emit(
                        Audience::ChannelManagers(ch),
                        GuildEvent::InviteCreate(InviteCreateData::from_invite(
                            self.state.id(),
                            ch,
                            &invite,
                        )),
                    );
                    return Ok(invite);
                }
                Err(StoreError::Conflict(_)) => last_err = Some(ApiError::internal()),
                Err(e) => return Err(GuildContext::store_error(e)),
            }
        }
        Err(last_err.unwrap_or_else(ApiError::internal))
    }

    async fn wire_invites(
        &self,
        filter: impl Fn(&InviteRecord) -> bool,
    ) -> Result<Vec<Invite>, ApiError> {
        let now = self.now();
        let mut list: Vec<&InviteRecord> = self
            .state
            .invites
            .values()
            .filter(|i| filter(i) && !i.is_expired(now))
            .collect();
        list.sort_by_key(|i| (i.created_at, i.code.clone()));
        let mut out = Vec::with_capacity(list.len());
        for i in list {
            out.push(self.wire_invite(i, true).await?);
        }
        Ok(out)
    }

    pub(super) async fn list_guild_invites(
        &self,
        actor: Snowflake,
    ) -> Result<Vec<Invite>, ApiError> {
        self.state
            .require_guild(actor, Permissions::MANAGE_GUILD, self.now())?;
        self.wire_invites(|_| true).await
    }

    pub(super) async fn list_channel_invites(
        &self,
        actor: Snowflake,
        ch: Snowflake,
    ) -> Result<Vec<Invite>, ApiError> {
        self.state
            .require_channel(actor, ch, Permissions::MANAGE_CHANNELS, self.now())?;
        self.wire_invites(|i| i.channel_id == ch).await
    }

    pub(super) async fn delete_invite(
        &mut self,
        actor: Snowflake,
        code: String,
    ) -> Result<Invite, ApiError> {
        let now = self.now();
        let rec = self
            .state
            .invites
            .get(&code)
            .cloned()
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownInvite))?;
        let guild_level = self.state.guild_permissions(actor, now)?;
        let in_channel = self
            .state
            .channel_permissions(actor, rec.channel_id, now)
            .unwrap_or_default();
        if !guild_level.contains(Permissions::MANAGE_GUILD)
            && !in_channel.contains(Permissions::MANAGE_CHANNELS)
        {
            return Err(ApiError::missing_permissions());
        }
        let entry = AuditLogEntry {
            changes: changes(Some(&rec), None, INVITE_SKIP),
            ..self.audit_entry(audit_action::INVITE_DELETE, None)
        };
        self.write_logged(
            vec![GuildWrite::DeleteInvite { code: code.clone() }],
            vec![entry],
        )
        .await?;
        let wire = self.wire_invite(&rec, false).await?;
        self.state.invites.remove(&code);
        self.emit(
            Audience::ChannelManagers(rec.channel_id),
            GuildEvent::InviteDelete(InviteDeleteData {
                channel_id: rec.channel_id,
                guild_id: self.state.id(),
                code,
            }),
        );
        Ok(wire)
    }

    fn live_invite(&self, code: &str) -> Result<InviteRecord, ApiError> {
        self.state
            .invites
            .get(code)
            .filter(|i| !i.is_expired(self.now()))
            .cloned()
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownInvite))
    }

    pub(super) async fn get_invite(&self, code: String) -> Result<Invite, ApiError> {
        let rec = self.live_invite(&code)?;
        self.wire_invite(&rec, false).await
    }

    pub(super) async fn accept_invite(
        &mut self,
        actor: Snowflake,
        code: String,
    ) -> Result<Invite, ApiError> {
        let mut rec = self.live_invite(&code)?;
        if self.state.bans.contains_key(&actor) {
            return Err(ApiError::new(
                403,
                ErrorCode::Banned,
                "You are banned from this guild.",
            ));
        }
        if self.state.members.contains_key(&actor) {
            return self.wire_invite(&rec, false).await;
        }
        self.guild_count_allows(actor).await?;
        rec.uses += 1;
        let member = self.new_member(actor, Vec::new());
        self.write(vec![
            GuildWrite::PutMember(member.clone()),
            GuildWrite::PutInvite(rec.clone()),
        ])
        .await?;
        self.state.invites.insert(code, rec.clone());
        self.add_member_state(member).await?;
        self.wire_invite(&rec, false).await
    }

    async fn guild_count_allows(&self, user: Snowflake) -> Result<(), ApiError> {
        let n = self
            .ctx
            .stores
            .guilds
            .user_guilds(user)
            .await
            .map_err(GuildContext::store_error)?
            .len();
        if n >= self.ctx.limits.max_guilds_per_user {
            return Err(ApiError::new(
                400,
                ErrorCode::MaxGuilds,
                format!(
                    "Maximum number of guilds reached ({})",
                    self.ctx.limits.max_guilds_per_user
                ),
            ));
        }
        Ok(())
    }

    fn new_member(&self, user: Snowflake, roles: Vec<Snowflake>) -> MemberRecord {
        MemberRecord::new(self.state.id(), user, roles, self.now())
    }

    async fn add_member_state(&mut self, member: MemberRecord) -> Result<(), ApiError> {
        self.state.members.insert(member.user_id, member.clone());
        let wire = self.wire_member(&member).await?;
        self.emit(
            Audience::Guild,
            GuildEvent::MemberAdd(MemberData {
                guild_id: self.state.id(),
                member: wire,
            }),
        );
        // The member's gateway sessions follow the guild once the gateway side hears of the
        // join (`GatewayService::joined_guild`), as they do for a guild they create.
        Ok(())
    }

    pub(super) async fn add_bot(
        &mut self,
        actor: Snowflake,
        bot: Snowflake,
        app_name: String,
        permissions: Permissions,
    ) -> Result<(), ApiError> {
        let held = self
            .state
            .require_guild(actor, Permissions::MANAGE_GUILD, self.now())?;
        if self.state.bans.contains_key(&bot) {
            return Err(ApiError::new(
                403,
                ErrorCode::Banned,
                "This bot is banned from the guild.",
            ));
        }
        if self.state.members.contains_key(&bot) {
            return Ok(());
        }
        if !(actor == self.state.guild.owner_id
            || held.contains(Permissions::ADMINISTRATOR)
            || held.contains(permissions))
        {
            return Err(ApiError::missing_permissions());
        }
        // The managed role and the membership are written in one batch: all or nothing.
        let mut role_rows = Vec::new();
        let mut roles = Vec::new();
        if !permissions.is_empty() {
            let role = Role {
                id: self.ctx.ids.next_id(),
                name: app_name.chars().take(100).collect(),
                color: 0,
                hoist: false,
                icon: None,
                unicode_emoji: None,
                position: 1,
                permissions,
                managed: true,
                mentionable: false,
                tags: Some(RoleTags { bot_id: Some(bot) }),
                flags: 0,
            };
            roles.push(role.id);
            role_rows = self.plan_role_at_bottom(&role);
        }
        let member = self.new_member(bot, roles);
        let mut writes = self.role_writes(&role_rows);
        writes.push(GuildWrite::PutMember(member.clone()));
        let entry = self.audit_entry(audit_action::BOT_ADD, Some(bot));
        self.write_logged(writes, vec![entry]).await?;
        if !role_rows.is_empty() {
            self.apply_new_role(role_rows);
        }
        self.add_member_state(member).await?;
        Ok(())
    }
}
