//! The agent side of the contract: what the Fn agent (or OCI, or the local stack's function
//! host) sends to a function, and what API Gateway makes of the answer (section B).
//!
//! - [`Invoker`]: one keep-alive HTTP/1.1 connection to a function's Unix socket, one call at
//!   a time (as the agent does per container), reconnecting when the function closed it.
//! - [`invoke_request`]: a plain invoke (InvokeFunction, Connector Hub).
//! - [`gateway_request`] / [`gateway_response`]: a client's HTTP request into the Fn call
//!   headers, and the function's answer back into the client's status, headers and body.
//!
//! ```no_run
//! use std::time::{Duration, SystemTime};
//! use fdk::agent::{gateway_request, gateway_response, Invoker};
//!
//! # async fn example() -> Result<(), fdk::Error> {
//! let mut invoker = Invoker::connect("/tmp/iofs/lsnr.sock").await?;
//! let client = http::Request::post("/v1/items?x=1")
//!     .header("content-type", "application/json")
//!     .body(bytes::Bytes::from_static(b"{}"))?;
//! let deadline = SystemTime::now() + Duration::from_secs(30);
//! let call = gateway_request(client, "01JCALL", deadline)?;
//! let answer = invoker.call(call, Duration::from_secs(31)).await?;
//! let for_client = gateway_response(answer);
//! # let _ = for_client; Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::protocol::{self, CALL_PATH};
use crate::Error;

/// A keep-alive connection to one function instance's socket.
///
/// Calls are sequential (`&mut self`): the agent sends one request at a time per container.
#[derive(Debug)]
pub struct Invoker {
    path: PathBuf,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Invoker {
    /// Connects to the socket at `path` (the advertised path, i.e. the symlink).
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] when nothing listens there, [`Error::Http`] if the handshake fails.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, Error> {
        let mut invoker = Self {
            path: path.as_ref().to_owned(),
            sender: None,
        };
        invoker.sender = Some(invoker.open().await?);
        Ok(invoker)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, Error> {
        let stream = UnixStream::connect(&self.path)
            .await
            .map_err(|source| Error::Connect {
                path: self.path.clone(),
                source,
            })?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "function connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Sends one call and reads the whole answer. `request`'s path is replaced by `/call`
    /// and its method by POST; build it with [`invoke_request`] or [`gateway_request`].
    ///
    /// If the call does not complete within `timeout`, the connection is dropped (the agent
    /// treats the container as dead then) and [`Error::TimedOut`] is returned. The connection
    /// is also dropped after an outer status other than 200, 502 or 504.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] / [`Error::Http`] for transport failures, [`Error::TimedOut`].
    pub async fn call(
        &mut self,
        request: Request<Bytes>,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, Error> {
        match tokio::time::timeout(timeout, self.call_inner(request)).await {
            Ok(Ok(response)) => {
                if !protocol::is_valid_outer_status(response.status()) {
                    self.sender = None;
                }
                Ok(response)
            }
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(Error::TimedOut(timeout))
            }
        }
    }

    async fn call_inner(
        &mut self,
        request: Request<Bytes>,
    ) -> Result<http::Response<Bytes>, Error> {
        let (mut parts, body) = request.into_parts();
        parts.method = http::Method::POST;
        parts.uri = http::Uri::from_static(CALL_PATH);
        parts
            .headers
            .entry(HOST)
            .or_insert(HeaderValue::from_static("localhost"));
        let request = Request::from_parts(parts, Full::new(body));

        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.open().await?,
        };
        if sender.ready().await.is_err() {
            // The function closed the idle connection: reconnect once.
            sender = self.open().await?;
            sender.ready().await?;
        }
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        self.sender = Some(sender);
        Ok(http::Response::from_parts(parts, body))
    }
}

fn common_headers(
    headers: &mut HeaderMap,
    call_id: &str,
    deadline: SystemTime,
) -> Result<(), Error> {
    headers.insert(
        protocol::FN_CALL_ID.clone(),
        HeaderValue::from_str(call_id).map_err(http::Error::from)?,
    );
    headers.insert(
        protocol::FN_DEADLINE.clone(),
        HeaderValue::from_str(&protocol::format_deadline(deadline)).map_err(http::Error::from)?,
    );
    Ok(())
}

/// A plain invoke (no `Fn-Intent`), as InvokeFunction or Connector Hub sends it.
///
/// # Errors
///
/// [`Error::InvalidMessage`] if `call_id` or `content_type` is not a valid header value.
pub fn invoke_request(
    call_id: &str,
    deadline: SystemTime,
    content_type: Option<&str>,
    body: Bytes,
) -> Result<Request<Bytes>, Error> {
    let mut request = Request::post(CALL_PATH).body(body)?;
    let headers = request.headers_mut();
    common_headers(headers, call_id, deadline)?;
    headers.insert(
        protocol::FN_INVOKE_TYPE.clone(),
        HeaderValue::from_static("sync"),
    );
    if let Some(ct) = content_type {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(ct).map_err(http::Error::from)?,
        );
    }
    Ok(request)
}

