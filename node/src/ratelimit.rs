//! HTTP rate limits with Discord's semantics and headers.
//!
//! Two checks per request, both GCRA, in one call to the shared state (all or nothing: a
//! request the route refuses costs nothing of the global allowance):
//! - a **global** limit per token (per client IP when unauthenticated);
//! - a **route bucket** keyed like Discord's: the route with its minor ids folded away, the
//!   major id (`channel_id`, `guild_id`, webhook id) kept, per token.
//!
//! Every response carries `X-RateLimit-Limit`, `-Remaining`, `-Reset`, `-Reset-After` and
//! `-Bucket`; a refused request gets 429 with `{message, retry_after, global}`, `Retry-After`,
//! `X-RateLimit-Global` (for the global limit) and `X-RateLimit-Scope`. Tokens are keyed by a
//! hash of the `Authorization` header, so limiting needs no token verification.
//!
//! The shared state is in-process on a single node. With Redis configured, the call is one
//! GCRA script there, so a limit holds across every node of a cluster; while Redis is down the
//! shared state answers from its in-process twin (each node then enforces the limits alone)
//! until Redis is back. A call that fails even so lets the request through: a limiter must not
//! turn an outage into refusals.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use sha2::{Digest, Sha256};

use enrichment_storage::shared::{RateLimit, RateOutcome, SharedState, keys};

use crate::config::{Limit, RateLimitConfig};

/// Which allowance a route falls under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    MessageCreate,
    Reactions,
    Default,
}

/// An allowance as the shared state takes it.
fn shared_limit(limit: Limit) -> RateLimit {
    RateLimit {
        limit: limit.limit,
        period: Duration::from_secs_f64(limit.per_secs),
    }
}

