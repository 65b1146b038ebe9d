//! The fourth stage: every failure of a batch written to its stream (one PutMessages per
//! destination stream, in batch order, keys kept, envelope updated with
//! [`Envelope::record_failure`]), then the dead-letter notification (`notify`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use serde::Serialize;

use crate::classify::{ErrorClass, Route};
use crate::message::{rfc3339, Envelope, LastError};
use crate::metrics::Metrics;
use crate::oci::client::OciError;
use crate::oci::streaming::{PutMessage, StreamClient};
use crate::settings::Settings;

use super::alert::{ArchiveLocation, DeadLetter, ARCHIVE_PREFIX};
use super::item::{Body, Item, UndecodableRecord};
use super::notify::{Notifier, NotifyCounts};
use super::outcome::{Failure, Outcome, Outcomes};
use super::traced;

/// What [`Deliverer::route`](super::Deliverer::route) wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteReport {
    /// Messages delivered.
    pub delivered: usize,
    /// Messages written, per destination stream.
    pub rerouted: BTreeMap<String, usize>,
    /// Failures per class.
    pub by_class: BTreeMap<String, usize>,
    /// Failures to be retried: written to an error stream (or where the caller chose) with a
    /// `notBefore`.
    pub to_retry: usize,
    /// Permanent failures (dead-lettered).
    pub dead_lettered: usize,
    /// Whether the summary notification was published (`None`: nothing to announce).
    pub notified: Option<bool>,
    /// This instance's notifications so far: published, failed, held back by the rate limit.
    pub notifications: NotifyCounts,
}

impl RouteReport {
    /// Every failure written: to be retried, or dead-lettered.
    pub fn failed(&self) -> usize {
        self.to_retry + self.dead_lettered
    }
}

