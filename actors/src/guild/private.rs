//! Private channels: DMs and group DMs.
//!
//! A private channel is a unit of its own, owned by an actor of the same kind as a guild's and
//! placed, started, fenced and handed over exactly as a guild is, by its id (the channel's id).
//! So each private channel has a single writer that the cluster places like any guild, and
//! its messages take the guild's commit path and fanout unchanged.
//!
//! The actor runs it as a guild it builds in memory from the stored
//! [`PrivateChannelRecord`]: the recipients are its members, @everyone (id = channel id)
//! holds [`DM_PERMISSIONS`], and its one channel is the DM. Everything the wire shows differs
//! from a guild's: no `guild_id` on messages and events, no `member`, events gated by the
//! DIRECT_MESSAGE* intents (`GuildEvent::intent` reads that off the payload), and no content
//! withheld from bots without MESSAGE_CONTENT. Requests only a guild answers are refused
//! (`GuildActorState::private_refusal`); a DM keeps no audit log.
//!
//! Sessions follow private channels as they follow guilds: on IDENTIFY (on shard 0, where
//! Discord sends DMs) for each channel the user has open, which sends nothing, and through
//! [`SessionOp::JoinedPrivate`] when a DM is created or a user is added to a group, which sends
//! the session CHANNEL_CREATE before any event of the channel.
//!
//! Blocks: a DM between users of whom one blocked the other refuses new messages with 50007.
//! The actor reads both users' relationships when it starts and again when either changes
//! one ([`RefreshBlocks`]).

use std::collections::{BTreeMap, HashMap};

use enrichment_protocol::models::{Channel, ChannelType, Guild, PrivateChannelFields, Role, User};
use enrichment_protocol::rest::{DmTarget, MAX_GROUP_DM_RECIPIENTS, ModifyChannel};
use enrichment_protocol::{ApiError, ErrorCode, Permissions, Snowflake, Timestamp};
use enrichment_storage::{
    GuildWrite, MemberRecord, PrivateChannelRecord, RelationshipRecord, StoreError,
};

use std::sync::Arc;

use super::actor::{GuildActorState, GuildContext};
use super::commit::{Change, apply};
use super::fanout::{Recipient, send_event};
use super::requests::*;
use super::state::GuildState;
use crate::events::{Audience, ChannelRecipientData, GuildEvent};

/// What every recipient may do in a private channel. Pinning is everyone's in a DM; deleting
/// another's message, managing the channel or mentioning @everyone is nobody's.
pub const DM_PERMISSIONS: Permissions = Permissions::VIEW_CHANNEL
    .union(Permissions::SEND_MESSAGES)
    .union(Permissions::READ_MESSAGE_HISTORY)
    .union(Permissions::ADD_REACTIONS)
    .union(Permissions::ATTACH_FILES)
    .union(Permissions::EMBED_LINKS)
    .union(Permissions::USE_EXTERNAL_EMOJIS)
    .union(Permissions::PIN_MESSAGES);

/// What a private channel's actor keeps beyond the guild it runs it as.
#[derive(Clone, Debug)]
pub struct PrivateState {
    /// 1 (DM) or 3 (group DM).
    pub kind: u8,
    /// In the order they joined.
    pub recipients: Vec<Snowflake>,
    pub owner_id: Option<Snowflake>,
    pub icon: Option<String>,
    /// A DM whose users blocked one another, either way: new messages are refused.
    pub blocked: bool,
}

