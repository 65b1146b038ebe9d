//! Serving an axum router to clients that may be hostile, as the gateway does: a time limit on
//! each request's headers (which is also how long an idle keep-alive connection is kept), a
//! cap on open connections with a clear answer beyond it, and the process's descriptor limit
//! raised so the cap leaves room for the stack's own files.
//!
//! Beyond the cap a connection is accepted only to be answered `503 ServiceUnavailable` (an
//! OCI-style body, `Retry-After: 1`, `Connection: close`) and closed, rather than left in the
//! kernel's backlog: a client is told what happened instead of timing out, and the descriptors
//! this takes are bounded too ([`OVERFLOW_ANSWERS`]; past those the connection is closed at
//! once). A warning is logged at most every [`WARN_EVERY`], with the count refused.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Connections over the cap being answered 503 at once; beyond these, closed unanswered.
pub const OVERFLOW_ANSWERS: usize = 64;
/// How long answering one connection over the cap may take, writing and lingering.
const OVERFLOW_TIME: Duration = Duration::from_secs(1);
/// The most often the cap's warning is logged.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// Descriptors kept for the stack's own use (database, checkpoints, archive objects, function
/// sockets and their connections, the emulator's clients) when the cap is fitted to the
/// process's limit.
pub const RESERVED_FDS: u64 = 1024;
/// The smallest cap [`fit_cap`] gives.
pub const MIN_CAP: usize = 16;

/// The limits [`serve`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request's headers, counted from when the
    /// connection opened or its previous answer was written (so also the keep-alive idle time).
    pub header_timeout: Duration,
    /// The most connections served at once.
    pub max_connections: usize,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (a client flood should meet the cap, not
/// the process's descriptor limit), and returns the soft limit now in force (`None`:
/// unlimited).
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (limit.current, limit.maximum) {
        if cur < max {
            let raised = rustix::process::Rlimit {
                current: Some(max),
                maximum: Some(max),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => limit.current = Some(max),
                Err(e) => tracing::warn!(error = %e, "raising the open-file limit failed"),
            }
        }
    }
    limit.current
}

/// The connection cap to use under a soft descriptor limit of `soft`: `wanted`, lowered to
/// leave [`RESERVED_FDS`] for the stack (but not below [`MIN_CAP`] for that); `None` is no
/// limit.
pub fn fit_cap(wanted: usize, soft: Option<u64>) -> usize {
    let Some(soft) = soft else { return wanted };
    let room = usize::try_from(soft.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
    wanted.min(room.max(MIN_CAP))
}

/// Serves `app` on `listener` within `limits` until `shutdown` is cancelled; then stops
/// accepting, lets requests in flight finish and closes idle connections. Handlers see the
/// client's address (`ConnectInfo<SocketAddr>`).
///
/// # Errors
/// Never today (accept errors such as `EMFILE` are logged and retried); kept for the
/// listener's failures.
pub async fn serve(
    app: axum::Router,
    listener: TcpListener,
    shutdown: CancellationToken,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_ANSWERS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tracker = tokio_util::task::TaskTracker::new();
    let mut refused = Refused::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends are transient: never let them end the gateway.
                    tracing::warn!(error = %e, "gateway: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            refused.note(limits.max_connections);
            if let Ok(slot) = Arc::clone(&overflow).try_acquire_owned() {
                tokio::spawn(async move {
                    answer_over_cap(stream).await;
                    drop(slot);
                });
            }
            continue;
        };
        // No Nagle: an answer written in two parts would otherwise wait for the client's
        // delayed ACK.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let answer = app.oneshot(req.map(axum::body::Body::new)).await;
                Ok::<_, Infallible>(answer.unwrap_or_else(|never| match never {}))
            }
        });
        let conn = http.serve_connection(TokioIo::new(stream), svc);
        let mut stop = stop_rx.clone();
        tracker.spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "gateway: connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Counts connections refused over the cap, for a throttled warning.
#[derive(Default)]
struct Refused {
    since_warning: u64,
    warned: Option<Instant>,
}

impl Refused {
    fn note(&mut self, cap: usize) {
        self.since_warning += 1;
        if self.warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                refused = self.since_warning,
                max_connections = cap,
                "gateway: connection cap reached; new connections are answered 503 \
                 (gateway.max_connections)"
            );
            self.since_warning = 0;
            self.warned = Some(Instant::now());
        }
    }
}

/// The raw answer to a connection over the cap.
fn over_cap_answer() -> Vec<u8> {
    let body = r#"{"code":"ServiceUnavailable","message":"the gateway is serving its maximum number of connections; retry shortly"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Writes the 503, then reads and drops what the client sends until it closes (or
/// [`OVERFLOW_TIME`] passes), so the close does not reset the connection and lose the answer.
async fn answer_over_cap(mut stream: TcpStream) {
    let _ = tokio::time::timeout(OVERFLOW_TIME, async {
        stream.write_all(&over_cap_answer()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_stack() {
        assert_eq!(fit_cap(4096, None), 4096);
        assert_eq!(fit_cap(4096, Some(1_048_576)), 4096);
        assert_eq!(fit_cap(4096, Some(2048)), 1024);
        assert_eq!(fit_cap(4096, Some(1000)), MIN_CAP);
        assert_eq!(fit_cap(10, Some(1_048_576)), 10);
    }

    #[test]
    fn the_answer_over_the_cap_is_complete_http() {
        let text = String::from_utf8(over_cap_answer()).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(parsed["code"], "ServiceUnavailable");
    }
}
