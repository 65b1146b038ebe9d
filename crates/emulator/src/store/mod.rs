//! The embedded store: SQLite (rusqlite, bundled) in WAL mode.
//!
//! **Durability.** `journal_mode=WAL` with `synchronous=FULL`: every commit fsyncs the WAL
//! before the emulator answers, so an acknowledged write survives `kill -9` *and* a power loss
//! (`NORMAL` would survive only a process crash). The cost of that fsync is shared: one writer
//! thread owns the only write connection and commits everything queued while the previous
//! commit was syncing in one transaction (group commit), each request in its own savepoint so
//! one failing request does not undo its neighbours.
//!
//! **Logs** (Logging's tables: the functions' trace lines) live in a database file of their
//! own ([`crate::LOGS_DATABASE_FILE`]), with its own writer thread and `synchronous=NORMAL`:
//! a burst of trace lines never holds up a stream append's group commit, and a log commit
//! does not wait for an fsync. A power loss (not a process crash) may lose the last log
//! lines; the streams' durability is unchanged.
//!
//! **Reads** run on a small pool of read-only connections, concurrent with the writer (WAL),
//! and stream rows from the database: nothing holds a stream in memory.
//!
//! **Messages** live in a rowid table whose rowid encodes `(stream, partition, offset)` (see
//! [`message_rowid`]), so a partition is a contiguous range of the table's own B-tree: appends
//! are at the end of a range, reads and retention deletes are range scans, and no secondary
//! index is maintained.

mod health;
mod integrity;
pub(crate) mod logs;
pub(crate) mod metrics;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

pub use health::StorageHealth;
pub use schema::{message_rowid, rowid_offset, MAX_OFFSET, MAX_PARTITIONS, MAX_STREAM_ID};
pub use writer::WriterState;

use crate::error::{ApiError, EmulatorError};
use health::StoreHealth;
use schema::{migrate_objects, SCHEMA};
use writer::{checkpoint_loop, writer_loop, Finish, Job};

/// The most jobs waiting for the writer; beyond it callers get 429 TooManyRequests.
const WRITE_QUEUE: usize = 4096;
/// Read connections kept open between reads.
const READ_POOL: usize = 4;
/// Page size of a new database: 8 KiB pages hold seven 1 KB messages with less per-page
/// overhead (and fewer WAL frames per megabyte) than the 4 KiB default.
const PAGE_SIZE: i64 = 8192;
/// WAL pages after which the writer itself checkpoints (a backstop: the checkpointer thread
/// normally copies the WAL into the database first, so the writer's checkpoint finds little
/// left to copy and lets the next transaction restart the WAL from its beginning).
const WRITER_AUTOCHECKPOINT: i64 = 4096;

/// What a store holds, and so how it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout<'a> {
    /// Everything but logs, `synchronous=FULL`; logs an earlier version kept here are moved to
    /// the logs database at `move_logs_to`.
    Main { move_logs_to: Option<&'a Path> },
    /// Logging's tables only, `synchronous=NORMAL`.
    Logs,
}

/// The store: a handle on the writer thread and a pool of readers.
pub struct Store {
    path: PathBuf,
    writer: Mutex<Option<mpsc::SyncSender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpoint_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    health: std::sync::Arc<StoreHealth>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Bounds a connection's memory: 2 MiB of page cache, no memory map (a mapped 1 GB database
/// would count in the process RSS as it is read).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "cache_size", -2048)?;
    conn.pragma_update(None, "mmap_size", 0)?;
    Ok(())
}

impl Store {
    /// Opens (creating when absent) the main database at `path`, checks its integrity (`PRAGMA
    /// quick_check`) and starts the writer thread.
    ///
    /// # Errors
    /// [`EmulatorError::Damaged`] when the database is damaged; [`EmulatorError::Database`]
    /// when it cannot be opened or set up.
    #[cfg(test)]
    pub fn open(path: &Path) -> Result<Self, EmulatorError> {
        Self::open_layout(path, Layout::Main { move_logs_to: None })
    }

    /// Like [`Store::open`], and moves the log tables an earlier version kept in the main
    /// database into the logs database at `logs` (open that one first, with
    /// [`Store::open_logs`]).
    ///
    /// # Errors
    /// As [`Store::open`]; also when the move fails (nothing is lost: it is retried on the
    /// next open).
    pub fn open_main(path: &Path, logs: &Path) -> Result<Self, EmulatorError> {
        Self::open_layout(
            path,
            Layout::Main {
                move_logs_to: Some(logs),
            },
        )
    }

    /// Opens (creating when absent) the logs database at `path` (see the module intro).
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_logs(path: &Path) -> Result<Self, EmulatorError> {
        Self::open_layout(path, Layout::Logs)
    }

