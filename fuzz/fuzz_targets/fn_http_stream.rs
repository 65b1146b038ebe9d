//! The Fn http-stream call as the FDK reads it: the agent's headers through
//! `fdk::Context::from_call` (call id, `Fn-Deadline`, intent, the client's method, URL and
//! `Fn-Http-H-*` headers), the client request's path and query as handlers read them, and the
//! body as a JSON payload.
//!
//! Input: `datasync_fuzz::read_input` (a first line, ignored; header lines; the body).
#![no_main]

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use fdk::{Config, Context, Json, Payload as _};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = datasync_fuzz::read_input(data) else {
        return;
    };
    let config = Arc::new(Config::from_lookup(["FN_MEMORY"], |_| {
        Some("256".to_owned())
    }));
    let ctx = Context::from_call(input.headers, config, SystemTime::now());
    let _ = ctx.remaining();
    if let Some(http) = &ctx.http {
        let _ = (http.path(), http.query());
        for (name, _) in http.query_params() {
            let _ = http.query_param(&name);
        }
    }
    let _ = <Json<serde_json::Value>>::from_body(Bytes::copy_from_slice(input.body));
});
