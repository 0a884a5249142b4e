//! REST request and response bodies, with Discord's validation limits.
//!
//! Each request body has a `validate` that returns a 50035 error with per-field entries, so the
//! node rejects bad input before any command reaches an actor. Nullable PATCH fields are
//! `Option<Option<T>>`: absent means "leave it", `null` means "clear it".

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{ApiError, FormErrors};
use crate::models::{
    ChannelType, Embed, MessageReference, Nonce, PermissionOverwrite, RoleColors, User,
};
use crate::{Permissions, Snowflake, Timestamp};

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

macro_rules! body {
    ($(#[$m:meta])* pub struct $name:ident $body:tt) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
        pub struct $name $body
    };
}

// ---------------------------------------------------------------- auth

body! {
    /// `POST /auth/register`.
    pub struct RegisterRequest {
        pub username: String,
        pub email: String,
        pub password: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub global_name: Option<String>,
    }
}

impl RegisterRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        validate_username(&mut e, &["username"], &self.username);
        if !looks_like_email(&self.email) || self.email.len() > 254 {
            e.add(
                &["email"],
                "EMAIL_TYPE_INVALID_EMAIL",
                "Not a well formed email address.",
            );
        }
        e.check_len(&["password"], &self.password, 8, 72);
        if let Some(g) = &self.global_name {
            e.check_len(&["global_name"], g, 1, 32);
        }
        e.finish()
    }
}

/// Discord's username rules: 2–32 chars of lowercase letters, digits, `_` and `.`, no `..`.
pub fn validate_username(e: &mut FormErrors, path: &[&str], name: &str) {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if name.len() < 2 || name.len() > 32 {
        e.add(
            path,
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 2 and 32 in length.",
        );
    } else if !ok_chars || name.contains("..") {
        e.add(
            path,
            "USERNAME_INVALID_CHARACTERS",
            "Username can only contain lowercase letters, numbers, underscores and periods.",
        );
    }
}

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

body! {
    /// `POST /auth/register` answer.
    pub struct RegisterResponse {
        pub token: String,
        pub refresh_token: String,
        pub user: Option<User>,
    }
}

body! {
    /// `POST /auth/login`; `login` is an email or a username.
    pub struct LoginRequest {
        pub login: String,
        pub password: String,
    }
}

body! {
    /// `POST /auth/login` answer: tokens, or an MFA ticket when TOTP is on.
    pub struct LoginResponse {
        pub user_id: Snowflake,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub refresh_token: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub mfa: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ticket: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub totp: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub backup: bool,
    }
}

body! {
    /// `POST /auth/mfa/totp`: finishes an MFA login with a TOTP or backup code.
    pub struct MfaTotpRequest {
        pub ticket: String,
        pub code: String,
    }
}

body! {
    /// `POST /auth/refresh`.
    pub struct RefreshRequest {
        pub refresh_token: String,
    }
}

body! {
    /// An access token and its refresh token.
    pub struct TokenResponse {
        pub token: String,
        pub refresh_token: String,
    }
}

body! {
    /// `POST /auth/logout`: optionally names the refresh token to revoke.
    pub struct LogoutRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub refresh_token: Option<String>,
    }
}

body! {
    /// `POST /users/@me/mfa/totp/enable`.
    pub struct EnableTotpRequest {
        pub secret: String,
        pub code: String,
        pub password: String,
    }
}

body! {
    /// One backup code.
    pub struct BackupCode {
        pub user_id: Snowflake,
        pub code: String,
        pub consumed: bool,
    }
}

body! {
    /// `POST /users/@me/mfa/totp/enable` answer.
    pub struct EnableTotpResponse {
        pub token: String,
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub backup_codes: Vec<BackupCode>,
    }
}

body! {
    /// `POST /users/@me/mfa/totp/disable`.
    pub struct DisableTotpRequest {
        pub code: String,
    }
}

// ---------------------------------------------------------------- users and applications

body! {
    /// `PATCH /users/@me`.
    pub struct ModifyCurrentUser {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub username: Option<String>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub global_name: Option<Option<String>>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub avatar: Option<Option<String>>,
        /// The current password; required with `new_password`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password: Option<String>,
        /// A new password (8–72 characters). Every session of the user ends, and the answer
        /// carries the token of a new one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub new_password: Option<String>,
    }
}

impl ModifyCurrentUser {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        if let Some(u) = &self.username {
            validate_username(&mut e, &["username"], u);
        }
        if let Some(Some(g)) = &self.global_name {
            e.check_len(&["global_name"], g, 1, 32);
        }
        if let Some(p) = &self.new_password {
            e.check_len(&["new_password"], p, 8, 72);
            if self.password.is_none() {
                e.add(
                    &["password"],
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                );
            }
        }
        e.finish()
    }
}

/// The answer to `PATCH /users/@me`: the user, and after a password change the tokens of the
/// session that replaced every other one (Discord sends `token`; `refresh_token` is ours, as
/// at login).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModifiedCurrentUser {
    #[serde(flatten)]
    pub user: User,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

body! {
    /// `POST /applications`.
    pub struct CreateApplication {
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
    }
}

