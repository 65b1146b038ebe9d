//! The Service Connector pump, as Connector Hub behaves (contracts section C): each
//! connector reads its source stream per partition from its own checkpoint (kept in
//! `DATA/connectors/<name>.json`, not a consumer group), hands batches to its target, retries a
//! failed batch with capped backoff until it succeeds (never skipping it), and moves the
//! checkpoint only after the target took the batch. Targets, wired as `terraform/connectors.tf`
//! wires them: the process function (data stream), Notifications (each dead-letter message),
//! Object Storage (every error stream and the dead-letter stream, objects rolled over by size
//! and time). Also the retry schedule, which calls the retry function's group mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use datasync_core::oci::models::{Message, MessageDetails};
use datasync_core::oci::notifications::NotificationsClient;
use datasync_core::oci::objectstorage::ObjectStorageClient;
use datasync_core::oci::streaming::{CursorStart, StreamClient};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::host::{deadline, Pool};

/// Where a connector delivers.
#[derive(Debug, Clone)]
pub enum Sink {
    /// Invoke a function with the batch (a JSON array of messages).
    Function(Arc<Pool>),
    /// Publish each message to a topic.
    Notifications {
        /// The client.
        client: NotificationsClient,
        /// The topic.
        topic: String,
    },
    /// Write the batch as one object.
    Archive {
        /// The client.
        client: ObjectStorageClient,
        /// Namespace.
        namespace: String,
        /// Bucket.
        bucket: String,
        /// Object name prefix.
        prefix: String,
    },
}

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
    /// Most messages per batch.
    pub max_messages: usize,
    /// Most bytes (decoded values, approximately) per batch.
    pub max_bytes: usize,
    /// Longest time to fill a batch once it has a message.
    pub max_wait: Duration,
    /// Deliver as soon as the stream has nothing more (the process connector), instead of
    /// waiting for `max_wait` (archives).
    pub flush_when_drained: bool,
    /// Backoff cap.
    pub max_backoff: Duration,
    /// Counters.
    pub stats: ConnectorStats,
    checkpoints: Checkpoints,
}

/// A connector's per-partition checkpoints (the last offset its target took), in a file.
#[derive(Debug)]
struct Checkpoints {
    file: PathBuf,
    offsets: Mutex<BTreeMap<u32, i64>>,
}

impl Checkpoints {
    fn open(file: PathBuf) -> std::io::Result<Self> {
        let offsets = match std::fs::read(&file) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("checkpoint file {} is damaged: {e}", file.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            file,
            offsets: Mutex::new(offsets),
        })
    }

    fn get(&self, partition: u32) -> Option<i64> {
        self.offsets.lock().ok()?.get(&partition).copied()
    }

    fn snapshot(&self) -> BTreeMap<u32, i64> {
        self.offsets.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Records and persists (write, fsync, rename) the new checkpoint.
    fn commit(&self, partition: u32, offset: i64) -> std::io::Result<()> {
        use std::io::Write as _;
        let Ok(mut map) = self.offsets.lock() else {
            return Err(std::io::Error::other("checkpoint lock poisoned"));
        };
        map.insert(partition, offset);
        let text = serde_json::to_vec(&*map).map_err(std::io::Error::other)?;
        let tmp = self.file.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.file)
    }
}

