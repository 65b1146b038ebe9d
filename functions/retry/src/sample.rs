//! Sample mode: read N messages after an offset, deliver them, route what fails by
//! `errormapping`, and answer as the sample does (its bugs fixed).

use std::time::Instant;

use datasync_core::deliver::Deliverer;
use datasync_core::oci::streaming::CursorStart;
use fdk::Response;
use serde::Serialize;

use crate::group::end_of_stream;
use crate::request::SampleRequest;
use crate::{answer, items_from, Refusal};

/// The sample's answer, plus `deadLettered`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SampleAnswer {
    /// The last offset fully handled (delivered or durably re-routed), or `readAfterOffset`
    /// when nothing was read.
    last_read_offset: i64,
    /// Messages delivered.
    #[serde(rename = "processedmessages")]
    processed_messages: usize,
    /// Messages that failed again and were re-routed.
    failed_messages: usize,
    /// Of those, the dead-lettered ones.
    dead_lettered: usize,
    /// Whether nothing follows the last message read.
    end_of_stream: bool,
}

/// Handles a sample-mode request.
pub(crate) async fn run(
    deliverer: &Deliverer,
    req: SampleRequest,
    deadline: Instant,
) -> Result<Response, Refusal> {
    let streams = deliverer.streams();
    let start = if req.after == -1 {
        CursorStart::TrimHorizon
    } else {
        CursorStart::AfterOffset(req.after)
    };
    let cursor = match streams
        .create_cursor(&req.stream, &req.partition, &start)
        .await
    {
        Ok(c) => c,
        Err(e) if e.status() == Some(400) || e.status() == Some(404) => {
            return Err(Refusal::invalid(format!(
                "readPartition/readAfterOffset: {e}"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let (messages, next) = streams
        .get_messages(&req.stream, &cursor, Some(req.count))
        .await?;
    let last_offset = messages.last().map(|m| m.offset);
    let items = items_from(&messages, &req.stream);
    super::trace_replays(&items);
    let outcomes = deliverer.deliver(items, deadline).await;
    let report = deliverer
        .route_with(&outcomes, &req.stream, |o| req.mapping.pick(o))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "re-routing failed; no progress reported");
            Refusal::Routing(e)
        })?;
    // After the failures are stored: a callback reports a fate already kept.
    deliverer.send_callbacks(&outcomes, deadline).await;
    // Every message read was handled.
    let end_of_stream = end_of_stream(
        deliverer,
        &req.stream,
        &next,
        messages.len(),
        messages.len(),
    )
    .await?;
    Ok(answer(&SampleAnswer {
        last_read_offset: last_offset.unwrap_or(req.after),
        processed_messages: report.delivered,
        failed_messages: report.failed(),
        dead_lettered: report.dead_lettered,
        end_of_stream,
    }))
}
