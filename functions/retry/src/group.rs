//! Group mode: read from a consumer group's position, deliver the messages that are due (in
//! order, up to the first whose `notBefore` is still in the future), route what fails, and
//! commit exactly what was handled.

use std::time::{Instant, SystemTime};

use datasync_core::deliver::{Deliverer, Item};
use datasync_core::oci::models::{CreateGroupCursorDetails, GroupCursorType, Message};
use fdk::Response;

use crate::api::{DryRunAnswer, GroupAnswer};
use crate::request::GroupRequest;
use crate::{answer, items_from, Refusal};

/// How many of `items` are due at `now` (those before the first whose `notBefore` is later),
/// and that first one's `notBefore`.
fn due(items: &[Item], now: SystemTime) -> (usize, Option<String>) {
    let due = items
        .iter()
        .position(|i| {
            i.envelope()
                .and_then(|e| e.not_before())
                .is_some_and(|t| t > now)
        })
        .unwrap_or(items.len());
    let next_due_at = items
        .get(due)
        .and_then(|i| i.envelope())
        .and_then(|e| e.not_before.clone());
    (due, next_due_at)
}

/// A count as the answers carry it (a `usize` always fits).
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Reads up to `req.max` messages from the group's position in `req`'s stream.
pub(crate) async fn read(
    deliverer: &Deliverer,
    req: &GroupRequest,
) -> Result<(Vec<Message>, Read), Refusal> {
    let cursor = group_cursor(deliverer, req).await?;
    let (messages, next) = deliverer
        .streams()
        .get_messages(&req.stream, &cursor, Some(req.max))
        .await?;
    let fetched = messages.len();
    Ok((
        messages,
        Read {
            cursor,
            next,
            fetched,
        },
    ))
}

/// The group cursor of `req`'s stream and group.
async fn group_cursor(deliverer: &Deliverer, req: &GroupRequest) -> Result<String, Refusal> {
    let details = CreateGroupCursorDetails {
        cursor_type: GroupCursorType::TrimHorizon,
        time: None,
        group_name: req
            .group
            .clone()
            .unwrap_or_else(|| deliverer.settings().retry_group.clone()),
        instance_name: Some("datasync-retry".into()),
        timeout_in_ms: Some(30_000),
        commit_on_get: Some(false),
    };
    match deliverer
        .streams()
        .create_group_cursor(&req.stream, &details)
        .await
    {
        Ok(c) => Ok(c),
        Err(e) if e.status() == Some(400) => Err(Refusal::invalid(format!("group: {e}"))),
        Err(e) => Err(e.into()),
    }
}

/// Handles a group-mode request.
pub(crate) async fn run(
    deliverer: &Deliverer,
    req: GroupRequest,
    deadline: Instant,
) -> Result<Response, Refusal> {
    let stream = req.stream.as_str();
    let (messages, read) = read(deliverer, &req).await?;
    let (next, fetched) = (read.next.clone(), read.fetched);
    let mut items = items_from(&messages, stream);
    // Stop at the first message not yet due: it and everything after wait for a later call.
    let (due, next_due_at) = due(&items, SystemTime::now());
    items.truncate(due);
    if req.dry_run {
        return Ok(answer(&DryRunAnswer {
            dry_run: true,
            processed: 0,
            due: count(due),
            read: count(fetched),
            next_due_at,
            end_of_stream: None,
        }));
    }
    super::trace_replays(&items);
    let outcomes = deliverer.deliver(items, deadline).await;
    let report = deliverer.route(&outcomes, stream).await.map_err(|e| {
        tracing::error!(error = %e, "re-routing failed; nothing committed");
        Refusal::Routing(e)
    })?;
    commit(deliverer, stream, read, due).await?;
    // After the fates are stored and committed: a callback reports a fate already kept.
    deliverer.send_callbacks(&outcomes, deadline).await;
    let end_of_stream = end_of_stream(deliverer, stream, &next, due, fetched).await?;
    Ok(answer(&GroupAnswer {
        dry_run: false,
        processed: count(due),
        delivered: count(report.delivered),
        rerouted: count(report.to_retry),
        dead_lettered: count(report.dead_lettered),
        next_due_at,
        end_of_stream,
        hosts: deliverer.hosts(),
        routes: outcomes.route_tallies(),
    }))
}

/// Whether the stream holds nothing beyond what a call handled: not when it stopped before
/// the end of the `fetched` messages it read; else a one-message peek from `next` (the cursor
/// after them) tells (GetMessages may return fewer than asked while more exist, so the count
/// alone proves nothing).
pub(crate) async fn end_of_stream(
    deliverer: &Deliverer,
    stream: &str,
    next: &str,
    handled: usize,
    fetched: usize,
) -> Result<bool, Refusal> {
    if handled < fetched {
        return Ok(false);
    }
    let (more, _) = deliverer
        .streams()
        .get_messages(stream, next, Some(1))
        .await?;
    Ok(more.is_empty())
}

/// One GetMessages from the group's position.
pub(crate) struct Read {
    /// The cursor it read from.
    pub(crate) cursor: String,
    /// The cursor after what it returned.
    pub(crate) next: String,
    /// How many messages it returned.
    pub(crate) fetched: usize,
}

/// Commits exactly the first `handled` messages of `read`. A group commit records the
/// positions of the cursor it is given, i.e. after everything the GetMessages that made it
/// returned. When the batch stopped early, the same messages are read again from the first
/// cursor with limit = the number handled, and that cursor is committed.
pub(crate) async fn commit(
    deliverer: &Deliverer,
    stream: &str,
    read: Read,
    handled: usize,
) -> Result<(), Refusal> {
    let streams = deliverer.streams();
    let commit_cursor = if handled == read.fetched {
        Some(read.next)
    } else if handled > 0 {
        let limit = u32::try_from(handled).unwrap_or(u32::MAX);
        match streams
            .get_messages(stream, &read.cursor, Some(limit))
            .await?
        {
            (again, c) if again.len() == handled => Some(c),
            _ => {
                tracing::warn!(
                    "the re-read differs; nothing committed (messages will be re-delivered)"
                );
                None
            }
        }
    } else {
        None
    };
    if let Some(c) = commit_cursor {
        streams.consumer_commit(stream, &c).await?;
    }
    Ok(())
}
