//! The JWT signing keys of a cluster, kept in the store ([`KeyStore`]) so that every node
//! signs with the same current key and verifies every key still listed.
//!
//! A node reads the keys at startup. When a token names a `kid` the node does not know —
//! another node rotated — it reads them again (at most once per [`RELOAD_EVERY`]; requests
//! arriving meanwhile wait for that read and share it) before refusing the token; housekeeping also reloads periodically, so every node moves its
//! signing to a new key soon after any node rotates.
//!
//! Keys written by earlier versions into `{data_dir}/jwt/` are imported on the first start
//! against an empty store, so tokens issued before the upgrade stay valid.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use enrichment_protocol::Timestamp;
use enrichment_storage::{KeyStore, SigningKeyRecord};
use parking_lot::RwLock;

use super::AuthError;
use super::jwt::JwtKeys;

/// The least time between two reloads caused by unknown `kid`s, so a flood of forged tokens
/// cannot turn into a flood of store reads.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The cluster's keys as this node last read them.
pub struct Keyring {
    store: Option<Arc<dyn KeyStore>>,
    issuer: String,
    audience: String,
    current: RwLock<Arc<JwtKeys>>,
    /// When the keys were last read; held while a read for an unknown `kid` runs, so
    /// concurrent requests share one read.
    last_reload: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &*self.current.read())
            .finish_non_exhaustive()
    }
}

fn store_err(e: enrichment_storage::StoreError) -> AuthError {
    AuthError::KeyFile {
        path: "signing keys in the store".into(),
        reason: e.to_string(),
    }
}

impl Keyring {
    /// Keys that never change and live nowhere but here (tests, tools).
    pub fn fixed(keys: JwtKeys) -> Keyring {
        Keyring {
            store: None,
            issuer: keys.issuer().to_owned(),
            audience: keys.audience().to_owned(),
            current: RwLock::new(Arc::new(keys)),
            last_reload: tokio::sync::Mutex::new(None),
        }
    }

    /// Reads the keys from the store, first importing `{legacy_dir}/jwt/` or, failing that,
    /// creating a key when the store has none that signs. Several nodes starting at once
    /// agree: each inserts its candidate, and all sign with the newest.
    pub async fn open(
        store: Arc<dyn KeyStore>,
        legacy_dir: Option<&Path>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Keyring, AuthError> {
        let (issuer, audience) = (issuer.into(), audience.into());
        let mut records = store.signing_keys().await.map_err(store_err)?;
        if !records.iter().any(|r| !r.retired) {
            let mut candidates = match legacy_dir {
                Some(dir) => JwtKeys::legacy_records(dir)?,
                None => Vec::new(),
            };
            if candidates.is_empty() {
                candidates.push(JwtKeys::new_record(Timestamp::now())?);
            }
            for record in &candidates {
                store.insert_signing_key(record).await.map_err(store_err)?;
            }
            records = store.signing_keys().await.map_err(store_err)?;
        }
        let keys = JwtKeys::from_records(&records, issuer.clone(), audience.clone())?;
        Ok(Keyring {
            store: Some(store),
            issuer,
            audience,
            current: RwLock::new(Arc::new(keys)),
            last_reload: tokio::sync::Mutex::new(Some(Instant::now())),
        })
    }

    /// The keys to sign and verify with now.
    pub fn keys(&self) -> Arc<JwtKeys> {
        self.current.read().clone()
    }

    /// Reads the keys again. Returns whether anything changed.
    pub async fn reload(&self) -> Result<bool, AuthError> {
        let mut last = self.last_reload.lock().await;
        let changed = self.read_keys().await;
        *last = Some(Instant::now());
        changed
    }

    async fn read_keys(&self) -> Result<bool, AuthError> {
        let Some(store) = &self.store else {
            return Ok(false);
        };
        let records = store.signing_keys().await.map_err(store_err)?;
        let keys = JwtKeys::from_records(&records, self.issuer.clone(), self.audience.clone())?;
        let old = self.keys();
        let changed = old.kids() != keys.kids() || old.current_kid() != keys.current_kid();
        if changed {
            tracing::info!(signing_kid = keys.current_kid(), kids = ?keys.kids(), "JWT keys reloaded");
            *self.current.write() = Arc::new(keys);
        }
        Ok(changed)
    }

    /// Reads the keys again because a token named an unknown key. Reads happen at most once
    /// per [`RELOAD_EVERY`] (a caller waits for the next slot), and callers that asked while
    /// a read ran share it. Returns whether the caller should check its token again.
    pub async fn reload_for_unknown_kid(&self) -> bool {
        if self.store.is_none() {
            return false;
        }
        let asked = Instant::now();
        let mut last = self.last_reload.lock().await;
        if let Some(t) = *last {
            if t >= asked {
                // Someone read the keys after this caller asked: use that read.
                return true;
            }
            let wait = RELOAD_EVERY.saturating_sub(t.elapsed());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let result = self.read_keys().await;
        *last = Some(Instant::now());
        match result {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload JWT keys");
                false
            }
        }
    }

    /// Creates a key, stores it, and signs with it from now on; older keys keep verifying
    /// (other nodes switch at their next reload). Returns its `kid`.
    pub async fn rotate(&self) -> Result<String, AuthError> {
        let store = self.store.as_ref().ok_or_else(|| AuthError::KeyFile {
            path: "signing keys".into(),
            reason: "these keys are fixed".into(),
        })?;
        let record = JwtKeys::new_record(Timestamp::now())?;
        store.insert_signing_key(&record).await.map_err(store_err)?;
        self.reload().await?;
        Ok(record.kid)
    }

    /// Retires a key (it stops signing) or, with `remove`, deletes it (tokens it signed stop
    /// verifying). The current signing key cannot be removed while it signs.
    pub async fn retire(&self, kid: &str, remove: bool) -> Result<bool, AuthError> {
        let store = self.store.as_ref().ok_or_else(|| AuthError::KeyFile {
            path: "signing keys".into(),
            reason: "these keys are fixed".into(),
        })?;
        let found = if remove {
            if self.keys().current_kid() == kid {
                return Err(AuthError::KeyFile {
                    path: "signing keys".into(),
                    reason: format!("{kid} is the signing key; rotate first"),
                });
            }
            store.remove_signing_key(kid).await.map_err(store_err)?
        } else {
            store.retire_signing_key(kid).await.map_err(store_err)?
        };
        self.reload().await?;
        Ok(found)
    }
}

/// The store's record of a new key.
pub(crate) fn record(kid: String, private_pem: String, created_at: Timestamp) -> SigningKeyRecord {
    SigningKeyRecord {
        kid,
        private_pem,
        created_at,
        retired: false,
    }
}
