//! The benchmark's results, as `--json FILE` writes them: one [`RoundResult`] per round, and
//! with `--rounds N` above 1 a [`RoundsResult`] holding them and their [`Summary`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One figure, its target and whether it is met (`met` is `None`: not judged in this mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    /// The figure.
    pub value: Option<f64>,
    /// The target, for people (`<= 150`).
    pub target: String,
    /// Whether it is met, when judged.
    pub met: Option<bool>,
    /// Why it is not judged, or what it counts.
    pub note: String,
}

impl Judged {
    /// A figure `value` against `target`.
    pub fn new(value: Option<f64>, target: &str, met: Option<bool>, note: &str) -> Self {
        Self {
            value,
            target: target.to_owned(),
            met,
            note: note.to_owned(),
        }
    }

    /// `[target T: met]`, `[target T: NOT met; note]`, `[target T: not judged; note]`.
    pub fn label(&self) -> String {
        let verdict = match self.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not judged",
        };
        if self.note.is_empty() {
            format!("[target {}: {verdict}]", self.target)
        } else {
            format!("[target {}: {verdict}; {}]", self.target, self.note)
        }
    }
}

/// The figures issue #7 set targets for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// Acknowledgement latency, p99.
    pub ack_latency_p99_ms: Judged,
    /// Messages per second end to end.
    pub end_to_end_msg_per_s: Judged,
    /// OCI calls per 1,000 messages for delivery.
    pub oci_calls_per_1000_delivery: Judged,
    /// Peak RSS.
    pub peak_rss_mb: Judged,
    /// POST-to-target latency, p99.
    pub post_to_target_latency_p99_ms: Judged,
}

impl Targets {
    /// Every target with its name, in name order.
    pub fn each(&self) -> [(&'static str, &Judged); 5] {
        [
            ("ack_latency_p99_ms", &self.ack_latency_p99_ms),
            ("end_to_end_msg_per_s", &self.end_to_end_msg_per_s),
            (
                "oci_calls_per_1000_delivery",
                &self.oci_calls_per_1000_delivery,
            ),
            ("peak_rss_mb", &self.peak_rss_mb),
            (
                "post_to_target_latency_p99_ms",
                &self.post_to_target_latency_p99_ms,
            ),
        ]
    }
}

/// The 50th and 99th percentiles of a latency, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// The median.
    pub p50: Option<f64>,
    /// The 99th percentile.
    pub p99: Option<f64>,
}

/// What one round measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundResult {
    /// `in-process` or `running`.
    pub mode: String,
    /// Messages offered.
    pub messages: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Payload size.
    pub payload_bytes: u64,
    /// The fixed offered rate, if any.
    pub offered_rate: Option<u64>,
    /// Share of deliveries the demo target answered 400.
    pub permanent_failure_rate: f64,
    /// POSTs acknowledged.
    pub acknowledged: u64,
    /// Failed POSTs by cause.
    pub post_errors: BTreeMap<String, u64>,
    /// Distinct stream keys (0: one per message).
    pub keys: u64,
    /// Acknowledged messages process handled.
    pub handled: u64,
    /// Deliveries that reached the demo target.
    pub reached_target: u64,
    /// Of those, answered 2xx.
    pub delivered: u64,
    /// Of those, answered 400.
    pub answered_400: u64,
    /// Repeated `Idempotency-Key`s (in-process only).
    pub duplicates: Option<u64>,
    /// Time to acknowledge every POST.
    pub ingest_seconds: f64,
    /// Time until every acknowledged message was handled.
    pub end_to_end_seconds: f64,
    /// Acknowledged POSTs per second.
    pub ingest_msg_per_s: f64,
    /// Handled messages per second.
    pub end_to_end_msg_per_s: f64,
    /// Acknowledgement latency.
    pub ack_latency_ms: Percentiles,
    /// POST-to-target latency.
    pub post_to_target_latency_ms: Percentiles,
    /// The same clients straight to the demo target.
    pub direct_baseline_msg_per_s: f64,
    /// End to end over the direct baseline.
    pub ratio_to_direct: Option<f64>,
    /// OCI requests the stack process sent during the run.
    pub oci_calls: Option<u64>,
    /// Of those, by the functions.
    pub oci_calls_by_functions: Option<u64>,
    /// OCI requests per 1,000 acknowledged messages.
    pub oci_calls_per_1000_messages: Option<f64>,
    /// The functions' share of them.
    pub oci_calls_per_1000_messages_functions: Option<f64>,
    /// The functions' calls beyond populate's one PutMessages per message.
    pub oci_calls_per_1000_messages_delivery: Option<f64>,
    /// Reads of the parked keys (GetObject, 304s included) per 1,000 messages (in-process
    /// only; part of the delivery calls).
    #[serde(default)]
    pub parked_reads_per_1000_messages: Option<f64>,
    /// Conditional writes of the parked keys per 1,000 messages (in-process only).
    #[serde(default)]
    pub parked_writes_per_1000_messages: Option<f64>,
    /// PostMetricData calls (the functions' custom metrics) per 1,000 messages (in-process
    /// only; part of the functions' calls).
    #[serde(default)]
    pub metric_posts_per_1000_messages: Option<f64>,
    /// Peak RSS in MB.
    pub peak_rss_mb: Option<f64>,
    /// CPU per handled message (in-process only).
    pub cpu_per_message_us: Option<f64>,
    /// The figures judged against their targets.
    pub targets: Targets,
}

/// A figure over several rounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The median (of the middle two for an even count).
    pub median: f64,
    /// The least.
    pub least: f64,
    /// The greatest.
    pub greatest: f64,
}

/// In how many rounds a target was met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRounds {
    /// The target.
    pub target: String,
    /// Rounds that met it.
    pub rounds_met: usize,
    /// Rounds that judged it.
    pub rounds_judged: usize,
}

/// What several rounds add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Each summarized figure by name.
    pub figures: BTreeMap<String, Spread>,
    /// Each judged target by name.
    pub targets: BTreeMap<String, TargetRounds>,
}

/// `--rounds N` above 1: each round and their summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundsResult {
    /// Each round.
    pub rounds: Vec<RoundResult>,
    /// Their summary.
    pub summary: Summary,
}

/// What `--json FILE` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BenchResult {
    /// Several rounds.
    Rounds(RoundsResult),
    /// One round.
    One(Box<RoundResult>),
}

impl BenchResult {
    /// Every round measured.
    pub fn rounds(&self) -> Vec<&RoundResult> {
        match self {
            BenchResult::Rounds(r) => r.rounds.iter().collect(),
            BenchResult::One(r) => vec![r.as_ref()],
        }
    }
}
