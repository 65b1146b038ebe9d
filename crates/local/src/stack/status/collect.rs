//! Reads the running stack into a [`Status`]: the emulator's streams and notifications, the
//! connectors' checkpoints and counters, the gateway's counters, the pools, the process.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use datasync_core::deliver::DeadLetterAlert;
use datasync_core::oci::models::{ListObjects, ObjectSummary};

use super::document::{
    Consumer, FailureCount, FunctionStatus, GatewayCounts, NotificationSummary, Notifications,
    NotifiedMessage, ProcessStatus, Reader, Status, StorageStatus, StreamStatus,
};
use super::failing::{self, DeadLetters, ErrorBacklog};
use super::health::{self, Health, StreamInput, StreamKind};
use super::history::{now_ms, History, Sample};
use super::Sources;
use crate::emulator::{PublishedNotification, StreamStats, NAMESPACE};
use crate::stack::start::pump::DATA_CONNECTOR;
use crate::stack::streams::{DATA, DEAD_LETTER};

/// The document now. `last` keeps (when, processed messages) of the previous call, for the
/// deliveries per second since then.
pub(super) async fn collect(
    s: &Sources,
    history: &History,
    last: &Mutex<Option<(Instant, u64)>>,
) -> Status {
    let stats = s.emulator.stream_stats().await.unwrap_or_default();
    let now_ms = now_ms();
    let mut streams = Vec::with_capacity(stats.len());
    for st in &stats {
        streams.push(stream_status(s, st, now_ms).await);
    }
    let backlogs = failing::error_backlogs(s, &stats, now_ms).await;
    let failing_now = failing::failing_now(s, &stats).await;
    let dead_letters = failing::dead_letters(s, &stats).await;
    let functions: Vec<FunctionStatus> = s
        .pools
        .iter()
        .map(|p| FunctionStatus {
            name: p.name().to_owned(),
            instances: p.instances(),
            calls: p.calls(),
            hosts: p.hosts(),
        })
        .collect();
    let health = judge(
        s,
        history,
        Judged {
            streams: &streams,
            backlogs: &backlogs,
            dead_letters: &dead_letters,
            functions: &functions,
        },
        now_ms,
    );
    let processed: u64 = s
        .connectors
        .iter()
        .filter(|c| c.name == "data-to-process")
        .map(|c| c.stats.delivered.load(Ordering::Relaxed))
        .sum();
    let failures_by_class = stats
        .iter()
        .filter(|st| st.name.contains("-errors-") || st.name.ends_with("-dead-letter"))
        .map(|st| FailureCount {
            class: st.name.clone(),
            messages: st.partitions.iter().map(|(_, _, hi)| hi).sum(),
        })
        .collect();
    let (total, notes) = s
        .emulator
        .recent_notifications(10)
        .await
        .unwrap_or_default();
    Status {
        uptime_seconds: s.started.elapsed().as_secs(),
        streams,
        deliveries_per_second: rate(last, processed),
        processed_messages: processed,
        demo_target_received: s.demo_target.as_ref().map_or(0, |t| t.total()),
        failures_by_class,
        notifications: notifications(total, &notes),
        archived_objects: archived_objects(s).await,
        gateway: GatewayCounts {
            requests: s.gateway.requests.load(Ordering::Relaxed),
            accepted: s.gateway.accepted.load(Ordering::Relaxed),
            unauthorized: s.gateway.unauthorized.load(Ordering::Relaxed),
            rate_limited: s.gateway.rate_limited.load(Ordering::Relaxed),
        },
        functions,
        retry_schedule_rounds: s.retry_runs.load(Ordering::Relaxed),
        process: ProcessStatus {
            oci_requests_sent: datasync_core::oci::client::oci_requests_sent(),
            oci_requests_sent_by_functions:
                datasync_core::oci::client::oci_requests_sent_by_resource_principals(),
            rss_mb: proc_status_mb("VmRSS:"),
            peak_rss_mb: proc_status_mb("VmHWM:"),
        },
        storage: storage(s),
        routes: crate::stack::routes_seen::merge(s.pools.iter().map(|p| p.routes())),
        health,
        failing_now,
        dead_letters,
        history: history.doc(),
    }
}

/// What [`judge`] judges.
struct Judged<'a> {
    streams: &'a [StreamStatus],
    backlogs: &'a [ErrorBacklog],
    dead_letters: &'a DeadLetters,
    functions: &'a [FunctionStatus],
}

