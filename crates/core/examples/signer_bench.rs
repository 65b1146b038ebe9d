//! Signing throughput: RSA signatures per second without the cache, RSA verifications per
//! second (what the emulator pays per new signature and, before it remembered them, per session
//! token) with `ring` and with the `rsa` crate, and signed PutMessages requests per second to one
//! stream with the cache.
//!
//! PutMessages is body-exempt, so its signing string is `date (request-target) host` only: every
//! call to the same stream in the same second has the same signing string, and the signer's
//! per-second cache turns them into one RSA operation. The second part runs PutMessages (one
//! message each) from several tasks against a local server on 127.0.0.1 that only answers 200,
//! and counts the distinct `Authorization` values it received: that is the number of RSA
//! operations the client made.
//!
//! Run in release: `cargo run --release -p datasync-core --example signer_bench [seconds] [tasks]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use datasync_core::oci::auth::StaticAuth;
use datasync_core::oci::client::{OciClient, RetryPolicy, Timeouts};
use datasync_core::oci::endpoints::Endpoints;
use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::signer::{http_date, verify_rsa_sha256, Signer, SigningInput};
use datasync_core::oci::streaming::{PutMessage, StreamClient};
use http_body_util::Full;
use hyper_util::rt::TokioIo;

const PUT_RESULT: &[u8] = br#"{"failures":0,"entries":[{"partition":"0","offset":0,"timestamp":"2024-01-01T00:00:00.000Z"}]}"#;

#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    signatures: Mutex<HashSet<String>>,
}

async fn serve(seen: Arc<Seen>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            seen.requests.fetch_add(1, Ordering::Relaxed);
                            if let Some(auth) = req.headers().get("authorization") {
                                let auth = auth.to_str().unwrap_or_default().to_owned();
                                seen.signatures.lock().unwrap().insert(auth);
                            }
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from_static(PUT_RESULT),
                            )))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn uncached_signatures_per_second(key: &PrivateKey, seconds: f64) -> (u64, f64) {
    let signer = Signer::new("ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb", key.clone());
    let date = http_date(SystemTime::now());
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        // A new target each time: every call misses the cache and costs one RSA operation.
        let target = format!("/20180418/streams/s/messages?n={n}");
        let value = signer.authorization_for(&SigningInput {
            method: "POST",
            target: &target,
            host: "cell-1.streaming.us-phoenix-1.oci.oraclecloud.com",
            date: &date,
            x_date: false,
            body: None,
        });
        std::hint::black_box(value);
        n += 1;
    }
    (n, n as f64 / start.elapsed().as_secs_f64())
}

/// Verifications per second of one signature: with [`verify_rsa_sha256`] (`ring` for these
/// 2048-bit keys) and with the `rsa` crate's PKCS#1 v1.5 verifier.
fn verifications_per_second(key: &PrivateKey, seconds: f64) -> (f64, f64) {
    use rsa::signature::Verifier as _;
    let message = b"date: Thu, 05 Jan 2014 21:31:40 GMT";
    let signature = key.sign(message);
    let public = key.public_key().clone();
    let rate = |check: &dyn Fn() -> bool| {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() < seconds / 2.0 {
            assert!(check());
            n += 1;
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let with_ring = rate(&|| verify_rsa_sha256(&public, message, &signature));
    let verifying = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public.clone());
    let parsed = rsa::pkcs1v15::Signature::try_from(signature.as_slice()).unwrap();
    let with_rsa = rate(&|| verifying.verify(message, &parsed).is_ok());
    (with_ring, with_rsa)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3.0);
    let tasks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);

    let rsa = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let key = PrivateKey::from_rsa(rsa);

    let (n, rate) = tokio::task::spawn_blocking({
        let key = key.clone();
        move || uncached_signatures_per_second(&key, seconds)
    })
    .await
    .unwrap();
    println!("uncached RSA-2048 signatures: {n} in {seconds:.1}s = {rate:.0}/s (one thread)");
    let (with_ring, with_rsa) = tokio::task::spawn_blocking({
        let key = key.clone();
        move || verifications_per_second(&key, seconds)
    })
    .await
    .unwrap();
    println!(
        "RSA-2048 verifications: {with_ring:.0}/s with ring, {with_rsa:.0}/s with the rsa crate (one thread)"
    );

    let seen = Arc::new(Seen::default());
    let addr = serve(seen.clone()).await;
    let auth = Arc::new(StaticAuth::new(
        "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb",
        key,
        None,
    ));
    let client = OciClient::with_settings(auth, Timeouts::default(), RetryPolicy::NONE).unwrap();
    let endpoints = Endpoints::all_at(&format!("http://{addr}")).unwrap();
    let streams = StreamClient::new(client, &endpoints).unwrap();
    let message = [PutMessage::keyed(
        &b"k"[..],
        &b"{\"id\":1,\"name\":\"record\"}"[..],
    )];

    // Warm the connection pool.
    streams
        .put_messages("ocid1.stream.oc1.phx.s", &message)
        .await
        .unwrap();
    let before_requests = seen.requests.load(Ordering::Relaxed);
    let before_signatures = seen.signatures.lock().unwrap().len();

    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let streams = streams.clone();
        let message = message.clone();
        handles.push(tokio::spawn(async move {
            let mut ok = 0u64;
            while Instant::now() < deadline {
                let out = streams
                    .put_messages("ocid1.stream.oc1.phx.s", &message)
                    .await
                    .unwrap();
                assert!(out[0].is_ok());
                ok += 1;
            }
            ok
        }));
    }
    let mut done = 0u64;
    for h in handles {
        done += h.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let requests = seen.requests.load(Ordering::Relaxed) - before_requests;
    let signatures = seen.signatures.lock().unwrap().len() - before_signatures;
    println!(
        "signed PutMessages to one stream, cache on, {tasks} tasks: {done} in {elapsed:.2}s = {:.0} requests/s",
        done as f64 / elapsed
    );
    println!(
        "  server saw {requests} requests with {signatures} distinct signatures (RSA operations): {:.2}% cache hits",
        100.0 * (1.0 - signatures as f64 / requests.max(1) as f64)
    );
}
