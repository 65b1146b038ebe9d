//! A scripted target application: an HTTP/1.1 server on a real socket whose answers are
//! scripted per path (status sequences, `Retry-After` and other headers, delays, connection
//! resets) and which records every request (method, path, headers, body).
//!
//! Written on raw TCP so a test controls what goes on the wire: a reset is a real RST
//! (`SO_LINGER` 0), a delay holds the answer back. Tests of process and retry use it, and the
//! local stack's demo target builds on it.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use datasync_local::target::{Reply, ScriptedTarget};
//!
//! let target = ScriptedTarget::start().await?;
//! target.script("/orders", [Reply::status(503).retry_after("7"), Reply::reset(), Reply::status(201)]);
//! target.set_default(Reply::status(200).delay(Duration::from_millis(5)));
//! let url = target.url("/orders");
//! // ... deliver to `url` ...
//! for request in target.requests() {
//!     println!("{} {} {:?}", request.method, request.path, request.header("idempotency-key"));
//! }
//! # Ok(()) }
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long [`ScriptedTarget::hanging`] holds an answer back: longer than any test or bench.
const HANG: Duration = Duration::from_secs(3600);

/// The largest request head or body the target reads (larger requests are answered 413).
const MAX_REQUEST: usize = 8 * 1024 * 1024;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: Bytes,
    /// How long to wait before answering (after the request was read).
    pub delay: Duration,
    /// Reset the connection (after `delay`) instead of answering.
    pub reset: bool,
}

impl Reply {
    /// An answer with `status` and an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            delay: Duration::ZERO,
            reset: false,
        }
    }

    /// A connection reset instead of an answer.
    pub fn reset() -> Self {
        Self {
            reset: true,
            ..Self::status(0)
        }
    }

    /// Adds a `Retry-After` header.
    #[must_use]
    pub fn retry_after(self, value: &str) -> Self {
        self.header("Retry-After", value)
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Waits `delay` before answering.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the target received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query, if any.
    pub query: Option<String>,
    /// The headers, names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// When it was read.
    pub at: Instant,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Debug)]
struct State {
    scripts: HashMap<String, VecDeque<Reply>>,
    default: Reply,
    requests: Vec<Recorded>,
}

/// The scripted target. Stops serving when dropped.
#[derive(Debug)]
pub struct ScriptedTarget {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: CancellationToken,
}

impl Drop for ScriptedTarget {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl ScriptedTarget {
    /// Starts on `127.0.0.1:0`, answering 200 to everything until scripted.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::bind("127.0.0.1:0").await
    }

    /// Starts on `127.0.0.1:0` as a host that hangs: it reads and records every request and
    /// answers none (for an hour), as a target that accepts connections and never answers
    /// does. [`ScriptedTarget::set_default`] makes it answer again (calls already waiting stay
    /// unanswered). `datasync bench --isolation` and the isolation tests use it.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn hanging() -> std::io::Result<Self> {
        let target = Self::start().await?;
        target.set_default(Reply::status(200).delay(HANG));
        Ok(target)
    }

    /// Starts on `addr`.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn bind(addr: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            scripts: HashMap::new(),
            default: Reply::status(200),
            requests: Vec::new(),
        }));
        let shutdown = CancellationToken::new();
        let (st, stop) = (Arc::clone(&state), shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let (st, stop) = (Arc::clone(&st), stop.clone());
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = stop.cancelled() => {}
                                _ = serve_connection(stream, st) => {}
                            }
                        });
                    }
                }
            }
        });
        Ok(Self {
            addr,
            state,
            shutdown,
        })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Appends `replies` to `path`'s script; each request to `path` takes the next one, and
    /// once the script is used up the default answers.
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        if let Ok(mut s) = self.state.lock() {
            s.scripts
                .entry(path.to_owned())
                .or_default()
                .extend(replies);
        }
    }

    /// Sets the answer used when a path has no script left (initially 200).
    pub fn set_default(&self, reply: Reply) {
        if let Ok(mut s) = self.state.lock() {
            s.default = reply;
        }
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }

    /// The requests received for `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.requests.clear();
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// A request's head: the request line and the headers the server acts on.
struct Head {
    method: String,
    target: String,
    /// Every header, names lower-cased.
    headers: Vec<(String, String)>,
    /// `content-length` (0 when absent or unreadable).
    length: usize,
    /// `connection: close`.
    close: bool,
}

impl Head {
    /// Parses the head `raw` (without its final blank line).
    fn parse(raw: &[u8]) -> Self {
        let head = String::from_utf8_lossy(raw);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or("/").to_owned();
        let mut headers = Vec::new();
        let mut length = 0usize;
        let mut close = false;
        for line in lines {
            if let Some((n, v)) = line.split_once(':') {
                let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_owned());
                if n == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                if n == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
                headers.push((n, v));
            }
        }
        Self {
            method,
            target,
            headers,
            length,
            close,
        }
    }
}

/// The status line and headers answering with `reply`.
fn response_head(reply: &Reply, close: bool) -> String {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    for (n, v) in &reply.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if close {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    out
}

async fn serve_connection(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        // Read a head.
        let head_end = loop {
            if let Some(end) = find_head_end(&buf) {
                break end;
            }
            if buf.len() > MAX_REQUEST {
                return;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let Head {
            method,
            target,
            headers,
            length,
            close,
        } = Head::parse(&buf[..head_end]);
        if length > MAX_REQUEST {
            let _ = stream
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            return;
        }
        let body_start = head_end + 4;
        while buf.len() < body_start + length {
            let mut chunk = vec![0u8; (body_start + length - buf.len()).min(64 * 1024)];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = Bytes::copy_from_slice(&buf[body_start..body_start + length]);
        buf.drain(..body_start + length);
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target, None),
        };
        let reply = {
            let Ok(mut s) = state.lock() else { return };
            s.requests.push(Recorded {
                method,
                path: path.clone(),
                query,
                headers,
                body,
                at: Instant::now(),
            });
            let next = s.scripts.get_mut(&path).and_then(VecDeque::pop_front);
            next.unwrap_or_else(|| s.default.clone())
        };
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        if reply.reset {
            // SO_LINGER 0 makes the close an RST. Tokio deprecates it because a non-zero linger
            // blocks on drop; a zero linger does not block.
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            return;
        }
        let out = response_head(&reply, close);
        if stream.write_all(out.as_bytes()).await.is_err()
            || stream.write_all(&reply.body).await.is_err()
            || close
        {
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Status")
}
