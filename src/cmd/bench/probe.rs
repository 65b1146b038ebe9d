//! What the benchmark reads besides its own load: the demo target's counters and latencies
//! (through its `/_` controls, as the stack's own types), the stack's status document, and this
//! process's memory and CPU.

use std::time::Duration;

use anyhow::Context as _;
use datasync_local::demo_target::{Latencies, Mode, ReceivedReport};
use datasync_local::stack::status::{ProcessStatus, Status};

/// `GET url` as `T`.
async fn get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> anyhow::Result<T> {
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
        .with_context(|| format!("GET {url}: not the document expected"))
}

/// The stack's status document.
pub async fn status(http: &reqwest::Client, gateway: &str) -> anyhow::Result<Status> {
    get(http, &format!("{gateway}/status")).await
}

/// The demo target's counters: (total, failed).
pub async fn target_counts(http: &reqwest::Client, target: &str) -> anyhow::Result<(u64, u64)> {
    let report: ReceivedReport = get(http, &format!("{target}/_received?summary=1"))
        .await
        .context("reading the demo target's counters (is it a datasync demo target?)")?;
    Ok((report.total, report.failed))
}

/// Drains the demo target's POST-to-target latencies (µs) of benchmark payloads.
pub async fn take_target_latencies(
    http: &reqwest::Client,
    target: &str,
) -> anyhow::Result<Vec<u64>> {
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
    let latencies: Latencies = r
        .json()
        .await
        .context("the demo target's latencies are not as expected")?;
    Ok(latencies.latencies_us)
}

/// Tells the demo target how to answer.
pub async fn set_target_mode(
    http: &reqwest::Client,
    target: &str,
    mode: &Mode,
) -> anyhow::Result<()> {
    let r = http
        .post(format!("{target}/_control"))
        .json(mode)
        .send()
        .await
        .context("setting the demo target's failure mode")?;
    if !r.status().is_success() {
        anyhow::bail!(
            "the demo target refused {}: {}",
            serde_json::to_string(mode).unwrap_or_default(),
            r.status()
        );
    }
    Ok(())
}

/// (all OCI requests, those by the functions) of the stack process.
pub async fn oci_counts(
    in_process: bool,
    http: &reqwest::Client,
    gateway: &str,
) -> Option<(u64, u64)> {
    use datasync_core::oci::client::{oci_requests_sent, oci_requests_sent_by_resource_principals};
    if in_process {
        return Some((
            oci_requests_sent(),
            oci_requests_sent_by_resource_principals(),
        ));
    }
    let p = stack_process(http, gateway).await?;
    Some((p.oci_requests_sent, p.oci_requests_sent_by_functions))
}

/// Messages the data connector has handed to process and process has answered 200 for.
pub async fn processed(http: &reqwest::Client, gateway: &str) -> anyhow::Result<u64> {
    Ok(status(http, gateway).await?.processed_messages)
}

/// The stack process's figures, from its status document.
pub async fn stack_process(http: &reqwest::Client, gateway: &str) -> Option<ProcessStatus> {
    status(http, gateway).await.ok().map(|s| s.process)
}

/// The `p` percentile of `sorted` (µs), in ms.
pub fn pct(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)] as f64 / 1000.0)
}

/// This process's peak RSS in MB.
pub fn peak_rss_mb() -> Option<f64> {
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
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}
