//! Integration tests of the local stack's parts against the emulator in-process on
//! 127.0.0.1:0 (the emulator's own tests are in `crates/emulator/tests/it`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pump;
mod util;
