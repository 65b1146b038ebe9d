//! The server side: the socket dance, the HTTP/1.1 server, and the call pipeline
//! (log frame → body → context → handler with deadline and panic capture → response mapping).

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::io::Write as _;
use std::marker::PhantomData;
use std::os::unix::fs::PermissionsExt as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tower::{Layer, Service, ServiceExt as _};
use tracing::Instrument as _;

use crate::context::{Config, Context as CallContext, FnEvent, Payload};
use crate::protocol::{self, MAX_BODY_BYTES};
use crate::response::{IntoResponse, Response};
use crate::Error;

type ShutdownFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type HttpResponse = hyper::Response<Full<Bytes>>;

/// A handler plus its settings; [`crate::run`] and [`crate::serve`] are shorthands for
/// `Runtime::new(handler).run()` and `.serve(path)`.
///
/// ```no_run
/// use fdk::{service_fn, Bytes, FnEvent, Response, Runtime};
/// use tower::util::MapResponseLayer;
///
/// async fn handler(event: FnEvent) -> Result<Bytes, std::convert::Infallible> {
///     Ok(event.payload)
/// }
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     Runtime::new(service_fn(handler))
///         // Middleware: any tower layer.
///         .layer(MapResponseLayer::new(|body: Bytes| {
///             Response::new(body).with_header(
///                 http::header::CACHE_CONTROL,
///                 http::HeaderValue::from_static("no-store"),
///             )
///         }))
///         .run()
///         .await;
/// }
/// ```
pub struct Runtime<S, T = Bytes> {
    service: S,
    config: Option<Config>,
    shutdown: Option<ShutdownFuture>,
    payload: PhantomData<fn() -> T>,
}

impl<S, T> Runtime<S, T> {
    /// A runtime serving `service`.
    pub fn new(service: S) -> Self {
        Self {
            service,
            config: None,
            shutdown: None,
            payload: PhantomData,
        }
    }

    /// Wraps the handler in a tower layer (middleware). Layers added later run first.
    pub fn layer<L: Layer<S>>(self, layer: L) -> Runtime<L::Service, T> {
        Runtime {
            service: layer.layer(self.service),
            config: self.config,
            shutdown: self.shutdown,
            payload: PhantomData,
        }
    }

    /// The function configuration handed to handlers in [`Context::config`](crate::Context::config), and read by
    /// [`Runtime::run`] for `FN_LISTENER`, `FN_FORMAT`, `FN_LOGFRAME_*` and the `FN_*` ids.
    /// Without it, `run` captures the process environment and `serve` uses an empty one.
    #[must_use]
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Stops serving when `signal` completes, instead of on SIGTERM or SIGINT.
    #[must_use]
    pub fn with_shutdown(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown = Some(Box::pin(signal));
        self
    }
}

