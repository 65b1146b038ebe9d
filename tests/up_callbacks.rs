//! `datasync up` end to end, delivery callbacks (docs/callbacks.md): a delivered and a
//! dead-lettered message each get a callback whose Standard Webhooks signature verifies against
//! `DATA/callback-secret` (checked here with `ring`'s HMAC, independently of the production
//! signer, and that check first proven on the standard's published vector); a bad
//! `statusCallback` is a 400 naming it, with nothing stored; a callback endpoint that refuses
//! connections or hangs is left alone for a cool-down after its first failure, so later batches
//! do not wait for it, and its failures and skips are logged; a callback refused for a while is
//! queued in the callback stream and taken exactly once later, with the same `webhook-id`, and
//! one refused for good is abandoned after its tries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::{json, Value};
use up_support::*;

/// One callback as received, and the status it was answered with.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: HashMap<String, String>,
    body: Bytes,
    status: u16,
}

/// A callback receiver on 127.0.0.1 answering 200 and keeping what it gets.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receiver() -> Receiver {
    refusing_receiver(0).await
}

/// A callback receiver answering its first `refuse` calls 503, then 200.
async fn refusing_receiver(refuse: usize) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let keep = Arc::clone(&got);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let keep = Arc::clone(&keep);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let keep = Arc::clone(&keep);
                        async move {
                            let path = req.uri().path().to_owned();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let mut got = keep.lock().unwrap();
                            let status = if got.len() < refuse { 503 } else { 200 };
                            got.push(Got {
                                path,
                                headers,
                                body,
                                status,
                            });
                            let mut answer = hyper::Response::new(Full::new(Bytes::new()));
                            *answer.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(answer)
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Receiver { addr, got, task }
}