impl GuildState {
    /// The state of a private channel's unit.
    pub fn from_private(record: PrivateChannelRecord) -> Self {
        let id = record.id;
        let everyone = Role::everyone(id, DM_PERMISSIONS);
        let channel = Channel {
            id,
            kind: ChannelType(record.kind),
            guild_id: None,
            position: 0,
            permission_overwrites: Vec::new(),
            name: record.name.clone().unwrap_or_default(),
            topic: None,
            nsfw: false,
            last_message_id: None,
            bitrate: None,
            user_limit: None,
            rate_limit_per_user: 0,
            parent_id: None,
            last_pin_timestamp: record.last_pin_timestamp,
            flags: 0,
            private: None,
        };
        let mut state = GuildState {
            guild: private_guild(id),
            roles: BTreeMap::from([(id, everyone)]),
            channels: BTreeMap::from([(id, channel)]),
            members: HashMap::new(),
            bans: HashMap::new(),
            invites: HashMap::new(),
            webhooks: HashMap::new(),
            emojis: BTreeMap::new(),
            private: Some(PrivateState {
                kind: record.kind,
                recipients: Vec::new(),
                owner_id: record.owner_id,
                icon: record.icon,
                blocked: false,
            }),
        };
        for user in record.recipients {
            state.add_recipient(user);
        }
        state
    }

    pub fn is_private(&self) -> bool {
        self.private.is_some()
    }

    fn add_recipient(&mut self, user_id: Snowflake) {
        let id = self.id();
        if let Some(p) = &mut self.private
            && !p.recipients.contains(&user_id)
        {
            p.recipients.push(user_id);
            self.members.insert(
                user_id,
                MemberRecord::new(id, user_id, Vec::new(), Timestamp::now()),
            );
        }
    }

    fn remove_recipient(&mut self, user_id: Snowflake) {
        if let Some(p) = &mut self.private {
            p.recipients.retain(|u| *u != user_id);
            self.members.remove(&user_id);
        }
    }

    /// The write that stores this private channel's record as it stands (none for a guild).
    pub fn record_write(&self) -> Vec<GuildWrite> {
        self.private_record()
            .into_iter()
            .map(GuildWrite::PutPrivateChannel)
            .collect()
    }

    /// The record of this private channel as it stands, for a write.
    pub fn private_record(&self) -> Option<PrivateChannelRecord> {
        let p = self.private.as_ref()?;
        let channel = self.channels.get(&self.id());
        Some(PrivateChannelRecord {
            id: self.id(),
            kind: p.kind,
            recipients: p.recipients.clone(),
            owner_id: p.owner_id,
            name: channel.map(|c| c.name.clone()).filter(|n| !n.is_empty()),
            icon: p.icon.clone(),
            last_pin_timestamp: channel.and_then(|c| c.last_pin_timestamp),
        })
    }
}

/// The guild row a private channel's unit runs under; never shown. It has no owner: a guild's
/// owner holds every permission, and a group DM's owner may not, say, delete the others'
/// messages.
fn private_guild(id: Snowflake) -> Guild {
    Guild::new(id, "", Snowflake(0))
}

/// Finds the DM between `creator` and the target, or creates the private channel asked for:
/// the one write of a private channel made before it has an actor, as a guild's creation is.
/// Answers the channel's id and whether it is new. Everyone in a new channel has it open.
///
/// A user may open a DM or a group with users who share a guild with them; anyone else is
/// refused with 50007, as Discord refuses a DM to a stranger.
pub async fn open_private_channel(
    ctx: &GuildContext,
    creator: Snowflake,
    target: DmTarget,
) -> Result<(Snowflake, bool), ApiError> {
    let others = match &target {
        DmTarget::User(u) => vec![*u],
        DmTarget::Group(us) => us.clone(),
    };
    let store = GuildContext::store_error;
    for u in &others {
        if ctx.users.get(*u).await.map_err(store)?.is_none() {
            return Err(ApiError::unknown(ErrorCode::UnknownUser));
        }
    }
    if let DmTarget::User(u) = target
        && let Some(id) = ctx
            .stores
            .guilds
            .dm_channel(creator, u)
            .await
            .map_err(store)?
    {
        return Ok((id, false));
    }
    require_shared_guild(ctx, creator, &others).await?;
    let id = ctx.ids.next_id();
    let mut recipients = vec![creator];
    recipients.extend(others);
    let record = match target {
        DmTarget::User(_) => PrivateChannelRecord {
            id,
            kind: PrivateChannelRecord::DM,
            recipients: recipients.clone(),
            owner_id: None,
            name: None,
            icon: None,
            last_pin_timestamp: None,
        },
        DmTarget::Group(_) => PrivateChannelRecord {
            id,
            kind: PrivateChannelRecord::GROUP_DM,
            recipients: recipients.clone(),
            owner_id: Some(creator),
            name: None,
            icon: None,
            last_pin_timestamp: None,
        },
    };
    let pair = record.dm_pair();
    let mut writes = vec![GuildWrite::PutPrivateChannel(record)];
    writes.extend(recipients.iter().map(|u| GuildWrite::OpenPrivateChannel {
        channel_id: id,
        user_id: *u,
    }));
    let change = Change::Guild {
        guild_id: id,
        writes,
    };
    match apply(&ctx.stores, change).await {
        Ok(_) => Ok((id, true)),
        // Opened by a request that won the race for the pair: that DM is the one.
        Err(StoreError::Conflict("recipients")) => {
            let (a, b) = pair.ok_or_else(|| store(StoreError::Conflict("recipients")))?;
            match ctx.stores.guilds.dm_channel(a, b).await.map_err(store)? {
                Some(existing) => Ok((existing, false)),
                None => Err(store(StoreError::Conflict("recipients"))),
            }
        }
        Err(e) => Err(store(e)),
    }
}

