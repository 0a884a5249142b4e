//! What a guild actor can be asked, and what it answers: the guild protocol.
//!
//! Every request is a named-field type that serializes (MessagePack named maps on the wire
//! between nodes, in memory on one node), and names its reply type through [`Request::Reply`], as
//! Zed pairs its request and response messages. `guild_requests!` lists every pair once; from
//! that list it builds [`AnyRequest`] and [`AnyReply`] (what travels) and each request's
//! conversions, so a route that sends [`GetGuild`] gets a [`Guild`] back, checked by the
//! compiler, and a handler can only answer a request with that request's reply type
//! ([`Responder`]).
//!
//! A request travels in an [`Envelope`] with its [`Caller`] (the acting user, whose permissions
//! the actor checks from its in-memory state, and the audit-log reason).
//!
//! What gateway sessions ask of a guild (follow it, member chunks, presence) is not a request of
//! a user: it is a [`SessionOp`], which names the session by a [`SessionRef`] (a key and what
//! fanout needs to know of it), never by an in-process handle.

use std::marker::PhantomData;

use enrichment_protocol::gateway::{Encoding, Presence, RequestGuildMembers};
use enrichment_protocol::models::{
    Attachment, AuditLog, Ban, Channel, Emoji, Guild, Invite, Member, Message, PartialGuild,
    PinnedMessage, Role, User, Webhook,
};
use enrichment_protocol::rest::{
    self, AuditLogFilter, ChannelPosition, HistoryAnchor, RolePosition,
};
use enrichment_protocol::{ApiError, Permissions, Snowflake};
use ractor::RpcReplyPort;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A request to a guild, paired with the type of its answer.
pub trait Request:
    Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// What the guild answers on success.
    type Reply: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The request's name in logs and metrics.
    const NAME: &'static str;
    fn into_any(self) -> AnyRequest;
    fn reply_into_any(reply: Self::Reply) -> AnyReply;
    /// The typed answer, or `None` when the reply answers another request (a bug, reported as
    /// a 500 by [`Envelope`]'s users).
    fn reply_from_any(reply: AnyReply) -> Option<Self::Reply>;
}

/// Who sends a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Caller {
    /// The acting user: permissions are checked for them.
    pub actor: Snowflake,
    /// `X-Audit-Log-Reason`, where the route accepts one.
    pub reason: Option<String>,
}

impl Caller {
    pub fn new(actor: Snowflake) -> Caller {
        Caller {
            actor,
            reason: None,
        }
    }
}

/// A request on its way to a guild.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Envelope {
    pub caller: Caller,
    pub request: AnyRequest,
}

/// What a guild answers to an [`Envelope`].
pub type AnyResult = Result<AnyReply, ApiError>;

/// The one way a handler answers a request: only with that request's reply type.
pub struct Responder<R: Request> {
    port: RpcReplyPort<AnyResult>,
    request: PhantomData<fn() -> R>,
}

impl<R: Request> std::fmt::Debug for Responder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Responder").field(&R::NAME).finish()
    }
}

impl<R: Request> Responder<R> {
    pub fn new(port: RpcReplyPort<AnyResult>) -> Self {
        Responder {
            port,
            request: PhantomData,
        }
    }

    /// Answers; a caller that stopped waiting is no error.
    pub fn send(self, result: Result<R::Reply, ApiError>) {
        let _ = self.port.send(result.map(R::reply_into_any));
    }
}

