//! What happened to each message of a batch: its [`Fate`]; for a failure, where it goes
//! ([`Failure`]) and what was found ([`Cause`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use crate::classify::{AttemptOutcome, Decision, ErrorClass};
use crate::parked::ParkedError;

use super::item::Item;

/// What happened to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// The target accepted it.
    Delivered {
        /// The target's status.
        status: u16,
    },
    /// It failed (or was not attempted) and must be re-routed.
    Failed(Failure),
}

/// A failed message, by where it goes. Each variant is built by one constructor
/// ([`Failure::transient`], [`Failure::exhausted`], [`Failure::permanent`],
/// [`Failure::held`]); [`Failure::decided`] picks among the first three for a classifier
/// decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// It can succeed later: written to its class's error stream, to be tried again no
    /// earlier than `not_before`.
    Transient {
        /// Why it failed (a retryable class).
        class: ErrorClass,
        /// The earliest next attempt.
        not_before: SystemTime,
        /// What was found.
        cause: Cause,
    },
    /// It could have succeeded later, but ran out of attempts or age: dead-lettered with class
    /// [`ErrorClass::Exhausted`].
    Exhausted {
        /// The class of the last failure.
        last: ErrorClass,
        /// What was found.
        cause: Cause,
    },
    /// It cannot succeed as it is: dead-lettered.
    Permanent {
        /// Why (a class that is not retried).
        class: ErrorClass,
        /// What was found.
        cause: Cause,
    },
    /// Not attempted: an earlier message with the same key failed, and this one must not
    /// overtake it. It goes where that one goes, with its class and `notBefore`, and counts
    /// no attempt.
    Held {
        /// The index (in [`Outcomes::list`]) of the message it is held behind.
        blocker: usize,
    },
    /// Not attempted: its key is parked behind a message of an earlier batch
    /// ([`crate::parked`]). It goes to the key's error stream with the blocker's class and
    /// `notBefore`, and counts no attempt.
    Parked {
        /// The blocker's id.
        behind: String,
        /// The error stream it is written to.
        stream: String,
        /// The class it records (the blocker's).
        class: ErrorClass,
        /// Its `notBefore`.
        not_before: SystemTime,
    },
}

/// What was found about a failed message: whether the target was called, and how it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The target answered with a status that is not a success.
    Answered {
        /// The target's status.
        status: u16,
        /// A short, secret-free explanation.
        detail: String,
    },
    /// The target could not be reached, or the call did not finish (the sample's
    /// `unexpectedError`). Counts as an attempt.
    Unreachable {
        /// A short, secret-free explanation.
        detail: String,
    },
    /// Decided before any call: a rule the message breaks, its secret, or the deadline.
    NotAttempted {
        /// A short, secret-free explanation.
        detail: String,
    },
    /// Not attempted because something unexpected happened (the sample's `unexpectedError`):
    /// the value is not a datasync message, or delivery itself failed.
    Unexpected {
        /// A short, secret-free explanation.
        detail: String,
    },
}

impl Cause {
    /// The cause of a failed call: the target's answer, or its absence.
    pub fn of_call(outcome: &AttemptOutcome, detail: String) -> Self {
        match outcome {
            AttemptOutcome::Status { status, .. } => Cause::Answered {
                status: *status,
                detail,
            },
            AttemptOutcome::Transport(_) => Cause::Unreachable { detail },
        }
    }

    /// The explanation.
    pub fn detail(&self) -> &str {
        match self {
            Cause::Answered { detail, .. }
            | Cause::Unreachable { detail }
            | Cause::NotAttempted { detail }
            | Cause::Unexpected { detail } => detail,
        }
    }

    /// The target's status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Cause::Answered { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the target was called (which counts as an attempt).
    pub fn tried(&self) -> bool {
        matches!(self, Cause::Answered { .. } | Cause::Unreachable { .. })
    }

    /// Whether it is what the sample calls `unexpectedError`: the target could not be reached,
    /// or the message not read.
    pub fn is_unexpected(&self) -> bool {
        matches!(self, Cause::Unreachable { .. } | Cause::Unexpected { .. })
    }
}

impl Failure {
    /// A failure to try again no earlier than `not_before`.
    pub fn transient(class: ErrorClass, not_before: SystemTime, cause: Cause) -> Self {
        Failure::Transient {
            class,
            not_before,
            cause,
        }
    }