impl CreateApplication {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        e.check_len(&["name"], &self.name, 2, 32);
        if let Some(d) = &self.description {
            e.check_len(&["description"], d, 0, 400);
        }
        e.finish()
    }
}

body! {
    /// `PATCH /applications/@me` (the bot's own application) and `PATCH /applications/{id}`
    /// (its owner).
    pub struct ModifyApplication {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// Only the limited gateway-intent flags may change; every other bit must stay as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub flags: Option<u64>,
    }
}

impl ModifyApplication {
    /// Checks the body against the application's current `flags`.
    pub fn validate(&self, current_flags: u64) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        if let Some(d) = &self.description {
            e.check_len(&["description"], d, 0, 400);
        }
        if let Some(f) = self.flags
            && (f ^ current_flags) & !crate::gateway::app_flags::SELF_SETTABLE != 0
        {
            e.add(
                &["flags"],
                "APPLICATION_FLAGS_INVALID",
                "Only the limited gateway intent flags can be changed.",
            );
        }
        e.finish()
    }
}

body! {
    /// `POST /applications/{id}/bot/reset` answer.
    pub struct BotTokenResponse {
        pub token: String,
    }
}

body! {
    /// `POST /oauth2/authorize` body for the `bot` scope.
    pub struct AuthorizeBot {
        pub guild_id: Snowflake,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub permissions: Option<Permissions>,
        pub authorize: bool,
    }
}

body! {
    /// `GET /gateway`.
    pub struct GatewayResponse {
        pub url: String,
    }
}

body! {
    pub struct SessionStartLimit {
        pub total: u32,
        pub remaining: u32,
        pub reset_after: u64,
        pub max_concurrency: u32,
    }
}

body! {
    /// `GET /gateway/bot`.
    pub struct GatewayBotResponse {
        pub url: String,
        pub shards: u32,
        pub session_start_limit: SessionStartLimit,
    }
}

// ---------------------------------------------------------------- private channels

/// The most people a group DM holds, its owner included (Discord's limit).
pub const MAX_GROUP_DM_RECIPIENTS: usize = 10;

body! {
    /// `POST /users/@me/channels`: a DM with `recipient_id`, or a group DM with the caller and
    /// `recipients`. A DM with someone already opened is opened again, not created twice.
    pub struct CreateDm {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub recipient_id: Option<Snowflake>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub recipients: Option<Vec<Snowflake>>,
    }
}

/// What a [`CreateDm`] asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DmTarget {
    /// A DM with this user.
    User(Snowflake),
    /// A group DM with the caller and these users (distinct, the caller not among them).
    Group(Vec<Snowflake>),
}

impl CreateDm {
    /// What is asked for, or a 50035 naming the field at fault. One recipient in
    /// `recipients` is a DM, as Discord's client sends it; a group holds at most
    /// [`MAX_GROUP_DM_RECIPIENTS`] people, its creator included.
    pub fn target(&self, caller: Snowflake) -> Result<DmTarget, ApiError> {
        let mut e = FormErrors::default();
        let target = match (&self.recipient_id, &self.recipients) {
            (Some(_), Some(_)) => {
                e.add(
                    &["recipients"],
                    "BASE_TYPE_BAD_COMBINATION",
                    "Give recipient_id or recipients, not both.",
                );
                None
            }
            (Some(id), None) => Some(DmTarget::User(*id)),
            (None, Some(list)) => {
                let mut ids: Vec<Snowflake> = Vec::with_capacity(list.len());
                for id in list {
                    if *id != caller && !ids.contains(id) {
                        ids.push(*id);
                    }
                }
                match ids.len() {
                    0 => {
                        e.add(
                            &["recipients"],
                            "BASE_TYPE_REQUIRED",
                            "Name at least one other user.",
                        );
                        None
                    }
                    1 => Some(DmTarget::User(ids[0])),
                    n if n < MAX_GROUP_DM_RECIPIENTS => Some(DmTarget::Group(ids)),
                    _ => {
                        e.add(
                            &["recipients"],
                            "BASE_TYPE_MAX_LENGTH",
                            format!(
                                "A group DM holds at most {MAX_GROUP_DM_RECIPIENTS} people, its owner included."
                            ),
                        );
                        None
                    }
                }
            }
            (None, None) => {
                e.add(
                    &["recipient_id"],
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                );
                None
            }
        };
        if target == Some(DmTarget::User(caller)) {
            e.add(
                &["recipient_id"],
                "BASE_TYPE_INVALID",
                "You cannot open a DM with yourself.",
            );
        }
        e.finish()?;
        target.ok_or_else(|| FormErrors::default().into_error())
    }
}

body! {
    /// `PUT /users/@me/relationships/{user_id}`: `type` 2 blocks the user, the only kind of
    /// relationship kept.
    pub struct PutRelationship {
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        pub kind: Option<u8>,
    }
}

impl PutRelationship {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        if self.kind != Some(2) {
            e.add(
                &["type"],
                "BASE_TYPE_CHOICES",
                "Value must be one of (2,): only blocking is supported.",
            );
        }
        e.finish()
    }
}

