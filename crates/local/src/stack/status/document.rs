//! The status document, `GET /status`: one serde type the stack serializes and `datasync
//! status`, the benchmark and the tests deserialize. Its JSON field names are a contract (the
//! HTML page, scripts and users read them): a test below pins every one.

use datasync_core::deliver::HostHealth;
use datasync_core::message::LastError;
use datasync_core::oci::models::ObjectSummary;
use serde::{Deserialize, Serialize};

use super::failing::{DeadLetters, FailingNow};
use super::health::Health;
use super::history::HistoryDoc;

/// The whole document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Seconds since the stack started.
    pub uptime_seconds: u64,
    /// Every active stream with its consumers.
    pub streams: Vec<StreamStatus>,
    /// Messages the data connector handed to process per second, since the last request for
    /// this document.
    pub deliveries_per_second: f64,
    /// Messages the data connector has handed to process and process answered 200 for.
    pub processed_messages: u64,
    /// Deliveries the demo target received (0 without one).
    pub demo_target_received: u64,
    /// Messages ever appended to each error stream and the dead-letter stream.
    pub failures_by_class: Vec<FailureCount>,
    /// Notifications published to the alerts topic.
    pub notifications: Notifications,
    /// The first objects of the archive bucket; `None` when the listing failed.
    pub archived_objects: Option<Vec<ObjectSummary>>,
    /// The gateway's counters.
    pub gateway: GatewayCounts,
    /// The function pools.
    pub functions: Vec<FunctionStatus>,
    /// Rounds the retry schedule has completed.
    pub retry_schedule_rounds: u64,
    /// The stack process itself.
    pub process: ProcessStatus,
    /// Whether the emulator's database takes writes.
    #[serde(default)]
    pub storage: StorageStatus,
    /// Green, amber or red per stream and target host, and the worst: what the page shows
    /// first.
    #[serde(default)]
    pub health: Health,
    /// The messages waiting in the error streams now (at most 50 rows).
    #[serde(default)]
    pub failing_now: FailingNow,
    /// The newest dead letters (at most 50 rows).
    #[serde(default)]
    pub dead_letters: DeadLetters,
    /// The charts' last 15 minutes.
    #[serde(default)]
    pub history: HistoryDoc,
    /// Per-route counts, from the functions' answers (docs/routes.md); empty without routes.
    #[serde(default)]
    pub routes: Vec<RouteCounts>,
}

/// One route's messages since the stack started, as the functions' answers report them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCounts {
    /// The route's name.
    pub route: String,
    /// Messages populate accepted (stored in the data stream).
    pub accepted: u64,
    /// Messages its filter left out (answered 200 `{"filtered":true}`, not stored).
    pub filtered: u64,
    /// Messages process or retry delivered.
    pub delivered: u64,
    /// Delivery attempts that failed (the message re-routed to be retried, or dead-lettered).
    pub failed: u64,
}

/// The emulator's database: whether writes succeed. While they fail, every request that
/// writes (a sync, a connector's checkpoint in a group, a notification) answers 503.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageStatus {
    /// The database file.
    pub database: String,
    /// Whether the last write succeeded (true before any write).
    pub writing: bool,
    /// Writes that failed since the stack started.
    pub failed_writes: u64,
    /// Why the last failed write failed; `None` when none failed.
    pub last_failure: Option<String>,
    /// How long ago it failed, in seconds with one decimal; `None` when none failed.
    pub last_failure_seconds_ago: Option<f64>,
}

impl Default for StorageStatus {
    fn default() -> Self {
        Self {
            database: String::new(),
            writing: true,
            failed_writes: 0,
            last_failure: None,
            last_failure_seconds_ago: None,
        }
    }
}

/// One stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStatus {
    /// Its name, e.g. `datasync-errors-default`.
    pub name: String,
    /// Its OCID.
    pub id: String,
    /// Messages retained (sum over partitions).
    pub depth: i64,
    /// Messages ever appended (the sum of the partitions' next offsets).
    pub messages: i64,
    /// The connectors and consumer groups reading it.
    pub consumers: Vec<Consumer>,
}

/// A connector or consumer group reading a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consumer {
    /// Who reads.
    #[serde(flatten)]
    pub reader: Reader,
    /// Messages it has not consumed yet.
    pub lag: i64,
    /// How long ago the oldest message it has not consumed was appended, in seconds with one
    /// decimal; `None` (JSON null) when it has consumed everything.
    pub oldest_age_seconds: Option<f64>,
}

