//! Benchmark of the OCI emulator on loopback, durable settings as shipped, driven by the
//! `datasync-core` clients (`StreamClient` with `ConfigFileAuth` on the generated `LOCAL`
//! profile, signatures cached per second as in production).
//!
//! `cargo run --release -p datasync-emulator --example emulator_bench [-- FILL_MB [--in-process]]`
//!
//! By default the emulator runs in a child process (this binary with `--serve`), so the client
//! load does not share its allocator, runtime or RSS; with `--in-process` both share one
//! process (the method of the first measurements). Measures: batched PutMessages (100 x 1 KB,
//! 8 clients), single-message PutMessages from 32 concurrent clients, GetMessages throughput,
//! and the emulator's RSS after filling a stream to FILL_MB (default 1024) and reading all of
//! it. "Durable": every PutMessages answer comes after the group commit's fsync. Bounded in
//! count and time; the data directory is a temporary directory removed at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use datasync_core::oci::auth::ConfigFileAuth;
use datasync_core::oci::client::{OciClient, OciRequest, RetryPolicy, Timeouts};
use datasync_core::oci::endpoints::Endpoints;
use datasync_core::oci::models;
use datasync_core::oci::streaming::{CursorStart, PutMessage, StreamClient};
use datasync_emulator::{Emulator, EmulatorOptions};
use http::Method;
use tokio_util::sync::CancellationToken;

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of a process.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The emulator under test: in a child process or in this one.
struct Server {
    base: String,
    config: PathBuf,
    dir: PathBuf,
    pid: u32,
    child: Option<std::process::Child>,
    local: Option<(Emulator, CancellationToken, tempfile::TempDir)>,
}

impl Server {
    async fn start(in_process: bool) -> Self {
        if in_process {
            let dir = tempfile::tempdir().unwrap();
            let emulator = Emulator::open(dir.path(), EmulatorOptions::default()).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let shutdown = CancellationToken::new();
            let (serving, stop) = (emulator.clone(), shutdown.clone());
            tokio::spawn(async move { serving.serve(listener, stop).await.unwrap() });
            return Self {
                base,
                config: emulator.profile().config_file.clone(),
                dir: dir.path().to_owned(),
                pid: std::process::id(),
                child: None,
                local: Some((emulator, shutdown, dir)),
            };
        }
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--serve")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("READY"), "child said {line:?}");
        let base = words.next().unwrap().to_owned();
        let config = PathBuf::from(words.next().unwrap());
        let dir = PathBuf::from(words.next().unwrap());
        Self {
            base,
            config,
            dir,
            pid: child.id(),
            child: Some(child),
            local: None,
        }
    }

    fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take()); // the child stops when its stdin closes
            let _ = child.wait();
        }
        if let Some((emulator, shutdown, _dir)) = self.local.take() {
            shutdown.cancel();
            emulator.close();
        }
    }
}

/// `--serve`: run the emulator in a temporary directory until stdin closes.
async fn serve_child() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::open(dir.path(), EmulatorOptions::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let (serving, stop) = (emulator.clone(), shutdown.clone());
    let server = tokio::spawn(async move { serving.serve(listener, stop).await.unwrap() });
    println!(
        "READY {base} {} {}",
        emulator.profile().config_file.display(),
        dir.path().display()
    );
    std::io::stdout().flush().unwrap();
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().take(1 << 20).read_to_end(&mut sink);
    })
    .await
    .unwrap();
    shutdown.cancel();
    let _ = server.await;
    emulator.close();
}

fn clients(server: &Server) -> (OciClient, StreamClient) {
    let auth = ConfigFileAuth::from_config(Some(&server.config), Some("LOCAL"), |k| {
        std::env::var(k).ok()
    })
    .unwrap();
    let oci =
        OciClient::with_settings(Arc::new(auth), Timeouts::default(), RetryPolicy::NONE).unwrap();
    let endpoints = Endpoints::all_at(&server.base).unwrap();
    let streams = StreamClient::new(oci.clone(), &endpoints).unwrap();
    (oci, streams)
}

async fn create(oci: &OciClient, base: &str, name: &str, partitions: i32) -> String {
    let url = url::Url::parse(&format!("{base}/20180418/streams")).unwrap();
    let request = OciRequest::new("CreateStream", Method::POST, url)
        .json(&models::CreateStreamDetails {
            name: name.into(),
            partitions,
            compartment_id: Some("ocid1.tenancy.oc1..aaaaaaaalocaltenancy".into()),
            retention_in_hours: Some(24),
            stream_pool_id: None,
        })
        .unwrap();
    oci.send_json::<models::Stream>(&request).await.unwrap().id
}

