//! `datasync oci ...`: signed calls to OCI APIs.

use std::process::ExitCode;

/// Tools that talk to OCI directly.
#[derive(Debug, clap::Subcommand)]
pub enum OciCommand {}

/// Runs an `oci` subcommand.
pub fn run(command: OciCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
