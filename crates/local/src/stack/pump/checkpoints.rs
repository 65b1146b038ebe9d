//! A connector's per-partition checkpoints (the last offset its target took), in a file that
//! also names the stream they belong to, so that a start can tell checkpoints of a stream that
//! no longer exists (the emulator database was replaced or emptied) from its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What `DATA/connectors/<name>.json` holds: `{"stream_id":"ocid1.stream…","offsets":{"0":6114}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointFile {
    /// The OCID of the stream the offsets are positions in; `None` in a file written before
    /// the OCID was recorded.
    pub stream_id: Option<String>,
    /// Partition → the offset of the last message the target took.
    pub offsets: BTreeMap<u32, i64>,
}

impl CheckpointFile {
    /// The checkpoints in `file`; `None` when it does not exist.
    ///
    /// # Errors
    /// When the file cannot be read or is not a checkpoint file.
    pub fn read(file: &Path) -> std::io::Result<Option<Self>> {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // As written now, else as written before the stream's OCID was recorded (the bare
        // offsets map).
        if let Ok(file) = serde_json::from_slice::<Self>(&bytes) {
            return Ok(Some(file));
        }
        let offsets: BTreeMap<u32, i64> = serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("checkpoint file {} is damaged: {e}", file.display()),
            )
        })?;
        Ok(Some(Self {
            stream_id: None,
            offsets,
        }))
    }
}

/// The checkpoints of one connector, kept in `DATA/connectors/<name>.json`.
#[derive(Debug)]
pub(super) struct Checkpoints {
    file: PathBuf,
    stream_id: String,
    offsets: Mutex<BTreeMap<u32, i64>>,
}

impl Checkpoints {
    /// The checkpoints in `file` (none when it does not exist), positions in `stream_id`.
    /// Whether they belong to that stream is checked before the pump starts (see
    /// `stack::start::state`); here they are taken as they are.
    pub(super) fn open(file: PathBuf, stream_id: &str) -> std::io::Result<Self> {
        let offsets = CheckpointFile::read(&file)?
            .map(|f| f.offsets)
            .unwrap_or_default();
        Ok(Self {
            file,
            stream_id: stream_id.to_owned(),
            offsets: Mutex::new(offsets),
        })
    }

    /// The checkpoint of `partition`.
    pub(super) fn get(&self, partition: u32) -> Option<i64> {
        self.offsets.lock().ok()?.get(&partition).copied()
    }

    /// Every checkpoint.
    pub(super) fn snapshot(&self) -> BTreeMap<u32, i64> {
        self.offsets.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Records and persists (write, fsync, rename) the new checkpoint.
    pub(super) fn commit(&self, partition: u32, offset: i64) -> std::io::Result<()> {
        use std::io::Write as _;
        let Ok(mut map) = self.offsets.lock() else {
            return Err(std::io::Error::other("checkpoint lock poisoned"));
        };
        map.insert(partition, offset);
        let file = CheckpointFile {
            stream_id: Some(self.stream_id.clone()),
            offsets: map.clone(),
        };
        let text = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        let tmp = self.file.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.file)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_commit_records_the_stream_and_an_older_file_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(&file, br#"{"0":6114,"2":7}"#).unwrap();
        let old = CheckpointFile::read(&file).unwrap().unwrap();
        assert_eq!(old.stream_id, None);
        assert_eq!(old.offsets, BTreeMap::from([(0, 6114), (2, 7)]));
        let c = Checkpoints::open(file.clone(), "ocid1.stream.new").unwrap();
        assert_eq!(c.get(0), Some(6114));
        c.commit(1, 3).unwrap();
        let now = CheckpointFile::read(&file).unwrap().unwrap();
        assert_eq!(now.stream_id.as_deref(), Some("ocid1.stream.new"));
        assert_eq!(now.offsets, BTreeMap::from([(0, 6114), (1, 3), (2, 7)]));
        assert_eq!(
            CheckpointFile::read(&dir.path().join("none.json")).unwrap(),
            None
        );
        std::fs::write(&file, br#"{"stream":"x"}"#).unwrap();
        assert!(CheckpointFile::read(&file).is_err());
    }
}
