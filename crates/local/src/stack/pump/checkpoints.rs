//! A connector's per-partition checkpoints (the last offset its target took), in a file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// The checkpoints of one connector, kept in `DATA/connectors/<name>.json`.
#[derive(Debug)]
pub(super) struct Checkpoints {
    file: PathBuf,
    offsets: Mutex<BTreeMap<u32, i64>>,
}

impl Checkpoints {
    /// The checkpoints in `file` (none when it does not exist).
    pub(super) fn open(file: PathBuf) -> std::io::Result<Self> {
        let offsets = match std::fs::read(&file) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("checkpoint file {} is damaged: {e}", file.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            file,
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
        let text = serde_json::to_vec(&*map).map_err(std::io::Error::other)?;
        let tmp = self.file.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.file)
    }
}
