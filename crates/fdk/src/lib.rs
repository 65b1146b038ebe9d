//! The Fn FDK for Rust: serve a function over the Fn `http-stream` contract, as OCI Functions
//! and open-source Fn run it.
//!
//! A function is a tower [`Service`] from [`FnEvent`] (a [`Context`] plus the
//! request body) to anything [`IntoResponse`]. The usual `main`:
//!
//! ```no_run
//! use fdk::{service_fn, FnEvent, Response};
//!
//! async fn handler(event: FnEvent) -> Result<Response, std::io::Error> {
//!     let (ctx, body) = event.into_parts();
//!     tracing::info!(call_id = %ctx.call_id, bytes = body.len(), "called");
//!     Ok(Response::new(body))
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() {
//!     fdk::run(service_fn(handler)).await;
//! }
//! ```
//!
//! What the FDK guarantees (`contracts/oci-platform.md` section A):
//!
//! - the socket dance: `phony<name>` bound with mode 0666, then a relative symlink `<name>`;
//!   both removed on exit; SIGTERM/SIGINT let the call in flight finish, then `run` returns;
//! - the outer status is only ever 200, 502 or 504: a handler `Err` or panic gives 502 with
//!   `{"code":"FunctionError","message":…}` and the process keeps serving; a handler still
//!   running at `Fn-Deadline` (30 s when absent) is cancelled and gives 504;
//! - for `Fn-Intent: httprequest`, the handler's status travels in `Fn-Http-Status` and its
//!   headers as `Fn-Http-H-<name>` (`Content-Type` plain); [`Context::http`] holds the
//!   client's method, URL, query and headers with the prefix removed;
//! - bodies up to 6 MB; every response carries `Fn-Fdk-Version` and `Fn-Fdk-Runtime`;
//! - `FN_LOGFRAME_NAME`/`FN_LOGFRAME_HDR` framing on stdout and stderr.
//!
//! [`protocol`] holds the shared constants and rules, and [`agent`] the calling side (used by
//! the local stack's function host and by the tests).

#![warn(missing_docs)]

pub mod agent;
mod context;
mod error;
pub mod logging;
pub mod protocol;
mod response;
mod runtime;

use std::fmt::Display;
use std::path::Path;

pub use bytes::Bytes;
pub use context::{Config, Context, FnEvent, HttpRequest, Intent, Json, Payload, PayloadError};
pub use error::Error;
pub use response::{IntoResponse, Response};
pub use runtime::Runtime;
pub use tower::{service_fn, Service};

/// Serves `handler` on the socket named by `FN_LISTENER` until SIGTERM or SIGINT; returns
/// once the call in flight has finished and the socket files are removed.
///
/// The function configuration ([`Context::config`]) is the process environment, captured
/// once here.
///
/// ```no_run
/// use fdk::{service_fn, FnEvent, Json, Response};
///
/// #[derive(serde::Deserialize)]
/// struct Order { id: u64 }
///
/// async fn handler(event: FnEvent<Json<Order>>) -> Result<Response, fdk::Error> {
///     let Json(order) = event.payload;
///     Response::json(&serde_json::json!({ "id": order.id, "ok": true }))
/// }
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     fdk::run(service_fn(handler)).await;
/// }
/// ```
///
/// # Exits
///
/// On a missing or invalid `FN_LISTENER`, an `FN_FORMAT` other than empty or `http-stream`, or
/// a socket that cannot be set up, prints the reason to stderr and exits with status 1.
/// [`Runtime::try_run`] returns these errors instead.
pub async fn run<S, T>(handler: S)
where
    S: Service<FnEvent<T>> + Clone + Send + 'static,
    S::Response: IntoResponse + Send + 'static,
    S::Error: Display + Send + 'static,
    S::Future: Send + 'static,
    T: Payload,
{
    Runtime::new(handler).run().await;
}

/// Serves `handler` on `socket` (the path the agent connects to; `phony<name>` is bound
/// beside it) until SIGTERM or SIGINT, for hosts that choose the socket path themselves.
/// The configuration is empty: pass one with [`Runtime::with_config`], and a shutdown signal
/// with [`Runtime::with_shutdown`].
///
/// ```no_run
/// use fdk::{service_fn, FnEvent};
///
/// # async fn example() -> Result<(), fdk::Error> {
/// let echo = service_fn(|event: FnEvent| async move {
///     Ok::<_, std::convert::Infallible>(event.payload)
/// });
/// fdk::serve("/tmp/datasync/populate/lsnr.sock", echo).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// [`Error::InvalidListener`] if `socket` breaks the path rules (absolute, at most 107
/// bytes for the bound path), [`Error::Socket`] if the files cannot be set up,
/// [`Error::Signal`] if the signal handlers cannot be installed.
pub async fn serve<S, T>(socket: impl AsRef<Path>, handler: S) -> Result<(), Error>
where
    S: Service<FnEvent<T>> + Clone + Send + 'static,
    S::Response: IntoResponse + Send + 'static,
    S::Error: Display + Send + 'static,
    S::Future: Send + 'static,
    T: Payload,
{
    Runtime::new(handler).serve(socket).await
}
