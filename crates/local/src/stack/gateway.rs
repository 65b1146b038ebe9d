//! The API Gateway front: `POST /stream/sync` → populate and `POST /stream/retry` → retry,
//! through the Fn contract with the header mapping OCI API Gateway uses
//! ([`fdk::agent::gateway_request`] / [`fdk::agent::gateway_response`]).
//!
//! Locally callers authenticate with an API key in `x-api-key` (the header OCI usage plans
//! read); the gateway sets `x-datasync-caller` from the key (dropping any client copy, as the
//! Terraform deployment's header transformation does) and does not pass the key on. Answers:
//! 401 for a missing or unknown key, 403 for a non-operator key on `/stream/retry`, 404 for
//! other paths (`GET /`, `/status` and `/trace` need no key), 405 for other methods, 413 beyond the body limit, 400 for a body that cannot be
//! read (malformed chunked encoding) or two `x-api-key` headers, 408 for a body slower than the
//! body timeout, 429 with `Retry-After` beyond the per-key rate. Connections are served by
//! [`crate::front`]: a header (and idle) timeout and a connection cap, 503 beyond it.
//!
//! `GET /`, `GET /status` and `GET /metrics` (the status page, its JSON and the Prometheus
//! text) need no key, as the gateway's status page always has: they show counts, health and
//! message ids, never payloads, header values or keys. They are served through the same
//! connection limits and timeouts; the API requests counter does not count them.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use bytes::Bytes;
use datasync_core::oci::models::ErrorBody;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use super::host::{deadline, Pool};
use super::keys::KeyRing;
use super::trace_route::{self, TraceSource};
use crate::front::ConnectionLimits;

/// The caller identity header the gateway sets.
pub const CALLER_HEADER: &str = "x-datasync-caller";
/// The API key header.
pub const API_KEY_HEADER: &str = "x-api-key";
/// The route prefix (the deployment's `path_prefix`).
pub const SYNC_PATH: &str = "/stream/sync";
/// The retry route.
pub const RETRY_PATH: &str = "/stream/retry";
/// A message's or a key's timeline (`GET /trace?id=ID`, `GET /trace?key=KEY&since=DUR`).
pub const TRACE_PATH: &str = "/trace";

/// How the status page is asked for: `GET /status` wants JSON, `GET /` a page for people,
/// `GET /metrics` Prometheus text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFormat {
    /// `application/json`.
    Json,
    /// `text/html`.
    Html,
    /// The Prometheus text exposition format.
    Prometheus,
}

/// The status paths, each with its format and content type: no key needed, GET only.
const STATUS_PATHS: [(&str, PageFormat, &str); 3] = [
    ("/", PageFormat::Html, "text/html; charset=utf-8"),
    ("/status", PageFormat::Json, "application/json"),
    (
        "/metrics",
        PageFormat::Prometheus,
        super::metrics::CONTENT_TYPE,
    ),
];

/// Renders the status page (`GET /`, `GET /status`, `GET /metrics`, no key needed) in the
/// format asked for.
/// The stack passes one in (`stack::status::status_fn`), so the gateway does not know what the
/// page holds.
pub type StatusFn =
    Arc<dyn Fn(PageFormat) -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// Counters the status page shows.
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// API requests answered, any status: every path but the status page, which the status
    /// command and the bench poll (counting those made one sync read as two requests).
    pub requests: AtomicU64,
    /// Requests passed to a function that answered 2xx.
    pub accepted: AtomicU64,
    /// Rejected by auth (401/403).
    pub unauthorized: AtomicU64,
    /// Rejected by the rate limit.
    pub rate_limited: AtomicU64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Gateway state.
pub struct Gateway {
    keys: KeyRing,
    populate: Arc<Pool>,
    retry: Arc<Pool>,
    rate: f64,
    max_body: usize,
    body_timeout: Duration,
    limits: ConnectionLimits,
    buckets: Mutex<HashMap<String, Bucket>>,
    status: StatusFn,
    host: String,
    /// Counters.
    pub stats: Arc<GatewayStats>,
    trace: Option<Arc<TraceSource>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// What [`Gateway::new`] needs.
pub struct GatewayOptions {
    /// The API keys and the callers they stand for.
    pub keys: KeyRing,
    /// The populate pool (`POST /stream/sync`).
    pub populate: Arc<Pool>,
    /// The retry pool (`POST /stream/retry`).
    pub retry: Arc<Pool>,
    /// Requests per second per key (at least 1).
    pub rate_per_second: u32,
    /// The largest request body.
    pub max_body: usize,
    /// How long a request body may take to arrive (408 after it).
    pub body_timeout: Duration,
    /// The header timeout and the connection cap.
    pub limits: ConnectionLimits,
    /// The status page.
    pub status: StatusFn,
    /// The `Host` the functions see (the gateway's address).
    pub host: String,
    /// The counters, shared with the status page.
    pub stats: Arc<GatewayStats>,
    /// Where `GET /trace` reads timelines (none: 503).
    pub trace: Option<Arc<TraceSource>>,
}

impl std::fmt::Debug for GatewayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayOptions")
            .field("rate_per_second", &self.rate_per_second)
            .field("max_body", &self.max_body)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway for the two pools.
    pub fn new(options: GatewayOptions) -> Self {
        let GatewayOptions {
            keys,
            populate,
            retry,
            rate_per_second,
            max_body,
            body_timeout,
            limits,
            status,
            host,
            stats,
            trace,
        } = options;
        Self {
            keys,
            populate,
            retry,
            rate: f64::from(rate_per_second.max(1)),
            max_body,
            body_timeout,
            limits,
            buckets: Mutex::new(HashMap::new()),
            status,
            host,
            stats,
            trace,
        }
    }

