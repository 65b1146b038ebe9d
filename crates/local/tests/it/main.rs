//! Integration tests of the local stack's parts against the emulator in-process on
//! 127.0.0.1:0 (the emulator's own tests are in `crates/emulator/tests/it`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pump;
// The emulator's own test helpers (a running emulator per test, signed calls), shared rather
// than copied; the pump tests use a few of them.
#[allow(dead_code)]
#[path = "../../../emulator/tests/it/util.rs"]
mod util;