impl Connector {
    /// A connector whose checkpoints live in `dir/<name>.json`.
    ///
    /// # Errors
    /// When the checkpoint file exists but cannot be read.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dir: &Path,
        name: &str,
        stream_id: &str,
        stream_name: &str,
        partitions: u32,
        sink: Sink,
        max_messages: usize,
        max_bytes: usize,
        max_wait: Duration,
        flush_when_drained: bool,
        max_backoff: Duration,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            name: name.to_owned(),
            stream_id: stream_id.to_owned(),
            stream_name: stream_name.to_owned(),
            partitions,
            sink,
            max_messages: max_messages.clamp(1, 10_000),
            max_bytes,
            max_wait,
            flush_when_drained,
            max_backoff,
            stats: ConnectorStats::default(),
            checkpoints: Checkpoints::open(dir.join(format!("{name}.json")))?,
        })
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
            tasks.spawn(Arc::clone(&self).run_partition(streams.clone(), p, stop.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn run_partition(
        self: Arc<Self>,
        streams: StreamClient,
        partition: u32,
        stop: CancellationToken,
    ) {
        let part = partition.to_string();
        let mut read_pos = self.checkpoints.get(partition);
        let mut cursor: Option<String> = None;
        let mut batch: Vec<Message> = Vec::new();
        let mut bytes = 0usize;
        let mut first_at: Option<Instant> = None;
        let mut idle = Duration::from_millis(2);
        let mut backoff = Backoff::new(self.max_backoff);
        loop {
            if stop.is_cancelled() {
                return;
            }
            let cur = match &cursor {
                Some(c) => c.clone(),
                None => {
                    let start = read_pos.map_or(CursorStart::TrimHorizon, CursorStart::AfterOffset);
                    match streams.create_cursor(&self.stream_id, &part, &start).await {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(connector = %self.name, partition, error = %e, "connector: CreateCursor failed; retrying");
                            if !sleep_or_stop(backoff.next(), &stop).await {
                                return;
                            }
                            continue;
                        }
                    }
                }
            };
            let want = (self.max_messages - batch.len()).clamp(1, 10_000) as u32;
            let flush = match streams
                .get_messages(&self.stream_id, &cur, Some(want))
                .await
            {
                Ok((messages, next)) => {
                    cursor = Some(next);
                    backoff.reset();
                    if messages.is_empty() {
                        let waited = first_at.map(|t| t.elapsed());
                        match waited {
                            Some(w) if self.flush_when_drained || w >= self.max_wait => true,
                            _ => {
                                let mut nap = idle;
                                if let Some(w) = waited {
                                    nap = nap.min(self.max_wait.saturating_sub(w));
                                }
                                if !sleep_or_stop(nap, &stop).await {
                                    return;
                                }
                                idle = (idle * 2).min(Duration::from_millis(100));
                                false
                            }
                        }
                    } else {
                        idle = Duration::from_millis(2);
                        if let Some(last) = messages.last() {
                            read_pos = Some(last.offset);
                        }
                        bytes += messages
                            .iter()
                            .map(|m| m.value.len() * 3 / 4)
                            .sum::<usize>();
                        batch.extend(messages);
                        let started = *first_at.get_or_insert_with(Instant::now);
                        batch.len() >= self.max_messages
                            || bytes >= self.max_bytes
                            || started.elapsed() >= self.max_wait
                    }
                }
                Err(e) => {
                    tracing::warn!(connector = %self.name, partition, error = %e, "connector: GetMessages failed; new cursor");
                    cursor = None;
                    if !sleep_or_stop(backoff.next(), &stop).await {
                        return;
                    }
                    false
                }
            };
            if !flush || batch.is_empty() {
                continue;
            }
            // Deliver until the target takes it; never skip.
            let mut done = 0usize;
            let mut attempt_backoff = Backoff::new(self.max_backoff);
            loop {
                match self.deliver(partition, &batch[done..]).await {
                    Ok(()) => break,
                    Err((sent, e)) => {
                        done += sent;
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(connector = %self.name, partition, error = %e, messages = batch.len() - done, "connector: target failed; the batch will be re-delivered");
                        if !sleep_or_stop(attempt_backoff.next(), &stop).await {
                            return;
                        }
                    }
                }
            }
            let last = batch.last().map(|m| m.offset);
            if let Some(last) = last {
                // The checkpoint is in memory at once; a failed write is retried on the next
                // batch (and at worst the batch is re-delivered after a restart).
                if let Err(e) = self.checkpoints.commit(partition, last) {
                    tracing::error!(connector = %self.name, partition, error = %e, "connector: writing the checkpoint failed");
                }
            }
            self.stats
                .delivered
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            batch.clear();
            bytes = 0;
            first_at = None;
        }
    }

    /// Hands `batch` to the target. On failure, how many messages at the front were taken
    /// (Notifications publishes one by one), and why.
    async fn deliver(&self, partition: u32, batch: &[Message]) -> Result<(), (usize, String)> {
        match &self.sink {
            Sink::Function(pool) => {
                let body = serde_json::to_vec(batch).map_err(|e| (0, e.to_string()))?;
                let call_id = uuid::Uuid::now_v7().simple().to_string();
                let request = fdk::agent::invoke_request(
                    &call_id,
                    deadline(),
                    Some("application/json"),
                    Bytes::from(body),
                )
                .map_err(|e| (0, e.to_string()))?;
                match pool.call(request).await {
                    Ok(r) if r.status() == http::StatusCode::OK => Ok(()),
                    Ok(r) => Err((
                        0,
                        format!(
                            "{} answered {}: {}",
                            pool.name(),
                            r.status(),
                            String::from_utf8_lossy(&r.body()[..r.body().len().min(300)])
                        ),
                    )),
                    Err(e) => Err((0, format!("{}: {e}", pool.name()))),
                }
            }
            Sink::Notifications { client, topic } => {
                for (i, m) in batch.iter().enumerate() {
                    let body = datasync_core::oci::streaming::message_value(m)
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_else(|_| m.value.clone());
                    let details = MessageDetails {
                        title: Some(format!(
                            "{}: message {}/{}",
                            m.stream, m.partition, m.offset
                        )),
                        body,
                    };
                    if let Err(e) = client.publish_message(topic, &details).await {
                        return Err((i, e.to_string()));
                    }
                }
                Ok(())
            }
            Sink::Archive {
                client,
                namespace,
                bucket,
                prefix,
            } => {
                let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                    return Ok(());
                };
                let mut body = Vec::with_capacity(batch.len() * 256);
                for m in batch {
                    serde_json::to_writer(&mut body, m).map_err(|e| (0, e.to_string()))?;
                    body.push(b'\n');
                }
                let name = format!(
                    "{prefix}/{partition}/{:020}-{:020}.jsonl",
                    first.offset, last.offset
                );
                client
                    .put_object(
                        namespace,
                        bucket,
                        &name,
                        Bytes::from(body),
                        Some("application/x-ndjson"),
                    )
                    .await
                    .map_err(|e| (0, e.to_string()))?;
                self.stats.objects.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }
}

/// Sleeps `d`; false if `stop` fired first.
async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Capped exponential backoff with full jitter, from 50 ms.
struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    fn new(cap: Duration) -> Self {
        Self {
            next: Duration::from_millis(50),
            cap,
        }
    }
    fn reset(&mut self) {
        self.next = Duration::from_millis(50);
    }
    fn next(&mut self) -> Duration {
        use rand::Rng as _;
        let d = self.next.min(self.cap);
        self.next = (self.next * 2).min(self.cap);
        let ms = d.as_millis().max(1) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms))
    }
}

