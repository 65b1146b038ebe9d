//! The Service Connector pump, as Connector Hub behaves (contracts section C): each
//! connector reads its source stream per partition from its own checkpoint (kept in
//! `DATA/connectors/<name>.json`, not a consumer group), hands batches to its target, retries a
//! failed batch with capped backoff until it succeeds (never skipping it; a Notifications
//! target gives a message it keeps refusing up after bounded tries, counted, see [`Sink`]),
//! and moves the checkpoint only after the target took the batch. Targets ([`Sink`]), wired as
//! `terraform/connectors.tf` wires them: the process function (data stream), Notifications
//! (each dead-letter message), Object Storage (every error stream and the dead-letter stream,
//! objects rolled over by size and time). Also the retry schedule ([`retry_schedule`]), which
//! calls the retry function's group mode.

mod backoff;
mod checkpoints;
mod partition;
mod schedule;
mod sink;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use datasync_core::oci::streaming::StreamClient;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::emulator::Appended;
pub use checkpoints::CheckpointFile;
use checkpoints::Checkpoints;
pub use schedule::{retry_schedule, RetrySchedule};
pub use sink::{Sink, PUBLISH_TRIES};

/// Counters of one connector.
#[derive(Debug, Default)]
pub struct ConnectorStats {
    /// Messages the target took.
    pub delivered: AtomicU64,
    /// Batches the target took.
    pub batches: AtomicU64,
    /// Failed attempts (each is retried).
    pub failures: AtomicU64,
    /// Objects written (archive connectors).
    pub objects: AtomicU64,
    /// Messages given up on after bounded tries (Notifications connectors: a message the topic
    /// keeps refusing, such as one over 64 KB).
    pub given_up: AtomicU64,
}

/// How a connector forms batches, as Connector Hub does: a batch goes to the target once it
/// holds `max_messages` messages or `max_bytes` bytes, or `max_wait` after its first message
/// was waiting, whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most messages per batch (1 to 10,000).
    pub max_messages: usize,
    /// Most bytes (decoded values, approximately) per batch.
    pub max_bytes: usize,
    /// Longest time to fill a batch once a message is waiting.
    pub max_wait: Duration,
}

/// What [`Connector::new`] needs.
#[derive(Debug, Clone)]
pub struct ConnectorOptions {
    /// The directory of checkpoint files (`<name>.json`); created if absent.
    pub dir: PathBuf,
    /// The connector's name (Terraform's connector names).
    pub name: String,
    /// Source stream OCID.
    pub stream_id: String,
    /// Source stream name.
    pub stream_name: String,
    /// Partitions of the source.
    pub partitions: u32,
    /// Target.
    pub sink: Sink,
    /// When a batch is handed over (`max_messages` is kept within 1 to 10,000).
    pub batching: Batching,
    /// Cap of the backoff between attempts.
    pub max_backoff: Duration,
}

/// The checkpoint file of connector `name` in the checkpoint directory `dir`.
pub fn checkpoint_file(dir: &std::path::Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// One connector.
#[derive(Debug)]
pub struct Connector {
    /// Its name (Terraform's connector names).
    pub name: String,
    /// Source stream OCID.
    pub stream_id: String,
    /// Source stream name.
    pub stream_name: String,
    /// Partitions of the source.
    pub partitions: u32,
    /// Target.
    pub sink: Sink,
    /// When a batch is handed over.
    pub batching: Batching,
    /// Backoff cap.
    pub max_backoff: Duration,
    /// Counters.
    pub stats: ConnectorStats,
    /// What the emulator appended to the source ([`Emulator::appended`]): the connector waits
    /// on it instead of polling. Without it, idle partitions are polled.
    ///
    /// [`Emulator::appended`]: crate::emulator::Emulator::appended
    wake: Option<watch::Receiver<Appended>>,
    checkpoints: Checkpoints,
}

impl Connector {
    /// A connector whose checkpoints live in `options.dir/<name>.json`.
    ///
    /// # Errors
    /// When the checkpoint file exists but cannot be read.
    pub fn new(options: ConnectorOptions) -> std::io::Result<Self> {
        let ConnectorOptions {
            dir,
            name,
            stream_id,
            stream_name,
            partitions,
            sink,
            batching,
            max_backoff,
        } = options;
        std::fs::create_dir_all(&dir)?;
        let checkpoints = Checkpoints::open(checkpoint_file(&dir, &name), &stream_id)?;
        Ok(Self {
            name,
            stream_id,
            stream_name,
            partitions,
            sink,
            batching: Batching {
                max_messages: batching.max_messages.clamp(1, 10_000),
                ..batching
            },
            max_backoff,
            stats: ConnectorStats::default(),
            wake: None,
            checkpoints,
        })
    }

    /// Waits on `appended` (what the emulator appended to the source stream) instead of
    /// polling an idle stream.
    #[must_use]
    pub fn with_append_signal(mut self, appended: watch::Receiver<Appended>) -> Self {
        self.wake = Some(appended);
        self
    }

    /// The committed offset per partition.
    pub fn checkpoints(&self) -> BTreeMap<u32, i64> {
        self.checkpoints.snapshot()
    }

    /// Runs every partition until `stop`; a batch being delivered is finished (or its
    /// current attempt is) and committed first.
    pub async fn run(self: Arc<Self>, streams: StreamClient, stop: CancellationToken) {
        let mut tasks = JoinSet::new();
        for p in 0..self.partitions {
            tasks.spawn(partition::run(
                Arc::clone(&self),
                streams.clone(),
                p,
                stop.clone(),
            ));
        }
        while tasks.join_next().await.is_some() {}
    }
}
