//! The `[cluster]` section of a node's configuration: where gossip listens, how peers reach
//! this node, whom it asks first, the shared secret, and the timings of gossip and failure
//! detection.
//!
//! The struct is written to be embedded as one section of the node's config and loaded the
//! same way (defaults, file, `ENRICHMENT_CLUSTER_*` variables): every field has a default, so
//! the serialized defaults list every key, and unknown keys are an error. Durations are whole
//! numbers in the unit their key names (`gossip_interval_ms`, `dead_after_secs`).
//! [`ClusterConfig::validate`] checks the values; [`crate::Membership::join`] runs it again.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_with::{As, DurationMilliSeconds, DurationSeconds};

/// Fewest bytes a cluster secret may have: an HMAC key shorter than this is guessable.
pub const MIN_SECRET_BYTES: usize = 16;

/// Most bytes a cluster id may have; it travels in every gossip SYN.
pub const MAX_CLUSTER_ID_BYTES: usize = 64;

/// How many gossip rounds `dead_after` must span at least. With fewer, one late datagram
/// would be enough to declare a healthy node dead (see [`crate::membership`] for how the
/// failure detector is derived from the two values).
pub const MIN_ROUNDS_BEFORE_DEAD: u32 = 3;

/// Membership of a cluster of nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Whether this node joins a cluster at all. A single node leaves it off.
    pub enabled: bool,
    /// Where gossip listens (UDP). The inter-node transport will use the same address (TCP).
    pub listen: SocketAddr,
    /// The address peers reach this node at; `listen` when unset. Never `0.0.0.0` or `::`.
    pub advertise: Option<SocketAddr>,
    /// Nodes to gossip with first, `host:port`. Host names are resolved again every minute,
    /// so a headless service that lists the pods works as a seed.
    pub seeds: Vec<String>,
    /// Shared by every node of the cluster; authenticates each gossip datagram. At least
    /// [`MIN_SECRET_BYTES`] bytes; required when `enabled`.
    pub secret: Option<ClusterSecret>,
    /// Names the cluster: nodes with another id ignore this one even with the same secret.
    /// Not a secret.
    pub cluster_id: String,
    /// How often a node gossips with a few peers.
    #[serde(
        rename = "gossip_interval_ms",
        with = "As::<DurationMilliSeconds<u64>>"
    )]
    pub gossip_interval: Duration,
    /// How long after a node stops answering the others report it dead.
    #[serde(rename = "dead_after_secs", with = "As::<DurationSeconds<u64>>")]
    pub dead_after: Duration,
    /// How far a datagram's timestamp may be from the receiver's clock, either way. Bounds
    /// how long a captured datagram can be replayed, and is the clock skew nodes tolerate.
    #[serde(rename = "replay_window_secs", with = "As::<DurationSeconds<u64>>")]
    pub replay_window: Duration,
    /// Bytes that may wait to be sent to one peer (the transport's queue cap). Past it, frames
    /// to that peer are refused; the peer sees the gap and the guilds between the two nodes
    /// resync. At least [`MIN_LINK_QUEUE_BYTES`], and more than the largest frame a node sends
    /// (a large guild's GUILD_CREATE for a session elsewhere), or that frame never goes out.
    pub link_queue_bytes: usize,
    /// How long a draining node, once it has asked its clients to reconnect, keeps their
    /// sessions for other nodes to take over on RESUME before it stops.
    #[serde(rename = "session_handover_secs", with = "As::<DurationSeconds<u64>>")]
    pub session_handover: Duration,
}

/// The smallest `link_queue_bytes` accepted.
pub const MIN_LINK_QUEUE_BYTES: usize = 64 * 1024;

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            // Beside the REST (8080) and gateway (8081) defaults, on loopback like them.
            listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            advertise: None,
            seeds: Vec::new(),
            secret: None,
            cluster_id: "enrichment".into(),
            gossip_interval: Duration::from_millis(500),
            dead_after: Duration::from_secs(5),
            replay_window: Duration::from_secs(60),
            link_queue_bytes: 64 * 1024 * 1024,
            session_handover: Duration::from_secs(10),
        }
    }
}

