//! `datasync up` end to end, failures: a target answering 400 (dead-letter stream, a
//! notification, an archived object holding the messages) and a target answering 503 for a
//! while (error stream, then delivered by the retry schedule and by `POST /stream/retry`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::collections::HashSet;
use std::time::Duration;

use datasync_core::oci::auth::ConfigProfile;
use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::signer::Signer;
use datasync_local::client::SignedClient;
use datasync_local::stack::status::Status;
use serde_json::{json, Value};
use up_support::*;

fn signed(up: &Up) -> SignedClient {
    let profile = ConfigProfile::load(&up.dir.join("data").join("config"), "LOCAL", None).unwrap();
    let pem = std::fs::read_to_string(&profile.key_file).unwrap();
    let key = PrivateKey::from_pem(&pem, None).unwrap();
    SignedClient::new(&up.info.emulator, Signer::new(profile.key_id(), key)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_goes_to_dead_letter_notification_and_archive() {
    let tmp = tempfile::tempdir().unwrap();
    // The retry schedule is off, so only the replay at the end retries the error stream.
    let config = FAST.replace("enabled = true", "enabled = false");
    let mut up = Up::start_in(tmp.path(), &config, &[]).await;
    let target = up.target();
    assert_eq!(
        post_json(
            &up.client,
            &format!("{target}/_control"),
            &json!({"status": 400})
        )
        .await,
        200
    );
    let mut ids = HashSet::new();
    for n in 0..3 {
        let (s, v) = up
            .post(
                "/stream/sync",
                Some(&up.source_key()),
                &sync_request(&target, "dl", n),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        ids.insert(v["id"].as_str().unwrap().to_owned());
    }
    let (status, page) = eventually(Duration::from_secs(30), || async {
        let raw = up.status_json().await;
        let st: Status = serde_json::from_value(raw.clone()).unwrap();
        let archived = st
            .archived_objects
            .iter()
            .flatten()
            .any(|o| o.name.starts_with("dead-letter/"));
        (stream_messages(&st, "datasync-dead-letter") == 3
            && st.notifications.total >= 1
            && archived)
            .then_some((st, raw))
    })
    .await
    .expect("dead-letter stream, notification and archive");
    // Every message reached the dead-letter stream and nothing else.
    assert_eq!(
        stream_messages(&status, "datasync-errors-service-unavailable"),
        0
    );
    // The status page (no key needed) names each dead-lettered message and why it failed,
    // never the notification's body: no payload, custom header or target URL.
    let recent = &status.notifications.recent;
    for id in &ids {
        let (note, named) = recent
            .iter()
            .find_map(|n| Some((n, n.dead_letters.iter().find(|m| &m.id == id)?)))
            .unwrap_or_else(|| panic!("no notification names {id}: {recent:?}"));
        // Each was attempted and answered 400: its own class.
        let class = named.last_error.as_ref().map(|e| e.class.as_str());
        assert_eq!(class, Some("clientError"), "{note:?}");
        assert!(note.bytes > 100, "{note:?}");
    }
    let page = page.to_string();
    for secret in ["hello", "x-e2e", "/orders"] {
        assert!(
            !page.contains(secret),
            "{secret} on the status page: {page}"
        );
    }
    // The archive objects hold the messages.
    let client = signed(&up);
    let lines = archived_lines(&client, &ids).await;
    replay_archived(&up, &client, &lines, &ids).await;
    up.stop();
}

/// The lines of the archived dead-letter objects, after checking they hold every message of
/// `ids`.
async fn archived_lines(client: &SignedClient, ids: &HashSet<String>) -> Vec<Value> {
    let list = client
        .get("/n/local/b/datasync-failure-archive/o?prefix=dead-letter/")
        .await
        .unwrap();
    let list: Value = list.json().unwrap();
    let mut archived = String::new();
    let mut lines = Vec::new();
    for o in list["objects"].as_array().unwrap() {
        let name = o["name"].as_str().unwrap();
        let obj = client
            .get(&format!("/n/local/b/datasync-failure-archive/o/{name}"))
            .await
            .unwrap();
        assert!(obj.status.is_success());
        for line in String::from_utf8(obj.body.to_vec()).unwrap().lines() {
            let m: Value = serde_json::from_str(line).unwrap();
            use base64::Engine as _;
            let value = base64::engine::general_purpose::STANDARD
                .decode(m["value"].as_str().unwrap())
                .unwrap();
            archived.push_str(&String::from_utf8(value).unwrap());
            lines.push(m);
        }
    }
    for id in ids {
        assert!(archived.contains(id.as_str()), "{id} not archived");
    }
    lines
}

/// The README's replay recipe: an archived line's key and value, as they stand, are a
/// PutMessages entry; put back into an error stream, the target fixed, one retry call
/// delivers every message again, under its first id.
async fn replay_archived(up: &Up, client: &SignedClient, lines: &[Value], ids: &HashSet<String>) {
    let target = up.target();
    let entries: Vec<Value> = lines
        .iter()
        .map(|m| json!({"key": m["key"], "value": m["value"]}))
        .collect();
    let put = client
        .send(
            http::Method::POST,
            &format!("/20180418/streams/{}/messages", up.stream("errors-default")),
            serde_json::to_vec(&json!({ "messages": entries })).unwrap(),
            datasync_core::oci::signer::BodySigning::Exclude,
            http::HeaderMap::new(),
        )
        .await
        .unwrap();
    assert!(put.status.is_success(), "{put:?}");
    post_json(
        &up.client,
        &format!("{target}/_control"),
        &json!({"status": 200}),
    )
    .await;
    let (s, answer) = up
        .post(
            "/stream/retry",
            Some(&up.operator_key()),
            &json!({"stream": up.stream("errors-default")}),
        )
        .await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(answer["delivered"], 3, "{answer}");
    let replayed: HashSet<String> = delivered_ids(&up.client, &target)
        .await
        .into_iter()
        .collect();
    assert_eq!(&replayed, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_target_messages_are_retried_until_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    // The schedule is off here at first so the manual retry can be checked; a second stack
    // start turns it on.
    let config = FAST.replace("enabled = true", "enabled = false");
    let addr = free_addr();
    let mut up = Up::start_with(tmp.path(), &config, &addr, &[]).await;
    let target = up.target();
    post_json(
        &up.client,
        &format!("{target}/_control"),
        &json!({"status": 503}),
    )
    .await;
    let mut ids = HashSet::new();
    for n in 0..6 {
        let (s, v) = up
            .post(
                "/stream/sync",
                Some(&up.source_key()),
                &sync_request(&target, &format!("k{n}"), n),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        ids.insert(v["id"].as_str().unwrap().to_owned());
    }
    eventually(Duration::from_secs(30), || async {
        let st = up.status().await;
        (stream_messages(&st, "datasync-errors-service-unavailable") >= 6).then_some(())
    })
    .await
    .expect("the 503s go to the service-unavailable error stream");
    let st = up.status().await;
    assert_eq!(stream_messages(&st, "datasync-dead-letter"), 0);
    // The target recovers; an operator retries by hand.
    post_json(
        &up.client,
        &format!("{target}/_control"),
        &json!({"status": 200}),
    )
    .await;
    let body = json!({
        "streamOCIDToRetry": up.stream("errors-service-unavailable"),
        "noOfMessagesToProcess": 3,
        "readAfterOffset": -1,
        "readPartition": 0,
    });
    let (s, answer) = up
        .post("/stream/retry", Some(&up.operator_key()), &body)
        .await;
    assert_eq!(s, 200, "{answer}");
    let first: HashSet<String> = eventually(Duration::from_secs(20), || async {
        let got: HashSet<String> = delivered_ids(&up.client, &target)
            .await
            .into_iter()
            .collect();
        (got.len() >= 3).then_some(got)
    })
    .await
    .expect("the manual retry delivers");
    assert!(first.is_subset(&ids));
    up.stop();

    // Restart with the schedule on: the rest is delivered without anyone asking.
    let mut up = Up::start_with(tmp.path(), FAST, &addr, &[]).await;
    let target = up.target();
    let got = eventually(Duration::from_secs(60), || async {
        let got: HashSet<String> = delivered_ids(&up.client, &target)
            .await
            .into_iter()
            .collect();
        ids.difference(&first)
            .all(|id| got.contains(id))
            .then_some(got)
    })
    .await;
    assert!(
        got.is_some(),
        "the retry schedule delivers the remaining messages"
    );
    up.stop();
}
