//! `datasync routes`: the operator's view of routes (docs/routes.md). `list` shows the routes,
//! `test` runs messages through one of them with the code the functions run
//! ([`Route::filter`](datasync_core::routes::Route::filter) at ingest,
//! [`Route::resolve`](datasync_core::routes::Route::resolve) at delivery), without sending
//! anything.
//!
//! The routes come from a `datasync up` configuration file (`--config`, its `[[routes]]`
//! tables, read as `datasync up` reads them), or, without one, from the routes object a running
//! stack stored in its Object Storage (found through `--data-dir`'s `endpoints.json`): the very
//! routes its functions use.

mod list;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use datasync_core::oci::auth::ConfigProfile;
use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::signer::Signer;
use datasync_core::routes::RouteSet;
use datasync_local::client::SignedClient;
use datasync_local::emulator::NAMESPACE;
use datasync_local::stack::{StackConfig, StackInfo};

/// Lists routes, or runs messages through one to see what it would deliver.
#[derive(Debug, clap::Subcommand)]
pub enum RoutesCommand {
    /// Lists the routes: name, operation, target, and which programs each has.
    List(list::Args),
    /// Runs messages through a route: the filter's result, then the operation, URL, headers
    /// (secret names only) and payload it would deliver; exit status 1 if one would be refused.
    Test(test::Args),
}

/// Where the routes come from: a configuration file, or a running stack.
#[derive(Debug, Clone, clap::Args)]
pub struct RoutesSource {
    /// A `datasync up` configuration file: its `[[routes]]` tables, read as `datasync up`
    /// reads them (without it, the routes a running stack stored).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory of a running `datasync up`, whose stored routes are read when no
    /// --config is given.
    #[arg(long, value_name = "DIR", default_value = ".datasync")]
    pub data_dir: PathBuf,
}

impl RoutesSource {
    /// The route set, and a sentence saying where it came from.
    ///
    /// # Errors
    /// When the file cannot be read or a route does not compile, or the stack cannot be found
    /// or its routes object read.
    pub fn load(&self) -> anyhow::Result<(RouteSet, String)> {
        match &self.config {
            Some(path) => {
                let config = StackConfig::load(path)?;
                let set = datasync_local::stack::config::routes::parse(&config.routes)?;
                Ok((set, format!("{}", path.display())))
            }
            None => stored_routes(&self.data_dir),
        }
    }
}

/// The routes object of the stack running in `dir`.
fn stored_routes(dir: &Path) -> anyhow::Result<(RouteSet, String)> {
    let info = StackInfo::read(dir).map_err(|e| {
        anyhow::anyhow!(
            "no running stack found ({e}); pass --config FILE to read routes from a configuration file, or --data-dir DIR of a running `datasync up`"
        )
    })?;
    let object = info.routes_object.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "the stack in {} stores no routes (started by a datasync without routes); restart it",
            dir.display()
        )
    })?;
    let (bucket, name) = object.split_once('/').ok_or_else(|| {
        anyhow::anyhow!("endpoints.json names the routes object {object:?}, not bucket/object")
    })?;
    let signed = signed_client(&info)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime
        .block_on(signed.get(&format!("/n/{NAMESPACE}/b/{bucket}/o/{name}")))
        .with_context(|| {
            format!(
                "cannot reach the stack's OCI emulator at {} (is `datasync up` running?)",
                info.emulator
            )
        })?;
    if !answer.status.is_success() {
        anyhow::bail!(
            "reading the routes object {object} answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    let set = RouteSet::from_json(&answer.body)
        .with_context(|| format!("the stack's routes object {object}"))?;
    Ok((set, format!("the stack in {} ({object})", dir.display())))
}

/// A client signed with the stack's LOCAL profile.
fn signed_client(info: &StackInfo) -> anyhow::Result<SignedClient> {
    let profile = ConfigProfile::load(&info.oci_config_file, &info.oci_profile, None)
        .with_context(|| format!("reading {}", info.oci_config_file.display()))?;
    let pem = std::fs::read_to_string(&profile.key_file)
        .with_context(|| format!("reading {}", profile.key_file.display()))?;
    let key = PrivateKey::from_pem(&pem, None)?;
    Ok(SignedClient::new(
        &info.emulator,
        Signer::new(profile.key_id(), key),
    )?)
}

/// Runs a `datasync routes` subcommand.
pub fn run(command: RoutesCommand) -> anyhow::Result<ExitCode> {
    match command {
        RoutesCommand::List(args) => list::run(&args),
        RoutesCommand::Test(args) => test::run(&args),
    }
}
