//! The parked set in Object Storage: one JSON object, read at most once per batch
//! (`if-none-match` on the ETag last seen, so an unchanged set is a bodiless 304) and written
//! with `if-none-match: *` (the first park) or `if-match` on the ETag it was read at. A write
//! that loses a race (412) reads the newer set and applies the batch's changes to it again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::oci::client::OciError;
use crate::oci::objectstorage::{ObjectRef, ObjectStorageClient, Precondition};

use super::set::{Change, ParkedSet};

/// How many times a write is tried against a newer set before giving up.
const WRITE_TRIES: u32 = 16;

/// GetObjects of the parked set by this process (304s included).
static READS: AtomicU64 = AtomicU64::new(0);
/// PutObjects of the parked set by this process (those that lost a race included).
static WRITES: AtomicU64 = AtomicU64::new(0);

/// A metric: the parked set's reads (GetObject, 304 or 200 or 404) by every store of this
/// process since it started.
pub fn parked_reads() -> u64 {
    READS.load(Ordering::Relaxed)
}

/// A metric: the parked set's writes (conditional PutObject, lost races included) by every
/// store of this process since it started.
pub fn parked_writes() -> u64 {
    WRITES.load(Ordering::Relaxed)
}

/// Where the parked set is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedLocation {
    /// The Object Storage namespace.
    pub namespace: String,
    /// The bucket.
    pub bucket: String,
    /// The object name.
    pub object: String,
}

/// Why the parked set could not be read or written. The batch is then not acknowledged: its
/// order could not be checked or recorded.
#[derive(Debug, thiserror::Error)]
pub enum ParkedError {
    /// Object Storage failed.
    #[error("the parked-keys object {object}: {source}")]
    Storage {
        /// The object name.
        object: String,
        /// The error.
        #[source]
        source: Box<OciError>,
    },
    /// The stored object is not a parked set.
    #[error("the parked-keys object {object} is not a parked set: {source}")]
    Decode {
        /// The object name.
        object: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// Other instances kept changing the set.
    #[error("the parked-keys object {object} changed under {tries} writes in a row")]
    Contended {
        /// The object name.
        object: String,
        /// Writes tried.
        tries: u32,
    },
}

/// The parked set as read: its version (`None`: no object yet) and content.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The ETag it was read at.
    pub etag: Option<String>,
    /// The keys.
    pub set: Arc<ParkedSet>,
}

/// The shared parked set of every process and retry instance. Cheap to clone; keeps the last
/// version it saw, so a read of an unchanged set costs a 304.
#[derive(Debug, Clone)]
pub struct ParkedStore {
    client: ObjectStorageClient,
    location: Arc<ParkedLocation>,
    last: Arc<Mutex<Snapshot>>,
}

/// Milliseconds since the epoch at `t`.
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl ParkedStore {
    /// A store at `location`.
    pub fn new(client: ObjectStorageClient, location: ParkedLocation) -> Self {
        Self {
            client,
            location: Arc::new(location),
            last: Arc::new(Mutex::new(Snapshot::default())),
        }
    }

    /// Where it is.
    pub fn location(&self) -> &ParkedLocation {
        &self.location
    }

    fn object(&self) -> ObjectRef<'_> {
        ObjectRef {
            namespace: &self.location.namespace,
            bucket: &self.location.bucket,
            name: &self.location.object,
        }
    }

    fn storage(&self, e: OciError) -> ParkedError {
        ParkedError::Storage {
            object: self.location.object.clone(),
            source: Box::new(e),
        }
    }

    fn remembered(&self) -> Snapshot {
        self.last.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn remember(&self, snapshot: &Snapshot) {
        if let Ok(mut last) = self.last.lock() {
            *last = snapshot.clone();
        }
    }

    /// The current set: one GetObject (a 304 when it is the version last seen, an empty set
    /// when there is no object).
    ///
    /// # Errors
    /// [`ParkedError::Storage`] or [`ParkedError::Decode`].
    pub async fn read(&self) -> Result<Snapshot, ParkedError> {
        let known = self.remembered();
        READS.fetch_add(1, Ordering::Relaxed);
        let fetched = self
            .client
            .get_object_if_changed(self.object(), known.etag.as_deref())
            .await;
        let snapshot = match fetched {
            Ok(None) => return Ok(known),
            Ok(Some(content)) => Snapshot {
                set: Arc::new(serde_json::from_slice(&content.body).map_err(|source| {
                    ParkedError::Decode {
                        object: self.location.object.clone(),
                        source,
                    }
                })?),
                etag: content.etag,
            },
            Err(e) if e.status() == Some(404) => Snapshot::default(),
            Err(e) => return Err(self.storage(e)),
        };
        self.remember(&snapshot);
        Ok(snapshot)
    }

    /// Applies `changes` to `base` and writes the result on the condition that the set is
    /// still at `base`'s version; when it is not, reads the newer one and applies them to it.
    /// Nothing is written when they change nothing. Returns the set written.
    ///
    /// # Errors
    /// [`ParkedError`] when it could not be read or written, or kept changing.
    pub async fn commit(
        &self,
        mut base: Snapshot,
        changes: &[Change],
    ) -> Result<Snapshot, ParkedError> {
        for _ in 0..WRITE_TRIES {
            let now = epoch_ms(SystemTime::now());
            let mut next = (*base.set).clone();
            for change in changes {
                next.apply(change, now);
            }
            if next == *base.set {
                return Ok(base);
            }
            let body = serde_json::to_vec(&next).map_err(|source| ParkedError::Decode {
                object: self.location.object.clone(),
                source,
            })?;
            let condition = match &base.etag {
                Some(etag) => Precondition::Matches(etag),
                None => Precondition::Absent,
            };
            WRITES.fetch_add(1, Ordering::Relaxed);
            let put = self
                .client
                .put_object_if(
                    self.object(),
                    condition,
                    Bytes::from(body),
                    "application/json",
                )
                .await;
            match put {
                Ok(stored) => {
                    let written = Snapshot {
                        etag: stored.etag,
                        set: Arc::new(next),
                    };
                    self.remember(&written);
                    return Ok(written);
                }
                // Another instance wrote first (412), or created it first (409 on some
                // paths): read its version and apply ours to it.
                Err(e) if matches!(e.status(), Some(412 | 409)) => {
                    base = self.read().await?;
                }
                Err(e) => return Err(self.storage(e)),
            }
        }
        Err(ParkedError::Contended {
            object: self.location.object.clone(),
            tries: WRITE_TRIES,
        })
    }
}
