//! The conformance suite every storage backend runs unchanged (feature `testsuite`).
//!
//! The traits in this crate say what a store must do; this module checks it, with exact expected
//! values, so that the embedded store and the database-backed ones behave the same to the domain
//! above them. A backend invokes it from an integration test with a factory:
//!
//! ```ignore
//! async fn open(dir: std::path::PathBuf) -> enrichment_storage::Stores {
//!     // Open the backend at `dir` (a file-based backend) or ignore `dir` and connect to the test
//!     // database (a server-based one).
//! }
//! enrichment_storage::conformance_tests!(open);
//! ```
//!
//! [`conformance_tests!`](crate::conformance_tests) expands into one `#[test]` per case, each on
//! its own multi-threaded tokio runtime, so failures are reported case by case and the backend's
//! test crate needs no tokio of its own.
//!
//! The factory is called with a fresh temporary directory per case, and called **twice** with
//! the same directory by [`restart_keeps_everything`], after the first [`Stores`] was dropped: a
//! backend must then see everything written before. A file-based backend must therefore release
//! its files (locks, threads) when the last handle drops.
//!
//! Where the trait docs leave room, the suite pins down one behaviour so backends agree:
//! - `Around(x)` with limit `n`: `n / 2` older messages, x if it exists, and at most `n / 2`
//!   newer ones within what is left of `n` (so an even limit with x present takes `n / 2 - 1`
//!   newer); a short side is not made up from the other. Limit 1 returns just x.
//! - Refresh tokens: `now >= expires_at` is expired; presenting a spent token revokes the family
//!   (`Reused`) and any later attempt in that family is `Invalid`; `refresh_token_family` is
//!   `None` for a spent token or a revoked family; `refresh_family_revoked` is true after a
//!   revocation or a reuse and false for a live or unknown family; revoking a user's families
//!   returns exactly the live ones (revoked before, or another user's, are not returned).
//! - Reactions: an emoji whose last reaction is removed disappears from `reaction_counts`; while
//!   it has reactions it keeps its place.
//! - Pins: re-pinning after an unpin counts as the most recent pin; `update_message` of a record
//!   read back (with `pinned: true`) keeps it pinned.
//! - Messages are keyed by channel and id: `create_message` refuses an id the channel already
//!   holds, whatever its content, and the same id in another channel is another message.
//! - Signing keys: listed by `created_at`, ties by `kid`; retiring a retired key is `true`; a
//!   removed kid may be inserted again.
//! - `load_guild` returns the guild row with empty `roles` (roles are their own rows); the order
//!   of its lists is not checked.
//! - Records round-trip exactly.
//!
//! - Id leases: a lease is live until its `expires_at`; an open claim gets some free pair (which
//!   one is not checked); claiming a pair one already holds extends it; a lease that expired
//!   cannot be renewed even if nobody took it; releasing frees the pair at once.
//! - Guild owners: the first claim of a guild is epoch 1 and every change of hands adds one;
//!   an owner whose id lease was released or ran out owns nothing, at once.
//! - Audit log: entries come newest first; with `after`, the `limit` entries just above it
//!   (still newest first); the user and action filters apply before the limit counts. An
//!   entry is part of its batch: a batch refused on an invite code leaves none.
//! - Webhooks: a webhook's id finds its guild until the webhook or the guild is deleted.
//! - Custom emojis: a put replaces the guild's emoji of the same id whole (its name and roles
//!   with it); deleting one that is not there is no error; they go with their guild, and a
//!   guild written again under a deleted guild's id has none of them.
//! - Private channels: `load_guild` of a private channel's id returns a snapshot with only
//!   `private` set, and `channel_guild` of it is itself; a user's open ones are listed
//!   ascending; `dm_channel` finds a DM by its users in either order. A DM for a pair that
//!   already has one under another id is `Conflict("recipients")` and leaves nothing of its
//!   batch; the same DM put again replaces it. A group DM has no pair.
//! - Relationships: a put replaces the one towards the same target; listed by target id;
//!   deleting says whether there was one.
//!
//! Cases never assume an empty store: every id, name, email, code and token is fresh per run
//! (see [`fresh_id`]), so a server-based backend can share one database across cases running in
//! parallel and across runs. The exception is the id leases: there are only 1,024 pairs per
//! store and one case holds all of them for a moment, so each case needs a store of its own
//! (a database or keyspace per case, as the PostgreSQL and ScyllaDB tests here give it).

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed case")]

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use enrichment_protocol::models::{
    Attachment, AuditEntryInfo, AuditLogChange, AuditLogEntry, Channel, ChannelType, Embed,
    EmbedField, Guild, MessageReference, Nonce, PermissionOverwrite, Role, User,
};
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use enrichment_protocol::rest::{AuditLogFilter, HistoryAnchor};
use enrichment_protocol::{Permissions, Snowflake, Timestamp};

use crate::{
    ApplicationRecord, BUCKET_MS, BackupCodeRecord, BanRecord, Credentials, EmojiRecord,
    GuildClaim, GuildOwner, GuildSnapshot, GuildWrite, IdClaim, IdLease, IdPair, InviteRecord,
    MemberRecord, MessageRecord, PinnedMessage, PrivateChannelRecord, ReactionCount,
    RefreshTokenRecord, RelationshipRecord, RotateOutcome, SigningKeyRecord, StoreError, Stores,
    WebhookAuthor, WebhookRecord, bucket_of,
};

