//! The call contract through a real socket: header mapping both ways, error statuses,
//! deadlines, body limits, keep-alive.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use fdk::agent::{gateway_request, gateway_response, invoke_request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;

use crate::utils::{assert_fdk_headers, in_30s, json, plain, Echo, TIMEOUT};

#[tokio::test]
async fn plain_invoke_echoes_body_and_headers() {
    let echo = Echo::start(&[]);
    let mut inv = echo.invoker().await;
    let r = inv
        .call(
            plain(b"hello", &[("x-foo", "bar"), ("x-foo", "baz")]),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_fdk_headers(&r);
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), "hello");
    let foo: Vec<_> = r.headers().get_all("x-foo").iter().collect();
    assert_eq!(foo, ["bar", "baz"]);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert!(
        r.headers().get("fn-http-status").is_none(),
        "not an httprequest call"
    );
    assert!(r.headers().get("fn-http-h-x-foo").is_none());
}

#[tokio::test]
async fn context_from_plain_invoke_and_environment() {
    let echo = Echo::start(&[
        ("FN_APP_ID", "ocid1.fnapp.oc1..a"),
        ("FN_APP_NAME", "datasync"),
        ("FN_FN_ID", "ocid1.fnfunc.oc1..f"),
        ("FN_FN_NAME", "populate"),
        ("FN_MEMORY", "256"),
        ("TARGET_URL", "https://target.example"),
    ]);
    let mut inv = echo.invoker().await;
    let deadline = fdk::protocol::parse_deadline("2031-02-03T04:05:06Z").unwrap();
    let mut req = invoke_request("01JCALL", deadline, None, Bytes::new()).unwrap();
    req.headers_mut()
        .insert("x-echo-mode", "context".parse().unwrap());
    let r = inv.call(req, TIMEOUT).await.unwrap();
    assert_eq!(r.status(), 200);
    let v = json(r.body());
    assert_eq!(v["call_id"], "01JCALL");
    assert_eq!(v["deadline_unix"], 1_927_857_906);
    assert_eq!(v["intent"], "Invoke");
    assert_eq!(v["invoke_type"], "sync");
    assert_eq!(v["app_id"], "ocid1.fnapp.oc1..a");
    assert_eq!(v["app_name"], "datasync");
    assert_eq!(v["fn_id"], "ocid1.fnfunc.oc1..f");
    assert_eq!(v["fn_name"], "populate");
    assert_eq!(v["memory_mb"], 256);
    assert!(v["http"].is_null());

    let r = inv
        .call(plain(b"", &[("x-echo-mode", "config=TARGET_URL")]), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(r.body(), "https://target.example");
    let r = inv
        .call(plain(b"", &[("x-echo-mode", "config=NOPE")]), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        502,
        "a 404 from a non-http call is a failed call"
    );
}

fn client_request(
    uri: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> http::Request<Bytes> {
    let mut b = http::Request::post(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Bytes::from_static(body)).unwrap()
}

#[tokio::test]
async fn gateway_view_reaches_the_handler() {
    let echo = Echo::start(&[]);
    let mut inv = echo.invoker().await;
    let client = client_request(
        "/v1/items/7?mode=context&tag=a+b&tag=%C3%A9",
        &[
            ("content-type", "application/json"),
            ("x-api-key", "secret"),
            ("accept", "text/plain"),
            ("accept", "application/json"),
            ("host", "gw.example"),
        ],
        b"{}",
    );
    let r = inv
        .call(gateway_request(client, "c-gw", in_30s()).unwrap(), TIMEOUT)
        .await
        .unwrap();
    assert_fdk_headers(&r);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["fn-http-status"], "200");
    let v = json(r.body());
    assert_eq!(v["intent"], "HttpRequest");
    let h = &v["http"];
    assert_eq!(h["method"], "POST");
    assert_eq!(
        h["request_url"],
        "/v1/items/7?mode=context&tag=a+b&tag=%C3%A9"
    );
    assert_eq!(h["path"], "/v1/items/7");
    assert_eq!(
        h["query_params"],
        serde_json::json!([["mode", "context"], ["tag", "a b"], ["tag", "é"]])
    );
    let headers = h["headers"].as_object().unwrap();
    assert_eq!(headers["x-api-key"], serde_json::json!(["secret"]));
    assert_eq!(
        headers["accept"],
        serde_json::json!(["text/plain", "application/json"])
    );
    assert_eq!(
        headers["content-type"],
        serde_json::json!(["application/json"])
    );
    assert_eq!(headers["host"], serde_json::json!(["gw.example"]));
    for name in headers.keys() {
        assert!(
            !name.starts_with("fn-"),
            "{name} leaked into the client view"
        );
    }
}

#[tokio::test]
async fn handler_answer_reaches_the_client() {
    let echo = Echo::start(&[]);
    let mut inv = echo.invoker().await;
    let client = client_request(
        "/v1/echo",
        &[
            ("content-type", "text/csv"),
            ("x-trace", "t1"),
            ("x-multi", "1"),
            ("x-multi", "2"),
            ("x-echo-mode", "status=418"),
        ],
        b"a,b",
    );
    let r = inv
        .call(gateway_request(client, "c2", in_30s()).unwrap(), TIMEOUT)
        .await
        .unwrap();
    // On the wire, as the agent sees it.
    assert_fdk_headers(&r);
    assert_eq!(
        r.status(),
        200,
        "the outer status stays 200 for httprequest"
    );
    assert_eq!(r.headers()["fn-http-status"], "418");
    assert_eq!(r.headers()["fn-http-h-x-trace"], "t1");
    assert_eq!(r.headers().get_all("fn-http-h-x-multi").iter().count(), 2);
    assert_eq!(
        r.headers()["content-type"],
        "text/csv",
        "Content-Type stays plain"
    );
    assert!(r.headers().get("fn-http-h-content-type").is_none());
    assert!(r.headers().get("x-trace").is_none());
    // As API Gateway hands it to the client.
    let c = gateway_response(r);
    assert_eq!(c.status(), 418);
    assert_eq!(c.headers()["x-trace"], "t1");
    assert_eq!(c.headers().get_all("x-multi").iter().count(), 2);
    assert_eq!(c.headers()["content-type"], "text/csv");
    assert!(c.headers().keys().all(|k| !k.as_str().starts_with("fn-")));
    assert_eq!(c.body(), "a,b");
}

#[tokio::test]
async fn errors_and_panics_give_502_and_the_process_keeps_serving() {
    let echo = Echo::start(&[]);
    let mut inv = echo.invoker().await;

    let r = inv
        .call(plain(b"x", &[("x-echo-mode", "fail")]), TIMEOUT)
        .await
        .unwrap();
    assert_fdk_headers(&r);
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        json(r.body()),
        serde_json::json!({"code": "FunctionError", "message": "echo told to fail"})
    );

    let r = inv
        .call(plain(b"x", &[("x-echo-mode", "panic")]), TIMEOUT)
        .await
        .unwrap();
    assert_fdk_headers(&r);
    assert_eq!(r.status(), 502);
    let v = json(r.body());
    assert_eq!(v["code"], "FunctionError");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("echo told to panic"),
        "{v}"
    );
    assert_eq!(v.as_object().unwrap().len(), 2, "nothing else leaks: {v}");

    // httprequest intent: the same outer 502, which the gateway turns into 502.
    let client = client_request("/x?mode=panic", &[], b"");
    let r = inv
        .call(gateway_request(client, "c3", in_30s()).unwrap(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(gateway_response(r).status(), 502);

    let r = inv.call(plain(b"after", &[]), TIMEOUT).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), "after");
}

