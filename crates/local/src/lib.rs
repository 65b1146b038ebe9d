//! The datasync local stack.
//!
//! - [`emulator`]: an emulator of the OCI APIs the functions use (Streaming, Secrets and Vault,
//!   Notifications, Object Storage) on an embedded durable store, verifying request signatures
//!   as OCI does, so the same function code runs locally and in the cloud.
//! - [`client`]: a minimal signed HTTP client for the emulator, used by tests, the benchmark and
//!   tools that need raw access.
//! - [`stack`]: the local stack `datasync up` runs (gateway, function host, connector pump).
//! - [`demo_target`]: a target API that records what it receives and fails on request.
//! - [`target`]: a scripted target application on a real socket (status sequences, delays,
//!   resets, `Retry-After`), recording every request; for tests and the demo target.
#![warn(missing_docs)]

pub mod client;
pub mod demo_target;
pub mod emulator;
pub mod stack;
pub mod target;
