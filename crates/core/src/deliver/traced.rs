//! The trace lines of routing ([`crate::trace`]): each message of a routed batch says where it
//! went, once its stream has it: delivered, re-routed (stream and `notBefore`), waiting behind
//! its key's blocker (parked), or dead-lettered.

use std::time::SystemTime;

use crate::message::LastError;
use crate::trace::{emit, TraceEvent, TraceKind};

use super::outcome::{Failure, Fate, Outcome};

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

/// The trace line of a delivered message; `None` for a failure.
pub(super) fn delivered(outcome: &Outcome) -> Option<TraceEvent> {
    let Fate::Delivered { status } = outcome.fate else {
        return None;
    };
    let item = &outcome.item;
    let mut event = TraceEvent::new(TraceKind::Delivered, &item.id).key(item.key.as_deref());
    event.status = Some(status);
    event.attempt = item.envelope().map(|e| e.attempt.saturating_add(1));
    Some(event)
}

/// Emits `events`, in batch order.
pub(super) fn emit_all(events: &[TraceEvent]) {
    events.iter().for_each(emit);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use base64::Engine as _;
    use bytes::Bytes;

    use super::*;
    use crate::deliver::{Body, Item};

    #[test]
    fn a_delivered_line_counts_the_attempt_of_a_message_whose_payload_stays_encoded() {
        // As the process function holds a message: decoded lazily, its payload kept encoded.
        let value = br#"{"targetRestApi":"https://api.example.com/o","targetRestApiOperation":"POST","targetRestApiPayload":{"n":1},"attempt":2}"#;
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        let item = Item::decode_lazily("s", "0", 7, None, Bytes::from(encoded));
        assert!(matches!(item.body, Body::Encoded { .. }));
        let outcome = Outcome {
            item,
            fate: Fate::Delivered { status: 200 },
        };
        let event = delivered(&outcome).unwrap();
        assert_eq!(
            (event.event, event.attempt),
            (TraceKind::Delivered, Some(3))
        );
    }
}
