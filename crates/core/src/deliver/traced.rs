//! The trace lines of routing ([`crate::trace`]): each failed message of a routed batch says
//! where it went, once its stream has it: re-routed (stream and `notBefore`), waiting behind
//! its key's blocker (parked), or dead-lettered. (A delivered message's line is its delivering
//! attempt's, written as the call ends.)

use std::time::SystemTime;

use crate::message::LastError;
use crate::trace::{emit, TraceEvent, TraceKind};

use super::outcome::{Failure, Outcome};

/// Where a failed message was written.
pub(super) struct Routed<'a> {
    /// What it recorded in `lastError`.
    pub error: &'a LastError,
    /// Its `notBefore`.
    pub not_before: Option<SystemTime>,
    /// Whether it went to the dead-letter stream.
    pub dead_letter: bool,
    /// The stream.
    pub stream: &'a str,
}

/// The trace line of a routed failure.
pub(super) fn failed(outcome: &Outcome, routed: &Routed<'_>) -> TraceEvent {
    let item = &outcome.item;
    let waits = matches!(
        outcome.failure(),
        Some(Failure::Held { .. } | Failure::Parked { .. })
    );
    let kind = if routed.dead_letter {
        TraceKind::DeadLettered
    } else if waits {
        TraceKind::Parked
    } else {
        TraceKind::Rerouted
    };
    let mut event = TraceEvent::new(kind, &item.id)
        .key(item.key.as_deref())
        .detail(routed.error.detail.as_deref())
        .not_before(routed.not_before);
    event.class = Some(routed.error.class.as_str().to_owned());
    event.status = routed.error.status;
    event.stream = Some(routed.stream.to_owned());
    event.attempt = item.envelope().map(|e| {
        let counted = matches!(outcome.failure().and_then(Failure::cause), Some(c) if c.tried());
        e.attempt.saturating_add(u32::from(counted))
    });
    event
}

/// Emits `events`, in batch order.
pub(super) fn emit_all(events: &[TraceEvent]) {
    events.iter().for_each(emit);
}
