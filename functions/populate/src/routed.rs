//! Routed requests (issue 21): `{"route": "orders", "streamKey"?: "...", "data": ...}`. The
//! route must exist; its filter runs here (a filtered message is answered
//! `{"filtered": true, "route": ...}` and not stored); its key program gives the stream key
//! when the source sends none. Transform, operation, path and headers run at delivery.

use bytes::Bytes;
use datasync_core::message::{read_routed_request, Envelope, MAX_MESSAGE_BYTES};
use datasync_core::oci::streaming::PutMessage;
use datasync_core::routes::{Input, RouteSet};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::answer::Refusal;
use crate::request::Item;

/// The answer for a message its route's filter dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filtered {
    /// Always true.
    pub filtered: bool,
    /// The route whose filter dropped it.
    pub route: String,
}

/// A routed request: stored, or dropped by its route's filter.
#[derive(Debug)]
pub(crate) enum Routed {
    Store(Item),
    Filtered(Filtered),
}

/// What a routed item needs from its request.
pub(crate) struct RoutedContext<'a> {
    pub routes: Option<&'a RouteSet>,
    pub caller: &'a str,
    pub now: std::time::SystemTime,
    pub traceparent: &'a str,
}

/// One routed request at `prefix`: schema, route, filter, key, envelope size.
pub(crate) fn item(
    prefix: &str,
    value: &RawValue,
    each: &RoutedContext<'_>,
) -> Result<Routed, Refusal> {
    let request =
        read_routed_request(value, prefix).map_err(|i| Refusal::invalid(&i.field, &i.rule))?;
    let route_field = format!("{prefix}route");
    let route = each
        .routes
        .and_then(|set| set.get(&request.route))
        .ok_or_else(|| {
            Refusal::invalid(
                &route_field,
                &format!("no route named {:?} is configured", request.route),
            )
        })?;
    let refused =
        |e: datasync_core::routes::RouteError| Refusal::invalid(&route_field, &e.to_string());
    let input = Input::from_json(request.data.get()).map_err(|e| {
        Refusal::invalid(&format!("{prefix}data"), &format!("is not valid JSON: {e}"))
    })?;
    if !route.filter_input(&input).map_err(refused)? {
        return Ok(Routed::Filtered(Filtered {
            filtered: true,
            route: request.route,
        }));
    }
    let key = match request.stream_key {
        Some(k) => Some(k),
        None => route.key_input(&input).map_err(refused)?,
    };
    let route_name = request.route.clone();
    let envelope = Envelope::routed(
        request.route,
        request.data,
        each.caller.to_owned(),
        each.now,
        each.traceparent.to_owned(),
    );
    let id = envelope.id.clone().unwrap_or_default();
    let value = envelope
        .encode()
        .map_err(|_| Refusal::invalid(&route_field, "cannot be encoded"))?;
    let key = key.map(|k| Bytes::from(k.into_bytes()));
    let size = value.len() + key.as_ref().map_or(0, Bytes::len);
    if size > MAX_MESSAGE_BYTES {
        let here = match prefix.trim_end_matches('.') {
            "" => "body",
            at => at,
        };
        return Err(Refusal::too_large(format!(
            "{here}: the message is {size} bytes on the stream (streamKey + envelope); at most {MAX_MESSAGE_BYTES}"
        )));
    }
    Ok(Routed::Store(Item {
        id,
        message: PutMessage::new(key, value),
        secret: None,
        secret_field: String::new(),
        route: Some(route_name),
    }))
}
