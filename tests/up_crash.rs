//! `kill -9` of `datasync up` during a load, then a restart on the same data directory: every
//! acknowledged message reaches the target at least once. The target runs as its own process
//! (`datasync demo-target`) so it outlives the crash; the test prints the duplicates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use up_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_load_then_restart_loses_no_acknowledged_message() {
    let target = start_target();
    let host = target.1.trim_start_matches("http://").to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let extra = ["--no-demo-target", "--allow-target", host.as_str()];
    let mut up = Up::start_in(tmp.path(), FAST, &extra).await;
    let gateway = up.gateway();
    let key = up.source_key();

    // Load: 8 clients, each sending until the stack dies or 400 messages are acknowledged.
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mut clients = Vec::new();
    for c in 0..8 {
        let (acked, gateway, key, target) = (
            Arc::clone(&acked),
            gateway.clone(),
            key.clone(),
            target.1.clone(),
        );
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0..200 {
                let body = sync_request(&target, &format!("c{c}"), n);
                let r = http
                    .post(format!("{gateway}/stream/sync"))
                    .header("x-api-key", &key)
                    .header("content-type", "application/json")
                    .header("authorization", "Bearer crash-token")
                    .body(body.to_string())
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status() != 200 {
                    break;
                }
                let Ok(v) = r.json::<serde_json::Value>().await else {
                    break;
                };
                acked
                    .lock()
                    .unwrap()
                    .insert(v["id"].as_str().unwrap().to_owned());
            }
        }));
    }
    eventually(Duration::from_secs(60), || async {
        (acked.lock().unwrap().len() >= 300).then_some(())
    })
    .await
    .expect("the load runs");
    up.kill();
    for c in clients {
        let _ = c.await;
    }
    let acked: HashSet<String> = acked.lock().unwrap().clone();
    let before = get_json(&up.client, &format!("{}/_received?summary=1", target.1)).await;

    // Restart on the same data directory.
    let mut up = Up::start_in(tmp.path(), FAST, &extra).await;
    let missing = eventually(Duration::from_secs(90), || async {
        let got: HashSet<String> = delivered_ids(&up.client, &target.1)
            .await
            .into_iter()
            .collect();
        let missing = acked.difference(&got).count();
        (missing == 0).then_some(missing)
    })
    .await;
    let after = get_json(&up.client, &format!("{}/_received?summary=1", target.1)).await;
    println!(
        "acknowledged {}, received before the restart {}, after {} (unique {}, duplicates {})",
        acked.len(),
        before["total"],
        after["total"],
        after["unique"],
        after["duplicates"]
    );
    assert_eq!(missing, Some(0), "acknowledged messages were lost");
    // The data connector commits its checkpoint (fsync'd) after every batch process took, so
    // a crash re-delivers at most the batch in flight: FAST's 50 messages on one partition.
    let duplicates = after["duplicates"].as_u64().unwrap();
    assert!(
        duplicates <= 50,
        "{duplicates} duplicates: more than the one batch in flight"
    );
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_stops_at_once_and_the_cut_batch_is_delivered_after_restart() {
    let target = start_target();
    let url = target.1.clone();
    let host = url.trim_start_matches("http://").to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let extra = ["--no-demo-target", "--allow-target", host.as_str()];
    let mut up = Up::start_in(tmp.path(), FAST, &extra).await;
    // The target holds every answer 20 s: a graceful stop would wait for the call in flight.
    let slow = serde_json::json!({"delay_ms": 20_000});
    assert_eq!(
        post_json(&up.client, &format!("{url}/_control"), &slow).await,
        200
    );
    let (s, v) = up
        .post(
            "/stream/sync",
            Some(&up.source_key()),
            &sync_request(&url, "k", 1),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    // The batch reaches process and its call waits on the target.
    let processed = eventually(Duration::from_secs(10), || async {
        let st = up.status().await;
        (st.processed_messages >= 1
            || st
                .functions
                .iter()
                .any(|f| f.name == "process" && f.calls >= 1))
        .then_some(())
    })
    .await;
    assert!(processed.is_some(), "process was never called");

    let mut child = up.child.take().unwrap();
    let pid = child.id().to_string();
    let interrupt = || Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(interrupt().success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first Ctrl-C waits for the call in flight"
    );
    assert!(interrupt().success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a second Ctrl-C did not stop datasync up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(130), "{status}");

    // The target answers at once again; the restart delivers the cut batch.
    let fast = serde_json::json!({"delay_ms": 0});
    assert_eq!(
        post_json(&up.client, &format!("{url}/_control"), &fast).await,
        200
    );
    let up = Up::start_in(tmp.path(), FAST, &extra).await;
    let delivered = eventually(Duration::from_secs(30), || async {
        delivered_ids(&up.client, &url)
            .await
            .contains(&id)
            .then_some(())
    })
    .await;
    assert!(
        delivered.is_some(),
        "{id} was not delivered after the restart"
    );
}
