//! `datasync bench`: offers messages to a stack with the demo target (in-process, or a running
//! `datasync up`) and reports throughput, latencies, OCI calls and memory, each figure with the
//! target of issue #7 and whether it is met.

//!
//! - `setup`: the stack to measure (running, or started in-process).
//! - `load`: the load generator.
//! - `measure`: one round and its figures; `rounds`: the summary of several.
//! - `probe`: the demo target's and the stack's own figures.
//! - `results`: the serde types `--json` writes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use datasync_local::demo_target::Mode;
use datasync_local::target::ScriptedTarget;

mod isolation;
mod load;
mod measure;
mod probe;
pub mod results;
mod rounds;
mod route;
mod setup;

use measure::measure;
use results::{BenchResult, RoundsResult};
use setup::Setup;

/// Offers N messages (one per POST, C concurrent keep-alive clients) to a stack with the demo
/// target and prints ingest and end-to-end msg/s, p50/p99 acknowledgement and POST-to-target
/// latency, a direct baseline (the same clients straight to the demo target) and the ratio to
/// it, OCI calls per 1,000 messages and peak RSS, each with its target.
#[derive(Debug, Clone, clap::Args)]
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
  datasync bench --route
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
    /// Distinct stream keys, used in turn (0: a key per message). A batch with keyed
    /// messages reads the parked keys once (docs/ordering.md); a permanent failure holds
    /// nothing of its key back.
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
    /// Run the isolation scenario instead: a target host that never answers beside the demo
    /// target, offered through the gateway for --isolation-seconds at --rate (default 20
    /// msg/s) and a tenth of it; prints the healthy host's p50/p99 sync-to-delivery and the
    /// hanging host's attempts per message (in-process stack only).
    #[arg(long)]
    pub isolation: bool,
    /// Measure routes instead: the same load first in the sample's format, then as
    /// `{"route","streamKey","data"}` through a route with a filter and a four-field transform
    /// to the demo target; prints both end-to-end rates, the routes object's reads per 1,000
    /// messages and the programs' cost per message (in-process stack only).
    #[arg(long, conflicts_with_all = ["isolation", "url", "rounds"])]
    pub route: bool,
    /// How long the isolation scenario offers load (5 to 600 s).
    #[arg(long, value_name = "S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=600))]
    pub isolation_seconds: u64,
    /// Do not collect the functions' trace lines into the invoke log (in-process stack), to
    /// measure what the trace lines cost.
    #[arg(long)]
    pub no_trace_log: bool,
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let http = reqwest::Client::new();
        if args.isolation {
            return run_isolation(&args, &http).await;
        }
        if args.route {
            return route::run(&args, &http).await;
        }
        let setup = Setup::find_or_start(&args, &http, &[]).await?;
        let result = measure_rounds(&args, &http, &setup).await;
        if setup.stack.is_none() {
            let _ = probe::set_target_mode(&http, &setup.target, &Mode::default()).await;
        }
        setup.finish().await;
        let result = result?;
        if let Some(p) = &args.json {
            std::fs::write(p, serde_json::to_vec_pretty(&result)?)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        if result
            .rounds()
            .iter()
            .any(|r| r.acknowledged != args.messages)
        {
            eprintln!("bench: not every message was acknowledged (see the errors above)");
            return anyhow::Ok(ExitCode::FAILURE);
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// The isolation scenario against an in-process stack that allows the hanging target.
async fn run_isolation(args: &Args, http: &reqwest::Client) -> anyhow::Result<ExitCode> {
    if args.url.is_some() {
        anyhow::bail!("--isolation starts its own stack: it cannot run against --url");
    }
    let hanging = ScriptedTarget::hanging().await?;
    let setup = Setup::find_or_start(args, http, &[hanging.addr().to_string()]).await?;
    let result = isolation::run(args, http, &setup, &hanging).await;
    setup.finish().await;
    let result = result?;
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(&result)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs [`measure()`] `--rounds` times against the same stack. With more than one round, prints
/// and returns each figure's median and range and how many rounds met each target, beside the
/// rounds' own results.
async fn measure_rounds(
    args: &Args,
    http: &reqwest::Client,
    setup: &Setup,
) -> anyhow::Result<BenchResult> {
    if args.rounds == 1 {
        return Ok(BenchResult::One(Box::new(
            measure(args, http, setup).await?,
        )));
    }
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        eprintln!("bench: round {round} of {}", args.rounds);
        rounds.push(measure(args, http, setup).await?);
    }
    let summary = rounds::summarize(&rounds);
    Ok(BenchResult::Rounds(RoundsResult { rounds, summary }))
}