// ---------------------------------------------------------------- emojis

/// Checks a custom emoji's name: 2 to 32 letters, digits and underscores, as Discord takes them.
fn validate_emoji_name(e: &mut FormErrors, name: &str) {
    let len = name.chars().count();
    if !(2..=32).contains(&len) {
        e.add(
            &["name"],
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 2 and 32 in length.",
        );
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        e.add(
            &["name"],
            "BASE_TYPE_INVALID",
            "Only letters, digits and underscores.",
        );
    }
}

body! {
    /// `POST /guilds/{id}/emojis`: `image` is image data (`data:image/png;base64,...`; PNG,
    /// JPEG, GIF or WebP; a GIF is an animated emoji).
    pub struct CreateEmoji {
        pub name: String,
        pub image: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub roles: Option<Vec<Snowflake>>,
    }
}

impl CreateEmoji {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        validate_emoji_name(&mut e, &self.name);
        e.finish()
    }
}

body! {
    /// `PATCH /guilds/{id}/emojis/{emoji_id}`.
    pub struct ModifyEmoji {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// Absent: unchanged; `null` or `[]`: everyone may use it.
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(proptest::option::of(crate::arbitrary::few()))"))]
        pub roles: Option<Option<Vec<Snowflake>>>,
    }
}

impl ModifyEmoji {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        if let Some(n) = &self.name {
            validate_emoji_name(&mut e, n);
        }
        e.finish()
    }
}

// ---------------------------------------------------------------- guilds

body! {
    /// `POST /guilds`.
    pub struct CreateGuild {
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub icon: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
    }
}

impl CreateGuild {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        e.check_len(&["name"], self.name.trim(), 2, 100);
        e.finish()
    }
}

body! {
    /// `PATCH /guilds/{id}`.
    pub struct ModifyGuild {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub description: Option<Option<String>>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub icon: Option<Option<String>>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub system_channel_id: Option<Option<Snowflake>>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub afk_channel_id: Option<Option<Snowflake>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub afk_timeout: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub verification_level: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub default_message_notifications: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub explicit_content_filter: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub owner_id: Option<Snowflake>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub preferred_locale: Option<String>,
    }
}

impl ModifyGuild {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        if let Some(n) = &self.name {
            e.check_len(&["name"], n.trim(), 2, 100);
        }
        if let Some(Some(d)) = &self.description {
            e.check_len(&["description"], d, 0, 120);
        }
        if let Some(t) = self.afk_timeout
            && ![60, 300, 900, 1800, 3600].contains(&t)
        {
            e.add(
                &["afk_timeout"],
                "BASE_TYPE_CHOICES",
                "Value must be one of {60, 300, 900, 1800, 3600}.",
            );
        }
        if let Some(v) = self.verification_level {
            e.check_range(&["verification_level"], v.into(), 0, 4);
        }
        if let Some(v) = self.default_message_notifications {
            e.check_range(&["default_message_notifications"], v.into(), 0, 1);
        }
        if let Some(v) = self.explicit_content_filter {
            e.check_range(&["explicit_content_filter"], v.into(), 0, 2);
        }
        e.finish()
    }
}

body! {
    /// `POST /guilds/{id}/channels`.
    pub struct CreateChannel {
        pub name: String,
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        pub kind: Option<ChannelType>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub topic: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub position: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub permission_overwrites: Option<Vec<PermissionOverwrite>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub parent_id: Option<Snowflake>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub nsfw: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rate_limit_per_user: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bitrate: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user_limit: Option<u32>,
    }
}

fn validate_channel_fields(
    e: &mut FormErrors,
    name: Option<&str>,
    kind: Option<ChannelType>,
    topic: Option<&str>,
    overwrites: Option<&[PermissionOverwrite]>,
    rate_limit: Option<u32>,
) {
    if let Some(n) = name {
        e.check_len(&["name"], n, 1, 100);
    }
    if let Some(k) = kind
        && !k.is_supported_guild_type()
    {
        e.add(
            &["type"],
            "BASE_TYPE_CHOICES",
            "Value must be one of {0, 2, 4, 5, 13}.",
        );
    }
    if let Some(t) = topic {
        e.check_len(&["topic"], t, 0, 1024);
    }
    if let Some(o) = overwrites {
        if o.len() > 100 {
            e.add(
                &["permission_overwrites"],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 100 or fewer in length.",
            );
        }
        for (i, ow) in o.iter().enumerate() {
            if ow.kind > 1 {
                let i = i.to_string();
                e.add(
                    &["permission_overwrites", &i, "type"],
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {0, 1}.",
                );
            }
        }
    }
    if let Some(r) = rate_limit {
        e.check_range(&["rate_limit_per_user"], r.into(), 0, 21600);
    }
}

impl CreateChannel {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        validate_channel_fields(
            &mut e,
            Some(&self.name),
            self.kind,
            self.topic.as_deref(),
            self.permission_overwrites.as_deref(),
            self.rate_limit_per_user,
        );
        e.finish()
    }
}

