//! Domain events: what changed in a guild, emitted by its actor after the change is durable.
//!
//! Each variant serializes to exactly the `d` payload of the Discord dispatch named by
//! [`GuildEvent::name`], so fanout can encode an event once per wire encoding and share the
//! bytes. [`Audience`] says who may receive it; the fanout layer applies it together with
//! the receiver's intents ([`GuildEvent::intent`]).

use std::sync::Arc;

use enrichment_protocol::gateway::Presence;
pub use enrichment_protocol::gateway::dispatch::{
    AuditLogEntryData, ChannelPinsData, ChannelRecipientData, GuildDeleteData,
    GuildEmojisUpdateData, GuildUserData, InviteCreateData, InviteDeleteData, MemberData,
    MessageData, MessageDeleteBulkData, MessageDeleteData, ReactionData, ReactionRemoveAllData,
    ReactionRemoveEmojiData, RoleData, RoleDeleteData, TypingStartData, WebhooksUpdateData,
};
use enrichment_protocol::models::{Channel, Guild};
use enrichment_protocol::{Permissions, Snowflake};
use serde::Serialize;
use tokio::sync::broadcast;

pub use enrichment_protocol::gateway::intents;

/// Who may receive an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Every member of the guild.
    Guild,
    /// Members who can view the channel.
    Channel(Snowflake),
    /// Members with one of these permissions in the channel (e.g. invite events need
    /// MANAGE_CHANNELS), checked by the fanout layer.
    ChannelManagers(Snowflake),
    /// Exactly these users (e.g. a removed member learning it left).
    Users(Vec<Snowflake>),
    /// Members with all of these guild-level permissions (audit-log entries need
    /// VIEW_AUDIT_LOG), checked by the fanout layer.
    GuildPermission(Permissions),
}

/// A change in a guild; serializes to the dispatch's `d`.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum GuildEvent {
    GuildUpdate(Guild),
    GuildDelete(GuildDeleteData),
    ChannelCreate(Channel),
    ChannelUpdate(Channel),
    ChannelDelete(Channel),
    ChannelPinsUpdate(ChannelPinsData),
    RoleCreate(RoleData),
    RoleUpdate(RoleData),
    RoleDelete(RoleDeleteData),
    MemberAdd(MemberData),
    MemberUpdate(MemberData),
    MemberRemove(GuildUserData),
    BanAdd(GuildUserData),
    BanRemove(GuildUserData),
    InviteCreate(InviteCreateData),
    InviteDelete(InviteDeleteData),
    MessageCreate(MessageData),
    MessageUpdate(MessageData),
    MessageDelete(MessageDeleteData),
    MessageDeleteBulk(MessageDeleteBulkData),
    ReactionAdd(ReactionData),
    ReactionRemove(ReactionData),
    ReactionRemoveAll(ReactionRemoveAllData),
    ReactionRemoveEmoji(ReactionRemoveEmojiData),
    TypingStart(TypingStartData),
    PresenceUpdate(Presence),
    AuditLogEntryCreate(AuditLogEntryData),
    WebhooksUpdate(WebhooksUpdateData),
    ChannelRecipientAdd(ChannelRecipientData),
    ChannelRecipientRemove(ChannelRecipientData),
    EmojisUpdate(GuildEmojisUpdateData),
}

