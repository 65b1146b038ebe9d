//! Integration tests of datasync-core, one binary (STYLE.md, tier 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod clients;
mod metrics;
mod properties;
mod server;
mod signer;
mod target;
