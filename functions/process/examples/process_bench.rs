//! The process benchmark, measuring the function alone:
//!
//!     cargo run --release -p process --example process_bench
//!
//! It builds the real `process` binary (`cargo build --release -p process --bin process`, or
//! takes `PROCESS_BIN`), starts it as a child process with its configuration in environment
//! variables and `FN_LISTENER` naming a Unix socket, exactly as the Fn agent would, and invokes
//! it over that socket with `fdk::agent`. The OCI emulator (SQLite) and a scripted target that
//! answers at once run in this process, so they count neither in the child's memory nor in its
//! CPU time; they do share the machine's cores with it.
//!
//! The batch: 1,000 connector messages without keys, each a ~150 B payload to the target, of
//! which every tenth is answered 400 (a permanent failure: dead-lettered and announced).
//!
//! Reported, with the load average before and after:
//! - the handling time: the invoke round trip (socket in, answer out), median and range over
//!   `BENCH_RUNS` (default 10) warm calls, after one cold call (which reads the Vault secret);
//!   and the child's CPU time per batch (user + system, from `/proc/<pid>/stat`);
//! - the OCI calls the function made per batch, counted on the wire: the function's only OCI
//!   endpoint is a relay in this process that parses each HTTP/1.1 request head on its way to
//!   the emulator and records the operation;
//! - the child's peak RSS (`VmHWM` of `/proc/<pid>/status`) after the warm-up call and after
//!   three ~6 MB batches (1,000 messages of ~4.2 KB payloads, just under the 6 MiB invoke
//!   limit).
//!
//! Every answer is checked (900 delivered, 100 dead-lettered), and the warnings and errors of
//! the function's log are counted.
//!
//! Knobs (environment): `BENCH_RUNS`; `BENCH_BIG_RUNS` (6 MB batches, default 3);
//! `BENCH_PER_HOST` and `BENCH_MAX_CONCURRENCY` set the function's `per_host_concurrency` and
//! `max_concurrency` (unset: the function's defaults); `MALLOC_*` and `GLIBC_TUNABLES` are
//! passed on to the function; `BENCH_KEEP=1` keeps the directory with the function's log
//! (`process.log`); `PROCESS_BIN` runs another build of the function.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use datasync_core::message::{scoped_secret_name, Envelope, HeaderPair, Payload, StreamMessage};
use datasync_core::oci::auth::ConfigFileAuth;
use datasync_core::oci::client::OciClient;
use datasync_core::oci::endpoints::{Endpoints, Service};
use datasync_core::oci::models;
use datasync_core::oci::vault::VaultClient;
use datasync_local::client::SignedClient;
use datasync_local::emulator::{Emulator, EmulatorOptions};
use datasync_local::target::{Reply, ScriptedTarget};
use http::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The caller populate would have recorded, and its secret's name.
const CALLER: &str = "bench-app";
const SECRET: &str = "bench";

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A field of `/proc/<pid>/status` in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The child's user + system CPU time in ms (clock ticks of 10 ms, the Linux default).
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) * 10
}

/// The OCI operation of a request line, with stream OCIDs replaced by the bench's names.
fn operation(method: &str, target: &str, names: &BTreeMap<String, String>) -> String {
    let path = target.split('?').next().unwrap_or_default();
    let seg: Vec<&str> = path.split('/').skip(1).collect();
    match (method, seg.as_slice()) {
        ("POST", ["20180418", "streams", id, "messages"]) => format!(
            "PutMessages({})",
            names.get(*id).map_or(*id, String::as_str)
        ),
        ("POST", ["20181201", "topics", _, "messages"]) => "PublishMessage".into(),
        (_, ["20190301", "secretbundles", "actions", "getByName"]) => {
            "GetSecretBundleByName".into()
        }
        _ => format!("{method} {path}"),
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// A TCP relay to `upstream` that records the request line of every HTTP/1.1 request it
/// passes on (bodies framed by `Content-Length`; a chunked body is recorded as such and ends
/// the counting on that connection).
async fn relay(listener: TcpListener, upstream: SocketAddr, wire: Arc<Mutex<Vec<String>>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let wire = Arc::clone(&wire);
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (mut from_client, mut to_client) = client.into_split();
            let (mut from_server, mut to_server) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                let _ = to_client.shutdown().await;
            });
            let mut pending: Vec<u8> = Vec::new();
            let mut body_left = 0usize;
            let mut counting = true;
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = match from_client.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if to_server.write_all(&chunk[..n]).await.is_err() {
                    break;
                }
                if !counting {
                    continue;
                }
                pending.extend_from_slice(&chunk[..n]);
                loop {
                    let take = body_left.min(pending.len());
                    pending.drain(..take);
                    body_left -= take;
                    if body_left > 0 {
                        break;
                    }
                    let Some(end) = find_head_end(&pending) else {
                        break;
                    };
                    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                    let mut lines = head.split("\r\n");
                    let line = lines.next().unwrap_or_default().to_owned();
                    for l in lines {
                        if let Some((n, v)) = l.split_once(':') {
                            let n = n.trim().to_ascii_lowercase();
                            if n == "content-length" {
                                body_left = v.trim().parse().unwrap_or(0);
                            } else if n == "transfer-encoding" {
                                counting = false;
                            }
                        }
                    }
                    wire.lock().unwrap().push(if counting {
                        line
                    } else {
                        format!("{line} (chunked: counting stopped)")
                    });
                    pending.drain(..end + 4);
                    if !counting {
                        break;
                    }
                }
            }
            let _ = to_server.shutdown().await;
        });
    }
}

