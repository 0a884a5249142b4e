//! Integration tests: real nodes on ephemeral ports, driven over HTTP.

// Test helpers panic on anything unexpected; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod gw;
mod support;

mod admin;
mod attachments;
mod audit_log;
mod auth;
mod bad_input;
mod cluster;
mod emojis;
mod fanout_order;
mod gateway;
mod gateway_events;
mod gateway_limits;
mod guilds;
mod id_leases;
mod isolation;
mod limits;
mod messages;
mod ops;
mod permissions;
mod private;
mod process;
mod ratelimits;
mod restart;
mod shared_state;
mod webhooks;