/// Who a [`Consumer`] is: its fields sit beside `lag` in the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reader {
    /// One of the stack's connectors (the pump).
    Connector {
        /// The connector's name, e.g. `data-to-process`.
        connector: String,
        /// Messages its target took.
        delivered: u64,
        /// Failed attempts to hand a batch over (each is retried).
        failed_attempts: u64,
        /// Messages given up on after bounded tries (the Notifications connector: a message
        /// the topic keeps refusing).
        #[serde(default)]
        given_up: u64,
    },
    /// A consumer group (the retry function's group mode).
    Group {
        /// The group's name.
        group: String,
    },
}

impl Reader {
    /// The connector's or group's name.
    pub fn name(&self) -> &str {
        match self {
            Reader::Connector { connector, .. } => connector,
            Reader::Group { group } => group,
        }
    }
}

/// Messages appended to one error or dead-letter stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureCount {
    /// The stream's name.
    pub class: String,
    /// Messages ever appended to it.
    pub messages: i64,
}

/// The alerts topic's notifications.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Notifications {
    /// Published in all.
    pub total: u64,
    /// The last few, newest first.
    pub recent: Vec<NotificationSummary>,
    /// Dead-letter alerts the process and retry functions published.
    #[serde(default)]
    pub alerts_published: u64,
    /// Their PublishMessage calls that failed (each alert's dead letters are folded into the
    /// next one).
    #[serde(default)]
    pub alert_publish_failures: u64,
    /// Their alerts held back by the per-instance rate limit (folded into the next one).
    #[serde(default)]
    pub alerts_held_back: u64,
}

/// A notification as the status page shows it: never its body, which may carry payloads (a
/// dead-letter alert with payloads on, or the dead-letter connector's whole messages).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotificationSummary {
    /// When it was published, RFC 3339.
    pub time: String,
    /// Its title, when it has one.
    pub title: Option<String>,
    /// The body's size.
    pub bytes: usize,
    /// What it is about, when the body is a datasync message (the dead-letter connector's).
    pub message: Option<NotifiedMessage>,
    /// The dead letters it names, when it is a dead-letter alert of process or retry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_letters: Vec<NotifiedMessage>,
}

/// The datasync message a notification carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifiedMessage {
    /// The message id.
    pub id: String,
    /// Failed attempts.
    pub attempts: u32,
    /// Why it failed last.
    pub last_error: Option<LastError>,
}

/// The gateway's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayCounts {
    /// API requests answered, any status (the status page not counted).
    pub requests: u64,
    /// Requests a function answered 2xx.
    pub accepted: u64,
    /// Refused by auth (401/403).
    pub unauthorized: u64,
    /// Refused by the rate limit (429).
    pub rate_limited: u64,
}

/// One function pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionStatus {
    /// The function's name.
    pub name: String,
    /// Instances running.
    pub instances: usize,
    /// Calls made.
    pub calls: u64,
    /// The target hosts its answers reported: breaker state, adaptive concurrency, pause
    /// (`docs/isolation.md`; the newest report per host, whichever instance made it).
    #[serde(default)]
    pub hosts: Vec<HostHealth>,
}

/// The stack process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessStatus {
    /// OCI requests the process has sent (functions, pump and status page).
    pub oci_requests_sent: u64,
    /// Of those, the ones the functions sent (signed with resource principals).
    pub oci_requests_sent_by_functions: u64,
    /// Resident memory in MB, one decimal; `None` where unknown.
    pub rss_mb: Option<f64>,
    /// Peak resident memory in MB, one decimal; `None` where unknown.
    pub peak_rss_mb: Option<f64>,
}