    fn open_layout(path: &Path, layout: Layout<'_>) -> Result<Self, EmulatorError> {
        let conn = Connection::open(path).map_err(integrity::opening(path))?;
        configure(&conn).map_err(integrity::opening(path))?;
        integrity::quick_check(&conn, path)?;
        // Takes effect only on a new, empty database.
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(integrity::opening(path))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(EmulatorError::Corrupt(format!(
                "cannot enable WAL (journal_mode is {mode})"
            )));
        }
        let synchronous = match layout {
            Layout::Main { .. } => "FULL",
            Layout::Logs => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT)?;
        let name = match layout {
            Layout::Main { move_logs_to } => {
                conn.execute_batch(SCHEMA)?;
                migrate_objects(&conn)?;
                if let Some(to) = move_logs_to {
                    logs::move_logs(&conn, to)?;
                }
                "emulator"
            }
            Layout::Logs => {
                conn.execute_batch(logs::LOGS_SCHEMA)?;
                "emulator-logs"
            }
        };
        let checkpointer = Connection::open(path)?;
        configure(&checkpointer)?;
        checkpointer.pragma_update(None, "synchronous", synchronous)?;
        checkpointer.pragma_update(None, "wal_autocheckpoint", 0)?;
        let (poke, poked) = mpsc::sync_channel::<()>(1);
        let checkpoint_thread = std::thread::Builder::new()
            .name(format!("{name}-checkpointer"))
            .spawn(move || checkpoint_loop(checkpointer, poked))
            .map_err(EmulatorError::io(
                "starting the checkpoint thread for",
                path,
            ))?;
        let (tx, rx) = mpsc::sync_channel::<Job>(WRITE_QUEUE);
        let thread = std::thread::Builder::new()
            .name(format!("{name}-writer"))
            .spawn(move || writer_loop(conn, rx, poke))
            .map_err(EmulatorError::io("starting the writer thread for", path))?;
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            checkpoint_thread: Mutex::new(Some(checkpoint_thread)),
            readers: Mutex::new(Vec::new()),
            health: std::sync::Arc::default(),
        })
    }

    /// Whether writes succeed, how many failed, and the last failure.
    pub fn health(&self) -> StorageHealth {
        self.health.snapshot()
    }

    /// Runs `f` on the writer, inside the next group-committed transaction, and returns its
    /// result once that transaction is durable. An `Err` from `f` rolls back `f`'s changes only.
    ///
    /// # Errors
    /// `f`'s error; 429 when the write queue is full; 500 when the commit fails.
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut WriterState) -> Result<T, ApiError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, ApiError>>();
        let health = std::sync::Arc::clone(&self.health);
        let job: Job = Box::new(move |conn, state| {
            let result = f(conn, state);
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |committed| {
                let outcome = match result {
                    Ok(v) if committed => Ok(v),
                    Ok(_) => Err(ApiError::storage("the transaction could not be committed")),
                    Err(e) => Err(e),
                };
                // A 4xx is the request's fault; a 5xx from a write is the database's.
                match &outcome {
                    Ok(_) => health.succeeded(),
                    Err(e) if e.status.is_server_error() => health.failed(&e.message),
                    Err(_) => {}
                }
                let _ = reply.send(outcome);
            });
            (ok, finish)
        });
        {
            let guard = self.writer.lock().map_err(|_| ApiError::unavailable())?;
            let sender = guard.as_ref().ok_or_else(ApiError::unavailable)?;
            match sender.try_send(job) {
                Ok(()) => {}
                Err(mpsc::TrySendError::Full(_)) => return Err(ApiError::too_many_requests()),
                Err(mpsc::TrySendError::Disconnected(_)) => return Err(ApiError::unavailable()),
            }
        }
        answer.await.map_err(|_| ApiError::unavailable())?
    }

    /// Runs `f` on a read-only connection on the blocking pool.
    ///
    /// # Errors
    /// `f`'s error, or 500 when no connection can be opened.
    pub async fn read<T, F>(self: &std::sync::Arc<Self>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
    {
        let store = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .map_err(|e| ApiError::internal(format!("read task failed: {e}")))?
    }

    /// Like [`Store::read`], on the calling thread.
    pub fn read_blocking<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&conn)?;
                conn
            }
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < READ_POOL {
                pool.push(conn);
            }
        }
        result
    }

    /// Stops the writer after the jobs already queued, and waits for it.
    pub fn close(&self) {
        if let Ok(mut writer) = self.writer.lock() {
            writer.take();
        }
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        // The writer's exit closed the checkpointer's channel.
        let handle = self
            .checkpoint_thread
            .lock()
            .ok()
            .and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        if let Ok(mut pool) = self.readers.lock() {
            pool.clear();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn a_failing_job_does_not_undo_its_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let a = store.write(|c, _| Ok(c.execute("INSERT INTO meta VALUES('a','1')", [])?));
        let b = store.write(|c, _| -> Result<(), ApiError> {
            c.execute("INSERT INTO meta VALUES('b','1')", [])?;
            Err(ApiError::invalid("no"))
        });
        let (a, b) = tokio::join!(a, b);
        assert!(a.is_ok());
        assert!(b.is_err());
        let n: i64 = store
            .read(|c| Ok(c.query_row("SELECT count(*) FROM meta", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
}
