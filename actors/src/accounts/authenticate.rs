//! Turning an `Authorization` header into a [`Principal`](super::Principal): access tokens
//! (checked against their session) and bot tokens.

use super::*;

impl AccountService {
    /// The cluster's JWT keys (for rotation through the admin API).
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keys
    }

    /// Runs a token check; a token signed by a key this node has not seen yet (another node
    /// rotated) gets one more try after the keys are read again.
    pub(super) async fn verify<T>(
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

    pub(super) async fn authenticate_bot(&self, token: &str) -> Result<Principal, ApiError> {
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
}