impl<S, T> Runtime<S, T>
where
    S: Service<FnEvent<T>> + Clone + Send + 'static,
    S::Response: IntoResponse + Send + 'static,
    S::Error: Display + Send + 'static,
    S::Future: Send + 'static,
    T: Payload,
{
    /// Serves on the socket named by `FN_LISTENER` until SIGTERM or SIGINT, then returns.
    ///
    /// # Exits
    ///
    /// On a missing or invalid `FN_LISTENER`, an unsupported `FN_FORMAT`, or a socket that
    /// cannot be set up, prints the reason to stderr and exits the process with status 1.
    /// Use [`Runtime::try_run`] to handle these errors yourself.
    pub async fn run(self) {
        if let Err(e) = self.try_run().await {
            let _ = writeln!(std::io::stderr(), "fdk: {e}");
            std::process::exit(1);
        }
    }

    /// [`Runtime::run`], returning setup errors instead of exiting.
    ///
    /// # Errors
    ///
    /// [`Error::MissingListener`], [`Error::InvalidListener`], [`Error::UnsupportedFormat`],
    /// [`Error::Socket`] or [`Error::Signal`].
    pub async fn try_run(mut self) -> Result<(), Error> {
        let config = self.config.take().unwrap_or_else(Config::from_env);
        let listener = config
            .get(protocol::ENV_LISTENER)
            .ok_or(Error::MissingListener)?;
        let path = protocol::parse_listener(listener)?;
        match config.get(protocol::ENV_FORMAT) {
            None | Some("") | Some(protocol::FORMAT_HTTP_STREAM) => {}
            Some(other) => return Err(Error::UnsupportedFormat(other.to_owned())),
        }
        self.serve_with(&path, config).await
    }

    /// Serves on `socket` (the advertised path; `phony<name>` is bound beside it) until the
    /// shutdown signal, then removes both files and returns.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidListener`] for a path breaking the socket rules, [`Error::Socket`] when
    /// the files cannot be set up, [`Error::Signal`].
    pub async fn serve(mut self, socket: impl AsRef<Path>) -> Result<(), Error> {
        let config = self.config.take().unwrap_or_default();
        self.serve_with(socket.as_ref(), config).await
    }

    async fn serve_with(self, socket: &Path, config: Config) -> Result<(), Error> {
        let value = protocol::listener_value(socket);
        let socket = protocol::parse_listener(&value)?;
        let shutdown = match self.shutdown {
            Some(s) => s,
            None => signals()?,
        };
        let logframe = LogFrame::from_config(&config);
        let inner = Arc::new(Inner {
            service: std::sync::Mutex::new(self.service),
            config: Arc::new(config),
            logframe,
            payload: PhantomData,
        });
        let (listener, files) = bind(&socket)?;
        tracing::debug!(socket = %socket.display(), "fdk listening");
        accept_loop(listener, inner, shutdown).await;
        drop(files);
        Ok(())
    }
}

/// Completes on SIGTERM or SIGINT.
fn signals() -> Result<ShutdownFuture, Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    Ok(Box::pin(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }))
}

/// The two socket files; removed on drop (normal exit, error, or unwinding).
struct SocketFiles {
    socket: PathBuf,
    phony: PathBuf,
}

impl Drop for SocketFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.phony);
    }
}

fn remove_stale(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Socket {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The socket dance, in the agent's order: remove stale files, bind the phony socket,
/// chmod 0666, then publish it with a relative symlink (the agent's inotify sees the link
/// appear only once the socket is ready and connectable by its uid).
fn bind(socket: &Path) -> Result<(UnixListener, SocketFiles), Error> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Socket { path, source }
    };
    let (phony, phony_name) = match (protocol::phony_path(socket), socket.file_name()) {
        (Some(p), Some(name)) => {
            let mut n = std::ffi::OsString::from(protocol::PHONY_PREFIX);
            n.push(name);
            (p, n)
        }
        _ => {
            return Err(Error::InvalidListener {
                value: socket.display().to_string(),
                reason: "the socket path has no file name".to_owned(),
            })
        }
    };
    remove_stale(socket)?;
    remove_stale(&phony)?;
    let listener = UnixListener::bind(&phony).map_err(err(&phony))?;
    let files = SocketFiles {
        socket: socket.to_owned(),
        phony: phony.clone(),
    };
    std::fs::set_permissions(&phony, std::fs::Permissions::from_mode(0o666))
        .map_err(err(&phony))?;
    std::os::unix::fs::symlink(&phony_name, socket).map_err(err(socket))?;
    Ok((listener, files))
}

struct Inner<S, T> {
    // A Mutex only to make `Inner` Sync without asking handlers to be Sync; it is held just
    // long enough to clone the service for one call.
    service: std::sync::Mutex<S>,
    config: Arc<Config>,
    logframe: Option<LogFrame>,
    payload: PhantomData<fn() -> T>,
}

