//! The metrics publisher against a Monitoring stand-in on a real socket: one signed
//! PostMetricData per post, at most one per interval (the rest deferred, not dropped), and a
//! failed or hanging Monitoring costing an invocation no more than the post timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datasync_core::function_config::Function;
use datasync_core::metrics::{Metrics, MetricsSettings, PublishOutcome, Publisher};
use datasync_core::oci::auth::StaticAuth;
use datasync_core::oci::client::{OciClient, RetryPolicy, Timeouts};
use datasync_core::oci::endpoints::Endpoints;
use datasync_core::oci::monitoring::MonitoringClient;
use http::Method;
use serde_json::json;

use crate::server::{Reply, TestServer};

const KEY_ID: &str = "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/73:61:a2:21";
const PATH: &str = "/20180401/metrics";

fn publisher_at(base: &str, timeout: Duration, interval: Duration) -> Publisher {
    let key = datasync_core::oci::key::PrivateKey::from_pem(
        include_str!("../data/keys/vector_pkcs1.pem"),
        None,
    )
    .unwrap();
    let auth = Arc::new(StaticAuth::new(KEY_ID, key, None));
    let timeouts = Timeouts {
        connect: timeout,
        total: timeout,
    };
    let client = OciClient::with_settings(auth, timeouts, RetryPolicy::NONE).unwrap();
    let endpoints = Endpoints::all_at(base).unwrap();
    let settings = MetricsSettings {
        compartment: "ocid1.compartment.oc1..c".into(),
        namespace: "datasync".into(),
        timeout,
        interval,
    };
    Publisher::new(MonitoringClient::new(client, &endpoints).unwrap(), settings)
}

fn observe(metrics: &Metrics, n: usize) {
    for _ in 0..n {
        metrics.target_call("api.example", Duration::from_millis(3), true);
        metrics.delivered("api.example", None, None);
    }
}

#[tokio::test]
async fn one_signed_post_per_interval_and_what_waits_is_posted_later() {
    let server = TestServer::start().await;
    let key = datasync_core::oci::key::PrivateKey::from_pem(
        include_str!("../data/keys/vector_pkcs1.pem"),
        None,
    )
    .unwrap();
    server.add_key(KEY_ID, key.public_key());
    let accepted = Reply::ok(json!({"failedMetricsCount": 0, "failedMetrics": []}));
    server.route(Method::POST, PATH, move |_| accepted.clone());
    let publisher = publisher_at(
        &server.base_url(),
        Duration::from_secs(2),
        Duration::from_millis(300),
    );
    let metrics = Metrics::new(Function::Process);

    observe(&metrics, 5);
    let outcome = publisher.publish(&metrics).await;
    assert!(
        matches!(
            outcome,
            PublishOutcome::Posted {
                streams: 3,
                refused: 0
            }
        ),
        "{outcome:?}"
    );
    let posts = server.requests();
    assert_eq!(posts.len(), 1);
    let body = posts[0].json();
    let delivered = body["metricData"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "MessagesDelivered")
        .unwrap();
    assert_eq!(delivered["datapoints"][0]["value"], 5.0);
    assert_eq!(delivered["dimensions"]["function"], "process");
    assert!(posts[0].signed_headers().contains("x-content-sha256"));

    // Within the interval: deferred, nothing sent now; then one post carries it.
    observe(&metrics, 2);
    assert_eq!(publisher.publish(&metrics).await, PublishOutcome::Deferred);
    observe(&metrics, 1);
    assert_eq!(publisher.publish(&metrics).await, PublishOutcome::Deferred);
    assert_eq!(server.requests().len(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let posts = server.requests();
    assert_eq!(posts.len(), 2, "the deferred datapoints go in one post");
    let later = posts[1].json();
    let delivered = later["metricData"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "MessagesDelivered")
        .unwrap();
    assert_eq!(delivered["datapoints"][0]["value"], 3.0);
    assert_eq!(publisher.counts().posts, 2);
    assert_eq!(publisher.counts().post_failures, 0);
    // Nothing recorded: no call at all.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(publisher.publish(&metrics).await, PublishOutcome::Skipped);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_failing_or_hanging_monitoring_costs_at_most_the_timeout_and_is_counted() {
    // Refused: 503, counted, not retried.
    let server = TestServer::start().await;
    let key = datasync_core::oci::key::PrivateKey::from_pem(
        include_str!("../data/keys/vector_pkcs1.pem"),
        None,
    )
    .unwrap();
    server.add_key(KEY_ID, key.public_key());
    server.route(Method::POST, PATH, |_| {
        Reply::error(503, "ServiceUnavailable", "down")
    });
    let publisher = publisher_at(
        &server.base_url(),
        Duration::from_secs(2),
        Duration::from_millis(1),
    );
    let metrics = Metrics::new(Function::Process);
    observe(&metrics, 1);
    assert_eq!(publisher.publish(&metrics).await, PublishOutcome::Failed);
    assert_eq!(server.requests().len(), 1, "no retry");
    assert_eq!(publisher.counts().post_failures, 1);

    // Hanging: accepted, never answered.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            if let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        }
    });
    let timeout = Duration::from_millis(200);
    let publisher = publisher_at(&base, timeout, Duration::from_millis(1));
    observe(&metrics, 1);
    let started = Instant::now();
    assert_eq!(publisher.publish(&metrics).await, PublishOutcome::Failed);
    let took = started.elapsed();
    assert!(
        took >= timeout && took < timeout * 3,
        "a hanging post took {took:?}"
    );
    assert_eq!(publisher.counts().post_failures, 1);
    hold.abort();
}
