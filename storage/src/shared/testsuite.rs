//! The conformance suite every [`SharedState`] runs unchanged (feature `testsuite`): the
//! in-process state, Redis, and the fallback decorator over both.
//!
//! ```ignore
//! async fn open() -> std::sync::Arc<dyn enrichment_storage::shared::SharedState> {
//!     // A state of its own for the case: a new in-process state, or a Redis connection.
//! }
//! enrichment_storage::shared_state_conformance_tests!(open);
//! ```
//!
//! The contract the cases pin down, so callers never need to know which implementation
//! answers:
//! - GCRA: `limit` requests per `period` with the whole allowance as a burst; a refusal names
//!   the first key without room and charges no key at all; `rate_peek` charges nothing; a
//!   call without keys is an error.
//! - Fixed windows: the first hit opens the window; a hit that does not fit counts nothing;
//!   cost 0 only reads (a whole window and the full limit when none is open).
//! - Session locations and presences read as absent once their TTL has passed; an offline
//!   presence removes the stored one.
//! - Broadcasts (presence changes, invalidations) reach the announcing handle's own
//!   subscribers too; what the other nodes hear is the backend's business (Redis: every node;
//!   in-process: nobody else).
//!
//! Cases never assume an empty state: keys, session ids and user ids are fresh per case (see
//! [`fresh`]), so a server-based implementation can share one server across cases running in
//! parallel. Time-dependent cases use short real durations (a few hundred milliseconds).

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed case")]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::{ClientStatus, Presence, PresenceUser, Status};
use enrichment_protocol::node::{GenerationId, NodeIdentity};

use super::{
    Invalidation, PresenceChange, RateLimit, RateOutcome, SessionLocation, SharedState, keys,
};

/// Expands into one `#[test]` per case, each calling `$open().await` for the state under test.
/// `$open` is a path to an `async fn() -> Arc<dyn SharedState>`.
#[macro_export]
macro_rules! shared_state_conformance_tests {
    ($open:path) => {
        $crate::shared_state_conformance_tests!(@cases $open;
            gcra_counts_down_refuses_and_counts_nothing_when_refused,
            gcra_refills_over_its_period_and_peeking_counts_nothing,
            rate_limit_without_keys_is_an_error,
            fixed_window_counts_until_full_and_starts_again_when_it_ends,
            sessions_expire_and_are_removed,
            presence_is_stored_announced_and_removed_when_offline,
            invalidations_reach_the_publishers_own_subscribers,
        );
    };
    (@cases $open:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testsuite::run($crate::shared::testsuite::$case(&$open));
            }
        )*
    };
}

/// A name no other case, run or process uses.
pub fn fresh() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A user id no other case uses.
fn fresh_user() -> Snowflake {
    static N: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    Snowflake((nanos << 8) + N.fetch_add(1, Ordering::Relaxed))
}

fn limit(n: u32, period: Duration) -> RateLimit {
    RateLimit { limit: n, period }
}

fn node() -> NodeIdentity {
    NodeIdentity::new("node-a", GenerationId(1))
}

fn presence(user: Snowflake, status: Status) -> PresenceChange {
    PresenceChange {
        node: node(),
        presence: Presence {
            user: PresenceUser { id: user },
            guild_id: None,
            status,
            activities: Vec::new(),
            client_status: ClientStatus::default(),
        },
    }
}

pub async fn gcra_counts_down_refuses_and_counts_nothing_when_refused<F, Fut>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SharedState>>,
{
    let s = open().await;
    let who = fresh();
    let route = keys::rate("t", &who, "route");
    let per_30s = limit(3, Duration::from_secs(30));
    let mut remaining = Vec::new();
    for _ in 0..3 {
        match s.rate_limit(&[(route.clone(), per_30s)]).await.unwrap() {
            RateOutcome::Allowed {
                remaining: r,
                reset_after,
            } => {
                assert!(reset_after <= Duration::from_secs(30), "{reset_after:?}");
                remaining.push(r);
            }
            other => panic!("refused early: {other:?}"),
        }
    }
    assert_eq!(remaining, vec![2, 1, 0]);
    match s.rate_limit(&[(route.clone(), per_30s)]).await.unwrap() {
        RateOutcome::Limited { index, retry_after } => {
            assert_eq!(index, 0);
            assert!(
                retry_after > Duration::from_secs(5) && retry_after <= Duration::from_secs(10),
                "{retry_after:?}"
            );
        }
        other => panic!("not refused: {other:?}"),
    }
    // Two keys: the route refuses, so the global key is not charged.
    let global = keys::rate("t", &who, "global");
    let per_second = limit(10, Duration::from_secs(1));
    let both = [(global.clone(), per_second), (route.clone(), per_30s)];
    for _ in 0..3 {
        match s.rate_limit(&both).await.unwrap() {
            RateOutcome::Limited { index, .. } => assert_eq!(index, 1),
            other => panic!("not refused: {other:?}"),
        }
    }
    assert_eq!(s.rate_peek(&global, per_second).await.unwrap().0, 10);
    // Another principal has its own allowance.
    let other = keys::rate("t", &fresh(), "route");
    assert!(matches!(
        s.rate_limit(&[(other, per_30s)]).await.unwrap(),
        RateOutcome::Allowed { remaining: 2, .. }
    ));
}

