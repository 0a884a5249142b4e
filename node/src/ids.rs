//! Who this node is, and which snowflake id pair it mints with.
//!
//! A node's identity is its `node_id` and the generation of this process
//! ([`GenerationId::now`](enrichment_protocol::node::GenerationId::now) at start), so a restarted node is a new holder of whatever it claims.
//!
//! On the embedded store the node is alone: it mints with the configured pair (`worker_id`,
//! `process_id`, 0 and 0 by default) and claims nothing. On a shared store (PostgreSQL,
//! ScyllaDB) it claims a pair through [`NodeStore`] before anything can mint: the configured
//! one when either id is set (a pair held by a live node stops start-up, naming the holder), or
//! any free one when neither is, which is the default. It renews the lease every third of
//! `id_lease_secs` in the background and releases it at `Node::stop`.
//!
//! # Fail-stop
//!
//! Once a lease has run out in the store, another node may claim the pair and mint the very
//! ids this node mints, so a node that cannot renew must stop minting before that can happen.
//! It counts its lease from the moment it *sent* its last successful claim or renewal: the
//! store set the expiry later than that, on its own clock, so the node's deadline is never
//! later than the store's, whatever the clocks say. Renewals that fail are retried; when none
//! has succeeded a sixth of the lease before that deadline (or the store answers that the
//! lease is gone), the pair is lost for good: an error is logged, `/readyz` answers 503, the
//! guild actors (which mint every message id) are stopped, and `Node::wait` returns an error so
//! the binary exits and its supervisor restarts it with a fresh claim. The message store's
//! refusal to create a message under an id it already holds is the second guard, for anything
//! minted between the deadline and the stop.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use enrichment_protocol::IdPair;
use enrichment_protocol::node::NodeIdentity;
use enrichment_storage::{IdClaim, IdLease, NodeStore};
use tokio::sync::watch;

use crate::config::{Config, StorageKind};

/// How long `Node::stop` waits for the store to take the release.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// This node's identity and the pair its generator mints with.
pub struct NodeIds {
    pub identity: NodeIdentity,
    pub pair: IdPair,
    /// The lease on `pair`, on a shared store.
    lease: Option<Lease>,
}

struct Lease {
    store: Arc<dyn NodeStore>,
    /// `Some(why)` once the lease is lost.
    lost: watch::Receiver<Option<String>>,
    keeper: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for NodeIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIds")
            .field("identity", &self.identity)
            .field("pair", &self.pair)
            .field("leased", &self.lease.is_some())
            .finish()
    }
}

impl NodeIds {
    /// The identity of a process starting now, and its pair: configured on the embedded store,
    /// claimed on a shared one (which also starts the renewals).
    pub async fn acquire(
        config: &Config,
        identity: NodeIdentity,
        store: Arc<dyn NodeStore>,
    ) -> anyhow::Result<NodeIds> {
        let wanted = config.wanted_id_pair();
        if config.storage == StorageKind::Embedded {
            let pair = wanted.unwrap_or_default();
            tracing::info!(node = %identity, %pair, "minting snowflakes with the configured id pair");
            return Ok(NodeIds {
                identity,
                pair,
                lease: None,
            });
        }
        let ttl = config.id_lease();
        let sent = Instant::now();
        let claim = store
            .claim_id_pair(&identity, wanted, ttl)
            .await
            .context("claiming a snowflake id pair in the store")?;
        let lease = match claim {
            IdClaim::Claimed(lease) => lease,
            IdClaim::Held(lease) => anyhow::bail!(
                "the snowflake id pair {} is held by node {} (generation {}) until {}: \
                 two nodes minting with one pair would hand out the same ids. Configure \
                 another pair for this node (worker_id / process_id, ENRICHMENT_WORKER_ID / \
                 ENRICHMENT_PROCESS_ID), or set neither to take any free pair, or stop that \
                 node; a pair whose node was killed is free once its lease (id_lease_secs) \
                 has run out",
                lease.pair,
                lease.holder.node_id,
                lease.holder.generation,
                lease.expires_at
            ),
            IdClaim::Exhausted => anyhow::bail!(
                "all {} snowflake id pairs are held by live nodes; stop a node, or wait for \
                 the leases of stopped ones to run out (id_lease_secs)",
                IdPair::COUNT
            ),
        };
        tracing::info!(
            node = %identity,
            pair = %lease.pair,
            expires_at = %lease.expires_at,
            "claimed a snowflake id pair"
        );
        let (lost_tx, lost) = watch::channel(None);
        let keeper = tokio::spawn(keep(
            store.clone(),
            identity.clone(),
            lease.clone(),
            ttl,
            sent + ttl,
            lost_tx,
        ));
        Ok(NodeIds {
            identity,
            pair: lease.pair,
            lease: Some(Lease {
                store,
                lost,
                keeper: Mutex::new(Some(keeper)),
            }),
        })
    }

