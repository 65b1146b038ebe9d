//! The functions' trace lines, collected into the emulator's Logging store as OCI Logging
//! collects a function's stdout into its application's invoke log.
//!
//! The functions run in this process, so a [`TraceLayer`] (installed in the process's
//! `tracing` subscriber beside the console output, behind [`capture_filter`]) takes every
//! event with target [`datasync_core::trace::TARGET`], writes it as the JSON log format would
//! (the same line a function on OCI prints; written once, straight from the event's fields,
//! with its `id` and `key` kept aside for the store's indexes), and hands it to a bounded
//! channel: the event's thread never waits.
//!
//! When the stack starts, [`TraceCapture::start`] spawns the writer task, which appends what
//! the channel brings within 200 ms (`GATHER`) of a first line in one transaction (so a burst
//! becomes few commits) to the invoke log created in the start stage; the emulator keeps it
//! in its logs database, apart from the streams. Lines that find the channel full are
//! dropped and counted ([`TraceCapture::dropped`]).

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use datasync_core::trace::TARGET;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::{filter_fn, FilterFn};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::emulator::{Emulator, LogLine, TraceIds};

/// Lines waiting for the writer at most; beyond it lines are dropped.
const CHANNEL: usize = 65_536;
/// The most lines one append writes.
const BATCH: usize = 4096;
/// How long the writer gathers lines after the first before it writes them: the delay before
/// a line can be searched, and what keeps commits few (each one rewrites the pages of the
/// table's and its indexes' ends, so a commit per handful of lines cost more than the lines).
const GATHER: std::time::Duration = std::time::Duration::from_millis(200);

/// The `tracing` layer that captures trace lines. Build it with [`trace_capture`].
#[derive(Debug, Clone)]
pub struct TraceLayer {
    tx: mpsc::Sender<LogLine>,
    dropped: Arc<AtomicU64>,
}

/// The receiving end: started by the stack ([`TraceCapture::start`]).
#[derive(Debug)]
pub struct TraceCapture {
    rx: Mutex<Option<mpsc::Receiver<LogLine>>>,
    dropped: Arc<AtomicU64>,
}

/// A layer to install in the process's subscriber, and the capture to give the stack
/// ([`StackOptions::trace`](super::StackOptions::trace)).
pub fn trace_capture() -> (TraceLayer, Arc<TraceCapture>) {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        TraceLayer {
            tx,
            dropped: Arc::clone(&dropped),
        },
        Arc::new(TraceCapture {
            rx: Mutex::new(Some(rx)),
            dropped,
        }),
    )
}

impl TraceCapture {
    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Spawns the writer: appends captured lines to `log_id` until `stop`, then writes what
    /// is left. `None` when already started.
    pub(crate) fn start(
        &self,
        emulator: Emulator,
        log_id: String,
        stop: CancellationToken,
    ) -> Option<JoinHandle<()>> {
        let mut rx = self.rx.lock().ok()?.take()?;
        Some(tokio::spawn(async move {
            let mut lines = Vec::with_capacity(BATCH);
            while gather(&mut rx, &mut lines, &stop).await {
                write(&emulator, &log_id, std::mem::take(&mut lines)).await;
            }
            // Whatever arrived before the stop.
            while let Ok(l) = rx.try_recv() {
                lines.push(l);
            }
            if !lines.is_empty() {
                write(&emulator, &log_id, lines).await;
            }
        }))
    }
}

