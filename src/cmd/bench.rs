//! `datasync bench`: offers messages to an in-process stack with the demo target and reports
//! throughput, latencies and memory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use datasync_local::stack::{Stack, StackConfig, StackOptions};
use serde_json::json;

/// Offers N messages (one per POST, C concurrent keep-alive clients) to an in-process stack
/// with the demo target; prints ingest and end-to-end msg/s, p50/p99 acknowledgement and
/// POST-to-target latency, a direct baseline (the same clients straight to the demo target)
/// and peak RSS.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Messages to offer.
    #[arg(long, short = 'n', default_value_t = 20_000)]
    pub messages: usize,
    /// Concurrent keep-alive clients.
    #[arg(long, short = 'c', default_value_t = 32)]
    pub clients: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub payload: usize,
    /// Offer at this fixed rate (msg/s) instead of as fast as possible (for latency).
    #[arg(long)]
    pub rate: Option<u64>,
    /// A stack configuration file (TOML), as for `datasync up`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Where the stack keeps its state (default: a fresh temporary directory).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Load {
    acked: usize,
    elapsed: Duration,
    latencies: Vec<u64>,
}

/// Sends `n` messages with `clients` clients to `url` (with `key` when given).
async fn offer(
    url: String,
    key: Option<String>,
    target: String,
    n: usize,
    clients: usize,
    payload: usize,
    rate: Option<u64>,
) -> Load {
    let next = Arc::new(AtomicUsize::new(0));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let start = Instant::now();
    let pad = "x".repeat(payload.saturating_sub(40));
    let mut tasks = Vec::new();
    for c in 0..clients.max(1) {
        let (next, lat, url, key, target, pad) = (
            Arc::clone(&next),
            Arc::clone(&lat),
            url.clone(),
            key.clone(),
            target.clone(),
            pad.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap_or_default();
            let mut acked = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let due = rate.map(|r| start + Duration::from_secs_f64(i as f64 / r as f64));
                if let Some(due) = due {
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent_us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64);
                let bench = json!({"benchSentUs": sent_us, "pad": pad});
                let body = match &key {
                    Some(_) => json!({
                        "streamKey": format!("c{c}"),
                        "streamMessage": {
                            "targetRestApi": format!("{target}/bench"),
                            "targetRestApiOperation": "POST",
                            "targetRestApiPayload": bench,
                        }
                    }),
                    None => bench,
                };
                let mut req = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string());
                if let Some(k) = &key {
                    req = req.header("x-api-key", k);
                }
                let t0 = due.unwrap_or_else(Instant::now);
                if let Ok(r) = req.send().await {
                    if r.status().is_success() {
                        let _ = r.bytes().await;
                        acked += 1;
                        if let Ok(mut l) = lat.lock() {
                            l.push(t0.elapsed().as_micros() as u64);
                        }
                    }
                }
            }
            acked
        }));
    }
    let mut acked = 0;
    for t in tasks {
        acked += t.await.unwrap_or(0);
    }
    let elapsed = start.elapsed();
    let mut latencies = lat.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort_unstable();
    Load {
        acked,
        elapsed,
        latencies,
    }
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(p) => StackConfig::load(p)?,
        None => StackConfig::default(),
    };
    let settings = config.into_settings()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let tmp = tempfile_dir()?;
        let dir = args.data_dir.clone().unwrap_or_else(|| tmp.clone());
        let options = StackOptions {
            data_dir: dir,
            listen: "127.0.0.1:0".parse()?,
            emulator_listen: "127.0.0.1:0".parse()?,
            demo_target: Some("127.0.0.1:0".parse()?),
            demo_target_record: false,
            allow_targets: Vec::new(),
            settings,
        };
        let stack = Stack::start(options, super::up::functions()).await?;
        let info = stack.info().clone();
        let target = info.demo_target.clone().unwrap_or_default();
        let demo = stack
            .demo_target
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the demo target did not start"))?;
        eprintln!("bench: {} messages, {} clients, {} B payloads{}", args.messages, args.clients, args.payload,
            args.rate.map(|r| format!(", offered at {r} msg/s")).unwrap_or_default());

        // Direct baseline.
        let direct = offer(format!("{target}/bench"), None, target.clone(), args.messages.min(5000), args.clients, args.payload, args.rate).await;
        let direct_rate = direct.acked as f64 / direct.elapsed.as_secs_f64();
        let _ = demo.take_latencies();
        let base_total = demo.total();

        // Through the stack.
        let start = Instant::now();
        let load = offer(format!("{}/stream/sync", info.gateway), Some(info.source_key.clone()), target.clone(), args.messages, args.clients, args.payload, args.rate).await;
        let ingest = load.acked as f64 / load.elapsed.as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs(300);
        while demo.total() - base_total < load.acked as u64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let e2e_elapsed = start.elapsed();
        let delivered = demo.total() - base_total;
        let e2e = delivered as f64 / e2e_elapsed.as_secs_f64();
        let mut to_target = demo.take_latencies();
        to_target.sort_unstable();
        let rss = peak_rss_mb();
        let result = json!({
            "messages": args.messages,
            "clients": args.clients,
            "payload_bytes": args.payload,
            "offered_rate": args.rate,
            "acknowledged": load.acked,
            "delivered": delivered,
            "duplicates": demo.duplicates(),
            "ingest_msg_per_s": ingest.round(),
            "end_to_end_msg_per_s": e2e.round(),
            "ack_latency_ms": {"p50": pct(&load.latencies, 0.5), "p99": pct(&load.latencies, 0.99)},
            "post_to_target_latency_ms": {"p50": pct(&to_target, 0.5), "p99": pct(&to_target, 0.99)},
            "direct_baseline_msg_per_s": direct_rate.round(),
            "ratio_to_direct": if direct_rate > 0.0 { (e2e / direct_rate * 1000.0).round() / 1000.0 } else { 0.0 },
            "peak_rss_mb": (rss * 10.0).round() / 10.0,
        });
        println!("ingest:             {:.0} msg/s ({} acknowledged)", ingest, load.acked);
        println!("end to end:         {:.0} msg/s ({} delivered, {} duplicates)", e2e, delivered, demo.duplicates());
        println!("ack latency:        p50 {:.1} ms, p99 {:.1} ms", pct(&load.latencies, 0.5), pct(&load.latencies, 0.99));
        println!("POST to target:     p50 {:.1} ms, p99 {:.1} ms", pct(&to_target, 0.5), pct(&to_target, 0.99));
        println!("direct baseline:    {:.0} msg/s (ratio {:.3})", direct_rate, result["ratio_to_direct"].as_f64().unwrap_or(0.0));
        println!("peak RSS (stack + load generator, one process): {:.1} MB", rss);
        if let Some(p) = &args.json {
            std::fs::write(p, serde_json::to_vec_pretty(&result)?)?;
        }
        stack.shutdown().await;
        if args.data_dir.is_none() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("datasync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
