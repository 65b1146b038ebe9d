//! The load generator of `datasync bench`: C clients, each on its own keep-alive HTTP/1.1
//! connection, POSTing one message at a time.
//!
//! It speaks HTTP/1.1 with hyper's connection API directly, with no pool, redirect or retry
//! layer, and writes each body into a template: its CPU is counted in the benchmark's "CPU per
//! message" (the stack and the load generator share the machine), so it should cost as little
//! as a wrk-style generator. Through reqwest and `serde_json::Value` bodies it used about a
//! tenth of the machine's CPU at 3,000 msg/s.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// How long one POST may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What one run of the load achieved.
pub struct Load {
    pub acked: u64,
    pub elapsed: Duration,
    /// Acknowledgement latencies in µs, sorted.
    pub latencies: Vec<u64>,
    /// Failed POSTs by cause (a status code, "timeout", "connection error").
    pub errors: BTreeMap<String, u64>,
}

/// How the load is offered.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub clients: u64,
    pub payload: u64,
    pub rate: Option<u64>,
    pub keys: u64,
    /// Put before every stream key, so that two loads offered at once use distinct keys.
    pub key_prefix: &'static str,
    /// Send `{"route","streamKey","data"}` naming this route instead of the sample's format.
    pub route: Option<&'static str>,
}

/// Where the load goes: straight to the demo target, or through the gateway.
#[derive(Debug, Clone)]
pub enum Route {
    /// `POST {target}/bench` with the bare benchmark payload.
    Direct,
    /// `POST {gateway}/stream/sync` with this source key, each message bound for
    /// `{target}/bench`.
    Gateway { url: String, key: String },
}

/// The parts of an `http://host:port/path` URL a connection needs.
#[derive(Debug, Clone)]
struct Endpoint {
    /// `host:port`, to connect to and for the `Host` header.
    authority: String,
    path: String,
}

impl Endpoint {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let u = url::Url::parse(url).map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        if u.scheme() != "http" {
            anyhow::bail!("{url}: the load generator speaks plain http only");
        }
        let host = u
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("{url}: no host"))?;
        let port = u.port_or_known_default().unwrap_or(80);
        Ok(Endpoint {
            authority: format!("{host}:{port}"),
            path: u.path().to_owned(),
        })
    }
}

/// Writes message `i`'s body into `out` (cleared first): the benchmark payload, `pad` long,
/// stamped with the send time, wrapped in a sync request when it goes through the gateway.
struct Bodies {
    gateway: bool,
    /// The target URL as a JSON string (quoted and escaped).
    target_json: String,
    pad: String,
    keys: u64,
    key_prefix: &'static str,
    /// The route the messages name (the route's form), or `None` (the sample's form).
    route: Option<&'static str>,
}

impl Bodies {
    fn write(&self, i: usize, sent_us: u64, out: &mut String) {
        out.clear();
        if let (true, Some(route)) = (self.gateway, self.route) {
            self.write_routed(route, i, sent_us, out);
            return;
        }
        if self.gateway {
            out.push_str("{\"streamKey\":\"");
            out.push_str(self.key_prefix);
            // Infallible: writing to a String.
            let _ = match self.keys {
                0 => write!(out, "m{i}"),
                k => write!(out, "k{}", i as u64 % k),
            };
            out.push_str("\",\"streamMessage\":{\"targetRestApi\":");
            out.push_str(&self.target_json);
            out.push_str(",\"targetRestApiOperation\":\"POST\",\"targetRestApiPayload\":");
        }
        let _ = write!(
            out,
            "{{\"benchSentUs\":{sent_us},\"pad\":\"{}\"}}",
            self.pad
        );
        if self.gateway {
            out.push_str("}}");
        }
    }
}

impl Bodies {
    /// The route's form: the data holds the benchmark payload's fields and a few the route's
    /// transform keeps or drops.
    fn write_routed(&self, route: &str, i: usize, sent_us: u64, out: &mut String) {
        out.push_str("{\"route\":\"");
        out.push_str(route);
        out.push_str("\",\"streamKey\":\"");
        let _ = match self.keys {
            0 => write!(out, "m{i}"),
            k => write!(out, "k{}", i as u64 % k),
        };
        let _ = write!(
            out,
            "\",\"data\":{{\"benchSentUs\":{sent_us},\"id\":{i},\"total\":12.5,\"junk\":true,\"pad\":\"{}\"}}}}",
            self.pad
        );
    }
}

async fn connect(authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // Drives the connection until it closes or the sender is dropped.
    tokio::spawn(connection);
    Ok(sender)
}

/// Why a POST failed: the status code, or "timeout", "connection error", "bad request".
struct Failed {
    what: String,
    /// Whether the connection can carry the next POST (it can after an error status, not
    /// after a transport error or a timeout, which leaves the exchange in flight).
    reusable: bool,
}

fn broken(what: &str) -> Failed {
    Failed {
        what: what.to_owned(),
        reusable: false,
    }
}

/// One POST on `sender`; the response body is read and dropped.
async fn post(
    sender: &mut SendRequest<Full<Bytes>>,
    endpoint: &Endpoint,
    key: Option<&str>,
    body: Bytes,
) -> Result<(), Failed> {
    let mut req = http::Request::post(endpoint.path.as_str())
        .header(http::header::HOST, endpoint.authority.as_str())
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let req = req
        .body(Full::new(body))
        .map_err(|_| broken("bad request"))?;
    let exchange = async {
        sender
            .ready()
            .await
            .map_err(|_| broken("connection error"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|_| broken("connection error"))?;
        let status = resp.status();
        resp.into_body()
            .collect()
            .await
            .map_err(|_| broken("connection error"))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Failed {
                what: status.as_u16().to_string(),
                reusable: true,
            })
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(broken("timeout")),
    }
}