/// Expands into one `#[test]` per conformance case, each calling `$open(dir).await` to get the
/// [`Stores`](crate::Stores) under test. `$open` is a path to an
/// `async fn(std::path::PathBuf) -> Stores` (or any `Fn(PathBuf) -> impl Future<Output = Stores>`).
#[macro_export]
macro_rules! conformance_tests {
    ($open:path) => {
        $crate::conformance_tests!(@list $open, [#[test]]);
    };
    // A backend that needs a server this machine may not have (named by an environment
    // variable, say): every case is `#[ignore]`d with `$reason`, and runs with `--ignored`.
    ($open:path, ignore = $reason:literal) => {
        $crate::conformance_tests!(@list $open, [#[test] #[ignore = $reason]]);
    };
    (@list $open:path, $attrs:tt) => {
        $crate::conformance_tests!(@cases $open, $attrs;
            users_create_and_get,
            users_unique_case_insensitive,
            users_find_by_login,
            users_update_user,
            users_get_many,
            users_credentials_round_trip,
            refresh_rotate_and_reuse,
            refresh_expired_and_unknown,
            refresh_revoke_family,
            refresh_family_revoked_after_logout_and_reuse,
            refresh_revoke_every_family_of_a_user,
            applications_round_trip,
            applications_bot_username_conflict,
            guild_batch_round_trip,
            guild_deletes_update_indexes,
            guild_batch_applies_in_order,
            guild_invite_conflict_is_atomic,
            guild_delete_removes_everything,
            guild_emojis_replace_and_delete,
            audit_log_filters_and_cursors,
            audit_log_is_atomic_with_its_batch_and_goes_with_the_guild,
            private_channels_round_trip_and_indexes,
            private_channels_a_pair_has_one_dm,
            relationships_put_list_and_delete,
            messages_order_and_cursors,
            messages_around,
            messages_bucket_boundaries,
            messages_edit_and_delete,
            messages_delete_channel,
            reactions_counts_and_order,
            reactions_counts_for_a_page,
            reactions_users_paging,
            reactions_remove,
            pins_order_and_flag,
            signing_keys_insert_and_order,
            signing_keys_retire_and_remove,
            restart_keeps_everything,
            concurrent_create_user_same_username,
            concurrent_create_message,
            messages_create_never_replaces,
            messages_concurrent_creates_of_one_id,
            messages_update_of_a_missing_message,
            messages_newest_ids_of_channels,
            concurrent_rotate_refresh_token,
            concurrent_invite_code,
            concurrent_dms_for_one_pair,
            concurrent_reactions,
            concurrent_insert_signing_key,
            leases_concurrent_claims_get_distinct_pairs,
            leases_a_held_pair_is_refused_naming_its_holder,
            leases_an_expired_lease_is_claimed_by_another_node,
            leases_renew_extends_and_only_the_holder_renews,
            leases_release_frees_the_pair,
            leases_another_generation_is_another_holder,
            leases_every_pair_held_is_exhausted,
            guild_owners_first_claim_is_epoch_one_and_claiming_again_changes_nothing,
            guild_owners_a_live_owner_is_held_against_other_nodes,
            guild_owners_only_a_node_holding_its_pair_may_claim,
            guild_owners_pass_on_when_the_owner_lease_ends,
            guild_owners_release_hands_on_under_the_next_epoch,
            guild_owners_list_what_a_node_owns,
            guild_owners_concurrent_claims_have_one_winner,
            fenced_writes_land_while_the_owner_holds_the_guild,
            fenced_writes_are_refused_once_the_guild_changed_hands,
            fenced_writes_are_refused_once_the_owner_lease_ran_out,
            fenced_creates_in_one_batch_are_answered_each_by_its_fence,
        );
    };
    (@cases $open:path, $attrs:tt; $($case:ident),* $(,)?) => {
        $( $crate::conformance_tests!(@case $open, $attrs, $case); )*
    };
    (@case $open:path, [$(#[$attr:meta])*], $case:ident) => {
        $(#[$attr])*
        fn $case() {
            $crate::testsuite::run($crate::testsuite::$case(&$open));
        }
    };
}

/// Runs one case on a fresh multi-threaded runtime (two workers, like the CI machines).
pub fn run(case: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(case);
}

// ------------------------------------------------------------------ fixtures

/// An id no earlier run or concurrent case has used: the current time in snowflake form, the
/// process id in the worker bits, then a counter.
pub fn fresh_id() -> Snowflake {
    static BASE: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        let now = Snowflake::from_unix_ms(Timestamp::now().unix_ms() as u64);
        now.get() | ((u64::from(std::process::id()) & 0x3FF) << 12)
    });
    Snowflake(base + NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The message id minted at `ms` (snowflake time) with increment `seq`.
pub fn id_at(ms: u64, seq: u64) -> Snowflake {
    Snowflake((ms << 22) | seq)
}

struct Env {
    dir: tempfile::TempDir,
    stores: Stores,
}

async fn env<F, Fut>(open: &F) -> Env
where
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    let stores = open(dir.path().to_path_buf()).await;
    Env { dir, stores }
}

/// A fixture, shared with backend-specific tests.
pub fn user(id: Snowflake, username: &str, email: Option<&str>) -> User {
    User {
        id,
        username: username.to_owned(),
        discriminator: "0".into(),
        global_name: Some(format!("Global {username}")),
        avatar: Some("a_0123456789abcdef".into()),
        bot: false,
        system: false,
        banner: None,
        accent_color: Some(0x12_34_56),
        public_flags: 64,
        flags: 64,
        mfa_enabled: Some(false),
        email: email.map(str::to_owned),
        verified: Some(true),
        locale: Some("en-US".into()),
        premium_type: Some(0),
    }
}

/// A fixture, shared with backend-specific tests.
pub fn credentials(user_id: Snowflake) -> Credentials {
    Credentials {
        user_id,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$hash{user_id}"),
        totp_secret: None,
        totp_last_step: 0,
        backup_codes: Vec::new(),
    }
}

/// A user with a fresh id, a username `{prefix}{id}` and an email `{prefix}{id}@Example.com`.
fn fresh_user(prefix: &str) -> User {
    let id = fresh_id();
    user(
        id,
        &format!("{prefix}{id}"),
        Some(&format!("{prefix}{id}@Example.com")),
    )
}

fn token(
    hash: &str,
    family_id: Snowflake,
    user_id: Snowflake,
    expires_at: Timestamp,
) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: hash.to_owned(),
        family_id,
        user_id,
        expires_at,
    }
}

fn later() -> Timestamp {
    Timestamp::now().plus_secs(3600)
}

/// A fixture, shared with backend-specific tests.
pub fn guild(id: Snowflake, owner_id: Snowflake, roles: Vec<Role>) -> Guild {
    Guild {
        id,
        name: format!("Guild {id}"),
        icon: None,
        splash: None,
        discovery_splash: None,
        owner_id,
        afk_channel_id: None,
        afk_timeout: 300,
        verification_level: 1,
        default_message_notifications: 0,
        explicit_content_filter: 0,
        roles,
        emojis: Vec::new(),
        features: vec!["COMMUNITY".into()],
        mfa_level: 0,
        application_id: None,
        system_channel_id: None,
        system_channel_flags: 0,
        rules_channel_id: None,
        vanity_url_code: None,
        description: Some("a guild".into()),
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

fn role(id: Snowflake, name: &str, position: i32) -> Role {
    Role {
        id,
        name: name.to_owned(),
        color: 0xFF_00_00,
        hoist: true,
        icon: None,
        unicode_emoji: None,
        position,
        permissions: Permissions::from_bits_retain(0x6_4004_0E41),
        managed: false,
        mentionable: true,
        tags: None,
        flags: 0,
    }
}

/// A fixture, shared with backend-specific tests.
pub fn channel(id: Snowflake, guild_id: Snowflake, name: &str) -> Channel {
    Channel {
        id,
        kind: ChannelType::GUILD_TEXT,
        guild_id: Some(guild_id),
        position: 1,
        permission_overwrites: vec![PermissionOverwrite {
            id: guild_id,
            kind: 0,
            allow: Permissions::from_bits_retain(1 << 10),
            deny: Permissions::from_bits_retain(1 << 11),
        }],
        name: name.to_owned(),
        topic: Some("topic".into()),
        nsfw: false,
        last_message_id: None,
        bitrate: None,
        user_limit: None,
        rate_limit_per_user: 0,
        parent_id: None,
        last_pin_timestamp: None,
        flags: 0,
        private: None,
    }
}

/// A fixture, shared with backend-specific tests.
pub fn member(guild_id: Snowflake, user_id: Snowflake) -> MemberRecord {
    MemberRecord {
        guild_id,
        user_id,
        nick: Some(format!("nick{user_id}")),
        avatar: None,
        roles: vec![guild_id],
        joined_at: Timestamp::from_unix_ms(1_700_000_000_123),
        deaf: false,
        mute: true,
        flags: 0,
        communication_disabled_until: None,
    }
}

fn invite(
    code: &str,
    guild_id: Snowflake,
    channel_id: Snowflake,
    inviter_id: Snowflake,
) -> InviteRecord {
    InviteRecord {
        code: code.to_owned(),
        guild_id,
        channel_id,
        inviter_id,
        max_age: 86_400,
        max_uses: 10,
        uses: 0,
        temporary: false,
        created_at: Timestamp::from_unix_ms(1_700_000_000_000),
    }
}

fn fresh_code() -> String {
    format!("code{}", fresh_id())
}

/// A fixture, shared with backend-specific tests: a custom emoji uploaded by `creator_id`.
pub fn emoji(
    id: Snowflake,
    guild_id: Snowflake,
    name: &str,
    roles: Vec<Snowflake>,
    animated: bool,
) -> EmojiRecord {
    EmojiRecord {
        id,
        guild_id,
        name: name.to_owned(),
        roles,
        creator_id: Snowflake(42),
        animated,
    }
}

/// A fixture, shared with backend-specific tests.
pub fn msg(channel_id: Snowflake, id: Snowflake, content: &str) -> MessageRecord {
    MessageRecord::text(id, channel_id, None, Snowflake(42), content)
}

/// A message with every optional part filled, to catch lossy encodings.
fn rich_msg(channel_id: Snowflake, id: Snowflake) -> MessageRecord {
    MessageRecord {
        guild_id: Some(Snowflake(7)),
        mentions: vec![Snowflake(8), Snowflake(9)],
        mention_roles: vec![Snowflake(10)],
        mention_everyone: true,
        tts: true,
        attachments: vec![Attachment {
            id: Snowflake(11),
            filename: "cat.png".into(),
            description: Some("a cat".into()),
            content_type: Some("image/png".into()),
            size: 1234,
            url: "https://cdn.example/cat.png".into(),
            proxy_url: "https://media.example/cat.png".into(),
            height: Some(10),
            width: Some(20),
        }],
        embeds: vec![Embed {
            title: Some("title".into()),
            kind: Some("rich".into()),
            description: Some("déjà vu 🎉".into()),
            url: None,
            timestamp: Some(Timestamp::from_unix_ms(1_700_000_000_500)),
            color: Some(0xABCDEF),
            footer: None,
            author: None,
            fields: vec![EmbedField {
                name: "n".into(),
                value: "v".into(),
                inline: true,
            }],
            image: Some(serde_json::json!({"url": "https://cdn.example/i.png", "width": 5})),
            thumbnail: None,
        }],
        kind: 19,
        flags: 4,
        nonce: Some(Nonce::Str("nonce-1".into())),
        message_reference: Some(MessageReference {
            kind: Some(0),
            message_id: Some(Snowflake(12)),
            channel_id: Some(channel_id),
            guild_id: None,
            // Request-only on the wire (never serialized), so it reads back as its default.
            fail_if_not_exists: true,
        }),
        webhook: Some(WebhookAuthor {
            webhook_id: Snowflake(77),
            username: "Deploy bot".into(),
            avatar: Some("abc".into()),
        }),
        edited_timestamp: Some(Timestamp::from_unix_ms(1_700_000_000_999)),
        ..msg(channel_id, id, "rich content")
    }
}

fn pin_records(pins: Vec<PinnedMessage>) -> Vec<MessageRecord> {
    pins.into_iter().map(|p| p.message).collect()
}

fn ids(messages: &[MessageRecord]) -> Vec<Snowflake> {
    messages.iter().map(|m| m.id).collect()
}

fn rc(emoji: &str, count: u32, me: bool) -> ReactionCount {
    ReactionCount {
        emoji: emoji.to_owned(),
        count,
        me,
    }
}

fn is_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, field: &str) -> bool {
    matches!(result, Err(StoreError::Conflict(f)) if f == field)
}

// ------------------------------------------------------------------ users

pub async fn users_create_and_get<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(open: &F) {
    let env = env(open).await;
    let s = &env.stores;
    let alice = fresh_user("Alice");
    let creds = credentials(alice.id);
    s.users.create_user(&alice, &creds).await.unwrap();

    assert_eq!(
        s.users.get_user(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        s.users.get_credentials(alice.id).await.unwrap(),
        Some(creds)
    );
    let nobody = fresh_id();
    assert_eq!(s.users.get_user(nobody).await.unwrap(), None);
    assert_eq!(s.users.get_credentials(nobody).await.unwrap(), None);

    // No email at all is allowed, and two users without one do not conflict.
    for _ in 0..2 {
        let id = fresh_id();
        let u = user(id, &format!("noemail{id}"), None);
        s.users.create_user(&u, &credentials(id)).await.unwrap();
        assert_eq!(s.users.get_user(id).await.unwrap(), Some(u));
    }
}

pub async fn users_unique_case_insensitive<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let alice = fresh_user("Alice");
    s.users
        .create_user(&alice, &credentials(alice.id))
        .await
        .unwrap();

    let id = fresh_id();
    let same_name = user(
        id,
        &alice.username.to_uppercase(),
        Some(&format!("other{id}@example.com")),
    );
    assert!(is_conflict(
        s.users.create_user(&same_name, &credentials(id)).await,
        "username"
    ));
    // The failed create left nothing behind.
    assert_eq!(s.users.get_user(id).await.unwrap(), None);
    assert_eq!(s.users.get_credentials(id).await.unwrap(), None);
    assert_eq!(
        s.users
            .find_user_by_login(&format!("other{id}@example.com"))
            .await
            .unwrap(),
        None
    );

    let id = fresh_id();
    let alice_email = alice.email.clone().unwrap();
    let same_email = user(id, &format!("bob{id}"), Some(&alice_email.to_lowercase()));
    assert!(is_conflict(
        s.users.create_user(&same_email, &credentials(id)).await,
        "email"
    ));
    assert_eq!(s.users.get_user(id).await.unwrap(), None);
    assert_eq!(
        s.users
            .find_user_by_login(&format!("bob{id}"))
            .await
            .unwrap(),
        None
    );

    // The loser's username is still free.
    let bob = user(
        id,
        &format!("bob{id}"),
        Some(&format!("bob{id}@example.com")),
    );
    s.users.create_user(&bob, &credentials(id)).await.unwrap();
    assert_eq!(
        s.users.find_user_by_login(&bob.username).await.unwrap(),
        Some(id)
    );
}

pub async fn users_find_by_login<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(open: &F) {
    let env = env(open).await;
    let s = &env.stores;
    let id = fresh_id();
    let u = user(
        id,
        &format!("MiXeD{id}"),
        Some(&format!("Mixed.Case{id}@Example.COM")),
    );
    s.users.create_user(&u, &credentials(id)).await.unwrap();

    for login in [
        u.username.clone(),
        u.username.to_lowercase(),
        u.username.to_uppercase(),
        u.email.clone().unwrap(),
        u.email.clone().unwrap().to_lowercase(),
        u.email.clone().unwrap().to_uppercase(),
    ] {
        assert_eq!(
            s.users.find_user_by_login(&login).await.unwrap(),
            Some(id),
            "{login}"
        );
    }
    assert_eq!(
        s.users
            .find_user_by_login(&format!("nobody{id}"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.users
            .find_user_by_login(&format!("nobody{id}@example.com"))
            .await
            .unwrap(),
        None
    );
}

pub async fn users_update_user<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(open: &F) {
    let env = env(open).await;
    let s = &env.stores;
    let a = fresh_user("A");
    let b = fresh_user("B");
    s.users.create_user(&a, &credentials(a.id)).await.unwrap();
    s.users.create_user(&b, &credentials(b.id)).await.unwrap();

    let renamed = User {
        username: format!("Renamed{}", a.id),
        ..a.clone()
    };
    s.users.update_user(&renamed).await.unwrap();
    assert_eq!(s.users.get_user(a.id).await.unwrap(), Some(renamed.clone()));
    assert_eq!(s.users.find_user_by_login(&a.username).await.unwrap(), None);
    assert_eq!(
        s.users
            .find_user_by_login(&renamed.username.to_lowercase())
            .await
            .unwrap(),
        Some(a.id)
    );

    // The old name is free again.
    let id = fresh_id();
    let c = user(id, &a.username, Some(&format!("c{id}@example.com")));
    s.users.create_user(&c, &credentials(id)).await.unwrap();
    assert_eq!(
        s.users.find_user_by_login(&a.username).await.unwrap(),
        Some(id)
    );

    // The new name is taken, in any case; the failed update changes nothing.
    let clash = User {
        username: renamed.username.to_uppercase(),
        ..b.clone()
    };
    assert!(is_conflict(s.users.update_user(&clash).await, "username"));
    assert_eq!(s.users.get_user(b.id).await.unwrap(), Some(b.clone()));
    assert_eq!(
        s.users.find_user_by_login(&b.username).await.unwrap(),
        Some(b.id)
    );
    assert_eq!(
        s.users.find_user_by_login(&renamed.username).await.unwrap(),
        Some(a.id)
    );

    // Changing only the case of one's own name is not a conflict.
    let recased = User {
        username: renamed.username.to_lowercase(),
        ..renamed.clone()
    };
    s.users.update_user(&recased).await.unwrap();
    assert_eq!(s.users.get_user(a.id).await.unwrap(), Some(recased.clone()));
    assert_eq!(
        s.users.find_user_by_login(&renamed.username).await.unwrap(),
        Some(a.id)
    );

    // Emails move the same way.
    let new_email = format!("new{}@example.com", a.id);
    let moved = User {
        email: Some(new_email.clone()),
        ..recased.clone()
    };
    s.users.update_user(&moved).await.unwrap();
    assert_eq!(
        s.users
            .find_user_by_login(a.email.as_deref().unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.users
            .find_user_by_login(&new_email.to_uppercase())
            .await
            .unwrap(),
        Some(a.id)
    );
    let steal = User {
        email: Some(new_email.to_uppercase()),
        ..b.clone()
    };
    assert!(is_conflict(s.users.update_user(&steal).await, "email"));
    assert_eq!(s.users.get_user(b.id).await.unwrap(), Some(b));
}

pub async fn users_get_many<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(open: &F) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, b) = (fresh_user("Many"), fresh_user("Many"));
    for u in [&a, &b] {
        s.users.create_user(u, &credentials(u.id)).await.unwrap();
    }
    let unknown = fresh_id();
    assert_eq!(
        s.users
            .get_users(&[b.id, unknown, a.id, b.id])
            .await
            .unwrap(),
        vec![b.clone(), a.clone(), b.clone()],
        "in the order asked, unknown ids skipped"
    );
    assert_eq!(s.users.get_users(&[]).await.unwrap(), Vec::new());
    assert_eq!(
        s.users.get_users(&[unknown, fresh_id()]).await.unwrap(),
        Vec::new()
    );
    // What an update wrote is what a batched read returns.
    let renamed = User {
        global_name: Some("Renamed".into()),
        ..a.clone()
    };
    s.users.update_user(&renamed).await.unwrap();
    assert_eq!(s.users.get_users(&[a.id]).await.unwrap(), vec![renamed]);
}

pub async fn users_credentials_round_trip<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let u = fresh_user("Creds");
    s.users.create_user(&u, &credentials(u.id)).await.unwrap();

    let with_mfa = Credentials {
        user_id: u.id,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$newhash".into(),
        totp_secret: Some("JBSWY3DPEHPK3PXP".into()),
        totp_last_step: 56_789_012,
        backup_codes: vec![
            BackupCodeRecord {
                code_hash: "h1".into(),
                consumed: false,
            },
            BackupCodeRecord {
                code_hash: "h2".into(),
                consumed: true,
            },
        ],
    };
    s.users.put_credentials(&with_mfa).await.unwrap();
    assert_eq!(
        s.users.get_credentials(u.id).await.unwrap(),
        Some(with_mfa.clone())
    );

    let without = Credentials {
        totp_secret: None,
        backup_codes: Vec::new(),
        ..with_mfa
    };
    s.users.put_credentials(&without).await.unwrap();
    assert_eq!(s.users.get_credentials(u.id).await.unwrap(), Some(without));
    // Credentials do not touch the user.
    assert_eq!(s.users.get_user(u.id).await.unwrap(), Some(u));
}

// ------------------------------------------------------------------ refresh tokens

pub async fn refresh_rotate_and_reuse<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let user_id = fresh_id();
    let family = fresh_id();
    let h = |n: u32| format!("rt{family}-{n}");
    let now = Timestamp::now();

    s.users
        .insert_refresh_token(&token(&h(1), family, user_id, later()))
        .await
        .unwrap();
    assert_eq!(
        s.users.refresh_token_family(&h(1)).await.unwrap(),
        Some(family)
    );

    let r = s
        .users
        .rotate_refresh_token(&h(1), &token(&h(2), family, user_id, later()), now)
        .await;
    assert_eq!(
        r.unwrap(),
        RotateOutcome::Rotated {
            user_id,
            family_id: family
        }
    );
    assert_eq!(
        s.users.refresh_token_family(&h(1)).await.unwrap(),
        None,
        "a spent token is not live"
    );
    assert_eq!(
        s.users.refresh_token_family(&h(2)).await.unwrap(),
        Some(family)
    );

    let r = s
        .users
        .rotate_refresh_token(&h(2), &token(&h(3), fresh_id(), fresh_id(), later()), now)
        .await;
    assert_eq!(
        r.unwrap(),
        RotateOutcome::Rotated {
            user_id,
            family_id: family
        }
    );

    // Presenting a spent token again: the whole family goes.
    let r = s
        .users
        .rotate_refresh_token(&h(1), &token(&h(4), family, user_id, later()), now)
        .await;
    assert_eq!(r.unwrap(), RotateOutcome::Reused { family_id: family });
    assert_eq!(s.users.refresh_token_family(&h(3)).await.unwrap(), None);
    assert_eq!(
        s.users.refresh_token_family(&h(4)).await.unwrap(),
        None,
        "the reuse stored nothing"
    );
    let r = s
        .users
        .rotate_refresh_token(&h(3), &token(&h(5), family, user_id, later()), now)
        .await;
    assert_eq!(r.unwrap(), RotateOutcome::Invalid);
    let r = s
        .users
        .rotate_refresh_token(&h(4), &token(&h(6), family, user_id, later()), now)
        .await;
    assert_eq!(r.unwrap(), RotateOutcome::Invalid);
    assert_eq!(s.users.refresh_token_family(&h(5)).await.unwrap(), None);

    // Another family of the same user is untouched.
    let other = fresh_id();
    let o1 = format!("rt{other}-1");
    s.users
        .insert_refresh_token(&token(&o1, other, user_id, later()))
        .await
        .unwrap();
    let r = s
        .users
        .rotate_refresh_token(
            &o1,
            &token(&format!("rt{other}-2"), other, user_id, later()),
            now,
        )
        .await;
    assert_eq!(
        r.unwrap(),
        RotateOutcome::Rotated {
            user_id,
            family_id: other
        }
    );
}

pub async fn refresh_expired_and_unknown<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let user_id = fresh_id();
    let family = fresh_id();
    let expires = Timestamp::from_unix_ms(1_800_000_000_000);
    let h = |n: u32| format!("rt{family}-{n}");

    let r = s
        .users
        .rotate_refresh_token(
            &h(0),
            &token(&h(9), family, user_id, later()),
            Timestamp::now(),
        )
        .await;
    assert_eq!(r.unwrap(), RotateOutcome::Invalid, "unknown token");
    assert_eq!(s.users.refresh_token_family(&h(9)).await.unwrap(), None);
    assert_eq!(s.users.refresh_token_family(&h(0)).await.unwrap(), None);

    s.users
        .insert_refresh_token(&token(&h(1), family, user_id, expires))
        .await
        .unwrap();
    // Expiry is inclusive: at `expires_at` the token is dead.
    for now in [expires, expires.plus_secs(1)] {
        let r = s
            .users
            .rotate_refresh_token(&h(1), &token(&h(2), family, user_id, later()), now)
            .await;
        assert_eq!(r.unwrap(), RotateOutcome::Invalid, "expired at {now}");
        assert_eq!(s.users.refresh_token_family(&h(2)).await.unwrap(), None);
    }
    // An invalid attempt did not spend it: just before expiry it still rotates.
    let just_before = Timestamp::from_unix_ms(expires.unix_ms() as u64 - 1);
    let r = s
        .users
        .rotate_refresh_token(&h(1), &token(&h(3), family, user_id, later()), just_before)
        .await;
    assert_eq!(
        r.unwrap(),
        RotateOutcome::Rotated {
            user_id,
            family_id: family
        }
    );
}

pub async fn refresh_revoke_family<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(open: &F) {
    let env = env(open).await;
    let s = &env.stores;
    let user_id = fresh_id();
    let family = fresh_id();
    let other = fresh_id();
    let a = format!("rt{family}-a");
    let b = format!("rt{family}-b");
    let c = format!("rt{other}-c");
    for (hash, fam) in [(&a, family), (&b, family), (&c, other)] {
        s.users
            .insert_refresh_token(&token(hash, fam, user_id, later()))
            .await
            .unwrap();
    }
    s.users.revoke_refresh_family(family).await.unwrap();
    assert_eq!(s.users.refresh_token_family(&a).await.unwrap(), None);
    assert_eq!(s.users.refresh_token_family(&b).await.unwrap(), None);
    assert_eq!(s.users.refresh_token_family(&c).await.unwrap(), Some(other));
    let r = s
        .users
        .rotate_refresh_token(
            &a,
            &token(&format!("{a}2"), family, user_id, later()),
            Timestamp::now(),
        )
        .await;
    assert_eq!(r.unwrap(), RotateOutcome::Invalid);
    let r = s
        .users
        .rotate_refresh_token(
            &c,
            &token(&format!("{c}2"), other, user_id, later()),
            Timestamp::now(),
        )
        .await;
    assert_eq!(
        r.unwrap(),
        RotateOutcome::Rotated {
            user_id,
            family_id: other
        }
    );
    // Revoking twice, or an unknown family, is fine.
    s.users.revoke_refresh_family(family).await.unwrap();
    s.users.revoke_refresh_family(fresh_id()).await.unwrap();
}

pub async fn refresh_family_revoked_after_logout_and_reuse<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let user_id = fresh_id();
    let (logged_out, reused, live) = (fresh_id(), fresh_id(), fresh_id());
    for fam in [logged_out, reused, live] {
        s.users
            .insert_refresh_token(&token(&format!("rt{fam}-1"), fam, user_id, later()))
            .await
            .unwrap();
    }
    s.users.revoke_refresh_family(logged_out).await.unwrap();
    let now = Timestamp::now();
    let first = format!("rt{reused}-1");
    let next = token(&format!("rt{reused}-2"), reused, user_id, later());
    assert!(matches!(
        s.users
            .rotate_refresh_token(&first, &next, now)
            .await
            .unwrap(),
        RotateOutcome::Rotated { .. }
    ));
    let again = token(&format!("rt{reused}-3"), reused, user_id, later());
    assert_eq!(
        s.users
            .rotate_refresh_token(&first, &again, now)
            .await
            .unwrap(),
        RotateOutcome::Reused { family_id: reused }
    );
    assert!(s.users.refresh_family_revoked(logged_out).await.unwrap());
    assert!(s.users.refresh_family_revoked(reused).await.unwrap());
    assert!(!s.users.refresh_family_revoked(live).await.unwrap());
    assert!(!s.users.refresh_family_revoked(fresh_id()).await.unwrap());
}

pub async fn refresh_revoke_every_family_of_a_user<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (user_id, other_user) = (fresh_id(), fresh_id());
    let (a, b, ended, theirs) = (fresh_id(), fresh_id(), fresh_id(), fresh_id());
    for (fam, owner) in [
        (a, user_id),
        (b, user_id),
        (ended, user_id),
        (theirs, other_user),
    ] {
        s.users
            .insert_refresh_token(&token(&format!("rt{fam}-1"), fam, owner, later()))
            .await
            .unwrap();
    }
    // A rotated family is still one family.
    let rotated = token(&format!("rt{a}-2"), a, user_id, later());
    s.users
        .rotate_refresh_token(&format!("rt{a}-1"), &rotated, Timestamp::now())
        .await
        .unwrap();
    s.users.revoke_refresh_family(ended).await.unwrap();

    let mut revoked = s.users.revoke_user_refresh_families(user_id).await.unwrap();
    revoked.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(revoked, expected, "the live families, and only those");
    for fam in [a, b, ended] {
        assert!(s.users.refresh_family_revoked(fam).await.unwrap());
    }
    assert!(!s.users.refresh_family_revoked(theirs).await.unwrap());
    assert_eq!(
        s.users
            .rotate_refresh_token(
                &format!("rt{a}-2"),
                &token(&format!("rt{a}-3"), a, user_id, later()),
                Timestamp::now()
            )
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    assert_eq!(
        s.users
            .refresh_token_family(&format!("rt{b}-1"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.users
            .refresh_token_family(&format!("rt{theirs}-1"))
            .await
            .unwrap(),
        Some(theirs)
    );
    // A session opened afterwards is live, and a second call has nothing left to revoke.
    let fresh = fresh_id();
    s.users
        .insert_refresh_token(&token(&format!("rt{fresh}-1"), fresh, user_id, later()))
        .await
        .unwrap();
    assert!(!s.users.refresh_family_revoked(fresh).await.unwrap());
    assert_eq!(
        s.users.revoke_user_refresh_families(user_id).await.unwrap(),
        vec![fresh]
    );
    assert!(
        s.users
            .revoke_user_refresh_families(user_id)
            .await
            .unwrap()
            .is_empty()
    );
}

// ------------------------------------------------------------------ applications

fn app_with_bot(owner_id: Snowflake) -> (ApplicationRecord, User) {
    let bot_id = fresh_id();
    let bot = User {
        bot: true,
        email: None,
        verified: None,
        mfa_enabled: None,
        ..user(bot_id, &format!("Bot{bot_id}"), None)
    };
    let app = ApplicationRecord {
        id: fresh_id(),
        name: format!("App {bot_id}"),
        description: "does things".into(),
        owner_id,
        bot_user_id: bot_id,
        verify_key: "abcdef0123456789".into(),
        flags: 1 << 23,
    };
    (app, bot)
}

pub async fn applications_round_trip<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let owner = fresh_user("Owner");
    s.users
        .create_user(&owner, &credentials(owner.id))
        .await
        .unwrap();
    let (app, bot) = app_with_bot(owner.id);
    s.applications.create_application(&app, &bot).await.unwrap();

    assert_eq!(
        s.applications.get_application(app.id).await.unwrap(),
        Some(app.clone())
    );
    assert_eq!(
        s.applications.application_by_bot(bot.id).await.unwrap(),
        Some(app.clone())
    );
    assert_eq!(s.users.get_user(bot.id).await.unwrap(), Some(bot.clone()));
    assert_eq!(
        s.users
            .find_user_by_login(&bot.username.to_lowercase())
            .await
            .unwrap(),
        Some(bot.id)
    );
    assert_eq!(
        s.applications.get_application(fresh_id()).await.unwrap(),
        None
    );
    // Description and flags are editable; owner and bot are not.
    let edited = ApplicationRecord {
        description: "edited".into(),
        flags: 1 << 19,
        owner_id: fresh_id(),
        bot_user_id: fresh_id(),
        ..app.clone()
    };
    assert!(s.applications.update_application(&edited).await.unwrap());
    let stored = s
        .applications
        .get_application(app.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.description.as_str(), stored.flags),
        ("edited", 1 << 19)
    );
    assert_eq!(
        (stored.owner_id, stored.bot_user_id),
        (app.owner_id, app.bot_user_id)
    );
    s.applications.update_application(&app).await.unwrap();
    assert!(
        !s.applications
            .update_application(&ApplicationRecord {
                id: fresh_id(),
                ..app.clone()
            })
            .await
            .unwrap()
    );
    assert_eq!(
        s.applications.application_by_bot(owner.id).await.unwrap(),
        None
    );

    let h1 = format!("bt{}-1", bot.id);
    let h2 = format!("bt{}-2", bot.id);
    assert_eq!(s.applications.bot_by_token_hash(&h1).await.unwrap(), None);
    s.applications.set_bot_token(bot.id, &h1).await.unwrap();
    assert_eq!(
        s.applications.bot_by_token_hash(&h1).await.unwrap(),
        Some(bot.id)
    );
    s.applications.set_bot_token(bot.id, &h2).await.unwrap();
    assert_eq!(
        s.applications.bot_by_token_hash(&h1).await.unwrap(),
        None,
        "the old token is revoked"
    );
    assert_eq!(
        s.applications.bot_by_token_hash(&h2).await.unwrap(),
        Some(bot.id)
    );
    s.applications.set_bot_token(bot.id, &h2).await.unwrap();
    assert_eq!(
        s.applications.bot_by_token_hash(&h2).await.unwrap(),
        Some(bot.id)
    );

    // A second bot's token is independent.
    let (app2, bot2) = app_with_bot(owner.id);
    s.applications
        .create_application(&app2, &bot2)
        .await
        .unwrap();
    let h3 = format!("bt{}-3", bot2.id);
    s.applications.set_bot_token(bot2.id, &h3).await.unwrap();
    assert_eq!(
        s.applications.bot_by_token_hash(&h2).await.unwrap(),
        Some(bot.id)
    );
    assert_eq!(
        s.applications.bot_by_token_hash(&h3).await.unwrap(),
        Some(bot2.id)
    );
}

pub async fn applications_bot_username_conflict<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let owner = fresh_user("Owner");
    s.users
        .create_user(&owner, &credentials(owner.id))
        .await
        .unwrap();

    let (app, bot) = app_with_bot(owner.id);
    let bot = User {
        username: owner.username.to_uppercase(),
        ..bot
    };
    assert!(is_conflict(
        s.applications.create_application(&app, &bot).await,
        "username"
    ));
    assert_eq!(s.applications.get_application(app.id).await.unwrap(), None);
    assert_eq!(
        s.applications.application_by_bot(bot.id).await.unwrap(),
        None
    );
    assert_eq!(s.users.get_user(bot.id).await.unwrap(), None);

    // A bot name also blocks later users and bots.
    let (app2, bot2) = app_with_bot(owner.id);
    s.applications
        .create_application(&app2, &bot2)
        .await
        .unwrap();
    let id = fresh_id();
    let human = user(
        id,
        &bot2.username.to_lowercase(),
        Some(&format!("h{id}@example.com")),
    );
    assert!(is_conflict(
        s.users.create_user(&human, &credentials(id)).await,
        "username"
    ));
    let (app3, bot3) = app_with_bot(owner.id);
    let bot3 = User {
        username: bot2.username.clone(),
        ..bot3
    };
    assert!(is_conflict(
        s.applications.create_application(&app3, &bot3).await,
        "username"
    ));
    assert_eq!(s.applications.get_application(app3.id).await.unwrap(), None);
}

// ------------------------------------------------------------------ guilds

/// A full guild: two roles, two channels, two members, a ban, two invites, a webhook and two
/// custom emojis (a static one for everyone, an animated one for the second role).
struct GuildFixture {
    guild: Guild,
    roles: Vec<Role>,
    channels: Vec<Channel>,
    members: Vec<MemberRecord>,
    bans: Vec<BanRecord>,
    invites: Vec<InviteRecord>,
    webhooks: Vec<WebhookRecord>,
    emojis: Vec<EmojiRecord>,
}

impl GuildFixture {
    fn new(owner: Snowflake) -> GuildFixture {
        let id = fresh_id();
        let everyone = role(id, "@everyone", 0);
        let mods = role(fresh_id(), "mods", 1);
        let channels = vec![
            channel(fresh_id(), id, "general"),
            channel(fresh_id(), id, "random"),
        ];
        let mut members = vec![member(id, owner), member(id, fresh_id())];
        members.sort_by_key(|m| m.user_id);
        let bans = vec![BanRecord {
            guild_id: id,
            user_id: fresh_id(),
            reason: Some("spam".into()),
        }];
        let mut invites = vec![
            invite(&fresh_code(), id, channels[0].id, owner),
            invite(&fresh_code(), id, channels[1].id, owner),
        ];
        invites.sort_by(|a, b| a.code.cmp(&b.code));
        let webhooks = vec![WebhookRecord {
            id: fresh_id(),
            guild_id: id,
            channel_id: channels[0].id,
            creator_id: owner,
            name: "Deploys".into(),
            avatar: None,
            token_hash: "9f86d081884c7d659a2feaa0c55ad015".into(),
        }];
        let mut emojis = vec![
            emoji(fresh_id(), id, "blobwave", Vec::new(), false),
            emoji(fresh_id(), id, "party_parrot", vec![mods.id], true),
        ];
        emojis.sort_by_key(|e| e.id);
        GuildFixture {
            guild: guild(id, owner, vec![everyone.clone(), mods.clone()]),
            roles: vec![everyone, mods],
            channels,
            members,
            bans,
            invites,
            webhooks,
            emojis,
        }
    }

    fn id(&self) -> Snowflake {
        self.guild.id
    }

    fn writes(&self) -> Vec<GuildWrite> {
        let mut w = vec![GuildWrite::PutGuild(self.guild.clone())];
        w.extend(self.roles.iter().map(|r| GuildWrite::PutRole {
            guild_id: self.id(),
            role: r.clone(),
        }));
        w.extend(self.channels.iter().cloned().map(GuildWrite::PutChannel));
        w.extend(self.members.iter().cloned().map(GuildWrite::PutMember));
        w.extend(self.bans.iter().cloned().map(GuildWrite::PutBan));
        w.extend(self.invites.iter().cloned().map(GuildWrite::PutInvite));
        w.extend(self.webhooks.iter().cloned().map(GuildWrite::PutWebhook));
        w.extend(self.emojis.iter().cloned().map(GuildWrite::PutEmoji));
        w
    }
}

/// A snapshot with every list in key order (ids ascending, invites by code), since the trait
/// leaves the order of `load_guild`'s lists open.
fn sorted(mut snap: crate::GuildSnapshot) -> crate::GuildSnapshot {
    snap.roles.sort_by_key(|r| r.id);
    snap.channels.sort_by_key(|c| c.id);
    snap.members.sort_by_key(|m| m.user_id);
    snap.bans.sort_by_key(|b| b.user_id);
    snap.invites.sort_by(|a, b| a.code.cmp(&b.code));
    snap.webhooks.sort_by_key(|w| w.id);
    snap.emojis.sort_by_key(|e| e.id);
    snap
}

async fn load(s: &Stores, guild_id: Snowflake) -> Option<crate::GuildSnapshot> {
    s.guilds.load_guild(guild_id).await.unwrap().map(sorted)
}

pub async fn guild_batch_round_trip<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(open: &F) {
    let env = env(open).await;
    let s = &env.stores;
    let owner = fresh_id();
    let g = GuildFixture::new(owner);
    s.guilds.write_guild(g.id(), g.writes()).await.unwrap();

    let snap = load(s, g.id()).await.expect("guild exists");
    // The guild row does not carry roles; they come back as rows of their own.
    assert_eq!(
        snap.guild,
        Some(Guild {
            roles: Vec::new(),
            ..g.guild.clone()
        })
    );
    assert_eq!(snap.roles, g.roles);
    assert_eq!(snap.channels, g.channels);
    assert_eq!(snap.members, g.members);
    assert_eq!(snap.bans, g.bans);
    assert_eq!(snap.invites, g.invites);
    assert_eq!(snap.webhooks, g.webhooks);
    assert_eq!(snap.emojis, g.emojis);
    assert_eq!(s.guilds.load_guild(fresh_id()).await.unwrap(), None);
    for w in &g.webhooks {
        assert_eq!(s.guilds.webhook_guild(w.id).await.unwrap(), Some(g.id()));
    }
    assert_eq!(s.guilds.webhook_guild(fresh_id()).await.unwrap(), None);
    // A webhook deleted leaves its index too.
    let gone = g.webhooks[0].clone();
    s.guilds
        .write_guild(
            g.id(),
            vec![GuildWrite::DeleteWebhook {
                guild_id: g.id(),
                webhook_id: gone.id,
            }],
        )
        .await
        .unwrap();
    assert_eq!(s.guilds.webhook_guild(gone.id).await.unwrap(), None);
    assert!(load(s, g.id()).await.unwrap().webhooks.is_empty());
    s.guilds
        .write_guild(g.id(), vec![GuildWrite::PutWebhook(gone)])
        .await
        .unwrap();

    for c in &g.channels {
        assert_eq!(s.guilds.channel_guild(c.id).await.unwrap(), Some(g.id()));
    }
    assert_eq!(s.guilds.channel_guild(fresh_id()).await.unwrap(), None);
    for i in &g.invites {
        assert_eq!(s.guilds.get_invite(&i.code).await.unwrap(), Some(i.clone()));
    }
    assert_eq!(s.guilds.get_invite(&fresh_code()).await.unwrap(), None);
    assert_eq!(
        s.guilds.user_guilds(g.members[1].user_id).await.unwrap(),
        vec![g.id()]
    );
    assert_eq!(
        s.guilds.user_guilds(fresh_id()).await.unwrap(),
        Vec::<Snowflake>::new()
    );

    // user_guilds is ascending whatever the order of joining.
    let later_ids: Vec<Snowflake> = (0..3).map(|_| fresh_id()).collect();
    for gid in later_ids.iter().rev() {
        let writes = vec![
            GuildWrite::PutGuild(guild(*gid, owner, Vec::new())),
            GuildWrite::PutMember(member(*gid, owner)),
        ];
        s.guilds.write_guild(*gid, writes).await.unwrap();
    }
    let mut expected = vec![g.id()];
    expected.extend(&later_ids);
    assert_eq!(s.guilds.user_guilds(owner).await.unwrap(), expected);

    // Puts replace.
    let renamed = Guild {
        name: "renamed".into(),
        roles: Vec::new(),
        ..g.guild.clone()
    };
    let nick = MemberRecord {
        nick: Some("new nick".into()),
        roles: Vec::new(),
        ..g.members[1].clone()
    };
    let used = InviteRecord {
        uses: 3,
        ..g.invites[0].clone()
    };
    let writes = vec![
        GuildWrite::PutGuild(renamed.clone()),
        GuildWrite::PutMember(nick.clone()),
        GuildWrite::PutInvite(used.clone()),
    ];
    s.guilds.write_guild(g.id(), writes).await.unwrap();
    let snap = load(s, g.id()).await.unwrap();
    assert_eq!(snap.guild, Some(renamed));
    assert_eq!(snap.members, vec![g.members[0].clone(), nick]);
    assert_eq!(snap.invites, vec![used.clone(), g.invites[1].clone()]);
    assert_eq!(s.guilds.get_invite(&used.code).await.unwrap(), Some(used));
    assert_eq!(
        s.guilds.user_guilds(g.members[1].user_id).await.unwrap(),
        vec![g.id()]
    );
}

pub async fn guild_deletes_update_indexes<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let g = GuildFixture::new(fresh_id());
    s.guilds.write_guild(g.id(), g.writes()).await.unwrap();

    let gone_member = g.members[1].user_id;
    let writes = vec![
        GuildWrite::DeleteRole {
            guild_id: g.id(),
            role_id: g.roles[1].id,
        },
        GuildWrite::DeleteChannel {
            guild_id: g.id(),
            channel_id: g.channels[1].id,
        },
        GuildWrite::DeleteMember {
            guild_id: g.id(),
            user_id: gone_member,
        },
        GuildWrite::DeleteBan {
            guild_id: g.id(),
            user_id: g.bans[0].user_id,
        },
        GuildWrite::DeleteInvite {
            code: g.invites[1].code.clone(),
        },
    ];
    s.guilds.write_guild(g.id(), writes).await.unwrap();

    let snap = load(s, g.id()).await.unwrap();
    assert_eq!(snap.roles, vec![g.roles[0].clone()]);
    assert_eq!(snap.channels, vec![g.channels[0].clone()]);
    assert_eq!(snap.members, vec![g.members[0].clone()]);
    assert_eq!(snap.bans, Vec::new());
    assert_eq!(snap.invites, vec![g.invites[0].clone()]);
    assert_eq!(
        s.guilds.user_guilds(gone_member).await.unwrap(),
        Vec::<Snowflake>::new()
    );
    assert_eq!(
        s.guilds.user_guilds(g.members[0].user_id).await.unwrap(),
        vec![g.id()]
    );
    assert_eq!(
        s.guilds.channel_guild(g.channels[1].id).await.unwrap(),
        None
    );
    assert_eq!(
        s.guilds.channel_guild(g.channels[0].id).await.unwrap(),
        Some(g.id())
    );
    assert_eq!(s.guilds.get_invite(&g.invites[1].code).await.unwrap(), None);
    assert_eq!(
        s.guilds.get_invite(&g.invites[0].code).await.unwrap(),
        Some(g.invites[0].clone())
    );

    // Deleting what is not there is not an error.
    let writes = vec![
        GuildWrite::DeleteRole {
            guild_id: g.id(),
            role_id: fresh_id(),
        },
        GuildWrite::DeleteMember {
            guild_id: g.id(),
            user_id: fresh_id(),
        },
        GuildWrite::DeleteInvite { code: fresh_code() },
    ];
    s.guilds.write_guild(g.id(), writes).await.unwrap();
    assert_eq!(
        load(s, g.id()).await.unwrap().members,
        vec![g.members[0].clone()]
    );
}

