//! The local stack `datasync up` runs: the OCI emulator, the three functions served through
//! `fdk` on Unix sockets, the API Gateway front, the Service Connector pump (with the archive,
//! the dead-letter notifications and the retry schedule), and the demo target — wired the way
//! `terraform/` wires the cloud.
//!
//! The functions are passed in as [`ServeFn`]s (the root package builds them from the
//! function crates), so this crate does not depend on them.
//!
//! State lives in the data directory: the emulator's database and keys, `gateway-keys.json`,
//! `callback-secret` (the delivery callbacks' signing secret),
//! `stack.json` (the OCIDs created), `connectors/*.json` (checkpoints), `fn/` (sockets and
//! resource principals), and `endpoints.json` (the addresses in use, for tools and tests).
//!
//! [`Stack::start`] runs the stages of `start` in order, one part each; the servers and the
//! pump live in [`gateway`], [`host`], [`pump`] and [`status`].

pub mod config;
mod error;
pub mod gateway;
pub mod host;
pub mod hosts_seen;
mod info;
pub mod keys;
pub mod metrics;
pub mod pump;
pub mod routes_seen;
mod start;
pub mod status;
pub mod streams;
pub mod trace_log;
pub mod trace_route;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::data_dir::DataDirLock;
use crate::demo_target::DemoTarget;
use crate::emulator::Emulator;
pub use config::{StackConfig, StackSettings};
pub use error::StackError;
use error::{io, write_json};
pub use host::{serve_fn, ServeFn};
pub use info::{EndpointsError, StackInfo, ENDPOINTS_FILE};
pub use start::callbacks::CALLBACK_SECRET_FILE;
pub use start::config_map::{ConfigMapTooLarge, MAX_CONFIG_MAP_BYTES};
pub use start::routes::{routes_bucket, ROUTES_OBJECT};

/// The three functions.
#[derive(Clone)]
pub struct Functions {
    /// populate.
    pub populate: ServeFn,
    /// process.
    pub process: ServeFn,
    /// retry.
    pub retry: ServeFn,
}

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Functions").finish_non_exhaustive()
    }
}

/// What [`Stack::start`] needs.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The gateway's address (default 127.0.0.1:8080).
    pub listen: SocketAddr,
    /// The emulator's address (loopback; port 0 picks one).
    pub emulator_listen: SocketAddr,
    /// The demo target's address, or `None` for no demo target.
    pub demo_target: Option<SocketAddr>,
    /// Whether the demo target keeps every request (for tests and inspection).
    pub demo_target_record: bool,
    /// Extra allow-list entries (`--allow-target`).
    pub allow_targets: Vec<String>,
    /// Validated configuration.
    pub settings: StackSettings,
    /// Reset the connectors' checkpoints and the consumer groups' positions that do not belong
    /// to the streams they name (after the emulator database was lost) instead of refusing to
    /// start (`--reset-checkpoints`).
    pub reset_checkpoints: bool,
    /// The functions' trace lines captured in this process ([`trace_log::trace_capture`]),
    /// stored as the invoke log; `None` stores none (`datasync trace` then finds nothing).
    pub trace: Option<Arc<trace_log::TraceCapture>>,
}

/// The OCIDs the stack created, kept in `DATA/stack.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Resources {
    /// Stream name → OCID.
    pub streams: BTreeMap<String, String>,
    /// The alerts topic.
    pub topic: Option<String>,
    /// The alerts topic's `apiEndpoint` (read at each start: the emulator's address may change).
    #[serde(skip)]
    pub topic_endpoint: Option<String>,
    /// The archive bucket.
    pub bucket: String,
    /// The bucket of the parked keys (per-key order across batches).
    #[serde(default)]
    pub parked_bucket: String,
    /// The routes object the functions read, `bucket/object` (written at each start).
    #[serde(skip)]
    pub routes_object: String,
    /// The vault OCID the functions use.
    pub vault: String,
    /// The key OCID.
    pub vault_key: String,
}

/// The emulator's Unix socket in the data directory, which the functions connect through.
pub const EMULATOR_SOCKET: &str = "emulator.sock";

/// The file the created OCIDs are kept in.
pub const RESOURCES_FILE: &str = "stack.json";

