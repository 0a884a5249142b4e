//! Discord v10 resource objects as they appear on the wire.
//!
//! Field names and nullability follow Discord's documentation: a field Discord always sends as
//! `null` when empty is an `Option` without `skip_serializing_if`; a field Discord omits when absent
//! carries `skip_serializing_if`. Bot libraries deserialize these strictly, so the difference matters.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Permissions, Snowflake, Timestamp};

macro_rules! wire {
    ($(#[$m:meta])* pub struct $name:ident $body:tt) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
        pub struct $name $body
    };
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

wire! {
    /// A user account or bot.
    pub struct User {
        pub id: Snowflake,
        pub username: String,
        /// Always "0": Discord retired discriminators for unique usernames.
        pub discriminator: String,
        pub global_name: Option<String>,
        pub avatar: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        pub bot: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        pub system: bool,
        pub banner: Option<String>,
        pub accent_color: Option<u32>,
        pub public_flags: u64,
        pub flags: u64,
        /// Only present on the caller's own user (`GET /users/@me`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub mfa_enabled: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub email: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub verified: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub locale: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub premium_type: Option<u8>,
    }
}

impl User {
    /// A plain user with Discord's defaults: no avatar, no flags, discriminator "0".
    pub fn new(id: Snowflake, username: impl Into<String>) -> User {
        User {
            id,
            username: username.into(),
            discriminator: "0".into(),
            global_name: None,
            avatar: None,
            bot: false,
            system: false,
            banner: None,
            accent_color: None,
            public_flags: 0,
            flags: 0,
            mfa_enabled: None,
            email: None,
            verified: None,
            locale: None,
            premium_type: None,
        }
    }

    /// The public view of a user (no email, MFA state or locale).
    pub fn public(&self) -> User {
        User {
            mfa_enabled: None,
            email: None,
            verified: None,
            locale: None,
            premium_type: None,
            ..self.clone()
        }
    }
}

/// A role.
///
/// On the wire it also carries Discord's `colors` object (`primary_color`, `secondary_color`,
/// `tertiary_color`), which libraries read instead of the deprecated `color`. Roles here have
/// one solid color, so `colors` is derived from `color` when serializing (`RoleWire`) and
/// ignored when reading.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct Role {
    pub id: Snowflake,
    pub name: String,
    pub color: u32,
    pub hoist: bool,
    pub icon: Option<String>,
    pub unicode_emoji: Option<String>,
    pub position: i32,
    pub permissions: Permissions,
    pub managed: bool,
    pub mentionable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<RoleTags>,
    pub flags: u64,
}

impl Role {
    /// A guild's @everyone role: its id is the guild's, at position 0.
    pub fn everyone(guild_id: Snowflake, permissions: Permissions) -> Role {
        Role {
            id: guild_id,
            name: "@everyone".into(),
            color: 0,
            hoist: false,
            icon: None,
            unicode_emoji: None,
            position: 0,
            permissions,
            managed: false,
            mentionable: false,
            tags: None,
            flags: 0,
        }
    }

    /// Discord's role colors object for this role's solid color.
    pub fn colors(&self) -> RoleColors {
        RoleColors {
            primary_color: self.color,
            secondary_color: None,
            tertiary_color: None,
        }
    }
}

/// A [`Role`] as it is written: its fields plus `colors`. Also the role's OpenAPI schema.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct RoleWire<'a> {
    id: Snowflake,
    name: &'a str,
    /// Deprecated by Discord in favour of `colors.primary_color`; the same value.
    color: u32,
    colors: RoleColors,
    hoist: bool,
    icon: &'a Option<String>,
    unicode_emoji: &'a Option<String>,
    position: i32,
    permissions: Permissions,
    managed: bool,
    mentionable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: &'a Option<RoleTags>,
    flags: u64,
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RoleWire {
            id: self.id,
            name: &self.name,
            color: self.color,
            colors: self.colors(),
            hoist: self.hoist,
            icon: &self.icon,
            unicode_emoji: &self.unicode_emoji,
            position: self.position,
            permissions: self.permissions,
            managed: self.managed,
            mentionable: self.mentionable,
            tags: &self.tags,
            flags: self.flags,
        }
        .serialize(s)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Role {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <RoleWire<'static> as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Role {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <RoleWire<'static> as utoipa::ToSchema>::schemas(schemas);
    }
}

