//! Delivery callbacks (`docs/callbacks.md`): a sync request may name a `statusCallback`; when its
//! message's fate is final (delivered, or dead-lettered), process or retry POSTs a
//! [`CallbackBody`] to it, signed as Standard Webhooks do (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,…`, round2 §E) with the caller's secret from Vault
//! ([`callback_secret_name`]).
//!
//! A callback never changes its message's fate and never holds other messages back:
//! - it is sent only after the batch's deliveries are settled and its failures durably routed
//!   ([`Callbacks::send`] is called after `Deliverer::route`);
//! - all of a batch's callbacks go at once, each call within `callback_timeout_ms`, all of
//!   them within `callback_budget_ms` and the function's deadline (the bound on the time they
//!   add to an invocation);
//! - each is tried up to [`TRIES`] times in quick succession (5xx, 408, 429, a refused or
//!   reset connection); a host that timed out or refused every try is not called by this
//!   instance for a cool-down (30 s), so a dead endpoint costs one budget per cool-down
//!   rather than one per batch;
//! - one not taken within the invocation is written to the callback stream
//!   (`callback_stream_ocid`, [`queue`]) and sent again by the retry function's schedule
//!   ([`Callbacks::redeliver`]) with a growing wait, until a receiver takes it or its tries
//!   (`callback_retry_max_tries`) or age (`callback_retry_max_age_seconds`) are used up; a
//!   refusal no retry can change (3xx, most 4xx) abandons it at once. Its `webhook-id` is the
//!   same at every try, so a receiver that got it twice can tell;
//! - every try, every queuing and every abandonment is a `datasync_trace` event
//!   (`event = "callback"`, `detail` `queued` or `abandoned`), and the instance counts them
//!   ([`CallbackCounts`]).
//!
//! Calls go through the [`TargetClient`] (no redirects, internal addresses refused unless
//! `allow_private_targets`, on every resolution), as deliveries do.

mod body;
pub mod queue;
mod send;
mod settle;
mod sign;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest as _, Sha256};

use crate::deliver::Outcomes;
use crate::oci::secrets::SecretsClient;
use crate::oci::streaming::StreamClient;
use crate::secret_cache::{SecretCache, DEFAULT_TTL};
use crate::settings::CallbackSettings;
use crate::target::TargetClient;

pub use body::{settled, CallbackBody, CallbackError, CallbackStatus, Pending};
pub use queue::{QueueError, QueuedCallback};
pub use send::{CallbackCounts, MAX_IN_FLIGHT, TRIES};
pub use sign::{
    sign, webhook_id, SecretFormatError, SigningSecret, MAX_SECRET_BYTES, MIN_SECRET_BYTES,
    SECRET_PREFIX,
};

