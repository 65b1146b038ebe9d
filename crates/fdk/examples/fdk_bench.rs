//! Benchmark harness for Fn FDKs (a tool for people, not part of the test suite; see
//! `scripts/bench-fdk.sh`, which builds everything and runs the Python and Node peers too).
//!
//! ```text
//! fdk_bench [--runs N] [--seconds S] NAME=COMMAND [NAME=COMMAND ...]
//! ```
//!
//! For each `NAME=COMMAND` (run with `sh -c 'exec COMMAND'`), `--runs` times: spawn the
//! function cold with `FN_LISTENER` in a fresh temporary directory, as the Fn agent would,
//! and measure
//!
//! - cold start: from spawn to the first answered `POST /call` (polling for the symlink every
//!   100 µs, then connecting and calling with a minimal blocking HTTP/1.1 client);
//! - idle RSS: the summed `VmRSS` of the process and its descendants, 300 ms after the first
//!   call;
//! - sequential calls per second on one keep-alive connection, for `--seconds` seconds after
//!   200 warm-up calls (with the CPU time per call of the function and of the harness, from
//!   `/proc/<pid>/stat`, to tell cost from scheduling delay on a busy machine).
//!
//! It prints the medians, then (when targets named `rust`, `python` and `node` are present)
//! the ratios and whether the issue's targets are met: cold start ≤ 1/20 of Python's, idle RSS
//! ≤ 1/5 of Python's, ≥ 25,000 calls/s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;

struct Sample {
    cold: Duration,
    rss_kb: u64,
    calls_per_sec: f64,
    server_cpu_us: f64,
    client_cpu_us: f64,
}