    /// Takes one token from `caller`'s bucket; false when empty.
    fn admit(&self, caller: &str) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        let now = Instant::now();
        let bucket = buckets.entry(caller.to_owned()).or_insert(Bucket {
            tokens: self.rate,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An OCI-style `{"code","message"}` answer (the gateway's and its `GET /trace`'s).
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::to_string(&ErrorBody {
        code: code.to_owned(),
        message: message.to_owned(),
    })
    .unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Serves the gateway on `listener` until `shutdown` is cancelled; requests in flight finish.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = gateway.limits;
    let app = axum::Router::new().fallback(handle).with_state(gateway);
    crate::front::serve(app, listener, shutdown, limits).await
}

async fn handle(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response<Body> {
    let request_id = uuid::Uuid::now_v7().simple().to_string();
    let mut response = route(&gw, peer, request, &request_id).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("opc-request-id", v);
    }
    response
}

async fn route(
    gw: &Gateway,
    peer: SocketAddr,
    request: Request<Body>,
    request_id: &str,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    if request.method() == Method::GET {
        if let Some(&(_, format, ct)) = STATUS_PATHS.iter().find(|(p, _, _)| *p == path) {
            return status_page(gw, format, ct).await;
        }
    }
    // A message's timeline, for the status page's search box: no key, as the status page.
    if path == TRACE_PATH && request.method() == Method::GET {
        return trace_route::answer(gw.trace.as_deref(), request.uri().query()).await;
    }
    gw.stats.requests.fetch_add(1, Ordering::Relaxed);
    let (pool, operator_only) = match path.as_str() {
        SYNC_PATH => (&gw.populate, false),
        RETRY_PATH => (&gw.retry, true),
        _ => return error(StatusCode::NOT_FOUND, "NotFound", "no route for this path"),
    };
    if request.method() != Method::POST {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "this route accepts POST only",
        );
        r.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let caller = match authorize(gw, request.headers(), operator_only) {
        Ok(caller) => caller,
        Err(refused) => return refused.response(),
    };
    let (mut parts, body) = match read_body(gw, request).await {
        Ok(read) => read,
        Err(refused) => return refused.response(),
    };
    forward_headers(gw, &mut parts.headers, &caller, peer);
    call_function(gw, pool, Request::from_parts(parts, body), request_id).await
}

/// Why the gateway refused a request before calling a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No key, or an unknown one (401).
    NotAuthenticated,
    /// A source key on the operator route (403).
    NotAuthorized,
    /// Over the key's rate (429).
    RateLimited,
    /// The body is over the limit (413).
    TooLarge,
    /// The body could not be read: malformed chunked encoding, or the client stopped sending
    /// it (400).
    MalformedBody,
    /// The body did not arrive within the body timeout (408).
    BodyTimedOut,
    /// More than one `x-api-key` header: which one is meant cannot be told (400).
    RepeatedKey,
}

impl Refusal {
    /// The answer, OCI style.
    fn response(self) -> Response<Body> {
        match self {
            Refusal::NotAuthenticated => error(
                StatusCode::UNAUTHORIZED,
                "NotAuthenticated",
                "a valid API key is required in the x-api-key header",
            ),
            Refusal::NotAuthorized => error(
                StatusCode::FORBIDDEN,
                "NotAuthorized",
                "this key may not call /stream/retry; use the operator key",
            ),
            Refusal::RateLimited => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "rate limit exceeded for this key",
                );
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            Refusal::TooLarge => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                "the request body is over the gateway's limit",
            ),
            Refusal::MalformedBody => error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "the request body could not be read: malformed chunked encoding, or it ended \
                 before its declared length",
            ),
            Refusal::BodyTimedOut => error(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeout",
                "the request body did not arrive in time",
            ),
            Refusal::RepeatedKey => error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "the x-api-key header is sent more than once; send exactly one",
            ),
        }
    }
}

