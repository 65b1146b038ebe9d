//! The socket dance: the phony socket, its permissions and the symlink the agent watches, and
//! their removal.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use crate::protocol;
use crate::Error;

/// The two socket files; removed on drop (normal exit, error, or unwinding).
pub(super) struct SocketFiles {
    socket: PathBuf,
    phony: PathBuf,
}

impl Drop for SocketFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.phony);
    }
}

fn remove_stale(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Socket {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The socket dance, in the agent's order: remove stale files, bind the phony socket,
/// chmod 0666, then publish it with a relative symlink (the agent's inotify sees the link
/// appear only once the socket is ready and connectable by its uid).
pub(super) fn bind(socket: &Path) -> Result<(UnixListener, SocketFiles), Error> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Socket { path, source }
    };
    let (phony, phony_name) = match (protocol::phony_path(socket), socket.file_name()) {
        (Some(p), Some(name)) => {
            let mut n = std::ffi::OsString::from(protocol::PHONY_PREFIX);
            n.push(name);
            (p, n)
        }
        _ => {
            return Err(Error::InvalidListener {
                value: socket.display().to_string(),
                reason: "the socket path has no file name".to_owned(),
            })
        }
    };
    remove_stale(socket)?;
    remove_stale(&phony)?;
    let listener = UnixListener::bind(&phony).map_err(err(&phony))?;
    let files = SocketFiles {
        socket: socket.to_owned(),
        phony: phony.clone(),
    };
    std::fs::set_permissions(&phony, std::fs::Permissions::from_mode(0o666))
        .map_err(err(&phony))?;
    std::os::unix::fs::symlink(&phony_name, socket).map_err(err(socket))?;
    Ok((listener, files))
}
