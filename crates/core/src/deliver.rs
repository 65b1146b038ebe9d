//! The delivery engine process and retry share: deliver a batch of stream messages to their
//! targets, classify each result, and write every failure of the batch to its stream.
//!
//! Two steps, so a caller can decide what to do between them (retry's error mapping, a dry
//! run):
//!
//! 1. [`Deliverer::deliver`]: decodes nothing itself (see [`Item::decode`]; a payload kept
//!    encoded by [`Item::decode_lazily`] is read when its call starts); delivers
//!    concurrently, bounded per target host ([`Settings::per_host_concurrency`] or the host
//!    override's `concurrency`), then globally ([`Settings::max_concurrency`]). Messages with
//!    the same key run one after the other in batch order; once one fails, the later ones with
//!    that key are not attempted and are routed *behind* it (same stream, same class and
//!    `notBefore`, no attempt counted), so they never overtake it. Messages without a key are
//!    independent. Each call carries the custom headers, the Vault token (cached, fetched again
//!    once on 401/403), `Idempotency-Key: <id>`, `traceparent` and datasync's `User-Agent`,
//!    with the connect and total timeouts of [`crate::target`]. When the function's deadline
//!    nears, no new call starts: the rest is re-routed with class `deadline`.
//! 2. [`Deliverer::route`] (or [`Deliverer::route_with`]): one PutMessages per destination
//!    stream with every failure of the batch (key kept, envelope updated with
//!    [`Envelope::record_failure`]), then one notification summarising the permanent failures
//!    (counts by class, up to ten ids, the stream names; never payloads, URLs, secret names or
//!    tokens).
//!
//! ```no_run
//! # async fn demo(deliverer: datasync_core::deliver::Deliverer, batch: Vec<datasync_core::deliver::Item>)
//! # -> Result<(), datasync_core::deliver::RouteError> {
//! use std::time::{Duration, Instant};
//! let outcomes = deliverer.deliver(batch, Instant::now() + Duration::from_secs(25)).await;
//! let report = deliverer.route(&outcomes, "DataSyncStream").await?;
//! println!("{} delivered, {} dead-lettered", report.delivered, report.dead_lettered);
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument as _;

use crate::classify::{
    classify, retry_or_exhaust, AttemptContext, AttemptOutcome, Decision, ErrorClass, Route,
    RuleOverride, Rules,
};
use crate::function_config::Function;
use crate::message::{
    is_valid_traceparent, new_traceparent, rfc3339, scoped_secret_name, validate, Envelope,
    LastError, Payload, StreamMessage,
};
use crate::oci::client::OciClient;
use crate::oci::client::OciError;
use crate::oci::models::MessageDetails;
use crate::oci::notifications::NotificationsClient;
use crate::oci::secrets::SecretsClient;
use crate::oci::streaming::{PutMessage, StreamClient};
use crate::secret_cache::{SecretCache, SecretError, DEFAULT_TTL};
use crate::settings::{auth_from_lookup, ConfigError, Settings};
use crate::target::{TargetCall, TargetClient};

/// The most ids a notification names.
pub const NOTIFY_IDS: usize = 10;

/// One message of a batch, as read from a stream.
#[derive(Debug, Clone)]
pub struct Item {
    /// The stream it was read from (the connector gives the name, retry the OCID).
    pub stream: String,
    /// Its partition.
    pub partition: String,
    /// Its offset.
    pub offset: i64,
    /// Its key (decoded bytes), kept when it is re-routed.
    pub key: Option<Bytes>,
    /// The message, or why it could not be read.
    pub body: Body,
    /// The message id: the envelope's, or one derived from stream/partition/offset for a bare
    /// sample message, so a redelivered batch yields the same `Idempotency-Key`.
    pub id: String,
}

/// A stream value, decoded or not.
#[derive(Debug, Clone)]
pub enum Body {
    /// An envelope (or a bare sample `streamMessage`).
    Envelope(Box<Envelope>),
    /// An envelope whose payload is kept encoded ([`Item::decode_lazily`]): `envelope` holds
    /// everything but the payload, which is read from `base64` when the message is sent or
    /// re-routed.
    Encoded {
        /// The envelope without its payload.
        envelope: Box<Envelope>,
        /// The value as the stream transport carries it: base64 of the whole envelope's JSON.
        base64: Bytes,
    },
    /// Not a datasync message.
    Undecodable {
        /// The value's bytes (already base64-decoded).
        raw: Bytes,
        /// Where the JSON failed (position and category; never the content).
        error: String,
        /// The original value, when `raw` is already an undecodable record written by a
        /// previous run (so it is not wrapped twice).
        record: Option<Box<UndecodableRecord>>,
    },
}

/// What the dead-letter stream holds for a value that is not a datasync message: the value
/// readable by a person (UTF-8 text as is, anything else base64), never the base64 of the
/// stream transport (the sample's bug 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UndecodableRecord {
    /// The value: text when it is UTF-8, else base64.
    pub undecodable: String,
    /// `utf8` or `base64`.
    pub encoding: String,
    /// Where it was first read: `<stream>/<partition>/<offset>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Why it was dead-lettered.
    pub last_error: LastError,
}

