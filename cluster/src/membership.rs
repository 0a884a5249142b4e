//! This node's membership of the cluster: chitchat gossip over the authenticated transport,
//! what the node publishes about itself, and the [`ClusterView`] it keeps of the others.
//!
//! chitchat does the gossip (scuttlebutt reconciliation) and the failure detection (phi
//! accrual); this module starts it with the node's identity, publishes the node's
//! [`Member`] values, and turns chitchat's live-node map into typed views on a watch channel.
//!
//! ## Failure detection from `dead_after`
//!
//! chitchat's detector keeps, per peer, the mean interval between the heartbeats it observes,
//! smoothed towards a prior (`initial_interval`, weighted like five samples), and declares the
//! peer dead once the time since its last heartbeat exceeds `phi_threshold` times that mean.
//! It checks once per gossip round. A live node's heartbeat reaches its peers at least once a
//! round (each round it gossips with up to three live peers, and answering gossip bumps it
//! too), so the mean stays at or below the gossip interval `g`. With
//!
//! - `initial_interval = g`, the prior;
//! - `phi_threshold = dead_after / g - 1`;
//!
//! a silent peer crosses the threshold at most `dead_after - g` after its last heartbeat, and
//! the next round (at most `g` later) reports it: dead within `dead_after`. In a small cluster
//! heartbeats arrive more often than once a round and detection comes earlier (on loopback,
//! three nodes with `dead_after` 2 s report a crash after about 1.5 s). Where heartbeats
//! arrive less often than once a round (large clusters gossip them on indirectly), the mean
//! grows and detection slows with it, which is the point of an accrual detector: it does not
//! call a node dead for the network's usual slowness. `dead_after` must span at least three
//! rounds ([`crate::config::MIN_ROUNDS_BEFORE_DEAD`]) so one late datagram is not a death.
//!
//! Heartbeat intervals longer than `dead_after` are not samples (the node was dead, or we
//! were), and a dead node's state is forgotten after [`DEAD_NODE_GRACE`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use chitchat::transport::Transport;
use chitchat::{
    ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState, ProtocolVersion,
    spawn_chitchat,
};
use enrichment_protocol::node::NodeIdentity;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::config::{ClusterConfig, ConfigError};
use crate::gossip_auth::{AuthenticatedUdpTransport, RejectedDatagrams, RejectionReader};
use crate::member::{
    InvalidMember, KEY_LOAD, KEY_STATE, Member, MemberLoad, MemberState, load_text,
};
use crate::view::{ClusterView, ViewBuilder};

/// How long a dead node's published values are kept before they are forgotten. Long enough
/// that a node which was partitioned away for a while is recognised (and its old generation
/// not mistaken for a new node) when it comes back; short enough that a cluster that replaces
/// nodes all day does not gossip thousands of ghosts.
pub const DEAD_NODE_GRACE: Duration = Duration::from_secs(60 * 60);

/// Heartbeat samples the failure detector averages over: at most a couple of minutes at the
/// default interval, enough to smooth a noisy network and short enough to follow a change in it.
const SAMPLING_WINDOW: usize = 256;

/// What this node says about itself when it joins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNode {
    pub identity: NodeIdentity,
    /// The WebSocket URL of this node's gateway listener.
    pub gateway_url: String,
    /// Where this node's REST API is reached (`host:port` or a URL).
    pub rest_addr: String,
    /// Usually [`MemberState::Joining`]; the node says [`MemberState::Ready`] once it can take
    /// guilds.
    pub state: MemberState,
    pub load: MemberLoad,
}

impl LocalNode {
    /// A node that is joining and carries no load yet.
    pub fn joining(
        identity: NodeIdentity,
        gateway_url: impl Into<String>,
        rest_addr: impl Into<String>,
    ) -> LocalNode {
        LocalNode {
            identity,
            gateway_url: gateway_url.into(),
            rest_addr: rest_addr.into(),
            state: MemberState::Joining,
            load: MemberLoad::default(),
        }
    }
}

