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
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::host::{deadline, Pool};
use crate::emulator::Appended;

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

/// With no append signal, how often an idle partition is polled at most and at least.
const POLL_MIN: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(100);
/// With an append signal, an idle partition still reads this often, so nothing the signal
/// missed waits longer than this.
const IDLE_READ: Duration = Duration::from_secs(5);

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

/// What [`Connector::wait_for_messages`] decided.
enum Waited {
    /// Read now.
    Read,
    /// The connector is stopping.
    Stop,
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
        batching: Batching,
        max_backoff: Duration,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            name: name.to_owned(),
            stream_id: stream_id.to_owned(),
            stream_name: stream_name.to_owned(),
            partitions,
            sink,
            batching: Batching {
                max_messages: batching.max_messages.clamp(1, 10_000),
                ..batching
            },
            max_backoff,
            stats: ConnectorStats::default(),
            wake: None,
            checkpoints: Checkpoints::open(dir.join(format!("{name}.json")))?,
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
            tasks.spawn(Arc::clone(&self).run_partition(streams.clone(), p, stop.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }

    /// One partition: reads from its checkpoint, gathers batches (see [`Batching`]), hands
    /// each to the target until it takes it, then commits.
    async fn run_partition(
        self: Arc<Self>,
        streams: StreamClient,
        partition: u32,
        stop: CancellationToken,
    ) {
        let part = partition.to_string();
        let mut wake = self.wake.clone();
        // The append totals at the last read: what was appended since may be waiting for us.
        let mut seen = wake
            .as_mut()
            .map_or(Appended::default(), |w| *w.borrow_and_update());
        let mut read_pos = self.checkpoints.get(partition);
        let mut cursor: Option<String> = None;
        let mut batch: Vec<Message> = Vec::new();
        let mut bytes = 0usize;
        // When the current batch's first message was known to be waiting.
        let mut first_at: Option<Instant> = None;
        // Whether the last read may have left messages behind (true at start: a backlog).
        let mut more = true;
        let mut poll = POLL_MIN;
        let mut backoff = Backoff::new(self.max_backoff);
        let Batching {
            max_messages,
            max_bytes,
            max_wait,
        } = self.batching;
        loop {
            if stop.is_cancelled() {
                return;
            }
            let due = first_at.is_some_and(|t| t.elapsed() >= max_wait);
            if !batch.is_empty() && (batch.len() >= max_messages || bytes >= max_bytes || due) {
                if !self.deliver_until_taken(partition, &batch, &stop).await {
                    return;
                }
                if let Some(last) = batch.last().map(|m| m.offset) {
                    self.commit(partition, last).await;
                }
                self.stats
                    .delivered
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                batch.clear();
                bytes = 0;
                first_at = None;
                more = true;
                continue;
            }
            if !more {
                // A batch still filling waits until enough messages or bytes may be waiting,
                // or its deadline; an empty one for the first message, whose arrival starts
                // the batch's clock.
                let need = if first_at.is_some() {
                    Appended {
                        messages: (max_messages - batch.len()) as u64,
                        bytes: max_bytes.saturating_sub(bytes).max(1) as u64,
                    }
                } else {
                    Appended {
                        messages: 1,
                        bytes: 1,
                    }
                };
                let deadline = first_at.map(|t| t + max_wait);
                match self
                    .wait_for_messages(&mut wake, seen, need, deadline, &mut poll, &stop)
                    .await
                {
                    Waited::Stop => return,
                    Waited::Read => {}
                }
                if first_at.is_none() {
                    if let Some(w) = &wake {
                        if w.borrow().messages > seen.messages {
                            // Something is waiting: start the clock and let the batch fill.
                            first_at = Some(Instant::now());
                            continue;
                        }
                    }
                }
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
            let want = (max_messages - batch.len()).clamp(1, 10_000);
            if let Some(w) = wake.as_mut() {
                seen = *w.borrow_and_update();
            }
            match streams
                .get_messages(&self.stream_id, &cur, Some(want as u32))
                .await
            {
                Ok((messages, next)) => {
                    cursor = Some(next);
                    backoff.reset();
                    more = messages.len() >= want;
                    if messages.is_empty() {
                        if batch.is_empty() {
                            // The signal was for another partition.
                            first_at = None;
                        }
                    } else {
                        poll = POLL_MIN;
                        if let Some(last) = messages.last() {
                            read_pos = Some(last.offset);
                        }
                        bytes += messages
                            .iter()
                            .map(|m| m.value.len() * 3 / 4)
                            .sum::<usize>();
                        batch.extend(messages);
                        first_at.get_or_insert_with(Instant::now);
                    }
                }
                Err(e) => {
                    tracing::warn!(connector = %self.name, partition, error = %e, "connector: GetMessages failed; new cursor");
                    cursor = None;
                    more = true;
                    if !sleep_or_stop(backoff.next(), &stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// Waits until `need` messages or bytes may be waiting (appended since `seen`), until
    /// `deadline`, or, with no append signal, until the next poll.
    async fn wait_for_messages(
        &self,
        wake: &mut Option<watch::Receiver<Appended>>,
        seen: Appended,
        need: Appended,
        deadline: Option<Instant>,
        poll: &mut Duration,
        stop: &CancellationToken,
    ) -> Waited {
        let Some(w) = wake.as_mut() else {
            let mut nap = *poll;
            if let Some(d) = deadline {
                nap = nap.min(d.saturating_duration_since(Instant::now()));
            }
            *poll = (*poll * 2).min(POLL_MAX);
            return if sleep_or_stop(nap, stop).await {
                Waited::Read
            } else {
                Waited::Stop
            };
        };
        let until = deadline.unwrap_or_else(|| Instant::now() + IDLE_READ);
        loop {
            let now = *w.borrow();
            let enough = now.messages.saturating_sub(seen.messages) >= need.messages
                || now.bytes.saturating_sub(seen.bytes) >= need.bytes;
            if enough || Instant::now() >= until {
                return Waited::Read;
            }
            tokio::select! {
                _ = stop.cancelled() => return Waited::Stop,
                changed = w.changed() => {
                    if changed.is_err() {
                        // The emulator is gone: poll from now on.
                        *wake = None;
                        return Waited::Read;
                    }
                }
                _ = tokio::time::sleep_until(until.into()) => return Waited::Read,
            }
        }
    }

    /// Hands `batch` to the target until it takes it, never skipping it; false when stopped
    /// between attempts.
    async fn deliver_until_taken(
        &self,
        partition: u32,
        batch: &[Message],
        stop: &CancellationToken,
    ) -> bool {
        let mut done = 0usize;
        let mut backoff = Backoff::new(self.max_backoff);
        loop {
            match self.deliver(partition, &batch[done..]).await {
                Ok(()) => return true,
                Err((sent, e)) => {
                    done += sent;
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(connector = %self.name, partition, error = %e, messages = batch.len() - done, "connector: target failed; the batch will be re-delivered");
                    if !sleep_or_stop(backoff.next(), stop).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Moves the checkpoint (in memory at once; the file write and fsync off the runtime's
    /// threads). A failed write is retried with the next batch; at worst a restart
    /// re-delivers this batch.
    async fn commit(self: &Arc<Self>, partition: u32, offset: i64) {
        let this = Arc::clone(self);
        let written =
            tokio::task::spawn_blocking(move || this.checkpoints.commit(partition, offset)).await;
        let error = match written {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(connector = %self.name, partition, error = %error, "connector: writing the checkpoint failed");
    }

    /// Hands `batch` to the target. On failure, how many messages at the front were taken
    /// (Notifications publishes one by one), and why.
    async fn deliver(&self, partition: u32, batch: &[Message]) -> Result<(), (usize, String)> {
        match &self.sink {
            Sink::Function(pool) => {
                let body = datasync_core::oci::streaming::encode_batch(batch);
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