/// Sends `n` messages with `shape.clients` clients along `route`, each bound for the demo
/// target at `target`.
pub async fn offer(route: Route, target: &str, n: u64, shape: Shape) -> anyhow::Result<Load> {
    let Shape {
        clients,
        payload,
        rate,
        keys,
        key_prefix,
        route: route_name,
    } = shape;
    let (url, key) = match &route {
        Route::Direct => (format!("{target}/bench"), None),
        Route::Gateway { url, key } => (url.clone(), Some(key.clone())),
    };
    let endpoint = Endpoint::parse(&url)?;
    let bodies = Bodies {
        gateway: key.is_some(),
        target_json: serde_json::to_string(&format!("{target}/bench"))?,
        pad: "x".repeat((payload as usize).saturating_sub(40)),
        keys,
        key_prefix,
        route: route_name,
    };
    let n = n as usize;
    let shared = Arc::new(Shared {
        n,
        next: AtomicUsize::new(0),
        lat: Mutex::new(Vec::with_capacity(n)),
        errors: Mutex::default(),
        endpoint,
        key,
        bodies,
        rate,
        start: Instant::now(),
    });
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|_| tokio::spawn(client(Arc::clone(&shared))))
        .collect();
    let mut acked = 0;
    for t in tasks {
        acked += t.await.unwrap_or(0);
    }
    let elapsed = shared.start.elapsed();
    let mut latencies = shared.lat.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort_unstable();
    let errors = shared.errors.lock().map(|e| e.clone()).unwrap_or_default();
    Ok(Load {
        acked,
        elapsed,
        latencies,
        errors,
    })
}

/// What the clients of one run share.
struct Shared {
    /// Messages to offer.
    n: usize,
    /// The next message's number.
    next: AtomicUsize,
    /// Acknowledgement latencies (µs).
    lat: Mutex<Vec<u64>>,
    /// Failed POSTs by cause.
    errors: Mutex<BTreeMap<String, u64>>,
    endpoint: Endpoint,
    key: Option<String>,
    bodies: Bodies,
    rate: Option<u64>,
    start: Instant,
}

/// One client: takes the next message until none is left, POSTs it on its keep-alive
/// connection (a new one after a broken exchange); how many were acknowledged.
async fn client(shared: Arc<Shared>) -> u64 {
    let s = &*shared;
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut body = String::new();
    let mut acked = 0u64;
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= s.n {
            break;
        }
        let due = s
            .rate
            .map(|r| s.start + Duration::from_secs_f64(i as f64 / r as f64));
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        let sent_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        s.bodies.write(i, sent_us, &mut body);
        // At a fixed rate, latency counts from when the message was due (no coordinated
        // omission).
        let t0 = due.unwrap_or_else(Instant::now);
        let outcome = match sender.as_mut() {
            Some(c) => Ok(c),
            None => connect(&s.endpoint.authority)
                .await
                .map(|c| sender.insert(c))
                .map_err(|_| broken("connection error")),
        };
        let outcome = match outcome {
            Ok(c) => post(c, &s.endpoint, s.key.as_deref(), Bytes::from(body.clone())).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                acked += 1;
                if let Ok(mut l) = s.lat.lock() {
                    l.push(t0.elapsed().as_micros() as u64);
                }
            }
            Err(failed) => {
                if !failed.reusable {
                    // A fresh connection for the next message: this one is broken or still
                    // carrying the timed-out exchange.
                    sender = None;
                }
                if let Ok(mut e) = s.errors.lock() {
                    *e.entry(failed.what).or_insert(0) += 1;
                }
            }
        }
    }
    acked
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn bodies(gateway: bool, keys: u64) -> Bodies {
        Bodies {
            gateway,
            target_json: serde_json::to_string("http://127.0.0.1:8081/bench").unwrap(),
            pad: "x".repeat(10),
            keys,
            key_prefix: "",
            route: None,
        }
    }

    #[test]
    fn routed_bodies_name_the_route_and_carry_the_payload_as_data() {
        let mut out = String::new();
        let routed = Bodies {
            route: Some("bench"),
            ..bodies(true, 0)
        };
        routed.write(7, 123, &mut out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"route": "bench", "streamKey": "m7", "data": {
                "benchSentUs": 123, "id": 7, "total": 12.5, "junk": true, "pad": "xxxxxxxxxx"}})
        );
        // Straight to the target, the bare payload still.
        let direct = Bodies {
            route: Some("bench"),
            ..bodies(false, 0)
        };
        direct.write(0, 5, &mut out);
        assert!(out.starts_with("{\"benchSentUs\":5,"), "{out}");
    }

    #[test]
    fn gateway_bodies_are_sync_requests_with_the_stamped_payload() {
        let mut out = String::new();
        bodies(true, 0).write(7, 123, &mut out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["streamKey"], "m7");
        assert_eq!(
            v["streamMessage"]["targetRestApi"],
            "http://127.0.0.1:8081/bench"
        );
        assert_eq!(v["streamMessage"]["targetRestApiOperation"], "POST");
        assert_eq!(
            v["streamMessage"]["targetRestApiPayload"],
            serde_json::json!({"benchSentUs": 123, "pad": "xxxxxxxxxx"})
        );
        bodies(true, 3).write(7, 1, &mut out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["streamKey"], "k1");
    }

    #[test]
    fn direct_bodies_are_the_bare_payload() {
        let mut out = String::from("left over");
        bodies(false, 0).write(0, 5, &mut out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"benchSentUs": 5, "pad": "xxxxxxxxxx"})
        );
    }
}
