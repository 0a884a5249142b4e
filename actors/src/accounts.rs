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

    // ------------------------------------------------------------ login throttling

    /// The fixed window counting failed logins of `principal` (`ip:{addr}`, `account:{id}`).
    fn throttle_key(&self, principal: &str) -> String {
        keys::rate(&self.prefix, principal, "login-failures")
    }

    fn throttles(&self, account: Option<Snowflake>, ip: &str) -> Vec<(String, u32)> {
        let mut t = vec![(
            self.throttle_key(&format!("ip:{ip}")),
            self.config.login_attempts_per_ip,
        )];
        if let Some(a) = account {
            t.push((
                self.throttle_key(&format!("account:{a}")),
                self.config.login_attempts_per_account,
            ));
        }
        t
    }

    /// Refuses a login while the client's IP or the account has used up its failures for the
    /// window. A shared state that cannot answer throttles nothing.
    async fn check_throttle(&self, account: Option<Snowflake>, ip: &str) -> Result<(), ApiError> {
        for (key, allowed) in self.throttles(account, ip) {
            let window = self.config.login_window;
            match self.shared.window_hit(&key, allowed, window, 0).await {
                Ok(w) if w.remaining == 0 => {
                    metrics::counter!("enrichment_login_throttled_total").increment(1);
                    return Err(ApiError::new(
                        429,
                        ErrorCode::General,
                        format!(
                            "Too many failed login attempts; try again in {} seconds.",
                            w.reset_after.as_secs().max(1)
                        ),
                    ));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "login throttle unavailable"),
            }
        }
        Ok(())
    }

    async fn fail_login(&self, account: Option<Snowflake>, ip: &str) {
        for (key, allowed) in self.throttles(account, ip) {
            let window = self.config.login_window;
            if let Err(e) = self.shared.window_hit(&key, allowed, window, 1).await {
                tracing::warn!(error = %e, "login failure not counted");
            }
        }
    }

    /// Drops expired bot tokens (called periodically).
    pub fn housekeep(&self) {
        self.bot_tokens
            .retain(|_, (_, at)| at.elapsed() < BOT_TOKEN_CACHE);
    }

    // ------------------------------------------------------------ register / login

    pub async fn register(&self, req: RegisterRequest) -> Result<RegisterResponse, ApiError> {
        req.validate()?;
        let id = self.ids.next_id();
        let user = User {
            global_name: req.global_name.clone(),
            mfa_enabled: Some(false),
            email: Some(req.email.clone()),
            verified: Some(false),
            locale: Some("en-US".into()),
            premium_type: Some(0),
            ..User::new(id, req.username.clone())
        };
        let creds = Credentials {
            user_id: id,
            password_hash: self.hash_password(req.password).await?,
            totp_secret: None,
            totp_last_step: 0,
            backup_codes: Vec::new(),
        };
        match self.stores.users.create_user(&user, &creds).await {
            Ok(()) => {}
            Err(StoreError::Conflict(field)) => {
                let (code, message) = match field {
                    "email" => ("EMAIL_ALREADY_REGISTERED", "Email is already registered."),
                    _ => (
                        "USERNAME_ALREADY_TAKEN",
                        "Username is unavailable. Try adding numbers, letters, underscores _ , or periods.",
                    ),
                };
                return Err(ApiError::form(&[field], code, message));
            }
            Err(e) => return Err(store_err(e)),
        }
        self.users.refresh(&user);
        let tokens = self.open_session(id).await?;
        Ok(RegisterResponse {
            token: tokens.token,
            refresh_token: tokens.refresh_token,
            user: Some(user),
        })
    }

    pub async fn login(&self, req: LoginRequest, ip: &str) -> Result<LoginResponse, ApiError> {
        let user_id = self
            .stores
            .users
            .find_user_by_login(req.login.trim())
            .await
            .map_err(store_err)?;
        self.check_throttle(user_id, ip).await?;
        let creds = match user_id {
            Some(id) => self
                .stores
                .users
                .get_credentials(id)
                .await
                .map_err(store_err)?,
            None => None,
        };
        let Some(creds) = creds else {
            // Spend the same hashing time as a real check, so response times do not tell
            // which logins exist.
            let _ = Self::verify_password(req.password, self.decoy_hash.clone()).await;
            self.fail_login(user_id, ip).await;
            return Err(invalid_login());
        };
        if !Self::verify_password(req.password, creds.password_hash.clone()).await {
            self.fail_login(Some(creds.user_id), ip).await;
            return Err(invalid_login());
        }
        if creds.totp_secret.is_some() {
            let ticket = self
                .keys
                .keys()
                .issue_mfa_ticket(creds.user_id.get(), Duration::from_secs(300))
                .map_err(|_| ApiError::internal())?;
            return Ok(LoginResponse {
                user_id: creds.user_id,
                mfa: true,
                ticket: Some(ticket),
                totp: true,
                backup: creds.backup_codes.iter().any(|b| !b.consumed),
                ..Default::default()
            });
        }
        let tokens = self.open_session(creds.user_id).await?;
        Ok(LoginResponse {
            user_id: creds.user_id,
            token: Some(tokens.token),
            refresh_token: Some(tokens.refresh_token),
            ..Default::default()
        })
    }

    /// Accepts a TOTP code (once per time step) or an unused backup code, and records it.
    async fn consume_second_factor(
        &self,
        creds: &mut Credentials,
        code: &str,
    ) -> Result<(), ApiError> {
        let secret = creds.totp_secret.clone().ok_or_else(invalid_code)?;
        let code = code.trim().replace(['-', ' '], "");
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            let step = auth::verify_totp(&secret, &code, unix_now(), creds.totp_last_step)
                .map_err(|_| invalid_code())?;
            creds.totp_last_step = step;
        } else {
            let hash = auth::hash_token(&code.to_ascii_lowercase());
            let slot = creds
                .backup_codes
                .iter_mut()
                .find(|b| !b.consumed && b.code_hash == hash)
                .ok_or_else(invalid_code)?;
            slot.consumed = true;
        }
        // Persisting the spent code before answering is what makes a replay fail.
        self.stores
            .users
            .put_credentials(creds)
            .await
            .map_err(store_err)
    }

    pub async fn login_mfa(
        &self,
        ticket: &str,
        code: &str,
        ip: &str,
    ) -> Result<TokenResponse, ApiError> {
        let verified = self.verify(|k| k.verify_mfa_ticket(ticket)).await;
        let user_id = Snowflake(verified.map_err(|_| {
            ApiError::new(
                400,
                ErrorCode::InvalidTwoFactorTicket,
                "Invalid two-factor login ticket",
            )
        })?);
        self.check_throttle(Some(user_id), ip).await?;
        let mut creds = self
            .stores
            .users
            .get_credentials(user_id)
            .await
            .map_err(store_err)?
            .ok_or_else(ApiError::unauthorized)?;
        if let Err(e) = self.consume_second_factor(&mut creds, code).await {
            self.fail_login(Some(user_id), ip).await;
            return Err(e);
        }
        self.open_session(user_id).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, ApiError> {
        let new_token = auth::new_refresh_token();
        let rec = RefreshTokenRecord {
            token_hash: auth::hash_token(&new_token),
            // The store takes family and user from the token being rotated.
            family_id: Snowflake(0),
            user_id: Snowflake(0),
            expires_at: Timestamp::now().plus_secs(self.config.refresh_ttl.as_secs() as i64),
        };
        let old = auth::hash_token(refresh_token);
        match self
            .stores
            .users
            .rotate_refresh_token(&old, &rec, Timestamp::now())
            .await
            .map_err(store_err)?
        {
            RotateOutcome::Rotated { user_id, family_id } => Ok(TokenResponse {
                token: self.access_token(user_id, family_id)?,
                refresh_token: new_token,
            }),
            RotateOutcome::Reused { family_id } => {
                tracing::warn!(%family_id, "refresh token reused; session revoked");
                metrics::counter!("enrichment_refresh_reuse_total").increment(1);
                self.sessions_ended(&[family_id]).await;
                Err(ApiError::unauthorized())
            }
            RotateOutcome::Invalid => Err(ApiError::unauthorized()),
        }
    }

    /// Ends the caller's session: its refresh tokens and access tokens stop working, on
    /// every node.
    pub async fn logout(&self, who: Principal) -> Result<(), ApiError> {
        if let Some(family) = who.session {
            self.stores
                .users
                .revoke_refresh_family(family)
                .await
                .map_err(store_err)?;
            self.sessions_ended(&[family]).await;
        }
        Ok(())
    }

    // ------------------------------------------------------------ MFA

    pub async fn enable_totp(
        &self,
        who: Principal,
        secret: &str,
        code: &str,
        password: String,
    ) -> Result<EnableTotpResponse, ApiError> {
        let mut creds = self
            .stores
            .users
            .get_credentials(who.user_id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| {
                ApiError::new(
                    403,
                    ErrorCode::InvalidAccountType,
                    "Bots cannot use this endpoint",
                )
            })?;
        if creds.totp_secret.is_some() {
            return Err(ApiError::form(
                &["secret"],
                "MFA_ALREADY_ENABLED",
                "Two-factor authentication is already enabled.",
            ));
        }
        if !Self::verify_password(password, creds.password_hash.clone()).await {
            return Err(ApiError::form(
                &["password"],
                "PASSWORD_DOES_NOT_MATCH",
                "Password does not match.",
            ));
        }
        let step =
            auth::verify_totp(secret, code.trim(), unix_now(), 0).map_err(|_| invalid_code())?;
        let codes = auth::new_backup_codes();
        creds.totp_secret = Some(secret.to_owned());
        creds.totp_last_step = step;
        creds.backup_codes = codes
            .iter()
            .map(|c| BackupCodeRecord {
                code_hash: auth::hash_token(c),
                consumed: false,
            })
            .collect();
        self.stores
            .users
            .put_credentials(&creds)
            .await
            .map_err(store_err)?;
        self.set_mfa_flag(who.user_id, true).await?;
        Ok(EnableTotpResponse {
            token: self.session_token(who)?,
            backup_codes: codes
                .into_iter()
                .map(|code| BackupCode {
                    user_id: who.user_id,
                    code,
                    consumed: false,
                })
                .collect(),
        })
    }

    /// Turns MFA off after one more valid code; answers with a fresh access token.
    pub async fn disable_totp(&self, who: Principal, code: &str) -> Result<String, ApiError> {
        let mut creds = self
            .stores
            .users
            .get_credentials(who.user_id)
            .await
            .map_err(store_err)?
            .ok_or_else(invalid_code)?;
        self.consume_second_factor(&mut creds, code).await?;
        creds.totp_secret = None;
        creds.backup_codes.clear();
        self.stores
            .users
            .put_credentials(&creds)
            .await
            .map_err(store_err)?;
        self.set_mfa_flag(who.user_id, false).await?;
        self.session_token(who)
    }

    async fn set_mfa_flag(&self, user_id: Snowflake, on: bool) -> Result<(), ApiError> {
        let mut user = self
            .stores
            .users
            .get_user(user_id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownUser))?;
        user.mfa_enabled = Some(on);
        self.stores
            .users
            .update_user(&user)
            .await
            .map_err(store_err)?;
        self.user_changed(&user).await;
        Ok(())
    }

    /// Shows a changed user to readers here at once, and has every other node read it again.
    async fn user_changed(&self, user: &User) {
        self.users.refresh(user);
        self.publish(Invalidation::UserChanged { user_id: user.id })
            .await;
    }

    // ------------------------------------------------------------ authentication

    /// The cluster's JWT keys (for rotation through the admin API).
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keys
    }

    /// Runs a token check; a token signed by a key this node has not seen yet (another node
    /// rotated) gets one more try after the keys are read again.
    async fn verify<T>(
        &self,
        check: impl Fn(&JwtKeys) -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        match check(&self.keys.keys()) {
            Err(AuthError::InvalidToken("unknown key"))
                if self.keys.reload_for_unknown_kid().await =>
            {
                check(&self.keys.keys())
            }
            other => other,
        }
    }

    /// Resolves an `Authorization` header: `Bot <token>`, `Bearer <jwt>` or a bare token.
    pub async fn authenticate(&self, header: &str) -> Result<Principal, ApiError> {
        let header = header.trim();
        if let Some(token) = header.strip_prefix("Bot ") {
            return self.authenticate_bot(token.trim()).await;
        }
        let token = header.strip_prefix("Bearer ").unwrap_or(header).trim();
        match self.verify(|k| k.verify(token)).await {
            Ok(claims) => {
                let session = Snowflake(claims.sid);
                if self.session_revoked(session).await? {
                    return Err(ApiError::unauthorized());
                }
                Ok(Principal {
                    user_id: Snowflake(claims.sub),
                    bot: false,
                    session: Some(session),
                })
            }
            // A bare bot token is accepted too, as Discord's own API does for old clients.
            Err(_) if auth::bot_token_user_id(token).is_some() => {
                self.authenticate_bot(token).await
            }
            Err(_) => Err(ApiError::unauthorized()),
        }
    }

    async fn authenticate_bot(&self, token: &str) -> Result<Principal, ApiError> {
        let hash = auth::hash_token(token);
        let cached = self
            .bot_tokens
            .get(&hash)
            .filter(|e| e.1.elapsed() < BOT_TOKEN_CACHE)
            .map(|e| e.0);
        if let Some(id) = cached {
            return Ok(Principal {
                user_id: id,
                bot: true,
                session: None,
            });
        }
        let id = self
            .stores
            .applications
            .bot_by_token_hash(&hash)
            .await
            .map_err(store_err)?
            .ok_or_else(ApiError::unauthorized)?;
        self.bot_tokens.insert(hash, (id, Instant::now()));
        Ok(Principal {
            user_id: id,
            bot: true,
            session: None,
        })
    }

    // ------------------------------------------------------------ users

    pub async fn me(&self, who: Principal) -> Result<User, ApiError> {
        self.stores
            .users
            .get_user(who.user_id)
            .await
            .map_err(store_err)?
            .ok_or_else(ApiError::unauthorized)
    }

    pub async fn user(&self, id: Snowflake) -> Result<User, ApiError> {
        self.users
            .get(id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownUser))
    }

    /// `PATCH /users/@me`. With `new_password` (and the right current `password`), the
    /// password is replaced, every session of the user ends on every node, and the answer
    /// carries the tokens of a new session, as Discord's does.
    pub async fn modify_me(
        &self,
        who: Principal,
        body: ModifyCurrentUser,
    ) -> Result<ModifiedCurrentUser, ApiError> {
        body.validate()?;
        let mut user = self.me(who).await?;
        // Checked before anything is written, so a wrong password changes nothing.
        let new_credentials = match (&body.new_password, body.password) {
            (Some(new_password), Some(password)) => {
                let mut creds = self
                    .stores
                    .users
                    .get_credentials(who.user_id)
                    .await
                    .map_err(store_err)?
                    .ok_or_else(|| {
                        ApiError::new(
                            403,
                            ErrorCode::InvalidAccountType,
                            "Bots cannot use this endpoint",
                        )
                    })?;
                if !Self::verify_password(password, creds.password_hash.clone()).await {
                    return Err(ApiError::form(
                        &["password"],
                        "PASSWORD_DOES_NOT_MATCH",
                        "Password does not match.",
                    ));
                }
                creds.password_hash = self.hash_password(new_password.clone()).await?;
                Some(creds)
            }
            _ => None,
        };
        if let Some(u) = body.username {
            user.username = u;
        }
        if let Some(g) = body.global_name {
            user.global_name = g;
        }
        if let Some(a) = body.avatar {
            user.avatar = a;
        }
        match self.stores.users.update_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ApiError::form(
                    &["username"],
                    "USERNAME_ALREADY_TAKEN",
                    "Username is unavailable.",
                ));
            }
            Err(e) => return Err(store_err(e)),
        }
        let tokens = match new_credentials {
            Some(creds) => Some(self.change_password(&creds).await?),
            None => None,
        };
        self.user_changed(&user).await;
        Ok(ModifiedCurrentUser {
            user,
            token: tokens.as_ref().map(|t| t.token.clone()),
            refresh_token: tokens.map(|t| t.refresh_token),
        })
    }

    /// Stores the new password hash, ends every session of the user (here and on every
    /// node), and opens the one the caller continues in.
    async fn change_password(&self, creds: &Credentials) -> Result<TokenResponse, ApiError> {
        self.stores
            .users
            .put_credentials(creds)
            .await
            .map_err(store_err)?;
        let ended = self
            .stores
            .users
            .revoke_user_refresh_families(creds.user_id)
            .await
            .map_err(store_err)?;
        metrics::counter!("enrichment_password_changes_total").increment(1);
        self.sessions_ended(&ended).await;
        self.open_session(creds.user_id).await
    }

    // ------------------------------------------------------------ applications

    fn wire_application(
        rec: &ApplicationRecord,
        owner: Option<User>,
        bot: Option<User>,
    ) -> Application {
        Application {
            id: rec.id,
            name: rec.name.clone(),
            icon: None,
            description: rec.description.clone(),
            bot_public: true,
            bot_require_code_grant: false,
            verify_key: rec.verify_key.clone(),
            flags: rec.flags,
            owner,
            bot,
        }
    }

    async fn application_view(&self, rec: &ApplicationRecord) -> Result<Application, ApiError> {
        let owner = self.users.get(rec.owner_id).await.map_err(store_err)?;
        let bot = self.users.get(rec.bot_user_id).await.map_err(store_err)?;
        Ok(Self::wire_application(rec, owner, bot))
    }

    /// Creates an application and its bot user (no token yet: reset one to get it).
    pub async fn create_application(
        &self,
        who: Principal,
        body: CreateApplication,
    ) -> Result<Application, ApiError> {
        if who.bot {
            return Err(ApiError::new(
                403,
                ErrorCode::BotsCannotUse,
                "Bots cannot use this endpoint",
            ));
        }
        body.validate()?;
        let id = self.ids.next_id();
        let bot_id = self.ids.next_id();
        let base: String = body
            .name
            .to_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(24)
            .collect();
        // Usernames are unique; the id suffix keeps two bots of the same name apart.
        let username = format!("{}_{:04}", base.trim_matches('.'), bot_id.get() % 10_000);
        let bot = User {
            global_name: Some(body.name.clone()),
            bot: true,
            mfa_enabled: Some(false),
            verified: Some(true),
            ..User::new(bot_id, username)
        };
        let rec = ApplicationRecord {
            id,
            name: body.name,
            description: body.description.unwrap_or_default(),
            owner_id: who.user_id,
            bot_user_id: bot_id,
            verify_key: auth::hash_token(&auth::new_refresh_token()),
            flags: 0,
        };
        self.stores
            .applications
            .create_application(&rec, &bot)
            .await
            .map_err(store_err)?;
        self.users.refresh(&bot);
        self.application_view(&rec).await
    }

    /// An application its owner may see; anyone else gets 404, never data.
    pub async fn owned_application(
        &self,
        who: Principal,
        id: Snowflake,
    ) -> Result<ApplicationRecord, ApiError> {
        match self
            .stores
            .applications
            .get_application(id)
            .await
            .map_err(store_err)?
        {
            Some(app) if app.owner_id == who.user_id => Ok(app),
            _ => Err(ApiError::unknown(ErrorCode::UnknownApplication)),
        }
    }

    pub async fn get_application(
        &self,
        who: Principal,
        id: Snowflake,
    ) -> Result<Application, ApiError> {
        let rec = self.owned_application(who, id).await?;
        self.application_view(&rec).await
    }

    /// Issues a new bot token; the previous one stops working at once.
    pub async fn reset_bot_token(&self, who: Principal, id: Snowflake) -> Result<String, ApiError> {
        let rec = self.owned_application(who, id).await?;
        let token = auth::new_bot_token(rec.bot_user_id.get());
        self.stores
            .applications
            .set_bot_token(rec.bot_user_id, &auth::hash_token(&token))
            .await
            .map_err(store_err)?;
        self.bot_tokens
            .retain(|_, (bot, _)| *bot != rec.bot_user_id);
        self.publish(Invalidation::BotTokenReset {
            bot_user_id: rec.bot_user_id,
        })
        .await;
        Ok(token)
    }

    /// Edits an application's description and limited intent flags. `id` is `None` for the
    /// calling bot's own application (`@me`); otherwise the caller must own it.
    pub async fn modify_application(
        &self,
        who: Principal,
        id: Option<Snowflake>,
        body: ModifyApplication,
    ) -> Result<Application, ApiError> {
        let mut rec = match id {
            Some(id) => self.owned_application(who, id).await?,
            None => self
                .stores
                .applications
                .application_by_bot(who.user_id)
                .await
                .map_err(store_err)?
                .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownApplication))?,
        };
        body.validate(rec.flags)?;
        if let Some(d) = body.description {
            rec.description = d;
        }
        if let Some(f) = body.flags {
            rec.flags = f;
        }
        if !self
            .stores
            .applications
            .update_application(&rec)
            .await
            .map_err(store_err)?
        {
            return Err(ApiError::unknown(ErrorCode::UnknownApplication));
        }
        self.application_view(&rec).await
    }

    /// `GET /oauth2/applications/@me`: the calling bot's application.
    pub async fn current_application(&self, who: Principal) -> Result<Application, ApiError> {
        let rec = self
            .stores
            .applications
            .application_by_bot(who.user_id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownApplication))?;
        self.application_view(&rec).await
    }

    pub async fn application(&self, id: Snowflake) -> Result<ApplicationRecord, ApiError> {
        self.stores
            .applications
            .get_application(id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownApplication))
    }
}