wire! {
    /// A role's colors: `secondary_color` makes a gradient, `tertiary_color` a holographic
    /// style (both null for a solid color).
    pub struct RoleColors {
        pub primary_color: u32,
        pub secondary_color: Option<u32>,
        pub tertiary_color: Option<u32>,
    }
}

wire! {
    /// Marks a role as belonging to a bot (`bot_id`) or an integration.
    pub struct RoleTags {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bot_id: Option<Snowflake>,
    }
}

/// Channel types (Discord's `type` integers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelType(pub u8);

impl ChannelType {
    pub const GUILD_TEXT: ChannelType = ChannelType(0);
    pub const DM: ChannelType = ChannelType(1);
    pub const GUILD_VOICE: ChannelType = ChannelType(2);
    pub const GROUP_DM: ChannelType = ChannelType(3);
    pub const GUILD_CATEGORY: ChannelType = ChannelType(4);
    pub const GUILD_ANNOUNCEMENT: ChannelType = ChannelType(5);
    pub const GUILD_STAGE_VOICE: ChannelType = ChannelType(13);

    /// The guild channel types this server can create.
    pub fn is_supported_guild_type(self) -> bool {
        matches!(self.0, 0 | 2 | 4 | 5 | 13)
    }

    pub fn is_voice(self) -> bool {
        matches!(self.0, 2 | 13)
    }

    /// Whether messages can be sent in this channel type.
    pub fn is_text_based(self) -> bool {
        matches!(self.0, 0 | 1 | 2 | 3 | 5 | 13)
    }
}

impl Serialize for ChannelType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for ChannelType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u8::deserialize(d).map(ChannelType)
    }
}

wire! {
    /// A channel permission overwrite; `type` 0 is a role, 1 a member.
    pub struct PermissionOverwrite {
        pub id: Snowflake,
        #[serde(rename = "type")]
        pub kind: u8,
        pub allow: Permissions,
        pub deny: Permissions,
    }
}

impl PermissionOverwrite {
    pub fn as_ref(&self) -> crate::permissions::OverwriteRef {
        crate::permissions::OverwriteRef {
            id: self.id,
            kind: if self.kind == 1 {
                crate::permissions::OverwriteKind::Member
            } else {
                crate::permissions::OverwriteKind::Role
            },
            allow: self.allow,
            deny: self.deny,
        }
    }
}

wire! {
    /// A channel: a guild's, or a DM or group DM (`private` set, `guild_id` absent).
    pub struct Channel {
        pub id: Snowflake,
        #[serde(rename = "type")]
        pub kind: ChannelType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub guild_id: Option<Snowflake>,
        pub position: i32,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub permission_overwrites: Vec<PermissionOverwrite>,
        /// Empty for a DM and an unnamed group DM, which send none.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub name: String,
        pub topic: Option<String>,
        pub nsfw: bool,
        pub last_message_id: Option<Snowflake>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bitrate: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user_limit: Option<u32>,
        pub rate_limit_per_user: u32,
        pub parent_id: Option<Snowflake>,
        pub last_pin_timestamp: Option<Timestamp>,
        pub flags: u64,
        /// A DM's or group DM's own fields.
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        pub private: Option<PrivateChannelFields>,
    }
}

wire! {
    /// What a DM or group DM adds to a channel: who is in it and, for a group, its owner and
    /// icon.
    pub struct PrivateChannelFields {
        /// Everyone in it but the user reading it.
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub recipients: Vec<User>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub owner_id: Option<Snowflake>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub icon: Option<String>,
    }
}

wire! {
    /// How the user stands towards another: `type` 2 is blocked (the only kind kept).
    pub struct Relationship {
        pub id: Snowflake,
        #[serde(rename = "type")]
        pub kind: u8,
        pub user: User,
        pub nickname: Option<String>,
        pub since: Timestamp,
    }
}

