//! The populate function: `POST /stream/sync` through API Gateway.
//!
//! For one sync request, or a JSON array of them (a batch), populate:
//!
//! 1. checks everything before writing anything: `POST` only (405), the caller identity the
//!    gateway sets in `X-Datasync-Caller` (401; never taken from the body), `Content-Type:
//!    application/json` (415), sizes (413: body, batch length, each envelope ≤ 1 MB on the
//!    stream), and every message rule of [`datasync_core::message::validate`] (400 naming the
//!    field, e.g. `[2].streamMessage.targetRestApi`);
//! 2. when the client sent an `Authorization` header, seals it with the vault key's Encrypt
//!    (bound to [`scoped_secret_name`](datasync_core::message::scoped_secret_name)`(caller,
//!    vaultSecretName)`) and puts the ciphertext in each envelope as `sealedToken`, one Encrypt
//!    per distinct token and name per 5 minutes; without one, checks that each named secret was
//!    stored by an operator (400 naming `vaultSecretName` otherwise); a failure is answered and
//!    nothing is written to the stream (docs/secrets.md says why tokens are not secret
//!    versions);
//! 3. writes one envelope per item (id UUID v7, receivedAt, source = caller, attempt 0,
//!    traceparent) with one PutMessages call, and answers `200 {"id","partition","offset"}`
//!    (an array of them for a batch) only once the stream has every item; otherwise 502/503
//!    with a per-item list of what was stored.
//!
//! The envelope keeps the caller's own `vaultSecretName`; readers find the secret under
//! `scoped_secret_name(envelope.source, vaultSecretName)`.
//!
//! Nothing here logs or answers the token, header values, payloads or URLs.
//!
//! # Use in-process (the local stack, tests)
//!
//! ```no_run
//! use std::convert::Infallible;
//! use populate::Handler;
//!
//! # async fn demo(config: fdk::Config) -> Result<(), fdk::Error> {
//! // Misconfiguration does not fail here: the handler answers 500 FunctionMisconfigured.
//! let handler = Handler::from_config(&config);
//! let service = fdk::service_fn(move |event: fdk::FnEvent| {
//!     let handler = handler.clone();
//!     async move { Ok::<_, Infallible>(handler.handle(event).await) }
//! });
//! fdk::Runtime::new(service)
//!     .with_config(config)
//!     .serve("/tmp/datasync/populate/lsnr.sock")
//!     .await
//! # }
//! ```
#![warn(missing_docs)]

mod answer;
mod request;
mod routed;
mod secrets;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use datasync_core::function_config::{self as key, Function};
use datasync_core::message::{with_sealed_token, SealedToken};
use datasync_core::metrics::{Metrics, Publisher};
use datasync_core::oci::auth::AuthProvider;
use datasync_core::oci::client::{OciClient, OciError, RetryPolicy, Timeouts};
use datasync_core::oci::crypto::{CryptoClient, MAX_PLAINTEXT_BYTES};
use datasync_core::oci::endpoints::Service;
use datasync_core::oci::objectstorage::ObjectStorageClient;
use datasync_core::oci::streaming::{PutMessage, StreamClient};
use datasync_core::oci::vault::VaultClient;
use datasync_core::settings::{auth_from_lookup, ConfigError, Settings, REGION_METADATA};
use datasync_core::trace::{emit, snippet, TraceEvent, TraceKind};
use fdk::{Context, FnEvent, Response};

pub use answer::Stored;
pub use routed::Filtered;
pub use secrets::SealOutcome;

use answer::{entry_retryable, ItemAnswer, Refusal};
use secrets::{Sealer, SecretStore};

/// The header API Gateway sets to the authenticated caller (and strips from clients).
pub const CALLER_HEADER: &str = "x-datasync-caller";
/// The most items a batch may hold.
pub const MAX_BATCH: usize = 100;
/// The largest body accepted: the function invoke cap of OCI (6 MB).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// The longest caller identity.
pub const MAX_CALLER_LEN: usize = 256;
/// The longest `Authorization` value: the most the vault key's Encrypt takes.
pub const MAX_TOKEN_BYTES: usize = MAX_PLAINTEXT_BYTES;

/// The configured function: settings and clients, built once. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Populate {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Arc<Settings>,
    data_stream: String,
    streams: StreamClient,
    secrets: SecretStore,
    /// Absent when `vault_crypto_endpoint` is not configured: a request with a token is then
    /// answered 500 naming the key.
    sealer: Option<Sealer>,
    /// What populate records (`MessagesAccepted`), and where it goes.
    metrics: Metrics,
    publisher: Publisher,
    /// The routes object (`routes_object`), when configured.
    routes: Option<datasync_core::routes::RoutesSource>,
}

