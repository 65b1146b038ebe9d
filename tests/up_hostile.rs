//! `datasync up` against a hostile client, through the gateway's real socket: control
//! characters in a target URL, a malformed chunked body, a sloppy retry request, a lone
//! surrogate, two API keys, and connections that hold the gateway (slow headers, idle, more
//! than the cap), with a normal sync still going through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use up_support::*;

/// POSTs the raw `body` to `path` with `headers`; the status and the body as JSON.
async fn post_raw(up: &Up, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut req = up
        .client
        .post(format!("{}{path}", up.gateway()))
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn message(answer: &Value) -> String {
    answer["message"].as_str().unwrap_or_default().to_owned()
}

/// Reads from `socket` until the JSON body of one answer has ended, EOF, or 10 s.
fn read_answer(socket: &mut TcpStream) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.ends_with(b"}") {
        match socket.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_ambiguous_requests_are_refused_naming_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Up::start_in(tmp.path(), FAST, &[]).await;
    let (source, operator) = (up.source_key(), up.operator_key());
    let json_ct = ("content-type", "application/json");

    // Control characters in targetRestApi: refused, not stripped into another URL.
    for bad in ["/ok/44\r\nx-injected: 1", "/o\tk", "/ok\n"] {
        let mut body = sync_request(&up.target(), "k", 1);
        body["streamMessage"]["targetRestApi"] = json!(format!("{}{bad}", up.target()));
        let (status, answer) = up.post("/stream/sync", Some(&source), &body).await;
        assert_eq!(status, 400, "{bad:?}: {answer}");
        assert_eq!(answer["code"], "InvalidParameter", "{answer}");
        let text = message(&answer);
        assert!(text.contains("streamMessage.targetRestApi"), "{text}");
        assert!(text.contains("control characters"), "{text}");
    }

    // A malformed chunked body is the client's fault (400), not a body over the limit (413).
    let addr = up.gateway().trim_start_matches("http://").to_owned();
    let mut socket = TcpStream::connect(&addr).unwrap();
    write!(
        socket,
        "POST /stream/sync HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {source}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
    )
    .unwrap();
    let answer = read_answer(&mut socket);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains(r#""code":"InvalidParameter""#), "{answer}");
    assert!(answer.contains("malformed chunked encoding"), "{answer}");

    // /stream/retry checks its request as /stream/sync does.
    let stream = up.stream("errors-default");
    let group = json!({"stream": stream, "max": 5}).to_string();
    let (status, answer) = post_raw(
        &up,
        "/stream/retry",
        &[("x-api-key", &operator), ("content-type", "text/plain")],
        &group,
    )
    .await;
    assert_eq!(status, 415, "{answer}");
    assert_eq!(answer["code"], "UnsupportedMediaType");
    let (status, answer) =
        post_raw(&up, "/stream/retry", &[("x-api-key", &operator)], &group).await;
    assert_eq!(status, 415, "no content type: {answer}");
    let repeated = format!(r#"{{"stream":"{stream}","stream":"ocid1.stream.oc1.other"}}"#);
    let (status, answer) = post_raw(
        &up,
        "/stream/retry",
        &[("x-api-key", &operator), json_ct],
        &repeated,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        message(&answer).contains("duplicate field `stream`"),
        "{answer}"
    );
    let unknown = format!(r#"{{"stream":"{stream}","maxx":5}}"#);
    let (status, answer) = post_raw(
        &up,
        "/stream/retry",
        &[("x-api-key", &operator), json_ct],
        &unknown,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        message(&answer).contains("unknown field `maxx`"),
        "{answer}"
    );
    let (status, answer) = post_raw(
        &up,
        "/stream/retry",
        &[("x-api-key", &operator), json_ct],
        &group,
    )
    .await;
    assert_eq!(status, 200, "a good retry request still runs: {answer}");

    // A lone surrogate is named as such.
    let target = format!("{}/orders", up.target());
    let lone = format!(
        r#"{{"streamKey":"\ud800","streamMessage":{{"targetRestApi":"{target}","targetRestApiOperation":"POST"}}}}"#
    );
    let (status, answer) = post_raw(
        &up,
        "/stream/sync",
        &[("x-api-key", &source), json_ct],
        &lone,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let text = message(&answer);
    assert!(text.starts_with("streamKey: "), "{text}");
    assert!(text.contains("lone surrogate"), "{text}");

    // Two API keys: which caller is meant cannot be told.
    let body = sync_request(&up.target(), "k", 2).to_string();
    let (status, answer) = post_raw(
        &up,
        "/stream/sync",
        &[("x-api-key", &source), ("x-api-key", &operator), json_ct],
        &body,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "InvalidParameter");
    assert!(message(&answer).contains("x-api-key"), "{answer}");

    // Nothing refused above reached the target; a good request still does.
    let (status, answer) = up
        .post(
            "/stream/sync",
            Some(&source),
            &sync_request(&up.target(), "k", 3),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let target = up.target();
    let delivered = eventually(Duration::from_secs(20), || async {
        let ids = delivered_ids(&up.client, &target).await;
        (!ids.is_empty()).then_some(ids)
    })
    .await
    .expect("the good request was not delivered");
    let report = received(&up.client, &target).await;
    assert_eq!(delivered.len(), 1, "{report:?}");
}

/// A config with short gateway timeouts and a small connection cap.
fn guarded_config(header_ms: u64, cap: u32) -> String {
    format!("{FAST}\n[gateway]\nheader_timeout_ms = {header_ms}\nmax_connections = {cap}\n")
}

/// Whether the gateway closed `socket` (EOF or reset) within `within`; what it sent before.
fn closed_within(socket: &mut TcpStream, within: Duration) -> (bool, String) {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    while start.elapsed() < within {
        match socket.read(&mut chunk) {
            Ok(0) => return (true, String::from_utf8_lossy(&seen).into_owned()),
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (true, String::from_utf8_lossy(&seen).into_owned()),
        }
    }
    (false, String::from_utf8_lossy(&seen).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_surplus_connections_are_closed_while_syncs_go_on() {
    const CAP: usize = 8;
    let tmp = tempfile::tempdir().unwrap();
    let up = Up::start_in(tmp.path(), &guarded_config(3000, CAP as u32), &[]).await;
    let addr = up.gateway().trim_start_matches("http://").to_owned();
    let source = up.source_key();
    let target = up.target();

    // One keep-alive client connection (reqwest keeps it in its pool) that syncs.
    let (status, answer) = up
        .post(
            "/stream/sync",
            Some(&source),
            &sync_request(&target, "k", 1),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    // A slowloris: one header line every 300 ms, never finishing.
    let opened = Instant::now();
    let slow_addr = addr.clone();
    let slowloris = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&slow_addr).unwrap();
        let _ = write!(s, "POST /stream/sync HTTP/1.1\r\nhost: x\r\n");
        for i in 0..40 {
            std::thread::sleep(Duration::from_millis(300));
            if write!(s, "x-slow-{i}: 1\r\n").is_err() {
                return Some(opened.elapsed());
            }
        }
        None
    });
    // Idle connections up to the cap (the client's and the slowloris' make two).
    std::thread::sleep(Duration::from_millis(100));
    let mut idle: Vec<TcpStream> = (0..CAP - 2)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));

    // One more is answered 503, OCI style, and closed.
    let mut surplus = TcpStream::connect(&addr).unwrap();
    write!(
        surplus,
        "POST /stream/sync HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\n\r\n"
    )
    .unwrap();
    let (closed, answer) = closed_within(&mut surplus, Duration::from_secs(5));
    assert!(closed, "the surplus connection stayed open: {answer}");
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(
        answer.contains(r#""code":"ServiceUnavailable""#),
        "{answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );

    // The client's own connection still syncs, and the pump still delivers.
    let (status, answer) = up
        .post(
            "/stream/sync",
            Some(&source),
            &sync_request(&target, "k", 2),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    // The slowloris and the idle connections are closed after the header timeout (3 s).
    let slow = slowloris.join().unwrap();
    let slow = slow.expect("the slowloris connection stayed open for 12 s");
    assert!(slow < Duration::from_secs(7), "closed only after {slow:?}");
    for socket in &mut idle {
        let (closed, seen) = closed_within(socket, Duration::from_secs(5));
        assert!(closed, "an idle connection stayed open");
        assert!(seen.is_empty(), "{seen}");
    }

    // With room again, a new client is served, and everything accepted was delivered.
    let fresh = reqwest::Client::new();
    let r = fresh
        .post(format!("{}/stream/sync", up.gateway()))
        .header("content-type", "application/json")
        .header("x-api-key", &source)
        .header("authorization", "Bearer e2e-token")
        .body(sync_request(&target, "k", 3).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let delivered = eventually(Duration::from_secs(20), || async {
        let ids = delivered_ids(&up.client, &target).await;
        (ids.len() >= 3).then_some(ids)
    })
    .await;
    assert!(delivered.is_some(), "not every accepted sync was delivered");
}
