//! Which node a guild's actor should run on: rendezvous (highest-random-weight) hashing over
//! the ready members.
//!
//! Every node computes the same answer from the same member list without talking to the
//! others: each node gets a score for the guild, and the highest score wins. The order of the
//! list does not matter, and when a node joins only the guilds it now wins move (to it); when
//! one leaves only its own guilds move. No ring of virtual nodes to tune or store.
//!
//! This gives the *intended* owner. Gossip views disagree while they converge, so the owner
//! that actually runs a guild will be decided by a lease in storage, with this as its
//! suggestion; nothing here may be used as proof of ownership.
//!
//! The score is xxh3-64 of the guild id (8 bytes, little-endian) seeded with xxh3-64 of the
//! node id (seed 0). xxh3's output is fixed by its specification, not by a Rust or crate
//! version, so nodes built at different times agree; `std`'s `DefaultHasher` makes no such
//! promise. A test pins a few answers so a change of hash shows up as a failing test rather
//! than as every node disagreeing about every guild. It costs one short hash per member per
//! lookup.

use enrichment_protocol::node::NodeIdentity;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Something placement can score: it needs a stable node id.
///
/// The score uses the node id and never the generation: a node that restarts (a new
/// generation, same id, a pod keeping its name) gets back the guilds it had, so a rolling
/// restart moves each guild away and back once at most, and caches warmed on the node stay
/// useful.
pub trait Placeable {
    fn placement_id(&self) -> &str;
}

impl Placeable for str {
    fn placement_id(&self) -> &str {
        self
    }
}

impl Placeable for String {
    fn placement_id(&self) -> &str {
        self
    }
}

impl Placeable for &str {
    fn placement_id(&self) -> &str {
        self
    }
}

impl Placeable for NodeIdentity {
    fn placement_id(&self) -> &str {
        &self.node_id
    }
}

/// The score of `node_id` for `guild_id`; the highest score owns the guild.
pub fn score(node_id: &str, guild_id: u64) -> u64 {
    xxh3_64_with_seed(&guild_id.to_le_bytes(), xxh3_64(node_id.as_bytes()))
}

/// The member that should own `guild_id`, or `None` when there are no members. Pass only the
/// members that may take guilds (the ready ones); the answer does not depend on their order.
pub fn owner<M: Placeable>(guild_id: u64, members: &[M]) -> Option<&M> {
    members.iter().max_by(|a, b| {
        let (a, b) = (a.placement_id(), b.placement_id());
        // Equal scores are astronomically rare but must still break the same way on every
        // node, whatever the order of the list: by node id.
        score(a, guild_id)
            .cmp(&score(b, guild_id))
            .then_with(|| a.cmp(b))
    })
}

#[cfg(test)]
mod tests;
