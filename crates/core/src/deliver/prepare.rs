//! The second stage: everything about a message's call decided before the call (method, URL,
//! headers, secret, the host's rules, timeout and concurrency), or the rule it breaks.
//!
//! The body is encoded only once the call may start ([`encode_body`]): a message waiting for
//! its host's turn holds no copy of its payload.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};

use crate::classify::{ErrorClass, RuleOverride, Rules};
use crate::message::{scoped_secret_name, validate, Envelope, StreamMessage};
use crate::settings::Settings;

use super::item::payload_of;
use super::outcome::{Cause, Failure};
use super::routed::{self, CurrentRoutes};

/// Per-call facts decided before the call.
#[derive(Debug)]
pub(super) struct Prepared {
    pub(super) method: Method,
    pub(super) url: url::Url,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    /// The Vault secret's name, scoped to the message's source.
    pub(super) secret: Option<String>,
    /// The header the secret goes in: `vaultSecretHeader`, or `Authorization`.
    pub(super) secret_header: HeaderName,
    pub(super) rules: Rules,
    pub(super) timeout: Duration,
    /// The host override's timeout, when it names one (it also widens the host's time share).
    pub(super) timeout_override: Option<Duration>,
    /// `host[:port]`, the key of the host's concurrency limit.
    pub(super) host: String,
    pub(super) host_limit: usize,
    /// A routed message's body, made by its route (`None`: the envelope's payload).
    pub(super) routed_body: Option<Option<Bytes>>,
}

/// A permanent failure found before any call.
fn broken(class: ErrorClass, detail: impl Into<String>) -> Failure {
    Failure::permanent(
        class,
        Cause::NotAttempted {
            detail: detail.into(),
        },
    )
}

/// Validates `envelope`'s message and decides everything about its call except the body.
pub(super) fn prepare(
    settings: &Settings,
    routes: &CurrentRoutes,
    envelope: &Envelope,
) -> Result<Prepared, Failure> {
    let routed = match envelope.route.as_deref() {
        Some(name) => Some(routed::resolve(settings, routes, name, envelope)?),
        None => None,
    };
    // Validation reads (and normalises) everything but the payload: validate a copy without it.
    let source = routed.as_ref().map_or(&envelope.message, |r| &r.message);
    let mut message = StreamMessage {
        vault_secret_name: source.vault_secret_name.clone(),
        vault_secret_header: source.vault_secret_header.clone(),
        target_rest_api: source.target_rest_api.clone(),
        target_rest_api_operation: source.target_rest_api_operation.clone(),
        target_rest_api_payload: None,
        target_rest_api_headers: source.target_rest_api_headers.clone(),
    };
    let policy = routed.as_ref().map_or(&settings.policy, |r| &r.policy);
    let url = validate(&mut message, policy).map_err(|inv| broken(inv.class(), inv.to_string()))?;
    let method =
        Method::from_bytes(message.target_rest_api_operation.as_bytes()).map_err(|_| {
            broken(
                ErrorClass::Invalid,
                "streamMessage.targetRestApiOperation: not a method",
            )
        })?;
    let headers = headers_of(&message)?;
    let secret = message
        .vault_secret_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(|name| match envelope.source.as_deref() {
            // A route's secret is the operator's, stored under its own name.
            _ if routed.is_some() => name.to_owned(),
            Some(source) => scoped_secret_name(source, name),
            None => name.to_owned(),
        });
    let secret_header = match message.vault_secret_header.as_deref() {
        None => http::header::AUTHORIZATION,
        Some(name) => HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            broken(
                ErrorClass::Invalid,
                "streamMessage.vaultSecretHeader: not a legal header name",
            )
        })?,
    };
    let (rules, ov, host) = rules_for(settings, &url);
    let timeout_override = ov
        .as_ref()
        .and_then(|o| o.timeout_ms)
        .map(Duration::from_millis);
    let timeout = timeout_override.unwrap_or(settings.target.timeout);
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
        timeout_override,
        host,
        host_limit,
        routed_body: routed.map(|r| r.body),
    })
}

/// The message's custom headers, each a legal name and value.
fn headers_of(message: &StreamMessage) -> Result<Vec<(HeaderName, HeaderValue)>, Failure> {
    let mut headers = Vec::with_capacity(message.target_rest_api_headers.len());
    for (n, h) in message.target_rest_api_headers.iter().enumerate() {
        let name = HeaderName::from_bytes(h.key.as_bytes());
        let value = HeaderValue::from_str(&h.value);
        match (name, value) {
            (Ok(name), Ok(value)) => headers.push((name, value)),
            _ => {
                return Err(broken(
                    ErrorClass::Invalid,
                    format!("streamMessage.targetRestApiHeaders[{n}]: not a legal header"),
                ))
            }
        }
    }
    Ok(headers)
}

/// The rules and override for a target URL: `host:port` first, then `host`.
pub(super) fn rules_for(
    settings: &Settings,
    url: &url::Url,
) -> (Rules, Option<RuleOverride>, String) {
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

/// The body of a call: the payload's compact text, except for DELETE; read from `encoded` when
/// the envelope's payload is kept there.
pub(super) fn encode_body(
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
                broken(
                    ErrorClass::Invalid,
                    "streamMessage.targetRestApiPayload: could not be read again",
                )
            })?;
            read.as_ref()
        }
    };
    Ok(payload.map(|p| Bytes::copy_from_slice(p.get().as_bytes())))
}
