//! Whether the store's writes succeed: every failed write (a statement the database refused,
//! a commit that failed) is counted and the last one kept, so the status page and `datasync
//! status` can say that the database is failing, not only the log.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// The health of the store's writes, as [`StoreHealth::snapshot`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageHealth {
    /// Whether the last write succeeded (true before any write).
    pub writing: bool,
    /// Writes that failed since the emulator opened.
    pub failed_writes: u64,
    /// The last failure: why, and when.
    pub last_failure: Option<(String, SystemTime)>,
}

/// The counters behind [`StorageHealth`], updated by every write.
#[derive(Debug)]
pub(super) struct StoreHealth {
    failing: AtomicBool,
    failed: AtomicU64,
    last: Mutex<Option<(String, SystemTime)>>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        Self {
            failing: AtomicBool::new(false),
            failed: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }
}

impl StoreHealth {
    /// A write succeeded.
    pub(super) fn succeeded(&self) {
        self.failing.store(false, Ordering::Relaxed);
    }

    /// A write failed because of `why`.
    pub(super) fn failed(&self, why: &str) {
        let first = !self.failing.swap(true, Ordering::Relaxed);
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((why.to_owned(), SystemTime::now()));
        }
        if first {
            tracing::error!(
                error = why,
                "emulator: writing to the database failed; writes answer 503 until it recovers"
            );
        }
    }

    /// The health now.
    pub(super) fn snapshot(&self) -> StorageHealth {
        StorageHealth {
            writing: !self.failing.load(Ordering::Relaxed),
            failed_writes: self.failed.load(Ordering::Relaxed),
            last_failure: self.last.lock().ok().and_then(|l| l.clone()),
        }
    }
}
