//! `datasync up` end to end, a message's story: a message answered 503 then 200 shows
//! accepted, a 503 attempt, a re-route, and the 200 attempt that delivered it (one
//! `delivered` line with the call's fields), in that order, in
//! `datasync trace ID`, in `GET /trace` and through the official Python SDK's `search_logs`
//! against the emulator; `--key` lists every message of the key in order; and no payload,
//! token or custom header value appears in any log line of the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use datasync_core::trace::{Timeline, TraceKind};
use serde_json::{json, Value};
use up_support::*;

const PAYLOAD_SECRET: &str = "PAYLOAD-7f3a9e-secret";
const TOKEN_SECRET: &str = "TOKEN-5d8e21-secret";
const HEADER_SECRET: &str = "HEADER-91c2b4-secret";

/// `datasync up` with every log line of the run (trace lines included) in `log`.
async fn start_logged(dir: &Path, log: &Path) -> Up {
    let config = FAST.replace("enabled = true", "enabled = false");
    Up::start_logged(
        dir,
        &config,
        "127.0.0.1:0",
        &[],
        log,
        "debug,datasync_trace=info",
    )
    .await
}

/// Sends a message of `key` carrying the distinctive payload, token and header value.
async fn send(up: &Up, key: &str) -> String {
    let body = json!({
        "streamKey": key,
        "streamMessage": {
            "vaultSecretName": "e2e",
            "targetRestApi": format!("{}/orders", up.target()),
            "targetRestApiOperation": "POST",
            "targetRestApiPayload": {"note": PAYLOAD_SECRET},
            "targetRestApiHeaders": [{"key": "x-custom", "value": HEADER_SECRET}]
        }
    });
    let answer: Value = up
        .client
        .post(format!("{}/stream/sync", up.gateway()))
        .header("x-api-key", up.source_key())
        .header("authorization", format!("Bearer {TOKEN_SECRET}"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["id"].as_str().expect("an id").to_owned()
}

async fn get_trace(up: &Up, query: &str) -> (String, Timeline) {
    let text = up
        .client
        .get(format!("{}/trace?{query}", up.gateway()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let timeline = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
    (text, timeline)
}

/// Whether `kinds` holds `want` in that order (others may come between).
fn in_order(kinds: &[(TraceKind, Option<u16>)], want: &[(TraceKind, Option<u16>)]) -> bool {
    let mut it = kinds.iter();
    want.iter().all(|w| it.any(|k| k == w))
}

fn kinds(t: &Timeline) -> Vec<(TraceKind, Option<u16>)> {
    t.entries
        .iter()
        .map(|e| {
            let call = matches!(e.event.event, TraceKind::Attempt | TraceKind::Delivered);
            let status = call.then_some(e.event.status);
            (e.event.event, status.flatten())
        })
        .collect()
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `search_logs` through the official Python SDK against the emulator: every entry whose line
/// contains `needle`, as the lines.
async fn sdk_search(up: &Up, needle: &str) -> Vec<String> {
    let python = repo_root().join(".venv/bin/python");
    let script = repo_root().join("crates/emulator/tests/python/sdk_search_logs.py");
    let log = up.info.trace_log.as_ref().unwrap();
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&up.info.oci_config_file)
        .arg(&up.info.emulator)
        .arg(&log.log_id)
        .arg(needle)
        .output()
        .await
        .expect("run scripts/venv.sh first");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| l.starts_with('"'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_message_tells_its_story_everywhere_and_no_secret_is_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("up.log");
    let mut up = start_logged(tmp.path(), &log).await;
    let target = up.target();
    // One 503, then 200s.
    post_json(
        &up.client,
        &format!("{target}/_control"),
        &json!({"status": 503, "count": 1}),
    )
    .await;
    let first = send(&up, "trace-key").await;
    let second = send(&up, "trace-key").await;
    eventually(Duration::from_secs(20), || async {
        let st = up.status().await;
        (stream_messages(&st, "datasync-errors-service-unavailable") >= 2).then_some(())
    })
    .await
    .expect("both messages re-routed (the second behind the first)");
    // An operator replays the error stream (the schedule is off: no wait for notBefore).
    let body = json!({
        "streamOCIDToRetry": up.stream("errors-service-unavailable"),
        "noOfMessagesToProcess": 10,
        "readAfterOffset": -1,
        "readPartition": 0,
    });
    let (s, answer) = up
        .post("/stream/retry", Some(&up.operator_key()), &body)
        .await;
    assert_eq!(s, 200, "{answer}");
    let want = [
        (TraceKind::Accepted, None),
        (TraceKind::Attempt, Some(503)),
        (TraceKind::Rerouted, None),
        (TraceKind::Delivered, Some(200)),
    ];
    let (raw_by_id, by_id) = eventually(Duration::from_secs(20), || async {
        let (raw, t) = get_trace(&up, &format!("id={first}")).await;
        in_order(&kinds(&t), &want).then_some((raw, t))
    })
    .await
    .expect("GET /trace shows accepted, 503, re-route, delivered by a 200");
    let rerouted = by_id
        .entries
        .iter()
        .find(|e| e.event.event == TraceKind::Rerouted)
        .unwrap();
    // Named as the stack names it (the line itself holds the stream's OCID).
    assert_eq!(
        rerouted.event.stream.as_deref(),
        Some("datasync-errors-service-unavailable")
    );
    assert!(rerouted.event.not_before.is_some());
    assert_eq!(rerouted.event.class.as_deref(), Some("serviceUnavailable"));
    assert!(raw_by_id.contains("\"targetHost\""), "{raw_by_id}");
    // The 503's answer is shown, short; a 2xx answer never is.
    let refused = by_id
        .entries
        .iter()
        .find(|e| e.event.event == TraceKind::Attempt)
        .unwrap();
    assert_eq!(refused.event.status, Some(503));
    assert_eq!(
        refused.event.body.as_deref(),
        Some(r#"{"received":false,"status":503}"#)
    );
    // The delivering call: its number, host, class and duration, and no body.
    let taken = by_id
        .entries
        .iter()
        .find(|e| e.event.event == TraceKind::Delivered)
        .unwrap();
    assert_eq!(
        (taken.event.attempt, taken.event.class.as_deref()),
        (Some(2), Some("ok"))
    );
    assert!(taken.event.target_host.is_some() && taken.event.duration_ms.is_some());
    assert_eq!(taken.event.body, None);

    // The command line, from the same log.
    let out = up.cli_ok(&["trace", "--json", &first]).await;
    let cli: Timeline = serde_json::from_str(&out).unwrap();
    assert!(in_order(&kinds(&cli), &want), "{cli:?}");
    let human = up.cli_ok(&["trace", &first]).await;
    assert!(
        human.contains("status=503")
            && human.contains("stream=datasync-errors-service-unavailable")
            && human.contains("delivered"),
        "{human}"
    );

    // Every message of the key, in order: the second waits behind the first.
    let by_key = eventually(Duration::from_secs(20), || async {
        let (_, t) = get_trace(&up, "key=trace-key&since=1h").await;
        t.entries
            .iter()
            .any(|e| e.event.id == second && e.event.event == TraceKind::Delivered)
            .then_some(t)
    })
    .await
    .expect("the second message delivered");
    let accepted: Vec<&str> = by_key
        .entries
        .iter()
        .filter(|e| e.event.event == TraceKind::Accepted)
        .map(|e| e.event.id.as_str())
        .collect();
    assert_eq!(accepted, [first.as_str(), second.as_str()]);
    let human = up
        .cli_ok(&["trace", "--key", "trace-key", "--since", "1h"])
        .await;
    let (a, b) = (human.find(&first).unwrap(), human.find(&second).unwrap());
    assert!(a < b, "{human}");

    // The official SDK finds the same lines, in the same order.
    let lines = sdk_search(&up, &format!("\"id\":\"{first}\"")).await;
    let sdk: Vec<(TraceKind, Option<u16>)> = lines
        .iter()
        .filter_map(|l| datasync_core::trace::TraceLine::parse(l))
        .map(|l| {
            let call = matches!(l.fields.event, TraceKind::Attempt | TraceKind::Delivered);
            let status = call.then_some(l.fields.status);
            (l.fields.event, status.flatten())
        })
        .collect();
    assert!(in_order(&sdk, &want), "{sdk:?}");

    // No secret in any log line: the run's whole log output, and the whole invoke log.
    let every_line = sdk_search(&up, "\"target\":\"datasync_trace\"").await;
    up.stop();
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(
        output.contains(&first),
        "the run's log holds the trace lines"
    );
    for (name, text) in [("stderr", output), ("invoke log", every_line.join("\n"))] {
        for secret in [PAYLOAD_SECRET, TOKEN_SECRET, HEADER_SECRET] {
            assert!(!text.contains(secret), "{secret} in the {name}");
        }
    }
}