/// Each of `others` must share a guild with `user`, else 50007: nobody opens a DM with, or
/// adds to a group, a stranger.
async fn require_shared_guild(
    ctx: &GuildContext,
    user: Snowflake,
    others: &[Snowflake],
) -> Result<(), ApiError> {
    let guilds = &ctx.stores.guilds;
    let store = GuildContext::store_error;
    let mine = guilds.user_guilds(user).await.map_err(store)?;
    for u in others {
        let theirs = guilds.user_guilds(*u).await.map_err(store)?;
        if !theirs.iter().any(|g| mine.binary_search(g).is_ok()) {
            return Err(ApiError::cannot_send_to_user());
        }
    }
    Ok(())
}

/// Whether either of two users' relationships blocks the other.
pub(super) fn blocks(
    a: Snowflake,
    of_a: &[RelationshipRecord],
    b: Snowflake,
    of_b: &[RelationshipRecord],
) -> bool {
    let blocked = |list: &[RelationshipRecord], target: Snowflake| {
        list.iter()
            .any(|r| r.target_id == target && r.kind == RelationshipRecord::BLOCKED)
    };
    blocked(of_a, b) || blocked(of_b, a)
}

impl GuildActorState {
    /// The refusal for a request a private channel does not take, if `request` is one:
    /// guild-wide requests find no guild (10004); a guild channel's features answer 50003.
    pub(super) fn private_refusal(&self, request: &AnyRequest) -> Option<ApiError> {
        self.state.private.as_ref()?;
        match request {
            AnyRequest::GetChannel(_)
            | AnyRequest::ModifyChannel(_)
            | AnyRequest::DeleteChannel(_)
            | AnyRequest::CreateMessage(_)
            | AnyRequest::CheckUpload(_)
            | AnyRequest::GetMessage(_)
            | AnyRequest::ListMessages(_)
            | AnyRequest::EditMessage(_)
            | AnyRequest::DeleteMessage(_)
            | AnyRequest::AddReaction(_)
            | AnyRequest::RemoveReaction(_)
            | AnyRequest::ListReactions(_)
            | AnyRequest::PinMessage(_)
            | AnyRequest::UnpinMessage(_)
            | AnyRequest::ListPins(_)
            | AnyRequest::TriggerTyping(_)
            | AnyRequest::AddRecipient(_)
            | AnyRequest::RemoveRecipient(_)
            | AnyRequest::RefreshBlocks(_) => None,
            AnyRequest::EditOverwrite(_)
            | AnyRequest::DeleteOverwrite(_)
            | AnyRequest::CreateInvite(_)
            | AnyRequest::ListChannelInvites(_)
            | AnyRequest::BulkDeleteMessages(_)
            | AnyRequest::RemoveAllReactions(_)
            | AnyRequest::CreateWebhook(_)
            | AnyRequest::ListChannelWebhooks(_) => Some(ApiError::dm_channel()),
            _ => Some(ApiError::unknown(ErrorCode::UnknownGuild)),
        }
    }

