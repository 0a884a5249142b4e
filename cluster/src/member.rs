//! What a node tells the others about itself, and how it reads what they told it.
//!
//! Each node publishes a handful of key-values in its own chitchat state; gossip copies them to
//! every peer. The keys and their text forms are this module's contract: a node reads a peer's
//! values into a typed [`Member`], and a peer whose values are missing or do not parse is left
//! out of the view (the caller logs it once) rather than guessed at. Values are short text so
//! they stay readable in chitchat's own debugging output and cost few bytes per datagram.

use std::net::SocketAddr;

use chitchat::NodeState;
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use serde::{Deserialize, Serialize};

use crate::placement::Placeable;

/// The generation, decimal. Repeats chitchat's own `generation_id` so the value can be read
/// back from the key-values alone, and so a mismatch shows a confused peer.
pub(crate) const KEY_GENERATION: &str = "generation";
/// The inter-node (cluster) address, `ip:port`.
pub(crate) const KEY_CLUSTER_ADDR: &str = "cluster_addr";
/// The WebSocket URL this node's gateway listener answers at.
pub(crate) const KEY_GATEWAY_URL: &str = "gateway_url";
/// Where this node's REST API is reached.
pub(crate) const KEY_REST_ADDR: &str = "rest_addr";
/// [`MemberState`], lower case.
pub(crate) const KEY_STATE: &str = "state";
/// [`MemberLoad`] as a JSON object; unknown fields are ignored, so a later version may add some.
pub(crate) const KEY_LOAD: &str = "load";

/// Where a node is in its life, as it says itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Up, but not taking guilds yet (loading, connecting to its store).
    Joining,
    /// Takes guilds: placement counts it.
    Ready,
    /// Handing its guilds and sessions to others before it stops; placement no longer counts it.
    Draining,
    /// Said goodbye. Peers drop it at once instead of waiting for the failure detector.
    Left,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Joining => "joining",
            MemberState::Ready => "ready",
            MemberState::Draining => "draining",
            MemberState::Left => "left",
        }
    }

    pub fn parse(text: &str) -> Option<MemberState> {
        Some(match text {
            "joining" => MemberState::Joining,
            "ready" => MemberState::Ready,
            "draining" => MemberState::Draining,
            "left" => MemberState::Left,
            _ => return None,
        })
    }
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How busy a node is, as last published. Coarse on purpose: it is gossiped to every node, so
/// a node updates it every few seconds, not on each connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct MemberLoad {
    /// Guild actors running on the node.
    pub guild_actors: u64,
    /// Open gateway connections.
    pub connections: u64,
}

/// One node as the cluster sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    pub identity: NodeIdentity,
    /// The inter-node address: gossip (UDP) and, later, the cluster transport (TCP).
    pub cluster_addr: SocketAddr,
    /// The WebSocket URL of its gateway listener; clients sent to this node connect there.
    pub gateway_url: String,
    /// Where its REST API is reached, as the node gave it (`host:port` or a URL).
    pub rest_addr: String,
    pub state: MemberState,
    pub load: MemberLoad,
}

impl Member {
    pub fn node_id(&self) -> &str {
        &self.identity.node_id
    }

    pub fn is_ready(&self) -> bool {
        self.state == MemberState::Ready
    }

    /// The key-values that publish this member.
    pub(crate) fn key_values(&self) -> Vec<(String, String)> {
        vec![
            (KEY_GENERATION.into(), self.identity.generation.to_string()),
            (KEY_CLUSTER_ADDR.into(), self.cluster_addr.to_string()),
            (KEY_GATEWAY_URL.into(), self.gateway_url.clone()),
            (KEY_REST_ADDR.into(), self.rest_addr.clone()),
            (KEY_STATE.into(), self.state.as_str().into()),
            (KEY_LOAD.into(), load_text(&self.load)),
        ]
    }

    /// Reads a node's published values. `node_id` and `generation` are those of its chitchat
    /// id, which the values must agree with.
    pub(crate) fn from_node_state(
        node_id: &str,
        generation: u64,
        state: &NodeState,
    ) -> Result<Member, InvalidMember> {
        Member::from_key_values(node_id, generation, |key| state.get(key))
    }