    /// A retryable failure of class `last` that ran out of attempts or age.
    pub fn exhausted(last: ErrorClass, cause: Cause) -> Self {
        Failure::Exhausted { last, cause }
    }

    /// A failure that is not retried.
    pub fn permanent(class: ErrorClass, cause: Cause) -> Self {
        Failure::Permanent { class, cause }
    }

    /// A message held behind the failed one at index `blocker`.
    pub fn held(blocker: usize) -> Self {
        Failure::Held { blocker }
    }

    /// The failure a classifier decision calls for; `None` when it was delivered. A request to
    /// refresh the secret that reaches here (no secret to refresh, or refreshed already) is a
    /// permanent [`ErrorClass::Unauthorized`].
    pub fn decided(decision: Decision, cause: Cause) -> Option<Self> {
        match decision {
            Decision::Delivered => None,
            Decision::Retry { class, not_before } => {
                Some(Self::transient(class, not_before, cause))
            }
            // The classifier names a last class only for `Exhausted`.
            Decision::Permanent {
                last: Some(last), ..
            } => Some(Self::exhausted(last, cause)),
            Decision::Permanent { class, last: None } => Some(Self::permanent(class, cause)),
            Decision::RefreshSecretAndRetry => {
                Some(Self::permanent(ErrorClass::Unauthorized, cause))
            }
        }
    }

    /// The class recorded in `lastError.class`; `None` for a held message, whose class is its
    /// blocker's.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            Failure::Transient { class, .. }
            | Failure::Permanent { class, .. }
            | Failure::Parked { class, .. } => Some(*class),
            Failure::Exhausted { .. } => Some(ErrorClass::Exhausted),
            Failure::Held { .. } => None,
        }
    }

    /// What was found; `None` for a held message, which was not looked at.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            Failure::Transient { cause, .. }
            | Failure::Exhausted { cause, .. }
            | Failure::Permanent { cause, .. } => Some(cause),
            Failure::Held { .. } | Failure::Parked { .. } => None,
        }
    }

    /// The target's status, when it answered.
    pub fn status(&self) -> Option<u16> {
        self.cause().and_then(Cause::status)
    }

    /// The explanation recorded in `lastError.detail` (for an exhausted message, with the
    /// class it last failed with); `None` for a held message.
    pub fn detail(&self) -> Option<Cow<'_, str>> {
        match self {
            Failure::Exhausted { last, cause } => Some(Cow::Owned(format!(
                "{} (out of attempts or age after {})",
                cause.detail(),
                last.as_str()
            ))),
            Failure::Parked { behind, class, .. } => Some(Cow::Owned(format!(
                "not attempted: its key is parked behind {behind} ({}) to keep its order",
                class.as_str()
            ))),
            _ => self.cause().map(|c| Cow::Borrowed(c.detail())),
        }
    }

    /// The earliest next attempt, for a transient failure.
    pub fn not_before(&self) -> Option<SystemTime> {
        match self {
            Failure::Transient { not_before, .. } | Failure::Parked { not_before, .. } => {
                Some(*not_before)
            }
            _ => None,
        }
    }

    /// Whether it goes to the dead-letter stream; `None` for a held message, which goes where
    /// its blocker goes.
    pub fn is_dead_letter(&self) -> Option<bool> {
        match self {
            Failure::Transient { .. } | Failure::Parked { .. } => Some(false),
            Failure::Exhausted { .. } | Failure::Permanent { .. } => Some(true),
            Failure::Held { .. } => None,
        }
    }
}

/// One message and its fate.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The message.
    pub item: Item,
    /// What happened.
    pub fate: Fate,
}

impl Outcome {
    /// The failure, unless delivered.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.fate {
            Fate::Failed(f) => Some(f),
            Fate::Delivered { .. } => None,
        }
    }
}

/// The fates of a batch, in batch order. Built by [`Deliverer::deliver`](super::Deliverer),
/// which holds a message behind an earlier failed one of the same batch only.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    list: Vec<Outcome>,
    /// Why the parked set could not be read or written: the batch must not be routed.
    order_error: Option<Arc<ParkedError>>,
}

impl Outcomes {
    /// Outcomes in batch order; every [`Failure::Held`] must name an earlier failure that is
    /// not held itself.
    pub(crate) fn new(list: Vec<Outcome>) -> Self {
        Self {
            list,
            order_error: None,
        }
    }

