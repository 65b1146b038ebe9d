//! process posting its metrics to the emulator's Monitoring (issue 22): per metric and
//! dimension, the sums SummarizeMetricsData gives back match what happened; one post per
//! invocation at most; a Monitoring outage changes no delivery and loses no message.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use datasync_core::message::rfc3339;
use datasync_local::target::Reply;
use http::Method;
use process::Process;
use serde_json::{json, Value};

use super::{invoke, over_socket, value};
use crate::common::*;

/// `query`'s series over the last 10 minutes as (dimensions, sum of the values).
async fn summarize(stack: &Stack, query: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let compartment = &stack.emulator.profile().compartment;
    let now = SystemTime::now();
    let body = json!({
        "namespace": "datasync",
        "query": query,
        "startTime": rfc3339(now - Duration::from_secs(600)),
        "endTime": rfc3339(now + Duration::from_secs(60)),
    });
    let answer = stack
        .admin
        .json(
            Method::POST,
            &format!("/20180401/metrics/actions/summarizeMetricsData?compartmentId={compartment}"),
            &body,
        )
        .await
        .unwrap();
    assert_eq!(
        answer.status.as_u16(),
        200,
        "{query}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let list: Vec<Value> = answer.json().unwrap();
    list.iter()
        .map(|s| {
            let dims = serde_json::from_value(s["dimensions"].clone()).unwrap();
            let sum = s["aggregatedDatapoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["value"].as_f64().unwrap())
                .sum();
            (dims, sum)
        })
        .collect()
}

/// The single series' sum of `query` (0 when none).
async fn total(stack: &Stack, query: &str) -> f64 {
    summarize(stack, query).await.iter().map(|(_, v)| v).sum()
}

#[tokio::test]
async fn process_posts_its_metrics_once_per_invocation_and_an_outage_loses_no_message() {
    let stack = Stack::start().await;
    let compartment = stack.emulator.profile().compartment.clone();
    let config = stack
        .config
        .clone()
        .with("metrics_compartment_ocid", &compartment)
        .with("metrics_post_interval_ms", "1000");
    let mut invoker = over_socket(&stack, Process::from_config(&config)).await;
    stack
        .target
        .script("/ok", std::iter::repeat_n(Reply::status(200), 20));
    stack.target.script("/busy", [Reply::status(503)]);
    stack.target.script("/bad", [Reply::status(400)]);
    let host = stack
        .target
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();

    let batch = |paths: &[&str], first: i64| {
        let messages: Vec<(Option<&str>, Vec<u8>)> = paths
            .iter()
            .map(|p| (None, value(&stack.envelope(p, "POST", json!({"x": 1})))))
            .collect();
        connector_batch(first, &messages)
    };
    let (status, answer) = invoke(&mut invoker, batch(&["/ok", "/busy", "/bad"], 0)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["metrics"],
        json!({"posts": 1, "postFailures": 0}),
        "{answer}"
    );

    let delivered = summarize(&stack, "MessagesDelivered[1m].groupBy(targetHost).sum()").await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].0["targetHost"], host);
    assert_eq!(delivered[0].1, 1.0);
    let failures = summarize(&stack, "DeliveryFailures[1m].groupBy(class).sum()").await;
    let by_class: BTreeMap<String, f64> = failures
        .into_iter()
        .map(|(d, v)| (d["class"].clone(), v))
        .collect();
    assert_eq!(
        by_class,
        BTreeMap::from([
            ("clientError".into(), 1.0),
            ("serviceUnavailable".into(), 1.0)
        ])
    );
    assert_eq!(
        total(
            &stack,
            r#"MessagesDeadLettered[1m]{class = "clientError"}.grouping().sum()"#
        )
        .await,
        1.0
    );
    assert_eq!(
        total(&stack, "TargetLatency[1m].grouping().count()").await,
        3.0
    );
    let ratio = total(&stack, "TargetFailureRatio[10m].groupBy(targetHost).mean()").await;
    assert!((ratio - 2.0 / 3.0).abs() < 1e-9, "{ratio}");
    assert_eq!(
        total(&stack, "DeliveryLatency[1m].grouping().count()").await,
        1.0
    );
    // The batch's messages were appended (connector timestamp) long ago.
    assert!(total(&stack, r#"BatchAge[1m]{function = "process"}.max()"#).await > 60_000.0);

    // Monitoring down: every message is still delivered or routed, the batch acknowledged,
    // and the failed post counted; the invocation waits no longer than the post timeout.
    stack.emulator.set_monitoring_outage(true);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let started = Instant::now();
    let (status, answer) = invoke(&mut invoker, batch(&["/ok", "/ok", "/ok", "/ok"], 3)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(answer["delivered"], 4, "{answer}");
    assert_eq!(
        answer["metrics"],
        json!({"posts": 2, "postFailures": 1}),
        "{answer}"
    );
    assert_eq!(stack.target.requests_to("/ok").len(), 5);
    assert_eq!(
        stack.read_all(&stack.ids.service_unavailable).await.len(),
        1
    );
    assert_eq!(stack.read_all(&stack.ids.dead_letter).await.len(), 1);

    // Back up: the next post goes through; the outage's datapoints are gone, nothing else.
    stack.emulator.set_monitoring_outage(false);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, answer) = invoke(&mut invoker, batch(&["/ok"], 7)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["metrics"],
        json!({"posts": 3, "postFailures": 1}),
        "{answer}"
    );
    assert_eq!(
        total(&stack, "MessagesDelivered[1m].grouping().sum()").await,
        2.0
    );

    // Within the interval: no post now (still 3), a later one carries it.
    let (_, answer) = invoke(&mut invoker, batch(&["/ok"], 8)).await;
    assert_eq!(answer["metrics"]["posts"], 3, "{answer}");
    let mut delivered = 0.0;
    for _ in 0..30 {
        delivered = total(&stack, "MessagesDelivered[1m].grouping().sum()").await;
        if delivered == 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered, 3.0, "the deferred post carried the last batch");
}
