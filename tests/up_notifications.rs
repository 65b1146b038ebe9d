//! `datasync up` end to end, dead-letter notifications: process publishes summaries under
//! 64 KB that never carry custom header values (payloads only when asked for), a dead letter
//! the topic refuses does not hold back the ones behind it, and a burst stays within the rate.
//! The notifications are read back from the emulator's store once the stack has stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::path::Path;
use std::time::Duration;

use datasync_core::deliver::DeadLetterAlert;
use datasync_emulator::{Emulator, EmulatorOptions, PublishedNotification};
use datasync_local::stack::status::{Reader, Status};
use serde_json::{json, Value};
use up_support::*;

/// Credential-looking custom headers and their values, which no notification may carry.
const SECRET_HEADERS: [(&str, &str); 6] = [
    ("x-client-secret", "s3cr3t-client"),
    ("private-token", "s3cr3t-private"),
    ("x-goog-api-key", "s3cr3t-goog"),
    ("ocp-apim-subscription-key", "s3cr3t-apim"),
    ("x-vault-token", "s3cr3t-vault"),
    ("x-partner-ref", "s3cr3t-partner"),
];

/// A sync request to `target` with `payload` and `headers`.
fn request(target: &str, key: &str, payload: Value, headers: &[(&str, &str)]) -> Value {
    let headers: Vec<Value> = headers
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    json!({
        "streamKey": key,
        "streamMessage": {
            "vaultSecretName": "e2e",
            "targetRestApi": format!("{target}/orders"),
            "targetRestApiOperation": "POST",
            "targetRestApiPayload": payload,
            "targetRestApiHeaders": headers,
        }
    })
}

/// Every notification of the stack in `dir`, read from the emulator's store (stopped stack).
async fn published(dir: &Path) -> Vec<PublishedNotification> {
    let emulator = Emulator::open(&dir.join("data"), EmulatorOptions::default()).unwrap();
    emulator.notifications().await.unwrap()
}

/// Makes the demo target answer `status` to everything.
async fn target_answers(up: &Up, status: u16) {
    let url = format!("{}/_control", up.target());
    assert_eq!(
        post_json(&up.client, &url, &json!({"status": status})).await,
        200
    );
}

/// Sends `body`; its id, or `None` when populate refused it (a header it will not store).
async fn send(up: &Up, body: &Value) -> Option<String> {
    let (s, v) = up.post("/stream/sync", Some(&up.source_key()), body).await;
    match s {
        200 => Some(v["id"].as_str().unwrap().to_owned()),
        400 => {
            eprintln!("refused: {v}");
            None
        }
        _ => panic!("{s}: {v}"),
    }
}

/// The status once every id of `ids` is named by a notification on the status page.
async fn named_by_alerts(up: &Up, ids: &[String]) -> Status {
    eventually(Duration::from_secs(30), || async {
        let st = up.status().await;
        let named: Vec<&str> = st
            .notifications
            .recent
            .iter()
            .flat_map(|n| n.dead_letters.iter().map(|m| m.id.as_str()))
            .collect();
        ids.iter()
            .all(|id| named.contains(&id.as_str()))
            .then_some(st)
    })
    .await
    .expect("every dead letter named by an alert")
}

