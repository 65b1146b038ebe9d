//! The status page: `GET /status` (JSON, the [`Status`] document), `GET /` (a self-contained
//! page for people that fetches `/status` every 2 s and draws it, no external assets) and
//! `GET /metrics` (Prometheus text, [`crate::stack::metrics`]).
//!
//! The document holds, health first: a green/amber/red level per stream and per target host
//! with the reason ([`health`]); the charts' last 15 minutes ([`history`], kept by the stack so
//! a reload keeps them); what is failing now and the newest dead letters ([`failing`], at most
//! 50 rows each); then streams with depth and each consumer's lag and the age of the oldest
//! message it has not consumed, recent notifications, archived objects, counters.
//!
//! The page answers without a key, so it shows what a message is (id, key, target host, class,
//! status, attempts), never its body, header values, URL path or the error's detail text: a
//! dead-letter notification carries the whole message, payload and custom headers included.
//!
//! - [`document`]: the [`Status`] type, the contract with `datasync status` and the benchmark.
//! - `collect`: reads the emulator, the connectors, the gateway and the pools into a [`Status`].
//! - `page`: the HTML page (`page.html`).

mod collect;
pub mod document;
pub mod failing;
pub mod health;
pub mod history;
mod page;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use document::{
    Consumer, FailureCount, FunctionStatus, GatewayCounts, NotificationSummary, Notifications,
    NotifiedMessage, ProcessStatus, Reader, RouteCounts, Status, StorageStatus, StreamStatus,
};
pub use failing::{DeadLetterRow, DeadLetters, FailingNow, FailingRow, Shown};
pub use health::{Health, HostLevel, Level, StreamHealth};
pub use history::{HistoryDoc, HistoryPoint};
pub use page::{age_text, breaker_text, PAGE};

use super::config::StatusConfig;
use super::gateway::{GatewayStats, PageFormat, StatusFn};
use super::host::Pool;
use super::metrics::Exporter;
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
    /// The resource name prefix (the streams' names).
    pub name_prefix: String,
    /// The Prometheus recorder and the running sums; `None` when another recorder was
    /// installed in the process first.
    pub exporter: Option<Exporter>,
    /// `[status]`.
    pub config: StatusConfig,
}

/// The gateway's [`StatusFn`] over `sources`: the [`Status`] document as JSON, the HTML page,
/// or the Prometheus text; and the sampler keeping the charts' history until `stop`.
pub fn status_fn(sources: Sources, stop: CancellationToken) -> (StatusFn, JoinHandle<()>) {
    let history = Arc::new(history::History::new(
        sources.config.history_len(),
        sources.config.sample_interval(),
    ));
    let sources = Arc::new(sources);
    let sampler = tokio::spawn(run_sampler(
        Arc::clone(&sources),
        Arc::clone(&history),
        stop,
    ));
    let last: Arc<Mutex<Option<(Instant, u64)>>> = Arc::new(Mutex::new(None));
    let f: StatusFn = Arc::new(move |format| {
        let sources = Arc::clone(&sources);
        let history = Arc::clone(&history);
        let last = Arc::clone(&last);
        Box::pin(async move {
            match format {
                PageFormat::Json => {
                    let status = collect::collect(&sources, &history, &last).await;
                    serde_json::to_string(&status).unwrap_or_default()
                }
                PageFormat::Html => PAGE.to_owned(),
                PageFormat::Prometheus => match &sources.exporter {
                    Some(e) => e.render(),
                    None => "# another metrics recorder is installed in this process\n".to_owned(),
                },
            }
        })
    });
    (f, sampler)
}

/// Samples the counters and backlogs every `[status] sample_interval_ms` until `stop`.
async fn run_sampler(
    sources: Arc<Sources>,
    history: Arc<history::History>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(history.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        history.push(collect::sample(&sources).await);
        if let Some(e) = &sources.exporter {
            e.upkeep();
        }
    }
}
