//! The cluster as this node sees it: the live members, the ready ones among them, and an
//! epoch that counts changes of the ready set.
//!
//! Built from chitchat's map of live nodes each time that map changes. The epoch is local to
//! this node (two nodes may number the same set differently) and only ever grows; it tells a
//! consumer that placement may have changed, cheaply, without comparing lists.

use std::collections::{BTreeMap, HashSet};

use chitchat::{ChitchatId, NodeState};
use enrichment_protocol::node::NodeIdentity;
use tracing::{info, warn};

use crate::member::{Member, MemberState};
use crate::placement;

/// A snapshot of the membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Bumped each time the set of ready members (by identity) changes; 0 before the first.
    pub epoch: u64,
    /// Every live member that has not left, this node included, sorted by node id.
    pub members: Vec<Member>,
    /// The ready members, sorted by node id: what placement runs over.
    pub ready: Vec<Member>,
}

impl ClusterView {
    /// The live member with this node id.
    pub fn member(&self, node_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.node_id() == node_id)
    }

    /// The ready member that should own `guild_id`, if any member is ready.
    pub fn owner(&self, guild_id: u64) -> Option<&Member> {
        placement::owner(guild_id, &self.ready)
    }

    /// The identities of the ready members, in order.
    pub fn ready_identities(&self) -> impl Iterator<Item = &NodeIdentity> {
        self.ready.iter().map(|m| &m.identity)
    }
}

/// Turns chitchat's live nodes into [`ClusterView`]s, remembering what it already logged.
#[derive(Debug, Default)]
pub(crate) struct ViewBuilder {
    epoch: u64,
    ready: Vec<NodeIdentity>,
    /// Nodes whose values did not parse, logged once each while they stay live.
    reported: HashSet<ChitchatId>,
}

impl ViewBuilder {
    /// The view of `live`, with the epoch bumped if the ready set changed since the last call.
    pub(crate) fn build(&mut self, live: &BTreeMap<ChitchatId, NodeState>) -> ClusterView {
        // Latest generation per node id: a restarted node can be live under its new generation
        // before the failure detector has given up on the old one, and one node id must never
        // count twice in placement.
        let mut by_node: BTreeMap<&str, Member> = BTreeMap::new();
        for (id, state) in live {
            let member = match Member::from_node_state(&id.node_id, id.generation_id, state) {
                Ok(member) => member,
                Err(err) => {
                    if self.reported.insert(id.clone()) {
                        warn!(node = ?id, error = %err, "gossiping node publishes no usable membership values; left out of the cluster view");
                    }
                    continue;
                }
            };
            if member.state == MemberState::Left {
                continue;
            }
            match by_node.get(&*id.node_id) {
                Some(kept) if kept.identity.generation >= member.identity.generation => {}
                _ => {
                    by_node.insert(&id.node_id, member);
                }
            }
        }
        self.reported.retain(|id| live.contains_key(id));

        let members: Vec<Member> = by_node.into_values().collect();
        let ready: Vec<Member> = members.iter().filter(|m| m.is_ready()).cloned().collect();
        let ready_ids: Vec<NodeIdentity> = ready.iter().map(|m| m.identity.clone()).collect();
        if ready_ids != self.ready {
            self.epoch += 1;
            info!(
                epoch = self.epoch,
                ready = ?ready_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "the set of ready cluster members changed"
            );
            self.ready = ready_ids;
            metrics::gauge!("enrichment_cluster_ring_epoch").set(self.epoch as f64);
            metrics::gauge!("enrichment_cluster_ready_members").set(self.ready.len() as f64);
        }
        ClusterView {
            epoch: self.epoch,
            members,
            ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use enrichment_protocol::node::GenerationId;

    use super::*;
    use crate::member::MemberLoad;

    fn member(node_id: &str, generation: u64, state: MemberState) -> Member {
        Member {
            identity: NodeIdentity::new(node_id, GenerationId(generation)),
            cluster_addr: "127.0.0.1:8082".parse().unwrap(),
            gateway_url: format!("ws://{node_id}:8081"),
            rest_addr: format!("{node_id}:8080"),
            state,
            load: MemberLoad::default(),
        }
    }

    fn live(members: &[(Member, SocketAddr)]) -> BTreeMap<ChitchatId, NodeState> {
        members
            .iter()
            .map(|(m, addr)| {
                let id = ChitchatId::new(m.node_id(), m.identity.generation.0, *addr);
                let mut state = NodeState::for_test();
                for (key, value) in m.key_values() {
                    state.set(key, value);
                }
                (id, state)
            })
            .collect()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_epoch_moves_when_the_ready_set_changes_and_only_then() {
        let mut builder = ViewBuilder::default();
        let a = member("a", 1, MemberState::Ready);
        let b = member("b", 1, MemberState::Joining);
        let v1 = builder.build(&live(&[(a.clone(), addr(1)), (b.clone(), addr(2))]));
        assert_eq!(v1.epoch, 1);
        assert_eq!(v1.members.len(), 2);
        assert_eq!(v1.ready, vec![a.clone()]);

        let mut busier = a.clone();
        busier.load.connections = 10;
        let v2 = builder.build(&live(&[(busier, addr(1)), (b.clone(), addr(2))]));
        assert_eq!(v2.epoch, 1, "a load change is not a placement change");
        assert_eq!(v2.ready[0].load.connections, 10);

        let b_ready = member("b", 1, MemberState::Ready);
        let v3 = builder.build(&live(&[(a.clone(), addr(1)), (b_ready, addr(2))]));
        assert_eq!(v3.epoch, 2);
        assert_eq!(
            v3.ready.iter().map(Member::node_id).collect::<Vec<_>>(),
            ["a", "b"]
        );

        let b_draining = member("b", 1, MemberState::Draining);
        let v4 = builder.build(&live(&[(a.clone(), addr(1)), (b_draining, addr(2))]));
        assert_eq!(v4.epoch, 3);
        assert_eq!(v4.ready, vec![a]);
        assert_eq!(v4.member("b").unwrap().state, MemberState::Draining);
        assert_eq!(v4.owner(7).unwrap().node_id(), "a");
    }

    #[test]
    fn a_restarted_node_counts_once_under_its_latest_generation() {
        let mut builder = ViewBuilder::default();
        let old = member("a", 1, MemberState::Ready);
        let new = member("a", 2, MemberState::Joining);
        let view = builder.build(&live(&[(old, addr(1)), (new.clone(), addr(2))]));
        assert_eq!(view.members, vec![new]);
        assert!(view.ready.is_empty());
    }

    #[test]
    fn a_node_that_left_or_publishes_unusable_values_is_left_out() {
        let mut builder = ViewBuilder::default();
        let gone = member("gone", 1, MemberState::Left);
        let ok = member("ok", 1, MemberState::Ready);
        let mut map = live(&[(gone, addr(1)), (ok.clone(), addr(2))]);
        let mut broken = NodeState::for_test();
        broken.set("state", "ready");
        let broken_id = ChitchatId::new("broken", 1, addr(3));
        map.insert(broken_id.clone(), broken);
        let view = builder.build(&map);
        assert_eq!(view.members, vec![ok]);
        assert!(builder.reported.contains(&broken_id));
        map.remove(&broken_id);
        builder.build(&map);
        assert!(
            builder.reported.is_empty(),
            "forgotten once it is no longer live"
        );
    }
}
