//! Storage for Enrichment: one trait per kind of data, and the backends that implement them.
//!
//! The traits are the contract every backend keeps, proven by the conformance suite in
//! [`testsuite`] (feature `testsuite`), which each backend runs unchanged:
//! - [`UserStore`]: accounts, credentials (password hash, TOTP, backup codes), refresh tokens;
//! - [`ApplicationStore`]: applications and their bot tokens;
//! - [`GuildStore`]: guild metadata (guild, roles, channels, members, bans, invites), written
//!   atomically in batches by the guild's single writer, its actor;
//! - [`MessageStore`]: messages, reactions and pins, keyed like Discord's ScyllaDB layout:
//!   partition `(channel_id, bucket)`, clustering `message_id`;
//! - [`KeyStore`]: the JWT signing keys, kept in the store so that every node of a cluster signs
//!   and verifies with the same set;
//! - [`NodeStore`]: what the shared store knows about the nodes of a cluster: which node mints
//!   snowflakes with which worker and process id, under a lease on the store's clock.
//! - [`LeaseStore`]: which node owns each guild's actor, and ([`fence`]) the guild and message
//!   writes fenced by that ownership, so a deposed owner cannot write.
//!
//! Contract shared by all writes: when the future resolves `Ok`, the write is durable (fsynced, or
//! acknowledged by a quorum) and visible to every later read. A write that fails leaves nothing
//! behind. Drivers sit behind cargo features so the traits never pull them in.

// The rule against calling the guild and message write methods (clippy.toml) keeps every other
// crate on the guild actor's commit path; the stores themselves and their conformance suite
// are where those methods are defined and proven.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use enrichment_protocol::models::{
    Attachment, AuditLogEntry, Channel, Embed, Guild, MessageReference, Nonce, Role, User,
};
use enrichment_protocol::node::NodeIdentity;
use enrichment_protocol::rest::{AuditLogFilter, HistoryAnchor};
use enrichment_protocol::{Snowflake, Timestamp};
use serde::{Deserialize, Serialize};

pub use enrichment_protocol::IdPair;

pub mod blobs;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod fence;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "scylla")]
pub mod scylla;
pub mod shared;
#[cfg(feature = "testsuite")]
pub mod testsuite;

/// Width of a message bucket: Discord's 10 days, in milliseconds of snowflake time.
pub const BUCKET_MS: u64 = 10 * 24 * 3600 * 1000;

/// The bucket a message id falls in.
pub fn bucket_of(id: Snowflake) -> u32 {
    ((id.get() >> 22) / BUCKET_MS) as u32
}

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint was violated; names the field (`username`, `email`, `code`).
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The backend failed (I/O, network, driver).
    #[error("backend error: {0}")]
    Backend(String),
    /// Stored bytes could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A write fenced by a guild's ownership ([`Stores::fenced`]) was refused: the writer no
    /// longer owns the guild under that epoch (it was released or taken over, or the owner's id
    /// lease ran out). Nothing of it was written.
    #[error("fenced: {0}")]
    Fenced(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

// ------------------------------------------------------------------ users

/// A backup code, stored hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCodeRecord {
    pub code_hash: String,
    pub consumed: bool,
}

/// Secrets for logging in as a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub user_id: Snowflake,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Base32 TOTP secret when MFA is on.
    pub totp_secret: Option<String>,
    /// The last TOTP time step accepted, so a code is never accepted twice.
    pub totp_last_step: u64,
    pub backup_codes: Vec<BackupCodeRecord>,
}

/// A refresh token, stored by the hash of its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    pub token_hash: String,
    /// Every token rotated from one login shares a family; reuse of a rotated token revokes it.
    pub family_id: Snowflake,
    pub user_id: Snowflake,
    pub expires_at: Timestamp,
}