pub async fn guild_batch_applies_in_order<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let g = GuildFixture::new(fresh_id());
    s.guilds.write_guild(g.id(), g.writes()).await.unwrap();

    let (joined_left, left_joined) = (fresh_id(), fresh_id());
    let code = fresh_code();
    let writes = vec![
        GuildWrite::PutMember(member(g.id(), joined_left)),
        GuildWrite::DeleteMember {
            guild_id: g.id(),
            user_id: joined_left,
        },
        GuildWrite::DeleteMember {
            guild_id: g.id(),
            user_id: left_joined,
        },
        GuildWrite::PutMember(member(g.id(), left_joined)),
        GuildWrite::PutInvite(invite(&code, g.id(), g.channels[0].id, joined_left)),
        GuildWrite::DeleteInvite { code: code.clone() },
    ];
    s.guilds.write_guild(g.id(), writes).await.unwrap();
    let snap = load(s, g.id()).await.unwrap();
    let member_ids: Vec<Snowflake> = snap.members.iter().map(|m| m.user_id).collect();
    let mut expected = vec![g.members[0].user_id, g.members[1].user_id, left_joined];
    expected.sort();
    assert_eq!(member_ids, expected);
    assert_eq!(
        s.guilds.user_guilds(joined_left).await.unwrap(),
        Vec::<Snowflake>::new()
    );
    assert_eq!(
        s.guilds.user_guilds(left_joined).await.unwrap(),
        vec![g.id()]
    );
    assert_eq!(s.guilds.get_invite(&code).await.unwrap(), None);
    assert_eq!(snap.invites, g.invites);

    // A guild created and deleted in one batch leaves nothing.
    let h = GuildFixture::new(fresh_id());
    let mut writes = h.writes();
    writes.push(GuildWrite::DeleteGuild(h.id()));
    s.guilds.write_guild(h.id(), writes).await.unwrap();
    assert_eq!(s.guilds.load_guild(h.id()).await.unwrap(), None);
    assert_eq!(
        s.guilds.user_guilds(h.members[1].user_id).await.unwrap(),
        Vec::<Snowflake>::new()
    );
    assert_eq!(
        s.guilds.channel_guild(h.channels[0].id).await.unwrap(),
        None
    );
    assert_eq!(s.guilds.get_invite(&h.invites[0].code).await.unwrap(), None);
}

pub async fn guild_invite_conflict_is_atomic<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let a = GuildFixture::new(fresh_id());
    s.guilds.write_guild(a.id(), a.writes()).await.unwrap();
    let taken = a.invites[0].clone();

    let b = GuildFixture::new(fresh_id());
    let mut writes = b.writes();
    writes.push(GuildWrite::PutInvite(InviteRecord {
        guild_id: b.id(),
        channel_id: b.channels[0].id,
        ..taken.clone()
    }));
    assert!(is_conflict(
        s.guilds.write_guild(b.id(), writes).await,
        "code"
    ));

    // Nothing of the failed batch is visible, not even the writes before the conflict.
    assert_eq!(s.guilds.load_guild(b.id()).await.unwrap(), None);
    for c in &b.channels {
        assert_eq!(s.guilds.channel_guild(c.id).await.unwrap(), None);
    }
    for m in &b.members {
        assert_eq!(
            s.guilds.user_guilds(m.user_id).await.unwrap(),
            Vec::<Snowflake>::new()
        );
    }
    for i in &b.invites {
        assert_eq!(s.guilds.get_invite(&i.code).await.unwrap(), None);
    }
    assert_eq!(
        s.guilds.get_invite(&taken.code).await.unwrap(),
        Some(taken.clone())
    );
    assert_eq!(load(s, a.id()).await.unwrap().invites, a.invites);

    // The owner of a code may replace its invite.
    let bumped = InviteRecord {
        uses: 5,
        ..taken.clone()
    };
    s.guilds
        .write_guild(a.id(), vec![GuildWrite::PutInvite(bumped.clone())])
        .await
        .unwrap();
    assert_eq!(
        s.guilds.get_invite(&taken.code).await.unwrap(),
        Some(bumped)
    );

    // Without the clash, the same batch goes through.
    s.guilds.write_guild(b.id(), b.writes()).await.unwrap();
    assert_eq!(load(s, b.id()).await.unwrap().invites, b.invites);
}

pub async fn guild_delete_removes_everything<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let owner = fresh_id();
    let g = GuildFixture::new(owner);
    let other = GuildFixture::new(owner);
    s.guilds.write_guild(g.id(), g.writes()).await.unwrap();
    s.guilds
        .write_guild(other.id(), other.writes())
        .await
        .unwrap();
    assert_eq!(
        s.guilds.user_guilds(owner).await.unwrap(),
        vec![g.id(), other.id()]
    );

    s.guilds
        .write_guild(g.id(), vec![GuildWrite::DeleteGuild(g.id())])
        .await
        .unwrap();

    assert_eq!(s.guilds.load_guild(g.id()).await.unwrap(), None);
    assert_eq!(s.guilds.user_guilds(owner).await.unwrap(), vec![other.id()]);
    assert_eq!(
        s.guilds.user_guilds(g.members[1].user_id).await.unwrap(),
        Vec::<Snowflake>::new()
    );
    for c in &g.channels {
        assert_eq!(s.guilds.channel_guild(c.id).await.unwrap(), None);
    }
    for i in &g.invites {
        assert_eq!(s.guilds.get_invite(&i.code).await.unwrap(), None);
    }
    for w in &g.webhooks {
        assert_eq!(s.guilds.webhook_guild(w.id).await.unwrap(), None);
    }
    // The other guild is whole.
    let snap = load(s, other.id()).await.unwrap();
    assert_eq!(snap.roles, other.roles);
    assert_eq!(snap.channels, other.channels);
    assert_eq!(snap.members, other.members);
    assert_eq!(snap.bans, other.bans);
    assert_eq!(snap.invites, other.invites);
    assert_eq!(snap.webhooks, other.webhooks);
    assert_eq!(snap.emojis, other.emojis);

    // A deleted guild's codes are free for others.
    let reused = invite(&g.invites[0].code, other.id(), other.channels[0].id, owner);
    s.guilds
        .write_guild(other.id(), vec![GuildWrite::PutInvite(reused.clone())])
        .await
        .unwrap();
    assert_eq!(
        s.guilds.get_invite(&reused.code).await.unwrap(),
        Some(reused)
    );

    // Deleting a guild that does not exist is fine.
    s.guilds
        .write_guild(g.id(), vec![GuildWrite::DeleteGuild(g.id())])
        .await
        .unwrap();

    // A guild written again under the deleted id starts empty: none of the deleted guild's
    // rows (its roles, channels, members, bans, invites, webhooks, emojis) come back with it.
    s.guilds
        .write_guild(g.id(), vec![GuildWrite::PutGuild(g.guild.clone())])
        .await
        .unwrap();
    assert_eq!(
        load(s, g.id()).await,
        Some(GuildSnapshot {
            guild: Some(Guild {
                roles: Vec::new(),
                ..g.guild.clone()
            }),
            ..GuildSnapshot::default()
        })
    );
}

