//! The gateway state machine driven frame by frame, without sockets, over a real embedded
//! store, real accounts and real guild actors. Time is passed in, never slept on: a heartbeat
//! test says "forty seconds later" by handing over `t0 + 40 s`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use enrichment_protocol::gateway::{
    ConnectParams, Encoding, Outbound, app_flags, client_frame, intents, op,
};
use enrichment_protocol::models::{Channel, Guild, Role, User};
use enrichment_protocol::rest::{CreateGuild, CreateMessage, RegisterRequest};
use enrichment_protocol::{Snowflake, SnowflakeGenerator};
use enrichment_storage::embedded::EmbeddedStore;
use enrichment_storage::shared::memory::MemoryShared;
use enrichment_storage::{ApplicationRecord, GuildWrite, MemberRecord, Stores};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{Close, Connection, GatewayService, Inbound};
use crate::accounts::{AccountConfig, AccountService};
use crate::auth::{JwtKeys, Keyring, PasswordParams};
use crate::events::EventBus;
use crate::gateway::{GatewayConfig, IdentifyLimits, Presences, SessionRegistry, SharedGateway};
use crate::guild::commit::{Change, apply};
use crate::guild::requests::{self, Caller};
use crate::guild::{GuildContext, GuildLimits, create_guild};
use crate::router::{GuildRouter, LocalGuildRouter};
use crate::users::UserDirectory;

const INTERVAL: Duration = Duration::from_secs(40);
const RESUME_WINDOW: Duration = Duration::from_secs(120);
/// Guild events a plain test client asks for (no presences: those arrive on their own time).
const CLIENT_INTENTS: u64 = intents::GUILDS | intents::GUILD_MESSAGES | intents::MESSAGE_CONTENT;

fn config() -> GatewayConfig {
    GatewayConfig {
        heartbeat_interval: INTERVAL,
        resume_window: RESUME_WINDOW,
        resume_url: "wss://gateway.example.invalid".into(),
        ..GatewayConfig::default()
    }
}

struct Fixture {
    svc: Arc<GatewayService>,
    accounts: Arc<AccountService>,
    router: Arc<LocalGuildRouter>,
    ctx: Arc<GuildContext>,
    /// The shared state's clock, moved to each time a connection is opened at.
    clock: Arc<std::sync::Mutex<Instant>>,
    t0: Instant,
    _dir: TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.router.stop();
    }
}

#[derive(Clone, Debug)]
struct Account {
    token: String,
    id: Snowflake,
}

async fn fixture() -> Fixture {
    fixture_with(config()).await
}

async fn fixture_with(config: GatewayConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let stores: Stores = Arc::new(EmbeddedStore::open(&dir.path().join("store")).unwrap()).stores();
    let keys = JwtKeys::ephemeral("enrichment", "enrichment-api").unwrap();
    let ids = Arc::new(SnowflakeGenerator::new(1, 1));
    let users = UserDirectory::new(stores.users.clone());
    let sessions = Arc::new(SessionRegistry::new());
    // The shared state reads the time the test passes in (see `Fixture::connect`).
    let t0 = Instant::now();
    let clock = Arc::new(std::sync::Mutex::new(t0));
    let read = clock.clone();
    let shared = SharedGateway {
        state: Arc::new(MemoryShared::with_clock(Arc::new(move || {
            *read.lock().unwrap()
        }))),
        ..SharedGateway::in_process()
    };
    let ctx = Arc::new(GuildContext {
        stores: stores.clone(),
        users: users.clone(),
        bus: EventBus::new(64),
        recipients: sessions.clone(),
        presences: Arc::new(Presences {
            registry: sessions.clone(),
            shared: shared.state.clone(),
        }),
        ids: ids.clone(),
        limits: GuildLimits::default(),
        member_chunk_size: GatewayConfig::default().member_chunk_size,
        blobs: Arc::new(enrichment_storage::blobs::memory::MemoryBlobStore::default()),
    });
    let router = LocalGuildRouter::start(ctx.clone(), Duration::from_secs(5))
        .await
        .unwrap();
    router.set_start_hook(sessions.clone());
    let accounts = Arc::new(AccountService::new(
        stores.clone(),
        users,
        Arc::new(Keyring::fixed(keys)),
        ids,
        AccountConfig {
            access_ttl: Duration::from_secs(600),
            refresh_ttl: Duration::from_secs(3600),
            password: PasswordParams::for_tests(),
            login_attempts_per_account: 10,
            login_attempts_per_ip: 10,
            login_window: Duration::from_secs(60),
            session_cache: Duration::from_secs(5),
        },
    ));
    let svc = Arc::new(
        GatewayService::new(
            config,
            sessions,
            accounts.clone(),
            router.clone() as Arc<dyn GuildRouter>,
            stores,
        )
        .with_shared(shared),
    );
    Fixture {
        svc,
        clock,
        accounts,
        router,
        ctx,
        t0,
        _dir: dir,
    }
}

impl Fixture {
    async fn user(&self, name: &str) -> Account {
        let reg = self
            .accounts
            .register(RegisterRequest {
                username: name.into(),
                email: format!("{name}@example.com"),
                password: "correct horse battery".into(),
                global_name: None,
            })
            .await
            .unwrap();
        let who = self.accounts.authenticate(&reg.token).await.unwrap();
        Account {
            token: reg.token,
            id: who.user_id,
        }
    }

    /// A bot whose application has `flags`, and its `Bot ...` token.
    async fn bot(&self, name: &str, flags: u64) -> Account {
        let owner = self.user(&format!("{name}_owner")).await;
        let owner_who = self.accounts.authenticate(&owner.token).await.unwrap();
        let bot_id = self.ctx.ids.next_id();
        let app = ApplicationRecord {
            id: self.ctx.ids.next_id(),
            name: name.into(),
            description: String::new(),
            owner_id: owner.id,
            bot_user_id: bot_id,
            verify_key: "key".into(),
            flags,
        };
        let bot = User {
            bot: true,
            ..User::new(bot_id, name)
        };
        self.ctx
            .stores
            .applications
            .create_application(&app, &bot)
            .await
            .unwrap();
        let token = self
            .accounts
            .reset_bot_token(owner_who, app.id)
            .await
            .unwrap();
        Account {
            token: format!("Bot {token}"),
            id: bot_id,
        }
    }

