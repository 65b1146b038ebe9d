//! The demo target: a REST API that records what it receives and fails on request.
//!
//! A request is a delivery when its method is one a message can name (POST, PUT, PATCH,
//! DELETE: `targetRestApiOperation`'s values) and its path does not start with `/_`:
//! recorded (method, path, headers, body), counted, with duplicates counted by
//! `Idempotency-Key` (among the last [`MAX_KEYS`] distinct keys, kept as 64-bit hashes, so a
//! stack that runs for days keeps its demo target within about 30 MB); answered with the
//! current mode's status (200 by default) after the configured delay.
//!
//! Paths starting with `/_` are the controls, never deliveries; [`HELP`] documents them and
//! `GET /_help` serves it (so does `datasync demo-target --help`):
//! - `POST /_control` sets the [`Mode`].
//! - `GET /_received` answers a [`ReceivedReport`]; `DELETE /_received` clears.
//! - `POST /_latencies` drains the POST-to-target latencies of `datasync bench` payloads
//!   (those starting with `{"benchSentUs":`) as [`Latencies`], so the benchmark measures them
//!   against a running stack too (same machine, same clock).

mod routes;

pub use routes::{serve, HELP};

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash as _, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Serialize};

/// The most requests kept for `GET /_received` (older ones are dropped; counters go on).
pub const MAX_RECORDED: usize = 2000;
/// The most benchmark latencies kept until drained (more are not recorded).
pub const MAX_LATENCIES: usize = 1_000_000;
/// The most distinct `Idempotency-Key`s remembered for counting duplicates; the oldest is
/// forgotten beyond that (about 30 bytes each with the table's spare room).
pub const MAX_KEYS: usize = 1_000_000;

/// The `Idempotency-Key`s answered 2xx: the last [`MAX_KEYS`] as 64-bit hashes (two keys share
/// one with a chance of about 1 in 10^7 at a million keys), and how many were forgotten.
#[derive(Debug)]
struct SeenKeys {
    limit: usize,
    set: HashSet<u64>,
    order: VecDeque<u64>,
    forgotten: u64,
}

impl Default for SeenKeys {
    fn default() -> Self {
        Self::with_limit(MAX_KEYS)
    }
}

impl SeenKeys {
    fn with_limit(limit: usize) -> Self {
        Self {
            limit,
            set: HashSet::new(),
            order: VecDeque::new(),
            forgotten: 0,
        }
    }

    /// Notes `key`; true when it was seen before.
    fn note(&mut self, key: &str) -> bool {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let hash = hasher.finish();
        if !self.set.insert(hash) {
            return true;
        }
        self.order.push_back(hash);
        if self.order.len() > self.limit {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
                self.forgotten += 1;
            }
        }
        false
    }

    /// Distinct keys seen (the forgotten ones included).
    fn unique(&self) -> u64 {
        self.set.len() as u64 + self.forgotten
    }

    fn clear(&mut self) {
        *self = Self::with_limit(self.limit);
    }
}

/// How the target answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mode {
    /// Status answered to deliveries (200 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Deliveries `status` applies to; then back to 200. `None`: until changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Share of deliveries (0..1) that fail at random with `fail_status`.
    #[serde(default)]
    pub fail_rate: f64,
    /// Status of random failures (default 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_status: Option<u16>,
    /// Delay before answering, in ms.
    #[serde(default)]
    pub delay_ms: u64,
}

/// The methods a delivery may use: those a message's `targetRestApiOperation` may name (the
/// message validation in `datasync_core::message` allows exactly these).
pub const DELIVERY_METHODS: [Method; 4] =
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// `GET /_received`: the counters, and (without `?summary=1`) the deliveries recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedReport {
    /// Deliveries received.
    pub total: u64,
    /// Distinct `Idempotency-Key`s answered 2xx.
    pub unique: u64,
    /// Deliveries answered 2xx whose `Idempotency-Key` had been answered 2xx before.
    pub duplicates: u64,
    /// Deliveries answered with a failure.
    pub failed: u64,
    /// The last [`MAX_RECORDED`] deliveries, oldest first (only when the target records them;
    /// left out with `?summary=1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Received>>,
}

/// `POST /_latencies`: the POST-to-target latencies drained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latencies {
    /// Microseconds from each benchmark payload's `benchSentUs` to its arrival.
    pub latencies_us: Vec<u64>,
}

/// One received request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers (lower-case names).
    pub headers: HashMap<String, String>,
    /// Body as text (lossy).
    pub body: String,
    /// The status answered.
    pub status: u16,
}

/// A request as kept, turned into a [`Received`] only when asked for: one copy of the body and
/// of each header value per delivery instead of a map of new strings. The copies matter:
/// hyper's header values, URI and body share its read buffers, and keeping them would keep
/// those buffers (about 13 MB more RSS after 20,000 deliveries).
#[derive(Debug)]
struct Recorded {
    method: Method,
    path: String,
    headers: Vec<(http::HeaderName, Bytes)>,
    body: Bytes,
    status: u16,
}

impl Recorded {
    fn to_received(&self) -> Received {
        Received {
            method: self.method.to_string(),
            path: self.path.clone(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&self.body).into_owned(),
            status: self.status,
        }
    }
}