/// Turns a client's HTTP request into the Fn call API Gateway makes: `Fn-Intent:
/// httprequest`, `Fn-Http-Method`, `Fn-Http-Request-Url` (path and query only, as OCI sends
/// it), every client header `X` as `Fn-Http-H-X` (hop-by-hop headers dropped), and
/// `Content-Type` also unprefixed. The body is passed raw.
///
/// # Errors
///
/// [`Error::InvalidMessage`] if `call_id` is not a valid header value.
pub fn gateway_request(
    client: Request<Bytes>,
    call_id: &str,
    deadline: SystemTime,
) -> Result<Request<Bytes>, Error> {
    let (parts, body) = client.into_parts();
    let url = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 8);
    common_headers(&mut headers, call_id, deadline)?;
    headers.insert(
        protocol::FN_INTENT.clone(),
        HeaderValue::from_static(protocol::INTENT_HTTP_REQUEST),
    );
    headers.insert(
        protocol::FN_INVOKE_TYPE.clone(),
        HeaderValue::from_static("sync"),
    );
    headers.insert(
        protocol::FN_HTTP_METHOD.clone(),
        HeaderValue::from_str(parts.method.as_str()).map_err(http::Error::from)?,
    );
    headers.insert(
        protocol::FN_HTTP_REQUEST_URL.clone(),
        HeaderValue::from_str(&url).map_err(http::Error::from)?,
    );
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, ct.clone());
    }
    let mut name = None;
    for (n, value) in parts.headers {
        if let Some(n) = n {
            name = Some(n);
        }
        let Some(n) = &name else { continue };
        if protocol::is_hop_by_hop(n) {
            continue;
        }
        if let Some(p) = protocol::prefixed(n) {
            headers.append(p, value);
        }
    }
    let mut request = Request::post(CALL_PATH).body(body)?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Turns a function's answer into what API Gateway sends its client (section B):
///
/// - outer 200: status from `Fn-Http-Status` (200 if absent; 502 if not a valid status),
///   every `Fn-Http-H-X` as `X`, `Content-Type` passed through, the body raw; other headers
///   (the `Fn-*` ones) are dropped;
/// - outer 504: 504; any other outer status: 502. The function's body is not passed on;
///   the client gets a gateway error body `{"code":<status>,"message":"<reason>"}`.
pub fn gateway_response(response: http::Response<Bytes>) -> http::Response<Bytes> {
    let (parts, body) = response.into_parts();
    if parts.status != StatusCode::OK {
        let status = if parts.status == StatusCode::GATEWAY_TIMEOUT {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::BAD_GATEWAY
        };
        return gateway_error(status);
    }
    let status = match parts.headers.get(&protocol::FN_HTTP_STATUS) {
        None => StatusCode::OK,
        Some(v) => match v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
        {
            Some(s) => s,
            None => return gateway_error(StatusCode::BAD_GATEWAY),
        },
    };
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    let mut name = None;
    for (n, value) in parts.headers {
        if let Some(n) = n {
            name = Some(n);
        }
        let Some(n) = &name else { continue };
        if let Some(client) = protocol::unprefixed(n) {
            if !protocol::is_hop_by_hop(&client) {
                headers.append(client, value);
            }
        } else if *n == CONTENT_TYPE && !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, value);
        }
    }
    let mut out = http::Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// A gateway-generated error: `{"code":502,"message":"Bad Gateway"}` (the shape OCI API
