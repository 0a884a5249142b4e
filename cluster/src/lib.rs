//! The cluster: which nodes are members, and which node should run each guild.
//!
//! - [`config`]: the `[cluster]` section of a node's configuration.

pub mod config;

pub use config::{ClusterConfig, ClusterSecret, ConfigError};