pub async fn guild_emojis_replace_and_delete<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let owner = fresh_id();
    let g = GuildFixture::new(owner);
    let other = GuildFixture::new(owner);
    s.guilds.write_guild(g.id(), g.writes()).await.unwrap();
    s.guilds
        .write_guild(other.id(), other.writes())
        .await
        .unwrap();
    let kept = g.emojis.iter().find(|e| e.animated).unwrap().clone();
    let gone = g.emojis.iter().find(|e| !e.animated).unwrap().clone();
    assert_eq!(kept.roles, vec![g.roles[1].id]);

    // The animated one renamed and given to both roles, the static one deleted, a third put
    // and deleted within the batch, and a delete of an emoji that was never there.
    let renamed = EmojiRecord {
        name: "parrot_party".into(),
        roles: vec![g.roles[0].id, g.roles[1].id],
        ..kept.clone()
    };
    let fleeting = emoji(fresh_id(), g.id(), "fleeting", Vec::new(), false);
    let writes = vec![
        GuildWrite::PutEmoji(renamed.clone()),
        GuildWrite::DeleteEmoji {
            guild_id: g.id(),
            emoji_id: gone.id,
        },
        GuildWrite::PutEmoji(fleeting.clone()),
        GuildWrite::DeleteEmoji {
            guild_id: g.id(),
            emoji_id: fleeting.id,
        },
        GuildWrite::DeleteEmoji {
            guild_id: g.id(),
            emoji_id: fresh_id(),
        },
    ];
    s.guilds.write_guild(g.id(), writes).await.unwrap();
    let snap = load(s, g.id()).await.unwrap();
    assert_eq!(snap.emojis, vec![renamed.clone()]);
    // The rest of the guild is as it was, and so is the other guild.
    assert_eq!(snap.roles, g.roles);
    assert_eq!(snap.webhooks, g.webhooks);
    assert_eq!(load(s, other.id()).await.unwrap().emojis, other.emojis);

    // Replaced again, back to everyone and to a static image; one for the guild added beside it.
    let plain = EmojiRecord {
        roles: Vec::new(),
        animated: false,
        ..renamed
    };
    let added = emoji(fresh_id(), g.id(), "added", vec![g.roles[1].id], true);
    s.guilds
        .write_guild(
            g.id(),
            vec![
                GuildWrite::PutEmoji(plain.clone()),
                GuildWrite::PutEmoji(added.clone()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(load(s, g.id()).await.unwrap().emojis, vec![plain, added]);
    assert_eq!(load(s, other.id()).await.unwrap().emojis, other.emojis);
}

// ------------------------------------------------------------------ messages

/// Ten messages 10 ms apart inside one bucket, stored out of order; `m[i]` is message `i`.
async fn ten_messages(s: &Stores, channel_id: Snowflake) -> Vec<Snowflake> {
    let base = 50 * BUCKET_MS + 1_000;
    let m: Vec<Snowflake> = (0..=10).map(|i| id_at(base + i * 10, 0)).collect();
    for i in [4, 9, 1, 10, 7, 2, 3, 8, 5, 6] {
        s.messages
            .create_message(&msg(channel_id, m[i], &format!("message {i}")))
            .await
            .unwrap();
    }
    m
}

async fn list(
    s: &Stores,
    channel_id: Snowflake,
    anchor: HistoryAnchor,
    limit: usize,
) -> Vec<Snowflake> {
    ids(&s
        .messages
        .list_messages(channel_id, anchor, limit)
        .await
        .unwrap())
}

pub async fn messages_order_and_cursors<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    use HistoryAnchor::{After, Before, Latest};
    let env = env(open).await;
    let s = &env.stores;
    let ch = fresh_id();
    let m = ten_messages(s, ch).await;
    let r = |idx: &[usize]| idx.iter().map(|&i| m[i]).collect::<Vec<_>>();
    // Between message 5 and message 6, and not stored.
    let gap = Snowflake(m[5].get() + 7);

    let all = s.messages.list_messages(ch, Latest, 100).await.unwrap();
    assert_eq!(ids(&all), r(&[10, 9, 8, 7, 6, 5, 4, 3, 2, 1]));
    assert_eq!(all[0], msg(ch, m[10], "message 10"));
    assert_eq!(list(s, ch, Latest, 3).await, r(&[10, 9, 8]));
    assert_eq!(list(s, ch, Latest, 1).await, r(&[10]));
    assert_eq!(list(s, ch, Latest, 0).await, r(&[]));

    assert_eq!(list(s, ch, Before(m[7]), 3).await, r(&[6, 5, 4]));
    assert_eq!(list(s, ch, Before(m[3]), 5).await, r(&[2, 1]));
    assert_eq!(list(s, ch, Before(m[1]), 5).await, r(&[]));
    assert_eq!(list(s, ch, Before(gap), 2).await, r(&[5, 4]));
    assert_eq!(
        list(s, ch, Before(Snowflake(u64::MAX)), 2).await,
        r(&[10, 9])
    );
    assert_eq!(list(s, ch, Before(Snowflake(0)), 2).await, r(&[]));
    assert_eq!(list(s, ch, Before(m[7]), 0).await, r(&[]));

    assert_eq!(
        list(s, ch, After(m[3]), 3).await,
        r(&[6, 5, 4]),
        "the oldest three after, newest first"
    );
    assert_eq!(list(s, ch, After(m[8]), 5).await, r(&[10, 9]));
    assert_eq!(list(s, ch, After(m[10]), 5).await, r(&[]));
    assert_eq!(list(s, ch, After(gap), 2).await, r(&[7, 6]));
    assert_eq!(list(s, ch, After(Snowflake(0)), 2).await, r(&[2, 1]));
    assert_eq!(
        list(s, ch, After(Snowflake(0)), 100).await,
        r(&[10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    );
    assert_eq!(list(s, ch, After(Snowflake(u64::MAX)), 5).await, r(&[]));
    assert_eq!(list(s, ch, After(m[3]), 0).await, r(&[]));

    // Paging backwards with Before visits every message exactly once.
    let mut seen = Vec::new();
    let mut anchor = Latest;
    loop {
        let page = list(s, ch, anchor, 3).await;
        let Some(&last) = page.last() else { break };
        seen.extend(page);
        anchor = Before(last);
    }
    assert_eq!(seen, r(&[10, 9, 8, 7, 6, 5, 4, 3, 2, 1]));

    // An empty channel.
    assert_eq!(list(s, fresh_id(), Latest, 50).await, r(&[]));
}

pub async fn messages_around<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(open: &F) {
    use HistoryAnchor::Around;
    let env = env(open).await;
    let s = &env.stores;
    let ch = fresh_id();
    let m = ten_messages(s, ch).await;
    let r = |idx: &[usize]| idx.iter().map(|&i| m[i]).collect::<Vec<_>>();
    let gap = Snowflake(m[5].get() + 7);

    // limit/2 older, the anchor, and what is left (at most limit/2) newer.
    assert_eq!(list(s, ch, Around(m[5]), 5).await, r(&[7, 6, 5, 4, 3]));
    assert_eq!(list(s, ch, Around(m[5]), 4).await, r(&[6, 5, 4, 3]));
    assert_eq!(list(s, ch, Around(m[5]), 3).await, r(&[6, 5, 4]));
    assert_eq!(list(s, ch, Around(m[5]), 2).await, r(&[5, 4]));
    assert_eq!(list(s, ch, Around(m[5]), 1).await, r(&[5]));
    assert_eq!(list(s, ch, Around(m[5]), 0).await, r(&[]));
    // Short sides are not made up from the other side.
    assert_eq!(list(s, ch, Around(m[1]), 5).await, r(&[3, 2, 1]));
    assert_eq!(list(s, ch, Around(m[10]), 5).await, r(&[10, 9, 8]));
    assert_eq!(
        list(s, ch, Around(m[5]), 100).await,
        r(&[10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    );
    // An anchor that does not exist: limit/2 on each side.
    assert_eq!(list(s, ch, Around(gap), 4).await, r(&[7, 6, 5, 4]));
    assert_eq!(list(s, ch, Around(gap), 5).await, r(&[7, 6, 5, 4]));
    assert_eq!(list(s, ch, Around(gap), 3).await, r(&[6, 5]));
    assert_eq!(list(s, ch, Around(gap), 1).await, r(&[]));
    assert_eq!(list(s, ch, Around(Snowflake(0)), 4).await, r(&[2, 1]));
    assert_eq!(
        list(s, ch, Around(Snowflake(u64::MAX)), 4).await,
        r(&[10, 9])
    );
}

pub async fn messages_bucket_boundaries<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    use HistoryAnchor::{After, Around, Before, Latest};
    let env = env(open).await;
    let s = &env.stores;
    let b = BUCKET_MS;
    // Buckets 100 (first and last millisecond), 101, 103 and 110; 102 and 104–109 are empty.
    let a = [
        id_at(100 * b, 0),
        id_at(100 * b + b - 1, 4095),
        id_at(101 * b, 0),
        id_at(101 * b, 1),
        id_at(103 * b + 5, 0),
        id_at(110 * b, 0),
    ];
    let buckets: Vec<u32> = a.iter().map(|&id| bucket_of(id)).collect();
    assert_eq!(buckets, vec![100, 100, 101, 101, 103, 110]);

    // Channels on either side of `ch`, with messages in the same and in neighbouring buckets.
    let ch = Snowflake(fresh_id().get() + (1 << 20));
    let below = Snowflake(ch.get() - 1);
    let above = Snowflake(ch.get() + 1);
    for &id in a.iter().rev() {
        s.messages.create_message(&msg(ch, id, "a")).await.unwrap();
    }
    let noise = [
        id_at(99 * b, 0),
        id_at(100 * b + 7, 0),
        id_at(102 * b, 0),
        id_at(111 * b, 0),
    ];
    for c in [below, above] {
        for &id in &noise {
            s.messages
                .create_message(&msg(c, id, "noise"))
                .await
                .unwrap();
        }
    }
    let r = |idx: &[usize]| idx.iter().map(|&i| a[i]).collect::<Vec<_>>();

    assert_eq!(list(s, ch, Latest, 10).await, r(&[5, 4, 3, 2, 1, 0]));
    assert_eq!(list(s, ch, Latest, 3).await, r(&[5, 4, 3]));
    assert_eq!(list(s, ch, Before(a[4]), 2).await, r(&[3, 2]));
    assert_eq!(list(s, ch, Before(a[2]), 10).await, r(&[1, 0]));
    assert_eq!(
        list(s, ch, Before(id_at(102 * b, 0)), 10).await,
        r(&[3, 2, 1, 0])
    );
    assert_eq!(list(s, ch, Before(id_at(120 * b, 0)), 2).await, r(&[5, 4]));
    assert_eq!(list(s, ch, After(a[1]), 2).await, r(&[3, 2]));
    assert_eq!(list(s, ch, After(a[3]), 10).await, r(&[5, 4]));
    assert_eq!(list(s, ch, After(id_at(104 * b, 0)), 10).await, r(&[5]));
    assert_eq!(list(s, ch, After(id_at(99 * b, 0)), 3).await, r(&[2, 1, 0]));
    assert_eq!(list(s, ch, Around(a[2]), 3).await, r(&[3, 2, 1]));
    assert_eq!(
        list(s, ch, Around(id_at(102 * b, 0)), 4).await,
        r(&[5, 4, 3, 2])
    );

    let n = noise.to_vec();
    let newest_first: Vec<Snowflake> = n.iter().rev().copied().collect();
    for c in [below, above] {
        assert_eq!(list(s, c, Latest, 10).await, newest_first);
        assert_eq!(
            list(s, c, Before(id_at(101 * b, 0)), 10).await,
            vec![n[1], n[0]]
        );
        assert_eq!(
            list(s, c, After(id_at(100 * b, 0)), 10).await,
            vec![n[3], n[2], n[1]]
        );
    }
}

pub async fn messages_edit_and_delete<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let ch = fresh_id();
    let m = ten_messages(s, ch).await;

    // Every field survives the round trip.
    let rich = rich_msg(ch, m[0]);
    s.messages.create_message(&rich).await.unwrap();
    assert_eq!(s.messages.get_message(ch, m[0]).await.unwrap(), Some(rich));
    assert_eq!(
        s.messages.get_message(fresh_id(), m[0]).await.unwrap(),
        None,
        "keyed by channel too"
    );
    assert_eq!(
        s.messages
            .get_message(ch, Snowflake(m[0].get() + 1))
            .await
            .unwrap(),
        None
    );

    // An edit replaces the message in place.
    let edited = MessageRecord {
        content: "edited".into(),
        edited_timestamp: Some(Timestamp::from_unix_ms(1_700_000_001_000)),
        ..msg(ch, m[5], "message 5")
    };
    assert!(s.messages.update_message(&edited).await.unwrap());
    assert_eq!(
        s.messages.get_message(ch, m[5]).await.unwrap(),
        Some(edited.clone())
    );
    let all = s
        .messages
        .list_messages(ch, HistoryAnchor::Latest, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 11);
    assert_eq!(all[5], edited);

    // Deleting returns only what existed, and takes reactions and pins along.
    s.messages
        .add_reaction(ch, m[2], "👍", Snowflake(1))
        .await
        .unwrap();
    s.messages
        .add_reaction(ch, m[2], "🎉", Snowflake(2))
        .await
        .unwrap();
    assert!(s.messages.set_pinned(ch, m[3], true).await.unwrap());
    assert!(s.messages.set_pinned(ch, m[4], true).await.unwrap());
    let missing = Snowflake(m[2].get() + 1);
    let mut deleted = s
        .messages
        .delete_messages(ch, &[m[2], missing, m[3], m[2]])
        .await
        .unwrap();
    deleted.sort();
    assert_eq!(deleted, vec![m[2], m[3]]);
    assert_eq!(s.messages.get_message(ch, m[2]).await.unwrap(), None);
    assert_eq!(s.messages.get_message(ch, m[3]).await.unwrap(), None);
    assert_eq!(
        s.messages
            .reaction_counts(ch, m[2], Snowflake(1))
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        s.messages
            .reaction_users(ch, m[2], "👍", Snowflake(0), 100)
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        ids(&pin_records(s.messages.list_pins(ch).await.unwrap())),
        vec![m[4]]
    );
    assert_eq!(
        ids(&s
            .messages
            .list_messages(ch, HistoryAnchor::Latest, 100)
            .await
            .unwrap())
        .len(),
        9
    );
    assert_eq!(
        s.messages
            .delete_messages(ch, &[m[2], missing])
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        s.messages.delete_messages(ch, &[]).await.unwrap(),
        Vec::new()
    );

    // A message stored again under a deleted id starts clean.
    s.messages
        .create_message(&msg(ch, m[2], "again"))
        .await
        .unwrap();
    assert_eq!(
        s.messages
            .reaction_counts(ch, m[2], Snowflake(1))
            .await
            .unwrap(),
        Vec::new()
    );
    assert!(
        s.messages
            .add_reaction(ch, m[2], "👍", Snowflake(1))
            .await
            .unwrap()
    );
    assert_eq!(
        s.messages
            .reaction_counts(ch, m[2], Snowflake(1))
            .await
            .unwrap(),
        vec![rc("👍", 1, true)]
    );
}

pub async fn messages_delete_channel<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let ch = fresh_id();
    let keep = fresh_id();
    let m = ten_messages(s, ch).await;
    let k = ten_messages(s, keep).await;
    for (c, x) in [(ch, &m), (keep, &k)] {
        s.messages
            .add_reaction(c, x[1], "👍", Snowflake(5))
            .await
            .unwrap();
        assert!(s.messages.set_pinned(c, x[2], true).await.unwrap());
    }

    s.messages.delete_channel(ch).await.unwrap();
    assert_eq!(list(s, ch, HistoryAnchor::Latest, 100).await, Vec::new());
    assert_eq!(s.messages.get_message(ch, m[1]).await.unwrap(), None);
    assert_eq!(
        pin_records(s.messages.list_pins(ch).await.unwrap()),
        Vec::new()
    );
    assert_eq!(
        s.messages
            .reaction_counts(ch, m[1], Snowflake(5))
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        s.messages
            .reaction_users(ch, m[1], "👍", Snowflake(0), 10)
            .await
            .unwrap(),
        Vec::new()
    );

    assert_eq!(list(s, keep, HistoryAnchor::Latest, 100).await.len(), 10);
    assert_eq!(
        ids(&pin_records(s.messages.list_pins(keep).await.unwrap())),
        vec![k[2]]
    );
    assert_eq!(
        s.messages
            .reaction_counts(keep, k[1], Snowflake(5))
            .await
            .unwrap(),
        vec![rc("👍", 1, true)]
    );
    s.messages.delete_channel(fresh_id()).await.unwrap();
}

pub async fn messages_create_never_replaces<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let ch = fresh_id();
    let m = ten_messages(s, ch).await;
    s.messages
        .add_reaction(ch, m[3], "👍", Snowflake(5))
        .await
        .unwrap();
    assert!(s.messages.set_pinned(ch, m[3], true).await.unwrap());
    let stored = s.messages.get_message(ch, m[3]).await.unwrap().unwrap();
    assert!(stored.pinned);
    let pins_before = s.messages.list_pins(ch).await.unwrap();

    // Another writer that minted the same id: refused, whatever its record says.
    for intruder in [
        msg(ch, m[3], "a different message"),
        MessageRecord {
            pinned: false,
            ..stored.clone()
        },
        rich_msg(ch, m[3]),
    ] {
        assert!(
            is_conflict(s.messages.create_message(&intruder).await, "id"),
            "a create with an existing id is a conflict"
        );
    }
    assert_eq!(
        s.messages.get_message(ch, m[3]).await.unwrap(),
        Some(stored.clone()),
        "content and pinned state untouched"
    );
    assert_eq!(
        s.messages
            .reaction_counts(ch, m[3], Snowflake(5))
            .await
            .unwrap(),
        vec![rc("👍", 1, true)]
    );
    assert_eq!(s.messages.list_pins(ch).await.unwrap(), pins_before);
    assert_eq!(list(s, ch, HistoryAnchor::Latest, 100).await.len(), 10);

    // The same id in another channel is another message.
    let other = fresh_id();
    s.messages
        .create_message(&msg(other, m[3], "elsewhere"))
        .await
        .unwrap();
    assert_eq!(
        s.messages.get_message(other, m[3]).await.unwrap(),
        Some(msg(other, m[3], "elsewhere"))
    );
    assert_eq!(
        s.messages.get_message(ch, m[3]).await.unwrap(),
        Some(stored)
    );
}

pub async fn messages_concurrent_creates_of_one_id<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let ch = fresh_id();
    let contested = id_at(400 * BUCKET_MS + 7, 0);
    // Twenty writers race for one id while thirty others create ids of their own beside them.
    let mut tasks = Vec::new();
    for n in 0..50u64 {
        let messages = env.stores.messages.clone();
        let record = if n % 5 < 2 {
            msg(ch, contested, &format!("contender {n}"))
        } else {
            msg(
                ch,
                id_at(400 * BUCKET_MS + 100 + n, 0),
                &format!("bystander {n}"),
            )
        };
        tasks.push(tokio::spawn(async move {
            let result = messages.create_message(&record).await;
            (record, result)
        }));
    }
    let mut winners = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (record, result) = task.await.unwrap();
        if record.id != contested {
            result.unwrap();
            continue;
        }
        match result {
            Ok(()) => winners.push(record),
            Err(StoreError::Conflict("id")) => refused += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((winners.len(), refused), (1, 19), "exactly one create wins");
    assert_eq!(
        env.stores
            .messages
            .get_message(ch, contested)
            .await
            .unwrap(),
        Some(winners[0].clone()),
        "the stored message is the winner's"
    );
    assert_eq!(
        list(&env.stores, ch, HistoryAnchor::Latest, 100)
            .await
            .len(),
        31
    );
}

pub async fn messages_update_of_a_missing_message<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let ch = fresh_id();
    let m = ten_messages(s, ch).await;

    // Never stored (pinned too, so no pin may appear either).
    let ghost = MessageRecord {
        pinned: true,
        ..msg(ch, m[0], "never stored")
    };
    assert!(!s.messages.update_message(&ghost).await.unwrap());
    assert_eq!(s.messages.get_message(ch, m[0]).await.unwrap(), None);
    assert_eq!(
        pin_records(s.messages.list_pins(ch).await.unwrap()),
        Vec::new()
    );
    assert!(
        !s.messages
            .update_message(&msg(fresh_id(), m[4], "wrong channel"))
            .await
            .unwrap()
    );

    // An edit that arrives after the delete does not bring the message back.
    let mut edit = s.messages.get_message(ch, m[4]).await.unwrap().unwrap();
    assert_eq!(
        s.messages.delete_messages(ch, &[m[4]]).await.unwrap(),
        vec![m[4]]
    );
    edit.content = "edited too late".into();
    edit.edited_timestamp = Some(Timestamp::from_unix_ms(1_700_000_002_000));
    assert!(!s.messages.update_message(&edit).await.unwrap());
    assert_eq!(s.messages.get_message(ch, m[4]).await.unwrap(), None);
    let left = list(s, ch, HistoryAnchor::Latest, 100).await;
    assert_eq!(left.len(), 9);
    assert!(!left.contains(&m[4]));
}

