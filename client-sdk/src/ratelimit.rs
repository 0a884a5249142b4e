//! Client-side rate limiting the way Discord asks clients to do it.
//!
//! Requests are grouped by *route* (method plus path with every id but the major one —
//! channel, guild or webhook — replaced). The server names each route's bucket in
//! `X-RateLimit-Bucket`; routes that share a bucket then share one state per major id.
//! Before a request the limiter waits while the token is globally limited, while its own
//! global quota is spent, or while the bucket has nothing left before its reset; it counts
//! the request against the bucket at once, so concurrent callers queue instead of racing
//! into a 429. Every answer refreshes the bucket from its headers; a 429 parks the bucket
//! (or the whole token, for a global limit) for `retry_after`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota};
use reqwest::Method;
use reqwest::header::HeaderMap;
use tokio::time::Instant;

/// Counters of what the limiter did, for callers who want to watch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitStats {
    /// Requests that waited for a bucket to reset before being sent.
    pub bucket_waits: u64,
    /// Requests that waited for the token's global limit.
    pub global_waits: u64,
    /// 429 answers received (each was retried after its `retry_after`).
    pub rate_limited: u64,
}

#[derive(Debug, Default)]
struct Bucket {
    limit: Option<u32>,
    remaining: Option<u32>,
    reset_at: Option<Instant>,
}

#[derive(Default)]
struct Counters {
    bucket_waits: AtomicU64,
    global_waits: AtomicU64,
    rate_limited: AtomicU64,
}

/// Per-token limiter state; cheap to share.
pub(crate) struct RateLimiter {
    /// Route key → bucket hash the server reported for it.
    hashes: parking_lot::Mutex<HashMap<String, String>>,
    /// `hash:major` (or the route key before a hash is known) → bucket.
    buckets: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Bucket>>>>,
    global_until: parking_lot::Mutex<Option<Instant>>,
    quota: Option<DefaultDirectRateLimiter>,
    counters: Counters,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("buckets", &self.buckets.lock().len())
            .field("stats", &self.stats())
            .finish()
    }
}

/// Where a request's limits are kept: its route key and its major id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RouteKey {
    pub route: String,
    pub major: String,
}

impl RouteKey {
    /// `GET /channels/1/messages/2` → route `GET /channels/1/messages/:id`, major `1`.
    pub fn new(method: &Method, path: &str) -> RouteKey {
        let mut route = String::with_capacity(path.len() + 8);
        route.push_str(method.as_str());
        route.push(' ');
        let mut major = String::new();
        let mut prev = "";
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            route.push('/');
            let is_major_slot =
                major.is_empty() && matches!(prev, "channels" | "guilds" | "webhooks");
            if is_major_slot {
                major = seg.to_owned();
                route.push_str(seg);
            } else if prev == "reactions" {
                route.push_str(":emoji");
            } else if prev == "invites" {
                route.push_str(":code");
            } else if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                route.push_str(":id");
            } else {
                route.push_str(seg);
            }
            prev = seg;
        }
        RouteKey { route, major }
    }
}

impl RateLimiter {
    /// `global_per_sec` caps this token's requests per second before the server has to.
    pub fn new(global_per_sec: Option<NonZeroU32>) -> RateLimiter {
        RateLimiter {
            hashes: Default::default(),
            buckets: Default::default(),
            global_until: Default::default(),
            quota: global_per_sec.map(|n| governor::RateLimiter::direct(Quota::per_second(n))),
            counters: Counters::default(),
        }
    }

    pub fn stats(&self) -> RateLimitStats {
        RateLimitStats {
            bucket_waits: self.counters.bucket_waits.load(Ordering::Relaxed),
            global_waits: self.counters.global_waits.load(Ordering::Relaxed),
            rate_limited: self.counters.rate_limited.load(Ordering::Relaxed),
        }
    }

    fn bucket(&self, key: &RouteKey) -> Arc<tokio::sync::Mutex<Bucket>> {
        let id = match self.hashes.lock().get(&key.route) {
            Some(hash) => format!("{hash}:{}", key.major),
            None => key.route.clone(),
        };
        self.buckets.lock().entry(id).or_default().clone()
    }

    /// Waits until a request on this route may be sent, and counts it.
    pub async fn acquire(&self, key: &RouteKey) {
        let mut waited_global = false;
        loop {
            let until = *self.global_until.lock();
            match until {
                Some(t) if t > Instant::now() => {
                    waited_global = true;
                    tokio::time::sleep_until(t).await;
                }
                _ => break,
            }
        }
        if let Some(q) = &self.quota
            && q.check().is_err()
        {
            waited_global = true;
            q.until_ready().await;
        }
        if waited_global {
            self.counters.global_waits.fetch_add(1, Ordering::Relaxed);
        }
        let bucket = self.bucket(key);
        // Held while waiting, so requests on one bucket leave in order.
        let mut b = bucket.lock().await;
        if b.remaining == Some(0) {
            if let Some(reset) = b.reset_at
                && reset > Instant::now()
            {
                self.counters.bucket_waits.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep_until(reset).await;
            }
            // A new window: the full limit again, if we know it.
            b.remaining = b.limit;
            b.reset_at = None;
        }
        if let Some(r) = b.remaining.as_mut() {
            *r = r.saturating_sub(1);
        }
    }

