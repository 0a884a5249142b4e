//! Snowflake id-pair leases on PostgreSQL (`id_leases`, one row per claimed pair).
//!
//! Expiry is on the database's clock: a lease is live while `expires_at > now()`, and a grant
//! or renewal sets `expires_at = now() + ttl`. `now()` is the start of the transaction, which
//! is after the caller sent it, so a node that counts its lease from the moment it sent the
//! request never believes it holds a pair longer than the database does.
//!
//! Claims are rare (a node's start-up) and must be atomic over the whole table (two open
//! claims must not pick the same free pair), so each runs in a transaction that first takes a
//! transaction-scoped advisory lock: claims run one at a time. Renewals and releases touch only
//! the holder's row, in one conditional `UPDATE` each; a claim locks the row it looks at, so
//! it waits for a renewal in flight and sees its outcome.

use std::time::Duration;

use async_trait::async_trait;
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use tokio_postgres::Row;

use super::{Db, PostgresStore, col, db_error, timestamp};
use crate::{IdClaim, IdLease, IdPair, NodeStore, StoreError, StoreResult, pair_index};

/// The advisory lock key that serializes claims ("enrlease" in ASCII).
const CLAIM_LOCK: i64 = 0x656e_726c_6561_7365;

/// The holder and expiry of one pair, and whether the lease is live, with its row locked.
const CURRENT: &str = "SELECT node_id, generation, expires_at, expires_at > now()
    FROM id_leases WHERE pair = $1 FOR UPDATE";

/// The lowest pair that was never claimed.
const NEVER_CLAIMED: &str = "SELECT p::smallint FROM generate_series(0, 1023) AS p
    WHERE NOT EXISTS (SELECT 1 FROM id_leases WHERE pair = p) ORDER BY p LIMIT 1";

/// The pair free the longest.
const LONGEST_FREE: &str = "SELECT pair FROM id_leases WHERE expires_at <= now()
    ORDER BY expires_at, pair LIMIT 1 FOR UPDATE";

/// Grants $1 to ($2, $3) for $4 milliseconds.
const GRANT: &str = "INSERT INTO id_leases (pair, node_id, generation, expires_at)
    VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond')
    ON CONFLICT (pair) DO UPDATE SET node_id = excluded.node_id,
        generation = excluded.generation, expires_at = excluded.expires_at
    RETURNING expires_at";

const RENEW: &str =
    "UPDATE id_leases SET expires_at = now() + $4::bigint * interval '1 millisecond'
    WHERE pair = $1 AND node_id = $2 AND generation = $3 AND expires_at > now()
    RETURNING expires_at";

const RELEASE: &str = "UPDATE id_leases SET expires_at = now()
    WHERE pair = $1 AND node_id = $2 AND generation = $3 AND expires_at > now()";

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn sql_pair(pair: IdPair) -> StoreResult<i16> {
    Ok(pair_index(pair)? as i16)
}

fn generation(node: &NodeIdentity) -> i64 {
    node.generation.0 as i64
}

fn lease(pair: IdPair, holder: NodeIdentity, row: &Row, at: usize) -> StoreResult<IdLease> {
    Ok(IdLease {
        pair,
        holder,
        expires_at: timestamp(col(row, at)?),
    })
}

#[async_trait]
impl NodeStore for PostgresStore {
    async fn claim_id_pair(
        &self,
        node: &NodeIdentity,
        wanted: Option<IdPair>,
        ttl: Duration,
    ) -> StoreResult<IdClaim> {
        let context = "claiming a snowflake id pair";
        let wanted = wanted.map(sql_pair).transpose()?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        db.execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK], context)
            .await?;
        let pair = match wanted {
            Some(pair) => {
                if let Some(row) = db.query_opt(CURRENT, &[&pair], context).await? {
                    let holder = NodeIdentity::new(
                        col::<String>(&row, 0)?,
                        GenerationId(col::<i64>(&row, 1)? as u64),
                    );
                    if col::<bool>(&row, 3)? && holder != *node {
                        let pair = index_pair(pair)?;
                        return Ok(IdClaim::Held(lease(pair, holder, &row, 2)?));
                    }
                }
                pair
            }
            None => {
                let never = db.query_opt(NEVER_CLAIMED, &[], context).await?;
                let free = match never {
                    Some(row) => Some(row),
                    None => db.query_opt(LONGEST_FREE, &[], context).await?,
                };
                match free {
                    Some(row) => col::<i16>(&row, 0)?,
                    None => return Ok(IdClaim::Exhausted),
                }
            }
        };
        let row = db
            .query_opt(
                GRANT,
                &[&pair, &node.node_id, &generation(node), &ttl_ms(ttl)],
                context,
            )
            .await?
            .ok_or_else(|| StoreError::Backend("granting an id lease returned nothing".into()))?;
        let granted = lease(index_pair(pair)?, node.clone(), &row, 0)?;
        tx.commit().await.map_err(db_error(context))?;
        Ok(IdClaim::Claimed(granted))
    }

    async fn renew_id_pair(
        &self,
        node: &NodeIdentity,
        pair: IdPair,
        ttl: Duration,
    ) -> StoreResult<Option<IdLease>> {
        let index = sql_pair(pair)?;
        let client = self.client().await?;
        let row = Db::Conn(&client)
            .query_opt(
                RENEW,
                &[&index, &node.node_id, &generation(node), &ttl_ms(ttl)],
                "renewing a snowflake id lease",
            )
            .await?;
        row.map(|r| lease(pair, node.clone(), &r, 0)).transpose()
    }

    async fn release_id_pair(&self, node: &NodeIdentity, pair: IdPair) -> StoreResult<bool> {
        let index = sql_pair(pair)?;
        let client = self.client().await?;
        let released = Db::Conn(&client)
            .execute(
                RELEASE,
                &[&index, &node.node_id, &generation(node)],
                "releasing a snowflake id lease",
            )
            .await?;
        Ok(released > 0)
    }
}

fn index_pair(index: i16) -> StoreResult<IdPair> {
    u16::try_from(index)
        .ok()
        .and_then(IdPair::from_index)
        .ok_or_else(|| StoreError::Corrupt(format!("id lease pair {index}")))
}
