//! `serve` / `Runtime` in process: injected configuration, JSON payloads, layers, shutdown.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use fdk::agent::{gateway_request, invoke_request, Invoker};
use fdk::{service_fn, Config, FnEvent, Json, Response, Runtime};
use tokio::sync::oneshot;

use crate::utils::{assert_fdk_headers, in_30s, json, TIMEOUT};

#[derive(serde::Deserialize)]
struct Order {
    id: u64,
}

async fn order(event: FnEvent<Json<Order>>) -> Result<Response, fdk::Error> {
    let (ctx, Json(order)) = event.into_parts();
    Response::json(&serde_json::json!({
        "id": order.id,
        "region": ctx.config("REGION"),
        "call": ctx.call_id,
    }))
}

async fn wait_for(path: &Path) {
    for _ in 0..2000 {
        if std::fs::symlink_metadata(path).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test]
async fn serve_with_injected_config_json_payloads_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("lsnr.sock");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        Runtime::new(service_fn(order))
            .with_config(Config::default().with("REGION", "eu-frankfurt-1"))
            .with_shutdown(async move {
                let _ = stopped.await;
            })
            .serve(socket.clone()),
    );
    wait_for(&socket).await;
    let mut inv = Invoker::connect(&socket).await.unwrap();

    let req = invoke_request("c1", in_30s(), None, Bytes::from_static(br#"{"id":7}"#)).unwrap();
    let r = inv.call(req, TIMEOUT).await.unwrap();
    assert_fdk_headers(&r);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        json(r.body()),
        serde_json::json!({"id": 7, "region": "eu-frankfurt-1", "call": "c1"})
    );

    // Undecodable payload: a failed call for plain invokes...
    let req = invoke_request("c2", in_30s(), None, Bytes::from_static(b"{\"id\":")).unwrap();
    let r = inv.call(req, TIMEOUT).await.unwrap();
    assert_eq!(r.status(), 502);
    let v = json(r.body());
    assert_eq!(v["code"], "InvalidParameter");
    assert!(v["message"].as_str().unwrap().contains("EOF"), "{v}");
    // ...and a 400 for the gateway's client.
    let client = http::Request::post("/orders")
        .body(Bytes::from_static(b"nope"))
        .unwrap();
    let r = inv
        .call(gateway_request(client, "c3", in_30s()).unwrap(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["fn-http-status"], "400");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[tokio::test]
async fn layers_wrap_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fn.sock");
    let (stop, stopped) = oneshot::channel::<()>();
    let echo = service_fn(|e: FnEvent| async move { Ok::<_, std::io::Error>(e.payload) });
    let server = tokio::spawn(
        Runtime::new(echo)
            .layer(tower::util::MapResponseLayer::new(|body: Bytes| {
                Response::new(body).with_header(
                    http::HeaderName::from_static("x-layered"),
                    http::HeaderValue::from_static("yes"),
                )
            }))
            .with_shutdown(async move {
                let _ = stopped.await;
            })
            .serve(socket.clone()),
    );
    wait_for(&socket).await;
    let mut inv = Invoker::connect(&socket).await.unwrap();
    let req = invoke_request("c", in_30s(), None, Bytes::from_static(b"hi")).unwrap();
    let r = inv.call(req, TIMEOUT).await.unwrap();
    assert_eq!(r.body(), "hi");
    assert_eq!(r.headers()["x-layered"], "yes");
    assert!(dir.path().join("phonyfn.sock").exists());
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn try_run_reads_the_listener_from_the_injected_config() {
    let echo = service_fn(|e: FnEvent| async move { Ok::<_, std::io::Error>(e.payload) });
    let err = Runtime::new(echo)
        .with_config(Config::default())
        .try_run()
        .await
        .unwrap_err();
    assert!(matches!(err, fdk::Error::MissingListener), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("lsnr.sock");
    let config = Config::default().with("FN_LISTENER", fdk::protocol::listener_value(&socket));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        Runtime::new(echo)
            .with_config(config)
            .with_shutdown(async move {
                let _ = stopped.await;
            })
            .try_run(),
    );
    wait_for(&socket).await;
    fdk::protocol::check_socket_destination(&socket).unwrap();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    let err = fdk::serve("relative.sock", echo).await.unwrap_err();
    assert!(matches!(err, fdk::Error::InvalidListener { .. }), "{err}");
}

/// A service that panics in `call` itself (before any future exists), as lambda tests too.
#[derive(Clone)]
struct PanicsInCall;

impl tower::Service<FnEvent> for PanicsInCall {
    type Response = Bytes;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Bytes, std::io::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, event: FnEvent) -> Self::Future {
        if event.payload.as_ref() == b"boom" {
            panic!("synchronous panic in call");
        }
        std::future::ready(Ok(event.payload))
    }
}

#[tokio::test]
async fn a_panic_in_service_call_gives_502_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("lsnr.sock");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        Runtime::new(PanicsInCall)
            .with_shutdown(async move {
                let _ = stopped.await;
            })
            .serve(socket.clone()),
    );
    wait_for(&socket).await;
    let mut inv = Invoker::connect(&socket).await.unwrap();
    let req = invoke_request("p", in_30s(), None, Bytes::from_static(b"boom")).unwrap();
    let r = inv.call(req, TIMEOUT).await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(json(r.body())["message"]
        .as_str()
        .unwrap()
        .contains("synchronous panic in call"));
    let req = invoke_request("ok", in_30s(), None, Bytes::from_static(b"fine")).unwrap();
    let r = inv.call(req, TIMEOUT).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), "fine");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
