//! [`RoutedRequest`]: the routed form of a sync request (issue 21),
//! `{"route": "orders", "streamKey"?: "...", "data": <any JSON>}`, beside the sample's
//! [`SyncRequest`](super::SyncRequest); one body may mix both forms.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Invalid, Payload, MAX_STREAM_KEY};

/// A source's own data for an operator-defined route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutedRequest {
    /// The route's name.
    pub route: String,
    /// The stream key: messages with the same key are delivered in order (else the route's
    /// `key` program gives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_key: Option<String>,
    /// The data, as sent (compacted): the input of the route's programs.
    pub data: Payload,
    /// `statusCallback`: where the message's final outcome is POSTed (`crate::callback`),
    /// checked at ingest like a target URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback: Option<String>,
}

/// Whether the request at `raw` is of the routed form (it has a `route` member).
pub fn is_routed(raw: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        route: Option<&'a RawValue>,
    }
    // serde reads a struct from an array too: only an object can be a routed request.
    raw.get().trim_start().starts_with('{')
        && serde_json::from_str::<Probe<'_>>(raw.get()).is_ok_and(|p| p.route.is_some())
}

/// Reads a routed request at `prefix` (`[2].` in a batch).
///
/// # Errors
/// The first field that breaks the schema: `route` not a string, `data` missing, an unknown
/// member (`streamMessage` beside `route` included), `streamKey` too long or not a string.
pub fn read_routed_request(raw: &RawValue, prefix: &str) -> Result<RoutedRequest, Invalid> {
    let mut request: RoutedRequest = serde_json::from_str(raw.get()).map_err(|e| {
        // serde's message names the member and what was expected, never a value.
        let text = e.to_string();
        let rule = text
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned();
        let field = if text.contains("`data`") {
            "data"
        } else if text.contains("streamKey") {
            "streamKey"
        } else if text.contains("statusCallback") {
            "statusCallback"
        } else {
            "route"
        };
        Invalid::new(
            format!("{prefix}{field}"),
            format!("routed request: {rule}"),
        )
    })?;
    if request.stream_key.as_deref().is_some_and(str::is_empty) {
        request.stream_key = None;
    }
    if request
        .stream_key
        .as_ref()
        .is_some_and(|k| k.len() > MAX_STREAM_KEY)
    {
        return Err(Invalid::new(
            format!("{prefix}streamKey"),
            format!("must be at most {MAX_STREAM_KEY} bytes"),
        ));
    }
    request.data = Payload::from_raw(
        serde_json::from_str::<&RawValue>(request.data.get())
            .map_err(|_| Invalid::new(format!("{prefix}data"), "is not valid JSON"))?,
    )
    .map_err(|_| Invalid::new(format!("{prefix}data"), "is not valid JSON"))?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn routed_requests_are_told_apart_and_read() {
        let r =
            raw(r#"{"route": "orders", "streamKey": "k", "data": {"orderId": 7, "total": 12.5}}"#);
        assert!(is_routed(&r));
        let req = read_routed_request(&r, "").unwrap();
        assert_eq!(req.route, "orders");
        assert_eq!(req.stream_key.as_deref(), Some("k"));
        assert_eq!(req.data.get(), r#"{"orderId":7,"total":12.5}"#);
        assert!(!is_routed(&raw(r#"{"streamMessage": {}}"#)));
        assert!(!is_routed(&raw("[1]")));
    }

    #[test]
    fn routed_requests_refuse_what_they_do_not_know() {
        let e = read_routed_request(&raw(r#"{"route": "a"}"#), "[1].").unwrap_err();
        assert_eq!(e.field, "[1].data");
        let e = read_routed_request(&raw(r#"{"route": 5, "data": 1}"#), "").unwrap_err();
        assert_eq!(e.field, "route");
        let e = read_routed_request(
            &raw(r#"{"route": "a", "data": 1, "streamMessage": {}}"#),
            "",
        )
        .unwrap_err();
        assert!(e.rule.contains("streamMessage"), "{e}");
        let long = format!(
            r#"{{"route": "a", "data": 1, "streamKey": "{}"}}"#,
            "k".repeat(1025)
        );
        assert_eq!(
            read_routed_request(&raw(&long), "").unwrap_err().field,
            "streamKey"
        );
        let req = read_routed_request(&raw(r#"{"route": "a", "data": null, "streamKey": ""}"#), "")
            .unwrap();
        assert_eq!((req.data.get(), req.stream_key), ("null", None));
    }
}