impl Item {
    /// An item from a stream value (`value` and `key` already base64-decoded).
    pub fn decode(
        stream: &str,
        partition: &str,
        offset: i64,
        key: Option<Bytes>,
        value: Bytes,
    ) -> Self {
        let body = match Envelope::decode(&value) {
            Ok(envelope) => Body::Envelope(Box::new(envelope)),
            Err(e) => {
                let record = serde_json::from_slice::<UndecodableRecord>(&value)
                    .ok()
                    .map(Box::new);
                Body::Undecodable {
                    raw: value,
                    error: format!(
                        "not a datasync message ({:?} error at line {} column {})",
                        e.classify(),
                        e.line(),
                        e.column()
                    ),
                    record,
                }
            }
        };
        let id = match &body {
            Body::Envelope(e) => e.id_or_derived(stream, partition, offset),
            Body::Encoded { envelope, .. } => envelope.id_or_derived(stream, partition, offset),
            // No envelope to carry an id: derive one from where the value was read, as for
            // bare sample messages.
            Body::Undecodable { .. } => {
                Envelope::decode(br#"{"targetRestApi":"","targetRestApiOperation":""}"#)
                    .map(|e| e.id_or_derived(stream, partition, offset))
                    .unwrap_or_default()
            }
        };
        Self {
            stream: stream.to_owned(),
            partition: partition.to_owned(),
            offset,
            key,
            body,
            id,
        }
    }

    /// An item from a stream value still in base64 (`key` already decoded), for a caller that
    /// holds the batch anyway (the process function): the value is decoded as
    /// [`Item::decode`] does, but an envelope's payload is then dropped and read again from
    /// `base64` (best a slice of the batch) when it is needed, so the payloads of a batch take
    /// no memory beyond the batch's own while they wait for delivery. A value that is not
    /// base64 is taken as it is.
    pub fn decode_lazily(
        stream: &str,
        partition: &str,
        offset: i64,
        key: Option<Bytes>,
        base64: Bytes,
    ) -> Self {
        let value = match base64::engine::general_purpose::STANDARD.decode(&base64) {
            Ok(value) => Bytes::from(value),
            Err(_) => return Self::decode(stream, partition, offset, key, base64),
        };
        let item = Self::decode(stream, partition, offset, key, value);
        match item.body {
            Body::Envelope(mut envelope) if envelope.message.target_rest_api_payload.is_some() => {
                envelope.message.target_rest_api_payload = None;
                Self {
                    body: Body::Encoded { envelope, base64 },
                    ..item
                }
            }
            body => Self { body, ..item },
        }
    }

    /// The envelope, when the value decoded and is held whole (not for [`Body::Encoded`]:
    /// see [`Item::decoded`]).
    pub fn envelope(&self) -> Option<&Envelope> {
        match &self.body {
            Body::Envelope(e) => Some(e),
            Body::Encoded { .. } | Body::Undecodable { .. } => None,
        }
    }

    /// The whole envelope, its payload read again when it is kept encoded.
    pub fn decoded(&self) -> Option<Cow<'_, Envelope>> {
        match &self.body {
            Body::Envelope(e) => Some(Cow::Borrowed(e)),
            Body::Encoded { envelope, base64 } => {
                let mut whole = (**envelope).clone();
                whole.message.target_rest_api_payload = payload_of(base64)?;
                Some(Cow::Owned(whole))
            }
            Body::Undecodable { .. } => None,
        }
    }
}

/// The payload in a base64 envelope (`None` when it cannot be read; `Some(None)` when it has
/// none), without decoding the rest of it.
fn payload_of(base64: &[u8]) -> Option<Option<Payload>> {
    #[derive(Deserialize)]
    struct PayloadOnly {
        #[serde(default, rename = "targetRestApiPayload")]
        payload: Option<Payload>,
    }
    let value = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .ok()?;
    serde_json::from_slice::<PayloadOnly>(&value)
        .ok()
        .map(|p| p.payload)
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// The target accepted it.
    Delivered {
        /// The target's status.
        status: u16,
    },
    /// It failed (or was not attempted) and must be re-routed.
    Failed(Failure),
}

/// A failed message: why, and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The class recorded in `lastError.class`.
    pub class: ErrorClass,
    /// For [`ErrorClass::Exhausted`], the class of the last failure.
    pub last: Option<ErrorClass>,
    /// The target's status, when it answered.
    pub status: Option<u16>,
    /// A short, secret-free explanation.
    pub detail: String,
    /// The earliest next attempt (none for permanent failures).
    pub not_before: Option<SystemTime>,
    /// Whether the target was called (counts as an attempt).
    pub tried: bool,
    /// Whether it goes to the dead-letter stream.
    pub permanent: bool,
    /// The index (in [`Outcomes::list`]) of the same-key message this one was held behind.
    pub behind: Option<usize>,
    /// Whether the target could not be reached or the message not read (the sample's
    /// `unexpectedError`): transport failures and undecodable values.
    pub unexpected: bool,
}

/// One message and its fate.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The message.
    pub item: Item,
    /// What happened.
    pub fate: Fate,
}

impl Outcome {
    /// The failure, unless delivered.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.fate {
            Fate::Failed(f) => Some(f),
            Fate::Delivered { .. } => None,
        }
    }
}

/// The fates of a batch, in batch order.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    /// One per item, in the order given to [`Deliverer::deliver`].
    pub list: Vec<Outcome>,
}

