//! The delivery engine process and retry share: deliver a batch of stream messages to their
//! targets, classify each result, and write every failure of the batch to its stream.
//!
//! A batch goes through stages, each a file:
//!
//! 1. `item`: a stream value becomes an [`Item`] ([`Item::decode`]; a payload kept encoded
//!    by [`Item::decode_lazily`] is read when its call starts), or a value that is not a
//!    datasync message ([`Body::Undecodable`]).
//! 2. `prepare`: method, URL, headers, secret, the host's rules, timeout and concurrency,
//!    decided before the call, or the rule the message breaks.
//! 3. `attempt`: the call, once its host has a free slot ([`Settings::per_host_concurrency`]
//!    or the host override's `concurrency`, then [`Settings::max_concurrency`], in `limits`),
//!    with the custom headers, the Vault token (cached, fetched again once on 401/403),
//!    `Idempotency-Key: <id>`, `traceparent` and datasync's `User-Agent`, and the connect and
//!    total timeouts of [`crate::target`]; classified into a [`Fate`]. When the function's
//!    deadline nears, no new call starts: the rest is re-routed with class `deadline`.
//!    Before the call, `gate` asks the host's state (`hosts`: `breaker`, `budget`, the pause,
//!    the adaptive limit of `concurrency`) whether it may go, and bounds it by the host's share
//!    of the batch's time (class `slow` when cut); after it, the host learns from the result
//!    (`docs/isolation.md`).
//! 4. `route`: one PutMessages per destination stream with every failure of the batch (key
//!    kept, envelope updated with [`Envelope::record_failure`](crate::message::Envelope::record_failure)),
//!    then `notify`: one notification per batch naming its permanent failures (`alert`: id,
//!    key, class, status, attempts, size, dead-letter position; a payload only when
//!    configured; never header values, URLs, secret names or tokens), under 64 KB, within a
//!    per-instance rate (`alert_rate`).
//!
//! Order is kept by `lanes`: messages with the same key run one after the other in batch
//! order; once one fails with a retryable class, the later ones with that key are not
//! attempted and are routed *behind* it ([`Failure::Held`]: same stream, same class and
//! `notBefore`, no attempt counted), so they never overtake it. A permanent failure holds
//! nothing back. Across batches, `order` consults the parked keys ([`crate::parked`], when
//! configured): a message whose key is parked waits behind its blocker
//! ([`Failure::Parked`]). Messages without a key are independent.
//!
//! The caller decodes (stage 1, as it reads its batch), [`Deliverer::deliver`] runs stages 2
//! and 3 and [`Deliverer::route`] (or [`Deliverer::route_with`]) stage 4, so a caller can
//! decide what to do between them (retry's error mapping, a dry run):
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

mod alert;
mod alert_rate;
mod attempt;
mod breaker;
mod budget;
mod concurrency;
mod gate;
mod hosts;
mod item;
mod lanes;
mod limits;
mod notify;
mod order;
mod outcome;
mod prepare;
mod route;
mod routed;
mod traced;

use std::sync::Arc;
use std::time::Instant;

use crate::callback::{CallbackCounts, Callbacks};
use crate::function_config::Function;
use crate::metrics::{Metrics, PublishOutcome, Publisher};
use crate::oci::client::OciClient;
use crate::oci::crypto::CryptoClient;
use crate::oci::endpoints::Service;
use crate::oci::notifications::NotificationsClient;
use crate::oci::objectstorage::ObjectStorageClient;
use crate::oci::secrets::SecretsClient;
use crate::oci::streaming::StreamClient;
use crate::parked::ParkedStore;
use crate::sealed_cache::SealedCache;
use crate::secret_cache::{SecretCache, DEFAULT_TTL};
use crate::settings::{auth_from_lookup, ConfigError, Settings};
use crate::target::TargetClient;

pub use alert::{
    ArchiveLocation, DeadLetter, DeadLetterAlert, HeldBack, ALERT_KIND, MAX_BODY_BYTES, MAX_LISTED,
    MAX_PAYLOAD_BYTES,
};
pub use breaker::BreakerState;
pub use hosts::HostHealth;
pub use item::{Body, Item, UndecodableRecord};
pub use notify::{notify_totals, NotifyCounts};
pub use outcome::{Cause, Failure, Fate, Outcome, Outcomes};
pub use route::{RouteError, RouteReport};

use attempt::Attempts;
use notify::Notifier;
use route::Router;