/// The result of presenting a refresh token for rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old token is now spent and the new one stored in its family.
    Rotated {
        user_id: Snowflake,
        family_id: Snowflake,
    },
    /// The token had already been rotated: its whole family is now revoked.
    Reused { family_id: Snowflake },
    /// Unknown, expired, or its family was revoked.
    Invalid,
}

#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Creates a user with credentials. Usernames and emails are unique, case-insensitively.
    async fn create_user(&self, user: &User, credentials: &Credentials) -> StoreResult<()>;
    async fn get_user(&self, id: Snowflake) -> StoreResult<Option<User>>;
    /// The users among `ids`, in the order asked (an id asked twice comes twice); unknown ids
    /// are skipped. One call warms a cache with every member of a guild.
    async fn get_users(&self, ids: &[Snowflake]) -> StoreResult<Vec<User>>;
    /// Finds a user id by email or username (case-insensitive).
    async fn find_user_by_login(&self, login: &str) -> StoreResult<Option<Snowflake>>;
    /// Replaces a user; a changed username must stay unique.
    async fn update_user(&self, user: &User) -> StoreResult<()>;
    async fn get_credentials(&self, user_id: Snowflake) -> StoreResult<Option<Credentials>>;
    async fn put_credentials(&self, credentials: &Credentials) -> StoreResult<()>;
    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()>;
    /// Atomically spends `old_hash` and stores `new` in the same family; see [`RotateOutcome`].
    /// `new.family_id` and `new.user_id` are ignored: the old token's are used.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: &RefreshTokenRecord,
        now: Timestamp,
    ) -> StoreResult<RotateOutcome>;
    async fn revoke_refresh_family(&self, family_id: Snowflake) -> StoreResult<()>;
    /// The family a live token belongs to, if any (for logout).
    async fn refresh_token_family(&self, token_hash: &str) -> StoreResult<Option<Snowflake>>;
    /// Whether a family was revoked (logout, reuse of a rotated token, a password change).
    /// The access tokens naming it (`sid`) are refused from then on, on every node and after
    /// any restart. An unknown family is not revoked.
    async fn refresh_family_revoked(&self, family_id: Snowflake) -> StoreResult<bool>;
    /// Revokes every family of a user (a password change) and returns those that were live
    /// until now, in no particular order. Families opened afterwards are not affected.
    async fn revoke_user_refresh_families(&self, user_id: Snowflake)
    -> StoreResult<Vec<Snowflake>>;
    /// Inserts or replaces how `relationship.user_id` stands towards its target.
    async fn put_relationship(&self, relationship: &RelationshipRecord) -> StoreResult<()>;
    /// Removes it; `false` when there was none.
    async fn delete_relationship(
        &self,
        user_id: Snowflake,
        target_id: Snowflake,
    ) -> StoreResult<bool>;
    /// The user's relationships, by target id.
    async fn relationships(&self, user_id: Snowflake) -> StoreResult<Vec<RelationshipRecord>>;
}

// ------------------------------------------------------------------ applications

/// An application and the bot user that acts for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationRecord {
    pub id: Snowflake,
    pub name: String,
    pub description: String,
    pub owner_id: Snowflake,
    pub bot_user_id: Snowflake,
    pub verify_key: String,
    pub flags: u64,
}

#[async_trait]
pub trait ApplicationStore: Send + Sync + 'static {
    /// Creates the application and its bot user together (the bot's username must be unique).
    async fn create_application(&self, app: &ApplicationRecord, bot: &User) -> StoreResult<()>;
    async fn get_application(&self, id: Snowflake) -> StoreResult<Option<ApplicationRecord>>;
    /// Replaces an existing application's editable fields (description, flags); the bot and
    /// owner never change. False when the application does not exist.
    async fn update_application(&self, app: &ApplicationRecord) -> StoreResult<bool>;
    async fn application_by_bot(
        &self,
        bot_user_id: Snowflake,
    ) -> StoreResult<Option<ApplicationRecord>>;
    /// Sets the bot's token hash, replacing (and so invalidating) any previous one.
    async fn set_bot_token(&self, bot_user_id: Snowflake, token_hash: &str) -> StoreResult<()>;
    async fn bot_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Snowflake>>;
}

