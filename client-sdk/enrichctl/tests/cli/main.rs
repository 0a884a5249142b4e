//! The `enrichctl` binary against real nodes started in-process on ephemeral ports.

// Test helpers panic on anything unexpected; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod support;

mod cluster;
mod errors;
mod flows;