impl Outcomes {
    /// How many were delivered.
    pub fn delivered(&self) -> usize {
        self.list
            .iter()
            .filter(|o| matches!(o.fate, Fate::Delivered { .. }))
            .count()
    }
}

/// What [`Deliverer::route`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteReport {
    /// Messages delivered.
    pub delivered: usize,
    /// Messages written, per destination stream.
    pub rerouted: BTreeMap<String, usize>,
    /// Failures per class.
    pub by_class: BTreeMap<String, usize>,
    /// Permanent failures (dead-lettered).
    pub dead_lettered: usize,
    /// Whether the summary notification was published (`None`: nothing to announce).
    pub notified: Option<bool>,
}

/// Why failures could not be written. The messages are then not durably re-routed: the
/// caller must not acknowledge the batch.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No stream is configured for a route.
    #[error("no stream is configured for {0}")]
    NoStream(&'static str),
    /// PutMessages failed as a whole.
    #[error("writing {count} messages to {stream}: {source}")]
    Put {
        /// The destination stream.
        stream: String,
        /// How many messages were to be written.
        count: usize,
        /// The error.
        #[source]
        source: Box<OciError>,
    },
    /// Some messages were not stored after the client's retries.
    #[error("{failed} of {count} messages not stored in {stream}: {code}")]
    NotStored {
        /// The destination stream.
        stream: String,
        /// How many messages were to be written.
        count: usize,
        /// How many were not stored.
        failed: usize,
        /// The first entry error code.
        code: String,
    },
    /// An envelope could not be encoded.
    #[error("encoding an envelope: {0}")]
    Encode(#[from] serde_json::Error),
}

struct Inner {
    settings: Arc<Settings>,
    target: TargetClient,
    secrets: SecretCache,
    streams: StreamClient,
    notifications: NotificationsClient,
    global: Arc<Semaphore>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// The delivery engine. Cheap to clone; one per function instance (the secret cache, the
/// connection pools and the per-host limits live across invocations).
#[derive(Clone)]
pub struct Deliverer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("secrets", &self.inner.secrets)
            .field("max_concurrency", &self.inner.settings.max_concurrency)
            .finish_non_exhaustive()
    }
}

/// Per-call facts decided before the call.
struct Prepared {
    method: Method,
    url: url::Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    secret: Option<String>,
    /// The header the secret goes in: `vaultSecretHeader`, or `Authorization`.
    secret_header: HeaderName,
    rules: Rules,
    timeout: Duration,
    host: String,
    host_limit: usize,
}

