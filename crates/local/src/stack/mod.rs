//! The local stack `datasync up` runs: the OCI emulator, the three functions served through
//! `fdk` on Unix sockets, the API Gateway front, the Service Connector pump (with the archive,
//! the dead-letter notifications and the retry schedule), and the demo target — wired the way
//! `terraform/` wires the cloud.
//!
//! The functions are passed in as [`ServeFn`]s (the root package builds them from the
//! function crates), so this crate does not depend on them.
//!
//! State lives in the data directory: the emulator's database and keys, `gateway-keys.json`,
//! `stack.json` (the OCIDs created), `connectors/*.json` (checkpoints), `fn/` (sockets and
//! resource principals), and `endpoints.json` (the addresses in use, for tools and tests).

pub mod config;
pub mod gateway;
pub mod host;
pub mod keys;
pub mod pump;
pub mod status;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use datasync_core::oci::auth::StaticAuth;
use datasync_core::oci::client::OciClient;
use datasync_core::oci::endpoints::Endpoints;
use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::notifications::NotificationsClient;
use datasync_core::oci::objectstorage::ObjectStorageClient;
use datasync_core::oci::streaming::StreamClient;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::SignedClient;
use crate::data_dir::DataDirLock;
use crate::demo_target::{DemoTarget, Mode};
use crate::emulator::{Emulator, EmulatorOptions, LOCAL_COMPARTMENT, NAMESPACE};
pub use config::{StackConfig, StackSettings};
pub use host::{serve_fn, ServeFn};
use keys::KeyRing;
use pump::{Batching, Connector, Sink};

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The emulator failed.
    #[error("emulator: {0}")]
    Emulator(#[from] crate::emulator::EmulatorError),
    /// The data directory is in use, or its lock file failed.
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::LockError),
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

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StackError {
    let what = what.into();
    move |source| StackError::Io { what, source }
}

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
}

/// The OCIDs the stack created, kept in `DATA/stack.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Resources {
    /// Stream name → OCID.
    pub streams: BTreeMap<String, String>,
    /// The alerts topic.
    pub topic: Option<String>,
    /// The archive bucket.
    pub bucket: String,
    /// The vault OCID the functions use.
    pub vault: String,
    /// The key OCID.
    pub vault_key: String,
}

/// The addresses and credentials of a running stack, also written to `DATA/endpoints.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackInfo {
    /// The gateway base URL.
    pub gateway: String,
    /// The emulator base URL.
    pub emulator: String,
    /// The demo target base URL, if running.
    pub demo_target: Option<String>,
    /// The source key.
    pub source_key: String,
    /// The operator key.
    pub operator_key: String,
    /// The OCI config file with the `LOCAL` profile.
    pub oci_config_file: PathBuf,
    /// The profile name.
    pub oci_profile: String,
    /// The compartment OCID.
    pub compartment: String,
    /// Whether the keys were generated by this start.
    pub first_start: bool,
    /// Stream names → OCIDs.
    pub streams: BTreeMap<String, String>,
    /// The archive bucket.
    pub bucket: String,
}

/// The file `StackInfo` is written to.
pub const ENDPOINTS_FILE: &str = "endpoints.json";

