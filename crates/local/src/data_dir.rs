//! One process per data directory.
//!
//! Two stacks (or a stack and `datasync emulator`) on one data directory would share its
//! database while each keeps its own view of the streams' next offsets, both would consume the
//! same streams, the second would remove the first's function sockets and rewrite its
//! `endpoints.json`. The second is refused instead, naming the first by its process id.
//!
//! The lock is `flock(2)` on a file in the directory: the kernel releases it when the process
//! ends, however it ends (`kill -9` included), so a file left behind never blocks a restart.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

/// The lock file's name in a data directory; it holds the owner's process id.
pub const LOCK_FILE: &str = "datasync.lock";

/// Held while this process uses a data directory; released on drop or exit.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Why a data directory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the directory.
    #[error(
        "the data directory {} is in use by another datasync process{}: stop that one, or give \
         this one another --data-dir",
        dir.display(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    InUse {
        /// The directory.
        dir: PathBuf,
        /// The holder's process id, as it wrote it in the lock file.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or written.
    #[error("the lock file {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl DataDirLock {
    /// Takes `dir` (which must exist) for this process, without waiting.
    ///
    /// On a file system without `flock` the directory is used unlocked, with a warning.
    ///
    /// # Errors
    /// [`LockError::InUse`] when another process holds it; [`LockError::Io`] when the lock
    /// file cannot be opened or written.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::InUse {
                    dir: dir.to_owned(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e,
                    "the data directory cannot be locked here; make sure no other datasync process uses it");
            }
        }
        file.set_len(0).map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_held_directory_is_refused_with_the_holders_pid_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = DataDirLock::acquire(dir.path()).unwrap();
        // flock conflicts between two opens of the file, in one process as in two.
        match DataDirLock::acquire(dir.path()) {
            Err(LockError::InUse { dir: d, pid }) => {
                assert_eq!(d, dir.path());
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(held);
        let again = DataDirLock::acquire(dir.path());
        assert!(again.is_ok(), "{again:?}");
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
    }
}