struct Summary {
    name: String,
    cold_ms: f64,
    cold_min_ms: f64,
    rss_mb: f64,
    calls_per_sec: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// CPU time (user + system) of one process, in clock ticks (100 Hz on Linux).
fn cpu_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    // After the comm: state(0) ppid(1) ... utime(11) stime(12).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// The VmRSS (kB) of `pid` and all its descendants.
fn tree_rss_kb(pid: u32) -> u64 {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parents.push((p, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// A minimal blocking HTTP/1.1 client on one keep-alive connection: the same neutral
/// measuring instrument for every FDK (two syscalls per call, no event loop of its own).
struct RawClient {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl RawClient {
    fn connect(path: &Path) -> Self {
        Self {
            stream: UnixStream::connect(path).unwrap(),
            buf: Vec::with_capacity(8192),
        }
    }

    /// Sends `POST /call` with Fn headers and a small JSON body; returns the status.
    fn call(&mut self, i: u64) -> u16 {
        let body = br#"{"hello":"world"}"#;
        let req = format!(
            "POST /call HTTP/1.1\r\nHost: localhost\r\nFn-Call-Id: bench-{i}\r\n\
             Fn-Deadline: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            fdk::protocol::format_deadline(SystemTime::now() + Duration::from_secs(30)),
            body.len()
        );
        let mut msg = req.into_bytes();
        msg.extend_from_slice(body);
        self.stream.write_all(&msg).unwrap();
        self.read_response()
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the function closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    fn read_response(&mut self) -> u16 {
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            self.fill();
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
        };
        self.buf.drain(..head_end);
        if let Some(len) = header("content-length:") {
            let len: usize = len.parse().unwrap();
            while self.buf.len() < len {
                self.fill();
            }
            self.buf.drain(..len);
        } else if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
            loop {
                let line_end = loop {
                    if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break p;
                    }
                    self.fill();
                };
                let size_str = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size =
                    usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap();
                while self.buf.len() < line_end + 2 + size + 2 {
                    self.fill();
                }
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        }
        status
    }
}

fn sample(command: &str, seconds: f64) -> Sample {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("lsnr.sock");
    let start = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .env("FN_LISTENER", fdk::protocol::listener_value(&socket))
        .env("FN_FORMAT", "http-stream")
        .env("FN_APP_NAME", "bench")
        .env("FN_FN_NAME", "echo")
        .env("FN_MEMORY", "128")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_for(&socket, &mut child);
    let mut client = RawClient::connect(&socket);
    assert_eq!(client.call(0), 200);
    let cold = start.elapsed();

    std::thread::sleep(Duration::from_millis(300));
    let rss_kb = tree_rss_kb(child.id());

    for i in 1..=200 {
        assert_eq!(client.call(i), 200);
    }
    let budget = Duration::from_secs_f64(seconds);
    let pid = child.id().to_string();
    let (server0, client0) = (cpu_ticks(&pid), cpu_ticks("self"));
    let t = Instant::now();
    let mut n: u64 = 0;
    while t.elapsed() < budget {
        for _ in 0..100 {
            assert_eq!(client.call(n), 200);
            n += 1;
        }
    }
    let calls_per_sec = n as f64 / t.elapsed().as_secs_f64();
    let per_call = |ticks: u64| ticks as f64 * 10_000.0 / n as f64;
    let server_cpu_us = per_call(cpu_ticks(&pid) - server0);
    let client_cpu_us = per_call(cpu_ticks("self") - client0);

    drop(client);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Sample {
        cold,
        rss_kb,
        calls_per_sec,
        server_cpu_us,
        client_cpu_us,
    }
}

fn wait_for(socket: &Path, child: &mut std::process::Child) {
    let start = Instant::now();
    while std::fs::symlink_metadata(socket).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the function exited before listening: {status}");
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never listened");
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn main() {
    let mut runs = 5;
    let mut seconds = 2.0;
    let mut targets: Vec<(String, String)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds S")
            }
            _ => {
                let (name, cmd) = a.split_once('=').expect("NAME=COMMAND");
                targets.push((name.to_owned(), cmd.to_owned()));
            }
        }
    }
    assert!(
        !targets.is_empty(),
        "usage: fdk_bench [--runs N] [--seconds S] NAME=COMMAND ..."
    );

    let mut summaries = Vec::new();
    for (name, cmd) in &targets {
        let mut samples = Vec::new();
        for r in 0..runs {
            let s = sample(cmd, seconds);
            eprintln!(
                "{name} run {}: cold {:.1} ms, idle RSS {:.1} MB, {:.0} calls/s \
                 (CPU per call: function {:.1} us, harness {:.1} us)",
                r + 1,
                s.cold.as_secs_f64() * 1e3,
                s.rss_kb as f64 / 1024.0,
                s.calls_per_sec,
                s.server_cpu_us,
                s.client_cpu_us,
            );
            samples.push(s);
        }
        let colds: Vec<f64> = samples.iter().map(|s| s.cold.as_secs_f64() * 1e3).collect();
        summaries.push(Summary {
            name: name.clone(),
            cold_min_ms: colds.iter().copied().fold(f64::INFINITY, f64::min),
            cold_ms: median(colds),
            rss_mb: median(samples.iter().map(|s| s.rss_kb as f64 / 1024.0).collect()),
            calls_per_sec: median(samples.iter().map(|s| s.calls_per_sec).collect()),
        });
    }

    println!();
    println!(
        "{:<10} {:>14} {:>12} {:>14} {:>16}",
        "fdk", "cold start ms", "(min) ms", "idle RSS MB", "calls/s (1 conn)"
    );
    for s in &summaries {
        println!(
            "{:<10} {:>14.1} {:>12.1} {:>14.1} {:>16.0}",
            s.name, s.cold_ms, s.cold_min_ms, s.rss_mb, s.calls_per_sec
        );
    }
    let find = |n: &str| summaries.iter().find(|s| s.name == n);
    let Some(rust) = find("rust") else { return };
    println!();
    for peer in ["python", "node"] {
        if let Some(p) = find(peer) {
            println!(
                "rust vs {peer:<6}: cold start 1/{:.1}, idle RSS 1/{:.1}, calls/s x{:.1}",
                p.cold_ms / rust.cold_ms,
                p.rss_mb / rust.rss_mb,
                rust.calls_per_sec / p.calls_per_sec
            );
        }
    }
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    if let Some(py) = find("python") {
        println!();
        println!(
            "target cold start <= python/20 ({:.2} ms): {:.2} ms, {}",
            py.cold_ms / 20.0,
            rust.cold_ms,
            verdict(rust.cold_ms <= py.cold_ms / 20.0)
        );
        println!(
            "target idle RSS <= python/5 ({:.2} MB): {:.2} MB, {}",
            py.rss_mb / 5.0,
            rust.rss_mb,
            verdict(rust.rss_mb <= py.rss_mb / 5.0)
        );
    }
    println!(
        "target >= 25000 calls/s: {:.0}, {}",
        rust.calls_per_sec,
        verdict(rust.calls_per_sec >= 25_000.0)
    );
}