/// Runs `clients` tasks, each sending batches of `batch` messages until `total` messages are
/// acknowledged or `limit` passes; returns (messages, requests, seconds).
async fn put_load(
    c: &StreamClient,
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
            let value = Bytes::from(vec![b'x'; 1024]);
            let msgs: Vec<PutMessage> = (0..batch)
                .map(|_| PutMessage::new(None, value.clone()))
                .collect();
            while done.load(Ordering::Relaxed) < total && start.elapsed() < limit {
                let outcomes = c.put_messages(&stream, &msgs).await.unwrap();
                assert!(outcomes.iter().all(Result::is_ok));
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

/// Reads one partition from its start to its end; returns the message count.
async fn read_partition(c: &StreamClient, stream: &str, partition: i32) -> u64 {
    let mut n = 0u64;
    let mut cursor = c
        .create_cursor(stream, &partition.to_string(), &CursorStart::TrimHorizon)
        .await
        .unwrap();
    loop {
        let (page, next) = c.get_messages(stream, &cursor, Some(10_000)).await.unwrap();
        if page.is_empty() {
            return n;
        }
        n += page.len() as u64;
        cursor = next;
    }
}

/// Reads every partition, one after the other (`parallel` false: one consumer) or all at
/// once (one consumer per partition); returns (messages, seconds).
async fn read_all(c: &StreamClient, stream: &str, partitions: i32, parallel: bool) -> (u64, f64) {
    let start = Instant::now();
    let mut n = 0u64;
    if parallel {
        let tasks: Vec<_> = (0..partitions)
            .map(|p| {
                let (c, stream) = (c.clone(), stream.to_owned());
                tokio::spawn(async move { read_partition(&c, &stream, p).await })
            })
            .collect();
        for t in tasks {
            n += t.await.unwrap();
        }
    } else {
        for p in 0..partitions {
            n += read_partition(c, stream, p).await;
        }
    }
    (n, start.elapsed().as_secs_f64())
}

fn db_mb(dir: &Path) -> u64 {
    let size = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
    (size("emulator.db") + size("emulator.db-wal")) / (1024 * 1024)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--serve") {
        serve_child().await;
        return;
    }
    let in_process = args.iter().any(|a| a == "--in-process");
    let fill_mb: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1024);
    let server = Server::start(in_process).await;
    let (oci, c) = clients(&server);
    let pid = server.pid;
    println!(
        "emulator {} (pid {pid}, {}), data dir {} (synchronous=FULL, WAL); load average {}",
        server.base,
        if in_process {
            "in this process"
        } else {
            "child process"
        },
        server.dir.display(),
        load_average()
    );

    let batched = create(&oci, &server.base, "batched", 4).await;
    let cpu = cpu_secs(pid);
    let (msgs, reqs, secs) = put_load(&c, &batched, 8, 100, 200_000, Duration::from_secs(20)).await;
    println!(
        "PutMessages 100 x 1 KB, 8 clients: {msgs} messages in {secs:.2} s = {:.0} msgs/s ({:.0} req/s); emulator CPU {:.1} s; load {}",
        msgs as f64 / secs,
        reqs as f64 / secs,
        cpu_secs(pid) - cpu,
        load_average()
    );

    let single = create(&oci, &server.base, "single", 4).await;
    let cpu = cpu_secs(pid);
    let (msgs, _, secs) = put_load(&c, &single, 32, 1, 60_000, Duration::from_secs(15)).await;
    println!(
        "PutMessages 1 x 1 KB, 32 clients: {msgs} requests in {secs:.2} s = {:.0} req/s; emulator CPU {:.1} s; load {}",
        msgs as f64 / secs,
        cpu_secs(pid) - cpu,
        load_average()
    );

    for (parallel, how) in [(false, "1 reader"), (true, "4 readers, one per partition")] {
        let cpu = cpu_secs(pid);
        let (n, secs) = read_all(&c, &batched, 4, parallel).await;
        println!(
            "GetMessages (limit 10000, 1 KB values, {how}): {n} messages in {secs:.2} s = {:.0} msgs/s; emulator CPU {:.1} s; load {}",
            n as f64 / secs,
            cpu_secs(pid) - cpu,
            load_average()
        );
    }

    // Fill a stream to FILL_MB of values (bounded to 5 minutes), then read all of it.
    let big = create(&oci, &server.base, "big", 4).await;
    let target = fill_mb * 1024;
    let (filled, _, secs) = put_load(&c, &big, 8, 500, target, Duration::from_secs(300)).await;
    println!(
        "filled {} MB of values in {secs:.1} s ({:.0} msgs/s); database on disk {} MB; emulator RSS {} MB",
        filled / 1024,
        filled as f64 / secs,
        db_mb(&server.dir),
        status_kb(pid, "VmRSS:") / 1024
    );
    let (n, secs) = read_all(&c, &big, 4, true).await;
    println!(
        "read back {n} messages in {secs:.1} s = {:.0} msgs/s; load {}",
        n as f64 / secs,
        load_average()
    );
    println!(
        "emulator RSS now {} MB (anon {} MB, file {} MB, shmem {} MB), peak (VmHWM) {} MB; database on disk {} MB",
        status_kb(pid, "VmRSS:") / 1024,
        status_kb(pid, "RssAnon:") / 1024,
        status_kb(pid, "RssFile:") / 1024,
        status_kb(pid, "RssShmem:") / 1024,
        status_kb(pid, "VmHWM:") / 1024,
        db_mb(&server.dir)
    );
    if !in_process {
        println!(
            "bench client RSS peak {} MB",
            status_kb(std::process::id(), "VmHWM:") / 1024
        );
    }
    server.stop();
}