async fn accept_loop<S, T>(
    listener: UnixListener,
    inner: Arc<Inner<S, T>>,
    shutdown: ShutdownFuture,
) where
    S: Service<FnEvent<T>> + Clone + Send + 'static,
    S::Response: IntoResponse + Send + 'static,
    S::Error: Display + Send + 'static,
    S::Future: Send + 'static,
    T: Payload,
{
    // Each connection task holds a clone of `alive`; when all are gone, `drained` yields None.
    let (alive, mut drained) = tokio::sync::mpsc::channel::<()>(1);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    // No timer is installed, so hyper enforces no read or write timeouts (as the contract
    // asks); keep-alive is on; no Date header (nobody reads it, and it costs a clock read).
    http.keep_alive(true)
        .header_read_timeout(None)
        .auto_date_header(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let inner = Arc::clone(&inner);
                    let svc = hyper::service::service_fn(move |req| {
                        let inner = Arc::clone(&inner);
                        async move { Ok::<_, Infallible>(handle(&inner, req).await) }
                    });
                    let conn = http.serve_connection(TokioIo::new(stream), svc);
                    let alive = alive.clone();
                    let mut stop = stop_rx.clone();
                    tokio::spawn(async move {
                        tokio::pin!(conn);
                        let result = tokio::select! {
                            r = conn.as_mut() => r,
                            _ = stop.changed() => {
                                // Finishes the request in flight, then closes.
                                conn.as_mut().graceful_shutdown();
                                conn.await
                            }
                        };
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        drop(alive);
                    });
                }
                Err(e) => {
                    // EMFILE and friends are transient: never let them end the function.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    // Lets the call in flight finish (it is bounded by its deadline), closes idle connections.
    let _ = stop_tx.send(true);
    drop(alive);
    let _ = drained.recv().await;
}

struct LogFrame {
    name: String,
    header: HeaderName,
}

impl LogFrame {
    fn from_config(config: &Config) -> Option<Self> {
        let name = config.get(protocol::ENV_LOGFRAME_NAME)?;
        let header = config.get(protocol::ENV_LOGFRAME_HDR)?;
        if name.is_empty() {
            return None;
        }
        Some(Self {
            name: name.to_owned(),
            header: HeaderName::from_bytes(header.as_bytes()).ok()?,
        })
    }

    fn write(&self, headers: &HeaderMap) {
        let Some(value) = headers.get(&self.header).and_then(|v| v.to_str().ok()) else {
            return;
        };
        if value.is_empty() {
            return;
        }
        let line = format!("\n{}={}\n", self.name, value);
        // Write errors (a closed stdout) must not fail the call.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

async fn handle<S, T>(inner: &Inner<S, T>, req: hyper::Request<Incoming>) -> HttpResponse
where
    S: Service<FnEvent<T>> + Clone + Send + 'static,
    S::Response: IntoResponse + Send + 'static,
    S::Error: Display + Send + 'static,
    S::Future: Send + 'static,
    T: Payload,
{
    let (parts, body) = req.into_parts();
    let is_http = parts
        .headers
        .get(&protocol::FN_INTENT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"httprequest"));
    if parts.method != Method::POST || parts.uri.path() != protocol::CALL_PATH {
        return failure(
            StatusCode::BAD_GATEWAY,
            "InvalidRequest",
            "the FDK serves only POST /call",
        );
    }
    if let Some(frame) = &inner.logframe {
        frame.write(&parts.headers);
    }
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        let msg = format!("the request body is larger than {MAX_BODY_BYTES} bytes");
        let r = Response::error(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", &msg);
        to_http(r, is_http)
    };
    let body = match read_body(body, declared).await {
        Ok(body) => body,
        Err(BodyFailure::TooLarge) => return too_large(),
        Err(BodyFailure::Read(e)) => {
            tracing::debug!(error = %e, "reading the request body failed");
            let msg = "the request body could not be read";
            return failure(StatusCode::BAD_GATEWAY, "InvalidRequest", msg);
        }
    };

    let now = SystemTime::now();
    let context = CallContext::from_call(parts.headers, Arc::clone(&inner.config), now);
    let remaining = context
        .deadline
        .duration_since(now)
        .unwrap_or(Duration::ZERO);
    let deadline = tokio::time::Instant::now() + remaining;
    let span = tracing::info_span!("fn_call", call_id = %context.call_id);

    let payload = match T::from_body(body) {
        Ok(p) => p,
        Err(e) => {
            let _g = span.enter();
            tracing::warn!(error = %e, "undecodable payload");
            return to_http(e.response(), is_http);
        }
    };
    let event = FnEvent::new(context, payload);
    let svc = inner
        .service
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    // NOTE: the handler is polled inline (no task spawn: that costs a wake-up per call); a
    // panic is caught at each poll, and dropping the future (deadline, or the agent hanging
    // up) cancels it.
    let mut call = CatchUnwind(Box::pin(svc.oneshot(event)));
    let outcome = async move {
        // Fast path: a handler that finishes on its first poll needs no deadline timer (arming
        // one costs a timer-wheel entry and an hrtimer in epoll_wait on every call).
        let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut call).poll(cx))).await;
        let result = match first {
            Poll::Ready(done) => Ok(done),
            Poll::Pending => tokio::time::timeout_at(deadline, call).await,
        };
        match result {
            Ok(Ok(Ok(response))) => to_http(response.into_response(), is_http),
            Ok(Ok(Err(e))) => {
                let message = e.to_string();
                tracing::error!(error = %message, "handler failed");
                failure(StatusCode::BAD_GATEWAY, "FunctionError", &message)
            }
            Ok(Err(panic)) => {
                let message = panic_message(panic.as_ref());
                tracing::error!(panic = %message, "handler panicked");
                failure(
                    StatusCode::BAD_GATEWAY,
                    "FunctionError",
                    &format!("the handler panicked: {message}"),
                )
            }
            Err(_) => {
                tracing::error!("handler cancelled at Fn-Deadline");
                failure(
                    StatusCode::GATEWAY_TIMEOUT,
                    "FunctionTimeout",
                    "the function did not finish before Fn-Deadline",
                )
            }
        }
    }
    .instrument(span);
    outcome.await
}

