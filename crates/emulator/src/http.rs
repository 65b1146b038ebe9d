//! The HTTP front: one handler that reads the body (with an explicit limit), verifies the
//! request signature with the same code the clients sign with, and routes by path.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use datasync_core::oci::models::ErrorBody;
use datasync_core::oci::signer::{
    check_signed_values, parse_authorization, verify, ReceivedRequest, VerifyError,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use percent_encoding::percent_decode_str;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::{objects, secrets, streaming, topics, Inner};

/// The most a request body may be outside Object Storage PutObject: a 1 MB PutMessages grows
/// to about 1.37 MB as base64 in JSON; 2 MiB leaves room and rejects anything larger with 413
/// before it is read.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

pub(super) async fn serve(
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

/// Serves the same APIs on a Unix socket (see [`super::Emulator::serve_unix`]).
pub(super) async fn serve_unix(
    inner: Arc<Inner>,
    listener: tokio::net::UnixListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(handle).with_state(inner);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

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
    let mut response = match route(&inner, request).await {
        Ok(response) => response,
        Err(err) => error_response(&err),
    };
    response.headers_mut().insert("opc-request-id", id);
    response
}

/// The OCI error response for `err`.
pub fn error_response(err: &ApiError) -> Response {
    let body = serde_json::to_vec(&ErrorBody {
        code: err.code.to_owned(),
        message: err.message.clone(),
    })
    .unwrap_or_default();
    json_bytes(err.status, body)
}

fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(super) fn json<T: serde::Serialize>(
    status: StatusCode,
    value: &T,
) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_bytes(status, body))
}

pub(super) fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

fn is_put_messages(method: &Method, segments: &[String]) -> bool {
    method == Method::POST
        && segments.len() == 4
        && segments[0] == "20180418"
        && segments[1] == "streams"
        && segments[3] == "messages"
}

fn is_put_object(method: &Method, path: &str) -> bool {
    method == Method::PUT && path.starts_with("/n/") && path.contains("/o/")
}

