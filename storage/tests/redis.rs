//! The Redis shared state against a real redis-server: the conformance suite (on Redis alone
//! and on the fallback decorator over it), then what only Redis does: one allowance and one
//! broadcast shared by several clients, the breaker across a Redis restart, and the decorator
//! answering in-process through an outage and returning to Redis after it.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::{ClientStatus, Presence, PresenceUser, Status};
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use enrichment_storage::shared::fallback::FallbackShared;
use enrichment_storage::shared::memory::MemoryShared;
use enrichment_storage::shared::redis::{RedisOptions, RedisShared};
use enrichment_storage::shared::testsuite::fresh;
use enrichment_storage::shared::{
    Invalidation, PresenceChange, RateLimit, RateOutcome, SessionLocation, SharedHealth,
    SharedState, keys,
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

/// One redis-server for the conformance cases, which keep apart by fresh keys and prefixes.
fn suite_redis() -> &'static Redis {
    static REDIS: OnceLock<Redis> = OnceLock::new();
    REDIS.get_or_init(|| Redis::start().expect("start redis-server"))
}

async fn suite_connect() -> RedisShared {
    RedisShared::connect(RedisOptions {
        key_prefix: format!("c{}", fresh()),
        ..options(suite_redis().url())
    })
    .await
    .expect("connect to redis")
}

mod on_redis {
    use super::*;

    async fn open() -> Arc<dyn SharedState> {
        Arc::new(suite_connect().await)
    }

    enrichment_storage::shared_state_conformance_tests!(open);
}

mod on_fallback_over_redis {
    use super::*;

    async fn open() -> Arc<dyn SharedState> {
        Arc::new(FallbackShared::new(
            Arc::new(suite_connect().await),
            Arc::new(MemoryShared::new()),
        ))
    }

    enrichment_storage::shared_state_conformance_tests!(open);
}

fn node() -> NodeIdentity {
    NodeIdentity::new("node-a", GenerationId(1))
}

fn presence(user: u64, status: Status) -> PresenceChange {
    PresenceChange {
        node: node(),
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
async fn presence_and_invalidations_are_announced_to_every_client() {
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
    // Invalidations travel on their own channel of the same connection.
    let mut heard = b.invalidations();
    let revoked = Invalidation::SessionRevoked {
        session_id: Snowflake(7),
    };
    a.publish_invalidation(&revoked).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), heard.recv())
        .await
        .expect("the invalidation arrives")
        .unwrap();
    assert_eq!(got, revoked);
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
    assert_eq!(
        s.health(),
        SharedHealth::Down,
        "one failure marks Redis down"
    );
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
    while s.health() != SharedHealth::Up {
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

async fn until_up(s: &dyn SharedState) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.health() != SharedHealth::Up {
        assert!(Instant::now() < deadline, "Redis was not noticed back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_fallback_answers_in_process_through_an_outage_and_returns_to_redis() {
    let mut redis = Redis::start().unwrap();
    let s = FallbackShared::new(
        Arc::new(connect(&redis).await),
        Arc::new(MemoryShared::new()),
    );
    // Another client sees what lands in Redis.
    let observer = connect(&redis).await;
    assert_eq!(s.health(), SharedHealth::Up);
    let mut heard = s.invalidations();
    let three = limit(3, 60);
    let key = keys::rate("t", &fresh(), "global");
    assert!(matches!(
        s.rate_limit(&[(key.clone(), three)]).await.unwrap(),
        RateOutcome::Allowed { remaining: 2, .. }
    ));
    assert_eq!(observer.rate_peek(&key, three).await.unwrap().0, 2);

    redis.stop();
    // The first call finds Redis gone and is answered in-process, as are the rest, with a
    // count of the node's own.
    for left in [2, 1, 0] {
        assert!(matches!(
            s.rate_limit(&[(key.clone(), three)]).await.unwrap(),
            RateOutcome::Allowed { remaining, .. } if remaining == left
        ));
    }
    assert!(matches!(
        s.rate_limit(&[(key.clone(), three)]).await.unwrap(),
        RateOutcome::Limited { .. }
    ));
    assert_eq!(s.health(), SharedHealth::Down);
    let loc = SessionLocation {
        node: node(),
        user_id: Snowflake(5),
        gateway_url: "ws://127.0.0.1:1".into(),
    };
    s.put_session("during", &loc, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(s.session("during").await.unwrap(), Some(loc.clone()));
    let window = s
        .window_hit("w:{during}", 5, Duration::from_secs(60), 1)
        .await
        .unwrap();
    assert_eq!((window.allowed, window.remaining), (true, 4));
    let local = Invalidation::UserChanged {
        user_id: Snowflake(5),
    };
    s.publish_invalidation(&local).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), heard.recv())
        .await
        .expect("an in-process invalidation reaches this node")
        .unwrap();
    assert_eq!(got, local);

    redis.restart().unwrap();
    until_up(&s).await;
    until_up(&observer).await;
    // Back on Redis (which restarted empty): writes land there, reads come from there.
    assert_eq!(s.session("during").await.unwrap(), None);
    s.put_session("after", &loc, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(observer.session("after").await.unwrap(), Some(loc));
    assert!(matches!(
        s.rate_limit(&[(key.clone(), three)]).await.unwrap(),
        RateOutcome::Allowed { remaining: 2, .. }
    ));
    assert_eq!(observer.rate_peek(&key, three).await.unwrap().0, 2);
    // Invalidations travel through Redis again, to other clients as well.
    let mut observed = observer.invalidations();
    let shared = Invalidation::BotTokenReset {
        bot_user_id: Snowflake(6),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        s.publish_invalidation(&shared).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(300), observed.recv()).await {
            Ok(Ok(got)) => {
                assert_eq!(got, shared);
                break;
            }
            _ => assert!(Instant::now() < deadline, "no invalidation through Redis"),
        }
    }
}