/// A running stack.
pub struct Stack {
    info: StackInfo,
    emulator: start::emulator::EmulatorPart,
    functions: start::functions::FunctionsPart,
    pump: start::pump::PumpPart,
    gateway: start::gateway::GatewayPart,
    trace: start::trace::TracePart,
    stop_target: CancellationToken,
    target_task: Option<JoinHandle<()>>,
    /// The demo target, when running in-process.
    pub demo_target: Option<Arc<DemoTarget>>,
    /// The callback signing secret when this start made it (shown once), else `None`.
    new_callback_secret: Option<String>,
    /// Held until the stack is dropped; last, so it is released after everything else.
    _lock: DataDirLock,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Creates (owner-only), checks and locks the data directory; its canonical path and the lock.
fn open_data_dir(dir: &Path) -> Result<(PathBuf, DataDirLock), StackError> {
    // Before anything is created: whatever the stack creates is the owner's alone.
    crate::private_dir::restrict_umask();
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let dir = std::fs::canonicalize(dir).map_err(io("resolving the data directory"))?;
    crate::private_dir::check_and_restrict(&dir)?;
    // Before anything in the directory is touched.
    let lock = DataDirLock::acquire(&dir)?;
    // Written again once everything is up: its presence means "ready".
    let _ = std::fs::remove_file(dir.join(ENDPOINTS_FILE));
    Ok((dir, lock))
}

impl Stack {
    /// Starts everything; returns once the gateway accepts requests.
    ///
    /// # Errors
    /// [`StackError`] naming what failed.
    pub async fn start(options: StackOptions, functions: Functions) -> Result<Self, StackError> {
        let s = &options.settings;
        let (dir, lock) = open_data_dir(&options.data_dir)?;
        // Before the functions start: an observation made before it is lost.
        let exporter = metrics::install();
        let mut emulator_options = crate::emulator::EmulatorOptions::default();
        emulator_options.notifications_per_minute = s.notifications.topic_rate_per_minute;
        emulator_options.monitoring_outage = s.metrics.monitoring_outage;
        let emulator =
            start::emulator::start(&dir, options.emulator_listen, emulator_options).await?;
        let resources = start::resources::ensure(&dir, &emulator.signed, s).await?;
        let trace =
            start::trace::start(&emulator, s, options.trace.as_ref(), &resources.streams).await?;
        let new_callback_secret =
            start::callbacks::ensure(&dir, &emulator.signed, &resources, s).await?;
        start::state::check(start::state::StateInput {
            dir: &dir,
            emulator: &emulator,
            resources: &resources,
            settings: s,
            reset: options.reset_checkpoints,
        })
        .await?;
        let stop_target = CancellationToken::new();
        let demo = match options.demo_target {
            Some(addr) => Some(
                start::demo_target::start(addr, options.demo_target_record, &stop_target).await?,
            ),
            None => None,
        };
        let functions = start::functions::start(start::functions::FunctionsInput {
            dir: &dir,
            emulator: &emulator,
            resources: &resources,
            demo_target: demo.as_ref().map(|d| d.url.as_str()),
            allow_targets: &options.allow_targets,
            settings: s,
            functions: &functions,
        })
        .await?;
        let pump = start::pump::start(start::pump::PumpInput {
            dir: &dir,
            emulator: &emulator,
            resources: &resources,
            settings: s,
            process: &functions.process,
            retry: &functions.retry,
        })
        .await?;
        let gateway = start::gateway::start(start::gateway::GatewayInput {
            dir: &dir,
            listen: options.listen,
            settings: s,
            emulator: &emulator,
            resources: &resources,
            functions: &functions,
            pump: &pump,
            demo_target: demo.as_ref(),
            trace: trace.source.clone(),
            exporter,
        })
        .await?;
        let info = StackInfo {
            gateway: gateway.url.clone(),
            emulator: emulator.base.clone(),
            demo_target: demo.as_ref().map(|d| d.url.clone()),
            source_key: gateway.keys.generated.source.clone(),
            operator_key: gateway.keys.generated.operator.clone(),
            oci_config_file: emulator.profile.config_file.clone(),
            oci_profile: emulator.profile.profile.clone(),
            compartment: emulator.profile.compartment.clone(),
            first_start: gateway.keys.created,
            streams: resources.streams.clone(),
            bucket: resources.bucket.clone(),
            trace_log: Some(trace.ids.clone()),
            routes_object: Some(resources.routes_object.clone()),
        };
        write_json(&dir.join(ENDPOINTS_FILE), &info)?;
        let (demo_target, target_task) = match demo {
            Some(d) => (Some(d.target), Some(d.task)),
            None => (None, None),
        };
        Ok(Self {
            info,
            emulator,
            functions,
            pump,
            gateway,
            trace,
            stop_target,
            target_task,
            demo_target,
            new_callback_secret,
            _lock: lock,
        })
    }

    /// The callback signing secret (`DATA/callback-secret`) when this start made it, so it can
    /// be shown once; `None` on later starts.
    pub fn new_callback_secret(&self) -> Option<&str> {
        self.new_callback_secret.as_deref()
    }

    /// Addresses and keys.
    pub fn info(&self) -> &StackInfo {
        &self.info
    }

    /// The emulator (for tests and the status page).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator.emulator
    }

    /// Stops in order: the gateway (requests in flight finish), the pump (a batch being
    /// delivered finishes and is committed), the functions, the demo target, the emulator.
    pub async fn shutdown(self) {
        self.gateway.stop.cancel();
        let _ = self.gateway.task.await;
        let _ = self.gateway.sampler.await;
        self.pump.stop.cancel();
        for t in self.pump.tasks {
            let _ = t.await;
        }
        self.functions.refresher.abort();
        self.functions.host.shutdown().await;
        // The functions' last lines are stored before the emulator stops.
        self.trace.stop.cancel();
        if let Some(w) = self.trace.writer {
            let _ = w.await;
        }
        self.stop_target.cancel();
        if let Some(t) = self.target_task {
            let _ = t.await;
        }
        self.emulator.stop.cancel();
        let _ = self.emulator.task.await;
        self.emulator.emulator.close();
    }
}