    /// [`Member::from_node_state`] over any lookup of the values by key.
    pub(crate) fn from_key_values<'a>(
        node_id: &str,
        generation: u64,
        lookup: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Member, InvalidMember> {
        let get = |key: &'static str| lookup(key).ok_or(InvalidMember::Missing(key));
        let published: u64 = get(KEY_GENERATION)?
            .parse()
            .map_err(|_| InvalidMember::Unreadable(KEY_GENERATION))?;
        if published != generation {
            return Err(InvalidMember::GenerationMismatch {
                published,
                gossiped: generation,
            });
        }
        let cluster_addr = get(KEY_CLUSTER_ADDR)?
            .parse()
            .map_err(|_| InvalidMember::Unreadable(KEY_CLUSTER_ADDR))?;
        let gateway_url = non_empty(get(KEY_GATEWAY_URL)?, KEY_GATEWAY_URL)?;
        let rest_addr = non_empty(get(KEY_REST_ADDR)?, KEY_REST_ADDR)?;
        let member_state =
            MemberState::parse(get(KEY_STATE)?).ok_or(InvalidMember::Unreadable(KEY_STATE))?;
        let load = serde_json::from_str(get(KEY_LOAD)?)
            .map_err(|_| InvalidMember::Unreadable(KEY_LOAD))?;
        Ok(Member {
            identity: NodeIdentity::new(node_id, GenerationId(generation)),
            cluster_addr,
            gateway_url,
            rest_addr,
            state: member_state,
            load,
        })
    }
}

impl Placeable for Member {
    fn placement_id(&self) -> &str {
        self.node_id()
    }
}

fn non_empty(value: &str, key: &'static str) -> Result<String, InvalidMember> {
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(InvalidMember::Unreadable(key));
    }
    Ok(value.to_owned())
}

pub(crate) fn load_text(load: &MemberLoad) -> String {
    // Two integers cannot fail to serialize; the fallback keeps this total.
    serde_json::to_string(load).unwrap_or_else(|_| "{}".into())
}

/// Why a node's published values were not read as a member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMember {
    #[error("no {0:?} key")]
    Missing(&'static str),
    #[error("unreadable {0:?} value")]
    Unreadable(&'static str),
    #[error("published generation {published} but gossips as generation {gossiped}")]
    GenerationMismatch { published: u64, gossiped: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Member {
        Member {
            identity: NodeIdentity::new("node-1", GenerationId(1_700_000_000_000)),
            cluster_addr: "10.0.0.1:8082".parse().unwrap(),
            gateway_url: "ws://10.0.0.1:8081".into(),
            rest_addr: "10.0.0.1:8080".into(),
            state: MemberState::Ready,
            load: MemberLoad {
                guild_actors: 12,
                connections: 3_400,
            },
        }
    }

    fn read(generation: u64, key_values: &[(String, String)]) -> Result<Member, InvalidMember> {
        Member::from_key_values("node-1", generation, |key| {
            key_values
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        })
    }

    #[test]
    fn a_member_reads_back_what_it_published() {
        let m = member();
        assert_eq!(read(1_700_000_000_000, &m.key_values()), Ok(m));
    }

    #[test]
    fn a_missing_or_unreadable_key_is_named_not_guessed() {
        let m = member();
        for (key, bad) in [
            (KEY_GENERATION, "soon"),
            (KEY_CLUSTER_ADDR, "10.0.0.1"),
            (KEY_GATEWAY_URL, ""),
            (KEY_REST_ADDR, "two words"),
            (KEY_STATE, "sleeping"),
            (KEY_LOAD, r#"{"connections": -1}"#),
        ] {
            let mut kvs = m.key_values();
            for kv in &mut kvs {
                if kv.0 == key {
                    kv.1 = bad.into();
                }
            }
            let err = read(1_700_000_000_000, &kvs).unwrap_err();
            assert_eq!(err, InvalidMember::Unreadable(key), "{key}");
            kvs.retain(|kv| kv.0 != key);
            let err = read(1_700_000_000_000, &kvs).unwrap_err();
            assert_eq!(err, InvalidMember::Missing(key), "{key}");
        }
    }

    #[test]
    fn a_generation_that_disagrees_with_the_gossiped_one_is_refused() {
        assert_eq!(
            read(5, &member().key_values()),
            Err(InvalidMember::GenerationMismatch {
                published: 1_700_000_000_000,
                gossiped: 5
            })
        );
    }

    #[test]
    fn load_ignores_fields_it_does_not_know_and_defaults_those_it_lacks() {
        let load: MemberLoad =
            serde_json::from_str(r#"{"connections": 7, "voice_channels": 2}"#).unwrap();
        assert_eq!(
            load,
            MemberLoad {
                guild_actors: 0,
                connections: 7
            }
        );
        for state in [
            MemberState::Joining,
            MemberState::Ready,
            MemberState::Draining,
            MemberState::Left,
        ] {
            assert_eq!(MemberState::parse(state.as_str()), Some(state));
        }
    }
}
