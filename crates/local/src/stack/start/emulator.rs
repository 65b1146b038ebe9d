//! Stage 1: the OCI emulator on its TCP port and, beside it, a Unix socket the functions and
//! the pump reach it through.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::SignedClient;
use crate::emulator::{Emulator, EmulatorOptions, LocalProfile};
use crate::stack::error::{io, setup, StackError};
use crate::stack::EMULATOR_SOCKET;

/// The running emulator.
pub(crate) struct EmulatorPart {
    /// The emulator.
    pub emulator: Emulator,
    /// Its base URL (`http://ADDR`).
    pub base: String,
    /// Its Unix socket, when one could be bound.
    pub socket: Option<PathBuf>,
    /// The `LOCAL` profile (config file, key, compartment).
    pub profile: LocalProfile,
    /// A client signed with that profile.
    pub signed: SignedClient,
    /// Stops it.
    pub stop: CancellationToken,
    /// Its serving task.
    pub task: JoinHandle<()>,
}

/// Opens the emulator's store in `dir` with `options` and serves it on `listen` and
/// `dir/emulator.sock`.
pub(crate) async fn start(
    dir: &Path,
    listen: SocketAddr,
    options: EmulatorOptions,
) -> Result<EmulatorPart, StackError> {
    let emulator = Emulator::open(dir, options)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(io(format!(
        "binding the emulator to {listen} (is another datasync up running? use --emulator-listen)"
    )))?;
    let addr = listener.local_addr().map_err(io("emulator address"))?;
    // The functions reach the emulator through a Unix socket beside its TCP port (same URLs
    // and signatures, less kernel work per call); without one (a path too long for a socket
    // address, say) they use TCP.
    let socket_path = dir.join(EMULATOR_SOCKET);
    let _ = std::fs::remove_file(&socket_path);
    let unix_listener = match tokio::net::UnixListener::bind(&socket_path) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(path = %socket_path.display(), error = %e,
                "the emulator's Unix socket could not be bound; the functions use TCP");
            None
        }
    };
    let socket = unix_listener.as_ref().map(|_| socket_path);
    let stop = CancellationToken::new();
    let task = {
        let emulator = emulator.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let unix = async {
                match unix_listener {
                    Some(l) => emulator.serve_unix(l, stop.clone()).await,
                    None => Ok(()),
                }
            };
            let (tcp, unix) = tokio::join!(emulator.serve(listener, stop.clone()), unix);
            for e in [tcp.err(), unix.err()].into_iter().flatten() {
                tracing::error!(error = %e, "the emulator stopped");
            }
        })
    };
    let base = format!("http://{addr}");
    let profile = emulator.profile().clone();
    let signed = SignedClient::for_profile(&base, &profile)
        .map_err(|e| setup("the LOCAL profile client", &e))?;
    Ok(EmulatorPart {
        emulator,
        base,
        socket,
        profile,
        signed,
        stop,
        task,
    })
}
