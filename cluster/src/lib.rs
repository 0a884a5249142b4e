//! The cluster: which nodes are members, which node should run each guild, and how nodes
//! talk to each other.
//!
//! - [`membership`]: gossip membership over chitchat, each datagram signed with the cluster
//!   secret ([`gossip_auth`]); each node publishes who it is, where it is reached, its state and
//!   its load, and follows the others as a [`ClusterView`];
//! - [`placement`]: rendezvous hashing of guilds over the ready members, the same on every
//!   node;
//! - [`transport`]: one authenticated TCP link per ordered pair of nodes, carrying numbered
//!   frames (MessagePack control messages and pre-encoded fanout bytes), behind the
//!   [`transport::ClusterTransport`] trait, with an in-memory network for tests;
//! - [`routing`]: the node's `GuildRouter` in a cluster: guild work goes to the guild's owner
//!   (placement, made single by the guild's lease in the store), and its events come back to
//!   sessions on every node;
//! - [`config`]: the `[cluster]` section of a node's configuration.
//!
//! Per-node fanout batches and the handoff of guilds when membership changes build on these
//! and are not here yet.

pub mod config;
pub mod gossip_auth;
pub mod member;
pub mod membership;
pub mod placement;
pub mod routing;
pub mod transport;
pub mod view;

pub use config::{ClusterConfig, ClusterSecret, ConfigError};
pub use gossip_auth::RejectedDatagrams;
pub use member::{Member, MemberLoad, MemberState};
pub use membership::{ClusterError, LocalNode, Membership};
pub use view::ClusterView;
