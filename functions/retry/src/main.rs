//! The retry function's binary: read the configuration, build, serve.

use std::convert::Infallible;
use std::sync::Arc;

use fdk::{service_fn, FnEvent};

#[tokio::main]
async fn main() {
    // OCI Logging reads stdout: one JSON object per line.
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stdout)
        .init();
    let config = fdk::Config::from_env();
    let retry = Arc::new(retry::Retry::from_config(&config));
    fdk::run(service_fn(move |event: FnEvent| {
        let retry = Arc::clone(&retry);
        async move {
            let (ctx, body) = event.into_parts();
            Ok::<_, Infallible>(retry.handle(&ctx, &body).await)
        }
    }))
    .await;
}