/// Waits for a line, then lets more gather for [`GATHER`] (unless [`BATCH`] are already
/// waiting) and takes what is there, up to [`BATCH`]: a commit costs about the same for a few
/// lines as for thousands, so lines are written seldom and in bulk. The writer sleeps while
/// lines gather rather than receiving each as it comes, so a line costs its sender no wake-up
/// of the writer. False (with whatever was gathered in `lines`) when `stop` is cancelled or
/// every sender is gone.
async fn gather(
    rx: &mut mpsc::Receiver<LogLine>,
    lines: &mut Vec<LogLine>,
    stop: &CancellationToken,
) -> bool {
    let first = tokio::select! {
        line = rx.recv() => line,
        () = stop.cancelled() => None,
    };
    let Some(first) = first else { return false };
    lines.push(first);
    if rx.len() < BATCH - 1 {
        tokio::select! {
            () = tokio::time::sleep(GATHER) => {}
            () = stop.cancelled() => return false,
        }
    }
    while lines.len() < BATCH {
        match rx.try_recv() {
            Ok(line) => lines.push(line),
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
    true
}

async fn write(emulator: &Emulator, log_id: &str, lines: Vec<LogLine>) {
    let n = lines.len();
    if let Err(e) = emulator.append_log_lines(log_id, lines).await {
        // Not a trace line itself (its target differs), so this cannot loop.
        tracing::warn!(error = %e, lines = n, "trace lines could not be stored");
    }
}

/// An event's JSON line, written as its fields are visited (once, with no map in between),
/// and the `id` and `key` the store indexes, kept aside so it need not read the line again.
struct LineWriter {
    out: Vec<u8>,
    fields: usize,
    id: Option<String>,
    key: Option<String>,
}

impl LineWriter {
    /// The line up to its fields: `{"timestamp":"…","level":"…","fields":{`, as the JSON log
    /// format writes it (microseconds, UTC).
    fn start(level: &tracing::Level, now: SystemTime) -> Self {
        let mut out = Vec::with_capacity(384);
        out.extend_from_slice(b"{\"timestamp\":\"");
        let format = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        // Cannot fail for a clock reading (its year has four digits).
        let _ = time::OffsetDateTime::from(now).format_into(&mut out, format);
        out.extend_from_slice(b"\",\"level\":\"");
        out.extend_from_slice(level.as_str().as_bytes());
        out.extend_from_slice(b"\",\"fields\":{");
        Self {
            out,
            fields: 0,
            id: None,
            key: None,
        }
    }

    /// Writes the field's name and the colon before its value.
    fn name(&mut self, field: &Field) {
        if self.fields > 0 {
            self.out.push(b',');
        }
        self.fields += 1;
        json_string(&mut self.out, field.name());
        self.out.push(b':');
    }

    /// The finished line and its indexed fields.
    fn finish(mut self) -> (String, Option<TraceIds>) {
        self.out.extend_from_slice(b"},\"target\":");
        json_string(&mut self.out, TARGET);
        self.out.push(b'}');
        let message = String::from_utf8(self.out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let ids = self.id.map(|id| TraceIds { id, key: self.key });
        (message, ids)
    }
}

/// Appends `s` as a JSON string (quoted and escaped).
fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

impl Visit for LineWriter {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "id" => self.id = Some(value.to_owned()),
            "key" => self.key = Some(value.to_owned()),
            _ => {}
        }
        self.name(field);
        json_string(&mut self.out, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        let _ = write!(self.out, "{value}");
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field);
        let _ = write!(self.out, "{value}");
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `id = %x` and `key = %x` (Display, as the callback lines write them) arrive here, not
        // in `record_str`: kept aside too, so the store need not parse the line for them.
        let text = format!("{value:?}");
        match field.name() {
            "id" => self.id = Some(text.clone()),
            "key" => self.key = Some(text.clone()),
            _ => {}
        }
        self.name(field);
        json_string(&mut self.out, &text);
    }
}

/// The spans that name the function an event came from ([`function_of`]).
const FUNCTION_SPANS: [&str; 2] = ["process", "retry"];

/// The filter to give the [`TraceLayer`] in a subscriber: trace lines (target [`TARGET`],
/// INFO and above) and the functions' spans, which [`function_of`] reads. Without the
/// spans, a filtered layer sees no span and every line would name populate. Decided once per
/// callsite, so nothing else costs anything.
pub fn capture_filter() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    fn captured(meta: &Metadata<'_>) -> bool {
        if meta.is_span() {
            FUNCTION_SPANS.contains(&meta.name())
        } else {
            meta.target() == TARGET && *meta.level() <= tracing::Level::INFO
        }
    }
    filter_fn(captured as fn(&Metadata<'_>) -> bool)
}

/// The function an event came from: the span it runs in (`process`, `retry`), else populate
/// (whose only trace lines are acceptances).
fn function_of<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> &'static str
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if let Some(scope) = ctx.event_scope(event) {
        for span in scope {
            if let Some(name) = FUNCTION_SPANS.iter().find(|n| **n == span.name()) {
                return name;
            }
        }
    }
    "populate"
}

impl<S> Layer<S> for TraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() != TARGET {
            return;
        }
        let now = SystemTime::now();
        let mut writer = LineWriter::start(meta.level(), now);
        event.record(&mut writer);
        let (message, ids) = writer.finish();
        let line = LogLine {
            time: now,
            function: function_of(event, &ctx).to_owned(),
            message,
            ids,
        };
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use datasync_core::trace::{emit, TraceEvent, TraceKind, TraceLine};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn trace_events_become_json_lines_of_their_function() {
        let (layer, capture) = trace_capture();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("retry", call_id = "c1");
            let _g = span.enter();
            let mut e = TraceEvent::new(TraceKind::Attempt, "m1").key(Some(b"k"));
            e.status = Some(503);
            emit(&e);
            tracing::info!(id = "x", "not a trace line");
        });
        let mut rx = capture.rx.lock().unwrap().take().unwrap();
        let line = rx.try_recv().unwrap();
        assert!(rx.try_recv().is_err(), "only trace lines are captured");
        assert_eq!(line.function, "retry");
        assert!(line.message.contains(r#""id":"m1""#), "{}", line.message);
        let parsed = TraceLine::parse(&line.message).unwrap();
        assert_eq!(parsed.fields, {
            let mut e = TraceEvent::new(TraceKind::Attempt, "m1").key(Some(b"k"));
            e.status = Some(503);
            e
        });
        assert_eq!(parsed.timestamp.len(), "2026-01-01T00:00:00.000000Z".len());
        assert_eq!(
            line.ids,
            Some(TraceIds {
                id: "m1".into(),
                key: Some("k".into())
            })
        );
    }

    #[test]
    fn the_capture_filter_lets_the_function_spans_through() {
        let (layer, capture) = trace_capture();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::Layer::with_filter(layer, capture_filter()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let _p = tracing::info_span!("process", call_id = "c1").entered();
            let _other = tracing::info_span!("batch").entered();
            emit(&TraceEvent::new(TraceKind::Delivered, "m1"));
            tracing::info!(id = "x", "not a trace line");
            tracing::debug!(target: "datasync_trace", id = "y", "below INFO");
        });
        let mut rx = capture.rx.lock().unwrap().take().unwrap();
        assert_eq!(rx.try_recv().unwrap().function, "process");
        assert!(rx.try_recv().is_err(), "only trace lines are captured");
    }

    #[test]
    fn text_fields_are_escaped_and_lines_without_a_key_index_none() {
        let (layer, capture) = trace_capture();
        let subscriber = tracing_subscriber::registry().with(layer);
        let mut e = TraceEvent::new(TraceKind::Rerouted, "m\"2").detail(Some(r#"a "b" \ c"#));
        e.stream = Some("errors".into());
        e.offset = Some(-1);
        tracing::subscriber::with_default(subscriber, || emit(&e));
        let line = first_line(&capture);
        assert_eq!(line.function, "populate");
        let parsed = TraceLine::parse(&line.message).unwrap();
        assert_eq!(parsed.fields, e);
        assert_eq!(
            line.ids,
            Some(TraceIds {
                id: "m\"2".into(),
                key: None
            })
        );
        let value: serde_json::Value = serde_json::from_str(&line.message).unwrap();
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["fields"]["offset"], -1);
    }

    /// The first line `capture` holds.
    fn first_line(capture: &TraceCapture) -> LogLine {
        let mut rx = capture.rx.lock().unwrap().take().unwrap();
        rx.try_recv().unwrap()
    }

    #[test]
    fn lines_whose_id_is_displayed_are_indexed_by_it() {
        // As the callback lines write it: `id = %id`.
        let (layer, capture) = trace_capture();
        let subscriber = tracing_subscriber::registry().with(layer);
        let id = String::from("m3");
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "datasync_trace", event = "callback", id = %id, key = %"k3", detail = "queued", "callback queued");
        });
        let line = first_line(&capture);
        assert_eq!(
            line.ids,
            Some(TraceIds {
                id: "m3".into(),
                key: Some("k3".into())
            })
        );
        assert!(line.message.contains(r#""id":"m3""#), "{}", line.message);
    }

    fn line(n: u32) -> LogLine {
        LogLine::new(SystemTime::now(), "process", format!("line {n}"))
    }

    #[tokio::test]
    async fn lines_arriving_together_are_written_together() {
        let (tx, mut rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        tx.send(line(1)).await.unwrap();
        let later = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            later.send(line(2)).await.unwrap();
        });
        let mut lines = Vec::new();
        let begun = std::time::Instant::now();
        assert!(gather(&mut rx, &mut lines, &stop).await);
        assert_eq!(lines.len(), 2, "the second line joined the first's batch");
        assert!(begun.elapsed() >= GATHER);
        lines.clear();
        tx.send(line(3)).await.unwrap();
        stop.cancel();
        assert!(!gather(&mut rx, &mut lines, &stop).await);
        assert!(lines.len() <= 1, "a stop ends the gathering at once");
    }
}
