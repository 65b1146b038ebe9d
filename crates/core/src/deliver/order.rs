//! Order across batches: each lane of a keyed message consults its key's entry in the parked
//! set ([`crate::parked`]) and says what it changed.
//!
//! For one key, in batch order ([`LaneState`]):
//! - key parked: process holds every message behind the blocker ([`Failure::Parked`]); retry
//!   attempts only the blocker (the queue's head, unless it waits for an operator), and holds
//!   the rest. A delivered or dead-lettered head leaves the queue and the next one may go.
//! - key not parked: messages are attempted; a retryable failure parks the key with itself as
//!   the blocker, and the later ones of the batch are held behind it ([`Failure::Held`]). A
//!   permanent failure holds nothing, unless its host says `parkOnPermanent`: then the key is
//!   parked behind it, waiting for an operator, and the later ones wait in an error stream.
//!
//! [`deliver`] reads the set once per batch that has a keyed message, runs the lanes, and
//! writes the changes with one conditional write *before* anything is routed, so a crash
//! leaves at worst a key parked behind a message that was not written, which the batch's
//! redelivery writes or the age sweep drops.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::classify::{ErrorClass, Route};
use crate::function_config::Function;
use crate::parked::{epoch_ms, key_name, Change, Entry, ParkedStore, Parking, Snapshot};
use crate::settings::Settings;
use crate::trace::{emit, TraceEvent, TraceKind};

use super::attempt::Attempts;
use super::item::Item;
use super::lanes;
use super::outcome::{Failure, Fate, Outcomes};

/// The least a message held by retry waits before it is read again, so a key whose blocker
/// is not in sight is not read and written back in a loop.
const RETRY_HOLD_MIN: Duration = Duration::from_secs(1);

/// Which function consults the set: process never attempts a parked key's message; retry
/// attempts its blocker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The process function (and any other caller).
    Process,
    /// The retry function.
    Retry,
}

/// The parked set of a deliverer: where it is, who reads it, how old a blocker may be.
#[derive(Debug)]
pub(super) struct Order {
    pub(super) store: ParkedStore,
    pub(super) role: Role,
    pub(super) max_age: Duration,
}

impl Order {
    /// The order of `settings`' function, when its parked keys are configured.
    pub(super) fn new(settings: &Settings, store: ParkedStore) -> Self {
        let max_age = settings
            .parked
            .as_ref()
            .map_or(Duration::from_secs(86_400), |p| p.max_age);
        let role = match settings.function {
            Function::Retry => Role::Retry,
            _ => Role::Process,
        };
        Self {
            store,
            role,
            max_age,
        }
    }
}

/// What a lane knows of the parked set.
#[derive(Debug, Clone, Copy)]
pub(super) struct View<'a> {
    pub(super) role: Role,
    pub(super) snapshot: &'a Snapshot,
}

/// Delivers `items` in the order their keys' entries allow and records the changes. When the
/// set cannot be read, nothing is attempted; when the changes cannot be written, the
/// outcomes say so: either way routing refuses the batch, which is delivered again.
pub(super) async fn deliver(
    order: &Order,
    attempts: &Arc<Attempts>,
    items: Vec<Item>,
    deadline: Instant,
) -> Outcomes {
    if items.iter().all(|i| i.key.is_none()) {
        return lanes::deliver(attempts, items, deadline, None).await.0;
    }
    let snapshot = match order.store.read().await {
        Ok(s) => s,
        Err(e) => return Outcomes::unordered(items, e),
    };
    let view = View {
        role: order.role,
        snapshot: &snapshot,
    };
    let (mut outcomes, mut changes) = lanes::deliver(attempts, items, deadline, Some(view)).await;
    if order.role == Role::Retry {
        let max_age = u64::try_from(order.max_age.as_millis()).unwrap_or(u64::MAX);
        changes.extend(snapshot.set.stale(epoch_ms(SystemTime::now()), max_age));
    }
    if !changes.is_empty() {
        match order.store.commit(snapshot.clone(), &changes).await {
            Ok(_) => changes.iter().for_each(trace_release),
            Err(e) => outcomes.set_order_error(e),
        }
    }
    outcomes
}

