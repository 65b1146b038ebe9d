//! Benchmark of the OCI emulator, in-process on loopback, durable settings as shipped.
//!
//! `cargo run --release -p datasync-local --example emulator_bench [-- FILL_MB]`
//!
//! Measures: batched PutMessages (100 x 1 KB), single-message PutMessages from 32 concurrent
//! clients, GetMessages throughput, and the process RSS after filling a stream to FILL_MB
//! (default 1024) and reading all of it. Bounded in count and time; the data directory is a
//! temporary directory removed at the end. RSS is of the whole process, bench client included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datasync_core::oci::models;
use datasync_local::client::SignedClient;
use datasync_local::emulator::{Emulator, EmulatorOptions};
use http::Method;
use tokio_util::sync::CancellationToken;

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn create(c: &SignedClient, name: &str, partitions: i32) -> String {
    let s: models::Stream = c
        .json(
            Method::POST,
            "/20180418/streams",
            &models::CreateStreamDetails {
                name: name.into(),
                partitions,
                compartment_id: Some("ocid1.tenancy.oc1..aaaaaaaalocaltenancy".into()),
                retention_in_hours: Some(24),
                stream_pool_id: None,
            },
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    s.id
}

/// Runs `clients` tasks, each sending batches of `batch` messages until `total` messages are
/// acknowledged or `limit` passes; returns (messages, requests, seconds).
async fn put_load(
    c: &SignedClient,
    stream: &str,
    clients: usize,
    batch: usize,
    total: u64,
    limit: Duration,
) -> (u64, u64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (c, stream, done, requests) =
            (c.clone(), stream.to_owned(), done.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let value = vec![b'x'; 1024];
            let msgs: Vec<(Option<&[u8]>, &[u8])> =
                (0..batch).map(|_| (None, value.as_slice())).collect();
            while done.load(Ordering::Relaxed) < total && start.elapsed() < limit {
                let answer = c.put_messages(&stream, &msgs).await.unwrap();
                assert_eq!(
                    answer.status,
                    200,
                    "{}",
                    String::from_utf8_lossy(&answer.body)
                );
                done.fetch_add(batch as u64, Ordering::Relaxed);
                requests.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (
        done.load(Ordering::Relaxed),
        requests.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    )
}

async fn read_all(c: &SignedClient, stream: &str, partitions: i32) -> (u64, f64) {
    let start = Instant::now();
    let mut n = 0u64;
    for p in 0..partitions {
        let cursor: models::Cursor = c
            .json(
                Method::POST,
                &format!("/20180418/streams/{stream}/cursors"),
                &models::CreateCursorDetails {
                    partition: p.to_string(),
                    cursor_type: models::CursorType::TrimHorizon,
                    offset: None,
                    time: None,
                },
            )
            .await
            .unwrap()
            .json()
            .unwrap();
        let mut cursor = cursor.value;
        loop {
            let answer = c
                .get(&format!(
                    "/20180418/streams/{stream}/messages?cursor={cursor}&limit=10000"
                ))
                .await
                .unwrap();
            assert_eq!(answer.status, 200);
            let page: Vec<models::Message> = answer.json().unwrap();
            if page.is_empty() {
                break;
            }
            n += page.len() as u64;
            cursor = answer.header("opc-next-cursor").unwrap().to_owned();
        }
    }
    (n, start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let fill_mb: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::open(dir.path(), EmulatorOptions::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let serving = emulator.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move { serving.serve(listener, stop).await.unwrap() });
    let c = SignedClient::for_profile(&base, emulator.profile()).unwrap();
    println!("data dir {} (synchronous=FULL, WAL)", dir.path().display());

    let batched = create(&c, "batched", 4).await;
    let (msgs, reqs, secs) = put_load(&c, &batched, 8, 100, 200_000, Duration::from_secs(20)).await;
    println!("PutMessages 100 x 1 KB, 8 clients: {msgs} messages in {secs:.2} s = {:.0} msgs/s ({:.0} req/s)", msgs as f64 / secs, reqs as f64 / secs);

    let single = create(&c, "single", 4).await;
    let (msgs, _, secs) = put_load(&c, &single, 32, 1, 40_000, Duration::from_secs(15)).await;
    println!(
        "PutMessages 1 x 1 KB, 32 clients: {msgs} requests in {secs:.2} s = {:.0} req/s",
        msgs as f64 / secs
    );

    let (n, secs) = read_all(&c, &batched, 4).await;
    println!(
        "GetMessages (limit 10000, 1 KB values): {n} messages in {secs:.2} s = {:.0} msgs/s",
        n as f64 / secs
    );

    // Fill a stream to FILL_MB of values (bounded to 5 minutes), then read all of it.
    let big = create(&c, "big", 4).await;
    let target = fill_mb * 1024;
    let (filled, _, secs) = put_load(&c, &big, 8, 500, target, Duration::from_secs(300)).await;
    let db = std::fs::metadata(dir.path().join("emulator.db"))
        .map(|m| m.len())
        .unwrap_or(0)
        + std::fs::metadata(dir.path().join("emulator.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!(
        "filled {} MB of values in {secs:.1} s; database on disk {} MB",
        filled / 1024,
        db / (1024 * 1024)
    );
    let (n, secs) = read_all(&c, &big, 4).await;
    println!(
        "read back {n} messages in {secs:.1} s = {:.0} msgs/s",
        n as f64 / secs
    );
    println!(
        "RSS now {} MB, peak (VmHWM) {} MB",
        rss_kb("VmRSS:") / 1024,
        rss_kb("VmHWM:") / 1024
    );
    shutdown.cancel();
    emulator.close();
}
