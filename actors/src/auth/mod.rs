//! Authentication primitives: pure functions and key material, no storage and no HTTP.
//!
//! This module owns the cryptographic building blocks; the `AuthService` (elsewhere) owns the
//! policy that strings them together with storage: sessions, refresh rotation, lockouts.
//!
//! - [`jwt`]: EdDSA-signed **access tokens**, short-lived so that a stolen one expires on its own;
//!   long sessions come from opaque refresh tokens that the `AuthService` rotates on every use
//!   (the `sid` claim names the refresh family, so revoking a family can be checked cheaply).
//!   Also short-lived **MFA login tickets**, signed by the same keys but typed and audienced so
//!   that a ticket is never accepted as an access token, nor the other way round. The algorithm
//!   is pinned to EdDSA and the key chosen by `kid` from our own key set: the header of an
//!   unverified token is attacker-controlled, and letting it pick the algorithm is the classic
//!   "alg: none" / "HS256 keyed with the public key" confusion.
//! - [`keyring`]: the cluster's keys as kept in the store, reloaded when another node rotates.
//! - [`password`]: argon2id hashing (PHC strings) with OWASP's parameters.
//! - [`totp`]: RFC 6238 codes as authenticator apps produce them, with replay refusal.
//! - [`tokens`]: opaque random secrets (refresh tokens, Discord-shaped bot tokens, backup codes)
//!   and the hash under which they are stored, so a database leak does not leak usable tokens.
//!   Bot tokens stay opaque (not JWTs) because Discord bot libraries treat them as such and
//!   because they must be revocable by deleting one row.

use std::path::PathBuf;

pub mod jwt;
pub mod keyring;
pub mod password;
pub mod tokens;
pub mod totp;

pub use jwt::{AccessClaims, JwtKeys};
pub use keyring::Keyring;
pub use password::{PasswordParams, hash_password, verify_password};
pub use tokens::{
    bot_token_user_id, hash_token, new_backup_codes, new_bot_token, new_refresh_token,
};
pub use totp::{
    MIN_SECRET_BITS, MIN_SECRET_CHARS, TotpError, check_secret, current_code, generate_secret,
    verify_totp,
};

/// Everything that can go wrong in this module.
///
/// Token rejections carry a static reason for logs and tests; callers should answer clients
/// with one generic "401: Unauthorized" whatever the reason, so as not to help forgers.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("key store {path}: {source}")]
    KeyIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key store {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("the operating system's random number generator failed")]
    Rng,
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    #[error("token signing failed: {0}")]
    Signing(String),
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    #[error("token expired")]
    TokenExpired,
    #[error(transparent)]
    Totp(#[from] TotpError),
}