/// Lists every request with its reply type; builds [`AnyRequest`], [`AnyReply`] and the
/// [`Request`] impls from that one list.
macro_rules! guild_requests {
    ($($(#[$doc:meta])* $name:ident => $reply:ty),* $(,)?) => {
        /// Any guild request, as it travels.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        pub enum AnyRequest {
            $($(#[$doc])* $name($name)),*
        }

        /// Any guild reply, tagged with the request it answers.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        pub enum AnyReply {
            $($name($reply)),*
        }

        impl AnyRequest {
            /// The request's name in logs and metrics.
            pub fn name(&self) -> &'static str {
                match self {
                    $(AnyRequest::$name(_) => stringify!($name)),*
                }
            }

            /// Every request's name, in the order of the list.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];
        }

        impl AnyReply {
            /// The name of the request this answers.
            pub fn name(&self) -> &'static str {
                match self {
                    $(AnyReply::$name(_) => stringify!($name)),*
                }
            }
        }

        $(
            impl Request for $name {
                type Reply = $reply;
                const NAME: &'static str = stringify!($name);
                fn into_any(self) -> AnyRequest {
                    AnyRequest::$name(self)
                }
                fn reply_into_any(reply: $reply) -> AnyReply {
                    AnyReply::$name(reply)
                }
                fn reply_from_any(reply: AnyReply) -> Option<$reply> {
                    match reply {
                        AnyReply::$name(r) => Some(r),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            }
        )*
    };
}

guild_requests! {
    GetGuild => Guild,
    /// The caller's view for `GET /users/@me/guilds`: name, icon, ownership, permissions.
    GetPartialGuild => PartialGuild,
    ModifyGuild => Guild,
    DeleteGuild => (),
    ListChannels => Vec<Channel>,
    CreateChannel => Channel,
    ModifyChannelPositions => (),
    GetChannel => Channel,
    ModifyChannel => Channel,
    DeleteChannel => Channel,
    EditOverwrite => (),
    DeleteOverwrite => (),
    ListRoles => Vec<Role>,
    CreateRole => Role,
    ModifyRole => Role,
    DeleteRole => (),
    ModifyRolePositions => Vec<Role>,
    ListMembers => Vec<Member>,
    GetMember => Member,
    ModifyMember => Member,
    ModifyCurrentMember => Member,
    AddMemberRole => (),
    RemoveMemberRole => (),
    RemoveMember => (),
    LeaveGuild => (),
    ListBans => Vec<Ban>,
    GetBan => Ban,
    CreateBan => (),
    RemoveBan => (),
    CreateInvite => Invite,
    ListGuildInvites => Vec<Invite>,
    ListChannelInvites => Vec<Invite>,
    DeleteInvite => Invite,
    GetInvite => Invite,
    AcceptInvite => Invite,
    AddBot => (),
    CreateMessage => Message,
    CheckUpload => (),
    GetMessage => Message,
    ListMessages => Vec<Message>,
    EditMessage => Message,
    DeleteMessage => (),
    BulkDeleteMessages => (),
    AddReaction => (),
    RemoveReaction => (),
    ListReactions => Vec<User>,
    RemoveAllReactions => (),
    PinMessage => (),
    UnpinMessage => (),
    ListPins => Vec<PinnedMessage>,
    TriggerTyping => (),
    GetAuditLog => AuditLog,
    CreateWebhook => Webhook,
    ListChannelWebhooks => Vec<Webhook>,
    ListGuildWebhooks => Vec<Webhook>,
    GetWebhook => Webhook,
    ModifyWebhook => Webhook,
    DeleteWebhook => (),
    ExecuteWebhook => Message,
    GetWebhookMessage => Message,
    EditWebhookMessage => Message,
    DeleteWebhookMessage => (),
    ListEmojis => Vec<Emoji>,
    GetEmoji => Emoji,
    CheckEmoji => (),
    CreateEmoji => Emoji,
    ModifyEmoji => Emoji,
    DeleteEmoji => (),
    AddRecipient => (),
    RemoveRecipient => (),
    RefreshBlocks => (),
}

/// Declares request structs with serde derives and named fields.
macro_rules! request_types {
    ($($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? })*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
            #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
            pub struct $name {
                $($(#[$fdoc])* pub $field: $ty),*
            }
        )*
    };
}

request_types! {
    GetGuild {}
    GetPartialGuild {}
    ModifyGuild { body: rest::ModifyGuild }
    /// Only the owner may delete a guild.
    DeleteGuild {}
    /// The channels the caller may view.
    ListChannels {}
    CreateChannel { body: rest::CreateChannel }
    ModifyChannelPositions { positions: Vec<ChannelPosition> }
    GetChannel { channel_id: Snowflake }
    ModifyChannel { channel_id: Snowflake, body: rest::ModifyChannel }
    DeleteChannel { channel_id: Snowflake }
    EditOverwrite { channel_id: Snowflake, target: Snowflake, body: rest::EditOverwrite }
    DeleteOverwrite { channel_id: Snowflake, target: Snowflake }
    ListRoles {}
    CreateRole { body: rest::RoleBody }
    ModifyRole { role_id: Snowflake, body: rest::RoleBody }
    DeleteRole { role_id: Snowflake }
    ModifyRolePositions { positions: Vec<RolePosition> }
    /// Members by ascending user id, strictly after `after`.
    ListMembers { limit: usize, after: Snowflake }
    GetMember { user_id: Snowflake }
    ModifyMember { user_id: Snowflake, body: rest::ModifyMember }
    /// `PATCH /guilds/{id}/members/@me`: the nick is the caller's own.
    ModifyCurrentMember {
        /// Absent: unchanged; `null`: cleared.
        #[serde(default, deserialize_with = "rest::nullable", skip_serializing_if = "Option::is_none")]
        nick: Option<Option<String>>,
    }
    AddMemberRole { user_id: Snowflake, role_id: Snowflake }
    RemoveMemberRole { user_id: Snowflake, role_id: Snowflake }
    /// A kick.
    RemoveMember { user_id: Snowflake }
    /// The caller leaves.
    LeaveGuild {}
    ListBans {}
    GetBan { user_id: Snowflake }
    /// Bans a user, removing their messages of the last `delete_message_seconds`.
    CreateBan { user_id: Snowflake, delete_message_seconds: u32 }
    RemoveBan { user_id: Snowflake }
    CreateInvite { channel_id: Snowflake, body: rest::CreateInvite }
    ListGuildInvites {}
    ListChannelInvites { channel_id: Snowflake }
    DeleteInvite { code: String }
    /// Anyone holding the code may look at it; no membership needed.
    GetInvite { code: String }
    AcceptInvite { code: String }
    /// Adds a bot user through OAuth2 authorization, with a managed role for `permissions`.
    AddBot { bot_user_id: Snowflake, application_name: String, permissions: Permissions }
    /// A message; with `attachments`, its files are already in the blob store (the sender's
    /// route deletes them again if this fails).
    CreateMessage { channel_id: Snowflake, body: Box<rest::CreateMessage>, attachments: Vec<Attachment> }
    /// May the caller upload files to the channel (VIEW_CHANNEL, SEND_MESSAGES, ATTACH_FILES, a
    /// text channel)? Asked before the first byte is stored, so nobody without the right can fill
    /// the blob store; the create checks again.
    CheckUpload { channel_id: Snowflake }
    GetMessage { channel_id: Snowflake, message_id: Snowflake }
    ListMessages { channel_id: Snowflake, anchor: HistoryAnchor, limit: usize }
    EditMessage { channel_id: Snowflake, message_id: Snowflake, body: rest::EditMessage }
    DeleteMessage { channel_id: Snowflake, message_id: Snowflake }
    BulkDeleteMessages { channel_id: Snowflake, message_ids: Vec<Snowflake> }
    AddReaction { channel_id: Snowflake, message_id: Snowflake, emoji: String }
    /// `user_id` is the caller for `@me`, another user for a moderator's removal.
    RemoveReaction { channel_id: Snowflake, message_id: Snowflake, emoji: String, user_id: Snowflake }
    ListReactions { channel_id: Snowflake, message_id: Snowflake, emoji: String, after: Snowflake, limit: usize }
    /// All reactions, or all of one emoji.
    RemoveAllReactions { channel_id: Snowflake, message_id: Snowflake, emoji: Option<String> }
    PinMessage { channel_id: Snowflake, message_id: Snowflake }
    UnpinMessage { channel_id: Snowflake, message_id: Snowflake }
    ListPins { channel_id: Snowflake }
    TriggerTyping { channel_id: Snowflake }
    /// VIEW_AUDIT_LOG.
    GetAuditLog { filter: AuditLogFilter }
    /// MANAGE_WEBHOOKS in the channel; the answer is the only one that shows the token.
    CreateWebhook { channel_id: Snowflake, body: rest::CreateWebhook }
    ListChannelWebhooks { channel_id: Snowflake }
    ListGuildWebhooks {}
    /// With `token`, the webhook's own authority; without, the caller's MANAGE_WEBHOOKS.
    GetWebhook { webhook_id: Snowflake, token: Option<String> }
    ModifyWebhook { webhook_id: Snowflake, token: Option<String>, body: rest::ModifyWebhook }
    DeleteWebhook { webhook_id: Snowflake, token: Option<String> }
    ExecuteWebhook { webhook_id: Snowflake, token: String, thread_id: Option<Snowflake>, body: Box<rest::ExecuteWebhook> }
    GetWebhookMessage { webhook_id: Snowflake, token: String, message_id: Snowflake }
    EditWebhookMessage { webhook_id: Snowflake, token: String, message_id: Snowflake, body: rest::EditMessage }
    DeleteWebhookMessage { webhook_id: Snowflake, token: String, message_id: Snowflake }
    ListEmojis {}
    GetEmoji { emoji_id: Snowflake }
    /// May the caller add an emoji of this kind (permission, room under the limit)? Asked
    /// before its image is stored; the create checks again.
    CheckEmoji { animated: bool }
    /// An emoji whose image is already stored under `emoji_id` (the route deletes it again if
    /// this fails).
    CreateEmoji { emoji_id: Snowflake, name: String, roles: Option<Vec<Snowflake>>, animated: bool }
    ModifyEmoji { emoji_id: Snowflake, body: rest::ModifyEmoji }
    DeleteEmoji { emoji_id: Snowflake }
    /// A group DM's `PUT /channels/{id}/recipients/{user_id}`.
    AddRecipient { user_id: Snowflake }
    /// A group DM's `DELETE /channels/{id}/recipients/{user_id}`.
    RemoveRecipient { user_id: Snowflake }
    /// One of a DM's users changed a relationship: read whether they block one another.
    RefreshBlocks {}
}

impl CreateMessage {
    /// A message without files.
    pub fn text(channel_id: Snowflake, body: rest::CreateMessage) -> CreateMessage {
        CreateMessage {
            channel_id,
            body: Box::new(body),
            attachments: Vec::new(),
        }
    }
}

// ------------------------------------------------------------------ session operations

/// A gateway session, unique on its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(transparent)]
pub struct SessionKey(pub u64);

/// A session as a guild needs to know it: which one (its key) and what fanout filters on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SessionRef {
    pub key: SessionKey,
    pub user_id: Snowflake,
    pub bot: bool,
    pub intents: u64,
    pub encoding: Encoding,
    /// `[shard_id, num_shards]` from IDENTIFY.
    pub shard: Option<[u32; 2]>,
    /// Members above which GUILD_CREATE lists only the session's own member and the online ones.
    pub large_threshold: u32,
}

impl SessionRef {
    /// Whether this session's shard carries private channels: shard 0, as Discord sends DMs.
    pub fn carries_private(&self) -> bool {
        self.shard.is_none_or(|[id, _]| id == 0)
    }

    /// Whether this session's shard carries the guild: `(guild_id >> 22) % num_shards`.
    pub fn carries(&self, guild_id: Snowflake) -> bool {
        match self.shard {
            Some([id, count]) if count > 1 => {
                (guild_id.0 >> 22) % u64::from(count) == u64::from(id)
            }
            _ => true,
        }
    }
}

/// What the gateway side asks of a guild for its sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum SessionOp {
    /// The session starts following the guild: it gets GUILD_CREATE, then the guild's events,
    /// in that order.
    Subscribe { session: SessionRef },
    /// The session's user was just given a private channel (it was opened, or they were added
    /// to it): the session follows it and gets CHANNEL_CREATE first, as a guild's new member
    /// gets GUILD_CREATE.
    JoinedPrivate { session: SessionRef },
    /// The session was told the guild is unavailable (events to it may have been lost on the
    /// way): it gets a fresh GUILD_CREATE, then the guild's events, whether or not it was
    /// still among the recipients.
    Resync { session: SessionRef },
    /// Sessions that already followed the guild before its actor (re)started: they follow it
    /// again without a new GUILD_CREATE.
    Resubscribe { sessions: Vec<SessionRef> },
    /// A member's visible presence changed.
    Presence {
        user_id: Snowflake,
        presence: Presence,
    },
    /// Op 8 from the session; answered with GUILD_MEMBERS_CHUNK dispatches to it.
    RequestMembers {
        session: SessionRef,
        request: RequestGuildMembers,
    },
    /// A session moved to another node (RESUME there took it over): the guild's events go to
    /// it as `to` from now on, without a new GUILD_CREATE, and `from` is told, after the
    /// last event it got, that nothing more comes to it ([`super::Recipient::handed_over`]).
    Move { from: SessionRef, to: SessionRef },
}

