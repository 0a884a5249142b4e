//! What a guild actor can be asked, and what it answers.
//!
//! Every command carries the acting user; the actor checks that user's permissions from its
//! in-memory state before anything else. Replies are one enum so one mailbox type serves every
//! route; each route knows which variant its command yields (see the `expect_*` helpers).

use enrichment_protocol::models::{
    Attachment, Ban, Channel, Guild, Invite, Member, Message, PartialGuild, PinnedMessage, Role,
    User,
};
use enrichment_protocol::rest::{
    ChannelPosition, CreateChannel, CreateInvite, CreateMessage, EditMessage, EditOverwrite,
    HistoryAnchor, ModifyChannel, ModifyGuild, ModifyMember, RoleBody, RolePosition,
};
use std::sync::Arc;

use enrichment_protocol::gateway::{Presence, RequestGuildMembers};
use enrichment_protocol::{ApiError, Permissions, Snowflake};

use crate::gateway::Session;

/// A command for one guild, on behalf of `actor`.
#[derive(Clone, Debug)]
pub struct GuildRequest {
    pub actor: Snowflake,
    /// `X-Audit-Log-Reason`, where the route accepts one.
    pub reason: Option<String>,
    pub command: Command,
}

#[derive(Clone, Debug)]
pub enum Command {
    GetGuild,
    /// The caller's view for `GET /users/@me/guilds`: name, icon, ownership, permissions.
    PartialGuild,
    ModifyGuild(ModifyGuild),
    DeleteGuild,
    ListChannels,
    CreateChannel(CreateChannel),
    ChannelPositions(Vec<ChannelPosition>),
    GetChannel(Snowflake),
    ModifyChannel(Snowflake, ModifyChannel),
    DeleteChannel(Snowflake),
    EditOverwrite {
        channel_id: Snowflake,
        target: Snowflake,
        body: EditOverwrite,
    },
    DeleteOverwrite {
        channel_id: Snowflake,
        target: Snowflake,
    },
    ListRoles,
    CreateRole(RoleBody),
    ModifyRole(Snowflake, RoleBody),
    DeleteRole(Snowflake),
    RolePositions(Vec<RolePosition>),
    ListMembers {
        limit: usize,
        after: Snowflake,
    },
    GetMember(Snowflake),
    ModifyMember(Snowflake, ModifyMember),
    /// `PATCH /guilds/{id}/members/@me`: the nick is the caller's own.
    ModifyCurrentMember {
        nick: Option<Option<String>>,
    },
    AddMemberRole {
        user_id: Snowflake,
        role_id: Snowflake,
    },
    RemoveMemberRole {
        user_id: Snowflake,
        role_id: Snowflake,
    },
    Kick(Snowflake),
    Leave,
    ListBans,
    GetBan(Snowflake),
    Ban {
        user_id: Snowflake,
        delete_message_seconds: u32,
    },
    Unban(Snowflake),
    CreateInvite {
        channel_id: Snowflake,
        body: CreateInvite,
    },
    ListGuildInvites,
    ListChannelInvites(Snowflake),
    DeleteInvite(String),
    /// Anyone holding the code may look at it; no membership needed.
    GetInvite(String),
    AcceptInvite(String),
    /// Adds a bot user through OAuth2 authorization, with a managed role for `permissions`.
    AddBot {
        bot_user_id: Snowflake,
        application_name: String,
        permissions: Permissions,
    },
    CreateMessage(Snowflake, Box<CreateMessage>),
    /// A message whose files are already in the blob store, described by `attachments`. The
    /// sender's route deletes those blobs again if this fails.
    CreateMessageWithFiles {
        channel_id: Snowflake,
        body: Box<CreateMessage>,
        attachments: Vec<Attachment>,
    },
    /// May `actor` upload files to the channel (VIEW_CHANNEL, SEND_MESSAGES, ATTACH_FILES, a
    /// text channel)? Asked before the first byte is stored, so nobody without the right can
    /// fill the blob store; the create checks again.
    CheckUpload(Snowflake),
    GetMessage(Snowflake, Snowflake),
    ListMessages {
        channel_id: Snowflake,
        anchor: HistoryAnchor,
        limit: usize,
    },
    EditMessage(Snowflake, Snowflake, EditMessage),
    DeleteMessage(Snowflake, Snowflake),
    BulkDelete(Snowflake, Vec<Snowflake>),
    AddReaction {
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: String,
    },
    /// `user_id` is the actor for `@me`, another user for a moderator removal.
    RemoveReaction {
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: String,
        user_id: Snowflake,
    },
    ListReactions {
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: String,
        after: Snowflake,
        limit: usize,
    },
    RemoveAllReactions {
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: Option<String>,
    },
    Pin(Snowflake, Snowflake),
    Unpin(Snowflake, Snowflake),
    ListPins(Snowflake),
    Typing(Snowflake),
    /// A gateway session (of `actor`) starts following the guild: it gets GUILD_CREATE, then
    /// the guild's events.
    Subscribe(Arc<Session>),
    /// `actor`'s visible presence changed.
    Presence(Presence),
    /// Op 8 from a session of `actor`; answered with GUILD_MEMBERS_CHUNK dispatches.
    RequestMembers(RequestGuildMembers, Arc<Session>),
}

#[derive(Clone, Debug)]
pub enum Reply {
    Done,
    Guild(Guild),
    PartialGuild(PartialGuild),
    Channel(Channel),
    Channels(Vec<Channel>),
    Role(Role),
    Roles(Vec<Role>),
    Member(Member),
    Members(Vec<Member>),
    Ban(Ban),
    Bans(Vec<Ban>),
    Invite(Invite),
    Invites(Vec<Invite>),
    Message(Message),
    Messages(Vec<Message>),
    Pins(Vec<PinnedMessage>),
    Users(Vec<User>),
}

pub type GuildResult = Result<Reply, ApiError>;

macro_rules! expect {
    ($($fn:ident => $variant:ident($ty:ty)),* $(,)?) => {
        impl Reply {
            $(
                pub fn $fn(self) -> Result<$ty, ApiError> {
                    match self {
                        Reply::$variant(v) => Ok(v),
                        other => {
                            tracing::error!(reply = ?std::mem::discriminant(&other), "guild actor answered with an unexpected reply");
                            Err(ApiError::internal())
                        }
                    }
                }
            )*
        }
    };
}

expect! {
    into_guild => Guild(Guild),
    into_partial_guild => PartialGuild(PartialGuild),
    into_channel => Channel(Channel),
    into_channels => Channels(Vec<Channel>),
    into_role => Role(Role),
    into_roles => Roles(Vec<Role>),
    into_member => Member(Member),
    into_members => Members(Vec<Member>),
    into_ban => Ban(Ban),
    into_bans => Bans(Vec<Ban>),
    into_invite => Invite(Invite),
    into_invites => Invites(Vec<Invite>),
    into_message => Message(Message),
    into_messages => Messages(Vec<Message>),
    into_pins => Pins(Vec<PinnedMessage>),
    into_users => Users(Vec<User>),
}
