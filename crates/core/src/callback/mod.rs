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
//!   reset connection), then given up; a host that timed out or refused every try is not
//!   called by this instance for a cool-down (30 s), so a dead endpoint costs one budget per
//!   cool-down rather than one per batch;
//! - every try and every give-up is a `datasync_trace` event (`event = "callback"`), and the
//!   instance counts what was sent and given up ([`CallbackCounts`]).
//!
//! Calls go through the [`TargetClient`] (no redirects, internal addresses refused unless
//! `allow_private_targets`, on every resolution), as deliveries do.

mod body;
mod send;
mod sign;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest as _, Sha256};

use crate::deliver::Outcomes;
use crate::oci::secrets::SecretsClient;
use crate::secret_cache::{SecretCache, DEFAULT_TTL};
use crate::settings::CallbackSettings;
use crate::target::TargetClient;

pub use body::{settled, CallbackBody, CallbackError, CallbackStatus, Pending};
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
            }),
        }
    }

    /// Sends the callbacks `outcomes` owe ([`settled`]) and returns by the earlier of
    /// `callback_budget_ms` from now and `deadline` less half a second. Call it only once the
    /// batch's failures are durably routed. The counts of this batch.
    pub async fn send(&self, outcomes: &Outcomes, deadline: Instant) -> CallbackCounts {
        let pending = settled(outcomes, SystemTime::now());
        if pending.is_empty() {
            return CallbackCounts::default();
        }
        let now = Instant::now();
        let end = (now + self.sender.settings.budget).min(deadline - DEADLINE_MARGIN);
        let count = pending.len() as u64;
        // The tasks end by `end` on their own; this guard only keeps a stuck one from holding
        // the answer (dropping the set aborts them).
        let guard = end + Duration::from_millis(100);
        match tokio::time::timeout_at(guard.into(), self.sender.send_all(pending, end)).await {
            Ok(counts) => counts,
            Err(_) => {
                tracing::warn!(
                    callbacks = count,
                    "the batch's callbacks outran their budget"
                );
                self.sender.failed.fetch_add(count, Ordering::Relaxed);
                CallbackCounts {
                    sent: 0,
                    failed: count,
                }
            }
        }
    }

    /// This instance's counts so far.
    pub fn totals(&self) -> CallbackCounts {
        CallbackCounts {
            sent: self.sender.sent.load(Ordering::Relaxed),
            failed: self.sender.failed.load(Ordering::Relaxed),
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
