//! The functions' trace lines, collected into the emulator's Logging store as OCI Logging
//! collects a function's stdout into its application's invoke log.
//!
//! The functions run in this process, so a [`TraceLayer`] (installed in the process's
//! `tracing` subscriber beside the console output) takes every event with target
//! [`datasync_core::trace::TARGET`], writes it as the JSON log format would (the same line a
//! function on OCI prints), and hands it to a bounded channel: the event's thread never waits.
//! When the stack starts, [`TraceCapture::start`] spawns the writer task, which appends what
//! the channel holds in one transaction at a time (so a burst becomes few commits) to the
//! invoke log created in the start stage. Lines that find the channel full are dropped and
//! counted ([`TraceCapture::dropped`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use datasync_core::trace::TARGET;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::emulator::{Emulator, LogLine};

/// Lines waiting for the writer at most; beyond it lines are dropped.
const CHANNEL: usize = 65_536;
/// The most lines one append writes.
const BATCH: usize = 4096;

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
            loop {
                let first = tokio::select! {
                    line = rx.recv() => line,
                    () = stop.cancelled() => None,
                };
                let Some(first) = first else { break };
                let mut lines = vec![first];
                while lines.len() < BATCH {
                    match rx.try_recv() {
                        Ok(l) => lines.push(l),
                        Err(_) => break,
                    }
                }
                write(&emulator, &log_id, lines).await;
            }
            // Whatever arrived before the stop.
            let mut rest = Vec::new();
            while let Ok(l) = rx.try_recv() {
                rest.push(l);
            }
            if !rest.is_empty() {
                write(&emulator, &log_id, rest).await;
            }
        }))
    }
}

async fn write(emulator: &Emulator, log_id: &str, lines: Vec<LogLine>) {
    let n = lines.len();
    if let Err(e) = emulator.append_log_lines(log_id, lines).await {
        // Not a trace line itself (its target differs), so this cannot loop.
        tracing::warn!(error = %e, lines = n, "trace lines could not be stored");
    }
}

/// The fields of an event, as JSON.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

/// The function an event came from: the span it runs in (`process`, `retry`), else populate
/// (whose only trace lines are acceptances).
fn function_of<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> &'static str
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if let Some(scope) = ctx.event_scope(event) {
        for span in scope {
            match span.name() {
                "process" => return "process",
                "retry" => return "retry",
                _ => {}
            }
        }
    }
    "populate"
}

/// The line the JSON log format writes for an event: `{"timestamp","level","fields","target"}`
/// with microseconds, UTC.
fn json_line(fields: Map<String, Value>, level: &tracing::Level, now: SystemTime) -> String {
    let mut line = Map::new();
    line.insert("timestamp".into(), Value::from(micros_utc(now)));
    line.insert("level".into(), Value::from(level.as_str()));
    line.insert("fields".into(), Value::Object(fields));
    line.insert("target".into(), Value::from(TARGET));
    Value::Object(line).to_string()
}

/// `2026-01-01T00:00:00.000000Z`.
fn micros_utc(t: SystemTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::OffsetDateTime::from(t)
        .format(format)
        .unwrap_or_default()
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
        let mut fields = Fields::default();
        event.record(&mut fields);
        let now = SystemTime::now();
        let line = LogLine {
            time: now,
            function: function_of(event, &ctx).to_owned(),
            message: json_line(fields.0, meta.level(), now),
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
    }
}
