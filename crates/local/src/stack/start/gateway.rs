//! Stage 6: the API Gateway front with its keys and the status page, last, so a request it
//! accepts finds everything behind it running.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::demo_target::DemoTargetPart;
use super::emulator::EmulatorPart;
use super::functions::FunctionsPart;
use super::pump::PumpPart;
use crate::front::{self, ConnectionLimits};
use crate::stack::error::{io, StackError};
use crate::stack::gateway::{self, Gateway, GatewayOptions, GatewayStats};
use crate::stack::keys::KeyRing;
use crate::stack::metrics::Exporter;
use crate::stack::status::{status_fn, Sources};
use crate::stack::{Resources, StackSettings};

/// What [`start`] needs.
pub(crate) struct GatewayInput<'a> {
    /// The data directory (`gateway-keys.json`).
    pub dir: &'a Path,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The stack's settings.
    pub settings: &'a StackSettings,
    /// The emulator (for the status page).
    pub emulator: &'a EmulatorPart,
    /// The archive bucket (for the status page).
    pub resources: &'a Resources,
    /// The functions the routes call.
    pub functions: &'a FunctionsPart,
    /// The pump (for the status page).
    pub pump: &'a PumpPart,
    /// The demo target (for the status page).
    pub demo_target: Option<&'a DemoTargetPart>,
    /// Where `GET /trace` reads timelines.
    pub trace: Option<Arc<crate::stack::trace_route::TraceSource>>,
    /// The metrics recorder (`GET /metrics`, the charts).
    pub exporter: Option<Exporter>,
}

/// The running gateway.
pub(crate) struct GatewayPart {
    /// Its base URL (`http://ADDR`).
    pub url: String,
    /// The API keys.
    pub keys: KeyRing,
    /// Stops it (requests in flight finish).
    pub stop: CancellationToken,
    /// Its serving task.
    pub task: JoinHandle<()>,
    /// The status page's sampler (ends with `stop`).
    pub sampler: JoinHandle<()>,
}

/// Loads (or makes) the API keys and serves the gateway.
pub(crate) async fn start(input: GatewayInput<'_>) -> Result<GatewayPart, StackError> {
    let s = input.settings;
    let keys = KeyRing::load_or_create(input.dir, &s.keys).map_err(io("the gateway keys"))?;
    let listener = tokio::net::TcpListener::bind(input.listen)
        .await
        .map_err(io(format!(
            "binding the gateway to {} (is another datasync up running? use --listen)",
            input.listen
        )))?;
    let addr = listener.local_addr().map_err(io("gateway address"))?;
    let stats = Arc::new(GatewayStats::default());
    let f = input.functions;
    let stop = CancellationToken::new();
    let (status, sampler) = status_fn(
        Sources {
            emulator: input.emulator.emulator.clone(),
            signed: input.emulator.signed.clone(),
            bucket: input.resources.bucket.clone(),
            connectors: input.pump.connectors.clone(),
            gateway: Arc::clone(&stats),
            pools: vec![f.populate.clone(), f.process.clone(), f.retry.clone()],
            demo_target: input.demo_target.map(|d| Arc::clone(&d.target)),
            retry_runs: Arc::clone(&input.pump.retry_runs),
            started: std::time::Instant::now(),
            name_prefix: s.name_prefix.clone(),
            exporter: input.exporter.clone(),
            config: s.status,
        },
        stop.clone(),
    );
    let gw = Arc::new(Gateway::new(GatewayOptions {
        keys: keys.clone(),
        populate: f.populate.clone(),
        retry: f.retry.clone(),
        rate_per_second: s.rate_limit,
        max_body: s.max_body_bytes,
        body_timeout: s.body_timeout,
        limits: connection_limits(s),
        status,
        host: addr.to_string(),
        stats,
        trace: input.trace,
    }));
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = gateway::serve(gw, listener, stop).await {
                tracing::error!(error = %e, "the gateway stopped");
            }
        })
    };
    Ok(GatewayPart {
        url: format!("http://{addr}"),
        keys,
        stop,
        task,
        sampler,
    })
}

/// The gateway's connection limits: the configured cap fitted under the process's descriptor
/// limit (raised to its hard limit first), so the stack's own files always find a descriptor.
fn connection_limits(s: &StackSettings) -> ConnectionLimits {
    let soft = front::raise_fd_limit();
    let cap = front::fit_cap(s.max_connections, soft);
    if cap < s.max_connections {
        tracing::warn!(
            configured = s.max_connections,
            cap,
            open_file_limit = soft,
            "gateway.max_connections lowered to leave file descriptors for the stack; raise the \
             open-file limit (ulimit -n) to allow more"
        );
    }
    ConnectionLimits {
        header_timeout: s.header_timeout,
        max_connections: cap,
    }
}