// ------------------------------------------------------------------ guilds

/// A member as stored (the user object lives in the user store).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub guild_id: Snowflake,
    pub user_id: Snowflake,
    pub nick: Option<String>,
    pub avatar: Option<String>,
    pub roles: Vec<Snowflake>,
    pub joined_at: Timestamp,
    pub deaf: bool,
    pub mute: bool,
    pub flags: u64,
    pub communication_disabled_until: Option<Timestamp>,
}

impl MemberRecord {
    /// A member who just joined: no nick, avatar, flags or timeout.
    pub fn new(
        guild_id: Snowflake,
        user_id: Snowflake,
        roles: Vec<Snowflake>,
        joined_at: Timestamp,
    ) -> MemberRecord {
        MemberRecord {
            guild_id,
            user_id,
            nick: None,
            avatar: None,
            roles,
            joined_at,
            deaf: false,
            mute: false,
            flags: 0,
            communication_disabled_until: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    pub guild_id: Snowflake,
    pub user_id: Snowflake,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    pub code: String,
    pub guild_id: Snowflake,
    pub channel_id: Snowflake,
    pub inviter_id: Snowflake,
    pub max_age: u32,
    pub max_uses: u32,
    pub uses: u32,
    pub temporary: bool,
    pub created_at: Timestamp,
}

/// An incoming webhook. Its token is kept only as a hash ([`WebhookRecord::token_hash`]),
/// so the store never holds what it takes to post as the webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub id: Snowflake,
    pub guild_id: Snowflake,
    pub channel_id: Snowflake,
    /// The user who created it.
    pub creator_id: Snowflake,
    pub name: String,
    pub avatar: Option<String>,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
}

/// Who posted a webhook's message, as that message shows it: the webhook's name or the
/// execution's `username`, and its avatar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAuthor {
    pub webhook_id: Snowflake,
    pub username: String,
    pub avatar: Option<String>,
}

/// A guild's custom emoji. Its image is a blob of its own ([`EmojiRecord::blob_key`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmojiRecord {
    pub id: Snowflake,
    pub guild_id: Snowflake,
    pub name: String,
    /// Roles allowed to use it; empty for everyone.
    pub roles: Vec<Snowflake>,
    /// Who uploaded it.
    pub creator_id: Snowflake,
    pub animated: bool,
}

impl EmojiRecord {
    /// Where its image is kept in the blob store.
    pub fn blob_key(id: Snowflake) -> String {
        format!("emojis/{id}")
    }
}

/// A DM or group DM as stored: the channel row of a private channel, which is also the unit
/// its actor owns (the unit's id is the channel's id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateChannelRecord {
    pub id: Snowflake,
    /// `1` for a DM, `3` for a group DM (Discord's channel types).
    pub kind: u8,
    /// Everyone in it, the creator included, in the order they joined.
    pub recipients: Vec<Snowflake>,
    /// A group DM's owner; `None` for a DM.
    pub owner_id: Option<Snowflake>,
    pub name: Option<String>,
    pub icon: Option<String>,
    pub last_pin_timestamp: Option<Timestamp>,
}

impl PrivateChannelRecord {
    pub const DM: u8 = 1;
    pub const GROUP_DM: u8 = 3;

    /// The two users of a DM, lower id first: the key under which a DM is unique.
    pub fn dm_pair(&self) -> Option<(Snowflake, Snowflake)> {
        match (self.kind, self.recipients.as_slice()) {
            (Self::DM, [a, b]) => Some(((*a).min(*b), (*a).max(*b))),
            _ => None,
        }
    }
}

/// How one user stands towards another. Only blocks are kept today (Discord's relationship
/// type 2); a block is one-way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationshipRecord {
    pub user_id: Snowflake,
    pub target_id: Snowflake,
    /// Discord's relationship type: 2 is blocked.
    pub kind: u8,
    pub since: Timestamp,
}

