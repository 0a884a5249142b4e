//! Transports that talk through memory, for tests: the same queues, numbering and gap reports
//! as over TCP, plus faults to inject.
//!
//! A [`MemoryNetwork`] is the hub; [`MemoryNetwork::transport`] creates a node on it (creating
//! one with the id of an existing node replaces it, like a restart). For each peer a node is
//! told about, one task moves frames from the queue to the peer's inbound side, in order, the
//! way a link's writer does. The faults act on those tasks:
//! - [`partition`](MemoryNetwork::partition) and [`isolate`](MemoryNetwork::isolate) break links
//!   in both directions: what was queued for them counts as written to a connection that broke
//!   (lost, reported as a gap later), the receivers see the links go down, and frames sent
//!   meanwhile wait in the queue (up to its byte cap) until [`heal`](MemoryNetwork::heal);
//! - [`delay`](MemoryNetwork::delay) holds each frame of one direction until it has been queued
//!   that long, keeping order;
//! - [`drop_next`](MemoryNetwork::drop_next) and [`drop_probability`](MemoryNetwork::drop_probability)
//!   lose frames on the way, from a random generator seeded per direction, so a run can be
//!   repeated.
//!
//! Lost frames surface exactly as over TCP: a gap before the next frame, or as soon as the
//! queue is empty (where TCP would wait for its next keep-alive).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::inbound::{InboundLink, InboundSide, OpenError, OpenRefusal};
use super::outbound::{OutboundPeers, PeerQueue, Queued};
use super::stats::{self, Stats};
use super::{
    ClusterTransport, FrameKind, Inbound, Peer, SendError, TransportConfig, TransportStats,
};

/// A hub of in-memory transports with faults to inject. Clones share the hub.
#[derive(Clone, Debug)]
pub struct MemoryNetwork {
    hub: Arc<Hub>,
}

#[derive(Debug)]
struct Hub {
    config: TransportConfig,
    seed: u64,
    next_instance: AtomicU64,
    state: Mutex<HubState>,
    /// Bumped whenever who can reach whom changes; link tasks re-check their route.
    changed: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct HubState {
    nodes: HashMap<String, Arc<MemoryNode>>,
    /// Ordered pairs that cannot deliver.
    cut: HashSet<(String, String)>,
    isolated: HashSet<String>,
    /// How many times each ordered pair's link was broken.
    breaks: HashMap<(String, String), u64>,
    faults: HashMap<(String, String), Faults>,
}

#[derive(Debug)]
struct Faults {
    delay: Duration,
    drop_next: u64,
    drop_probability: f64,
    rng: StdRng,
}

#[derive(Debug)]
struct MemoryNode {
    identity: NodeIdentity,
    instance: u64,
    outbound: OutboundPeers,
    inbound: Arc<InboundSide>,
    stats: Arc<Stats>,
    stop: CancellationToken,
}

impl MemoryNode {
    fn shut(&self) {
        self.outbound.shutdown();
        self.stop.cancel();
    }
}

/// Where a link leads while it is up: which process of the receiver, and which unbroken stretch
/// of the pair's life. A link task whose route changes closes its link and opens a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Route {
    receiver: u64,
    epoch: u64,
}

impl Default for MemoryNetwork {
    fn default() -> Self {
        MemoryNetwork::new()
    }
}

impl MemoryNetwork {
    /// A network with the default limits and random seed 0.
    pub fn new() -> MemoryNetwork {
        MemoryNetwork::with_config(TransportConfig::default(), 0)
    }

    /// A network whose transports use `config` (queue cap, inbound capacity, maximum frame
    /// length) and whose random drops derive from `seed`.
    pub fn with_config(config: TransportConfig, seed: u64) -> MemoryNetwork {
        MemoryNetwork {
            hub: Arc::new(Hub {
                config,
                seed,
                next_instance: AtomicU64::new(0),
                state: Mutex::new(HubState::default()),
                changed: watch::Sender::new(0),
            }),
        }
    }

