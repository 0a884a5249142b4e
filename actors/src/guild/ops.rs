//! Guild, channel and role commands, and the dispatch of every command to its handler.

use enrichment_protocol::models::{Channel, ChannelType, PartialGuild, PermissionOverwrite, Role};
use enrichment_protocol::rest::{
    ChannelPosition, CreateChannel, EditOverwrite, ModifyChannel, ModifyGuild, RoleBody,
    RolePosition,
};
use enrichment_protocol::{ApiError, ErrorCode, FormErrors, Permissions, Snowflake};
use enrichment_storage::GuildWrite;
use ractor::RpcReplyPort;

use super::actor::GuildActorState;
use super::command::{Command, GuildRequest, GuildResult, Reply};
use super::text::normalize_channel_name;
use crate::events::{Audience, GuildDeleteData, GuildEvent, RoleData, RoleDeleteData};

impl GuildActorState {
    /// Runs one command. Message writes reply later, from the commit queue; everything else
    /// replies before the next command is taken.
    pub(super) async fn dispatch(&mut self, req: GuildRequest, port: RpcReplyPort<GuildResult>) {
        let actor = req.actor;
        let result = match req.command {
            Command::CreateMessage(ch, body) => {
                return self
                    .create_message(actor, ch, *body, Vec::new(), port)
                    .await;
            }
            Command::CreateMessageWithFiles {
                channel_id,
                body,
                attachments,
            } => {
                return self
                    .create_message(actor, channel_id, *body, attachments, port)
                    .await;
            }
            Command::CheckUpload(ch) => self.check_upload(actor, ch),
            Command::EditMessage(ch, id, body) => {
                return self.edit_message(actor, ch, id, body, port).await;
            }
            Command::DeleteMessage(ch, id) => {
                return self.delete_message(actor, ch, id, port).await;
            }
            Command::GetMessage(ch, id) => return self.get_message(actor, ch, id, port),
            Command::ListMessages {
                channel_id,
                anchor,
                limit,
            } => {
                return self.list_messages(actor, channel_id, anchor, limit, port);
            }
            Command::ListReactions {
                channel_id,
                message_id,
                emoji,
                after,
                limit,
            } => {
                return self
                    .list_reactions(actor, channel_id, message_id, emoji, after, limit, port)
                    .await;
            }
            Command::ListPins(ch) => return self.list_pins(actor, ch, port),
            Command::GetGuild => self.get_guild(actor),
            Command::PartialGuild => self.partial_guild(actor),
            Command::ModifyGuild(body) => self.modify_guild(actor, body).await,
            Command::DeleteGuild => self.delete_guild(actor).await,
            Command::ListChannels => self.list_channels(actor),
            Command::CreateChannel(body) => self.create_channel(actor, body).await,
            Command::ChannelPositions(body) => self.channel_positions(actor, body).await,
            Command::GetChannel(ch) => self.get_channel(actor, ch),
            Command::ModifyChannel(ch, body) => self.modify_channel(actor, ch, body).await,
            Command::DeleteChannel(ch) => self.delete_channel(actor, ch).await,
            Command::EditOverwrite {
                channel_id,
                target,
                body,
            } => self.edit_overwrite(actor, channel_id, target, body).await,
            Command::DeleteOverwrite { channel_id, target } => {
                self.delete_overwrite(actor, channel_id, target).await
            }
            Command::ListRoles => self.list_roles(actor),
            Command::CreateRole(body) => self.create_role(actor, body).await,
            Command::ModifyRole(id, body) => self.modify_role(actor, id, body).await,
            Command::DeleteRole(id) => self.delete_role(actor, id).await,
            Command::RolePositions(body) => self.role_positions(actor, body).await,
            Command::ListMembers { limit, after } => self.list_members(actor, limit, after).await,
            Command::GetMember(u) => self.get_member(actor, u).await,
            Command::ModifyMember(u, body) => self.modify_member(actor, u, body).await,
            Command::ModifyCurrentMember { nick } => self.modify_current_member(actor, nick).await,
            Command::AddMemberRole { user_id, role_id } => {
                self.member_role(actor, user_id, role_id, true).await
            }
            Command::RemoveMemberRole { user_id, role_id } => {
                self.member_role(actor, user_id, role_id, false).await
            }
            Command::Kick(u) => self.kick(actor, u).await,
            Command::Leave => self.leave(actor).await,
            Command::ListBans => self.list_bans(actor).await,
            Command::GetBan(u) => self.get_ban(actor, u).await,
            Command::Ban {
                user_id,
                delete_message_seconds,
            } => {
                self.ban(actor, user_id, delete_message_seconds, req.reason)
                    .await
            }
            Command::Unban(u) => self.unban(actor, u).await,
            Command::CreateInvite { channel_id, body } => {
                self.create_invite(actor, channel_id, body).await
            }
            Command::ListGuildInvites => self.list_guild_invites(actor).await,
            Command::ListChannelInvites(ch) => self.list_channel_invites(actor, ch).await,
            Command::DeleteInvite(code) => self.delete_invite(actor, code).await,
            Command::GetInvite(code) => self.get_invite(code).await,
            Command::AcceptInvite(code) => self.accept_invite(actor, code).await,
            Command::AddBot {
                bot_user_id,
                application_name,
                permissions,
            } => {
                self.add_bot(actor, bot_user_id, application_name, permissions)
                    .await
            }
            Command::BulkDelete(ch, ids) => self.bulk_delete(actor, ch, ids).await,
            Command::AddReaction {
                channel_id,
                message_id,
                emoji,
            } => {
                self.add_reaction(actor, channel_id, message_id, emoji)
                    .await
            }
            Command::RemoveReaction {
                channel_id,
                message_id,
                emoji,
                user_id,
            } => {
                self.remove_reaction(actor, channel_id, message_id, emoji, user_id)
                    .await
            }
            Command::RemoveAllReactions {
                channel_id,
                message_id,
                emoji,
            } => {
                self.remove_all_reactions(actor, channel_id, message_id, emoji)
                    .await
            }
            Command::Pin(ch, id) => self.set_pin(actor, ch, id, true).await,
            Command::Unpin(ch, id) => self.set_pin(actor, ch, id, false).await,
            Command::Typing(ch) => self.typing(actor, ch).await,
            Command::Subscribe(session) => self.subscribe(session).await,
            Command::Presence(p) => self.presence(actor, p),
            Command::RequestMembers(req, session) => self.request_members(session, req).await,
        };
        let _ = port.send(result);
    }

