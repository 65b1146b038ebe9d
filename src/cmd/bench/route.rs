//! `datasync bench --route`: the same load in the sample's format and then through a route (a
//! filter and a four-field transform), against one in-process stack, so the two end-to-end
//! rates stand side by side; with the routes object's reads per 1,000 routed messages (from
//! the emulator's count of GetObject and HeadObject on it) and what the route's programs cost
//! per message (timed here, on the bench's own payload, with the functions' code).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use datasync_core::routes::{Input, RouteSet};
use serde::{Deserialize, Serialize};

use super::measure::measure;
use super::results::RoundResult;
use super::setup::Setup;
use super::Args;

/// The route the routed load names.
pub const BENCH_ROUTE: &str = "bench";

/// The bench route to the demo target at `target` (`http://host:port`): a filter every bench
/// message passes, and a transform keeping four fields (`benchSentUs` among them, so the demo
/// target still measures POST-to-target latency).
pub fn route_toml(target: &str) -> String {
    format!(
        r#"
[[routes]]
name = "{BENCH_ROUTE}"
target = "{target}/bench"
operation = "POST"
filter = '.benchSentUs > 0 and .total >= 0'
transform = '{{benchSentUs: .benchSentUs, id: .id, amount: .total, pad: .pad}}'
"#
    )
}

/// What `--route --json FILE` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteBenchResult {
    /// The load in the sample's format.
    pub sample: RoundResult,
    /// The same load through the bench route.
    pub route: RoundResult,
    /// Routed end to end over sample end to end.
    pub route_to_sample: Option<f64>,
    /// GetObject and HeadObject calls on the routes object per 1,000 routed messages.
    pub routes_object_reads_per_1000_messages: f64,
    /// The filter and the transform of one bench message, in µs (timed in the bench process).
    pub programs_us_per_message: f64,
}

/// Runs both rounds against a stack started here with the bench route.
pub async fn run(args: &Args, http: &reqwest::Client) -> anyhow::Result<ExitCode> {
    if args.url.is_some() {
        anyhow::bail!(
            "--route starts its own stack with the bench route: it cannot run against --url"
        );
    }
    let addr = free_loopback()?;
    let target = format!("http://{addr}");
    let routes = datasync_local::stack::StackConfig::parse(&route_toml(&target))?.routes;
    let programs_us = time_programs(&routes, args.payload)?;
    let setup = Setup::in_process_with(args, &[], addr, routes).await?;
    let result = rounds(args, http, &setup, programs_us).await;
    setup.finish().await;
    let result = result?;
    println!(
        "route vs sample:     end to end {:.0} msg/s routed, {:.0} msg/s in the sample's format (routed / sample = {}); routes object reads per 1,000 messages: {:.2}; filter and transform: {:.1} µs per message",
        result.route.end_to_end_msg_per_s,
        result.sample.end_to_end_msg_per_s,
        result
            .route_to_sample
            .map_or_else(|| "n/a".to_owned(), |r| format!("{r:.3}")),
        result.routes_object_reads_per_1000_messages,
        result.programs_us_per_message,
    );
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(&result)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let all_acked = [&result.sample, &result.route]
        .iter()
        .all(|r| r.acknowledged == args.messages);
    if !all_acked {
        eprintln!("bench: not every message was acknowledged (see the errors above)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The sample round, then the routed round with the routes object's reads counted.
async fn rounds(
    args: &Args,
    http: &reqwest::Client,
    setup: &Setup,
    programs_us: f64,
) -> anyhow::Result<RouteBenchResult> {
    let mut sample_args = args.clone();
    sample_args.route = false;
    eprintln!("bench: the sample's format");
    let sample = measure(&sample_args, http, setup).await?;
    // The object as the stack configured the functions with it: `bucket/object`.
    let reads = || {
        let Some(stack) = &setup.stack else { return 0 };
        let object = stack.info().routes_object.clone().unwrap_or_default();
        let (bucket, name) = object.split_once('/').unwrap_or_default();
        stack.emulator().object_reads(bucket, name)
    };
    let before = reads();
    eprintln!("bench: through the route {BENCH_ROUTE:?}");
    let route = measure(args, http, setup).await?;
    let read = reads().saturating_sub(before);
    let per_1000 = if route.acknowledged > 0 {
        read as f64 * 1000.0 / route.acknowledged as f64
    } else {
        0.0
    };
    Ok(RouteBenchResult {
        route_to_sample: (sample.end_to_end_msg_per_s > 0.0).then(|| {
            (route.end_to_end_msg_per_s / sample.end_to_end_msg_per_s * 1000.0).round() / 1000.0
        }),
        routes_object_reads_per_1000_messages: (per_1000 * 100.0).round() / 100.0,
        programs_us_per_message: programs_us,
        sample,
        route,
    })
}

/// The bench route's filter and transform on a bench message of `payload` bytes, µs each.
fn time_programs(routes: &[toml::Table], payload: u64) -> anyhow::Result<f64> {
    let set: RouteSet = datasync_local::stack::config::routes::parse(routes)?;
    let route = set
        .get(BENCH_ROUTE)
        .ok_or_else(|| anyhow::anyhow!("the bench route did not compile"))?;
    let data = serde_json::json!({
        "benchSentUs": 1_700_000_000_000_000u64,
        "id": 7,
        "total": 12.5,
        "pad": "x".repeat((payload as usize).saturating_sub(80)),
        "junk": true,
    })
    .to_string();
    const N: u32 = 2000;
    let start = Instant::now();
    for _ in 0..N {
        // As populate (the filter) and process (the transform) each read the data.
        let input = Input::from_json(&data).map_err(|e| anyhow::anyhow!(e))?;
        anyhow::ensure!(
            route.filter_input(&input)?,
            "the bench filter left out its message"
        );
        let input = Input::from_json(&data).map_err(|e| anyhow::anyhow!(e))?;
        route.resolve_input(&input)?;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    Ok((us * 10.0).round() / 10.0)
}

/// A free loopback address (bound and released) for the demo target, so the route can name it
/// before the stack starts.
fn free_loopback() -> anyhow::Result<std::net::SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}