wire! {
    /// A guild.
    pub struct Guild {
        pub id: Snowflake,
        pub name: String,
        pub icon: Option<String>,
        pub splash: Option<String>,
        pub discovery_splash: Option<String>,
        pub owner_id: Snowflake,
        pub afk_channel_id: Option<Snowflake>,
        pub afk_timeout: u32,
        pub verification_level: u8,
        pub default_message_notifications: u8,
        pub explicit_content_filter: u8,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub roles: Vec<Role>,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub emojis: Vec<Emoji>,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub features: Vec<String>,
        pub mfa_level: u8,
        pub application_id: Option<Snowflake>,
        pub system_channel_id: Option<Snowflake>,
        pub system_channel_flags: u64,
        pub rules_channel_id: Option<Snowflake>,
        pub vanity_url_code: Option<String>,
        pub description: Option<String>,
        pub banner: Option<String>,
        pub premium_tier: u8,
        pub preferred_locale: String,
        pub public_updates_channel_id: Option<Snowflake>,
        pub nsfw_level: u8,
        pub premium_progress_bar_enabled: bool,
        pub safety_alerts_channel_id: Option<Snowflake>,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::json_objects()"))]
        pub stickers: Vec<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub approximate_member_count: Option<u64>,
    }
}

impl Guild {
    /// A new guild with Discord's defaults: no icon or channels named yet, no roles listed
    /// (they are rows of their own), a 300 s AFK timeout, locale en-US.
    pub fn new(id: Snowflake, name: impl Into<String>, owner_id: Snowflake) -> Guild {
        Guild {
            id,
            name: name.into(),
            icon: None,
            splash: None,
            discovery_splash: None,
            owner_id,
            afk_channel_id: None,
            afk_timeout: 300,
            verification_level: 0,
            default_message_notifications: 0,
            explicit_content_filter: 0,
            roles: Vec::new(),
            emojis: Vec::new(),
            features: Vec::new(),
            mfa_level: 0,
            application_id: None,
            system_channel_id: None,
            system_channel_flags: 0,
            rules_channel_id: None,
            vanity_url_code: None,
            description: None,
            banner: None,
            premium_tier: 0,
            preferred_locale: "en-US".into(),
            public_updates_channel_id: None,
            nsfw_level: 0,
            premium_progress_bar_enabled: false,
            safety_alerts_channel_id: None,
            stickers: Vec::new(),
            approximate_member_count: None,
        }
    }
}

wire! {
    /// An entry of `GET /users/@me/guilds`.
    pub struct PartialGuild {
        pub id: Snowflake,
        pub name: String,
        pub icon: Option<String>,
        pub banner: Option<String>,
        pub owner: bool,
        pub permissions: Permissions,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub features: Vec<String>,
    }
}

wire! {
    /// A guild member.
    pub struct Member {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user: Option<User>,
        pub nick: Option<String>,
        pub avatar: Option<String>,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub roles: Vec<Snowflake>,
        pub joined_at: Timestamp,
        pub premium_since: Option<Timestamp>,
        pub deaf: bool,
        pub mute: bool,
        pub flags: u64,
        pub pending: bool,
        pub communication_disabled_until: Option<Timestamp>,
    }
}

wire! {
    /// An emoji: a Unicode one (`id` null) or a guild's custom one. Reactions carry only `id`,
    /// `name` and `animated`; a guild's emoji list adds the rest.
    pub struct Emoji {
        pub id: Option<Snowflake>,
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        pub animated: bool,
        /// Roles allowed to use it (empty: everyone).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub roles: Option<Vec<Snowflake>>,
        /// Who uploaded it (shown to those who may manage it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user: Option<User>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub require_colons: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub managed: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub available: Option<bool>,
    }
}

impl Emoji {
    /// A Unicode emoji, as a reaction names it.
    pub fn unicode(name: impl Into<String>) -> Emoji {
        Emoji {
            id: None,
            name: Some(name.into()),
            animated: false,
            roles: None,
            user: None,
            require_colons: None,
            managed: None,
            available: None,
        }
    }

    /// A custom emoji as a reaction names it: id, name, animated.
    pub fn custom(id: Snowflake, name: impl Into<String>, animated: bool) -> Emoji {
        Emoji {
            id: Some(id),
            animated,
            ..Emoji::unicode(name)
        }
    }
}

wire! {
    /// Reaction counts on a message.
    pub struct Reaction {
        pub count: u32,
        pub count_details: ReactionCountDetails,
        pub me: bool,
        pub me_burst: bool,
        pub emoji: Emoji,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub burst_colors: Vec<String>,
    }
}