    /// A guild request that only private channels take, asked of a guild: the guild is no
    /// private channel.
    fn require_private(&self) -> Result<&PrivateState, ApiError> {
        self.state
            .private
            .as_ref()
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownChannel))
    }

    /// The channel as `viewer` sees it: every recipient but the viewer.
    pub(super) async fn private_channel(&self, viewer: Snowflake) -> Result<Channel, ApiError> {
        let p = self.require_private()?;
        let mut recipients: Vec<User> = Vec::with_capacity(p.recipients.len());
        for u in p.recipients.iter().filter(|u| **u != viewer) {
            recipients.push(self.user_or_deleted(*u).await?);
        }
        let fields = PrivateChannelFields {
            recipients,
            owner_id: p.owner_id,
            icon: p.icon.clone(),
        };
        let channel = self.state.channel(self.state.id())?.clone();
        Ok(Channel {
            private: Some(fields),
            ..self.with_last_message(channel)
        })
    }

    /// Only a recipient may look at, or act in, a private channel: anyone else is refused
    /// access, as they are in a guild channel they cannot see.
    fn require_recipient(&self, actor: Snowflake) -> Result<&PrivateState, ApiError> {
        let p = self.require_private()?;
        if p.recipients.contains(&actor) {
            Ok(p)
        } else {
            Err(ApiError::missing_access())
        }
    }

    /// A group DM's recipient: what only a group takes, a DM answers 50003.
    fn require_group(&self, actor: Snowflake) -> Result<&PrivateState, ApiError> {
        let p = self.require_recipient(actor)?;
        if p.kind == PrivateChannelRecord::GROUP_DM {
            Ok(p)
        } else {
            Err(ApiError::dm_channel())
        }
    }

    /// A session of a user just given this channel follows it, CHANNEL_CREATE first: both
    /// happen here, in the actor, so no event of the channel can overtake it.
    pub(super) async fn joined_private(
        &mut self,
        session: &SessionRef,
        recipient: Arc<dyn Recipient>,
    ) -> Result<(), ApiError> {
        self.require_recipient(session.user_id)?;
        if !session.carries_private() || recipient.is_gone() {
            return Err(ApiError::missing_access());
        }
        if self.fanout.contains(session.user_id, session.key) {
            return Ok(());
        }
        let channel = self.private_channel(session.user_id).await?;
        send_event(recipient.as_ref(), "CHANNEL_CREATE", &channel);
        recipient.follow(self.state.id());
        self.fanout.add(recipient);
        Ok(())
    }

    /// `GET /channels/{id}` of a private channel.
    pub(super) async fn get_private_channel(&self, actor: Snowflake) -> Result<Channel, ApiError> {
        self.require_recipient(actor)?;
        self.private_channel(actor).await
    }

    /// `PATCH /channels/{id}`: a group DM's name and icon, by any of its recipients.
    pub(super) async fn modify_private_channel(
        &mut self,
        actor: Snowflake,
        body: ModifyChannel,
    ) -> Result<Channel, ApiError> {
        self.require_group(actor)?;
        body.validate()?;
        let id = self.state.id();
        let before = self.state.clone();
        if let Some(name) = body.name
            && let Some(c) = self.state.channels.get_mut(&id)
        {
            c.name = name.trim().to_owned();
        }
        if let Some(icon) = body.icon
            && let Some(p) = &mut self.state.private
        {
            p.icon = icon;
        }
        if let Err(e) = self.write(self.state.record_write()).await {
            self.state = before;
            return Err(e);
        }
        self.announce_update().await;
        self.private_channel(actor).await
    }

    /// CHANNEL_UPDATE to each recipient, each with the others as recipients.
    async fn announce_update(&mut self) {
        let recipients = self
            .state
            .private
            .as_ref()
            .map(|p| p.recipients.clone())
            .unwrap_or_default();
        for u in recipients {
            if let Ok(c) = self.private_channel(u).await {
                self.emit(Audience::Users(vec![u]), GuildEvent::ChannelUpdate(c));
            }
        }
    }

    /// `DELETE /channels/{id}`: leaving a group DM; a DM stays open (closing one is the
    /// client's view, and a DM that vanished from a list would also stop its user hearing of
    /// new messages in it), so the answer is just the channel.
    pub(super) async fn delete_private_channel(
        &mut self,
        actor: Snowflake,
    ) -> Result<Channel, ApiError> {
        let p = self.require_recipient(actor)?;
        if p.kind != PrivateChannelRecord::GROUP_DM {
            return self.private_channel(actor).await;
        }
        let channel = self.private_channel(actor).await?;
        self.remove_from_group(actor, actor).await?;
        Ok(channel)
    }

    /// `PUT /channels/{id}/recipients/{user_id}`: any recipient of a group DM adds someone who
    /// shares a guild with them, up to [`MAX_GROUP_DM_RECIPIENTS`].
    pub(super) async fn add_group_recipient(
        &mut self,
        actor: Snowflake,
        user_id: Snowflake,
    ) -> Result<(), ApiError> {
        let p = self.require_group(actor)?;
        if p.recipients.contains(&user_id) {
            return Ok(());
        }
        if p.recipients.len() >= MAX_GROUP_DM_RECIPIENTS {
            return Err(ApiError::new(
                400,
                ErrorCode::MaxRecipients,
                format!("Maximum number of recipients reached ({MAX_GROUP_DM_RECIPIENTS})"),
            ));
        }
        let store = GuildContext::store_error;
        let user = self
            .ctx
            .users
            .get(user_id)
            .await
            .map_err(store)?
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownUser))?;
        require_shared_guild(&self.ctx, actor, &[user_id]).await?;
        let id = self.state.id();
        self.state.add_recipient(user_id);
        let mut writes = self.state.record_write();
        writes.push(GuildWrite::OpenPrivateChannel {
            channel_id: id,
            user_id,
        });
        if let Err(e) = self.write(writes).await {
            self.state.remove_recipient(user_id);
            return Err(e);
        }
        self.fanout.invalidate();
        self.emit(
            Audience::Channel(id),
            GuildEvent::ChannelRecipientAdd(ChannelRecipientData {
                channel_id: id,
                user,
            }),
        );
        Ok(())
    }

    /// `DELETE /channels/{id}/recipients/{user_id}`: the owner removes someone, or anyone
    /// removes themselves.
    pub(super) async fn remove_group_recipient(
        &mut self,
        actor: Snowflake,
        user_id: Snowflake,
    ) -> Result<(), ApiError> {
        let p = self.require_group(actor)?;
        if actor != user_id && p.owner_id != Some(actor) {
            return Err(ApiError::missing_permissions());
        }
        if !p.recipients.contains(&user_id) {
            return Err(ApiError::unknown(ErrorCode::UnknownUser));
        }
        self.remove_from_group(actor, user_id).await
    }

    /// Takes `user_id` out of the group: the rest hear CHANNEL_RECIPIENT_REMOVE, the one who
    /// left CHANNEL_DELETE, after which their sessions stop following it. The owner's leaving
    /// hands the group to the longest-standing recipient.
    async fn remove_from_group(
        &mut self,
        _actor: Snowflake,
        user_id: Snowflake,
    ) -> Result<(), ApiError> {
        let id = self.state.id();
        let before = self.state.clone();
        let user = self.user_or_deleted(user_id).await?;
        let gone = self.private_channel(user_id).await?;
        self.state.remove_recipient(user_id);
        if let Some(p) = &mut self.state.private
            && p.owner_id == Some(user_id)
        {
            p.owner_id = p.recipients.first().copied();
        }
        let mut writes = self.state.record_write();
        writes.push(GuildWrite::ClosePrivateChannel {
            channel_id: id,
            user_id,
        });
        if let Err(e) = self.write(writes).await {
            self.state = before;
            return Err(e);
        }
        self.fanout.invalidate();
        self.emit(
            Audience::Channel(id),
            GuildEvent::ChannelRecipientRemove(ChannelRecipientData {
                channel_id: id,
                user,
            }),
        );
        for s in self.fanout.remove_user(user_id) {
            send_event(s.as_ref(), "CHANNEL_DELETE", &gone);
            s.unfollow(id);
        }
        Ok(())
    }

    /// Reads whether the DM's two users block one another (at start, and when either changes
    /// a relationship).
    pub(super) async fn refresh_blocks(&mut self) -> Result<(), ApiError> {
        let Some(p) = &self.state.private else {
            return Ok(());
        };
        let (PrivateChannelRecord::DM, [a, b]) = (p.kind, p.recipients.as_slice()) else {
            return Ok(());
        };
        let (a, b) = (*a, *b);
        let users = &self.ctx.stores.users;
        let store = GuildContext::store_error;
        let of_a = users.relationships(a).await.map_err(store)?;
        let of_b = users.relationships(b).await.map_err(store)?;
        if let Some(p) = &mut self.state.private {
            p.blocked = blocks(a, &of_a, b, &of_b);
        }
        Ok(())
    }

    /// A new message in a DM whose users block one another is refused.
    pub(super) fn check_not_blocked(&self) -> Result<(), ApiError> {
        match &self.state.private {
            Some(p) if p.blocked => Err(ApiError::cannot_send_to_user()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(user: u64, target: u64, kind: u8) -> RelationshipRecord {
        RelationshipRecord {
            user_id: Snowflake(user),
            target_id: Snowflake(target),
            kind,
            since: Timestamp::now(),
        }
    }

    #[test]
    fn a_block_either_way_blocks_the_dm() {
        let (a, b) = (Snowflake(1), Snowflake(2));
        assert!(!blocks(a, &[], b, &[]));
        assert!(blocks(a, &[rel(1, 2, 2)], b, &[]));
        assert!(blocks(a, &[], b, &[rel(2, 1, 2)]));
        // A block of someone else, or another kind of relationship, is not this DM's.
        assert!(!blocks(a, &[rel(1, 3, 2)], b, &[rel(2, 1, 1)]));
    }

    #[test]
    fn a_private_unit_has_its_recipients_as_members_and_one_channel_without_a_guild() {
        let s = GuildState::from_private(PrivateChannelRecord {
            id: Snowflake(10),
            kind: PrivateChannelRecord::GROUP_DM,
            recipients: vec![Snowflake(1), Snowflake(2), Snowflake(3)],
            owner_id: Some(Snowflake(1)),
            name: Some("crew".into()),
            icon: None,
            last_pin_timestamp: None,
        });
        assert!(s.is_private());
        assert_eq!(s.wire_guild_id(), None);
        assert_eq!(s.members.len(), 3);
        let c = s.channel(Snowflake(10)).unwrap();
        assert_eq!(
            (c.kind, c.guild_id, c.name.as_str()),
            (ChannelType::GROUP_DM, None, "crew")
        );
        let p = s
            .channel_permissions(Snowflake(2), Snowflake(10), Timestamp::now())
            .unwrap();
        assert_eq!(p, DM_PERMISSIONS);
        assert!(!p.contains(Permissions::MANAGE_MESSAGES));
        assert!(
            s.channel_permissions(Snowflake(4), Snowflake(10), Timestamp::now())
                .is_err()
        );
        let record = s.private_record().unwrap();
        assert_eq!(record.recipients.len(), 3);
        assert_eq!(record.name.as_deref(), Some("crew"));
    }
}
