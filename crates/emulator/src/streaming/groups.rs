//! Consumer groups: CreateGroupCursor, ConsumerCommit, ConsumerHeartbeat, GetGroup and
//! UpdateGroup, on the group tables; partitions are shared fairly among the instances that
//! called within their timeout.

use std::sync::Arc;

use datasync_core::oci::models;
use rusqlite::{Connection, OptionalExtension as _};

use super::cursor::{cursor_time, open_cursor, seal_cursor, CursorState, GroupCursor};
use super::limits::{valid_name, CURSOR_TTL_MS, DEFAULT_GROUP_TIMEOUT_MS};
use super::offsets::{earliest_offset, next_offset, offset_at_time};
use super::streams::stream;
use crate::clock::{now_ms, rfc3339_ms};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::parse_json;

/// The start position of every partition for a new group, or a reset one.
fn group_start(
    conn: &Connection,
    sid: i64,
    parts: i64,
    kind: models::GroupCursorType,
    time: Option<i64>,
) -> Result<Vec<i64>, ApiError> {
    (0..parts)
        .map(|p| match kind {
            models::GroupCursorType::Latest => next_offset(conn, sid, p),
            models::GroupCursorType::TrimHorizon => earliest_offset(conn, sid, p),
            models::GroupCursorType::AtTime => offset_at_time(conn, sid, p, time.unwrap_or(0)),
        })
        .collect()
}

/// A partition's row in `group_parts`: (partition, next offset, reserving instance, reserved
/// until in ms since the epoch).
type PartRow = (i64, i64, Option<String>, Option<i64>);

/// Commits the cursor's positions (when `commit` and the group was not reset since the cursor
/// was issued), then renews this instance's membership and reservations and rebalances: takes
/// free or lapsed partitions up to its fair share, releases any beyond it. Returns the group
/// generation and the held partitions with their read positions.
pub(super) fn group_acquire(
    conn: &Connection,
    sid: i64,
    cursor: &GroupCursor,
    commit: bool,
    now: i64,
) -> Result<(i64, Vec<(i64, i64)>), ApiError> {
    let gen: i64 = conn
        .prepare_cached("SELECT gen FROM groups WHERE stream=?1 AND name=?2")?
        .query_row(rusqlite::params![sid, cursor.group], |r| r.get(0))
        .optional()?
        .ok_or_else(|| ApiError::not_found(format!("group {}", cursor.group)))?;
    let same_gen = gen == cursor.generation;
    if commit && same_gen {
        commit_offsets(conn, sid, cursor)?;
    }
    let rows: Vec<PartRow> = conn
        .prepare_cached("SELECT part, next_off, instance, reserved_until FROM group_parts WHERE stream=?1 AND name=?2 ORDER BY part")?
        .query_map(rusqlite::params![sid, cursor.group], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    let members = renew_membership(conn, sid, cursor, now)?;
    let (mine, release) = fair_share(&rows, &cursor.instance, members, now);
    reserve(conn, sid, cursor, &mine, &release, now + cursor.timeout_ms)?;
    let positions = mine
        .into_iter()
        .map(|(p, group_pos)| {
            let pos = if same_gen {
                cursor
                    .offsets
                    .iter()
                    .find(|(cp, _)| *cp == p)
                    .map_or(group_pos, |(_, o)| *o)
            } else {
                group_pos
            };
            (p, pos)
        })
        .collect();
    Ok((gen, positions))
}

/// Commits the cursor's next offsets of the partitions this instance still holds.
fn commit_offsets(conn: &Connection, sid: i64, cursor: &GroupCursor) -> Result<(), ApiError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE group_parts SET next_off=?4, committed=?4 - 1 WHERE stream=?1 AND name=?2 AND part=?3 AND instance=?5",
    )?;
    for (part, pos) in &cursor.offsets {
        stmt.execute(rusqlite::params![
            sid,
            cursor.group,
            part,
            pos,
            cursor.instance
        ])?;
    }
    Ok(())
}

/// Renews this instance's membership, forgets members whose timeout passed, and returns how
/// many are left: every instance that called within its timeout counts, holding partitions or
/// not.
fn renew_membership(
    conn: &Connection,
    sid: i64,
    cursor: &GroupCursor,
    now: i64,
) -> Result<i64, ApiError> {
    conn.prepare_cached(
        "INSERT INTO group_members(stream, name, instance, alive_until) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(stream, name, instance) DO UPDATE SET alive_until=excluded.alive_until",
    )?
    .execute(rusqlite::params![
        sid,
        cursor.group,
        cursor.instance,
        now + cursor.timeout_ms
    ])?;
    conn.prepare_cached(
        "DELETE FROM group_members WHERE stream=?1 AND name=?2 AND alive_until <= ?3",
    )?
    .execute(rusqlite::params![sid, cursor.group, now])?;
    Ok(conn
        .prepare_cached("SELECT count(*) FROM group_members WHERE stream=?1 AND name=?2")?
        .query_row(rusqlite::params![sid, cursor.group], |r| r.get(0))?)
}