impl Status {
    /// The stream named `name`.
    pub fn stream(&self, name: &str) -> Option<&StreamStatus> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The consumer of stream `stream` named `reader` (a connector or a group).
    pub fn consumer(&self, stream: &str, reader: &str) -> Option<&Consumer> {
        self.stream(stream)?
            .consumers
            .iter()
            .find(|c| c.reader.name() == reader)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::stack::status::failing::{DeadLetterRow, FailingRow, Shown};
    use crate::stack::status::health::{HostLevel, Level, StreamHealth};
    use crate::stack::status::history::HistoryPoint;

    /// Every JSON pointer of `v` that leads to a value that is not an object or array of
    /// objects (array elements as `*`).
    fn pointers(v: &serde_json::Value, at: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    pointers(v, &format!("{at}/{k}"), out);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    pointers(item, &format!("{at}/*"), out);
                }
            }
            _ => out.push(at.to_owned()),
        }
    }

    fn sample() -> Status {
        Status {
            uptime_seconds: 5,
            streams: vec![StreamStatus {
                name: "datasync-data".into(),
                id: "ocid1.stream.d".into(),
                depth: 3,
                messages: 9,
                consumers: vec![
                    Consumer {
                        reader: Reader::Connector {
                            connector: "data-to-process".into(),
                            delivered: 6,
                            failed_attempts: 0,
                            given_up: 0,
                        },
                        lag: 3,
                        oldest_age_seconds: Some(4.2),
                    },
                    Consumer {
                        reader: Reader::Group { group: "g".into() },
                        lag: 0,
                        oldest_age_seconds: None,
                    },
                ],
            }],
            deliveries_per_second: 12.5,
            processed_messages: 6,
            demo_target_received: 6,
            failures_by_class: vec![FailureCount {
                class: "datasync-dead-letter".into(),
                messages: 1,
            }],
            notifications: Notifications {
                total: 1,
                recent: vec![NotificationSummary {
                    time: "2026-11-28T06:24:54.873Z".into(),
                    title: Some("t".into()),
                    bytes: 588,
                    message: Some(NotifiedMessage {
                        id: "01a2".into(),
                        attempts: 1,
                        last_error: None,
                    }),
                    dead_letters: vec![NotifiedMessage {
                        id: "01a3".into(),
                        attempts: 2,
                        last_error: None,
                    }],
                }],
                alerts_published: 1,
                alert_publish_failures: 0,
                alerts_held_back: 0,
            },
            archived_objects: Some(vec![ObjectSummary {
                name: "dead-letter/0/1.jsonl".into(),
                size: Some(10),
                etag: None,
                time_created: None,
            }]),
            gateway: GatewayCounts::default(),
            functions: vec![FunctionStatus {
                name: "populate".into(),
                instances: 2,
                calls: 7,
                hosts: vec![HostHealth {
                    host: "api.example.com".into(),
                    breaker: datasync_core::deliver::BreakerState::Open,
                    probes_in_ms: Some(1_000),
                    concurrency: 4,
                    max_concurrency: 16,
                    paused_ms: Some(500),
                }],
            }],
            retry_schedule_rounds: 1,
            process: ProcessStatus {
                rss_mb: Some(40.1),
                ..ProcessStatus::default()
            },
            storage: StorageStatus {
                database: "/d/emulator.db".into(),
                writing: false,
                failed_writes: 2,
                last_failure: Some("the emulator's database failed: disk full".into()),
                last_failure_seconds_ago: Some(1.5),
            },
            health: Health {
                overall: Level::Red,
                window_seconds: 60,
                streams: vec![StreamHealth {
                    stream: "datasync-data".into(),
                    level: Level::Green,
                    reason: "every message handed to process".into(),
                    pending_now: 0,
                    oldest_age_seconds: None,
                }],
                hosts: vec![HostLevel {
                    host: "api.example.com".into(),
                    level: Level::Red,
                    reason: "breaker open".into(),
                    delivered: 1,
                    failed: 3,
                    failure_ratio: Some(0.75),
                    breaker: Some("open".into()),
                }],
            },
            failing_now: FailingNow {
                pending: 1,
                rows: vec![FailingRow {
                    message: Shown {
                        id: Some("01a4".into()),
                        key: Some("k".into()),
                        target_host: Some("api.example.com".into()),
                        class: Some("serviceUnavailable".into()),
                        status: Some(503),
                        attempts: 1,
                    },
                    next_attempt: Some("2026-11-28T06:25:00Z".into()),
                    stream: "datasync-errors-service-unavailable".into(),
                    partition: 0,
                    offset: 0,
                    appended_at: "2026-11-28T06:24:54.873Z".into(),
                }],
            },
            dead_letters: DeadLetters {
                retained: 1,
                rows: vec![DeadLetterRow {
                    message: Shown {
                        id: Some("01a3".into()),
                        key: None,
                        target_host: Some("api.example.com".into()),
                        class: Some("clientError".into()),
                        status: Some(400),
                        attempts: 1,
                    },
                    dead_lettered_at: "2026-11-28T06:24:54.873Z".into(),
                    partition: 0,
                    offset: 0,
                    archive_object: Some("dead-letter/0/1.jsonl".into()),
                }],
            },
            history: HistoryDoc {
                interval_seconds: 5.0,
                points: vec![HistoryPoint {
                    time_ms: 1,
                    accepted_per_second: 1.0,
                    delivered_per_second: 1.0,
                    failed_per_second: 0.0,
                    backlog_age_seconds: None,
                    retry_backlog_age_seconds: Some(2.0),
                }],
            },
            routes: vec![RouteCounts {
                route: "orders".into(),
                accepted: 3,
                filtered: 1,
                delivered: 2,
                failed: 1,
            }],
        }
    }

    #[test]
    fn the_json_field_names_stay_as_they_are() {
        let doc = serde_json::to_value(sample()).unwrap();
        let mut found = Vec::new();
        pointers(&doc, "", &mut found);
        found.sort();
        found.dedup();
        let expected = [
            "/archived_objects/*/name",
            "/archived_objects/*/size",
            "/dead_letters/retained",
            "/dead_letters/rows/*/archive_object",
            "/dead_letters/rows/*/attempts",
            "/dead_letters/rows/*/class",
            "/dead_letters/rows/*/dead_lettered_at",
            "/dead_letters/rows/*/id",
            "/dead_letters/rows/*/key",
            "/dead_letters/rows/*/offset",
            "/dead_letters/rows/*/partition",
            "/dead_letters/rows/*/status",
            "/dead_letters/rows/*/target_host",
            "/deliveries_per_second",
            "/demo_target_received",
            "/failing_now/pending",
            "/failing_now/rows/*/appended_at",
            "/failing_now/rows/*/attempts",
            "/failing_now/rows/*/class",
            "/failing_now/rows/*/id",
            "/failing_now/rows/*/key",
            "/failing_now/rows/*/next_attempt",
            "/failing_now/rows/*/offset",
            "/failing_now/rows/*/partition",
            "/failing_now/rows/*/status",
            "/failing_now/rows/*/stream",
            "/failing_now/rows/*/target_host",
            "/failures_by_class/*/class",
            "/failures_by_class/*/messages",
            "/functions/*/calls",
            "/functions/*/hosts/*/breaker",
            "/functions/*/hosts/*/concurrency",
            "/functions/*/hosts/*/host",
            "/functions/*/hosts/*/maxConcurrency",
            "/functions/*/hosts/*/pausedMs",
            "/functions/*/hosts/*/probesInMs",
            "/functions/*/instances",
            "/functions/*/name",
            "/gateway/accepted",
            "/gateway/rate_limited",
            "/gateway/requests",
            "/gateway/unauthorized",
            "/health/hosts/*/breaker",
            "/health/hosts/*/delivered",
            "/health/hosts/*/failed",
            "/health/hosts/*/failure_ratio",
            "/health/hosts/*/host",
            "/health/hosts/*/level",
            "/health/hosts/*/reason",
            "/health/overall",
            "/health/streams/*/level",
            "/health/streams/*/oldest_age_seconds",
            "/health/streams/*/pending_now",
            "/health/streams/*/reason",
            "/health/streams/*/stream",
            "/health/window_seconds",
            "/history/interval_seconds",
            "/history/points/*/accepted_per_second",
            "/history/points/*/backlog_age_seconds",
            "/history/points/*/delivered_per_second",
            "/history/points/*/failed_per_second",
            "/history/points/*/retry_backlog_age_seconds",
            "/history/points/*/time_ms",
            "/notifications/alert_publish_failures",
            "/notifications/alerts_held_back",
            "/notifications/alerts_published",
            "/notifications/recent/*/bytes",
            "/notifications/recent/*/dead_letters/*/attempts",
            "/notifications/recent/*/dead_letters/*/id",
            "/notifications/recent/*/dead_letters/*/last_error",
            "/notifications/recent/*/message/attempts",
            "/notifications/recent/*/message/id",
            "/notifications/recent/*/message/last_error",
            "/notifications/recent/*/time",
            "/notifications/recent/*/title",
            "/notifications/total",
            "/process/oci_requests_sent",
            "/process/oci_requests_sent_by_functions",
            "/process/peak_rss_mb",
            "/process/rss_mb",
            "/processed_messages",
            "/retry_schedule_rounds",
            "/routes/*/accepted",
            "/routes/*/delivered",
            "/routes/*/failed",
            "/routes/*/filtered",
            "/routes/*/route",
            "/storage/database",
            "/storage/failed_writes",
            "/storage/last_failure",
            "/storage/last_failure_seconds_ago",
            "/storage/writing",
            "/streams/*/consumers/*/connector",
            "/streams/*/consumers/*/delivered",
            "/streams/*/consumers/*/failed_attempts",
            "/streams/*/consumers/*/given_up",
            "/streams/*/consumers/*/group",
            "/streams/*/consumers/*/lag",
            "/streams/*/consumers/*/oldest_age_seconds",
            "/streams/*/depth",
            "/streams/*/id",
            "/streams/*/messages",
            "/streams/*/name",
            "/uptime_seconds",
        ];
        assert_eq!(found, expected);
        // Unknown values are null, not left out.
        assert!(doc["streams"][0]["consumers"][1]["oldest_age_seconds"].is_null());
        assert!(doc["process"]["peak_rss_mb"].is_null());
    }

    #[test]
    fn the_document_round_trips_and_a_group_is_not_taken_for_a_connector() {
        let status = sample();
        let text = serde_json::to_string(&status).unwrap();
        let back: Status = serde_json::from_str(&text).unwrap();
        assert_eq!(back, status);
        let group = back.consumer("datasync-data", "g").unwrap();
        assert_eq!(group.reader, Reader::Group { group: "g".into() });
    }
}
