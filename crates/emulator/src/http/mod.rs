//! The HTTP front: listeners (TCP and Unix), then per request an `opc-request-id`, the body read
//! within its limit, the signature verified (`auth::verify`) and the call routed (`router`).
//! Public here: the body limits, and [`drain_refused_body`], which the local stack's gateway
//! shares.

mod body;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::response::Response;
use datasync_core::oci::signer::ReceivedRequest;
use http::{HeaderMap, HeaderValue};
use percent_encoding::percent_decode_str;
use tokio_util::sync::CancellationToken;

pub use body::{drain_refused_body, BODY_LIMIT, DRAIN_LIMIT};

use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::Call;
use crate::response::error_response;
use crate::{auth, router};

/// Serves every API on `listener` until `shutdown` (see [`crate::Emulator::serve`]).
pub(crate) async fn serve(
    inner: Arc<Inner>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let app = axum::Router::new().fallback(handle).with_state(inner);
    // No Nagle: the last chunk of a streamed GetMessages answer would otherwise wait for the
    // client's delayed ACK (40 ms per answer).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Serves the same APIs on a Unix socket (see [`crate::Emulator::serve_unix`]).
pub(crate) async fn serve_unix(
    inner: Arc<Inner>,
    listener: tokio::net::UnixListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(handle).with_state(inner);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// The answer's `opc-request-id`: the caller's id (when given and short) and our own.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    let own = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase();
    let value = match headers.get("opc-request-id").and_then(|v| v.to_str().ok()) {
        Some(theirs) if !theirs.is_empty() && theirs.len() < 200 => format!("{theirs}/{own}"),
        _ => own,
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("emulator"))
}

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let id = request_id(request.headers());
    let mut response = match accept(&inner, request).await {
        Ok(call) => router::dispatch(&inner, call).await,
        Err(err) => Err(err),
    }
    .unwrap_or_else(|err| error_response(&err));
    response.headers_mut().insert("opc-request-id", id);
    response
}

/// Reads the body within the route's limit and verifies the signature: the [`Call`] a
/// service gets, or the error to answer.
async fn accept(inner: &Arc<Inner>, request: Request) -> Result<Call, ApiError> {
    let (parts, body) = request.into_parts();
    let method = parts.method;
    let path = parts.uri.path().to_owned();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
    let segments: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let rules = router::body_rules(&method, &path, &segments, &inner.options);
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = body::read(body, declared, rules.limit).await?;

    let received = ReceivedRequest {
        method: method.as_str(),
        target: &target,
        headers: &parts.headers,
        body: &body,
        body_exempt: rules.body_exempt,
    };
    auth::verify::authenticate(inner, &received, SystemTime::now()).map_err(|e| {
        ApiError::not_authenticated(format!("The required information to complete authentication was not provided or was incorrect: {e}"))
    })?;

    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    Ok(Call {
        method,
        path,
        segments,
        query,
        headers: parts.headers,
        body,
    })
}