/// Polls a future, turning a panic during any poll into `Err(payload)`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.get_mut().0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// How much of an oversized body is read and discarded so that the agent, still writing it,
/// receives the refusal and the connection stays usable. Beyond this, the connection closes.
const DRAIN_LIMIT: u64 = 4 * MAX_BODY_BYTES as u64;

enum BodyFailure {
    TooLarge,
    Read(hyper::Error),
}

/// Reads the whole body if it is at most [`MAX_BODY_BYTES`]; otherwise drains it (up to
/// [`DRAIN_LIMIT`]) and reports it too large.
async fn read_body(mut body: Incoming, declared: Option<u64>) -> Result<Bytes, BodyFailure> {
    let limit = MAX_BODY_BYTES as u64;
    let mut too_large = declared.is_some_and(|n| n > limit);
    if too_large && declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(BodyFailure::TooLarge);
    }
    let capacity = declared.filter(|n| *n <= limit).unwrap_or(0);
    let mut buf = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0));
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyFailure::Read)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limit {
            too_large = true;
            if total > DRAIN_LIMIT {
                break;
            }
        }
        if !too_large {
            buf.extend_from_slice(&data);
        }
    }
    if too_large {
        Err(BodyFailure::TooLarge)
    } else {
        Ok(buf.freeze())
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-string panic payload)".to_owned()
    }
}

const FDK_VERSION: HeaderValue = HeaderValue::from_static(protocol::FDK_VERSION);
const FDK_RUNTIME: HeaderValue = HeaderValue::from_static(protocol::FDK_RUNTIME);

/// An outer failure (502/504) with an OCI-style JSON body, for every intent.
fn failure(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let r = Response::error(status, code, message);
    finish(status, r.headers, r.body)
}

