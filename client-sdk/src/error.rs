//! The SDK's error type: every failure a caller can act on, with the server's own error code
//! when the server answered.

use std::time::Duration;

use serde_json::Value;

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request with a Discord-style error body.
    #[error("{status} {message} (code {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Discord JSON error code (`0` for general errors, `50035` for invalid form bodies, ...).
        code: u64,
        /// The server's message.
        message: String,
        /// The per-field tree of a 50035 answer, when present.
        errors: Option<Value>,
    },
    /// Still rate limited after the configured number of waits.
    #[error("rate limited: retry after {retry_after:?} (global: {global})")]
    RateLimited {
        /// How long the server asked to wait.
        retry_after: Duration,
        /// Whether the limit is the token's global one.
        global: bool,
    },
    /// The request never got an HTTP answer (connection refused, timeout, ...).
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with a body this SDK could not read.
    #[error("cannot decode the {status} answer: {reason}")]
    Decode {
        /// HTTP status of the answer.
        status: u16,
        /// What did not match.
        reason: String,
    },
    /// The base URL is not an absolute http(s) URL.
    #[error("invalid base URL `{0}`: expected http://host[:port] or https://host[:port]")]
    InvalidBaseUrl(String),
    /// A call needing a token was made on a client without one.
    #[error("this call needs a token: build the client with `.token(...)`")]
    NoToken,
    /// The gateway failed in a way reconnecting cannot fix.
    #[error("gateway: {0}")]
    Gateway(#[from] crate::gateway::GatewayError),
}

impl Error {
    /// The server's Discord error code, if the server answered with one.
    pub fn code(&self) -> Option<u64> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Decode { status, .. } => Some(*status),
            Error::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Whether the server said the resource does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether the token was missing, wrong or expired (HTTP 401).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }
}

/// Shorthand for results of SDK calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
