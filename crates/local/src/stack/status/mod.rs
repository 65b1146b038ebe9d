//! The status page: `GET /status` (JSON, the [`Status`] document) and `GET /` (the same as a
//! self-contained HTML page, no external assets): streams with depth, and each consumer's lag
//! and the age of the oldest message it has not consumed; deliveries per second, failures by
//! class, recent notifications, archived objects.
//!
//! The page answers without a key, so it shows what a notification is about (the dead-lettered
//! message's id and why it failed), never its body: a dead-letter notification carries the
//! whole message, payload and custom headers included.
//!
//! - [`document`]: the [`Status`] type, the contract with `datasync status` and the benchmark.
//! - `collect`: reads the emulator, the connectors, the gateway and the pools into a [`Status`].
//! - `page`: the HTML page.

mod collect;
pub mod document;
mod page;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use document::{
    Consumer, FailureCount, FunctionStatus, GatewayCounts, NotificationSummary, Notifications,
    NotifiedMessage, ProcessStatus, Reader, RouteCounts, Status, StorageStatus, StreamStatus,
};
pub use page::{age_text, breaker_text, html};

use super::gateway::{GatewayStats, PageFormat, StatusFn};
use super::host::Pool;
use super::pump::Connector;
use crate::client::SignedClient;
use crate::demo_target::DemoTarget;
use crate::emulator::Emulator;

/// What the status page reads.
pub struct Sources {
    /// The emulator.
    pub emulator: Emulator,
    /// A client signed with the LOCAL profile.
    pub signed: SignedClient,
    /// The archive bucket.
    pub bucket: String,
    /// The connectors.
    pub connectors: Vec<Arc<Connector>>,
    /// Gateway counters.
    pub gateway: Arc<GatewayStats>,
    /// Function pools.
    pub pools: Vec<Arc<Pool>>,
    /// The demo target.
    pub demo_target: Option<Arc<DemoTarget>>,
    /// Rounds of the retry schedule.
    pub retry_runs: Arc<AtomicU64>,
    /// Start time.
    pub started: Instant,
}

/// The gateway's [`StatusFn`] over `sources`: the [`Status`] document as JSON, or as the HTML
/// page.
pub fn status_fn(sources: Sources) -> StatusFn {
    let sources = Arc::new(sources);
    let last: Arc<Mutex<Option<(Instant, u64)>>> = Arc::new(Mutex::new(None));
    Arc::new(move |format| {
        let sources = Arc::clone(&sources);
        let last = Arc::clone(&last);
        Box::pin(async move {
            let status = collect::collect(&sources, &last).await;
            match format {
                PageFormat::Json => serde_json::to_string(&status).unwrap_or_default(),
                PageFormat::Html => html(&status),
            }
        })
    })
}
