//! FDK integration tests: the echo example run as a child process over a real Unix socket
//! (as the Fn agent runs a function), plus in-process `serve` tests.
//!
//! The echo binary is built by `cargo test -p datasync-fdk` (examples are always built by
//! `cargo test`); see `utils::echo_binary`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract;
mod lifecycle;
mod serve;
mod utils;