pub async fn messages_newest_ids_of_channels<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let b = BUCKET_MS;
    // Ids far apart, so channels next to each other are not confused.
    let busy = Snowflake(fresh_id().get() + (1 << 21));
    let m = ten_messages(s, busy).await;
    let empty = Snowflake(busy.get() + 2);
    // Newest message in bucket 120, deleted, so the newest left is in bucket 118 (the newer
    // bucket stays listed but holds nothing).
    let spread = Snowflake(busy.get() + 4);
    let (older, newest) = (id_at(118 * b + 3, 0), id_at(120 * b, 0));
    for id in [id_at(117 * b, 0), older, newest] {
        s.messages
            .create_message(&msg(spread, id, "spread"))
            .await
            .unwrap();
    }
    s.messages.delete_messages(spread, &[newest]).await.unwrap();
    // Neighbours holding newer messages than the channels between them.
    for neighbour in [
        Snowflake(busy.get() - 1),
        Snowflake(busy.get() + 1),
        Snowflake(busy.get() + 3),
        Snowflake(busy.get() + 5),
    ] {
        s.messages
            .create_message(&msg(neighbour, id_at(130 * b, 0), "neighbour"))
            .await
            .unwrap();
    }

    assert_eq!(
        s.messages
            .last_message_ids(&[empty, busy, spread, busy])
            .await
            .unwrap(),
        vec![None, Some(m[10]), Some(older), Some(m[10])],
        "in the order asked"
    );
    assert_eq!(s.messages.last_message_ids(&[]).await.unwrap(), Vec::new());
    // A new message is the newest at once.
    let newer = id_at(50 * BUCKET_MS + 5_000, 0);
    s.messages
        .create_message(&msg(busy, newer, "newest"))
        .await
        .unwrap();
    assert_eq!(
        s.messages.last_message_ids(&[busy]).await.unwrap(),
        vec![Some(newer)]
    );
    s.messages.delete_channel(busy).await.unwrap();
    assert_eq!(
        s.messages.last_message_ids(&[busy]).await.unwrap(),
        vec![None]
    );
}

// ------------------------------------------------------------------ reactions

pub async fn reactions_counts_and_order<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let ch = fresh_id();
    let m = ten_messages(s, ch).await;
    let (u1, u2, u3) = (Snowflake(101), Snowflake(102), Snowflake(103));
    // First-added order differs from byte order: 😀 > 👍 > "custom:123" as bytes.
    let (grin, thumbs, custom) = ("😀", "👍", "custom:123");

    assert!(s.messages.add_reaction(ch, m[1], grin, u2).await.unwrap());
    assert!(s.messages.add_reaction(ch, m[1], thumbs, u1).await.unwrap());
    assert!(
        !s.messages.add_reaction(ch, m[1], thumbs, u1).await.unwrap(),
        "a duplicate is not added"
    );
    assert!(s.messages.add_reaction(ch, m[1], custom, u3).await.unwrap());
    assert!(s.messages.add_reaction(ch, m[1], thumbs, u2).await.unwrap());
    assert!(s.messages.add_reaction(ch, m[1], thumbs, u3).await.unwrap());

    let counts = s.messages.reaction_counts(ch, m[1], u1).await.unwrap();
    assert_eq!(
        counts,
        vec![
            rc(grin, 1, false),
            rc(thumbs, 3, true),
            rc(custom, 1, false)
        ]
    );
    let counts = s.messages.reaction_counts(ch, m[1], u3).await.unwrap();
    assert_eq!(
        counts,
        vec![rc(grin, 1, false), rc(thumbs, 3, true), rc(custom, 1, true)]
    );
    let counts = s
        .messages
        .reaction_counts(ch, m[1], Snowflake(999))
        .await
        .unwrap();
    assert_eq!(
        counts,
        vec![
            rc(grin, 1, false),
            rc(thumbs, 3, false),
            rc(custom, 1, false)
        ]
    );

    // An emoji keeps its place while anyone still reacts with it.
    assert!(
        s.messages
            .remove_reaction(ch, m[1], grin, u2)
            .await
            .unwrap()
    );
    assert_eq!(
        s.messages.reaction_counts(ch, m[1], u2).await.unwrap(),
        vec![rc(thumbs, 3, true), rc(custom, 1, false)],
        "an emoji with no reactions left is gone"
    );
    assert!(
        s.messages
            .remove_reaction(ch, m[1], thumbs, u1)
            .await
            .unwrap()
    );
    assert!(s.messages.add_reaction(ch, m[1], thumbs, u1).await.unwrap());
    assert_eq!(
        s.messages.reaction_counts(ch, m[1], u1).await.unwrap(),
        vec![rc(thumbs, 3, true), rc(custom, 1, false)]
    );

    // Reactions belong to one message of one channel.
    assert_eq!(
        s.messages.reaction_counts(ch, m[2], u1).await.unwrap(),
        Vec::new()
    );
    assert_eq!(
        s.messages
            .reaction_counts(fresh_id(), m[1], u1)
            .await
            .unwrap(),
        Vec::new()
    );
    assert!(
        s.messages.add_reaction(ch, m[2], thumbs, u1).await.unwrap(),
        "same user, other message"
    );
    assert_eq!(
        s.messages.reaction_counts(ch, m[2], u1).await.unwrap(),
        vec![rc(thumbs, 1, true)]
    );
}

/// Counts for a whole page equal the per-message counts, in the order asked.
pub async fn reactions_counts_for_a_page<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let ch = fresh_id();
    let m = ten_messages(s, ch).await;
    let (u1, u2) = (Snowflake(201), Snowflake(202));
    s.messages.add_reaction(ch, m[2], "👍", u1).await.unwrap();
    s.messages.add_reaction(ch, m[2], "😀", u2).await.unwrap();
    s.messages.add_reaction(ch, m[7], "😀", u1).await.unwrap();
    // Another channel's reactions never leak into this one.
    s.messages
        .add_reaction(fresh_id(), m[3], "👍", u1)
        .await
        .unwrap();
    let unknown = fresh_id();
    let page = [m[7], m[3], m[2], unknown];
    let many = s
        .messages
        .reaction_counts_many(ch, &page, u1)
        .await
        .unwrap();
    let mut one_by_one = Vec::new();
    for id in page {
        one_by_one.push(s.messages.reaction_counts(ch, id, u1).await.unwrap());
    }
    assert_eq!(many, one_by_one);
    assert_eq!(many[0], vec![rc("😀", 1, true)]);
    assert_eq!(many[1], Vec::new());
    assert_eq!(many[2], vec![rc("👍", 1, true), rc("😀", 1, false)]);
    assert_eq!(many[3], Vec::new());
    assert_eq!(
        s.messages.reaction_counts_many(ch, &[], u1).await.unwrap(),
        Vec::<Vec<ReactionCount>>::new()
    );
}

pub async fn reactions_users_paging<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(open: &F) {
    let env = env(open).await;
    let s = &env.stores;
    let ch = fresh_id();
    let m = ten_messages(s, ch).await;
    let users: Vec<Snowflake> = [50, 10, 40, 20, 30].into_iter().map(Snowflake).collect();
    for &u in &users {
        assert!(s.messages.add_reaction(ch, m[1], "a", u).await.unwrap());
    }
    // "ab" starts with "a": its users must not show up under "a".
    assert!(
        s.messages
            .add_reaction(ch, m[1], "ab", Snowflake(15))
            .await
            .unwrap()
    );
    assert!(
        s.messages
            .add_reaction(ch, m[1], "a", Snowflake(u64::MAX))
            .await
            .unwrap()
    );

    let get = |after: u64, limit: usize| {
        s.messages
            .reaction_users(ch, m[1], "a", Snowflake(after), limit)
    };
    let ids = |v: &[u64]| v.iter().copied().map(Snowflake).collect::<Vec<_>>();
    assert_eq!(
        get(0, 100).await.unwrap(),
        ids(&[10, 20, 30, 40, 50, u64::MAX])
    );
    assert_eq!(get(0, 2).await.unwrap(), ids(&[10, 20]));
    assert_eq!(get(20, 2).await.unwrap(), ids(&[30, 40]));
    assert_eq!(get(25, 2).await.unwrap(), ids(&[30, 40]));
    assert_eq!(get(40, 100).await.unwrap(), ids(&[50, u64::MAX]));
    assert_eq!(get(u64::MAX, 100).await.unwrap(), ids(&[]));
    assert_eq!(get(0, 0).await.unwrap(), ids(&[]));
    let ab = s
        .messages
        .reaction_users(ch, m[1], "ab", Snowflake(0), 100)
        .await
        .unwrap();
    assert_eq!(ab, ids(&[15]));
    let none = s
        .messages
        .reaction_users(ch, m[1], "b", Snowflake(0), 100)
        .await
        .unwrap();
    assert_eq!(none, ids(&[]));
    assert_eq!(
        s.messages
            .reaction_counts(ch, m[1], Snowflake(15))
            .await
            .unwrap(),
        vec![rc("a", 6, false), rc("ab", 1, true)]
    );
}

pub async fn reactions_remove<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(open: &F) {
    let env = env(open).await;
    let s = &env.stores;
    let ch = fresh_id();
    let m = ten_messages(s, ch).await;
    let (u1, u2) = (Snowflake(1), Snowflake(2));
    for (emoji, user) in [("x", u1), ("x", u2), ("y", u1), ("z", u2)] {
        assert!(
            s.messages
                .add_reaction(ch, m[1], emoji, user)
                .await
                .unwrap()
        );
    }
    assert!(s.messages.add_reaction(ch, m[2], "x", u1).await.unwrap());

    assert!(s.messages.remove_reaction(ch, m[1], "x", u1).await.unwrap());
    assert!(
        !s.messages.remove_reaction(ch, m[1], "x", u1).await.unwrap(),
        "already removed"
    );
    assert!(
        !s.messages.remove_reaction(ch, m[1], "w", u1).await.unwrap(),
        "never added"
    );
    assert_eq!(
        s.messages.reaction_counts(ch, m[1], u1).await.unwrap(),
        vec![rc("x", 1, false), rc("y", 1, true), rc("z", 1, false)]
    );
    assert_eq!(
        s.messages
            .reaction_users(ch, m[1], "x", Snowflake(0), 10)
            .await
            .unwrap(),
        vec![u2]
    );

    s.messages
        .remove_reactions(ch, m[1], Some("x"))
        .await
        .unwrap();
    assert_eq!(
        s.messages.reaction_counts(ch, m[1], u1).await.unwrap(),
        vec![rc("y", 1, true), rc("z", 1, false)]
    );
    assert_eq!(
        s.messages
            .reaction_users(ch, m[1], "x", Snowflake(0), 10)
            .await
            .unwrap(),
        Vec::new()
    );
    // The same emoji on another message is untouched.
    assert_eq!(
        s.messages.reaction_counts(ch, m[2], u1).await.unwrap(),
        vec![rc("x", 1, true)]
    );

    s.messages.remove_reactions(ch, m[1], None).await.unwrap();
    assert_eq!(
        s.messages.reaction_counts(ch, m[1], u1).await.unwrap(),
        Vec::new()
    );
    assert_eq!(
        s.messages
            .reaction_users(ch, m[1], "y", Snowflake(0), 10)
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        s.messages.reaction_counts(ch, m[2], u1).await.unwrap(),
        vec![rc("x", 1, true)]
    );
    // Removing from a message with no reactions is fine, and adding works again after.
    s.messages.remove_reactions(ch, m[1], None).await.unwrap();
    s.messages
        .remove_reactions(ch, m[1], Some("q"))
        .await
        .unwrap();
    assert!(s.messages.add_reaction(ch, m[1], "y", u1).await.unwrap());
    assert_eq!(
        s.messages.reaction_counts(ch, m[1], u2).await.unwrap(),
        vec![rc("y", 1, false)]
    );
}

// ------------------------------------------------------------------ pins

pub async fn pins_order_and_flag<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(open: &F) {
    let env = env(open).await;
    let s = &env.stores;
    let ch = fresh_id();
    let m = ten_messages(s, ch).await;
    assert_eq!(
        pin_records(s.messages.list_pins(ch).await.unwrap()),
        Vec::new()
    );

    // Pinned in quick succession (possibly within one millisecond), not in id order.
    let before = Timestamp::now();
    for i in [2, 7, 1] {
        assert!(s.messages.set_pinned(ch, m[i], true).await.unwrap());
    }
    let times: Vec<Timestamp> = s
        .messages
        .list_pins(ch)
        .await
        .unwrap()
        .iter()
        .map(|p| p.pinned_at)
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] > w[1]),
        "pin times strictly decrease: {times:?}"
    );
    // Ties are nudged by a millisecond at most per pin.
    assert!(
        times[2] >= before && times[0].unix_ms() <= Timestamp::now().unix_ms() + 3,
        "{times:?}"
    );
    let pins = pin_records(s.messages.list_pins(ch).await.unwrap());
    assert_eq!(
        ids(&pins),
        vec![m[1], m[7], m[2]],
        "most recently pinned first"
    );
    assert!(pins.iter().all(|p| p.pinned));
    assert_eq!(
        pins[1],
        MessageRecord {
            pinned: true,
            ..msg(ch, m[7], "message 7")
        }
    );
    assert!(
        s.messages
            .get_message(ch, m[2])
            .await
            .unwrap()
            .unwrap()
            .pinned
    );
    assert!(
        !s.messages
            .get_message(ch, m[3])
            .await
            .unwrap()
            .unwrap()
            .pinned
    );

    assert!(s.messages.set_pinned(ch, m[7], false).await.unwrap());
    assert_eq!(
        ids(&pin_records(s.messages.list_pins(ch).await.unwrap())),
        vec![m[1], m[2]]
    );
    assert!(
        !s.messages
            .get_message(ch, m[7])
            .await
            .unwrap()
            .unwrap()
            .pinned
    );
    assert!(
        s.messages.set_pinned(ch, m[7], false).await.unwrap(),
        "unpinning twice is fine"
    );

    assert!(
        !s.messages
            .set_pinned(ch, Snowflake(m[7].get() + 1), true)
            .await
            .unwrap()
    );
    assert!(!s.messages.set_pinned(fresh_id(), m[7], true).await.unwrap());
    assert_eq!(
        ids(&pin_records(s.messages.list_pins(ch).await.unwrap())),
        vec![m[1], m[2]]
    );

    // Re-pinning puts it first again; editing a pinned message keeps it pinned.
    assert!(s.messages.set_pinned(ch, m[7], true).await.unwrap());
    assert_eq!(
        ids(&pin_records(s.messages.list_pins(ch).await.unwrap())),
        vec![m[7], m[1], m[2]]
    );
    let mut edited = s.messages.get_message(ch, m[1]).await.unwrap().unwrap();
    edited.content = "edited while pinned".into();
    assert!(s.messages.update_message(&edited).await.unwrap());
    let pins = pin_records(s.messages.list_pins(ch).await.unwrap());
    assert_eq!(ids(&pins), vec![m[7], m[1], m[2]]);
    assert_eq!(pins[1], edited);
}

// ------------------------------------------------------------------ signing keys

fn signing_key(kid: &str, created_ms: u64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        private_pem: format!(
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI{kid}\n-----END PRIVATE KEY-----\n"
        ),
        created_at: Timestamp::from_unix_ms(created_ms),
        retired: false,
    }
}

/// The stored keys whose kid starts with `prefix`, in the store's order (other cases and runs
/// share a server-based store).
async fn keys_with_prefix(s: &Stores, prefix: &str) -> Vec<SigningKeyRecord> {
    s.keys
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.kid.starts_with(prefix))
        .collect()
}

pub async fn signing_keys_insert_and_order<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let prefix = format!("kid{}-", fresh_id());
    let kid = |n: u32| format!("{prefix}{n}");
    let t = 1_700_000_000_000;
    assert_eq!(keys_with_prefix(s, &prefix).await, Vec::new());

    // Inserted out of creation order; "2" and "3" were created in the same millisecond.
    let keys = [
        signing_key(&kid(3), t + 5),
        signing_key(&kid(1), t),
        signing_key(&kid(2), t + 5),
        signing_key(&kid(0), t + 9),
    ];
    for key in &keys {
        assert!(s.keys.insert_signing_key(key).await.unwrap());
    }
    let expected = vec![
        keys[1].clone(),
        keys[2].clone(),
        keys[0].clone(),
        keys[3].clone(),
    ];
    assert_eq!(
        keys_with_prefix(s, &prefix).await,
        expected,
        "oldest first, ties by kid"
    );

    // A duplicate kid is refused and changes nothing, even with other contents.
    let duplicate = SigningKeyRecord {
        private_pem: "other".into(),
        created_at: Timestamp::from_unix_ms(t - 1),
        retired: true,
        ..keys[1].clone()
    };
    assert!(!s.keys.insert_signing_key(&duplicate).await.unwrap());
    assert_eq!(keys_with_prefix(s, &prefix).await, expected);

    // A key may be stored already retired, and keeps its PEM byte for byte.
    let retired = SigningKeyRecord {
        retired: true,
        ..signing_key(&kid(4), t + 20)
    };
    assert!(s.keys.insert_signing_key(&retired).await.unwrap());
    let all = keys_with_prefix(s, &prefix).await;
    assert_eq!(all.last(), Some(&retired));
    assert_eq!(all.len(), 5);
}

