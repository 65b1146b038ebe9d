//! Why the stack could not start, and the small file helpers its stages share.

use std::path::Path;

use serde::Serialize;

use super::host;

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The emulator failed.
    #[error("emulator: {0}")]
    Emulator(#[from] crate::emulator::EmulatorError),
    /// The data directory is in use, or its lock file failed.
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::LockError),
    /// The data directory is open to other users, or could not be made owner-only.
    #[error(transparent)]
    PrivateDir(#[from] crate::private_dir::PrivateDirError),
    /// A file or socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Creating a resource in the emulator failed.
    #[error("creating {what} in the emulator: {detail}")]
    Setup {
        /// The resource.
        what: String,
        /// The answer.
        detail: String,
    },
    /// The functions' configuration map is over OCI's 4 KB.
    #[error(transparent)]
    ConfigMap(#[from] crate::stack::start::config_map::ConfigMapTooLarge),
    /// A route's `status_callback` breaks the stack's allow-list.
    #[error(transparent)]
    Route(#[from] datasync_core::routes::RouteError),
    /// A saved read position does not belong to the stream it names.
    #[error(transparent)]
    State(#[from] super::start::state::StateError),
    /// A function could not be started.
    #[error("starting function {name}: {source}")]
    Function {
        /// The function.
        name: String,
        /// The error.
        #[source]
        source: host::HostError,
    },
}

/// Maps an I/O error to [`StackError::Io`] saying what was being done.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StackError {
    let what = what.into();
    move |source| StackError::Io { what, source }
}

/// A [`StackError::Setup`] for `what`, from any error.
pub(crate) fn setup(what: &str, e: &dyn std::fmt::Display) -> StackError {
    StackError::Setup {
        what: what.into(),
        detail: e.to_string(),
    }
}

/// Writes `value` as pretty JSON to `path` through a temporary file and a rename, so a reader
/// never sees half a file.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), StackError> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| StackError::Io {
        what: format!("encoding {}", path.display()),
        source: std::io::Error::other(e),
    })?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("writing {}", path.display())))
}
