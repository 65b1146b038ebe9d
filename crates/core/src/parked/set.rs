//! The parked set as stored, and the changes made to it (pure: no I/O, no clock).
//!
//! A parked key has a queue of message ids in the order they must be delivered. The head is
//! the blocker: the one message of the key that may be attempted (by retry). Every other
//! message of the key waits in an error stream behind it. A change names what one instance
//! did, so it can be applied again to a newer version of the set when a conditional write
//! loses a race ([`ParkedSet::apply`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::classify::ErrorClass;

/// Every parked key, by key (base64 of its bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParkedSet {
    /// The parked keys.
    #[serde(default)]
    pub keys: BTreeMap<String, Entry>,
}

/// One parked key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// The ids of its messages still to be delivered or dead-lettered, in order; the first is
    /// the blocker. Never empty (an entry whose queue empties is removed).
    pub queue: Vec<String>,
    /// Where its held messages go, and what they say.
    pub parking: Parking,
    /// When the head became the head (ms since the epoch), for the age sweep.
    pub head_since_ms: u64,
}

/// Where and how the messages held behind a key are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Parking {
    /// The error stream its held messages are written to (the blocker's).
    pub stream: String,
    /// The class its held messages record (the blocker's).
    pub class: ErrorClass,
    /// Their `notBefore` (ms since the epoch): the blocker's next attempt.
    pub not_before_ms: u64,
    /// Parked on a permanent failure (`parkOnPermanent`): the head was dead-lettered and the
    /// key waits for an operator's release.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
}

impl Entry {
    /// The blocker's id.
    pub fn head(&self) -> Option<&str> {
        self.queue.first().map(String::as_str)
    }
}

/// What one instance did to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `ids`, in order, were routed behind `key`: when it is not parked, it is parked with
    /// `ids[0]` as the blocker and `parking`; when it is, those not yet queued are appended.
    Hold {
        /// The key.
        key: String,
        /// The messages, in order.
        ids: Vec<String>,
        /// How to park it when it is not parked.
        parking: Parking,
    },
    /// Message `id` of `key` was delivered or dead-lettered: it leaves the queue; the key is
    /// released when nothing is left.
    Settled {
        /// The key.
        key: String,
        /// The message.
        id: String,
    },
    /// The blocker `id` failed again, or was dead-lettered with `parkOnPermanent`: it stays the
    /// head, and its followers go where `parking` says.
    Refailed {
        /// The key.
        key: String,
        /// The blocker.
        id: String,
        /// The new parking.
        parking: Parking,
    },
    /// The head leaves the queue whoever it is (an operator's release, or a head older than
    /// the age bound); `only_if` limits it to that head.
    DropHead {
        /// The key.
        key: String,
        /// Drop only this head (the sweep), or any (an operator).
        only_if: Option<String>,
    },
}

