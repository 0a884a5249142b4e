//! The REST client core: building requests, rate limits, retries and error decoding.
//!
//! Every typed call (in `api/`) ends in [`Client::call`]. Rate limits are honoured before
//! sending and after every answer (see `ratelimit`); a 429 is waited out and the request sent
//! again, so callers do not see it unless the server keeps refusing. Connection failures and
//! 5xx answers are retried with jittered exponential backoff for idempotent methods only
//! (GET, PUT, DELETE, HEAD): a POST that timed out may have been applied, so it is reported.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use enrichment_protocol::ErrorBody;
use rand::Rng;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::ratelimit::{RateLimitStats, RateLimiter, RouteKey};

/// How a client authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Token {
    /// A bot token, sent as `Authorization: Bot <token>`.
    Bot(String),
    /// A user's access token (JWT), sent as `Authorization: Bearer <token>`.
    Bearer(String),
}

impl Token {
    /// The raw token, as the gateway's IDENTIFY wants it.
    pub fn secret(&self) -> &str {
        match self {
            Token::Bot(t) | Token::Bearer(t) => t,
        }
    }

    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        match self {
            Token::Bot(t) => format!("Bot {t}"),
            Token::Bearer(t) => format!("Bearer {t}"),
        }
    }

    /// Whether this is a bot token.
    pub fn is_bot(&self) -> bool {
        matches!(self, Token::Bot(_))
    }
}

impl std::fmt::Debug for Token {
    // Tokens are secrets: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Bot(_) => f.write_str("Token::Bot(..)"),
            Token::Bearer(_) => f.write_str("Token::Bearer(..)"),
        }
    }
}

/// Retry policy for idempotent requests.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Retries after connection failures or 5xx answers (idempotent methods only).
    pub max_retries: u32,
    /// First backoff; each retry doubles it, and the actual wait is a random point below it.
    pub base_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
    /// How many 429 answers one call waits out before giving up with [`Error::RateLimited`].
    pub max_rate_limit_waits: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_rate_limit_waits: 10,
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a uniform wait in `[0, min(max, base·2^attempt)]`.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_backoff);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }
}

/// Builds a [`Client`].
#[derive(Debug)]
pub struct ClientBuilder {
    base: String,
    token: Option<Token>,
    timeout: Duration,
    retry: RetryPolicy,
    global_per_sec: Option<NonZeroU32>,
    user_agent: String,
}

impl ClientBuilder {
    /// Authenticates every call with this token.
    pub fn token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// Per-request timeout (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retry and rate-limit wait policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Requests per second this client sends at most (default 50, Discord's global bot
    /// limit); `None` leaves it to the server's answers.
    pub fn global_limit(mut self, per_sec: Option<NonZeroU32>) -> Self {
        self.global_per_sec = per_sec;
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Checks the base URL and builds the client.
    pub fn build(self) -> Result<Client> {
        let base = self.base.trim_end_matches('/').to_owned();
        let valid = (base.starts_with("http://") || base.starts_with("https://"))
            && base
                .split("://")
                .nth(1)
                .is_some_and(|rest| !rest.is_empty());
        if !valid {
            return Err(Error::InvalidBaseUrl(self.base));
        }
        // Accept a base that already names the API prefix.
        let root = base
            .strip_suffix("/api/v10")
            .or_else(|| base.strip_suffix("/api"))
            .unwrap_or(&base)
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(Error::Http)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                api: format!("{root}/api/v10"),
                root,
                token: self.token,
                retry: self.retry,
                limiter: RateLimiter::new(self.global_per_sec),
                global_per_sec: self.global_per_sec,
                user_agent: self.user_agent,
            }),
            audit_reason: None,
        })
    }
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    root: String,
    api: String,
    token: Option<Token>,
    retry: RetryPolicy,
    limiter: RateLimiter,
    global_per_sec: Option<NonZeroU32>,
    user_agent: String,
}