impl SessionOp {
    /// The sessions the op names.
    pub fn sessions(&self) -> &[SessionRef] {
        match self {
            SessionOp::Subscribe { session }
            | SessionOp::JoinedPrivate { session }
            | SessionOp::Resync { session }
            | SessionOp::RequestMembers { session, .. } => std::slice::from_ref(session),
            SessionOp::Resubscribe { sessions } => sessions,
            SessionOp::Move { to, .. } => std::slice::from_ref(to),
            SessionOp::Presence { .. } => &[],
        }
    }

    /// Whether the sessions it names follow the guild once it is carried out.
    pub fn follows(&self) -> bool {
        matches!(
            self,
            SessionOp::Subscribe { .. }
                | SessionOp::JoinedPrivate { .. }
                | SessionOp::Resync { .. }
                | SessionOp::Resubscribe { .. }
                | SessionOp::Move { .. }
        )
    }

    /// The op's name in logs.
    pub fn name(&self) -> &'static str {
        match self {
            SessionOp::Subscribe { .. } => "Subscribe",
            SessionOp::JoinedPrivate { .. } => "JoinedPrivate",
            SessionOp::Resync { .. } => "Resync",
            SessionOp::Resubscribe { .. } => "Resubscribe",
            SessionOp::Presence { .. } => "Presence",
            SessionOp::RequestMembers { .. } => "RequestMembers",
            SessionOp::Move { .. } => "Move",
        }
    }
}

#[cfg(test)]
mod tests;
