//! The target hosts' health as the process and retry functions last reported it in their
//! answers (`"hosts":[...]`, `docs/isolation.md`): kept per function, newest report per host,
//! for `/status` and `datasync status`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use datasync_core::deliver::HostHealth;
use serde::Deserialize;

/// The part of a function's answer this reads.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    hosts: Vec<HostHealth>,
}

/// One function's latest report per host. With several instances each keeps its own breaker;
/// this shows whichever answered last about each host.
#[derive(Debug, Default)]
pub struct HostsSeen {
    hosts: Mutex<BTreeMap<String, HostHealth>>,
}

impl HostsSeen {
    /// Records the hosts an answer's body names (nothing when it names none).
    pub fn record(&self, body: &[u8]) {
        if !body.windows(8).any(|w| w == b"\"hosts\":") {
            return;
        }
        let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
            return;
        };
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        for h in answer.hosts {
            hosts.insert(h.host.clone(), h);
        }
    }

    /// The latest report of each host, by name.
    pub fn list(&self) -> Vec<HostHealth> {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use datasync_core::deliver::BreakerState;

    use super::*;

    #[test]
    fn the_newest_report_of_each_host_is_kept() {
        let seen = HostsSeen::default();
        seen.record(br#"{"delivered":1,"hosts":[{"host":"a:1","breaker":"open","probesInMs":5,"concurrency":3,"maxConcurrency":16}]}"#);
        seen.record(br#"{"delivered":1,"hosts":[{"host":"b:1","breaker":"closed","concurrency":16,"maxConcurrency":16}]}"#);
        seen.record(br#"{"delivered":1}"#);
        seen.record(b"not json \"hosts\":");
        let list = seen.list();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].breaker, BreakerState::Open);
        assert_eq!(list[0].probes_in_ms, Some(5));
        seen.record(br#"{"hosts":[{"host":"a:1","breaker":"closed","concurrency":16,"maxConcurrency":16}]}"#);
        assert_eq!(seen.list()[0].breaker, BreakerState::Closed);
    }
}