impl GuildEvent {
    /// The dispatch name (`t`).
    pub fn name(&self) -> &'static str {
        match self {
            GuildEvent::GuildUpdate(_) => "GUILD_UPDATE",
            GuildEvent::GuildDelete(_) => "GUILD_DELETE",
            GuildEvent::ChannelCreate(_) => "CHANNEL_CREATE",
            GuildEvent::ChannelUpdate(_) => "CHANNEL_UPDATE",
            GuildEvent::ChannelDelete(_) => "CHANNEL_DELETE",
            GuildEvent::ChannelPinsUpdate(_) => "CHANNEL_PINS_UPDATE",
            GuildEvent::RoleCreate(_) => "GUILD_ROLE_CREATE",
            GuildEvent::RoleUpdate(_) => "GUILD_ROLE_UPDATE",
            GuildEvent::RoleDelete(_) => "GUILD_ROLE_DELETE",
            GuildEvent::MemberAdd(_) => "GUILD_MEMBER_ADD",
            GuildEvent::MemberUpdate(_) => "GUILD_MEMBER_UPDATE",
            GuildEvent::MemberRemove(_) => "GUILD_MEMBER_REMOVE",
            GuildEvent::BanAdd(_) => "GUILD_BAN_ADD",
            GuildEvent::BanRemove(_) => "GUILD_BAN_REMOVE",
            GuildEvent::InviteCreate(_) => "INVITE_CREATE",
            GuildEvent::InviteDelete(_) => "INVITE_DELETE",
            GuildEvent::MessageCreate(_) => "MESSAGE_CREATE",
            GuildEvent::MessageUpdate(_) => "MESSAGE_UPDATE",
            GuildEvent::MessageDelete(_) => "MESSAGE_DELETE",
            GuildEvent::MessageDeleteBulk(_) => "MESSAGE_DELETE_BULK",
            GuildEvent::ReactionAdd(_) => "MESSAGE_REACTION_ADD",
            GuildEvent::ReactionRemove(_) => "MESSAGE_REACTION_REMOVE",
            GuildEvent::ReactionRemoveAll(_) => "MESSAGE_REACTION_REMOVE_ALL",
            GuildEvent::ReactionRemoveEmoji(_) => "MESSAGE_REACTION_REMOVE_EMOJI",
            GuildEvent::TypingStart(_) => "TYPING_START",
            GuildEvent::PresenceUpdate(_) => "PRESENCE_UPDATE",
            GuildEvent::AuditLogEntryCreate(_) => "GUILD_AUDIT_LOG_ENTRY_CREATE",
            GuildEvent::WebhooksUpdate(_) => "WEBHOOKS_UPDATE",
            GuildEvent::ChannelRecipientAdd(_) => "CHANNEL_RECIPIENT_ADD",
            GuildEvent::ChannelRecipientRemove(_) => "CHANNEL_RECIPIENT_REMOVE",
            GuildEvent::EmojisUpdate(_) => "GUILD_EMOJIS_UPDATE",
        }
    }

    /// Whether the event is a private channel's: its payload names no guild.
    pub fn is_private(&self) -> bool {
        match self {
            GuildEvent::ChannelCreate(c)
            | GuildEvent::ChannelUpdate(c)
            | GuildEvent::ChannelDelete(c) => c.guild_id.is_none(),
            GuildEvent::ChannelPinsUpdate(d) => d.guild_id.is_none(),
            GuildEvent::MessageCreate(m) | GuildEvent::MessageUpdate(m) => {
                m.message.guild_id.is_none()
            }
            GuildEvent::MessageDelete(d) => d.guild_id.is_none(),
            GuildEvent::MessageDeleteBulk(d) => d.guild_id.is_none(),
            GuildEvent::ReactionAdd(d) | GuildEvent::ReactionRemove(d) => d.guild_id.is_none(),
            GuildEvent::ReactionRemoveAll(d) => d.guild_id.is_none(),
            GuildEvent::ReactionRemoveEmoji(d) => d.guild_id.is_none(),
            GuildEvent::TypingStart(d) => d.guild_id.is_none(),
            GuildEvent::ChannelRecipientAdd(_) | GuildEvent::ChannelRecipientRemove(_) => true,
            _ => false,
        }
    }

    /// The intent a receiver needs for this event (Discord's table); 0 for none.
    pub fn intent(&self) -> u64 {
        use intents::*;
        if self.is_private() {
            return match self {
                GuildEvent::MessageCreate(_)
                | GuildEvent::MessageUpdate(_)
                | GuildEvent::MessageDelete(_)
                | GuildEvent::MessageDeleteBulk(_)
                | GuildEvent::ChannelPinsUpdate(_) => DIRECT_MESSAGES,
                GuildEvent::ReactionAdd(_)
                | GuildEvent::ReactionRemove(_)
                | GuildEvent::ReactionRemoveAll(_)
                | GuildEvent::ReactionRemoveEmoji(_) => DIRECT_MESSAGE_REACTIONS,
                GuildEvent::TypingStart(_) => DIRECT_MESSAGE_TYPING,
                // A private channel's own comings and goings belong to no intent.
                _ => 0,
            };
        }
        match self {
            GuildEvent::GuildUpdate(_)
            | GuildEvent::GuildDelete(_)
            | GuildEvent::ChannelCreate(_)
            | GuildEvent::ChannelUpdate(_)
            | GuildEvent::ChannelDelete(_)
            | GuildEvent::ChannelPinsUpdate(_)
            | GuildEvent::RoleCreate(_)
            | GuildEvent::RoleUpdate(_)
            | GuildEvent::RoleDelete(_) => GUILDS,
            GuildEvent::MemberAdd(_)
            | GuildEvent::MemberUpdate(_)
            | GuildEvent::MemberRemove(_) => GUILD_MEMBERS,
            GuildEvent::BanAdd(_)
            | GuildEvent::BanRemove(_)
            | GuildEvent::AuditLogEntryCreate(_) => GUILD_MODERATION,
            GuildEvent::InviteCreate(_) | GuildEvent::InviteDelete(_) => GUILD_INVITES,
            GuildEvent::MessageCreate(_)
            | GuildEvent::MessageUpdate(_)
            | GuildEvent::MessageDelete(_)
            | GuildEvent::MessageDeleteBulk(_) => GUILD_MESSAGES,
            GuildEvent::ReactionAdd(_)
            | GuildEvent::ReactionRemove(_)
            | GuildEvent::ReactionRemoveAll(_)
            | GuildEvent::ReactionRemoveEmoji(_) => GUILD_MESSAGE_REACTIONS,
            GuildEvent::TypingStart(_) => GUILD_MESSAGE_TYPING,
            GuildEvent::PresenceUpdate(_) => GUILD_PRESENCES,
            GuildEvent::WebhooksUpdate(_) => GUILD_WEBHOOKS,
            GuildEvent::ChannelRecipientAdd(_) | GuildEvent::ChannelRecipientRemove(_) => 0,
            GuildEvent::EmojisUpdate(_) => GUILD_EXPRESSIONS,
        }
    }
}

