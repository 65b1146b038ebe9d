//! Secret version limits and ScheduleSecretVersionDeletion, as OCI enforces them: at most
//! [`MAX_IN_USE`] versions in use and [`MAX_PENDING_DELETION`] pending deletion per secret; a
//! version's deletion is scheduled 1 to 30 days ahead (30 by default); the CURRENT version
//! cannot be deleted; a version pending deletion is no longer served.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension as _};

use crate::clock::{now_ms, parse_time_ms, rfc3339_ms};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::parse_json;

/// Versions a secret may have in use (not pending deletion).
pub const MAX_IN_USE: i64 = 30;
/// Versions a secret may have pending deletion.
pub const MAX_PENDING_DELETION: i64 = 30;
const DAY_MS: i64 = 24 * 3_600_000;

/// `(in use, pending deletion)` version counts of secret `id`.
fn counts(conn: &Connection, id: &str) -> rusqlite::Result<(i64, i64)> {
    let total: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM secret_versions WHERE secret=?1")?
        .query_row([id], |r| r.get(0))?;
    let pending: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM secret_version_deletions WHERE secret=?1")?
        .query_row([id], |r| r.get(0))?;
    Ok((total - pending, pending))
}

/// Refuses a new version when the secret already has [`MAX_IN_USE`] in use.
pub(crate) fn check_room(conn: &Connection, id: &str) -> Result<(), ApiError> {
    let (in_use, _) = counts(conn, id)?;
    if in_use >= MAX_IN_USE {
        return Err(ApiError::limit_exceeded(format!(
            "the secret has {in_use} versions in use, the most allowed; schedule the deletion of older versions"
        )));
    }
    Ok(())
}

/// Whether version `version` of secret `id` is pending deletion.
pub(crate) fn is_pending(conn: &Connection, id: &str, version: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM secret_version_deletions WHERE secret=?1 AND version=?2")?
        .query_row(rusqlite::params![id, version], |_| Ok(()))
        .optional()?
        .is_some())
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleVersionDeletion {
    #[serde(default)]
    time_of_deletion: Option<String>,
}

/// The deletion time asked for, checked: 1 to 30 days from now; 30 days when absent.
fn deletion_time(body: &[u8]) -> Result<String, ApiError> {
    let asked = if body.is_empty() {
        None
    } else {
        parse_json::<ScheduleVersionDeletion>(body)?.time_of_deletion
    };
    let now = now_ms();
    let when = match asked {
        Some(t) => parse_time_ms(&t)?,
        None => now + 30 * DAY_MS,
    };
    if when < now + DAY_MS || when > now + 30 * DAY_MS {
        return Err(ApiError::invalid(
            "timeOfDeletion must be between 1 day and 30 days from now",
        ));
    }
    Ok(rfc3339_ms(when))
}

/// ScheduleSecretVersionDeletion.
pub(crate) async fn schedule_deletion(
    inner: &Arc<Inner>,
    id: &str,
    version: &str,
    body: &[u8],
    check_active: fn(&Connection, &str) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let version: i64 = version
        .parse()
        .map_err(|_| ApiError::invalid("secretVersionNumber must be an integer"))?;
    let when = deletion_time(body)?;
    let id = id.to_owned();
    inner
        .store
        .write(move |conn, _| {
            check_active(conn, &id)?;
            let stages: String = conn
                .prepare_cached(
                    "SELECT stages FROM secret_versions WHERE secret=?1 AND version=?2",
                )?
                .query_row(rusqlite::params![id, version], |r| r.get(0))
                .optional()?
                .ok_or_else(|| ApiError::not_found(format!("version {version} of secret {id}")))?;
            if stages.contains("\"CURRENT\"") {
                return Err(ApiError::conflict(
                    "IncorrectState",
                    "the CURRENT version cannot be deleted",
                ));
            }
            if is_pending(conn, &id, version)? {
                return Err(ApiError::conflict(
                    "IncorrectState",
                    format!("version {version} is already pending deletion"),
                ));
            }
            let (_, pending) = counts(conn, &id)?;
            if pending >= MAX_PENDING_DELETION {
                return Err(ApiError::limit_exceeded(format!(
                    "the secret has {pending} versions pending deletion, the most allowed"
                )));
            }
            conn.execute(
                "INSERT INTO secret_version_deletions(secret, version, time) VALUES (?1, ?2, ?3)",
                rusqlite::params![id, version, when],
            )?;
            Ok(())
        })
        .await
}