impl Populate {
    /// Reads the function configuration (the `populate` keys of
    /// [`datasync_core::function_config`], the OCI auth variables, and the local-only
    /// `DATASYNC_OCI_ENDPOINT*` overrides) and builds the clients.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    pub fn from_config(config: &fdk::Config) -> Result<Self, ConfigError> {
        let lookup = |k: &str| config.get(k).map(str::to_owned);
        let settings = Settings::from_lookup(Function::Populate, lookup)?;
        let auth = auth_from_lookup(lookup)?;
        Self::new(Arc::new(settings), auth)
    }

    /// Builds populate from settings already read and an auth provider (the local stack).
    ///
    /// # Errors
    /// A [`ConfigError`] when a key populate needs is absent from `settings`, or an endpoint
    /// is not configured.
    pub fn new(settings: Arc<Settings>, auth: Arc<dyn AuthProvider>) -> Result<Self, ConfigError> {
        let need = |key: &str, value: &Option<String>| {
            value.clone().ok_or_else(|| ConfigError::missing(key))
        };
        let data_stream = need(key::DATA_STREAM, &settings.data_stream)?;
        let compartment = need(key::VAULT_COMPARTMENT, &settings.vault_compartment)?;
        let master_key = need(key::VAULT_KEY, &settings.vault_key)?;
        let endpoint_error = |e: OciError| ConfigError::NoUsableEndpoint {
            key: REGION_METADATA.to_owned(),
            source: e,
        };
        let publisher = Publisher::from_settings(&settings, Arc::clone(&auth))?;
        // Populate answers within the gateway's patience: short timeouts, few retries.
        let client = OciClient::with_settings(
            auth,
            Timeouts {
                connect: Duration::from_secs(3),
                total: Duration::from_secs(8),
            },
            RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(2),
            },
        )
        .and_then(|c| c.via_unix_socket(settings.oci_unix_socket.as_deref()))
        .map_err(endpoint_error)?;
        let streams =
            StreamClient::new(client.clone(), &settings.endpoints).map_err(endpoint_error)?;
        let vault =
            VaultClient::new(client.clone(), &settings.endpoints).map_err(endpoint_error)?;
        let routes = match &settings.routes_object {
            Some(object) => Some(
                datasync_core::routes::RoutesSource::new(
                    ObjectStorageClient::new(client.clone(), &settings.endpoints)
                        .map_err(endpoint_error)?,
                    object.clone(),
                    settings.routes_check,
                )
                .with_policy(settings.policy.clone()),
            ),
            None => None,
        };
        let sealer = match settings.endpoints.url(Service::Crypto) {
            Ok(Some(_)) => Some(Sealer::new(
                CryptoClient::new(client, &settings.endpoints).map_err(endpoint_error)?,
                master_key,
            )),
            _ => None,
        };
        let secrets = SecretStore::new(vault, settings.vault.clone(), compartment);
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                data_stream,
                streams,
                secrets,
                sealer,
                metrics: Metrics::new(Function::Populate),
                publisher,
                routes,
            }),
        })
    }

    /// The settings populate runs with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// What populate records.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Answers one call. Never fails: every problem is an error response. The metrics of
    /// accepted messages are posted in the background ([`Publisher::publish_soon`], at most
    /// once per `metrics_post_interval_ms`): the caller never waits for them.
    pub async fn handle(&self, event: FnEvent) -> Response {
        let (ctx, body) = event.into_parts();
        match self.process(&ctx, &body).await {
            Ok(response) => {
                self.inner.publisher.publish_soon(&self.inner.metrics);
                response
            }
            Err(refusal) => {
                tracing::warn!(
                    call_id = %ctx.call_id,
                    status = refusal.status.as_u16(),
                    code = refusal.code,
                    reason = %refusal.message,
                    "populate refused the call"
                );
                refusal.into_response()
            }
        }
    }

    /// Seals the caller's token for each distinct secret the request names and puts it in each
    /// item's envelope (`sealedToken`).
    async fn seal_token(
        &self,
        ctx: &Context,
        accepted: &mut request::Accepted,
        token: &request::Token,
    ) -> Result<(), Refusal> {
        let sealer = self.inner.sealer.as_ref().ok_or_else(|| {
            Refusal::misconfigured(format!(
                "{} is not configured: the Authorization token cannot be sealed",
                key::VAULT_CRYPTO_ENDPOINT
            ))
        })?;
        let mut sealed: BTreeMap<String, SealedToken> = BTreeMap::new();
        for item in &mut accepted.items {
            let Some(name) = &item.secret else { continue };
            if !sealed.contains_key(name) {
                match sealer.seal(name, token.bytes()).await {
                    Ok((s, outcome)) => {
                        tracing::info!(
                            call_id = %ctx.call_id,
                            caller = %accepted.caller,
                            secret = name.as_str(),
                            outcome = ?outcome,
                            "caller's token sealed with the vault key"
                        );
                        sealed.insert(name.clone(), s);
                    }
                    Err(e) => {
                        let refusal = Refusal::crypto(&e);
                        tracing::error!(
                            call_id = %ctx.call_id,
                            secret = name.as_str(),
                            reason = %refusal.message,
                            "sealing the caller's token failed"
                        );
                        return Err(refusal);
                    }
                }
            }
            let Some(s) = sealed.get(name) else { continue };
            let value = with_sealed_token(&item.message.value, s).ok_or_else(|| {
                Refusal::misconfigured("the envelope could not carry the sealed token")
            })?;
            item.message.value = Bytes::from(value);
        }
        Ok(())
    }

    /// Without a token, each secret the request names must be stored already (by an
    /// operator): a message naming none could never be delivered.
    async fn check_stored(
        &self,
        ctx: &Context,
        accepted: &request::Accepted,
    ) -> Result<(), Refusal> {
        // In item order, each name once: the first item that cannot be delivered is named.
        let mut seen = std::collections::BTreeSet::new();
        for item in &accepted.items {
            let Some(name) = item.secret.as_deref() else {
                continue;
            };
            if !seen.insert(name) {
                continue;
            }
            let field = item.secret_field.as_str();
            match self.inner.secrets.present(name).await {
                Ok(true) => {}
                Ok(false) => return Err(Refusal::no_such_secret(field)),
                Err(e) => {
                    let refusal = Refusal::vault(&e);
                    tracing::error!(
                        call_id = %ctx.call_id,
                        secret = name,
                        reason = %refusal.message,
                        "looking up the named secret failed"
                    );
                    return Err(refusal);
                }
            }
        }
        Ok(())
    }

    /// The routes now: `None` without a routes object; a broken or unreadable object with no
    /// good routes read before refuses every call, naming it.
    async fn routes(&self) -> Result<Option<datasync_core::routes::RouteSet>, Refusal> {
        match &self.inner.routes {
            None => Ok(None),
            Some(source) => source
                .current()
                .await
                .map(Some)
                .map_err(|e| Refusal::misconfigured(e.to_string())),
        }
    }

    async fn process(&self, ctx: &Context, body: &Bytes) -> Result<Response, Refusal> {
        let routes = self.routes().await?;
        let mut accepted = request::accept(
            ctx,
            body,
            &self.inner.settings.policy,
            routes.as_ref(),
            SystemTime::now(),
        )?;
        let count = accepted.items.len();
        if count == 0 {
            return answer_filtered_only(&accepted);
        }

        // Before anything is stored: every message carries its token sealed, or names a
        // secret that exists.
        match accepted.token.take() {
            Some(token) => self.seal_token(ctx, &mut accepted, &token).await?,
            None => self.check_stored(ctx, &accepted).await?,
        }

        let messages: Vec<PutMessage> = accepted.items.iter().map(|i| i.message.clone()).collect();
        let outcomes = match self
            .inner
            .streams
            .put_messages(&self.inner.data_stream, &messages)
            .await
        {
            Ok(outcomes) if outcomes.len() == count => outcomes,
            Ok(_) => {
                return Err(Refusal::stream(
                    &OciError::Decode {
                        operation: "PutMessages",
                        detail: "one outcome per message expected".to_owned(),
                    },
                    count,
                ))
            }
            Err(e) => {
                let refusal = Refusal::stream(&e, count);
                tracing::error!(call_id = %ctx.call_id, reason = %refusal.message, "PutMessages failed");
                return Err(refusal);
            }
        };

        let mut stored = Vec::with_capacity(count);
        let mut answers = Vec::with_capacity(count);
        let mut retryable = true;
        for (index, (item, outcome)) in accepted.items.iter().zip(&outcomes).enumerate() {
            match outcome {
                Ok(at) => {
                    let s = Stored::new(item.id.clone(), at, item.route.clone());
                    stored.push(s.clone());
                    answers.push(ItemAnswer::stored(index, s));
                }
                Err(failure) => {
                    retryable &= entry_retryable(failure);
                    answers.push(ItemAnswer::from_failure(index, item.id.clone(), failure));
                }
            }
        }
        if stored.len() != count {
            let refusal = Refusal::partially_stored(answers, retryable);
            tracing::error!(
                call_id = %ctx.call_id,
                caller = %accepted.caller,
                stored = stored.len(),
                items = count,
                "some messages were not stored"
            );
            return Err(refusal);
        }
        self.inner.metrics.accepted(None, stored.len() as u64);
        // One trace line per message: its acceptance, the first step of its story.
        for (s, item) in stored.iter().zip(&accepted.items) {
            let mut event =
                TraceEvent::new(TraceKind::Accepted, &s.id).key(item.message.key.as_deref());
            event.partition = Some(s.partition.clone());
            event.offset = Some(s.offset);
            event.caller = Some(snippet(&accepted.caller));
            emit(&event);
        }
        let response = if accepted.batch {
            Response::json(&merge_answers(stored, &accepted.filtered))
        } else {
            Response::json(&stored[0])
        };
        response.map_err(|_| Refusal::misconfigured("the answer could not be encoded"))
    }
}

