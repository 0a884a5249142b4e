//! JWT signing keys on fjall: one row per `kid`, listed oldest first.
//!
//! A node holds a handful of keys at most, so listing reads them all and sorts; the store keeps
//! no second index by creation time.

use async_trait::async_trait;

use super::{Committed, EmbeddedStore, Ks, Tx, decode, lock};
use crate::{KeyStore, SigningKeyRecord, StoreResult};

#[async_trait]
impl KeyStore for EmbeddedStore {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.blocking(|inner| {
            let mut keys = inner
                .ks(Ks::SigningKeys)
                .iter()
                .map(|entry| decode::<SigningKeyRecord>(&entry.value()?))
                .collect::<StoreResult<Vec<_>>>()?;
            keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
            Ok(keys)
        })
        .await
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool> {
        let key = key.clone();
        self.write(move |inner| {
            let _guard = lock(&inner.keys_lock);
            let mut tx = Tx::new(inner);
            if tx.exists(Ks::SigningKeys, key.kid.as_bytes())? {
                return Ok((false, Committed(false)));
            }
            tx.put_json(Ks::SigningKeys, key.kid.clone().into_bytes(), &key)?;
            Ok((true, tx.commit()?))
        })
        .await
    }

    async fn retire_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let kid = kid.as_bytes().to_vec();
        self.write(move |inner| {
            let _guard = lock(&inner.keys_lock);
            let mut tx = Tx::new(inner);
            let Some(mut key) = tx.get_json::<SigningKeyRecord>(Ks::SigningKeys, &kid)? else {
                return Ok((false, Committed(false)));
            };
            if key.retired {
                return Ok((true, Committed(false)));
            }
            key.retired = true;
            tx.put_json(Ks::SigningKeys, kid, &key)?;
            Ok((true, tx.commit()?))
        })
        .await
    }

    async fn remove_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let kid = kid.as_bytes().to_vec();
        self.write(move |inner| {
            let _guard = lock(&inner.keys_lock);
            let mut tx = Tx::new(inner);
            if !tx.exists(Ks::SigningKeys, &kid)? {
                return Ok((false, Committed(false)));
            }
            tx.del(Ks::SigningKeys, kid);
            Ok((true, tx.commit()?))
        })
        .await
    }
}
