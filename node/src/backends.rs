//! Opens the backends the configuration names — the store (embedded, PostgreSQL or ScyllaDB),
//! the blob store and Redis — and brings their schemas up to date. Everything that can be
//! checked is checked here, at startup: an unreachable or misconfigured backend stops the node
//! with a message naming the setting, instead of failing the first request that needs it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use enrichment_storage::Stores;
use enrichment_storage::embedded::EmbeddedStore;
use enrichment_storage::shared::SharedState;
use enrichment_storage::shared::redis::{RedisOptions, RedisShared};

use crate::config::{Config, StorageKind};

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

/// Connects to Redis when `redis.url` is set; `None` keeps sessions, presence and rate limits
/// in-process. A Redis that cannot be reached at startup stops the node (after the connect
/// timeout); one that goes away later only degrades it.
pub async fn open_shared(config: &Config) -> anyhow::Result<Option<Arc<dyn SharedState>>> {
    let Some(url) = &config.redis.url else {
        return Ok(None);
    };
    let r = &config.redis;
    let shared = RedisShared::connect(RedisOptions {
        url: url.expose().to_owned(),
        key_prefix: r.key_prefix.clone(),
        connect_timeout: Duration::from_secs(r.connect_timeout_secs.max(1)),
        command_timeout: Duration::from_millis(r.command_timeout_ms),
    })
    .await?;
    Ok(Some(Arc::new(shared)))
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