/// An event with its guild and audience.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub guild_id: Snowflake,
    pub audience: Audience,
    pub event: GuildEvent,
}

/// Where guild actors also publish their events, for consumers that are not sessions (search
/// indexing, analytics); sessions receive them straight from the guild actor's fanout.
///
/// A bounded broadcast channel: a subscriber that falls more than `capacity` events behind
/// loses the oldest ones and is told so (`RecvError::Lagged`), so no subscriber can make the
/// publisher wait or grow memory without bound.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Dispatch>>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        EventBus { tx }
    }

    pub fn publish(&self, dispatch: Dispatch) {
        metrics::counter!("enrichment_events_total", "event" => dispatch.event.name()).increment(1);
        // No subscriber is not an error: events are for whoever listens now.
        let _ = self.tx.send(Arc::new(dispatch));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Dispatch>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typing(n: u64) -> Dispatch {
        Dispatch {
            guild_id: Snowflake(1),
            audience: Audience::Guild,
            event: GuildEvent::TypingStart(TypingStartData {
                channel_id: Snowflake(2),
                guild_id: Some(Snowflake(1)),
                user_id: Snowflake(n),
                timestamp: n,
                member: None,
            }),
        }
    }

    #[tokio::test]
    async fn a_lagging_subscriber_loses_the_oldest_events_and_is_told() {
        let bus = EventBus::new(2);
        let mut rx = bus.subscribe();
        for n in 0..5 {
            bus.publish(typing(n));
        }
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(missed)) => assert_eq!(missed, 3),
            other => panic!("expected a lag notice, got {other:?}"),
        }
        let next = rx.recv().await.unwrap();
        assert!(matches!(&next.event, GuildEvent::TypingStart(t) if t.user_id == Snowflake(3)));
    }

    #[test]
    fn events_serialize_to_discord_dispatch_payloads() {
        let d = typing(9);
        assert_eq!(d.event.name(), "TYPING_START");
        assert_eq!(d.event.intent(), intents::GUILD_MESSAGE_TYPING);
        let json = serde_json::to_value(&d.event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"channel_id": "2", "guild_id": "1", "user_id": "9", "timestamp": 9})
        );
    }

    #[test]
    fn a_private_channels_events_name_no_guild_and_need_the_dm_intents() {
        let GuildEvent::TypingStart(mut data) = typing(9).event else {
            unreachable!("typing() builds TYPING_START")
        };
        data.guild_id = None;
        let event = GuildEvent::TypingStart(data);
        assert!(event.is_private());
        assert_eq!(event.intent(), intents::DIRECT_MESSAGE_TYPING);
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"channel_id": "2", "user_id": "9", "timestamp": 9})
        );
        let deleted = GuildEvent::MessageDelete(MessageDeleteData {
            id: Snowflake(3),
            channel_id: Snowflake(2),
            guild_id: None,
        });
        assert_eq!(deleted.intent(), intents::DIRECT_MESSAGES);
        let delete_in_guild = GuildEvent::MessageDelete(MessageDeleteData {
            guild_id: Some(Snowflake(1)),
            ..MessageDeleteData {
                id: Snowflake(3),
                channel_id: Snowflake(2),
                guild_id: None,
            }
        });
        assert_eq!(delete_in_guild.intent(), intents::GUILD_MESSAGES);
    }
}