pub async fn signing_keys_retire_and_remove<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let prefix = format!("kid{}-", fresh_id());
    let (old, new) = (
        signing_key(&format!("{prefix}old"), 1_700_000_000_000),
        signing_key(&format!("{prefix}new"), 1_700_000_100_000),
    );
    for key in [&old, &new] {
        assert!(s.keys.insert_signing_key(key).await.unwrap());
    }

    assert!(s.keys.retire_signing_key(&old.kid).await.unwrap());
    let retired_old = SigningKeyRecord {
        retired: true,
        ..old.clone()
    };
    assert_eq!(
        keys_with_prefix(s, &prefix).await,
        vec![retired_old.clone(), new.clone()],
        "a retired key stays listed, in its place"
    );
    assert!(
        s.keys.retire_signing_key(&old.kid).await.unwrap(),
        "retiring twice is fine"
    );
    assert!(
        !s.keys
            .retire_signing_key(&format!("{prefix}unknown"))
            .await
            .unwrap()
    );
    // Kids are exact: a prefix of a stored kid is another kid.
    assert!(!s.keys.retire_signing_key(&prefix).await.unwrap());

    assert!(s.keys.remove_signing_key(&old.kid).await.unwrap());
    assert_eq!(keys_with_prefix(s, &prefix).await, vec![new.clone()]);
    assert!(!s.keys.remove_signing_key(&old.kid).await.unwrap());
    assert!(!s.keys.retire_signing_key(&old.kid).await.unwrap());
    assert!(
        !s.keys
            .remove_signing_key(&format!("{prefix}unknown"))
            .await
            .unwrap()
    );

    // A removed kid can be stored again.
    assert!(s.keys.insert_signing_key(&old).await.unwrap());
    assert_eq!(keys_with_prefix(s, &prefix).await, vec![old, new]);
}

// ------------------------------------------------------------------ restart

pub async fn restart_keeps_everything<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let Env { dir, stores } = env(open).await;
    let path = dir.path().to_path_buf();

    let alice = fresh_user("Alice");
    let creds = Credentials {
        totp_secret: Some("JBSWY3DPEHPK3PXP".into()),
        ..credentials(alice.id)
    };
    let family = fresh_id();
    let (r1, r2) = (format!("rt{family}-1"), format!("rt{family}-2"));
    let (app, bot) = app_with_bot(alice.id);
    let bot_token = format!("bt{}", bot.id);
    let g = GuildFixture::new(alice.id);
    let ch = g.channels[0].id;
    let m: Vec<Snowflake> = (0..5).map(|i| id_at(200 * BUCKET_MS - 2 + i, 0)).collect();
    let key_prefix = format!("kid{}-", fresh_id());
    let kept_key = SigningKeyRecord {
        retired: true,
        ..signing_key(&format!("{key_prefix}kept"), 1_700_000_000_000)
    };
    {
        let s = &stores;
        s.users.create_user(&alice, &creds).await.unwrap();
        s.users
            .insert_refresh_token(&token(&r1, family, alice.id, later()))
            .await
            .unwrap();
        let r = s
            .users
            .rotate_refresh_token(
                &r1,
                &token(&r2, family, alice.id, later()),
                Timestamp::now(),
            )
            .await;
        assert_eq!(
            r.unwrap(),
            RotateOutcome::Rotated {
                user_id: alice.id,
                family_id: family
            }
        );
        s.applications.create_application(&app, &bot).await.unwrap();
        s.applications
            .set_bot_token(bot.id, &bot_token)
            .await
            .unwrap();
        s.guilds.write_guild(g.id(), g.writes()).await.unwrap();
        for &id in &m {
            s.messages
                .create_message(&msg(ch, id, "persisted"))
                .await
                .unwrap();
        }
        s.messages
            .add_reaction(ch, m[1], "👍", alice.id)
            .await
            .unwrap();
        s.messages
            .add_reaction(ch, m[1], "🎉", bot.id)
            .await
            .unwrap();
        assert!(s.messages.set_pinned(ch, m[3], true).await.unwrap());
        assert!(s.messages.set_pinned(ch, m[0], true).await.unwrap());
        s.messages.delete_messages(ch, &[m[4]]).await.unwrap();
        let gone = signing_key(&format!("{key_prefix}gone"), 1_700_000_000_001);
        for key in [&kept_key, &gone] {
            assert!(
                s.keys
                    .insert_signing_key(&SigningKeyRecord {
                        retired: false,
                        ..key.clone()
                    })
                    .await
                    .unwrap()
            );
        }
        assert!(s.keys.retire_signing_key(&kept_key.kid).await.unwrap());
        assert!(s.keys.remove_signing_key(&gone.kid).await.unwrap());
    }
    drop(stores);

    let s = open(path).await;
    assert_eq!(
        s.users.get_user(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        s.users.get_credentials(alice.id).await.unwrap(),
        Some(creds)
    );
    assert_eq!(
        s.users
            .find_user_by_login(&alice.username.to_uppercase())
            .await
            .unwrap(),
        Some(alice.id)
    );
    assert_eq!(
        s.users.refresh_token_family(&r2).await.unwrap(),
        Some(family)
    );
    let r = s
        .users
        .rotate_refresh_token(
            &r1,
            &token("x", family, alice.id, later()),
            Timestamp::now(),
        )
        .await;
    assert_eq!(
        r.unwrap(),
        RotateOutcome::Reused { family_id: family },
        "spent state survived"
    );
    assert_eq!(
        s.applications.get_application(app.id).await.unwrap(),
        Some(app.clone())
    );
    assert_eq!(
        s.applications.application_by_bot(bot.id).await.unwrap(),
        Some(app)
    );
    assert_eq!(
        s.applications.bot_by_token_hash(&bot_token).await.unwrap(),
        Some(bot.id)
    );

    let snap = load(&s, g.id()).await.unwrap();
    assert_eq!(
        snap.guild,
        Some(Guild {
            roles: Vec::new(),
            ..g.guild.clone()
        })
    );
    assert_eq!(
        (
            snap.roles,
            snap.channels,
            snap.members,
            snap.bans,
            snap.invites,
            snap.emojis
        ),
        (
            g.roles.clone(),
            g.channels.clone(),
            g.members.clone(),
            g.bans.clone(),
            g.invites.clone(),
            g.emojis.clone()
        )
    );
    assert_eq!(s.guilds.user_guilds(alice.id).await.unwrap(), vec![g.id()]);
    assert_eq!(s.guilds.channel_guild(ch).await.unwrap(), Some(g.id()));
    assert_eq!(
        s.guilds.get_invite(&g.invites[1].code).await.unwrap(),
        Some(g.invites[1].clone())
    );

    assert_eq!(
        list(&s, ch, HistoryAnchor::Latest, 10).await,
        vec![m[3], m[2], m[1], m[0]]
    );
    assert_eq!(
        s.messages
            .reaction_counts(ch, m[1], alice.id)
            .await
            .unwrap(),
        vec![rc("👍", 1, true), rc("🎉", 1, false)]
    );
    assert_eq!(
        ids(&pin_records(s.messages.list_pins(ch).await.unwrap())),
        vec![m[0], m[3]]
    );
    assert!(
        s.messages
            .get_message(ch, m[3])
            .await
            .unwrap()
            .unwrap()
            .pinned
    );
    assert_eq!(s.messages.get_message(ch, m[4]).await.unwrap(), None);
    assert_eq!(keys_with_prefix(&s, &key_prefix).await, vec![kept_key]);

    // And the reopened store takes writes.
    s.messages
        .create_message(&msg(ch, m[4], "after restart"))
        .await
        .unwrap();
    assert_eq!(list(&s, ch, HistoryAnchor::Latest, 1).await, vec![m[4]]);
    drop(s);
    drop(dir);
}

// ------------------------------------------------------------------ concurrency

pub async fn concurrent_create_user_same_username<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let name = format!("Racer{}", fresh_id());
    let mut tasks = Vec::new();
    for i in 0..50 {
        let users = env.stores.users.clone();
        let id = fresh_id();
        // Every other contender differs only in case.
        let username = if i % 2 == 0 {
            name.clone()
        } else {
            name.to_uppercase()
        };
        let u = user(id, &username, Some(&format!("racer{id}@example.com")));
        tasks.push(tokio::spawn(async move {
            (id, users.create_user(&u, &credentials(id)).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (id, result) = task.await.unwrap();
        match result {
            Ok(()) => winners.push(id),
            Err(StoreError::Conflict("username")) => {
                assert_eq!(env.stores.users.get_user(id).await.unwrap(), None);
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins");
    assert_eq!(
        env.stores.users.find_user_by_login(&name).await.unwrap(),
        Some(winners[0])
    );
}

pub async fn concurrent_create_message<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let ch = fresh_id();
    let base = 300 * BUCKET_MS - 100;
    // Spans two buckets.
    let all: Vec<Snowflake> = (0..200).map(|i| id_at(base + i, i % 3)).collect();
    let mut tasks = Vec::new();
    for &id in &all {
        let messages = env.stores.messages.clone();
        tasks.push(tokio::spawn(async move {
            messages.create_message(&msg(ch, id, "concurrent")).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let newest_first: Vec<Snowflake> = all.iter().rev().copied().collect();
    let page1 = list(&env.stores, ch, HistoryAnchor::Latest, 100).await;
    assert_eq!(page1, newest_first[..100]);
    let page2 = list(&env.stores, ch, HistoryAnchor::Before(page1[99]), 100).await;
    assert_eq!(page2, newest_first[100..]);
    assert_eq!(
        list(&env.stores, ch, HistoryAnchor::Before(all[0]), 100).await,
        Vec::new()
    );
}

pub async fn concurrent_rotate_refresh_token<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let user_id = fresh_id();
    let family = fresh_id();
    let old = format!("rt{family}-old");
    env.stores
        .users
        .insert_refresh_token(&token(&old, family, user_id, later()))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let users = env.stores.users.clone();
        let old = old.clone();
        let new = token(&format!("rt{family}-{i}"), family, user_id, later());
        tasks.push(tokio::spawn(async move {
            (
                new.token_hash.clone(),
                users
                    .rotate_refresh_token(&old, &new, Timestamp::now())
                    .await,
            )
        }));
    }
    let (mut rotated, mut reused, mut invalid) = (Vec::new(), 0, 0);
    for task in tasks {
        let (hash, outcome) = task.await.unwrap();
        match outcome.unwrap() {
            RotateOutcome::Rotated {
                user_id: u,
                family_id: f,
            } => {
                assert_eq!(f, family);
                assert_eq!(u, user_id);
                rotated.push(hash);
            }
            RotateOutcome::Reused { family_id } => {
                assert_eq!(family_id, family);
                reused += 1;
            }
            RotateOutcome::Invalid => invalid += 1,
        }
    }
    // One rotation spends the token, the first replay revokes the family, and every later replay
    // finds the family revoked.
    assert_eq!((rotated.len(), reused, invalid), (1, 1, 18));
    // The replays revoked the family, winner included.
    assert_eq!(
        env.stores
            .users
            .refresh_token_family(&rotated[0])
            .await
            .unwrap(),
        None
    );
}

pub async fn concurrent_invite_code<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(open: &F) {
    let env = env(open).await;
    let code = fresh_code();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let guilds = env.stores.guilds.clone();
        let g = GuildFixture::new(fresh_id());
        let mut writes = g.writes();
        writes.push(GuildWrite::PutInvite(invite(
            &code,
            g.id(),
            g.channels[0].id,
            g.guild.owner_id,
        )));
        tasks.push(tokio::spawn(async move {
            (g.id(), guilds.write_guild(g.id(), writes).await)
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (id, Ok(())) => winners.push(id),
            (id, Err(StoreError::Conflict("code"))) => losers.push(id),
            (_, Err(e)) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one guild gets the code");
    assert_eq!(
        env.stores
            .guilds
            .get_invite(&code)
            .await
            .unwrap()
            .unwrap()
            .guild_id,
        winners[0]
    );
    for id in losers {
        assert_eq!(env.stores.guilds.load_guild(id).await.unwrap(), None);
    }
}

/// Of several DMs for one pair written at once, each under its own id, exactly one is stored.
pub async fn concurrent_dms_for_one_pair<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let (a, b) = (fresh_id(), fresh_id());
    let mut tasks = Vec::new();
    for i in 0..10 {
        let guilds = env.stores.guilds.clone();
        // Half of them name the pair the other way round.
        let channel = if i % 2 == 0 {
            dm(fresh_id(), a, b)
        } else {
            dm(fresh_id(), b, a)
        };
        let writes = vec![
            GuildWrite::PutPrivateChannel(channel.clone()),
            open_for(channel.id, a),
        ];
        tasks.push(tokio::spawn(async move {
            (channel.id, guilds.write_guild(channel.id, writes).await)
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (id, Ok(())) => winners.push(id),
            (id, Err(StoreError::Conflict("recipients"))) => losers.push(id),
            (_, Err(e)) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one DM is stored");
    assert_eq!(
        env.stores.guilds.dm_channel(b, a).await.unwrap(),
        Some(winners[0])
    );
    assert_eq!(
        env.stores.guilds.user_private_channels(a).await.unwrap(),
        winners
    );
    for id in losers {
        assert_eq!(env.stores.guilds.load_guild(id).await.unwrap(), None);
        assert_eq!(env.stores.guilds.channel_guild(id).await.unwrap(), None);
    }
}

pub async fn concurrent_reactions<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(open: &F) {
    let env = env(open).await;
    let ch = fresh_id();
    let m = ten_messages(&env.stores, ch).await;
    let mut tasks = Vec::new();
    // 50 users, each reacting twice at the same time.
    for n in 0..100u64 {
        let messages = env.stores.messages.clone();
        let (id, user) = (m[1], Snowflake(1000 + n % 50));
        tasks.push(tokio::spawn(async move {
            messages.add_reaction(ch, id, "🔥", user).await
        }));
    }
    let mut added = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() {
            added += 1;
        }
    }
    assert_eq!(added, 50);
    assert_eq!(
        env.stores
            .messages
            .reaction_counts(ch, m[1], Snowflake(1000))
            .await
            .unwrap(),
        vec![rc("🔥", 50, true)]
    );
    let users = env
        .stores
        .messages
        .reaction_users(ch, m[1], "🔥", Snowflake(0), 100)
        .await
        .unwrap();
    let expected: Vec<Snowflake> = (1000..1050).map(Snowflake).collect();
    assert_eq!(users, expected);
    let unique: HashSet<Snowflake> = users.into_iter().collect();
    assert_eq!(unique.len(), 50);
}

pub async fn concurrent_insert_signing_key<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let prefix = format!("kid{}-", fresh_id());
    let kid = format!("{prefix}race");
    let mut tasks = Vec::new();
    for n in 0..20u64 {
        let keys = env.stores.keys.clone();
        // Every contender brings its own key material under the same kid.
        let key = signing_key(&kid, 1_700_000_000_000 + n);
        tasks.push(tokio::spawn(async move {
            (key.clone(), keys.insert_signing_key(&key).await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (key, inserted) = task.await.unwrap();
        if inserted {
            winners.push(key);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one insert wins");
    assert_eq!(keys_with_prefix(&env.stores, &prefix).await, winners);
}

// ------------------------------------------------------------------ id leases

/// Long enough that no lease of these cases runs out unless the case waits for it.
const LEASE: Duration = Duration::from_secs(60);
/// A lease a case lets run out. Two seconds, because ScyllaDB counts TTLs in whole seconds
/// from a whole second, so a one-second lease may have less than a second left at once.
const SHORT_LEASE: Duration = Duration::from_secs(2);

/// A node id no other case uses, in its generation `generation`.
fn node(tag: &str, generation: u64) -> NodeIdentity {
    NodeIdentity::new(format!("{tag}-{}", fresh_id()), GenerationId(generation))
}

#[track_caller]
fn claimed(claim: IdClaim) -> IdLease {
    match claim {
        IdClaim::Claimed(lease) => lease,
        other => panic!("expected a claimed pair, got {other:?}"),
    }
}

#[track_caller]
fn held(claim: IdClaim) -> IdLease {
    match claim {
        IdClaim::Held(lease) => lease,
        other => panic!("expected the pair to be held, got {other:?}"),
    }
}

/// The pair after `pair`, wrapping around.
fn next_pair(pair: IdPair) -> IdPair {
    IdPair::from_index((pair.index() + 1) % IdPair::COUNT).unwrap()
}

pub async fn leases_concurrent_claims_get_distinct_pairs<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let before = Timestamp::now();
    let mut tasks = Vec::new();
    for n in 0..16 {
        let nodes = env.stores.nodes.clone();
        let me = node("racer", n);
        tasks.push(tokio::spawn(async move {
            let claim = nodes.claim_id_pair(&me, None, LEASE).await.unwrap();
            (me, claim)
        }));
    }
    let mut pairs = HashSet::new();
    for task in tasks {
        let (me, claim) = task.await.unwrap();
        let lease = claimed(claim);
        assert_eq!(lease.holder, me);
        assert!(lease.pair.is_valid());
        assert!(lease.expires_at > before, "{lease:?}");
        assert!(pairs.insert(lease.pair), "{} handed out twice", lease.pair);
    }
    assert_eq!(pairs.len(), 16);
}

pub async fn leases_a_held_pair_is_refused_naming_its_holder<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, b) = (node("a", 1), node("b", 1));
    let lease = claimed(s.nodes.claim_id_pair(&a, None, LEASE).await.unwrap());
    let refused = held(
        s.nodes
            .claim_id_pair(&b, Some(lease.pair), LEASE)
            .await
            .unwrap(),
    );
    assert_eq!(refused, lease, "the answer names the holder and its lease");
    // Its holder claiming it again keeps it, and extends it.
    let again = claimed(
        s.nodes
            .claim_id_pair(&a, Some(lease.pair), LEASE)
            .await
            .unwrap(),
    );
    assert_eq!((again.pair, &again.holder), (lease.pair, &a));
    assert!(again.expires_at >= lease.expires_at);
    // A free pair asked for by name is granted as asked.
    let wanted = next_pair(lease.pair);
    let other = claimed(
        s.nodes
            .claim_id_pair(&b, Some(wanted), LEASE)
            .await
            .unwrap(),
    );
    assert_eq!((other.pair, &other.holder), (wanted, &b));
}

pub async fn leases_an_expired_lease_is_claimed_by_another_node<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, b, c) = (node("a", 1), node("b", 1), node("c", 1));
    let lease = claimed(s.nodes.claim_id_pair(&a, None, SHORT_LEASE).await.unwrap());
    let c_lease = claimed(s.nodes.claim_id_pair(&c, None, SHORT_LEASE).await.unwrap());
    let p = lease.pair;
    assert_eq!(
        held(s.nodes.claim_id_pair(&b, Some(p), LEASE).await.unwrap()).holder,
        a
    );
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(500)).await;

    let taken = claimed(s.nodes.claim_id_pair(&b, Some(p), LEASE).await.unwrap());
    assert_eq!(taken.holder, b);
    assert_eq!(s.nodes.renew_id_pair(&a, p, LEASE).await.unwrap(), None);
    assert!(!s.nodes.release_id_pair(&a, p).await.unwrap());
    assert_eq!(
        s.nodes
            .renew_id_pair(&b, p, LEASE)
            .await
            .unwrap()
            .map(|l| l.holder),
        Some(b.clone()),
        "the old holder's attempts changed nothing"
    );
    // Expired and taken by nobody: still no longer the holder's to renew.
    assert_eq!(
        s.nodes
            .renew_id_pair(&c, c_lease.pair, LEASE)
            .await
            .unwrap(),
        None
    );
}

pub async fn leases_renew_extends_and_only_the_holder_renews<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, b) = (node("a", 1), node("b", 1));
    let lease = claimed(
        s.nodes
            .claim_id_pair(&a, None, Duration::from_secs(5))
            .await
            .unwrap(),
    );
    let p = lease.pair;
    let renewed = s.nodes.renew_id_pair(&a, p, LEASE).await.unwrap().unwrap();
    assert_eq!((renewed.pair, &renewed.holder), (p, &a));
    assert!(
        renewed.expires_at > lease.expires_at,
        "{renewed:?} after {lease:?}"
    );
    assert_eq!(s.nodes.renew_id_pair(&b, p, LEASE).await.unwrap(), None);
    assert_eq!(
        held(s.nodes.claim_id_pair(&b, Some(p), LEASE).await.unwrap()),
        renewed,
        "a stranger's renewal changed nothing"
    );
    assert_eq!(
        s.nodes
            .renew_id_pair(&a, next_pair(p), LEASE)
            .await
            .unwrap(),
        None,
        "a pair never claimed"
    );
}

pub async fn leases_release_frees_the_pair<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, b) = (node("a", 1), node("b", 1));
    let p = claimed(s.nodes.claim_id_pair(&a, None, LEASE).await.unwrap()).pair;
    assert!(!s.nodes.release_id_pair(&b, p).await.unwrap());
    assert_eq!(
        held(s.nodes.claim_id_pair(&b, Some(p), LEASE).await.unwrap()).holder,
        a
    );
    assert!(s.nodes.release_id_pair(&a, p).await.unwrap());
    assert!(!s.nodes.release_id_pair(&a, p).await.unwrap(), "only once");
    assert_eq!(s.nodes.renew_id_pair(&a, p, LEASE).await.unwrap(), None);
    let taken = claimed(s.nodes.claim_id_pair(&b, Some(p), LEASE).await.unwrap());
    assert_eq!((taken.pair, &taken.holder), (p, &b));
}

pub async fn leases_another_generation_is_another_holder<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let old = node("restarted", 1_700_000_000_000);
    let new = NodeIdentity::new(old.node_id.clone(), GenerationId(old.generation.0 + 1));
    let lease = claimed(s.nodes.claim_id_pair(&old, None, LEASE).await.unwrap());
    let p = lease.pair;
    assert_eq!(
        held(s.nodes.claim_id_pair(&new, Some(p), LEASE).await.unwrap()),
        lease,
        "the same node id in a later generation does not inherit the pair"
    );
    assert_eq!(s.nodes.renew_id_pair(&new, p, LEASE).await.unwrap(), None);
    assert!(!s.nodes.release_id_pair(&new, p).await.unwrap());
    assert!(
        s.nodes
            .renew_id_pair(&old, p, LEASE)
            .await
            .unwrap()
            .is_some()
    );
    let own = claimed(s.nodes.claim_id_pair(&new, None, LEASE).await.unwrap());
    assert_ne!(own.pair, p);
    assert_eq!(own.holder, new);
}

pub async fn leases_every_pair_held_is_exhausted<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    // Every pair, each by a node of its own, 32 claims at a time.
    let all: Vec<IdPair> = (0..IdPair::COUNT)
        .map(|i| IdPair::from_index(i).unwrap())
        .collect();
    let mut holders = Vec::new();
    for chunk in all.chunks(32) {
        let mut tasks = Vec::new();
        for &pair in chunk {
            let nodes = s.nodes.clone();
            let me = node("all", 1);
            tasks.push(tokio::spawn(async move {
                let claim = nodes.claim_id_pair(&me, Some(pair), LEASE).await.unwrap();
                (me, claim)
            }));
        }
        for task in tasks {
            let (me, claim) = task.await.unwrap();
            assert_eq!(claimed(claim).holder, me);
            holders.push(me);
        }
    }
    let late = node("late", 1);
    assert_eq!(
        s.nodes.claim_id_pair(&late, None, LEASE).await.unwrap(),
        IdClaim::Exhausted
    );
    assert_eq!(
        held(
            s.nodes
                .claim_id_pair(&late, Some(all[7]), LEASE)
                .await
                .unwrap()
        )
        .holder,
        holders[7]
    );
    // One pair comes free, and the next open claim gets exactly it.
    assert!(
        s.nodes
            .release_id_pair(&holders[500], all[500])
            .await
            .unwrap()
    );
    let got = claimed(s.nodes.claim_id_pair(&late, None, LEASE).await.unwrap());
    assert_eq!((got.pair, &got.holder), (all[500], &late));
    assert_eq!(
        s.nodes
            .claim_id_pair(&node("later", 1), None, LEASE)
            .await
            .unwrap(),
        IdClaim::Exhausted
    );
}

// ------------------------------------------------------------------ guild owners

#[track_caller]
fn owns(claim: GuildClaim) -> GuildOwner {
    match claim {
        GuildClaim::Claimed(owner) => owner,
        other => panic!("expected the guild to be claimed, got {other:?}"),
    }
}

#[track_caller]
fn owned_by_another(claim: GuildClaim) -> GuildOwner {
    match claim {
        GuildClaim::Held(owner) => owner,
        other => panic!("expected the guild to be held by another node, got {other:?}"),
    }
}

/// A node of its own with a live id lease of `ttl`.
async fn cluster_member(s: &Stores, tag: &str, ttl: Duration) -> (NodeIdentity, IdPair) {
    let me = node(tag, 1);
    let pair = claimed(s.nodes.claim_id_pair(&me, None, ttl).await.unwrap()).pair;
    (me, pair)
}

pub async fn guild_owners_first_claim_is_epoch_one_and_claiming_again_changes_nothing<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, pa) = cluster_member(s, "a", LEASE).await;
    let g = fresh_id();
    assert_eq!(
        s.leases.guild_owner(g).await.unwrap(),
        None,
        "never claimed"
    );
    let owner = owns(s.leases.claim_guild(g, &a, pa).await.unwrap());
    assert_eq!(
        owner,
        GuildOwner {
            guild_id: g,
            node: a.clone(),
            pair: pa,
            epoch: 1
        }
    );
    assert_eq!(s.leases.guild_owner(g).await.unwrap(), Some(owner.clone()));
    assert_eq!(owns(s.leases.claim_guild(g, &a, pa).await.unwrap()), owner);
    assert_eq!(s.leases.guild_owner(g).await.unwrap(), Some(owner));
}

pub async fn guild_owners_a_live_owner_is_held_against_other_nodes<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, pa) = cluster_member(s, "a", LEASE).await;
    let (b, pb) = cluster_member(s, "b", LEASE).await;
    let g = fresh_id();
    let owner = owns(s.leases.claim_guild(g, &a, pa).await.unwrap());
    assert_eq!(
        owned_by_another(s.leases.claim_guild(g, &b, pb).await.unwrap()),
        owner
    );
    // The next process of a's node is another holder: it waits for its predecessor's lease.
    let a2 = NodeIdentity::new(a.node_id.clone(), GenerationId(2));
    let pa2 = claimed(s.nodes.claim_id_pair(&a2, None, LEASE).await.unwrap()).pair;
    assert_eq!(
        owned_by_another(s.leases.claim_guild(g, &a2, pa2).await.unwrap()),
        owner
    );
    assert_eq!(s.leases.guild_owner(g).await.unwrap(), Some(owner));
}

pub async fn guild_owners_only_a_node_holding_its_pair_may_claim<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, pa) = cluster_member(s, "a", LEASE).await;
    let (b, pb) = cluster_member(s, "b", LEASE).await;
    let g = fresh_id();
    assert_eq!(
        s.leases.claim_guild(g, &b, pa).await.unwrap(),
        GuildClaim::NotLeased,
        "another node's pair"
    );
    assert!(s.nodes.release_id_pair(&b, pb).await.unwrap());
    assert_eq!(
        s.leases.claim_guild(g, &b, pb).await.unwrap(),
        GuildClaim::NotLeased,
        "a released pair"
    );
    assert_eq!(
        s.leases.guild_owner(g).await.unwrap(),
        None,
        "nothing written"
    );
    assert_eq!(
        owns(s.leases.claim_guild(g, &a, pa).await.unwrap()).epoch,
        1
    );
}

