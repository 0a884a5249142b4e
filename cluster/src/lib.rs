//! The cluster: which nodes are members, and which node should run each guild.
//!
//! - [`gossip_auth`]: chitchat's gossip transport with each datagram signed by the cluster
//!   secret;
//! - [`placement`]: rendezvous hashing of guilds over the ready members, the same on every
//!   node;
//! - [`config`]: the `[cluster]` section of a node's configuration.

pub mod config;
pub mod gossip_auth;
pub mod placement;

pub use config::{ClusterConfig, ClusterSecret, ConfigError};
pub use gossip_auth::RejectedDatagrams;