wire! {
    pub struct ReactionCountDetails {
        pub burst: u32,
        pub normal: u32,
    }
}

wire! {
    /// A file attached to a message.
    pub struct Attachment {
        pub id: Snowflake,
        pub filename: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub content_type: Option<String>,
        pub size: u64,
        pub url: String,
        pub proxy_url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub height: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub width: Option<u32>,
    }
}

wire! {
    /// A rich embed. Kept as Discord's loose object shape; validated on input for size.
    pub struct Embed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub title: Option<String>,
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub timestamp: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub color: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub footer: Option<EmbedFooter>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub author: Option<EmbedAuthor>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub fields: Vec<EmbedField>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::json_object())"))]
        pub image: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::json_object())"))]
        pub thumbnail: Option<Value>,
    }
}

wire! {
    pub struct EmbedFooter {
        pub text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub icon_url: Option<String>,
    }
}

wire! {
    pub struct EmbedAuthor {
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub icon_url: Option<String>,
    }
}

wire! {
    pub struct EmbedField {
        pub name: String,
        pub value: String,
        #[serde(default)]
        pub inline: bool,
    }
}

impl Embed {
    /// Characters counted against Discord's 6000-per-message embed budget.
    pub fn text_len(&self) -> usize {
        let n = |s: &Option<String>| s.as_deref().map_or(0, |s| s.chars().count());
        n(&self.title)
            + n(&self.description)
            + self.footer.as_ref().map_or(0, |f| f.text.chars().count())
            + self.author.as_ref().map_or(0, |a| a.name.chars().count())
            + self
                .fields
                .iter()
                .map(|f| f.name.chars().count() + f.value.chars().count())
                .sum::<usize>()
    }
}

wire! {
    /// A reference to another message (replies).
    pub struct MessageReference {
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        pub kind: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub message_id: Option<Snowflake>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub channel_id: Option<Snowflake>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub guild_id: Option<Snowflake>,
        /// A send-time option: stored references always say `true`, which is left out, so
        /// messages read back look as Discord's do; a `false` from a sender still crosses the
        /// wire between nodes.
        #[serde(default = "default_true", skip_serializing_if = "is_true")]
        pub fail_if_not_exists: bool,
    }
}

fn default_true() -> bool {
    true
}

/// A message nonce: Discord accepts an integer or a string of up to 25 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub enum Nonce {
    Int(i64),
    Str(String),
}

wire! {
    /// A message.
    pub struct Message {
        pub id: Snowflake,
        pub channel_id: Snowflake,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub guild_id: Option<Snowflake>,
        pub author: User,
        pub content: String,
        pub timestamp: Timestamp,
        pub edited_timestamp: Option<Timestamp>,
        pub tts: bool,
        pub mention_everyone: bool,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub mentions: Vec<User>,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub mention_roles: Vec<Snowflake>,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub attachments: Vec<Attachment>,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub embeds: Vec<Embed>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub reactions: Vec<Reaction>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub nonce: Option<Nonce>,
        pub pinned: bool,
        #[serde(rename = "type")]
        pub kind: u8,
        pub flags: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub message_reference: Option<MessageReference>,
        /// Present (possibly `null` when deleted) only on replies.
        #[serde(
            default,
            deserialize_with = "crate::rest::nullable",
            skip_serializing_if = "Option::is_none"
        )]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        // One level of replies, as the server sends them.
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::referenced_message()"))]
        pub referenced_message: Option<Option<Box<Message>>>,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::json_objects()"))]
        pub components: Vec<Value>,
        /// The webhook that posted the message; its `author` is then the webhook's name (or
        /// the execution's `username`), not a user account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub webhook_id: Option<Snowflake>,
    }
}

wire! {
    /// An incoming webhook: posts to its channel with its id and token, no account needed.
    pub struct Webhook {
        pub id: Snowflake,
        /// 1: incoming.
        #[serde(rename = "type")]
        pub kind: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub guild_id: Option<Snowflake>,
        pub channel_id: Option<Snowflake>,
        /// Who created it; absent when read with its token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user: Option<User>,
        pub name: Option<String>,
        pub avatar: Option<String>,
        /// Only in the answer that creates it: the server keeps a hash and cannot show it
        /// again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub token: Option<String>,
        pub application_id: Option<Snowflake>,
    }
}

