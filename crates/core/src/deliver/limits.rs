//! How many calls may be in flight: per target host (its adaptive limit, in `concurrency`, so
//! one slow host cannot take every slot), then per invocation. Both live as long as the
//! [`Deliverer`](super::Deliverer), so a host's limit holds across invocations of one
//! function instance.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::concurrency::{Adaptive, Slot};

/// The invocation's semaphore (the hosts' limits are theirs).
#[derive(Debug)]
pub(super) struct Limits {
    global: Arc<Semaphore>,
}

/// A call's turn: its host's place and the invocation's permit, released when dropped.
#[derive(Debug)]
pub(super) struct Turn {
    _host: Slot,
    _global: OwnedSemaphorePermit,
}

impl Limits {
    /// At most `max_concurrency` calls in flight in all (at least one).
    pub(super) fn new(max_concurrency: usize) -> Self {
        Self {
            global: Arc::new(Semaphore::new(max_concurrency.max(1))),
        }
    }

    /// Waits for a turn to call a host (under its adaptive limit), giving up at `start_by`.
    /// The host's place comes first, then the invocation's: a message waiting for a busy host
    /// must not hold a slot that a message to another host could use.
    pub(super) async fn turn(&self, host: &Arc<Adaptive>, start_by: Instant) -> Option<Turn> {
        let global = Arc::clone(&self.global);
        tokio::time::timeout_at(start_by.into(), async move {
            let host = host.acquire().await;
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