/// Why failures could not be written. The messages are then not durably re-routed: the
/// caller must not acknowledge the batch.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No stream is configured for a route.
    #[error("no stream is configured for {0}")]
    NoStream(&'static str),
    /// PutMessages failed as a whole.
    #[error("writing {count} messages to {stream}: {source}")]
    Put {
        /// The destination stream.
        stream: String,
        /// How many messages were to be written.
        count: usize,
        /// The error.
        #[source]
        source: Box<OciError>,
    },
    /// Some messages were not stored after the client's retries.
    #[error("{failed} of {count} messages not stored in {stream}: {code}")]
    NotStored {
        /// The destination stream.
        stream: String,
        /// How many messages were to be written.
        count: usize,
        /// How many were not stored.
        failed: usize,
        /// The first entry error code.
        code: String,
    },
    /// An envelope could not be encoded.
    #[error("encoding an envelope: {0}")]
    Encode(#[from] serde_json::Error),
    /// The parked keys could not be read or written, so the batch's order is not recorded.
    #[error("parked keys: {0}")]
    Order(#[source] Arc<crate::parked::ParkedError>),
}

/// What a failure writes. A held message's is its blocker's, untried.
#[derive(Debug, Clone)]
struct Written {
    /// `lastError`.
    error: LastError,
    /// Whether it counts as an attempt.
    tried: bool,
    /// `notBefore`.
    not_before: Option<SystemTime>,
    /// Whether it goes to the dead-letter stream.
    dead_letter: bool,
}

impl Written {
    /// What `failure` writes (`None` for a held message: see [`Written::held`]).
    fn own(failure: &Failure) -> Option<Self> {
        let cause = failure.cause()?;
        Some(Self {
            error: LastError {
                class: failure.class()?,
                status: cause.status(),
                detail: failure.detail().map(|d| d.into_owned()),
            },
            tried: cause.tried(),
            not_before: failure.not_before(),
            dead_letter: failure.is_dead_letter()?,
        })
    }

    /// What a message held behind `blocker` writes.
    fn held(outcomes: &Outcomes, blocker: usize) -> Self {
        let found = outcomes
            .blocker(blocker)
            .and_then(|(b, f)| Some((&b.item, Self::own(f)?)));
        match found {
            Some((b, written)) => {
                let class = written.error.class;
                Self {
                    error: LastError {
                        class,
                        status: None,
                        detail: Some(format!(
                            "not attempted: held behind {} ({}) to keep the order of its key",
                            b.id,
                            class.as_str()
                        )),
                    },
                    tried: false,
                    ..written
                }
            }
            // Outcomes hold a message only behind an earlier failure of their own.
            None => Self {
                error: LastError {
                    class: ErrorClass::Invalid,
                    status: None,
                    detail: Some("internal error: held behind a message that did not fail".into()),
                },
                tried: false,
                not_before: None,
                dead_letter: true,
            },
        }
    }

    /// What a message held behind its key's blocker from an earlier batch writes.
    fn parked(failure: &Failure) -> Option<Self> {
        Some(Self {
            error: LastError {
                class: failure.class()?,
                status: None,
                detail: failure.detail().map(|d| d.into_owned()),
            },
            tried: false,
            not_before: failure.not_before(),
            dead_letter: false,
        })
    }

    /// What each failure of `outcomes` writes, by index (`None` for those delivered).
    fn all(outcomes: &Outcomes) -> Vec<Option<Self>> {
        outcomes
            .list()
            .iter()
            .map(|o| match o.failure()? {
                Failure::Held { blocker } => Some(Self::held(outcomes, *blocker)),
                f @ Failure::Parked { .. } => Self::parked(f),
                f => Self::own(f),
            })
            .collect()
    }
}

/// Writes failures to their streams and announces the dead letters.
#[derive(Debug)]
pub(super) struct Router {
    settings: Arc<Settings>,
    pub(super) streams: StreamClient,
    notifier: Notifier,
    metrics: Metrics,
}

impl Router {
    pub(super) fn new(
        settings: Arc<Settings>,
        streams: StreamClient,
        notifier: Notifier,
        metrics: Metrics,
    ) -> Self {
        Self {
            settings,
            streams,
            notifier,
            metrics,
        }
    }

    /// See [`Deliverer::route_with`](super::Deliverer::route_with).
    pub(super) async fn route(
        &self,
        outcomes: &Outcomes,
        source: &str,
        choose: impl Fn(&Outcome) -> Option<String>,
    ) -> Result<RouteReport, RouteError> {
        if let Some(e) = outcomes.order_error() {
            return Err(RouteError::Order(Arc::clone(e)));
        }
        let mut report = RouteReport {
            delivered: outcomes.delivered(),
            ..RouteReport::default()
        };
        // Nothing to route (the retry schedule finding its streams empty): no writes, and no
        // INFO line every few seconds from an idle stack.
        if outcomes.list().is_empty() {
            return Ok(report);
        }
        let now = SystemTime::now();
        let written = Written::all(outcomes);
        let destinations = self.destinations(outcomes, &written, choose)?;
        let mut batches: BTreeMap<String, Vec<PutMessage>> = BTreeMap::new();
        // Each dead letter, with its place in its stream's PutMessages.
        let mut dead: Vec<(String, usize, DeadLetter)> = Vec::new();
        // Each failure's host, class and fate, counted once it is stored.
        let mut observed: Vec<(Option<String>, ErrorClass, bool)> = Vec::new();
        let failed = outcomes.list().iter().zip(written).zip(destinations);
        let mut traced = Vec::with_capacity(outcomes.list().len());
        for ((outcome, written), stream) in failed {
            // A delivered message's line was its delivering attempt's (`attempt.rs`).
            let (Some(written), Some(stream)) = (written, stream) else {
                continue;
            };
            let routed = traced::Routed {
                error: &written.error,
                not_before: written.not_before,
                dead_letter: written.dead_letter,
                stream: &stream,
            };
            traced.push(traced::failed(outcome, &routed));
            let value = failed_value(&outcome.item, &written, now)?;
            if written.dead_letter {
                let (item, payload) = (&outcome.item, self.notifier.payloads());
                let d = DeadLetter::of(item, &written.error, written.tried, value.len(), payload);
                let place = batches.get(&stream).map_or(0, Vec::len);
                dead.push((stream.clone(), place, d));
            }
            batches
                .entry(stream)
                .or_default()
                .push(PutMessage::new(outcome.item.key.clone(), value));
            *report
                .by_class
                .entry(written.error.class.as_str().to_owned())
                .or_default() += 1;
            if written.dead_letter {
                report.dead_lettered += 1;
            } else {
                report.to_retry += 1;
            }
            observed.push((
                outcome.item.target_host(),
                written.error.class,
                written.dead_letter,
            ));
        }
        let stored = self.put_all(batches).await?;
        for (host, class, dead_letter) in observed {
            self.metrics.failed(host.as_deref(), class.as_str(), None);
            if dead_letter {
                self.metrics
                    .dead_lettered(host.as_deref(), class.as_str(), None);
            }
        }
        traced::emit_all(&traced);
        report.rerouted = stored.iter().map(|(s, p)| (s.clone(), p.len())).collect();
        let dead = dead.into_iter().map(|(stream, place, mut d)| {
            d.archive =
                stored
                    .get(&stream)
                    .and_then(|p| p.get(place))
                    .map(|(partition, offset)| ArchiveLocation {
                        partition: partition.clone(),
                        offset: *offset,
                        prefix: ARCHIVE_PREFIX.into(),
                    });
            d
        });
        report.notified = self
            .notifier
            .announce(&report, dead.collect(), source)
            .await;
        report.notifications = self.notifier.counts();
        tracing::info!(
            delivered = report.delivered,
            rerouted = report.rerouted.values().sum::<usize>(),
            dead_lettered = report.dead_lettered,
            by_class = ?report.by_class,
            notified = ?report.notified,
            notify_failures = report.notifications.publish_failures,
            notifications_held_back = report.notifications.held_back,
            "batch routed"
        );
        Ok(report)
    }

    /// The stream each failure goes to, by index: `choose(outcome)` when it names one, else
    /// its own ([`Router::stream_of`]); a held message goes wherever its blocker went.
    fn destinations(
        &self,
        outcomes: &Outcomes,
        written: &[Option<Written>],
        choose: impl Fn(&Outcome) -> Option<String>,
    ) -> Result<Vec<Option<String>>, RouteError> {
        let list = outcomes.list();
        let mut dest: Vec<Option<String>> = vec![None; list.len()];
        // First the messages that failed on their own, then those held behind them.
        for ((outcome, written), dest) in list.iter().zip(written).zip(dest.iter_mut()) {
            let Some(written) = written else { continue };
            if let Some(Failure::Parked { stream, .. }) = outcome.failure() {
                *dest = Some(stream.clone());
            } else if held_behind(outcome).is_none() {
                *dest = Some(match choose(outcome) {
                    Some(stream) => stream,
                    None => self.stream_of(written)?,
                });
            }
        }
        for (i, (outcome, written)) in list.iter().zip(written).enumerate() {
            let (Some(blocker), Some(written)) = (held_behind(outcome), written) else {
                continue;
            };
            dest[i] = Some(match dest.get(blocker).cloned().flatten() {
                Some(stream) => stream,
                None => self.stream_of(written)?,
            });
        }
        Ok(dest)
    }

    /// The dead-letter stream for a permanent failure, else its class's stream.
    fn stream_of(&self, written: &Written) -> Result<String, RouteError> {
        let route = if written.dead_letter {
            Route::DeadLetter
        } else {
            written.error.class.route()
        };
        self.settings
            .stream_for(route)
            .map(str::to_owned)
            .ok_or(RouteError::NoStream(route.config_key()))
    }

    /// Writes each stream's messages with one PutMessages; where each went (partition,
    /// offset), per stream.
    async fn put_all(
        &self,
        batches: BTreeMap<String, Vec<PutMessage>>,
    ) -> Result<BTreeMap<String, Vec<(String, i64)>>, RouteError> {
        let mut rerouted = BTreeMap::new();
        for (stream, messages) in batches {
            let count = messages.len();
            let stored = match self.streams.put_messages(&stream, &messages).await {
                Ok(stored) => stored,
                Err(source) => {
                    return Err(RouteError::Put {
                        stream,
                        count,
                        source: Box::new(source),
                    })
                }
            };
            let failed: Vec<_> = stored.iter().filter_map(|r| r.as_ref().err()).collect();
            if let Some(first) = failed.first() {
                return Err(RouteError::NotStored {
                    code: first.code.clone(),
                    failed: failed.len(),
                    stream,
                    count,
                });
            }
            let places = stored
                .into_iter()
                .filter_map(Result::ok)
                .map(|m| (m.partition, m.offset))
                .collect();
            rerouted.insert(stream, places);
        }
        Ok(rerouted)
    }
}

/// The blocker's index, for a message held behind another.
fn held_behind(outcome: &Outcome) -> Option<usize> {
    match outcome.failure()? {
        Failure::Held { blocker } => Some(*blocker),
        _ => None,
    }
}

/// The value written for a failed message: the envelope with the failure recorded, or the
/// readable undecodable record.
fn failed_value(
    item: &Item,
    written: &Written,
    now: SystemTime,
) -> Result<Vec<u8>, serde_json::Error> {
    match &item.body {
        Body::Envelope(envelope) => envelope_failed((**envelope).clone(), written, now),
        Body::Encoded { base64, .. } => match item.decoded() {
            Some(whole) => envelope_failed(whole.into_owned(), written, now),
            // It was read once; should it not be now, keep the value readable.
            None => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(base64)
                    .unwrap_or_else(|_| base64.to_vec());
                undecodable_failed(item, &raw, None, written.error.clone())
            }
        },
        Body::Undecodable { raw, record, .. } => {
            undecodable_failed(item, raw, record.as_deref(), written.error.clone())
        }
    }
}

/// An envelope with the failure recorded, encoded.
fn envelope_failed(
    mut envelope: Envelope,
    written: &Written,
    now: SystemTime,
) -> Result<Vec<u8>, serde_json::Error> {
    if envelope.received_at.is_none() {
        // A bare sample message: start its age now, so the age bound applies later.
        envelope.received_at = Some(rfc3339(now));
    }
    envelope.record_failure(
        written.error.clone(),
        written.tried,
        now,
        written.not_before,
    );
    envelope.encode()
}

/// The readable record of a value that is not a datasync message, with the failure recorded
/// (`record`: the one it already is, when it was read back from an error stream).
fn undecodable_failed(
    item: &Item,
    raw: &[u8],
    record: Option<&UndecodableRecord>,
    error: LastError,
) -> Result<Vec<u8>, serde_json::Error> {
    let record = match record {
        Some(r) => UndecodableRecord {
            last_error: error,
            ..r.clone()
        },
        None => {
            let (text, encoding) = match std::str::from_utf8(raw) {
                Ok(t) => (t.to_owned(), "utf8"),
                Err(_) => (
                    base64::engine::general_purpose::STANDARD.encode(raw),
                    "base64",
                ),
            };
            UndecodableRecord {
                undecodable: text,
                encoding: encoding.to_owned(),
                origin: Some(item.origin()),
                last_error: error,
            }
        }
    };
    serde_json::to_vec(&record)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::deliver::outcome::{Cause, Fate};

    fn invalid() -> Failure {
        Failure::permanent(
            ErrorClass::Invalid,
            Cause::NotAttempted {
                detail: "nope".into(),
            },
        )
    }

    fn written_of(f: &Failure) -> Written {
        Written::own(f).unwrap()
    }

    #[test]
    fn undecodable_values_are_written_readable_and_never_wrapped_twice() {
        let f = written_of(&invalid());
        let item = Item::decode("s", "0", 7, None, Bytes::from_static(b"hello {not json"));
        let v = failed_value(&item, &f, SystemTime::now()).unwrap();
        let record: UndecodableRecord = serde_json::from_slice(&v).unwrap();
        assert_eq!(record.undecodable, "hello {not json");
        assert_eq!(record.encoding, "utf8");
        assert_eq!(record.origin.as_deref(), Some("s/0/7"));
        // Read back from the dead-letter stream and failed again: same record.
        let again = Item::decode("dl", "0", 1, None, Bytes::from(v));
        let v2 = failed_value(&again, &f, SystemTime::now()).unwrap();
        let record2: UndecodableRecord = serde_json::from_slice(&v2).unwrap();
        assert_eq!(record2.undecodable, "hello {not json");
        assert_eq!(record2.origin.as_deref(), Some("s/0/7"));
        // Binary values are base64.
        let item = Item::decode("s", "0", 8, None, Bytes::from_static(b"\xff\xfe"));
        let record: UndecodableRecord =
            serde_json::from_slice(&failed_value(&item, &f, SystemTime::now()).unwrap()).unwrap();
        assert_eq!(record.encoding, "base64");
        assert_eq!(record.undecodable, "//4=");
    }

    fn message(offset: i64) -> Item {
        Item::decode(
            "s",
            "0",
            offset,
            Some(Bytes::from_static(b"k")),
            Bytes::from_static(
                br#"{"targetRestApi":"https://a.example/x","targetRestApiOperation":"POST","attempt":2}"#,
            ),
        )
    }

    #[test]
    fn a_held_message_writes_its_blockers_class_and_time_untried() {
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let blocker = Failure::transient(
            ErrorClass::ServiceUnavailable,
            later,
            Cause::Answered {
                status: 503,
                detail: "the target answered 503".into(),
            },
        );
        let outcomes = Outcomes::new(vec![
            Outcome {
                item: message(1),
                fate: Fate::Failed(blocker),
            },
            Outcome {
                item: message(2),
                fate: Fate::Failed(Failure::held(0)),
            },
            Outcome {
                item: message(3),
                fate: Fate::Delivered { status: 200 },
            },
        ]);
        let all = Written::all(&outcomes);
        assert!(all[2].is_none());
        let own = all[0].as_ref().unwrap();
        assert!(own.tried && !own.dead_letter);
        assert_eq!(own.error.status, Some(503));
        let held = all[1].as_ref().unwrap();
        assert!(!held.tried && !held.dead_letter);
        assert_eq!(held.not_before, Some(later));
        assert_eq!(held.error.class, ErrorClass::ServiceUnavailable);
        assert_eq!(held.error.status, None);
        assert_eq!(
            held.error.detail.as_deref(),
            Some(
                format!(
                    "not attempted: held behind {} (serviceUnavailable) to keep the order of its key",
                    outcomes.list()[0].item.id
                )
                .as_str()
            )
        );
        // The blocker's attempt counts; the held message's does not.
        let now = SystemTime::now();
        let first =
            Envelope::decode(&failed_value(&outcomes.list()[0].item, own, now).unwrap()).unwrap();
        let second =
            Envelope::decode(&failed_value(&outcomes.list()[1].item, held, now).unwrap()).unwrap();
        assert_eq!((first.attempt, second.attempt), (3, 2));
        assert_eq!(first.not_before, second.not_before);
    }
}