/// The trace line of a message that left its key's queue (the key flows again once the queue
/// is empty).
fn trace_release(change: &Change) {
    let (key, id, detail) = match change {
        Change::Settled { key, id } => (key, id, "left its key's queue"),
        Change::DropHead {
            key,
            only_if: Some(id),
        } => (
            key,
            id,
            "dropped from its key's queue: older than the age bound",
        ),
        _ => return,
    };
    use base64::Engine as _;
    // The set names keys by their base64 ([`key_name`]).
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap_or_else(|_| key.as_bytes().to_vec());
    let event = TraceEvent::new(TraceKind::Released, id)
        .key(Some(&key))
        .detail(Some(detail));
    emit(&event);
}

/// One lane's walk through its messages.
#[derive(Debug)]
pub(super) struct LaneState {
    settings: Arc<Settings>,
    role: Role,
    /// The key's name, for a keyed lane read against the parked set.
    key: Option<String>,
    /// The key's queue and parking while it is parked.
    parked: Option<Entry>,
    /// The parking the key had when the set was read.
    read_parking: Option<Parking>,
    /// The message of this batch the rest are held behind.
    blocker: Option<usize>,
    /// The parking of a key this lane parked on a permanent failure.
    manual: Option<(String, Parking)>,
    /// The parking of a key this lane parked.
    parks: Option<Parking>,
    /// The ids routed behind the key, in order.
    held: Vec<String>,
    changes: Vec<Change>,
}

impl LaneState {
    /// The state of a lane whose first message is `first`.
    pub(super) fn new(
        settings: Arc<Settings>,
        view: Option<View<'_>>,
        first: Option<&Item>,
    ) -> Self {
        let key = view.and(first).and_then(|i| i.key.as_deref()).map(key_name);
        let parked = match (&key, view) {
            (Some(k), Some(v)) => v.snapshot.set.get(k).cloned(),
            _ => None,
        };
        Self {
            settings,
            role: view.map_or(Role::Process, |v| v.role),
            key,
            read_parking: parked.as_ref().map(|e| e.parking.clone()),
            parked,
            blocker: None,
            manual: None,
            parks: None,
            held: Vec::new(),
            changes: Vec::new(),
        }
    }

    /// The fate of message `i` when it is not to be attempted.
    pub(super) fn before(&mut self, item: &Item) -> Option<Fate> {
        let held = if let Some(b) = self.blocker {
            Failure::held(b)
        } else if let Some((head, parking)) = &self.manual {
            self.parked_behind(head.clone(), parking.clone())
        } else if let Some(entry) = &self.parked {
            let head = entry.head().unwrap_or_default().to_owned();
            let may_go = self.role == Role::Retry && !entry.parking.manual && head == item.id;
            if may_go {
                return None;
            }
            self.parked_behind(head, entry.parking.clone())
        } else {
            return None;
        };
        if self.key.is_some() {
            self.held.push(item.id.clone());
        }
        Some(Fate::Failed(held))
    }

    /// A message held behind `head`, a blocker outside the batch.
    fn parked_behind(&self, head: String, parking: Parking) -> Failure {
        let mut not_before = SystemTime::UNIX_EPOCH + Duration::from_millis(parking.not_before_ms);
        let now = SystemTime::now();
        if parking.manual {
            not_before = not_before.max(now + self.settings.rules.base_delay);
        } else if self.role == Role::Retry {
            not_before = not_before.max(now + RETRY_HOLD_MIN);
        }
        Failure::Parked {
            behind: head,
            stream: parking.stream,
            class: parking.class,
            not_before,
        }
    }