impl RelationshipRecord {
    pub const BLOCKED: u8 = 2;
}

impl InviteRecord {
    pub fn expires_at(&self) -> Option<Timestamp> {
        (self.max_age > 0).then(|| self.created_at.plus_secs(self.max_age.into()))
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at().is_some_and(|e| now >= e)
            || (self.max_uses > 0 && self.uses >= self.max_uses)
    }
}

/// One change in an atomic guild batch.
#[derive(Clone, Debug, PartialEq)]
pub enum GuildWrite {
    /// The guild row itself; its `roles` field is not stored (roles are rows of their own).
    PutGuild(Guild),
    /// Removes the guild and every row that belongs to it (roles, channels, members, bans,
    /// invites, webhooks, emojis, the members' guild index). Messages are removed with [`MessageStore::delete_channel`].
    DeleteGuild(Snowflake),
    PutRole {
        guild_id: Snowflake,
        role: Role,
    },
    DeleteRole {
        guild_id: Snowflake,
        role_id: Snowflake,
    },
    /// `channel.guild_id` must be set.
    PutChannel(Channel),
    DeleteChannel {
        guild_id: Snowflake,
        channel_id: Snowflake,
    },
    PutMember(MemberRecord),
    DeleteMember {
        guild_id: Snowflake,
        user_id: Snowflake,
    },
    PutBan(BanRecord),
    DeleteBan {
        guild_id: Snowflake,
        user_id: Snowflake,
    },
    /// Inserts or replaces an invite; codes are unique across guilds.
    PutInvite(InviteRecord),
    DeleteInvite {
        code: String,
    },
    /// Appends an entry to the guild's audit log, in the same batch as the change it records,
    /// so a change is never stored without its entry nor an entry without its change. Entries
    /// are never rewritten; they go with the guild (`DeleteGuild`).
    PutAuditEntry {
        guild_id: Snowflake,
        entry: AuditLogEntry,
    },
    /// Inserts or replaces a webhook; its id is indexed to its guild
    /// ([`GuildStore::webhook_guild`]).
    PutWebhook(WebhookRecord),
    DeleteWebhook {
        guild_id: Snowflake,
        webhook_id: Snowflake,
    },
    /// Inserts or replaces a custom emoji of `emoji.guild_id`.
    PutEmoji(EmojiRecord),
    DeleteEmoji {
        guild_id: Snowflake,
        emoji_id: Snowflake,
    },
    /// Inserts or replaces a private channel; its id is indexed as a channel of the unit of
    /// the same id ([`GuildStore::channel_guild`]). A DM's pair of users is unique: a DM whose
    /// pair already names another channel fails the whole batch with `Conflict("recipients")`.
    /// Who lists it is [`GuildWrite::OpenPrivateChannel`]'s.
    PutPrivateChannel(PrivateChannelRecord),
    /// Lists the private channel among the user's open ones
    /// ([`GuildStore::user_private_channels`]).
    OpenPrivateChannel {
        channel_id: Snowflake,
        user_id: Snowflake,
    },
    /// Takes it off the user's list; the channel and its messages stay.
    ClosePrivateChannel {
        channel_id: Snowflake,
        user_id: Snowflake,
    },
}

/// Everything a guild actor loads when it starts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GuildSnapshot {
    pub guild: Option<Guild>,
    pub roles: Vec<Role>,
    pub channels: Vec<Channel>,
    pub members: Vec<MemberRecord>,
    pub bans: Vec<BanRecord>,
    pub invites: Vec<InviteRecord>,
    pub webhooks: Vec<WebhookRecord>,
    pub emojis: Vec<EmojiRecord>,
    /// Set, with every other field empty, when the unit is a private channel.
    pub private: Option<PrivateChannelRecord>,
}

