//! `datasync up` end to end, per-key order (docs/ordering.md): a key whose message fails with
//! a retryable class is parked, so its later messages (later batches, other instances, after a
//! crash) reach the target only after it; a permanent failure holds nothing back, unless its
//! host says `parkOnPermanent`: then the key waits until `datasync retry --release-key`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};
use up_support::*;

/// A sync request for step `n` of key `key`, its payload naming both.
fn step(target: &str, key: &str, n: usize) -> Value {
    json!({
        "streamKey": key,
        "streamMessage": {
            "vaultSecretName": "e2e",
            "targetRestApi": format!("{target}/orders"),
            "targetRestApiOperation": "POST",
            "targetRestApiPayload": {"key": key, "n": n},
        }
    })
}

/// Per key, the steps the target answered 200, in arrival order, each once (a redelivered
/// duplicate counts where it first arrived).
async fn delivered_steps(client: &reqwest::Client, target: &str) -> BTreeMap<String, Vec<u64>> {
    let mut seen = HashSet::new();
    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for m in received(client, target).await.messages.unwrap() {
        if m.status != 200 {
            continue;
        }
        let Ok(body) = serde_json::from_str::<Value>(&m.body) else {
            continue;
        };
        let (Some(key), Some(n)) = (body["key"].as_str(), body["n"].as_u64()) else {
            continue;
        };
        if seen.insert((key.to_owned(), n)) {
            by_key.entry(key.to_owned()).or_default().push(n);
        }
    }
    by_key
}

async fn control(up_client: &reqwest::Client, target: &str, mode: Value) {
    assert_eq!(
        post_json(up_client, &format!("{target}/_control"), &mode).await,
        200
    );
}