impl Deliverer {
    /// An engine for `settings`, with its clients.
    pub fn new(
        settings: Arc<Settings>,
        target: TargetClient,
        secrets: SecretsClient,
        streams: StreamClient,
        notifications: NotificationsClient,
    ) -> Self {
        let cache = SecretCache::new(secrets, settings.vault.clone(), DEFAULT_TTL);
        Self {
            inner: Arc::new(Inner {
                global: Arc::new(Semaphore::new(settings.max_concurrency.max(1))),
                settings,
                target,
                secrets: cache,
                streams,
                notifications,
                hosts: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Reads `function`'s configuration through `lookup` (the FDK's captured configuration)
    /// and builds the engine with its clients: the auth provider of
    /// [`auth_from_lookup`](crate::settings::auth_from_lookup), one OCI transport shared by the
    /// Streaming, Secrets and Notifications clients, and the target caller.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    pub fn from_lookup(
        function: Function,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let settings = Settings::from_lookup(function, &lookup)?;
        let auth = auth_from_lookup(&lookup)?;
        let oci = OciClient::new(auth)
            .and_then(|c| c.via_unix_socket(settings.oci_unix_socket.as_deref()))
            .map_err(|e| ConfigError::client("OCI client", e))?;
        let endpoints = &settings.endpoints;
        let streams = StreamClient::new(oci.clone(), endpoints)
            .map_err(|e| ConfigError::client("streaming endpoint", e))?;
        let secrets = SecretsClient::new(oci.clone(), endpoints)
            .map_err(|e| ConfigError::client("secrets endpoint", e))?;
        let notifications = NotificationsClient::new(oci, endpoints)
            .map_err(|e| ConfigError::client("notifications endpoint", e))?;
        let target = TargetClient::new(settings.target)
            .map_err(|e| ConfigError::client("target client", e))?;
        Ok(Self::new(
            Arc::new(settings),
            target,
            secrets,
            streams,
            notifications,
        ))
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The Streaming client (shared with callers that read streams).
    pub fn streams(&self) -> &StreamClient {
        &self.inner.streams
    }

    /// Delivers `items` and returns their fates in the same order. Never fails: every problem
    /// is a fate. Calls in flight when the deadline nears are awaited; calls not yet started
    /// are not started (class `deadline`).
    pub async fn deliver(&self, items: Vec<Item>, deadline: Instant) -> Outcomes {
        let count = items.len();
        let started = Instant::now();
        let budget = deadline.saturating_duration_since(started);
        // Lanes: one per key (in batch order), one per keyless message.
        let mut lanes: Vec<Vec<(usize, Item)>> = Vec::new();
        let mut by_key: HashMap<Bytes, usize> = HashMap::new();
        for (i, item) in items.into_iter().enumerate() {
            match item.key.clone() {
                Some(key) => match by_key.get(&key) {
                    Some(&lane) => lanes[lane].push((i, item)),
                    None => {
                        by_key.insert(key, lanes.len());
                        lanes.push(vec![(i, item)]);
                    }
                },
                None => lanes.push(vec![(i, item)]),
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        for lane in lanes {
            let inner = Arc::clone(&self.inner);
            tasks.spawn(run_lane(inner, lane, deadline, budget).in_current_span());
        }
        let mut slots: Vec<Option<Outcome>> = (0..count).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(done) => {
                    for (i, outcome) in done {
                        slots[i] = Some(outcome);
                    }
                }
                // A panicking lane loses its items' fates; they are reported below.
                Err(e) => tracing::error!(error = %e, "a delivery task failed"),
            }
        }
        let list = slots
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                o.unwrap_or_else(|| Outcome {
                    item: Item::decode("", "", i as i64, None, Bytes::new()),
                    fate: Fate::Failed(Failure {
                        class: ErrorClass::Invalid,
                        last: None,
                        status: None,
                        detail: "internal error: the delivery task failed".into(),
                        not_before: None,
                        tried: false,
                        permanent: true,
                        behind: None,
                        unexpected: true,
                    }),
                })
            })
            .collect();
        Outcomes { list }
    }

    /// [`route_with`](Self::route_with) with every failure going to its class's stream.
    ///
    /// # Errors
    /// As [`route_with`](Self::route_with).
    pub async fn route(
        &self,
        outcomes: &Outcomes,
        source: &str,
    ) -> Result<RouteReport, RouteError> {
        self.route_with(outcomes, source, |_| None).await
    }

    /// Writes every failure of `outcomes`: one PutMessages per destination stream, in batch
    /// order, keys kept. The destination is `choose(outcome)` when it names one, else the
    /// dead-letter stream for permanent failures, else the class's stream; a message held
    /// behind another goes wherever that one went. Then, when anything failed permanently, one
    /// notification (its failure is logged and reported, not returned: the messages are
    /// already stored). `source` names the batch's stream in the notification.
    ///
    /// # Errors
    /// [`RouteError`] when a destination is not configured or a write fails.
    pub async fn route_with(
        &self,
        outcomes: &Outcomes,
        source: &str,
        choose: impl Fn(&Outcome) -> Option<String>,
    ) -> Result<RouteReport, RouteError> {
        let mut report = RouteReport {
            delivered: outcomes.delivered(),
            ..RouteReport::default()
        };
        // Nothing to route (the retry schedule finding its streams empty): no writes, and no
        // INFO line every few seconds from an idle stack.
        if outcomes.list.is_empty() {
            return Ok(report);
        }
        let settings = &self.inner.settings;
        let now = SystemTime::now();
        // Destinations: first for messages that failed on their own, then for those held
        // behind them.
        let mut dest: Vec<Option<String>> = vec![None; outcomes.list.len()];
        for pass in 0..2 {
            for (i, outcome) in outcomes.list.iter().enumerate() {
                let Some(f) = outcome.failure() else { continue };
                let stream = match (pass, f.behind) {
                    (0, None) => match choose(outcome) {
                        Some(s) => s,
                        None => {
                            let route = if f.permanent {
                                Route::DeadLetter
                            } else {
                                f.class.route()
                            };
                            settings
                                .stream_for(route)
                                .ok_or(RouteError::NoStream(route.config_key()))?
                                .to_owned()
                        }
                    },
                    (1, Some(b)) => match dest.get(b).cloned().flatten() {
                        Some(s) => s,
                        None => settings
                            .stream_for(Route::Default)
                            .ok_or(RouteError::NoStream(Route::Default.config_key()))?
                            .to_owned(),
                    },
                    _ => continue,
                };
                dest[i] = Some(stream);
            }
        }
        let mut batches: BTreeMap<String, Vec<PutMessage>> = BTreeMap::new();
        let mut dead_ids = Vec::new();
        for (i, outcome) in outcomes.list.iter().enumerate() {
            let (Some(f), Some(stream)) = (outcome.failure(), dest[i].take()) else {
                continue;
            };
            let value = failed_value(outcome, f, now)?;
            batches
                .entry(stream)
                .or_default()
                .push(PutMessage::new(outcome.item.key.clone(), value));
            *report
                .by_class
                .entry(f.class.as_str().to_owned())
                .or_default() += 1;
            if f.permanent {
                report.dead_lettered += 1;
                dead_ids.push(outcome.item.id.clone());
            }
        }
        for (stream, messages) in &batches {
            let count = messages.len();
            let stored = self
                .inner
                .streams
                .put_messages(stream, messages)
                .await
                .map_err(|source| RouteError::Put {
                    stream: stream.clone(),
                    count,
                    source: Box::new(source),
                })?;
            let failed: Vec<_> = stored.iter().filter_map(|r| r.as_ref().err()).collect();
            if let Some(first) = failed.first() {
                return Err(RouteError::NotStored {
                    stream: stream.clone(),
                    count,
                    failed: failed.len(),
                    code: first.code.clone(),
                });
            }
            report.rerouted.insert(stream.clone(), count);
        }
        if report.dead_lettered > 0 {
            report.notified = Some(self.notify(&report, &dead_ids, source).await);
        }
        tracing::info!(
            delivered = report.delivered,
            rerouted = report.rerouted.values().sum::<usize>(),
            dead_lettered = report.dead_lettered,
            by_class = ?report.by_class,
            "batch routed"
        );
        Ok(report)
    }

    async fn notify(&self, report: &RouteReport, ids: &[String], source: &str) -> bool {
        let Some(topic) = self.inner.settings.topic.as_deref() else {
            return false;
        };
        let message = summary(
            report,
            ids,
            source,
            self.inner.settings.stream_for(Route::DeadLetter),
        );
        match self
            .inner
            .notifications
            .publish_message(topic, &message)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "the dead-letter summary could not be published");
                false
            }
        }
    }
}

