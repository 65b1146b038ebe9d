//! Group mode on the callback stream (`callback_stream_ocid`): the callbacks that failed
//! within their invocation, sent again when due (`docs/callbacks.md`).
//!
//! Unlike an error stream's messages, callbacks keep no order, so one that waits long must not
//! hold back those behind it: the call handles every record up to the last one that is due,
//! sends those due once each, writes the not-yet-due ones among them back unchanged (behind),
//! with the failed ones, in one PutMessages, and commits what it handled. Records after the
//! last due one stay where they are until a later call.

use std::time::{Instant, SystemTime};

use datasync_core::callback::QueuedCallback;
use datasync_core::deliver::Deliverer;
use datasync_core::message::parse_rfc3339;
use datasync_core::oci::models::Message;
use datasync_core::oci::streaming::message_value;
use fdk::Response;

use crate::api::CallbackAnswer;
use crate::group::{commit, end_of_stream, read};
use crate::request::GroupRequest;
use crate::{answer, Refusal};

/// A record of the callback stream, or `None` when it is not one (dropped with a warning).
fn record(message: &Message) -> Option<QueuedCallback> {
    let value = message_value(message).ok()?;
    match serde_json::from_slice(&value) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(partition = %message.partition, offset = message.offset, error = %e, "not a queued callback; dropped");
            None
        }
    }
}

/// How many of `records` a call handles at `now`: up to the last one due (an unreadable one
/// counts as due, to be dropped).
fn handled(records: &[Option<QueuedCallback>], now: SystemTime) -> usize {
    records
        .iter()
        .rposition(|r| r.as_ref().is_none_or(|r| r.is_due(now)))
        .map_or(0, |i| i + 1)
}

/// The earliest `notBefore` of `records`.
fn next_due_at(records: &[Option<QueuedCallback>]) -> Option<String> {
    records
        .iter()
        .flatten()
        .filter_map(|r| Some((parse_rfc3339(&r.not_before)?, &r.not_before)))
        .min_by_key(|(t, _)| *t)
        .map(|(_, text)| text.clone())
}

/// Handles a group-mode request on the callback stream.
pub(crate) async fn run(
    deliverer: &Deliverer,
    req: GroupRequest,
    deadline: Instant,
) -> Result<Response, Refusal> {
    let stream = req.stream.as_str();
    let (messages, read) = read(deliverer, &req).await?;
    let (next, fetched) = (read.next.clone(), read.fetched);
    let now = SystemTime::now();
    let mut records: Vec<Option<QueuedCallback>> = messages.iter().map(record).collect();
    let handled = handled(&records, now);
    let left = records.split_off(handled);
    let (due, later): (Vec<QueuedCallback>, Vec<QueuedCallback>) =
        records.into_iter().flatten().partition(|r| r.is_due(now));
    let mut out = CallbackAnswer {
        callbacks: true,
        dry_run: req.dry_run,
        due: due.len() as u64,
        next_due_at: next_due_at(&left),
        ..CallbackAnswer::default()
    };
    if req.dry_run {
        return Ok(answer(&out));
    }
    let counts = deliverer
        .callbacks()
        .redeliver(due, later, deadline)
        .await
        .map_err(Refusal::Callbacks)?;
    commit(deliverer, stream, read, handled).await?;
    out.processed = handled as u64;
    out.sent = counts.sent;
    out.queued = counts.queued;
    out.abandoned = counts.abandoned;
    out.end_of_stream = end_of_stream(deliverer, stream, &next, handled, fetched).await?;
    Ok(answer(&out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use datasync_core::callback::{CallbackBody, CallbackStatus};
    use datasync_core::message::rfc3339;

    use super::*;

    fn at(not_before: SystemTime) -> Option<QueuedCallback> {
        Some(QueuedCallback {
            url: "https://app.example.com/cb".into(),
            caller: "app".into(),
            traceparent: None,
            body: CallbackBody {
                id: "m".into(),
                stream_key: None,
                status: CallbackStatus::Delivered,
                attempts: 1,
                last_error: None,
                at: rfc3339(not_before),
            },
            tries: 3,
            first_failed_at: rfc3339(not_before),
            not_before: rfc3339(not_before),
        })
    }

    #[test]
    fn a_call_handles_up_to_the_last_due_record_so_a_long_wait_holds_none_back() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let (past, future) = (now - Duration::from_secs(1), now + Duration::from_secs(600));
        assert_eq!(handled(&[], now), 0);
        assert_eq!(handled(&[at(future), at(future)], now), 0);
        assert_eq!(handled(&[at(future), at(past), at(future)], now), 2);
        assert_eq!(handled(&[at(past), None, at(future)], now), 2);
        let later = now + Duration::from_secs(60);
        assert_eq!(
            next_due_at(&[at(future), at(later), None]),
            Some(rfc3339(later))
        );
    }
}
