//! The server side: the socket dance ([`socket`]), the HTTP/1.1 server (here), and the call
//! pipeline ([`call`]: log frame → body ([`body`]) → context → handler with deadline and panic
//! capture → response mapping ([`outer`])).

mod body;
mod call;
mod outer;
mod socket;

use call::{handle, LogFrame};
use socket::bind;

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::io::Write as _;
use std::marker::PhantomData;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tower::{Layer, Service};

use crate::context::{Config, FnEvent, Payload};
use crate::protocol::{self};
use crate::response::IntoResponse;
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

/// What every call of one server shares.
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
