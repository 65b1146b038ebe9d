//! Stage 2b: the saved read positions belong to the streams they name. A connector's
//! checkpoints (`DATA/connectors/<name>.json`) and a consumer group's positions are offsets in
//! one stream; when the emulator database is deleted, emptied or replaced, the stack creates
//! the streams again with new OCIDs and offsets starting at 0, and reading from the old
//! positions would skip every message accepted until the new stream reaches them. So a start
//! finds every such position first and refuses, naming each, unless asked to reset them
//! (`datasync up --reset-checkpoints`): then the connectors read the new streams from their
//! beginning and the groups start at the trim horizon. Nothing is skipped without being asked.

use std::path::{Path, PathBuf};

use datasync_core::oci::models::{GroupCursorType, UpdateGroupDetails};

use super::emulator::EmulatorPart;
use super::pump::{DATA_CONNECTOR, NOTIFY_CONNECTOR};
use crate::emulator::StreamStats;
use crate::stack::error::{io, setup, StackError};
use crate::stack::pump::{checkpoint_file, CheckpointFile};
use crate::stack::streams::{StreamRole, DATA, DEAD_LETTER, ROLES};
use crate::stack::{Resources, StackSettings};

/// A saved position that does not belong to the stream it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The checkpoints were taken on a stream that no longer exists.
    StreamReplaced {
        /// The connector.
        connector: String,
        /// The stream's name.
        stream: String,
        /// The OCID in the checkpoint file.
        recorded: String,
        /// The stream's OCID now.
        current: String,
    },
    /// A checkpoint is at or after the partition's end.
    BeyondEnd {
        /// The connector.
        connector: String,
        /// The stream's name.
        stream: String,
        /// The partition.
        partition: u32,
        /// The last offset the checkpoint says was delivered.
        offset: i64,
        /// The partition's next offset (how many messages it ever held).
        end: i64,
    },
    /// A checkpoint names a partition the stream does not have.
    NoSuchPartition {
        /// The connector.
        connector: String,
        /// The stream's name.
        stream: String,
        /// The partition.
        partition: u32,
        /// The stream's partitions.
        partitions: usize,
    },
    /// A consumer group's position is after the partition's end.
    GroupBeyondEnd {
        /// The stream's name.
        stream: String,
        /// The stream's OCID.
        stream_id: String,
        /// The group.
        group: String,
        /// The partition.
        partition: i64,
        /// The group's next offset to read.
        position: i64,
        /// The partition's next offset.
        end: i64,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::StreamReplaced { connector, stream, recorded, current } => write!(
                f,
                "connector {connector}: its checkpoints are positions in stream {stream} {recorded}, \
                 which no longer exists (the stream is now {current})"
            ),
            Self::BeyondEnd { connector, stream, partition, offset, end } => write!(
                f,
                "connector {connector}: its checkpoint of {stream} partition {partition} is offset \
                 {offset}, beyond the partition's end (it holds offsets below {end})"
            ),
            Self::NoSuchPartition { connector, stream, partition, partitions } => write!(
                f,
                "connector {connector}: it has a checkpoint of {stream} partition {partition}, \
                 but the stream has {partitions} partitions"
            ),
            Self::GroupBeyondEnd { stream, group, partition, position, end, .. } => write!(
                f,
                "consumer group {group} of {stream}: its position in partition {partition} is \
                 offset {position}, beyond the partition's end ({end})"
            ),
        }
    }
}

/// Why the start was refused: every mismatched position, and what to do.
#[derive(Debug, thiserror::Error)]
#[error(
    "saved read positions do not belong to the streams they name:\n{}\n\
     The emulator database ({database}) was probably deleted, emptied or replaced after they \
     were saved. Reading from them would silently skip the messages accepted from now on, so \
     the stack did not start. If you have the old database, put it back to deliver what it \
     held. Otherwise start with `datasync up --reset-checkpoints`: the connectors then read the \
     new streams from their beginning and the consumer groups start at the oldest message.",
    list(.mismatches)
)]
pub struct StateError {
    /// The positions.
    pub mismatches: Vec<Mismatch>,
    /// The emulator database.
    pub database: PathBuf,
}