/// The delivery engine. Cheap to clone; one per function instance (the secret cache, the
/// connection pools and the per-host limits live across invocations).
#[derive(Clone)]
pub struct Deliverer {
    attempts: Arc<Attempts>,
    router: Arc<Router>,
    order: Option<Arc<order::Order>>,
    publisher: Publisher,
    callbacks: Callbacks,
    routes: Option<Arc<crate::routes::RoutesSource>>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("secrets", &self.attempts.secrets)
            .field("max_concurrency", &self.attempts.settings.max_concurrency)
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    /// An engine for `settings`, with its clients. `crypto` opens the tokens messages carry
    /// sealed; without it such a message fails as `secretUnavailable`.
    pub fn new(
        settings: Arc<Settings>,
        target: TargetClient,
        secrets: SecretsClient,
        crypto: Option<CryptoClient>,
        streams: StreamClient,
        notifications: NotificationsClient,
    ) -> Self {
        let metrics = Metrics::new(settings.function);
        let callbacks = Callbacks::new(
            target.clone(),
            secrets.clone(),
            settings.vault.clone(),
            settings.callbacks.clone(),
        )
        .with_queue(streams.clone())
        .with_metrics(metrics.clone());
        let cache = SecretCache::new(secrets, settings.vault.clone(), DEFAULT_TTL);
        let sealed = crypto.map(|c| SealedCache::new(c, DEFAULT_TTL));
        let notifier = Notifier::new(notifications.clone(), &settings);
        Self {
            router: Arc::new(Router::new(
                Arc::clone(&settings),
                streams,
                notifier,
                metrics.clone(),
            )),
            attempts: Arc::new(Attempts::new(
                settings,
                target,
                cache,
                sealed,
                notifications,
                metrics,
            )),
            order: None,
            publisher: Publisher::disabled(),
            callbacks,
            routes: None,
        }
    }

    /// This engine posting its metrics through `publisher` ([`publish_metrics`](Self::publish_metrics)).
    pub fn with_publisher(mut self, publisher: Publisher) -> Self {
        self.publisher = publisher;
        self
    }

    /// What this instance records: deliveries, failures, latencies, batch ages, breakers.
    pub fn metrics(&self) -> &Metrics {
        &self.attempts.metrics
    }

    /// The publisher of the metrics (disabled unless configured).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Ends an invocation's metrics: the breaker state of every host this instance called is
    /// recorded (when anything else was), then everything recorded is handed to the facade
    /// and posted in one PostMetricData call (when configured and due, within its timeout;
    /// see [`Publisher::publish`]). Call it once the invocation's answer is decided; it never
    /// fails.
    pub async fn publish_metrics(&self) -> PublishOutcome {
        let metrics = self.metrics();
        // An idle invocation (a retry schedule finding nothing) posts nothing at all.
        if !metrics.is_empty() {
            for host in self.attempts.hosts() {
                metrics.breaker_state(&host.host, host.breaker);
            }
        }
        self.publisher.publish(metrics).await
    }

    /// This engine delivering routed messages (issue 21) by the routes `source` holds,
    /// checked once per batch (the source reads the object at most every 30 s).
    pub fn with_routes(mut self, source: Arc<crate::routes::RoutesSource>) -> Self {
        self.routes = Some(source);
        self
    }

    /// Delivers routed messages by `routes`, fixed (tests, `datasync routes test`).
    pub fn with_route_set(self, routes: crate::routes::RouteSet) -> Self {
        self.attempts.set_routes(Ok(routes));
        self
    }

    /// The routes source, when configured.
    pub fn routes_source(&self) -> Option<&crate::routes::RoutesSource> {
        self.routes.as_deref()
    }

    /// This engine keeping each key's order across batches through `store`, the parked keys
    /// every instance shares.
    pub fn with_parked(mut self, store: ParkedStore) -> Self {
        self.order = Some(Arc::new(order::Order::new(&self.attempts.settings, store)));
        self
    }

    /// The parked keys, when configured.
    pub fn parked(&self) -> Option<&ParkedStore> {
        self.order.as_deref().map(|o| &o.store)
    }

