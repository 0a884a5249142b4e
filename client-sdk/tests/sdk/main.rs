//! The SDK against real nodes started in-process on ephemeral loopback ports.

mod admin;
mod gateway;
mod ratelimit;
mod rest;
mod support;
