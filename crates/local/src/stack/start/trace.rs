//! Stage 2b: the functions' invoke log, as Terraform creates it (`terraform/logging.tf`: log
//! group `<prefix>-logs`, log `<prefix>-functions-invoke`, kept as long as the data stream),
//! and the writer that stores the trace lines captured in this process into it.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::emulator::EmulatorPart;
use crate::emulator::{LogIds, LogSpec};
use crate::stack::error::{setup, StackError};
use crate::stack::trace_log::TraceCapture;
use crate::stack::trace_route::TraceSource;
use crate::stack::StackSettings;

/// The local log group's name.
pub const LOG_GROUP: &str = "datasync-logs";
/// The local invoke log's name.
pub const INVOKE_LOG: &str = "datasync-functions-invoke";
/// The local application's name (each entry's `source`).
pub const APPLICATION: &str = "datasync";

/// The invoke log and its writer.
pub(crate) struct TracePart {
    /// The log's OCIDs.
    pub ids: LogIds,
    /// Where `GET /trace` reads.
    pub source: Option<Arc<TraceSource>>,
    /// Stops the writer (after the functions).
    pub stop: CancellationToken,
    /// The writer, when lines are captured.
    pub writer: Option<JoinHandle<()>>,
}

/// Creates the invoke log when absent and starts storing `capture`'s lines in it; timelines
/// name the stack's `streams` (names → OCIDs) by name.
pub(crate) async fn start(
    emulator: &EmulatorPart,
    settings: &StackSettings,
    capture: Option<&Arc<TraceCapture>>,
    streams: &std::collections::BTreeMap<String, String>,
) -> Result<TracePart, StackError> {
    let spec = LogSpec {
        compartment: emulator.profile.compartment.clone(),
        group_name: LOG_GROUP.into(),
        log_name: INVOKE_LOG.into(),
        application_name: APPLICATION.into(),
        application_id: format!("ocid1.fnapp.oc1.local.{APPLICATION}"),
        retention_hours: i64::from(settings.streams.data_stream_retention_hours),
    };
    let ids = emulator
        .emulator
        .ensure_log(spec)
        .await
        .map_err(|e| setup("the functions' invoke log", &e))?;
    let stop = CancellationToken::new();
    let writer =
        capture.and_then(|c| c.start(emulator.emulator.clone(), ids.log_id.clone(), stop.clone()));
    let source = match TraceSource::local(&emulator.base, &emulator.profile, &ids) {
        Ok(s) => Some(Arc::new(s.with_stream_names(streams))),
        Err(e) => {
            tracing::warn!(error = %e, "GET /trace is unavailable");
            None
        }
    };
    Ok(TracePart {
        ids,
        source,
        stop,
        writer,
    })
}
