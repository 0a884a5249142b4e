//! This node's part in a cluster: the links to the other nodes (the inter-node transport, on
//! the cluster address over TCP), the router that sends guild work to the guild's owner over
//! them, and the gossip membership (on the same address over UDP) that says who the other
//! nodes are, publishes this node's state (joining, ready, draining) and load, and feeds the
//! router's view and the links' peers.
//!
//! A node alone has none of it; [`NodeCluster::alone`] answers every question as the only
//! member would.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use enrichment_actors::gateway::SessionRegistry;
use enrichment_actors::gateway::{GatewayService, NodeLiveness};
use enrichment_actors::router::{GuildRouter, LocalGuildRouter};
use enrichment_cluster::routing::UserEvents;
use enrichment_cluster::routing::{ClusterDirectory, ClusterRouter, ClusterRouterParts};
use enrichment_cluster::transport::{
    ClusterTransport, Inbound, LinkSecret, Peer, TcpTransport, TransportConfig,
};
use enrichment_cluster::{
    ClusterConfig, ClusterView, LocalNode, MemberLoad, MemberState, Membership,
};
use enrichment_protocol::models::User;
use enrichment_protocol::node::NodeIdentity;
use enrichment_protocol::{IdPair, Snowflake};
use enrichment_storage::LeaseStore;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;

use crate::gateway::GatewayServer;

/// How often the node publishes its load: gossiped to every node, so not on every change.
const LOAD_EVERY: Duration = Duration::from_secs(5);

/// Links to the other nodes, bound before the guild actors start (they deliver through them).
pub struct Links {
    transport: Arc<dyn ClusterTransport>,
    inbound: mpsc::Receiver<Inbound>,
    /// The sessions guild actors here deliver to, this node's and other nodes'.
    pub directory: Arc<ClusterDirectory>,
    registry: Arc<SessionRegistry>,
    identity: NodeIdentity,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Links {
    /// Listens for the other nodes' links on the cluster address (TCP).
    pub async fn bind(
        config: &ClusterConfig,
        identity: NodeIdentity,
        registry: Arc<SessionRegistry>,
    ) -> anyhow::Result<Links> {
        let secret = config
            .secret
            .as_ref()
            .context("cluster.secret (ENRICHMENT_CLUSTER_SECRET) is required")?;
        let secret = LinkSecret::from_config(secret)?;
        let (transport, inbound) = TcpTransport::bind(
            identity.clone(),
            secret,
            config.listen,
            TransportConfig {
                queue_bytes: config.link_queue_bytes,
                ..TransportConfig::default()
            },
        )
        .await
        .with_context(|| format!("cannot listen for cluster links on {}/TCP", config.listen))?;
        let transport: Arc<dyn ClusterTransport> = Arc::new(transport);
        Ok(Links {
            directory: Arc::new(ClusterDirectory::new(registry.clone(), transport.clone())),
            transport,
            inbound,
            registry,
            identity,
        })
    }

    /// Starts the router that sends guild work to the guild's owner; the views it routes by
    /// come from the membership once the node joins ([`NodeCluster::join`]).
    pub fn start_router(
        self,
        local: Arc<LocalGuildRouter>,
        pair: IdPair,
        leases: Arc<dyn LeaseStore>,
        command_timeout: Duration,
        resubscribe_for: Duration,
        hold_bytes: usize,
    ) -> (Arc<dyn GuildRouter>, RoutedLinks) {
        let (views_tx, views) = watch::channel(ClusterView::default());
        let drain_requested = Arc::new(tokio::sync::Notify::new());
        let (router, serving) = ClusterRouter::start(
            ClusterRouterParts {
                local,
                me: self.identity,
                pair,
                views,
                transport: self.transport.clone(),
                leases,
                directory: self.directory,
                registry: self.registry,
                // The owner's own timeout, and room for the two hops.
                timeout: command_timeout + Duration::from_secs(2),
                resubscribe_for,
                drain_requested: drain_requested.clone(),
                hold_bytes,
            },
            self.inbound,
        );
        let routed = RoutedLinks {
            transport: self.transport,
            views: views_tx,
            serving,
            router: router.clone(),
            drain_requested,
        };
        (router as Arc<dyn GuildRouter>, routed)
    }
}

/// The gateway side, as per-user events from other nodes reach it.
struct GatewayUserEvents(Arc<GatewayService>);

impl UserEvents for GatewayUserEvents {
    fn joined_guild(&self, user_id: Snowflake, guild_id: Snowflake, private: bool) {
        let gateway = self.0.clone();
        tokio::spawn(async move {
            if private {
                gateway.joined_private(user_id, guild_id).await
            } else {
                gateway.joined_guild(user_id, guild_id).await
            }
        });
    }