/// Each stream's and target host's level, and the worst.
fn judge(s: &Sources, history: &History, j: Judged<'_>, now_ms: i64) -> Health {
    let cfg = &s.config;
    let window = cfg.health_window_seconds;
    let now_totals = s
        .exporter
        .as_ref()
        .map(|e| e.totals.snapshot())
        .unwrap_or_default();
    let counts = history.window(&now_totals, now_ms, Duration::from_secs(window));
    let mut inputs = Vec::new();
    let data = DATA.stream_name(&s.name_prefix);
    if let Some(c) = j.streams.iter().find(|st| st.name == data).and_then(|st| {
        st.consumers
            .iter()
            .find(|c| c.reader.name() == DATA_CONNECTOR)
    }) {
        inputs.push(StreamInput {
            stream: data.clone(),
            kind: StreamKind::Data,
            pending: c.lag,
            oldest_age: c.oldest_age_seconds,
        });
    }
    inputs.extend(j.backlogs.iter().map(|b| StreamInput {
        stream: b.stream.clone(),
        kind: StreamKind::Errors { retried: b.retried },
        pending: b.pending,
        oldest_age: b.oldest_age,
    }));
    let dead = DEAD_LETTER.stream_name(&s.name_prefix);
    if j.streams.iter().any(|st| st.name == dead) {
        let since = failing::rfc3339_ms(now_ms - i64::try_from(window * 1000).unwrap_or(0));
        let recent = j
            .dead_letters
            .rows
            .iter()
            .filter(|r| r.dead_lettered_at >= since)
            .count() as u64;
        inputs.push(StreamInput {
            stream: dead,
            kind: StreamKind::DeadLetter { recent },
            pending: j.dead_letters.retained,
            oldest_age: None,
        });
    }
    let streams: Vec<_> = inputs
        .iter()
        .map(|i| health::stream_health(cfg, window, i))
        .collect();
    let reports: Vec<_> = j.functions.iter().flat_map(|f| f.hosts.clone()).collect();
    let hosts = health::hosts(cfg, window, &reports, &counts);
    let overall = streams
        .iter()
        .map(|x| x.level)
        .chain(hosts.iter().map(|h| h.level))
        .max()
        .unwrap_or_default();
    Health {
        overall,
        window_seconds: window,
        streams,
        hosts,
    }
}

/// One sample of the charts' history: the running sums and the backlog ages now.
pub(super) async fn sample(s: &Sources) -> Sample {
    let stats = s.emulator.stream_stats().await.unwrap_or_default();
    let now_ms = now_ms();
    let data = DATA.stream_name(&s.name_prefix);
    let backlog_age = match stats.iter().find(|st| st.name == data) {
        Some(st) => stream_status(s, st, now_ms)
            .await
            .consumers
            .into_iter()
            .find(|c| c.reader.name() == DATA_CONNECTOR)
            .and_then(|c| c.oldest_age_seconds),
        None => None,
    };
    let retry_backlog_age = failing::error_backlogs(s, &stats, now_ms)
        .await
        .into_iter()
        .filter_map(|b| b.oldest_age)
        .reduce(f64::max);
    Sample {
        at_ms: now_ms,
        totals: s
            .exporter
            .as_ref()
            .map(|e| e.totals.snapshot())
            .unwrap_or_default(),
        backlog_age,
        retry_backlog_age,
    }
}

/// Whether the emulator's database takes writes.
fn storage(s: &Sources) -> StorageStatus {
    let h = s.emulator.storage_health();
    let ago = h.last_failure.as_ref().map(|(_, at)| {
        let secs = SystemTime::now()
            .duration_since(*at)
            .map_or(0.0, |d| d.as_secs_f64());
        (secs * 10.0).round() / 10.0
    });
    StorageStatus {
        database: s
            .emulator
            .data_dir()
            .join(crate::emulator::DATABASE_FILE)
            .display()
            .to_string(),
        writing: h.writing,
        failed_writes: h.failed_writes,
        last_failure: h.last_failure.map(|(why, _)| why),
        last_failure_seconds_ago: ago,
    }
}