impl ClusterConfig {
    /// Checks every value. The secret is required only when `enabled`; the other keys are
    /// checked either way, so a mistake shows before the cluster is turned on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(advertise) = self.advertise {
            if advertise.ip().is_unspecified() || advertise.port() == 0 {
                return Err(ConfigError::Advertise { addr: advertise });
            }
        } else if self.listen.ip().is_unspecified() {
            return Err(ConfigError::UnspecifiedListen { addr: self.listen });
        }
        for seed in &self.seeds {
            if !valid_seed(seed) {
                return Err(ConfigError::Seed { seed: seed.clone() });
            }
        }
        match &self.secret {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(ConfigError::ShortSecret { len: secret.len() });
            }
            None if self.enabled => return Err(ConfigError::MissingSecret),
            _ => {}
        }
        if self.cluster_id.is_empty()
            || self.cluster_id.len() > MAX_CLUSTER_ID_BYTES
            || !self.cluster_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError::ClusterId);
        }
        if self.gossip_interval.is_zero() {
            return Err(ConfigError::GossipInterval);
        }
        if self.dead_after < self.gossip_interval * MIN_ROUNDS_BEFORE_DEAD {
            return Err(ConfigError::DeadAfter {
                dead_after: self.dead_after,
                gossip_interval: self.gossip_interval,
            });
        }
        if self.replay_window < Duration::from_secs(1) {
            return Err(ConfigError::ReplayWindow);
        }
        if self.link_queue_bytes < MIN_LINK_QUEUE_BYTES {
            return Err(ConfigError::LinkQueueBytes {
                bytes: self.link_queue_bytes,
            });
        }
        Ok(())
    }
}

/// `host:port` with a non-empty host and a numeric port.
fn valid_seed(seed: &str) -> bool {
    seed.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok()
    })
}

/// A value of `[cluster]` that cannot work, named with its key and environment variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "cluster.listen (ENRICHMENT_CLUSTER_LISTEN) is {addr}, which peers cannot dial: set \
         cluster.advertise (ENRICHMENT_CLUSTER_ADVERTISE) to the address they reach this node at"
    )]
    UnspecifiedListen { addr: SocketAddr },
    #[error(
        "cluster.advertise (ENRICHMENT_CLUSTER_ADVERTISE) is {addr}: it must be an address \
         peers can dial, not 0.0.0.0, :: or port 0"
    )]
    Advertise { addr: SocketAddr },
    #[error("cluster.seeds (ENRICHMENT_CLUSTER_SEEDS): {seed:?} is not host:port")]
    Seed { seed: String },
    #[error(
        "cluster.enabled needs cluster.secret (ENRICHMENT_CLUSTER_SECRET), the same on every \
         node, at least {MIN_SECRET_BYTES} bytes"
    )]
    MissingSecret,
    #[error(
        "cluster.secret (ENRICHMENT_CLUSTER_SECRET) has {len} bytes; it needs at least \
         {MIN_SECRET_BYTES}"
    )]
    ShortSecret { len: usize },
    #[error(
        "cluster.cluster_id (ENRICHMENT_CLUSTER_CLUSTER_ID) must be 1 to {MAX_CLUSTER_ID_BYTES} \
         printable characters without spaces"
    )]
    ClusterId,
    #[error("cluster.gossip_interval_ms (ENRICHMENT_CLUSTER_GOSSIP_INTERVAL_MS) must be positive")]
    GossipInterval,
    #[error(
        "cluster.dead_after_secs (ENRICHMENT_CLUSTER_DEAD_AFTER_SECS) is {dead_after:?}; it must \
         span at least {MIN_ROUNDS_BEFORE_DEAD} gossip intervals ({gossip_interval:?} each)"
    )]
    DeadAfter {
        dead_after: Duration,
        gossip_interval: Duration,
    },
    #[error(
        "cluster.replay_window_secs (ENRICHMENT_CLUSTER_REPLAY_WINDOW_SECS) must be at least 1"
    )]
    ReplayWindow,
    #[error(
        "cluster.link_queue_bytes (ENRICHMENT_CLUSTER_LINK_QUEUE_BYTES) is {bytes}; it must be \
         at least {MIN_LINK_QUEUE_BYTES}"
    )]
    LinkQueueBytes { bytes: usize },
}

/// The cluster's shared secret. Never printed: `Debug` shows `ClusterSecret(..)`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClusterSecret(String);

impl ClusterSecret {
    pub fn new(value: impl Into<String>) -> ClusterSecret {
        ClusterSecret(value.into())
    }

