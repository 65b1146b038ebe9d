//! The process function's binary: read the configuration, build, serve.

use std::convert::Infallible;
use std::sync::Arc;

use fdk::{service_fn, FnEvent};

// One thread: the agent sends one call at a time, and a batch is I/O-bound (1,000 target calls
// cost 60-80 ms of CPU here). On a multi-threaded runtime the same batch cost about 35% more
// CPU (wake-ups and work stealing across threads), and each worker thread's malloc arena kept
// its own high-water mark: back-to-back 6 MB batches held 40 MB, against 26 MB on one thread
// (examples/process_bench.rs).
#[tokio::main(flavor = "current_thread")]
async fn main() {
    // OCI Logging reads stdout: one JSON object per line.
    fdk::logging::init_json("DATASYNC_LOG");
    let config = fdk::Config::from_env();
    let process = Arc::new(process::Process::from_config(&config));
    fdk::run(service_fn(move |event: FnEvent| {
        let process = Arc::clone(&process);
        async move {
            let (ctx, body) = event.into_parts();
            // The batch is handed over: its messages stay slices of it until they are sent.
            Ok::<_, Infallible>(process.handle_owned(&ctx, body).await)
        }
    }))
    .await;
}
