//! Part of the second stage for a routed message (issue 21): its route, as it is now, makes
//! the call from the message's data (transform, operation, path, headers, Vault secret), so a
//! fixed route also fixes messages already queued and a replay uses the current route. A
//! route that fails on the data, or no longer exists, is a permanent failure of class
//! `transform`, replayable once the route is fixed.

use bytes::Bytes;

use crate::classify::ErrorClass;
use crate::message::{Envelope, Policy, StreamMessage, MAX_ERROR_DETAIL};
use crate::routes::{Input, RouteSet, RoutesUnavailable};
use crate::settings::Settings;

use super::outcome::{Cause, Failure};

/// The routes delivery uses: the current set, or why there is none.
pub(super) type CurrentRoutes = Result<RouteSet, RoutesUnavailable>;

/// A routed message made into a call.
#[derive(Debug)]
pub(super) struct RoutedCall {
    /// The call in the sample's terms, so the sample's rules and stages apply.
    pub(super) message: StreamMessage,
    /// The deployment's rules, with the route's own target host allowed.
    pub(super) policy: Policy,
    /// The body: the transform's output (none for DELETE).
    pub(super) body: Option<Bytes>,
}

fn transform_failure(detail: String) -> Failure {
    let mut detail = detail;
    crate::message::truncate_utf8(&mut detail, MAX_ERROR_DETAIL);
    Failure::permanent(ErrorClass::Transform, Cause::NotAttempted { detail })
}

/// Resolves `envelope`'s route `name` on its data.
pub(super) fn resolve(
    settings: &Settings,
    routes: &CurrentRoutes,
    name: &str,
    envelope: &Envelope,
) -> Result<RoutedCall, Failure> {
    let set = routes
        .as_ref()
        .map_err(|e| transform_failure(format!("route {name:?}: {e}")))?;
    let route = set
        .get(name)
        .ok_or_else(|| transform_failure(format!("route {name:?} does not exist")))?;
    let text = envelope.data.as_ref().map_or("null", |d| d.get());
    let input = Input::from_json(text)
        .map_err(|e| transform_failure(format!("route {name:?}: data is not JSON: {e}")))?;
    let call = route
        .resolve_input(&input)
        .map_err(|e| transform_failure(e.to_string()))?;
    let mut allow_list = settings.policy.allow_list.clone();
    let target = route.target();
    if let (Some(host), Some(port)) = (target.host_str(), target.port_or_known_default()) {
        // A host the route was loaded with always parses.
        let _ = allow_list.extend(&format!("{host}:{port}"));
    }
    Ok(RoutedCall {
        message: StreamMessage {
            vault_secret_name: call.vault_secret,
            vault_secret_header: call.vault_secret_header,
            target_rest_api: call.url,
            target_rest_api_operation: call.operation,
            target_rest_api_payload: None,
            target_rest_api_headers: call.headers,
        },
        policy: Policy {
            allow_list,
            allow_http: settings.policy.allow_http,
        },
        body: call.payload.map(Bytes::from),
    })
}