    /// Records what happened to message `i`, which was attempted.
    pub(super) fn after(&mut self, i: usize, item: &Item, fate: &Fate) {
        let failure = match fate {
            Fate::Failed(f) => Some(f),
            Fate::Delivered { .. } => None,
        };
        let retryable = failure.and_then(|f| self.parking_of(f));
        let manual = match (failure, &retryable) {
            (Some(f @ (Failure::Permanent { .. } | Failure::Exhausted { .. })), None)
                if self.key.is_some() && parks_on_permanent(&self.settings, item) =>
            {
                self.manual_parking(f)
            }
            _ => None,
        };
        if let Some(key) = self.key.clone() {
            self.record(key, item, retryable.clone().or_else(|| manual.clone()));
        }
        if retryable.is_some() {
            self.blocker = Some(i);
        }
        if let Some(parking) = manual {
            self.manual = Some((item.id.clone(), parking));
        }
    }

    /// Records, for a keyed lane, the change message `item`'s fate makes: the parked key's
    /// head leaves the queue or stays (`stays`: how its followers wait now); an unparked key
    /// gets parked behind it.
    fn record(&mut self, key: String, item: &Item, stays: Option<Parking>) {
        let id = item.id.clone();
        let Some(entry) = self.parked.as_mut() else {
            if let Some(parking) = stays {
                self.parks = Some(parking);
                self.held.push(id);
            }
            return;
        };
        match stays {
            Some(parking) => {
                entry.parking = parking.clone();
                self.changes.push(Change::Refailed { key, id, parking });
            }
            None => {
                entry.queue.retain(|q| *q != id);
                if entry.queue.is_empty() {
                    self.parked = None;
                }
                self.changes.push(Change::Settled { key, id });
            }
        }
    }

    /// How the followers of a retryable failure wait: in its class's stream, until its
    /// `notBefore`.
    fn parking_of(&self, failure: &Failure) -> Option<Parking> {
        let Failure::Transient {
            class, not_before, ..
        } = failure
        else {
            return None;
        };
        Some(Parking {
            stream: self.settings.stream_for(class.route())?.to_owned(),
            class: *class,
            not_before_ms: epoch_ms(*not_before),
            manual: false,
        })
    }

    /// How the followers of a permanent failure wait for an operator: in the default error
    /// stream, looked at again every base delay.
    fn manual_parking(&self, failure: &Failure) -> Option<Parking> {
        Some(Parking {
            stream: self.settings.stream_for(Route::Default)?.to_owned(),
            class: failure.class().unwrap_or(ErrorClass::ClientError),
            not_before_ms: epoch_ms(SystemTime::now() + self.settings.rules.base_delay),
            manual: true,
        })
    }

    /// The lane's changes: those of its attempts, then the messages it routed behind its key.
    pub(super) fn finish(mut self) -> Vec<Change> {
        if let (Some(key), false) = (self.key.take(), self.held.is_empty()) {
            let parking = self
                .parks
                .take()
                .or_else(|| self.manual.take().map(|(_, p)| p));
            // Held behind a key parked at the read: should it be released meanwhile, the first
            // held message becomes its blocker, and it is a live message.
            let parking = parking.or_else(|| {
                self.read_parking
                    .take()
                    .map(|p| Parking { manual: false, ..p })
            });
            if let Some(parking) = parking {
                self.changes.push(Change::Hold {
                    key,
                    ids: std::mem::take(&mut self.held),
                    parking,
                });
            }
        }
        self.changes
    }
}