body! {
    /// `PATCH /channels/{id}`.
    pub struct ModifyChannel {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub position: Option<i32>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub topic: Option<Option<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub nsfw: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rate_limit_per_user: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub permission_overwrites: Option<Vec<PermissionOverwrite>>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub parent_id: Option<Option<Snowflake>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bitrate: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user_limit: Option<u32>,
        /// A group DM's icon (image data or a hash); `null` removes it.
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub icon: Option<Option<String>>,
    }
}

impl ModifyChannel {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        validate_channel_fields(
            &mut e,
            self.name.as_deref(),
            None,
            self.topic.as_ref().and_then(|t| t.as_deref()),
            self.permission_overwrites.as_deref(),
            self.rate_limit_per_user,
        );
        e.finish()
    }
}

body! {
    /// One entry of `PATCH /guilds/{id}/channels`.
    pub struct ChannelPosition {
        pub id: Snowflake,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub position: Option<Option<i32>>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub parent_id: Option<Option<Snowflake>>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub lock_permissions: Option<Option<bool>>,
    }
}

body! {
    /// `PUT /channels/{id}/permissions/{overwrite_id}`.
    pub struct EditOverwrite {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub allow: Option<Permissions>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub deny: Option<Permissions>,
        #[serde(rename = "type")]
        pub kind: u8,
    }
}

impl EditOverwrite {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        if self.kind > 1 {
            e.add(
                &["type"],
                "BASE_TYPE_CHOICES",
                "Value must be one of {0, 1}.",
            );
        }
        e.finish()
    }
}

body! {
    /// `POST /guilds/{id}/roles` and `PATCH /guilds/{id}/roles/{role}`.
    pub struct RoleBody {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub permissions: Option<Permissions>,
        /// The older name of `colors.primary_color`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub color: Option<u32>,
        /// Discord's role colors; only a solid color (`primary_color`) is available, and it
        /// wins over `color`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub colors: Option<RoleColors>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hoist: Option<bool>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub unicode_emoji: Option<Option<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub mentionable: Option<bool>,
    }
}

impl RoleBody {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        if let Some(n) = &self.name {
            e.check_len(&["name"], n, 1, 100);
        }
        if let Some(c) = self.color {
            e.check_range(&["color"], c.into(), 0, 0xFF_FFFF);
        }
        if let Some(c) = &self.colors {
            e.check_range(
                &["colors", "primary_color"],
                c.primary_color.into(),
                0,
                0xFF_FFFF,
            );
            for (field, value) in [
                ("secondary_color", c.secondary_color),
                ("tertiary_color", c.tertiary_color),
            ] {
                if value.is_some() {
                    e.add(
                        &["colors", field],
                        "BASE_TYPE_INVALID",
                        "Gradient and holographic role colors are not available.",
                    );
                }
            }
        }
        e.finish()
    }

    /// Folds `colors.primary_color` into `color`, the one color a role has here.
    pub fn fold_colors(mut self) -> RoleBody {
        if let Some(c) = self.colors.take() {
            self.color = Some(c.primary_color);
        }
        self
    }
}

body! {
    /// One entry of `PATCH /guilds/{id}/roles` (positions).
    pub struct RolePosition {
        pub id: Snowflake,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub position: Option<Option<i32>>,
    }
}

body! {
    /// `PATCH /guilds/{id}/members/{user}`.
    pub struct ModifyMember {
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub nick: Option<Option<String>>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub roles: Option<Option<Vec<Snowflake>>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub mute: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub deaf: Option<bool>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub communication_disabled_until: Option<Option<Timestamp>>,
    }
}

/// Discord caps a timeout at 28 days.
pub const MAX_TIMEOUT_SECS: i64 = 28 * 24 * 3600;

impl ModifyMember {
    pub fn validate(&self, now: Timestamp) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        if let Some(Some(n)) = &self.nick {
            e.check_len(&["nick"], n, 1, 32);
        }
        if let Some(Some(until)) = self.communication_disabled_until
            && until.unix_ms() > now.plus_secs(MAX_TIMEOUT_SECS).unix_ms()
        {
            e.add(
                &["communication_disabled_until"],
                "BASE_TYPE_BAD_TIME",
                "Timeout cannot be longer than 28 days.",
            );
        }
        e.finish()
    }
}

body! {
    /// `PATCH /guilds/{id}/members/@me`.
    pub struct ModifyCurrentMember {
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub nick: Option<Option<String>>,
    }
}

body! {
    /// `PUT /guilds/{id}/bans/{user}`.
    pub struct CreateBan {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub delete_message_seconds: Option<u32>,
        /// Deprecated by Discord but still accepted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub delete_message_days: Option<u32>,
    }
}

impl CreateBan {
    /// Seconds of recent messages to delete, after validation.
    pub fn delete_seconds(&self) -> Result<u32, ApiError> {
        let mut e = FormErrors::default();
        if let Some(s) = self.delete_message_seconds {
            e.check_range(&["delete_message_seconds"], s.into(), 0, 604_800);
        }
        if let Some(d) = self.delete_message_days {
            e.check_range(&["delete_message_days"], d.into(), 0, 7);
        }
        e.finish()?;
        Ok(self
            .delete_message_seconds
            .or(self.delete_message_days.map(|d| d * 86_400))
            .unwrap_or(0))
    }
}

