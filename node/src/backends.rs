//! Opens the backends the configuration names — the store (embedded, PostgreSQL or ScyllaDB),
//! the blob store and the shared state (in-process, or Redis with its in-process twin) — and
//! brings their schemas up to date. Everything that can be
//! checked is checked here, at startup: an unreachable or misconfigured backend stops the node
//! with a message naming the setting, instead of failing the first request that needs it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use enrichment_storage::Stores;
use enrichment_storage::blobs::BlobStore;
use enrichment_storage::blobs::fs::FsBlobStore;
use enrichment_storage::blobs::s3::{S3BlobStore, S3Settings};
use enrichment_storage::embedded::EmbeddedStore;
use enrichment_storage::shared::SharedState;
use enrichment_storage::shared::fallback::FallbackShared;
use enrichment_storage::shared::memory::MemoryShared;
use enrichment_storage::shared::redis::{RedisOptions, RedisShared};

use enrichment_storage::postgres::{PostgresOptions, PostgresStore};
use enrichment_storage::scylla::{CqlConsistency, Replication, ScyllaOptions, ScyllaStore};

use crate::config::{BlobKind, Config, Consistency, ReplicationStrategy, StorageKind};

/// Opens the configured store, applying pending schema migrations first.
pub async fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    match config.storage {
        StorageKind::Embedded => {
            let store_dir = config.data_dir.join("store");
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&store_dir))
                .await?
                .context("opening the embedded store (data_dir/store)")?;
            Ok(Arc::new(store).stores())
        }
        StorageKind::Postgres => {
            let (store, applied) = open_postgres(config).await?;
            if !applied.is_empty() {
                tracing::info!(versions = ?applied, "PostgreSQL migrations applied");
            }
            Ok(Arc::new(store).stores())
        }
        StorageKind::Scylla => {
            let options = scylla_options(config);
            // Creating tables is idempotent; a node that starts first on an empty cluster
            // brings the schema with it, like the PostgreSQL store does.
            ScyllaStore::migrate(&options)
                .await
                .context("applying the ScyllaDB schema")?;
            let store = ScyllaStore::connect(options)
                .await
                .context("opening the ScyllaDB store")?;
            Ok(store.stores())
        }
    }
}

/// Connects to PostgreSQL and applies pending migrations; returns the versions applied.
async fn open_postgres(config: &Config) -> anyhow::Result<(PostgresStore, Vec<i64>)> {
    let pg = &config.postgres;
    let url = pg
        .url
        .as_ref()
        .context("storage = \"postgres\" needs postgres.url (ENRICHMENT_POSTGRES_URL)")?;
    let store = PostgresStore::connect(
        url.expose(),
        PostgresOptions {
            pool_size: pg.pool_size,
            connect_timeout: Duration::from_secs(pg.connect_timeout_secs.max(1)),
            message_batch_max: pg.message_batch_max,
            ..PostgresOptions::default()
        },
    )
    .await?;
    let applied = store.migrate().await?;
    Ok((store, applied))
}

fn scylla_options(config: &Config) -> ScyllaOptions {
    let s = &config.scylla;
    ScyllaOptions {
        nodes: s.nodes.clone(),
        keyspace: s.keyspace.clone(),
        replication: match s.replication {
            ReplicationStrategy::Simple => Replication::Simple,
            ReplicationStrategy::NetworkTopology => Replication::NetworkTopology,
        },
        replication_factor: s.replication_factor,
        consistency: match s.consistency {
            Consistency::One => CqlConsistency::One,
            Consistency::LocalOne => CqlConsistency::LocalOne,
            Consistency::Quorum => CqlConsistency::Quorum,
            Consistency::LocalQuorum => CqlConsistency::LocalQuorum,
            Consistency::All => CqlConsistency::All,
        },
        local_datacenter: s.local_datacenter.clone(),
        connect_timeout: Duration::from_secs(s.connect_timeout_secs.max(1)),
    }
}

