//! One partition of a connector: reads from its checkpoint, gathers batches (see
//! [`Batching`]), hands each to the target until it takes it, then commits.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datasync_core::oci::models::Message;
use datasync_core::oci::streaming::{CursorStart, StreamClient};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::backoff::{sleep_or_stop, Backoff};
use super::{Batching, Connector};
use crate::emulator::Appended;

/// With no append signal, how often an idle partition is polled at most and at least.
const POLL_MIN: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(100);
/// With an append signal, a partition still reads at least this often, idle or filling a
/// batch, so nothing the signal missed (or a read that came back short) waits longer than this.
const IDLE_READ: Duration = Duration::from_secs(5);

/// What a wait decided.
enum Waited {
    /// Read now.
    Read,
    /// A message is waiting: the batch's clock started, let it fill.
    Started,
    /// The connector is stopping.
    Stop,
}

/// A partition's reading state.
struct Reader {
    partition: u32,
    part: String,
    /// What the emulator appended to the stream, when the connector has the signal.
    wake: Option<watch::Receiver<Appended>>,
    /// The append totals at the last read: what was appended since may be waiting for us.
    seen: Appended,
    /// The offset of the last message read.
    read_pos: Option<i64>,
    cursor: Option<String>,
    batch: Vec<Message>,
    bytes: usize,
    /// When the current batch's first message was known to be waiting.
    first_at: Option<Instant>,
    /// Whether the last read may have left messages behind (true at start: a backlog).
    more: bool,
    poll: Duration,
    backoff: Backoff,
}

/// Runs `partition` of `connector` until `stop`.
pub(super) async fn run(
    connector: Arc<Connector>,
    streams: StreamClient,
    partition: u32,
    stop: CancellationToken,
) {
    let mut wake = connector.wake.clone();
    let seen = wake
        .as_mut()
        .map_or(Appended::default(), |w| *w.borrow_and_update());
    let mut r = Reader {
        partition,
        part: partition.to_string(),
        wake,
        seen,
        read_pos: connector.checkpoints.get(partition),
        cursor: None,
        batch: Vec::new(),
        bytes: 0,
        first_at: None,
        more: true,
        poll: POLL_MIN,
        backoff: Backoff::new(connector.max_backoff),
    };
    loop {
        if stop.is_cancelled() {
            return;
        }
        if r.batch_ready(&connector.batching) {
            if !hand_over(&connector, &mut r, &stop).await {
                return;
            }
            continue;
        }
        if !r.more {
            match wait(&connector, &mut r, &stop).await {
                Waited::Stop => return,
                Waited::Started => continue,
                Waited::Read => {}
            }
        }
        if !read(&connector, &streams, &mut r, &stop).await {
            return;
        }
    }
}

impl Reader {
    /// Whether the batch is full (messages or bytes) or due.
    fn batch_ready(&self, b: &Batching) -> bool {
        let due = self.first_at.is_some_and(|t| t.elapsed() >= b.max_wait);
        !self.batch.is_empty()
            && (self.batch.len() >= b.max_messages || self.bytes >= b.max_bytes || due)
    }
}

/// Hands the batch to the target until it takes it, commits, and starts a new batch; false
/// when stopped first.
async fn hand_over(c: &Arc<Connector>, r: &mut Reader, stop: &CancellationToken) -> bool {
    if !deliver_until_taken(c, r.partition, &r.batch, stop).await {
        return false;
    }
    if let Some(last) = r.batch.last().map(|m| m.offset) {
        commit(c, r.partition, last).await;
    }
    c.stats
        .delivered
        .fetch_add(r.batch.len() as u64, Ordering::Relaxed);
    c.stats.batches.fetch_add(1, Ordering::Relaxed);
    r.batch.clear();
    r.bytes = 0;
    r.first_at = None;
    r.more = true;
    true
}

