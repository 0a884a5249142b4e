//! The conformance suite against PostgreSQL, and the backend's own cases: migrations, connection
//! failures and the group commit of message creates.
//!
//! One PostgreSQL server (Debian's package, started by `enrichment-testkit` on an ephemeral port)
//! serves the whole test binary; every case gets a database of its own, and the server stops
//! when the process exits.

// A store test: it calls the write methods that the rest of the workspace reaches only
// through the guild actor's commit path.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use enrichment_protocol::Snowflake;
use enrichment_protocol::rest::HistoryAnchor;
use enrichment_storage::postgres::{
    LATEST_SCHEMA_VERSION, PostgresError, PostgresOptions, PostgresStore,
};
use enrichment_storage::testsuite::{fresh_id, id_at};
use enrichment_storage::{BUCKET_MS, MessageRecord, MessageStore, StoreError, Stores};
use enrichment_testkit::Postgres;
use tokio_postgres::NoTls;

fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(|| Postgres::start().expect("start PostgreSQL"))
}

/// The database of a conformance case, by the directory the suite gives it: a case that opens
/// its directory again (a restart) reconnects to the same database.
fn database_for(dir: &Path) -> String {
    static DATABASES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let mut databases = DATABASES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    databases
        .entry(dir.to_path_buf())
        .or_insert_with(|| server().fresh_database().expect("create a database"))
        .clone()
}

fn options() -> PostgresOptions {
    PostgresOptions {
        pool_size: 8,
        ..PostgresOptions::default()
    }
}

async fn connect(url: &str) -> PostgresStore {
    PostgresStore::connect(url, options())
        .await
        .expect("connect to PostgreSQL")
}

async fn open(dir: PathBuf) -> Stores {
    let url = database_for(&dir);
    let store = connect(&url).await;
    store.migrate().await.expect("migrate");
    Arc::new(store).stores()
}

enrichment_storage::conformance_tests!(open);

/// A plain connection, to look at the database behind the store's back.
async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("raw connection");
    tokio::spawn(connection);
    client
}

