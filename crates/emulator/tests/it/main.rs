//! Integration tests: the emulator in-process on 127.0.0.1:0, driven by signed HTTP requests
//! (the signer of `datasync-core`), by the core clients, and by the official OCI Python SDK.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod core_clients;
mod objects;
mod parked;
mod parsing;
mod python_sdk;
mod secrets;
mod streaming;
mod topics;
mod util;
