//! Routed requests (issue 21): `{"route": "orders", "streamKey"?: "...", "data": ...}`. The
//! route must exist; its filter runs here (a filtered message is answered
//! `{"filtered": true, "route": ...}` and not stored); its key program gives the stream key
//! when the source sends none. Transform, operation, path and headers run at delivery.

use bytes::Bytes;
use datasync_core::message::{read_routed_request, validate_status_callback, Envelope, Policy};
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
    /// The target rules a `statusCallback` is checked by, as a sample message's is.
    pub policy: &'a Policy,
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
    if let Some(url) = &request.status_callback {
        validate_status_callback(url, each.policy)
            .map_err(|i| Refusal::invalid(&format!("{prefix}{}", i.field), &i.rule))?;
    }
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
    let mut envelope = Envelope::routed(
        request.route,
        request.data,
        each.caller.to_owned(),
        each.now,
        each.traceparent.to_owned(),
    );
    // The request's own callback wins over its route's (checked when the routes were loaded).
    envelope.status_callback = request
        .status_callback
        .or_else(|| route.def().status_callback.clone());
    let id = envelope.id.clone().unwrap_or_default();
    let value = envelope
        .encode()
        .map_err(|_| Refusal::invalid(&route_field, "cannot be encoded"))?;
    let key = key.map(|k| Bytes::from(k.into_bytes()));
    let here = match prefix.trim_end_matches('.') {
        "" => "body",
        at => at,
    };
    crate::request::check_size(here, value.len() + key.as_ref().map_or(0, Bytes::len))?;
    Ok(Routed::Store(Item {
        id,
        message: PutMessage::new(key, value),
        secret: None,
        secret_field: String::new(),
        route: Some(route_name),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::SystemTime;

    use bytes::Bytes;
    use datasync_core::message::{AllowList, Envelope, Policy};
    use datasync_core::routes::RouteSet;
    use fdk::{Context, HttpRequest, Intent};
    use http::{HeaderMap, HeaderValue, Method};

    use crate::request::accept;

    fn ctx() -> Context {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-datasync-caller", HeaderValue::from_static("app-a"));
        let mut ctx = Context::for_test("c");
        ctx.intent = Intent::HttpRequest;
        ctx.http = Some(HttpRequest::new(Method::POST, "/stream/sync", headers));
        ctx
    }

    fn routes() -> RouteSet {
        RouteSet::from_toml(
            r#"
[[routes]]
name = "orders"
target = "https://api.example.com/orders"
filter = '.total > 0'
transform = '{id: .orderId, amount: .total}'
key = '.orderId | tostring'
"#,
        )
        .unwrap()
    }

    fn policy() -> Policy {
        Policy {
            allow_list: AllowList::parse("api.example.com").unwrap(),
            allow_http: false,
        }
    }

    fn run(body: serde_json::Value) -> Result<crate::request::Accepted, crate::answer::Refusal> {
        run_text(&body.to_string())
    }

    fn run_text(body: &str) -> Result<crate::request::Accepted, crate::answer::Refusal> {
        let set = routes();
        accept(
            &ctx(),
            &Bytes::from(body.to_owned()),
            &policy(),
            Some(&set),
            SystemTime::now(),
        )
    }

    #[test]
    fn a_routed_message_is_stored_with_route_data_and_the_key_programs_key() {
        let accepted =
            run_text(r#"{"route": "orders", "data": {"orderId": 7, "total": 12.5, "junk": 1}}"#)
                .unwrap();
        assert_eq!(accepted.items.len(), 1);
        let item = &accepted.items[0];
        let env = Envelope::decode(&item.message.value).unwrap();
        assert_eq!(env.route.as_deref(), Some("orders"));
        assert_eq!(
            env.data.unwrap().get(),
            r#"{"orderId":7,"total":12.5,"junk":1}"#
        );
        assert_eq!(item.message.key.as_deref(), Some(&b"7"[..]));
        assert!(item.secret.is_none());
    }

    #[test]
    fn filtered_unknown_and_mixed_batches() {
        let accepted = run(serde_json::json!(
            {"route": "orders", "data": {"orderId": 8, "total": 0}}
        ))
        .unwrap();
        assert!(accepted.items.is_empty());
        assert_eq!(accepted.filtered.len(), 1);
        assert_eq!(accepted.filtered[0].1.route, "orders");

        let refusal = run(serde_json::json!([
            {"route": "orders", "data": {"orderId": 1, "total": 1}},
            {"route": "nope", "data": {}}
        ]))
        .unwrap_err();
        assert_eq!(refusal.status, 400);
        assert!(
            refusal
                .message
                .starts_with("[1].route: no route named \"nope\""),
            "{}",
            refusal.message
        );

        let mixed = run(serde_json::json!([
            {"route": "orders", "streamKey": "mine", "data": {"orderId": 1, "total": 1}},
            {"streamMessage": {
                "targetRestApi": "https://api.example.com/x",
                "targetRestApiOperation": "POST",
                "targetRestApiPayload": {"a": 1}}},
            {"route": "orders", "data": {"orderId": 2, "total": 0}}
        ]))
        .unwrap();
        assert_eq!(mixed.items.len(), 2);
        assert_eq!(mixed.items[0].message.key.as_deref(), Some(&b"mine"[..]));
        assert_eq!(mixed.filtered.len(), 1);
        assert_eq!(mixed.filtered[0].0, 2);
        let sample = Envelope::decode(&mixed.items[1].message.value).unwrap();
        assert!(sample.route.is_none());
        assert_eq!(sample.message.target_rest_api, "https://api.example.com/x");
    }

    #[test]
    fn a_routed_message_carries_a_checked_status_callback() {
        let accepted = run(serde_json::json!({"route": "orders",
            "statusCallback": "https://api.example.com/cb", "data": {"orderId": 7, "total": 1}}))
        .unwrap();
        let env = Envelope::decode(&accepted.items[0].message.value).unwrap();
        assert_eq!(
            env.status_callback.as_deref(),
            Some("https://api.example.com/cb")
        );
        for bad in [
            "http://api.example.com/cb",
            "https://elsewhere.example.org/cb",
            "https://user:pw@api.example.com/cb",
        ] {
            let refusal = run(
                serde_json::json!([{"route": "orders", "statusCallback": bad,
                "data": {"orderId": 7, "total": 1}}]),
            )
            .unwrap_err();
            assert_eq!(refusal.status, 400, "{bad}");
            assert!(
                refusal.message.starts_with("[0].statusCallback"),
                "{bad}: {}",
                refusal.message
            );
        }
        let refusal = run(serde_json::json!({"route": "orders", "statusCallback": 5,
            "data": {"orderId": 7, "total": 1}}))
        .unwrap_err();
        assert_eq!(refusal.status, 400, "{}", refusal.message);
    }

    #[test]
    fn a_route_s_default_callback_is_used_unless_the_request_names_its_own() {
        let set = RouteSet::from_toml(
            r#"
[[routes]]
name = "orders"
target = "https://api.example.com/orders"
status_callback = "https://api.example.com/route-cb"

[[routes]]
name = "plain"
target = "https://api.example.com/plain"
"#,
        )
        .unwrap();
        let callback = |body: serde_json::Value| {
            let accepted = accept(
                &ctx(),
                &Bytes::from(body.to_string()),
                &policy(),
                Some(&set),
                SystemTime::now(),
            )
            .unwrap();
            Envelope::decode(&accepted.items[0].message.value)
                .unwrap()
                .status_callback
        };
        assert_eq!(
            callback(serde_json::json!({"route": "orders", "data": {}})).as_deref(),
            Some("https://api.example.com/route-cb")
        );
        assert_eq!(
            callback(serde_json::json!({"route": "orders", "data": {},
                "statusCallback": "https://api.example.com/mine"}))
            .as_deref(),
            Some("https://api.example.com/mine")
        );
        assert_eq!(
            callback(serde_json::json!({"route": "plain", "data": {}})),
            None
        );
    }
}