    /// Reads an answer's rate-limit headers into its bucket.
    pub async fn update(&self, key: &RouteKey, headers: &HeaderMap) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(hash) = header("x-ratelimit-bucket") {
            let mut hashes = self.hashes.lock();
            if hashes.get(&key.route).map(String::as_str) != Some(hash) {
                hashes.insert(key.route.clone(), hash.to_owned());
            }
        }
        let limit = header("x-ratelimit-limit").and_then(|v| v.parse::<u32>().ok());
        let remaining = header("x-ratelimit-remaining").and_then(|v| v.parse::<u32>().ok());
        let reset_after = header("x-ratelimit-reset-after")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0);
        let (Some(remaining), Some(reset_after)) = (remaining, reset_after) else {
            return;
        };
        let reset_at = Instant::now() + Duration::from_secs_f64(reset_after);
        let bucket = self.bucket(key);
        let mut b = bucket.lock().await;
        b.limit = limit.or(b.limit);
        // Answers can arrive out of order: within one window keep the lowest count seen.
        let same_window = b
            .reset_at
            .is_some_and(|old| old + Duration::from_millis(250) >= reset_at);
        b.remaining = Some(match (same_window, b.remaining) {
            (true, Some(old)) => old.min(remaining),
            _ => remaining,
        });
        b.reset_at = Some(reset_at);
    }

    /// A 429: park the bucket, or the whole token when the limit is global.
    pub async fn limited(&self, key: &RouteKey, retry_after: Duration, global: bool) {
        self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        let until = Instant::now() + retry_after;
        if global {
            let mut g = self.global_until.lock();
            if g.is_none_or(|t| t < until) {
                *g = Some(until);
            }
            return;
        }
        let bucket = self.bucket(key);
        let mut b = bucket.lock().await;
        b.remaining = Some(0);
        b.reset_at = Some(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    #[test]
    fn route_keys_keep_only_the_major_id() {
        let k = RouteKey::new(&Method::GET, "/channels/11/messages/22");
        assert_eq!(k.route, "GET /channels/11/messages/:id");
        assert_eq!(k.major, "11");
        let k = RouteKey::new(
            &Method::PUT,
            "/channels/11/messages/22/reactions/%F0%9F%91%8D/@me",
        );
        assert_eq!(
            k.route,
            "PUT /channels/11/messages/:id/reactions/:emoji/@me"
        );
        let k = RouteKey::new(&Method::PUT, "/guilds/5/members/6/roles/7");
        assert_eq!(k.route, "PUT /guilds/5/members/:id/roles/:id");
        assert_eq!(k.major, "5");
        let k = RouteKey::new(&Method::POST, "/invites/abcDEF");
        assert_eq!(k.route, "POST /invites/:code");
        assert_eq!(k.major, "");
        // Different majors are different keys; different minor ids are not.
        assert_ne!(
            RouteKey::new(&Method::GET, "/channels/1/messages"),
            RouteKey::new(&Method::GET, "/channels/2/messages")
        );
        assert_eq!(
            RouteKey::new(&Method::GET, "/channels/1/messages/3").route,
            RouteKey::new(&Method::GET, "/channels/1/messages/4").route
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_bucket_waits_for_its_reset() {
        let rl = RateLimiter::new(None);
        let key = RouteKey::new(&Method::POST, "/channels/1/messages");
        rl.acquire(&key).await;
        rl.update(
            &key,
            &headers(&[
                ("x-ratelimit-bucket", "abc"),
                ("x-ratelimit-limit", "2"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "1.5"),
            ]),
        )
        .await;
        let start = Instant::now();
        rl.acquire(&key).await;
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
        assert_eq!(rl.stats().bucket_waits, 1);
        // After the reset the known limit applies again: one left, no wait.
        let start = Instant::now();
        rl.acquire(&key).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(rl.stats().bucket_waits, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn routes_sharing_a_hash_share_a_bucket_per_major() {
        let rl = RateLimiter::new(None);
        let a = RouteKey::new(&Method::PATCH, "/channels/1/messages/5");
        let b = RouteKey::new(&Method::DELETE, "/channels/1/messages/6");
        let other = RouteKey::new(&Method::DELETE, "/channels/2/messages/6");
        let h = headers(&[
            ("x-ratelimit-bucket", "shared"),
            ("x-ratelimit-limit", "5"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset-after", "2"),
        ]);
        rl.update(&a, &h).await;
        rl.update(&b, &h).await;
        let start = Instant::now();
        rl.acquire(&other).await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "another channel is not limited"
        );
        rl.acquire(&b).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_global_429_holds_every_route() {
        let rl = RateLimiter::new(None);
        let a = RouteKey::new(&Method::GET, "/users/@me");
        let b = RouteKey::new(&Method::GET, "/guilds/9");
        rl.limited(&a, Duration::from_secs(3), true).await;
        let start = Instant::now();
        rl.acquire(&b).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        let s = rl.stats();
        assert_eq!((s.rate_limited, s.global_waits), (1, 1));
    }

    #[tokio::test]
    async fn the_global_quota_spaces_requests() {
        let rl = RateLimiter::new(NonZeroU32::new(2));
        let k = RouteKey::new(&Method::GET, "/users/@me");
        for _ in 0..4 {
            rl.acquire(&k).await;
        }
        // governor keeps its own clock, so only count that the quota made callers wait.
        assert!(rl.stats().global_waits >= 1, "{:?}", rl.stats());
    }
}