/// Whether `item`'s host parks its key on a permanent failure (`parkOnPermanent`).
fn parks_on_permanent(settings: &Settings, item: &Item) -> bool {
    let Some(envelope) = item.envelope() else {
        return false;
    };
    let Ok(url) = url::Url::parse(&envelope.message.target_rest_api) else {
        return false;
    };
    let (_, ov, _) = super::prepare::rules_for(settings, &url);
    ov.and_then(|o| o.park_on_permanent).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::HashMap;

    use bytes::Bytes;

    use super::*;
    use crate::deliver::outcome::Cause;
    use crate::parked::ParkedSet;

    const SU: &str = "ocid1.stream.oc1..su";
    const DF: &str = "ocid1.stream.oc1..df";

    fn settings(function: Function, overrides: Option<&str>) -> Arc<Settings> {
        let mut map: HashMap<&str, &str> = HashMap::from([
            ("vault_ocid", "ocid1.vault.oc1..v"),
            ("serviceUnavailable_error_stream_ocid", SU),
            ("internalserver_error_stream_ocid", "ocid1.stream.oc1..is"),
            ("default_error_stream_ocid", DF),
            ("unrecoverable_error_stream_ocid", "ocid1.stream.oc1..un"),
            ("notification_topic_ocid", "ocid1.onstopic.oc1..t"),
            ("dead_letter_stream_ocid", "ocid1.stream.oc1..dl"),
            ("target_allow_list", "api.example.com"),
            ("DATASYNC_OCI_ENDPOINT", "http://127.0.0.1:9"),
        ]);
        if let Some(o) = overrides {
            map.insert("classification_overrides", o);
        }
        Arc::new(Settings::from_lookup(function, |k| map.get(k).map(|v| (*v).to_owned())).unwrap())
    }

    /// A message of key `k` as the process function holds it: its payload kept encoded.
    fn item(id: &str) -> Item {
        use base64::Engine as _;
        let value = br#"{"targetRestApi":"https://api.example.com/o","targetRestApiOperation":"POST","targetRestApiPayload":{"n":1}}"#;
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        let mut item = Item::decode_lazily(
            "s",
            "0",
            0,
            Some(Bytes::from_static(b"k")),
            Bytes::from(encoded),
        );
        assert!(matches!(item.body, crate::deliver::Body::Encoded { .. }));
        item.id = id.to_owned();
        item
    }

    fn snapshot(queue: &[&str]) -> Snapshot {
        let mut set = ParkedSet::default();
        set.apply(
            &Change::Hold {
                key: key_name(b"k"),
                ids: queue.iter().map(|s| (*s).to_owned()).collect(),
                parking: Parking {
                    stream: SU.into(),
                    class: ErrorClass::ServiceUnavailable,
                    not_before_ms: 0,
                    manual: false,
                },
            },
            1,
        );
        Snapshot {
            etag: Some("e".into()),
            set: Arc::new(set),
        }
    }

    fn answered(status: u16) -> Cause {
        Cause::Answered {
            status,
            detail: format!("answered {status}"),
        }
    }

    fn unavailable() -> Fate {
        Fate::Failed(Failure::transient(
            ErrorClass::ServiceUnavailable,
            SystemTime::now(),
            answered(503),
        ))
    }

    fn bad_request() -> Fate {
        Fate::Failed(Failure::permanent(ErrorClass::ClientError, answered(400)))
    }

    /// Runs a lane of `ids` through `state`, each attempt answered by `answer`; the fates
    /// (`None`: attempted) and the changes.
    fn walk(
        mut state: LaneState,
        ids: &[&str],
        answer: impl Fn(&str) -> Fate,
    ) -> (Vec<Option<Failure>>, Vec<Change>) {
        let mut fates = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let it = item(id);
            match state.before(&it) {
                Some(Fate::Failed(f)) => fates.push(Some(f)),
                Some(other) => panic!("held as {other:?}"),
                None => {
                    state.after(i, &it, &answer(id));
                    fates.push(None);
                }
            }
        }
        (fates, state.finish())
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn process_holds_every_message_of_a_parked_key_and_queues_it() {
        let snap = snapshot(&["m1"]);
        let view = View {
            role: Role::Process,
            snapshot: &snap,
        };
        let state = LaneState::new(
            settings(Function::Process, None),
            Some(view),
            Some(&item("m1")),
        );
        let (fates, changes) = walk(state, &["m2", "m3"], |_| panic!("attempted"));
        for f in &fates {
            assert!(
                matches!(f, Some(Failure::Parked { behind, stream, .. }) if behind == "m1" && stream == SU),
                "{f:?}"
            );
        }
        assert!(
            matches!(&changes[..], [Change::Hold { ids: held, .. }] if *held == ids(&["m2", "m3"]))
        );
    }

    #[test]
    fn retry_attempts_the_head_then_the_next_and_holds_what_is_not_next() {
        let snap = snapshot(&["m1", "m2"]);
        let view = View {
            role: Role::Retry,
            snapshot: &snap,
        };
        let state = LaneState::new(
            settings(Function::Retry, None),
            Some(view),
            Some(&item("m3")),
        );
        // m3 comes before its turn: held (and queued); m1 then m2 go.
        let (fates, changes) = walk(state, &["m3", "m1", "m2"], |_| Fate::Delivered {
            status: 200,
        });
        assert!(matches!(fates[0], Some(Failure::Parked { .. })));
        assert!(fates[1].is_none() && fates[2].is_none());
        let key = key_name(b"k");
        assert_eq!(
            changes,
            vec![
                Change::Settled {
                    key: key.clone(),
                    id: "m1".into()
                },
                Change::Settled {
                    key: key.clone(),
                    id: "m2".into()
                },
                Change::Hold {
                    key,
                    ids: ids(&["m3"]),
                    parking: snap.set.get(&key_name(b"k")).unwrap().parking.clone()
                },
            ]
        );
    }

    #[test]
    fn a_retryable_failure_parks_the_key_behind_itself_and_holds_the_rest_of_the_batch() {
        let state = LaneState::new(
            settings(Function::Process, None),
            Some(View {
                role: Role::Process,
                snapshot: &Snapshot::default(),
            }),
            Some(&item("m1")),
        );
        let (fates, changes) = walk(state, &["m1", "m2"], |_| unavailable());
        assert!(fates[0].is_none());
        assert_eq!(fates[1], Some(Failure::held(0)));
        assert!(
            matches!(&changes[..], [Change::Hold { ids: held, parking, .. }]
            if *held == ids(&["m1", "m2"]) && parking.stream == SU && !parking.manual)
        );
    }

    #[test]
    fn a_permanent_failure_holds_nothing_back_unless_its_host_parks_on_it() {
        let view = View {
            role: Role::Process,
            snapshot: &Snapshot::default(),
        };
        let state = LaneState::new(
            settings(Function::Process, None),
            Some(view),
            Some(&item("m1")),
        );
        let (fates, changes) = walk(state, &["m1", "m2"], |id| {
            if id == "m1" {
                bad_request()
            } else {
                Fate::Delivered { status: 200 }
            }
        });
        assert_eq!(fates, vec![None, None], "both attempted");
        assert!(changes.is_empty());

        let parks = r#"{"api.example.com": {"parkOnPermanent": true}}"#;
        let state = LaneState::new(
            settings(Function::Process, Some(parks)),
            Some(view),
            Some(&item("m1")),
        );
        let (fates, changes) = walk(state, &["m1", "m2"], |_| bad_request());
        assert!(fates[0].is_none());
        assert!(
            matches!(&fates[1], Some(Failure::Parked { behind, stream, class, .. })
                if behind == "m1" && stream == DF && *class == ErrorClass::ClientError),
            "{fates:?}"
        );
        assert!(
            matches!(&changes[..], [Change::Hold { ids: held, parking, .. }]
            if *held == ids(&["m1", "m2"]) && parking.manual)
        );
    }

    #[test]
    fn without_a_parked_set_order_holds_within_the_batch_only() {
        let state = LaneState::new(settings(Function::Process, None), None, Some(&item("m1")));
        let (fates, changes) = walk(state, &["m1", "m2"], |_| unavailable());
        assert_eq!(fates[1], Some(Failure::held(0)));
        assert!(changes.is_empty());
    }
}
