//! A recording OCI test server on real sockets (127.0.0.1:0).
//!
//! Every request is checked with `signer::verify` against the public keys registered by keyId
//! (PutMessages and PutObject are body-exempt, as OCI treats them); a request that fails is
//! answered 401 `NotAuthenticated` with an OCI error body, exactly as the service would. Every
//! request is recorded (method, target, headers, body, peer, verification result). Answers come
//! from a per-(method, path) script queue first, then from a route handler, else 404
//! `NotAuthorizedOrNotFound`. The server task is aborted on drop.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use datasync_core::oci::signer::{self, ReceivedRequest};
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rsa::RsaPublicKey;
use serde_json::Value;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query exactly as received.
    pub target: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
    /// The keyId when the signature verified, else the verifier's complaint.
    pub verified: Result<String, String>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The decoded query pairs, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        url::Url::parse(&format!("http://x{}", self.target))
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    pub fn query_value(&self, name: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The `headers="..."` list of the Authorization header.
    pub fn signed_headers(&self) -> String {
        signer::parse_authorization(self.header("authorization").unwrap())
            .unwrap()
            .headers
            .join(" ")
    }

    pub fn key_id(&self) -> String {
        signer::parse_authorization(self.header("authorization").unwrap())
            .unwrap()
            .key_id
    }

    /// Verifies again, as the server did, with a changed view of the request.
    pub fn reverify(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
        key: &RsaPublicKey,
    ) -> Result<String, signer::VerifyError> {
        signer::verify(
            &ReceivedRequest {
                method,
                target,
                headers: &self.headers,
                body,
                body_exempt: body_exempt(&self.method, &self.path),
            },
            SystemTime::now(),
            |_| Some(key.clone()),
        )
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Reply {
    pub fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(serde_json::to_vec(value).unwrap()),
        }
    }

    pub fn ok(value: Value) -> Self {
        Self::json(200, &value)
    }

    /// An OCI error: `{"code","message"}` plus `opc-request-id`.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(
            status,
            &serde_json::json!({"code": code, "message": message}),
        )
        .header("opc-request-id", &format!("req-{status}-{code}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn raw(status: u16, body: &'static [u8]) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::from_static(body),
        }
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

#[derive(Default)]
struct State {
    keys: Mutex<HashMap<String, RsaPublicKey>>,
    requests: Mutex<Vec<Recorded>>,
    scripts: Mutex<HashMap<(Method, String), VecDeque<Reply>>>,
    routes: Mutex<HashMap<(Method, String), Handler>>,
    tamper_next_body: AtomicBool,
}

/// Whether OCI signs this operation without its body: Streaming PutMessages and Object
/// Storage PutObject (contracts section E). Notifications' `/messages` is not exempt.
pub fn body_exempt(method: &Method, path: &str) -> bool {
    (method == Method::POST
        && path.starts_with("/20180418/streams/")
        && path.ends_with("/messages"))
        || (method == Method::PUT && path.starts_with("/n/") && path.contains("/o/"))
}

pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&state, req, peer).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_key(&self, key_id: &str, key: &RsaPublicKey) {
        self.state
            .keys
            .lock()
            .unwrap()
            .insert(key_id.to_owned(), key.clone());
    }

    pub fn remove_key(&self, key_id: &str) {
        self.state.keys.lock().unwrap().remove(key_id);
    }

    /// Queues answers for `method path`, used before any route handler.
    pub fn script(&self, method: Method, path: &str, replies: impl IntoIterator<Item = Reply>) {
        self.state
            .scripts
            .lock()
            .unwrap()
            .entry((method, path.to_owned()))
            .or_default()
            .extend(replies);
    }

    /// Answers `method path` (exact path, query ignored) with `handler` once its script is used up.
    pub fn route(
        &self,
        method: Method,
        path: &str,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) {
        self.state
            .routes
            .lock()
            .unwrap()
            .insert((method, path.to_owned()), Arc::new(handler));
    }

    /// The next request's body is changed by one byte before it is verified.
    pub fn tamper_next_body(&self) {
        self.state.tamper_next_body.store(true, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }
}

async fn handle(state: &State, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let mut body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if state.tamper_next_body.swap(false, Ordering::SeqCst) {
        let mut changed = body.to_vec();
        changed.push(b' ');
        body = Bytes::from(changed);
    }
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let verified = {
        let keys = state.keys.lock().unwrap();
        signer::verify(
            &ReceivedRequest {
                method: parts.method.as_str(),
                target: &target,
                headers: &parts.headers,
                body: &body,
                body_exempt: body_exempt(&parts.method, &path),
            },
            SystemTime::now(),
            |key_id| keys.get(key_id).cloned(),
        )
        .map_err(|e| e.to_string())
    };
    let recorded = Recorded {
        method: parts.method.clone(),
        target,
        path: path.clone(),
        headers: parts.headers,
        body,
        peer,
        verified: verified.clone(),
    };
    state.requests.lock().unwrap().push(recorded.clone());
    let reply = match verified {
        Err(why) => Reply::error(401, "NotAuthenticated", &why),
        Ok(_) => {
            let key = (parts.method, path);
            let scripted = state
                .scripts
                .lock()
                .unwrap()
                .get_mut(&key)
                .and_then(VecDeque::pop_front);
            match scripted {
                Some(reply) => reply,
                None => {
                    let handler = state.routes.lock().unwrap().get(&key).cloned();
                    match handler {
                        Some(handler) => handler(&recorded),
                        None => Reply::error(404, "NotAuthorizedOrNotFound", "no such route"),
                    }
                }
            }
        }
    };
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    response.body(Full::new(reply.body)).unwrap()
}

/// A PutMessages handler that stores every message: partition "0", consecutive offsets from
/// `first_offset` (counted across calls).
pub fn store_all(first_offset: i64) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let next = std::sync::atomic::AtomicI64::new(first_offset);
    move |r: &Recorded| {
        let n = r.json()["messages"].as_array().unwrap().len();
        let entries: Vec<Value> = (0..n)
            .map(|_| {
                let offset = next.fetch_add(1, Ordering::SeqCst);
                serde_json::json!({"partition": "0", "offset": offset, "timestamp": "2024-01-01T00:00:00.000Z"})
            })
            .collect();
        Reply::ok(serde_json::json!({"failures": 0, "entries": entries}))
    }
}
