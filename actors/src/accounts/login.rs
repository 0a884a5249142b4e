//! Logging in: registration, password and MFA logins, refresh-token rotation, logout, and the
//! failed-login throttles.

use super::*;

impl AccountService {
    /// The fixed window counting failed logins of `principal` (`ip:{addr}`, `account:{id}`).
    pub(super) fn throttle_key(&self, principal: &str) -> String {
        keys::rate(&self.prefix, principal, "login-failures")
    }

    pub(super) fn throttles(&self, account: Option<Snowflake>, ip: &str) -> Vec<(String, u32)> {
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
    pub(super) async fn check_throttle(
        &self,
        account: Option<Snowflake>,
        ip: &str,
    ) -> Result<(), ApiError> {
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

    pub(super) async fn fail_login(&self, account: Option<Snowflake>, ip: &str) {
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
    pub(super) async fn consume_second_factor(
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
}