    async fn guild(&self, owner: &Account, name: &str) -> Guild {
        create_guild(
            &self.ctx,
            owner.id,
            CreateGuild {
                name: name.into(),
                icon: None,
                description: None,
            },
        )
        .await
        .unwrap()
    }

    /// A guild with a chosen id (to place it on a chosen shard), owned by `owner`.
    async fn guild_with_id(&self, id: Snowflake, owner: &Account) {
        // Another guild's rows, renumbered: the template's owner has no session, so its
        // actor never starts.
        let template = create_guild(
            &self.ctx,
            Snowflake(1),
            CreateGuild {
                name: "template".into(),
                icon: None,
                description: None,
            },
        )
        .await
        .unwrap();
        let snap = self
            .ctx
            .stores
            .guilds
            .load_guild(template.id)
            .await
            .unwrap()
            .unwrap();
        let channel_id = Snowflake(id.0 + 1);
        let guild = Guild {
            id,
            owner_id: owner.id,
            name: format!("guild {}", id.0),
            system_channel_id: Some(channel_id),
            roles: Vec::new(),
            ..snap.guild.unwrap()
        };
        let role = Role {
            id,
            ..snap.roles[0].clone()
        };
        let channel = Channel {
            id: channel_id,
            guild_id: Some(id),
            ..snap.channels[0].clone()
        };
        let member = MemberRecord {
            guild_id: id,
            user_id: owner.id,
            ..snap.members[0].clone()
        };
        let writes = vec![
            GuildWrite::PutGuild(guild),
            GuildWrite::PutRole { guild_id: id, role },
            GuildWrite::PutChannel(channel),
            GuildWrite::PutMember(member),
        ];
        let change = Change::Guild {
            guild_id: id,
            writes,
        };
        apply(&self.ctx.stores, change).await.unwrap();
    }

    async fn post(&self, author: &Account, guild: &Guild, content: &str) {
        let channel = guild.system_channel_id.unwrap();
        let body: CreateMessage = serde_json::from_value(json!({ "content": content })).unwrap();
        let router: Arc<dyn GuildRouter> = self.router.clone();
        router
            .request(
                guild.id,
                Caller::new(author.id),
                requests::CreateMessage::text(channel, body),
            )
            .await
            .unwrap();
    }

    fn connect(&self, now: Instant) -> Connection {
        self.connect_with(Encoding::Json, now)
    }

    /// Moves the shared state's clock (IDENTIFY budgets) to `now`.
    fn at(&self, now: Instant) {
        *self.clock.lock().unwrap() = now;
    }

    fn connect_with(&self, encoding: Encoding, now: Instant) -> Connection {
        self.at(now);
        Connection::new(
            self.svc.clone(),
            ConnectParams {
                version: 10,
                encoding,
                compress: enrichment_protocol::gateway::TransportCompression::None,
            },
            now,
        )
    }

    /// A connection that identified; returns it with what it drained so far (READY first).
    async fn identified(&self, who: &Account, now: Instant) -> (Connection, Vec<Outbound>) {
        let mut conn = self.connect(now);
        let controls = send(&mut conn, op::IDENTIFY, identify(who, CLIENT_INTENTS), now)
            .await
            .unwrap();
        assert!(controls.is_empty(), "IDENTIFY answered {controls:?}");
        let got = drain(&conn).unwrap();
        assert_eq!(got[0].t.as_deref(), Some("READY"));
        (conn, got)
    }
}

fn identify(who: &Account, intents: u64) -> Value {
    json!({
        "token": who.token,
        "intents": intents,
        "properties": { "os": "linux", "browser": "tests", "device": "tests" },
    })
}

fn resume(who: &Account, session_id: &str, seq: u64) -> Value {
    json!({ "token": who.token, "session_id": session_id, "seq": seq })
}

/// Sends one client frame; returns the decoded control frames the connection answers with.
async fn send(
    conn: &mut Connection,
    opcode: u8,
    d: Value,
    now: Instant,
) -> Result<Vec<Outbound>, Close> {
    let encoding = conn.params().encoding;
    let bytes = client_frame(encoding, opcode, &d).unwrap();
    send_raw(conn, &bytes, now).await
}

async fn send_raw(
    conn: &mut Connection,
    bytes: &[u8],
    now: Instant,
) -> Result<Vec<Outbound>, Close> {
    let encoding = conn.params().encoding;
    let msg = match encoding {
        Encoding::Json => Inbound::Text(bytes),
        Encoding::MsgPack => Inbound::Binary(bytes),
    };
    let frames = conn.receive(msg, now).await?;
    Ok(frames
        .iter()
        .map(|f| Outbound::decode(encoding, f).unwrap())
        .collect())
}

/// Everything the connection would write now, spliced and decoded.
fn drain(conn: &Connection) -> Result<Vec<Outbound>, Close> {
    let encoding = conn.params().encoding;
    let mut pending = Vec::new();
    conn.drain(&mut pending)?;
    Ok(pending
        .into_iter()
        .map(|(seq, prefix)| {
            let mut buf = BytesMut::new();
            conn.finish(seq, &prefix, &mut buf);
            Outbound::decode(encoding, &buf).unwrap()
        })
        .collect())
}

