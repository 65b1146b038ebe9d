//! What becomes of callbacks once tried in an invocation: counted when sent; written to the
//! callback stream when a later try may succeed and their tries and age allow one; abandoned
//! otherwise, each with its `datasync_trace` event.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::body::Pending;
use super::queue::{self, exhausted, QueueError, QueuedCallback};
use super::send::{abandon, queued, Attempted, CallbackCounts};
use super::Callbacks;

/// One callback as tried: what it was, its record when it came from the callback stream, and
/// what became of it.
pub(super) type Tried = ((Pending, Option<QueuedCallback>), Attempted);

impl Callbacks {
    /// Counts `tried`, queues what may be tried again (with `later`, written back unchanged)
    /// in one PutMessages, abandons the rest.
    ///
    /// When the write fails: with `strict` (records read from the callback stream, which stay
    /// there uncommitted) the error is returned; otherwise each callback that was to be queued
    /// is abandoned, naming the error.
    pub(super) async fn settle(
        &self,
        tried: Vec<Tried>,
        later: Vec<QueuedCallback>,
        strict: bool,
    ) -> Result<CallbackCounts, QueueError> {
        let now = SystemTime::now();
        let retry = self.sender.settings.retry;
        let mut counts = CallbackCounts::default();
        let mut to_queue: Vec<(Pending, String, QueuedCallback)> = Vec::new();
        for ((p, record), attempted) in tried {
            if attempted.sent {
                counts.sent += 1;
                continue;
            }
            counts.failed += 1;
            let calls = p.tries + attempted.calls;
            if !attempted.retry {
                self.abandoned(&mut counts, &p, calls, &attempted.reason);
                continue;
            }
            if self.queue.is_none() {
                let why = format!("{}; no callback stream is configured", attempted.reason);
                self.abandoned(&mut counts, &p, calls, &why);
                continue;
            }
            let next = match record {
                Some(r) => r.after_failure(attempted.calls > 0, now, &retry),
                None => Some(QueuedCallback::first(&p, calls, now, &retry))
                    .filter(|q| !exhausted(q.tries, now, now, &retry)),
            };
            match next {
                Some(q) => to_queue.push((p, attempted.reason, q)),
                None => {
                    let why = format!("{}; its tries or age are used up", attempted.reason);
                    self.abandoned(&mut counts, &p, calls, &why);
                }
            }
        }
        if to_queue.is_empty() && later.is_empty() {
            return Ok(counts);
        }
        let mut records: Vec<QueuedCallback> = to_queue.iter().map(|(_, _, q)| q.clone()).collect();
        records.extend(later);
        let written = match (&self.queue, &self.sender.settings.stream) {
            (Some(streams), Some(stream)) => queue::put(streams, stream, &records).await,
            // `with_queue` keeps a client only with a stream.
            _ => Ok(()),
        };
        match written {
            Ok(()) => {
                for (p, reason, q) in &to_queue {
                    queued(p, q.tries, &q.not_before, reason);
                }
                counts.queued += to_queue.len() as u64;
                self.sender
                    .queued
                    .fetch_add(to_queue.len() as u64, Ordering::Relaxed);
                Ok(counts)
            }
            Err(e) if strict => {
                tracing::error!(error = %e, "queued callbacks could not be written back; nothing committed");
                Err(e)
            }
            Err(e) => {
                let why = format!("it could not be queued: {e}");
                for (p, _, q) in &to_queue {
                    self.abandoned(&mut counts, p, q.tries, &why);
                }
                Ok(counts)
            }
        }
    }

    fn abandoned(&self, counts: &mut CallbackCounts, p: &Pending, calls: u32, reason: &str) {
        abandon(p, calls, reason);
        counts.abandoned += 1;
        self.sender.abandoned.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.callback_abandoned();
        }
    }
}
