//! The embedded store: SQLite (rusqlite, bundled) in WAL mode.
//!
//! **Durability.** `journal_mode=WAL` with `synchronous=FULL`: every commit fsyncs the WAL
//! before the emulator answers, so an acknowledged write survives `kill -9` *and* a power loss
//! (`NORMAL` would survive only a process crash). The cost of that fsync is shared: one writer
//! thread owns the only write connection and commits everything queued while the previous
//! commit was syncing in one transaction (group commit), each request in its own savepoint so
//! one failing request does not undo its neighbours.
//!
//! **Reads** run on a small pool of read-only connections, concurrent with the writer (WAL),
//! and stream rows from the database: nothing holds a stream in memory.
//!
//! **Messages** live in a rowid table whose rowid encodes `(stream, partition, offset)` (see
//! [`message_rowid`]), so a partition is a contiguous range of the table's own B-tree: appends
//! are at the end of a range, reads and retention deletes are range scans, and no secondary
//! index is maintained.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Instant;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::error::{ApiError, EmulatorError};

/// Bits of the rowid holding the offset: offsets go up to 2^40 - 1 per partition.
pub const OFFSET_BITS: u32 = 40;
/// Bits holding the partition: up to 256 partitions per stream.
pub const PARTITION_BITS: u32 = 8;
/// The most partitions a stream can have.
pub const MAX_PARTITIONS: i64 = 1 << PARTITION_BITS;
/// The largest offset.
pub const MAX_OFFSET: i64 = (1 << OFFSET_BITS) - 1;
/// The most streams the store can ever create (internal ids are never reused).
pub const MAX_STREAM_ID: i64 = (1 << (63 - OFFSET_BITS - PARTITION_BITS)) - 1;

/// The rowid of a message: `stream << 48 | partition << 40 | offset`.
pub fn message_rowid(stream: i64, partition: i64, offset: i64) -> i64 {
    (stream << (OFFSET_BITS + PARTITION_BITS)) | (partition << OFFSET_BITS) | offset
}

/// The offset part of a message rowid.
pub fn rowid_offset(rowid: i64) -> i64 {
    rowid & MAX_OFFSET
}

/// The most jobs waiting for the writer; beyond it callers get 429 TooManyRequests.
const WRITE_QUEUE: usize = 4096;
/// The most jobs committed in one transaction.
const MAX_GROUP: usize = 1024;
/// Read connections kept open between reads.
const READ_POOL: usize = 4;
/// Page size of a new database: 8 KiB pages hold seven 1 KB messages with less per-page
/// overhead (and fewer WAL frames per megabyte) than the 4 KiB default.
const PAGE_SIZE: i64 = 8192;
/// WAL pages after which the writer itself checkpoints (a backstop: the checkpointer thread
/// normally copies the WAL into the database first, so the writer's checkpoint finds little
/// left to copy and lets the next transaction restart the WAL from its beginning).
const WRITER_AUTOCHECKPOINT: i64 = 4096;
/// The longest the writer waits for the clients it just answered to send their next request,
/// when that would make the next group larger (each group costs one fsync).
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_millis(2);
/// A group commit taking this long is logged: every request in it waited for the disk.
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(50);
/// The least time between two log lines about slow commits.
const SLOW_COMMIT_LOG: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the checkpointer waits after a commit before copying, to batch its fsyncs.
const CHECKPOINT_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// The objects table's definition after its name, for [`SCHEMA`] and [`migrate_objects`].
///
/// `data` comes last: SQLite reaches a column stored after a large value by walking that
/// value's overflow pages. With `data` third (as before), a HEAD, a precondition check or a
/// listing with `etag`/`timeCreated` read each object whole: listing 300 objects of 1 MiB took
/// 120 ms warm and 500 ms cold, against under 1 ms with `data` last (measured on SQLite
/// directly).
macro_rules! objects_table {
    () => {
        "(
    bucket TEXT NOT NULL, name TEXT NOT NULL, etag TEXT NOT NULL, md5 TEXT NOT NULL,
    content_type TEXT, created TEXT NOT NULL, meta TEXT, data BLOB NOT NULL,
    PRIMARY KEY(bucket, name))"
    };
}