#[async_trait]
pub trait GuildStore: Send + Sync + 'static {
    /// Applies all writes atomically and durably, or none. A `PutInvite` whose code is held by
    /// another guild fails the whole batch with `Conflict("code")`.
    async fn write_guild(&self, guild_id: Snowflake, writes: Vec<GuildWrite>) -> StoreResult<()>;
    /// The guild's full state, or the private channel of that id, or `None` if neither exists.
    async fn load_guild(&self, guild_id: Snowflake) -> StoreResult<Option<GuildSnapshot>>;
    /// Guild ids the user is a member of, ascending.
    async fn user_guilds(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>>;
    /// The guild a channel belongs to.
    async fn channel_guild(&self, channel_id: Snowflake) -> StoreResult<Option<Snowflake>>;
    async fn get_invite(&self, code: &str) -> StoreResult<Option<InviteRecord>>;
    /// The guild a webhook belongs to.
    async fn webhook_guild(&self, webhook_id: Snowflake) -> StoreResult<Option<Snowflake>>;
    /// The private channels the user has open, ascending.
    async fn user_private_channels(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>>;
    /// The DM between two users, in either order.
    async fn dm_channel(&self, a: Snowflake, b: Snowflake) -> StoreResult<Option<Snowflake>>;
    /// The guild's audit-log entries that pass `filter`, newest first (see [`AuditLogFilter`]
    /// for which `limit` entries those are).
    async fn audit_log(
        &self,
        guild_id: Snowflake,
        filter: &AuditLogFilter,
    ) -> StoreResult<Vec<AuditLogEntry>>;
}

// ------------------------------------------------------------------ messages

/// A message as stored; authors and mentions are ids, hydrated into users when read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: Snowflake,
    pub channel_id: Snowflake,
    pub guild_id: Option<Snowflake>,
    pub author_id: Snowflake,
    pub content: String,
    pub edited_timestamp: Option<Timestamp>,
    pub tts: bool,
    pub mention_everyone: bool,
    pub mentions: Vec<Snowflake>,
    pub mention_roles: Vec<Snowflake>,
    pub attachments: Vec<Attachment>,
    pub embeds: Vec<Embed>,
    pub pinned: bool,
    pub kind: u8,
    pub flags: u64,
    pub nonce: Option<Nonce>,
    pub message_reference: Option<MessageReference>,
    /// Set when a webhook posted it; `author_id` is then the webhook's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookAuthor>,
}

impl MessageRecord {
    /// A plain, unedited text message (kind 0): no mentions, files, embeds or reference.
    pub fn text(
        id: Snowflake,
        channel_id: Snowflake,
        guild_id: Option<Snowflake>,
        author_id: Snowflake,
        content: impl Into<String>,
    ) -> MessageRecord {
        MessageRecord {
            id,
            channel_id,
            guild_id,
            author_id,
            content: content.into(),
            edited_timestamp: None,
            tts: false,
            mention_everyone: false,
            mentions: Vec::new(),
            mention_roles: Vec::new(),
            attachments: Vec::new(),
            embeds: Vec::new(),
            pinned: false,
            kind: 0,
            flags: 0,
            nonce: None,
            message_reference: None,
            webhook: None,
        }
    }
}

/// A pinned message and when it was pinned.
#[derive(Clone, Debug, PartialEq)]
pub struct PinnedMessage {
    pub pinned_at: Timestamp,
    pub message: MessageRecord,
}

/// Reactions of one emoji on a message, as seen by one viewer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReactionCount {
    /// `name` for Unicode emoji, `name:id` for custom emoji.
    pub emoji: String,
    pub count: u32,
    /// Whether the viewer is among the reactors.
    pub me: bool,
}