fn list(mismatches: &[Mismatch]) -> String {
    mismatches
        .iter()
        .map(|m| format!("  - {m}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A connector's saved checkpoints and the stream it reads now.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The connector.
    pub connector: String,
    /// The stream's name.
    pub stream: String,
    /// The stream's OCID now.
    pub current: String,
    /// What its checkpoint file holds.
    pub file: CheckpointFile,
}

/// Every position among `saved` and the groups in `stats` that does not belong to its stream.
pub fn mismatches(saved: &[Saved], stats: &[StreamStats]) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for s in saved {
        if let Some(recorded) = s.file.stream_id.as_ref().filter(|r| **r != s.current) {
            out.push(Mismatch::StreamReplaced {
                connector: s.connector.clone(),
                stream: s.stream.clone(),
                recorded: recorded.clone(),
                current: s.current.clone(),
            });
            continue;
        }
        let ends = stats
            .iter()
            .find(|st| st.id == s.current)
            .map(|st| st.partitions.as_slice())
            .unwrap_or_default();
        for (&partition, &offset) in &s.file.offsets {
            match ends.get(partition as usize) {
                None => out.push(Mismatch::NoSuchPartition {
                    connector: s.connector.clone(),
                    stream: s.stream.clone(),
                    partition,
                    partitions: ends.len(),
                }),
                Some(&(_, _, end)) if offset >= end => out.push(Mismatch::BeyondEnd {
                    connector: s.connector.clone(),
                    stream: s.stream.clone(),
                    partition,
                    offset,
                    end,
                }),
                Some(_) => {}
            }
        }
    }
    for st in stats {
        for (group, parts) in &st.groups {
            for &(partition, position, committed) in parts {
                let end = st
                    .partitions
                    .iter()
                    .find(|(p, _, _)| *p == partition)
                    .map_or(0, |(_, _, end)| *end);
                let position = position.max(committed.map_or(0, |c| c + 1));
                if position > end {
                    out.push(Mismatch::GroupBeyondEnd {
                        stream: st.name.clone(),
                        stream_id: st.id.clone(),
                        group: group.clone(),
                        partition,
                        position,
                        end,
                    });
                }
            }
        }
    }
    out
}

/// What [`check`] needs.
pub(crate) struct StateInput<'a> {
    /// The data directory.
    pub dir: &'a Path,
    /// The emulator.
    pub emulator: &'a EmulatorPart,
    /// The streams as they are now.
    pub resources: &'a Resources,
    /// The stack's settings (the stream names).
    pub settings: &'a StackSettings,
    /// Reset mismatched positions instead of refusing (`--reset-checkpoints`).
    pub reset: bool,
}

/// The connectors the pump runs and the streams they read, as `start::pump` wires them.
fn connector_sources() -> Vec<(&'static str, &'static StreamRole)> {
    let mut out: Vec<(&'static str, &'static StreamRole)> =
        vec![(DATA_CONNECTOR, &DATA), (NOTIFY_CONNECTOR, &DEAD_LETTER)];
    out.extend(
        ROLES
            .iter()
            .filter_map(|r| r.archive.map(|a| (a.connector, r))),
    );
    out
}

/// Refuses to start when a saved position does not belong to its stream, or resets every such
/// position when `input.reset`.
pub(crate) async fn check(input: StateInput<'_>) -> Result<(), StackError> {
    let dir = input.dir.join("connectors");
    let mut saved = Vec::new();
    for (connector, role) in connector_sources() {
        let stream = role.stream_name(&input.settings.name_prefix);
        let Some(current) = input.resources.streams.get(&stream) else {
            continue;
        };
        let path = checkpoint_file(&dir, connector);
        let file = CheckpointFile::read(&path).map_err(io(format!(
            "reading the checkpoints of connector {connector}"
        )))?;
        if let Some(file) = file {
            saved.push(Saved {
                connector: connector.to_owned(),
                stream,
                current: current.clone(),
                file,
            });
        }
    }
    let stats = input.emulator.emulator.stream_stats().await?;
    let found = mismatches(&saved, &stats);
    if found.is_empty() {
        return Ok(());
    }
    if !input.reset {
        return Err(StackError::State(StateError {
            mismatches: found,
            database: input.dir.join(crate::emulator::DATABASE_FILE),
        }));
    }
    reset(&dir, input.emulator, &found).await
}

