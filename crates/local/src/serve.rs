//! Serving an axum router on a TCP listener, as the demo target does (the gateway uses
//! [`crate::front`], which bounds what a client may hold).

use std::net::SocketAddr;

use axum::serve::ListenerExt as _;
use tokio_util::sync::CancellationToken;

/// Serves `app` on `listener` until `shutdown` is cancelled; requests in flight finish. The
/// handlers see the client's address (`ConnectInfo<SocketAddr>`).
///
/// # Errors
/// When the listener fails.
pub async fn serve_tcp(
    app: axum::Router,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // No Nagle: an answer written in two parts would otherwise wait for the client's delayed
    // ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}
