//! The `d` payloads of guild dispatches that are not a bare model: what the server sends and
//! what clients read, defined once so both sides agree on every field.

use serde::{Deserialize, Serialize};

use crate::models::{AuditLogEntry, Emoji, Invite, Member, Message, Role, User};
use crate::{Snowflake, Timestamp};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuildDeleteData {
    pub id: Snowflake,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unavailable: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelPinsData {
    /// Absent in a DM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
    pub channel_id: Snowflake,
    pub last_pin_timestamp: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleData {
    pub guild_id: Snowflake,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleDeleteData {
    pub guild_id: Snowflake,
    pub role_id: Snowflake,
}

/// GUILD_MEMBER_ADD / GUILD_MEMBER_UPDATE: the member plus `guild_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberData {
    pub guild_id: Snowflake,
    #[serde(flatten)]
    pub member: Member,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuildUserData {
    pub guild_id: Snowflake,
    pub user: User,
}

/// WEBHOOKS_UPDATE: a channel's webhooks changed (read them again).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhooksUpdateData {
    pub guild_id: Snowflake,
    pub channel_id: Snowflake,
}

/// GUILD_AUDIT_LOG_ENTRY_CREATE: the entry plus its guild.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditLogEntryData {
    pub guild_id: Snowflake,
    #[serde(flatten)]
    pub entry: AuditLogEntry,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteCreateData {
    pub channel_id: Snowflake,
    pub guild_id: Snowflake,
    pub code: String,
    pub created_at: Option<Timestamp>,
    pub inviter: Option<User>,
    pub max_age: Option<u32>,
    pub max_uses: Option<u32>,
    pub temporary: Option<bool>,
    pub uses: Option<u32>,
}

impl InviteCreateData {
    pub fn from_invite(guild_id: Snowflake, channel_id: Snowflake, i: &Invite) -> Self {
        InviteCreateData {
            channel_id,
            guild_id,
            code: i.code.clone(),
            created_at: i.created_at,
            inviter: i.inviter.clone(),
            max_age: i.max_age,
            max_uses: i.max_uses,
            temporary: i.temporary,
            uses: i.uses,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteDeleteData {
    pub channel_id: Snowflake,
    pub guild_id: Snowflake,
    pub code: String,
}

/// MESSAGE_CREATE / MESSAGE_UPDATE: the message plus the author's `member` (gateway only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageData {
    #[serde(flatten)]
    pub message: Message,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<Member>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageDeleteData {
    pub id: Snowflake,
    pub channel_id: Snowflake,
    /// Absent in a DM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageDeleteBulkData {
    pub ids: Vec<Snowflake>,
    pub channel_id: Snowflake,
    /// Absent in a DM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReactionData {
    pub user_id: Snowflake,
    pub channel_id: Snowflake,
    pub message_id: Snowflake,
    /// Absent in a DM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<Member>,
    pub emoji: Emoji,
    #[serde(default)]
    pub burst: bool,
    #[serde(default, rename = "type")]
    pub kind: u8,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReactionRemoveAllData {
    pub channel_id: Snowflake,
    pub message_id: Snowflake,
    /// Absent in a DM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReactionRemoveEmojiData {
    pub channel_id: Snowflake,
    /// Absent in a DM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
    pub message_id: Snowflake,
    pub emoji: Emoji,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TypingStartData {
    pub channel_id: Snowflake,
    /// Absent in a DM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
    pub user_id: Snowflake,
    /// Unix time in seconds, as Discord sends it.
    pub timestamp: u64,
    /// Absent in a DM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<Member>,
}

/// GUILD_EMOJIS_UPDATE: the guild's whole list of custom emojis after a change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuildEmojisUpdateData {
    pub guild_id: Snowflake,
    pub emojis: Vec<Emoji>,
}

/// CHANNEL_RECIPIENT_ADD / CHANNEL_RECIPIENT_REMOVE: someone joined or left a group DM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelRecipientData {
    pub channel_id: Snowflake,
    pub user: User,
}

/// A MESSAGE_CREATE reads as the message it carries.
impl std::ops::Deref for MessageData {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.message
    }
}
