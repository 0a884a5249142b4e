//! Snowflake id-pair leases on fjall: one row per claimed pair, keyed by its index.
//!
//! An embedded store serves a single node, which mints with its configured pair and claims
//! nothing; the leases are here so that the store keeps the whole [`NodeStore`] contract (and
//! the conformance suite proves it like the shared stores'). The clock is this process's. Every
//! operation reads and writes under `leases_lock`, so claims are atomic; a released lease keeps
//! its row with `expires_at` set to the release time, which is what orders free pairs for reuse.

use std::time::Duration;

use async_trait::async_trait;
use enrichment_protocol::Timestamp;
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use serde::{Deserialize, Serialize};

use super::{Committed, EmbeddedStore, Ks, Tx, decode, lock};
use crate::{IdClaim, IdLease, IdPair, NodeStore, StoreError, StoreResult, pair_index};

/// A lease as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LeaseRow {
    node_id: String,
    generation: u64,
    expires_at_ms: i64,
}

impl LeaseRow {
    fn new(node: &NodeIdentity, expires_at_ms: i64) -> LeaseRow {
        LeaseRow {
            node_id: node.node_id.clone(),
            generation: node.generation.0,
            expires_at_ms,
        }
    }

    fn held_by(&self, node: &NodeIdentity) -> bool {
        self.node_id == node.node_id && self.generation == node.generation.0
    }

    fn lease(&self, pair: IdPair) -> IdLease {
        IdLease {
            pair,
            holder: NodeIdentity::new(self.node_id.clone(), GenerationId(self.generation)),
            expires_at: Timestamp::from_unix_ms(self.expires_at_ms as u64),
        }
    }
}

fn key(index: u16) -> [u8; 2] {
    index.to_be_bytes()
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// Writes a lease on `index` for `node` and returns it.
fn grant(
    tx: &mut Tx<'_>,
    index: u16,
    node: &NodeIdentity,
    now: i64,
    ttl: Duration,
) -> StoreResult<IdLease> {
    let pair = IdPair::from_index(index)
        .ok_or_else(|| StoreError::Corrupt(format!("id lease key {index}")))?;
    let row = LeaseRow::new(node, now.saturating_add(ttl_ms(ttl)));
    tx.put_json(Ks::IdLeases, key(index), &row)?;
    Ok(row.lease(pair))
}

#[async_trait]
impl NodeStore for EmbeddedStore {
    async fn claim_id_pair(
        &self,
        node: &NodeIdentity,
        wanted: Option<IdPair>,
        ttl: Duration,
    ) -> StoreResult<IdClaim> {
        let node = node.clone();
        let wanted = wanted.map(pair_index).transpose()?;
        self.write(move |inner| {
            let _guard = lock(&inner.leases_lock);
            let mut tx = Tx::new(inner);
            let now = Timestamp::now().unix_ms();
            let rows = inner
                .ks(Ks::IdLeases)
                .iter()
                .map(|entry| {
                    let (k, v) = entry.into_inner()?;
                    let index = <[u8; 2]>::try_from(&k[..])
                        .map(u16::from_be_bytes)
                        .map_err(|_| StoreError::Corrupt("id lease key".into()))?;
                    Ok((index, decode::<LeaseRow>(&v)?))
                })
                .collect::<StoreResult<std::collections::BTreeMap<u16, LeaseRow>>>()?;
            let index = match wanted {
                Some(index) => match rows.get(&index) {
                    Some(row) if row.expires_at_ms > now && !row.held_by(&node) => {
                        let pair = IdPair::from_index(index)
                            .ok_or_else(|| StoreError::Corrupt("id lease key".into()))?;
                        return Ok((IdClaim::Held(row.lease(pair)), Committed(false)));
                    }
                    _ => index,
                },
                None => {
                    let never = (0..IdPair::COUNT).find(|i| !rows.contains_key(i));
                    let longest_free = || {
                        rows.iter()
                            .filter(|(_, row)| row.expires_at_ms <= now)
                            .min_by_key(|(index, row)| (row.expires_at_ms, **index))
                            .map(|(index, _)| *index)
                    };
                    match never.or_else(longest_free) {
                        Some(index) => index,
                        None => return Ok((IdClaim::Exhausted, Committed(false))),
                    }
                }
            };
            let lease = grant(&mut tx, index, &node, now, ttl)?;
            Ok((IdClaim::Claimed(lease), tx.commit()?))
        })
        .await
    }

    async fn renew_id_pair(
        &self,
        node: &NodeIdentity,
        pair: IdPair,
        ttl: Duration,
    ) -> StoreResult<Option<IdLease>> {
        let node = node.clone();
        let index = pair_index(pair)?;
        self.write(move |inner| {
            let _guard = lock(&inner.leases_lock);
            let mut tx = Tx::new(inner);
            let now = Timestamp::now().unix_ms();
            match tx.get_json::<LeaseRow>(Ks::IdLeases, &key(index))? {
                Some(row) if row.held_by(&node) && row.expires_at_ms > now => {
                    let lease = grant(&mut tx, index, &node, now, ttl)?;
                    Ok((Some(lease), tx.commit()?))
                }
                _ => Ok((None, Committed(false))),
            }
        })
        .await
    }

    async fn release_id_pair(&self, node: &NodeIdentity, pair: IdPair) -> StoreResult<bool> {
        let node = node.clone();
        let index = pair_index(pair)?;
        self.write(move |inner| {
            let _guard = lock(&inner.leases_lock);
            let mut tx = Tx::new(inner);
            let now = Timestamp::now().unix_ms();
            match tx.get_json::<LeaseRow>(Ks::IdLeases, &key(index))? {
                Some(mut row) if row.held_by(&node) && row.expires_at_ms > now => {
                    row.expires_at_ms = now;
                    tx.put_json(Ks::IdLeases, key(index), &row)?;
                    Ok((true, tx.commit()?))
                }
                _ => Ok((false, Committed(false))),
            }
        })
        .await
    }
}
