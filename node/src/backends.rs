//! Opens the backends the configuration names — the store (embedded, PostgreSQL or ScyllaDB),
//! the blob store and Redis — and brings their schemas up to date. Everything that can be
//! checked is checked here, at startup: an unreachable or misconfigured backend stops the node
//! with a message naming the setting, instead of failing the first request that needs it.

use std::sync::Arc;

use anyhow::Context;
use enrichment_storage::Stores;
use enrichment_storage::blobs::BlobStore;
use enrichment_storage::blobs::fs::FsBlobStore;
use enrichment_storage::blobs::s3::{S3BlobStore, S3Settings};
use enrichment_storage::embedded::EmbeddedStore;

use crate::config::{BlobKind, Config, StorageKind};

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
        StorageKind::Postgres | StorageKind::Scylla => {
            anyhow::bail!(
                "storage = {:?} is not available in this build",
                config.storage
            )
        }
    }
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
        StorageKind::Postgres | StorageKind::Scylla => {
            open_stores(config).await?;
            Ok("schema is up to date".to_owned())
        }
    }
}
