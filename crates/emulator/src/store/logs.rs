//! Logging's tables: log groups, logs, and their records (one row per log line).
//!
//! A record keeps its time, its log (by the log's integer id), the function that wrote it
//! (`subject`) and the line itself; `msg_id` and `msg_key` are the trace line's `id` and
//! `key` fields, extracted when the record is written, each with its own index, so a
//! message's or a key's timeline is an index lookup whatever the store holds. Everything else
//! an entry carries (the log's OCIDs, the application) is the log's, joined when read.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension as _};

use crate::error::ApiError;

/// The tables, created when absent.
pub(crate) const LOGS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log_groups(
    ocid TEXT PRIMARY KEY, name TEXT NOT NULL, compartment TEXT NOT NULL, created TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS log_groups_by_name ON log_groups(compartment, name);
CREATE TABLE IF NOT EXISTS logs(
    id INTEGER PRIMARY KEY AUTOINCREMENT, ocid TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    log_group TEXT NOT NULL, compartment TEXT NOT NULL, source TEXT NOT NULL,
    application_id TEXT NOT NULL, retention_hours INTEGER NOT NULL, created TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS logs_by_name ON logs(log_group, name);
CREATE TABLE IF NOT EXISTS log_records(
    id INTEGER PRIMARY KEY, log INTEGER NOT NULL, ts INTEGER NOT NULL, subject TEXT NOT NULL,
    msg_id TEXT, msg_key TEXT, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS log_records_by_time ON log_records(log, ts);
CREATE INDEX IF NOT EXISTS log_records_by_id ON log_records(msg_id) WHERE msg_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS log_records_by_key ON log_records(msg_key, ts) WHERE msg_key IS NOT NULL;
";

/// Moves the log tables an earlier version kept in the main database (`conn`, outside any
/// transaction) into the logs database at `to` (already created), then drops them from the
/// main one; nothing when there are none. Each database commits on its own: a crash in
/// between leaves the rows in both, and the next open copies again, skipping what is there.
pub(crate) fn move_logs(conn: &Connection, to: &Path) -> rusqlite::Result<()> {
    let present: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'log_records'",
        [],
        |r| r.get(0),
    )?;
    if present == 0 {
        return Ok(());
    }
    conn.execute(
        "ATTACH DATABASE ?1 AS logs_db",
        [to.to_string_lossy().as_ref()],
    )?;
    let moved = conn.execute_batch(
        "BEGIN IMMEDIATE;
         INSERT OR IGNORE INTO logs_db.log_groups(ocid, name, compartment, created)
             SELECT ocid, name, compartment, created FROM main.log_groups;
         INSERT OR IGNORE INTO logs_db.logs(id, ocid, name, log_group, compartment, source,
             application_id, retention_hours, created)
             SELECT id, ocid, name, log_group, compartment, source, application_id,
             retention_hours, created FROM main.logs;
         INSERT OR IGNORE INTO logs_db.log_records(id, log, ts, subject, msg_id, msg_key, message)
             SELECT id, log, ts, subject, msg_id, msg_key, message FROM main.log_records;
         DROP TABLE main.log_records;
         DROP TABLE main.logs;
         DROP TABLE main.log_groups;
         COMMIT;",
    );
    if moved.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let detached = conn.execute_batch("DETACH DATABASE logs_db");
    moved.and(detached)
}

/// A log, as searches need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogRow {
    /// The integer id records name it by.
    pub id: i64,
    /// Its OCID.
    pub ocid: String,
    /// Its name.
    pub name: String,
    /// Its log group's OCID.
    pub log_group: String,
    /// Its log group's name.
    pub log_group_name: String,
    /// Its compartment.
    pub compartment: String,
    /// The application's display name (an entry's `source`).
    pub source: String,
    /// The application's OCID.
    pub application_id: String,
    /// How long its records are kept.
    pub retention_hours: i64,
}

const LOG_COLUMNS: &str = "l.id, l.ocid, l.name, l.log_group, g.name, l.compartment, l.source, \
                           l.application_id, l.retention_hours";

fn log_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogRow> {
    Ok(LogRow {
        id: r.get(0)?,
        ocid: r.get(1)?,
        name: r.get(2)?,
        log_group: r.get(3)?,
        log_group_name: r.get(4)?,
        compartment: r.get(5)?,
        source: r.get(6)?,
        application_id: r.get(7)?,
        retention_hours: r.get(8)?,
    })
}

/// Every log.
pub(crate) fn all_logs(conn: &Connection) -> Result<Vec<LogRow>, ApiError> {
    let sql = format!("SELECT {LOG_COLUMNS} FROM logs l JOIN log_groups g ON g.ocid = l.log_group");
    Ok(conn
        .prepare_cached(&sql)?
        .query_map([], log_row)?
        .collect::<Result<_, _>>()?)
}

/// The log group named `name` in `compartment`, when it exists.
pub(crate) fn group_by_name(
    conn: &Connection,
    compartment: &str,
    name: &str,
) -> Result<Option<String>, ApiError> {
    Ok(conn
        .query_row(
            "SELECT ocid FROM log_groups WHERE compartment = ?1 AND name = ?2",
            [compartment, name],
            |r| r.get(0),
        )
        .optional()?)
}

/// The log named `name` in `group`, when it exists.
pub(crate) fn log_by_name(
    conn: &Connection,
    group: &str,
    name: &str,
) -> Result<Option<String>, ApiError> {
    Ok(conn
        .query_row(
            "SELECT ocid FROM logs WHERE log_group = ?1 AND name = ?2",
            [group, name],
            |r| r.get(0),
        )
        .optional()?)
}

/// A record read back.
#[derive(Debug, Clone)]
pub(crate) struct RecordRow {
    /// Its rowid (the paging position, with `ts`).
    pub id: i64,
    /// Its log's integer id.
    pub log: i64,
    /// When it was written (ms since the epoch).
    pub ts: i64,
    /// The function that wrote it.
    pub subject: String,
    /// The line.
    pub message: String,
}

/// What narrows a read of records before each is checked against the query.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordFilter {
    /// The logs searched.
    pub logs: Vec<i64>,
    /// From (inclusive), ms.
    pub start: i64,
    /// To (exclusive), ms.
    pub end: i64,
    /// Only records after (or, descending, before) this `(ts, id)`.
    pub after: Option<(i64, i64)>,
    /// Newest first.
    pub descending: bool,
    /// Only records whose trace id is this.
    pub msg_id: Option<String>,
    /// Only records whose trace key is this.
    pub msg_key: Option<String>,
    /// Only records whose line contains each of these.
    pub contains: Vec<String>,
}