/// One item of a success answer: where it was stored, or that its route filtered it.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
enum ItemOk<'a> {
    Stored(Stored),
    Filtered(&'a Filtered),
}

/// A batch's answers in body order: the stored ones, with the filtered ones at their places.
fn merge_answers(stored: Vec<Stored>, filtered: &[(usize, Filtered)]) -> Vec<ItemOk<'_>> {
    let total = stored.len() + filtered.len();
    let mut out = Vec::with_capacity(total);
    let mut stored = stored.into_iter();
    let mut filtered = filtered.iter().peekable();
    while out.len() < total {
        match filtered.peek() {
            Some((index, f)) if *index == out.len() => {
                out.push(ItemOk::Filtered(f));
                filtered.next();
            }
            _ => match stored.next() {
                Some(s) => out.push(ItemOk::Stored(s)),
                None => break,
            },
        }
    }
    out
}

/// The answer when every message was filtered: nothing to store.
fn answer_filtered_only(accepted: &request::Accepted) -> Result<Response, Refusal> {
    let response = if accepted.batch {
        Response::json(&merge_answers(Vec::new(), &accepted.filtered))
    } else {
        match accepted.filtered.first() {
            Some((_, f)) => Response::json(f),
            None => Response::json(&Vec::<Stored>::new()),
        }
    };
    response.map_err(|_| Refusal::misconfigured("the answer could not be encoded"))
}