    /// The key bytes, for the HMAC and nothing else.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> ClusterConfig {
        ClusterConfig {
            enabled: true,
            secret: Some(ClusterSecret::new("0123456789abcdef")),
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn the_defaults_are_valid_while_the_cluster_is_off() {
        assert_eq!(ClusterConfig::default().validate(), Ok(()));
        assert_eq!(enabled().validate(), Ok(()));
    }

    #[test]
    fn an_enabled_cluster_needs_a_secret_of_sixteen_bytes() {
        let mut c = enabled();
        c.secret = None;
        assert_eq!(c.validate(), Err(ConfigError::MissingSecret));
        c.secret = Some(ClusterSecret::new("too short"));
        assert_eq!(c.validate(), Err(ConfigError::ShortSecret { len: 9 }));
        c.enabled = false;
        assert_eq!(
            c.validate(),
            Err(ConfigError::ShortSecret { len: 9 }),
            "a short secret is wrong even before the cluster is turned on"
        );
    }

    #[test]
    fn an_unspecified_address_is_never_advertised() {
        let mut c = enabled();
        c.listen = "0.0.0.0:8082".parse().unwrap();
        let err = c.validate().unwrap_err();
        assert!(matches!(err, ConfigError::UnspecifiedListen { .. }));
        assert!(err.to_string().contains("ENRICHMENT_CLUSTER_ADVERTISE"));
        c.advertise = Some("10.0.0.7:8082".parse().unwrap());
        assert_eq!(c.validate(), Ok(()));
        c.advertise = Some("[::]:8082".parse().unwrap());
        assert!(matches!(c.validate(), Err(ConfigError::Advertise { .. })));
        c.advertise = Some("10.0.0.7:0".parse().unwrap());
        assert!(matches!(c.validate(), Err(ConfigError::Advertise { .. })));
    }

    #[test]
    fn seeds_are_host_and_port() {
        let mut c = enabled();
        c.seeds = vec![
            "10.0.0.1:8082".into(),
            "enrichment-0.enrichment:8082".into(),
            "[::1]:8082".into(),
        ];
        assert_eq!(c.validate(), Ok(()));
        for bad in ["node-1", ":8082", "node-1:http", "node-1:70000"] {
            c.seeds = vec![bad.into()];
            assert_eq!(
                c.validate(),
                Err(ConfigError::Seed { seed: bad.into() }),
                "{bad}"
            );
        }
    }

    #[test]
    fn dead_after_spans_at_least_three_gossip_rounds() {
        let mut c = enabled();
        c.gossip_interval = Duration::from_secs(2);
        c.dead_after = Duration::from_secs(5);
        assert!(matches!(c.validate(), Err(ConfigError::DeadAfter { .. })));
        c.dead_after = Duration::from_secs(6);
        assert_eq!(c.validate(), Ok(()));
        c.gossip_interval = Duration::ZERO;
        assert_eq!(c.validate(), Err(ConfigError::GossipInterval));
    }

    #[test]
    fn the_cluster_id_and_the_replay_window_are_checked() {
        let mut c = enabled();
        c.cluster_id = "two words".into();
        assert_eq!(c.validate(), Err(ConfigError::ClusterId));
        c.cluster_id = String::new();
        assert_eq!(c.validate(), Err(ConfigError::ClusterId));
        c = enabled();
        c.replay_window = Duration::ZERO;
        assert_eq!(c.validate(), Err(ConfigError::ReplayWindow));
        c = enabled();
        c.link_queue_bytes = MIN_LINK_QUEUE_BYTES - 1;
        assert_eq!(
            c.validate(),
            Err(ConfigError::LinkQueueBytes {
                bytes: MIN_LINK_QUEUE_BYTES - 1
            })
        );
        c.link_queue_bytes = MIN_LINK_QUEUE_BYTES;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let c = enabled();
        let printed = format!("{c:?}");
        assert!(printed.contains("ClusterSecret(..)"));
        assert!(!printed.contains("0123456789abcdef"));
    }

    #[test]
    fn the_section_reads_durations_in_the_units_its_keys_name_and_refuses_unknown_keys() {
        let c: ClusterConfig = serde_json::from_value(serde_json::json!({
            "enabled": true,
            "listen": "127.0.0.1:9000",
            "seeds": ["127.0.0.1:9001"],
            "secret": "0123456789abcdef",
            "gossip_interval_ms": 250,
            "dead_after_secs": 3,
        }))
        .unwrap();
        assert_eq!(c.gossip_interval, Duration::from_millis(250));
        assert_eq!(c.dead_after, Duration::from_secs(3));
        assert_eq!(c.replay_window, Duration::from_secs(60));
        assert_eq!(c.cluster_id, "enrichment");
        assert_eq!(c.validate(), Ok(()));

        let defaults = serde_json::to_value(ClusterConfig::default()).unwrap();
        let keys: Vec<&str> = defaults
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "enabled",
            "listen",
            "advertise",
            "seeds",
            "secret",
            "cluster_id",
            "gossip_interval_ms",
            "dead_after_secs",
            "replay_window_secs",
            "link_queue_bytes",
            "session_handover_secs",
        ] {
            assert!(keys.contains(&key), "{key} is missing from {keys:?}");
        }

        let typo = serde_json::from_value::<ClusterConfig>(serde_json::json!({"sceds": []}));
        assert!(typo.is_err());
    }
}