    /// Reads `function`'s configuration through `lookup` (the FDK's captured configuration)
    /// and builds the engine with its clients: the auth provider of
    /// [`auth_from_lookup`], one OCI transport shared by the
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
        let publisher = Publisher::from_settings(&settings, Arc::clone(&auth))?;
        let oci = OciClient::new(auth)
            .and_then(|c| c.via_unix_socket(settings.oci_unix_socket.as_deref()))
            .map_err(|e| ConfigError::client("OCI client", e))?;
        let endpoints = &settings.endpoints;
        let streams = StreamClient::new(oci.clone(), endpoints)
            .map_err(|e| ConfigError::client("streaming endpoint", e))?;
        let secrets = SecretsClient::new(oci.clone(), endpoints)
            .map_err(|e| ConfigError::client("secrets endpoint", e))?;
        // The crypto endpoint is per vault: configured (`vault_crypto_endpoint`) or absent.
        let crypto = match endpoints.url(Service::Crypto) {
            Ok(Some(_)) => Some(
                CryptoClient::new(oci.clone(), endpoints)
                    .map_err(|e| ConfigError::client("crypto endpoint", e))?,
            ),
            _ => None,
        };
        let notifications = NotificationsClient::new(oci.clone(), endpoints)
            .map_err(|e| ConfigError::client("notifications endpoint", e))?;
        let target = TargetClient::new(settings.target)
            .map_err(|e| ConfigError::client("target client", e))?;
        let routes = match &settings.routes_object {
            Some(object) => Some(Arc::new(
                crate::routes::RoutesSource::new(
                    ObjectStorageClient::new(oci.clone(), endpoints)
                        .map_err(|e| ConfigError::client("object storage endpoint", e))?,
                    object.clone(),
                    settings.routes_check,
                )
                .with_policy(settings.policy.clone()),
            )),
            None => None,
        };
        let parked = match &settings.parked {
            Some(p) => Some(ParkedStore::new(
                ObjectStorageClient::new(oci, endpoints)
                    .map_err(|e| ConfigError::client("object storage endpoint", e))?,
                p.location.clone(),
            )),
            None => None,
        };
        let engine = Self::new(
            Arc::new(settings),
            target,
            secrets,
            crypto,
            streams,
            notifications,
        )
        .with_publisher(publisher);
        let engine = match routes {
            Some(source) => engine.with_routes(source),
            None => engine,
        };
        Ok(match parked {
            Some(store) => engine.with_parked(store),
            None => engine,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.attempts.settings
    }

    /// Every target host this instance has called, with its breaker state, adaptive
    /// concurrency and pause (`docs/isolation.md`): what the functions' answers carry for the
    /// status page.
    pub fn hosts(&self) -> Vec<HostHealth> {
        self.attempts.hosts()
    }

    /// The Streaming client (shared with callers that read streams).
    pub fn streams(&self) -> &StreamClient {
        &self.router.streams
    }

    /// Delivers `items` and returns their fates in the same order. Never fails: every problem
    /// is a fate. Calls in flight when the deadline nears are awaited; calls not yet started
    /// are not started (class `deadline`). A message whose delivery task fails is
    /// dead-lettered as it is, with class `invalid`.
    ///
    /// With parked keys configured, a batch with a keyed message reads them once and writes
    /// what changed once, before returning; when either fails, the outcomes carry the error
    /// and routing refuses them ([`RouteError::Order`]).
    pub async fn deliver(&self, items: Vec<Item>, deadline: Instant) -> Outcomes {
        if let Some(oldest) = items.iter().filter_map(|i| i.appended_at).min() {
            let age = std::time::SystemTime::now()
                .duration_since(oldest)
                .unwrap_or_default();
            self.metrics().batch_age(age);
        }
        if let Some(source) = &self.routes {
            let routed = items
                .iter()
                .any(|i| i.envelope().is_some_and(|e| e.route.is_some()));
            if routed {
                self.attempts.set_routes(source.current().await);
            }
        }
        match &self.order {
            Some(order) => order::deliver(order, &self.attempts, items, deadline).await,
            None => {
                lanes::deliver(&self.attempts, items, deadline, None)
                    .await
                    .0
            }
        }
    }

    /// Sends the delivery callbacks `outcomes` owe (`crate::callback`), bounded by the
    /// callback budget and `deadline`. Call it after [`route`](Self::route) succeeded: a
    /// callback reports a fate already stored. The counts of this batch.
    pub async fn send_callbacks(&self, outcomes: &Outcomes, deadline: Instant) -> CallbackCounts {
        self.callbacks.send(outcomes, deadline).await
    }

    /// The callback sender (its counts so far).
    pub fn callbacks(&self) -> &Callbacks {
        &self.callbacks
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
    /// behind another goes wherever that one went (`choose` is not asked). Then, when
    /// anything failed permanently, one notification (its failure is logged and reported, not
    /// returned: the messages are already stored). `source` names the batch's stream in the
    /// notification.
    ///
    /// # Errors
    /// [`RouteError`] when a destination is not configured or a write fails.
    pub async fn route_with(
        &self,
        outcomes: &Outcomes,
        source: &str,
        choose: impl Fn(&Outcome) -> Option<String>,
    ) -> Result<RouteReport, RouteError> {
        self.router.route(outcomes, source, choose).await
    }
}