wire! {
    /// An entry of `GET /channels/{id}/messages/pins`.
    pub struct PinnedMessage {
        pub pinned_at: Timestamp,
        pub message: Message,
    }
}

wire! {
    /// `GET /channels/{id}/messages/pins`: newest pins first.
    pub struct PinList {
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub items: Vec<PinnedMessage>,
        pub has_more: bool,
    }
}

/// Message types this server produces.
pub mod message_type {
    pub const DEFAULT: u8 = 0;
    pub const GUILD_MEMBER_JOIN: u8 = 7;
    pub const REPLY: u8 = 19;
}

wire! {
    /// A ban entry.
    pub struct Ban {
        pub reason: Option<String>,
        pub user: User,
    }
}

wire! {
    /// An invite, with metadata when listed by a manager.
    pub struct Invite {
        #[serde(rename = "type")]
        pub kind: u8,
        pub code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub guild: Option<InviteGuild>,
        pub channel: Option<InviteChannel>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub inviter: Option<User>,
        pub expires_at: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub approximate_member_count: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub uses: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_uses: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_age: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub temporary: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub created_at: Option<Timestamp>,
    }
}

wire! {
    pub struct InviteGuild {
        pub id: Snowflake,
        pub name: String,
        pub icon: Option<String>,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub features: Vec<String>,
    }
}

wire! {
    pub struct InviteChannel {
        pub id: Snowflake,
        pub name: String,
        #[serde(rename = "type")]
        pub kind: ChannelType,
    }
}

wire! {
    /// An application; bots belong to one.
    pub struct Application {
        pub id: Snowflake,
        pub name: String,
        pub icon: Option<String>,
        pub description: String,
        pub bot_public: bool,
        pub bot_require_code_grant: bool,
        pub verify_key: String,
        pub flags: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub owner: Option<User>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bot: Option<User>,
    }
}

/// Audit-log action types ([`AuditLogEntry::action_type`]), as Discord numbers them; only those
/// this server records are listed.
pub mod audit_action {
    pub const GUILD_UPDATE: u16 = 1;
    pub const CHANNEL_CREATE: u16 = 10;
    pub const CHANNEL_UPDATE: u16 = 11;
    pub const CHANNEL_DELETE: u16 = 12;
    pub const CHANNEL_OVERWRITE_CREATE: u16 = 13;
    pub const CHANNEL_OVERWRITE_UPDATE: u16 = 14;
    pub const CHANNEL_OVERWRITE_DELETE: u16 = 15;
    pub const MEMBER_KICK: u16 = 20;
    pub const MEMBER_BAN_ADD: u16 = 22;
    pub const MEMBER_BAN_REMOVE: u16 = 23;
    pub const MEMBER_UPDATE: u16 = 24;
    pub const MEMBER_ROLE_UPDATE: u16 = 25;
    pub const BOT_ADD: u16 = 28;
    pub const ROLE_CREATE: u16 = 30;
    pub const ROLE_UPDATE: u16 = 31;
    pub const ROLE_DELETE: u16 = 32;
    pub const INVITE_CREATE: u16 = 40;
    pub const INVITE_DELETE: u16 = 42;
    pub const MESSAGE_DELETE: u16 = 72;
    pub const MESSAGE_BULK_DELETE: u16 = 73;
    pub const MESSAGE_PIN: u16 = 74;
    pub const MESSAGE_UNPIN: u16 = 75;
    pub const WEBHOOK_CREATE: u16 = 50;
    pub const WEBHOOK_UPDATE: u16 = 51;
    pub const WEBHOOK_DELETE: u16 = 52;
    pub const EMOJI_CREATE: u16 = 60;
    pub const EMOJI_UPDATE: u16 = 61;
    pub const EMOJI_DELETE: u16 = 62;

