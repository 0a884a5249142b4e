//! Key formats of the embedded backend.
//!
//! Keys are big-endian binary so that fjall's byte order is numeric order: a prefix scan over
//! `channel_id` walks a channel's messages oldest to newest, and reversing it walks them newest
//! first. Values are the records as JSON unless noted.
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `users` | `user_id` | `User` |
//! | `credentials` | `user_id` | `Credentials` |
//! | `usernames` | lowercased username | `user_id` |
//! | `emails` | lowercased email | `user_id` |
//! | `refresh_tokens` | token hash | `{record, spent}` |
//! | `refresh_revoked_families` | `family_id` | empty (present = revoked) |
//! | `user_refresh_families` | `user_id \| family_id` | empty (a user's sessions) |
//! | `applications` | `app_id` | `ApplicationRecord` |
//! | `application_by_bot` | `bot_user_id` | `app_id` |
//! | `bot_tokens` | token hash | `bot_user_id` |
//! | `bot_token_of` | `bot_user_id` | token hash (so a new token evicts the old) |
//! | `guilds` | `guild_id \| kind \| sub` | the row (see [`GuildRow`]) |
//! | `user_guilds` | `user_id \| guild_id` | empty |
//! | `channel_guild` | `channel_id` | `guild_id` |
//! | `webhook_guild` | `webhook_id` | `guild_id` |
//! | `user_private_channels` | `user_id \| channel_id` | empty (the user's open DMs) |
//! | `dm_pairs` | `low_user_id \| high_user_id` | `channel_id` (a DM per pair of users) |
//! | `relationships` | `user_id \| target_id` | `RelationshipRecord` |
//! | `invites` | code | `InviteRecord` (global, so codes are unique) |
//! | `messages` | `channel_id \| bucket (u32) \| message_id` | `MessageRecord` |
//! | `reactions` | `channel \| message \| emoji_len (u16) \| emoji \| user_id` | empty |
//! | `reaction_emoji` | `channel \| message \| emoji_len \| emoji` | `seq (u64) \| count (u32)` |
//! | `reaction_order` | `channel \| message \| seq` | emoji |
//! | `pins` | `channel \| pinned_at_ms \| message` | empty |
//! | `pin_of` | `channel \| message` | `pinned_at_ms` |
//! | `audit_log` | `guild_id \| entry_id` | `AuditLogEntry` |
//! | `signing_keys` | kid | `SigningKeyRecord` |
//! | `id_leases` | pair index (`u16`, `worker_id * 32 + process_id`) | `{node_id, generation, expires_at_ms}` |
//!
//! Ids are 8 bytes. The message key mirrors the ScyllaDB layout, partition `(channel, bucket)`
//! and clustering `message_id`; because a bucket is a function of the id, the key order is
//! still plain id order within a channel, so one range scan crosses buckets for free.
//!
//! Emoji in reaction keys are length-prefixed rather than terminated: an emoji name is
//! arbitrary text, and the length keeps `a` from matching the users of `ab`.

use enrichment_protocol::Snowflake;

use crate::{StoreError, StoreResult, bucket_of};

pub(crate) fn id(id: Snowflake) -> [u8; 8] {
    id.get().to_be_bytes()
}

pub(crate) fn concat(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

/// Reads an 8-byte big-endian id at `offset`.
pub(crate) fn read_id(bytes: &[u8], offset: usize) -> StoreResult<Snowflake> {
    bytes
        .get(offset..offset + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(|b| Snowflake(u64::from_be_bytes(b)))
        .ok_or_else(|| StoreError::Corrupt(format!("short key or value ({} bytes)", bytes.len())))
}

pub(crate) fn read_u64(bytes: &[u8], offset: usize) -> StoreResult<u64> {
    read_id(bytes, offset).map(Snowflake::get)
}

// ------------------------------------------------------------------ guilds

/// The kind byte after the guild id in a `guilds` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum GuildRow {
    /// `guild | 0`: the `Guild` with `roles` emptied.
    Guild = 0,
    /// `guild | 1 | role_id`: `Role`.
    Role = 1,
    /// `guild | 2 | channel_id`: `Channel`.
    Channel = 2,
    /// `guild | 3 | user_id`: `MemberRecord`.
    Member = 3,
    /// `guild | 4 | user_id`: `BanRecord`.
    Ban = 4,
    /// `guild | 5 | code`: empty; the record lives in `invites`.
    Invite = 5,
    /// `guild | 6 | webhook_id`: `WebhookRecord`.
    Webhook = 6,
    /// `channel | 7`: `PrivateChannelRecord`, the one row of a private channel's unit.
    Private = 7,
    /// `guild | 8 | emoji_id`: `EmojiRecord`.
    Emoji = 8,
}

impl GuildRow {
    pub(crate) fn from_byte(b: u8) -> Option<GuildRow> {
        Some(match b {
            0 => GuildRow::Guild,
            1 => GuildRow::Role,
            2 => GuildRow::Channel,
            3 => GuildRow::Member,
            4 => GuildRow::Ban,
            5 => GuildRow::Invite,
            6 => GuildRow::Webhook,
            7 => GuildRow::Private,
            8 => GuildRow::Emoji,
            _ => return None,
        })
    }
}

pub(crate) fn guild_row(guild_id: Snowflake, kind: GuildRow, sub: &[u8]) -> Vec<u8> {
    concat(&[&id(guild_id), &[kind as u8], sub])
}

pub(crate) fn user_guild(user_id: Snowflake, guild_id: Snowflake) -> Vec<u8> {
    concat(&[&id(user_id), &id(guild_id)])
}

// ------------------------------------------------------------------ messages

pub(crate) fn message(channel_id: Snowflake, message_id: Snowflake) -> Vec<u8> {
    concat(&[
        &id(channel_id),
        &bucket_of(message_id).to_be_bytes(),
        &id(message_id),
    ])
}

/// The largest possible message key of a channel (keys are fixed-width).
pub(crate) fn message_max(channel_id: Snowflake) -> Vec<u8> {
    concat(&[&id(channel_id), &[0xFF; 12]])
}

pub(crate) fn channel_message(channel_id: Snowflake, message_id: Snowflake) -> Vec<u8> {
    concat(&[&id(channel_id), &id(message_id)])
}

/// `emoji_len | emoji`.
pub(crate) fn emoji(emoji: &str) -> StoreResult<Vec<u8>> {
    let len = u16::try_from(emoji.len())
        .map_err(|_| StoreError::Backend(format!("emoji of {} bytes is too long", emoji.len())))?;
    Ok(concat(&[&len.to_be_bytes(), emoji.as_bytes()]))
}

pub(crate) fn pin(channel_id: Snowflake, pinned_at: u64, message_id: Snowflake) -> Vec<u8> {
    concat(&[&id(channel_id), &pinned_at.to_be_bytes(), &id(message_id)])
}