/// The partitions `instance` holds after rebalancing among `members` instances, with their
/// group positions, and those it releases. It keeps what it holds up to its fair share
/// (releasing its highest partitions beyond it), then takes partitions nobody holds, or whose
/// holder's reservation lapsed, in partition order.
fn fair_share(
    rows: &[PartRow],
    instance: &str,
    members: i64,
    now: i64,
) -> (Vec<(i64, i64)>, Vec<i64>) {
    let instances = members.max(1);
    let fair = (rows.len() as i64 + instances - 1) / instances;
    let active =
        |inst: &Option<String>, until: &Option<i64>| inst.is_some() && until.unwrap_or(0) > now;
    let mut mine: Vec<(i64, i64)> = rows
        .iter()
        .filter(|(_, _, inst, _)| inst.as_deref() == Some(instance))
        .map(|(p, n, _, _)| (*p, *n))
        .collect();
    let mut release: Vec<i64> = Vec::new();
    while mine.len() as i64 > fair {
        if let Some((p, _)) = mine.pop() {
            release.push(p);
        }
    }
    for (p, n, inst, until) in rows {
        if mine.len() as i64 >= fair {
            break;
        }
        if !active(inst, until) && inst.as_deref() != Some(instance) {
            mine.push((*p, *n));
        }
    }
    mine.sort_unstable();
    (mine, release)
}

/// Reserves `mine` for this instance until `until`, and frees `release`.
fn reserve(
    conn: &Connection,
    sid: i64,
    cursor: &GroupCursor,
    mine: &[(i64, i64)],
    release: &[i64],
    until: i64,
) -> Result<(), ApiError> {
    let mut reserve = conn.prepare_cached(
        "UPDATE group_parts SET instance=?4, reserved_until=?5 WHERE stream=?1 AND name=?2 AND part=?3",
    )?;
    for (p, _) in mine {
        reserve.execute(rusqlite::params![
            sid,
            cursor.group,
            p,
            cursor.instance,
            until
        ])?;
    }
    for p in release {
        reserve.execute(rusqlite::params![
            sid,
            cursor.group,
            p,
            Option::<String>::None,
            Option::<i64>::None
        ])?;
    }
    Ok(())
}

/// CreateGroupCursor.
pub async fn create_group_cursor(
    inner: &Arc<Inner>,
    ocid: &str,
    body: &[u8],
) -> Result<models::Cursor, ApiError> {
    let details: models::CreateGroupCursorDetails = parse_json(body)?;
    if !valid_name(&details.group_name) {
        return Err(ApiError::invalid(
            "groupName must be 1 to 255 characters of letters, digits, '-', '_' and '.'",
        ));
    }
    let timeout = details.timeout_in_ms.unwrap_or(DEFAULT_GROUP_TIMEOUT_MS);
    if !(1_000..=6 * 3_600_000).contains(&timeout) {
        return Err(ApiError::invalid(
            "timeoutInMs must be between 1000 and 21600000",
        ));
    }
    let time = cursor_time(
        details.cursor_type == models::GroupCursorType::AtTime,
        details.time.as_deref(),
    )?;
    let row = stream(inner, ocid).await?;
    let (sid, parts) = (row.id, row.partitions);
    let mut cursor = GroupCursor {
        group: details.group_name.clone(),
        instance: details
            .instance_name
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        generation: -1,
        offsets: Vec::new(),
        commit_on_get: details.commit_on_get.unwrap_or(true),
        timeout_ms: timeout,
    };
    let kind = details.cursor_type;
    let probe = cursor.clone();
    let (gen, positions) = inner
        .store
        .write(move |conn, _| {
            let exists = conn
                .prepare_cached("SELECT 1 FROM groups WHERE stream=?1 AND name=?2")?
                .query_row(rusqlite::params![sid, probe.group], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                conn.execute("INSERT INTO groups(stream, name, gen) VALUES (?1, ?2, 0)", rusqlite::params![sid, probe.group])?;
                for (p, start) in group_start(conn, sid, parts, kind, time)?.into_iter().enumerate() {
                    conn.execute(
                        "INSERT INTO group_parts(stream, name, part, next_off) VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![sid, probe.group, p as i64, start],
                    )?;
                }
            }
            group_acquire(conn, sid, &probe, false, now_ms())
        })
        .await?;
    cursor.generation = gen;
    cursor.offsets = positions;
    Ok(models::Cursor {
        value: seal_cursor(inner, &CursorState::for_group(sid, cursor)),
    })
}

