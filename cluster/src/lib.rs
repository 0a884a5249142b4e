//! The cluster: which nodes are members, and which node should run each guild.
//!
//! - [`placement`]: rendezvous hashing of guilds over the ready members, the same on every
//!   node;
//! - [`config`]: the `[cluster]` section of a node's configuration.

pub mod config;
pub mod placement;

pub use config::{ClusterConfig, ClusterSecret, ConfigError};