/// Drains until `done` holds for everything drained so far (at most ~5 s: GUILD_CREATE and
/// guild events come from other tasks).
async fn drain_until(
    conn: &Connection,
    got: &mut Vec<Outbound>,
    done: impl Fn(&[Outbound]) -> bool,
) {
    for _ in 0..500 {
        got.extend(drain(conn).unwrap());
        if done(got) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting; drained {:?}", names(got));
}

fn names(frames: &[Outbound]) -> Vec<(Option<u64>, String)> {
    frames
        .iter()
        .map(|f| (f.s, f.t.clone().unwrap_or_else(|| format!("op {}", f.op))))
        .collect()
}

fn count(frames: &[Outbound], t: &str) -> usize {
    frames.iter().filter(|f| f.t.as_deref() == Some(t)).count()
}

fn session_id(ready: &Outbound) -> String {
    ready.d["session_id"].as_str().unwrap().to_owned()
}

fn ready_guilds(ready: &Outbound) -> Vec<Snowflake> {
    let mut ids: Vec<Snowflake> = ready.d["guilds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| serde_json::from_value(g["id"].clone()).unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

fn code(r: Result<Vec<Outbound>, Close>) -> u16 {
    match r {
        Err(c) => c.code,
        Ok(frames) => panic!("expected a close, got {frames:?}"),
    }
}

fn invalid_session(frames: &[Outbound]) -> bool {
    frames.len() == 1 && frames[0].op == op::INVALID_SESSION && frames[0].d == json!(false)
}

// ------------------------------------------------------------------ HELLO and heartbeats

#[tokio::test]
async fn hello_carries_the_heartbeat_interval_in_either_encoding() {
    let f = fixture().await;
    for encoding in [Encoding::Json, Encoding::MsgPack] {
        let conn = f.connect_with(encoding, f.t0);
        let hello = Outbound::decode(encoding, &conn.hello()).unwrap();
        assert_eq!(hello.op, op::HELLO);
        assert_eq!(hello.d, json!({ "heartbeat_interval": 40_000 }));
        assert_eq!((hello.s, hello.t), (None, None));
        assert_eq!(conn.next_tick(), f.t0 + INTERVAL);
    }
}

#[tokio::test]
async fn a_heartbeat_is_acked_and_its_seq_releases_the_replay_buffer() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let (mut conn, got) = f.identified(&alice, f.t0).await;
    assert_eq!(names(&got), vec![(Some(1), "READY".to_owned())]);
    let session = conn.session().unwrap().clone();
    for n in 0..3 {
        session.send_event("TEST_EVENT", &json!({ "n": n }));
    }
    assert_eq!(drain(&conn).unwrap().len(), 3);
    assert_eq!(session.replay_len().0, 4, "READY and three events kept");

    let ack = send(
        &mut conn,
        op::HEARTBEAT,
        json!(2),
        f.t0 + Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].op, op::HEARTBEAT_ACK);
    assert_eq!((ack[0].s, ack[0].t.as_deref()), (None, None));
    assert_eq!(session.replay_len().0, 2, "1 and 2 are acknowledged");

    // A null `d` (nothing received yet) is a valid heartbeat and forgets nothing.
    let ack = send(
        &mut conn,
        op::HEARTBEAT,
        Value::Null,
        f.t0 + Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(ack[0].op, op::HEARTBEAT_ACK);
    assert_eq!(session.replay_len().0, 2);

    send(
        &mut conn,
        op::HEARTBEAT,
        json!(4),
        f.t0 + Duration::from_secs(3),
    )
    .await
    .unwrap();
    assert_eq!(session.replay_len(), (0, 0));
    // The heartbeat also moved the supervision deadline.
    assert_eq!(conn.next_tick(), f.t0 + Duration::from_secs(3) + INTERVAL);
}

#[tokio::test]
async fn a_heartbeat_before_identify_is_acked() {
    let f = fixture().await;
    let mut conn = f.connect(f.t0);
    let ack = send(&mut conn, op::HEARTBEAT, Value::Null, f.t0)
        .await
        .unwrap();
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].op, op::HEARTBEAT_ACK);
}

#[tokio::test]
async fn a_silent_client_is_asked_for_a_heartbeat_after_one_interval() {
    let f = fixture().await;
    let mut conn = f.connect(f.t0);
    assert_eq!(
        conn.tick(f.t0 + INTERVAL - Duration::from_millis(1)),
        Ok(None)
    );
    let asked = conn.tick(f.t0 + INTERVAL).unwrap().unwrap();
    let asked = Outbound::decode(Encoding::Json, &asked).unwrap();
    assert_eq!(asked.op, op::HEARTBEAT);
    // Asked once, not on every tick; the next deadline is the zombie one.
    assert_eq!(
        conn.tick(f.t0 + INTERVAL + Duration::from_secs(1)),
        Ok(None)
    );
    assert_eq!(conn.next_tick(), f.t0 + INTERVAL + INTERVAL / 2);
    // Answering resets the clock.
    let beat = f.t0 + INTERVAL + Duration::from_secs(5);
    send(&mut conn, op::HEARTBEAT, Value::Null, beat)
        .await
        .unwrap();
    assert_eq!(conn.next_tick(), beat + INTERVAL);
    assert_eq!(conn.tick(f.t0 + INTERVAL + INTERVAL / 2), Ok(None));
}

#[tokio::test]
async fn a_zombie_is_closed_with_4009_after_one_and_a_half_intervals_and_stays_resumable() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let (mut conn, got) = f.identified(&alice, f.t0).await;
    let sid = session_id(&got[0]);
    assert!(conn.tick(f.t0 + INTERVAL).unwrap().is_some());
    let almost = f.t0 + INTERVAL + INTERVAL / 2 - Duration::from_millis(1);
    assert_eq!(conn.tick(almost), Ok(None));
    let zombie = f.t0 + INTERVAL + INTERVAL / 2;
    let close = conn.tick(zombie).unwrap_err();
    assert_eq!(close.code, 4009);
    // The listener closed the socket itself: no client close code.
    conn.closed(None, zombie).await;
    let mut again = f.connect(zombie);
    let r = send(&mut again, op::RESUME, resume(&alice, &sid, 1), zombie)
        .await
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
    let replay = drain(&again).unwrap();
    assert_eq!(names(&replay), vec![(Some(2), "RESUMED".to_owned())]);
}

// ------------------------------------------------------------------ close codes

#[tokio::test]
async fn unknown_opcodes_close_4001() {
    let f = fixture().await;
    for opcode in [
        5u8,
        op::RECONNECT,
        op::INVALID_SESSION,
        op::HELLO,
        op::HEARTBEAT_ACK,
        42,
    ] {
        let mut conn = f.connect(f.t0);
        assert_eq!(
            code(send(&mut conn, opcode, Value::Null, f.t0).await),
            4001,
            "op {opcode}"
        );
    }
}