    /// Adds a node, replacing (and shutting down) any node with the same id.
    pub fn transport(&self, identity: NodeIdentity) -> (MemoryTransport, mpsc::Receiver<Inbound>) {
        let config = &self.hub.config;
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let (inbound, rx) = InboundSide::new(config.inbound_capacity, stats.clone(), stop.clone());
        let node = Arc::new(MemoryNode {
            outbound: OutboundPeers::new(
                &identity.node_id,
                config.queue_bytes,
                config.max_frame_length,
                true,
                stats.clone(),
            ),
            identity,
            instance: self.hub.next_instance.fetch_add(1, Ordering::Relaxed),
            inbound,
            stats,
            stop,
        });
        let replaced = self
            .hub
            .state
            .lock()
            .nodes
            .insert(node.identity.node_id.clone(), node.clone());
        if let Some(replaced) = replaced {
            replaced.shut();
        }
        self.hub.notify();
        let transport = MemoryTransport {
            node,
            hub: self.hub.clone(),
        };
        (transport, rx)
    }

    /// Cuts `a` and `b` apart, both ways, until [`heal`](Self::heal).
    pub fn partition(&self, a: &str, b: &str) {
        let mut state = self.hub.state.lock();
        for (from, to) in [(a, b), (b, a)] {
            if state.cut.insert((from.to_owned(), to.to_owned())) {
                state.break_link(from, to);
            }
        }
        drop(state);
        self.hub.notify();
    }

    /// Cuts `a` from every other node, both ways, until [`heal`](Self::heal).
    pub fn isolate(&self, a: &str) {
        let mut state = self.hub.state.lock();
        if state.isolated.insert(a.to_owned()) {
            let others: Vec<String> = state.nodes.keys().filter(|id| *id != a).cloned().collect();
            for other in others {
                state.break_link(a, &other);
                state.break_link(&other, a);
            }
        }
        drop(state);
        self.hub.notify();
    }

    /// Ends every partition and isolation; links open again.
    pub fn heal(&self) {
        let mut state = self.hub.state.lock();
        state.cut.clear();
        state.isolated.clear();
        drop(state);
        self.hub.notify();
    }

    /// Delivers each frame from `from` to `to` no earlier than `delay` after it was queued (the
    /// delay in force when the frame leaves the queue; order is kept whatever the changes).
    pub fn delay(&self, from: &str, to: &str, delay: Duration) {
        self.hub.faults(from, to, |faults| faults.delay = delay);
    }

    /// Loses the next `n` frames from `from` to `to` on the way.
    pub fn drop_next(&self, from: &str, to: &str, n: u64) {
        self.hub.faults(from, to, |faults| faults.drop_next += n);
    }

    /// Removes every delay and drop (partitions stay until [`heal`](Self::heal)).
    pub fn clear_faults(&self) {
        for faults in self.hub.state.lock().faults.values_mut() {
            faults.delay = Duration::ZERO;
            faults.drop_next = 0;
            faults.drop_probability = 0.0;
        }
    }

    /// Loses each frame from `from` to `to` with probability `p`.
    pub fn drop_probability(&self, from: &str, to: &str, p: f64) {
        self.hub.faults(from, to, |faults| {
            faults.drop_probability = p.clamp(0.0, 1.0)
        });
    }
}

impl HubState {
    /// Breaks the link `from -> to`: its task reopens it, and what was queued is lost.
    fn break_link(&mut self, from: &str, to: &str) {
        *self
            .breaks
            .entry((from.to_owned(), to.to_owned()))
            .or_default() += 1;
        if let Some(node) = self.nodes.get(from) {
            node.outbound.discard_queued(to);
        }
    }
}

impl Hub {
    fn notify(&self) {
        self.changed.send_modify(|version| *version += 1);
    }

    fn faults(&self, from: &str, to: &str, change: impl FnOnce(&mut Faults)) {
        let mut state = self.state.lock();
        let faults = state
            .faults
            .entry((from.to_owned(), to.to_owned()))
            .or_insert_with(|| Faults {
                delay: Duration::ZERO,
                drop_next: 0,
                drop_probability: 0.0,
                rng: StdRng::seed_from_u64(self.seed ^ fnv1a(from, to)),
            });
        change(faults);
    }

