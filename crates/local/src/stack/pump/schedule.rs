//! The retry schedule: every interval, calls the retry function's group mode once per
//! retryable error stream (`{"stream": <ocid>, "max": N}`, a plain invoke as a scheduler would
//! make).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::backoff::sleep_or_stop;
use crate::stack::host::{deadline, Pool};

/// What [`retry_schedule`] runs.
#[derive(Debug)]
pub struct RetrySchedule {
    /// The retry function.
    pub pool: Arc<Pool>,
    /// The OCIDs of the error streams it replays.
    pub streams: Vec<String>,
    /// Time between rounds.
    pub interval: Duration,
    /// Messages per call.
    pub max: u32,
    /// Counts completed rounds (the status page shows it).
    pub runs: Arc<AtomicU64>,
}

/// The body of a group-mode call, as the retry function reads it.
#[derive(Serialize)]
struct GroupModeRequest<'a> {
    stream: &'a str,
    max: u32,
}

/// Runs `schedule` until `stop`.
pub async fn retry_schedule(schedule: RetrySchedule, stop: CancellationToken) {
    let RetrySchedule {
        pool,
        streams,
        interval,
        max,
        runs,
    } = schedule;
    loop {
        if !sleep_or_stop(interval, &stop).await {
            return;
        }
        for stream in &streams {
            call(&pool, stream, max).await;
            if stop.is_cancelled() {
                return;
            }
        }
        runs.fetch_add(1, Ordering::Relaxed);
    }
}

/// One group-mode call for `stream`; failures are logged (the next round tries again).
async fn call(pool: &Pool, stream: &str, max: u32) {
    let Ok(body) = serde_json::to_vec(&GroupModeRequest { stream, max }) else {
        return;
    };
    let call_id = uuid::Uuid::now_v7().simple().to_string();
    let Ok(request) = fdk::agent::invoke_request(
        &call_id,
        deadline(),
        Some("application/json"),
        Bytes::from(body),
    ) else {
        return;
    };
    match pool.call(request).await {
        Ok(r) if r.status() == http::StatusCode::OK => {
            tracing::debug!(stream = %stream, answer = %String::from_utf8_lossy(r.body()), "retry schedule: done");
        }
        Ok(r) => {
            tracing::warn!(stream = %stream, status = %r.status(), answer = %String::from_utf8_lossy(r.body()), "retry schedule: the retry function failed")
        }
        Err(e) => {
            tracing::warn!(stream = %stream, error = %e, "retry schedule: calling the retry function failed")
        }
    }
}
