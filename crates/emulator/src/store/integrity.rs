//! The database's integrity when it is opened: `PRAGMA quick_check` reads every page and
//! checks each B-tree's structure (not the indexes' agreement with their tables, which the
//! full `integrity_check` adds at several times the cost). A database with overwritten pages
//! would otherwise open, answer some requests and fail others with "database disk image is
//! malformed", long after the start said all was well.

use std::path::Path;

use rusqlite::{Connection, ErrorCode};

use crate::error::EmulatorError;

/// The most problems `quick_check` reports (the first few say enough).
const MAX_PROBLEMS: usize = 5;

/// Checks the database `conn` has open at `path`; [`EmulatorError::Damaged`] when it fails.
///
/// # Errors
/// [`EmulatorError::Damaged`] naming the file and the first problems found;
/// [`EmulatorError::Database`] when the check itself cannot run for another reason (a lock).
pub(super) fn quick_check(conn: &Connection, path: &Path) -> Result<(), EmulatorError> {
    let damaged = |detail: String| EmulatorError::Damaged {
        path: path.to_owned(),
        detail,
    };
    let rows: rusqlite::Result<Vec<String>> = conn
        .prepare(&format!("PRAGMA quick_check({MAX_PROBLEMS})"))
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        });
    match rows {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Ok(()),
        Ok(rows) => Err(damaged(format!("quick_check: {}", rows.join("; ")))),
        Err(e) if is_damage(&e) => Err(damaged(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// `e`, met while opening the database at `path`, as [`EmulatorError::Damaged`] when it says
/// the file is not a sound SQLite database (a file whose header is overwritten fails before
/// `quick_check` can run), else as it is.
pub(super) fn opening(path: &Path) -> impl FnOnce(rusqlite::Error) -> EmulatorError + '_ {
    move |e| {
        if is_damage(&e) {
            EmulatorError::Damaged {
                path: path.to_owned(),
                detail: e.to_string(),
            }
        } else {
            e.into()
        }
    }
}

/// Whether `e` says the file is not a sound SQLite database.
pub(super) fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Fills a database with `rows` rows of 1 KB, closed and checkpointed.
    fn filled(path: &Path, rows: usize) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA page_size=8192; PRAGMA journal_mode=WAL;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);",
        )
        .unwrap();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?1)
             INSERT INTO t SELECT i, randomblob(1000) FROM n",
            [rows as i64],
        )
        .unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }

    #[test]
    fn a_sound_database_passes_and_overwritten_pages_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        filled(&path, 2000);
        quick_check(&Connection::open(&path).unwrap(), &path).unwrap();
        // Garbage over pages 3 to 10 (the header and the schema page stay intact).
        let mut bytes = std::fs::read(&path).unwrap();
        for (i, b) in bytes[2 * 8192..10 * 8192].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(151).wrapping_add(7);
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = quick_check(&Connection::open(&path).unwrap(), &path).unwrap_err();
        assert!(matches!(err, EmulatorError::Damaged { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
    }

    #[test]
    fn a_file_whose_header_is_overwritten_is_damaged_not_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
        let err = crate::store::Store::open_logs(&path).unwrap_err();
        assert!(matches!(err, EmulatorError::Damaged { .. }), "{err}");
    }
}