/// Runs every check populate makes on a call and its body ([`Populate::handle`] before anything
/// is written, with no Vault or stream call) and answers how many messages would be written,
/// or the status of the refusal. The entry point of the `sync_request` fuzz target (`fuzz/`).
#[doc(hidden)]
pub fn check_request(
    ctx: &Context,
    body: &Bytes,
    policy: &datasync_core::message::Policy,
    now: SystemTime,
) -> Result<usize, http::StatusCode> {
    request::accept(ctx, body, policy, None, now)
        .map(|accepted| accepted.items.len())
        .map_err(|refusal| refusal.status)
}

/// The function as the FDK serves it: [`Populate`], or the configuration error it answers
/// every call with (500 `FunctionMisconfigured`, naming the key). Cheap to clone.
#[derive(Debug, Clone)]
pub enum Handler {
    /// Configured.
    Ready(Populate),
    /// Not configured: why.
    Misconfigured(Arc<ConfigError>),
}

impl Handler {
    /// Builds populate from `config`; a configuration error is logged once here, and answered
    /// on every call.
    pub fn from_config(config: &fdk::Config) -> Self {
        match Populate::from_config(config) {
            Ok(p) => Self::Ready(p),
            Err(e) => {
                tracing::error!(key = e.key(), error = %e, "populate is misconfigured; every call will fail until the configuration is fixed");
                Self::Misconfigured(Arc::new(e))
            }
        }
    }

    /// Answers one call.
    pub async fn handle(&self, event: FnEvent) -> Response {
        match self {
            Self::Ready(p) => p.handle(event).await,
            Self::Misconfigured(e) => {
                tracing::error!(call_id = %event.context.call_id, key = e.key(), "populate is misconfigured");
                Refusal::misconfigured(e.to_string()).into_response()
            }
        }
    }
}
