//! `datasync demo-target`: the demo target alone.

use std::net::SocketAddr;
use std::process::ExitCode;

use datasync_local::demo_target::{DemoTarget, Mode};
use tokio_util::sync::CancellationToken;

/// Runs a target API that records what it receives (duplicates counted by
/// `Idempotency-Key`) and fails on request. `GET /_received` shows what arrived;
/// `POST /_control {"status":503,"count":10}` changes the answers at runtime; `GET /_help`
/// lists every control.
#[derive(Debug, clap::Args)]
#[command(after_help = datasync_local::demo_target::HELP)]
pub struct Args {
    /// The address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Share of deliveries (0 to 1) answered with a failure at random.
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub fail_rate: f64,
    /// The status of those failures (or of every delivery when --fail-rate is 0 and this is
    /// given).
    #[arg(long, value_name = "CODE")]
    pub status: Option<u16>,
    /// Delay before each answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub delay: u64,
}

/// Runs until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.fail_rate) {
        anyhow::bail!("--fail-rate must be between 0 and 1 (e.g. 0.1 for 10%)");
    }
    if let Some(s) = args.status {
        if !(100..=599).contains(&s) {
            anyhow::bail!("--status must be an HTTP status from 100 to 599");
        }
    }
    let mode = if args.fail_rate > 0.0 {
        Mode {
            fail_rate: args.fail_rate,
            fail_status: args.status,
            delay_ms: args.delay,
            ..Mode::default()
        }
    } else {
        Mode {
            status: args.status,
            delay_ms: args.delay,
            ..Mode::default()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {}: {e} (choose another with --listen)",
                    args.listen
                )
            })?;
        let addr = listener.local_addr()?;
        {
            // Ignore a closed stdout: the target keeps serving.
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "demo target listening on http://{addr}");
            let _ = writeln!(
                out,
                "  received: GET http://{addr}/_received   control: POST http://{addr}/_control   help: GET http://{addr}/_help"
            );
            let _ = out.flush();
        }
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            super::up::wait_for_signal().await;
            s.cancel();
        });
        datasync_local::demo_target::serve(DemoTarget::new(mode, true), listener, stop).await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