pub async fn guild_owners_pass_on_when_the_owner_lease_ends<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, pa) = cluster_member(s, "a", SHORT_LEASE).await;
    let (b, pb) = cluster_member(s, "b", LEASE).await;
    let (c, pc) = cluster_member(s, "c", LEASE).await;
    let (g, h) = (fresh_id(), fresh_id());
    let first = owns(s.leases.claim_guild(g, &a, pa).await.unwrap());
    owns(s.leases.claim_guild(h, &b, pb).await.unwrap());

    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(500)).await;
    assert_eq!(
        s.leases.guild_owner(g).await.unwrap(),
        None,
        "a's lease ran out"
    );
    let second = owns(s.leases.claim_guild(g, &c, pc).await.unwrap());
    assert_eq!((second.epoch, &second.node), (2, &c));
    assert!(
        !s.leases.release_guild(&first).await.unwrap(),
        "a deposed owner releases nothing"
    );
    assert_eq!(s.leases.guild_owner(g).await.unwrap(), Some(second));

    // A released id lease ends ownership at once, without waiting for its expiry.
    assert!(s.nodes.release_id_pair(&b, pb).await.unwrap());
    assert_eq!(s.leases.guild_owner(h).await.unwrap(), None);
    assert_eq!(
        owns(s.leases.claim_guild(h, &c, pc).await.unwrap()).epoch,
        2
    );
}

pub async fn guild_owners_release_hands_on_under_the_next_epoch<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, pa) = cluster_member(s, "a", LEASE).await;
    let (b, pb) = cluster_member(s, "b", LEASE).await;
    let g = fresh_id();
    let first = owns(s.leases.claim_guild(g, &a, pa).await.unwrap());
    let stranger = GuildOwner {
        node: b.clone(),
        pair: pb,
        ..first.clone()
    };
    assert!(!s.leases.release_guild(&stranger).await.unwrap(), "not b's");
    assert!(s.leases.release_guild(&first).await.unwrap());
    assert!(!s.leases.release_guild(&first).await.unwrap(), "only once");
    assert_eq!(s.leases.guild_owner(g).await.unwrap(), None);

    let second = owns(s.leases.claim_guild(g, &b, pb).await.unwrap());
    assert_eq!(second.epoch, 2);
    assert_eq!(
        owned_by_another(s.leases.claim_guild(g, &a, pa).await.unwrap()),
        second
    );
    assert!(s.leases.release_guild(&second).await.unwrap());
    let third = owns(s.leases.claim_guild(g, &a, pa).await.unwrap());
    assert_eq!(
        (third.epoch, &third.node),
        (3, &a),
        "the first owner comes back later"
    );
}

pub async fn guild_owners_list_what_a_node_owns<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, pa) = cluster_member(s, "a", LEASE).await;
    let (b, pb) = cluster_member(s, "b", LEASE).await;
    let (g1, g2, g3) = (fresh_id(), fresh_id(), fresh_id());
    let o2 = owns(s.leases.claim_guild(g2, &a, pa).await.unwrap());
    let o1 = owns(s.leases.claim_guild(g1, &a, pa).await.unwrap());
    let o3 = owns(s.leases.claim_guild(g3, &b, pb).await.unwrap());
    assert_eq!(
        s.leases.guilds_owned_by(&a).await.unwrap(),
        vec![o1.clone(), o2.clone()],
        "in id order"
    );
    assert_eq!(s.leases.guilds_owned_by(&b).await.unwrap(), vec![o3]);
    assert!(s.leases.release_guild(&o1).await.unwrap());
    assert_eq!(s.leases.guilds_owned_by(&a).await.unwrap(), vec![o2]);
    assert!(s.nodes.release_id_pair(&a, pa).await.unwrap());
    assert_eq!(s.leases.guilds_owned_by(&a).await.unwrap(), vec![]);
    assert_eq!(
        s.leases.guilds_owned_by(&node("nobody", 1)).await.unwrap(),
        vec![]
    );
}

pub async fn guild_owners_concurrent_claims_have_one_winner<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let g = fresh_id();
    let mut members = Vec::new();
    for n in 0..8 {
        members.push(cluster_member(s, &format!("racer{n}"), LEASE).await);
    }
    let tasks: Vec<_> = members
        .into_iter()
        .map(|(me, pair)| {
            let leases = s.leases.clone();
            tokio::spawn(async move { leases.claim_guild(g, &me, pair).await.unwrap() })
        })
        .collect();
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            GuildClaim::Claimed(owner) => winners.push(owner),
            GuildClaim::Held(owner) => seen.push(owner),
            GuildClaim::NotLeased => panic!("every racer holds its pair"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    let winner = &winners[0];
    assert_eq!(winner.epoch, 1);
    assert!(
        seen.iter().all(|o| o == winner),
        "the others see the winner"
    );
    assert_eq!(
        s.leases.guild_owner(g).await.unwrap().as_ref(),
        Some(winner)
    );
}

// ------------------------------------------------------------------ fenced writes

#[track_caller]
fn is_fenced<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    match result {
        Err(StoreError::Fenced(_)) => true,
        other => panic!("expected the write to be fenced, got {other:?}"),
    }
}

/// Tries one write of every kind through `f`, each expected to be fenced, then checks that
/// none of them left anything behind in `s`.
async fn every_write_is_fenced(s: &Stores, f: &Stores, g: &GuildFixture, ch: Snowflake) {
    let kept = s
        .messages
        .list_messages(ch, HistoryAnchor::Latest, 100)
        .await
        .unwrap();
    let before = load(s, g.id()).await;
    let target = kept[0].id;
    let mut renamed = g.guild.clone();
    renamed.name = "renamed by a deposed owner".into();
    assert!(is_fenced(
        f.guilds
            .write_guild(g.id(), vec![GuildWrite::PutGuild(renamed)])
            .await
    ));
    let late = MessageRecord::text(fresh_id(), ch, Some(g.id()), Snowflake(7), "late");
    assert!(is_fenced(f.messages.create_message(&late).await));
    let edited = MessageRecord {
        content: "edited by a deposed owner".into(),
        ..kept[0].clone()
    };
    assert!(is_fenced(f.messages.update_message(&edited).await));
    assert!(is_fenced(
        f.messages
            .add_reaction(ch, target, "👎", Snowflake(8))
            .await
    ));
    assert!(is_fenced(
        f.messages
            .remove_reaction(ch, target, "👍", Snowflake(5))
            .await
    ));
    assert!(is_fenced(
        f.messages.remove_reactions(ch, target, None).await
    ));
    assert!(is_fenced(f.messages.set_pinned(ch, target, false).await));
    assert!(is_fenced(f.messages.delete_messages(ch, &[target]).await));
    assert!(is_fenced(f.messages.delete_channel(ch).await));

    assert_eq!(load(s, g.id()).await, before, "the guild is untouched");
    assert_eq!(
        s.messages
            .list_messages(ch, HistoryAnchor::Latest, 100)
            .await
            .unwrap(),
        kept,
        "the messages are untouched"
    );
    assert_eq!(
        s.messages
            .reaction_counts(ch, target, Snowflake(5))
            .await
            .unwrap(),
        vec![rc("👍", 1, true)]
    );
    assert_eq!(s.messages.list_pins(ch).await.unwrap().len(), 1);
}

/// A guild written through `f` (its fixture, a channel, one message with a reaction and pin).
async fn write_through(f: &Stores, g: &GuildFixture) -> Snowflake {
    f.guilds.write_guild(g.id(), g.writes()).await.unwrap();
    let ch = g.channels[0].id;
    let m = MessageRecord::text(fresh_id(), ch, Some(g.id()), Snowflake(5), "hello");
    f.messages.create_message(&m).await.unwrap();
    assert!(
        f.messages
            .add_reaction(ch, m.id, "👍", Snowflake(5))
            .await
            .unwrap()
    );
    assert!(f.messages.set_pinned(ch, m.id, true).await.unwrap());
    ch
}

pub async fn fenced_writes_land_while_the_owner_holds_the_guild<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, pa) = cluster_member(s, "a", LEASE).await;
    let g = GuildFixture::new(fresh_id());
    let owner = owns(s.leases.claim_guild(g.id(), &a, pa).await.unwrap());
    let f = s.fenced(owner);
    let ch = write_through(&f, &g).await;

    let loaded = load(s, g.id()).await.unwrap();
    assert_eq!(loaded.guild.map(|x| x.name), Some(g.guild.name.clone()));
    assert_eq!((loaded.roles.len(), loaded.channels.len()), (2, 2));
    let stored = s
        .messages
        .list_messages(ch, HistoryAnchor::Latest, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].pinned);
    let edited = MessageRecord {
        content: "edited".into(),
        ..stored[0].clone()
    };
    assert!(f.messages.update_message(&edited).await.unwrap());
    assert!(
        is_conflict(f.messages.create_message(&stored[0]).await, "id"),
        "a fenced create keeps the create contract"
    );
    assert_eq!(
        f.messages
            .delete_messages(ch, &[stored[0].id])
            .await
            .unwrap(),
        vec![stored[0].id]
    );
    assert_eq!(
        f.messages.get_message(ch, stored[0].id).await.unwrap(),
        None,
        "reads go through too"
    );
}

pub async fn fenced_writes_are_refused_once_the_guild_changed_hands<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, pa) = cluster_member(s, "a", LEASE).await;
    let (b, pb) = cluster_member(s, "b", LEASE).await;
    let g = GuildFixture::new(fresh_id());
    let first = owns(s.leases.claim_guild(g.id(), &a, pa).await.unwrap());
    let by_a = s.fenced(first.clone());
    let ch = write_through(&by_a, &g).await;

    assert!(s.leases.release_guild(&first).await.unwrap());
    every_write_is_fenced(s, &by_a, &g, ch).await;

    let second = owns(s.leases.claim_guild(g.id(), &b, pb).await.unwrap());
    every_write_is_fenced(s, &by_a, &g, ch).await;
    let stranger = GuildOwner {
        node: a.clone(),
        pair: pa,
        ..second.clone()
    };
    every_write_is_fenced(s, &s.fenced(stranger), &g, ch).await;

    let by_b = s.fenced(second);
    let m = MessageRecord::text(fresh_id(), ch, Some(g.id()), Snowflake(6), "from b");
    by_b.messages.create_message(&m).await.unwrap();
    assert_eq!(s.messages.get_message(ch, m.id).await.unwrap(), Some(m));
}

pub async fn fenced_writes_are_refused_once_the_owner_lease_ran_out<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, pa) = cluster_member(s, "a", SHORT_LEASE).await;
    let g = GuildFixture::new(fresh_id());
    let owner = owns(s.leases.claim_guild(g.id(), &a, pa).await.unwrap());
    let f = s.fenced(owner);
    let ch = write_through(&f, &g).await;
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(500)).await;
    // Nobody took the guild over, but its owner may be a paused process that another node
    // is about to replace: its lease is what let it write.
    every_write_is_fenced(s, &f, &g, ch).await;
}