fn config(extra: &str) -> String {
    format!(
        "{}\n{extra}",
        FAST.replace("enabled = true", "enabled = false")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_summaries_under_64_kb_without_header_values_or_payloads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut up = Up::start_in(tmp.path(), &config(""), &[]).await;
    let target = up.target();
    target_answers(&up, 400).await;
    let big = json!({"blob": "b".repeat(70_000)});
    let mut ids = vec![
        send(&up, &request(&target, "big", big, &SECRET_HEADERS[5..]))
            .await
            .expect("the 70,000-byte message is accepted"),
    ];
    for (i, h) in SECRET_HEADERS.iter().enumerate() {
        let body = request(
            &target,
            &format!("h{i}"),
            json!({"n": i, "p": "pay-l0ad"}),
            &[*h],
        );
        ids.extend(send(&up, &body).await);
    }
    assert!(
        ids.len() >= 3,
        "populate refused nearly every header: {ids:?}"
    );
    let status = named_by_alerts(&up, &ids).await;
    assert!(status.notifications.alerts_published >= 1, "{status:?}");
    assert_eq!(status.notifications.alert_publish_failures, 0);
    up.stop();

    let notes = published(tmp.path()).await;
    assert!(!notes.is_empty());
    let mut listed = Vec::new();
    for n in &notes {
        let size = n.body.len() + n.title.as_ref().map_or(0, String::len);
        assert!(size <= 64 * 1024, "{size} bytes");
        for (name, value) in SECRET_HEADERS {
            assert!(!n.body.contains(value), "{name}'s value in {}", n.body);
        }
        assert!(
            !n.body.contains("bbbbbbbb") && !n.body.contains("pay-l0ad"),
            "a payload: {}",
            n.body
        );
        assert!(!n.body.contains("/orders"), "a target URL: {}", n.body);
        let alert = DeadLetterAlert::parse(&n.body).expect("a dead-letter alert");
        listed.extend(alert.messages);
    }
    let big = listed.iter().find(|d| d.id == ids[0]).unwrap();
    assert!(big.bytes > 70_000, "{big:?}");
    assert_eq!(big.status, Some(400));
    assert!(big.archive.is_some() && big.payload.is_none(), "{big:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_on_request_and_a_refused_raw_dead_letter_never_blocks_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config("[notifications]\nnotify_dead_letter_payloads = true\n").replace(
        "[connector]\n",
        "[connector]\nnotify_dead_letter_messages = true\n",
    );
    let mut up = Up::start_in(tmp.path(), &cfg, &[]).await;
    let target = up.target();
    target_answers(&up, 400).await;
    let big = json!({"blob": "b".repeat(70_000)});
    let big_id = send(&up, &request(&target, "big", big, &[])).await.unwrap();
    let small = json!({"p": "pay-l0ad"});
    let small_id = send(&up, &request(&target, "small", small, &[]))
        .await
        .unwrap();
    // The connector sends each dead letter raw: the 70,000-byte one is refused (413) and given
    // up on, the one behind it is published.
    let status = eventually(Duration::from_secs(30), || async {
        let st = up.status().await;
        let given_up = st
            .streams
            .iter()
            .flat_map(|s| &s.consumers)
            .find_map(|c| match &c.reader {
                Reader::Connector {
                    connector,
                    given_up,
                    ..
                } if connector == "dead-letter-to-notifications" => Some(*given_up),
                _ => None,
            });
        let raw_small = st
            .notifications
            .recent
            .iter()
            .any(|n| n.message.as_ref().is_some_and(|m| m.id == small_id));
        (given_up == Some(1) && raw_small).then_some(st)
    })
    .await
    .expect("the refused dead letter given up, the next one published");
    assert!(status.notifications.alerts_published >= 1, "{status:?}");
    up.stop();

    let notes = published(tmp.path()).await;
    let alerts: Vec<DeadLetterAlert> = notes
        .iter()
        .filter_map(|n| DeadLetterAlert::parse(&n.body))
        .collect();
    let listed: Vec<_> = alerts.iter().flat_map(|a| &a.messages).collect();
    let big = listed
        .iter()
        .find(|d| d.id == big_id)
        .expect("the big one named");
    assert!(big.payload_truncated && big.payload.as_ref().unwrap().len() <= 8 * 1024);
    let small = listed
        .iter()
        .find(|d| d.id == small_id)
        .expect("the small one named");
    assert!(
        small.payload.as_ref().unwrap().contains("pay-l0ad"),
        "{small:?}"
    );
    for n in &notes {
        assert!(n.body.len() + n.title.as_ref().map_or(0, String::len) <= 64 * 1024);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_dead_letters_stays_within_the_rate_and_is_folded_into_the_next_alert() {
    let tmp = tempfile::tempdir().unwrap();
    // One message per batch, so each dead letter is its own alert: 60 a minute is a burst of
    // ten, then one a second.
    let cfg = config("[notifications]\nrate_per_minute = 60\n")
        .replace("batch_size_in_num = 50", "batch_size_in_num = 1");
    let mut up = Up::start_in(tmp.path(), &cfg, &[]).await;
    let target = up.target();
    target_answers(&up, 400).await;
    let started = std::time::Instant::now();
    let burst = 16;
    for n in 0..burst {
        send(&up, &sync_request(&target, &format!("k{n}"), n))
            .await
            .unwrap();
    }
    let held = eventually(Duration::from_secs(30), || async {
        let st = up.status().await;
        let n = &st.notifications;
        (n.alerts_published + n.alerts_held_back == burst as u64).then_some(n.alerts_held_back)
    })
    .await
    .expect("every batch's alert published or held back");
    assert!(held >= 2, "{held} held back");
    // A token comes back within a second: the next alert names what was held back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send(&up, &sync_request(&target, "after", 99))
        .await
        .unwrap();
    let status = eventually(Duration::from_secs(30), || async {
        let st = up.status().await;
        (st.notifications.alerts_published + st.notifications.alerts_held_back == burst as u64 + 1)
            .then_some(st)
    })
    .await
    .unwrap();
    let elapsed = started.elapsed().as_secs();
    assert_eq!(
        status.notifications.alert_publish_failures, 0,
        "no 429 from the topic"
    );
    up.stop();

    let notes = published(tmp.path()).await;
    assert!(
        notes.len() as u64 <= 10 + elapsed + 1,
        "{} notifications in {elapsed} s",
        notes.len()
    );
    let folded: u64 = notes
        .iter()
        .filter_map(|n| DeadLetterAlert::parse(&n.body)?.held_back)
        .map(|h| h.dead_letters)
        .sum();
    assert_eq!(folded, held, "every held-back dead letter announced later");
}
