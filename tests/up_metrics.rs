//! `datasync up` end to end, custom metrics (issue 22): after a delivery, a 503 and a 400, the
//! official OCI Python SDK (installed in `.venv` by scripts/venv.sh) reads back from the
//! emulator's Monitoring the sums each metric and dimension should have; with Monitoring down
//! (the emulator answering 503 to PostMetricData) every message is still delivered or routed.
//! The official `oci` CLI (also in `.venv`) reads the same sums with the command docs/metrics.md
//! gives operators.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use up_support::*;

/// The stack of these tests: no retry schedule (the 503's message stays in its error stream),
/// and every function posting at most once a second.
fn config(extra: &str) -> String {
    format!(
        "{}\n[functions.config]\nmetrics_post_interval_ms = \"1000\"\n{extra}",
        FAST.replace("enabled = true", "enabled = false")
    )
}

/// Runs tests/python/up_metrics.py with `queries` against the stack's emulator.
async fn sdk(up: &Up, queries: &[&str]) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    let output = tokio::process::Command::new(&python)
        .arg(root.join("tests/python/up_metrics.py"))
        .arg(&up.info.oci_config_file)
        .arg(&up.info.emulator)
        .arg(&up.info.compartment)
        .arg(serde_json::to_string(queries).unwrap())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/venv.sh)", python.display()));
    assert!(
        output.status.success(),
        "the SDK failed (run scripts/venv.sh first):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Runs `oci monitoring metric-data summarize-metrics-data` (the official CLI) with `query`
/// against the stack's emulator, as docs/metrics.md gives it (the service's default window,
/// the last hour); the sum of every returned datapoint.
async fn cli_sum(up: &Up, query: &str) -> f64 {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let oci = root.join(".venv/bin/oci");
    let output = tokio::process::Command::new(&oci)
        .args(["monitoring", "metric-data", "summarize-metrics-data"])
        .args(["--namespace", "datasync", "--query-text", query])
        .args(["--compartment-id", &up.info.compartment])
        .args(["--endpoint", &up.info.emulator])
        .arg("--config-file")
        .arg(&up.info.oci_config_file)
        .args(["--profile", "LOCAL"])
        // The data directory's key file is owner-only already; the CLI need not say so.
        .env("OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING", "True")
        .output()
        .await
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/venv.sh)", oci.display()));
    assert!(
        output.status.success(),
        "the oci CLI failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["aggregated-datapoints"].as_array().unwrap())
        .map(|p| p["value"].as_f64().unwrap())
        .sum()
}

/// A query's answer as `dimension value -> sum` for `dim`.
fn by(answer: &Value, query: &str, dim: &str) -> BTreeMap<String, f64> {
    answer[query]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[0][dim].as_str().unwrap_or_default().to_owned(),
                s[1].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Sets the demo target's answer.
async fn answer_with(up: &Up, status: u16) {
    let control = format!("{}/_control", up.target());
    assert_eq!(
        post_json(&up.client, &control, &json!({"status": status})).await,
        200
    );
}

/// Sends one message; its id.
async fn send(up: &Up, n: usize) -> String {
    let (s, v) = up
        .post(
            "/stream/sync",
            Some(&up.source_key()),
            &sync_request(&up.target(), &format!("k{n}"), n),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// Waits until the stream `name` holds `n` messages.
async fn until_stream_holds(up: &Up, name: &str, n: i64) {
    eventually(Duration::from_secs(30), || async {
        (stream_messages(&up.status().await, name) >= n).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{name} never held {n}"));
}

const DELIVERED: &str = "MessagesDelivered[1m].groupBy(targetHost).sum()";
const FAILURES: &str = "DeliveryFailures[1m].groupBy(class).sum()";
const DEAD: &str = "MessagesDeadLettered[1m].groupBy(class).sum()";
const ACCEPTED: &str = "MessagesAccepted[1m].groupBy(function).sum()";
const CALLS: &str = "TargetLatency[1m].groupBy(targetHost).count()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdk_reads_back_what_the_functions_posted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut up = Up::start_in(tmp.path(), &config(""), &[]).await;
    let host = up.target().trim_start_matches("http://").to_owned();
    answer_with(&up, 200).await;
    let first = send(&up, 0).await;
    eventually(Duration::from_secs(30), || async {
        delivered_ids(&up.client, &up.target())
            .await
            .contains(&first)
            .then_some(())
    })
    .await
    .expect("delivered");
    answer_with(&up, 503).await;
    send(&up, 1).await;
    until_stream_holds(&up, "datasync-errors-service-unavailable", 1).await;
    answer_with(&up, 400).await;
    send(&up, 2).await;
    until_stream_holds(&up, "datasync-dead-letter", 1).await;

    let queries = [DELIVERED, FAILURES, DEAD, ACCEPTED, CALLS];
    let expected = (
        BTreeMap::from([(host.clone(), 1.0)]),
        BTreeMap::from([
            ("clientError".to_owned(), 1.0),
            ("serviceUnavailable".to_owned(), 1.0),
        ]),
        BTreeMap::from([("clientError".to_owned(), 1.0)]),
        BTreeMap::from([("populate".to_owned(), 3.0)]),
        BTreeMap::from([(host.clone(), 3.0)]),
    );
    let mut last = Value::Null;
    for _ in 0..40 {
        last = sdk(&up, &queries).await;
        let got = (
            by(&last, DELIVERED, "targetHost"),
            by(&last, FAILURES, "class"),
            by(&last, DEAD, "class"),
            by(&last, ACCEPTED, "function"),
            by(&last, CALLS, "targetHost"),
        );
        if got == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(by(&last, DELIVERED, "targetHost"), expected.0, "{last}");
    assert_eq!(by(&last, FAILURES, "class"), expected.1, "{last}");
    assert_eq!(by(&last, DEAD, "class"), expected.2, "{last}");
    assert_eq!(by(&last, ACCEPTED, "function"), expected.3, "{last}");
    assert_eq!(by(&last, CALLS, "targetHost"), expected.4, "{last}");
    let names: HashSet<&str> = last["__names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for name in [
        "MessagesAccepted",
        "MessagesDelivered",
        "DeliveryLatency",
        "BatchAge",
        "BreakerState",
    ] {
        assert!(names.contains(name), "ListMetrics lacks {name}: {names:?}");
    }
    // The CLI command of docs/metrics.md reads what the SDK read.
    assert_eq!(cli_sum(&up, "MessagesDelivered[1m].sum()").await, 1.0);
    assert_eq!(cli_sum(&up, FAILURES).await, 2.0);
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitoring_outage_changes_no_delivery_and_loses_no_message() {
    let tmp = tempfile::tempdir().unwrap();
    let mut up = Up::start_in(
        tmp.path(),
        &config("\n[metrics]\nmonitoring_outage = true\n"),
        &[],
    )
    .await;
    answer_with(&up, 200).await;
    let mut ids = HashSet::new();
    for n in 0..6 {
        ids.insert(send(&up, n).await);
    }
    let delivered: HashSet<String> = eventually(Duration::from_secs(30), || async {
        let got: HashSet<String> = delivered_ids(&up.client, &up.target())
            .await
            .into_iter()
            .collect();
        (got.len() >= ids.len()).then_some(got)
    })
    .await
    .expect("every message delivered while Monitoring is down");
    assert_eq!(delivered, ids);
    answer_with(&up, 400).await;
    send(&up, 6).await;
    until_stream_holds(&up, "datasync-dead-letter", 1).await;
    let status = up.status().await;
    assert_eq!(
        stream_messages(&status, "datasync-errors-service-unavailable"),
        0
    );
    assert_eq!(stream_messages(&status, "datasync-dead-letter"), 1);
    // Monitoring refused every post: it holds nothing.
    let answer = sdk(&up, &[DELIVERED]).await;
    assert_eq!(answer[DELIVERED], json!([]), "{answer}");
    assert_eq!(answer["__names"], json!([]), "{answer}");
    up.stop();
}