/// Up to `limit` records matching `filter`, in its order.
pub(crate) fn read_records(
    conn: &Connection,
    filter: &RecordFilter,
    limit: usize,
) -> Result<Vec<RecordRow>, ApiError> {
    use rusqlite::types::Value;
    if filter.logs.is_empty() {
        return Ok(Vec::new());
    }
    let logs = filter
        .logs
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // With an id or a key, its index finds the rows: `+` keeps the planner off the time index.
    let indexed = filter.msg_id.is_some() || filter.msg_key.is_some();
    let plus = if indexed { "+" } else { "" };
    let mut sql = format!(
        "SELECT id, log, ts, subject, message FROM log_records \
         WHERE {plus}log IN ({logs}) AND {plus}ts >= ?1 AND {plus}ts < ?2"
    );
    let mut params: Vec<Value> = vec![Value::Integer(filter.start), Value::Integer(filter.end)];
    let (cmp, order) = if filter.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((ts, id)) = filter.after {
        params.push(Value::Integer(ts));
        params.push(Value::Integer(id));
        let n = params.len();
        sql.push_str(&format!(" AND (ts, id) {cmp} (?{}, ?{n})", n - 1));
    }
    for (column, value) in [("msg_id", &filter.msg_id), ("msg_key", &filter.msg_key)] {
        if let Some(v) = value {
            params.push(Value::Text(v.clone()));
            sql.push_str(&format!(" AND {column} = ?{}", params.len()));
        }
    }
    for text in &filter.contains {
        params.push(Value::Text(text.clone()));
        sql.push_str(&format!(" AND instr(message, ?{}) > 0", params.len()));
    }
    params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    sql.push_str(&format!(
        " ORDER BY ts {order}, id {order} LIMIT ?{}",
        params.len()
    ));
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(params), |r| {
            Ok(RecordRow {
                id: r.get(0)?,
                log: r.get(1)?,
                ts: r.get(2)?,
                subject: r.get(3)?,
                message: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn logs_kept_in_the_main_database_move_to_the_logs_database_once() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("logs.db");
        Connection::open(&to)
            .unwrap()
            .execute_batch(LOGS_SCHEMA)
            .unwrap();
        let main = Connection::open(dir.path().join("main.db")).unwrap();
        main.execute_batch(LOGS_SCHEMA).unwrap();
        main.execute_batch(
            "INSERT INTO log_groups VALUES('ocid1.loggroup.a','g','c','t');
             INSERT INTO logs(id, ocid, name, log_group, compartment, source, application_id,
                 retention_hours, created) VALUES(7,'ocid1.log.a','l','ocid1.loggroup.a','c','s','app',24,'t');
             INSERT INTO log_records(log, ts, subject, msg_id, msg_key, message)
                 VALUES(7, 1, 'process', 'm1', 'k', '{}'), (7, 2, 'retry', 'm2', NULL, '{}');",
        )
        .unwrap();
        move_logs(&main, &to).unwrap();
        let none =
            "SELECT count(*) FROM sqlite_master WHERE name IN ('log_records','logs','log_groups')";
        assert_eq!(
            count(&main, none),
            0,
            "the main database no longer has them"
        );
        move_logs(&main, &to).unwrap();
        let logs = Connection::open(&to).unwrap();
        assert_eq!(count(&logs, "SELECT count(*) FROM log_groups"), 1);
        assert_eq!(
            count(&logs, "SELECT id FROM logs WHERE ocid = 'ocid1.log.a'"),
            7
        );
        assert_eq!(
            count(&logs, "SELECT count(*) FROM log_records WHERE log = 7 AND msg_id = 'm1' AND msg_key = 'k'"),
            1
        );
        assert_eq!(count(&logs, "SELECT count(*) FROM log_records"), 2);
    }
}