/// Gateway uses for its own errors).
pub fn gateway_error(status: StatusCode) -> http::Response<Bytes> {
    let body = serde_json::json!({
        "code": status.as_u16(),
        "message": status.canonical_reason().unwrap_or("Error"),
    })
    .to_string();
    let mut out = http::Response::new(Bytes::from(body));
    *out.status_mut() = status;
    out.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn gateway_request_mapping() {
        let client = Request::put("http://gw.example/v1/items?id=3")
            .header("content-type", "application/json")
            .header("x-api-key", "k")
            .header("accept", "a")
            .header("accept", "b")
            .header("connection", "keep-alive")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let deadline = protocol::parse_deadline("2030-01-01T00:00:00Z").unwrap();
        let r = gateway_request(client, "C1", deadline).unwrap();
        let h = r.headers();
        assert_eq!(r.uri(), "/call");
        assert_eq!(r.method(), "POST");
        assert_eq!(h["fn-call-id"], "C1");
        assert_eq!(h["fn-deadline"], "2030-01-01T00:00:00Z");
        assert_eq!(h["fn-intent"], "httprequest");
        assert_eq!(h["fn-http-method"], "PUT");
        assert_eq!(h["fn-http-request-url"], "/v1/items?id=3");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["fn-http-h-content-type"], "application/json");
        assert_eq!(h["fn-http-h-x-api-key"], "k");
        assert_eq!(h.get_all("fn-http-h-accept").iter().count(), 2);
        assert!(h.get("fn-http-h-connection").is_none());
        assert!(h.get("x-api-key").is_none());
        assert_eq!(r.body(), "{}");
    }

    #[test]
    fn gateway_response_mapping() {
        let fn_resp = http::Response::builder()
            .status(200)
            .header("fn-http-status", "201")
            .header("fn-http-h-x-a", "1")
            .header("fn-http-h-x-a", "2")
            .header("content-type", "text/plain")
            .header("fn-fdk-version", "fdk-rust/0.1.0")
            .body(Bytes::from_static(b"hello"))
            .unwrap();
        let r = gateway_response(fn_resp);
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(r.headers()["content-type"], "text/plain");
        assert!(r.headers().get("fn-fdk-version").is_none());
        assert_eq!(r.body(), "hello");

        let plain = http::Response::new(Bytes::new());
        assert_eq!(gateway_response(plain).status(), 200);

        for (outer, client) in [(502, 502), (504, 504), (500, 502), (404, 502)] {
            let r = http::Response::builder()
                .status(outer)
                .body(Bytes::from_static(b"secret"))
                .unwrap();
            let out = gateway_response(r);
            assert_eq!(out.status(), client);
            assert_ne!(out.body(), "secret");
        }
        let bad = http::Response::builder()
            .header("fn-http-status", "abc")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(gateway_response(bad).status(), 502);
    }

    #[test]
    fn plain_invoke() {
        let r = invoke_request(
            "C2",
            SystemTime::now(),
            Some("application/json"),
            Bytes::new(),
        )
        .unwrap();
        assert_eq!(r.headers()["fn-call-id"], "C2");
        assert!(r.headers().get("fn-intent").is_none());
        assert_eq!(r.headers()["content-type"], "application/json");
        assert!(invoke_request("bad\nid", SystemTime::now(), None, Bytes::new()).is_err());
    }
}
