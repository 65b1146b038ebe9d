//! The writer thread: group commit (everything queued while the last commit synced, one
//! savepoint per job), the per-partition state it keeps between jobs, and the checkpointer.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Instant;

use rusqlite::Connection;

use crate::error::ApiError;

/// The most jobs committed in one transaction.
const MAX_GROUP: usize = 1024;
/// The longest the writer waits for the clients it just answered to send their next request,
/// when that would make the next group larger (each group costs one fsync).
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_millis(2);
/// A group commit taking this long is logged: every request in it waited for the disk.
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(50);
/// The least time between two log lines about slow commits.
const SLOW_COMMIT_LOG: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the checkpointer waits after a commit before copying, to batch its fsyncs.
const CHECKPOINT_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

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

pub(super) type Finish = Box<dyn FnOnce(bool) + Send>;
pub(super) type Job = Box<dyn FnOnce(&Connection, &mut WriterState) -> (bool, Finish) + Send>;

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

pub(super) fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    checkpointer: mpsc::SyncSender<()>,
) {
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
pub(super) fn checkpoint_loop(conn: Connection, poked: mpsc::Receiver<()>) {
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
}