body! {
    /// `POST /channels/{id}/invites`.
    pub struct CreateInvite {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_age: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_uses: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub temporary: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub unique: Option<bool>,
    }
}

impl CreateInvite {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        if let Some(a) = self.max_age {
            e.check_range(&["max_age"], a.into(), 0, 604_800);
        }
        if let Some(u) = self.max_uses {
            e.check_range(&["max_uses"], u.into(), 0, 100);
        }
        e.finish()
    }
}

// ---------------------------------------------------------------- messages

body! {
    /// `allowed_mentions` on message create.
    pub struct AllowedMentions {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub parse: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub roles: Option<Vec<Snowflake>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub users: Option<Vec<Snowflake>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub replied_user: Option<bool>,
    }
}

body! {
    /// `POST /channels/{id}/messages`.
    pub struct CreateMessage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub content: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub nonce: Option<Nonce>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub enforce_nonce: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tts: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub embeds: Option<Vec<Embed>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub allowed_mentions: Option<AllowedMentions>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub message_reference: Option<MessageReference>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::json_objects())"))]
        pub components: Option<Vec<Value>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub sticker_ids: Option<Vec<Snowflake>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub flags: Option<u64>,
        /// With a `multipart/form-data` upload: names and descriptions for the `files[n]` parts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub attachments: Option<Vec<AttachmentRef>>,
    }
}

body! {
    /// An entry of a message body's `attachments`. On create, `id` is the `n` of the
    /// `files[n]` part it describes; on edit, the id of an existing attachment to keep.
    pub struct AttachmentRef {
        pub id: Snowflake,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub filename: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
    }
}

/// Discord's message limits.
pub const MAX_CONTENT_CHARS: usize = 2000;
pub const MAX_EMBEDS: usize = 10;
pub const MAX_EMBED_CHARS: usize = 6000;

fn validate_message_parts(e: &mut FormErrors, content: Option<&str>, embeds: Option<&[Embed]>) {
    if let Some(c) = content
        && c.chars().count() > MAX_CONTENT_CHARS
    {
        e.add(
            &["content"],
            "BASE_TYPE_MAX_LENGTH",
            "Must be 2000 or fewer in length.",
        );
    }
    if let Some(list) = embeds {
        if list.len() > MAX_EMBEDS {
            e.add(
                &["embeds"],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 10 or fewer in length.",
            );
        }
        if list.iter().map(Embed::text_len).sum::<usize>() > MAX_EMBED_CHARS {
            e.add(
                &["embeds"],
                "MAX_EMBED_SIZE_EXCEEDED",
                "Embed size exceeds maximum size of 6000",
            );
        }
        for (i, em) in list.iter().enumerate() {
            let i = i.to_string();
            if let Some(t) = &em.title {
                e.check_len(&["embeds", &i, "title"], t, 0, 256);
            }
            if let Some(d) = &em.description {
                e.check_len(&["embeds", &i, "description"], d, 0, 4096);
            }
            if em.fields.len() > 25 {
                e.add(
                    &["embeds", &i, "fields"],
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 25 or fewer in length.",
                );
            }
            // Discord's per-field limits; a field's name and value may not be empty.
            for (j, f) in em.fields.iter().enumerate() {
                let j = j.to_string();
                e.check_len(&["embeds", &i, "fields", &j, "name"], &f.name, 1, 256);
                e.check_len(&["embeds", &i, "fields", &j, "value"], &f.value, 1, 1024);
            }
            if let Some(f) = &em.footer {
                e.check_len(&["embeds", &i, "footer", "text"], &f.text, 1, 2048);
            }
            if let Some(a) = &em.author {
                e.check_len(&["embeds", &i, "author", "name"], &a.name, 1, 256);
            }
        }
    }
}

/// Longest attachment description, in characters.
pub const MAX_ATTACHMENT_DESCRIPTION_CHARS: usize = 1024;

fn validate_attachment_refs(e: &mut FormErrors, refs: Option<&[AttachmentRef]>) {
    for (i, a) in refs.unwrap_or_default().iter().enumerate() {
        if let Some(d) = &a.description {
            e.check_len(
                &["attachments", &i.to_string(), "description"],
                d,
                0,
                MAX_ATTACHMENT_DESCRIPTION_CHARS,
            );
        }
    }
}

impl CreateMessage {
    /// Checks a body sent without files.
    pub fn validate(&self) -> Result<(), ApiError> {
        self.validate_with_files(0)
    }