/// A REST client for one server and (optionally) one token. Cheap to clone; clones share
/// connections and rate-limit state.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
    /// Sent as `X-Audit-Log-Reason` with every request ([`Client::with_audit_reason`]).
    audit_reason: Option<Arc<str>>,
}

/// A request body.
pub(crate) enum Body<'a> {
    None,
    Json(&'a (dyn erased::Json + Sync)),
}

/// Object-safe JSON serialization, so `call` need not be generic over the body type.
pub(crate) mod erased {
    pub trait Json {
        fn to_json(&self) -> serde_json::Result<Vec<u8>>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> serde_json::Result<Vec<u8>> {
            serde_json::to_vec(self)
        }
    }
}

impl Client {
    /// A client for the server at `base` (`http://host:port`; a trailing `/api` or `/api/v10`
    /// is accepted) with default settings and no token.
    pub fn new(base: impl Into<String>) -> Result<Client> {
        Client::builder(base).build()
    }

    /// Starts building a client for the server at `base`.
    pub fn builder(base: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base.into(),
            token: None,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            global_per_sec: NonZeroU32::new(50),
            user_agent: format!(
                "DiscordBot (https://example.invalid/enrichment, {}) enrichment-client",
                env!("CARGO_PKG_VERSION")
            ),
        }
    }

    /// The same server and settings with another token (and its own rate-limit state, since
    /// limits are per token). Connections are shared.
    pub fn with_token(&self, token: Token) -> Client {
        let i = &self.inner;
        Client {
            inner: Arc::new(Inner {
                http: i.http.clone(),
                root: i.root.clone(),
                api: i.api.clone(),
                token: Some(token),
                retry: i.retry,
                limiter: RateLimiter::new(i.global_per_sec),
                global_per_sec: i.global_per_sec,
                user_agent: i.user_agent.clone(),
            }),
            audit_reason: self.audit_reason.clone(),
        }
    }

    /// The same client (connections, token and rate-limit state shared) sending `reason` as
    /// `X-Audit-Log-Reason` with its requests: the guild's audit log records it with the
    /// entries those requests make. The server keeps 512 characters.
    pub fn with_audit_reason(&self, reason: impl AsRef<str>) -> Client {
        Client {
            inner: self.inner.clone(),
            audit_reason: Some(Arc::from(segment(reason.as_ref()))),
        }
    }

    /// The token this client sends, if any.
    pub fn token(&self) -> Option<&Token> {
        self.inner.token.as_ref()
    }

    /// The server's root URL (`http://host:port`).
    pub fn base_url(&self) -> &str {
        &self.inner.root
    }

    /// The admin API of the same server, authenticated with the cluster's admin token (not a
    /// user or bot token). Connections are shared.
    pub fn admin(&self, token: impl Into<String>) -> crate::admin::AdminClient {
        crate::admin::AdminClient::new(
            self.inner.http.clone(),
            &self.inner.root,
            token.into(),
            self.inner.user_agent.clone(),
        )
    }

    /// What the rate limiter has done so far.
    pub fn rate_limit_stats(&self) -> RateLimitStats {
        self.inner.limiter.stats()
    }

    /// Sends one API call and decodes its JSON answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: Option<&(dyn erased_query::Query + Sync)>,
        body: Body<'_>,
    ) -> Result<T> {
        let (status, bytes) = self.send(method, path, query, body).await?;
        decode(status, &bytes)
    }

    /// Sends one API call whose answer has no body worth reading (204, or ignored).
    pub(crate) async fn call_empty(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
    ) -> Result<()> {
        self.send(method, path, None, body).await.map(|_| ())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: Option<&(dyn erased_query::Query + Sync)>,
        body: Body<'_>,
    ) -> Result<(StatusCode, Bytes)> {
        let inner = &self.inner;
        let key = RouteKey::new(&method, path);
        let body = match body {
            Body::None => None,
            Body::Json(b) => Some(Bytes::from(b.to_json().map_err(|e| Error::Decode {
                status: 0,
                reason: format!("cannot encode the request body: {e}"),
            })?)),
        };
        let query = match query {
            Some(q) => Some(q.to_query().map_err(|e| Error::Decode {
                status: 0,
                reason: format!("cannot encode the query: {e}"),
            })?),
            None => None,
        };
        let idempotent = matches!(
            method,
            Method::GET | Method::PUT | Method::DELETE | Method::HEAD
        );
        let mut url = format!("{}{}", inner.api, path);
        if let Some(q) = query.as_deref().filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        let mut failures = 0u32;
        let mut waits = 0u32;
        loop {
            // Held until the answer's headers are in: the bucket's next request waits on it.
            let mut permit = inner.limiter.acquire(&key).await;
            let mut req = inner
                .http
                .request(method.clone(), &url)
                .header(USER_AGENT, &inner.user_agent);
            if let Some(t) = &inner.token {
                req = req.header(AUTHORIZATION, t.header());
            }
            if let Some(reason) = &self.audit_reason {
                req = req.header("X-Audit-Log-Reason", reason.as_ref());
            }
            if let Some(b) = &body {
                req = req
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .body(b.clone());
            }
            let res = match req.send().await {
                Ok(r) => r,
                Err(e) if idempotent && failures < inner.retry.max_retries => {
                    tracing::debug!(error = %e, %url, "request failed; retrying");
                    tokio::time::sleep(inner.retry.backoff(failures)).await;
                    failures += 1;
                    continue;
                }
                Err(e) => return Err(Error::Http(e)),
            };
            let status = res.status();
            inner.limiter.update(&key, &mut permit, res.headers()).await;
            let global_header = res
                .headers()
                .get("x-ratelimit-global")
                .is_some_and(|v| v.as_bytes() == b"true");
            let retry_header = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<f64>().ok());
            let bytes = match res.bytes().await {
                Ok(b) => b,
                Err(e) if idempotent && failures < inner.retry.max_retries => {
                    tracing::debug!(error = %e, %url, "answer interrupted; retrying");
                    tokio::time::sleep(inner.retry.backoff(failures)).await;
                    failures += 1;
                    continue;
                }
                Err(e) => return Err(Error::Http(e)),
            };
            if status == StatusCode::TOO_MANY_REQUESTS {
                let (retry_after, global) = too_many(&bytes, retry_header, global_header);
                waits += 1;
                if waits > inner.retry.max_rate_limit_waits {
                    return Err(Error::RateLimited {
                        retry_after,
                        global,
                    });
                }
                tracing::debug!(?retry_after, global, %url, "rate limited; waiting");
                inner.limiter.limited(&mut permit, retry_after, global);
                continue;
            }
            if status.is_server_error() && idempotent && failures < inner.retry.max_retries {
                tracing::debug!(%status, %url, "server error; retrying");
                tokio::time::sleep(inner.retry.backoff(failures)).await;
                failures += 1;
                continue;
            }
            if status.is_success() {
                return Ok((status, bytes));
            }
            return Err(api_error(status, &bytes));
        }
    }
}

