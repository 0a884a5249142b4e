//! Rust SDK for Enrichment, and for any server speaking Discord API v10.
//!
//! - [`Client`]: typed REST calls (one method per route), rate limits handled the way
//!   Discord documents them (buckets from headers, 429 waits, a global limit), retries with
//!   jittered backoff for idempotent calls, and [`Error`]s carrying the server's code.
//! - [`gateway::Gateway`]: a WebSocket session that heartbeats, detects dead connections,
//!   resumes after drops without losing events, and yields typed [`gateway::Event`]s.
//! - [`cache::Cache`]: an optional cache of guilds, channels and members fed by events.
//! - [`admin::AdminClient`]: the operators' admin API (`/admin/v1`: cluster status, the ring,
//!   draining a node), opened with the admin token through [`Client::admin`].
//!
//! ```no_run
//! use enrichment_client::{Client, Token};
//! use enrichment_client::gateway::{Event, Gateway, GatewayOptions};
//! use enrichment_client::protocol::gateway::intents;
//!
//! # async fn run() -> enrichment_client::Result<()> {
//! let client = Client::builder("http://127.0.0.1:8080")
//!     .token(Token::Bot("my-bot-token".into()))
//!     .build()?;
//! let options = GatewayOptions {
//!     intents: intents::GUILDS | intents::GUILD_MESSAGES | intents::MESSAGE_CONTENT,
//!     ..GatewayOptions::default()
//! };
//! let mut gateway = Gateway::connect(&client, options).await?;
//! while let Some(event) = gateway.next_event().await {
//!     if let Event::MessageCreate(m) = event? {
//!         println!("{}: {}", m.author.username, m.content);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod admin;
mod api;
pub mod cache;
mod client;
mod error;
pub mod gateway;
mod ratelimit;

pub use api::{AuthorizeQuery, AuthorizeResponse};
pub use client::{Client, ClientBuilder, RetryPolicy, Token};
pub use enrichment_protocol as protocol;
pub use error::{Error, Result};
pub use ratelimit::RateLimitStats;