#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Stores a new message; the pin index follows its `pinned` flag. Fails with
    /// `Conflict("id")` when the channel already holds a message with this id, and then leaves
    /// the stored one (content, pinned state, reactions, pins) untouched: two writers that
    /// minted the same id must not silently replace each other's message.
    async fn create_message(&self, message: &MessageRecord) -> StoreResult<()>;
    /// Replaces a stored message (an edit, or its `pinned` flag; the pin index follows).
    /// `false`, and nothing is written, when the message does not exist: an edit that races a
    /// delete must not bring the message back.
    async fn update_message(&self, message: &MessageRecord) -> StoreResult<bool>;
    async fn get_message(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
    ) -> StoreResult<Option<MessageRecord>>;
    /// The newest message id of each channel, in the order of `channel_ids`; `None` for a
    /// channel without messages. A starting guild actor learns every `last_message_id` with
    /// one call.
    async fn last_message_ids(
        &self,
        channel_ids: &[Snowflake],
    ) -> StoreResult<Vec<Option<Snowflake>>>;
    /// Up to `limit` messages, **newest first**, walking buckets as needed:
    /// `Latest` the newest; `Before(x)`/`After(x)` the nearest strictly before/after x;
    /// `Around(x)` up to `limit/2` on each side plus x itself if it exists (Discord's rule).
    async fn list_messages(
        &self,
        channel_id: Snowflake,
        anchor: HistoryAnchor,
        limit: usize,
    ) -> StoreResult<Vec<MessageRecord>>;
    /// Deletes messages with their reactions and pins; returns the ids that existed.
    async fn delete_messages(
        &self,
        channel_id: Snowflake,
        ids: &[Snowflake],
    ) -> StoreResult<Vec<Snowflake>>;
    /// Deletes every message, reaction and pin of a channel.
    async fn delete_channel(&self, channel_id: Snowflake) -> StoreResult<()>;
    /// Adds a reaction; `false` if the user had already reacted with that emoji.
    async fn add_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool>;
    /// Removes one user's reaction; `false` if there was none.
    async fn remove_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool>;
    /// Removes all reactions, or all of one emoji.
    async fn remove_reactions(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: Option<&str>,
    ) -> StoreResult<()>;
    /// Users who reacted with `emoji`, ascending by user id, strictly after `after`.
    async fn reaction_users(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        after: Snowflake,
        limit: usize,
    ) -> StoreResult<Vec<Snowflake>>;
    /// Per-emoji counts in the order each emoji was first added.
    async fn reaction_counts(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        viewer: Snowflake,
    ) -> StoreResult<Vec<ReactionCount>>;
    /// [`MessageStore::reaction_counts`] for several messages of one channel, in the order of
    /// `message_ids` (empty for a message without reactions or unknown). A history page asks
    /// once instead of once per message; the default does ask per message.
    async fn reaction_counts_many(
        &self,
        channel_id: Snowflake,
        message_ids: &[Snowflake],
        viewer: Snowflake,
    ) -> StoreResult<Vec<Vec<ReactionCount>>> {
        let mut out = Vec::with_capacity(message_ids.len());
        for id in message_ids {
            out.push(self.reaction_counts(channel_id, *id, viewer).await?);
        }
        Ok(out)
    }
    /// Pins or unpins, updating the message's `pinned` flag and the pin index together.
    /// Returns `false` when the message does not exist.
    async fn set_pinned(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        pinned: bool,
    ) -> StoreResult<bool>;
    /// Pinned messages with the time each was pinned, most recently pinned first. Pin times are
    /// strictly decreasing along the list (ties are broken by nudging a millisecond).
    async fn list_pins(&self, channel_id: Snowflake) -> StoreResult<Vec<PinnedMessage>>;
}

// ------------------------------------------------------------------ signing keys

/// A JWT signing key as stored: the private key in PKCS#8 PEM, identified by `kid`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub private_pem: String,
    pub created_at: Timestamp,
    pub retired: bool,
}

/// Leaves the private key out, so a record in a log line or a panic message leaks nothing.
impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("private_pem", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("retired", &self.retired)
            .finish()
    }
}