fn batch(target: &ScriptedTarget, first: i64, n: usize, payload_bytes: usize) -> Bytes {
    let b64 = base64::engine::general_purpose::STANDARD;
    let filler = "x".repeat(payload_bytes);
    let list: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let path = if i % 10 == 0 { "/bad" } else { "/ok" };
            let e = Envelope::new(
                StreamMessage {
                    vault_secret_name: Some(SECRET.into()),
                    vault_secret_header: None,
                    target_rest_api: target.url(path),
                    target_rest_api_operation: "POST".into(),
                    target_rest_api_payload: Payload::from_value(
                        &serde_json::json!({"i": i, "fill": filler}),
                    )
                    .ok(),
                    target_rest_api_headers: vec![HeaderPair {
                        key: "X-Bench".into(),
                        value: "1".into(),
                    }],
                },
                CALLER.into(),
                SystemTime::now(),
                datasync_core::message::new_traceparent(),
            );
            serde_json::json!({
                "stream": "DataSyncStream", "partition": "0", "key": null,
                "value": b64.encode(e.encode().unwrap()),
                "offset": (first + i as i64).to_string(),
                "timestamp": "2026-01-01T00:00:00.000Z",
            })
        })
        .collect();
    Bytes::from(serde_json::to_vec(&list).unwrap())
}

/// The `process` binary: `PROCESS_BIN`, or built now next to this example, same profile.
fn process_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("PROCESS_BIN") {
        return PathBuf::from(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-p", "process", "--bin", "process"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let status = build.status().expect("running cargo build");
    assert!(status.success(), "building the process binary failed");
    // target/<profile>/examples/process_bench -> target/<profile>/process
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("process"))
        .unwrap()
}

/// The child process, killed when dropped.
struct Function(std::process::Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Bench<'a> {
    invoker: fdk::agent::Invoker,
    target: &'a ScriptedTarget,
    wire: &'a Mutex<Vec<String>>,
    names: &'a BTreeMap<String, String>,
    pid: u32,
    calls: u32,
}

