//! `datasync bench`: offers messages to a stack with the demo target (in-process, or a running
//! `datasync up`) and reports throughput, latencies, OCI calls and memory, each figure with the
//! target of issue #7 and whether it is met.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use datasync_local::stack::{Stack, StackConfig, StackOptions};
use serde_json::{json, Value};

use super::status::{Role, StackArgs};

mod load;

use load::{offer, Route, Shape};

/// Offers N messages (one per POST, C concurrent keep-alive clients) to a stack with the demo
/// target and prints ingest and end-to-end msg/s, p50/p99 acknowledgement and POST-to-target
/// latency, a direct baseline (the same clients straight to the demo target) and the ratio to
/// it, OCI calls per 1,000 messages and peak RSS, each with its target.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Modes:
  in-process (default): starts a stack with the demo target inside this process, in a fresh
    temporary directory (or --data-dir DIR when DIR holds no running stack). Peak RSS is then
    the stack and the load generator together.
  running stack: --url URL --key SOURCE_KEY, or --data-dir DIR of a running `datasync up`
    (found through DIR/endpoints.json). Uses that stack's demo target (or --target URL); the
    OCI call count and RSS come from its GET /status; POST-to-target latencies from the demo
    target's POST /_latencies (same machine, same clock).
Only loopback addresses are accepted.

Examples:
  datasync bench
  datasync bench --rate 1000
  datasync bench --permanent-failure-rate 0.1 --json bench.json
  datasync bench --rounds 5
  datasync bench --data-dir .datasync -n 5000")]
pub struct Args {
    /// Messages to offer (1 to 1,000,000).
    #[arg(long, short = 'n', default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub messages: u64,
    /// Concurrent keep-alive clients (1 to 1024).
    #[arg(long, short = 'c', default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub clients: u64,
    /// Payload size in bytes (64 to 900,000).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(64..=900_000))]
    pub payload: u64,
    /// Offer at this fixed rate (msg/s) instead of as fast as possible (for latency).
    #[arg(long, value_name = "MSG_PER_S", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rate: Option<u64>,
    /// Share of deliveries (0 to 1) the demo target answers 400 (permanent failures: dead
    /// letter, notification, archive), e.g. 0.1.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub permanent_failure_rate: f64,
    /// A stack configuration file (TOML), as for `datasync up` (in-process mode).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// A running stack's data directory (its endpoints.json), or where the in-process stack
    /// keeps its state (default: a fresh temporary directory).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The gateway of a running stack (with --key: its source key).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The source key of the running stack.
    #[arg(
        long,
        value_name = "KEY",
        env = "DATASYNC_API_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
    /// Distinct stream keys, used in turn (0: a key per message). Messages of one key keep
    /// their order: one that fails permanently holds the rest of its key in the batch back
    /// (they go to the dead-letter stream untried).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keys: u64,
    /// The running stack's demo target (default: the one in endpoints.json).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Measure N times in a row against the same stack (1 to 20), then print each figure's
    /// median and range and in how many rounds each target was met: on a machine whose speed
    /// drifts, one run says little.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub rounds: u64,
}

fn pct(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)] as f64 / 1000.0)
}

fn peak_rss_mb() -> Option<f64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
}

/// CPU time (user and system, every thread) this process has used, from `/proc/self/stat`
/// (in USER_HZ ticks, 100 per second on Linux).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// What the load runs against.
struct Setup {
    gateway: String,
    key: String,
    target: String,
    stack: Option<Stack>,
    tmp: Option<PathBuf>,
}

fn is_loopback(url: &str) -> bool {
    url::Url::parse(url).ok().is_some_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    })
}

async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let r = http
        .get(url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !r.status().is_success() {
        anyhow::bail!("GET {url} answered {}", r.status());
    }
    r.json()
        .await
        .with_context(|| format!("GET {url}: not JSON"))
}

/// The demo target's counters: (total, failed).
async fn target_counts(http: &reqwest::Client, target: &str) -> anyhow::Result<(u64, u64)> {
    let doc = get_json(http, &format!("{target}/_received?summary=1"))
        .await
        .context("reading the demo target's counters (is it a datasync demo target?)")?;
    Ok((
        doc["total"].as_u64().unwrap_or(0),
        doc["failed"].as_u64().unwrap_or(0),
    ))
}

