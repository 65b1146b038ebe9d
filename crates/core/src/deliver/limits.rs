//! How many calls may be in flight: per target host (so one slow host cannot take every
//! slot), then per invocation. Both live as long as the [`Deliverer`](super::Deliverer), so
//! a host's limit holds across invocations of one function instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The semaphores: one for the invocation's calls, one per host.
#[derive(Debug)]
pub(super) struct Limits {
    global: Arc<Semaphore>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A call's turn: its host's permit and the invocation's, released when dropped.
#[derive(Debug)]
pub(super) struct Turn {
    _host: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

impl Limits {
    /// At most `max_concurrency` calls in flight in all (at least one).
    pub(super) fn new(max_concurrency: usize) -> Self {
        Self {
            global: Arc::new(Semaphore::new(max_concurrency.max(1))),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// `host`'s semaphore, created with `limit` permits the first time the host is seen.
    fn host(&self, host: &str, limit: usize) -> Arc<Semaphore> {
        match self.hosts.lock() {
            Ok(mut hosts) => Arc::clone(
                hosts
                    .entry(host.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(limit))),
            ),
            // A poisoned map (a panic while it was held) still leaves the global bound.
            Err(_) => Arc::new(Semaphore::new(limit)),
        }
    }

    /// Waits for a turn to call `host` (`limit` calls to it at once), giving up at `start_by`.
    /// The host's permit comes first, then the invocation's: a message waiting for a busy host
    /// must not hold a slot that a message to another host could use.
    pub(super) async fn turn(&self, host: &str, limit: usize, start_by: Instant) -> Option<Turn> {
        let host = self.host(host, limit);
        let global = Arc::clone(&self.global);
        tokio::time::timeout_at(start_by.into(), async move {
            let host = host.acquire_owned().await.ok()?;
            let global = global.acquire_owned().await.ok()?;
            Some(Turn {
                _host: host,
                _global: global,
            })
        })
        .await
        .ok()
        .flatten()
    }
}
