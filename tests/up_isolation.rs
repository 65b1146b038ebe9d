//! `datasync up` end to end: a target host that never answers beside the healthy demo target
//! (the measurement of issue 20, scaled to seconds): the healthy host's sync-to-delivery stays
//! low, its messages arrive in key order, nothing is lost for either, and the hanging host's
//! breaker shows on `/status`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use up_support::*;

/// A target that reads every request and never answers; counts the requests.
async fn hanging_target() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let mut counted = false;
                while let Ok(n) = socket.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if !counted && buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        counted = true;
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    (authority, requests)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn sync(url: &str, key: &str, payload: Value) -> Value {
    json!({
        "streamKey": key,
        "streamMessage": {
            "vaultSecretName": "iso",
            "targetRestApi": url,
            "targetRestApiOperation": "POST",
            "targetRestApiPayload": payload,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_host_never_holds_back_the_healthy_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (hung, hung_calls) = hanging_target().await;
    // The share is short so the test takes seconds; the breaker's cool-down outlasts it.
    let config = format!(
        "{FAST}\n[functions.config]\nhost_time_share_ms = \"500\"\nbreaker_cool_down_ms = \"60000\"\nbreaker_consecutive_failures = \"2\"\n"
    );
    let up = Up::start_in(tmp.path(), &config, &["--allow-target", &hung]).await;
    let target = up.target();
    let key = up.source_key();
    // 6 s: the healthy host at 20 msg/s (one key, so order matters), the hung one at 2 msg/s.
    let (healthy_n, mut hung_n) = (120u64, 0u64);
    let start = tokio::time::Instant::now();
    for n in 0..healthy_n {
        tokio::time::sleep_until(start + Duration::from_millis(50 * n)).await;
        let body = sync(
            &format!("{target}/iso"),
            "healthy",
            json!({"benchSentUs": now_us(), "n": n}),
        );
        let (s, v) = up.post("/stream/sync", Some(&key), &body).await;
        assert_eq!(s, 200, "{v}");
        if n % 10 == 0 {
            // A key each: one key would be parked behind its first message (docs/ordering.md),
            // so only that one would be attempted and the breaker would have nothing to see.
            let body = sync(
                &format!("http://{hung}/iso"),
                &format!("hung-{hung_n}"),
                json!({"n": hung_n}),
            );
            let (s, v) = up.post("/stream/sync", Some(&key), &body).await;
            assert_eq!(s, 200, "{v}");
            hung_n += 1;
        }
    }
    // Every healthy message arrives; its sync-to-delivery p99 stays under 2 s.
    let mut latencies: Vec<u64> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while (latencies.len() as u64) < healthy_n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let got: Value = up
            .client
            .post(format!("{target}/_latencies"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        latencies.extend(
            got["latencies_us"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_u64().unwrap()),
        );
    }
    assert_eq!(
        latencies.len() as u64,
        healthy_n,
        "every healthy message arrived"
    );
    latencies.sort_unstable();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    let p50 = latencies[latencies.len() / 2];
    eprintln!(
        "healthy sync-to-delivery: p50 {} ms, p99 {} ms",
        p50 / 1000,
        p99 / 1000
    );
    assert!(p99 < 2_000_000, "p99 {} ms", p99 / 1000);

    // In key order, each once.
    let order: Vec<u64> = received(&up.client, &target)
        .await
        .messages
        .unwrap()
        .into_iter()
        .filter(|m| m.path == "/iso" && m.status == 200)
        .map(|m| {
            serde_json::from_str::<Value>(&m.body).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(order, (0..healthy_n).collect::<Vec<_>>());

    // Nothing of the hung host's is lost: each message waits in the service-unavailable
    // stream (none dead-lettered); its breaker opened after a few calls and shows on /status.
    let status = eventually(Duration::from_secs(10), || async {
        let st = up.status().await;
        let open = st.functions.iter().any(|f| {
            f.hosts
                .iter()
                .any(|h| h.host == hung && h.breaker.as_str() == "open")
        });
        (open && stream_messages(&st, "datasync-errors-service-unavailable") >= hung_n as i64)
            .then_some(st)
    })
    .await;
    let Some(status) = status else {
        let st = up.status().await;
        let hosts: Vec<_> = st.functions.iter().map(|f| (&f.name, &f.hosts)).collect();
        panic!(
            "the hung host's breaker is not open with its {hung_n} messages waiting: {} in the stream, hosts {hosts:?}",
            stream_messages(&st, "datasync-errors-service-unavailable")
        );
    };
    assert_eq!(stream_messages(&status, "datasync-dead-letter"), 0);
    let calls = hung_calls.load(Ordering::Relaxed);
    eprintln!("hung host: {hung_n} messages, {calls} calls");
    assert!(calls < 2 * hung_n, "{calls} calls for {hung_n} messages");
}
