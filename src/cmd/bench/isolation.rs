//! `datasync bench --isolation`: one target host that never answers beside the healthy demo
//! target, both offered through the gateway at fixed rates (the hanging one at a tenth of the
//! healthy one's rate). Prints the healthy host's p50/p99 sync-to-delivery (POST to the demo
//! target's arrival) and the calls the hanging host received per message sent to it.

use std::time::{Duration, Instant};

use datasync_local::target::ScriptedTarget;
use serde::Serialize;

use super::load::{offer, Route, Shape};
use super::probe::{pct, take_target_latencies};
use super::setup::Setup;
use super::Args;

/// The isolation scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct IsolationResult {
    /// Messages offered to the healthy host.
    pub healthy_messages: u64,
    /// Its rate, msg/s.
    pub healthy_rate: u64,
    /// Deliveries to the healthy host measured.
    pub healthy_delivered: u64,
    /// Its sync-to-delivery median, in ms.
    pub healthy_p50_ms: Option<f64>,
    /// Its 99th percentile, in ms.
    pub healthy_p99_ms: Option<f64>,
    /// Its longest, in ms.
    pub healthy_max_ms: Option<f64>,
    /// Messages offered to the hanging host.
    pub hanging_messages: u64,
    /// The calls it received.
    pub hanging_calls: u64,
    /// Calls per message to the hanging host.
    pub hanging_attempts_per_message: f64,
}

/// Runs the scenario for `seconds` at `--rate` (default 20 msg/s) to the healthy host.
///
/// # Errors
/// When the load cannot be offered or the demo target not read.
pub async fn run(
    args: &Args,
    http: &reqwest::Client,
    setup: &Setup,
    hanging: &ScriptedTarget,
) -> anyhow::Result<IsolationResult> {
    let rate = args.rate.unwrap_or(20);
    let seconds = args.isolation_seconds;
    let healthy_n = rate * seconds;
    let hanging_rate = (rate / 10).max(1);
    let hanging_n = hanging_rate * seconds;
    eprintln!(
        "bench: isolation: {healthy_n} messages at {rate} msg/s to the demo target, \
         {hanging_n} at {hanging_rate} msg/s to a host that never answers ({seconds} s)"
    );
    take_target_latencies(http, &setup.target).await?;
    let route = Route::Gateway {
        url: format!("{}/stream/sync", setup.gateway),
        key: setup.key.clone(),
    };
    // A key per message, the hanging host's apart from the healthy one's: a key the hanging
    // host's message parks must not hold a healthy message back.
    let shape = |rate, key_prefix| Shape {
        clients: 4,
        payload: 256,
        rate: Some(rate),
        keys: 0,
        key_prefix,
        route: None,
    };
    let healthy = offer(route.clone(), &setup.target, healthy_n, shape(rate, ""));
    let hanging_base = hanging.url("");
    let hung = offer(
        route,
        &hanging_base,
        hanging_n,
        shape(hanging_rate, "hung-"),
    );
    let (healthy, hung) = tokio::join!(healthy, hung);
    let (healthy, hung) = (healthy?, hung?);
    // Wait (up to a minute) for every healthy message to arrive.
    let mut latencies = Vec::new();
    let waited = Instant::now();
    while (latencies.len() as u64) < healthy.acked && waited.elapsed() < Duration::from_secs(60) {
        latencies.extend(take_target_latencies(http, &setup.target).await?);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    latencies.sort_unstable();
    let calls = hanging.requests().len() as u64;
    let result = IsolationResult {
        healthy_messages: healthy.acked,
        healthy_rate: rate,
        healthy_delivered: latencies.len() as u64,
        healthy_p50_ms: pct(&latencies, 0.50),
        healthy_p99_ms: pct(&latencies, 0.99),
        healthy_max_ms: pct(&latencies, 1.0),
        hanging_messages: hung.acked,
        hanging_calls: calls,
        hanging_attempts_per_message: calls as f64 / hung.acked.max(1) as f64,
    };
    print(&result);
    Ok(result)
}

fn print(r: &IsolationResult) {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
    println!("isolation (one host hanging, one healthy)");
    println!(
        "  healthy host: {} of {} delivered at {} msg/s; sync-to-delivery p50 {}, p99 {}, max {}",
        r.healthy_delivered,
        r.healthy_messages,
        r.healthy_rate,
        ms(r.healthy_p50_ms),
        ms(r.healthy_p99_ms),
        ms(r.healthy_max_ms)
    );
    println!(
        "  hanging host: {} messages, {} calls received ({:.2} attempts per message)",
        r.hanging_messages, r.hanging_calls, r.hanging_attempts_per_message
    );
}