/// The shared state: with `redis.url`, Redis with the in-process state as its twin while
/// Redis is away; without it, the in-process state alone. A Redis that cannot be reached at
/// startup stops the node (after the connect timeout); one that goes away later only
/// degrades it.
pub async fn open_shared(config: &Config) -> anyhow::Result<Arc<dyn SharedState>> {
    let local = Arc::new(MemoryShared::new());
    let Some(url) = &config.redis.url else {
        return Ok(local);
    };
    let r = &config.redis;
    let shared = RedisShared::connect(RedisOptions {
        url: url.expose().to_owned(),
        key_prefix: r.key_prefix.clone(),
        connect_timeout: Duration::from_secs(r.connect_timeout_secs.max(1)),
        command_timeout: Duration::from_millis(r.command_timeout_ms),
    })
    .await?;
    Ok(Arc::new(FallbackShared::new(Arc::new(shared), local)))
}

/// How long the startup check waits for the S3 server.
const S3_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest wait for one S3 request while serving.
const S3_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Opens the configured blob store and checks it can be used: files under `data_dir/blobs`,
/// or the S3 bucket, which must answer a one-key listing with the configured credentials.
pub async fn open_blobs(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    match config.blobs {
        BlobKind::Fs => {
            let root = config.data_dir.join("blobs");
            let store = tokio::task::spawn_blocking(move || FsBlobStore::open(root))
                .await?
                .context("opening the blob store (data_dir/blobs)")?;
            store
                .check()
                .await
                .context("checking the blob store (data_dir/blobs)")?;
            Ok(Arc::new(store))
        }
        BlobKind::S3 => {
            let s3 = &config.s3;
            let missing = |what: &str| anyhow::anyhow!("blobs = \"s3\" needs {what}");
            let settings = S3Settings {
                endpoint: s3
                    .endpoint
                    .clone()
                    .ok_or_else(|| missing("s3.endpoint (ENRICHMENT_S3_ENDPOINT)"))?,
                bucket: s3
                    .bucket
                    .clone()
                    .ok_or_else(|| missing("s3.bucket (ENRICHMENT_S3_BUCKET)"))?,
                region: s3.region.clone(),
                access_key: s3
                    .access_key
                    .as_ref()
                    .ok_or_else(|| missing("s3.access_key (ENRICHMENT_S3_ACCESS_KEY)"))?
                    .expose()
                    .to_owned(),
                secret_key: s3
                    .secret_key
                    .as_ref()
                    .ok_or_else(|| missing("s3.secret_key (ENRICHMENT_S3_SECRET_KEY)"))?
                    .expose()
                    .to_owned(),
                path_style: s3.path_style,
                request_timeout: S3_REQUEST_TIMEOUT,
            };
            let what = format!(
                "S3 bucket {:?} at {} (ENRICHMENT_S3_ENDPOINT, ENRICHMENT_S3_BUCKET, \
                 ENRICHMENT_S3_ACCESS_KEY, ENRICHMENT_S3_SECRET_KEY)",
                settings.bucket, settings.endpoint
            );
            let store =
                S3BlobStore::new(settings).with_context(|| format!("configuring the {what}"))?;
            tokio::time::timeout(S3_CHECK_TIMEOUT, store.check())
                .await
                .map_err(|_| anyhow::anyhow!("no answer within {S3_CHECK_TIMEOUT:?}"))
                .and_then(|r| r.map_err(anyhow::Error::from))
                .with_context(|| format!("cannot use the {what}"))?;
            Ok(Arc::new(store))
        }
    }
}

/// What `enrichment migrate` did, for its output.
pub async fn migrate(config: &Config) -> anyhow::Result<String> {
    config.validate()?;
    match config.storage {
        StorageKind::Embedded => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
            open_stores(config).await?;
            Ok(format!(
                "embedded store at {} is ready (it needs no migrations)",
                config.data_dir.join("store").display()
            ))
        }
        StorageKind::Postgres => {
            let (_, applied) = open_postgres(config).await?;
            Ok(if applied.is_empty() {
                "PostgreSQL schema is up to date".to_owned()
            } else {
                format!("PostgreSQL migrations applied: {applied:?}")
            })
        }
        StorageKind::Scylla => {
            let version = ScyllaStore::migrate(&scylla_options(config))
                .await
                .context("applying the ScyllaDB schema")?;
            Ok(format!(
                "ScyllaDB keyspace {} is at schema version {version}",
                config.scylla.keyspace
            ))
        }
    }
}
