//! The populate function binary: JSON logs on stdout (OCI Logging reads them), the
//! configuration read once from the environment, then the Fn FDK loop.
//!
//! A configuration error does not stop the function: it is logged once here and answered on
//! every call as 500 `FunctionMisconfigured`, naming the key, so the caller and the logs both
//! say what to fix.

use std::convert::Infallible;

use populate::Handler;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    fdk::logging::init_json("DATASYNC_LOG");
    let config = fdk::Config::from_env();
    let handler = Handler::from_config(&config);
    fdk::Runtime::new(fdk::service_fn(move |event: fdk::FnEvent| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler.handle(event).await) }
    }))
    .with_config(config)
    .run()
    .await;
}