/// Drains the demo target's POST-to-target latencies (µs) of benchmark payloads.
async fn take_target_latencies(http: &reqwest::Client, target: &str) -> anyhow::Result<Vec<u64>> {
    let r = http
        .post(format!("{target}/_latencies"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .context("reading the demo target's latencies")?;
    if !r.status().is_success() {
        anyhow::bail!(
            "the demo target answered {} to POST /_latencies (is it this version's demo target?)",
            r.status()
        );
    }
    let doc: Value = r
        .json()
        .await
        .context("the demo target's latencies are not JSON")?;
    Ok(doc["latencies_us"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default())
}

async fn set_target_mode(http: &reqwest::Client, target: &str, mode: &Value) -> anyhow::Result<()> {
    let r = http
        .post(format!("{target}/_control"))
        .header("content-type", "application/json")
        .body(mode.to_string())
        .send()
        .await
        .context("setting the demo target's failure mode")?;
    if !r.status().is_success() {
        anyhow::bail!("the demo target refused {mode}: {}", r.status());
    }
    Ok(())
}

/// One figure, its target and whether it is met (None: not judged in this mode).
fn judged(value: Option<f64>, target: &str, met: Option<bool>, note: &str) -> Value {
    json!({"value": value, "target": target, "met": met, "note": note})
}

fn label(v: &Value) -> String {
    let target = v["target"].as_str().unwrap_or("");
    let verdict = match v["met"].as_bool() {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not judged",
    };
    let note = v["note"].as_str().unwrap_or("");
    if note.is_empty() {
        format!("[target {target}: {verdict}]")
    } else {
        format!("[target {target}: {verdict}; {note}]")
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.digits$}"))
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.permanent_failure_rate) {
        anyhow::bail!("--permanent-failure-rate must be between 0 and 1 (e.g. 0.1 for 10%)");
    }
    if let Some(r) = args.rate {
        if args.messages / r > 3600 {
            anyhow::bail!(
                "{} messages at {r} msg/s would take over an hour; lower -n or raise --rate",
                args.messages
            );
        }
    }
    // A running stack: --url, or --data-dir whose endpoints.json names a gateway that answers.
    let running = match (&args.url, &args.data_dir) {
        (Some(_), _) => true,
        (None, Some(dir)) => dir.join("endpoints.json").exists(),
        (None, None) => false,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let http = reqwest::Client::new();
        let mut setup = None;
        if running {
            let stack_args = StackArgs {
                data_dir: args.data_dir.clone().unwrap_or_else(|| PathBuf::from(".datasync")),
                url: args.url.clone(),
                key: args.key.clone(),
            };
            let found = stack_args.find(Role::Source)?;
            if !is_loopback(&found.gateway) {
                anyhow::bail!(
                    "{} is not a loopback address: the benchmark only runs against this machine",
                    found.gateway
                );
            }
            let alive = get_json(&http, &format!("{}/status", found.gateway)).await;
            match alive {
                Ok(_) => {
                    let target = args
                        .target
                        .clone()
                        .or_else(|| {
                            found.endpoints.as_ref().and_then(|e| e["demo_target"].as_str().map(str::to_owned))
                        })
                        .ok_or_else(|| anyhow::anyhow!("the running stack has no demo target: pass --target URL of a datasync demo target the stack may deliver to"))?;
                    setup = Some(Setup {
                        gateway: found.gateway,
                        key: found.key.unwrap_or_default(),
                        target: target.trim_end_matches('/').to_owned(),
                        stack: None,
                        tmp: None,
                    });
                }
                Err(e) if args.url.is_some() => {
                    return Err(e.context("the stack at --url does not answer GET /status"));
                }
                Err(_) => {
                    eprintln!("bench: the stack in {} does not answer; starting one in-process there", stack_args.data_dir.display());
                }
            }
        }
        let setup = match setup {
            Some(s) => s,
            None => {
                let config = match &args.config {
                    Some(p) => StackConfig::load(p)?,
                    None => StackConfig::default(),
                };
                let settings = config.into_settings()?;
                let (dir, tmp) = match &args.data_dir {
                    Some(d) => (d.clone(), None),
                    None => {
                        let t = tempfile_dir()?;
                        (t.clone(), Some(t))
                    }
                };
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
                Setup {
                    gateway: info.gateway.clone(),
                    key: info.source_key.clone(),
                    target: info.demo_target.clone().unwrap_or_default(),
                    stack: Some(stack),
                    tmp,
                }
            }
        };
        for u in [&setup.gateway, &setup.target] {
            if !is_loopback(u) {
                anyhow::bail!("{u} is not a loopback address: the benchmark only runs against this machine");
            }
        }
        let in_process = setup.stack.is_some();
        let result = measure_rounds(&args, &http, &setup).await;
        if !in_process {
            let _ = set_target_mode(&http, &setup.target, &json!({})).await;
        }
        if let Some(stack) = setup.stack {
            stack.shutdown().await;
        }
        if let Some(t) = &setup.tmp {
            let _ = std::fs::remove_dir_all(t);
        }
        let result = result?;
        if let Some(p) = &args.json {
            std::fs::write(p, serde_json::to_vec_pretty(&result)?)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        let rounds = match result["rounds"].as_array() {
            Some(rounds) => rounds.iter().collect(),
            None => vec![&result],
        };
        if rounds
            .iter()
            .any(|r| r["acknowledged"].as_u64() != Some(args.messages))
        {
            eprintln!("bench: not every message was acknowledged (see the errors above)");
            return anyhow::Ok(ExitCode::FAILURE);
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// (all OCI requests, those by the functions) of the stack process.
async fn oci_counts(in_process: bool, http: &reqwest::Client, gateway: &str) -> Option<(u64, u64)> {
    use datasync_core::oci::client::{oci_requests_sent, oci_requests_sent_by_resource_principals};
    if in_process {
        return Some((
            oci_requests_sent(),
            oci_requests_sent_by_resource_principals(),
        ));
    }
    let p = stack_process(http, gateway).await;
    Some((
        p["oci_requests_sent"].as_u64()?,
        p["oci_requests_sent_by_functions"].as_u64()?,
    ))
}

/// Messages the data connector has handed to process and process has answered 200 for.
async fn processed(http: &reqwest::Client, gateway: &str) -> anyhow::Result<u64> {
    let doc = get_json(http, &format!("{gateway}/status")).await?;
    doc["processed_messages"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("GET {gateway}/status has no processed_messages"))
}

async fn stack_process(http: &reqwest::Client, gateway: &str) -> Value {
    get_json(http, &format!("{gateway}/status"))
        .await
        .map(|d| d["process"].clone())
        .unwrap_or(Value::Null)
}

/// The figures `--rounds` summarizes: (JSON pointer in a round's result, label, unit).
const SUMMARIZED: [(&str, &str, &str); 8] = [
    ("/end_to_end_msg_per_s", "end to end", "msg/s"),
    ("/ingest_msg_per_s", "ingest", "msg/s"),
    ("/ack_latency_ms/p50", "ack latency p50", "ms"),
    ("/ack_latency_ms/p99", "ack latency p99", "ms"),
    ("/post_to_target_latency_ms/p99", "POST to target p99", "ms"),
    ("/cpu_per_message_us", "CPU per message", "µs"),
    (
        "/oci_calls_per_1000_messages_delivery",
        "OCI calls per 1,000 for delivery",
        "",
    ),
    ("/peak_rss_mb", "peak RSS", "MB"),
];

/// The median (of the middle two for an even count), least and greatest of `values`.
fn spread(values: &mut [f64]) -> Option<(f64, f64, f64)> {
    values.sort_by(f64::total_cmp);
    let (first, last) = (*values.first()?, *values.last()?);
    let mid = values.len() / 2;
    let median = if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    };
    Some((median, first, last))
}

/// Runs [`measure`] `--rounds` times against the same stack. With more than one round, prints
/// and returns each figure's median and range and how many rounds met each target, beside the
/// rounds' own results.
async fn measure_rounds(
    args: &Args,
    http: &reqwest::Client,
    setup: &Setup,
) -> anyhow::Result<Value> {
    if args.rounds == 1 {
        return measure(args, http, setup).await;
    }
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        eprintln!("bench: round {round} of {}", args.rounds);
        rounds.push(measure(args, http, setup).await?);
    }
    let mut figures = serde_json::Map::new();
    println!("over {} rounds (median, least–greatest):", rounds.len());
    for (pointer, name, unit) in SUMMARIZED {
        let mut values: Vec<f64> = rounds
            .iter()
            .filter_map(|r| r.pointer(pointer).and_then(Value::as_f64))
            .collect();
        let Some((median, least, greatest)) = spread(&mut values) else {
            continue;
        };
        let key = pointer.trim_start_matches('/').replace('/', "_");
        figures.insert(
            key,
            json!({"median": median, "least": least, "greatest": greatest}),
        );
        let digits = if matches!(unit, "ms" | "MB") { 1 } else { 0 };
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        println!("  {name:<33} {median:.digits$}{unit} ({least:.digits$}–{greatest:.digits$})");
    }
    let mut targets = serde_json::Map::new();
    if let Some(names) = rounds[0]["targets"].as_object() {
        for (key, first) in names {
            let verdicts: Vec<bool> = rounds
                .iter()
                .filter_map(|r| r["targets"][key]["met"].as_bool())
                .collect();
            if verdicts.is_empty() {
                continue;
            }
            let met = verdicts.iter().filter(|&&m| m).count();
            let target = first["target"].as_str().unwrap_or("");
            targets.insert(
                key.clone(),
                json!({"target": target, "rounds_met": met, "rounds_judged": verdicts.len()}),
            );
            println!(
                "  {key}: target {target} met in {met} of {} rounds",
                verdicts.len()
            );
        }
    }
    Ok(json!({"rounds": rounds, "summary": {"figures": figures, "targets": targets}}))
}

async fn measure(args: &Args, http: &reqwest::Client, setup: &Setup) -> anyhow::Result<Value> {
    let in_process = setup.stack.is_some();
    let demo = setup.stack.as_ref().and_then(|s| s.demo_target.clone());
    let target = setup.target.clone();
    eprintln!(
        "bench: {} messages, {} clients, {} B payloads{}{}, {} stack at {}",
        args.messages,
        args.clients,
        args.payload,
        args.rate
            .map(|r| format!(", offered at {r} msg/s"))
            .unwrap_or_default(),
        if args.permanent_failure_rate > 0.0 {
            format!(", {}% answered 400", args.permanent_failure_rate * 100.0)
        } else {
            String::new()
        },
        if in_process { "in-process" } else { "running" },
        setup.gateway
    );

    let shape = Shape {
        clients: args.clients,
        payload: args.payload,
        rate: args.rate,
        keys: args.keys,
    };
    // Direct baseline: the same clients straight to the demo target, no failures.
    set_target_mode(http, &target, &json!({})).await?;
    let direct = offer(Route::Direct, &target, args.messages.min(5000), shape).await?;
    let direct_rate = direct.acked as f64 / direct.elapsed.as_secs_f64().max(1e-9);
    take_target_latencies(http, &target).await?;
    if args.permanent_failure_rate > 0.0 {
        set_target_mode(
            http,
            &target,
            &json!({"fail_rate": args.permanent_failure_rate, "fail_status": 400}),
        )
        .await?;
    }
    let (base_total, base_failed) = target_counts(http, &target).await?;
    let base_processed = processed(http, &setup.gateway).await?;
    let oci_before = oci_counts(in_process, http, &setup.gateway).await;

    // Through the stack.
    let cpu_before = in_process.then(process_cpu).flatten();
    let start = Instant::now();
    let route = Route::Gateway {
        url: format!("{}/stream/sync", setup.gateway),
        key: setup.key.clone(),
    };
    let load = offer(route, &target, args.messages, shape).await?;
    let ingest = load.acked as f64 / load.elapsed.as_secs_f64().max(1e-9);
    for (what, count) in &load.errors {
        eprintln!("bench: {count} POSTs failed: {what}");
    }
    // End to end: every acknowledged message handled by process (delivered, or durably
    // routed to an error stream: a permanent failure, or a message of the same key held
    // behind one to keep the key's order).
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut handled = 0;
    while Instant::now() < deadline {
        handled = processed(http, &setup.gateway)
            .await
            .unwrap_or(0)
            .saturating_sub(base_processed);
        if handled >= load.acked {
            break;
        }
        // Each GET /status costs the stack about 1.2 ms of CPU: polled every 50 ms, that is
        // about 1% of one core taken from the load, for at most 50 ms added to the run.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e2e_elapsed = start.elapsed();
    // CPU per handled message, the whole process (stack and load generator): steadier than
    // the rates on a machine other work shares.
    let cpu_per_message_us = match (cpu_before, in_process.then(process_cpu).flatten()) {
        (Some(b), Some(a)) if handled > 0 => {
            Some(((a.saturating_sub(b)).as_secs_f64() * 1e6 / handled as f64).round())
        }
        _ => None,
    };
    if handled < load.acked {
        eprintln!(
            "bench: only {handled} of {} acknowledged messages were handled within 300 s",
            load.acked
        );
    }
    let (total, failed) = target_counts(http, &target).await?;
    let reached = total.saturating_sub(base_total);
    let delivered = reached.saturating_sub(failed.saturating_sub(base_failed));
    let e2e = handled as f64 / e2e_elapsed.as_secs_f64().max(1e-9);
    let oci_after = oci_counts(in_process, http, &setup.gateway).await;
    let mut to_target = take_target_latencies(http, &target).await?;
    to_target.sort_unstable();
    let (rss, rss_note) = if in_process {
        (peak_rss_mb(), "stack and load generator in one process")
    } else {
        (
            stack_process(http, &setup.gateway).await["peak_rss_mb"].as_f64(),
            "the `datasync up` process",
        )
    };
    let per_1000 = |calls: Option<u64>| {
        calls
            .and_then(|c| (load.acked > 0).then(|| (c as f64 * 1000.0 / load.acked as f64).round()))
    };
    let diff = |pick: fn(&(u64, u64)) -> u64| match (&oci_before, &oci_after) {
        (Some(b), Some(a)) => Some(pick(a).saturating_sub(pick(b))),
        _ => None,
    };
    let oci_calls = diff(|c| c.0);
    let fn_calls = diff(|c| c.1);
    let oci_total = per_1000(oci_calls);
    let oci_functions = per_1000(fn_calls);
    // populate writes each acknowledged POST with one PutMessages: the rest of the functions'
    // calls are delivery (process, retry).
    let oci_delivery = per_1000(fn_calls.map(|c| c.saturating_sub(load.acked)));

    let ack = (pct(&load.latencies, 0.5), pct(&load.latencies, 0.99));
    let post = (pct(&to_target, 0.5), pct(&to_target, 0.99));
    let ratio = (direct_rate > 0.0).then(|| (e2e / direct_rate * 1000.0).round() / 1000.0);
    let at_rate = args.rate.is_some_and(|r| r >= 1000);
    let rate_note = if at_rate {
        ""
    } else {
        "judged with --rate 1000"
    };
    let max_mode = args.rate.is_none();
    let with_failures = (args.permanent_failure_rate - 0.1).abs() < 1e-9;
    let targets = json!({
        "end_to_end_msg_per_s": judged(Some(e2e.round()), ">= 3000 (aim 5000)", max_mode.then_some(e2e >= 3000.0),
            if max_mode { "" } else { "judged without --rate" }),
        "ack_latency_p99_ms": judged(ack.1, "<= 20 at 1000 msg/s", if at_rate { ack.1.map(|v| v <= 20.0) } else { None }, rate_note),
        "post_to_target_latency_p99_ms": judged(post.1, "<= 250 at 1000 msg/s",
            if at_rate { post.1.map(|v| v <= 250.0) } else { None },
            if post.1.is_none() { "no latency reached the demo target" } else { rate_note }),
        "oci_calls_per_1000_delivery": judged(oci_delivery, "<= 20 with 10% permanent failures",
            if with_failures { oci_delivery.map(|v| v <= 20.0) } else { None },
            if oci_delivery.is_none() { "the stack does not expose its OCI request count" }
            else if with_failures { "the functions' calls beyond populate's one PutMessages per acknowledged POST; the Service Connector's calls not counted" }
            else { "judged with --permanent-failure-rate 0.1" }),
        "peak_rss_mb": judged(rss.map(|r| (r * 10.0).round() / 10.0), "<= 150", rss.map(|r| r <= 150.0), rss_note),
    });
    let result = json!({
        "mode": if in_process { "in-process" } else { "running" },
        "messages": args.messages,
        "clients": args.clients,
        "payload_bytes": args.payload,
        "offered_rate": args.rate,
        "permanent_failure_rate": args.permanent_failure_rate,
        "acknowledged": load.acked,
        "post_errors": load.errors,
        "keys": args.keys,
        "handled": handled,
        "reached_target": reached,
        "delivered": delivered,
        "answered_400": reached - delivered,
        "duplicates": demo.as_ref().map(|d| d.duplicates()),
        "ingest_seconds": (load.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "end_to_end_seconds": (e2e_elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "ingest_msg_per_s": ingest.round(),
        "end_to_end_msg_per_s": e2e.round(),
        "ack_latency_ms": {"p50": ack.0, "p99": ack.1},
        "post_to_target_latency_ms": {"p50": post.0, "p99": post.1},
        "direct_baseline_msg_per_s": direct_rate.round(),
        "ratio_to_direct": ratio,
        "oci_calls": oci_calls,
        "oci_calls_by_functions": fn_calls,
        "oci_calls_per_1000_messages": oci_total,
        "oci_calls_per_1000_messages_functions": oci_functions,
        "oci_calls_per_1000_messages_delivery": oci_delivery,
        "peak_rss_mb": rss.map(|r| (r * 10.0).round() / 10.0),
        "cpu_per_message_us": cpu_per_message_us,
        "targets": targets,
    });
    let t = &result["targets"];
    println!(
        "ingest:              {ingest:.0} msg/s ({} of {} acknowledged in {:.1} s)",
        load.acked,
        args.messages,
        load.elapsed.as_secs_f64()
    );
    println!(
        "end to end:          {e2e:.0} msg/s ({handled} handled in {:.1} s; {reached} reached the target: {delivered} delivered, {} answered 400{}) {}",
        e2e_elapsed.as_secs_f64(),
        reached - delivered,
        demo.as_ref().map(|d| format!(", {} duplicates", d.duplicates())).unwrap_or_default(),
        label(&t["end_to_end_msg_per_s"])
    );
    println!(
        "ack latency:         p50 {} ms, p99 {} ms {}",
        fmt_opt(ack.0, 1),
        fmt_opt(ack.1, 1),
        label(&t["ack_latency_p99_ms"])
    );
    println!(
        "POST to target:      p50 {} ms, p99 {} ms {}",
        fmt_opt(post.0, 1),
        fmt_opt(post.1, 1),
        label(&t["post_to_target_latency_p99_ms"])
    );
    println!(
        "direct baseline:     {direct_rate:.0} msg/s; end to end / direct = {}",
        fmt_opt(ratio, 3)
    );
    println!(
        "OCI calls per 1,000: {} in all ({} calls, connector emulation included), {} by the functions, {} for delivery {}",
        fmt_opt(oci_total, 0),
        oci_calls.map_or_else(|| "n/a".to_owned(), |c| c.to_string()),
        fmt_opt(oci_functions, 0),
        fmt_opt(oci_delivery, 0),
        label(&t["oci_calls_per_1000_delivery"])
    );
    println!(
        "peak RSS:            {} MB {}",
        fmt_opt(rss, 1),
        label(&t["peak_rss_mb"])
    );
    if let Some(us) = cpu_per_message_us {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "CPU per message:     {us:.0} µs (stack and load generator, all threads; {cores} cores give {:.0} msg/s at this cost)",
            cores as f64 * 1e6 / us.max(1.0)
        );
    }
    Ok(result)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("datasync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_gives_the_median_and_the_range() {
        assert_eq!(spread(&mut []), None);
        assert_eq!(spread(&mut [7.0]), Some((7.0, 7.0, 7.0)));
        assert_eq!(spread(&mut [3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        // An even count: the middle two's mean.
        assert_eq!(spread(&mut [4.0, 1.0, 3.0, 2.0]), Some((2.5, 1.0, 4.0)));
    }
}
