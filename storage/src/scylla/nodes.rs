//! Snowflake id-pair leases on ScyllaDB (`id_leases`, one row per held pair), and guild
//! ownership (`guild_owners`), live while its owner's id lease is.
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
//!
//! A guild claim reads the record and the lease of its owner, and then writes with a
//! lightweight transaction conditioned on the epoch it read (`IF NOT EXISTS` for a guild never
//! claimed), so of two claims one applies and the other sees the winner on its next round.
//! An owner's lease that ran out cannot come back (a renewal is conditional on the row, which
//! the TTL removed), so "dead" read once stays true. What ScyllaDB cannot do is fence a write
//! of another table on the epoch inside one transaction, as PostgreSQL does: a deposed owner
//! must stop writing on its own once its last renewal is older than the lease minus a margin,
//! and a claimer must wait the lease plus that margin; the cluster layer keeps that timing.
//! `guilds_by_owner` is written after a claim and checked against `guild_owners` on reads, so
//! an entry left behind by a crash is never reported.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use enrichment_protocol::Timestamp;
use enrichment_protocol::node::{GenerationId, NodeIdentity};

use enrichment_protocol::Snowflake;

use super::{ScyllaStore, applied, be};
use crate::{
    GuildClaim, GuildOwner, IdClaim, IdLease, IdPair, LeaseStore, NodeStore, StoreResult,
    pair_index,
};

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

/// A `guild_owners` row: node id, generation, pair, epoch, released.
type OwnerRow = (String, i64, i32, i64, Option<bool>);

impl ScyllaStore {
    /// The guild's record, and whether it is live: not released, and its node still holds
    /// its pair.
    async fn owner_record(&self, guild_id: Snowflake) -> StoreResult<Option<(GuildOwner, bool)>> {
        let st = self.st()?;
        let Some((node_id, generation, pair, epoch, released)) = self
            .one::<OwnerRow>(&st.get_owner, (guild_id.get() as i64,))
            .await?
        else {
            return Ok(None);
        };
        let pair = u16::try_from(pair)
            .ok()
            .and_then(IdPair::from_index)
            .ok_or_else(|| be(format!("guild owner pair {pair}")))?;
        let owner = GuildOwner {
            guild_id,
            node: NodeIdentity::new(node_id, GenerationId(generation as u64)),
            pair,
            epoch: epoch as u64,
        };
        let live = !released.unwrap_or(false) && self.holds(&owner.node, pair).await?;
        Ok(Some((owner, live)))
    }

    /// Whether `node` holds `pair` under a live lease.
    async fn holds(&self, node: &NodeIdentity, pair: IdPair) -> StoreResult<bool> {
        Ok(self
            .stored_lease(pair)
            .await?
            .is_some_and(|lease| lease.holder == *node))
    }

    async fn note_owned(&self, owner: &GuildOwner) -> StoreResult<()> {
        let st = self.st()?;
        self.exec(
            &st.put_owned,
            (
                &owner.node.node_id,
                owner.node.generation.0 as i64,
                owner.guild_id.get() as i64,
            ),
        )
        .await?;
        Ok(())
    }
}

/// Checks the ownership record just before each write (see [`crate::fence`]).
impl crate::fence::ChecksBeforeWriting for ScyllaStore {}

#[async_trait]
impl LeaseStore for ScyllaStore {
    fn fenced(self: std::sync::Arc<Self>, owner: GuildOwner) -> crate::FencedStores {
        crate::fence::Fenced::stores(self, owner)
    }

    async fn claim_guild(
        &self,
        guild_id: Snowflake,
        node: &NodeIdentity,
        pair: IdPair,
    ) -> StoreResult<GuildClaim> {
        if !self.holds(node, pair).await? {
            return Ok(GuildClaim::NotLeased);
        }
        let st = self.st()?;
        let id = guild_id.get() as i64;
        let generation = node.generation.0 as i64;
        let index = i32::from(pair_index(pair)?);
        let mine = |epoch| GuildOwner {
            guild_id,
            node: node.clone(),
            pair,
            epoch,
        };
        // Each round either wins a transaction or reads a record another claim just wrote.
        for _ in 0..3 {
            let claimed = match self.owner_record(guild_id).await? {
                None => {
                    let inserted = applied(
                        self.exec(
                            &st.first_owner,
                            (id, &node.node_id, generation, index, 1_i64, false),
                        )
                        .await?,
                    )?;
                    inserted.then(|| mine(1))
                }
                Some((current, true)) if current.node == *node => {
                    return Ok(GuildClaim::Claimed(current));
                }
                Some((current, true)) => return Ok(GuildClaim::Held(current)),
                Some((current, false)) => {
                    let next = current.epoch as i64 + 1;
                    let taken = applied(
                        self.exec(
                            &st.take_over,
                            (
                                &node.node_id,
                                generation,
                                index,
                                next,
                                false,
                                id,
                                current.epoch as i64,
                            ),
                        )
                        .await?,
                    )?;
                    taken.then(|| mine(next as u64))
                }
            };
            if let Some(owner) = claimed {
                self.note_owned(&owner).await?;
                return Ok(GuildClaim::Claimed(owner));
            }
        }
        Err(be(format!(
            "the owner of guild {guild_id} kept changing while it was claimed"
        )))
    }

    async fn guild_owner(&self, guild_id: Snowflake) -> StoreResult<Option<GuildOwner>> {
        Ok(self
            .owner_record(guild_id)
            .await?
            .and_then(|(owner, live)| live.then_some(owner)))
    }

    async fn release_guild(&self, owner: &GuildOwner) -> StoreResult<bool> {
        let st = self.st()?;
        let generation = owner.node.generation.0 as i64;
        let id = owner.guild_id.get() as i64;
        let released = applied(
            self.exec(
                &st.release_owner,
                (
                    true,
                    id,
                    &owner.node.node_id,
                    generation,
                    owner.epoch as i64,
                    false,
                ),
            )
            .await?,
        )?;
        if released {
            self.exec(&st.del_owned, (&owner.node.node_id, generation, id))
                .await?;
        }
        Ok(released)
    }

    async fn guilds_owned_by(&self, node: &NodeIdentity) -> StoreResult<Vec<GuildOwner>> {
        let st = self.st()?;
        let listed = self
            .all::<(i64,)>(&st.list_owned, (&node.node_id, node.generation.0 as i64))
            .await?;
        let mut owned = Vec::new();
        for (id,) in listed {
            let guild_id = Snowflake(id as u64);
            if let Some((owner, true)) = self.owner_record(guild_id).await?
                && owner.node == *node
            {
                owned.push(owner);
            }
        }
        owned.sort_by_key(|o| o.guild_id);
        Ok(owned)
    }
}
