//! How long a guild actor takes to start: `pre_start` loading a guild of 10,000 members and 500
//! text channels (three messages each) from the store, on the embedded store and on a durable
//! PostgreSQL (the testkit starts it). This is what a command to a guild that is not running
//! waits for, and what a handoff of the guild to another node will wait for.
//!
//! Every iteration starts the actor with a cold user cache, as on a node that has not served
//! the guild before, and stops it afterwards. The seed data is written once per store.
//!
//! ```sh
//! cargo bench -p enrichment-actors --bench guild_start
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use enrichment_actors::events::EventBus;
use enrichment_actors::gateway::{GatewayConfig, Presences, SessionRegistry};
use enrichment_actors::guild::commit::{Change, apply};
use enrichment_actors::guild::{GuildActor, GuildContext, GuildLimits};
use enrichment_actors::users::UserDirectory;
use enrichment_protocol::models::User;
use enrichment_protocol::{Snowflake, SnowflakeGenerator};
use enrichment_storage::embedded::EmbeddedStore;
use enrichment_storage::postgres::{PostgresOptions, PostgresStore};
use enrichment_storage::shared::memory::MemoryShared;
use enrichment_storage::testsuite::{channel, credentials, guild, member};
use enrichment_storage::{GuildWrite, MessageRecord, Stores};
use futures::StreamExt;
use ractor::Actor;

const MEMBERS: u64 = 10_000;
const CHANNELS: u64 = 500;
const MESSAGES_PER_CHANNEL: u64 = 3;
/// Seed writes in flight at once, so group commits cover many of them.
const SEED_CONCURRENCY: usize = 128;

/// Writes the guild, its members (as users) and channels, and a few messages per channel;
/// returns the guild id.
async fn seed(stores: &Stores) -> Snowflake {
    let ids = SnowflakeGenerator::new(31, 31);
    let guild_id = ids.next_id();
    let user_ids: Vec<Snowflake> = (0..MEMBERS).map(|_| ids.next_id()).collect();
    futures::stream::iter(user_ids.iter().copied())
        .map(|id| async move {
            let user = User::new(id, format!("member{id}"));
            stores
                .users
                .create_user(&user, &credentials(id))
                .await
                .expect("create a member");
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let channel_ids: Vec<Snowflake> = (0..CHANNELS).map(|_| ids.next_id()).collect();
    let mut writes = vec![GuildWrite::PutGuild(guild(
        guild_id,
        user_ids[0],
        Vec::new(),
    ))];
    writes.extend(
        channel_ids
            .iter()
            .enumerate()
            .map(|(i, id)| GuildWrite::PutChannel(channel(*id, guild_id, &format!("text-{i}")))),
    );
    writes.extend(
        user_ids
            .iter()
            .map(|u| GuildWrite::PutMember(member(guild_id, *u))),
    );
    apply(stores, Change::Guild { guild_id, writes })
        .await
        .expect("write the guild");
    let messages: Vec<MessageRecord> = channel_ids
        .iter()
        .flat_map(|c| {
            (0..MESSAGES_PER_CHANNEL).map(|n| {
                MessageRecord::text(
                    ids.next_id(),
                    *c,
                    Some(guild_id),
                    user_ids[n as usize],
                    format!("message {n}"),
                )
            })
        })
        .collect();
    futures::stream::iter(messages)
        .map(|m| async move {
            apply(stores, Change::CreateMessage(m))
                .await
                .expect("store a message");
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    guild_id
}

/// A context as a node builds it, with a user cache of its own (so each start is cold).
fn context(stores: &Stores) -> Arc<GuildContext> {
    let sessions = Arc::new(SessionRegistry::new());
    Arc::new(GuildContext {
        stores: stores.clone(),
        users: UserDirectory::new(stores.users.clone()),
        bus: EventBus::new(64),
        recipients: sessions.clone(),
        presences: Arc::new(Presences {
            registry: sessions,
            shared: Arc::new(MemoryShared::new()),
        }),
        ids: Arc::new(SnowflakeGenerator::new(0, 0)),
        limits: GuildLimits::default(),
        member_chunk_size: GatewayConfig::default().member_chunk_size,
        blobs: Arc::new(enrichment_storage::blobs::memory::MemoryBlobStore::default()),
    })
}

/// Starts the guild's actor `iters` times, each with a cold cache; the time until `spawn`
/// returns (its `pre_start` done) is what counts.
async fn starts(stores: &Stores, guild_id: Snowflake, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let ctx = context(stores);
        let started = Instant::now();
        let (actor, handle) = Actor::spawn(None, GuildActor, (guild_id, ctx))
            .await
            .expect("the guild actor starts");
        total += started.elapsed();
        actor.stop(None);
        handle.await.expect("the guild actor stops");
    }
    total
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn guild_start(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("guild_start_10k_members_500_channels");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let dir = tempfile::tempdir().expect("temporary directory");
    let embedded = Arc::new(EmbeddedStore::open(dir.path()).expect("open the embedded store"));
    let stores = embedded.stores();
    let guild_id = rt.block_on(seed(&stores));
    group.bench_function("embedded", |b| {
        b.iter_custom(|iters| rt.block_on(starts(&stores, guild_id, iters)));
    });
    drop(stores);

    let server = enrichment_testkit::Postgres::start_durable().expect("start PostgreSQL");
    let url = server.fresh_database().expect("create a database");
    let stores = rt.block_on(async {
        let store = PostgresStore::connect(&url, PostgresOptions::default())
            .await
            .expect("connect to PostgreSQL");
        store.migrate().await.expect("migrate");
        Arc::new(store).stores()
    });
    let guild_id = rt.block_on(seed(&stores));
    group.bench_function("postgres", |b| {
        b.iter_custom(|iters| rt.block_on(starts(&stores, guild_id, iters)));
    });
    group.finish();
}

criterion_group!(benches, guild_start);
criterion_main!(benches);
