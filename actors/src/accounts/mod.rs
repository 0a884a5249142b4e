//! Accounts: users, sessions, MFA, applications and bots.
//!
//! The policy around the primitives in [`crate::auth`]:
//! - a login opens a **session**, a refresh-token family; access tokens are short-lived JWTs
//!   naming that family (`sid`), refresh tokens are opaque, stored hashed, and rotated on every
//!   use; presenting an already-rotated refresh token revokes the whole family (theft
//!   detection);
//! - a session ends for good when its family is revoked in the store: by logout, by the reuse
//!   of a rotated refresh token, or by a password change (which revokes every family of the
//!   user and opens a new one). An access token is checked against its family in the store,
//!   behind a cache of `session_cache` (a few seconds), so a revocation holds on every node
//!   and across restarts. The revoking node also publishes it through the shared state
//!   ([`Invalidation::SessionRevoked`]) and every node that hears it refuses the tokens at
//!   once; the cache's lifetime is the bound when the message is lost (Redis down);
//! - TOTP codes are accepted once (the last accepted time step is stored), backup codes once;
//! - failed logins are throttled per account and per client IP, in fixed windows of the
//!   shared state, so the throttle holds across the nodes of a cluster;
//! - bot tokens are opaque, stored hashed, and resolved through a small cache that a reset
//!   empties on every node ([`Invalidation::BotTokenReset`]; [`BOT_TOKEN_CACHE`] bounds a lost
//!   message);
//! - a changed user is published ([`Invalidation::UserChanged`]) so every node drops it from
//!   its [`UserDirectory`].
//!
//! Password hashing is CPU-heavy by design, so it runs on the blocking pool.
//!
//! The service is one type; its parts live by topic: `login` (registration, logins, refresh,
//! logout, throttles), `mfa`, `authenticate`, `profile` (the caller's account and
//! password) and `applications` (applications and bots).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use enrichment_protocol::models::{Application, User};
use enrichment_protocol::rest::{
    BackupCode, CreateApplication, EnableTotpResponse, LoginRequest, LoginResponse,
    ModifiedCurrentUser, ModifyApplication, ModifyCurrentUser, RegisterRequest, RegisterResponse,
    TokenResponse,
};
use enrichment_protocol::{
    ApiError, ErrorCode, FormErrors, Snowflake, SnowflakeGenerator, Timestamp,
};
use enrichment_storage::shared::memory::MemoryShared;
use enrichment_storage::shared::{Invalidation, SharedState, keys};
use enrichment_storage::{
    ApplicationRecord, BackupCodeRecord, Credentials, RefreshTokenRecord, RotateOutcome,
    StoreError, Stores,
};
use tokio::sync::broadcast::error::RecvError;

use crate::auth::{self, AuthError, JwtKeys, Keyring, PasswordParams};
use crate::users::UserDirectory;

mod applications;
mod authenticate;
mod login;
mod mfa;
mod profile;

/// Who is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Snowflake,
    pub bot: bool,
    /// The session (refresh family) of a user token; `None` for bots.
    pub session: Option<Snowflake>,
}

#[derive(Clone, Debug)]
pub struct AccountConfig {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub password: PasswordParams,
    pub login_attempts_per_account: u32,
    pub login_attempts_per_ip: u32,
    pub login_window: Duration,
    /// How long a session's state (live or revoked) read from the store is trusted: the bound
    /// on how long a revocation whose broadcast was lost keeps a token working elsewhere.
    pub session_cache: Duration,
}

/// Sessions whose state one node keeps cached; past it the least used are read again.
const SESSION_CACHE_CAPACITY: u64 = 100_000;

pub struct AccountService {
    stores: Stores,
    users: UserDirectory,
    keys: Arc<Keyring>,
    ids: Arc<SnowflakeGenerator>,
    config: AccountConfig,
    /// Login throttles, and the invalidations this service publishes and hears.
    shared: Arc<dyn SharedState>,
    /// Prefix of the shared-state keys this service writes.
    prefix: String,
    /// Verified bot tokens (by hash) and when they were read from the store. A reset empties
    /// the bot's entries on every node; [`BOT_TOKEN_CACHE`] bounds a lost announcement.
    bot_tokens: DashMap<String, (Snowflake, Instant)>,
    /// Whether a session (refresh family) is revoked, as the store said within the last
    /// `session_cache`, or as a revocation announced since.
    sessions: moka::future::Cache<Snowflake, bool>,
    /// A hash with the configured cost, verified against when a login names no account.
    decoy_hash: String,
}

impl std::fmt::Debug for AccountService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountService").finish_non_exhaustive()
    }
}