pub async fn fenced_creates_in_one_batch_are_answered_each_by_its_fence<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, pa) = cluster_member(s, "a", LEASE).await;
    let (live, gone) = (fresh_id(), fresh_id());
    let owner = owns(s.leases.claim_guild(live, &a, pa).await.unwrap());
    let deposed = owns(s.leases.claim_guild(gone, &a, pa).await.unwrap());
    assert!(s.leases.release_guild(&deposed).await.unwrap());
    let (by_live, by_deposed) = (s.fenced(owner), s.fenced(deposed));
    let (c1, c2, c3) = (fresh_id(), fresh_id(), fresh_id());

    // Sent together, so that a backend that groups creates gets them in one batch.
    let mut tasks = Vec::new();
    for n in 0..20u64 {
        let (stores, channel, guild, expect) = match n % 3 {
            0 => (by_live.clone(), c1, Some(live), "stored"),
            1 => (by_deposed.clone(), c2, Some(gone), "fenced"),
            _ => (s.clone(), c3, None, "stored"),
        };
        let m = MessageRecord::text(fresh_id(), channel, guild, Snowflake(9), format!("m{n}"));
        tasks.push(tokio::spawn(async move {
            let result = stores.messages.create_message(&m).await;
            (expect, result)
        }));
    }
    for task in tasks {
        match task.await.unwrap() {
            ("stored", result) => result.unwrap(),
            (_, result) => assert!(is_fenced(result)),
        }
    }
    let count = |ch| async move {
        s.messages
            .list_messages(ch, HistoryAnchor::Latest, 100)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(count(c1).await, 7, "the live owner's creates");
    assert_eq!(count(c2).await, 0, "none of the deposed owner's");
    assert_eq!(count(c3).await, 6, "unfenced creates");
}

// ------------------------------------------------------------------ audit log

fn audit_entry(user: Snowflake, action_type: u16, target: Snowflake) -> AuditLogEntry {
    AuditLogEntry {
        id: fresh_id(),
        target_id: Some(target.to_string()),
        changes: vec![AuditLogChange {
            key: "nick".into(),
            new_value: Some(serde_json::json!("new")),
            old_value: Some(serde_json::json!("old")),
        }],
        user_id: Some(user),
        action_type,
        options: Some(AuditEntryInfo {
            channel_id: Some(target),
            count: Some("2".into()),
            ..AuditEntryInfo::default()
        }),
        reason: Some("spam, and \u{1F6AB} more".into()),
    }
}

fn audit_filter(limit: usize) -> AuditLogFilter {
    AuditLogFilter {
        user_id: None,
        action_type: None,
        before: None,
        after: None,
        limit,
    }
}

fn entry_ids(entries: &[AuditLogEntry]) -> Vec<Snowflake> {
    entries.iter().map(|e| e.id).collect()
}

/// Entries come back newest first, filtered by user and action, between the cursors; with
/// `after`, the `limit` entries just above it.
pub async fn audit_log_filters_and_cursors<F: Fn(PathBuf) -> Fut, Fut: Future<Output = Stores>>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (alice, bob) = (fresh_id(), fresh_id());
    let g = GuildFixture::new(alice);
    s.guilds.write_guild(g.id(), g.writes()).await.unwrap();
    let target = g.channels[0].id;
    // e0..e5: alice 22, bob 22, alice 20, bob 20, alice 22, bob 22; two per batch.
    let entries: Vec<AuditLogEntry> = [
        (alice, 22),
        (bob, 22),
        (alice, 20),
        (bob, 20),
        (alice, 22),
        (bob, 22),
    ]
    .into_iter()
    .map(|(u, a)| audit_entry(u, a, target))
    .collect();
    for pair in entries.chunks(2) {
        let writes = pair
            .iter()
            .map(|e| GuildWrite::PutAuditEntry {
                guild_id: g.id(),
                entry: e.clone(),
            })
            .collect();
        s.guilds.write_guild(g.id(), writes).await.unwrap();
    }
    let id = |i: usize| entries[i].id;
    let gid = g.id();
    let log = |f: AuditLogFilter| async move { s.guilds.audit_log(gid, &f).await.unwrap() };

    let all = log(audit_filter(50)).await;
    assert_eq!(
        entry_ids(&all),
        vec![id(5), id(4), id(3), id(2), id(1), id(0)]
    );
    assert_eq!(all[5], entries[0], "an entry round-trips exactly");
    assert_eq!(entry_ids(&log(audit_filter(2)).await), vec![id(5), id(4)]);

    let before = AuditLogFilter {
        before: Some(id(4)),
        ..audit_filter(2)
    };
    assert_eq!(entry_ids(&log(before).await), vec![id(3), id(2)]);
    let after = AuditLogFilter {
        after: Some(id(1)),
        ..audit_filter(2)
    };
    assert_eq!(
        entry_ids(&log(after).await),
        vec![id(3), id(2)],
        "the oldest above, newest first"
    );
    let between = AuditLogFilter {
        after: Some(id(0)),
        before: Some(id(4)),
        ..audit_filter(50)
    };
    assert_eq!(entry_ids(&log(between).await), vec![id(3), id(2), id(1)]);

    let by_bob = AuditLogFilter {
        user_id: Some(bob),
        ..audit_filter(2)
    };
    assert_eq!(entry_ids(&log(by_bob).await), vec![id(5), id(3)]);
    let kicks = AuditLogFilter {
        action_type: Some(20),
        ..audit_filter(50)
    };
    assert_eq!(entry_ids(&log(kicks).await), vec![id(3), id(2)]);
    let alice_bans_after = AuditLogFilter {
        user_id: Some(alice),
        action_type: Some(22),
        after: Some(id(0)),
        ..audit_filter(1)
    };
    assert_eq!(entry_ids(&log(alice_bans_after).await), vec![id(4)]);
    let nobody = AuditLogFilter {
        user_id: Some(fresh_id()),
        ..audit_filter(50)
    };
    assert!(log(nobody).await.is_empty());
    let past_the_end = AuditLogFilter {
        after: Some(id(5)),
        ..audit_filter(50)
    };
    assert!(log(past_the_end).await.is_empty());
    // Another guild's log is its own.
    assert!(
        s.guilds
            .audit_log(fresh_id(), &audit_filter(50))
            .await
            .unwrap()
            .is_empty()
    );
}

/// An entry is written with its change or not at all, and is deleted with its guild.
pub async fn audit_log_is_atomic_with_its_batch_and_goes_with_the_guild<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let owner = fresh_id();
    let a = GuildFixture::new(owner);
    let b = GuildFixture::new(owner);
    s.guilds.write_guild(a.id(), a.writes()).await.unwrap();
    s.guilds.write_guild(b.id(), b.writes()).await.unwrap();

    // A batch that fails on an invite code held by `a` leaves no entry behind.
    let refused = audit_entry(owner, 40, a.channels[0].id);
    let writes = vec![
        GuildWrite::PutAuditEntry {
            guild_id: b.id(),
            entry: refused,
        },
        GuildWrite::PutInvite(InviteRecord {
            guild_id: b.id(),
            channel_id: b.channels[0].id,
            ..a.invites[0].clone()
        }),
    ];
    assert!(is_conflict(
        s.guilds.write_guild(b.id(), writes).await,
        "code"
    ));
    assert!(
        s.guilds
            .audit_log(b.id(), &audit_filter(50))
            .await
            .unwrap()
            .is_empty()
    );

    let (ea, eb) = (audit_entry(owner, 1, a.id()), audit_entry(owner, 1, b.id()));
    for (g, e) in [(a.id(), &ea), (b.id(), &eb)] {
        s.guilds
            .write_guild(
                g,
                vec![GuildWrite::PutAuditEntry {
                    guild_id: g,
                    entry: e.clone(),
                }],
            )
            .await
            .unwrap();
    }
    s.guilds
        .write_guild(a.id(), vec![GuildWrite::DeleteGuild(a.id())])
        .await
        .unwrap();
    assert!(
        s.guilds
            .audit_log(a.id(), &audit_filter(50))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.guilds.audit_log(b.id(), &audit_filter(50)).await.unwrap(),
        vec![eb]
    );
}

// ------------------------------------------------------------------ private channels

/// A fixture, shared with backend-specific tests: a DM between `a` and `b`.
pub fn dm(id: Snowflake, a: Snowflake, b: Snowflake) -> PrivateChannelRecord {
    PrivateChannelRecord {
        id,
        kind: PrivateChannelRecord::DM,
        recipients: vec![a, b],
        owner_id: None,
        name: None,
        icon: None,
        last_pin_timestamp: None,
    }
}

/// A fixture, shared with backend-specific tests: a group DM owned by its first recipient.
pub fn group_dm(id: Snowflake, recipients: Vec<Snowflake>) -> PrivateChannelRecord {
    PrivateChannelRecord {
        id,
        kind: PrivateChannelRecord::GROUP_DM,
        owner_id: recipients.first().copied(),
        recipients,
        name: Some(format!("Group {id}")),
        icon: Some("0123456789abcdef".into()),
        last_pin_timestamp: Some(Timestamp::from_unix_ms(1_700_000_000_123)),
    }
}

fn open_for(channel_id: Snowflake, user_id: Snowflake) -> GuildWrite {
    GuildWrite::OpenPrivateChannel {
        channel_id,
        user_id,
    }
}

fn only_private(channel: &PrivateChannelRecord) -> GuildSnapshot {
    GuildSnapshot {
        private: Some(channel.clone()),
        ..GuildSnapshot::default()
    }
}

/// A DM and a group DM load as units of their own, are their own units for `channel_guild`,
/// and are listed per user while open.
pub async fn private_channels_round_trip_and_indexes<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, b, c) = (fresh_id(), fresh_id(), fresh_id());
    let direct = dm(fresh_id(), b, a);
    s.guilds
        .write_guild(
            direct.id,
            vec![
                GuildWrite::PutPrivateChannel(direct.clone()),
                open_for(direct.id, a),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        s.guilds.load_guild(direct.id).await.unwrap(),
        Some(only_private(&direct))
    );
    assert_eq!(
        s.guilds.channel_guild(direct.id).await.unwrap(),
        Some(direct.id)
    );
    assert_eq!(s.guilds.dm_channel(a, b).await.unwrap(), Some(direct.id));
    assert_eq!(s.guilds.dm_channel(b, a).await.unwrap(), Some(direct.id));
    assert_eq!(s.guilds.dm_channel(a, c).await.unwrap(), None);
    // Open for whoever opened it, not for every recipient.
    assert_eq!(
        s.guilds.user_private_channels(a).await.unwrap(),
        vec![direct.id]
    );
    assert_eq!(
        s.guilds.user_private_channels(b).await.unwrap(),
        Vec::<Snowflake>::new()
    );

    // A group DM of the same two users and a third has no pair: it stands beside the DM.
    let group = group_dm(fresh_id(), vec![a, b, c]);
    s.guilds
        .write_guild(
            group.id,
            vec![
                GuildWrite::PutPrivateChannel(group.clone()),
                open_for(group.id, a),
                open_for(group.id, b),
                open_for(group.id, c),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        s.guilds.load_guild(group.id).await.unwrap(),
        Some(only_private(&group))
    );
    assert_eq!(
        s.guilds.channel_guild(group.id).await.unwrap(),
        Some(group.id)
    );
    assert_eq!(s.guilds.dm_channel(a, b).await.unwrap(), Some(direct.id));
    assert_eq!(s.guilds.dm_channel(b, c).await.unwrap(), None);
    assert_eq!(
        s.guilds.load_guild(direct.id).await.unwrap(),
        Some(only_private(&direct))
    );

    // A user's list is ascending whatever the order of opening, and closing takes a channel
    // off one user's list only; the channel stays.
    let later: Vec<PrivateChannelRecord> = (0..3).map(|_| dm(fresh_id(), a, fresh_id())).collect();
    for channel in later.iter().rev() {
        s.guilds
            .write_guild(
                channel.id,
                vec![
                    GuildWrite::PutPrivateChannel(channel.clone()),
                    open_for(channel.id, a),
                ],
            )
            .await
            .unwrap();
    }
    let mut expected = vec![direct.id, group.id];
    expected.extend(later.iter().map(|c| c.id));
    assert_eq!(s.guilds.user_private_channels(a).await.unwrap(), expected);
    s.guilds
        .write_guild(
            group.id,
            vec![GuildWrite::ClosePrivateChannel {
                channel_id: group.id,
                user_id: a,
            }],
        )
        .await
        .unwrap();
    expected.retain(|id| *id != group.id);
    assert_eq!(s.guilds.user_private_channels(a).await.unwrap(), expected);
    assert_eq!(
        s.guilds.user_private_channels(b).await.unwrap(),
        vec![group.id]
    );
    assert_eq!(
        s.guilds.load_guild(group.id).await.unwrap(),
        Some(only_private(&group))
    );

    // Within one batch the last of an open and a close wins.
    let (closed, reopened) = (later[0].id, later[1].id);
    let close = |channel_id| GuildWrite::ClosePrivateChannel {
        channel_id,
        user_id: a,
    };
    s.guilds
        .write_guild(closed, vec![open_for(closed, a), close(closed)])
        .await
        .unwrap();
    s.guilds
        .write_guild(reopened, vec![close(reopened), open_for(reopened, a)])
        .await
        .unwrap();
    expected.retain(|id| *id != closed);
    assert_eq!(s.guilds.user_private_channels(a).await.unwrap(), expected);

    // Nothing of a guild is a private channel, nor the other way round.
    assert_eq!(s.guilds.load_guild(fresh_id()).await.unwrap(), None);
    let g = GuildFixture::new(a);
    s.guilds.write_guild(g.id(), g.writes()).await.unwrap();
    assert_eq!(load(s, g.id()).await.unwrap().private, None);
}

/// A pair of users has one DM: another channel for it is refused with everything of its batch,
/// while the DM itself may be put again.
pub async fn private_channels_a_pair_has_one_dm<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (a, b) = (fresh_id(), fresh_id());
    let first = dm(fresh_id(), a, b);
    s.guilds
        .write_guild(
            first.id,
            vec![
                GuildWrite::PutPrivateChannel(first.clone()),
                open_for(first.id, a),
            ],
        )
        .await
        .unwrap();

    // The same pair in the other order, under another id: refused, and its writes before and
    // after the refused one are not applied.
    let second = dm(fresh_id(), b, a);
    let writes = vec![
        open_for(second.id, b),
        GuildWrite::PutPrivateChannel(second.clone()),
        open_for(second.id, a),
    ];
    assert!(is_conflict(
        s.guilds.write_guild(second.id, writes).await,
        "recipients"
    ));
    assert_eq!(s.guilds.load_guild(second.id).await.unwrap(), None);
    assert_eq!(s.guilds.channel_guild(second.id).await.unwrap(), None);
    assert_eq!(
        s.guilds.user_private_channels(a).await.unwrap(),
        vec![first.id]
    );
    assert_eq!(
        s.guilds.user_private_channels(b).await.unwrap(),
        Vec::<Snowflake>::new()
    );
    assert_eq!(s.guilds.dm_channel(a, b).await.unwrap(), Some(first.id));
    assert_eq!(
        s.guilds.load_guild(first.id).await.unwrap(),
        Some(only_private(&first))
    );

    // The DM put again under its own id replaces it.
    let pinned = PrivateChannelRecord {
        last_pin_timestamp: Some(Timestamp::from_unix_ms(1_700_000_000_456)),
        ..first.clone()
    };
    s.guilds
        .write_guild(
            first.id,
            vec![
                GuildWrite::PutPrivateChannel(pinned.clone()),
                open_for(first.id, b),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        s.guilds.load_guild(first.id).await.unwrap(),
        Some(only_private(&pinned))
    );
    assert_eq!(s.guilds.dm_channel(b, a).await.unwrap(), Some(first.id));
    assert_eq!(
        s.guilds.user_private_channels(b).await.unwrap(),
        vec![first.id]
    );

    // Another pair sharing one user is another DM; a group DM of the same pair is no DM.
    let c = fresh_id();
    let other = dm(fresh_id(), a, c);
    let group = group_dm(fresh_id(), vec![b, a, c]);
    for channel in [&other, &group] {
        s.guilds
            .write_guild(
                channel.id,
                vec![GuildWrite::PutPrivateChannel(channel.clone())],
            )
            .await
            .unwrap();
    }
    assert_eq!(s.guilds.dm_channel(c, a).await.unwrap(), Some(other.id));
    assert_eq!(s.guilds.dm_channel(a, b).await.unwrap(), Some(first.id));
    assert_eq!(s.guilds.dm_channel(b, c).await.unwrap(), None);

    // Without the clash, the refused batch's channel is stored.
    let d = fresh_id();
    let retried = dm(second.id, b, d);
    s.guilds
        .write_guild(
            retried.id,
            vec![
                GuildWrite::PutPrivateChannel(retried.clone()),
                open_for(retried.id, b),
            ],
        )
        .await
        .unwrap();
    assert_eq!(s.guilds.dm_channel(d, b).await.unwrap(), Some(retried.id));
    assert_eq!(
        s.guilds.user_private_channels(b).await.unwrap(),
        vec![first.id, retried.id]
    );
}

// ------------------------------------------------------------------ relationships

fn relationship(user_id: Snowflake, target_id: Snowflake, since_ms: u64) -> RelationshipRecord {
    RelationshipRecord {
        user_id,
        target_id,
        kind: RelationshipRecord::BLOCKED,
        since: Timestamp::from_unix_ms(since_ms),
    }
}

pub async fn relationships_put_list_and_delete<
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = Stores>,
>(
    open: &F,
) {
    let env = env(open).await;
    let s = &env.stores;
    let (user, other) = (fresh_id(), fresh_id());
    let targets: Vec<Snowflake> = (0..3).map(|_| fresh_id()).collect();
    assert!(s.users.relationships(user).await.unwrap().is_empty());
    // Put in descending target order; listed ascending.
    for (i, target) in targets.iter().rev().enumerate() {
        s.users
            .put_relationship(&relationship(user, *target, 1_700_000_000_000 + i as u64))
            .await
            .unwrap();
    }
    // One-way: the target's list and another user's are their own.
    s.users
        .put_relationship(&relationship(other, user, 1_700_000_000_999))
        .await
        .unwrap();
    let expected: Vec<RelationshipRecord> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| relationship(user, *t, 1_700_000_000_002 - i as u64))
        .collect();
    assert_eq!(s.users.relationships(user).await.unwrap(), expected);
    assert_eq!(
        s.users.relationships(other).await.unwrap(),
        vec![relationship(other, user, 1_700_000_000_999)]
    );
    assert!(s.users.relationships(targets[0]).await.unwrap().is_empty());

    // A put towards the same target replaces.
    let again = relationship(user, targets[1], 1_700_000_100_000);
    s.users.put_relationship(&again).await.unwrap();
    let listed = s.users.relationships(user).await.unwrap();
    assert_eq!(
        listed,
        vec![expected[0].clone(), again.clone(), expected[2].clone()]
    );

    // Deleting says whether there was one.
    assert!(s.users.delete_relationship(user, targets[1]).await.unwrap());
    assert!(!s.users.delete_relationship(user, targets[1]).await.unwrap());
    assert!(!s.users.delete_relationship(targets[1], user).await.unwrap());
    assert_eq!(
        s.users.relationships(user).await.unwrap(),
        vec![expected[0].clone(), expected[2].clone()]
    );
    assert_eq!(
        s.users.relationships(other).await.unwrap(),
        vec![relationship(other, user, 1_700_000_000_999)]
    );
}
