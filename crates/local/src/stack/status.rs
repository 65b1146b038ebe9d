//! The status page: `GET /status` (JSON) and `GET /` (the same as a self-contained HTML page,
//! no external assets): streams with depth, and each consumer's lag and the age of the oldest
//! message it has not consumed; deliveries per second, failures by class, recent
//! notifications, archived objects.
//!
//! The page answers without a key, so it shows what a notification is about (the dead-lettered
//! message's id and why it failed), never its body: a dead-letter notification carries the
//! whole message, payload and custom headers included.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

use super::gateway::{GatewayStats, StatusFn};
use super::host::Pool;
use super::pump::Connector;
use crate::client::SignedClient;
use crate::demo_target::DemoTarget;
use crate::emulator::{Emulator, PublishedNotification, NAMESPACE};

/// What the status page reads.
pub struct Sources {
    /// The emulator.
    pub emulator: Emulator,
    /// A client signed with the LOCAL profile.
    pub signed: SignedClient,
    /// The archive bucket.
    pub bucket: String,
    /// The connectors.
    pub connectors: Vec<Arc<Connector>>,
    /// Gateway counters.
    pub gateway: Arc<GatewayStats>,
    /// Function pools.
    pub pools: Vec<Arc<Pool>>,
    /// The demo target.
    pub demo_target: Option<Arc<DemoTarget>>,
    /// Rounds of the retry schedule.
    pub retry_runs: Arc<AtomicU64>,
    /// Start time.
    pub started: Instant,
}

/// A [`StatusFn`] over `sources`.
pub fn status_fn(sources: Sources) -> StatusFn {
    let sources = Arc::new(sources);
    let last: Arc<Mutex<Option<(Instant, u64)>>> = Arc::new(Mutex::new(None));
    Arc::new(move || {
        let sources = Arc::clone(&sources);
        let last = Arc::clone(&last);
        Box::pin(async move { build(&sources, &last).await })
    })
}

async fn build(s: &Sources, last: &Mutex<Option<(Instant, u64)>>) -> Value {
    let stats = s.emulator.stream_stats().await.unwrap_or_default();
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut streams = Vec::new();
    for st in &stats {
        let depth: i64 = st.partitions.iter().map(|(_, lo, hi)| hi - lo).sum();
        let next: i64 = st.partitions.iter().map(|(_, _, hi)| *hi).sum();
        let mut consumers = Vec::new();
        // Per consumer, the first offset it has not consumed in each partition that has one.
        let mut waiting: Vec<Vec<(i64, i64)>> = Vec::new();
        for c in s.connectors.iter().filter(|c| c.stream_id == st.id) {
            let cps = c.checkpoints();
            let (lag, first) = backlog(&st.partitions, |p, lo| {
                cps.get(&(p as u32)).map_or(lo, |o| o + 1)
            });
            waiting.push(first);
            consumers.push(json!({
                "connector": c.name,
                "lag": lag,
                "delivered": c.stats.delivered.load(Ordering::Relaxed),
                "failed_attempts": c.stats.failures.load(Ordering::Relaxed),
            }));
        }
        for (group, parts) in &st.groups {
            let (lag, first) = backlog(&st.partitions, |p, _| {
                parts
                    .iter()
                    .find(|(gp, _, _)| *gp == p)
                    .map_or(0, |(_, _, committed)| committed.map_or(0, |c| c + 1))
            });
            waiting.push(first);
            consumers.push(json!({ "group": group, "lag": lag }));
        }
        oldest_ages(s, &st.id, &mut consumers, &waiting, now_ms).await;
        streams.push(json!({
            "name": st.name,
            "id": st.id,
            "depth": depth,
            "messages": next,
            "consumers": consumers,
        }));
    }
    let delivered = s.demo_target.as_ref().map_or(0, |t| t.total());
    let processed: u64 = s
        .connectors
        .iter()
        .filter(|c| c.name == "data-to-process")
        .map(|c| c.stats.delivered.load(Ordering::Relaxed))
        .sum();
    let now = Instant::now();
    let rate = match last.lock() {
        Ok(mut l) => {
            let r = l.map_or(0.0, |(t, n)| {
                let dt = now.duration_since(t).as_secs_f64();
                if dt > 0.0 {
                    processed.saturating_sub(n) as f64 / dt
                } else {
                    0.0
                }
            });
            *l = Some((now, processed));
            r
        }
        Err(_) => 0.0,
    };
    let failures: Vec<Value> = stats
        .iter()
        .filter(|st| st.name.contains("-errors-") || st.name.ends_with("-dead-letter"))
        .map(|st| {
            json!({
                "class": st.name,
                "messages": st.partitions.iter().map(|(_, _, hi)| hi).sum::<i64>(),
            })
        })
        .collect();
    let (published, notes) = s
        .emulator
        .recent_notifications(10)
        .await
        .unwrap_or_default();
    let recent: Vec<Value> = notes.iter().rev().map(notification_summary).collect();
    let objects = match s
        .signed
        .get(&format!(
            "/n/{NAMESPACE}/b/{}/o?limit=50&fields=size",
            s.bucket
        ))
        .await
    {
        Ok(a) if a.status.is_success() => a
            .json::<Value>()
            .ok()
            .and_then(|v| v.get("objects").cloned())
            .unwrap_or(Value::Null),
        _ => Value::Null,
    };
    json!({
        "uptime_seconds": s.started.elapsed().as_secs(),
        "streams": streams,
        "deliveries_per_second": rate,
        "processed_messages": processed,
        "demo_target_received": delivered,
        "failures_by_class": failures,
        "notifications": { "total": published, "recent": recent },
        "archived_objects": objects,
        "gateway": {
            "requests": s.gateway.requests.load(Ordering::Relaxed),
            "accepted": s.gateway.accepted.load(Ordering::Relaxed),
            "unauthorized": s.gateway.unauthorized.load(Ordering::Relaxed),
            "rate_limited": s.gateway.rate_limited.load(Ordering::Relaxed),
        },
        "functions": s.pools.iter().map(|p| json!({"name": p.name(), "instances": p.instances(), "calls": p.calls()})).collect::<Vec<_>>(),
        "retry_schedule_rounds": s.retry_runs.load(Ordering::Relaxed),
        "process": {
            "oci_requests_sent": datasync_core::oci::client::oci_requests_sent(),
            "oci_requests_sent_by_functions": datasync_core::oci::client::oci_requests_sent_by_resource_principals(),
            "rss_mb": proc_status_mb("VmRSS:"),
            "peak_rss_mb": proc_status_mb("VmHWM:"),
        },
    })
}