    /// Checks a body that comes with `files` uploaded files (which alone make it non-empty).
    pub fn validate_with_files(&self, files: usize) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        validate_attachment_refs(&mut e, self.attachments.as_deref());
        validate_message_parts(&mut e, self.content.as_deref(), self.embeds.as_deref());
        if let Some(Nonce::Str(n)) = &self.nonce
            && n.chars().count() > 25
        {
            e.add(
                &["nonce"],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 25 or fewer in length.",
            );
        }
        e.finish()?;
        let empty_content = self.content.as_deref().is_none_or(|c| c.trim().is_empty());
        let no_embeds = self.embeds.as_ref().is_none_or(Vec::is_empty);
        let no_stickers = self.sticker_ids.as_ref().is_none_or(Vec::is_empty);
        if empty_content && no_embeds && no_stickers && files == 0 {
            return Err(ApiError::new(
                400,
                crate::ErrorCode::EmptyMessage,
                "Cannot send an empty message",
            ));
        }
        Ok(())
    }
}

body! {
    /// `PATCH /channels/{id}/messages/{id}`.
    pub struct EditMessage {
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub content: Option<Option<String>>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub embeds: Option<Option<Vec<Embed>>>,
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub flags: Option<Option<u64>>,
        /// The attachments to keep; any attachment not listed is removed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub attachments: Option<Vec<AttachmentRef>>,
    }
}

impl EditMessage {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        validate_message_parts(
            &mut e,
            self.content.as_ref().and_then(|c| c.as_deref()),
            self.embeds.as_ref().and_then(|c| c.as_deref()),
        );
        validate_attachment_refs(&mut e, self.attachments.as_deref());
        e.finish()
    }
}

// ---------------------------------------------------------------- webhooks

/// Longest webhook name, and longest execution `username`.
pub const MAX_WEBHOOK_NAME_CHARS: usize = 80;

/// Discord's rule for a webhook's name and an execution's `username`: 1–80 characters, and
/// neither "clyde" nor "discord" in any case.
fn validate_webhook_name(e: &mut FormErrors, field: &str, name: &str) {
    e.check_len(&[field], name, 1, MAX_WEBHOOK_NAME_CHARS);
    let lower = name.to_lowercase();
    if ["clyde", "discord"].iter().any(|w| lower.contains(w)) {
        e.add(
            &[field],
            "WEBHOOK_NAME_INVALID",
            "Webhook names cannot contain \"clyde\" or \"discord\".",
        );
    }
}

body! {
    /// `POST /channels/{id}/webhooks`.
    pub struct CreateWebhook {
        pub name: String,
        /// Image data (`data:image/...;base64,...`) or an avatar hash.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub avatar: Option<String>,
    }
}

impl CreateWebhook {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        validate_webhook_name(&mut e, "name", &self.name);
        e.finish()
    }
}

body! {
    /// `PATCH /webhooks/{id}[/{token}]`; moving it (`channel_id`) needs a user's token.
    pub struct ModifyWebhook {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// Absent: unchanged; `null`: removed.
        #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
        pub avatar: Option<Option<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub channel_id: Option<Snowflake>,
    }
}

impl ModifyWebhook {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        if let Some(n) = &self.name {
            validate_webhook_name(&mut e, "name", n);
        }
        e.finish()
    }
}

body! {
    /// `POST /webhooks/{id}/{token}`: a message posted as the webhook, with its name
    /// (`username`) and avatar (`avatar_url`) overridden for this message if given.
    pub struct ExecuteWebhook {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub content: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub username: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub avatar_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tts: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::few())"))]
        pub embeds: Option<Vec<Embed>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub allowed_mentions: Option<AllowedMentions>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(crate::arbitrary::json_objects())"))]
        pub components: Option<Vec<Value>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub flags: Option<u64>,
    }
}

/// Longest `avatar_url` of an execution.
pub const MAX_AVATAR_URL_CHARS: usize = 2048;

impl ExecuteWebhook {
    /// The `username` rule and an http(s) `avatar_url`, then a create's limits.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        if let Some(u) = &self.username {
            validate_webhook_name(&mut e, "username", u);
        }
        if let Some(url) = &self.avatar_url
            && (!(url.starts_with("https://") || url.starts_with("http://"))
                || url.chars().count() > MAX_AVATAR_URL_CHARS)
        {
            e.add(
                &["avatar_url"],
                "URL_TYPE_INVALID_URL",
                "Not a well formed URL.",
            );
        }
        e.finish()?;
        self.message().validate()
    }

    /// The message part of the execution, as a create body.
    pub fn message(&self) -> CreateMessage {
        CreateMessage {
            content: self.content.clone(),
            tts: self.tts,
            embeds: self.embeds.clone(),
            allowed_mentions: self.allowed_mentions.clone(),
            components: self.components.clone(),
            flags: self.flags,
            ..CreateMessage::default()
        }
    }
}

/// `POST /webhooks/{id}/{token}` query: `wait=true` answers with the message once it is
/// stored (else 204); `thread_id` names a thread of the channel.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ExecuteWebhookQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<Snowflake>,
}

body! {
    /// `POST /channels/{id}/messages/bulk-delete`.
    pub struct BulkDelete {
        #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
        pub messages: Vec<Snowflake>,
    }
}

impl BulkDelete {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut e = FormErrors::default();
        if self.messages.len() < 2 {
            e.add(
                &["messages"],
                "BASE_TYPE_MIN_LENGTH",
                "Must be 2 or more in length.",
            );
        } else if self.messages.len() > 100 {
            e.add(
                &["messages"],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 100 or fewer in length.",
            );
        }
        e.finish()
    }
}