/// The limits of a node.
pub struct RateLimits {
    enabled: bool,
    /// Where the counters live (in-process, or Redis across the cluster).
    shared: Arc<dyn SharedState>,
    /// Prefix of the keys.
    prefix: String,
    global: Limit,
    message_create: Limit,
    reactions: Limit,
    default_route: Limit,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl RateLimits {
    pub fn new(cfg: &RateLimitConfig, shared: Arc<dyn SharedState>, prefix: String) -> Self {
        RateLimits {
            enabled: cfg.enabled,
            shared,
            prefix,
            global: cfg.global,
            message_create: cfg.message_create,
            reactions: cfg.reactions,
            default_route: cfg.default_route,
        }
    }

    /// Checks the global limit, then the route's; `Ok((remaining, reset_after))` of the
    /// route bucket, or `Err((wait, global))`.
    async fn check(
        &self,
        who: &str,
        route_key: &str,
        class: Class,
    ) -> Result<(u32, Duration), (Duration, bool)> {
        let checks = [
            (
                keys::rate(&self.prefix, who, "global"),
                shared_limit(self.global),
            ),
            (
                keys::rate(&self.prefix, who, route_key),
                shared_limit(self.bucket(class)),
            ),
        ];
        match self.shared.rate_limit(&checks).await {
            Ok(RateOutcome::Allowed {
                remaining,
                reset_after,
            }) => Ok((remaining, reset_after)),
            Ok(RateOutcome::Limited { index, retry_after }) => Err((retry_after, index == 0)),
            Err(e) => {
                metrics::counter!("enrichment_http_rate_limit_unavailable_total").increment(1);
                tracing::debug!(error = %e, "rate limits unavailable; request let through");
                let limit = self.bucket(class).limit;
                Ok((limit, Duration::ZERO))
            }
        }
    }

    fn bucket(&self, class: Class) -> Limit {
        match class {
            Class::MessageCreate => self.message_create,
            Class::Reactions => self.reactions,
            Class::Default => self.default_route,
        }
    }
}

/// A route's bucket: `(template, major id, class)`.
fn classify(method: &str, path: &str) -> (String, String, Class) {
    let rest = ["/api/v10", "/api/v9", "/api"]
        .iter()
        .find_map(|p| path.strip_prefix(p))
        .unwrap_or(path);
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let mut template = String::from(method);
    let mut major = String::new();
    let mut after_reactions = 0usize;
    for (i, seg) in segments.iter().enumerate() {
        template.push('/');
        let is_major_root = i == 1 && matches!(segments[0], "channels" | "guilds" | "webhooks");
        if is_major_root {
            major = (*seg).to_owned();
            template.push_str("{major}");
        } else if after_reactions == 1 {
            template.push_str(":emoji");
            after_reactions += 1;
        } else if seg.bytes().all(|b| b.is_ascii_digit()) {
            template.push_str(":id");
        } else {
            template.push_str(seg);
        }
        if *seg == "reactions" || after_reactions > 0 {
            after_reactions += 1;
        }
    }
    let class = if method == "POST"
        && segments.len() == 3
        && segments[0] == "channels"
        && segments[2] == "messages"
    {
        Class::MessageCreate
    } else if segments.contains(&"reactions") {
        Class::Reactions
    } else {
        Class::Default
    };
    (template, major, class)
}

fn principal(req: &ServiceRequest) -> String {
    match req.headers().get(actix_web::http::header::AUTHORIZATION) {
        Some(v) => format!("t:{}", short_hash(v.as_bytes())),
        None => format!(
            "ip:{}",
            // The socket's peer, not `X-Forwarded-For`: a client must not pick its own key.
            req.peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_else(|| "unknown".into())
        ),
    }
}

fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn refused(wait: Duration, global: bool, bucket: &str, limit: u32) -> HttpResponse {
    let retry_after = (wait.as_secs_f64() * 1000.0).ceil() / 1000.0;
    let mut res = HttpResponse::TooManyRequests();
    res.insert_header(("Retry-After", retry_after.ceil().max(1.0).to_string()))
        .insert_header(("X-RateLimit-Limit", limit.to_string()))
        .insert_header(("X-RateLimit-Remaining", "0"))
        .insert_header(("X-RateLimit-Reset-After", format!("{retry_after:.3}")))
        .insert_header((
            "X-RateLimit-Reset",
            format!("{:.3}", epoch_secs() + retry_after),
        ))
        .insert_header(("X-RateLimit-Bucket", bucket.to_owned()))
        .insert_header(("X-RateLimit-Scope", if global { "global" } else { "user" }));
    if global {
        res.insert_header(("X-RateLimit-Global", "true"));
    }
    metrics::counter!("enrichment_http_rate_limited_total", "scope" => if global { "global" } else { "user" }).increment(1);
    res.json(serde_json::json!({
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": global,
    }))
}

/// The middleware (`actix_web::middleware::from_fn`).
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(limits) = req.app_data::<web::Data<Arc<RateLimits>>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    if !limits.enabled {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let who = principal(&req);
    let (template, major, class) = classify(req.method().as_str(), req.path());
    let bucket_id = short_hash(template.as_bytes());
    let bucket = limits.bucket(class);
    let (remaining, reset_after) = match limits
        .check(&who, &format!("{template}|{major}"), class)
        .await
    {
        Ok(r) => r,
        Err((wait, global)) => {
            let limit = if global {
                limits.global.limit
            } else {
                bucket.limit
            };
            let res = refused(wait, global, &bucket_id, limit);
            return Ok(req.into_response(res));
        }
    };
    let reset_after = reset_after.as_secs_f64();
    let mut res = next.call(req).await?.map_into_boxed_body();
    let headers = res.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", bucket.limit.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        (
            "x-ratelimit-reset",
            format!("{:.3}", epoch_secs() + reset_after),
        ),
        ("x-ratelimit-reset-after", format!("{reset_after:.3}")),
        ("x-ratelimit-bucket", bucket_id),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_major_ids_and_fold_minor_ones() {
        let (t, major, class) = classify("POST", "/api/v10/channels/123/messages");
        assert_eq!(
            (t.as_str(), major.as_str(), class),
            (
                "POST/channels/{major}/messages",
                "123",
                Class::MessageCreate
            )
        );
        let (t1, _, _) = classify("GET", "/api/v10/channels/1/messages/55");
        let (t2, _, _) = classify("GET", "/api/channels/2/messages/66");
        assert_eq!(t1, t2);
        assert_eq!(t1, "GET/channels/{major}/messages/:id");
        let (t, _, class) = classify(
            "PUT",
            "/api/v10/channels/1/messages/2/reactions/%F0%9F%91%8D/@me",
        );
        assert_eq!(t, "PUT/channels/{major}/messages/:id/reactions/:emoji/@me");
        assert_eq!(class, Class::Reactions);
        let (_, major, class) = classify("GET", "/api/v10/users/@me");
        assert_eq!((major.as_str(), class), ("", Class::Default));
    }

    #[tokio::test]
    async fn a_route_counts_down_then_refuses_with_a_wait_and_spares_the_global_allowance() {
        let limit = |limit, per_secs| Limit { limit, per_secs };
        let cfg = RateLimitConfig {
            enabled: true,
            global: limit(50, 1.0),
            message_create: limit(3, 30.0),
            reactions: limit(1, 0.25),
            default_route: limit(3, 30.0),
        };
        let shared = Arc::new(enrichment_storage::shared::memory::MemoryShared::new());
        let limits = RateLimits::new(&cfg, shared.clone(), "t".into());
        let check = || limits.check("k", "GET/users/@me|", Class::Default);
        assert_eq!(check().await.map(|r| r.0), Ok(2));
        assert_eq!(check().await.map(|r| r.0), Ok(1));
        let (left, reset_after) = check().await.unwrap();
        assert_eq!(left, 0);
        assert!(
            reset_after > Duration::from_secs(29) && reset_after <= Duration::from_secs(30),
            "{reset_after:?}"
        );
        let (wait, global) = check().await.unwrap_err();
        assert!(!global);
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        // The refused request cost the global allowance nothing.
        let global_key = keys::rate("t", "k", "global");
        let (left, _) = shared
            .rate_peek(&global_key, shared_limit(cfg.global))
            .await
            .unwrap();
        assert_eq!(left, 47);
        // Another principal has its own allowance.
        let other = limits
            .check("other", "GET/users/@me|", Class::Default)
            .await;
        assert_eq!(other.map(|r| r.0), Ok(2));
    }
}
