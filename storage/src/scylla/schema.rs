//! The CQL schema: Discord's layout. Every query the stores make reads one partition (or one
//! row) of a table shaped for it; there is no secondary index and no `ALLOW FILTERING`.
//!
//! - `messages`: partition `(channel_id, bucket)`, where the bucket is a fixed 10-day window
//!   of the message id's timestamp ([`crate::bucket_of`]), clustered by `message_id DESC`, so
//!   the newest page of a channel is the head of one partition.
//! - `channel_buckets`: the non-empty buckets of a channel, newest first, so history walks
//!   only buckets that hold messages instead of every window since the channel was created.
//! - `user_refresh_families`: a user's sessions (refresh families), so a password change can
//!   revoke them all; written before a family's first token.
//! - Uniqueness (`usernames`, `emails`, `invites`, `dm_pairs`) is claimed with lightweight
//!   transactions; those run on registration, renames, invite and DM creation, never on the
//!   message path.
//! - Records whose fields are never queried (users, guild objects, embeds) are JSON in a
//!   `data` column, like the other backends.
//! - `id_leases`: one row per snowflake id pair a node holds, written with a TTL so that the
//!   replicas' clocks, not the nodes', decide when a lease runs out (see `nodes.rs`).
//! - `guild_owners`: which node runs each guild's actor, claimed by lightweight transaction on
//!   the epoch; `guilds_by_owner` lists a node's guilds for the admin API and handoff.
//! - `audit_log`: partition `guild_id`, clustered by `entry_id DESC`. The API's user and
//!   action filters are applied to the rows of the id range as they are paged in, which keeps
//!   the "no `ALLOW FILTERING`" rule; a guild's log is one partition, which a retention window
//!   would bound.
//! - `guild_webhooks` and `webhook_guild`: a guild's webhooks, and the guild of each webhook.
//! - `guild_emojis`: a guild's custom emojis, one partition per guild like its roles; an
//!   emoji's image is a blob, not a row.
//! - Private channels (DMs and group DMs) are units of their own: `private_channels` holds the
//!   channel (the unit) by its id, and `channel_guild` maps the channel to itself.
//!   `user_private_channels` lists the ones a user has open. `dm_pairs` keys each DM by its two
//!   users, lower id first, claimed by lightweight transaction like an invite code (see
//!   `guilds.rs` for a claim whose channel never got written).
//! - `relationships`: partition `user_id`, clustered by `target_id`, one JSON record each.

/// Version of the schema below; `schema_migrations` records it with [`DESCRIPTION`].
pub const VERSION: i32 = 7;

/// What the newest version added.
pub const DESCRIPTION: &str = "guild_emojis";