#[tokio::test]
async fn undecodable_payloads_close_4002() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    for raw in [
        &b"{not json"[..],
        b"[1,2,3]",
        b"{\"d\":null}",
        b"{\"op\":\"two\"}",
        b"{\"op\":2,\"d\":{\"intents\":1}}",
        b"{\"op\":6,\"d\":{\"token\":\"t\",\"seq\":\"x\"}}",
    ] {
        let mut conn = f.connect(f.t0);
        assert_eq!(
            code(send_raw(&mut conn, raw, f.t0).await),
            4002,
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    // MessagePack connections read MessagePack, not JSON.
    let mut conn = f.connect_with(Encoding::MsgPack, f.t0);
    let json = client_frame(Encoding::Json, op::HEARTBEAT, &Value::Null).unwrap();
    assert_eq!(code(send_raw(&mut conn, &json, f.t0).await), 4002);
    // Op 8 needs a query or user ids.
    let (mut conn, _) = f.identified(&alice, f.t0).await;
    let r = send(
        &mut conn,
        op::REQUEST_GUILD_MEMBERS,
        json!({ "guild_id": "1", "limit": 0 }),
        f.t0,
    )
    .await;
    assert_eq!(code(r), 4002);
}

#[tokio::test]
async fn a_frame_above_max_inbound_bytes_closes_4002() {
    let f = fixture().await;
    let max = f.svc.config.max_inbound_bytes;
    // A valid heartbeat padded with whitespace to exactly the limit is accepted...
    let mut conn = f.connect(f.t0);
    let mut frame = b"{\"op\":1,\"d\":null".to_vec();
    frame.resize(max - 1, b' ');
    frame.push(b'}');
    assert_eq!(frame.len(), max);
    assert_eq!(send_raw(&mut conn, &frame, f.t0).await.unwrap().len(), 1);
    // ...one byte more is not, whatever it says.
    frame.insert(frame.len() - 1, b' ');
    assert_eq!(code(send_raw(&mut conn, &frame, f.t0).await), 4002);
}

#[tokio::test]
async fn presence_voice_and_member_requests_before_identify_close_4003() {
    let f = fixture().await;
    let cases = [
        (
            op::PRESENCE_UPDATE,
            json!({ "since": null, "activities": [], "status": "online", "afk": false }),
        ),
        (
            op::REQUEST_GUILD_MEMBERS,
            json!({ "guild_id": "1", "query": "", "limit": 0 }),
        ),
        (
            op::VOICE_STATE_UPDATE,
            json!({ "guild_id": "1", "channel_id": null, "self_mute": false, "self_deaf": false }),
        ),
    ];
    for (opcode, d) in cases {
        let mut conn = f.connect(f.t0);
        assert_eq!(
            code(send(&mut conn, opcode, d, f.t0).await),
            4003,
            "op {opcode}"
        );
    }
}

#[tokio::test]
async fn a_bad_token_closes_4004_on_identify_and_on_resume() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let (_conn, got) = f.identified(&alice, f.t0).await;
    let sid = session_id(&got[0]);
    let forged = Account {
        token: "not-a-token".into(),
        id: alice.id,
    };
    let mut conn = f.connect(f.t0);
    assert_eq!(
        code(
            send(
                &mut conn,
                op::IDENTIFY,
                identify(&forged, CLIENT_INTENTS),
                f.t0
            )
            .await
        ),
        4004
    );
    let mut conn = f.connect(f.t0);
    assert_eq!(
        code(send(&mut conn, op::RESUME, resume(&forged, &sid, 1), f.t0).await),
        4004
    );
    // So is a bot token nobody issued.
    let mut conn = f.connect(f.t0);
    let stale = Account {
        token: "Bot MTIz.bm90.aXNzdWVk".into(),
        id: alice.id,
    };
    assert_eq!(
        code(
            send(
                &mut conn,
                op::IDENTIFY,
                identify(&stale, intents::GUILDS),
                f.t0
            )
            .await
        ),
        4004
    );
}

#[tokio::test]
async fn a_second_identify_or_a_resume_after_identify_closes_4005() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let (mut conn, got) = f.identified(&alice, f.t0).await;
    let later = f.t0 + Duration::from_secs(10);
    assert_eq!(
        code(
            send(
                &mut conn,
                op::IDENTIFY,
                identify(&alice, CLIENT_INTENTS),
                later
            )
            .await
        ),
        4005
    );
    let (mut conn, _) = f.identified(&alice, later).await;
    assert_eq!(
        code(
            send(
                &mut conn,
                op::RESUME,
                resume(&alice, &session_id(&got[0]), 1),
                later
            )
            .await
        ),
        4005
    );
}