/// ConsumerCommit (`commit = true`) and ConsumerHeartbeat (`commit = false`).
pub async fn commit_or_heartbeat(
    inner: &Arc<Inner>,
    ocid: &str,
    cursor_text: Option<&str>,
    commit: bool,
) -> Result<models::Cursor, ApiError> {
    let row = stream(inner, ocid).await?;
    let mut state = open_cursor(
        inner,
        &row,
        cursor_text.ok_or_else(|| ApiError::missing("cursor"))?,
    )?;
    let mut group = state
        .group
        .take()
        .ok_or_else(|| ApiError::invalid("the cursor is not a group cursor"))?;
    let sid = row.id;
    let probe = group.clone();
    let (gen, positions) = inner
        .store
        .write(move |conn, _| group_acquire(conn, sid, &probe, commit, now_ms()))
        .await?;
    group.generation = gen;
    group.offsets = positions;
    state.group = Some(group);
    state.expires_ms = now_ms() + CURSOR_TTL_MS;
    Ok(models::Cursor {
        value: seal_cursor(inner, &state),
    })
}

/// GetGroup.
pub async fn get_group(
    inner: &Arc<Inner>,
    ocid: &str,
    group: &str,
) -> Result<models::Group, ApiError> {
    let row = stream(inner, ocid).await?;
    let (sid, name, stream_id) = (row.id, group.to_owned(), row.ocid.clone());
    inner
        .store
        .read(move |conn| {
            let exists = conn
                .query_row("SELECT 1 FROM groups WHERE stream=?1 AND name=?2", rusqlite::params![sid, name], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                return Err(ApiError::not_found(format!("group {name}")));
            }
            let now = now_ms();
            let mut stmt = conn.prepare("SELECT part, committed, instance, reserved_until FROM group_parts WHERE stream=?1 AND name=?2 ORDER BY part")?;
            let reservations = stmt
                .query_map(rusqlite::params![sid, name], |r| {
                    let until: Option<i64> = r.get(3)?;
                    let live = until.is_some_and(|u| u > now);
                    Ok(models::PartitionReservation {
                        partition: r.get::<_, i64>(0)?.to_string(),
                        committed_offset: r.get(1)?,
                        time_reserved_until: if live { until.map(rfc3339_ms) } else { None },
                        reserved_instance: if live { r.get(2)? } else { None },
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(models::Group { stream_id, group_name: name, reservations })
        })
        .await
}

/// UpdateGroup: moves the group's position and drops reservations and outstanding cursors.
pub async fn update_group(
    inner: &Arc<Inner>,
    ocid: &str,
    group: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    let details: models::UpdateGroupDetails = parse_json(body)?;
    let row = stream(inner, ocid).await?;
    let Some(kind) = details.cursor_type else {
        return Ok(());
    };
    let time = cursor_time(
        kind == models::GroupCursorType::AtTime,
        details.time.as_deref(),
    )?;
    let (sid, parts, name) = (row.id, row.partitions, group.to_owned());
    inner
        .store
        .write(move |conn, _| {
            let changed = conn.execute("UPDATE groups SET gen = gen + 1 WHERE stream=?1 AND name=?2", rusqlite::params![sid, name])?;
            conn.execute("DELETE FROM group_members WHERE stream=?1 AND name=?2", rusqlite::params![sid, name])?;
            if changed == 0 {
                return Err(ApiError::not_found(format!("group {name}")));
            }
            for (p, start) in group_start(conn, sid, parts, kind, time)?.into_iter().enumerate() {
                conn.execute(
                    "UPDATE group_parts SET next_off=?4, committed=NULL, instance=NULL, reserved_until=NULL
                     WHERE stream=?1 AND name=?2 AND part=?3",
                    rusqlite::params![sid, name, p as i64, start],
                )?;
            }
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(part: i64, holder: Option<&str>, until: i64) -> PartRow {
        (part, part * 10, holder.map(str::to_owned), Some(until))
    }

    #[test]
    fn a_lone_instance_takes_every_free_partition() {
        let rows = [row(0, None, 0), row(1, None, 0), row(2, None, 0)];
        let (mine, release) = fair_share(&rows, "a", 1, 100);
        assert_eq!(mine, vec![(0, 0), (1, 10), (2, 20)]);
        assert!(release.is_empty());
    }

    #[test]
    fn a_second_instance_gets_the_share_the_first_releases() {
        let rows = [
            row(0, Some("a"), 200),
            row(1, Some("a"), 200),
            row(2, Some("a"), 200),
        ];
        // `a` holds all three with two members: it keeps two and releases its highest.
        let (mine, release) = fair_share(&rows, "a", 2, 100);
        assert_eq!((mine, release), (vec![(0, 0), (1, 10)], vec![2]));
        // `b` takes nothing `a` still holds live, and a lapsed reservation is free.
        let rows = [
            row(0, Some("a"), 200),
            row(1, Some("a"), 200),
            row(2, Some("a"), 50),
        ];
        let (mine, release) = fair_share(&rows, "b", 2, 100);
        assert_eq!((mine, release), (vec![(2, 20)], vec![]));
    }
}