/// The retry schedule: every `interval`, calls the retry function's group mode once per error
/// stream (`{"stream": <ocid>, "max": N}`, a plain invoke as a scheduler would make).
pub async fn retry_schedule(
    pool: Arc<Pool>,
    streams: Vec<String>,
    interval: Duration,
    max: u32,
    runs: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    loop {
        if !sleep_or_stop(interval, &stop).await {
            return;
        }
        for stream in &streams {
            let body = serde_json::json!({ "stream": stream, "max": max }).to_string();
            let call_id = uuid::Uuid::now_v7().simple().to_string();
            let Ok(request) = fdk::agent::invoke_request(
                &call_id,
                deadline(),
                Some("application/json"),
                Bytes::from(body),
            ) else {
                continue;
            };
            match pool.call(request).await {
                Ok(r) if r.status() == http::StatusCode::OK => {
                    tracing::debug!(stream = %stream, answer = %String::from_utf8_lossy(r.body()), "retry schedule: done");
                }
                Ok(r) => {
                    tracing::warn!(stream = %stream, status = %r.status(), answer = %String::from_utf8_lossy(r.body()), "retry schedule: the retry function failed")
                }
                Err(e) => {
                    tracing::warn!(stream = %stream, error = %e, "retry schedule: calling the retry function failed")
                }
            }
            if stop.is_cancelled() {
                return;
            }
        }
        runs.fetch_add(1, Ordering::Relaxed);
    }
}