#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Every key, oldest first (by `created_at`, then `kid`).
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Stores a new key; false (and nothing changes) when `kid` already exists.
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool>;
    /// Marks a key retired (it no longer signs; it may still verify until removed). False when
    /// unknown.
    async fn retire_signing_key(&self, kid: &str) -> StoreResult<bool>;
    /// Deletes a key. False when unknown.
    async fn remove_signing_key(&self, kid: &str) -> StoreResult<bool>;
}

// ------------------------------------------------------------------ nodes

/// A node's hold on a snowflake id pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdLease {
    pub pair: IdPair,
    /// The node id and the generation of the process that holds it.
    pub holder: NodeIdentity,
    /// When the lease runs out unless renewed, on the store's clock where it has one.
    pub expires_at: Timestamp,
}

/// The answer to [`NodeStore::claim_id_pair`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdClaim {
    /// The pair is the caller's until `expires_at`.
    Claimed(IdLease),
    /// The wanted pair is held by a live lease of another holder, named here.
    Held(IdLease),
    /// Every pair is held by a live lease.
    Exhausted,
}

/// What the shared store knows about the nodes of a cluster.
///
/// For now, which node mints snowflakes with which [`IdPair`]: two processes minting with one
/// pair hand out the same ids. A pair is held under a lease that the holder renews; a lease
/// is live while its `expires_at` is ahead of the store's clock (PostgreSQL's `now()`, the
/// TTL of a ScyllaDB row), so the nodes' clocks need not agree. A lease that expired or was
/// released is free for anyone. The holder is a node id *and* a generation: a restarted
/// process is another holder, and cannot renew or release what its predecessor held.
#[async_trait]
pub trait NodeStore: Send + Sync + 'static {
    /// Claims `wanted`, or any free pair when `None`, for `ttl`. Atomic: nodes claiming at once
    /// get distinct pairs. Claiming a pair the same holder already holds extends it. Which free
    /// pair an open claim gets is the backend's choice (embedded and PostgreSQL: one never
    /// claimed, else the one free the longest, so a freed pair is reused as late as possible).
    async fn claim_id_pair(
        &self,
        node: &NodeIdentity,
        wanted: Option<IdPair>,
        ttl: Duration,
    ) -> StoreResult<IdClaim>;
    /// Extends `node`'s live lease on `pair` to `ttl` from now; `None` when `node` does not hold
    /// it (another holder took it, it was released, or it expired, even if nobody took it).
    async fn renew_id_pair(
        &self,
        node: &NodeIdentity,
        pair: IdPair,
        ttl: Duration,
    ) -> StoreResult<Option<IdLease>>;
    /// Frees `pair` at once if `node` holds it; `false` when it did not.
    async fn release_id_pair(&self, node: &NodeIdentity, pair: IdPair) -> StoreResult<bool>;
}

// ------------------------------------------------------------------ guild leases

/// Which node runs a guild's actor, as the shared store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuildOwner {
    pub guild_id: Snowflake,
    /// The node id and generation of the owning process.
    pub node: NodeIdentity,
    /// The id pair the owner holds: its [`IdLease`] is what keeps this ownership live.
    pub pair: IdPair,
    /// Counts the guild's changes of owner, from 1 for the first claim. A write made under an
    /// older epoch comes from a deposed owner.
    pub epoch: u64,
}

/// The answer to [`LeaseStore::claim_guild`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuildClaim {
    /// The guild is the caller's under this epoch, for as long as its id lease lives.
    Claimed(GuildOwner),
    /// Another node owns it, and that node's id lease is live.
    Held(GuildOwner),
    /// The caller does not hold a live lease on the id pair it named: it is not a member of
    /// the cluster any more (its lease expired or was taken), and may own nothing.
    NotLeased,
}

