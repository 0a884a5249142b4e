//! The Redis shared state against a real redis-server: GCRA limits, session locations,
//! presence with its announcements, and the breaker across a Redis restart.

use std::time::{Duration, Instant};

use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::{ClientStatus, Presence, PresenceUser, Status};
use enrichment_storage::shared::redis::{RedisOptions, RedisShared};
use enrichment_storage::shared::{
    PresenceChange, RateLimit, RateOutcome, SessionLocation, SharedState, keys,
};
use enrichment_testkit::Redis;

fn options(url: String) -> RedisOptions {
    RedisOptions {
        url,
        key_prefix: "t".into(),
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_millis(500),
    }
}

async fn connect(redis: &Redis) -> RedisShared {
    RedisShared::connect(options(redis.url()))
        .await
        .expect("connect to redis")
}

fn presence(user: u64, status: Status) -> PresenceChange {
    PresenceChange {
        node_id: "node-a".into(),
        presence: Presence {
            user: PresenceUser {
                id: Snowflake(user),
            },
            guild_id: None,
            status,
            activities: Vec::new(),
            client_status: ClientStatus::default(),
        },
    }
}

fn limit(n: u32, secs: u64) -> RateLimit {
    RateLimit {
        limit: n,
        period: Duration::from_secs(secs),
    }
}

#[tokio::test]
async fn gcra_counts_down_refuses_and_counts_nothing_when_refused() {
    let redis = Redis::start().unwrap();
    let s = connect(&redis).await;
    let key = keys::rate("t", "tok", "route");
    let mut remaining = Vec::new();
    for _ in 0..3 {
        match s.rate_limit(&[(key.clone(), limit(3, 30))]).await.unwrap() {
            RateOutcome::Allowed {
                remaining: r,
                reset_after,
            } => {
                assert!(reset_after <= Duration::from_secs(30));
                remaining.push(r);
            }
            other => panic!("refused early: {other:?}"),
        }
    }
    assert_eq!(remaining, vec![2, 1, 0]);
    match s.rate_limit(&[(key.clone(), limit(3, 30))]).await.unwrap() {
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
    let global = keys::rate("t", "tok", "global");
    let both = [(global.clone(), limit(10, 1)), (key.clone(), limit(3, 30))];
    match s.rate_limit(&both).await.unwrap() {
        RateOutcome::Limited { index, .. } => assert_eq!(index, 1),
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(s.rate_peek(&global, limit(10, 1)).await.unwrap().0, 10);
    // Peeking does not count either.
    assert_eq!(s.rate_peek(&global, limit(10, 1)).await.unwrap().0, 10);
    // Another principal has its own allowance.
    let other = keys::rate("t", "other", "route");
    assert!(matches!(
        s.rate_limit(&[(other, limit(3, 30))]).await.unwrap(),
        RateOutcome::Allowed { remaining: 2, .. }
    ));
}

#[tokio::test]
async fn two_clients_share_one_allowance() {
    let redis = Redis::start().unwrap();
    let a = connect(&redis).await;
    let b = connect(&redis).await;
    let key = keys::rate("t", "tok", "global");
    let mut allowed = 0;
    for i in 0..10 {
        let s = if i % 2 == 0 { &a } else { &b };
        if let RateOutcome::Allowed { .. } =
            s.rate_limit(&[(key.clone(), limit(4, 60))]).await.unwrap()
        {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 4);
}

#[tokio::test]
async fn sessions_expire_and_are_removed() {
    let redis = Redis::start().unwrap();
    let s = connect(&redis).await;
    let loc = SessionLocation {
        node_id: "node-a".into(),
        user_id: Snowflake(7),
        gateway_url: "ws://127.0.0.1:1".into(),
    };
    s.put_session("abc", &loc, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(s.session("abc").await.unwrap(), Some(loc.clone()));
    s.remove_session("abc").await.unwrap();
    assert_eq!(s.session("abc").await.unwrap(), None);
    s.put_session("short", &loc, Duration::from_millis(150))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.session("short").await.unwrap(), None);
}

#[tokio::test]
async fn presence_is_stored_and_announced_to_every_client() {
    let redis = Redis::start().unwrap();
    let a = connect(&redis).await;
    let b = connect(&redis).await;
    let mut changes = b.presence_changes();
    let online = presence(42, Status::Online);
    a.put_presence(&online, Duration::from_secs(60))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("announcement arrives")
        .unwrap();
    assert_eq!(got, online);
    let stored = b.presences(&[Snowflake(42), Snowflake(43)]).await.unwrap();
    assert_eq!(stored, vec![Some(online.presence.clone()), None]);
    a.put_presence(&presence(42, Status::Offline), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(b.presences(&[Snowflake(42)]).await.unwrap(), vec![None]);
}

#[tokio::test]
async fn a_restart_degrades_then_recovers_without_reconnecting_by_hand() {
    let mut redis = Redis::start().unwrap();
    let s = connect(&redis).await;
    let mut changes = s.presence_changes();
    let key = keys::rate("t", "tok", "global");
    assert!(s.rate_limit(&[(key.clone(), limit(100, 1))]).await.is_ok());
    redis.stop();
    assert!(s.rate_limit(&[(key.clone(), limit(100, 1))]).await.is_err());
    assert!(!s.is_up(), "one failure marks Redis down");
    // While down, calls fail at once rather than each waiting for the timeout.
    let started = Instant::now();
    for _ in 0..20 {
        assert!(s.session("x").await.is_err());
    }
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !s.is_up() {
        assert!(Instant::now() < deadline, "Redis was not noticed back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(s.rate_limit(&[(key, limit(100, 1))]).await.is_ok());
    // The presence subscription came back with the connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        s.put_presence(&presence(9, Status::Idle), Duration::from_secs(60))
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_millis(300), changes.recv()).await {
            Ok(Ok(c)) if c.presence.user.id == Snowflake(9) => break,
            _ => assert!(
                Instant::now() < deadline,
                "no announcement after the restart"
            ),
        }
    }
}

#[tokio::test]
async fn an_unreachable_redis_fails_fast_naming_the_setting() {
    let port = enrichment_testkit::free_port().unwrap();
    let started = Instant::now();
    let err = RedisShared::connect(options(format!("redis://127.0.0.1:{port}")))
        .await
        .expect_err("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(5));
    let msg = err.to_string();
    assert!(msg.contains("ENRICHMENT_REDIS_URL"), "{msg}");
    assert!(msg.contains(&port.to_string()), "{msg}");
    let err = RedisShared::connect(options("http://x".into()))
        .await
        .expect_err("not a Redis URL");
    assert!(err.to_string().contains("ENRICHMENT_REDIS_URL"), "{err}");
}

#[tokio::test]
async fn a_fixed_window_counts_until_full_and_reports_its_reset() {
    let redis = Redis::start().unwrap();
    let s = connect(&redis).await;
    let key = keys::rate("t", "u1", "identify-day");
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
    // A short window ends and the count starts again.
    let short = keys::rate("t", "u2", "w");
    assert!(
        s.window_hit(&short, 1, Duration::from_millis(200), 1)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !s.window_hit(&short, 1, Duration::from_millis(200), 1)
            .await
            .unwrap()
            .allowed
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.window_hit(&short, 1, Duration::from_millis(200), 1)
            .await
            .unwrap()
            .allowed
    );
}
