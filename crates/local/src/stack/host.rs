//! The function host: serves each function in-process through `fdk` on Unix sockets in the
//! data directory (`DATA/fn/<name>-<i>.sock`, one or more instances each), and calls them as
//! the Fn agent does: one keep-alive connection per instance, one call at a time
//! ([`fdk::agent::Invoker`]).

use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fdk::agent::Invoker;
use fdk::{FnEvent, IntoResponse, Payload, Service};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::hosts_seen::HostsSeen;
use super::routes_seen::RoutesSeen;

/// A boxed future returned by a [`ServeFn`].
pub type ServeFuture = Pin<Box<dyn Future<Output = Result<(), fdk::Error>> + Send>>;

/// Serves one function instance on a socket path with a configuration until the token is
/// cancelled (then the call in flight finishes and the socket files are removed).
pub type ServeFn =
    Arc<dyn Fn(PathBuf, fdk::Config, CancellationToken) -> ServeFuture + Send + Sync>;

/// A [`ServeFn`] that builds each instance's handler from that instance's configuration with
/// `make` (as a function container reads its configuration when it starts), then serves it:
/// `fdk::Runtime::new(make(&config)).with_config(config).with_shutdown(..).serve(path)`.
pub fn serve_fn<M, S, T>(make: M) -> ServeFn
where
    M: Fn(&fdk::Config) -> S + Send + Sync + 'static,
    S: Service<FnEvent<T>> + Clone + Send + Sync + 'static,
    S::Response: IntoResponse + Send + 'static,
    S::Error: Display + Send + 'static,
    S::Future: Send + 'static,
    T: Payload + 'static,
{
    Arc::new(move |path, config, stop| {
        let runtime = fdk::Runtime::new(make(&config))
            .with_config(config)
            .with_shutdown(stop.cancelled_owned());
        Box::pin(runtime.serve(path))
    })
}

/// Why a call to a function failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The pool is shut down.
    #[error("the function host is shut down")]
    Closed,
    /// The socket did not appear in time.
    #[error("function socket {0} did not appear within 5 s")]
    NotListening(PathBuf),
    /// Creating the socket directory, or making it or a socket owner-only, failed.
    #[error("setting up {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The call failed (transport, timeout).
    #[error(transparent)]
    Fdk(#[from] fdk::Error),
}

/// How long a call may run (`Fn-Deadline`); OCI's default function timeout.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// The instances of one function and the connections to them.
pub struct Pool {
    name: String,
    slots: Vec<tokio::sync::Mutex<Option<Invoker>>>,
    paths: Vec<PathBuf>,
    permits: tokio::sync::Semaphore,
    next: AtomicUsize,
    calls: AtomicU64,
    /// The target hosts' health the function's answers report.
    hosts: HostsSeen,
    /// The per-route counts the function's answers report.
    routes: RoutesSeen,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("instances", &self.paths.len())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of instances.
    pub fn instances(&self) -> usize {
        self.paths.len()
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The target hosts' health as the function's answers last reported it.
    pub fn hosts(&self) -> Vec<datasync_core::deliver::HostHealth> {
        self.hosts.list()
    }

    /// The per-route counts the function's answers reported.
    pub fn routes(&self) -> Vec<super::status::RouteCounts> {
        self.routes.list()
    }

    /// Sends `request` (built with `fdk::agent::invoke_request` / `gateway_request`) to a free
    /// instance, waiting for one when all are busy.
    ///
    /// # Errors
    /// The invoker's transport or timeout error.
    pub async fn call(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HostError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HostError::Closed)?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut guard = None;
        for i in 0..n {
            if let Ok(g) = self.slots[(start + i) % n].try_lock() {
                guard = Some((g, (start + i) % n));
                break;
            }
        }
        let (mut slot, index) = match guard {
            Some(g) => g,
            None => (self.slots[start % n].lock().await, start % n),
        };
        if slot.is_none() {
            *slot = Some(Invoker::connect(&self.paths[index]).await?);
        }
        let invoker = slot.as_mut().ok_or(HostError::Closed)?;
        let response = invoker
            .call(request, CALL_DEADLINE + Duration::from_secs(1))
            .await?;
        if response.status() == http::StatusCode::OK {
            self.hosts.record(response.body());
            self.routes.record(response.body());
        }
        Ok(response)
    }
}

/// Makes `path` (a symbolic link is followed) readable and writable by its owner alone
/// (`0700` for a directory).
fn owner_only(path: &Path) -> Result<(), HostError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = if path.is_dir() { 0o700 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        HostError::Dir {
            path: path.to_owned(),
            source,
        }
    })
}

/// A deadline for a call starting now.
pub fn deadline() -> SystemTime {
    SystemTime::now() + CALL_DEADLINE
}

/// Serving function instances.
pub struct Host {
    stop: CancellationToken,
    tasks: JoinSet<(String, Result<(), fdk::Error>)>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").finish_non_exhaustive()
    }
}

impl Host {
    /// A host with nothing running yet.
    pub fn new() -> Self {
        Self {
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Starts `instances` instances of `name` on `dir/<name>-<i>.sock` with `config`, waits
    /// until each socket is there, and returns the pool to call them.
    ///
    /// # Errors
    /// [`HostError::NotListening`] when a socket does not appear within 5 s, or the first
    /// connection's error.
    pub async fn start(
        &mut self,
        name: &str,
        serve: &ServeFn,
        instances: usize,
        dir: &Path,
        config: &fdk::Config,
    ) -> Result<Arc<Pool>, HostError> {
        std::fs::create_dir_all(dir).map_err(|source| HostError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        owner_only(dir)?;
        let mut paths = Vec::with_capacity(instances);
        for i in 0..instances {
            let path = dir.join(format!("{name}-{i}.sock"));
            // A stack killed with -9 leaves its socket files; the agent gives each container
            // a fresh directory, here the stale files are removed so the wait below sees the
            // new instance's socket, not the old one.
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(dir.join(format!("phony{name}-{i}.sock")));
            let fut = serve(path.clone(), config.clone(), self.stop.child_token());
            let label = format!("{name}-{i}");
            self.tasks.spawn(async move { (label, fut.await) });
            paths.push(path);
        }
        let mut slots = Vec::with_capacity(instances);
        for path in &paths {
            let mut waited = Duration::ZERO;
            while !path.exists() && waited < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                waited += Duration::from_millis(10);
            }
            if !path.exists() {
                return Err(HostError::NotListening(path.clone()));
            }
            // The FDK makes its socket 0666, as the Fn agent may run as another user; here the
            // caller is this process, and a socket trusts the caller identity it is sent, so
            // it is the owner's alone (the folder is too).
            owner_only(path)?;
            slots.push(tokio::sync::Mutex::new(Some(Invoker::connect(path).await?)));
        }
        Ok(Arc::new(Pool {
            name: name.to_owned(),
            slots,
            paths,
            permits: tokio::sync::Semaphore::new(instances),
            next: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            hosts: HostsSeen::default(),
            routes: RoutesSeen::default(),
        }))
    }

    /// Signals every instance to stop (calls in flight finish) and waits for them.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok((label, Err(e))) => {
                    tracing::warn!(function = %label, error = %e, "function instance ended with an error")
                }
                Ok((label, Ok(()))) => {
                    tracing::debug!(function = %label, "function instance stopped")
                }
                Err(e) => tracing::warn!(error = %e, "function instance task failed"),
            }
        }
    }
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}
