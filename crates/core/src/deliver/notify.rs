//! The last stage: one notification per batch with permanent failures, a
//! [`DeadLetterAlert`] naming each dead letter (id, key, class, status, attempts, size, where
//! the archive keeps it; a payload only with `notify_dead_letter_payloads`, never a header
//! value), within the topic's limits:
//!
//! - size: under 64 KB whatever the batch ([`alert`](super::alert));
//! - rate: a token bucket per instance ([`AlertSettings::per_minute`]); an alert over it is not
//!   published but counted and folded into the next one ([`HeldBack`]), so a burst of dead
//!   letters costs a few notifications, not one per message or batch;
//! - failures: a PublishMessage that fails is counted and logged, its alert folded into the
//!   next, and the batch still acknowledged (the messages are stored in the dead-letter stream).
//!
//! The counts ([`NotifyCounts`]) go in each route report, so the functions' answers and log
//! lines show them, and into process-wide totals ([`notify_totals`]) the local status page reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::classify::Route;
use crate::oci::notifications::NotificationsClient;
use crate::settings::{AlertSettings, Settings};

use super::alert::{AlertInput, DeadLetter, DeadLetterAlert, HeldBack};
use super::alert_rate::TokenBucket;
use super::route::RouteReport;

/// How this instance's notifications went, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyCounts {
    /// Notifications published.
    pub published: u64,
    /// PublishMessage calls that failed.
    pub publish_failures: u64,
    /// Alerts held back by the rate limit.
    pub held_back: u64,
    /// Dead letters of held-back or failed alerts not announced yet.
    pub unannounced: u64,
}

/// Process-wide totals of every [`Notifier`] (the local stack runs every function instance in
/// one process; its status page shows them).
static PUBLISHED: AtomicU64 = AtomicU64::new(0);
static PUBLISH_FAILURES: AtomicU64 = AtomicU64::new(0);
static HELD_BACK: AtomicU64 = AtomicU64::new(0);

/// Process-wide totals: notifications published, PublishMessage failures, alerts held back by
/// the rate limit (`unannounced` is per instance and left 0).
pub fn notify_totals() -> NotifyCounts {
    NotifyCounts {
        published: PUBLISHED.load(Ordering::Relaxed),
        publish_failures: PUBLISH_FAILURES.load(Ordering::Relaxed),
        held_back: HELD_BACK.load(Ordering::Relaxed),
        unannounced: 0,
    }
}

/// The rate limiter and what it held back.
#[derive(Debug)]
struct State {
    bucket: TokenBucket,
    held: HeldBack,
    counts: NotifyCounts,
}

/// Publishes the dead-letter alerts to the configured topic.
#[derive(Debug)]
pub(super) struct Notifier {
    client: NotificationsClient,
    /// The topic; none configured means nothing is announced.
    topic: Option<String>,
    /// The dead-letter stream, named in the alert.
    dead_letter: Option<String>,
    settings: AlertSettings,
    state: Mutex<State>,
}

/// What one announcement did.
#[derive(Clone, Copy)]
enum Sent {
    Published,
    HeldBack,
    Failed,
}

impl Notifier {
    pub(super) fn new(client: NotificationsClient, settings: &Settings) -> Self {
        Self {
            client,
            topic: settings.topic.clone(),
            dead_letter: settings.stream_for(Route::DeadLetter).map(str::to_owned),
            settings: settings.alerts,
            state: Mutex::new(State {
                bucket: TokenBucket::per_minute(settings.alerts.per_minute, Instant::now()),
                held: HeldBack::default(),
                counts: NotifyCounts::default(),
            }),
        }
    }

    /// Whether dead letters carry their payloads.
    pub(super) fn payloads(&self) -> bool {
        self.settings.payloads
    }

    /// The counts so far.
    pub(super) fn counts(&self) -> NotifyCounts {
        self.state.lock().map(|s| s.counts).unwrap_or_default()
    }

    /// Announces `dead` (the batch's dead letters; `source`: the batch's stream). Whether the
    /// alert was published; `None` when there is nothing to announce or no topic. A failure is
    /// counted and logged, not returned: the messages are already stored.
    pub(super) async fn announce(
        &self,
        report: &RouteReport,
        dead: Vec<DeadLetter>,
        source: &str,
    ) -> Option<bool> {
        let topic = self.topic.as_deref()?;
        if dead.is_empty() {
            return None;
        }
        let held = match self.take_token(&dead) {
            Some(held) => held,
            None => return Some(self.finish(Sent::HeldBack)),
        };
        let alert = DeadLetterAlert::new(AlertInput {
            report,
            dead,
            source,
            dead_letter_stream: self.dead_letter.as_deref(),
            held_back: (held.alerts > 0).then_some(held),
        });
        match self
            .client
            .publish_message(topic, &alert.to_message())
            .await
        {
            Ok(_) => Some(self.finish(Sent::Published)),
            Err(e) => {
                let failures = self.fold_back(&alert);
                tracing::warn!(
                    error = %e,
                    publish_failures = failures,
                    dead_letters = alert.dead_letters(),
                    "the dead-letter notification could not be published; it is folded into the next one"
                );
                Some(self.finish(Sent::Failed))
            }
        }
    }

    /// Takes a token and what was held back; `None` (after holding `dead` back) when the rate
    /// limit says wait.
    fn take_token(&self, dead: &[DeadLetter]) -> Option<HeldBack> {
        let Ok(mut s) = self.state.lock() else {
            return Some(HeldBack::default());
        };
        if s.bucket.try_take(Instant::now()) {
            s.counts.unannounced = 0;
            return Some(std::mem::take(&mut s.held));
        }
        s.held.add(dead.iter().map(|d| d.id.as_str()), dead.len());
        s.counts.unannounced = s.held.dead_letters;
        tracing::info!(
            dead_letters = dead.len(),
            unannounced = s.held.dead_letters,
            per_minute = self.settings.per_minute,
            "dead-letter notification held back by the rate limit; folded into the next one"
        );
        None
    }

    /// Puts a failed alert's dead letters back to be announced with the next one; the failures
    /// so far.
    fn fold_back(&self, alert: &DeadLetterAlert) -> u64 {
        let Ok(mut s) = self.state.lock() else {
            return 0;
        };
        let mut back = HeldBack::default();
        let ids = alert.messages.iter().map(|d| d.id.as_str());
        back.add(ids, alert.messages.len() + alert.not_listed);
        if let Some(earlier) = alert.held_back.clone() {
            back.merge(earlier);
        }
        s.held.merge(back);
        s.counts.unannounced = s.held.dead_letters;
        s.counts.publish_failures + 1
    }

    /// Counts what happened; whether it was published.
    fn finish(&self, sent: Sent) -> bool {
        let total = match sent {
            Sent::Published => &PUBLISHED,
            Sent::HeldBack => &HELD_BACK,
            Sent::Failed => &PUBLISH_FAILURES,
        };
        total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.state.lock() {
            let c = &mut s.counts;
            *match sent {
                Sent::Published => &mut c.published,
                Sent::HeldBack => &mut c.held_back,
                Sent::Failed => &mut c.publish_failures,
            } += 1;
        }
        matches!(sent, Sent::Published)
    }
}
