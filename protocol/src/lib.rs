//! Wire types for Enrichment: the Discord API v10 vocabulary, with no I/O.
//!
//! Shared by the node, the client SDK and the load harness so that all of them agree on every
//! byte. Contents:
//! - [`snowflake`]: ids and their generator;
//! - [`time`]: ISO8601 timestamps in Discord's exact format;
//! - [`permissions`]: the bitfield and Discord's computation order;
//! - [`models`]: users, guilds, channels, roles, members, messages, invites, applications;
//! - [`gateway`]: gateway opcodes, close codes, payloads and frame codecs (JSON, MessagePack,
//!   zlib-stream, zstd-stream);
//! - [`rest`]: request/response bodies and their validation limits;
//! - [`error`]: the `{code, message, errors}` body and the codes we send;
//! - [`admin`]: the operators' admin API (`/admin/v1`): cluster status, ring, drain;
//! - [`node`]: a node's identity (its id and the generation of its process).

pub mod admin;
#[cfg(feature = "arbitrary")]
pub mod arbitrary;
pub mod error;
pub mod gateway;
pub mod models;
pub mod node;
pub mod permissions;
pub mod rest;
pub mod snowflake;
pub mod time;

pub use error::{ApiError, ErrorBody, ErrorCode, FormErrors};
pub use permissions::Permissions;
pub use snowflake::{IdPair, Snowflake, SnowflakeGenerator};
pub use time::Timestamp;