#[tokio::test]
async fn deadline_cancels_the_handler_with_504() {
    let echo = Echo::start(&[]);
    let mut inv = echo.invoker().await;
    let deadline = SystemTime::now() + Duration::from_secs(2);
    let mut req = invoke_request("slow", deadline, None, Bytes::new()).unwrap();
    req.headers_mut()
        .insert("x-echo-mode", "sleep=20000".parse().unwrap());
    let start = Instant::now();
    let r = inv.call(req, TIMEOUT).await.unwrap();
    assert_fdk_headers(&r);
    assert_eq!(r.status(), 504);
    assert_eq!(json(r.body())["code"], "FunctionTimeout");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // Through the gateway: 504 to the client.
    let client = client_request("/x?mode=sleep%3D20000", &[], b"");
    let deadline = SystemTime::now() + Duration::from_secs(1);
    let r = inv
        .call(gateway_request(client, "slow2", deadline).unwrap(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(gateway_response(r).status(), 504);

    // A short sleep within the deadline is fine.
    let r = inv
        .call(plain(b"ok", &[("x-echo-mode", "sleep=10")]), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), "ok");
}

#[tokio::test]
async fn bodies_up_to_6_mb_and_larger_ones_refused() {
    let echo = Echo::start(&[]);
    let mut inv = echo.invoker().await;
    let limit = fdk::protocol::MAX_BODY_BYTES;
    assert_eq!(limit, 6 * 1024 * 1024);

    let full = Bytes::from(vec![b'a'; limit]);
    let req = invoke_request("big", in_30s(), None, full.clone()).unwrap();
    let r = inv.call(req, TIMEOUT).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().len(), limit);

    let over = Bytes::from(vec![b'a'; limit + 1]);
    let req = invoke_request("too-big", in_30s(), None, over.clone()).unwrap();
    let r = inv.call(req, TIMEOUT).await.unwrap();
    assert_fdk_headers(&r);
    assert_eq!(r.status(), 502);
    assert_eq!(json(r.body())["code"], "PayloadTooLarge");

    let client = http::Request::post("/upload").body(over).unwrap();
    let req = gateway_request(client, "too-big-http", in_30s()).unwrap();
    let r = inv.call(req, TIMEOUT).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["fn-http-status"], "413");
    assert_eq!(gateway_response(r).status(), 413);

    // The function still serves (the invoker reconnects if the FDK closed the connection).
    let r = inv.call(plain(b"small", &[]), TIMEOUT).await.unwrap();
    assert_eq!(r.body(), "small");
}