/// Who owns each guild's actor in a cluster.
///
/// Gossip tells every node which node *should* run a guild (the ring), but views disagree
/// while gossip converges; the store does not. An ownership record names a node, its
/// generation, the id pair it holds and an epoch, and it is live exactly while that node still
/// holds that pair under a live [`IdLease`] ([`NodeStore`]). So ownership needs no renewals
/// of its own: a node that renews its one id lease keeps every guild it owns, and a node that
/// dies or loses its lease loses all of them at once, when that lease runs out.
///
/// The epoch increases by one every time the guild changes hands (a claim after a release, or
/// after the owner's lease ran out), never otherwise. Writes fenced by epoch therefore tell a
/// deposed owner from the current one. Records are never deleted, so epochs never repeat.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Claims `guild_id` for `node`, which must hold `pair` under a live id lease. Atomic: of
    /// nodes claiming at once, one gets it. Claiming a guild one already owns (same node id and
    /// generation) returns the current record unchanged.
    async fn claim_guild(
        &self,
        guild_id: Snowflake,
        node: &NodeIdentity,
        pair: IdPair,
    ) -> StoreResult<GuildClaim>;
    /// The guild's live owner; `None` when nobody owns it or its owner's lease is gone.
    async fn guild_owner(&self, guild_id: Snowflake) -> StoreResult<Option<GuildOwner>>;
    /// Gives the guild up, if `owner` (node, generation and epoch) is still its record; the
    /// next claim gets the next epoch. `false` when the record had moved on.
    async fn release_guild(&self, owner: &GuildOwner) -> StoreResult<bool>;
    /// Every guild `node` (this generation) owns, in id order. Ownership records whose lease
    /// ran out are not listed.
    async fn guilds_owned_by(&self, node: &NodeIdentity) -> StoreResult<Vec<GuildOwner>>;
    /// This backend's guild and message stores, with every write fenced by `owner`: a write
    /// is made only while `owner` is the guild's live record, and refused with
    /// [`StoreError::Fenced`] otherwise. Reads are not fenced. What "only while" means is the
    /// backend's to say: PostgreSQL checks inside the write's own transaction, share-locking
    /// the record so no claim or release can commit between the check and the write; the
    /// embedded store and ScyllaDB check just before the write (see [`fence`]).
    fn fenced(self: Arc<Self>, owner: GuildOwner) -> FencedStores;
}

/// A guild's stores as its owner writes them: see [`LeaseStore::fenced`].
#[derive(Clone)]
pub struct FencedStores {
    pub guilds: Arc<dyn GuildStore>,
    pub messages: Arc<dyn MessageStore>,
}

impl std::fmt::Debug for FencedStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FencedStores")
    }
}

/// The pair's index, or an error for ids beyond 5 bits.
#[cfg_attr(
    not(any(feature = "embedded", feature = "postgres", feature = "scylla")),
    allow(dead_code, reason = "only the backends map pairs to their index")
)]
pub(crate) fn pair_index(pair: IdPair) -> StoreResult<u16> {
    if pair.is_valid() {
        Ok(pair.index())
    } else {
        Err(StoreError::Backend(format!(
            "{pair} is not a snowflake id pair (each id is 0 to 31)"
        )))
    }
}

/// The set of stores a node runs on.
#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub applications: Arc<dyn ApplicationStore>,
    pub guilds: Arc<dyn GuildStore>,
    pub messages: Arc<dyn MessageStore>,
    pub keys: Arc<dyn KeyStore>,
    pub nodes: Arc<dyn NodeStore>,
    pub leases: Arc<dyn LeaseStore>,
}

impl Stores {
    /// These stores with the guild's writes fenced by its ownership record: what a guild's
    /// actor writes through once its node claimed the guild ([`LeaseStore::fenced`]).
    pub fn fenced(&self, owner: GuildOwner) -> Stores {
        let FencedStores { guilds, messages } = self.leases.clone().fenced(owner);
        Stores {
            guilds,
            messages,
            ..self.clone()
        }
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores")
    }
}