/// Object-safe query-string encoding.
pub(crate) mod erased_query {
    pub trait Query {
        fn to_query(&self) -> Result<String, String>;
    }
    impl<T: serde::Serialize> Query for T {
        fn to_query(&self) -> Result<String, String> {
            serde_json::to_value(self)
                .map_err(|e| e.to_string())
                .and_then(|v| super::query_string(&v))
        }
    }
}

/// Flattens a JSON object of scalars into `k=v&...`, percent-encoding the values.
fn query_string(v: &serde_json::Value) -> Result<String, String> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let obj = v.as_object().ok_or("a query must be an object")?;
    let mut out = String::new();
    for (k, v) in obj {
        let text = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => return Err(format!("query field `{k}` is not a scalar: {other}")),
        };
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.extend(utf8_percent_encode(&text, NON_ALPHANUMERIC));
    }
    Ok(out)
}

/// Reads a 429: `retry_after` from the body (seconds, fractional), else `Retry-After`.
fn too_many(bytes: &[u8], header: Option<f64>, global_header: bool) -> (Duration, bool) {
    #[derive(serde::Deserialize)]
    struct Limited {
        retry_after: Option<f64>,
        #[serde(default)]
        global: bool,
    }
    let body: Option<Limited> = serde_json::from_slice(bytes).ok();
    let secs = body
        .as_ref()
        .and_then(|b| b.retry_after)
        .or(header)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(1.0)
        // A server asking for hours is broken; do not hang a caller that long.
        .min(60.0);
    let global = global_header || body.is_some_and(|b| b.global);
    (Duration::from_secs_f64(secs), global)
}

