//! The target caller through real sockets: what it sends, and how each failure is seen.

use std::net::SocketAddr;
use std::time::Duration;

use datasync_core::classify::{AttemptOutcome, RetryAfter, TransportFailure};
use datasync_core::target::{TargetCall, TargetClient, TargetSettings};
use http::{HeaderName, HeaderValue, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How the raw server answers one connection.
#[derive(Clone)]
enum Reply {
    Raw(&'static str),
    Sleep(Duration),
    Close,
}

/// A raw TCP server: answers every connection with `reply` and sends the request text it read.
async fn raw_server(reply: Reply) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut text = String::new();
                // Read the head, then the body as Content-Length says.
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if text.len() >= head_end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = tx.send(text);
                match reply {
                    Reply::Raw(r) => {
                        let _ = socket.write_all(r.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    Reply::Sleep(d) => tokio::time::sleep(d).await,
                    Reply::Close => drop(socket),
                }
            });
        }
    });
    (addr, rx)
}

fn client() -> TargetClient {
    TargetClient::new(TargetSettings {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_millis(500),
        allow_private: true,
    })
    .unwrap()
}

fn headers() -> Vec<(HeaderName, HeaderValue)> {
    vec![(
        HeaderName::from_static("x-tenant"),
        HeaderValue::from_static("acme"),
    )]
}

async fn call(
    client: &TargetClient,
    method: Method,
    url: &str,
    body: Option<&'static str>,
) -> datasync_core::target::AttemptRecord {
    let url = url::Url::parse(url).unwrap();
    let hs = headers();
    let token = HeaderValue::from_static("Bearer t0ken");
    client
        .call(&TargetCall {
            method,
            url: &url,
            body: body.map(|b| bytes::Bytes::from_static(b.as_bytes())),
            headers: &hs,
            secret: Some((&http::header::AUTHORIZATION, &token)),
            idempotency_key: "0190e0b4-0000-7000-8000-000000000001",
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            timeout: None,
        })
        .await
}

/// One `POST /x` with body `{}`, by the default client, to a raw server answering `reply`.
async fn post_once(reply: Reply) -> datasync_core::target::AttemptRecord {
    let (addr, _seen) = raw_server(reply).await;
    call(
        &client(),
        Method::POST,
        &format!("http://{addr}/x"),
        Some("{}"),
    )
    .await
}

