//! Typed gateway events: each dispatch's `d` read into the `protocol` type the server wrote
//! it from, plus the connection's own lifecycle.

use enrichment_protocol::gateway::dispatch::{
    AuditLogEntryData, ChannelPinsData, ChannelRecipientData, GuildDeleteData,
    GuildEmojisUpdateData, GuildUserData, InviteCreateData, InviteDeleteData, MemberData,
    MessageData, MessageDeleteBulkData, MessageDeleteData, ReactionData, ReactionRemoveAllData,
    ReactionRemoveEmojiData, RoleData, RoleDeleteData, TypingStartData, WebhooksUpdateData,
};
use enrichment_protocol::gateway::{GuildCreate, GuildMembersChunk, Presence, Ready};
use enrichment_protocol::models::{Channel, Guild, User};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Something the gateway told this client. Dispatches are named after Discord's events;
/// ones this SDK does not know arrive as [`Event::Unknown`] so nothing is lost.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A new session started (after IDENTIFY).
    Ready(Box<Ready>),
    /// A dropped connection resumed its session; missed events were replayed before this.
    Resumed,
    /// A guild became available: at start, on join, or after an outage.
    GuildCreate(Box<GuildCreate>),
    /// A guild's settings changed.
    GuildUpdate(Box<Guild>),
    /// The client left or lost a guild (`unavailable` when it is an outage).
    GuildDelete(GuildDeleteData),
    /// A channel was created, or a DM or group DM opened with this user.
    ChannelCreate(Box<Channel>),
    /// A channel changed.
    ChannelUpdate(Box<Channel>),
    /// A channel was deleted.
    ChannelDelete(Box<Channel>),
    /// A message was pinned or unpinned.
    ChannelPinsUpdate(ChannelPinsData),
    /// Someone was added to a group DM this user is in.
    ChannelRecipientAdd(Box<ChannelRecipientData>),
    /// Someone left, or was removed from, a group DM this user is in.
    ChannelRecipientRemove(Box<ChannelRecipientData>),
    /// A role was created.
    GuildRoleCreate(Box<RoleData>),
    /// A role changed.
    GuildRoleUpdate(Box<RoleData>),
    /// A role was deleted.
    GuildRoleDelete(RoleDeleteData),
    /// Someone joined a guild (needs GUILD_MEMBERS).
    GuildMemberAdd(Box<MemberData>),
    /// A member's nick, roles or timeout changed.
    GuildMemberUpdate(Box<MemberData>),
    /// Someone left or was removed.
    GuildMemberRemove(Box<GuildUserData>),
    /// An answer to [`Gateway::request_guild_members`](crate::gateway::Gateway::request_guild_members).
    GuildMembersChunk(Box<GuildMembersChunk>),
    /// A user was banned.
    GuildBanAdd(Box<GuildUserData>),
    /// A ban was lifted.
    GuildBanRemove(Box<GuildUserData>),
    /// An administrative action was recorded in the audit log (members with VIEW_AUDIT_LOG).
    GuildAuditLogEntryCreate(Box<AuditLogEntryData>),
    /// A guild's custom emojis changed: the whole new list (needs GUILD_EXPRESSIONS).
    GuildEmojisUpdate(Box<GuildEmojisUpdateData>),
    /// A channel's webhooks changed.
    WebhooksUpdate(Box<WebhooksUpdateData>),
    /// An invite was created.
    InviteCreate(Box<InviteCreateData>),
    /// An invite was deleted.
    InviteDelete(InviteDeleteData),
    /// A new message; derefs to the [`Message`](enrichment_protocol::models::Message) and
    /// carries the author's `member`.
    MessageCreate(Box<MessageData>),
    /// A message was edited.
    MessageUpdate(Box<MessageData>),
    /// A message was deleted.
    MessageDelete(MessageDeleteData),
    /// Several messages were deleted at once.
    MessageDeleteBulk(MessageDeleteBulkData),
    /// A reaction was added.
    MessageReactionAdd(Box<ReactionData>),
    /// A reaction was removed.
    MessageReactionRemove(Box<ReactionData>),
    /// Every reaction was removed from a message.
    MessageReactionRemoveAll(ReactionRemoveAllData),
    /// Every reaction with one emoji was removed.
    MessageReactionRemoveEmoji(Box<ReactionRemoveEmojiData>),
    /// Someone started typing.
    TypingStart(Box<TypingStartData>),
    /// A member's status changed (needs GUILD_PRESENCES).
    PresenceUpdate(Box<Presence>),
    /// The current user changed.
    UserUpdate(Box<User>),
    /// A dispatch this SDK has no type for.
    Unknown {
        /// The dispatch name (`t`).
        name: String,
        /// Its payload (`d`).
        data: Value,
    },
    /// The connection dropped; the client reconnects by itself and says whether it will
    /// try to resume (no events lost) or must identify anew (a fresh READY follows).
    Disconnected {
        /// The close code, when the server sent one.
        code: Option<u16>,
        /// Whether a RESUME will be attempted.
        resuming: bool,
    },
}