#[tokio::test]
async fn resuming_from_a_seq_the_session_never_sent_closes_4007() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let (conn, got) = f.identified(&alice, f.t0).await;
    let sid = session_id(&got[0]);
    conn.closed(Some(4000), f.t0).await;
    let mut conn = f.connect(f.t0);
    assert_eq!(
        code(send(&mut conn, op::RESUME, resume(&alice, &sid, 2), f.t0).await),
        4007
    );
    // The session survives a bad claim: the right seq still resumes it.
    let mut conn = f.connect(f.t0);
    assert!(
        send(&mut conn, op::RESUME, resume(&alice, &sid, 1), f.t0)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn more_than_inbound_per_window_frames_close_4008() {
    let f = fixture_with(GatewayConfig {
        inbound_per_window: 5,
        inbound_window: Duration::from_secs(60),
        ..config()
    })
    .await;
    let mut conn = f.connect(f.t0);
    for i in 0..5 {
        send(
            &mut conn,
            op::HEARTBEAT,
            Value::Null,
            f.t0 + Duration::from_secs(i),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        code(
            send(
                &mut conn,
                op::HEARTBEAT,
                Value::Null,
                f.t0 + Duration::from_secs(5)
            )
            .await
        ),
        4008
    );
    // The count is per window: five per minute, forever, is fine.
    let mut conn = f.connect(f.t0);
    for minute in 0..3u64 {
        for i in 0..5 {
            let at = f.t0 + Duration::from_secs(minute * 60 + i);
            send(&mut conn, op::HEARTBEAT, Value::Null, at)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn an_invalid_shard_closes_4010() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    for (i, shard) in [[2u32, 2], [0, 0], [5, 3]].into_iter().enumerate() {
        let mut conn = f.connect(f.t0);
        let mut d = identify(&alice, CLIENT_INTENTS);
        d["shard"] = json!(shard);
        // Spaced out so that the identify concurrency limit is never what answers.
        let at = f.t0 + Duration::from_secs(10 * i as u64);
        assert_eq!(
            code(send(&mut conn, op::IDENTIFY, d, at).await),
            4010,
            "{shard:?}"
        );
    }
}

/// A guild id with a chosen snowflake timestamp: its shard of `n` is `timestamp % n`.
fn guild_id(timestamp: u64, low: u64) -> Snowflake {
    Snowflake((timestamp << 22) | low)
}

#[tokio::test]
async fn more_guilds_than_one_shard_may_carry_close_4011() {
    let f = fixture_with(GatewayConfig {
        max_guilds_per_shard: 2,
        ..config()
    })
    .await;
    let alice = f.user("alice").await;
    // Shards of 2: timestamps 10, 12, 14 go to shard 0; 11 to shard 1.
    for ts in [10, 11, 12, 14] {
        f.guild_with_id(guild_id(ts, 5), &alice).await;
    }
    let mut conn = f.connect(f.t0);
    assert_eq!(
        code(
            send(
                &mut conn,
                op::IDENTIFY,
                identify(&alice, CLIENT_INTENTS),
                f.t0
            )
            .await
        ),
        4011
    );
    // Shard 1 of 2 carries one guild: fine. Shard 0 of 2 carries three: too many.
    let mut d = identify(&alice, CLIENT_INTENTS);
    d["shard"] = json!([1, 2]);
    let at = f.t0 + Duration::from_secs(10);
    let mut conn = f.connect(at);
    assert!(
        send(&mut conn, op::IDENTIFY, d.clone(), at)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ready_guilds(&drain(&conn).unwrap()[0]),
        vec![guild_id(11, 5)]
    );
    d["shard"] = json!([0, 2]);
    let at = f.t0 + Duration::from_secs(20);
    let mut conn = f.connect(at);
    assert_eq!(code(send(&mut conn, op::IDENTIFY, d, at).await), 4011);
}

#[tokio::test]
async fn unknown_intent_bits_close_4013() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    for (i, bits) in [1u64 << 17, 1 << 22, 1 << 40, intents::ALL + 1]
        .into_iter()
        .enumerate()
    {
        let mut conn = f.connect(f.t0);
        let at = f.t0 + Duration::from_secs(10 * i as u64);
        assert_eq!(
            code(
                send(
                    &mut conn,
                    op::IDENTIFY,
                    identify(&alice, intents::GUILDS | bits),
                    at
                )
                .await
            ),
            4013,
            "{bits:#x}"
        );
    }
    // Every defined bit together is fine.
    let mut conn = f.connect(f.t0 + Duration::from_secs(60));
    let r = send(
        &mut conn,
        op::IDENTIFY,
        identify(&alice, intents::ALL),
        f.t0 + Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(r.is_empty());
}

#[tokio::test]
async fn privileged_intents_close_4014_unless_the_application_allows_them() {
    let f = fixture().await;
    let plain = f.bot("plain", 0).await;
    for (i, privileged) in [
        intents::GUILD_MEMBERS,
        intents::GUILD_PRESENCES,
        intents::MESSAGE_CONTENT,
    ]
    .into_iter()
    .enumerate()
    {
        let at = f.t0 + Duration::from_secs(10 * i as u64);
        let mut conn = f.connect(at);
        let d = identify(&plain, intents::GUILDS | privileged);
        assert_eq!(
            code(send(&mut conn, op::IDENTIFY, d, at).await),
            4014,
            "{privileged:#x}"
        );
    }
    // Unprivileged intents need no flag; READY names the application.
    let at = f.t0 + Duration::from_secs(60);
    let mut conn = f.connect(at);
    let d = identify(&plain, intents::GUILDS | intents::GUILD_MESSAGES);
    assert!(
        send(&mut conn, op::IDENTIFY, d, at)
            .await
            .unwrap()
            .is_empty()
    );
    let ready = drain(&conn).unwrap().remove(0);
    assert_eq!(ready.t.as_deref(), Some("READY"));
    assert_eq!(ready.d["application"]["flags"], json!(0));
    assert_eq!(ready.d["user"]["bot"], json!(true));

    // A limited message-content flag unlocks that intent and no other.
    let reader = f
        .bot("reader", app_flags::GATEWAY_MESSAGE_CONTENT_LIMITED)
        .await;
    let mut conn = f.connect(at);
    let d = identify(&reader, intents::GUILDS | intents::MESSAGE_CONTENT);
    assert!(
        send(&mut conn, op::IDENTIFY, d, at)
            .await
            .unwrap()
            .is_empty()
    );
    let at = at + Duration::from_secs(10);
    let mut conn = f.connect(at);
    let d = identify(&reader, intents::MESSAGE_CONTENT | intents::GUILD_PRESENCES);
    assert_eq!(code(send(&mut conn, op::IDENTIFY, d, at).await), 4014);

    // Users are not bots: no application, no privileged-intent check.
    let alice = f.user("alice").await;
    let mut conn = f.connect(at);
    let d = identify(&alice, intents::PRIVILEGED);
    assert!(
        send(&mut conn, op::IDENTIFY, d, at)
            .await
            .unwrap()
            .is_empty()
    );
}

// ------------------------------------------------------------------ IDENTIFY and READY

#[tokio::test]
async fn identify_limits_answer_invalid_session_and_keep_the_connection() {
    let f = fixture_with(GatewayConfig {
        identify: IdentifyLimits {
            per_day: 3,
            max_concurrency: 1,
            concurrency_window: Duration::from_secs(5),
        },
        ..config()
    })
    .await;
    // The concurrency window holds bots (Discord's max_concurrency); people only the daily total.
    let alice = f
        .bot("alice", app_flags::GATEWAY_MESSAGE_CONTENT_LIMITED)
        .await;
    let (_first, _) = f.identified(&alice, f.t0).await;
    // Within the concurrency window: op 9, d=false, and the socket stays usable.
    let soon = f.t0 + Duration::from_secs(1);
    let mut conn = f.connect(soon);
    let r = send(
        &mut conn,
        op::IDENTIFY,
        identify(&alice, CLIENT_INTENTS),
        soon,
    )
    .await
    .unwrap();
    assert!(invalid_session(&r), "{r:?}");
    assert!(conn.session().is_none());
    assert!(drain(&conn).unwrap().is_empty());
    let ack = send(&mut conn, op::HEARTBEAT, Value::Null, soon)
        .await
        .unwrap();
    assert_eq!(ack[0].op, op::HEARTBEAT_ACK);
    // Once the window passed, the same connection may identify.
    let later = f.t0 + Duration::from_secs(5);
    f.at(later);
    let r = send(
        &mut conn,
        op::IDENTIFY,
        identify(&alice, CLIENT_INTENTS),
        later,
    )
    .await
    .unwrap();
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(drain(&conn).unwrap()[0].t.as_deref(), Some("READY"));
    // The daily total: a third identify works, a fourth is refused whatever the spacing.
    let (_third, _) = f.identified(&alice, f.t0 + Duration::from_secs(10)).await;
    let at = f.t0 + Duration::from_secs(3600);
    let mut conn = f.connect(at);
    let r = send(
        &mut conn,
        op::IDENTIFY,
        identify(&alice, CLIENT_INTENTS),
        at,
    )
    .await
    .unwrap();
    assert!(invalid_session(&r), "{r:?}");
    // A person may open several sessions at once.
    let carol = f.user("carol").await;
    let (_a, _) = f.identified(&carol, at).await;
    let (_b, _) = f.identified(&carol, at).await;
}

#[tokio::test]
async fn ready_is_dispatch_1_and_lists_guilds_as_unavailable_then_guild_creates_follow() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let g1 = f.guild(&alice, "first").await;
    let g2 = f.guild(&alice, "second").await;
    let (conn, mut got) = f.identified(&alice, f.t0).await;
    let ready = got[0].clone();
    assert_eq!((ready.op, ready.s), (op::DISPATCH, Some(1)));
    assert_eq!(ready.d["v"], json!(10));
    assert_eq!(ready.d["user"]["id"], json!(alice.id.to_string()));
    assert_eq!(
        ready.d["resume_gateway_url"],
        json!("wss://gateway.example.invalid")
    );
    let sid = session_id(&ready);
    assert_eq!(conn.session().unwrap().info.session_id, sid);
    let mut expected = vec![g1.id, g2.id];
    expected.sort_unstable();
    assert_eq!(ready_guilds(&ready), expected);
    for g in ready.d["guilds"].as_array().unwrap() {
        assert_eq!(g["unavailable"], json!(true));
        assert_eq!(g.as_object().unwrap().len(), 2, "a stub: {g}");
    }
    assert!(ready.d.get("shard").is_none());
    assert!(ready.d.get("application").is_none());

    drain_until(&conn, &mut got, |g| count(g, "GUILD_CREATE") == 2).await;
    let seqs: Vec<u64> = got.iter().map(|f| f.s.unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    let mut created: Vec<Snowflake> = got[1..]
        .iter()
        .map(|f| {
            assert_eq!(f.d["unavailable"], json!(false));
            assert_eq!(f.d["members"].as_array().unwrap().len(), 1);
            serde_json::from_value(f.d["id"].clone()).unwrap()
        })
        .collect();
    created.sort_unstable();
    assert_eq!(created, expected);
    assert!(conn.session().unwrap().follows(g1.id));
}

#[tokio::test]
async fn shards_carry_the_guilds_whose_id_shift_22_mod_n_is_theirs() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let all: Vec<Snowflake> = (100..109).map(|ts| guild_id(ts, 4000 + ts)).collect();
    for g in &all {
        f.guild_with_id(*g, &alice).await;
    }
    let mut seen = Vec::new();
    for shard in 0..3u32 {
        let at = f.t0 + Duration::from_secs(10 * u64::from(shard));
        let mut conn = f.connect(at);
        let mut d = identify(&alice, CLIENT_INTENTS);
        d["shard"] = json!([shard, 3]);
        assert!(
            send(&mut conn, op::IDENTIFY, d, at)
                .await
                .unwrap()
                .is_empty()
        );
        let mut got = drain(&conn).unwrap();
        assert_eq!(got[0].d["shard"], json!([shard, 3]));
        let carried = ready_guilds(&got[0]);
        let expected: Vec<Snowflake> = all
            .iter()
            .copied()
            .filter(|g| (g.0 >> 22) % 3 == u64::from(shard))
            .collect();
        assert_eq!(carried, expected, "shard {shard}");
        assert_eq!(carried.len(), 3);
        // GUILD_CREATE follows for exactly those guilds.
        drain_until(&conn, &mut got, |g| count(g, "GUILD_CREATE") == 3).await;
        let session = conn.session().unwrap();
        for g in &all {
            assert_eq!(
                session.follows(*g),
                expected.contains(g),
                "{g} on shard {shard}"
            );
        }
        seen.extend(carried);
    }
    seen.sort_unstable();
    assert_eq!(seen, all, "every guild on exactly one shard");
    // [0, 1] is one shard carrying everything.
    let at = f.t0 + Duration::from_secs(60);
    let mut conn = f.connect(at);
    let mut d = identify(&alice, CLIENT_INTENTS);
    d["shard"] = json!([0, 1]);
    assert!(
        send(&mut conn, op::IDENTIFY, d, at)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(ready_guilds(&drain(&conn).unwrap()[0]), all);
}

// ------------------------------------------------------------------ RESUME

#[tokio::test]
async fn resuming_an_unknown_session_is_an_invalid_session() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    let mut conn = f.connect(f.t0);
    let r = send(
        &mut conn,
        op::RESUME,
        resume(&alice, "0123456789abcdef", 0),
        f.t0,
    )
    .await
    .unwrap();
    assert!(invalid_session(&r), "{r:?}");
    assert!(conn.session().is_none());
    // Someone else's session id is as unknown as a made-up one.
    let (bobs, got) = f.identified(&bob, f.t0).await;
    bobs.closed(None, f.t0).await;
    let r = send(
        &mut conn,
        op::RESUME,
        resume(&alice, &session_id(&got[0]), 1),
        f.t0,
    )
    .await
    .unwrap();
    assert!(invalid_session(&r), "{r:?}");
    // ...and so is one of the right user in another encoding.
    let mut packed = f.connect_with(Encoding::MsgPack, f.t0);
    let r = send(
        &mut packed,
        op::RESUME,
        resume(&bob, &session_id(&got[0]), 1),
        f.t0,
    )
    .await
    .unwrap();
    assert!(invalid_session(&r), "{r:?}");
}

#[tokio::test]
async fn resume_replays_exactly_the_missed_dispatches_then_resumed() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let guild = f.guild(&alice, "replay").await;
    let (conn, mut got) = f.identified(&alice, f.t0).await;
    drain_until(&conn, &mut got, |g| count(g, "GUILD_CREATE") == 1).await;
    for n in 3..=5 {
        f.post(&alice, &guild, &format!("message {n}")).await;
    }
    drain_until(&conn, &mut got, |g| g.len() == 5).await;
    assert_eq!(
        got.iter().map(|f| f.s.unwrap()).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    // The socket dies with seq 5 in flight: the client saw up to 4.
    let sid = session_id(&got[0]);
    let dropped = f.t0 + Duration::from_secs(1);
    conn.closed(None, dropped).await;
    for n in 6..=7 {
        f.post(&alice, &guild, &format!("message {n}")).await;
    }
    let session = f.svc.registry.get(&sid).unwrap();
    // A detached session keeps receiving (fanout runs when the write completes).
    for _ in 0..500 {
        if session.seq() == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(session.seq(), 7);

    let back = dropped + Duration::from_secs(5);
    let mut conn = f.connect(back);
    let r = send(&mut conn, op::RESUME, resume(&alice, &sid, 4), back)
        .await
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
    let replay = drain(&conn).unwrap();
    assert_eq!(
        names(&replay),
        vec![
            (Some(5), "MESSAGE_CREATE".to_owned()),
            (Some(6), "MESSAGE_CREATE".to_owned()),
            (Some(7), "MESSAGE_CREATE".to_owned()),
            (Some(8), "RESUMED".to_owned()),
        ]
    );
    assert_eq!(
        replay[0], got[4],
        "the very frame that was lost, byte for byte"
    );
    for (frame, n) in replay[..3].iter().zip(5..) {
        assert_eq!(frame.d["content"], json!(format!("message {n}")));
    }
    // Nothing is written twice, and the stream goes on.
    assert!(drain(&conn).unwrap().is_empty());
    f.post(&alice, &guild, "message 9").await;
    let mut more = Vec::new();
    drain_until(&conn, &mut more, |g| !g.is_empty()).await;
    assert_eq!(names(&more), vec![(Some(9), "MESSAGE_CREATE".to_owned())]);
}

#[tokio::test]
async fn a_resumed_session_supersedes_the_old_connection() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let (old, got) = f.identified(&alice, f.t0).await;
    let sid = session_id(&got[0]);
    // The client gave up on a half-open socket the server still thinks is alive.
    let mut new = f.connect(f.t0);
    assert!(
        send(&mut new, op::RESUME, resume(&alice, &sid, 1), f.t0)
            .await
            .unwrap()
            .is_empty()
    );
    let close = drain(&old).unwrap_err();
    assert_eq!(close.code, 4000);
    assert_eq!(
        names(&drain(&new).unwrap()),
        vec![(Some(2), "RESUMED".to_owned())]
    );
    // The old socket going away, however it goes, leaves the new connection attached.
    old.closed(None, f.t0).await;
    conn_alive(&new);
}

fn conn_alive(conn: &Connection) {
    let session = conn.session().unwrap();
    assert!(!session.is_ended());
    session.send_event("TEST_EVENT", &json!({}));
    let got = drain(conn).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].t.as_deref(), Some("TEST_EVENT"));
}

#[tokio::test]
async fn a_1000_or_1001_close_ends_the_session_and_resume_is_refused() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    for (i, client_code) in [1000u16, 1001].into_iter().enumerate() {
        let at = f.t0 + Duration::from_secs(10 * i as u64);
        let (conn, got) = f.identified(&alice, at).await;
        let sid = session_id(&got[0]);
        let session = conn.session().unwrap().clone();
        conn.closed(Some(client_code), at).await;
        assert!(session.is_ended());
        assert!(f.svc.registry.get(&sid).is_none());
        let mut conn = f.connect(at);
        let r = send(&mut conn, op::RESUME, resume(&alice, &sid, 1), at)
            .await
            .unwrap();
        assert!(invalid_session(&r), "{client_code}: {r:?}");
    }
}

