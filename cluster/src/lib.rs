//! The cluster side of a node: how nodes find each other, which node owns which guild, and how
//! they talk.
//!
//! - [`transport`]: one authenticated TCP link per ordered pair of nodes, carrying numbered
//!   frames (MessagePack control messages and pre-encoded fanout bytes), behind the
//!   [`transport::ClusterTransport`] trait, with an in-memory network for tests.

pub mod transport;
