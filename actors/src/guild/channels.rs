//! Channels: listing, creating, ordering, editing and deleting them, and their permission
//! overwrites.

use enrichment_protocol::models::{Channel, ChannelType, PermissionOverwrite};
use enrichment_protocol::rest::{ChannelPosition, CreateChannel, EditOverwrite, ModifyChannel};
use enrichment_protocol::{ApiError, ErrorCode, FormErrors, Permissions, Snowflake};
use enrichment_storage::GuildWrite;

use super::actor::GuildActorState;
use super::commit::Change;
use super::text::normalize_channel_name;
use crate::events::{Audience, GuildEvent};

impl GuildActorState {
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

    pub(super) fn list_channels(&self, actor: Snowflake) -> Result<Vec<Channel>, ApiError> {
        let now = self.now();
        let member = self
            .state
            .members
            .get(&actor)
            .ok_or_else(ApiError::missing_access)?;
        Ok(self.sorted_channels(|c| {
            self.state
                .channel_permissions_of(member, c, now)
                .contains(Permissions::VIEW_CHANNEL)
        }))
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

    pub(super) async fn create_channel(
        &mut self,
        actor: Snowflake,
        body: CreateChannel,
    ) -> Result<Channel, ApiError> {
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
            private: None,
        };
        let entries = self.channel_entries(None, Some(&channel));
        self.write_logged(vec![GuildWrite::PutChannel(channel.clone())], entries)
            .await?;
        self.state.channels.insert(channel.id, channel.clone());
        self.emit(
            Audience::Channel(channel.id),
            GuildEvent::ChannelCreate(channel.clone()),
        );
        Ok(channel)
    }

    pub(super) async fn channel_positions(
        &mut self,
        actor: Snowflake,
        body: Vec<ChannelPosition>,
    ) -> Result<(), ApiError> {
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
        let entries = changed
            .iter()
            .flat_map(|c| self.channel_entries(self.state.channels.get(&c.id), Some(c)))
            .collect();
        self.write_logged(
            changed
                .iter()
                .cloned()
                .map(GuildWrite::PutChannel)
                .collect(),
            entries,
        )
        .await?;
        for c in changed {
            self.state.channels.insert(c.id, c.clone());
            let c = self.with_last_message(c);
            self.emit(Audience::Channel(c.id), GuildEvent::ChannelUpdate(c));
        }
        Ok(())
    }

    pub(super) fn get_channel(&self, actor: Snowflake, ch: Snowflake) -> Result<Channel, ApiError> {
        self.state
            .require_channel(actor, ch, Permissions::VIEW_CHANNEL, self.now())?;
        Ok(self.with_last_message(self.state.channel(ch)?.clone()))
    }

    pub(super) async fn modify_channel(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        body: ModifyChannel,
    ) -> Result<Channel, ApiError> {
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
        self.put_channel_update(c).await
    }

    pub(super) async fn delete_channel(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
    ) -> Result<Channel, ApiError> {
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
        // Its webhooks go with it.
        writes.extend(self.webhooks_of_channel(ch));
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
        let entries = self.channel_entries(Some(&c), None);
        self.write_logged(writes, entries).await?;
        if let Err(e) = self.commit(Change::ClearChannel(ch)).await {
            tracing::warn!(channel_id = %ch, error = %e, "could not clear messages of a deleted channel");
        }
        self.ctx.discard_channel_blobs(vec![ch]);
        self.state.channels.remove(&ch);
        for code in codes {
            self.state.invites.remove(&code);
        }
        self.state.webhooks.retain(|_, w| w.channel_id != ch);
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
        Ok(c)
    }

    pub(super) async fn edit_overwrite(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        target: Snowflake,
        body: EditOverwrite,
    ) -> Result<(), ApiError> {
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
        Ok(())
    }

    pub(super) async fn delete_overwrite(
        &mut self,
        actor: Snowflake,
        ch: Snowflake,
        target: Snowflake,
    ) -> Result<(), ApiError> {
        self.state
            .require_channel(actor, ch, Permissions::MANAGE_ROLES, self.now())?;
        let mut c = self.state.channel(ch)?.clone();
        let before = c.permission_overwrites.len();
        c.permission_overwrites.retain(|o| o.id != target);
        if c.permission_overwrites.len() != before {
            self.put_channel_update(c).await?;
        }
        Ok(())
    }

    /// Persists a changed channel, keeps it, and announces it; returns the announced form.
    async fn put_channel_update(&mut self, c: Channel) -> Result<Channel, ApiError> {
        let entries = self.channel_entries(self.state.channels.get(&c.id), Some(&c));
        self.write_logged(vec![GuildWrite::PutChannel(c.clone())], entries)
            .await?;
        self.state.channels.insert(c.id, c.clone());
        let c = self.with_last_message(c);
        self.emit(
            Audience::Channel(c.id),
            GuildEvent::ChannelUpdate(c.clone()),
        );
        Ok(c)
    }
}
