//! `--rounds N`: each figure's median and range over the rounds, and in how many rounds each
//! target was met.

use std::collections::BTreeMap;

use super::results::{RoundResult, Spread, Summary, TargetRounds};

/// A figure of a round.
type Figure = fn(&RoundResult) -> Option<f64>;

/// The figures summarized: (name in the summary, label, unit, the figure).
const SUMMARIZED: [(&str, &str, &str, Figure); 11] = [
    ("end_to_end_msg_per_s", "end to end", "msg/s", |r| {
        Some(r.end_to_end_msg_per_s)
    }),
    ("ingest_msg_per_s", "ingest", "msg/s", |r| {
        Some(r.ingest_msg_per_s)
    }),
    ("ack_latency_ms_p50", "ack latency p50", "ms", |r| {
        r.ack_latency_ms.p50
    }),
    ("ack_latency_ms_p99", "ack latency p99", "ms", |r| {
        r.ack_latency_ms.p99
    }),
    (
        "post_to_target_latency_ms_p99",
        "POST to target p99",
        "ms",
        |r| r.post_to_target_latency_ms.p99,
    ),
    ("cpu_per_message_us", "CPU per message", "µs", |r| {
        r.cpu_per_message_us
    }),
    (
        "oci_calls_per_1000_messages_delivery",
        "OCI calls per 1,000 for delivery",
        "",
        |r| r.oci_calls_per_1000_messages_delivery,
    ),
    (
        "parked_reads_per_1000_messages",
        "parked-key reads per 1,000",
        "",
        |r| r.parked_reads_per_1000_messages,
    ),
    (
        "parked_writes_per_1000_messages",
        "parked-key writes per 1,000",
        "",
        |r| r.parked_writes_per_1000_messages,
    ),
    (
        "metric_posts_per_1000_messages",
        "PostMetricData per 1,000",
        "",
        |r| r.metric_posts_per_1000_messages,
    ),
    ("peak_rss_mb", "peak RSS", "MB", |r| r.peak_rss_mb),
];

/// The median (of the middle two for an even count), least and greatest of `values`.
pub fn spread(values: &mut [f64]) -> Option<(f64, f64, f64)> {
    values.sort_by(f64::total_cmp);
    let (first, last) = (*values.first()?, *values.last()?);
    let mid = values.len() / 2;
    let median = if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    };
    Some((median, first, last))
}

/// Prints and returns the summary of `rounds`.
pub fn summarize(rounds: &[RoundResult]) -> Summary {
    let mut figures = BTreeMap::new();
    println!("over {} rounds (median, least–greatest):", rounds.len());
    for (key, name, unit, figure) in SUMMARIZED {
        let mut values: Vec<f64> = rounds.iter().filter_map(figure).collect();
        let Some((median, least, greatest)) = spread(&mut values) else {
            continue;
        };
        figures.insert(
            key.to_owned(),
            Spread {
                median,
                least,
                greatest,
            },
        );
        let digits = if matches!(unit, "ms" | "MB") { 1 } else { 0 };
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        println!("  {name:<33} {median:.digits$}{unit} ({least:.digits$}–{greatest:.digits$})");
    }
    let mut targets = BTreeMap::new();
    if let Some(first) = rounds.first() {
        for (i, (key, judged)) in first.targets.each().into_iter().enumerate() {
            let verdicts: Vec<bool> = rounds
                .iter()
                .filter_map(|r| r.targets.each()[i].1.met)
                .collect();
            if verdicts.is_empty() {
                continue;
            }
            let met = verdicts.iter().filter(|&&m| m).count();
            println!(
                "  {key}: target {} met in {met} of {} rounds",
                judged.target,
                verdicts.len()
            );
            targets.insert(
                key.to_owned(),
                TargetRounds {
                    target: judged.target.clone(),
                    rounds_met: met,
                    rounds_judged: verdicts.len(),
                },
            );
        }
    }
    Summary { figures, targets }
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_gives_the_median_and_the_range() {
        assert_eq!(spread(&mut []), None);
        assert_eq!(spread(&mut [7.0]), Some((7.0, 7.0, 7.0)));
        assert_eq!(spread(&mut [3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        // An even count: the middle two's mean.
        assert_eq!(spread(&mut [4.0, 1.0, 3.0, 2.0]), Some((2.5, 1.0, 4.0)));
    }
}