    /// A batch not attempted because the parked set could not be read: each message's fate
    /// says so, and routing refuses it.
    pub(super) fn unordered(items: Vec<Item>, error: ParkedError) -> Self {
        let detail = format!("not attempted: {error}");
        let list = items
            .into_iter()
            .map(|item| Outcome {
                item,
                fate: Fate::Failed(Failure::permanent(
                    ErrorClass::Invalid,
                    Cause::NotAttempted {
                        detail: detail.clone(),
                    },
                )),
            })
            .collect();
        Self {
            list,
            order_error: Some(Arc::new(error)),
        }
    }

    /// Records that the batch's parked-set changes could not be written.
    pub(super) fn set_order_error(&mut self, error: ParkedError) {
        self.order_error = Some(Arc::new(error));
    }

    /// Why the parked set could not be read or written, when it could not: the batch's
    /// failures must not be routed (see [`RouteError::Order`](super::RouteError::Order)).
    pub fn order_error(&self) -> Option<&Arc<ParkedError>> {
        self.order_error.as_ref()
    }

    /// One per item, in the order given to [`Deliverer::deliver`](super::Deliverer).
    pub fn list(&self) -> &[Outcome] {
        &self.list
    }

    /// The outcomes, to keep.
    pub fn into_list(self) -> Vec<Outcome> {
        self.list
    }

    /// Per route, how many routed messages were delivered and how many failed (what the
    /// functions' answers carry as `routes`); empty when no message named a route.
    pub fn route_tallies(&self) -> Vec<crate::route_counts::RouteTally> {
        let mut tallies = crate::route_counts::RouteTallies::default();
        for o in &self.list {
            if let Some(route) = o.item.envelope().and_then(|e| e.route.as_deref()) {
                tallies.add(route, matches!(o.fate, Fate::Delivered { .. }));
            }
        }
        tallies.to_vec()
    }

    /// How many were delivered.
    pub fn delivered(&self) -> usize {
        self.list
            .iter()
            .filter(|o| matches!(o.fate, Fate::Delivered { .. }))
            .count()
    }

    /// The failure a held message is held behind: the failure at `blocker`, when it is one
    /// and not held itself.
    pub fn blocker(&self, blocker: usize) -> Option<(&Outcome, &Failure)> {
        let outcome = self.list.get(blocker)?;
        match outcome.failure()? {
            Failure::Held { .. } => None,
            f => Some((outcome, f)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use super::*;

    fn answered(status: u16) -> Cause {
        Cause::Answered {
            status,
            detail: format!("the target answered {status}"),
        }
    }

    #[test]
    fn decisions_become_the_failure_they_call_for() {
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(60);
        assert_eq!(Failure::decided(Decision::Delivered, answered(200)), None);
        let f = Failure::decided(
            Decision::Retry {
                class: ErrorClass::ServiceUnavailable,
                not_before: later,
            },
            answered(503),
        )
        .unwrap();
        assert_eq!(f.class(), Some(ErrorClass::ServiceUnavailable));
        assert_eq!(f.not_before(), Some(later));
        assert_eq!(f.is_dead_letter(), Some(false));
        assert_eq!(f.status(), Some(503));

        let f = Failure::decided(
            Decision::Permanent {
                class: ErrorClass::Exhausted,
                last: Some(ErrorClass::Connect),
            },
            Cause::Unreachable {
                detail: "refused".into(),
            },
        )
        .unwrap();
        assert_eq!(f.class(), Some(ErrorClass::Exhausted));
        assert_eq!(
            f.detail().as_deref(),
            Some("refused (out of attempts or age after connect)")
        );
        assert_eq!(f.not_before(), None);
        assert!(f.cause().unwrap().tried());
        assert!(f.cause().unwrap().is_unexpected());

        let f = Failure::decided(Decision::RefreshSecretAndRetry, answered(401)).unwrap();
        assert_eq!(
            f,
            Failure::permanent(ErrorClass::Unauthorized, answered(401))
        );
        assert_eq!(f.is_dead_letter(), Some(true));
    }

    #[test]
    fn a_held_failure_knows_only_its_blocker() {
        let held = Failure::held(3);
        assert_eq!(held.class(), None);
        assert_eq!(held.cause(), None);
        assert_eq!(held.detail(), None);
        assert_eq!(held.is_dead_letter(), None);
        let not_attempted = Cause::NotAttempted {
            detail: "bad".into(),
        };
        assert!(!not_attempted.tried());
        assert!(!not_attempted.is_unexpected());
    }
}
