//! Stage 3: the demo target, when asked for.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::demo_target::{DemoTarget, Mode};
use crate::stack::error::{io, StackError};

/// The running demo target.
pub(crate) struct DemoTargetPart {
    /// Its state (counters, records).
    pub target: Arc<DemoTarget>,
    /// Its base URL (`http://ADDR`).
    pub url: String,
    /// Its serving task.
    pub task: JoinHandle<()>,
}

/// Serves a demo target answering 200 on `addr`; `record` keeps every request.
pub(crate) async fn start(
    addr: SocketAddr,
    record: bool,
    stop: &CancellationToken,
) -> Result<DemoTargetPart, StackError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(io(format!(
            "binding the demo target to {addr} (is another datasync up running? \
             use --demo-target-listen, or --no-demo-target)"
        )))?;
    let local = listener.local_addr().map_err(io("demo target address"))?;
    let target = DemoTarget::new(Mode::default(), record);
    let served = Arc::clone(&target);
    let stop = stop.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = crate::demo_target::serve(served, listener, stop).await {
            tracing::error!(error = %e, "the demo target stopped");
        }
    });
    Ok(DemoTargetPart {
        target,
        url: format!("http://{local}"),
        task,
    })
}
