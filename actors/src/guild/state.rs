//! A guild's live state, owned by its actor, and the permission questions asked of it.
//!
//! Everything here is in memory and synchronous: permission checks never touch storage.

use std::collections::{BTreeMap, HashMap};

use enrichment_protocol::models::{Channel, Emoji, Guild, Member, Role, User};
use enrichment_protocol::permissions::{self, MemberRef, RoleLookup};
use enrichment_protocol::{ApiError, ErrorCode, Permissions, Snowflake, Timestamp};
use enrichment_storage::{
    BanRecord, EmojiRecord, GuildSnapshot, InviteRecord, MemberRecord, WebhookRecord,
};

pub use super::private::PrivateState;

#[derive(Clone, Debug)]
pub struct GuildState {
    /// The guild row; its `roles` field is kept empty and filled in by [`GuildState::wire_guild`].
    pub guild: Guild,
    pub roles: BTreeMap<Snowflake, Role>,
    pub channels: BTreeMap<Snowflake, Channel>,
    pub members: HashMap<Snowflake, MemberRecord>,
    pub bans: HashMap<Snowflake, BanRecord>,
    pub invites: HashMap<String, InviteRecord>,
    pub webhooks: HashMap<Snowflake, WebhookRecord>,
    /// Custom emojis, in id order (the order the guild lists them).
    pub emojis: BTreeMap<Snowflake, EmojiRecord>,
    /// Set when the unit is a DM or group DM rather than a guild ([`super::private`]).
    pub private: Option<PrivateState>,
}

impl RoleLookup for GuildState {
    fn guild_id(&self) -> Snowflake {
        self.guild.id
    }
    fn owner_id(&self) -> Snowflake {
        self.guild.owner_id
    }
    fn role_permissions(&self, role_id: Snowflake) -> Option<Permissions> {
        self.roles.get(&role_id).map(|r| r.permissions)
    }
}

impl GuildState {
    /// Builds state from a snapshot; `None` when neither a guild row nor a private channel is
    /// in it.
    pub fn from_snapshot(s: GuildSnapshot) -> Option<Self> {
        let Some(mut guild) = s.guild else {
            return s.private.map(GuildState::from_private);
        };
        guild.roles.clear();
        Some(GuildState {
            guild,
            roles: s.roles.into_iter().map(|r| (r.id, r)).collect(),
            channels: s.channels.into_iter().map(|c| (c.id, c)).collect(),
            members: s.members.into_iter().map(|m| (m.user_id, m)).collect(),
            bans: s.bans.into_iter().map(|b| (b.user_id, b)).collect(),
            invites: s.invites.into_iter().map(|i| (i.code.clone(), i)).collect(),
            webhooks: s.webhooks.into_iter().map(|w| (w.id, w)).collect(),
            emojis: s.emojis.into_iter().map(|e| (e.id, e)).collect(),
            private: None,
        })
    }

    pub fn id(&self) -> Snowflake {
        self.guild.id
    }

    /// The `guild_id` this unit's messages and events carry: none for a private channel.
    pub fn wire_guild_id(&self) -> Option<Snowflake> {
        self.private.is_none().then_some(self.guild.id)
    }

    /// Roles ordered as Discord lists them: by position, then id.
    pub fn sorted_roles(&self) -> Vec<Role> {
        let mut roles: Vec<Role> = self.roles.values().cloned().collect();
        roles.sort_by_key(|r| (r.position, r.id));
        roles
    }

    pub fn wire_guild(&self) -> Guild {
        Guild {
            roles: self.sorted_roles(),
            emojis: self.wire_emojis(),
            ..self.guild.clone()
        }
    }

    /// The guild's custom emojis as its guild object and GUILD_EMOJIS_UPDATE list them.
    pub fn wire_emojis(&self) -> Vec<Emoji> {
        self.emojis
            .values()
            .map(|e| Self::wire_emoji(e, None))
            .collect()
    }

    /// A custom emoji on the wire; `user` is its uploader, for those who may manage it.
    pub fn wire_emoji(e: &EmojiRecord, user: Option<User>) -> Emoji {
        Emoji {
            roles: Some(e.roles.clone()),
            user,
            require_colons: Some(true),
            managed: Some(false),
            available: Some(true),
            ..Emoji::custom(e.id, e.name.clone(), e.animated)
        }
    }