/// The notification for a batch's permanent failures: counts by class, up to
/// [`NOTIFY_IDS`] ids, the streams. No payloads, URLs, secret names or tokens.
pub fn summary(
    report: &RouteReport,
    ids: &[String],
    source: &str,
    dead_letter: Option<&str>,
) -> MessageDetails {
    let n = report.dead_lettered;
    let mut body = format!(
        "{n} message{} from stream {source} failed permanently",
        if n == 1 { "" } else { "s" }
    );
    if let Some(dl) = dead_letter {
        body.push_str(&format!(" and were written to the dead-letter stream {dl}"));
    }
    body.push_str(".\n\nFailures by class (this batch):\n");
    for (class, count) in &report.by_class {
        body.push_str(&format!("  {class}: {count}\n"));
    }
    body.push_str(&format!(
        "\nDelivered in this batch: {}\n",
        report.delivered
    ));
    body.push_str("\nMessage ids");
    if ids.len() > NOTIFY_IDS {
        body.push_str(&format!(" (first {NOTIFY_IDS} of {})", ids.len()));
    }
    body.push_str(":\n");
    for id in ids.iter().take(NOTIFY_IDS) {
        body.push_str(&format!("  {id}\n"));
    }
    body.push_str(
        "\nReplay them with POST /stream/retry once the cause is fixed; the messages keep their ids.\n",
    );
    MessageDetails {
        title: Some(format!(
            "datasync: {n} message{} dead-lettered",
            if n == 1 { "" } else { "s" }
        )),
        body,
    }
}

/// The value written for a failed message: the envelope with the failure recorded, or the
/// readable undecodable record.
fn failed_value(
    outcome: &Outcome,
    f: &Failure,
    now: SystemTime,
) -> Result<Vec<u8>, serde_json::Error> {
    let error = LastError {
        class: f.class,
        status: f.status,
        detail: Some(f.detail.clone()),
    };
    match &outcome.item.body {
        Body::Envelope(envelope) => envelope_failed((**envelope).clone(), error, f, now),
        Body::Encoded { base64, .. } => match outcome.item.decoded() {
            Some(whole) => envelope_failed(whole.into_owned(), error, f, now),
            // It was read once; should it not be now, keep the value readable.
            None => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(base64)
                    .unwrap_or_else(|_| base64.to_vec());
                undecodable_failed(outcome, &raw, None, error)
            }
        },
        Body::Undecodable { raw, record, .. } => {
            undecodable_failed(outcome, raw, record.as_deref(), error)
        }
    }
}

/// An envelope with the failure recorded, encoded.
fn envelope_failed(
    mut envelope: Envelope,
    error: LastError,
    f: &Failure,
    now: SystemTime,
) -> Result<Vec<u8>, serde_json::Error> {
    if envelope.received_at.is_none() {
        // A bare sample message: start its age now, so the age bound applies later.
        envelope.received_at = Some(rfc3339(now));
    }
    envelope.record_failure(error, f.tried, now, f.not_before);
    envelope.encode()
}

/// The readable record of a value that is not a datasync message, with the failure recorded
/// (`record`: the one it already is, when it was read back from an error stream).
fn undecodable_failed(
    outcome: &Outcome,
    raw: &[u8],
    record: Option<&UndecodableRecord>,
    error: LastError,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut record = match record {
        Some(r) => r.clone(),
        None => {
            let (text, encoding) = match std::str::from_utf8(raw) {
                Ok(t) => (t.to_owned(), "utf8"),
                Err(_) => (
                    base64::engine::general_purpose::STANDARD.encode(raw),
                    "base64",
                ),
            };
            UndecodableRecord {
                undecodable: text,
                encoding: encoding.to_owned(),
                origin: Some(format!(
                    "{}/{}/{}",
                    outcome.item.stream, outcome.item.partition, outcome.item.offset
                )),
                last_error: error.clone(),
            }
        }
    };
    record.last_error = error;
    serde_json::to_vec(&record)
}

fn failure(class: ErrorClass, detail: impl Into<String>) -> Failure {
    Failure {
        class,
        last: None,
        status: None,
        detail: detail.into(),
        not_before: None,
        tried: false,
        permanent: !class.is_retryable(),
        behind: None,
        unexpected: false,
    }
}