    /// Tells when the lease is lost (never, on the embedded store).
    pub fn lost_signal(&self) -> LeaseLost {
        LeaseLost(self.lease.as_ref().map(|l| l.lost.clone()))
    }

    /// Stops renewing and frees the pair for other nodes (called once nothing mints any more).
    pub async fn release(&self) {
        if let Some(store) = self.stop_renewing() {
            release(store, self.identity.clone(), self.pair).await;
        }
    }

    /// Stops the renewals, once; the store to free the pair in when it is still this node's
    /// (not lost, not already released).
    fn stop_renewing(&self) -> Option<Arc<dyn NodeStore>> {
        let lease = self.lease.as_ref()?;
        let keeper = lease
            .keeper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        keeper.abort();
        lease.lost.borrow().is_none().then(|| lease.store.clone())
    }
}

/// A node that goes away without `Node::stop` (a failed start, a dropped test node) stops
/// renewing and releases its pair in the background, so the pair does not wait out its lease.
impl Drop for NodeIds {
    fn drop(&mut self) {
        if let Some(store) = self.stop_renewing()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(release(store, self.identity.clone(), self.pair));
        }
    }
}

/// Whether, and why, a node's lease was lost; cheap to clone.
#[derive(Clone, Debug)]
pub struct LeaseLost(Option<watch::Receiver<Option<String>>>);

impl LeaseLost {
    /// Why the lease was lost, once it was.
    pub fn now(&self) -> Option<String> {
        self.0.as_ref().and_then(|l| l.borrow().clone())
    }

    /// Resolves with the reason once the lease is lost; never on the embedded store, nor
    /// after the node released its pair.
    pub async fn wait(self) -> String {
        let Some(mut lost) = self.0 else {
            return std::future::pending().await;
        };
        let why = match lost.wait_for(Option::is_some).await {
            Ok(why) => why.clone(),
            // The keeper is gone: the pair was released.
            Err(_) => None,
        };
        match why {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }
}

async fn release(store: Arc<dyn NodeStore>, node: NodeIdentity, pair: IdPair) {
    let released = tokio::time::timeout(RELEASE_TIMEOUT, store.release_id_pair(&node, pair)).await;
    match released {
        Ok(Ok(true)) => tracing::info!(%pair, "released the snowflake id pair"),
        Ok(Ok(false)) => {
            tracing::warn!(%pair, "the snowflake id lease was already gone at release")
        }
        Ok(Err(e)) => tracing::warn!(
            %pair,
            error = %e,
            "cannot release the snowflake id pair; it frees itself when its lease runs out"
        ),
        Err(_) => tracing::warn!(
            %pair,
            "releasing the snowflake id pair timed out; it frees itself when its lease runs out"
        ),
    }
}

/// Renews `lease` every third of `ttl` until it is lost; see the module docs.
async fn keep(
    store: Arc<dyn NodeStore>,
    node: NodeIdentity,
    lease: IdLease,
    ttl: Duration,
    mut deadline: Instant,
    lost: watch::Sender<Option<String>>,
) {
    let pair = lease.pair;
    let every = ttl / 3;
    let retry = (ttl / 30).max(Duration::from_millis(100));
    let margin = ttl / 6;
    let mut next = Instant::now() + every;
    let why = loop {
        let give_up = deadline.checked_sub(margin).unwrap_or(deadline);
        tokio::time::sleep_until(next.min(give_up).into()).await;
        let sent = Instant::now();
        if sent >= give_up {
            break "no renewal succeeded before the lease could run out".to_owned();
        }
        let attempt =
            tokio::time::timeout(give_up - sent, store.renew_id_pair(&node, pair, ttl)).await;
        match attempt {
            Ok(Ok(Some(_))) => {
                deadline = sent + ttl;
                next = sent + every;
            }
            Ok(Ok(None)) => {
                break "the store no longer has this node holding the pair (it expired, or \
                       another node took it)"
                    .to_owned();
            }
            Ok(Err(e)) => {
                metrics::counter!("enrichment_id_lease_renew_failures_total").increment(1);
                tracing::warn!(%pair, error = %e, "renewing the snowflake id lease failed; retrying");
                next = Instant::now() + retry;
            }
            Err(_) => {
                metrics::counter!("enrichment_id_lease_renew_failures_total").increment(1);
                next = Instant::now();
            }
        }
    };
    tracing::error!(
        node = %node,
        %pair,
        reason = %why,
        "lost the snowflake id lease: this node stops minting ids and shuts down"
    );
    metrics::gauge!("enrichment_id_lease_lost").set(1.0);
    lost.send_replace(Some(format!("snowflake id lease on {pair} lost: {why}")));
}
