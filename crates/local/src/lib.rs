//! The datasync local stack.
//!
//! - [`emulator`]: an emulator of the OCI APIs the functions use (Streaming, Secrets and Vault,
//!   Notifications, Object Storage) on an embedded durable store, verifying request signatures
//!   as OCI does, so the same function code runs locally and in the cloud.
//! - [`data_dir`]: the lock that keeps one process per data directory.
//! - [`client`]: a minimal signed HTTP client for the emulator, used by tests, the benchmark and
//!   tools that need raw access.
//! - [`stack`]: the local stack `datasync up` runs (gateway, function host, connector pump).
//! - [`demo_target`]: a target API that records what it receives and fails on request.
//! - [`target`]: a scripted target application on a real socket (status sequences, delays,
//!   resets, `Retry-After`), recording every request; for tests and the demo target.
#![warn(missing_docs)]

pub mod client;
pub mod data_dir;
pub mod demo_target;
pub mod emulator;
pub mod stack;
pub mod target;

/// The largest over-limit request body a server here reads (and drops) before answering 413.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// Reads and drops `body` when its declared length `declared` is at most 16 MiB, before a
/// server answers 413 to it. Closing a connection with unread data resets it, so a client
/// still sending would see the reset instead of the 413; a larger body is not read, and its
/// connection closes.
async fn drain_refused_body(body: axum::body::Body, declared: u64) {
    if declared > DRAIN_LIMIT {
        return;
    }
    let mut body = body;
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        if frame.is_err() {
            break;
        }
    }
}