#[tokio::test]
async fn a_4000_close_or_none_at_all_keeps_the_session_resumable() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    for (i, client_code) in [Some(4000u16), None, Some(1006), Some(4009)]
        .into_iter()
        .enumerate()
    {
        let at = f.t0 + Duration::from_secs(10 * i as u64);
        let (conn, got) = f.identified(&alice, at).await;
        let sid = session_id(&got[0]);
        conn.closed(client_code, at).await;
        let session = f.svc.registry.get(&sid).unwrap();
        assert_eq!(session.detached_since(), Some(at));
        let mut conn = f.connect(at);
        let r = send(&mut conn, op::RESUME, resume(&alice, &sid, 1), at)
            .await
            .unwrap();
        assert!(r.is_empty(), "{client_code:?}: {r:?}");
        assert_eq!(
            names(&drain(&conn).unwrap()),
            vec![(Some(2), "RESUMED".to_owned())]
        );
    }
}

#[tokio::test]
async fn sweep_ends_sessions_detached_longer_than_the_resume_window() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    let (gone, got) = f.identified(&alice, f.t0).await;
    let sid = session_id(&got[0]);
    let (_attached, bobs) = f.identified(&bob, f.t0).await;
    let session = gone.session().unwrap().clone();
    let dropped = f.t0 + Duration::from_secs(1);
    gone.closed(None, dropped).await;

    assert_eq!(
        f.svc
            .sweep(dropped + RESUME_WINDOW - Duration::from_millis(1))
            .await,
        0
    );
    assert!(!session.is_ended());
    assert_eq!(f.svc.sweep(dropped + RESUME_WINDOW).await, 1);
    assert!(session.is_ended());
    assert!(f.svc.registry.get(&sid).is_none());
    // An attached session is never swept, however old.
    assert_eq!(f.svc.sweep(dropped + RESUME_WINDOW * 100).await, 0);
    assert!(f.svc.registry.get(&session_id(&bobs[0])).is_some());

    let at = dropped + RESUME_WINDOW;
    let mut conn = f.connect(at);
    let r = send(&mut conn, op::RESUME, resume(&alice, &sid, 1), at)
        .await
        .unwrap();
    assert!(invalid_session(&r), "{r:?}");
}

