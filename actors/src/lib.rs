//! The Enrichment domain, free of HTTP and sockets.
pub mod auth;
