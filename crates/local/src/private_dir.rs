//! The data directory is the owner's alone.
//!
//! It holds the emulator's database (messages, stored tokens), the functions' Unix sockets
//! (which trust the caller identity the gateway sets, so reaching one skips the API key), the
//! resource principals' keys and the API keys. So before anything is written: the process's
//! umask becomes `077` (everything the stack creates from then on is `0700`/`0600`, sockets
//! included), a directory that another user can write or that belongs to another user is
//! refused (they could swap its files), and what is already inside is made owner-only.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Mode bits nobody but the owner may hold on anything in the data directory.
const OTHERS: u32 = 0o077;

/// Why a data directory was refused.
#[derive(Debug, thiserror::Error)]
pub enum PrivateDirError {
    /// Group or others may write the directory.
    #[error(
        "the data directory {} can be written by {who} (mode {mode:o}): another user could \
         replace its database or sockets; run `chmod 700 {}` or use another --data-dir",
        path.display(),
        path.display()
    )]
    OpenToOthers {
        /// The directory.
        path: PathBuf,
        /// "its group", "other users" or both.
        who: &'static str,
        /// Its permission bits.
        mode: u32,
    },
    /// Another user owns the directory.
    #[error(
        "the data directory {} belongs to uid {owner}, not to this user (uid {me}): use a \
         directory of your own (--data-dir)",
        path.display()
    )]
    NotOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// Reading or changing a mode failed.
    #[error("making {} owner-only: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Sets the process's umask to `077`, so every file, directory and socket created from now on
/// is the owner's alone. Process-wide: `datasync up` creates nothing that others should read.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(OTHERS));
}

/// Refuses `dir` (which exists) when another user owns it or may write it, then makes it and
/// everything in it owner-only (`0700` directories, `0600` files and sockets; symbolic links
/// are left alone, their targets are inside).
///
/// # Errors
/// [`PrivateDirError::OpenToOthers`], [`PrivateDirError::NotOwner`], or the I/O error of a
/// mode that could not be read or changed.
pub fn check_and_restrict(dir: &Path) -> Result<(), PrivateDirError> {
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    let mode = meta.mode() & 0o7777;
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => Some("its group and other users"),
        (true, false) => Some("its group"),
        (false, true) => Some("other users"),
        (false, false) => None,
    };
    if let Some(who) = who {
        return Err(PrivateDirError::OpenToOthers {
            path: dir.to_owned(),
            who,
            mode,
        });
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(PrivateDirError::NotOwner {
            path: dir.to_owned(),
            owner: meta.uid(),
            me,
        });
    }
    restrict_tree(dir)
}

/// Takes group and other bits off `path` and, for a directory, everything below it.
fn restrict_tree(path: &Path) -> Result<(), PrivateDirError> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.mode() & 0o7777;
    if mode & OTHERS != 0 {
        let owner_only = std::fs::Permissions::from_mode(mode & !OTHERS & 0o700);
        std::fs::set_permissions(path, owner_only).map_err(io(path))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io(path))? {
            restrict_tree(&entry.map_err(io(path))?.path())?;
        }
    }
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PrivateDirError {
    let path = path.to_owned();
    move |source| PrivateDirError::Io { path, source }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn a_directory_others_can_write_is_refused_naming_it_and_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        for (bits, who) in [
            (0o770, "its group"),
            (0o757, "other users"),
            (0o777, "its group and other users"),
        ] {
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(bits)).unwrap();
            let err = check_and_restrict(tmp.path()).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(&tmp.path().display().to_string()), "{text}");
            assert!(
                text.contains(&format!("can be written by {who} ")),
                "{text}"
            );
            assert!(text.contains("chmod 700"), "{text}");
        }
    }

    #[test]
    fn what_is_inside_becomes_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.join("fn")).unwrap();
        std::fs::set_permissions(dir.join("fn"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("emulator.db"), b"x").unwrap();
        std::fs::set_permissions(
            dir.join("emulator.db"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::write(dir.join("fn/run.sh"), b"x").unwrap();
        std::fs::set_permissions(
            dir.join("fn/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("run.sh", dir.join("fn/link")).unwrap();
        check_and_restrict(dir).unwrap();
        assert_eq!(mode(dir), 0o700);
        assert_eq!(mode(&dir.join("fn")), 0o700);
        assert_eq!(mode(&dir.join("emulator.db")), 0o600);
        assert_eq!(mode(&dir.join("fn/run.sh")), 0o700);
    }
}