fn from_decision(decision: Decision, status: Option<u16>, detail: String, tried: bool) -> Fate {
    match decision {
        Decision::Delivered => Fate::Delivered {
            status: status.unwrap_or(200),
        },
        Decision::Retry { class, not_before } => Fate::Failed(Failure {
            class,
            last: None,
            status,
            detail,
            not_before: Some(not_before),
            tried,
            permanent: false,
            behind: None,
            unexpected: false,
        }),
        // The classifier only asks for a refresh; the caller handles it before this.
        Decision::RefreshSecretAndRetry => Fate::Failed(Failure {
            class: ErrorClass::Unauthorized,
            last: None,
            status,
            detail,
            not_before: None,
            tried,
            permanent: true,
            behind: None,
            unexpected: false,
        }),
        Decision::Permanent { class, last } => {
            let detail = match last {
                Some(l) => format!("{detail} (out of attempts or age after {})", l.as_str()),
                None => detail,
            };
            Fate::Failed(Failure {
                class,
                last,
                status,
                detail,
                not_before: None,
                tried,
                permanent: true,
                behind: None,
                unexpected: false,
            })
        }
    }
}

async fn run_lane(
    inner: Arc<Inner>,
    lane: Vec<(usize, Item)>,
    deadline: Instant,
    budget: Duration,
) -> Vec<(usize, Outcome)> {
    let mut out: Vec<(usize, Outcome)> = Vec::with_capacity(lane.len());
    let mut blocker: Option<(usize, String, Failure)> = None;
    for (i, item) in lane {
        let fate = match &blocker {
            Some((b, b_id, f)) => Fate::Failed(Failure {
                class: f.class,
                last: f.last,
                status: None,
                detail: format!(
                    "not attempted: held behind {b_id} ({}) to keep the order of its key",
                    f.class.as_str()
                ),
                not_before: f.not_before,
                tried: false,
                permanent: f.permanent,
                behind: Some(*b),
                unexpected: false,
            }),
            None => attempt(&inner, &item, deadline, budget).await,
        };
        if blocker.is_none() {
            if let Fate::Failed(f) = &fate {
                blocker = Some((i, item.id.clone(), f.clone()));
            }
        }
        out.push((i, Outcome { item, fate }));
    }
    out
}

/// The rules and override for a target URL: `host:port` first, then `host`.
fn rules_for(settings: &Settings, url: &url::Url) -> (Rules, Option<RuleOverride>, String) {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let with_port = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let found = [&with_port, &host]
        .into_iter()
        .find_map(|key| settings.overrides.get(key.as_str()).cloned());
    if let Some(ov) = found {
        return (settings.rules.with_override(&ov), Some(ov), with_port);
    }
    (settings.rules.clone(), None, with_port)
}

/// Validates `envelope`'s message and decides everything about its call except the body,
/// which is encoded only once the call may start ([`encode_body`]): a message waiting for its
/// host's turn holds no copy of its payload.
fn prepare(settings: &Settings, envelope: &Envelope) -> Result<Prepared, Failure> {
    // Validation reads (and normalises) everything but the payload: validate a copy without it.
    let source = &envelope.message;
    let mut message = StreamMessage {
        vault_secret_name: source.vault_secret_name.clone(),
        vault_secret_header: source.vault_secret_header.clone(),
        target_rest_api: source.target_rest_api.clone(),
        target_rest_api_operation: source.target_rest_api_operation.clone(),
        target_rest_api_payload: None,
        target_rest_api_headers: source.target_rest_api_headers.clone(),
    };
    let url = validate(&mut message, &settings.policy)
        .map_err(|inv| failure(inv.class(), inv.to_string()))?;
    let method =
        Method::from_bytes(message.target_rest_api_operation.as_bytes()).map_err(|_| {
            failure(
                ErrorClass::Invalid,
                "streamMessage.targetRestApiOperation: not a method",
            )
        })?;
    let mut headers = Vec::with_capacity(message.target_rest_api_headers.len());
    for (n, h) in message.target_rest_api_headers.iter().enumerate() {
        let name = HeaderName::from_bytes(h.key.as_bytes());
        let value = HeaderValue::from_str(&h.value);
        match (name, value) {
            (Ok(name), Ok(value)) => headers.push((name, value)),
            _ => {
                return Err(failure(
                    ErrorClass::Invalid,
                    format!("streamMessage.targetRestApiHeaders[{n}]: not a legal header"),
                ))
            }
        }
    }
    let secret = message
        .vault_secret_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(|name| match envelope.source.as_deref() {
            Some(source) => scoped_secret_name(source, name),
            None => name.to_owned(),
        });
    let secret_header = match message.vault_secret_header.as_deref() {
        None => http::header::AUTHORIZATION,
        Some(name) => HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            failure(
                ErrorClass::Invalid,
                "streamMessage.vaultSecretHeader: not a legal header name",
            )
        })?,
    };
    let (rules, ov, host) = rules_for(settings, &url);
    let timeout = ov
        .as_ref()
        .and_then(|o| o.timeout_ms)
        .map_or(settings.target.timeout, Duration::from_millis);
    let host_limit = ov
        .as_ref()
        .and_then(|o| o.concurrency)
        .unwrap_or(settings.per_host_concurrency)
        .max(1);
    Ok(Prepared {
        method,
        url,
        headers,
        secret,
        secret_header,
        rules,
        timeout,
        host,
        host_limit,
    })
}

