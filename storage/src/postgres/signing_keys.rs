//! JWT signing keys on PostgreSQL: one row per `kid`, so every node of a cluster reads the
//! same set. Each method is one statement; the primary key settles racing inserts of a kid.

use async_trait::async_trait;

use super::{Db, PostgresStore, col, sql_time, timestamp};
use crate::{KeyStore, SigningKeyRecord, StoreResult};

#[async_trait]
impl KeyStore for PostgresStore {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let client = self.client().await?;
        let rows = Db::Conn(&client)
            .query(
                "SELECT kid, private_pem, created_at, retired FROM signing_keys
                 ORDER BY created_at, kid",
                &[],
                "listing signing keys",
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SigningKeyRecord {
                    kid: col(row, 0)?,
                    private_pem: col(row, 1)?,
                    created_at: timestamp(col(row, 2)?),
                    retired: col(row, 3)?,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool> {
        let client = self.client().await?;
        let inserted = Db::Conn(&client)
            .execute(
                "INSERT INTO signing_keys (kid, private_pem, created_at, retired)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (kid) DO NOTHING",
                &[
                    &key.kid,
                    &key.private_pem,
                    &sql_time(key.created_at),
                    &key.retired,
                ],
                "storing a signing key",
            )
            .await?;
        Ok(inserted > 0)
    }

    async fn retire_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let client = self.client().await?;
        let found = Db::Conn(&client)
            .execute(
                "UPDATE signing_keys SET retired = true WHERE kid = $1",
                &[&kid],
                "retiring a signing key",
            )
            .await?;
        Ok(found > 0)
    }

    async fn remove_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let client = self.client().await?;
        let removed = Db::Conn(&client)
            .execute(
                "DELETE FROM signing_keys WHERE kid = $1",
                &[&kid],
                "removing a signing key",
            )
            .await?;
        Ok(removed > 0)
    }
}