/// Why this node could not join.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("this node's own membership values would be unreadable to its peers: {0}")]
    Unpublishable(#[from] InvalidMember),
    #[error("cannot bind {addr}/UDP for gossip: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gossip failed: {0}")]
    Gossip(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn gossip_error(err: anyhow::Error) -> ClusterError {
    ClusterError::Gossip(err.into())
}

/// This node's place in the cluster. Dropping it stops gossip at once, as a crash would: peers
/// notice through the failure detector. [`Membership::leave`] says goodbye first.
pub struct Membership {
    /// `None` only while stopping.
    handle: Option<ChitchatHandle>,
    identity: NodeIdentity,
    advertise: SocketAddr,
    gossip_interval: Duration,
    views: watch::Receiver<ClusterView>,
    view_task: JoinHandle<()>,
    rejections: RejectionReader,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("identity", &self.identity)
            .field("advertise", &self.advertise)
            .field("epoch", &self.views.borrow().epoch)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// Starts gossiping as `local` with the cluster `config` describes: binds the gossip
    /// socket, publishes this node's values and starts following the others. Returns once
    /// gossip runs; peers appear in [`Membership::views`] as they are reached.
    pub async fn join(
        config: &ClusterConfig,
        local: LocalNode,
    ) -> Result<Membership, ClusterError> {
        config.validate()?;
        let secret = config.secret.as_ref().ok_or(ConfigError::MissingSecret)?;

        let socket = tokio::net::UdpSocket::bind(config.listen)
            .await
            .map_err(|source| ClusterError::Bind {
                addr: config.listen,
                source,
            })?;
        let bound = socket.local_addr().map_err(|source| ClusterError::Bind {
            addr: config.listen,
            source,
        })?;
        // `validate` refused an unspecified advertise address and an unspecified listen
        // address without one, so this is an address peers can dial.
        let advertise = config.advertise.unwrap_or(bound);

        let me = Member {
            identity: local.identity.clone(),
            cluster_addr: advertise,
            gateway_url: local.gateway_url,
            rest_addr: local.rest_addr,
            state: local.state,
            load: local.load,
        };
        // Read back what is about to be published, exactly as a peer would, so a value peers
        // would skip is an error here instead of a node nobody sees.
        let key_values = me.key_values();
        Member::from_key_values(me.node_id(), me.identity.generation.0, |key| {
            key_values
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        })?;

        let chitchat_id = ChitchatId::new(me.node_id(), me.identity.generation.0, advertise);
        let chitchat_config = ChitchatConfig {
            chitchat_id,
            cluster_id: config.cluster_id.clone(),
            gossip_interval: config.gossip_interval,
            listen_addr: bound,
            seed_nodes: config.seeds.clone(),
            failure_detector_config: failure_detector(config.gossip_interval, config.dead_after),
            // Nothing is deleted from a node's values today; tombstones, when some are, need
            // to outlive a partition as long as a dead node's state does.
            marked_for_deletion_grace_period: DEAD_NODE_GRACE,
            catchup_callback: None,
            extra_liveness_predicate: None,
            // V1 compresses the digest. Every node that gossips speaks it (the cluster
            // started on chitchat 0.13), so there is no older peer to wait for.
            protocol_version: ProtocolVersion::V1,
        };
        let transport =
            AuthenticatedUdpTransport::new(secret, config.replay_window).with_bound_socket(socket);
        let rejections = transport.rejection_reader();
        let handle = spawn_chitchat(chitchat_config, key_values, &transport as &dyn Transport)
            .await
            .map_err(gossip_error)?;

        let live = handle.with_chitchat(|c| c.live_nodes_watcher()).await;
        let (views_tx, views) = watch::channel(ClusterView::default());
        let view_task = tokio::spawn(follow_live_nodes(live, views_tx));
        info!(
            node = %me.identity,
            gossip = %advertise,
            seeds = ?config.seeds,
            "joined cluster gossip"
        );
        Ok(Membership {
            handle: Some(handle),
            identity: me.identity,
            advertise,
            gossip_interval: config.gossip_interval,
            views,
            view_task,
            rejections,
        })
    }

    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// The gossip address peers reach this node at (also its published cluster address).
    pub fn advertise_addr(&self) -> SocketAddr {
        self.advertise
    }

    /// The cluster views, starting with the current one. A new view is sent when a member
    /// appears, disappears or changes its values; its epoch moves only when the ready set does.
    pub fn views(&self) -> watch::Receiver<ClusterView> {
        self.views.clone()
    }

    /// The current view.
    pub fn view(&self) -> ClusterView {
        self.views.borrow().clone()
    }

    /// Publishes this node's state. Peers see it within a few gossip rounds; this node's own
    /// view follows at the next round.
    pub async fn set_state(&self, state: MemberState) {
        self.set_value(KEY_STATE, state.as_str().to_owned()).await;
        debug!(%state, "published member state");
    }

    /// Publishes this node's load. An unchanged load costs nothing; a changed one is gossiped
    /// to every node, so call this every few seconds rather than on each connection.
    pub async fn set_load(&self, load: MemberLoad) {
        self.set_value(KEY_LOAD, load_text(&load)).await;
    }

    /// Gossip datagrams this node dropped since it joined (wrong secret, stale, malformed).
    pub fn rejected_datagrams(&self) -> RejectedDatagrams {
        self.rejections.snapshot()
    }

    /// Says goodbye and stops: publishes [`MemberState::Left`], gossips it to every live peer
    /// at once, gives them one gossip interval to ask for it, then stops. Peers drop this node
    /// from their views as soon as they have the news instead of waiting for the failure
    /// detector.
    pub async fn leave(self) -> Result<(), ClusterError> {
        self.set_state(MemberState::Left).await;
        let mut told = 0;
        if let Some(handle) = &self.handle {
            let peers: Vec<SocketAddr> = handle
                .with_chitchat(|c| {
                    let me = c.self_chitchat_id().clone();
                    c.live_nodes()
                        .filter(|id| **id != me)
                        .map(|id| id.gossip_advertise_addr)
                        .collect()
                })
                .await;
            for peer in peers {
                handle.gossip(peer).map_err(gossip_error)?;
                told += 1;
            }
        }
        if told > 0 {
            // A peer answers the SYN above with what it lacks; the reply to that carries the
            // new state. One round trip on a working network, well within one interval.
            tokio::time::sleep(self.gossip_interval).await;
        }
        self.shutdown().await
    }

    /// Stops gossiping without a goodbye, and waits until the socket is closed.
    pub async fn shutdown(mut self) -> Result<(), ClusterError> {
        self.view_task.abort();
        match self.handle.take() {
            Some(handle) => handle.shutdown().await.map_err(gossip_error),
            None => Ok(()),
        }
    }

    async fn set_value(&self, key: &'static str, value: String) {
        if let Some(handle) = &self.handle {
            handle
                .with_chitchat(|c| c.self_node_state().set(key, &value))
                .await;
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.view_task.abort();
        if let Some(handle) = self.handle.take() {
            // As abrupt as a crash: no goodbye, no last gossip round.
            handle.abort();
        }
    }
}

/// The failure detector that reports a silent node dead within `dead_after` (see the module
/// docs for the derivation).
pub(crate) fn failure_detector(
    gossip_interval: Duration,
    dead_after: Duration,
) -> FailureDetectorConfig {
    let rounds = dead_after.as_secs_f64() / gossip_interval.as_secs_f64();
    FailureDetectorConfig {
        phi_threshold: (rounds - 1.0).max(1.0),
        sampling_window_size: SAMPLING_WINDOW,
        max_interval: dead_after,
        initial_interval: gossip_interval,
        dead_node_grace_period: DEAD_NODE_GRACE,
    }
}

/// Rebuilds the view each time chitchat's live-node map changes, until chitchat stops.
async fn follow_live_nodes(
    mut live: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
    views: watch::Sender<ClusterView>,
) {
    let mut builder = ViewBuilder::default();
    loop {
        let view = builder.build(&live.borrow_and_update());
        views.send_if_modified(|current| {
            if *current == view {
                return false;
            }
            *current = view;
            true
        });
        if live.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_timings_give_a_threshold_of_nine_mean_intervals() {
        let fd = failure_detector(Duration::from_millis(500), Duration::from_secs(5));
        assert_eq!(fd.phi_threshold, 9.0);
        assert_eq!(fd.initial_interval, Duration::from_millis(500));
        assert_eq!(fd.max_interval, Duration::from_secs(5));
        // The silence after which a node is called dead, plus one round to notice it.
        let detection = fd.initial_interval.mul_f64(fd.phi_threshold) + Duration::from_millis(500);
        assert_eq!(detection, Duration::from_secs(5));
    }
}
