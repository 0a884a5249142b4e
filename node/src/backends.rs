//! Opens the backends the configuration names — the store (embedded, PostgreSQL or ScyllaDB),
//! the blob store and Redis — and brings their schemas up to date. Everything that can be
//! checked is checked here, at startup: an unreachable or misconfigured backend stops the node
//! with a message naming the setting, instead of failing the first request that needs it.

use std::sync::Arc;

use anyhow::Context;
use enrichment_storage::Stores;
use enrichment_storage::embedded::EmbeddedStore;

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