impl Bench<'_> {
    /// One invoke with `body`: the round trip, the child's CPU time (ms) and the OCI
    /// operations it made. Asserts the answer: 900 delivered, 100 dead-lettered.
    async fn invoke(&mut self, body: Bytes) -> (Duration, u64, Vec<String>) {
        self.calls += 1;
        let call_id = format!("bench-{}", self.calls);
        self.target.clear_requests();
        self.target
            .script("/bad", (0..1000).map(|_| Reply::status(400)));
        let before_wire = self.wire.lock().unwrap().len();
        let before_cpu = cpu_ms(self.pid);
        let request = fdk::agent::invoke_request(
            &call_id,
            SystemTime::now() + Duration::from_secs(30),
            Some("application/json"),
            body,
        )
        .unwrap();
        let started = Instant::now();
        let answer = self
            .invoker
            .call(request, Duration::from_secs(35))
            .await
            .expect("invoking the function");
        let took = started.elapsed();
        let cpu = cpu_ms(self.pid) - before_cpu;
        let ops: Vec<String> = self.wire.lock().unwrap()[before_wire..]
            .iter()
            .map(|line| {
                let mut p = line.split(' ');
                operation(
                    p.next().unwrap_or_default(),
                    p.next().unwrap_or_default(),
                    self.names,
                )
            })
            .collect();
        let summary: serde_json::Value = serde_json::from_slice(answer.body()).unwrap_or_default();
        assert_eq!(answer.status(), 200, "outer status; answer {summary}");
        assert_eq!(summary["delivered"], 900, "answer {summary}");
        assert_eq!(summary["deadLettered"], 100, "answer {summary}");
        (took, cpu, ops)
    }
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1);
    let bin = process_binary();
    println!("load average at start: {}", load_average());

    let dir = tempfile::Builder::new()
        .prefix("process-bench")
        .tempdir()
        .unwrap();
    let emulator = Emulator::open(&dir.path().join("emu"), EmulatorOptions::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator_addr = listener.local_addr().unwrap();
    let base = format!("http://{emulator_addr}");
    let stop = CancellationToken::new();
    {
        let (emu, stop) = (emulator.clone(), stop.clone());
        tokio::spawn(async move { emu.serve(listener, stop).await });
    }
    let wire = Arc::new(Mutex::new(Vec::new()));
    let relay_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_base = format!("http://{}", relay_listener.local_addr().unwrap());
    tokio::spawn(relay(relay_listener, emulator_addr, Arc::clone(&wire)));

    // The streams, topic and secret, made with the emulator's API key (not through the relay).
    let admin = SignedClient::for_profile(&base, emulator.profile()).unwrap();
    let compartment = emulator.profile().compartment.clone();
    let mut names = BTreeMap::new();
    let mut streams = Vec::new();
    for name in [
        "ServiceUnavailable",
        "InternalServer",
        "Unrecoverable",
        "Default",
        "DeadLetter",
    ] {
        let s: models::Stream = admin
            .json(
                Method::POST,
                "/20180418/streams",
                &models::CreateStreamDetails {
                    name: name.into(),
                    partitions: 1,
                    compartment_id: Some(compartment.clone()),
                    retention_in_hours: Some(24),
                    stream_pool_id: None,
                },
            )
            .await
            .unwrap()
            .json()
            .unwrap();
        names.insert(s.id.clone(), name.to_owned());
        streams.push(s.id);
    }
    let topic: models::NotificationTopic = admin
        .json(
            Method::POST,
            "/20181201/topics",
            &models::CreateTopicDetails {
                name: "datasync-errors".into(),
                compartment_id: compartment.clone(),
                description: None,
            },
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    let vault = "ocid1.vault.oc1.local.bench".to_owned();
    {
        let auth = ConfigFileAuth::from_config(
            Some(&emulator.profile().config_file),
            Some(&emulator.profile().profile),
            |_| None,
        )
        .unwrap();
        let mut endpoints = Endpoints::default();
        for service in Service::ALL {
            endpoints = endpoints.with_override(service, &base).unwrap();
        }
        VaultClient::new(OciClient::new(Arc::new(auth)).unwrap(), &endpoints)
            .unwrap()
            .create_secret(&models::CreateSecretDetails {
                compartment_id: compartment,
                vault_id: vault.clone(),
                key_id: "ocid1.key.oc1.local.k".into(),
                secret_name: scoped_secret_name(CALLER, SECRET),
                description: None,
                secret_content: models::SecretContent::base64(b"Bearer bench-token"),
                metadata: None,
            })
            .await
            .unwrap();
    }
    let target = ScriptedTarget::start().await.unwrap();

    // The function's environment, as `datasync up` and OCI give it.
    let rp = emulator
        .mint_resource_principal("process", &dir.path().join("rp"), Duration::from_secs(3600))
        .unwrap();
    let socket = dir.path().join("fn").join("lsnr.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let mut env: Vec<(String, String)> = vec![
        ("FN_LISTENER".into(), format!("unix:{}", socket.display())),
        ("FN_FORMAT".into(), "http-stream".into()),
        ("FN_APP_NAME".into(), "datasync".into()),
        ("FN_FN_NAME".into(), "process".into()),
        ("FN_FN_ID".into(), rp.resource_id.clone()),
        ("FN_APP_ID".into(), "ocid1.fnapp.oc1.local.datasync".into()),
        ("vault_ocid".into(), vault),
        (
            "serviceUnavailable_error_stream_ocid".into(),
            streams[0].clone(),
        ),
        (
            "internalserver_error_stream_ocid".into(),
            streams[1].clone(),
        ),
        ("unrecoverable_error_stream_ocid".into(), streams[2].clone()),
        ("default_error_stream_ocid".into(), streams[3].clone()),
        ("dead_letter_stream_ocid".into(), streams[4].clone()),
        ("notification_topic_ocid".into(), topic.topic_id.clone()),
        ("target_allow_list".into(), "127.0.0.1".into()),
        ("allow_http_targets".into(), "true".into()),
        ("allow_private_targets".into(), "true".into()),
        ("DATASYNC_OCI_ENDPOINT".into(), relay_base),
    ];
    for (var, key) in [
        ("BENCH_PER_HOST", "per_host_concurrency"),
        ("BENCH_MAX_CONCURRENCY", "max_concurrency"),
    ] {
        if let Ok(v) = std::env::var(var) {
            env.push((key.into(), v));
        }
    }
    env.extend(rp.env());
    // The allocator's tunables, when given to the bench, reach the function too.
    for (k, v) in std::env::vars() {
        if k.starts_with("MALLOC_") || k == "GLIBC_TUNABLES" {
            env.push((k, v));
        }
    }
    let log_path = dir.path().join("process.log");
    let mut child = Command::new(&bin);
    child
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(Stdio::inherit());
    let function = Function(child.spawn().expect("starting the process binary"));
    let pid = function.0.id();
    let knobs: Vec<String> = env
        .iter()
        .filter(|(k, _)| {
            k.ends_with("concurrency") || k.starts_with("MALLOC_") || k == "GLIBC_TUNABLES"
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "function: {} (pid {pid}); settings: {}",
        bin.display(),
        if knobs.is_empty() {
            "the defaults".to_owned()
        } else {
            knobs.join(", ")
        }
    );
    let mut invoker = None;
    for _ in 0..500 {
        if let Ok(i) = fdk::agent::Invoker::connect(&socket).await {
            invoker = Some(i);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let invoker = invoker.expect("the function did not listen on its socket");
    println!(
        "idle: RSS {} kB, peak {} kB",
        status_kb(pid, "VmRSS:"),
        status_kb(pid, "VmHWM:")
    );

    let mut bench = Bench {
        invoker,
        target: &target,
        wire: &wire,
        names: &names,
        pid,
        calls: 0,
    };
    let small = |round: i64| batch(&target, 1000 * round, 1000, 10);
    let body = small(0);
    let size = body.len();
    let (took, cpu, ops) = bench.invoke(body).await;
    println!(
        "cold 1,000 x ~150 B ({size} bytes): {:.1} ms, CPU {cpu} ms, {} OCI calls: {}",
        ms(took),
        ops.len(),
        ops.join(", ")
    );
    println!(
        "after the warm-up call: RSS {} kB, peak {} kB",
        status_kb(pid, "VmRSS:"),
        status_kb(pid, "VmHWM:")
    );
    let mut times = Vec::new();
    let mut cpu_total = 0;
    let mut calls = BTreeMap::new();
    for round in 1..=runs {
        let (took, cpu, ops) = bench.invoke(small(round as i64)).await;
        times.push(took);
        cpu_total += cpu;
        *calls.entry(ops.join(", ")).or_insert(0) += 1;
        assert!(ops.len() <= 3, "{} OCI calls: {ops:?}", ops.len());
    }
    times.sort();
    println!(
        "warm 1,000 x ~150 B, {runs} runs: median {:.1} ms, range {:.1}-{:.1} ms; child CPU {:.0} ms per batch",
        ms(median(&times)),
        ms(times[0]),
        ms(times[times.len() - 1]),
        cpu_total as f64 / runs as f64
    );
    for (ops, n) in &calls {
        println!(
            "  {n} run(s) with {} OCI calls: {ops}",
            ops.split(", ").filter(|s| !s.is_empty()).count()
        );
    }
    println!(
        "after the warm runs: RSS {} kB, peak {} kB",
        status_kb(pid, "VmRSS:"),
        status_kb(pid, "VmHWM:")
    );
    let big_runs: i64 = std::env::var("BENCH_BIG_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for round in 0..big_runs {
        let big = batch(&target, 100_000 * (round + 1), 1000, 4_150);
        let size = big.len();
        assert!(
            size <= fdk::protocol::MAX_BODY_BYTES,
            "{size} bytes: over the invoke limit"
        );
        let (took, cpu, ops) = bench.invoke(big).await;
        println!(
            "6 MB batch ({size} bytes): {:.1} ms, CPU {cpu} ms, {} OCI calls; RSS {} kB, peak {} kB",
            ms(took),
            ops.len(),
            status_kb(pid, "VmRSS:"),
            status_kb(pid, "VmHWM:")
        );
    }
    println!("load average at end: {}", load_average());
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\"") || l.contains("\"level\":\"WARN\""))
        .collect();
    if !bad.is_empty() {
        println!(
            "{} warnings or errors in the function's log, first: {}",
            bad.len(),
            bad[0]
        );
    }
    drop(function);
    stop.cancel();
    if std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1") {
        println!("kept {}", dir.keep().display());
    }
}
