//! The sync request as populate reads it: the body (any bytes) through every check of
//! `populate::check_request` (media type, caller, token, the body's shape, `read_sync_request`,
//! `validate`, credential headers, the envelope's size), then the same body's requests read
//! and validated one by one through `datasync_core::message` as process re-checks them.
//!
//! Input: the body. The call's headers are those of a gateway call that passes (the checks of
//! headers have their own seeds in `fn_http_stream`).
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use datasync_core::message::{
    read_sync_request, refuse_credential_headers, validate, AllowList, Policy,
};
use fdk::{Context, HttpRequest};
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| Policy {
        allow_list: AllowList::parse("api.example.com, *.example.org, 127.0.0.1:8080")
            .unwrap_or_default(),
        allow_http: true,
    })
}

fn context() -> Context {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(populate::CALLER_HEADER, HeaderValue::from_static("source"));
    headers.insert("authorization", HeaderValue::from_static("Bearer token"));
    let mut ctx = Context::for_test("fuzz");
    ctx.http = Some(HttpRequest::new(Method::POST, "/stream/sync", headers));
    ctx
}

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let body = Bytes::copy_from_slice(data);
    let _ = populate::check_request(&context(), &body, policy(), now);

    let Ok(raw) = serde_json::from_slice::<&RawValue>(data) else {
        return;
    };
    let requests: Vec<&RawValue> = serde_json::from_str(raw.get()).unwrap_or_else(|_| vec![raw]);
    for (i, one) in requests.iter().enumerate() {
        if let Ok(request) = read_sync_request(one, &format!("[{i}].")) {
            let mut message = request.stream_message;
            if validate(&mut message, policy()).is_ok() {
                let _ = refuse_credential_headers(&message);
                // What passed is written to the stream as JSON and must read back.
                let text = serde_json::to_string(&message).unwrap_or_default();
                assert!(
                    serde_json::from_str::<datasync_core::message::StreamMessage>(&text).is_ok(),
                    "an accepted message does not read back: {text}"
                );
            }
        }
    }
});