#[tokio::test]
async fn msgpack_sessions_get_msgpack_dispatches() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let guild = f.guild(&alice, "packed").await;
    let mut conn = f.connect_with(Encoding::MsgPack, f.t0);
    assert!(
        send(
            &mut conn,
            op::IDENTIFY,
            identify(&alice, CLIENT_INTENTS),
            f.t0
        )
        .await
        .unwrap()
        .is_empty()
    );
    let mut got = Vec::new();
    drain_until(&conn, &mut got, |g| count(g, "GUILD_CREATE") == 1).await;
    f.post(&alice, &guild, "packed hello").await;
    drain_until(&conn, &mut got, |g| g.len() == 3).await;
    assert_eq!(
        names(&got),
        vec![
            (Some(1), "READY".to_owned()),
            (Some(2), "GUILD_CREATE".to_owned()),
            (Some(3), "MESSAGE_CREATE".to_owned()),
        ]
    );
    assert_eq!(got[2].d["content"], json!("packed hello"));
}

#[tokio::test]
async fn a_slow_reader_is_closed_resumably_and_resumes() {
    let f = fixture_with(GatewayConfig {
        session: crate::gateway::SessionLimits {
            outbox_frames: 4,
            ..crate::gateway::SessionLimits::default()
        },
        ..config()
    })
    .await;
    let alice = f.user("alice").await;
    let (conn, got) = f.identified(&alice, f.t0).await;
    let sid = session_id(&got[0]);
    let session = conn.session().unwrap().clone();
    for n in 0..5 {
        session.send_event("TEST_EVENT", &json!({ "n": n }));
    }
    let close = drain(&conn).unwrap_err();
    assert_eq!(close.code, 4000);
    conn.closed(None, f.t0).await;
    let mut conn = f.connect(f.t0);
    assert!(
        send(&mut conn, op::RESUME, resume(&alice, &sid, 1), f.t0)
            .await
            .unwrap()
            .is_empty()
    );
    let seqs: Vec<u64> = drain(&conn).unwrap().iter().map(|f| f.s.unwrap()).collect();
    assert_eq!(seqs, vec![2, 3, 4, 5, 6, 7]);
}

