//! Unmodified third-party Discord libraries against a real node, changed only in their
//! base-URL settings: discord.js v14 (run by Node.js) and twilight (Rust). Both play the same
//! scenario ([`scenario`]) and the tests check what the library observed as well as what the
//! server stored.

// Test helpers panic on anything unexpected; that is how a test fails.
#![allow(clippy::unwrap_used)]

// Shared with the API suite; not every helper is used here.
#[allow(dead_code)]
#[path = "../api/support.rs"]
mod support;

mod scenario;

mod discordjs;
mod twilight;