/// The body of a call: the payload's compact text, except for DELETE; read from `encoded` when
/// the envelope's payload is kept there.
fn encode_body(
    method: &Method,
    envelope: &Envelope,
    encoded: Option<&Bytes>,
) -> Result<Option<Bytes>, Failure> {
    if *method == Method::DELETE {
        return Ok(None);
    }
    let read;
    let payload = match encoded {
        None => envelope.message.target_rest_api_payload.as_ref(),
        Some(base64) => {
            read = payload_of(base64).ok_or_else(|| {
                failure(
                    ErrorClass::Invalid,
                    "streamMessage.targetRestApiPayload: could not be read again",
                )
            })?;
            read.as_ref()
        }
    };
    Ok(payload.map(|p| Bytes::copy_from_slice(p.get().as_bytes())))
}

fn host_semaphore(inner: &Inner, host: &str, limit: usize) -> Arc<Semaphore> {
    match inner.hosts.lock() {
        Ok(mut hosts) => Arc::clone(
            hosts
                .entry(host.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(limit))),
        ),
        Err(_) => Arc::new(Semaphore::new(limit)),
    }
}

/// The time kept free before the deadline for writing the failures.
fn routing_reserve(budget: Duration) -> Duration {
    Duration::from_secs(2).min(budget / 4)
}

fn deadline_fate(envelope: Option<&Envelope>, rules: &Rules) -> Fate {
    let now = SystemTime::now();
    let ctx = AttemptContext {
        attempts: envelope.map_or(0, |e| e.attempt),
        received_at: envelope
            .and_then(|e| e.received_at().or_else(|| e.first_failed_at()))
            .unwrap_or(now),
        now,
        used_secret: false,
        secret_refreshed: false,
        jitter: 0.0,
    };
    let decision = retry_or_exhaust(ErrorClass::Deadline, None, &ctx, rules);
    from_decision(
        decision,
        None,
        "not attempted: the function's deadline was near".into(),
        false,
    )
}

async fn attempt(inner: &Inner, item: &Item, deadline: Instant, budget: Duration) -> Fate {
    let settings = &inner.settings;
    let (envelope, encoded) = match &item.body {
        Body::Envelope(e) => (&**e, None),
        Body::Encoded { envelope, base64 } => (&**envelope, Some(base64)),
        Body::Undecodable { error, .. } => {
            let mut f = failure(ErrorClass::Invalid, error.clone());
            f.unexpected = true;
            return Fate::Failed(f);
        }
    };
    let prepared = match prepare(settings, envelope) {
        Ok(p) => p,
        Err(f) => return Fate::Failed(f),
    };
    let reserve = routing_reserve(budget);
    let margin = (prepared.timeout + reserve).min(budget / 2);
    let start_by = deadline.checked_sub(margin).unwrap_or(deadline);
    if Instant::now() >= start_by {
        return deadline_fate(Some(envelope), &prepared.rules);
    }
    // The host's permit first, then the invocation's: a message waiting for a busy host must
    // not hold a slot that a message to another host could use.
    let host_sem = host_semaphore(inner, &prepared.host, prepared.host_limit);
    let permits: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> =
        tokio::time::timeout_at(start_by.into(), async {
            let h = host_sem.acquire_owned().await.ok()?;
            let g = Arc::clone(&inner.global).acquire_owned().await.ok()?;
            Some((h, g))
        })
        .await
        .ok()
        .flatten();
    let Some(_permits) = permits else {
        return deadline_fate(Some(envelope), &prepared.rules);
    };
    let body = match encode_body(&prepared.method, envelope, encoded) {
        Ok(b) => b,
        Err(f) => return Fate::Failed(f),
    };

    // The Vault and target calls are boxed: their futures are large, and every message of a
    // batch waits in its own task, which would otherwise reserve that size from the start.
    let mut token = None;
    if let Some(name) = &prepared.secret {
        match Box::pin(inner.secrets.get(name)).await {
            Ok(t) => token = Some(t),
            Err(e) => return Fate::Failed(secret_failure(&e, envelope, &prepared.rules)),
        }
    }
    let traceparent = envelope
        .traceparent
        .clone()
        .filter(|t| is_valid_traceparent(t))
        .unwrap_or_else(new_traceparent);
    let mut refreshed = false;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timeout = prepared
            .timeout
            .min(remaining.saturating_sub(reserve))
            .max(Duration::from_millis(10));
        let call = TargetCall {
            method: prepared.method.clone(),
            url: &prepared.url,
            body: body.clone(),
            headers: &prepared.headers,
            secret: token.as_ref().map(|t| (&prepared.secret_header, t)),
            idempotency_key: &item.id,
            traceparent: Some(&traceparent),
            timeout: Some(timeout),
        };
        let record = Box::pin(inner.target.call(&call)).await;
        let now = SystemTime::now();
        let ctx = AttemptContext {
            attempts: envelope.attempt.saturating_add(1),
            received_at: envelope
                .received_at()
                .or_else(|| envelope.first_failed_at())
                .unwrap_or(now),
            now,
            used_secret: token.is_some(),
            secret_refreshed: refreshed,
            jitter: rand::random::<f64>(),
        };
        let decision = classify(record.outcome, &ctx, &prepared.rules);
        tracing::debug!(
            id = %item.id,
            host = %prepared.host,
            latency_ms = record.latency.as_millis() as u64,
            outcome = %record.detail,
            "target called"
        );
        if decision == Decision::RefreshSecretAndRetry {
            if let (Some(name), Some(stale)) = (&prepared.secret, &token) {
                refreshed = true;
                match Box::pin(inner.secrets.refresh(name, stale)).await {
                    Ok(t) => {
                        token = Some(t);
                        continue;
                    }
                    Err(e) => return Fate::Failed(secret_failure(&e, envelope, &prepared.rules)),
                }
            }
        }
        let status = match record.outcome {
            AttemptOutcome::Status { status, .. } => Some(status),
            AttemptOutcome::Transport(_) => None,
        };
        let mut fate = from_decision(decision, status, record.detail, true);
        if let (Fate::Failed(f), AttemptOutcome::Transport(_)) = (&mut fate, record.outcome) {
            f.unexpected = true;
        }
        return fate;
    }
}