/// `GET /channels/{id}/messages` query.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct MessagesQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Snowflake>,
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Snowflake>,
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub around: Option<Snowflake>,
}

/// A validated history cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub enum HistoryAnchor {
    Latest,
    Before(Snowflake),
    After(Snowflake),
    Around(Snowflake),
}

impl MessagesQuery {
    /// Validates the limit (1–100, default 50) and that at most one anchor is given.
    pub fn anchor(&self) -> Result<(HistoryAnchor, usize), ApiError> {
        let mut e = FormErrors::default();
        let limit = self.limit.unwrap_or(50);
        e.check_range(&["limit"], limit, 1, 100);
        let anchors = [
            self.before.is_some(),
            self.after.is_some(),
            self.around.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if anchors > 1 {
            e.add(
                &["around"],
                "BASE_TYPE_CHOICES",
                "Only one of before, after and around may be given.",
            );
        }
        e.finish()?;
        let anchor = match (self.before, self.after, self.around) {
            (Some(b), _, _) => HistoryAnchor::Before(b),
            (_, Some(a), _) => HistoryAnchor::After(a),
            (_, _, Some(r)) => HistoryAnchor::Around(r),
            _ => HistoryAnchor::Latest,
        };
        Ok((anchor, limit as usize))
    }
}

/// `GET /guilds/{id}/audit-logs` query: filters by acting user and action type, `before` /
/// `after` entry-id cursors, and `limit` 1–100 (default 50).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AuditLogQuery {
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Snowflake>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_type: Option<i64>,
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Snowflake>,
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Snowflake>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// A validated audit-log query, as the stores answer it: entries with ids strictly between
/// `after` and `before` that match both filters, newest first. With `after`, the `limit`
/// entries just above it (what paging forward needs); otherwise the newest `limit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct AuditLogFilter {
    pub user_id: Option<Snowflake>,
    pub action_type: Option<u16>,
    pub before: Option<Snowflake>,
    pub after: Option<Snowflake>,
    pub limit: usize,
}

impl AuditLogFilter {
    /// Whether an entry passes the user and action filters (the id range is the stores' part).
    pub fn matches(&self, user_id: Option<Snowflake>, action_type: u16) -> bool {
        self.user_id.is_none_or(|u| user_id == Some(u))
            && self.action_type.is_none_or(|a| a == action_type)
    }

    /// Whether an id lies inside the cursors.
    pub fn in_range(&self, id: Snowflake) -> bool {
        self.before.is_none_or(|b| id < b) && self.after.is_none_or(|a| id > a)
    }
}

impl AuditLogQuery {
    /// Validates the limit (1–100, default 50) and the action type (a u16, as Discord's).
    pub fn filter(&self) -> Result<AuditLogFilter, ApiError> {
        let mut e = FormErrors::default();
        let limit = self.limit.unwrap_or(50);
        e.check_range(&["limit"], limit, 1, 100);
        if let Some(a) = self.action_type {
            e.check_range(&["action_type"], a, 0, i64::from(u16::MAX));
        }
        e.finish()?;
        Ok(AuditLogFilter {
            user_id: self.user_id,
            action_type: self.action_type.map(|a| a as u16),
            before: self.before,
            after: self.after,
            limit: limit as usize,
        })
    }
}

/// `GET /users/@me/guilds` query: `limit` 1–200 (default 200) and `before`/`after` cursors.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct GuildsQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    pub before: Option<Snowflake>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    pub after: Option<Snowflake>,
}

/// `GET /guilds/{id}/members` query.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct MembersQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Snowflake>,
}

impl MembersQuery {
    pub fn validated(&self) -> Result<(usize, Snowflake), ApiError> {
        let mut e = FormErrors::default();
        let limit = self.limit.unwrap_or(1);
        e.check_range(&["limit"], limit, 1, 1000);
        e.finish()?;
        Ok((limit as usize, self.after.unwrap_or_default()))
    }
}

/// `GET .../reactions/{emoji}` query.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ReactionsQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Snowflake>,
}

