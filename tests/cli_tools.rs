//! The operator tools against a running `datasync up`: `send` (file and stdin, one and many,
//! refusals), `status` (tables and JSON), `retry --until-empty` after the target recovers and
//! its stop when a call delivers nothing, `bench` against the running stack; and `bench` in-process printing every figure, once and
//! summarized over rounds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;
mod up_support;

/// The target token `send` passes on (the requests name a `vaultSecretName`).
const TOKEN: &str = "Bearer cli-token";

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use cli_support::{run_cli, Run};
use serde_json::{json, Value};
use up_support::*;

/// Runs `datasync ARGS` with `stdin`; the sync requests name a Vault secret, so the token to
/// keep there is passed too.
async fn datasync(args: &[&str], stdin: Option<&str>) -> Run {
    let env = [("DATASYNC_TARGET_AUTHORIZATION", TOKEN)];
    run_cli(args, stdin, &env, Duration::from_secs(60)).await
}

fn answers(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn ids(answers: &[Value]) -> Vec<String> {
    answers
        .iter()
        .map(|a| {
            assert!(a["partition"].is_string() && a["offset"].is_number(), "{a}");
            a["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// A stack in `tmp` with the retry schedule off, so only `datasync retry` re-delivers; and its
/// data directory, for the commands' `--data-dir`.
async fn stack_without_schedule(tmp: &Path) -> (Up, String) {
    let config = FAST.replace("enabled = true", "enabled = false");
    let up = Up::start_in(tmp, &config, &[]).await;
    let data = tmp.join("data").to_str().unwrap().to_owned();
    (up, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_status_retry_and_bench_against_a_running_stack() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut up, data) = stack_without_schedule(tmp.path()).await;
    let data = data.as_str();
    let target = up.target();
    let sent = send_and_its_refusals(&up, data, tmp.path()).await;
    let delivered = eventually(Duration::from_secs(20), || async {
        let got: HashSet<String> = delivered_ids(&up.client, &target)
            .await
            .into_iter()
            .collect();
        sent.iter().all(|id| got.contains(id)).then_some(())
    })
    .await;
    assert!(delivered.is_some(), "the sent messages reach the target");

    let retried = fail_into_the_error_stream(&up, data).await;
    status_tables_and_json(data).await;
    retry_until_empty(&up, data, &retried).await;
    bench_against_the_running_stack(data).await;
    up.stop();
}

/// `send`: a file, an array and JSON lines on stdin; a refused message, a wrong key, input
/// that is not JSON, no stack. The ids sent.
async fn send_and_its_refusals(up: &Up, data: &str, tmp: &Path) -> Vec<String> {
    let target = up.target();
    // send: one request from a file.
    let one = tmp.join("one.json");
    std::fs::write(&one, sync_request(&target, "k0", 0).to_string()).unwrap();
    // The requests name a vaultSecretName: the token goes with them (sealed), since no secret
    // of that name is stored.
    let r = datasync(
        &[
            "send",
            "--data-dir",
            data,
            "--authorization",
            TOKEN,
            one.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(r.ok(), "{}", r.stderr);
    let mut sent = ids(&answers(&r.stdout));
    assert_eq!(sent.len(), 1);

    // send: a JSON array on stdin, and JSON lines on stdin.
    let array = json!([
        sync_request(&target, "k1", 1),
        sync_request(&target, "k2", 2),
        sync_request(&target, "k3", 3)
    ]);
    let r = datasync(
        &["send", "--data-dir", data, "--authorization", TOKEN, "-"],
        Some(&array.to_string()),
    )
    .await;
    assert!(r.ok(), "{}", r.stderr);
    let got = ids(&answers(&r.stdout));
    assert_eq!(got.len(), 3);
    sent.extend(got);
    let lines = format!(
        "{}\n{}\n",
        sync_request(&target, "k4", 4),
        sync_request(&target, "k5", 5)
    );
    let r = datasync(
        &[
            "send",
            "--data-dir",
            data,
            "--authorization",
            TOKEN,
            "--batch",
            "1",
            "-",
        ],
        Some(&lines),
    )
    .await;
    assert!(r.ok(), "{}", r.stderr);
    let got = ids(&answers(&r.stdout));
    assert_eq!(got.len(), 2);
    sent.extend(got);

    // send: a refused message shows the error and exits non-zero.
    let bad = json!({"streamKey": "k", "streamMessage": {"targetRestApi": "http://evil.example.com/x",
        "targetRestApiOperation": "POST", "targetRestApiPayload": {}}});
    let r = datasync(&["send", "--data-dir", data, "-"], Some(&bad.to_string())).await;
    assert!(!r.ok());
    assert!(r.stderr.contains("InvalidParameter"), "{}", r.stderr);
    assert!(r.stderr.contains("allow-list"), "{}", r.stderr);
    // A wrong key (--key overrides endpoints.json): 401 shown, non-zero.
    let r = datasync(
        &[
            "send",
            "--data-dir",
            data,
            "--key",
            "nope",
            one.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(!r.ok());
    assert!(r.stderr.contains("401"), "{}", r.stderr);
    // Not JSON: says what the input must be.
    let r = datasync(&["send", "--data-dir", data, "-"], Some("{nope\n")).await;
    assert!(!r.ok());
    assert!(
        r.stderr.contains("JSON lines") || r.stderr.contains("one JSON object per line"),
        "{}",
        r.stderr
    );
    // No stack there: says how to start one.
    let r = datasync(
        &[
            "send",
            "--data-dir",
            tmp.join("none").to_str().unwrap(),
            one.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(!r.ok());
    assert!(r.stderr.contains("datasync up"), "{}", r.stderr);

    sent
}

/// The target fails: three messages sent go to the service-unavailable stream, then the
/// target recovers. Their ids.
async fn fail_into_the_error_stream(up: &Up, data: &str) -> Vec<String> {
    let target = up.target();
    // retry: the target fails, messages go to the service-unavailable stream; it recovers,
    // and `retry --until-empty` delivers them (once they are due).
    post_json(
        &up.client,
        &format!("{target}/_control"),
        &json!({"status": 503}),
    )
    .await;
    let failing = json!([
        sync_request(&target, "r1", 11),
        sync_request(&target, "r2", 12),
        sync_request(&target, "r3", 13)
    ]);
    let r = datasync(
        &["send", "--data-dir", data, "--authorization", TOKEN, "-"],
        Some(&failing.to_string()),
    )
    .await;
    assert!(r.ok(), "{}", r.stderr);
    let retried = ids(&answers(&r.stdout));
    eventually(Duration::from_secs(20), || async {
        let st = up.status().await;
        (stream_messages(&st, "datasync-errors-service-unavailable") >= 3).then_some(())
    })
    .await
    .expect("the 503s reach the service-unavailable stream");
    post_json(
        &up.client,
        &format!("{target}/_control"),
        &json!({"status": 200}),
    )
    .await;

    retried
}

/// `status`: tables with the stream names; `--json` parses.
async fn status_tables_and_json(data: &str) {
    let r = datasync(&["status", "--data-dir", data], None).await;
    assert!(r.ok(), "{}", r.stderr);
    for name in [
        "datasync-data",
        "datasync-errors-service-unavailable",
        "datasync-dead-letter",
    ] {
        assert!(r.stdout.contains(name), "{name} missing:\n{}", r.stdout);
    }
    assert!(r.stdout.contains("lag") && r.stdout.contains("failures by class"));
    let r = datasync(&["status", "--data-dir", data, "--json"], None).await;
    assert!(r.ok(), "{}", r.stderr);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(doc["streams"].is_array());
    assert!(doc["process"]["oci_requests_sent"].as_u64().unwrap() > 0);
    assert!(
        doc["process"]["oci_requests_sent_by_functions"]
            .as_u64()
            .unwrap()
            > 0
    );
}

/// `retry`: an unknown name lists the known ones, every printed name is accepted, and
/// `--until-empty` delivers the messages once they are due.
async fn retry_until_empty(up: &Up, data: &str, retried: &[String]) {
    let target = up.target();
    // An unknown stream name lists the known ones.
    let r = datasync(&["retry", "--data-dir", data, "--stream", "nope"], None).await;
    assert!(!r.ok());
    assert!(r.stderr.contains("serviceUnavailable"), "{}", r.stderr);
    // The stream is accepted by every name the README, `datasync status` and the Terraform
    // print for it (a dry run delivers nothing).
    for name in [
        "service-unavailable",
        "errors-service-unavailable",
        "datasync-errors-service-unavailable",
    ] {
        let r = datasync(
            &["retry", "--data-dir", data, "--stream", name, "--dry-run"],
            None,
        )
        .await;
        assert!(r.ok(), "{name}: {}\n{}", r.stdout, r.stderr);
    }

    let start = Instant::now();
    let mut outputs = String::new();
    loop {
        let r = datasync(
            &[
                "retry",
                "--data-dir",
                data,
                "--stream",
                "serviceUnavailable",
                "--until-empty",
            ],
            None,
        )
        .await;
        assert!(r.ok(), "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("retried"), "{}", r.stdout);
        outputs.push_str(&r.stdout);
        let got: HashSet<String> = delivered_ids(&up.client, &target)
            .await
            .into_iter()
            .collect();
        if retried.iter().all(|id| got.contains(id)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "retry did not deliver the messages:\n{outputs}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        outputs.contains("3 delivered") || outputs.contains("delivered"),
        "{outputs}"
    );
}

/// `bench` against the running stack (found through --data-dir): every figure printed.
async fn bench_against_the_running_stack(data: &str) {
    let r = datasync(&["bench", "--data-dir", data, "-n", "100", "-c", "2"], None).await;
    assert!(r.ok(), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("running stack"), "{}", r.stderr);
    for label in [
        "ingest:",
        "end to end:",
        "ack latency:",
        "POST to target:",
        "direct baseline:",
        "OCI calls per 1,000:",
        "peak RSS:",
    ] {
        assert!(r.stdout.contains(label), "{label} missing:\n{}", r.stdout);
    }
    // POST-to-target latencies come from the running demo target.
    let post = r
        .stdout
        .lines()
        .find(|l| l.starts_with("POST to target:"))
        .unwrap_or_default();
    assert!(
        post.contains(" ms, p99 ") && !post.contains("n/a"),
        "{post}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_in_process_prints_every_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bench.json");
    let r = datasync(
        &[
            "bench",
            "-n",
            "200",
            "-c",
            "4",
            "--json",
            out.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(r.ok(), "{}\n{}", r.stdout, r.stderr);
    for label in [
        "ingest:",
        "end to end:",
        "ack latency:",
        "POST to target:",
        "direct baseline:",
        "end to end / direct",
        "OCI calls per 1,000:",
        "peak RSS:",
        "CPU per message:",
        "[target",
    ] {
        assert!(r.stdout.contains(label), "{label} missing:\n{}", r.stdout);
    }
    let doc: Value = serde_json::from_slice(&std::fs::read(Path::new(&out)).unwrap()).unwrap();
    assert_eq!(doc["acknowledged"], 200);
    assert_eq!(doc["handled"], 200);
    assert_eq!(doc["reached_target"], 200);
    for key in [
        "ingest_msg_per_s",
        "end_to_end_msg_per_s",
        "direct_baseline_msg_per_s",
        "ratio_to_direct",
        "oci_calls_per_1000_messages",
        "oci_calls_per_1000_messages_functions",
        "oci_calls_per_1000_messages_delivery",
        "peak_rss_mb",
    ] {
        assert!(doc[key].is_number(), "{key}: {doc}");
    }
    for key in ["ack_latency_ms", "post_to_target_latency_ms"] {
        assert!(
            doc[key]["p50"].is_number() && doc[key]["p99"].is_number(),
            "{key}: {doc}"
        );
    }
    assert!(doc["targets"]["peak_rss_mb"]["met"].is_boolean());
}

/// `--rounds` measures several times against one stack and summarizes: each figure's median
/// and range, and in how many rounds each target was met.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_rounds_summarize_median_range_and_targets_met() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bench.json");
    let r = datasync(
        &[
            "bench",
            "-n",
            "100",
            "-c",
            "4",
            "--rounds",
            "2",
            "--json",
            out.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(r.ok(), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.matches("end to end:").count(), 2, "{}", r.stdout);
    assert!(r.stdout.contains("over 2 rounds"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("peak_rss_mb: target <= 150 met in 2 of 2 rounds"),
        "{}",
        r.stdout
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(Path::new(&out)).unwrap()).unwrap();
    let rounds = doc["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    for round in rounds {
        assert_eq!(round["acknowledged"], 100);
        assert_eq!(round["handled"], 100);
    }
    let e2e = &doc["summary"]["figures"]["end_to_end_msg_per_s"];
    let (median, least, greatest) = (
        e2e["median"].as_f64().unwrap(),
        e2e["least"].as_f64().unwrap(),
        e2e["greatest"].as_f64().unwrap(),
    );
    let each: Vec<f64> = rounds
        .iter()
        .map(|r| r["end_to_end_msg_per_s"].as_f64().unwrap())
        .collect();
    assert_eq!(least, each[0].min(each[1]));
    assert_eq!(greatest, each[0].max(each[1]));
    assert_eq!(median, (each[0] + each[1]) / 2.0);
    assert_eq!(doc["summary"]["targets"]["peak_rss_mb"]["rounds_judged"], 2);
}

/// Retrying the dead-letter stream while the target still refuses: the call's messages are
/// dead-lettered (and announced) again once, then the run stops with exit status 1. Before,
/// `--until-empty` read back its own failures, re-sending and re-announcing each, until
/// `--max-calls` (1,000 by default). Once the target is fixed, the next run delivers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_stops_when_a_call_delivers_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut up, data) = stack_without_schedule(tmp.path()).await;
    let data = data.as_str();
    let target = up.target();
    post_json(
        &up.client,
        &format!("{target}/_control"),
        &json!({"status": 400}),
    )
    .await;
    let mut sent = HashSet::new();
    for n in 0..2 {
        let (s, v) = up
            .post(
                "/stream/sync",
                Some(&up.source_key()),
                &sync_request(&target, &format!("d{n}"), n),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        sent.insert(v["id"].as_str().unwrap().to_owned());
    }
    eventually(Duration::from_secs(30), || async {
        (stream_messages(&up.status().await, "datasync-dead-letter") == 2).then_some(())
    })
    .await
    .expect("both messages are dead-lettered");
    let retry = [
        "retry",
        "--data-dir",
        data,
        "--stream",
        "dead-letter",
        "--until-empty",
    ];

    let r = datasync(&retry, None).await;
    assert!(
        !r.ok(),
        "a run that delivered nothing exits 1:\n{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("none of the last call's 2 message(s) was delivered"),
        "{}",
        r.stdout
    );
    // One pass: the two dead letters once more, not read back again.
    assert_eq!(
        stream_messages(&up.status().await, "datasync-dead-letter"),
        4
    );

    post_json(
        &up.client,
        &format!("{target}/_control"),
        &json!({"status": 200}),
    )
    .await;
    let r = datasync(&retry, None).await;
    assert!(r.ok(), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("2 delivered"), "{}", r.stdout);
    let got: HashSet<String> = delivered_ids(&up.client, &target)
        .await
        .into_iter()
        .collect();
    assert_eq!(got, sent);
    up.stop();
}
