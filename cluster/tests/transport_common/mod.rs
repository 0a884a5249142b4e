//! What the transport tests share: identities, a fast configuration, and the check every
//! receiver's view must pass.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use enrichment_cluster::transport::{Inbound, LinkSecret, TransportConfig};
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use tokio::sync::mpsc;

/// The longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn secret() -> LinkSecret {
    LinkSecret::new(b"a cluster secret of some length".to_vec()).unwrap()
}

pub fn node(id: &str, generation: u64) -> NodeIdentity {
    NodeIdentity::new(id, GenerationId(generation))
}

/// The defaults, with redials fast enough for tests.
pub fn fast() -> TransportConfig {
    TransportConfig {
        reconnect_min: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(50),
        ..TransportConfig::default()
    }
}

/// The next event, or a failure if none comes within [`WAIT`].
pub async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no event in time")
        .expect("the inbound channel closed")
}

/// What one receiver saw of one sender node id, checked event by event: frames in increasing
/// order, each either the expected number or right after a gap that reports the missing ones.
#[derive(Debug)]
pub struct StreamCheck {
    sender: String,
    /// The number the next frame or gap must start at; `None` until the first one if unknown.
    next: Option<u64>,
    pub delivered: Vec<u64>,
    pub gaps: Vec<(u64, u64)>,
    pub ups: usize,
    pub downs: usize,
    pub restarts: usize,
}

impl StreamCheck {
    /// A receiver that expects the stream to start at `first` (`None`: anywhere).
    pub fn new(sender: &str, first: Option<u64>) -> StreamCheck {
        StreamCheck {
            sender: sender.to_owned(),
            next: first,
            delivered: Vec::new(),
            gaps: Vec::new(),
            ups: 0,
            downs: 0,
            restarts: 0,
        }
    }

    /// Takes one event; panics if it breaks the promise. Events of other senders are ignored.
    pub fn observe(&mut self, event: &Inbound) {
        match event {
            Inbound::Frame { from, seq, .. } if from.node_id == self.sender => {
                if let Some(next) = self.next {
                    assert_eq!(
                        *seq, next,
                        "frame {seq} from {from} where {next} was due: a silent hole or a reorder"
                    );
                }
                self.delivered.push(*seq);
                self.next = Some(seq + 1);
            }
            Inbound::Gap {
                from,
                expected,
                got,
            } if from.node_id == self.sender => {
                if let Some(next) = self.next {
                    assert_eq!(*expected, next, "gap from {expected} where {next} was due");
                }
                assert!(got > expected, "an empty or backward gap {expected}..{got}");
                self.gaps.push((*expected, *got));
                self.next = Some(*got);
            }
            Inbound::PeerUp { peer } if peer.node_id == self.sender => self.ups += 1,
            Inbound::PeerDown { peer } if peer.node_id == self.sender => self.downs += 1,
            Inbound::PeerRestarted { peer, .. } if peer.node_id == self.sender => {
                // A new process numbers from 0; anything it lost before reaching us is a gap.
                self.restarts += 1;
                self.next = Some(0);
            }
            _ => {}
        }
    }

    /// Whether `seq` was delivered or reported missing.
    pub fn accounted_for(&self, seq: u64) -> bool {
        self.delivered.contains(&seq)
            || self
                .gaps
                .iter()
                .any(|&(from, to)| (from..to).contains(&seq))
    }

    /// The number the stream is at.
    pub fn position(&self) -> Option<u64> {
        self.next
    }

    pub fn missed(&self) -> u64 {
        self.gaps.iter().map(|(from, to)| to - from).sum()
    }
}