impl Event {
    /// Reads a dispatch. An error means the payload did not match its event's type.
    pub fn from_dispatch(name: &str, d: Value) -> Result<Event, serde_json::Error> {
        fn de<T: DeserializeOwned>(d: Value) -> Result<T, serde_json::Error> {
            serde_json::from_value(d)
        }
        Ok(match name {
            "READY" => Event::Ready(de(d)?),
            "RESUMED" => Event::Resumed,
            "GUILD_CREATE" => Event::GuildCreate(de(d)?),
            "GUILD_UPDATE" => Event::GuildUpdate(de(d)?),
            "GUILD_DELETE" => Event::GuildDelete(de(d)?),
            "CHANNEL_CREATE" => Event::ChannelCreate(de(d)?),
            "CHANNEL_UPDATE" => Event::ChannelUpdate(de(d)?),
            "CHANNEL_DELETE" => Event::ChannelDelete(de(d)?),
            "CHANNEL_PINS_UPDATE" => Event::ChannelPinsUpdate(de(d)?),
            "CHANNEL_RECIPIENT_ADD" => Event::ChannelRecipientAdd(de(d)?),
            "CHANNEL_RECIPIENT_REMOVE" => Event::ChannelRecipientRemove(de(d)?),
            "GUILD_ROLE_CREATE" => Event::GuildRoleCreate(de(d)?),
            "GUILD_ROLE_UPDATE" => Event::GuildRoleUpdate(de(d)?),
            "GUILD_ROLE_DELETE" => Event::GuildRoleDelete(de(d)?),
            "GUILD_MEMBER_ADD" => Event::GuildMemberAdd(de(d)?),
            "GUILD_MEMBER_UPDATE" => Event::GuildMemberUpdate(de(d)?),
            "GUILD_MEMBER_REMOVE" => Event::GuildMemberRemove(de(d)?),
            "GUILD_MEMBERS_CHUNK" => Event::GuildMembersChunk(de(d)?),
            "GUILD_BAN_ADD" => Event::GuildBanAdd(de(d)?),
            "GUILD_BAN_REMOVE" => Event::GuildBanRemove(de(d)?),
            "GUILD_AUDIT_LOG_ENTRY_CREATE" => Event::GuildAuditLogEntryCreate(de(d)?),
            "WEBHOOKS_UPDATE" => Event::WebhooksUpdate(de(d)?),
            "GUILD_EMOJIS_UPDATE" => Event::GuildEmojisUpdate(de(d)?),
            "INVITE_CREATE" => Event::InviteCreate(de(d)?),
            "INVITE_DELETE" => Event::InviteDelete(de(d)?),
            "MESSAGE_CREATE" => Event::MessageCreate(de(d)?),
            "MESSAGE_UPDATE" => Event::MessageUpdate(de(d)?),
            "MESSAGE_DELETE" => Event::MessageDelete(de(d)?),
            "MESSAGE_DELETE_BULK" => Event::MessageDeleteBulk(de(d)?),
            "MESSAGE_REACTION_ADD" => Event::MessageReactionAdd(de(d)?),
            "MESSAGE_REACTION_REMOVE" => Event::MessageReactionRemove(de(d)?),
            "MESSAGE_REACTION_REMOVE_ALL" => Event::MessageReactionRemoveAll(de(d)?),
            "MESSAGE_REACTION_REMOVE_EMOJI" => Event::MessageReactionRemoveEmoji(de(d)?),
            "TYPING_START" => Event::TypingStart(de(d)?),
            "PRESENCE_UPDATE" => Event::PresenceUpdate(de(d)?),
            "USER_UPDATE" => Event::UserUpdate(de(d)?),
            _ => Event::Unknown {
                name: name.to_owned(),
                data: d,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dispatches_read_into_their_types() {
        let ev = Event::from_dispatch(
            "MESSAGE_DELETE",
            json!({"id": "3", "channel_id": "2", "guild_id": "1"}),
        )
        .expect("decodes");
        match ev {
            Event::MessageDelete(d) => assert_eq!(d.id.0, 3),
            other => panic!("unexpected {other:?}"),
        }
        // A DM's events name no guild.
        let ev = Event::from_dispatch("MESSAGE_DELETE", json!({"id": "3", "channel_id": "2"}))
            .expect("decodes");
        match ev {
            Event::MessageDelete(d) => assert_eq!(d.guild_id, None),
            other => panic!("unexpected {other:?}"),
        }
        let ev = Event::from_dispatch(
            "CHANNEL_CREATE",
            json!({"id": "2", "type": 1, "position": 0, "permission_overwrites": [], "topic": null,
                   "nsfw": false, "last_message_id": null, "rate_limit_per_user": 0, "parent_id": null,
                   "last_pin_timestamp": null, "flags": 0,
                   "recipients": [{"id": "5", "username": "ana", "discriminator": "0", "global_name": null,
                                   "avatar": null, "banner": null, "accent_color": null, "public_flags": 0, "flags": 0}]}),
        )
        .expect("decodes");
        match ev {
            Event::ChannelCreate(c) => {
                assert_eq!(c.guild_id, None);
                let private = c.private.expect("a DM's fields");
                assert_eq!(private.recipients[0].username, "ana");
            }
            other => panic!("unexpected {other:?}"),
        }
        let ev = Event::from_dispatch("SOMETHING_NEW", json!({"x": 1})).expect("decodes");
        assert_eq!(
            ev,
            Event::Unknown {
                name: "SOMETHING_NEW".into(),
                data: json!({"x": 1})
            }
        );
        assert!(Event::from_dispatch("MESSAGE_DELETE", json!({"id": 3})).is_err());
        assert_eq!(
            Event::from_dispatch("RESUMED", Value::Null).expect("decodes"),
            Event::Resumed
        );
    }
}
