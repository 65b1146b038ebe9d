//! `datasync demo-target` on its own: its controls are documented (`GET /_help`, `--help`),
//! and requests to `/_*` paths, or with a method no message can name, never count as
//! deliveries, while POST, PUT, PATCH and DELETE elsewhere do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::process::Stdio;
use std::time::Duration;

use datasync_local::demo_target::ReceivedReport;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use up_support::*;

/// A demo target on a free port; the child (killed on drop) and its base URL.
async fn demo_target() -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(BIN)
        .args(["demo-target", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the demo target printed its address")
        .unwrap()
        .unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    // Keep reading stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

async fn counts(client: &reqwest::Client, url: &str) -> ReceivedReport {
    serde_json::from_value(get_json(client, &format!("{url}/_received?summary=1")).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_documents_every_control() {
    let (_child, url) = demo_target().await;
    let client = reqwest::Client::new();
    let r = client.get(format!("{url}/_help")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = r.text().await.unwrap();
    for control in [
        "GET    /_help",
        "POST   /_control",
        "GET    /_received",
        "DELETE /_received",
        "POST   /_latencies",
        "\"fail_rate\"",
        "\"delay_ms\"",
        "?summary=1",
    ] {
        assert!(text.contains(control), "{control} missing:\n{text}");
    }
    // The same text under `datasync demo-target --help`.
    let out = run_to_exit(["demo-target", "--help"], Duration::from_secs(30)).await;
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(help.contains(line), "{line:?} missing from --help:\n{help}");
    }
    // Reading the help is not a delivery.
    assert_eq!(counts(&client, &url).await.total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_paths_and_other_methods_are_never_deliveries() {
    let (_child, url) = demo_target().await;
    let client = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{url}{path}"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    use reqwest::Method;
    let not_deliveries = [
        (Method::GET, "/_help", 200),
        (Method::POST, "/_help", 405),
        (Method::GET, "/_control", 405),
        (Method::PUT, "/_received", 405),
        (Method::GET, "/_latencies", 405),
        (Method::POST, "/_nope", 404),
        (Method::GET, "/_nope", 404),
        (Method::DELETE, "/_anything/below", 404),
        (Method::GET, "/", 200),
        (Method::GET, "/orders", 405),
        (Method::HEAD, "/orders", 405),
        (Method::OPTIONS, "/orders", 405),
    ];
    for (method, path, status) in &not_deliveries {
        let r = send(method.clone(), path).await.unwrap();
        assert_eq!(r.status().as_u16(), *status, "{method} {path}");
    }
    let c = counts(&client, &url).await;
    assert_eq!((c.total, c.failed), (0, 0), "{c:?}");
    // Every method a message can name is a delivery, on any path not under /_.
    for (i, method) in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE]
        .into_iter()
        .enumerate()
    {
        let r = send(method.clone(), &format!("/orders/{i}")).await.unwrap();
        assert_eq!(r.status(), 200, "{method}");
    }
    let report: ReceivedReport =
        serde_json::from_value(get_json(&client, &format!("{url}/_received")).await).unwrap();
    assert_eq!(report.total, 4, "{report:?}");
    let methods: Vec<String> = report
        .messages
        .unwrap()
        .into_iter()
        .map(|m| format!("{} {}", m.method, m.path))
        .collect();
    assert_eq!(
        methods,
        [
            "POST /orders/0",
            "PUT /orders/1",
            "PATCH /orders/2",
            "DELETE /orders/3"
        ]
    );
}