    /// The route of `from -> to` if the link can be up, with the receiver's inbound side and
    /// generation.
    fn route(
        &self,
        from: &MemoryNode,
        to: &str,
    ) -> Option<(Route, Arc<InboundSide>, GenerationId)> {
        let state = self.state.lock();
        let sender = state.nodes.get(&from.identity.node_id)?;
        if sender.instance != from.instance {
            return None;
        }
        let receiver = state.nodes.get(to)?;
        let from_id = &from.identity.node_id;
        if state.isolated.contains(from_id)
            || state.isolated.contains(to)
            || state.cut.contains(&(from_id.clone(), to.to_owned()))
        {
            return None;
        }
        let epoch = state
            .breaks
            .get(&(from_id.clone(), to.to_owned()))
            .copied()
            .unwrap_or(0);
        let route = Route {
            receiver: receiver.instance,
            epoch,
        };
        Some((
            route,
            receiver.inbound.clone(),
            receiver.identity.generation,
        ))
    }

    /// Whether a frame on its way from `from` to `to` is lost.
    fn drops(&self, from: &str, to: &str) -> bool {
        let mut state = self.state.lock();
        let Some(faults) = state.faults.get_mut(&(from.to_owned(), to.to_owned())) else {
            return false;
        };
        if faults.drop_next > 0 {
            faults.drop_next -= 1;
            return true;
        }
        faults.drop_probability > 0.0 && faults.rng.random_bool(faults.drop_probability)
    }

    fn delay_of(&self, from: &str, to: &str) -> Duration {
        self.state
            .lock()
            .faults
            .get(&(from.to_owned(), to.to_owned()))
            .map_or(Duration::ZERO, |faults| faults.delay)
    }
}