/// Time kept back from the function's deadline: callbacks end this long before it, so the
/// answer always gets out.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// The Vault secret holding `caller`'s callback signing secret (`whsec_…` text):
/// `ds-callback-<16 hex of SHA-256(caller)>`. Hashed because a caller name is whatever the
/// gateway's identity claim holds; within the `ds-` names the functions may read, and unlike
/// any [`scoped_secret_name`](crate::message::scoped_secret_name) (`ds-<16 hex>-…`).
pub fn callback_secret_name(caller: &str) -> String {
    let digest = Sha256::digest(caller.as_bytes());
    let mut out = String::with_capacity(28);
    out.push_str("ds-callback-");
    for byte in &digest[..8] {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The callback sender of one function instance. Cheap to clone.
#[derive(Clone)]
pub struct Callbacks {
    sender: Arc<send::Sender>,
    /// The Streaming client the callback stream is written with, when one is configured.
    queue: Option<StreamClient>,
    /// Where abandoned callbacks are counted (`CallbacksAbandoned`).
    metrics: Option<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("settings", &self.sender.settings)
            .finish_non_exhaustive()
    }
}

impl Callbacks {
    /// A sender calling through `client`, reading signing secrets of `vault` through `secrets`
    /// (each kept five minutes).
    pub fn new(
        client: TargetClient,
        secrets: SecretsClient,
        vault: impl Into<String>,
        settings: CallbackSettings,
    ) -> Self {
        Self {
            sender: Arc::new(send::Sender {
                client,
                secrets: SecretCache::new(secrets, vault, DEFAULT_TTL),
                settings,
                down: Mutex::new(HashMap::new()),
                sent: Default::default(),
                failed: Default::default(),
                queued: Default::default(),
                abandoned: Default::default(),
            }),
            queue: None,
            metrics: None,
        }
    }

    /// This sender counting abandoned callbacks in `metrics` (`CallbacksAbandoned`).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// This sender queuing callbacks that fail within their invocation in the configured
    /// callback stream (`callback_stream_ocid`) through `streams`; without that key, nothing
    /// changes.
    pub fn with_queue(mut self, streams: StreamClient) -> Self {
        if self.sender.settings.stream.is_some() {
            self.queue = Some(streams);
        }
        self
    }

    /// Sends the callbacks `outcomes` owe ([`settled`]) and returns by the earlier of
    /// `callback_budget_ms` from now and `deadline` less half a second (then the time of one
    /// PutMessages to the callback stream, for those to be tried again). Call it only once the
    /// batch's failures are durably routed. The counts of this batch.
    pub async fn send(&self, outcomes: &Outcomes, deadline: Instant) -> CallbackCounts {
        let pending = settled(outcomes, SystemTime::now());
        if pending.is_empty() {
            return CallbackCounts::default();
        }
        let now = Instant::now();
        let end = (now + self.sender.settings.budget).min(deadline - DEADLINE_MARGIN);
        let attempted = self.sender.send_all(&pending, end, TRIES).await;
        let tried: Vec<settle::Tried> = pending
            .into_iter()
            .map(|p| (p, None))
            .zip(attempted)
            .collect();
        self.settle(tried, Vec::new(), false)
            .await
            .unwrap_or_default()
    }

    /// Sends the queued callbacks `due` once each (the retry function, reading the callback
    /// stream), by `deadline` less half a second; writes those that failed and may be tried
    /// again, and `later` (read but not yet due) unchanged, back to the callback stream with
    /// one PutMessages; abandons the rest. The counts.
    ///
    /// # Errors
    /// A [`QueueError`] when the records could not be written back: the caller must then not
    /// commit its read position, so every record read is read again (a callback sent now may
    /// then be sent again, with the same `webhook-id`).
    pub async fn redeliver(
        &self,
        due: Vec<QueuedCallback>,
        later: Vec<QueuedCallback>,
        deadline: Instant,
    ) -> Result<CallbackCounts, QueueError> {
        let mut counts = CallbackCounts::default();
        let mut pending = Vec::with_capacity(due.len());
        let mut records = Vec::with_capacity(due.len());
        for record in due {
            match record.pending() {
                Ok(p) => {
                    pending.push(p);
                    records.push(record);
                }
                Err(e) => {
                    tracing::warn!(target: "datasync_trace", event = "callback", id = %record.body.id, caller = %record.caller, error = %format!("the queued URL does not parse: {e}"), detail = "abandoned", "callback abandoned");
                    counts.failed += 1;
                    counts.abandoned += 1;
                }
            }
        }
        let end = deadline - DEADLINE_MARGIN;
        let attempted = self.sender.send_all(&pending, end, 1).await;
        let tried = pending.into_iter().zip(records.into_iter().map(Some));
        let mut settled = self
            .settle(tried.zip(attempted).collect(), later, true)
            .await?;
        settled.add(counts);
        Ok(settled)
    }

    /// This instance's counts so far.
    pub fn totals(&self) -> CallbackCounts {
        CallbackCounts {
            sent: self.sender.sent.load(Ordering::Relaxed),
            failed: self.sender.failed.load(Ordering::Relaxed),
            queued: self.sender.queued.load(Ordering::Relaxed),
            abandoned: self.sender.abandoned.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_secret_names_are_per_caller_and_never_a_scoped_token_name() {
        let a = callback_secret_name("source");
        assert_eq!(a, callback_secret_name("source"));
        assert_ne!(a, callback_secret_name("other"));
        assert!(a.starts_with("ds-callback-") && a.len() == 12 + 16, "{a}");
        // A token's scoped name is ds-<16 hex>-<name>: "callback" is not 16 hex digits.
        assert!(!crate::message::scoped_secret_name("source", "x").starts_with("ds-callback-"));
    }
}
