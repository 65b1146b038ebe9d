//! The Fn http-stream protocol on the wire: any bytes sent on a connection to an FDK server
//! (`fdk::Runtime::serve` on a Unix socket, in this process), as the Fn agent would send them.
//! This reads them as the function does: the HTTP/1.1 request (hyper), `POST /call`, the body
//! with its size limit, the call's `Fn-*` headers (`Context::from_call`), the JSON payload, the
//! handler's answer mapped onto the outer response. The server must answer or close every
//! connection, never hang or die.
//!
//! Input: the raw bytes of one connection (seeds: calls as the agent makes them).
#![no_main]

use std::convert::Infallible;
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use fdk::{FnEvent, Json, Response, Runtime};
use libfuzzer_sys::fuzz_target;

/// The handler: reads what a function reads of its call and answers with some of it.
async fn handler(event: FnEvent<Json<serde_json::Value>>) -> Result<Response, Infallible> {
    let (ctx, Json(payload)) = event.into_parts();
    let path = ctx
        .http
        .as_ref()
        .map(|h| h.path().to_owned())
        .unwrap_or_default();
    let params = ctx
        .http
        .as_ref()
        .map(|h| h.query_params())
        .unwrap_or_default();
    Ok(Response::json(&serde_json::json!({
        "callId": ctx.call_id,
        "path": path,
        "params": params.len(),
        "payload": payload,
    }))
    .unwrap_or_else(|_| Response::new("{}")))
}

/// The server's socket, started once on a thread of its own.
fn socket() -> &'static PathBuf {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    SOCKET.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dsfz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let socket = dir.join("lsnr.sock");
        let path = socket.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                let served = runtime.block_on(
                    Runtime::new(fdk::service_fn(handler))
                        .with_shutdown(std::future::pending())
                        .serve(&path),
                );
                if let Err(e) = served {
                    eprintln!("the FDK server stopped: {e}");
                }
            }
            std::process::abort();
        });
        for _ in 0..500 {
            if UnixStream::connect(&socket).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        socket
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut stream) = UnixStream::connect(socket()) else {
        panic!("the FDK server refuses connections");
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    // The server may answer (and close) before reading everything: a failed write is fine.
    let _ = stream.write_all(data);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    if let Err(e) = stream.read_to_end(&mut answer) {
        assert!(
            e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut,
            "the FDK server neither answered nor closed within 5 s"
        );
    }
});