fn store_err(e: StoreError) -> ApiError {
    crate::guild::GuildContext::store_error(e)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn invalid_login() -> ApiError {
    let mut e = FormErrors::default();
    e.add(&["login"], "INVALID_LOGIN", "Login or password is invalid.");
    e.add(
        &["password"],
        "INVALID_LOGIN",
        "Login or password is invalid.",
    );
    e.into_error()
}

fn invalid_code() -> ApiError {
    ApiError::new(
        400,
        ErrorCode::InvalidTwoFactorCode,
        "Invalid two-factor code",
    )
}

/// How long a verified bot token is trusted without asking the store again: the bound on
/// how long a token reset on another node of the cluster keeps working here.
pub const BOT_TOKEN_CACHE: Duration = Duration::from_secs(30);

impl AccountService {
    pub fn new(
        stores: Stores,
        users: UserDirectory,
        keys: Arc<Keyring>,
        ids: Arc<SnowflakeGenerator>,
        config: AccountConfig,
    ) -> Self {
        let decoy_hash = config
            .password
            .hash_password(&auth::new_refresh_token())
            .unwrap_or_default();
        let sessions = moka::future::Cache::builder()
            .max_capacity(SESSION_CACHE_CAPACITY)
            .time_to_live(config.session_cache)
            .build();
        AccountService {
            stores,
            users,
            keys,
            ids,
            config,
            shared: Arc::new(MemoryShared::new()),
            prefix: "enrichment".into(),
            bot_tokens: DashMap::new(),
            sessions,
            decoy_hash,
        }
    }

    /// Keeps login throttles in `shared` (the cluster's) and publishes invalidations there,
    /// under keys starting with `prefix`, instead of in a state of this service's own.
    pub fn with_shared(mut self, shared: Arc<dyn SharedState>, prefix: String) -> Self {
        self.shared = shared;
        self.prefix = prefix;
        self
    }

    /// While the service lives: applies the invalidations every node (this one included)
    /// publishes. When announcements were skipped (this listener fell behind), every cached
    /// session state and bot token is dropped, so nothing missed can outlive the next read.
    pub fn spawn_invalidation_listener(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let mut heard = self.shared.invalidations();
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let next = heard.recv().await;
                let Some(me) = me.upgrade() else { return };
                match next {
                    Ok(Invalidation::SessionRevoked { session_id }) => {
                        me.sessions.insert(session_id, true).await;
                    }
                    Ok(Invalidation::UserChanged { user_id }) => me.users.invalidate(user_id),
                    Ok(Invalidation::BotTokenReset { bot_user_id }) => {
                        me.bot_tokens.retain(|_, (bot, _)| *bot != bot_user_id);
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "invalidations skipped; dropping caches");
                        me.sessions.invalidate_all();
                        me.bot_tokens.clear();
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        })
    }

    /// Tells every node (this one too) about a change; a failure is only logged, since the
    /// caches' lifetimes bound what a lost announcement costs.
    async fn publish(&self, invalidation: Invalidation) {
        if let Err(e) = self.shared.publish_invalidation(&invalidation).await {
            tracing::warn!(error = %e, ?invalidation, "invalidation not published");
        }
    }

    /// Marks sessions revoked here at once, and everywhere else as soon as they hear it. The
    /// store already holds the revocation.
    async fn sessions_ended(&self, families: &[Snowflake]) {
        for family in families {
            self.sessions.insert(*family, true).await;
            self.publish(Invalidation::SessionRevoked {
                session_id: *family,
            })
            .await;
        }
    }

    /// Whether a session ended: from the cache, else from the store.
    async fn session_revoked(&self, family: Snowflake) -> Result<bool, ApiError> {
        let users = self.stores.users.clone();
        self.sessions
            .try_get_with(
                family,
                async move { users.refresh_family_revoked(family).await },
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot read a session's state");
                ApiError::internal()
            })
    }

    pub fn users(&self) -> &UserDirectory {
        &self.users
    }

    async fn hash_password(&self, password: String) -> Result<String, ApiError> {
        let params = self.config.password;
        tokio::task::spawn_blocking(move || params.hash_password(&password))
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(|e| {
                tracing::error!(error = %e, "password hashing failed");
                ApiError::internal()
            })
    }

    async fn verify_password(password: String, phc: String) -> bool {
        tokio::task::spawn_blocking(move || auth::verify_password(&password, &phc))
            .await
            .unwrap_or(false)
    }

    /// Opens a new session for a user: a refresh family with its first token.
    async fn open_session(&self, user_id: Snowflake) -> Result<TokenResponse, ApiError> {
        let family = self.ids.next_id();
        let refresh = auth::new_refresh_token();
        let rec = RefreshTokenRecord {
            token_hash: auth::hash_token(&refresh),
            family_id: family,
            user_id,
            expires_at: Timestamp::now().plus_secs(self.config.refresh_ttl.as_secs() as i64),
        };
        self.stores
            .users
            .insert_refresh_token(&rec)
            .await
            .map_err(store_err)?;
        Ok(TokenResponse {
            token: self.access_token(user_id, family)?,
            refresh_token: refresh,
        })
    }

    /// A fresh access token in the caller's current session (MFA changes hand one out, as
    /// Discord does). Only user sessions get here: bots have no credentials.
    fn session_token(&self, who: Principal) -> Result<String, ApiError> {
        let family = who.session.ok_or_else(ApiError::unauthorized)?;
        self.access_token(who.user_id, family)
    }

    fn access_token(&self, user_id: Snowflake, family: Snowflake) -> Result<String, ApiError> {
        self.keys
            .keys()
            .issue_for(user_id.get(), family.get(), self.config.access_ttl)
            .map_err(|e| {
                tracing::error!(error = %e, "token signing failed");
                ApiError::internal()
            })
    }
}