async fn ledger(url: &str) -> Vec<(i64, String)> {
    raw(url)
        .await
        .query(
            "SELECT version, name FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("read schema_migrations")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn all_versions() -> Vec<i64> {
    (1..=LATEST_SCHEMA_VERSION).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_does_not_migrate_and_migrate_twice_is_a_noop() {
    let url = server().fresh_database().expect("database");
    let store = connect(&url).await;
    let exists: bool = raw(&url)
        .await
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .expect("query")
        .get(0);
    assert!(!exists, "connect left the database alone");

    assert_eq!(store.migrate().await.expect("migrate"), all_versions());
    assert_eq!(
        store.migrate().await.expect("migrate again"),
        Vec::<i64>::new()
    );
    let ledger = ledger(&url).await;
    assert_eq!(
        ledger.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        all_versions()
    );
    assert_eq!(ledger[0].1, "initial");

    // Another node starting later applies nothing either.
    let other = connect(&url).await;
    assert_eq!(other.migrate().await.expect("migrate"), Vec::<i64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_each_version_once() {
    let url = server().fresh_database().expect("database");
    let mut nodes = Vec::new();
    for _ in 0..8 {
        nodes.push(Arc::new(connect(&url).await));
    }
    let tasks: Vec<_> = nodes
        .iter()
        .map(|node| {
            let node = Arc::clone(node);
            tokio::spawn(async move { node.migrate().await })
        })
        .collect();
    let mut applied = Vec::new();
    for task in tasks {
        applied.extend(task.await.expect("task").expect("every migrate succeeds"));
    }
    applied.sort();
    assert_eq!(applied, all_versions(), "each version applied exactly once");
    assert_eq!(ledger(&url).await.len(), all_versions().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_from_a_newer_release_is_refused() {
    let url = server().fresh_database().expect("database");
    let store = connect(&url).await;
    store.migrate().await.expect("migrate");
    let future = LATEST_SCHEMA_VERSION + 1;
    raw(&url)
        .await
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from a newer release')",
            &[&future],
        )
        .await
        .expect("stamp a future version");
    let err = store.migrate().await.expect_err("refused");
    assert!(
        matches!(err, PostgresError::SchemaTooNew { found, known }
            if found == future && known == LATEST_SCHEMA_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("newer"), "{err}");
    // Refusing changed nothing.
    assert_eq!(ledger(&url).await.len(), all_versions().len() + 1);
}

fn assert_names_the_setting(err: &PostgresError, target: &str) {
    let text = err.to_string();
    assert!(
        matches!(err, PostgresError::Unreachable { .. }),
        "unexpected error: {text}"
    );
    assert!(text.contains("ENRICHMENT_POSTGRES_URL"), "{text}");
    assert!(text.contains("postgres.url"), "{text}");
    assert!(text.contains(target), "{text}");
    assert!(!text.contains("s3cret"), "the password leaked: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_where_nothing_listens_fails_fast() {
    let port = enrichment_testkit::free_port().expect("port");
    let url = format!("postgres://postgres:s3cret@127.0.0.1:{port}/enrichment");
    let started = Instant::now();
    let err = PostgresStore::connect(
        &url,
        PostgresOptions {
            connect_timeout: Duration::from_secs(2),
            ..options()
        },
    )
    .await
    .expect_err("nothing listens");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_names_the_setting(&err, &format!("127.0.0.1:{port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_within_the_timeout() {
    // Accepts TCP connections (the kernel completes the handshake) but never speaks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let url = format!("postgres://postgres:s3cret@127.0.0.1:{port}/enrichment");
    let started = Instant::now();
    let err = PostgresStore::connect(
        &url,
        PostgresOptions {
            connect_timeout: Duration::from_millis(800),
            ..options()
        },
    )
    .await
    .expect_err("no answer");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    assert_names_the_setting(&err, &format!("127.0.0.1:{port}"));
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_names_the_setting() {
    let port = server().port();
    let url = format!("postgres://postgres:s3cret@127.0.0.1:{port}/no_such_database");
    let err = PostgresStore::connect(&url, options())
        .await
        .expect_err("no such database");
    assert_names_the_setting(&err, &format!("127.0.0.1:{port}"));
    assert!(err.to_string().contains("no_such_database"), "{err}");
}

fn message(channel_id: Snowflake, id: Snowflake, content: &str) -> MessageRecord {
    MessageRecord {
        mentions: vec![Snowflake(8)],
        ..MessageRecord::text(id, channel_id, Some(Snowflake(7)), Snowflake(42), content)
    }
}

async fn migrated_store() -> (String, Arc<PostgresStore>) {
    let url = server().fresh_database().expect("database");
    let store = connect(&url).await;
    store.migrate().await.expect("migrate");
    (url, Arc::new(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_from_64_tasks_land_in_order_and_share_commits() {
    let (_url, store) = migrated_store().await;
    let ch = fresh_id();
    let (tasks, per_task) = (64u64, 20u64);
    // Task t writes ids t, t + 64, t + 128, ...: every task's messages interleave with all others.
    let base = 500 * BUCKET_MS - 600;
    let id = move |n: u64| id_at(base + n, n % 7);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            for k in 0..per_task {
                let n = t + k * tasks;
                store
                    .create_message(&message(ch, id(n), &format!("m{n}")))
                    .await
                    .expect("create");
                // Written means readable, at once.
                assert!(store.get_message(ch, id(n)).await.expect("get").is_some());
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let total = tasks * per_task;
    let mut listed = Vec::new();
    let mut anchor = HistoryAnchor::Latest;
    loop {
        let page = store.list_messages(ch, anchor, 100).await.expect("list");
        let Some(last) = page.last() else { break };
        anchor = HistoryAnchor::Before(last.id);
        listed.extend(page.into_iter().map(|m| m.id));
    }
    let expected: Vec<Snowflake> = (0..total).rev().map(id).collect();
    assert_eq!(
        listed, expected,
        "every message, newest first, across buckets"
    );

    let stats = store.message_writer_stats();
    assert_eq!(stats.calls, total);
    assert_eq!(stats.rows, total);
    assert!(
        stats.batches < total,
        "concurrent creates share commits: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_fails_each_of_its_callers_and_stores_none_of_them() {
    let (url, store) = migrated_store().await;
    // A constraint this build does not know about, so one message can poison its batch.
    raw(&url)
        .await
        .batch_execute("ALTER TABLE messages ADD CONSTRAINT no_poison CHECK (content <> 'poison')")
        .await
        .expect("add constraint");
    let ch = fresh_id();
    let base = 600 * BUCKET_MS;
    let mut handles = Vec::new();
    for n in 0..200u64 {
        let store = Arc::clone(&store);
        let content = if n == 100 { "poison" } else { "fine" };
        let m = message(ch, id_at(base + n, 0), content);
        handles.push(tokio::spawn(async move {
            let result = store.create_message(&m).await;
            (m.id, result.is_ok())
        }));
    }
    let mut failed = 0;
    for handle in handles {
        let (id, ok) = handle.await.expect("task");
        let stored = store.get_message(ch, id).await.expect("get").is_some();
        assert_eq!(ok, stored, "message {id}: acknowledged exactly when stored");
        failed += usize::from(!ok);
    }
    assert!(failed >= 1, "the poisoned message failed");
    // The writer goes on after a failed batch.
    let after = message(ch, id_at(base + 1000, 0), "after");
    store
        .create_message(&after)
        .await
        .expect("create after a failure");
    assert_eq!(
        store.get_message(ch, after.id).await.expect("get"),
        Some(after)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_ids_beyond_the_ordered_range_are_refused() {
    let (_url, store) = migrated_store().await;
    let ch = fresh_id();
    let err = store
        .create_message(&message(ch, Snowflake(u64::MAX), "too far"))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("message id"), "{err}");
    assert_eq!(
        store
            .get_message(ch, Snowflake(u64::MAX))
            .await
            .expect("get"),
        None
    );
    // Only the caller with the bad id failed; the writer is fine.
    let ok = message(ch, id_at(700 * BUCKET_MS, 0), "fine");
    store.create_message(&ok).await.expect("create");
    assert_eq!(
        store
            .list_messages(ch, HistoryAnchor::Latest, 10)
            .await
            .expect("list"),
        vec![ok]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_of_a_stored_id_is_refused_alone_while_its_batch_commits() {
    let (_url, store) = migrated_store().await;
    let ch = fresh_id();
    let base = 800 * BUCKET_MS;
    let taken: Vec<MessageRecord> = (0..10u64)
        .map(|n| message(ch, id_at(base + 1000 + n, 0), &format!("first {n}")))
        .collect();
    for m in &taken {
        store.create_message(m).await.expect("create");
    }
    let before = store.message_writer_stats();
    // 100 new messages and a second create of each taken id, all at once.
    let mut handles = Vec::new();
    for n in 0..110u64 {
        let store = Arc::clone(&store);
        let m = if n < 100 {
            message(ch, id_at(base + 1 + n, 0), &format!("new {n}"))
        } else {
            message(ch, taken[(n - 100) as usize].id, "second writer")
        };
        handles.push(tokio::spawn(async move {
            let result = store.create_message(&m).await;
            (n, result)
        }));
    }
    for handle in handles {
        let (n, result) = handle.await.expect("task");
        if n < 100 {
            result.expect("a fresh id is stored");
        } else {
            assert!(
                matches!(result, Err(StoreError::Conflict("id"))),
                "{n}: {result:?}"
            );
        }
    }
    for m in &taken {
        assert_eq!(
            store.get_message(ch, m.id).await.expect("get").as_ref(),
            Some(m),
            "the first message stays"
        );
    }
    let after = store.message_writer_stats();
    assert_eq!(after.calls - before.calls, 110);
    assert_eq!(
        after.rows - before.rows,
        100,
        "refused rows are not counted as stored"
    );
    assert!(
        after.batches - before.batches < 110,
        "refused and stored creates shared commits: {before:?} -> {after:?}"
    );
}
