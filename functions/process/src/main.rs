//! The process function's binary: read the configuration, build, serve.

use std::convert::Infallible;
use std::sync::Arc;

use fdk::{service_fn, FnEvent};

#[tokio::main]
async fn main() {
    // OCI Logging reads stdout: one JSON object per line.
    fdk::logging::init_json("DATASYNC_LOG");
    let config = fdk::Config::from_env();
    let process = Arc::new(process::Process::from_config(&config));
    fdk::run(service_fn(move |event: FnEvent| {
        let process = Arc::clone(&process);
        async move {
            let (ctx, body) = event.into_parts();
            Ok::<_, Infallible>(process.handle(&ctx, &body).await)
        }
    }))
    .await;
}
