//! Snowflake id-pair leases on fjall: one row per claimed pair, keyed by its index; and guild
//! ownership records, one per guild ever claimed, keyed by its id.
//!
//! An embedded store serves a single node, which mints with its configured pair and claims
//! nothing; the leases are here so that the store keeps the whole [`NodeStore`] contract (and
//! the conformance suite proves it like the shared stores'). The clock is this process's. Every
//! operation reads and writes under `leases_lock`, so claims are atomic; a released lease keeps
//! its row with `expires_at` set to the release time, which is what orders free pairs for reuse.
//! Guild claims take the same lock, so the id lease a claim checks cannot change under it.

use std::time::Duration;

use async_trait::async_trait;
use enrichment_protocol::Timestamp;
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use serde::{Deserialize, Serialize};

use super::{Committed, EmbeddedStore, Ks, Tx, decode, lock};
use enrichment_protocol::Snowflake;

use crate::{
    GuildClaim, GuildOwner, IdClaim, IdLease, IdPair, LeaseStore, NodeStore, StoreError,
    StoreResult, pair_index,
};

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

/// A guild's ownership record as stored. A released record keeps its epoch, so the next claim
/// counts on from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct OwnerRow {
    node_id: String,
    generation: u64,
    pair: u16,
    epoch: u64,
    released: bool,
}

impl OwnerRow {
    fn owner(&self, guild_id: Snowflake) -> StoreResult<GuildOwner> {
        Ok(GuildOwner {
            guild_id,
            node: NodeIdentity::new(self.node_id.clone(), GenerationId(self.generation)),
            pair: IdPair::from_index(self.pair)
                .ok_or_else(|| StoreError::Corrupt(format!("guild owner pair {}", self.pair)))?,
            epoch: self.epoch,
        })
    }

    fn is(&self, owner: &GuildOwner) -> bool {
        self.node_id == owner.node.node_id
            && self.generation == owner.node.generation.0
            && self.epoch == owner.epoch
    }
}

/// Whether `node` holds `pair` under a live lease, read inside the caller's lock.
fn holds(tx: &Tx<'_>, node: &NodeIdentity, pair: u16, now: i64) -> StoreResult<bool> {
    Ok(tx
        .get_json::<LeaseRow>(Ks::IdLeases, &key(pair))?
        .is_some_and(|row| row.held_by(node) && row.expires_at_ms > now))
}

/// The record's owner when it is live: not released, and its node still holds its pair.
fn live_owner(
    tx: &Tx<'_>,
    guild_id: Snowflake,
    row: &OwnerRow,
    now: i64,
) -> StoreResult<Option<GuildOwner>> {
    if row.released {
        return Ok(None);
    }
    let owner = row.owner(guild_id)?;
    Ok(holds(tx, &owner.node, row.pair, now)?.then_some(owner))
}

/// Checks the ownership record just before each write (see [`crate::fence`]).
impl crate::fence::ChecksBeforeWriting for EmbeddedStore {}

#[async_trait]
impl LeaseStore for EmbeddedStore {
    fn fenced(self: std::sync::Arc<Self>, owner: GuildOwner) -> crate::FencedStores {
        crate::fence::Fenced::stores(self, owner)
    }

    async fn claim_guild(
        &self,
        guild_id: Snowflake,
        node: &NodeIdentity,
        pair: IdPair,
    ) -> StoreResult<GuildClaim> {
        let node = node.clone();
        let index = pair_index(pair)?;
        self.write(move |inner| {
            let _guard = lock(&inner.leases_lock);
            let mut tx = Tx::new(inner);
            let now = Timestamp::now().unix_ms();
            if !holds(&tx, &node, index, now)? {
                return Ok((GuildClaim::NotLeased, Committed(false)));
            }
            let gkey = guild_id.get().to_be_bytes();
            let current = tx.get_json::<OwnerRow>(Ks::GuildOwners, &gkey)?;
            let mut epoch = 1;
            if let Some(row) = &current {
                if let Some(owner) = live_owner(&tx, guild_id, row, now)? {
                    if owner.node == node {
                        return Ok((GuildClaim::Claimed(owner), Committed(false)));
                    }
                    return Ok((GuildClaim::Held(owner), Committed(false)));
                }
                epoch = row.epoch + 1;
            }
            let row = OwnerRow {
                node_id: node.node_id.clone(),
                generation: node.generation.0,
                pair: index,
                epoch,
                released: false,
            };
            tx.put_json(Ks::GuildOwners, gkey, &row)?;
            let owner = row.owner(guild_id)?;
            Ok((GuildClaim::Claimed(owner), tx.commit()?))
        })
        .await
    }

    async fn guild_owner(&self, guild_id: Snowflake) -> StoreResult<Option<GuildOwner>> {
        self.blocking(move |inner| {
            let _guard = lock(&inner.leases_lock);
            let tx = Tx::new(inner);
            let now = Timestamp::now().unix_ms();
            match tx.get_json::<OwnerRow>(Ks::GuildOwners, &guild_id.get().to_be_bytes())? {
                Some(row) => live_owner(&tx, guild_id, &row, now),
                None => Ok(None),
            }
        })
        .await
    }

    async fn release_guild(&self, owner: &GuildOwner) -> StoreResult<bool> {
        let owner = owner.clone();
        self.write(move |inner| {
            let _guard = lock(&inner.leases_lock);
            let mut tx = Tx::new(inner);
            let gkey = owner.guild_id.get().to_be_bytes();
            match tx.get_json::<OwnerRow>(Ks::GuildOwners, &gkey)? {
                Some(mut row) if !row.released && row.is(&owner) => {
                    row.released = true;
                    tx.put_json(Ks::GuildOwners, gkey, &row)?;
                    Ok((true, tx.commit()?))
                }
                _ => Ok((false, Committed(false))),
            }
        })
        .await
    }

    async fn guilds_owned_by(&self, node: &NodeIdentity) -> StoreResult<Vec<GuildOwner>> {
        let node = node.clone();
        self.blocking(move |inner| {
            let _guard = lock(&inner.leases_lock);
            let tx = Tx::new(inner);
            let now = Timestamp::now().unix_ms();
            let mut owned = Vec::new();
            for entry in inner.ks(Ks::GuildOwners).iter() {
                let (k, v) = entry.into_inner()?;
                let id = <[u8; 8]>::try_from(&k[..])
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("guild owner key".into()))?;
                let row = decode::<OwnerRow>(&v)?;
                if row.node_id != node.node_id || row.generation != node.generation.0 {
                    continue;
                }
                if let Some(owner) = live_owner(&tx, Snowflake(id), &row, now)? {
                    owned.push(owner);
                }
            }
            Ok(owned)
        })
        .await
    }
}