async fn route(inner: &Arc<Inner>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
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
    let object = is_put_object(&method, &path);
    let limit = if object {
        inner.options.max_object_bytes
    } else {
        BODY_LIMIT
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > limit as u64) {
        crate::drain_refused_body(body, n).await;
        return Err(ApiError::too_large(format!(
            "the request body exceeds {limit} bytes"
        )));
    }
    let body: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(format!("the request body exceeds {limit} bytes")))?;

    let received = ReceivedRequest {
        method: method.as_str(),
        target: &target,
        headers: &parts.headers,
        body: &body,
        body_exempt: object || is_put_messages(&method, &segments),
    };
    authenticate(inner, &received, SystemTime::now()).map_err(|e| {
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
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    dispatch(inner, &method, &path, &seg, &query, &parts.headers, body).await
}

async fn dispatch(
    inner: &Arc<Inner>,
    method: &Method,
    path: &str,
    seg: &[&str],
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    use Method as M;
    let ok = StatusCode::OK;
    match (method, seg) {
        // Streaming control plane.
        (&M::POST, ["20180418", "streams"]) => {
            json(ok, &streaming::create_stream(inner, &body).await?)
        }
        (&M::GET, ["20180418", "streams"]) => {
            json(ok, &streaming::list_streams(inner, query).await?)
        }
        (&M::GET, ["20180418", "streams", id]) => {
            json(ok, &streaming::get_stream(inner, id).await?)
        }
        (&M::DELETE, ["20180418", "streams", id]) => {
            streaming::delete_stream(inner, id).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        // Streaming data plane.
        (&M::POST, ["20180418", "streams", id, "messages"]) => {
            json(ok, &streaming::put_messages(inner, id, &body).await?)
        }
        (&M::GET, ["20180418", "streams", id, "messages"]) => {
            let (body, next) = streaming::get_messages(inner, id, query).await?;
            let mut response = Response::new(body);
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response.headers_mut().insert(
                "opc-next-cursor",
                HeaderValue::from_str(&next).map_err(|e| ApiError::internal(e.to_string()))?,
            );
            Ok(response)
        }
        (&M::POST, ["20180418", "streams", id, "cursors"]) => {
            json(ok, &streaming::create_cursor(inner, id, &body).await?)
        }
        (&M::POST, ["20180418", "streams", id, "groupCursors"]) => {
            json(ok, &streaming::create_group_cursor(inner, id, &body).await?)
        }
        (&M::POST, ["20180418", "streams", id, "commit"]) => json(
            ok,
            &streaming::commit_or_heartbeat(
                inner,
                id,
                query.get("cursor").map(String::as_str),
                true,
            )
            .await?,
        ),
        (&M::POST, ["20180418", "streams", id, "heartbeat"]) => json(
            ok,
            &streaming::commit_or_heartbeat(
                inner,
                id,
                query.get("cursor").map(String::as_str),
                false,
            )
            .await?,
        ),
        (&M::GET, ["20180418", "streams", id, "groups", group]) => {
            json(ok, &streaming::get_group(inner, id, group).await?)
        }
        (&M::PUT, ["20180418", "streams", id, "groups", group]) => {
            streaming::update_group(inner, id, group, &body).await?;
            Ok(empty(ok))
        }
        // Secrets (retrieval) and Vault (management).
        (&M::GET, ["20190301", "secretbundles", id]) => {
            json(ok, &secrets::get_bundle(inner, Some(id), query).await?)
        }
        (&M::POST, ["20190301", "secretbundles", "actions", "getByName"]) => {
            json(ok, &secrets::get_bundle(inner, None, query).await?)
        }
        (&M::POST, ["20180608", "secrets"]) => json(ok, &secrets::create(inner, &body).await?),
        (&M::GET, ["20180608", "secrets"]) => json(ok, &secrets::list(inner, query).await?),
        (&M::GET, ["20180608", "secrets", id]) => json(ok, &secrets::get(inner, id).await?),
        (&M::PUT, ["20180608", "secrets", id]) => {
            json(ok, &secrets::update(inner, id, &body).await?)
        }
        (&M::POST, ["20180608", "secrets", id, "actions", "scheduleDeletion"]) => {
            secrets::schedule_deletion(inner, id, &body).await?;
            Ok(empty(ok))
        }
        // Notifications.
        (&M::POST, ["20181201", "topics"]) => json(ok, &topics::create(inner, &body).await?),
        (&M::GET, ["20181201", "topics", id]) => json(ok, &topics::get(inner, id).await?),
        (&M::POST, ["20181201", "topics", id, "messages"]) => {
            let kind = headers
                .get("messagetype")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            json(ok, &topics::publish(inner, id, kind, &body).await?)
        }
        // Object Storage.
        (&M::GET, ["n"] | ["n", ""]) => json(ok, &super::NAMESPACE),
        (_, ["n", ns, ..]) if *ns != super::NAMESPACE => {
            Err(ApiError::not_found(format!("namespace {ns}")))
        }
        (&M::POST, ["n", _, "b"] | ["n", _, "b", ""]) => {
            json(ok, &objects::create_bucket(inner, &body).await?)
        }
        (&M::GET, ["n", _, "b", bucket]) => json(ok, &objects::get_bucket(inner, bucket).await?),
        (&M::GET, ["n", _, "b", bucket, "o"]) => {
            json(ok, &objects::list(inner, bucket, query).await?)
        }
        (m, ["n", _, "b", bucket, "o", _, ..]) => {
            // The object name is everything after `/o/`, decoded (it may contain `/`).
            let raw = path.splitn(7, '/').nth(6).unwrap_or_default();
            let name = percent_decode_str(raw).decode_utf8_lossy().into_owned();
            match *m {
                M::PUT => objects::put(inner, bucket, &name, headers, body).await,
                M::GET => objects::get(inner, bucket, &name, false).await,
                M::HEAD => objects::get(inner, bucket, &name, true).await,
                M::DELETE => objects::delete(inner, bucket, &name, headers).await,
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        _ => Err(ApiError::not_found(format!("{method} {path}"))),
    }
}

/// The most signatures remembered per second.
const MEMO_LIMIT: usize = 4096;

/// Signatures that verified during the current second of the server's clock.
///
/// An RSA-2048 verification costs about 32 µs with `ring` here (the `signer_bench` example),
/// a good part of what the rest of a PutMessages request costs. OCI clients cache
/// their signatures per signing string and second (PKCS#1 v1.5 is deterministic), so concurrent
/// PutMessages to one stream carry byte-identical `Authorization` values. This memo remembers
/// (as a SHA-256) every input of the RSA check of a request that verified: method, target,
/// the `Authorization` value (keyId, signed header list, signature) and the value of every
/// signed header. A later request with the same digest *in the same second of the server's
/// clock* would make [`verify`] run the same RSA check on the same bytes with the same key
/// (a token's expiry is compared at one-second resolution), so its result is reused; the checks
/// that depend on anything else (body hash and length against the body, date skew against the
/// clock) still run on every request. Nothing is remembered across seconds, and a failed
/// verification is never remembered.
#[derive(Debug, Default)]
pub(super) struct VerifiedMemo {
    inner: Mutex<(u64, HashSet<[u8; 32]>)>,
}

impl VerifiedMemo {
    /// Forgets everything (when a key is registered or replaced).
    pub(super) fn clear(&self) {
        if let Ok(mut memo) = self.inner.lock() {
            memo.1.clear();
        }
    }

    fn contains(&self, second: u64, digest: &[u8; 32]) -> bool {
        self.inner
            .lock()
            .map(|memo| memo.0 == second && memo.1.contains(digest))
            .unwrap_or(false)
    }

    fn insert(&self, second: u64, digest: [u8; 32]) {
        if let Ok(mut memo) = self.inner.lock() {
            if memo.0 != second {
                memo.0 = second;
                memo.1.clear();
            }
            if memo.1.len() < MEMO_LIMIT {
                memo.1.insert(digest);
            }
        }
    }
}

/// The digest of every input of a request's RSA check, and the signed header names; `None`
/// when the request is not signed well enough to get that far (then [`verify`] decides).
fn signature_inputs(request: &ReceivedRequest<'_>) -> Option<([u8; 32], Vec<String>)> {
    let value = request
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let parsed = parse_authorization(value).ok()?;
    let mut hash = Sha256::new();
    for part in [request.method, request.target, value] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    for name in &parsed.headers {
        if name == "(request-target)" {
            continue;
        }
        let header = request.headers.get(name.as_str())?.as_bytes();
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update((header.len() as u64).to_le_bytes());
        hash.update(header);
    }
    Some((hash.finalize().into(), parsed.headers))
}

/// Verifies a request's signature with [`verify`], reusing the RSA check of an identical
/// signature verified in the same second (see [`VerifiedMemo`]).
pub(super) fn authenticate(
    inner: &Inner,
    request: &ReceivedRequest<'_>,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let inputs = signature_inputs(request);
    if let Some((digest, signed)) = &inputs {
        if inner.verified.contains(second, digest) {
            return check_signed_values(request, signed, now);
        }
    }
    verify(request, now, |key_id| inner.keys.lookup(key_id, now))?;
    if let Some((digest, _)) = inputs {
        inner.verified.insert(second, digest);
    }
    Ok(())
}
