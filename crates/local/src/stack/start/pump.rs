//! Stage 5: the Service Connector pump, wired as `terraform/connectors.tf` wires it: the data
//! stream to process, the dead-letter stream to Notifications, every error stream and the
//! dead-letter stream to the archive bucket; and the retry schedule over the retryable error
//! streams.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use datasync_core::oci::auth::StaticAuth;
use datasync_core::oci::client::OciClient;
use datasync_core::oci::endpoints::Endpoints;
use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::notifications::NotificationsClient;
use datasync_core::oci::objectstorage::ObjectStorageClient;
use datasync_core::oci::streaming::StreamClient;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::emulator::EmulatorPart;
use crate::emulator::NAMESPACE;
use crate::stack::error::{io, setup, StackError};
use crate::stack::host::Pool;
use crate::stack::pump::{self, Batching, Connector, ConnectorOptions, RetrySchedule, Sink};
use crate::stack::streams::{StreamRole, DATA, DEAD_LETTER, ROLES};
use crate::stack::{Resources, StackSettings};

/// The connector from the data stream to the process function.
pub(crate) const DATA_CONNECTOR: &str = "data-to-process";
/// The connector from the dead-letter stream to the alerts topic.
pub(crate) const NOTIFY_CONNECTOR: &str = "dead-letter-to-notifications";

/// What [`start`] needs.
pub(crate) struct PumpInput<'a> {
    /// The data directory (`connectors/` holds the checkpoints).
    pub dir: &'a Path,
    /// The emulator the connectors read and write.
    pub emulator: &'a EmulatorPart,
    /// The streams, topic and bucket.
    pub resources: &'a Resources,
    /// The stack's settings.
    pub settings: &'a StackSettings,
    /// The process function (the data connector's target).
    pub process: &'a Arc<Pool>,
    /// The retry function (the retry schedule's).
    pub retry: &'a Arc<Pool>,
}

/// The running pump.
pub(crate) struct PumpPart {
    /// Every connector.
    pub connectors: Vec<Arc<Connector>>,
    /// Rounds of the retry schedule.
    pub retry_runs: Arc<AtomicU64>,
    /// The connectors' and the schedule's tasks.
    pub tasks: Vec<JoinHandle<()>>,
    /// Stops them.
    pub stop: CancellationToken,
}

/// The OCI clients the connectors use, signed with the `LOCAL` profile.
struct Clients {
    streams: StreamClient,
    objects: ObjectStorageClient,
    notifications: NotificationsClient,
}

/// Starts every connector and the retry schedule.
pub(crate) async fn start(input: PumpInput<'_>) -> Result<PumpPart, StackError> {
    let s = input.settings;
    let clients = clients(input.emulator)?;
    let connectors = connectors(&input, &clients)?;
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for c in &connectors {
        tasks.push(tokio::spawn(
            Arc::clone(c).run(clients.streams.clone(), stop.clone()),
        ));
    }
    let retry_runs = Arc::new(AtomicU64::new(0));
    if let Some(interval) = s.retry_interval {
        let streams: Vec<String> = ROLES
            .iter()
            .filter(|r| r.scheduled_retry)
            .filter_map(|r| stream_id(&input, r).map(|(id, _)| id))
            .collect();
        let schedule = RetrySchedule {
            pool: Arc::clone(input.retry),
            streams,
            interval,
            max: s.retry_max,
            runs: Arc::clone(&retry_runs),
        };
        tasks.push(tokio::spawn(pump::retry_schedule(schedule, stop.clone())));
    }
    Ok(PumpPart {
        connectors,
        retry_runs,
        tasks,
        stop,
    })
}

/// The stream of `role`: its OCID and name.
fn stream_id(input: &PumpInput<'_>, role: &StreamRole) -> Option<(String, String)> {
    let name = role.stream_name(&input.settings.name_prefix);
    let id = input.resources.streams.get(&name)?.clone();
    Some((id, name))
}

/// Clients through the emulator's Unix socket too, as the functions use.
fn clients(emulator: &EmulatorPart) -> Result<Clients, StackError> {
    let key_file = &emulator.profile.key_file;
    let key_pem =
        std::fs::read_to_string(key_file).map_err(io(format!("reading {}", key_file.display())))?;
    let key =
        PrivateKey::from_pem(&key_pem, None).map_err(|e| setup("the LOCAL profile key", &e))?;
    let auth = Arc::new(StaticAuth::new(emulator.profile.key_id(), key, None));
    let oci = OciClient::new(auth)
        .and_then(|c| c.via_unix_socket(emulator.socket.as_deref()))
        .map_err(|e| setup("the OCI client", &e))?;
    let endpoints = Endpoints::all_at(&emulator.base).map_err(|e| setup("the endpoints", &e))?;
    Ok(Clients {
        streams: StreamClient::new(oci.clone(), &endpoints)
            .map_err(|e| setup("the stream client", &e))?,
        objects: ObjectStorageClient::new(oci.clone(), &endpoints)
            .map_err(|e| setup("the object storage client", &e))?,
        notifications: NotificationsClient::new(oci, &endpoints)
            .map_err(|e| setup("the notifications client", &e))?,
    })
}

/// The connectors of `connectors.tf`, each only when its stream exists.
fn connectors(input: &PumpInput<'_>, clients: &Clients) -> Result<Vec<Arc<Connector>>, StackError> {
    let s = input.settings;
    let mut out = Vec::new();
    let data = Sink::Function(Arc::clone(input.process));
    out.extend(connector(input, DATA_CONNECTOR, &DATA, data, false)?);
    if s.notify_dead_letter {
        if let Some(topic) = &input.resources.topic {
            let sink = Sink::Notifications {
                client: clients.notifications.clone(),
                topic: topic.clone(),
            };
            out.extend(connector(
                input,
                NOTIFY_CONNECTOR,
                &DEAD_LETTER,
                sink,
                false,
            )?);
        }
    }
    for role in &ROLES {
        let Some(archive) = role.archive else {
            continue;
        };
        let sink = Sink::Archive {
            client: clients.objects.clone(),
            namespace: NAMESPACE.into(),
            bucket: input.resources.bucket.clone(),
            prefix: archive.prefix.into(),
        };
        out.extend(connector(input, archive.connector, role, sink, true)?);
    }
    Ok(out.into_iter().map(Arc::new).collect())
}

/// The connector `name` from `role`'s stream to `sink` (batched as an archive rolls objects
/// over, or as Connector Hub batches a function's input); `None` when the stream is absent.
fn connector(
    input: &PumpInput<'_>,
    name: &str,
    role: &StreamRole,
    sink: Sink,
    archive: bool,
) -> Result<Option<Connector>, StackError> {
    let s = input.settings;
    let Some((stream_id, stream_name)) = stream_id(input, role) else {
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
    let partitions = if *role == DATA {
        s.streams.data_stream_partitions
    } else {
        s.streams.error_stream_partitions
    };
    let appended = input.emulator.emulator.appended(&stream_id);
    Connector::new(ConnectorOptions {
        dir: input.dir.join("connectors"),
        name: name.to_owned(),
        stream_id,
        stream_name,
        partitions,
        sink,
        batching,
        max_backoff: s.max_backoff,
    })
    .map(|c| Some(c.with_append_signal(appended)))
    .map_err(io(format!("opening the checkpoints of connector {name}")))
}
