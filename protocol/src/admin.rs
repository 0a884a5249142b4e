//! The operators' admin API under `/admin/v1`: cluster status, the ring, draining a node.
//!
//! These routes are not part of Discord's API; they are authenticated with the cluster's admin
//! token (`Authorization: Bearer <token>`), never with a user or bot token. Errors use Discord's
//! body (`{"message": "401: Unauthorized", "code": 0}`). The node serves them and the SDK and
//! `enrichctl` read them, so both sides share these types.
//!
//! Every answer is shaped for a cluster of N nodes, even while a node runs alone.

use serde::{Deserialize, Serialize};

use crate::node::GenerationId;
use crate::{IdPair, Snowflake, Timestamp};

/// Path prefix of the admin API on every node's REST listener.
pub const ADMIN_PREFIX: &str = "/admin/v1";

/// Whether a node takes new work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// A cluster member that has not said it takes work yet.
    Joining,
    /// Serving REST and gateway connections.
    Healthy,
    /// Told its gateway clients to reconnect elsewhere and refuses new gateway connections;
    /// still answers REST until it stops.
    Draining,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Joining => "joining",
            NodeStatus::Healthy => "healthy",
            NodeStatus::Draining => "draining",
        }
    }
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node as `GET /admin/v1/cluster/status` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id (config `node_id`), used in `/cluster/nodes/{node_id}/...`.
    pub id: String,
    /// The address the REST listener is bound to (`host:port`).
    pub rest_address: String,
    /// The URL `GET /gateway` hands out for this node.
    pub gateway_url: String,
    pub status: NodeStatus,
    pub started_at: Timestamp,
    pub uptime_secs: u64,
    /// The node's software version.
    pub version: String,
    /// Open WebSocket connections on the gateway listener.
    pub gateway_connections: u64,
    /// Gateway sessions held by the node, attached or waiting to be resumed.
    pub sessions: u64,
    /// Guild actors running on the node.
    pub guild_actors: u64,
    /// The store the node runs on: `embedded`, `postgres` or `scylla`.
    #[serde(default)]
    pub storage: String,
    /// Where attachment bytes go: `fs` or `s3`.
    #[serde(default)]
    pub blobs: String,
    /// Cluster-wide sessions, presence and rate limits: `off` (kept in-process), `up`, or
    /// `down` (Redis is unreachable; the node runs on local state until it is back).
    #[serde(default)]
    pub shared_state: String,
    /// The generation of the node's process (its start time in Unix ms): a restarted node
    /// has a new one.
    #[serde(default)]
    pub generation: GenerationId,
    /// The snowflake worker and process ids the node mints with (held under a lease on a
    /// shared store).
    #[serde(default)]
    pub id_pair: IdPair,
}

/// `GET /admin/v1/keys` and the answer of `POST /admin/v1/keys/rotate`: the JWT signing
/// keys every node shares (never the key material).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeys {
    /// The key new tokens are signed with.
    pub current_kid: String,
    /// Every key that verifies, sorted.
    pub kids: Vec<String>,
}

/// `GET /admin/v1/cluster/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeInfo>,
}

/// A member of the hash ring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingNode {
    pub id: String,
    pub rest_address: String,
    pub gateway_url: String,
    pub status: NodeStatus,
}

/// `GET /admin/v1/cluster/ring[?guild_id=X]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterRing {
    /// Changes whenever ring membership changes; 0 while the node runs alone.
    pub epoch: u64,
    pub nodes: Vec<RingNode>,
    /// Present when the request named a guild: the node that owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<GuildOwner>,
}

/// The answer to "which node owns guild X".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuildOwner {
    pub guild_id: Snowflake,
    /// The node placement names for the guild over the ready members.
    pub node_id: String,
    /// Who holds the guild's lease in the store now, if anyone: the node that runs it. It
    /// differs from `node_id` while the guild moves, or before any work reached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<GuildLease>,
}

/// A guild's lease as the store records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuildLease {
    pub node_id: String,
    pub generation: GenerationId,
    /// Grows by one each time the guild changes hands.
    pub epoch: u64,
}

/// Query of `GET /admin/v1/cluster/ring`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_with_lowercase_states() {
        let status = ClusterStatus {
            nodes: vec![NodeInfo {
                id: "node-a".into(),
                rest_address: "127.0.0.1:8080".into(),
                gateway_url: "ws://127.0.0.1:8081".into(),
                status: NodeStatus::Draining,
                started_at: Timestamp::from_unix_ms(1_700_000_000_000),
                uptime_secs: 12,
                version: "0.1.0".into(),
                gateway_connections: 3,
                sessions: 4,
                guild_actors: 5,
                storage: "postgres".into(),
                blobs: "s3".into(),
                shared_state: "down".into(),
                generation: GenerationId(1_700_000_000_005),
                id_pair: IdPair::new(3, 7).unwrap(),
            }],
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["nodes"][0]["status"], "draining");
        assert_eq!(json["nodes"][0]["gateway_connections"], 3);
        assert_eq!(json["nodes"][0]["shared_state"], "down");
        assert_eq!(json["nodes"][0]["generation"], 1_700_000_000_005_u64);
        assert_eq!(
            json["nodes"][0]["id_pair"],
            serde_json::json!({"worker_id": 3, "process_id": 7})
        );
        let back: ClusterStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn ring_owner_is_omitted_unless_asked() {
        let ring = ClusterRing {
            epoch: 0,
            nodes: Vec::new(),
            owner: None,
        };
        let json = serde_json::to_string(&ring).unwrap();
        assert_eq!(json, r#"{"epoch":0,"nodes":[]}"#);
        let ring = ClusterRing {
            owner: Some(GuildOwner {
                guild_id: Snowflake(42),
                node_id: "n1".into(),
                lease: None,
            }),
            ..ring
        };
        let json = serde_json::to_value(&ring).unwrap();
        assert_eq!(json["owner"]["guild_id"], "42");
    }
}
