//! The `tracing` subscriber of the commands that run the stack in this process (`up`,
//! `bench`): people's log lines on stderr, and the functions' trace lines captured for the
//! stack's invoke log (`datasync_local::stack::trace_log`) rather than printed.

use std::sync::Arc;

use datasync_core::trace::TARGET;
use datasync_local::stack::trace_log::{capture_filter, trace_capture, TraceCapture};
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// Installs the subscriber: stderr filtered by `RUST_LOG` (`default` when unset), without the
/// trace lines unless `RUST_LOG` names their target; and, when `capture` is true, the trace
/// capture, whose receiving end is returned for the stack. Does nothing (and captures nothing)
/// when a subscriber is already installed.
pub fn init(default: &str, capture: bool) -> Option<Arc<TraceCapture>> {
    let user = std::env::var("RUST_LOG").ok();
    let mut filter = EnvFilter::try_new(user.as_deref().unwrap_or(default))
        .unwrap_or_else(|_| EnvFilter::new(default));
    if !user.as_deref().is_some_and(|u| u.contains(TARGET)) {
        if let Ok(off) = format!("{TARGET}=off").parse() {
            filter = filter.add_directive(off);
        }
    }
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let (layer, receiver) = trace_capture();
    let layer = capture.then(|| layer.with_filter(capture_filter()));
    let installed = tracing_subscriber::registry()
        .with(stderr)
        .with(layer)
        .try_init()
        .is_ok();
    (installed && capture).then_some(receiver)
}