    // ------------------------------------------------------------ guild

    fn get_guild(&self, actor: Snowflake) -> GuildResult {
        self.state.guild_permissions(actor, self.now())?;
        Ok(Reply::Guild(self.state.wire_guild()))
    }

    fn partial_guild(&self, actor: Snowflake) -> GuildResult {
        let permissions = self.state.guild_permissions(actor, self.now())?;
        let g = &self.state.guild;
        Ok(Reply::PartialGuild(PartialGuild {
            id: g.id,
            name: g.name.clone(),
            icon: g.icon.clone(),
            banner: g.banner.clone(),
            owner: g.owner_id == actor,
            permissions,
            features: g.features.clone(),
        }))
    }

    async fn modify_guild(&mut self, actor: Snowflake, body: ModifyGuild) -> GuildResult {
        self.state
            .require_guild(actor, Permissions::MANAGE_GUILD, self.now())?;
        let mut g = self.state.guild.clone();
        let mut e = FormErrors::default();
        if let Some(n) = body.name {
            g.name = n.trim().to_owned();
        }
        if let Some(d) = body.description {
            g.description = d;
        }
        if let Some(i) = body.icon {
            g.icon = i;
        }
        for (field, value, target) in [
            (
                "system_channel_id",
                body.system_channel_id,
                &mut g.system_channel_id,
            ),
            ("afk_channel_id", body.afk_channel_id, &mut g.afk_channel_id),
        ] {
            if let Some(v) = value {
                if let Some(id) = v
                    && !self.state.channels.contains_key(&id)
                {
                    e.add(&[field], "CHANNEL_INVALID", "Unknown channel.");
                }
                *target = v;
            }
        }
        if let Some(t) = body.afk_timeout {
            g.afk_timeout = t;
        }
        if let Some(v) = body.verification_level {
            g.verification_level = v;
        }
        if let Some(v) = body.default_message_notifications {
            g.default_message_notifications = v;
        }
        if let Some(v) = body.explicit_content_filter {
            g.explicit_content_filter = v;
        }
        if let Some(l) = body.preferred_locale {
            g.preferred_locale = l;
        }
        if let Some(owner) = body.owner_id {
            if actor != self.state.guild.owner_id {
                return Err(ApiError::missing_permissions());
            }
            if !self.state.members.contains_key(&owner) {
                e.add(
                    &["owner_id"],
                    "GUILD_OWNER_INVALID",
                    "The new owner must be a member.",
                );
            }
            g.owner_id = owner;
        }
        e.finish()?;
        self.write(vec![GuildWrite::PutGuild(g.clone())]).await?;
        self.state.guild = g;
        let wire = self.state.wire_guild();
        self.emit(Audience::Guild, GuildEvent::GuildUpdate(wire.clone()));
        Ok(Reply::Guild(wire))
    }

