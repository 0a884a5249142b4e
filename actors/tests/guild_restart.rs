//! A guild actor that fails is restarted from storage by its supervisor; the sessions that
//! followed the guild keep receiving its events, and other guilds are untouched.

// Test helpers panic on anything unexpected; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use enrichment_actors::gateway::{Session, SessionInfo, SessionLimits, SessionRegistry};
use enrichment_actors::guild::requests::{self, Caller, SessionOp};
use enrichment_actors::guild::{GuildContext, GuildLimits, create_guild};
use enrichment_actors::router::{GuildRouter, LocalGuildRouter};
use enrichment_protocol::gateway::{Encoding, Outbound, PresenceUpdate, finish_dispatch, intents};
use enrichment_protocol::models::User;
use enrichment_protocol::rest::CreateGuild;
use enrichment_protocol::{Snowflake, SnowflakeGenerator};
use enrichment_storage::embedded::EmbeddedStore;
use enrichment_storage::{Credentials, Stores};

async fn user(stores: &Stores, id: u64) -> Snowflake {
    let u = User::new(Snowflake(id), format!("user{id}"));
    stores
        .users
        .create_user(
            &u,
            &Credentials {
                user_id: u.id,
                password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
                totp_secret: None,
                totp_last_step: 0,
                backup_codes: Vec::new(),
            },
        )
        .await
        .unwrap();
    u.id
}

/// Dispatch names and `d` payloads waiting in a session.
fn drain(s: &Session) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    s.take_pending(0, &mut out).unwrap();
    out.into_iter()
        .map(|(seq, prefix)| {
            let mut b = BytesMut::new();
            finish_dispatch(Encoding::Json, &prefix, seq, &mut b);
            let f = Outbound::decode(Encoding::Json, &b).unwrap();
            (f.t.unwrap(), f.d)
        })
        .collect()
}

struct Fixture {
    stores: Stores,
    ctx: Arc<GuildContext>,
    sessions: Arc<SessionRegistry>,
    local: Arc<LocalGuildRouter>,
    router: Arc<dyn GuildRouter>,
    _dir: tempfile::TempDir,
}

async fn fixture(limits: GuildLimits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let stores = Arc::new(EmbeddedStore::open(&dir.path().join("store")).unwrap()).stores();
    let sessions = Arc::new(SessionRegistry::new());
    let ctx = common::context(&stores, &sessions, SnowflakeGenerator::new(1, 1), limits);
    let local = LocalGuildRouter::start(ctx.clone(), Duration::from_secs(5))
        .await
        .unwrap();
    local.set_start_hook(sessions.clone());
    Fixture {
        stores,
        ctx,
        sessions,
        router: local.clone(),
        local,
        _dir: dir,
    }
}

async fn guild(ctx: &GuildContext, owner: Snowflake, name: &str) -> Snowflake {
    let body: CreateGuild = serde_json::from_value(serde_json::json!({ "name": name })).unwrap();
    create_guild(ctx, owner, body).await.unwrap().id
}

fn session(sessions: &SessionRegistry, user: Snowflake) -> Arc<Session> {
    let key = sessions.next_key();
    let s = Arc::new(Session::new(
        SessionInfo {
            session_id: format!("s{key}"),
            user_id: user,
            bot: false,
            intents: intents::ALL,
            encoding: Encoding::Json,
            shard: None,
            large_threshold: 50,
        },
        key,
        SessionLimits::default(),
        PresenceUpdate::default(),
    ));
    sessions.insert(s.clone());
    s
}

async fn subscribe(router: &dyn GuildRouter, g: Snowflake, s: &Arc<Session>) {
    let op = SessionOp::Subscribe {
        session: s.reference().clone(),
    };
    router.session_op(g, op).await.unwrap();
}

#[tokio::test]
async fn a_followed_guild_actor_stays_and_an_unfollowed_one_stops_when_idle() {
    let f = fixture(GuildLimits {
        idle_timeout: Duration::from_millis(200),
        ..GuildLimits::default()
    })
    .await;
    let owner = user(&f.stores, 10).await;
    let followed = guild(&f.ctx, owner, "followed").await;
    let quiet = guild(&f.ctx, owner, "quiet").await;
    let s = session(&f.sessions, owner);
    subscribe(f.router.as_ref(), followed, &s).await;
    f.router
        .request(quiet, Caller::new(owner), requests::GetGuild {})
        .await
        .unwrap();
    assert_eq!(f.router.local_actor_count(), 2);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        f.router.local_actor_count(),
        1,
        "only the followed guild stays"
    );
    f.sessions.remove(&s);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        f.router.local_actor_count(),
        0,
        "nobody follows it any more"
    );
    f.local.stop();
}

#[tokio::test]
async fn a_failed_guild_actor_comes_back_with_its_subscribers() {
    let f = fixture(GuildLimits::default()).await;
    let (stores, router) = (f.stores.clone(), f.router.clone());
    let owner = user(&stores, 10).await;
    let g1 = guild(&f.ctx, owner, "one").await;
    let g2 = guild(&f.ctx, owner, "two").await;
    let session = session(&f.sessions, owner);
    for g in [g1, g2] {
        subscribe(router.as_ref(), g, &session).await;
    }
    let got = drain(&session);
    assert_eq!(got.iter().filter(|(t, _)| t == "GUILD_CREATE").count(), 2);
    let c1 = first_channel(&stores, g1).await;
    let c2 = first_channel(&stores, g2).await;

    assert!(f.local.reload(g1), "guild one is running");
    // The supervisor restarts it; the next command reaches the new actor.
    let send = |g: Snowflake, c: Snowflake, text: &str| {
        let body = serde_json::from_value(serde_json::json!({"content": text})).unwrap();
        let req = requests::CreateMessage::text(c, body);
        let router = router.clone();
        async move { router.request(g, Caller::new(owner), req).await }
    };
    let mut sent = None;
    for _ in 0..50 {
        if let Ok(r) = send(g1, c1, "after restart").await {
            sent = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = sent.expect("guild one answers again after its restart");
    send(g2, c2, "other guild").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..100 {
        got.extend(drain(&session));
        if got.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let contents: Vec<_> = got
        .iter()
        .filter(|(t, _)| t == "MESSAGE_CREATE")
        .map(|(_, d)| {
            (
                d["id"].as_str().unwrap().to_owned(),
                d["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        contents.contains(&(sent.id.to_string(), "after restart".to_owned())),
        "the restarted actor fans out to the session that followed it: {got:?}"
    );
    assert!(contents.iter().any(|(_, c)| c == "other guild"));
    assert_eq!(router.local_actor_count(), 2);
    f.local.stop();
}

async fn first_channel(stores: &Stores, g: Snowflake) -> Snowflake {
    let snap = stores.guilds.load_guild(g).await.unwrap().unwrap();
    snap.channels[0].id
}
