//! The demo target: a REST API that records what it receives and fails on request.
//!
//! - Any method and path other than the control routes is a delivery: recorded (method, path,
//!   headers, body), counted, with duplicates counted by `Idempotency-Key` (among the last
//!   [`MAX_KEYS`] distinct keys, kept as 64-bit hashes, so a stack that runs for days keeps
//!   its demo target within about 30 MB); answered with the current mode's status (200 by
//!   default) after the configured delay.
//! - `POST /_control` with `{"status": 503, "count": N}` answers `status` to the next N
//!   deliveries (omit `count` for "until changed"), `{"status": 200}` resets;
//!   `{"fail_rate": 0.1, "fail_status": 500}` fails that share at random; `{"delay_ms": 50}`.
//! - `GET /_received`: JSON `{"total", "unique", "duplicates", "failed", "messages": [...]}`
//!   (`?summary=1` leaves the messages out). `DELETE /_received` clears.
//! - `POST /_latencies` drains the POST-to-target latencies of `datasync bench` payloads (those
//!   starting with `{"benchSentUs":`), as `{"latencies_us": [...]}`, so the benchmark measures
//!   them against a running stack too (same machine, same clock).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash as _, Hasher as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

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

/// One received request.
#[derive(Debug, Clone, Serialize)]
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

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    json_text(status, value.to_string())
}

fn json_text(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(State(t): State<Arc<DemoTarget>>, request: Request<Body>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    match (request.method().clone(), path.as_str()) {
        (Method::POST, "/_control") => {
            let body = axum::body::to_bytes(request.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            match serde_json::from_slice::<Mode>(&body) {
                Ok(mode) => {
                    let doc = serde_json::to_value(&mode).unwrap_or_default();
                    if let Ok(mut m) = t.mode.lock() {
                        *m = mode;
                    }
                    json(StatusCode::OK, &doc)
                }
                Err(e) => json(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({"code": "InvalidParameter", "message": e.to_string()}),
                ),
            }
        }
        (Method::GET, "/_received") => {
            let summary = request.uri().query().is_some_and(|q| q.contains("summary"));
            let mut doc = serde_json::json!({
                "total": t.total(),
                "unique": t.unique(),
                "duplicates": t.duplicates(),
                "failed": t.failed.load(Ordering::Relaxed),
            });
            if !summary {
                let messages: Vec<Received> = t
                    .received
                    .lock()
                    .map(|r| r.iter().map(Recorded::to_received).collect())
                    .unwrap_or_default();
                doc["messages"] = serde_json::to_value(messages).unwrap_or_default();
            }
            json(StatusCode::OK, &doc)
        }
        (Method::POST, "/_latencies") => json(
            StatusCode::OK,
            &serde_json::json!({ "latencies_us": t.take_latencies() }),
        ),
        (Method::DELETE, "/_received") => {
            if let Ok(mut r) = t.received.lock() {
                r.clear();
            }
            if let Ok(mut k) = t.keys.lock() {
                k.clear();
            }
            t.total.store(0, Ordering::Relaxed);
            t.failed.store(0, Ordering::Relaxed);
            t.duplicates.store(0, Ordering::Relaxed);
            json(StatusCode::OK, &serde_json::json!({}))
        }
        _ => deliver(&t, request).await,
    }
}

async fn deliver(t: &DemoTarget, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 8 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let (status, delay) = t.next_status();
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    t.total.fetch_add(1, Ordering::Relaxed);
    if let Some(sent) = bench_sent_us(&body) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        if let Ok(mut l) = t.latencies.lock() {
            if l.len() < MAX_LATENCIES {
                l.push(now.saturating_sub(sent));
            }
        }
    }
    let ok = (200..300).contains(&status);
    if !ok {
        t.failed.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(key) = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
    {
        if ok && t.keys.lock().is_ok_and(|mut keys| keys.note(key)) {
            t.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }
    if t.record_bodies {
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
            body: Bytes::copy_from_slice(&body),
            status,
        };
        if let Ok(mut r) = t.received.lock() {
            if r.len() >= MAX_RECORDED {
                r.pop_front();
            }
            r.push_back(rec);
        }
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // Every delivery is answered: written directly, not through a `Value`.
    json_text(code, format!(r#"{{"received":{ok},"status":{status}}}"#))
}

/// `benchSentUs` when the body starts with it (cheap: no JSON parse of other payloads).
fn bench_sent_us(body: &[u8]) -> Option<u64> {
    let rest = body.strip_prefix(b"{\"benchSentUs\":")?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Serves `target` on `listener` until `shutdown`.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    target: Arc<DemoTarget>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let app = axum::Router::new().fallback(handle).with_state(target);
    // No Nagle: an answer written in two parts would otherwise wait for the client's delayed
    // ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
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