#[tokio::test]
async fn a_resume_past_the_replay_buffer_is_an_invalid_session() {
    let f = fixture_with(GatewayConfig {
        session: crate::gateway::SessionLimits {
            replay_frames: 3,
            ..crate::gateway::SessionLimits::default()
        },
        ..config()
    })
    .await;
    let alice = f.user("alice").await;
    let (conn, got) = f.identified(&alice, f.t0).await;
    let sid = session_id(&got[0]);
    conn.closed(None, f.t0).await;
    let session = f.svc.registry.get(&sid).unwrap();
    for n in 0..4 {
        session.send_event("TEST_EVENT", &json!({ "n": n }));
    }
    // Kept: 3, 4, 5. From 1, seq 2 is gone.
    let mut conn = f.connect(f.t0);
    let r = send(&mut conn, op::RESUME, resume(&alice, &sid, 1), f.t0)
        .await
        .unwrap();
    assert!(invalid_session(&r), "{r:?}");
    let r = send(&mut conn, op::RESUME, resume(&alice, &sid, 2), f.t0)
        .await
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
    let seqs: Vec<u64> = drain(&conn).unwrap().iter().map(|f| f.s.unwrap()).collect();
    assert_eq!(seqs, vec![3, 4, 5, 6]);
}

#[tokio::test]
async fn a_superseded_connection_closing_with_1000_does_not_end_the_session() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let (old, got) = f.identified(&alice, f.t0).await;
    let sid = session_id(&got[0]);
    let mut new = f.connect(f.t0);
    assert!(
        send(&mut new, op::RESUME, resume(&alice, &sid, 1), f.t0)
            .await
            .unwrap()
            .is_empty()
    );
    drain(&new).unwrap();
    old.closed(Some(1000), f.t0).await;
    conn_alive(&new);
    assert!(f.svc.registry.get(&sid).is_some());
}

#[tokio::test]
async fn a_session_past_its_resume_window_is_not_resumable_even_before_a_sweep() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let (conn, got) = f.identified(&alice, f.t0).await;
    let sid = session_id(&got[0]);
    conn.closed(None, f.t0).await;
    let late = f.t0 + RESUME_WINDOW;
    let mut conn = f.connect(late);
    let r = send(&mut conn, op::RESUME, resume(&alice, &sid, 1), late)
        .await
        .unwrap();
    assert!(invalid_session(&r), "{r:?}");
    assert!(
        f.svc.registry.get(&sid).is_none(),
        "the expired session is gone"
    );
    // A moment earlier it still resumes.
    let at = f.t0 + Duration::from_secs(10);
    let (conn, got) = f.identified(&alice, at).await;
    let sid = session_id(&got[0]);
    conn.closed(None, at).await;
    let just_in_time = at + RESUME_WINDOW - Duration::from_millis(1);
    let mut conn = f.connect(just_in_time);
    let r = send(&mut conn, op::RESUME, resume(&alice, &sid, 1), just_in_time)
        .await
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
}