/// A running stack.
pub struct Stack {
    info: StackInfo,
    emulator: Emulator,
    stop_gateway: CancellationToken,
    stop_pump: CancellationToken,
    stop_emulator: CancellationToken,
    stop_target: CancellationToken,
    gateway_task: JoinHandle<()>,
    pump_tasks: Vec<JoinHandle<()>>,
    emulator_task: JoinHandle<()>,
    target_task: Option<JoinHandle<()>>,
    refresher: JoinHandle<()>,
    host: host::Host,
    /// The demo target, when running in-process.
    pub demo_target: Option<Arc<DemoTarget>>,
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

/// Stream roles, with their Terraform name suffix and the function configuration key.
const STREAMS: [(&str, &str); 6] = [
    ("data", "data_stream_ocid"),
    (
        "errors-service-unavailable",
        "serviceUnavailable_error_stream_ocid",
    ),
    ("errors-internal-server", "internalserver_error_stream_ocid"),
    ("errors-unrecoverable", "unrecoverable_error_stream_ocid"),
    ("errors-default", "default_error_stream_ocid"),
    ("dead-letter", "dead_letter_stream_ocid"),
];

/// Archive connectors: stream suffix, connector name, object prefix (as `connectors.tf`).
const ARCHIVES: [(&str, &str, &str); 5] = [
    (
        "errors-service-unavailable",
        "archive-service-unavailable",
        "errors/service-unavailable",
    ),
    (
        "errors-internal-server",
        "archive-internal-server",
        "errors/internal-server",
    ),
    (
        "errors-unrecoverable",
        "archive-unrecoverable",
        "errors/unrecoverable",
    ),
    ("errors-default", "archive-default", "errors/default"),
    ("dead-letter", "archive-dead-letter", "dead-letter"),
];

impl Stack {
    /// Starts everything; returns once the gateway accepts requests.
    ///
    /// # Errors
    /// [`StackError`] naming what failed.
    pub async fn start(options: StackOptions, functions: Functions) -> Result<Self, StackError> {
        let s = &options.settings;
        let dir = &options.data_dir;
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let dir = std::fs::canonicalize(dir).map_err(io("resolving the data directory"))?;
        // Before anything in the directory is touched.
        let lock = DataDirLock::acquire(&dir)?;
        // Written again once everything is up: its presence means "ready".
        let _ = std::fs::remove_file(dir.join(ENDPOINTS_FILE));

        // 1. The emulator.
        let emulator = Emulator::open(&dir, EmulatorOptions::default())?;
        let listener = tokio::net::TcpListener::bind(options.emulator_listen)
            .await
            .map_err(io(format!(
                "binding the emulator to {} (is another datasync up running? use --emulator-listen)",
                options.emulator_listen
            )))?;
        let emulator_addr = listener.local_addr().map_err(io("emulator address"))?;
        // The functions reach the emulator through a Unix socket beside its TCP port (same
        // URLs and signatures, less kernel work per call); without one (a path too long for a
        // socket address, say) they use TCP.
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
        let oci_socket = unix_listener.as_ref().map(|_| socket_path.clone());
        let stop_emulator = CancellationToken::new();
        let emulator_task = {
            let emulator = emulator.clone();
            let stop = stop_emulator.clone();
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
        let base = format!("http://{emulator_addr}");
        let profile = emulator.profile().clone();
        let signed = SignedClient::for_profile(&base, &profile).map_err(|e| StackError::Setup {
            what: "the LOCAL profile client".into(),
            detail: e.to_string(),
        })?;

        // 2. Streams, topic, bucket (if absent).
        let resources = ensure_resources(&dir, &signed, s).await?;

        // 3. The demo target.
        let stop_target = CancellationToken::new();
        let (demo_target, target_url, target_task) = match options.demo_target {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(io(format!(
                        "binding the demo target to {addr} (is another datasync up running? \
                         use --demo-target-listen, or --no-demo-target)"
                    )))?;
                let local = listener.local_addr().map_err(io("demo target address"))?;
                let target = DemoTarget::new(Mode::default(), options.demo_target_record);
                let t = Arc::clone(&target);
                let stop = stop_target.clone();
                let task = tokio::spawn(async move {
                    if let Err(e) = crate::demo_target::serve(t, listener, stop).await {
                        tracing::error!(error = %e, "the demo target stopped");
                    }
                });
                (Some(target), Some(format!("http://{local}")), Some(task))
            }
            None => (None, None, None),
        };

        // 4. The functions, configured as Terraform configures them.
        let mut allow: Vec<String> = Vec::new();
        if let Some(url) = &target_url {
            allow.push(url.trim_start_matches("http://").to_owned());
        }
        allow.extend(s.allow_targets.iter().cloned());
        allow.extend(options.allow_targets.iter().cloned());
        if allow.is_empty() {
            // The functions refuse an empty allow-list; keep a harmless entry.
            allow.push("localhost:1".to_owned());
        }
        let mut fn_config: BTreeMap<String, String> = BTreeMap::new();
        for (suffix, key) in STREAMS {
            if let Some(id) = resources
                .streams
                .get(&format!("{}-{suffix}", s.name_prefix))
            {
                fn_config.insert(key.to_owned(), id.clone());
            }
        }
        fn_config.insert("vault_ocid".into(), resources.vault.clone());
        fn_config.insert("vault_compartment_ocid".into(), LOCAL_COMPARTMENT.into());
        fn_config.insert("vault_key_ocid".into(), resources.vault_key.clone());
        if let Some(topic) = &resources.topic {
            fn_config.insert("notification_topic_ocid".into(), topic.clone());
        }
        fn_config.insert("target_allow_list".into(), allow.join(","));
        fn_config.insert("allow_http_targets".into(), "true".into());
        fn_config.insert("allow_private_targets".into(), "true".into());
        for (k, v) in &s.function_config {
            fn_config.insert(k.clone(), v.clone());
        }
        fn_config.insert("DATASYNC_OCI_ENDPOINT".into(), base.clone());
        if let Some(path) = &oci_socket {
            fn_config.insert(
                "DATASYNC_OCI_UNIX_SOCKET".into(),
                path.to_string_lossy().into_owned(),
            );
        }
        fn_config.insert("FN_APP_NAME".into(), s.name_prefix.clone());
        fn_config.insert("FN_FORMAT".into(), "http-stream".into());

        let fn_dir = dir.join("fn");
        let rp_ttl = Duration::from_secs(6 * 3600);
        let mut host = host::Host::new();
        let mut pools = Vec::new();
        let names = ["populate", "process", "retry"];
        let serves = [&functions.populate, &functions.process, &functions.retry];
        // Each resource principal needs a new RSA key: make the three at once, off the
        // runtime's threads (key generation takes a good part of a second each).
        let minting: Vec<_> = names
            .iter()
            .map(|&name| {
                let (emulator, dir) = (emulator.clone(), fn_dir.join(format!("{name}-rp")));
                tokio::task::spawn_blocking(move || {
                    emulator.mint_resource_principal(name, &dir, rp_ttl)
                })
            })
            .collect();
        let mut principals = Vec::with_capacity(names.len());
        for task in minting {
            let minted = task.await.map_err(|e| StackError::Setup {
                what: "the functions' resource principals".into(),
                detail: e.to_string(),
            })?;
            principals.push(minted?);
        }
        for ((i, name), rp) in names.iter().enumerate().zip(principals) {
            let mut vars = fn_config.clone();
            vars.extend(rp.env());
            vars.insert("FN_FN_NAME".into(), (*name).to_owned());
            vars.insert("FN_FN_ID".into(), rp.resource_id.clone());
            vars.insert("FN_APP_ID".into(), "ocid1.fnapp.oc1.local.datasync".into());
            let config: fdk::Config = vars.into_iter().collect();
            let pool = host
                .start(name, serves[i], s.instances[i], &fn_dir, &config)
                .await
                .map_err(|source| StackError::Function {
                    name: (*name).to_owned(),
                    source,
                })?;
            pools.push(pool);
        }
        let (populate, process, retry) = (pools[0].clone(), pools[1].clone(), pools[2].clone());
        let refresher = {
            let emulator = emulator.clone();
            let fn_dir = fn_dir.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    for name in names {
                        if let Err(e) = emulator.mint_resource_principal(
                            name,
                            &fn_dir.join(format!("{name}-rp")),
                            rp_ttl,
                        ) {
                            tracing::warn!(function = name, error = %e, "refreshing the resource principal failed");
                        }
                    }
                }
            })
        };

        // 5. The connector pump, as connectors.tf wires it.
        let key_pem = std::fs::read_to_string(&profile.key_file)
            .map_err(io(format!("reading {}", profile.key_file.display())))?;
        let key = PrivateKey::from_pem(&key_pem, None).map_err(|e| StackError::Setup {
            what: "the LOCAL profile key".into(),
            detail: e.to_string(),
        })?;
        let auth = Arc::new(StaticAuth::new(profile.key_id(), key, None));
        let setup = |what: &str, e: &dyn std::fmt::Display| StackError::Setup {
            what: what.into(),
            detail: e.to_string(),
        };
        // The pump reads and writes through the emulator's Unix socket too, as the functions do.
        let oci = OciClient::new(auth)
            .and_then(|c| c.via_unix_socket(oci_socket.as_deref()))
            .map_err(|e| setup("the OCI client", &e))?;
        let endpoints = Endpoints::all_at(&base).map_err(|e| setup("the endpoints", &e))?;
        let streams = StreamClient::new(oci.clone(), &endpoints)
            .map_err(|e| setup("the stream client", &e))?;
        let objects = ObjectStorageClient::new(oci.clone(), &endpoints)
            .map_err(|e| setup("the object storage client", &e))?;
        let notifications = NotificationsClient::new(oci, &endpoints)
            .map_err(|e| setup("the notifications client", &e))?;
        let conn_dir = dir.join("connectors");
        let stream_id = |suffix: &str| {
            let name = format!("{}-{suffix}", s.name_prefix);
            resources.streams.get(&name).cloned().map(|id| (id, name))
        };
        let mut connectors: Vec<Arc<Connector>> = Vec::new();
        let mk = |name: &str,
                  suffix: &str,
                  partitions: u32,
                  sink: Sink,
                  archive: bool|
         -> Result<Option<Connector>, StackError> {
            let Some((id, stream_name)) = stream_id(suffix) else {
                return Ok(None);
            };
            let batching = if archive {
                Batching {
                    max_messages: 10_000,
                    max_bytes: s.rollover_bytes,
                    max_wait: s.rollover_time,
                }
            } else {
                Batching {
                    max_messages: s.batch_size,
                    max_bytes: 4 * 1024 * 1024,
                    max_wait: s.batch_time,
                }
            };
            let appended = emulator.appended(&id);
            Connector::new(
                &conn_dir,
                name,
                &id,
                &stream_name,
                partitions,
                sink,
                batching,
                s.max_backoff,
            )
            .map(|c| c.with_append_signal(appended))
            .map(Some)
            .map_err(io(format!("opening the checkpoints of connector {name}")))
        };
        if let Some(c) = mk(
            "data-to-process",
            "data",
            s.streams.data_stream_partitions,
            Sink::Function(process.clone()),
            false,
        )? {
            connectors.push(Arc::new(c));
        }
        if s.notify_dead_letter {
            if let Some(topic) = &resources.topic {
                let sink = Sink::Notifications {
                    client: notifications.clone(),
                    topic: topic.clone(),
                };
                if let Some(c) = mk(
                    "dead-letter-to-notifications",
                    "dead-letter",
                    s.streams.error_stream_partitions,
                    sink,
                    false,
                )? {
                    connectors.push(Arc::new(c));
                }
            }
        }
        for (suffix, name, prefix) in ARCHIVES {
            let sink = Sink::Archive {
                client: objects.clone(),
                namespace: NAMESPACE.into(),
                bucket: resources.bucket.clone(),
                prefix: prefix.into(),
            };
            if let Some(c) = mk(name, suffix, s.streams.error_stream_partitions, sink, true)? {
                connectors.push(Arc::new(c));
            }
        }
        let stop_pump = CancellationToken::new();
        let mut pump_tasks = Vec::new();
        for c in &connectors {
            pump_tasks.push(tokio::spawn(
                Arc::clone(c).run(streams.clone(), stop_pump.clone()),
            ));
        }
        let retry_runs = Arc::new(AtomicU64::new(0));
        if let Some(interval) = s.retry_interval {
            let retryable: Vec<String> = [
                "errors-service-unavailable",
                "errors-internal-server",
                "errors-default",
            ]
            .iter()
            .filter_map(|suffix| stream_id(suffix).map(|(id, _)| id))
            .collect();
            pump_tasks.push(tokio::spawn(pump::retry_schedule(
                retry.clone(),
                retryable,
                interval,
                s.retry_max,
                Arc::clone(&retry_runs),
                stop_pump.clone(),
            )));
        }

        // 6. The gateway.
        let keys = KeyRing::load_or_create(&dir, &s.keys).map_err(io("the gateway keys"))?;
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(io(format!(
                "binding the gateway to {} (is another datasync up running? use --listen)",
                options.listen
            )))?;
        let gateway_addr = listener.local_addr().map_err(io("gateway address"))?;
        let gw_stats = Arc::new(gateway::GatewayStats::default());
        let status_fn = status::status_fn(status::Sources {
            emulator: emulator.clone(),
            signed: signed.clone(),
            bucket: resources.bucket.clone(),
            connectors: connectors.clone(),
            gateway: Arc::clone(&gw_stats),
            pools: vec![populate.clone(), process.clone(), retry.clone()],
            demo_target: demo_target.clone(),
            retry_runs,
            started: std::time::Instant::now(),
        });
        let gw = Arc::new(gateway::Gateway::new(
            keys.clone(),
            populate,
            retry,
            s.rate_limit,
            s.max_body_bytes,
            Some(status_fn),
            gateway_addr.to_string(),
            gw_stats,
        ));
        let stop_gateway = CancellationToken::new();
        let gateway_task = {
            let stop = stop_gateway.clone();
            tokio::spawn(async move {
                if let Err(e) = gateway::serve(gw, listener, stop).await {
                    tracing::error!(error = %e, "the gateway stopped");
                }
            })
        };

        let info = StackInfo {
            gateway: format!("http://{gateway_addr}"),
            emulator: base,
            demo_target: target_url,
            source_key: keys.generated.source.clone(),
            operator_key: keys.generated.operator.clone(),
            oci_config_file: profile.config_file.clone(),
            oci_profile: profile.profile.clone(),
            compartment: profile.compartment.clone(),
            first_start: keys.created,
            streams: resources.streams.clone(),
            bucket: resources.bucket.clone(),
        };
        write_json(&dir.join(ENDPOINTS_FILE), &info)?;
        Ok(Self {
            info,
            emulator,
            stop_gateway,
            stop_pump,
            stop_emulator,
            stop_target,
            gateway_task,
            pump_tasks,
            emulator_task,
            target_task,
            refresher,
            host,
            demo_target,
            _lock: lock,
        })
    }

    /// Addresses and keys.
    pub fn info(&self) -> &StackInfo {
        &self.info
    }

    /// The emulator (for tests and the status page).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// Stops in order: the gateway (requests in flight finish), the pump (a batch being
    /// delivered finishes and is committed), the functions, the demo target, the emulator.
    pub async fn shutdown(self) {
        self.stop_gateway.cancel();
        let _ = self.gateway_task.await;
        self.stop_pump.cancel();
        for t in self.pump_tasks {
            let _ = t.await;
        }
        self.refresher.abort();
        self.host.shutdown().await;
        self.stop_target.cancel();
        if let Some(t) = self.target_task {
            let _ = t.await;
        }
        self.stop_emulator.cancel();
        let _ = self.emulator_task.await;
        self.emulator.close();
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), StackError> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| StackError::Io {
        what: format!("encoding {}", path.display()),
        source: std::io::Error::other(e),
    })?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("writing {}", path.display())))
}

