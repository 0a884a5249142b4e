//! Snowflake id-pair leases on ScyllaDB (`id_leases`, one row per held pair).
//!
//! Every write is a lightweight transaction and carries a TTL of the lease's length (rounded
//! up to whole seconds, CQL's unit): a claim is `INSERT ... IF NOT EXISTS USING TTL`, a renewal
//! an `UPDATE ... USING TTL ... IF node_id = ? AND generation = ?` that rewrites every cell, a
//! release a conditional `DELETE`. The row disappears when its cells expire, on the replicas'
//! clocks, so a lease that was not renewed frees itself without anyone comparing node clocks.
//! `expires_at` in the row is what the claiming node computed, kept to report the holder.
//!
//! An open claim lists the held pairs (a scan of at most 1,024 small rows, done at start-up
//! only) and tries the free ones in order until one insert applies; nodes claiming at once
//! contend by lightweight transaction, so each pair goes to one of them.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use enrichment_protocol::Timestamp;
use enrichment_protocol::node::{GenerationId, NodeIdentity};

use super::{ScyllaStore, applied, be};
use crate::{IdClaim, IdLease, IdPair, NodeStore, StoreResult, pair_index};

/// The TTL of a lease, whole seconds, at least one.
fn ttl_secs(ttl: Duration) -> i32 {
    let ms = ttl.as_millis().max(1);
    i32::try_from(ms.div_ceil(1000)).unwrap_or(i32::MAX)
}

fn expiry(ttl: Duration) -> i64 {
    Timestamp::now()
        .unix_ms()
        .saturating_add(i64::from(ttl_secs(ttl)) * 1000)
}

fn lease(pair: IdPair, holder: NodeIdentity, expires_at: i64) -> IdLease {
    IdLease {
        pair,
        holder,
        expires_at: Timestamp::from_unix_ms(expires_at.max(0) as u64),
    }
}

impl ScyllaStore {
    /// Inserts a lease on a free pair; `None` when the pair is held.
    async fn insert_lease(
        &self,
        node: &NodeIdentity,
        pair: IdPair,
        ttl: Duration,
    ) -> StoreResult<Option<IdLease>> {
        let st = self.st()?;
        let expires_at = expiry(ttl);
        let inserted = applied(
            self.exec(
                &st.claim_lease,
                (
                    i32::from(pair_index(pair)?),
                    &node.node_id,
                    node.generation.0 as i64,
                    expires_at,
                    ttl_secs(ttl),
                ),
            )
            .await?,
        )?;
        Ok(inserted.then(|| lease(pair, node.clone(), expires_at)))
    }

    /// The lease on `pair` as stored, if its row is still there.
    async fn stored_lease(&self, pair: IdPair) -> StoreResult<Option<IdLease>> {
        let st = self.st()?;
        Ok(self
            .one::<(String, i64, i64)>(&st.get_lease, (i32::from(pair_index(pair)?),))
            .await?
            .map(|(node_id, generation, expires_at)| {
                lease(
                    pair,
                    NodeIdentity::new(node_id, GenerationId(generation as u64)),
                    expires_at,
                )
            }))
    }
}

#[async_trait]
impl NodeStore for ScyllaStore {
    async fn claim_id_pair(
        &self,
        node: &NodeIdentity,
        wanted: Option<IdPair>,
        ttl: Duration,
    ) -> StoreResult<IdClaim> {
        let Some(pair) = wanted else {
            let st = self.st()?;
            let held: BTreeSet<i32> = self
                .all::<(i32,)>(&st.list_leases, ())
                .await?
                .into_iter()
                .map(|(p,)| p)
                .collect();
            for pair in (0..IdPair::COUNT).filter_map(IdPair::from_index) {
                if held.contains(&i32::from(pair.index())) {
                    continue;
                }
                if let Some(lease) = self.insert_lease(node, pair, ttl).await? {
                    return Ok(IdClaim::Claimed(lease));
                }
            }
            return Ok(IdClaim::Exhausted);
        };
        // A lease may expire or be released between two steps; a few rounds settle it.
        for _ in 0..3 {
            if let Some(lease) = self.insert_lease(node, pair, ttl).await? {
                return Ok(IdClaim::Claimed(lease));
            }
            if let Some(lease) = self.renew_id_pair(node, pair, ttl).await? {
                return Ok(IdClaim::Claimed(lease));
            }
            if let Some(lease) = self.stored_lease(pair).await? {
                return Ok(IdClaim::Held(lease));
            }
        }
        Err(be(format!(
            "the lease on {pair} kept changing while it was claimed"
        )))
    }

    async fn renew_id_pair(
        &self,
        node: &NodeIdentity,
        pair: IdPair,
        ttl: Duration,
    ) -> StoreResult<Option<IdLease>> {
        let st = self.st()?;
        let expires_at = expiry(ttl);
        let generation = node.generation.0 as i64;
        let renewed = applied(
            self.exec(
                &st.renew_lease,
                (
                    ttl_secs(ttl),
                    &node.node_id,
                    generation,
                    expires_at,
                    i32::from(pair_index(pair)?),
                    &node.node_id,
                    generation,
                ),
            )
            .await?,
        )?;
        Ok(renewed.then(|| lease(pair, node.clone(), expires_at)))
    }

    async fn release_id_pair(&self, node: &NodeIdentity, pair: IdPair) -> StoreResult<bool> {
        let st = self.st()?;
        applied(
            self.exec(
                &st.release_lease,
                (
                    i32::from(pair_index(pair)?),
                    &node.node_id,
                    node.generation.0 as i64,
                ),
            )
            .await?,
        )
    }
}