    pub fn member(&self, user_id: Snowflake) -> Result<&MemberRecord, ApiError> {
        self.members
            .get(&user_id)
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownMember))
    }

    pub fn channel(&self, channel_id: Snowflake) -> Result<&Channel, ApiError> {
        self.channels
            .get(&channel_id)
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownChannel))
    }

    pub fn role(&self, role_id: Snowflake) -> Result<&Role, ApiError> {
        self.roles
            .get(&role_id)
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownRole))
    }

    fn member_ref<'a>(&self, m: &'a MemberRecord, now: Timestamp) -> MemberRef<'a> {
        MemberRef {
            user_id: m.user_id,
            role_ids: &m.roles,
            timed_out: m.communication_disabled_until.is_some_and(|t| t > now),
        }
    }

    /// Guild-level permissions of a member; a non-member gets `Missing Access`.
    pub fn guild_permissions(
        &self,
        user_id: Snowflake,
        now: Timestamp,
    ) -> Result<Permissions, ApiError> {
        let m = self
            .members
            .get(&user_id)
            .ok_or_else(ApiError::missing_access)?;
        Ok(permissions::guild_permissions(
            self,
            self.member_ref(m, now),
        ))
    }

    /// Permissions in a channel; a non-member gets `Missing Access`, an unknown channel 404.
    pub fn channel_permissions(
        &self,
        user_id: Snowflake,
        channel_id: Snowflake,
        now: Timestamp,
    ) -> Result<Permissions, ApiError> {
        let m = self
            .members
            .get(&user_id)
            .ok_or_else(ApiError::missing_access)?;
        let c = self.channel(channel_id)?;
        Ok(self.channel_permissions_of(m, c, now))
    }

    pub fn channel_permissions_of(
        &self,
        m: &MemberRecord,
        c: &Channel,
        now: Timestamp,
    ) -> Permissions {
        let ows: Vec<_> = c.permission_overwrites.iter().map(|o| o.as_ref()).collect();
        self.channel_permissions_with(m, &ows, c.kind.is_voice(), now)
    }

    /// The same, with the channel's overwrites already gathered: recipient-set computation asks
    /// this for every member of a channel and gathers them once.
    pub fn channel_permissions_with(
        &self,
        m: &MemberRecord,
        overwrites: &[permissions::OverwriteRef],
        is_voice: bool,
        now: Timestamp,
    ) -> Permissions {
        permissions::channel_permissions(self, self.member_ref(m, now), overwrites, is_voice)
    }

    /// Requires guild-level permissions.
    pub fn require_guild(
        &self,
        user_id: Snowflake,
        need: Permissions,
        now: Timestamp,
    ) -> Result<Permissions, ApiError> {
        let p = self.guild_permissions(user_id, now)?;
        if p.contains(need) {
            Ok(p)
        } else {
            Err(ApiError::missing_permissions())
        }
    }

    /// Requires VIEW_CHANNEL (else `Missing Access`, as Discord answers) and then `need`.
    pub fn require_channel(
        &self,
        user_id: Snowflake,
        channel_id: Snowflake,
        need: Permissions,
        now: Timestamp,
    ) -> Result<Permissions, ApiError> {
        let p = self.channel_permissions(user_id, channel_id, now)?;
        if !p.contains(Permissions::VIEW_CHANNEL) {
            return Err(ApiError::missing_access());
        }
        if p.contains(need) {
            Ok(p)
        } else {
            Err(ApiError::missing_permissions())
        }
    }

    /// The member's highest role position; the owner ranks above every role.
    pub fn highest_position(&self, user_id: Snowflake) -> i64 {
        if user_id == self.guild.owner_id {
            return i64::MAX;
        }
        self.members
            .get(&user_id)
            .map(|m| {
                m.roles
                    .iter()
                    .filter_map(|r| self.roles.get(r))
                    .map(|r| i64::from(r.position))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    /// Discord's hierarchy rule: an actor may act on a role strictly below its highest role.
    pub fn can_manage_role(&self, actor: Snowflake, role: &Role) -> bool {
        actor == self.guild.owner_id || self.highest_position(actor) > i64::from(role.position)
    }

    /// An actor may moderate a member whose highest role is strictly below its own; nobody
    /// moderates the owner.
    pub fn can_moderate(&self, actor: Snowflake, target: Snowflake) -> bool {
        if target == self.guild.owner_id {
            return false;
        }
        actor == self.guild.owner_id || self.highest_position(actor) > self.highest_position(target)
    }

    /// The wire member for a record.
    pub fn wire_member(m: &MemberRecord, user: Option<User>) -> Member {
        Member {
            user,
            nick: m.nick.clone(),
            avatar: m.avatar.clone(),
            roles: m.roles.clone(),
            joined_at: m.joined_at,
            premium_since: None,
            deaf: m.deaf,
            mute: m.mute,
            flags: m.flags,
            pending: false,
            communication_disabled_until: m.communication_disabled_until,
        }
    }
}