/// Keyspace-relative DDL, in order; `{ks}` is replaced by the keyspace.
pub const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (version int PRIMARY KEY, name text, applied_at bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.users (id bigint PRIMARY KEY, data text)",
    "CREATE TABLE IF NOT EXISTS {ks}.usernames (login text PRIMARY KEY, user_id bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.emails (login text PRIMARY KEY, user_id bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.credentials (user_id bigint PRIMARY KEY, data text)",
    "CREATE TABLE IF NOT EXISTS {ks}.refresh_tokens (token_hash text PRIMARY KEY, family_id bigint, user_id bigint, expires_at bigint, spent boolean)",
    "CREATE TABLE IF NOT EXISTS {ks}.revoked_families (family_id bigint PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS {ks}.user_refresh_families (user_id bigint, family_id bigint, PRIMARY KEY (user_id, family_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.applications (id bigint PRIMARY KEY, data text)",
    "CREATE TABLE IF NOT EXISTS {ks}.applications_by_bot (bot_user_id bigint PRIMARY KEY, app_id bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.bot_tokens (token_hash text PRIMARY KEY, bot_user_id bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.bot_token_of (bot_user_id bigint PRIMARY KEY, token_hash text)",
    "CREATE TABLE IF NOT EXISTS {ks}.guilds (guild_id bigint PRIMARY KEY, data text)",
    "CREATE TABLE IF NOT EXISTS {ks}.guild_roles (guild_id bigint, role_id bigint, data text, PRIMARY KEY (guild_id, role_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.guild_channels (guild_id bigint, channel_id bigint, data text, PRIMARY KEY (guild_id, channel_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.channel_guild (channel_id bigint PRIMARY KEY, guild_id bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.guild_members (guild_id bigint, user_id bigint, data text, PRIMARY KEY (guild_id, user_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.user_guilds (user_id bigint, guild_id bigint, PRIMARY KEY (user_id, guild_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.guild_bans (guild_id bigint, user_id bigint, data text, PRIMARY KEY (guild_id, user_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.guild_invites (guild_id bigint, code text, data text, PRIMARY KEY (guild_id, code))",
    "CREATE TABLE IF NOT EXISTS {ks}.invites (code text PRIMARY KEY, guild_id bigint, data text)",
    "CREATE TABLE IF NOT EXISTS {ks}.messages (channel_id bigint, bucket int, message_id bigint, data text, PRIMARY KEY ((channel_id, bucket), message_id)) WITH CLUSTERING ORDER BY (message_id DESC)",
    "CREATE TABLE IF NOT EXISTS {ks}.channel_buckets (channel_id bigint, bucket int, PRIMARY KEY (channel_id, bucket)) WITH CLUSTERING ORDER BY (bucket DESC)",
    "CREATE TABLE IF NOT EXISTS {ks}.reactions (channel_id bigint, message_id bigint, emoji text, user_id bigint, PRIMARY KEY ((channel_id, message_id), emoji, user_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.reaction_emojis (channel_id bigint, message_id bigint, emoji text, seq bigint, PRIMARY KEY ((channel_id, message_id), emoji))",
    "CREATE TABLE IF NOT EXISTS {ks}.pins (channel_id bigint, pinned_at bigint, message_id bigint, PRIMARY KEY (channel_id, pinned_at, message_id)) WITH CLUSTERING ORDER BY (pinned_at DESC, message_id DESC)",
    "CREATE TABLE IF NOT EXISTS {ks}.pin_of (channel_id bigint, message_id bigint, pinned_at bigint, PRIMARY KEY (channel_id, message_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.signing_keys (scope text, kid text, private_pem text, created_at bigint, retired boolean, PRIMARY KEY (scope, kid))",
    "CREATE TABLE IF NOT EXISTS {ks}.id_leases (pair int PRIMARY KEY, node_id text, generation bigint, expires_at bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.guild_owners (guild_id bigint PRIMARY KEY, node_id text, generation bigint, pair int, epoch bigint, released boolean)",
    "CREATE TABLE IF NOT EXISTS {ks}.guilds_by_owner (node_id text, generation bigint, guild_id bigint, PRIMARY KEY ((node_id, generation), guild_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.audit_log (guild_id bigint, entry_id bigint, data text, PRIMARY KEY (guild_id, entry_id)) WITH CLUSTERING ORDER BY (entry_id DESC)",
    "CREATE TABLE IF NOT EXISTS {ks}.guild_webhooks (guild_id bigint, webhook_id bigint, data text, PRIMARY KEY (guild_id, webhook_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.webhook_guild (webhook_id bigint PRIMARY KEY, guild_id bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.private_channels (channel_id bigint PRIMARY KEY, data text)",
    "CREATE TABLE IF NOT EXISTS {ks}.user_private_channels (user_id bigint, channel_id bigint, PRIMARY KEY (user_id, channel_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.dm_pairs (low_user_id bigint, high_user_id bigint, channel_id bigint, claimed_at bigint, PRIMARY KEY ((low_user_id, high_user_id)))",
    "CREATE TABLE IF NOT EXISTS {ks}.relationships (user_id bigint, target_id bigint, data text, PRIMARY KEY (user_id, target_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.guild_emojis (guild_id bigint, emoji_id bigint, data text, PRIMARY KEY (guild_id, emoji_id))",
];