/// A consumer's lag over `partitions` (partition, oldest retained offset, next offset), given
/// the next offset it would consume in each (`next(partition, oldest retained)`); and the first
/// offset it has not consumed in each partition that has one, whose age [`oldest_ages`] reads.
fn backlog(
    partitions: &[(i64, i64, i64)],
    next: impl Fn(i64, i64) -> i64,
) -> (i64, Vec<(i64, i64)>) {
    let mut lag = 0;
    let mut first = Vec::new();
    for &(p, lo, hi) in partitions {
        let done = next(p, lo);
        lag += (hi - done).max(0);
        if done.max(lo) < hi {
            first.push((p, done.max(lo)));
        }
    }
    (lag, first)
}

/// Sets each consumer's `oldest_age_seconds`: how long ago the oldest message it has not
/// consumed was appended (one decimal), or null when it has consumed everything.
async fn oldest_ages(
    s: &Sources,
    stream_id: &str,
    consumers: &mut [Value],
    waiting: &[Vec<(i64, i64)>],
    now_ms: i64,
) {
    let positions: Vec<(i64, i64)> = waiting.iter().flatten().copied().collect();
    let times = if positions.is_empty() {
        Vec::new()
    } else {
        s.emulator
            .append_times(stream_id, positions)
            .await
            .unwrap_or_default()
    };
    let mut times = times.into_iter();
    for (consumer, first) in consumers.iter_mut().zip(waiting) {
        let oldest = first.iter().filter_map(|_| times.next().flatten()).min();
        consumer["oldest_age_seconds"] = oldest.map_or(Value::Null, |ts| {
            json!(((now_ms - ts).max(0) as f64 / 100.0).round() / 10.0)
        });
    }
}

/// An `oldest_age_seconds` as the page and `datasync status` show it: `4.2 s`, `3 min`, `2.5 h`.
pub fn age_text(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// A memory figure of this process from `/proc/self/status` in MB (null where unknown).
fn proc_status_mb(field: &str) -> Value {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(Value::Null, |kb| json!((kb / 102.4).round() / 10.0))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The status document as an HTML page (refreshes every 2 s, no external assets).
pub fn html(doc: &Value) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>datasync</title><style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}pre{background:#f4f4f4;padding:1em}</style>\
         </head><body><h1>datasync local stack</h1>",
    );
    let _ = write!(
        out,
        "<p>deliveries/s: {:.0} &middot; processed: {} &middot; uptime: {} s</p><h2>Streams</h2><table><tr><th>stream</th><th>depth</th><th>consumers (lag, age of the oldest unconsumed)</th></tr>",
        doc["deliveries_per_second"].as_f64().unwrap_or(0.0),
        doc["processed_messages"],
        doc["uptime_seconds"]
    );
    for s in doc["streams"].as_array().into_iter().flatten() {
        let consumers: Vec<String> = s["consumers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let who = c["connector"]
                    .as_str()
                    .or(c["group"].as_str())
                    .unwrap_or("?");
                match c["oldest_age_seconds"].as_f64() {
                    Some(age) => format!("{who} ({}, {})", c["lag"], age_text(age)),
                    None => format!("{who} ({})", c["lag"]),
                }
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(s["name"].as_str().unwrap_or("")),
            s["depth"],
            esc(&consumers.join(", "))
        );
    }
    out.push_str("</table><h2>Everything</h2><pre>");
    out.push_str(&esc(&serde_json::to_string_pretty(doc).unwrap_or_default()));
    out.push_str("</pre></body></html>");
    out
}

/// A notification as the status page shows it: when, its title, its size, and when the body is
/// a datasync message, that message's id, failed attempts and last error. Not the body itself,
/// and not the target URL (its query may carry a token).
fn notification_summary(n: &PublishedNotification) -> Value {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct About {
        id: Option<String>,
        #[serde(default)]
        attempt: u32,
        last_error: Option<datasync_core::message::LastError>,
    }
    let about = serde_json::from_str::<About>(&n.body)
        .ok()
        .filter(|a| a.id.is_some())
        .map(|a| json!({ "id": a.id, "attempts": a.attempt, "last_error": a.last_error }));
    json!({
        "time": n.time,
        "title": n.title,
        "bytes": n.body.len(),
        "message": about,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_counts_lag_and_finds_the_first_unconsumed_offset_of_each_partition() {
        // Partition 0 holds offsets 5..10, consumed up to 6; partition 1 holds 0..3, all
        // consumed; partition 2 holds 4..8 but the consumer's position is 2 (trimmed since).
        let partitions = [(0, 5, 10), (1, 0, 3), (2, 4, 8)];
        let next = |p: i64, _| [7, 3, 2][p as usize];
        assert_eq!(backlog(&partitions, next), (3 + 6, vec![(0, 7), (2, 4)]));
        assert_eq!(backlog(&partitions, |_, _| 100), (0, vec![]));
    }
}