/// One stream: depth, messages, and each connector and consumer group reading it.
async fn stream_status(s: &Sources, st: &StreamStats, now_ms: i64) -> StreamStatus {
    let mut consumers = Vec::new();
    // Per consumer, the first offset it has not consumed in each partition that has one.
    let mut waiting: Vec<Vec<(i64, i64)>> = Vec::new();
    for c in s.connectors.iter().filter(|c| c.stream_id == st.id) {
        let cps = c.checkpoints();
        let (lag, first) = backlog(&st.partitions, |p, lo| {
            cps.get(&(p as u32)).map_or(lo, |o| o + 1)
        });
        waiting.push(first);
        consumers.push(Consumer {
            reader: Reader::Connector {
                connector: c.name.clone(),
                delivered: c.stats.delivered.load(Ordering::Relaxed),
                failed_attempts: c.stats.failures.load(Ordering::Relaxed),
                given_up: c.stats.given_up.load(Ordering::Relaxed),
            },
            lag,
            oldest_age_seconds: None,
        });
    }
    for (group, parts) in &st.groups {
        let (lag, first) = backlog(&st.partitions, |p, _| {
            parts
                .iter()
                .find(|(gp, _, _)| *gp == p)
                .map_or(0, |(_, _, committed)| committed.map_or(0, |c| c + 1))
        });
        waiting.push(first);
        consumers.push(Consumer {
            reader: Reader::Group {
                group: group.clone(),
            },
            lag,
            oldest_age_seconds: None,
        });
    }
    oldest_ages(s, &st.id, &mut consumers, &waiting, now_ms).await;
    StreamStatus {
        name: st.name.clone(),
        id: st.id.clone(),
        depth: st.partitions.iter().map(|(_, lo, hi)| hi - lo).sum(),
        messages: st.partitions.iter().map(|(_, _, hi)| *hi).sum(),
        consumers,
    }
}

/// Messages handed to process per second since the previous call (0 on the first).
fn rate(last: &Mutex<Option<(Instant, u64)>>, processed: u64) -> f64 {
    let now = Instant::now();
    let Ok(mut l) = last.lock() else {
        return 0.0;
    };
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

/// The first 50 objects of the archive bucket with their sizes; `None` when listing fails.
async fn archived_objects(s: &Sources) -> Option<Vec<ObjectSummary>> {
    let path = format!("/n/{NAMESPACE}/b/{}/o?limit=50&fields=size", s.bucket);
    match s.signed.get(&path).await {
        Ok(a) if a.status.is_success() => a.json::<ListObjects>().ok().map(|l| l.objects),
        _ => None,
    }
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
/// consumed was appended (one decimal), or `None` when it has consumed everything.
async fn oldest_ages(
    s: &Sources,
    stream_id: &str,
    consumers: &mut [Consumer],
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
        consumer.oldest_age_seconds =
            oldest.map(|ts| ((now_ms - ts).max(0) as f64 / 100.0).round() / 10.0);
    }
}

/// A memory figure of this process from `/proc/self/status` in MB (one decimal), `None` where
/// unknown.
fn proc_status_mb(field: &str) -> Option<f64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| (kb / 102.4).round() / 10.0)
}

/// The topic's notifications: `total` and the `recent` ones, and the functions' alert counts.
fn notifications(total: u64, recent: &[PublishedNotification]) -> Notifications {
    let alerts = datasync_core::deliver::notify_totals();
    Notifications {
        total,
        recent: recent.iter().rev().map(notification_summary).collect(),
        alerts_published: alerts.published,
        alert_publish_failures: alerts.publish_failures,
        alerts_held_back: alerts.held_back,
    }
}

/// A notification as the status page shows it: when, its title, its size, and what it is
/// about: the dead letters a process or retry alert names, or the datasync message a
/// dead-letter connector sent (id, failed attempts, last error). Not the body itself, and not
/// the target URL (its query may carry a token).
fn notification_summary(n: &PublishedNotification) -> NotificationSummary {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct About {
        id: Option<String>,
        #[serde(default)]
        attempt: u32,
        last_error: Option<datasync_core::message::LastError>,
    }
    let message = serde_json::from_str::<About>(&n.body).ok().and_then(|a| {
        Some(NotifiedMessage {
            id: a.id?,
            attempts: a.attempt,
            last_error: a.last_error,
        })
    });
    let dead_letters = DeadLetterAlert::parse(&n.body)
        .map(|a| {
            a.messages
                .iter()
                .map(|d| NotifiedMessage {
                    id: d.id.clone(),
                    attempts: d.attempts,
                    last_error: Some(d.last_error()),
                })
                .collect()
        })
        .unwrap_or_default();
    NotificationSummary {
        time: n.time.clone(),
        title: n.title.clone(),
        bytes: n.body.len(),
        message,
        dead_letters,
    }
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