/// Waits until a read is worth it. A batch still filling waits until enough messages or bytes
/// may be waiting, or its deadline; an empty one for the first message, whose arrival starts
/// the batch's clock.
async fn wait(c: &Connector, r: &mut Reader, stop: &CancellationToken) -> Waited {
    let Batching {
        max_messages,
        max_bytes,
        max_wait,
    } = c.batching;
    let need = if r.first_at.is_some() {
        Appended {
            messages: (max_messages - r.batch.len()) as u64,
            bytes: max_bytes.saturating_sub(r.bytes).max(1) as u64,
        }
    } else {
        Appended {
            messages: 1,
            bytes: 1,
        }
    };
    let deadline = r.first_at.map(|t| t + max_wait);
    if let Waited::Stop =
        wait_for_messages(&mut r.wake, r.seen, need, deadline, &mut r.poll, stop).await
    {
        return Waited::Stop;
    }
    if r.first_at.is_none() {
        if let Some(w) = &r.wake {
            if w.borrow().messages > r.seen.messages {
                // Something is waiting: start the clock and let the batch fill.
                r.first_at = Some(Instant::now());
                return Waited::Started;
            }
        }
    }
    Waited::Read
}

/// Waits until `need` messages or bytes may be waiting (appended since `seen`), until
/// `deadline`, or, with no append signal, until the next poll.
async fn wait_for_messages(
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
    let idle = Instant::now() + IDLE_READ;
    let until = deadline.map_or(idle, |d| d.min(idle));
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

/// Reads what the batch has room for (a cursor first, when there is none); failures back off
/// and start from a new cursor. False when stopped while backing off.
async fn read(
    c: &Connector,
    streams: &StreamClient,
    r: &mut Reader,
    stop: &CancellationToken,
) -> bool {
    let partition = r.partition;
    let cur = match &r.cursor {
        Some(cur) => cur.clone(),
        None => {
            let start = r
                .read_pos
                .map_or(CursorStart::TrimHorizon, CursorStart::AfterOffset);
            match streams.create_cursor(&c.stream_id, &r.part, &start).await {
                Ok(cur) => cur,
                Err(e) => {
                    tracing::warn!(connector = %c.name, partition, error = %e, "connector: CreateCursor failed; retrying");
                    return sleep_or_stop(r.backoff.next(), stop).await;
                }
            }
        }
    };
    let want = (c.batching.max_messages - r.batch.len()).clamp(1, 10_000);
    if let Some(w) = r.wake.as_mut() {
        r.seen = *w.borrow_and_update();
    }
    match streams
        .get_messages(&c.stream_id, &cur, Some(want as u32))
        .await
    {
        Ok((messages, next)) => {
            r.cursor = Some(next);
            r.backoff.reset();
            r.more = messages.len() >= want;
            if messages.is_empty() {
                if r.batch.is_empty() {
                    // The signal was for another partition.
                    r.first_at = None;
                }
            } else {
                r.poll = POLL_MIN;
                if let Some(last) = messages.last() {
                    r.read_pos = Some(last.offset);
                }
                r.bytes += messages
                    .iter()
                    .map(|m| m.value.len() * 3 / 4)
                    .sum::<usize>();
                r.batch.extend(messages);
                r.first_at.get_or_insert_with(Instant::now);
            }
            true
        }
        Err(e) => {
            tracing::warn!(connector = %c.name, partition, error = %e, "connector: GetMessages failed; new cursor");
            r.cursor = None;
            r.more = true;
            sleep_or_stop(r.backoff.next(), stop).await
        }
    }
}

/// Hands `batch` to the target until it takes it, never skipping it; false when stopped
/// between attempts.
async fn deliver_until_taken(
    c: &Connector,
    partition: u32,
    batch: &[Message],
    stop: &CancellationToken,
) -> bool {
    let mut done = 0usize;
    let mut backoff = Backoff::new(c.max_backoff);
    loop {
        match c.sink.deliver(partition, &batch[done..], &c.stats).await {
            Ok(()) => return true,
            Err((sent, e)) => {
                done += sent;
                c.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(connector = %c.name, partition, error = %e, messages = batch.len() - done, "connector: target failed; the batch will be re-delivered");
                if !sleep_or_stop(backoff.next(), stop).await {
                    return false;
                }
            }
        }
    }
}

/// Moves the checkpoint (in memory at once; the file write and fsync off the runtime's
/// threads). A failed write is retried with the next batch; at worst a restart re-delivers
/// this batch.
async fn commit(c: &Arc<Connector>, partition: u32, offset: i64) {
    let this = Arc::clone(c);
    let written =
        tokio::task::spawn_blocking(move || this.checkpoints.commit(partition, offset)).await;
    let error = match written {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::error!(connector = %c.name, partition, error = %error, "connector: writing the checkpoint failed");
}