/// The target's state.
#[derive(Debug, Default)]
pub struct DemoTarget {
    mode: Mutex<Mode>,
    /// The last [`MAX_RECORDED`] requests, oldest first (a ring: dropping the oldest moves
    /// nothing, where `Vec::remove(0)` moved all 2,000 on every delivery once full).
    received: Mutex<VecDeque<Recorded>>,
    keys: Mutex<SeenKeys>,
    total: AtomicU64,
    failed: AtomicU64,
    duplicates: AtomicU64,
    record_bodies: bool,
    /// Microseconds from `benchSentUs` (a payload field holding the sender's UNIX time in
    /// µs) to arrival, for the benchmark's POST-to-target latency.
    latencies: Mutex<Vec<u64>>,
}

impl DemoTarget {
    /// A target answering as `mode`; `record` keeps every request (tests), otherwise only
    /// counts (benchmarks).
    pub fn new(mode: Mode, record: bool) -> Arc<Self> {
        Arc::new(Self {
            mode: Mutex::new(mode),
            record_bodies: record,
            ..Self::default()
        })
    }

    /// Deliveries received.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Deliveries whose `Idempotency-Key` was seen before.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Distinct `Idempotency-Key`s answered 2xx.
    pub fn unique(&self) -> u64 {
        self.keys.lock().map(|k| k.unique()).unwrap_or(0)
    }

    /// The POST-to-target latencies (µs) of payloads that carried `benchSentUs`; drains them.
    pub fn take_latencies(&self) -> Vec<u64> {
        self.latencies
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    /// Deliveries answered with a failure.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The counters and, unless `summary`, the deliveries recorded.
    pub fn report(&self, summary: bool) -> ReceivedReport {
        let messages = (!summary).then(|| {
            self.received
                .lock()
                .map(|r| r.iter().map(Recorded::to_received).collect())
                .unwrap_or_default()
        });
        ReceivedReport {
            total: self.total(),
            unique: self.unique(),
            duplicates: self.duplicates(),
            failed: self.failed(),
            messages,
        }
    }

    /// Forgets every delivery and counter.
    pub fn clear(&self) {
        if let Ok(mut r) = self.received.lock() {
            r.clear();
        }
        if let Ok(mut k) = self.keys.lock() {
            k.clear();
        }
        self.total.store(0, Ordering::Relaxed);
        self.failed.store(0, Ordering::Relaxed);
        self.duplicates.store(0, Ordering::Relaxed);
    }

    /// Answers deliveries as `mode` from now on.
    pub fn set_mode(&self, mode: Mode) {
        if let Ok(mut m) = self.mode.lock() {
            *m = mode;
        }
    }

    /// Counts (and, when recording, keeps) a delivery answered `status`; `sent_us` is the
    /// `benchSentUs` its payload carried.
    fn note_delivery(
        &self,
        parts: http::request::Parts,
        body: &Bytes,
        status: u16,
        sent_us: Option<u64>,
    ) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(sent) = sent_us {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            if let Ok(mut l) = self.latencies.lock() {
                if l.len() < MAX_LATENCIES {
                    l.push(now.saturating_sub(sent));
                }
            }
        }
        let ok = (200..300).contains(&status);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(key) = parts
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
        {
            if ok && self.keys.lock().is_ok_and(|mut keys| keys.note(key)) {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        if self.record_bodies {
            let rec = Recorded {
                method: parts.method,
                path: parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), Bytes::copy_from_slice(v.as_bytes())))
                    .collect(),
                body: Bytes::copy_from_slice(body),
                status,
            };
            if let Ok(mut r) = self.received.lock() {
                if r.len() >= MAX_RECORDED {
                    r.pop_front();
                }
                r.push_back(rec);
            }
        }
    }

    fn next_status(&self) -> (u16, u64) {
        let Ok(mut mode) = self.mode.lock() else {
            return (500, 0);
        };
        let delay = mode.delay_ms;
        if let Some(status) = mode.status {
            match mode.count {
                Some(0) => {
                    mode.status = None;
                    mode.count = None;
                }
                Some(n) => {
                    mode.count = Some(n - 1);
                    return (status, delay);
                }
                None => return (status, delay),
            }
        }
        if mode.fail_rate > 0.0 && rand::random::<f64>() < mode.fail_rate {
            return (mode.fail_status.unwrap_or(503), delay);
        }
        (200, delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_counted_among_the_last_keys_and_unique_counts_all() {
        let mut seen = SeenKeys::with_limit(3);
        assert!(!seen.note("a"));
        assert!(seen.note("a"));
        for key in ["b", "c", "d"] {
            assert!(!seen.note(key));
        }
        // "a" was the oldest of four: forgotten, so it counts as new again.
        assert_eq!(seen.set.len(), 3);
        assert_eq!(seen.unique(), 4);
        assert!(seen.note("d"));
        assert!(!seen.note("a"));
        assert_eq!(seen.unique(), 5);
        seen.clear();
        assert_eq!(seen.unique(), 0);
        assert!(!seen.note("d"));
    }
}