pub(crate) fn api_error(status: StatusCode, bytes: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(b) => Error::Api {
            status: status.as_u16(),
            code: b.code as u64,
            message: b.message,
            errors: b.errors,
        },
        Err(_) => Error::Api {
            status: status.as_u16(),
            code: 0,
            message: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            errors: None,
        },
    }
}

pub(crate) fn decode<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T> {
    // Some calls answer 204; read that as JSON null so `()` and `Option` decode.
    let bytes: &[u8] = if bytes.is_empty() { b"null" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| Error::Decode {
        status: status.as_u16(),
        reason: e.to_string(),
    })
}

/// Percent-encodes one path segment (emoji, invite codes).
pub(crate) fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Serializes a value for [`Client::call`] bodies.
pub(crate) fn json<T: Serialize + Sync>(v: &T) -> Body<'_> {
    Body::Json(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_normalised() {
        assert!(matches!(
            Client::new("localhost:8080"),
            Err(Error::InvalidBaseUrl(_))
        ));
        assert!(matches!(
            Client::new("http://"),
            Err(Error::InvalidBaseUrl(_))
        ));
        for base in [
            "http://127.0.0.1:1",
            "http://127.0.0.1:1/",
            "http://127.0.0.1:1/api",
            "http://127.0.0.1:1/api/v10/",
        ] {
            let c = Client::new(base).expect("valid base");
            assert_eq!(c.base_url(), "http://127.0.0.1:1", "{base}");
        }
    }

    #[test]
    fn a_429_body_wins_over_its_header() {
        let (d, g) = too_many(
            br#"{"message":"x","retry_after":0.25,"global":true}"#,
            Some(3.0),
            false,
        );
        assert_eq!((d, g), (Duration::from_millis(250), true));
        let (d, g) = too_many(b"not json", Some(2.0), false);
        assert_eq!((d, g), (Duration::from_secs(2), false));
        let (d, _) = too_many(b"{}", None, true);
        assert_eq!(d, Duration::from_secs(1));
    }

    #[test]
    fn error_bodies_keep_the_discord_code() {
        let e = api_error(
            StatusCode::BAD_REQUEST,
            br#"{"message":"Invalid Form Body","code":50035,"errors":{"name":{}}}"#,
        );
        assert_eq!(e.code(), Some(50035));
        assert_eq!(e.status(), Some(400));
        let e = api_error(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!((e.code(), e.status()), (Some(0), Some(502)));
    }

    #[test]
    fn queries_skip_nulls_and_encode_values() {
        let q = serde_json::json!({"limit": 5, "before": "12", "after": null, "q": "a b&c"});
        let s = query_string(&q).expect("query");
        assert_eq!(s, "before=12&limit=5&q=a%20b%26c");
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        let p = RetryPolicy::default();
        for attempt in 0..20 {
            assert!(p.backoff(attempt) <= p.max_backoff);
        }
        assert!(p.backoff(0) <= p.base_backoff);
    }
}