    async fn delete_guild(&mut self, actor: Snowflake) -> GuildResult {
        self.state.guild_permissions(actor, self.now())?;
        if actor != self.state.guild.owner_id {
            return Err(ApiError::missing_permissions());
        }
        let id = self.state.id();
        self.write(vec![GuildWrite::DeleteGuild(id)]).await?;
        let members: Vec<Snowflake> = self.state.members.keys().copied().collect();
        let channels: Vec<Snowflake> = self.state.channels.keys().copied().collect();
        let messages = self.ctx.stores.messages.clone();
        // The guild is gone once its metadata is; message rows and attachment blobs are
        // unreachable from then on and are cleared in the background.
        self.ctx.discard_channel_blobs(channels.clone());
        tokio::spawn(async move {
            for c in channels {
                if let Err(e) = messages.delete_channel(c).await {
                    tracing::warn!(channel_id = %c, error = %e, "could not clear messages of a deleted guild");
                }
            }
        });
        self.emit(
            Audience::Users(members),
            GuildEvent::GuildDelete(GuildDeleteData {
                id,
                unavailable: false,
            }),
        );
        self.deleted = true;
        Ok(Reply::Done)
    }

    // ------------------------------------------------------------ channels

    fn sorted_channels(&self, filter: impl Fn(&Channel) -> bool) -> Vec<Channel> {
        let mut list: Vec<Channel> = self
            .state
            .channels
            .values()
            .filter(|c| filter(c))
            .cloned()
            .collect();
        list.sort_by_key(|c| (c.position, c.id));
        list.into_iter()
            .map(|c| self.with_last_message(c))
            .collect()
    }

    pub(super) fn with_last_message(&self, mut c: Channel) -> Channel {
        c.last_message_id = self.last_message.get(&c.id).copied();
        c
    }

    fn list_channels(&self, actor: Snowflake) -> GuildResult {
        let now = self.now();
        let member = self
            .state
            .members
            .get(&actor)
            .ok_or_else(ApiError::missing_access)?;
        Ok(Reply::Channels(self.sorted_channels(|c| {
            self.state
                .channel_permissions_of(member, c, now)
                .contains(Permissions::VIEW_CHANNEL)
        })))
    }