#[tokio::test]
async fn each_operation_sends_body_headers_token_and_idempotency_key() {
    let (addr, mut seen) = raw_server(Reply::Raw(
        "HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
    ))
    .await;
    let c = client();
    for (method, body) in [
        (Method::POST, Some(r#"{"a":1}"#)),
        (Method::PUT, Some("{}")),
        (Method::PATCH, Some("[]")),
        (Method::DELETE, None),
    ] {
        let record = call(
            &c,
            method.clone(),
            &format!("http://{addr}/orders?x=1#top"),
            body,
        )
        .await;
        assert_eq!(
            record.outcome,
            AttemptOutcome::Status {
                status: 201,
                retry_after: None
            },
            "{method}"
        );
        let text = seen.recv().await.unwrap();
        let lower = text.to_ascii_lowercase();
        // The fragment is never sent.
        assert!(
            text.starts_with(&format!("{method} /orders?x=1 HTTP/1.1\r\n")),
            "{text}"
        );
        assert!(lower.contains("authorization: bearer t0ken\r\n"), "{text}");
        assert!(lower.contains("idempotency-key: 0190e0b4-0000-7000-8000-000000000001\r\n"));
        assert!(lower
            .contains("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"));
        assert!(lower.contains("x-tenant: acme\r\n"));
        assert!(lower.contains("user-agent: datasync/"));
        match body {
            Some(b) => {
                assert!(text.ends_with(b), "{text}");
                assert!(lower.contains("content-type: application/json\r\n"));
            }
            None => {
                assert!(lower.contains("content-length: 0") || !lower.contains("content-length"))
            }
        }
    }
}

#[tokio::test]
async fn redirects_are_not_followed_and_retry_after_is_read() {
    let (addr, mut seen) = raw_server(Reply::Raw("HTTP/1.1 308 Permanent Redirect\r\nlocation: http://127.0.0.1:1/\r\ncontent-length: 0\r\n\r\n")).await;
    let record = call(
        &client(),
        Method::POST,
        &format!("http://{addr}/x"),
        Some("{}"),
    )
    .await;
    assert_eq!(
        record.outcome,
        AttemptOutcome::Status {
            status: 308,
            retry_after: None
        }
    );
    assert_eq!(seen.recv().await.map(|_| ()), Some(()));

    let record = post_once(Reply::Raw(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\ncontent-length: 4\r\n\r\nbusy",
    ))
    .await;
    assert_eq!(
        record.outcome,
        AttemptOutcome::Status {
            status: 503,
            retry_after: Some(RetryAfter::Delay(Duration::from_secs(7)))
        }
    );
    assert_eq!(record.detail, "HTTP 503 Service Unavailable");
}

#[tokio::test]
async fn transport_failures_are_classified_by_kind() {
    let c = client();
    // Nothing listens on this port.
    let free = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let record = call(&c, Method::POST, &format!("http://{free}/x"), Some("{}")).await;
    assert_eq!(
        record.outcome,
        AttemptOutcome::Transport(TransportFailure::Connect),
        "{}",
        record.detail
    );

    let (addr, _seen) = raw_server(Reply::Sleep(Duration::from_secs(5))).await;
    let record = call(&c, Method::POST, &format!("http://{addr}/x"), Some("{}")).await;
    assert_eq!(
        record.outcome,
        AttemptOutcome::Transport(TransportFailure::Timeout)
    );

    let (addr, _seen) = raw_server(Reply::Close).await;
    let record = call(&c, Method::POST, &format!("http://{addr}/x"), Some("{}")).await;
    assert_eq!(
        record.outcome,
        AttemptOutcome::Transport(TransportFailure::Reset),
        "{}",
        record.detail
    );

    let (addr, _seen) = raw_server(Reply::Raw(
        "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\ncut",
    ))
    .await;
    let record = call(&c, Method::POST, &format!("http://{addr}/x"), Some("{}")).await;
    // The status arrived; the cut body does not change the outcome (the body is not used).
    assert_eq!(
        record.outcome,
        AttemptOutcome::Status {
            status: 200,
            retry_after: None
        }
    );
}

#[tokio::test]
async fn internal_addresses_are_refused_unless_allowed() {
    let (addr, mut seen) =
        raw_server(Reply::Raw("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).await;
    let guarded = TargetClient::new(TargetSettings {
        allow_private: false,
        ..TargetSettings::default()
    })
    .unwrap();
    for url in [
        format!("http://{addr}/x"),
        format!("http://localhost:{}/x", addr.port()),
    ] {
        let record = call(&guarded, Method::POST, &url, Some("{}")).await;
        assert_eq!(
            record.outcome,
            AttemptOutcome::Transport(TransportFailure::Blocked),
            "{url}: {}",
            record.detail
        );
        assert!(record.detail.contains("127.0.0.1"), "{}", record.detail);
    }
    let record = call(
        &guarded,
        Method::POST,
        "http://169.254.169.254/opc/v2/instance/",
        Some("{}"),
    )
    .await;
    assert_eq!(
        record.outcome,
        AttemptOutcome::Transport(TransportFailure::Blocked)
    );
    // Nothing reached the server.
    assert!(seen.try_recv().is_err());
}

#[tokio::test]
async fn https_targets_are_called_over_tls_and_a_failed_handshake_is_a_connect_failure() {
    // A server that reads what arrives first, then closes: no TLS server answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut first_bytes) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 16];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let _ = tx.send(buf[..n].to_vec());
        }
    });
    let record = call(
        &client(),
        Method::POST,
        &format!("https://{addr}/x"),
        Some("{}"),
    )
    .await;
    assert_eq!(
        record.outcome,
        AttemptOutcome::Transport(TransportFailure::Connect),
        "{}",
        record.detail
    );
    let first = first_bytes.recv().await.unwrap();
    // A TLS handshake record (content type 22, version 3.x), not a plain HTTP request line.
    assert!(first.len() >= 2, "{first:?}");
    assert_eq!(&first[..2], &[0x16, 0x03], "{first:?}");
}

#[tokio::test]
async fn a_failure_s_body_is_kept_short_and_clean_and_a_success_s_never() {
    // 600 bytes: a line break, an escape sequence and a tab in the first 256.
    let start = "{\"error\":\"down\"}\r\n\u{1b}[31mred\tx";
    let body = format!("{start}{}", "y".repeat(600 - start.len()));
    let padded: &'static str = Box::leak(
        format!("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 600\r\n\r\n{body}")
            .into_boxed_str(),
    );
    let record = post_once(Reply::Raw(padded)).await;
    assert!(matches!(
        record.outcome,
        AttemptOutcome::Status { status: 503, .. }
    ));
    let body = record.body.expect("a 503's body is kept");
    assert!(
        body.starts_with(r#"{"error":"down"} [31mred x"#),
        "{body:?}"
    );
    assert!(!body.chars().any(char::is_control), "{body:?}");
    assert!(
        body.len() <= datasync_core::target::MAX_BODY_SNIPPET,
        "{}",
        body.len()
    );

    let record = post_once(Reply::Raw(
        "HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\n{\"secret\":\"s\"}",
    ))
    .await;
    assert!(matches!(
        record.outcome,
        AttemptOutcome::Status { status: 200, .. }
    ));
    assert_eq!(record.body, None, "a 2xx answer is never kept");
}

#[test]
fn body_snippets_are_cut_and_cleaned() {
    use datasync_core::target::{body_snippet, MAX_BODY_SNIPPET};
    assert_eq!(body_snippet(b""), None);
    assert_eq!(body_snippet(b" \r\n\t "), None);
    assert_eq!(body_snippet(b"a\r\n\r\nb\x00c").as_deref(), Some("a b c"));
    let long = "\u{e9}".repeat(400);
    let s = body_snippet(long.as_bytes()).unwrap();
    // 256 bytes: 128 characters, none cut in half.
    assert_eq!(s.chars().count(), MAX_BODY_SNIPPET / 2);
    let odd = format!("x{long}");
    let s = body_snippet(odd.as_bytes()).unwrap();
    assert!(
        s.ends_with('\u{FFFD}'),
        "a character cut at the end shows as one replacement"
    );
}