impl ReactionsQuery {
    pub fn validated(&self) -> Result<(usize, Snowflake), ApiError> {
        let mut e = FormErrors::default();
        let limit = self.limit.unwrap_or(25);
        e.check_range(&["limit"], limit, 1, 100);
        e.finish()?;
        Ok((limit as usize, self.after.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embed_fields_footers_and_authors_are_held_to_discords_limits() {
        let embed = |v: serde_json::Value| -> CreateMessage {
            serde_json::from_value(serde_json::json!({"embeds": [v]})).unwrap()
        };
        let ok = embed(serde_json::json!({
            "fields": [{"name": "n", "value": "v"}],
            "footer": {"text": "f"}, "author": {"name": "a"}
        }));
        assert!(ok.validate_with_files(0).is_ok());
        for (bad, path) in [
            (
                serde_json::json!({"fields": [{"name": "", "value": "v"}]}),
                ["fields", "0", "name"],
            ),
            (
                serde_json::json!({"fields": [{"name": "n", "value": "v".repeat(1025)}]}),
                ["fields", "0", "value"],
            ),
            (
                serde_json::json!({"footer": {"text": "f".repeat(2049)}}),
                ["footer", "text", ""],
            ),
            (
                serde_json::json!({"author": {"name": "a".repeat(257)}}),
                ["author", "name", ""],
            ),
        ] {
            let err = embed(bad).validate_with_files(0).unwrap_err();
            assert_eq!(err.code(), 50035);
            let mut at = &err.body.errors.clone().unwrap()["embeds"]["0"];
            for seg in path.iter().filter(|s| !s.is_empty()) {
                at = &at[*seg];
            }
            assert!(at["_errors"].is_array(), "{path:?}: {:?}", err.body.errors);
        }
    }

    #[test]
    fn nullable_distinguishes_absent_from_null() {
        let absent: ModifyChannel = serde_json::from_str("{}").unwrap();
        let null: ModifyChannel = serde_json::from_str(r#"{"topic":null}"#).unwrap();
        let set: ModifyChannel = serde_json::from_str(r#"{"topic":"hi"}"#).unwrap();
        assert_eq!(absent.topic, None);
        assert_eq!(null.topic, Some(None));
        assert_eq!(set.topic, Some(Some("hi".into())));
    }

    #[test]
    fn message_limits() {
        let ok = CreateMessage {
            content: Some("a".repeat(2000)),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        let long = CreateMessage {
            content: Some("é".repeat(2001)),
            ..Default::default()
        };
        let err = long.validate().unwrap_err();
        assert_eq!(err.code(), 50035);
        let empty = CreateMessage {
            content: Some("  ".into()),
            ..Default::default()
        };
        assert_eq!(empty.validate().unwrap_err().code(), 50006);
        let nonce = CreateMessage {
            content: Some("x".into()),
            nonce: Some(Nonce::Str("n".repeat(26))),
            ..Default::default()
        };
        assert_eq!(nonce.validate().unwrap_err().code(), 50035);
    }

    #[test]
    fn history_query_validation() {
        let q = |s: &str| -> MessagesQuery { serde_json::from_str(s).unwrap() };
        assert_eq!(q("{}").anchor().unwrap(), (HistoryAnchor::Latest, 50));
        assert_eq!(
            q(r#"{"before":"10","limit":5}"#).anchor().unwrap(),
            (HistoryAnchor::Before(Snowflake(10)), 5)
        );
        assert!(q(r#"{"limit":0}"#).anchor().is_err());
        assert!(q(r#"{"limit":101}"#).anchor().is_err());
        assert!(q(r#"{"before":"1","after":"2"}"#).anchor().is_err());
    }

    #[test]
    fn a_new_password_needs_the_current_one_and_8_to_72_characters() {
        let change = |password: Option<&str>, new: &str| ModifyCurrentUser {
            password: password.map(str::to_owned),
            new_password: Some(new.to_owned()),
            ..ModifyCurrentUser::default()
        };
        let errors = |m: ModifyCurrentUser| {
            serde_json::to_value(m.validate().unwrap_err().body).unwrap()["errors"].clone()
        };
        let e = errors(change(None, "long enough"));
        assert_eq!(e["password"]["_errors"][0]["code"], "BASE_TYPE_REQUIRED");
        let e = errors(change(Some("old"), "short"));
        assert_eq!(
            e["new_password"]["_errors"][0]["code"],
            "BASE_TYPE_BAD_LENGTH"
        );
        assert!(errors(change(Some("old"), &"x".repeat(73)))["new_password"].is_object());
        assert!(change(Some("old"), "eight ch").validate().is_ok());
        assert!(change(Some("old"), &"x".repeat(72)).validate().is_ok());
    }

    #[test]
    fn register_validation_reports_every_bad_field() {
        let r = RegisterRequest {
            username: "Bad Name".into(),
            email: "nope".into(),
            password: "short".into(),
            global_name: None,
        };
        let body = serde_json::to_value(r.validate().unwrap_err().body).unwrap();
        for f in ["username", "email", "password"] {
            assert!(
                body["errors"][f]["_errors"].is_array(),
                "{f} missing: {body}"
            );
        }
        let good = RegisterRequest {
            username: "alice.b_2".into(),
            email: "a@example.com".into(),
            password: "correct horse".into(),
            global_name: Some("Alice".into()),
        };
        assert!(good.validate().is_ok());
    }

    #[test]
    fn bulk_delete_bounds_and_ban_seconds() {
        let b = |n: u64| BulkDelete {
            messages: (0..n).map(Snowflake).collect(),
        };
        assert!(b(1).validate().is_err());
        assert!(b(2).validate().is_ok());
        assert!(b(100).validate().is_ok());
        assert!(b(101).validate().is_err());
        let ban = CreateBan {
            delete_message_days: Some(2),
            ..Default::default()
        };
        assert_eq!(ban.delete_seconds().unwrap(), 172_800);
        let bad = CreateBan {
            delete_message_seconds: Some(604_801),
            ..Default::default()
        };
        assert!(bad.delete_seconds().is_err());
    }
}