    fn user_updated(&self, user: &User) {
        self.0.user_updated(user);
    }
}

/// Which nodes still hold their sessions, as this node's view of the membership has it: a
/// ready member, or a draining one, which keeps its sessions for other nodes to take over
/// (same process: node id and generation).
struct ViewLiveness(watch::Receiver<ClusterView>);

impl NodeLiveness for ViewLiveness {
    fn is_live(&self, node: &NodeIdentity) -> bool {
        self.0.borrow().members.iter().any(|m| {
            m.identity == *node && matches!(m.state, MemberState::Ready | MemberState::Draining)
        })
    }
}

/// The links with their router running.
#[derive(Debug)]
pub struct RoutedLinks {
    transport: Arc<dyn ClusterTransport>,
    views: watch::Sender<ClusterView>,
    serving: JoinHandle<()>,
    router: Arc<ClusterRouter>,
    drain_requested: Arc<tokio::sync::Notify>,
}

/// The membership of this node, if it is in a cluster.
pub struct NodeCluster {
    /// Taken when the node leaves.
    membership: Mutex<Option<Membership>>,
    views: Option<watch::Receiver<ClusterView>>,
    links: Option<RoutedLinks>,
    /// Feeds the router's view and the links' peers from the membership.
    follow: Option<JoinHandle<()>>,
    /// How long a draining node keeps its sessions for other nodes to take over.
    session_handover: Duration,
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
            links: None,
            follow: None,
            session_handover: Duration::ZERO,
        }
    }

    /// Joins the cluster `config` describes as `identity`, reachable at `rest_addr` and
    /// `gateway_url`, in state joining; [`NodeCluster::ready`] says it takes work. From then
    /// on every membership change reaches the router and the links.
    pub async fn join(
        config: &ClusterConfig,
        identity: NodeIdentity,
        rest_addr: String,
        gateway_url: String,
        links: RoutedLinks,
    ) -> anyhow::Result<NodeCluster> {
        let me = identity.node_id.clone();
        let local = LocalNode::joining(identity, gateway_url, rest_addr);
        let membership = Membership::join(config, local)
            .await
            .context("joining the cluster")?;
        let mut views = membership.views();
        let (transport, router_views) = (links.transport.clone(), links.views.clone());
        let follow = tokio::spawn(async move {
            loop {
                let view = views.borrow_and_update().clone();
                let peers: Vec<Peer> = view
                    .members
                    .iter()
                    .filter(|m| m.node_id() != me)
                    .map(|m| Peer::new(m.node_id(), m.cluster_addr.to_string()))
                    .collect();
                transport.set_peers(&peers);
                router_views.send_replace(view);
                if views.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(NodeCluster {
            views: Some(membership.views()),
            membership: Mutex::new(Some(membership)),
            links: Some(links),
            follow: Some(follow),
            session_handover: config.session_handover,
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

    /// Waits, at most `timeout`, until the guilds this node owned were handed to other nodes
    /// (which a drain starts). Their actors must run until then: a handoff asks its actor who
    /// follows the guild, and lets it finish its work.
    pub async fn handed_off(&self, timeout: Duration) {
        if let Some(links) = &self.links
            && !links.router.until_handed_off(timeout).await
        {
            tracing::warn!(
                held = links.router.held_count(),
                "guilds still held when the node stops; they pass on when its lease ends"
            );
        }
    }

    /// An operator asks this cluster node to drain and stop ([`crate::Node::wait`] does it).
    /// False for a node alone, which drains its gateway but keeps running.
    pub fn request_drain(&self) -> bool {
        match &self.links {
            Some(links) => {
                links.drain_requested.notify_one();
                true
            }
            None => false,
        }
    }

    /// Per-user events from other nodes reach this node's gateway sessions through `gateway`.
    pub fn deliver_user_events_to(&self, gateway: Arc<GatewayService>) {
        if let Some(links) = &self.links {
            links
                .router
                .set_user_events(Arc::new(GatewayUserEvents(gateway)));
        }
    }

    /// Lets the gateway take over, on RESUME, sessions of the other live nodes, and tell them
    /// from those of dead nodes (op 9).
    pub fn take_sessions_over_for(&self, gateway: &GatewayService) {
        if let (Some(views), Some(links)) = (&self.views, &self.links) {
            gateway.set_node_liveness(Arc::new(ViewLiveness(views.clone())));
            gateway.set_takeover(links.router.takeover());
        }
    }

    /// Waits, at most `cluster.session_handover_secs`, until other nodes took over every
    /// session here (their clients, told to reconnect, resumed there). Nothing for a node
    /// alone: its sessions end with it.
    pub async fn sessions_taken_over(&self, sessions: &SessionRegistry) {
        if self.links.is_none() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.session_handover;
        while !sessions.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !sessions.is_empty() {
            tracing::info!(
                left = sessions.len(),
                "sessions not taken over by another node end with this one"
            );
        }
    }

    /// A user joined a guild (or a private channel) through this node: the other nodes'
    /// sessions of theirs follow it.
    pub fn user_joined(&self, user_id: Snowflake, guild_id: Snowflake, private: bool) {
        if let Some(links) = &self.links {
            links
                .router
                .announce_user_joined(user_id, guild_id, private);
        }
    }

    /// A user changed their account through this node: USER_UPDATE on the other nodes too.
    pub fn user_updated(&self, user: &User) {
        if let Some(links) = &self.links {
            links.router.announce_user_updated(user);
        }
    }

    /// Passes a drain request on to another member.
    pub fn request_drain_of(&self, node_id: &str) -> Result<(), enrichment_protocol::ApiError> {
        match &self.links {
            Some(links) => links.router.request_drain(node_id),
            None => Err(enrichment_protocol::ApiError::unavailable(
                "This node is not in a cluster",
            )),
        }
    }

    /// Resolves when an operator asked this node to drain (never for a node alone).
    pub async fn drain_requested(&self) {
        match &self.links {
            Some(links) => links.drain_requested.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Says goodbye, so peers drop this node at once rather than when the failure detector
    /// notices. Does nothing the second time, or for a node alone.
    pub async fn leave(&self) {
        if let Some(links) = &self.links {
            links.router.announce_leaving();
        }
        let membership = self.membership.lock().await.take();
        if let Some(m) = membership
            && let Err(e) = m.leave().await
        {
            tracing::warn!(error = %e, "leaving the cluster gossip failed");
        }
        if let Some(task) = &self.follow {
            task.abort();
        }
        if let Some(links) = &self.links {
            links.transport.shutdown();
            links.serving.abort();
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
