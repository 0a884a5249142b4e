//! The Enrichment domain, free of HTTP and sockets.
//!
//! - [`guild`]: guild actors, the single writers of their guilds;
//! - [`router`]: how commands reach a guild's actor ([`router::GuildRouter`]);
//! - [`events`]: what actors publish after each durable change;
//! - [`gateway`]: sessions, their registry and the per-connection gateway state machine;
//! - [`accounts`]: users, applications, bots and their authentication;
//! - [`auth`]: the cryptographic primitives behind authentication;
//! - [`users`]: the shared cache of public user objects.

pub mod accounts;
pub mod auth;
pub mod events;
pub mod gateway;
pub mod guild;
pub mod router;
pub mod users;