    fn check_parent(&self, e: &mut FormErrors, kind: ChannelType, parent: Option<Snowflake>) {
        if let Some(p) = parent {
            match self.state.channels.get(&p) {
                Some(c)
                    if c.kind == ChannelType::GUILD_CATEGORY
                        && kind != ChannelType::GUILD_CATEGORY => {}
                _ => e.add(
                    &["parent_id"],
                    "CHANNEL_PARENT_INVALID",
                    "Invalid parent channel.",
                ),
            }
        }
    }

    /// Overwrites may only name existing roles or members, and a non-administrator may only
    /// allow or deny permissions it holds itself.
    fn check_overwrites(
        &self,
        actor: Snowflake,
        held: Permissions,
        list: &[PermissionOverwrite],
    ) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        for (i, o) in list.iter().enumerate() {
            let known = if o.kind == 0 {
                self.state.roles.contains_key(&o.id)
            } else {
                self.state.members.contains_key(&o.id)
            };
            if !known {
                let i = i.to_string();
                e.add(
                    &["permission_overwrites", &i, "id"],
                    "UNKNOWN_OVERWRITE_TARGET",
                    "Unknown role or member.",
                );
            }
        }
        e.finish()?;
        let wants = list
            .iter()
            .fold(Permissions::empty(), |acc, o| acc | o.allow | o.deny);
        if actor != self.state.guild.owner_id
            && !held.contains(Permissions::ADMINISTRATOR)
            && !held.contains(wants)
        {
            return Err(ApiError::missing_permissions());
        }
        Ok(())
    }

    async fn create_channel(&mut self, actor: Snowflake, body: CreateChannel) -> GuildResult {
        let held = self
            .state
            .require_guild(actor, Permissions::MANAGE_CHANNELS, self.now())?;
        if self.state.channels.len() >= self.ctx.limits.max_channels {
            return Err(ApiError::new(
                400,
                ErrorCode::MaxChannels,
                format!(
                    "Maximum number of guild channels reached ({})",
                    self.ctx.limits.max_channels
                ),
            ));
        }
        let kind = body.kind.unwrap_or(ChannelType::GUILD_TEXT);
        let mut e = FormErrors::default();
        self.check_parent(&mut e, kind, body.parent_id);
        e.finish()?;
        let overwrites = body.permission_overwrites.unwrap_or_default();
        if !overwrites.is_empty() {
            if !held.contains(Permissions::MANAGE_ROLES) {
                return Err(ApiError::missing_permissions());
            }
            self.check_overwrites(actor, held, &overwrites)?;
        }
        let position = body.position.unwrap_or_else(|| {
            self.state
                .channels
                .values()
                .map(|c| c.position + 1)
                .max()
                .unwrap_or(0)
        });
        let channel = Channel {
            id: self.ctx.ids.next_id(),
            kind,
            guild_id: Some(self.state.id()),
            position,
            permission_overwrites: overwrites,
            name: normalize_channel_name(kind, &body.name),
            topic: body.topic.filter(|t| !t.is_empty()),
            nsfw: body.nsfw.unwrap_or(false),
            last_message_id: None,
            bitrate: kind
                .is_voice()
                .then(|| body.bitrate.unwrap_or(64_000).clamp(8_000, 384_000)),
            user_limit: kind
                .is_voice()
                .then(|| body.user_limit.unwrap_or(0).min(99)),
            rate_limit_per_user: body.rate_limit_per_user.unwrap_or(0),
            parent_id: body.parent_id,
            last_pin_timestamp: None,
            flags: 0,
        };
        self.write(vec![GuildWrite::PutChannel(channel.clone())])
            .await?;
        self.state.channels.insert(channel.id, channel.clone());
        self.emit(
            Audience::Channel(channel.id),
            GuildEvent::ChannelCreate(channel.clone()),
        );
        Ok(Reply::Channel(channel))
    }

    async fn channel_positions(
        &mut self,
        actor: Snowflake,
        body: Vec<ChannelPosition>,
    ) -> GuildResult {
        self.state
            .require_guild(actor, Permissions::MANAGE_CHANNELS, self.now())?;
        let mut changed = Vec::new();
        let mut e = FormErrors::default();
        for (i, p) in body.iter().enumerate() {
            let i = i.to_string();
            let Some(mut c) = self.state.channels.get(&p.id).cloned() else {
                e.add(&[&i, "id"], "CHANNEL_INVALID", "Unknown channel.");
                continue;
            };
            if let Some(Some(pos)) = p.position {
                c.position = pos;
            }
            if let Some(parent) = p.parent_id {
                self.check_parent(&mut e, c.kind, parent);
                c.parent_id = parent;
                if p.lock_permissions == Some(Some(true))
                    && let Some(parent) = parent.and_then(|id| self.state.channels.get(&id))
                {
                    c.permission_overwrites = parent.permission_overwrites.clone();
                }
            }
            changed.push(c);
        }
        e.finish()?;
        self.write(
            changed
                .iter()
                .cloned()
                .map(GuildWrite::PutChannel)
                .collect(),
        )
        .await?;
        for c in changed {
            self.state.channels.insert(c.id, c.clone());
            let c = self.with_last_message(c);
            self.emit(Audience::Channel(c.id), GuildEvent::ChannelUpdate(c));
        }
        Ok(Reply::Done)
    }

    fn get_channel(&self, actor: Snowflake, ch: Snowflake) -> GuildResult {
        self.state
            .require_channel(actor, ch, Permissions::VIEW_CHANNEL, self.now())?;
        Ok(Reply::Channel(
            self.with_last_message(self.state.channel(ch)?.clone()),
        ))
    }

    async fn modify_channel(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        body: ModifyChannel,
    ) -> GuildResult {
        let held =
            self.state
                .require_channel(actor, ch, Permissions::MANAGE_CHANNELS, self.now())?;
        let mut c = self.state.channel(ch)?.clone();
        let mut e = FormErrors::default();
        if let Some(n) = body.name {
            c.name = normalize_channel_name(c.kind, &n);
        }
        if let Some(p) = body.position {
            c.position = p;
        }
        if let Some(t) = body.topic {
            c.topic = t.filter(|t| !t.is_empty());
        }
        if let Some(n) = body.nsfw {
            c.nsfw = n;
        }
        if let Some(r) = body.rate_limit_per_user {
            c.rate_limit_per_user = r;
        }
        if let Some(parent) = body.parent_id {
            self.check_parent(&mut e, c.kind, parent);
            c.parent_id = parent;
        }
        if c.kind.is_voice() {
            if let Some(b) = body.bitrate {
                c.bitrate = Some(b.clamp(8_000, 384_000));
            }
            if let Some(u) = body.user_limit {
                c.user_limit = Some(u.min(99));
            }
        }
        e.finish()?;
        if let Some(ows) = body.permission_overwrites {
            if !held.contains(Permissions::MANAGE_ROLES) {
                return Err(ApiError::missing_permissions());
            }
            self.check_overwrites(actor, held, &ows)?;
            c.permission_overwrites = ows;
        }
        Ok(Reply::Channel(self.put_channel_update(c).await?))
    }

    async fn delete_channel(&mut self, actor: Snowflake, ch: Snowflake) -> GuildResult {
        self.state
            .require_channel(actor, ch, Permissions::MANAGE_CHANNELS, self.now())?;
        let c = self.state.channel(ch)?.clone();
        let gid = self.state.id();
        let mut writes = vec![GuildWrite::DeleteChannel {
            guild_id: gid,
            channel_id: ch,
        }];
        let codes: Vec<String> = self
            .state
            .invites
            .values()
            .filter(|i| i.channel_id == ch)
            .map(|i| i.code.clone())
            .collect();
        writes.extend(
            codes
                .iter()
                .map(|code| GuildWrite::DeleteInvite { code: code.clone() }),
        );
        // Children of a deleted category become top-level, as on Discord.
        let orphans: Vec<Channel> = self
            .state
            .channels
            .values()
            .filter(|o| o.parent_id == Some(ch))
            .map(|o| Channel {
                parent_id: None,
                ..o.clone()
            })
            .collect();
        writes.extend(orphans.iter().cloned().map(GuildWrite::PutChannel));
        let mut guild = self.state.guild.clone();
        let guild_changed = [&mut guild.system_channel_id, &mut guild.afk_channel_id]
            .into_iter()
            .fold(false, |acc, slot| {
                if *slot == Some(ch) {
                    *slot = None;
                    true
                } else {
                    acc
                }
            });
        if guild_changed {
            writes.push(GuildWrite::PutGuild(guild.clone()));
        }
        self.write(writes).await?;
        if let Err(e) = self.ctx.stores.messages.delete_channel(ch).await {
            tracing::warn!(channel_id = %ch, error = %e, "could not clear messages of a deleted channel");
        }
        self.ctx.discard_channel_blobs(vec![ch]);
        self.state.channels.remove(&ch);
        for code in codes {
            self.state.invites.remove(&code);
        }
        for o in orphans {
            self.emit(
                Audience::Channel(o.id),
                GuildEvent::ChannelUpdate(o.clone()),
            );
            self.state.channels.insert(o.id, o);
        }
        if guild_changed {
            self.state.guild = guild;
        }
        self.last_message.remove(&ch);
        let c = self.with_last_message(c);
        self.emit(Audience::Guild, GuildEvent::ChannelDelete(c.clone()));
        Ok(Reply::Channel(c))
    }

    async fn edit_overwrite(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        target: Snowflake,
        body: EditOverwrite,
    ) -> GuildResult {
        let held = self
            .state
            .require_channel(actor, ch, Permissions::MANAGE_ROLES, self.now())?;
        let ow = PermissionOverwrite {
            id: target,
            kind: body.kind,
            allow: body.allow.unwrap_or_default(),
            deny: body.deny.unwrap_or_default(),
        };
        self.check_overwrites(actor, held, std::slice::from_ref(&ow))?;
        let mut c = self.state.channel(ch)?.clone();
        c.permission_overwrites.retain(|o| o.id != target);
        c.permission_overwrites.push(ow);
        self.put_channel_update(c).await?;
        Ok(Reply::Done)
    }

    async fn delete_overwrite(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        target: Snowflake,
    ) -> GuildResult {
        self.state
            .require_channel(actor, ch, Permissions::MANAGE_ROLES, self.now())?;
        let mut c = self.state.channel(ch)?.clone();
        let before = c.permission_overwrites.len();
        c.permission_overwrites.retain(|o| o.id != target);
        if c.permission_overwrites.len() != before {
            self.put_channel_update(c).await?;
        }
        Ok(Reply::Done)
    }

    /// Persists a changed channel, keeps it, and announces it; returns the announced form.
    async fn put_channel_update(&mut self, c: Channel) -> Result<Channel, ApiError> {
        self.write(vec![GuildWrite::PutChannel(c.clone())]).await?;
        self.state.channels.insert(c.id, c.clone());
        let c = self.with_last_message(c);
        self.emit(
            Audience::Channel(c.id),
            GuildEvent::ChannelUpdate(c.clone()),
        );
        Ok(c)
    }

    // ------------------------------------------------------------ roles

    fn list_roles(&self, actor: Snowflake) -> GuildResult {
        self.state.guild_permissions(actor, self.now())?;
        Ok(Reply::Roles(self.state.sorted_roles()))
    }

    /// A non-administrator may only hand out permissions it holds.
    fn check_grantable(
        &self,
        actor: Snowflake,
        held: Permissions,
        wanted: Permissions,
    ) -> Result<(), ApiError> {
        if actor == self.state.guild.owner_id
            || held.contains(Permissions::ADMINISTRATOR)
            || held.contains(wanted)
        {
            Ok(())
        } else {
            Err(ApiError::missing_permissions())
        }
    }

    async fn create_role(&mut self, actor: Snowflake, body: RoleBody) -> GuildResult {
        let held = self
            .state
            .require_guild(actor, Permissions::MANAGE_ROLES, self.now())?;
        if self.state.roles.len() >= self.ctx.limits.max_roles {
            return Err(ApiError::new(
                400,
                ErrorCode::MaxRoles,
                format!(
                    "Maximum number of server roles reached ({})",
                    self.ctx.limits.max_roles
                ),
            ));
        }
        let permissions = body
            .permissions
            .unwrap_or(self.state.role_permissions_or_default());
        self.check_grantable(actor, held, permissions)?;
        let role = Role {
            id: self.ctx.ids.next_id(),
            name: body.name.unwrap_or_else(|| "new role".into()),
            color: body.color.unwrap_or(0),
            hoist: body.hoist.unwrap_or(false),
            icon: None,
            unicode_emoji: body.unicode_emoji.flatten(),
            position: 1,
            permissions,
            managed: false,
            mentionable: body.mentionable.unwrap_or(false),
            tags: None,
            flags: 0,
        };
        let rows = self.plan_role_at_bottom(&role);
        self.write(self.role_writes(&rows)).await?;
        self.apply_new_role(rows);
        Ok(Reply::Role(role))
    }

    /// New roles go directly above @everyone, as on Discord, and the roles above shift up by
    /// one: returns every role row to write, the new one first.
    pub(super) fn plan_role_at_bottom(&self, role: &Role) -> Vec<Role> {
        let gid = self.state.id();
        let mut rows = vec![role.clone()];
        rows.extend(
            self.state
                .roles
                .values()
                .filter(|r| r.id != gid && r.position >= 1)
                .map(|r| Role {
                    position: r.position + 1,
                    ..r.clone()
                }),
        );
        rows
    }

    /// Applies planned role rows to memory after they were written, announcing the new role.
    pub(super) fn apply_new_role(&mut self, rows: Vec<Role>) {
        let gid = self.state.id();
        let created = rows.first().cloned();
        for r in rows {
            self.state.roles.insert(r.id, r);
        }
        if let Some(role) = created {
            self.emit(
                Audience::Guild,
                GuildEvent::RoleCreate(RoleData {
                    guild_id: gid,
                    role,
                }),
            );
        }
    }

    pub(super) fn role_writes(&self, rows: &[Role]) -> Vec<GuildWrite> {
        let gid = self.state.id();
        rows.iter()
            .map(|r| GuildWrite::PutRole {
                guild_id: gid,
                role: r.clone(),
            })
            .collect()
    }

    async fn modify_role(
        &mut self,
        actor: Snowflake,
        id: Snowflake,
        body: RoleBody,
    ) -> GuildResult {
        let held = self
            .state
            .require_guild(actor, Permissions::MANAGE_ROLES, self.now())?;
        let mut role = self.state.role(id)?.clone();
        if !self.state.can_manage_role(actor, &role) {
            return Err(ApiError::missing_permissions());
        }
        if let Some(p) = body.permissions {
            // Only newly granted bits need to be held; keeping existing ones is allowed.
            self.check_grantable(actor, held, p - role.permissions)?;
            role.permissions = p;
        }
        if let Some(n) = body.name
            && id != self.state.id()
        {
            role.name = n;
        }
        if let Some(c) = body.color {
            role.color = c;
        }
        if let Some(h) = body.hoist {
            role.hoist = h;
        }
        if let Some(m) = body.mentionable {
            role.mentionable = m;
        }
        if let Some(u) = body.unicode_emoji {
            role.unicode_emoji = u;
        }
        let gid = self.state.id();
        self.write(vec![GuildWrite::PutRole {
            guild_id: gid,
            role: role.clone(),
        }])
        .await?;
        self.state.roles.insert(id, role.clone());
        self.emit(
            Audience::Guild,
            GuildEvent::RoleUpdate(RoleData {
                guild_id: gid,
                role: role.clone(),
            }),
        );
        Ok(Reply::Role(role))
    }

    async fn delete_role(&mut self, actor: Snowflake, id: Snowflake) -> GuildResult {
        self.state
            .require_guild(actor, Permissions::MANAGE_ROLES, self.now())?;
        let gid = self.state.id();
        let role = self.state.role(id)?.clone();
        if id == gid {
            return Err(ApiError::form(
                &["role_id"],
                "ROLE_INVALID",
                "The @everyone role cannot be deleted.",
            ));
        }
        if role.managed || !self.state.can_manage_role(actor, &role) {
            return Err(ApiError::missing_permissions());
        }
        let mut writes = vec![GuildWrite::DeleteRole {
            guild_id: gid,
            role_id: id,
        }];
        let members: Vec<_> = self
            .state
            .members
            .values()
            .filter(|m| m.roles.contains(&id))
            .map(|m| {
                let mut m = m.clone();
                m.roles.retain(|r| *r != id);
                m
            })
            .collect();
        writes.extend(members.iter().cloned().map(GuildWrite::PutMember));
        let channels: Vec<Channel> = self
            .state
            .channels
            .values()
            .filter(|c| c.permission_overwrites.iter().any(|o| o.id == id))
            .map(|c| {
                let mut c = c.clone();
                c.permission_overwrites.retain(|o| o.id != id);
                c
            })
            .collect();
        writes.extend(channels.iter().cloned().map(GuildWrite::PutChannel));
        self.write(writes).await?;
        self.state.roles.remove(&id);
        for m in members {
            self.state.members.insert(m.user_id, m);
        }
        for c in channels {
            self.state.channels.insert(c.id, c.clone());
            self.emit(
                Audience::Channel(c.id),
                GuildEvent::ChannelUpdate(self.with_last_message(c)),
            );
        }
        self.emit(
            Audience::Guild,
            GuildEvent::RoleDelete(RoleDeleteData {
                guild_id: gid,
                role_id: id,
            }),
        );
        Ok(Reply::Done)
    }

    async fn role_positions(&mut self, actor: Snowflake, body: Vec<RolePosition>) -> GuildResult {
        self.state
            .require_guild(actor, Permissions::MANAGE_ROLES, self.now())?;
        let gid = self.state.id();
        let ceiling = self.state.highest_position(actor);
        let mut changed = Vec::new();
        let mut e = FormErrors::default();
        for (i, p) in body.iter().enumerate() {
            let i = i.to_string();
            let Some(mut role) = self.state.roles.get(&p.id).cloned() else {
                e.add(&[&i, "id"], "ROLE_INVALID", "Unknown role.");
                continue;
            };
            let Some(Some(pos)) = p.position else {
                continue;
            };
            if role.id == gid || pos < 1 {
                e.add(
                    &[&i, "position"],
                    "ROLE_POSITION_INVALID",
                    "Invalid role position.",
                );
                continue;
            }
            if !self.state.can_manage_role(actor, &role) || i64::from(pos) >= ceiling {
                return Err(ApiError::missing_permissions());
            }
            role.position = pos;
            changed.push(role);
        }
        e.finish()?;
        self.write(
            changed
                .iter()
                .map(|r| GuildWrite::PutRole {
                    guild_id: gid,
                    role: r.clone(),
                })
                .collect(),
        )
        .await?;
        for r in changed {
            self.state.roles.insert(r.id, r.clone());
            self.emit(
                Audience::Guild,
                GuildEvent::RoleUpdate(RoleData {
                    guild_id: gid,
                    role: r,
                }),
            );
        }
        Ok(Reply::Roles(self.state.sorted_roles()))
    }
}

impl super::state::GuildState {
    /// A new role's default permissions: those of @everyone, as Discord's client does.
    fn role_permissions_or_default(&self) -> Permissions {
        self.roles
            .get(&self.id())
            .map(|r| r.permissions)
            .unwrap_or_default()
    }
}
