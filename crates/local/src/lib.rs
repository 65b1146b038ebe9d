//! The datasync local stack.
//!
//! - [`emulator`]: the `datasync-emulator` crate, re-exported: an emulator of the OCI APIs the
//!   functions use (Streaming, Secrets and Vault, Notifications, Object Storage) on an embedded
//!   durable store, verifying request signatures as OCI does, so the same function code runs
//!   locally and in the cloud.
//! - [`data_dir`]: the lock that keeps one process per data directory; [`private_dir`]: the
//!   data directory owner-only, refused when others can write it.
//! - [`client`]: the emulator's minimal signed HTTP client (`datasync_emulator::client`),
//!   re-exported, used by tests, the benchmark and tools that need raw access.
//! - [`stack`]: the local stack `datasync up` runs (gateway, function host, connector pump).
//! - [`demo_target`]: a target API that records what it receives and fails on request.
//! - [`front`]: serving the gateway to clients that may be hostile (header timeout, connection
//!   cap, descriptor limit).
//! - `serve`: serving an axum router on TCP, for the demo target.
//! - [`target`]: a scripted target application on a real socket (status sequences, delays,
//!   resets, `Retry-After`), recording every request; for tests and the demo target.
#![warn(missing_docs)]

pub use datasync_emulator as emulator;
pub use datasync_emulator::client;
pub mod data_dir;
pub mod demo_target;
pub mod front;
pub mod private_dir;
mod serve;
pub mod stack;
pub mod target;

/// Before a 413, the gateway reads and drops a refused body as the emulator does (see
/// [`datasync_emulator::http::drain_refused_body`]).
use datasync_emulator::http::drain_refused_body;