pub async fn gcra_refills_over_its_period_and_peeking_counts_nothing<F, Fut>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SharedState>>,
{
    let s = open().await;
    let key = keys::rate("t", &fresh(), "short");
    let two = limit(2, Duration::from_millis(400));
    for _ in 0..2 {
        assert!(matches!(
            s.rate_limit(&[(key.clone(), two)]).await.unwrap(),
            RateOutcome::Allowed { .. }
        ));
    }
    let (left, reset) = s.rate_peek(&key, two).await.unwrap();
    assert_eq!(left, 0);
    assert!(
        reset > Duration::from_millis(200) && reset <= Duration::from_millis(400),
        "{reset:?}"
    );
    assert_eq!(s.rate_peek(&key, two).await.unwrap().0, 0, "peeks are free");
    assert!(matches!(
        s.rate_limit(&[(key.clone(), two)]).await.unwrap(),
        RateOutcome::Limited { index: 0, .. }
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.rate_peek(&key, two).await.unwrap().0, 2, "refilled");
    assert!(matches!(
        s.rate_limit(&[(key, two)]).await.unwrap(),
        RateOutcome::Allowed { remaining: 1, .. }
    ));
}

pub async fn rate_limit_without_keys_is_an_error<F, Fut>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SharedState>>,
{
    let s = open().await;
    assert!(s.rate_limit(&[]).await.is_err());
}

pub async fn fixed_window_counts_until_full_and_starts_again_when_it_ends<F, Fut>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SharedState>>,
{
    let s = open().await;
    let key = keys::rate("t", &fresh(), "identify-day");
    let day = Duration::from_secs(86_400);
    let peek = s.window_hit(&key, 3, day, 0).await.unwrap();
    assert_eq!(
        (peek.allowed, peek.remaining, peek.reset_after),
        (true, 3, day)
    );
    for left in [2, 1, 0] {
        let hit = s.window_hit(&key, 3, day, 1).await.unwrap();
        assert!(hit.allowed);
        assert_eq!(hit.remaining, left);
        assert!(hit.reset_after > day - Duration::from_secs(5));
    }
    let refused = s.window_hit(&key, 3, day, 1).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // A cost that does not fit counts nothing, even where a smaller one would.
    let big = keys::rate("t", &fresh(), "w");
    assert!(!s.window_hit(&big, 3, day, 4).await.unwrap().allowed);
    assert_eq!(s.window_hit(&big, 3, day, 0).await.unwrap().remaining, 3);
    // A short window ends and the count starts again.
    let short = keys::rate("t", &fresh(), "w");
    let w = Duration::from_millis(200);
    assert!(s.window_hit(&short, 1, w, 1).await.unwrap().allowed);
    assert!(!s.window_hit(&short, 1, w, 1).await.unwrap().allowed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.window_hit(&short, 1, w, 1).await.unwrap().allowed);
}

pub async fn sessions_expire_and_are_removed<F, Fut>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SharedState>>,
{
    let s = open().await;
    let loc = SessionLocation {
        node: node(),
        user_id: fresh_user(),
        gateway_url: "ws://127.0.0.1:1".into(),
    };
    let (kept, short) = (fresh(), fresh());
    s.put_session(&kept, &loc, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(s.session(&kept).await.unwrap(), Some(loc.clone()));
    assert_eq!(s.session(&fresh()).await.unwrap(), None);
    s.remove_session(&kept).await.unwrap();
    assert_eq!(s.session(&kept).await.unwrap(), None);
    s.put_session(&short, &loc, Duration::from_millis(150))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.session(&short).await.unwrap(), None);
}

pub async fn presence_is_stored_announced_and_removed_when_offline<F, Fut>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SharedState>>,
{
    let s = open().await;
    let mut changes = s.presence_changes();
    let (user, unknown, brief) = (fresh_user(), fresh_user(), fresh_user());
    let online = presence(user, Status::Online);
    s.put_presence(&online, Duration::from_secs(60))
        .await
        .unwrap();
    loop {
        let got = tokio::time::timeout(Duration::from_secs(5), changes.recv())
            .await
            .expect("the announcement arrives")
            .unwrap();
        if got.presence.user.id == user {
            assert_eq!(got, online);
            break;
        }
    }
    assert_eq!(
        s.presences(&[user, unknown]).await.unwrap(),
        vec![Some(online.presence.clone()), None]
    );
    assert_eq!(s.presences(&[]).await.unwrap(), Vec::new());
    s.put_presence(&presence(user, Status::Offline), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(s.presences(&[user]).await.unwrap(), vec![None]);
    s.put_presence(&presence(brief, Status::Idle), Duration::from_millis(150))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.presences(&[brief]).await.unwrap(), vec![None]);
}

pub async fn invalidations_reach_the_publishers_own_subscribers<F, Fut>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SharedState>>,
{
    let s = open().await;
    let mut heard = s.invalidations();
    let user_id = fresh_user();
    let sent = [
        Invalidation::SessionRevoked {
            session_id: user_id,
        },
        Invalidation::UserChanged { user_id },
        Invalidation::BotTokenReset {
            bot_user_id: user_id,
        },
    ];
    for inv in &sent {
        s.publish_invalidation(inv).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let inv = tokio::time::timeout(Duration::from_secs(5), heard.recv())
            .await
            .expect("the invalidation arrives")
            .unwrap();
        let mine = match &inv {
            Invalidation::SessionRevoked { session_id: id }
            | Invalidation::UserChanged { user_id: id }
            | Invalidation::BotTokenReset { bot_user_id: id } => *id == user_id,
        };
        if mine {
            got.push(inv);
        }
    }
    assert_eq!(got, sent, "in the order published");
}
