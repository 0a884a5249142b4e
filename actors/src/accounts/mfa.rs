//! TOTP two-factor authentication: turning it on and off.

use super::*;

impl AccountService {
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
        // The secret is checked before the code, which it would otherwise only fail as "wrong".
        match auth::check_secret(secret) {
            Ok(()) => {}
            Err(auth::TotpError::SecretTooShort { .. }) => {
                return Err(ApiError::form(
                    &["secret"],
                    "BASE_TYPE_MIN_LENGTH",
                    format!(
                        "The secret must be at least {} bits ({} base32 characters).",
                        auth::MIN_SECRET_BITS,
                        auth::MIN_SECRET_CHARS
                    ),
                ));
            }
            Err(_) => {
                return Err(ApiError::form(
                    &["secret"],
                    "BASE_TYPE_INVALID",
                    "The secret must be base32 (A-Z and 2-7, no padding).",
                ));
            }
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

    pub(super) async fn set_mfa_flag(&self, user_id: Snowflake, on: bool) -> Result<(), ApiError> {
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
    pub(super) async fn user_changed(&self, user: &User) {
        self.users.refresh(user);
        self.publish(Invalidation::UserChanged { user_id: user.id })
            .await;
    }
}
