//! The datasync command line: the local stack, the benchmark and tools for operators.

use clap::{Parser, Subcommand};

mod cmd;

/// jemalloc: see its entry in the workspace Cargo.toml for why.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Sync data from source applications to target REST APIs through OCI Streaming.
#[derive(Debug, Parser)]
#[command(name = "datasync", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Calls OCI APIs by hand, signed with your credentials.
    #[command(subcommand)]
    Oci(cmd::oci::OciCommand),
    /// Runs the OCI emulator the local stack uses (Streaming, Vault, Notifications, Object Storage).
    Emulator(cmd::emulator::Args),
    /// Runs the whole stack locally: emulator, functions, API Gateway front, connector pump,
    /// demo target. No cloud account needed.
    Up(cmd::up::Args),
    /// Runs the demo target alone: records what it receives, fails on request.
    DemoTarget(cmd::demo_target::Args),
    /// Measures throughput, latency, OCI calls and memory of a stack (in-process, or a running
    /// one with --url/--data-dir) with the demo target.
    Bench(cmd::bench::Args),
    /// Sends sync requests (a file or stdin: one, a JSON array, or JSON lines) to a running stack.
    Send(cmd::send::Args),
    /// Retries an error stream of a running stack (operator key), once or until empty.
    Retry(cmd::retry::Args),
    /// Shows a running stack's streams, lag, deliveries, failures, notifications and archive.
    Status(cmd::status::Args),
    /// Shows a message's story (by id) or every message of a key: accepted, each attempt,
    /// re-routes, parked and released, delivered or dead-lettered, replays, callbacks.
    Trace(cmd::trace::Args),
    /// Lists routes, or runs messages through one to see what it would deliver.
    #[command(subcommand)]
    Routes(cmd::routes::RoutesCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Oci(command) => cmd::oci::run(command),
        Command::Emulator(args) => cmd::emulator::run(args),
        Command::Up(args) => cmd::up::run(args),
        Command::DemoTarget(args) => cmd::demo_target::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Send(args) => cmd::send::run(args),
        Command::Retry(args) => cmd::retry::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Trace(args) => cmd::trace::run(args),
        Command::Routes(command) => cmd::routes::run(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let err: &(dyn std::error::Error + 'static) = err.as_ref();
            eprintln!("datasync: {}", datasync_core::oci::client::error_chain(err));
            std::process::ExitCode::FAILURE
        }
    }
}
