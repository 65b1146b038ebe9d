//! How the operator tools (`send`, `retry`, `status`, `bench --url`) find a running stack:
//! `--data-dir` (its `endpoints.json`, read as the stack's own [`StackInfo`]), or
//! `--url`/`--key`.

use std::path::PathBuf;

use datasync_local::stack::{EndpointsError, StackInfo};

/// How a tool finds a running stack: `--data-dir` (its `endpoints.json`), or `--url`/`--key`.
#[derive(Debug, Clone, clap::Args)]
pub struct StackArgs {
    /// The data directory of a running `datasync up` (its `endpoints.json` gives the gateway
    /// address, the keys and the stream OCIDs).
    #[arg(long, value_name = "DIR", default_value = ".datasync")]
    pub data_dir: PathBuf,
    /// The gateway base URL, instead of the one in `endpoints.json` (e.g. http://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The API key (`x-api-key`), instead of the one in `endpoints.json`.
    #[arg(
        long,
        value_name = "KEY",
        env = "DATASYNC_API_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
}

/// Which key of `endpoints.json` a tool uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `source_key`: `POST /stream/sync`.
    Source,
    /// `operator_key`: `POST /stream/retry`.
    Operator,
    /// No key (`GET /status`).
    None,
}

/// A running stack as a tool sees it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The gateway base URL, without a trailing slash.
    pub gateway: String,
    /// The key for the tool's role, if any.
    pub key: Option<String>,
    /// `endpoints.json`, when it was read.
    pub endpoints: Option<StackInfo>,
}

/// `endpoints.json` of `dir`, with what to do when there is none.
fn read_endpoints(dir: &std::path::Path) -> anyhow::Result<StackInfo> {
    StackInfo::read(dir).map_err(|e| match e {
        EndpointsError::Read { path, source } => anyhow::anyhow!(
            "no running stack found: cannot read {} ({source}); start one with `datasync up`, \
             pass --data-dir DIR of a running one, or give --url and --key",
            path.display()
        ),
        EndpointsError::Parse { path, source } => anyhow::Error::new(source).context(format!(
            "{} is not valid JSON; restart `datasync up` to rewrite it",
            path.display()
        )),
    })
}

impl StackArgs {
    /// Finds the stack: `--url`/`--key` win over `endpoints.json`, which is read only when
    /// something is missing.
    ///
    /// # Errors
    /// When neither gives a gateway URL (or the key the role needs).
    pub fn find(&self, role: Role) -> anyhow::Result<Found> {
        let need_key = role != Role::None && self.key.is_none();
        let endpoints = if self.url.is_none() || need_key {
            Some(read_endpoints(&self.data_dir)?)
        } else {
            StackInfo::read(&self.data_dir).ok()
        };
        let gateway = match (&self.url, &endpoints) {
            (Some(u), _) => u.clone(),
            (None, Some(e)) => e.gateway.clone(),
            (None, None) => anyhow::bail!("no gateway URL: pass --url or --data-dir"),
        };
        let key = match (&self.key, role, &endpoints) {
            (Some(k), _, _) => Some(k.clone()),
            (None, Role::Source, Some(e)) => Some(e.source_key.clone()),
            (None, Role::Operator, Some(e)) => Some(e.operator_key.clone()),
            _ => None,
        };
        Ok(Found {
            gateway: gateway.trim_end_matches('/').to_owned(),
            key,
            endpoints,
        })
    }
}

/// The error to show when the gateway cannot be reached.
pub fn unreachable(gateway: &str, e: &reqwest::Error) -> anyhow::Error {
    let why = datasync_core::oci::client::error_chain(e);
    if e.is_timeout() {
        return anyhow::anyhow!("the gateway at {gateway} did not answer in time: {why}");
    }
    anyhow::anyhow!(
        "cannot reach the gateway at {gateway}: {why} (is `datasync up` running? endpoints.json \
         may be left from a stopped stack; pass --url to choose another)"
    )
}