/// Resets each mismatched position: the connector's checkpoint file is removed (it reads its
/// stream from the beginning), the group is moved to the trim horizon.
async fn reset(dir: &Path, emulator: &EmulatorPart, found: &[Mismatch]) -> Result<(), StackError> {
    for m in found {
        tracing::warn!(reset = %m, "--reset-checkpoints: resetting this position");
        match m {
            Mismatch::StreamReplaced { connector, .. }
            | Mismatch::BeyondEnd { connector, .. }
            | Mismatch::NoSuchPartition { connector, .. } => {
                let path = checkpoint_file(dir, connector);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(format!("removing {}", path.display()))(e)),
                }
            }
            Mismatch::GroupBeyondEnd {
                stream_id, group, ..
            } => {
                let what = format!("the reset of consumer group {group}");
                let details = UpdateGroupDetails {
                    cursor_type: Some(GroupCursorType::TrimHorizon),
                    time: None,
                };
                let path = format!("/20180418/streams/{stream_id}/groups/{group}");
                let answer = emulator
                    .signed
                    .json(http::Method::PUT, &path, &details)
                    .await
                    .map_err(|e| setup(&what, &e))?;
                if !answer.status.is_success() {
                    return Err(setup(&what, &String::from_utf8_lossy(&answer.body)));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn stream(id: &str, ends: &[i64], groups: Vec<crate::emulator::GroupPositions>) -> StreamStats {
        StreamStats {
            id: id.into(),
            name: format!("name-of-{id}"),
            partitions: ends
                .iter()
                .enumerate()
                .map(|(p, e)| (p as i64, 0, *e))
                .collect(),
            groups,
        }
    }

    fn saved(recorded: Option<&str>, offsets: &[(u32, i64)]) -> Saved {
        Saved {
            connector: "data-to-process".into(),
            stream: "datasync-data".into(),
            current: "new".into(),
            file: CheckpointFile {
                stream_id: recorded.map(str::to_owned),
                offsets: offsets.iter().copied().collect::<BTreeMap<_, _>>(),
            },
        }
    }

    #[test]
    fn positions_inside_their_stream_pass() {
        let stats = [stream(
            "new",
            &[10, 0],
            vec![("g".into(), vec![(0, 10, Some(9)), (1, 0, None)])],
        )];
        for s in [
            saved(Some("new"), &[(0, 9)]),
            saved(None, &[(0, 0)]),
            saved(None, &[]),
        ] {
            assert_eq!(mismatches(&[s], &stats), []);
        }
    }

    #[test]
    fn a_replaced_stream_an_offset_past_the_end_and_a_missing_partition_are_found() {
        let stats = [stream("new", &[3, 0], vec![])];
        let found = mismatches(
            &[
                saved(Some("old"), &[(0, 6114)]),
                saved(None, &[(0, 6114), (1, 0), (2, 1)]),
                saved(Some("new"), &[(0, 3)]),
            ],
            &stats,
        );
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(
            matches!(&found[0], Mismatch::StreamReplaced { recorded, current, .. } if recorded == "old" && current == "new")
        );
        assert!(matches!(
            found[1],
            Mismatch::BeyondEnd {
                partition: 0,
                offset: 6114,
                end: 3,
                ..
            }
        ));
        assert!(matches!(
            found[2],
            Mismatch::BeyondEnd {
                partition: 1,
                offset: 0,
                end: 0,
                ..
            }
        ));
        assert!(matches!(
            found[3],
            Mismatch::NoSuchPartition {
                partition: 2,
                partitions: 2,
                ..
            }
        ));
        assert!(matches!(
            found[4],
            Mismatch::BeyondEnd {
                partition: 0,
                offset: 3,
                end: 3,
                ..
            }
        ));
        let text = StateError {
            mismatches: found,
            database: "/d/emulator.db".into(),
        }
        .to_string();
        assert!(text.contains("connector data-to-process: its checkpoints are positions in stream datasync-data old, which no longer exists"), "{text}");
        assert!(
            text.contains("(/d/emulator.db)") && text.contains("--reset-checkpoints"),
            "{text}"
        );
    }

    #[test]
    fn a_group_past_the_end_is_found() {
        let groups = vec![("retry".into(), vec![(0, 12, None), (1, 0, Some(4))])];
        let found = mismatches(&[], &[stream("s", &[10, 5], groups)]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            matches!(&found[0], Mismatch::GroupBeyondEnd { group, partition: 0, position: 12, end: 10, .. } if group == "retry")
        );
    }
}
