//! `datasync emulator`: runs the OCI emulator (the `datasync-emulator` crate) alone on a data
//! directory until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use datasync_emulator::{Emulator, EmulatorOptions};
use datasync_local::data_dir::DataDirLock;
use tokio_util::sync::CancellationToken;

/// Runs the OCI emulator (Streaming, Secrets/Vault, Notifications, Object Storage).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the emulator keeps its database, keys and the generated OCI config file.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8480")]
    pub listen: SocketAddr,
}

/// Runs the emulator until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating {}", args.data_dir.display()))?;
        // Held until the emulator stops: one process per data directory.
        let _lock = DataDirLock::acquire(&args.data_dir)?;
        let emulator = Emulator::open(&args.data_dir, EmulatorOptions::default())?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding the emulator to {} (use --listen)", args.listen))?;
        let addr = listener.local_addr()?;
        let profile = emulator.profile();
        println!("listening on http://{addr}");
        println!("config file: {}", profile.config_file.display());
        println!("profile: {}", profile.profile);
        println!("compartment: {}", profile.compartment);
        println!(
            "try: oci --config-file {} --profile {} --endpoint http://{addr} streaming admin stream list --compartment-id {}",
            profile.config_file.display(),
            profile.profile,
            profile.compartment
        );
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            stop.cancel();
        });
        emulator.serve(listener, shutdown).await?;
        emulator.close();
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