/// The caller `headers`' API key stands for, when it may use the route and is within its
/// rate; the refusal is counted otherwise.
fn authorize(
    gw: &Gateway,
    headers: &http::HeaderMap,
    operator_only: bool,
) -> Result<String, Refusal> {
    let mut keys = headers.get_all(API_KEY_HEADER).iter();
    let key = keys.next().and_then(|v| v.to_str().ok()).unwrap_or("");
    if keys.next().is_some() {
        // Taking the first would let whatever sits in front of the gateway and the gateway
        // disagree on who the caller is.
        gw.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        return Err(Refusal::RepeatedKey);
    }
    let Some(caller) = gw.keys.caller(key).cloned() else {
        gw.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        return Err(Refusal::NotAuthenticated);
    };
    if operator_only && !caller.operator {
        gw.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        return Err(Refusal::NotAuthorized);
    }
    if !gw.admit(&caller.name) {
        gw.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Err(Refusal::RateLimited);
    }
    Ok(caller.name)
}

/// The request's head and body, refused when the body is over the limit (a declared length
/// over it before reading).
async fn read_body(
    gw: &Gateway,
    request: Request<Body>,
) -> Result<(http::request::Parts, Bytes), Refusal> {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let (parts, body) = request.into_parts();
    if let Some(n) = declared.filter(|&n| n > gw.max_body) {
        crate::drain_refused_body(body, n as u64).await;
        return Err(Refusal::TooLarge);
    }
    match tokio::time::timeout(gw.body_timeout, axum::body::to_bytes(body, gw.max_body)).await {
        Ok(Ok(b)) => Ok((parts, b)),
        Ok(Err(e)) if over_limit(&e) => Err(Refusal::TooLarge),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "gateway: reading a request body failed");
            Err(Refusal::MalformedBody)
        }
        Err(_) => Err(Refusal::BodyTimedOut),
    }
}

/// Whether reading a body failed because it went over the limit (rather than because it was
/// malformed or cut short).
fn over_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = err.source();
    }
    false
}

/// The headers the function sees: the caller identity instead of the key (a client's own
/// `x-datasync-caller` dropped), the forwarding headers, the gateway's host.
fn forward_headers(gw: &Gateway, headers: &mut http::HeaderMap, caller: &str, peer: SocketAddr) {
    headers.remove(API_KEY_HEADER);
    headers.remove(CALLER_HEADER);
    if let Ok(v) = HeaderValue::from_str(caller) {
        headers.insert(CALLER_HEADER, v);
    }
    let ip = peer.ip().to_string();
    if let Ok(v) = HeaderValue::from_str(&ip) {
        headers.append("x-forwarded-for", v.clone());
        headers.insert("x-real-ip", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("for={ip};proto=http")) {
        headers.insert(http::header::FORWARDED, v);
    }
    if let Ok(v) = HeaderValue::from_str(&gw.host) {
        headers.insert(http::header::HOST, v);
    }
}

/// Calls `pool` with `client`'s request through the Fn contract, and its answer as the
/// gateway gives it back (502, or 504 on a timeout, when the call fails).
async fn call_function(
    gw: &Gateway,
    pool: &Pool,
    client: Request<Bytes>,
    request_id: &str,
) -> Response<Body> {
    let mut call = match fdk::agent::gateway_request(client, request_id, deadline()) {
        Ok(c) => c,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "the request has a header the gateway cannot pass on",
            )
        }
    };
    if let Ok(v) = HeaderValue::from_str(request_id) {
        call.headers_mut().insert("opc-request-id", v);
    }
    call.headers_mut()
        .insert("oci-subject-type", HeaderValue::from_static("resource"));
    call.headers_mut().insert(
        "oci-subject-id",
        HeaderValue::from_static("ocid1.apigateway.oc1.local.gateway"),
    );
    let answer = match pool.call(call).await {
        Ok(a) => fdk::agent::gateway_response(a),
        Err(e) => {
            tracing::warn!(function = pool.name(), error = %e, "gateway: function call failed");
            fdk::agent::gateway_error(
                if matches!(e, super::host::HostError::Fdk(fdk::Error::TimedOut(_))) {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                },
            )
        }
    };
    if answer.status().is_success() {
        gw.stats.accepted.fetch_add(1, Ordering::Relaxed);
    }
    let (parts, body): (http::response::Parts, Bytes) = answer.into_parts();
    Response::from_parts(parts, Body::from(body))
}

async fn status_page(gw: &Gateway, format: PageFormat, ct: &'static str) -> Response<Body> {
    let page = (gw.status)(format).await;
    let mut r = Response::new(Body::from(page));
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}