/// A stable hash of a direction, to seed its random generator.
fn fnv1a(from: &str, to: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for byte in from.bytes().chain([0xff]).chain(to.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// One node of a [`MemoryNetwork`]. Dropping it takes the node off the network.
#[derive(Debug)]
pub struct MemoryTransport {
    node: Arc<MemoryNode>,
    hub: Arc<Hub>,
}

impl ClusterTransport for MemoryTransport {
    fn local(&self) -> &NodeIdentity {
        &self.node.identity
    }

    fn set_peers(&self, peers: &[Peer]) {
        let (hub, node) = (&self.hub, &self.node);
        node.outbound.set_peers(peers, |peer| {
            let stop = node.stop.child_token();
            tokio::spawn(run_link(
                hub.clone(),
                node.clone(),
                peer.clone(),
                stop.clone(),
            ));
            stop
        });
    }

    fn remove_peer(&self, node_id: &str) {
        self.node.outbound.remove(node_id);
    }

    fn link_up(&self, to: &str) -> bool {
        self.node.outbound.link_up(to)
    }

    fn send(&self, to: &str, kind: FrameKind, payload: Bytes) -> Result<u64, SendError> {
        self.node.outbound.send(to, kind, payload)
    }

    fn stats(&self) -> TransportStats {
        self.node.stats.snapshot()
    }

    fn shutdown(&self) {
        self.node.shut();
        let mut state = self.hub.state.lock();
        let current = state
            .nodes
            .get(&self.node.identity.node_id)
            .is_some_and(|node| node.instance == self.node.instance);
        if current {
            state.nodes.remove(&self.node.identity.node_id);
        }
        drop(state);
        self.hub.notify();
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What became of a frame taken from the queue.
enum Passage {
    Arrived,
    Lost,
    Stopped,
}

/// The link task of one direction: opens the link whenever its route is up, moves frames in
/// order, and closes it when the route changes.
async fn run_link(
    hub: Arc<Hub>,
    node: Arc<MemoryNode>,
    peer: Arc<PeerQueue>,
    stop: CancellationToken,
) {
    let mut changes = hub.changed.subscribe();
    // The route the link was opened on, and the link (`None` if the receiver would not have it).
    let mut open: Option<(Route, Option<InboundLink>)> = None;
    // The receiver's expectation: the number after the last frame or hint it was given.
    let mut told_next = 0u64;
    loop {
        changes.borrow_and_update();
        let route = hub.route(&node, &peer.node_id);
        if open.as_ref().map(|(route, _)| *route) != route.as_ref().map(|(route, ..)| *route) {
            if let Some((_, Some(link))) = open.take() {
                link.close().await;
            }
            if let Some((route, inbound, generation)) = route {
                let hello = peer.queue.lock().open(generation);
                let link = match inbound.open(node.identity.clone(), hello).await {
                    Ok(link) => {
                        told_next = hello.next_seq;
                        Some(link)
                    }
                    Err(OpenError::Refused(refusal)) => {
                        let reason = match refusal {
                            OpenRefusal::Stale { .. } => "stale_generation",
                            OpenRefusal::Backwards { .. } => "sequence",
                        };
                        stats::handshake_refused(&node.stats, reason);
                        None
                    }
                    Err(OpenError::Closed) => None,
                };
                peer.set_up(link.is_some());
                open = Some((route, link));
            } else {
                peer.set_up(false);
            }
        }
        if let Some((route, Some(link))) = &open {
            let popped = {
                let mut queue = peer.queue.lock();
                let popped = queue.pop();
                peer.meter.queue_bytes(queue.queued_bytes());
                popped
            };
            let broken = match popped {
                Some(queued) => {
                    let (seq, kind, wire_len) = (queued.seq, queued.kind, queued.wire_len());
                    match pass(&hub, &node, &peer.node_id, *route, &queued, &stop).await {
                        Passage::Stopped => break,
                        Passage::Lost => false,
                        Passage::Arrived => match link.frame(kind, seq, queued.payload).await {
                            Ok(()) => {
                                peer.meter.sent(&node.stats, kind, wire_len);
                                told_next = seq + 1;
                                false
                            }
                            Err(_) => true,
                        },
                    }
                }
                None => {
                    let next = peer.queue.lock().next_to_send();
                    if next == told_next {
                        wait(&stop, &peer, &mut changes).await;
                        if stop.is_cancelled() {
                            break;
                        }
                        continue;
                    }
                    // Numbers spent without reaching the receiver: tell it now.
                    told_next = next;
                    link.next_hint(next).await.is_err()
                }
            };
            if broken {
                // The receiver closed or replaced the link: wait for the route to change.
                if let Some((_, link)) = &mut open {
                    *link = None;
                }
                peer.set_up(false);
            }
            continue;
        }
        wait(&stop, &peer, &mut changes).await;
        if stop.is_cancelled() {
            break;
        }
    }
    peer.set_up(false);
    if let Some((_, Some(link))) = open.take() {
        link.close().await;
    }
}

async fn wait(stop: &CancellationToken, peer: &PeerQueue, changes: &mut watch::Receiver<u64>) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = peer.wake.notified() => {}
        _ = changes.changed() => {}
    }
}

/// Carries one frame across the network: waits out the delay, then loses it if the link broke
/// meanwhile or a drop applies.
async fn pass(
    hub: &Hub,
    node: &MemoryNode,
    to: &str,
    route: Route,
    queued: &Queued,
    stop: &CancellationToken,
) -> Passage {
    let delay = hub.delay_of(&node.identity.node_id, to);
    if let (false, Some(queued_at)) = (delay.is_zero(), queued.enqueued_at) {
        let deadline = tokio::time::Instant::from_std(queued_at + delay);
        tokio::select! {
            _ = stop.cancelled() => return Passage::Stopped,
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    if hub.route(node, to).map(|(current, ..)| current) != Some(route) {
        return Passage::Lost;
    }
    if hub.drops(&node.identity.node_id, to) {
        return Passage::Lost;
    }
    Passage::Arrived
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_direction_has_its_own_stable_seed() {
        assert_eq!(fnv1a("a", "b"), fnv1a("a", "b"));
        assert_ne!(fnv1a("a", "b"), fnv1a("b", "a"));
        assert_ne!(fnv1a("ab", ""), fnv1a("a", "b"));
    }
}