/// A server that accepts connections and never answers, counting them; aborted when dropped.
struct Hang {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hang {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hang() -> Hang {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    Hang {
        addr,
        connections,
        task,
    }
}

/// Verifies a Standard Webhooks `v1` signature as a receiver would, with `ring`'s HMAC (not
/// the production signer): the secret after `whsec_` base64-decoded keys HMAC-SHA256 over
/// `id.timestamp.body`, any `v1,` entry of the space-separated header may match.
fn verifies(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.trim().strip_prefix("whsec_").unwrap())
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    let expected = b64.encode(ring::hmac::sign(&key, &content).as_ref());
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

/// Verifies `got` against `secret`, with the libraries' five-minute tolerance; its body.
fn verified_body(secret: &str, got: &Got) -> Value {
    let h = |name: &str| {
        got.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name}: {:?}", got.headers))
            .clone()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    assert!(!id.contains('.') && !id.is_empty(), "{id}");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((ts.parse::<i64>().unwrap() - now).abs() <= 300, "{ts}");
    assert!(
        verifies(secret, &id, &ts, &got.body, &sig),
        "signature {sig} does not verify"
    );
    // Any change to the body, the id or the timestamp breaks it.
    assert!(!verifies(
        secret,
        &id,
        &(ts.parse::<i64>().unwrap() + 1).to_string(),
        &got.body,
        &sig
    ));
    assert!(!verifies(secret, &format!("{id}x"), &ts, &got.body, &sig));
    serde_json::from_slice(&got.body).unwrap()
}

#[test]
fn the_test_verifier_accepts_the_standard_s_published_vector() {
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let (secret, id, ts) = (
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        "1649367553",
    );
    let good = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    assert!(verifies(secret, id, ts, body, good));
    assert!(verifies(
        secret,
        id,
        ts,
        body,
        &format!("v1,bm90IGl0 {good}")
    ));
    assert!(!verifies(
        secret,
        id,
        ts,
        body,
        "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU="
    ));
}

fn with_callback(target: &str, key: &str, n: usize, callback: &str) -> Value {
    let mut body = sync_request(target, key, n);
    body["statusCallback"] = json!(callback);
    body
}

async fn sync(up: &Up, body: &Value) -> (u16, Value) {
    up.post("/stream/sync", Some(&up.source_key()), body).await
}

/// Sends `body` (accepted) and waits for `rx`'s `n`th callback (from 0), which is about it:
/// the call, and its body verified with `secret` (its `id` checked to be the message's).
async fn sync_then_callback(
    up: &Up,
    body: &Value,
    rx: &Receiver,
    n: usize,
    secret: &str,
) -> (Got, Value) {
    let (s, v) = sync(up, body).await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let got = eventually(Duration::from_secs(30), || async {
        rx.got.lock().unwrap().get(n).cloned()
    })
    .await
    .unwrap_or_else(|| panic!("no callback for {body}"));
    let verified = verified_body(secret, &got);
    assert_eq!(verified["id"], id.as_str());
    (got, verified)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_and_dead_lettered_messages_get_signed_callbacks_and_bad_urls_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = receiver().await;
    let allow = rx.addr.to_string();
    // A route whose messages get the receiver's callback by default.
    let demo = free_addr();
    let config = format!(
        "{FAST}\n[[routes]]\nname = \"orders\"\ntarget = \"http://{demo}/orders\"\nstatus_callback = \"http://{allow}/route-cb\"\n"
    );
    let mut up = Up::start_with(tmp.path(), &config, &demo, &["--allow-target", &allow]).await;
    let secret = std::fs::read_to_string(tmp.path().join("data").join("callback-secret")).unwrap();
    let mode = std::fs::metadata(tmp.path().join("data").join("callback-secret")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o077,
        0
    );
    let target = up.target();
    let callback = format!("http://{}/cb?app=orders", rx.addr);

    // Bad callback URLs: a 400 naming statusCallback, nothing stored.
    for (bad, rule) in [
        (
            "https://not-allowed.example.net/cb".to_owned(),
            "allow-list",
        ),
        (format!("ftp://{}/cb", rx.addr), "https"),
        (format!("http://user:pw@{}/cb", rx.addr), "credentials"),
        (
            format!("http://{}/cb\r\nx-evil: 1", rx.addr),
            "control characters",
        ),
    ] {
        let (s, v) = sync(&up, &with_callback(&target, "bad", 0, &bad)).await;
        assert_eq!(s, 400, "{bad:?}: {v}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.starts_with("statusCallback: ") && message.contains(rule),
            "{message}"
        );
        assert!(!message.contains("pw"), "{message}");
    }

    let delivered = with_callback(&target, "k-ok", 1, &callback);
    let (got, body) = sync_then_callback(&up, &delivered, &rx, 0, &secret).await;
    assert_eq!(body["streamKey"], "k-ok");
    assert_eq!(body["status"], "delivered");
    assert_eq!(body["attempts"], 1);
    assert_eq!(body["lastError"], Value::Null);
    assert!(body["at"].as_str().unwrap().ends_with('Z'), "{body}");
    assert_eq!(got.headers["content-type"], "application/json");

    // The target refuses the next delivery with 400: dead-lettered at once.
    let control = json!({"status": 400, "count": 1});
    assert_eq!(
        post_json(&up.client, &format!("{target}/_control"), &control).await,
        200
    );
    let dead = with_callback(&target, "k-dead", 2, &callback);
    let (_, body) = sync_then_callback(&up, &dead, &rx, 1, &secret).await;
    assert_eq!(body["status"], "deadLettered");
    assert_eq!(body["attempts"], 1);
    assert_eq!(body["lastError"]["status"], 400);
    assert!(body["lastError"]["class"].is_string(), "{body}");
    assert!(
        body["lastError"]
            .as_object()
            .unwrap()
            .contains_key("detail"),
        "{body}"
    );

    // A routed message without a statusCallback: its route's callback is told.
    let routed = json!({"route": "orders", "data": {"n": 1}});
    let (got, body) = sync_then_callback(&up, &routed, &rx, 2, &secret).await;
    assert_eq!(body["status"], "delivered");
    assert_eq!(got.path, "/route-cb");

    // Only the three accepted messages reached the data stream.
    let status = up.status().await;
    assert_eq!(stream_messages(&status, "datasync-data"), 3);
    assert_eq!(rx.got.lock().unwrap().len(), 3);
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_whose_callback_is_not_allowed_stops_up_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = up_refusing(tmp.path(), "[[routes]]\nname = \"orders\"\ntarget = \"http://127.0.0.1:9/x\"\nstatus_callback = \"https://not-allowed.example.net/cb\"\n", Duration::from_secs(60)).await;
    assert!(
        stderr.contains("\"orders\"")
            && stderr.contains("status_callback")
            && stderr.contains("allow"),
        "{stderr}"
    );
}

/// When each of `ids` was first seen at the target, polling every 20 ms until all are (or
/// `limit` passes).
async fn arrivals(up: &Up, ids: &[String], limit: Duration) -> HashMap<String, Instant> {
    let target = up.target();
    let mut seen = HashMap::new();
    let start = Instant::now();
    while seen.len() < ids.len() && start.elapsed() < limit {
        for id in delivered_ids(&up.client, &target).await {
            seen.entry(id).or_insert_with(Instant::now);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

/// The lines of `log` that are callback trace lines about message `id`.
fn callback_lines(log: &Path, id: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("datasync_trace") && l.contains("callback") && l.contains(id))
        .map(str::to_owned)
        .collect()
}

/// Sends one round: a message whose callback hangs, one whose callback is refused, one with
/// none; their ids by kind.
async fn send_round(up: &Up, n: usize, hang: &str, refused: &str) -> Vec<(String, &'static str)> {
    let target = up.target();
    let mut sent = Vec::new();
    for (kind, callback) in [
        ("hang", Some(format!("http://{hang}/cb"))),
        ("refused", Some(format!("http://{refused}/cb"))),
        ("none", None),
    ] {
        let mut body = sync_request(&target, &format!("{kind}-{n}"), n);
        if let Some(cb) = callback {
            body["statusCallback"] = json!(cb);
        }
        let (s, v) = sync(up, &body).await;
        assert_eq!(s, 200, "{v}");
        sent.push((v["id"].as_str().unwrap().to_owned(), kind));
    }
    sent
}

/// A dead callback endpoint costs one budget per cool-down, not one per batch: once the first
/// message's callbacks to a hanging and a refusing host have failed, later messages' callbacks
/// to those hosts are not tried at all (so no later batch waits for them), every message is
/// still delivered, and each failure or skip is a trace line. The stack runs one process
/// instance (`FAST`), whose cool-down every later batch sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_endpoints_that_refuse_or_hang_are_cooled_down_and_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let hung = hang().await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config = format!(
        "{FAST}\n[functions.config]\ncallback_timeout_ms = \"500\"\ncallback_budget_ms = \"1000\"\n"
    );
    let log = tmp.path().join("up.log");
    let (a, b) = (hung.addr.to_string(), refused.to_string());
    let mut up = Up::start_logged(
        tmp.path(),
        &config,
        "127.0.0.1:0",
        &["--allow-target", &a, "--allow-target", &b],
        &log,
        "warn,datasync_trace=warn",
    )
    .await;
    // The first round's callbacks fail and cool both hosts down.
    let first = send_round(&up, 0, &a, &b).await;
    let start = Instant::now();
    while first[..2].iter().any(|(id, _)| {
        !callback_lines(&log, id)
            .iter()
            .any(|l| l.contains("queued"))
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first round's callbacks were never queued"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tried_first = hung.connections.load(Ordering::SeqCst);
    assert!(tried_first >= 1, "the hanging host was never called");
    let mut later = Vec::new();
    for n in 1..8 {
        later.extend(send_round(&up, n, &a, &b).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<String> = first
        .iter()
        .chain(&later)
        .map(|(id, _)| id.clone())
        .collect();
    let seen = arrivals(&up, &ids, Duration::from_secs(30)).await;
    assert_eq!(seen.len(), ids.len(), "not every message was delivered");
    for (id, kind) in &later {
        let lines = callback_lines(&log, id);
        if *kind == "none" {
            assert!(lines.is_empty(), "{id}: {lines:?}");
            continue;
        }
        let start = Instant::now();
        while !callback_lines(&log, id)
            .iter()
            .any(|l| l.contains("not tried"))
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{kind} callback of {id} was not skipped: {:?}",
                callback_lines(&log, id)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        hung.connections.load(Ordering::SeqCst),
        tried_first,
        "a cooled-down host was called again"
    );
    // The message's story tells the callback's fate too.
    let hung_id = first[0].0.as_str();
    let story = eventually(Duration::from_secs(10), || async {
        let text = up.cli_ok(&["trace", hung_id]).await;
        (text.contains("callback") && text.contains("queued")).then_some(())
    })
    .await;
    assert!(
        story.is_some(),
        "datasync trace {hung_id} tells no callback"
    );
    up.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("timed out") && text.contains("cannot connect"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_refused_for_a_while_is_retried_from_the_callback_stream_until_taken() {
    let tmp = tempfile::tempdir().unwrap();
    // Refuses the three quick tries and the first scheduled one, then takes it.
    let rx = refusing_receiver(4).await;
    // Refuses everything: abandoned after five calls (three quick, two scheduled).
    let never = refusing_receiver(usize::MAX).await;
    let config = format!(
        "{FAST}\n[functions.config]\ncallback_retry_backoff_ms = \"300\"\ncallback_retry_max_tries = \"5\"\n"
    );
    let log = tmp.path().join("up.log");
    let (a, b) = (rx.addr.to_string(), never.addr.to_string());
    let mut up = Up::start_logged(
        tmp.path(),
        &config,
        "127.0.0.1:0",
        &["--allow-target", &a, "--allow-target", &b],
        &log,
        "warn,datasync_trace=warn",
    )
    .await;
    let secret = std::fs::read_to_string(tmp.path().join("data").join("callback-secret")).unwrap();
    let target = up.target();
    let mut ids = Vec::new();
    for (key, url) in [("k-later", &a), ("k-never", &b)] {
        let sent = Instant::now();
        let (s, v) = sync(
            &up,
            &with_callback(&target, key, 1, &format!("http://{url}/cb")),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        // The message's own delivery waits for no callback.
        eventually(Duration::from_secs(10), || async {
            delivered_ids(&up.client, &target)
                .await
                .contains(&id)
                .then_some(())
        })
        .await
        .expect("not delivered");
        let latency = sent.elapsed();
        assert!(
            latency < Duration::from_secs(2),
            "{key}: delivered after {latency:?}"
        );
        ids.push(id);
    }
    let taken = eventually(Duration::from_secs(30), || async {
        rx.got
            .lock()
            .unwrap()
            .iter()
            .find(|g| g.status == 200)
            .cloned()
    })
    .await
    .expect("the callback was never taken");
    let body = verified_body(&secret, &taken);
    assert_eq!(body["id"], ids[0].as_str());
    assert_eq!(body["status"], "delivered");
    // Two more rounds of the schedule: nothing more arrives, and every try had one webhook-id.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got.iter().filter(|g| g.status == 200).count(), 1);
    let webhook_ids: std::collections::HashSet<&str> = got
        .iter()
        .map(|g| g.headers["webhook-id"].as_str())
        .collect();
    assert_eq!(webhook_ids.len(), 1, "{webhook_ids:?}");
    for g in &got {
        assert_eq!(verified_body(&secret, g), body, "every try says the same");
    }
    // The one refused for good: five calls, then abandoned, in the trace.
    eventually(Duration::from_secs(30), || async {
        let text = std::fs::read_to_string(&log).unwrap();
        text.lines()
            .any(|l| l.contains(ids[1].as_str()) && l.contains("abandoned"))
            .then_some(())
    })
    .await
    .expect("the refused callback was never abandoned");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(never.got.lock().unwrap().len(), 5);
    // Counted once, as GET /metrics shows it.
    let url = format!("{}/metrics", up.gateway());
    let abandoned = eventually(Duration::from_secs(10), || async {
        let text = up.client.get(&url).send().await.ok()?.text().await.ok()?;
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with("datasync_callbacks_abandoned_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (total > 0.0).then_some(total)
    })
    .await;
    assert_eq!(abandoned, Some(1.0));
    up.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    for id in &ids {
        assert!(
            text.lines()
                .any(|l| l.contains(id.as_str()) && l.contains("queued")),
            "no queued line for {id}"
        );
    }
    assert!(
        !text.contains(secret.trim()),
        "the signing secret reached the log"
    );
}