/// The emulator's Unix socket in the data directory, which the functions connect through.
pub const EMULATOR_SOCKET: &str = "emulator.sock";

/// The file the created OCIDs are kept in.
pub const RESOURCES_FILE: &str = "stack.json";

async fn ensure_resources(
    dir: &Path,
    signed: &SignedClient,
    s: &StackSettings,
) -> Result<Resources, StackError> {
    let file = dir.join(RESOURCES_FILE);
    let mut res: Resources = match std::fs::read(&file) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
        Err(_) => Resources::default(),
    };
    let prefix = &s.name_prefix;
    let setup = |what: &str, detail: String| StackError::Setup {
        what: what.to_owned(),
        detail,
    };
    for (suffix, _) in STREAMS {
        let name = format!("{prefix}-{suffix}");
        let (partitions, retention) = if suffix == "data" {
            (
                s.streams.data_stream_partitions,
                s.streams.data_stream_retention_hours,
            )
        } else {
            (
                s.streams.error_stream_partitions,
                s.streams.error_stream_retention_hours,
            )
        };
        let list = signed
            .get(&format!(
                "/20180418/streams?compartmentId={LOCAL_COMPARTMENT}&name={name}&lifecycleState=ACTIVE"
            ))
            .await
            .map_err(|e| setup(&format!("stream {name}"), e.to_string()))?;
        let found: Vec<datasync_core::oci::models::Stream> = if list.status.is_success() {
            list.json().unwrap_or_default()
        } else {
            Vec::new()
        };
        let id = match found.first() {
            Some(stream) => {
                if stream.partitions as u32 != partitions {
                    tracing::warn!(stream = %name, has = stream.partitions, configured = partitions, "the stream exists with another partition count (fixed at creation); keeping it");
                }
                stream.id.clone()
            }
            None => {
                let details = serde_json::json!({
                    "name": name,
                    "partitions": partitions,
                    "retentionInHours": retention,
                    "compartmentId": LOCAL_COMPARTMENT,
                });
                let answer = signed
                    .json(http::Method::POST, "/20180418/streams", &details)
                    .await
                    .map_err(|e| setup(&format!("stream {name}"), e.to_string()))?;
                if !answer.status.is_success() {
                    return Err(setup(
                        &format!("stream {name}"),
                        String::from_utf8_lossy(&answer.body).into_owned(),
                    ));
                }
                let stream: datasync_core::oci::models::Stream = answer
                    .json()
                    .map_err(|e| setup(&format!("stream {name}"), e.to_string()))?;
                stream.id
            }
        };
        res.streams.insert(name, id);
    }
    if res.topic.is_none() {
        let details = serde_json::json!({
            "name": format!("{prefix}-alerts"),
            "compartmentId": LOCAL_COMPARTMENT,
            "description": "dead-letter messages and failure summaries",
        });
        let answer = signed
            .json(http::Method::POST, "/20181201/topics", &details)
            .await
            .map_err(|e| setup("the alerts topic", e.to_string()))?;
        if answer.status.is_success() {
            let v: serde_json::Value = answer
                .json()
                .map_err(|e| setup("the alerts topic", e.to_string()))?;
            res.topic = v["topicId"]
                .as_str()
                .or(v["id"].as_str())
                .map(str::to_owned);
        } else {
            tracing::warn!(answer = %String::from_utf8_lossy(&answer.body), "the alerts topic exists but its OCID is not in stack.json; notifications are off");
        }
    }
    res.bucket = format!("{prefix}-failure-archive");
    let answer = signed
        .json(
            http::Method::POST,
            &format!("/n/{NAMESPACE}/b/"),
            &serde_json::json!({ "name": res.bucket, "compartmentId": LOCAL_COMPARTMENT }),
        )
        .await
        .map_err(|e| setup("the archive bucket", e.to_string()))?;
    if !answer.status.is_success() && answer.status != http::StatusCode::CONFLICT {
        return Err(setup(
            "the archive bucket",
            String::from_utf8_lossy(&answer.body).into_owned(),
        ));
    }
    res.vault = format!("ocid1.vault.oc1.local.{prefix}");
    res.vault_key = format!("ocid1.key.oc1.local.{prefix}");
    write_json(&file, &res)?;
    Ok(res)
}