async fn send(up: &Up, target: &str, key: &str, n: usize) -> String {
    let (s, v) = up
        .post(
            "/stream/sync",
            Some(&up.source_key()),
            &step(target, key, n),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_failing_once_is_delivered_before_the_later_steps_of_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let mut up = Up::start_in(tmp.path(), FAST, &[]).await;
    let target = up.target();
    control(&up.client, &target, json!({"status": 503, "count": 1})).await;
    send(&up, &target, "order-42", 1).await;
    // Steps 2 to 5, 400 ms apart: each in a later connector batch than step 1.
    for n in 2..=5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        send(&up, &target, "order-42", n).await;
    }
    let steps = eventually(Duration::from_secs(40), || async {
        let steps = delivered_steps(&up.client, &target).await;
        let got = steps.get("order-42").cloned().unwrap_or_default();
        (got.len() == 5).then_some(got)
    })
    .await;
    assert_eq!(
        steps,
        Some(vec![1, 2, 3, 4, 5]),
        "the target's 200s, in order"
    );
    let st = up.status().await;
    assert_eq!(stream_messages(&st, "datasync-dead-letter"), 0);
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_valid_neighbour_of_a_400_is_delivered_and_the_dead_letter_is_the_400s_own() {
    let tmp = tempfile::tempdir().unwrap();
    let config = FAST.replace("enabled = true", "enabled = false");
    let mut up = Up::start_in(tmp.path(), &config, &[]).await;
    let target = up.target();
    control(&up.client, &target, json!({"status": 400, "count": 1})).await;
    let bad = send(&up, &target, "pair", 1).await;
    let good = send(&up, &target, "pair", 2).await;
    // The engine's dead-letter alert names each dead letter with its own last error: wait for
    // the 400's.
    let (st, note) = eventually(Duration::from_secs(30), || async {
        let st = up.status().await;
        let note = st
            .notifications
            .recent
            .iter()
            .find_map(|n| n.dead_letters.iter().find(|m| m.id == bad))
            .cloned();
        note.map(|n| (st, n))
    })
    .await
    .expect("the 400 is dead-lettered and announced");
    let delivered: HashSet<String> = delivered_ids(&up.client, &target)
        .await
        .into_iter()
        .collect();
    assert!(delivered.contains(&good), "the valid message is delivered");
    assert!(!delivered.contains(&bad));
    assert_eq!(stream_messages(&st, "datasync-dead-letter"), 1);
    let last = note.last_error.as_ref().unwrap();
    assert_eq!(last.class.as_str(), "clientError");
    assert_eq!(last.status, Some(400), "its own answer: {note:?}");
    assert!(
        !st.notifications
            .recent
            .iter()
            .any(|n| n.dead_letters.iter().any(|m| m.id == good)),
        "nothing announced for the delivered one"
    );
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_holds_across_a_kill_9_and_a_restart_while_a_key_is_parked() {
    let target = start_target();
    let url = target.1.clone();
    let host = url.trim_start_matches("http://").to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let extra = ["--no-demo-target", "--allow-target", host.as_str()];
    let mut up = Up::start_in(tmp.path(), FAST, &extra).await;
    control(&up.client, &url, json!({"status": 503})).await;
    send(&up, &url, "crash-key", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 2..=3 {
        send(&up, &url, "crash-key", n).await;
    }
    // Steps 2 and 3 wait behind step 1 in the error stream (not attempted).
    eventually(Duration::from_secs(20), || async {
        let st = up.status().await;
        (stream_messages(&st, "datasync-errors-service-unavailable") >= 3).then_some(())
    })
    .await
    .expect("the key's messages wait in the error stream");
    up.kill();

    let mut up = Up::start_in(tmp.path(), FAST, &extra).await;
    control(&up.client, &url, json!({"status": 200})).await;
    send(&up, &url, "crash-key", 4).await;
    let steps = eventually(Duration::from_secs(40), || async {
        let got = delivered_steps(&up.client, &url).await;
        let got = got.get("crash-key").cloned().unwrap_or_default();
        (got.len() == 4).then_some(got)
    })
    .await;
    assert_eq!(
        steps,
        Some(vec![1, 2, 3, 4]),
        "the target's 200s after the restart"
    );
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_keys_through_two_process_instances_and_the_retry_schedule_keep_their_order() {
    let tmp = tempfile::tempdir().unwrap();
    let config = FAST.replace("process_instances = 1", "process_instances = 2");
    let mut up = Up::start_in(tmp.path(), &config, &[]).await;
    let target = up.target();
    // About one first attempt in five fails (503) while the load is sent; retries succeed.
    control(
        &up.client,
        &target,
        json!({"fail_rate": 0.2, "fail_status": 503}),
    )
    .await;
    const KEYS: usize = 50;
    const STEPS: usize = 4;
    for n in 1..=STEPS {
        for k in 0..KEYS {
            send(&up, &target, &format!("key-{k}"), n).await;
        }
    }
    // Every message has been tried once (delivered, failed, or held) before failures stop.
    eventually(Duration::from_secs(30), || async {
        let r = received(&up.client, &target).await;
        let st = up.status().await;
        let waiting = stream_messages(&st, "datasync-errors-service-unavailable") as u64;
        (r.unique + waiting >= (KEYS * STEPS) as u64).then_some(())
    })
    .await
    .expect("the load is handled once");
    control(&up.client, &target, json!({})).await;
    let steps = eventually(Duration::from_secs(60), || async {
        let steps = delivered_steps(&up.client, &target).await;
        (steps.values().map(Vec::len).sum::<usize>() == KEYS * STEPS).then_some(steps)
    })
    .await
    .expect("every message is delivered");
    let failed = received(&up.client, &target).await.failed;
    assert!(failed > 0, "some first attempts failed");
    let want: Vec<u64> = (1..=STEPS as u64).collect();
    for (key, got) in &steps {
        assert_eq!(got, &want, "the target's 200s for {key}");
    }
    up.stop();
}

/// A host marked `parkOnPermanent` in `classification_overrides`: its 400 dead-letters the
/// message and parks the key, so the key's later messages wait in an error stream (neither
/// attempted nor dead-lettered, through several retry ticks) until an operator runs
/// `datasync retry --release-key`; then they reach the target in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_park_on_permanent_host_holds_its_key_until_an_operator_releases_it() {
    let target = start_target();
    let url = target.1.clone();
    let host = url.trim_start_matches("http://").to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{FAST}\n[functions.config]\nclassification_overrides = '{{\"{host}\": {{\"parkOnPermanent\": true}}}}'\n"
    );
    let extra = ["--no-demo-target", "--allow-target", host.as_str()];
    let mut up = Up::start_in(tmp.path(), &config, &extra).await;
    control(&up.client, &url, json!({"status": 400, "count": 1})).await;
    let blocker = send(&up, &url, "strict", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 2..=3 {
        send(&up, &url, "strict", n).await;
    }
    let waiting = eventually(Duration::from_secs(20), || async {
        let st = up.status().await;
        (stream_messages(&st, "datasync-dead-letter") == 1
            && stream_messages(&st, "datasync-errors-default") >= 2)
            .then_some(())
    })
    .await;
    if waiting.is_none() {
        let st = up.status().await;
        let streams: Vec<(&str, i64)> = st
            .streams
            .iter()
            .map(|s| (s.name.as_str(), s.messages))
            .collect();
        panic!("the 400 is not dead-lettered with the later steps waiting: {streams:?}");
    }
    // Several retry ticks (1 s apart) later, the later steps are still not attempted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = received(&up.client, &url).await.messages.unwrap();
    assert_eq!(calls.len(), 1, "only the blocker was attempted: {calls:?}");
    assert_eq!(
        calls[0].headers.get("idempotency-key"),
        Some(&blocker),
        "{calls:?}"
    );
    let st = up.status().await;
    assert_eq!(stream_messages(&st, "datasync-dead-letter"), 1);

    let stdout = up.cli_ok(&["retry", "--release-key", "strict"]).await;
    assert!(
        stdout.contains(&format!("blocker {blocker} dropped")),
        "{stdout}"
    );
    let steps = eventually(Duration::from_secs(40), || async {
        let got = delivered_steps(&up.client, &url).await;
        let got = got.get("strict").cloned().unwrap_or_default();
        (got.len() == 2).then_some(got)
    })
    .await;
    assert_eq!(steps, Some(vec![2, 3]), "the waiting steps, in order");
    // The key's story tells the wait and the release.
    let story = eventually(Duration::from_secs(10), || async {
        let text = up
            .cli_ok(&["trace", "--key", "strict", "--since", "1h"])
            .await;
        (text.contains("parked") && text.contains("released")).then_some(text)
    })
    .await;
    assert!(
        story.is_some(),
        "datasync trace --key tells neither park nor release"
    );
    up.stop();
}