#[tokio::test]
async fn only_post_call_is_served() {
    let echo = Echo::start(&[]);
    let stream = tokio::net::UnixStream::connect(&echo.socket).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    for (method, path) in [("GET", "/call"), ("POST", "/"), ("POST", "/call/x")] {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = send.send_request(req).await.unwrap();
        assert_eq!(r.status(), 502, "{method} {path}");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(json(&body)["code"], "InvalidRequest");
    }
}

#[tokio::test]
async fn a_thousand_calls_on_one_keep_alive_connection() {
    let echo = Echo::start(&[]);
    // A bare hyper connection: if the FDK closed it, `send_request` would fail.
    let stream = tokio::net::UnixStream::connect(&echo.socket).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    for i in 0..1000 {
        let body = Bytes::from(format!("call {i}"));
        let req = invoke_request(&format!("c{i}"), in_30s(), None, body.clone()).unwrap();
        let (mut parts, b) = req.into_parts();
        parts.headers.insert("host", "localhost".parse().unwrap());
        send.ready().await.unwrap();
        let r = send
            .send_request(http::Request::from_parts(parts, Full::new(b)))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), body);
    }
    assert!(!conn.is_finished(), "the connection must still be open");
}

#[tokio::test]
async fn a_malformed_chunked_body_is_the_callers_fault() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let echo = Echo::start(&[]);
    let mut stream = tokio::net::UnixStream::connect(&echo.socket).await.unwrap();
    stream
        .write_all(
            b"POST /call HTTP/1.1\r\nhost: localhost\r\nfn-intent: httprequest\r\n\
              fn-http-method: POST\r\nfn-http-request-url: /stream/sync\r\n\
              transfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    // Until the JSON body has ended (the FDK may keep or close the connection).
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.ends_with(b"}") {
        let n = tokio::time::timeout(TIMEOUT, stream.read(&mut chunk))
            .await
            .expect("no answer")
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    // The call went fine for the agent; the client's request was bad: 400, not a 413 or a
    // function failure.
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("fn-http-status: 400\r\n"), "{answer}");
    assert!(answer.contains(r#""code":"invalidrequest""#), "{answer}");
    assert!(answer.contains("malformed chunked encoding"), "{answer}");
}