    /// Discord's name of an action type, for people reading a log.
    pub fn name(action: u16) -> Option<&'static str> {
        Some(match action {
            GUILD_UPDATE => "GUILD_UPDATE",
            CHANNEL_CREATE => "CHANNEL_CREATE",
            CHANNEL_UPDATE => "CHANNEL_UPDATE",
            CHANNEL_DELETE => "CHANNEL_DELETE",
            CHANNEL_OVERWRITE_CREATE => "CHANNEL_OVERWRITE_CREATE",
            CHANNEL_OVERWRITE_UPDATE => "CHANNEL_OVERWRITE_UPDATE",
            CHANNEL_OVERWRITE_DELETE => "CHANNEL_OVERWRITE_DELETE",
            MEMBER_KICK => "MEMBER_KICK",
            MEMBER_BAN_ADD => "MEMBER_BAN_ADD",
            MEMBER_BAN_REMOVE => "MEMBER_BAN_REMOVE",
            MEMBER_UPDATE => "MEMBER_UPDATE",
            MEMBER_ROLE_UPDATE => "MEMBER_ROLE_UPDATE",
            BOT_ADD => "BOT_ADD",
            ROLE_CREATE => "ROLE_CREATE",
            ROLE_UPDATE => "ROLE_UPDATE",
            ROLE_DELETE => "ROLE_DELETE",
            INVITE_CREATE => "INVITE_CREATE",
            INVITE_DELETE => "INVITE_DELETE",
            MESSAGE_DELETE => "MESSAGE_DELETE",
            MESSAGE_BULK_DELETE => "MESSAGE_BULK_DELETE",
            MESSAGE_PIN => "MESSAGE_PIN",
            MESSAGE_UNPIN => "MESSAGE_UNPIN",
            WEBHOOK_CREATE => "WEBHOOK_CREATE",
            WEBHOOK_UPDATE => "WEBHOOK_UPDATE",
            WEBHOOK_DELETE => "WEBHOOK_DELETE",
            EMOJI_CREATE => "EMOJI_CREATE",
            EMOJI_UPDATE => "EMOJI_UPDATE",
            EMOJI_DELETE => "EMOJI_DELETE",
            _ => return None,
        })
    }
}

wire! {
    /// One administrative action in a guild: who did what to which object, and why.
    pub struct AuditLogEntry {
        pub id: Snowflake,
        /// The affected object's id (a user, role, channel, message; an invite's code), or null.
        pub target_id: Option<String>,
        /// What changed, key by key; absent when the action carries no field changes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub changes: Vec<AuditLogChange>,
        /// Who acted.
        pub user_id: Option<Snowflake>,
        pub action_type: u16,
        /// Extra facts some action types carry (the channel of a deleted message, an
        /// overwrite's target, ...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub options: Option<AuditEntryInfo>,
        /// `X-Audit-Log-Reason` of the request, up to 512 characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reason: Option<String>,
    }
}

wire! {
    /// One changed key of an audit-log entry; either value may be absent (a creation has no
    /// old value, a deletion no new one).
    pub struct AuditLogChange {
        pub key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::json_object())"))]
        pub new_value: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::json_object())"))]
        pub old_value: Option<Value>,
    }
}

wire! {
    /// Optional audit entry info: which fields are set depends on the action type. Counts are
    /// strings on the wire, as Discord sends them.
    #[derive(Default)]
    pub struct AuditEntryInfo {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub channel_id: Option<Snowflake>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub count: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub message_id: Option<Snowflake>,
        /// An overwrite's target (role or member).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub id: Option<Snowflake>,
        /// An overwrite's target type: "0" role, "1" member.
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub role_name: Option<String>,
    }
}

wire! {
    /// `GET /guilds/{id}/audit-logs`: the entries, newest first, with the users they name.
    /// The other lists are the objects entries may refer to that this server does not have yet;
    /// they are sent empty so clients that read them find them.
    pub struct AuditLog {
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub audit_log_entries: Vec<AuditLogEntry>,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub users: Vec<User>,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::json_objects()"))]
        pub application_commands: Vec<Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::json_objects()"))]
        pub auto_moderation_rules: Vec<Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::json_objects()"))]
        pub guild_scheduled_events: Vec<Value>,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::json_objects()"))]
        pub integrations: Vec<Value>,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub threads: Vec<Channel>,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::json_objects()"))]
        pub webhooks: Vec<Value>,
    }
}
