//! The demo target's HTTP side: the controls under `/_` (documented in [`HELP`]) and the
//! deliveries.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use bytes::Bytes;
use datasync_core::oci::models::ErrorBody;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{DemoTarget, Latencies, Mode, DELIVERY_METHODS};

/// What the demo target does and how to control it: `GET /_help` answers it, and
/// `datasync demo-target --help` shows it.
pub const HELP: &str = "\
A delivery is a POST, PUT, PATCH or DELETE (the operations a message may name) to any path
not starting with /_. Each is recorded and answered 200 with {\"received\":true,\"status\":200},
or as POST /_control says. Requests to paths starting with /_ are the controls below and never
count as deliveries; nor does anything else (GET / answers this text, other requests 405).

Controls:
  GET    /_help       this text (text/plain)
  POST   /_control    how to answer deliveries from now on; a JSON object, every field optional
                      (left out: back to its default), unknown fields refused with 400:
                        {\"status\": 503, \"count\": 10}   answer 503 to the next 10 deliveries,
                                                       then 200 (no count: until changed)
                        {\"status\": 200}                answer 200 again
                        {\"fail_rate\": 0.1, \"fail_status\": 500}
                                                       answer that share of deliveries with
                                                       fail_status (default 503) at random
                        {\"delay_ms\": 50}               wait before each answer
                      answers the mode now in force
  GET    /_received   {\"total\", \"unique\", \"duplicates\", \"failed\", \"messages\"}: deliveries
                      received, distinct Idempotency-Keys answered 2xx, 2xx deliveries whose
                      key was answered 2xx before, deliveries answered with a failure, and the
                      last 2000 deliveries (method, path, headers, body, status) when the target
                      records them; ?summary=1 leaves the messages out
  DELETE /_received   forgets every delivery and counter
  POST   /_latencies  drains the POST-to-target latencies of `datasync bench` payloads (those
                      starting with {\"benchSentUs\":}) as {\"latencies_us\": [...]}
";

/// The controls: path, and the methods each answers.
const CONTROLS: [(&str, &[Method]); 4] = [
    ("/_help", &[Method::GET]),
    ("/_control", &[Method::POST]),
    ("/_received", &[Method::GET, Method::DELETE]),
    ("/_latencies", &[Method::POST]),
];

fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    json_text(status, serde_json::to_string(value).unwrap_or_default())
}

fn json_text(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        &ErrorBody {
            code: code.to_owned(),
            message: message.to_owned(),
        },
    )
}

fn help() -> Response<Body> {
    let mut r = Response::new(Body::from(HELP));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// 405 naming the methods `path` answers.
fn not_allowed(path: &str, allowed: &[Method]) -> Response<Body> {
    let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &format!("{path} answers {}; see GET /_help", names.join(", ")),
    );
    if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
        r.headers_mut().insert(http::header::ALLOW, v);
    }
    r
}

async fn handle(State(t): State<Arc<DemoTarget>>, request: Request<Body>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    if path.starts_with("/_") {
        return control(&t, &path, request).await;
    }
    if DELIVERY_METHODS.contains(request.method()) {
        return deliver(&t, request).await;
    }
    if path == "/" && matches!(*request.method(), Method::GET | Method::HEAD) {
        return help();
    }
    not_allowed(&path, &DELIVERY_METHODS)
}

/// A request to a control path: never a delivery.
async fn control(t: &DemoTarget, path: &str, request: Request<Body>) -> Response<Body> {
    let Some((_, allowed)) = CONTROLS.iter().find(|(p, _)| *p == path) else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("no control {path}; see GET /_help"),
        );
    };
    let method = request.method().clone();
    if !allowed.contains(&method) {
        return not_allowed(path, allowed);
    }
    match (method, path) {
        (Method::GET, "/_help") => help(),
        (Method::POST, "/_control") => {
            let body = axum::body::to_bytes(request.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            match serde_json::from_slice::<Mode>(&body) {
                Ok(mode) => {
                    let answer = json(StatusCode::OK, &mode);
                    t.set_mode(mode);
                    answer
                }
                Err(e) => error(StatusCode::BAD_REQUEST, "InvalidParameter", &e.to_string()),
            }
        }
        (Method::GET, "/_received") => {
            let summary = request.uri().query().is_some_and(|q| q.contains("summary"));
            json(StatusCode::OK, &t.report(summary))
        }
        (Method::DELETE, "/_received") => {
            t.clear();
            json_text(StatusCode::OK, "{}".to_owned())
        }
        (Method::POST, "/_latencies") => json(
            StatusCode::OK,
            &Latencies {
                latencies_us: t.take_latencies(),
            },
        ),
        _ => not_allowed(path, allowed),
    }
}

async fn deliver(t: &DemoTarget, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 8 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let (status, delay) = t.next_status();
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    t.note_delivery(parts, &body, status, bench_sent_us(&body));
    let ok = (200..300).contains(&status);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // Every delivery is answered: written directly, not through a serializer.
    json_text(code, format!(r#"{{"received":{ok},"status":{status}}}"#))
}

/// `benchSentUs` when the body starts with it (cheap: no JSON parse of other payloads).
fn bench_sent_us(body: &[u8]) -> Option<u64> {
    let rest = body.strip_prefix(b"{\"benchSentUs\":")?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Serves `target` on `listener` until `shutdown`.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    target: Arc<DemoTarget>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(handle).with_state(target);
    crate::serve::serve_tcp(app, listener, shutdown).await
}
