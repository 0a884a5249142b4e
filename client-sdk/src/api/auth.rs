//! Accounts: register, login (with TOTP), token refresh, logout, TOTP setup.

use enrichment_protocol::rest::{
    DisableTotpRequest, EnableTotpRequest, EnableTotpResponse, LoginRequest, LoginResponse,
    LogoutRequest, MfaTotpRequest, RefreshRequest, RegisterRequest, RegisterResponse,
    TokenResponse,
};
use reqwest::Method;

use crate::client::{Client, json};
use crate::error::Result;

impl Client {
    /// `POST /auth/register`: creates an account and returns its first tokens.
    pub async fn register(&self, body: &RegisterRequest) -> Result<RegisterResponse> {
        self.call(Method::POST, "/auth/register", None, json(body))
            .await
    }

    /// `POST /auth/login` by email or username. With TOTP on, the answer carries an MFA
    /// `ticket` for [`Client::verify_mfa_totp`] instead of tokens.
    pub async fn login(&self, body: &LoginRequest) -> Result<LoginResponse> {
        self.call(Method::POST, "/auth/login", None, json(body))
            .await
    }

    /// `POST /auth/mfa/totp`: finishes an MFA login with a TOTP or backup code.
    pub async fn verify_mfa_totp(&self, body: &MfaTotpRequest) -> Result<TokenResponse> {
        self.call(Method::POST, "/auth/mfa/totp", None, json(body))
            .await
    }

    /// `POST /auth/refresh`: trades a refresh token for new tokens (the old one is spent).
    pub async fn refresh(&self, body: &RefreshRequest) -> Result<TokenResponse> {
        self.call(Method::POST, "/auth/refresh", None, json(body))
            .await
    }

    /// `POST /auth/logout`: revokes this token's session (and the refresh token, if given).
    pub async fn logout(&self, body: &LogoutRequest) -> Result<()> {
        self.call_empty(Method::POST, "/auth/logout", json(body))
            .await
    }

    /// `POST /users/@me/mfa/totp/enable`.
    pub async fn enable_totp(&self, body: &EnableTotpRequest) -> Result<EnableTotpResponse> {
        self.call(Method::POST, "/users/@me/mfa/totp/enable", None, json(body))
            .await
    }

    /// `POST /users/@me/mfa/totp/disable`; returns the new access token.
    pub async fn disable_totp(&self, body: &DisableTotpRequest) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct Answer {
            token: String,
        }
        let a: Answer = self
            .call(
                Method::POST,
                "/users/@me/mfa/totp/disable",
                None,
                json(body),
            )
            .await?;
        Ok(a.token)
    }
}
