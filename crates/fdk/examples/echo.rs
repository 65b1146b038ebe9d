//! The echo function: the FDK's test subject and benchmark function.
//!
//! Run it as the agent would: `FN_LISTENER=unix:/tmp/iofs/lsnr.sock cargo run -p
//! datasync-fdk --example echo`.
//!
//! By default it answers 200 with the request body, and echoes back every request header
//! whose name starts with `x-` plus `Content-Type`. For `Fn-Intent: httprequest` calls these
//! are the *client's* headers (`Fn-Http-H-X-Foo` in → `X-Foo` seen → `Fn-Http-H-X-Foo` out);
//! for plain invokes they are the raw request headers.
//!
//! The mode comes from the header `X-Echo-Mode` (a client header for `httprequest` calls,
//! i.e. `Fn-Http-H-X-Echo-Mode` on the wire) or else the query parameter `mode`:
//!
//! | mode           | answer                                                         |
//! |----------------|----------------------------------------------------------------|
//! | (none)         | the body and headers, as above                                 |
//! | `fail`         | the handler returns `Err("echo told to fail")` → outer 502     |
//! | `panic`        | the handler panics with `echo told to panic` → outer 502       |
//! | `sleep=MS`     | sleeps MS milliseconds, then echoes (504 if past the deadline) |
//! | `status=CODE`  | echoes with status CODE                                        |
//! | `context`      | a JSON description of the [`fdk::Context`]                     |
//! | `config=KEY`   | the configuration value KEY as the body (404 if unset)         |

use std::time::{Duration, UNIX_EPOCH};

use fdk::{service_fn, Context, FnEvent, Response};
use http::{HeaderMap, StatusCode};

#[derive(Debug)]
struct EchoError(&'static str);

impl std::fmt::Display for EchoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

fn view(ctx: &Context) -> &HeaderMap {
    ctx.http.as_ref().map_or(&ctx.headers, |h| &h.headers)
}

fn mode(ctx: &Context) -> Option<String> {
    if let Some(m) = view(ctx).get("x-echo-mode").and_then(|v| v.to_str().ok()) {
        return Some(m.to_owned());
    }
    ctx.http.as_ref().and_then(|h| h.query_param("mode"))
}

fn describe(ctx: &Context) -> serde_json::Value {
    let headers = |h: &HeaderMap| {
        let mut map = serde_json::Map::new();
        for name in h.keys() {
            let values: Vec<_> = h
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            map.insert(name.to_string(), values.into());
        }
        serde_json::Value::Object(map)
    };
    let deadline = ctx
        .deadline
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    serde_json::json!({
        "call_id": ctx.call_id,
        "deadline_unix": deadline,
        "intent": format!("{:?}", ctx.intent),
        "invoke_type": ctx.invoke_type,
        "app_id": ctx.app_id,
        "app_name": ctx.app_name,
        "fn_id": ctx.fn_id,
        "fn_name": ctx.fn_name,
        "memory_mb": ctx.memory_mb,
        "http": ctx.http.as_ref().map(|h| serde_json::json!({
            "method": h.method.as_str(),
            "request_url": h.request_url,
            "path": h.path(),
            "query": h.query(),
            "query_params": h.query_params(),
            "headers": headers(&h.headers),
        })),
    })
}

async fn echo(event: FnEvent) -> Result<Response, EchoError> {
    let (ctx, body) = event.into_parts();
    let mut status = StatusCode::OK;
    match mode(&ctx).as_deref() {
        Some("fail") => return Err(EchoError("echo told to fail")),
        Some("panic") => panic!("echo told to panic"),
        Some("context") => return Ok(Response::new(describe(&ctx).to_string())),
        Some(m) if m.starts_with("sleep=") => {
            let ms = m["sleep=".len()..].parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Some(m) if m.starts_with("status=") => {
            status = m["status=".len()..]
                .parse()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::OK);
        }
        Some(m) if m.starts_with("config=") => {
            return Ok(match ctx.config(&m["config=".len()..]) {
                Some(v) => Response::new(v.to_owned()),
                None => Response::error(StatusCode::NOT_FOUND, "NotFound", "no such key"),
            });
        }
        _ => {}
    }
    let mut response = Response::new(body).with_status(status);
    for (name, value) in view(&ctx) {
        if name.as_str().starts_with("x-") || name == http::header::CONTENT_TYPE {
            response.headers.append(name.clone(), value.clone());
        }
    }
    Ok(response)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    fdk::run(service_fn(echo)).await;
}
