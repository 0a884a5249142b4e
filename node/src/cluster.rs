//! This node's part in a cluster: joining gossip when `[cluster] enabled` is set, publishing
//! its state (joining, ready, draining) and its load, and the view of the other members that
//! the admin API reports.
//!
//! A node alone has no membership; [`NodeCluster::alone`] answers every question as the only
//! member would. What the membership does not do yet is place guild actors: every node still
//! runs the actors of the guilds it is asked about (see `docs/architecture.md`, "The cluster").

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use enrichment_actors::router::GuildRouter;
use enrichment_cluster::{
    ClusterConfig, ClusterView, LocalNode, MemberLoad, MemberState, Membership,
};
use enrichment_protocol::node::NodeIdentity;
use tokio::sync::Mutex;

use crate::gateway::GatewayServer;

/// How often the node publishes its load: gossiped to every node, so not on every change.
const LOAD_EVERY: Duration = Duration::from_secs(5);

/// The membership of this node, if it is in a cluster.
pub struct NodeCluster {
    /// Taken when the node leaves.
    membership: Mutex<Option<Membership>>,
    views: Option<tokio::sync::watch::Receiver<ClusterView>>,
}

impl std::fmt::Debug for NodeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCluster")
            .field("clustered", &self.views.is_some())
            .finish_non_exhaustive()
    }
}

impl NodeCluster {
    /// A node on its own.
    pub fn alone() -> NodeCluster {
        NodeCluster {
            membership: Mutex::new(None),
            views: None,
        }
    }

    /// Joins the cluster `config` describes as `identity`, reachable at `rest_addr` and
    /// `gateway_url`, in state joining; [`NodeCluster::ready`] says it takes work.
    pub async fn join(
        config: &ClusterConfig,
        identity: NodeIdentity,
        rest_addr: String,
        gateway_url: String,
    ) -> anyhow::Result<NodeCluster> {
        let local = LocalNode::joining(identity, gateway_url, rest_addr);
        let membership = Membership::join(config, local)
            .await
            .context("joining the cluster")?;
        Ok(NodeCluster {
            views: Some(membership.views()),
            membership: Mutex::new(Some(membership)),
        })
    }

    /// Whether this node is a member of a cluster.
    pub fn is_clustered(&self) -> bool {
        self.views.is_some()
    }

    /// The cluster as this node sees it; `None` for a node alone.
    pub fn view(&self) -> Option<ClusterView> {
        self.views.as_ref().map(|v| v.borrow().clone())
    }

    async fn set_state(&self, state: MemberState) {
        if let Some(m) = self.membership.lock().await.as_ref() {
            m.set_state(state).await;
        }
    }

    /// Tells the cluster this node takes work.
    pub async fn ready(&self) {
        self.set_state(MemberState::Ready).await;
    }

    /// Tells the cluster this node is going away: placement stops counting it.
    pub async fn drain(&self) {
        self.set_state(MemberState::Draining).await;
    }

    /// Says goodbye, so peers drop this node at once rather than when the failure detector
    /// notices. Does nothing the second time, or for a node alone.
    pub async fn leave(&self) {
        let membership = self.membership.lock().await.take();
        if let Some(m) = membership
            && let Err(e) = m.leave().await
        {
            tracing::warn!(error = %e, "leaving the cluster gossip failed");
        }
    }

    /// Publishes the node's load every few seconds, for as long as the task runs.
    pub fn spawn_load_upkeep(
        self: &Arc<Self>,
        router: Arc<dyn GuildRouter>,
        gateway: Arc<GatewayServer>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.is_clustered() {
            return None;
        }
        let me = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(LOAD_EVERY);
            loop {
                tick.tick().await;
                let load = MemberLoad {
                    guild_actors: router.local_actor_count() as u64,
                    connections: gateway.connections() as u64,
                };
                match me.membership.lock().await.as_ref() {
                    Some(m) => m.set_load(load).await,
                    None => return,
                }
            }
        }))
    }
}