fn secret_failure(e: &SecretError, envelope: &Envelope, rules: &Rules) -> Failure {
    if e.is_retryable() {
        // Vault throttled or unavailable: not the message's fault. Re-routed untried to the
        // default error stream, to be retried later.
        let now = SystemTime::now();
        let ctx = AttemptContext {
            attempts: envelope.attempt.max(1),
            received_at: envelope.received_at().unwrap_or(now),
            now,
            used_secret: false,
            secret_refreshed: false,
            jitter: rand::random::<f64>(),
        };
        match from_decision(
            retry_or_exhaust(ErrorClass::RetryableStatus, None, &ctx, rules),
            None,
            "the vault could not be read; not attempted".into(),
            false,
        ) {
            Fate::Failed(f) => f,
            Fate::Delivered { .. } => failure(ErrorClass::SecretUnavailable, "vault"),
        }
    } else {
        // The status says whether it is missing or forbidden; the name is not repeated.
        let detail = match e {
            SecretError::Oci(oci) => match oci.status() {
                Some(s) => format!("the secret could not be read (Vault answered {s})"),
                None => "the secret could not be read".to_owned(),
            },
            SecretError::NotAHeader => e.to_string(),
        };
        failure(ErrorClass::SecretUnavailable, detail)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn bare(offset: i64) -> Item {
        Item::decode(
            "s",
            "0",
            offset,
            None,
            Bytes::from_static(
                br#"{"targetRestApi":"https://a.example/x","targetRestApiOperation":"POST"}"#,
            ),
        )
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        assert_eq!(bare(1).id, bare(1).id);
        assert_ne!(bare(1).id, bare(2).id);
        let junk = Item::decode("s", "0", 3, None, Bytes::from_static(b"\xff\x00"));
        assert!(matches!(junk.body, Body::Undecodable { .. }));
        assert_eq!(junk.id, Item::decode("s", "0", 3, None, Bytes::new()).id);
    }

    #[test]
    fn undecodable_values_are_written_readable_and_never_wrapped_twice() {
        let item = Item::decode("s", "0", 7, None, Bytes::from_static(b"hello {not json"));
        let f = failure(ErrorClass::Invalid, "nope");
        let outcome = Outcome {
            item,
            fate: Fate::Failed(f.clone()),
        };
        let v = failed_value(&outcome, &f, SystemTime::now()).unwrap();
        let record: UndecodableRecord = serde_json::from_slice(&v).unwrap();
        assert_eq!(record.undecodable, "hello {not json");
        assert_eq!(record.encoding, "utf8");
        assert_eq!(record.origin.as_deref(), Some("s/0/7"));
        // Read back from the dead-letter stream and failed again: same record.
        let again = Item::decode("dl", "0", 1, None, Bytes::from(v));
        let outcome = Outcome {
            item: again,
            fate: Fate::Failed(f.clone()),
        };
        let v2 = failed_value(&outcome, &f, SystemTime::now()).unwrap();
        let record2: UndecodableRecord = serde_json::from_slice(&v2).unwrap();
        assert_eq!(record2.undecodable, "hello {not json");
        assert_eq!(record2.origin.as_deref(), Some("s/0/7"));
        // Binary values are base64.
        let item = Item::decode("s", "0", 8, None, Bytes::from_static(b"\xff\xfe"));
        let outcome = Outcome {
            item,
            fate: Fate::Failed(f.clone()),
        };
        let record: UndecodableRecord =
            serde_json::from_slice(&failed_value(&outcome, &f, SystemTime::now()).unwrap())
                .unwrap();
        assert_eq!(record.encoding, "base64");
        assert_eq!(record.undecodable, "//4=");
    }

    #[test]
    fn summary_has_counts_and_ids_but_no_payload() {
        let report = RouteReport {
            delivered: 5,
            rerouted: BTreeMap::new(),
            by_class: BTreeMap::from([("clientError".to_owned(), 12)]),
            dead_lettered: 12,
            notified: None,
        };
        let ids: Vec<String> = (0..12).map(|i| format!("id-{i}")).collect();
        let m = summary(&report, &ids, "DataSyncStream", Some("ocid1.stream.dl"));
        assert_eq!(
            m.title.as_deref(),
            Some("datasync: 12 messages dead-lettered")
        );
        assert!(m.body.contains("clientError: 12"));
        assert!(m.body.contains("id-9"));
        assert!(!m.body.contains("id-10"));
        assert!(m.body.contains("first 10 of 12"));
    }

    #[test]
    fn the_routing_reserve_is_bounded() {
        assert_eq!(
            routing_reserve(Duration::from_secs(30)),
            Duration::from_secs(2)
        );
        assert_eq!(
            routing_reserve(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
    }
}
