//! Logs as OCI Functions wants them: one JSON object per line on stdout, which OCI Logging
//! collects as the function's log.

/// Installs a `tracing` subscriber writing JSON lines to stdout, filtered by the `EnvFilter`
/// directives in the variable `filter_var` (e.g. `DATASYNC_LOG=info,datasync_core=debug`),
/// `info` when it is unset or invalid. Does nothing if a subscriber is already installed (a
/// host running several functions in one process keeps its own).
///
/// ```no_run
/// fdk::logging::init_json("DATASYNC_LOG");
/// tracing::info!(answer = 42, "ready");
/// ```
pub fn init_json(filter_var: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(filter_var)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_writer(std::io::stdout)
        .with_env_filter(filter)
        .try_init();
}
