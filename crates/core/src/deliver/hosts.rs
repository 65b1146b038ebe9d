//! Each target host's health, kept per function instance (in the
//! [`Deliverer`](super::Deliverer), across invocations): its circuit breaker, its adaptive
//! concurrency, its retry budget and the pause its `Retry-After` or `RateLimit-*` answers asked
//! for. [`Hosts::report`] is what the function's answer carries for the status page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::oci::models::MessageDetails;
use crate::oci::notifications::NotificationsClient;
use crate::settings::{Isolation, Settings};

use super::breaker::{Admission, Breaker, BreakerState, Transition};
use super::budget::Budget;
use super::concurrency::{Adaptive, Signal};
use super::gate::Cut;

/// One host's health as reported (the function's answer, `/status`, `datasync status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostHealth {
    /// `host[:port]`.
    pub host: String,
    /// The breaker's state.
    pub breaker: BreakerState,
    /// Milliseconds until an open breaker lets probes through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes_in_ms: Option<u64>,
    /// Calls in flight the adaptive limit allows now.
    pub concurrency: usize,
    /// Its ceiling (`per_host_concurrency` or the host override's).
    pub max_concurrency: usize,
    /// Milliseconds the host is still paused for (`Retry-After`, `RateLimit-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_ms: Option<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the value usable: a panic elsewhere does not make it wrong.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One host.
#[derive(Debug)]
pub(super) struct Host {
    name: String,
    max: usize,
    breaker: Mutex<Breaker>,
    budget: Mutex<Budget>,
    pub(super) adaptive: Arc<Adaptive>,
    paused_until: Mutex<Option<Instant>>,
    /// The longest a call ran before it was cut since the host last answered: a lower bound
    /// of its latency now.
    cut_floor: Mutex<Option<Duration>>,
}

impl Host {
    /// `host[:port]`.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Whether a call may go now (the breaker's word), and the state change it made.
    pub(super) fn admit(&self, now: Instant) -> (Admission, Option<Transition>) {
        lock(&self.breaker).admit(now)
    }

    /// Whether a retry may be attempted now (it takes its place in the budget).
    pub(super) fn take_retry(&self, now: Instant) -> bool {
        lock(&self.budget).take_retry(now)
    }

    /// Whether a retry should wait for a budget place that a retry in flight holds.
    pub(super) fn retry_must_wait(&self, now: Instant) -> bool {
        lock(&self.budget).must_wait(now)
    }

    /// A call let through that is not made after all: its probe or retry place is given back.
    pub(super) fn forgo(&self, probe: bool, retry: bool) {
        if probe {
            lock(&self.breaker).forgo_probe();
        }
        if retry {
            lock(&self.budget).give_back();
        }
    }

    /// Until when the host is paused, if it is.
    pub(super) fn paused_until(&self, now: Instant) -> Option<Instant> {
        lock(&self.paused_until).filter(|t| *t > now)
    }

    /// Pauses the host for `delay` (never shortening a longer pause).
    pub(super) fn pause(&self, delay: Duration, now: Instant) {
        let until = now + delay;
        let mut p = lock(&self.paused_until);
        if p.is_none_or(|t| t < until) {
            *p = Some(until);
        }
    }

    /// Records a finished call: the breaker, the budget, the adaptive limit and the cut floor
    /// learn from it. A call that ran its whole allowance unanswered weighs more with the
    /// breaker ([`Breaker::record_cut`]).
    pub(super) fn record(&self, call: Recorded, now: Instant) -> Option<Transition> {
        lock(&self.budget).record(call.retry, call.failed, now);
        self.adaptive.observe(call.signal, now);
        {
            let mut floor = lock(&self.cut_floor);
            if call.cut.is_some() {
                *floor = Some(floor.map_or(call.latency, |f| f.max(call.latency)));
            } else if call.answered {
                *floor = None;
            }
        }
        let mut breaker = lock(&self.breaker);
        match call.cut {
            Some(c) if c.whole_allowance => breaker.record_cut(call.probe, now),
            _ => breaker.record(call.probe, call.failed, now),
        }
    }

    /// The longest a call ran before it was cut since the host last answered.
    pub(super) fn cut_floor(&self) -> Option<Duration> {
        *lock(&self.cut_floor)
    }

    /// The running mean latency of answered calls.
    pub(super) fn mean_latency(&self) -> Option<Duration> {
        self.adaptive.mean_latency()
    }

