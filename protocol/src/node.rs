//! Who a node is: its configured name and the generation of the process running under it.
//!
//! A node id names a place in the cluster (`node-3`, a pod name); it survives restarts. The
//! generation tells two lives of the same node id apart, so a record left by a crashed process
//! (an id lease, a session location, a presence) is never mistaken for one written by its
//! successor. As in Quickwit, the generation is the start time in milliseconds since the Unix
//! epoch: a restart always gets a larger one unless the clock ran backwards.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The generation of one process of a node: its start time, Unix milliseconds.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct GenerationId(pub u64);

impl GenerationId {
    /// The generation of a process starting now.
    pub fn now() -> GenerationId {
        GenerationId(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        )
    }
}

impl std::fmt::Display for GenerationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A node id together with the generation of the process that holds it now.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// The configured (or generated) node id: letters, digits, `-`, `_`, `.`, at most 64.
    pub node_id: String,
    pub generation: GenerationId,
}

impl NodeIdentity {
    pub fn new(node_id: impl Into<String>, generation: GenerationId) -> NodeIdentity {
        NodeIdentity {
            node_id: node_id.into(),
            generation,
        }
    }
}

impl std::fmt::Display for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (generation {})", self.node_id, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_start_has_a_larger_generation_and_the_identity_reads_plainly() {
        let a = GenerationId::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = GenerationId::now();
        assert!(b > a);
        let n = NodeIdentity::new("node-1", GenerationId(42));
        assert_eq!(n.to_string(), "node-1 (generation 42)");
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"node_id": "node-1", "generation": 42})
        );
        assert_ne!(n, NodeIdentity::new("node-1", GenerationId(43)));
    }
}