impl ParkedSet {
    /// The entry of `key`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.keys.get(key)
    }

    /// Whether nothing is parked.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Applies `change` at `now_ms`.
    pub fn apply(&mut self, change: &Change, now_ms: u64) {
        match change {
            Change::Hold { key, ids, parking } => match self.keys.get_mut(key) {
                Some(entry) => {
                    for id in ids {
                        if !entry.queue.contains(id) {
                            entry.queue.push(id.clone());
                        }
                    }
                }
                None if !ids.is_empty() => {
                    let mut queue: Vec<String> = Vec::with_capacity(ids.len());
                    for id in ids {
                        if !queue.contains(id) {
                            queue.push(id.clone());
                        }
                    }
                    self.keys.insert(
                        key.clone(),
                        Entry {
                            queue,
                            parking: parking.clone(),
                            head_since_ms: now_ms,
                        },
                    );
                }
                None => {}
            },
            Change::Settled { key, id } => self.remove(
                key,
                |entry| entry.queue.iter().position(|q| q == id),
                now_ms,
            ),
            Change::Refailed { key, id, parking } => {
                if let Some(entry) = self.keys.get_mut(key) {
                    if entry.head() == Some(id.as_str()) {
                        entry.parking = parking.clone();
                    }
                }
            }
            Change::DropHead { key, only_if } => self.remove(
                key,
                |entry| match only_if {
                    Some(id) => (entry.head() == Some(id.as_str())).then_some(0),
                    None => Some(0),
                },
                now_ms,
            ),
        }
    }

    /// Removes the queue position `which` picks from `key`'s entry; a new head starts its age
    /// and no longer waits for an operator; an empty queue releases the key.
    fn remove(&mut self, key: &str, which: impl Fn(&Entry) -> Option<usize>, now_ms: u64) {
        let Some(entry) = self.keys.get_mut(key) else {
            return;
        };
        let Some(at) = which(entry) else { return };
        entry.queue.remove(at);
        if entry.queue.is_empty() {
            self.keys.remove(key);
        } else if at == 0 {
            entry.head_since_ms = now_ms;
            entry.parking.manual = false;
        }
    }

    /// The heads older than `max_age_ms` at `now_ms`: their messages are past the error
    /// streams' retention (or were never written, after a crash), so they are dropped.
    pub fn stale(&self, now_ms: u64, max_age_ms: u64) -> Vec<Change> {
        self.keys
            .iter()
            .filter(|(_, e)| now_ms.saturating_sub(e.head_since_ms) > max_age_ms)
            .map(|(key, e)| Change::DropHead {
                key: key.clone(),
                only_if: e.head().map(str::to_owned),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parking(stream: &str) -> Parking {
        Parking {
            stream: stream.into(),
            class: ErrorClass::ServiceUnavailable,
            not_before_ms: 5,
            manual: false,
        }
    }

    fn hold(key: &str, ids: &[&str]) -> Change {
        Change::Hold {
            key: key.into(),
            ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            parking: parking("s1"),
        }
    }

    fn queue(set: &ParkedSet, key: &str) -> Vec<String> {
        set.get(key).map(|e| e.queue.clone()).unwrap_or_default()
    }

    #[test]
    fn hold_parks_then_appends_without_duplicates() {
        let mut set = ParkedSet::default();
        set.apply(&hold("k", &["a", "b"]), 1);
        set.apply(&hold("k", &["b", "c"]), 2);
        assert_eq!(queue(&set, "k"), ["a", "b", "c"]);
        assert_eq!(set.get("k").unwrap().head_since_ms, 1);
    }

    #[test]
    fn settling_every_message_releases_the_key() {
        let mut set = ParkedSet::default();
        set.apply(&hold("k", &["a", "b"]), 1);
        let settle = |id: &str| Change::Settled {
            key: "k".into(),
            id: id.into(),
        };
        set.apply(&settle("a"), 7);
        assert_eq!(queue(&set, "k"), ["b"]);
        assert_eq!(set.get("k").unwrap().head_since_ms, 7);
        set.apply(&settle("zz"), 8);
        set.apply(&settle("b"), 9);
        assert!(set.is_empty());
    }

    #[test]
    fn a_hold_after_a_release_parks_again_behind_the_held_message() {
        // An instance read the key parked and routed `c` behind it while retry released it:
        // re-applied to the newer set, the hold parks the key with `c` as the blocker.
        let mut set = ParkedSet::default();
        set.apply(&hold("k", &["a"]), 1);
        let base = set.clone();
        set.apply(
            &Change::Settled {
                key: "k".into(),
                id: "a".into(),
            },
            2,
        );
        let mut newer = set;
        newer.apply(&hold("k", &["c"]), 3);
        assert_eq!(queue(&newer, "k"), ["c"]);
        assert_ne!(base, newer);
    }

    #[test]
    fn refailing_moves_the_parking_only_for_the_head() {
        let mut set = ParkedSet::default();
        set.apply(&hold("k", &["a", "b"]), 1);
        let refail = |id: &str| Change::Refailed {
            key: "k".into(),
            id: id.into(),
            parking: parking("s2"),
        };
        set.apply(&refail("b"), 2);
        assert_eq!(set.get("k").unwrap().parking.stream, "s1");
        set.apply(&refail("a"), 2);
        assert_eq!(set.get("k").unwrap().parking.stream, "s2");
    }

    #[test]
    fn the_sweep_drops_only_old_heads_and_a_drop_clears_manual() {
        let mut set = ParkedSet::default();
        set.apply(&hold("old", &["a", "b"]), 1);
        set.apply(&hold("new", &["c"]), 100);
        set.keys.get_mut("old").unwrap().parking.manual = true;
        let stale = set.stale(150, 60);
        assert_eq!(
            stale,
            vec![Change::DropHead {
                key: "old".into(),
                only_if: Some("a".into())
            }]
        );
        for c in &stale {
            set.apply(c, 150);
        }
        assert_eq!(queue(&set, "old"), ["b"]);
        assert!(!set.get("old").unwrap().parking.manual);
        // A drop for a head that has moved on changes nothing.
        set.apply(
            &Change::DropHead {
                key: "old".into(),
                only_if: Some("a".into()),
            },
            151,
        );
        assert_eq!(queue(&set, "old"), ["b"]);
    }

    #[test]
    fn the_stored_form_is_camel_case_and_refuses_unknown_fields() {
        let mut set = ParkedSet::default();
        set.apply(&hold("k", &["a"]), 1);
        let json = serde_json::to_value(&set).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"keys": {"k": {"queue": ["a"], "parking": {"stream": "s1",
                "class": "serviceUnavailable", "notBeforeMs": 5}, "headSinceMs": 1}}})
        );
        assert!(serde_json::from_str::<ParkedSet>(r#"{"keys":{},"x":1}"#).is_err());
    }
}