    fn report(&self, now: Instant) -> HostHealth {
        let breaker = lock(&self.breaker);
        HostHealth {
            host: self.name.clone(),
            breaker: breaker.state(now),
            probes_in_ms: breaker.probes_in(now).map(millis),
            concurrency: self.adaptive.limit(),
            max_concurrency: self.max,
            paused_ms: self.paused_until(now).map(|t| millis(t - now)),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a finished call tells its host.
#[derive(Debug, Clone, Copy)]
pub(super) struct Recorded {
    /// It was a half-open probe.
    pub(super) probe: bool,
    /// Its message had been attempted before.
    pub(super) retry: bool,
    /// A transport error, a timeout or a retryable status (not 429, which pacing handles).
    pub(super) failed: bool,
    /// What it says about the host's capacity.
    pub(super) signal: Signal,
    /// The host answered (any status).
    pub(super) answered: bool,
    /// The host's share cut it.
    pub(super) cut: Option<Cut>,
    /// How long it ran.
    pub(super) latency: Duration,
}

/// Every host seen by this instance.
#[derive(Debug)]
pub(super) struct Hosts {
    settings: Isolation,
    map: Mutex<HashMap<String, Arc<Host>>>,
    announcer: Announcer,
}

impl Hosts {
    pub(super) fn new(settings: &Settings, notifications: NotificationsClient) -> Self {
        Self {
            settings: settings.isolation.clone(),
            map: Mutex::new(HashMap::new()),
            announcer: Announcer {
                client: notifications,
                topic: settings.topic.clone(),
                function: settings.function.name(),
            },
        }
    }

    /// The isolation settings.
    pub(super) fn settings(&self) -> &Isolation {
        &self.settings
    }

    /// `host`, created with a concurrency ceiling of `max` the first time it is seen.
    pub(super) fn get(&self, host: &str, max: usize) -> Arc<Host> {
        let mut map = lock(&self.map);
        if let Some(h) = map.get(host) {
            return Arc::clone(h);
        }
        let now = Instant::now();
        let h = Arc::new(Host {
            name: host.to_owned(),
            max: max.max(1),
            breaker: Mutex::new(Breaker::new(self.settings.breaker, now)),
            budget: Mutex::new(Budget::new(self.settings.budget, now)),
            adaptive: Arc::new(Adaptive::new(max)),
            paused_until: Mutex::new(None),
            cut_floor: Mutex::new(None),
        });
        map.insert(host.to_owned(), Arc::clone(&h));
        h
    }

    /// Every host's health, by name.
    pub(super) fn report(&self) -> Vec<HostHealth> {
        let now = Instant::now();
        let hosts: Vec<Arc<Host>> = lock(&self.map).values().cloned().collect();
        let mut list: Vec<HostHealth> = hosts.iter().map(|h| h.report(now)).collect();
        list.sort_by(|a, b| a.host.cmp(&b.host));
        list
    }

    /// Logs a breaker's state change and announces it once through Notifications (in the
    /// background: a message's fate never waits for it).
    pub(super) fn announce(&self, host: &str, change: Transition) {
        self.announcer
            .announce(host, change, self.settings.breaker.cool_down);
    }
}

/// Publishes breaker state changes.
#[derive(Debug)]
struct Announcer {
    client: NotificationsClient,
    topic: Option<String>,
    function: &'static str,
}

impl Announcer {
    /// Every change is logged; opening (from closed) and closing are published. The
    /// half-open round trips of a host that stays down are only logged, so an outage is
    /// announced once when it starts and once when it ends.
    fn announce(&self, host: &str, change: Transition, cool_down: Duration) {
        tracing::warn!(
            host = %host,
            from = change.from.as_str(),
            to = change.to.as_str(),
            "circuit breaker state changed"
        );
        let announced = change.from == BreakerState::Closed || change.to == BreakerState::Closed;
        let Some(topic) = self.topic.clone().filter(|_| announced) else {
            return;
        };
        let details = breaker_notice(self.function, host, change, cool_down);
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(e) = client.publish_message(&topic, &details).await {
                tracing::warn!(error = %e, "the breaker notification could not be published");
            }
        });
    }
}

/// The notification for one breaker state change: the host (never a URL, path or header).
pub(super) fn breaker_notice(
    function: &str,
    host: &str,
    change: Transition,
    cool_down: Duration,
) -> MessageDetails {
    let what = match change.to {
        BreakerState::Open => format!(
            "datasync {function} stopped calling {host}: it kept failing. Its messages go to the \
             service-unavailable stream untried; probes start in {} s.",
            cool_down.as_secs()
        ),
        BreakerState::HalfOpen => {
            format!("datasync {function} is probing {host} after its cool-down.")
        }
        BreakerState::Closed => {
            format!("datasync {function} calls {host} again: its probes succeeded.")
        }
    };
    MessageDetails {
        title: Some(format!(
            "datasync: circuit breaker for {host} is {}",
            change.to.as_str()
        )),
        body: what,
    }
}
