//! One call: the log frame, the body, the context, the handler under its deadline with panics
//! caught, and the mapping of what it answered.

use std::fmt::Display;
use std::future::Future;
use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, Method, StatusCode};
use hyper::body::Incoming;
use tower::{Service, ServiceExt as _};
use tracing::Instrument as _;

use super::body::{read_body, BodyFailure};
use super::outer::{failure, to_http};
use super::{HttpResponse, Inner};
use crate::context::{Config, Context as CallContext, FnEvent, Payload};
use crate::protocol::{self, MAX_BODY_BYTES};
use crate::response::{IntoResponse, Response};

/// The agent's log frame: a line naming the call, written before it to stdout and stderr.
pub(super) struct LogFrame {
    name: String,
    header: HeaderName,
}

impl LogFrame {
    pub(super) fn from_config(config: &Config) -> Option<Self> {
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

pub(super) async fn handle<S, T>(inner: &Inner<S, T>, req: hyper::Request<Incoming>) -> HttpResponse
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
            // A malformed body (bad chunked encoding) or one cut short: the request is at
            // fault, not the function, so the caller sees 400 rather than a function failure.
            tracing::debug!(error = %e, "reading the request body failed");
            let msg = "the request body could not be read: malformed chunked encoding, or it \
                       ended before its declared length";
            let r = Response::error(StatusCode::BAD_REQUEST, "InvalidRequest", msg);
            return to_http(r, is_http);
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
    run(svc, event, deadline, is_http).instrument(span).await
}

/// Calls the handler until `deadline`, and maps what it answered, its error, its panic or its
/// running out of time onto the outer response.
async fn run<S, T>(
    svc: S,
    event: FnEvent<T>,
    deadline: tokio::time::Instant,
    is_http: bool,
) -> HttpResponse
where
    S: Service<FnEvent<T>> + Send + 'static,
    S::Response: IntoResponse + Send + 'static,
    S::Error: Display + Send + 'static,
    S::Future: Send + 'static,
    T: Payload,
{
    // NOTE: the handler is polled inline (no task spawn: that costs a wake-up per call); a
    // panic is caught at each poll, and dropping the future (deadline, or the agent hanging
    // up) cancels it.
    let mut call = CatchUnwind(Box::pin(svc.oneshot(event)));
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

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-string panic payload)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("x")), "x");
        assert_eq!(panic_message(&3_u8), "(a non-string panic payload)");
    }
}