/// Maps a handler's response onto the outer response (section A):
/// - `httprequest`: outer 200, `Fn-Http-Status`, headers re-prefixed `Fn-Http-H-` except
///   `Content-Type` and already-prefixed ones;
/// - otherwise: headers as they are; status < 400 → 200, 504 → 504, other ≥ 400 → 502.
pub(crate) fn to_http(response: Response, is_http: bool) -> HttpResponse {
    let Response {
        status,
        headers,
        body,
    } = response;
    let mut out = HeaderMap::with_capacity(headers.len() + 4);
    let mut name = None;
    for (n, value) in headers {
        // `HeaderMap::into_iter` yields the name only for the first of repeated values.
        if let Some(n) = n {
            name = Some(n);
        }
        let Some(n) = &name else { continue };
        if protocol::is_hop_by_hop(n) || is_reserved(n) {
            continue;
        }
        if is_http && *n != CONTENT_TYPE && protocol::unprefixed(n).is_none() {
            if let Some(p) = protocol::prefixed(n) {
                out.append(p, value);
            }
        } else {
            out.append(n.clone(), value);
        }
    }
    let outer = if is_http {
        out.insert(
            protocol::FN_HTTP_STATUS.clone(),
            HeaderValue::from(status.as_u16()),
        );
        StatusCode::OK
    } else if status == StatusCode::GATEWAY_TIMEOUT {
        status
    } else if status.as_u16() >= 400 {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    finish(outer, out, body)
}

/// Headers the FDK itself owns on the outer response.
fn is_reserved(name: &HeaderName) -> bool {
    *name == protocol::FN_HTTP_STATUS
        || *name == protocol::FN_FDK_VERSION
        || *name == protocol::FN_FDK_RUNTIME
}

fn finish(status: StatusCode, mut headers: HeaderMap, body: Bytes) -> HttpResponse {
    headers.insert(protocol::FN_FDK_VERSION.clone(), FDK_VERSION);
    headers.insert(protocol::FN_FDK_RUNTIME.clone(), FDK_RUNTIME);
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn resp() -> Response {
        Response::new("b")
            .with_status(StatusCode::CREATED)
            .with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain"))
            .with_header(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("1"),
            )
            .with_header(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("2"),
            )
            .with_header(
                HeaderName::from_static("fn-http-h-x-pre"),
                HeaderValue::from_static("p"),
            )
            .with_header(
                HeaderName::from_static("transfer-encoding"),
                HeaderValue::from_static("chunked"),
            )
    }

    #[test]
    fn http_intent_mapping() {
        let r = to_http(resp(), true);
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert_eq!(h["fn-http-status"], "201");
        assert_eq!(h["content-type"], "text/plain");
        let a: Vec<_> = h.get_all("fn-http-h-x-a").iter().collect();
        assert_eq!(a, ["1", "2"]);
        assert_eq!(h["fn-http-h-x-pre"], "p");
        assert!(h.get("x-a").is_none());
        assert!(h.get("transfer-encoding").is_none());
        assert!(h.get("fn-http-h-transfer-encoding").is_none());
        assert_eq!(h["fn-fdk-version"], protocol::FDK_VERSION);
        assert!(h["fn-fdk-runtime"].to_str().unwrap().starts_with("rust/1."));
    }

    #[test]
    fn plain_intent_mapping() {
        let r = to_http(resp(), false);
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("fn-http-status").is_none());
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        for (status, outer) in [
            (200, 200),
            (302, 200),
            (400, 502),
            (500, 502),
            (502, 502),
            (504, 504),
        ] {
            let r = Response::new("").with_status(StatusCode::from_u16(status).unwrap());
            assert_eq!(to_http(r, false).status(), outer, "{status}");
        }
        for status in [200, 404, 500, 504] {
            let r = Response::new("").with_status(StatusCode::from_u16(status).unwrap());
            let out = to_http(r, true);
            assert_eq!(out.status(), 200);
            assert_eq!(out.headers()["fn-http-status"], status.to_string().as_str());
        }
    }

    #[test]
    fn panic_messages() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("x")), "x");
        assert_eq!(panic_message(&3_u8), "(a non-string panic payload)");
    }
}