const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys(key_id TEXT PRIMARY KEY, public_pem TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams(
    id INTEGER PRIMARY KEY AUTOINCREMENT, ocid TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    compartment TEXT NOT NULL, pool TEXT, partitions INTEGER NOT NULL,
    retention_hours INTEGER NOT NULL, state TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS partitions(
    stream INTEGER NOT NULL, part INTEGER NOT NULL, next_off INTEGER NOT NULL,
    last_ts INTEGER NOT NULL, PRIMARY KEY(stream, part)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages(
    id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, key BLOB, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS groups(
    stream INTEGER NOT NULL, name TEXT NOT NULL, gen INTEGER NOT NULL,
    PRIMARY KEY(stream, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_parts(
    stream INTEGER NOT NULL, name TEXT NOT NULL, part INTEGER NOT NULL,
    next_off INTEGER NOT NULL, committed INTEGER, instance TEXT, reserved_until INTEGER,
    PRIMARY KEY(stream, name, part)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_members(
    stream INTEGER NOT NULL, name TEXT NOT NULL, instance TEXT NOT NULL, alive_until INTEGER NOT NULL,
    PRIMARY KEY(stream, name, instance)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS secrets(
    ocid TEXT PRIMARY KEY, name TEXT NOT NULL, vault TEXT NOT NULL, compartment TEXT NOT NULL,
    key_id TEXT, description TEXT, metadata TEXT, state TEXT NOT NULL, created TEXT NOT NULL,
    deletion TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS secrets_by_name ON secrets(vault, name);
CREATE TABLE IF NOT EXISTS secret_versions(
    secret TEXT NOT NULL, version INTEGER NOT NULL, name TEXT, stages TEXT NOT NULL,
    created TEXT NOT NULL, sealed BLOB NOT NULL, PRIMARY KEY(secret, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topics(
    ocid TEXT PRIMARY KEY, name TEXT NOT NULL, compartment TEXT NOT NULL, description TEXT,
    created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notifications(
    id INTEGER PRIMARY KEY, topic TEXT NOT NULL, message_id TEXT NOT NULL, title TEXT,
    body TEXT NOT NULL, message_type TEXT, time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS buckets(
    name TEXT PRIMARY KEY, compartment TEXT NOT NULL, created TEXT NOT NULL, etag TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects",
    objects_table!(),
    ";
"
);

/// The objects table's columns, in order.
const OBJECT_COLUMNS: &str = "bucket, name, etag, md5, content_type, created, meta, data";

/// Rebuilds an objects table made by an earlier version, which kept `data` third, with
/// `data` last; one transaction, once per data directory.
fn migrate_objects(conn: &Connection) -> rusqlite::Result<()> {
    let last: Option<String> = conn
        .prepare("SELECT name FROM pragma_table_info('objects') ORDER BY cid DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .ok();
    if last.as_deref() != Some("meta") {
        return Ok(());
    }
    let count: i64 = conn.query_row("SELECT count(*) FROM objects", [], |r| r.get(0))?;
    tracing::info!(
        objects = count,
        "emulator: moving object data to the end of its rows (once)"
    );
    let rebuilt = conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         CREATE TABLE objects_data_last{};
         INSERT INTO objects_data_last({OBJECT_COLUMNS}) SELECT {OBJECT_COLUMNS} FROM objects;
         DROP TABLE objects;
         ALTER TABLE objects_data_last RENAME TO objects;
         COMMIT;",
        objects_table!()
    ));
    if rebuilt.is_err() {
        // Leaves the old table as it was; the error says why the emulator cannot open.
        let _ = conn.execute_batch("ROLLBACK");
    }
    rebuilt
}

/// Per-partition state the writer keeps between jobs: the next offset and the last timestamp.
#[derive(Debug, Default)]
pub struct WriterState {
    partitions: HashMap<(i64, i64), (i64, i64)>,
    /// A counter that spreads null-key messages over partitions.
    pub round_robin: u64,
}

impl WriterState {
    /// The next offset and last timestamp of a partition, loaded on first use.
    pub fn partition(
        &mut self,
        conn: &Connection,
        stream: i64,
        part: i64,
    ) -> Result<&mut (i64, i64), ApiError> {
        use std::collections::hash_map::Entry;
        match self.partitions.entry((stream, part)) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let row = conn
                    .prepare_cached(
                        "SELECT next_off, last_ts FROM partitions WHERE stream=?1 AND part=?2",
                    )?
                    .query_row([stream, part], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                    });
                match row {
                    Ok(v) => Ok(e.insert(v)),
                    Err(rusqlite::Error::QueryReturnedNoRows) => {
                        Err(ApiError::not_found("the partition"))
                    }
                    Err(err) => Err(err.into()),
                }
            }
        }
    }

    /// Forgets everything (after a rollback the cache may be ahead of the database).
    pub fn invalidate(&mut self) {
        self.partitions.clear();
    }
}

type Finish = Box<dyn FnOnce(bool) + Send>;
type Job = Box<dyn FnOnce(&Connection, &mut WriterState) -> (bool, Finish) + Send>;

/// The store: a handle on the writer thread and a pool of readers.
pub struct Store {
    path: PathBuf,
    writer: Mutex<Option<mpsc::SyncSender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpoint_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
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
    /// Opens (creating when absent) the database at `path` and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, EmulatorError> {
        let conn = Connection::open(path)?;
        configure(&conn)?;
        // Takes effect only on a new, empty database.
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(EmulatorError::Corrupt(format!(
                "cannot enable WAL (journal_mode is {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT)?;
        conn.execute_batch(SCHEMA)?;
        migrate_objects(&conn)?;
        let checkpointer = Connection::open(path)?;
        configure(&checkpointer)?;
        checkpointer.pragma_update(None, "synchronous", "FULL")?;
        checkpointer.pragma_update(None, "wal_autocheckpoint", 0)?;
        let (poke, poked) = mpsc::sync_channel::<()>(1);
        let checkpoint_thread = std::thread::Builder::new()
            .name("emulator-checkpointer".into())
            .spawn(move || checkpoint_loop(checkpointer, poked))
            .map_err(EmulatorError::io(
                "starting the checkpoint thread for",
                path,
            ))?;
        let (tx, rx) = mpsc::sync_channel::<Job>(WRITE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("emulator-writer".into())
            .spawn(move || writer_loop(conn, rx, poke))
            .map_err(EmulatorError::io("starting the writer thread for", path))?;
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            checkpoint_thread: Mutex::new(Some(checkpoint_thread)),
            readers: Mutex::new(Vec::new()),
        })
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
        let job: Job = Box::new(move |conn, state| {
            let result = f(conn, state);
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |committed| {
                let outcome = match result {
                    Ok(v) if committed => Ok(v),
                    Ok(_) => Err(ApiError::internal("the transaction could not be committed")),
                    Err(e) => Err(e),
                };
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

/// Runs one of the writer's fixed statements through the statement cache.
fn run(conn: &Connection, sql: &str) -> bool {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .is_ok()
}

/// Takes the jobs of the next group: those already queued, then, while fewer than `expected`
/// are in hand, whatever arrives within [`GATHER_WAIT`]. Returns false when the queue is
/// closed and empty.
fn gather(rx: &mpsc::Receiver<Job>, batch: &mut Vec<Job>, expected: usize) -> bool {
    if batch.is_empty() {
        match rx.recv() {
            Ok(job) => batch.push(job),
            Err(_) => return false,
        }
    }
    while batch.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    let expected = expected.min(MAX_GROUP);
    if batch.len() < expected {
        let deadline = Instant::now() + GATHER_WAIT;
        while batch.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
    }
    true
}

/// Group commits slower than [`SLOW_COMMIT`], logged at most once per [`SLOW_COMMIT_LOG`] so
/// that a slow disk says so without flooding the log.
#[derive(Default)]
struct SlowCommits {
    logged: Option<Instant>,
    /// Slow commits since the last line, and the slowest of them.
    count: u64,
    worst: std::time::Duration,
}

impl SlowCommits {
    /// Counts a commit that took `took`; true when it logged a line.
    fn note(&mut self, took: std::time::Duration, requests: usize) -> bool {
        if took < SLOW_COMMIT {
            return false;
        }
        self.count += 1;
        self.worst = self.worst.max(took);
        if self.logged.is_some_and(|at| at.elapsed() < SLOW_COMMIT_LOG) {
            return false;
        }
        tracing::warn!(
            ms = took.as_millis() as u64,
            requests,
            slow_commits = self.count,
            slowest_ms = self.worst.as_millis() as u64,
            "emulator: group commits (write and fsync) are slow; requests wait for the disk"
        );
        self.logged = Some(Instant::now());
        self.count = 0;
        self.worst = std::time::Duration::ZERO;
        true
    }
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>, checkpointer: mpsc::SyncSender<()>) {
    let mut state = WriterState::default();
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_GROUP);
    let mut finishes: Vec<Finish> = Vec::with_capacity(MAX_GROUP);
    // How many jobs the next group may expect: those that arrived while the last group was
    // committing, plus those the last group answers (their clients tend to send the next
    // request at once). A lone client expects only itself and never waits.
    let mut expected = 1;
    let mut slow = SlowCommits::default();
    while gather(&rx, &mut batch, expected) {
        let begun = run(&conn, "BEGIN IMMEDIATE");
        for job in batch.drain(..) {
            if !begun {
                let (_, finish) = job(&conn, &mut state);
                finishes.push(finish);
                continue;
            }
            let saved = run(&conn, "SAVEPOINT job");
            let (ok, finish) = job(&conn, &mut state);
            if saved {
                let ended = if ok {
                    run(&conn, "RELEASE job")
                } else {
                    run(&conn, "ROLLBACK TO job") && run(&conn, "RELEASE job")
                };
                if !ended {
                    state.invalidate();
                }
            }
            if !ok {
                state.invalidate();
            }
            finishes.push(finish);
        }
        // COMMIT returns once the WAL is fsynced (synchronous=FULL): only then are the
        // requests answered.
        let committing = Instant::now();
        let committed = begun && run(&conn, "COMMIT");
        slow.note(committing.elapsed(), finishes.len());
        if !committed {
            let _ = conn.execute_batch("ROLLBACK");
            state.invalidate();
            tracing::error!("emulator: a group commit failed; its requests get 500");
        }
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        expected = batch.len() + finishes.len();
        for finish in finishes.drain(..) {
            finish(committed);
        }
        let _ = checkpointer.try_send(());
    }
    drop(checkpointer);
    // Leave a checkpointed database behind on a clean shutdown.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}

/// Copies committed WAL pages into the database file off the writer thread (PASSIVE: never
/// blocks the writer or readers), a little after each burst of commits, so the writer spends
/// its time on new transactions rather than on checkpoints.
fn checkpoint_loop(conn: Connection, poked: mpsc::Receiver<()>) {
    while poked.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_DELAY);
        while poked.try_recv().is_ok() {}
        if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(%err, "emulator: background checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn slow_commits_are_logged_at_most_once_per_interval() {
        let mut slow = SlowCommits::default();
        let ms = std::time::Duration::from_millis;
        assert!(!slow.note(ms(5), 10), "a quick commit is not logged");
        assert!(slow.note(ms(80), 10), "the first slow commit is");
        assert!(
            !slow.note(ms(300), 10),
            "the next ones wait for the interval"
        );
        assert_eq!((slow.count, slow.worst), (1, ms(300)));
        slow.logged = Instant::now().checked_sub(SLOW_COMMIT_LOG);
        assert!(
            slow.note(ms(60), 10),
            "then the count and the slowest are logged"
        );
        assert_eq!(slow.count, 0);
    }

    #[test]
    fn rowids_keep_partitions_contiguous() {
        assert_eq!(rowid_offset(message_rowid(3, 7, 12345)), 12345);
        assert!(message_rowid(1, 255, MAX_OFFSET) < message_rowid(2, 0, 0));
        assert!(message_rowid(MAX_STREAM_ID, 255, MAX_OFFSET) > 0);
    }

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
