//! `GET /metrics` through `datasync up`: after a delivery, a 503 and a 400, the text parses
//! with the Prometheus project's own Python parser (`prometheus_client`, in `.venv`) and holds
//! the expected counts per label; it answers without a key, GET only, as `/status` does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use up_support::*;

/// Every sample of `text` as the official parser reads it:
/// `{"families": {name: type}, "samples": [{"name", "labels", "value"}]}`.
fn parse(text: &str) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    let mut child = Command::new(&python)
        .arg(root.join("tests/python/prometheus_samples.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/venv.sh first", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The sum of the samples named `name` whose labels include every pair of `labels`.
fn sum(parsed: &Value, name: &str, labels: &[(&str, &str)]) -> f64 {
    parsed["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == name)
        .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| s["value"].as_f64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_delivery_a_503_and_a_400_per_label() {
    let tmp = tempfile::tempdir().unwrap();
    // No retry schedule: the 503 stays one failed attempt.
    let config = FAST.replace("enabled = true", "enabled = false");
    let up = Up::start_in(tmp.path(), &config, &[]).await;
    let target = up.target();
    let host = target.trim_start_matches("http://").to_owned();
    let control = format!("{target}/_control");
    for (mode, key) in [
        (json!({"status": 200}), "fine"),
        (json!({"status": 503}), "busy"),
        (json!({"status": 400}), "bad"),
    ] {
        assert_eq!(post_json(&up.client, &control, &mode).await, 200);
        let before = received(&up.client, &target).await.total;
        let (s, v) = up
            .post(
                "/stream/sync",
                Some(&up.source_key()),
                &sync_request(&target, key, 1),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        // One attempt each, in this order.
        eventually(Duration::from_secs(20), || async {
            (received(&up.client, &target).await.total > before).then_some(())
        })
        .await
        .expect("the target is called");
    }
    let url = format!("{}/metrics", up.gateway());
    let parsed = eventually(Duration::from_secs(20), || async {
        let text = up.client.get(&url).send().await.ok()?.text().await.ok()?;
        let parsed = parse(&text);
        (sum(&parsed, "datasync_messages_dead_lettered_total", &[]) >= 1.0).then_some(parsed)
    })
    .await
    .expect("the dead letter is counted");
    let h = ("target_host", host.as_str());
    assert_eq!(sum(&parsed, "datasync_messages_accepted_total", &[]), 3.0);
    assert_eq!(sum(&parsed, "datasync_messages_delivered_total", &[h]), 1.0);
    let failures = "datasync_delivery_failures_total";
    assert_eq!(
        sum(&parsed, failures, &[h, ("class", "serviceUnavailable")]),
        1.0
    );
    assert_eq!(sum(&parsed, failures, &[h, ("class", "clientError")]), 1.0);
    assert_eq!(sum(&parsed, failures, &[]), 2.0);
    assert_eq!(
        sum(&parsed, "datasync_messages_dead_lettered_total", &[]),
        1.0
    );
    // Histograms in seconds, with buckets: one latency per 2xx, one target call per attempt.
    assert_eq!(
        parsed["families"]["datasync_delivery_latency_seconds"],
        "histogram"
    );
    assert_eq!(
        sum(&parsed, "datasync_delivery_latency_seconds_count", &[h]),
        1.0
    );
    assert_eq!(
        sum(
            &parsed,
            "datasync_delivery_latency_seconds_bucket",
            &[h, ("le", "+Inf")]
        ),
        1.0
    );
    assert_eq!(
        sum(&parsed, "datasync_target_latency_seconds_count", &[h]),
        3.0
    );

    // Same rule as /status: no key needed, GET only, Prometheus's content type.
    let r = up.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let r = up.client.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
