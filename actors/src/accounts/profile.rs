//! The caller's own account: reading users, and changing profile and password.

use super::*;

impl AccountService {
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
    pub(super) async fn change_password(
        &self,
        creds: &Credentials,
    ) -> Result<TokenResponse, ApiError> {
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
}
