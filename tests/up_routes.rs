//! `datasync up` end to end, routes (docs/routes.md): the issue's example reaches the target
//! transformed, with the route's headers, its Vault token and the message id as
//! `Idempotency-Key`; a message the filter leaves out is answered filtered and never delivered;
//! an unknown route is a 400; a transform failing at run time is dead-lettered as `transform`
//! and delivered once the route is fixed (restart with a fixed configuration) and the dead
//! letter replayed; a route that does not compile stops `datasync up` with its name; routes and
//! the sample's format in one batch; per-key order by a route's `key` program.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::time::Duration;

use base64::Engine as _;
use datasync_core::oci::auth::ConfigProfile;
use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::signer::Signer;
use datasync_local::client::SignedClient;
use serde_json::{json, Value};
use up_support::*;

/// The route's token, stored in Vault by the operator.
const TOKEN: &str = "Bearer route-token";

/// FAST, with no scheduled retry of the error streams (the tests replay by hand) and `routes`.
fn config(routes: &str) -> String {
    format!(
        "{}\n{routes}",
        FAST.replace("enabled = true", "enabled = false")
    )
}

/// The issue's example route to the demo target at `target` (`http://host:port`), with a
/// header and a Vault secret; `transform` as given.
fn orders(target: &str, transform: &str) -> String {
    format!(
        r#"
[[routes]]
name = "orders"
target = "{target}/orders"
operation = "POST"
headers = {{ x-source = "shop" }}
vault_secret = "orders-token"
filter = '.total > 0'
transform = '{transform}'
key = '.orderId | tostring'
"#
    )
}

const EXAMPLE_TRANSFORM: &str = "{id: .orderId, amount: .total}";
/// Fails at run time for totals over 100 (jq's `error`): a typo an operator then fixes.
const FRAGILE_TRANSFORM: &str =
    "if .total > 100 then error(\"amount too large\") else {id: .orderId, amount: .total} end";

fn signed(up: &Up) -> SignedClient {
    let profile = ConfigProfile::load(&up.dir.join("data").join("config"), "LOCAL", None).unwrap();
    let pem = std::fs::read_to_string(&profile.key_file).unwrap();
    let key = PrivateKey::from_pem(&pem, None).unwrap();
    SignedClient::new(&up.info.emulator, Signer::new(profile.key_id(), key)).unwrap()
}

/// Stores the route's token as an operator would.
async fn store_route_secret(up: &Up) {
    let created = signed(up)
        .json(
            http::Method::POST,
            "/20180608/secrets",
            &json!({
                "compartmentId": up.info.compartment,
                "vaultId": "ocid1.vault.oc1.local.datasync",
                "keyId": "ocid1.key.oc1.local.datasync",
                "secretName": "orders-token",
                "secretContent": {
                    "contentType": "BASE64",
                    "content": base64::engine::general_purpose::STANDARD.encode(TOKEN),
                },
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
}

/// POSTs `body` to /stream/sync with the source key and no Authorization header.
async fn sync(up: &Up, body: &Value) -> (u16, Value) {
    let r = up
        .client
        .post(format!("{}/stream/sync", up.gateway()))
        .header("x-api-key", up.source_key())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The demo target's record of the delivery with `id`, once it has one.
async fn delivery(up: &Up, target: &str, id: &str) -> Option<Value> {
    eventually(Duration::from_secs(20), || async {
        let doc = get_json(&up.client, &format!("{target}/_received")).await;
        doc["messages"]
            .as_array()?
            .iter()
            .find(|m| m["headers"]["idempotency-key"] == id && m["status"] == 200)
            .cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_route_transforms_filters_and_refuses_unknown_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let target = format!("http://{addr}");
    let mut up = Up::start_with(
        tmp.path(),
        &config(&orders(&target, EXAMPLE_TRANSFORM)),
        &addr,
        &[],
    )
    .await;
    store_route_secret(&up).await;
    stored_routes_are_what_the_cli_reads(&up).await;
    let (s, v) = sync(
        &up,
        &json!({"route": "orders", "data": {"orderId": 7, "total": 12.5, "junk": 1}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let got = delivery(&up, &target, &id)
        .await
        .expect("the routed message reaches the target");
    assert_eq!(got["method"], "POST");
    assert_eq!(got["path"], "/orders");
    let body: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({"id": 7, "amount": 12.5}));
    assert_eq!(got["headers"]["x-source"], "shop");
    assert_eq!(got["headers"]["authorization"], TOKEN);
    // Left out by the filter: answered, not stored, never delivered.
    let (s, v) = sync(
        &up,
        &json!({"route": "orders", "data": {"orderId": 8, "total": 0}}),
    )
    .await;
    assert_eq!(
        (s, &v),
        (200, &json!({"filtered": true, "route": "orders"}))
    );
    let (s, v) = sync(&up, &json!({"route": "nope", "data": {}})).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("nope"), "{v}");
    // Routes and the sample's format in one batch.
    let (s, v) = sync(
        &up,
        &json!([
            {"route": "orders", "data": {"orderId": 9, "total": 3}},
            {"streamMessage": {"targetRestApi": format!("{target}/sample"),
             "targetRestApiOperation": "PUT", "targetRestApiPayload": {"sample": true}}},
        ]),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let routed = delivery(&up, &target, v[0]["id"].as_str().unwrap())
        .await
        .expect("the batch's routed message is delivered");
    assert_eq!(routed["body"], r#"{"id":9,"amount":3}"#);
    let sample = delivery(&up, &target, v[1]["id"].as_str().unwrap())
        .await
        .expect("the batch's sample message is delivered");
    assert_eq!(
        (&sample["method"], &sample["path"]),
        (&json!("PUT"), &json!("/sample"))
    );
    // The filtered message never arrived; the status page counts the route's messages.
    let received = received(&up.client, &target).await;
    assert_eq!(received.total, 3, "{received:?}");
    // Accepted and filtered come from populate's answers, delivered and failed from process's
    // (which reaches the stack just after the target saw the message).
    let mut counts = None;
    for _ in 0..100 {
        let status = up.status().await;
        let c = status.routes.iter().find(|r| r.route == "orders").cloned();
        let done = c.as_ref().is_some_and(|c| c.delivered == 2);
        counts = c;
        if done {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let counts = counts.expect("the route is counted");
    assert_eq!(
        (
            counts.accepted,
            counts.filtered,
            counts.delivered,
            counts.failed
        ),
        (2, 1, 2, 0)
    );
    up.stop();
}

/// `datasync routes list` and `test` without --config read the routes the stack stored.
async fn stored_routes_are_what_the_cli_reads(up: &Up) {
    let out = up.cli_ok(&["routes", "list", "--json"]).await;
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["routes"][0]["name"], "orders");
    let input = up.dir.join("order.json");
    std::fs::write(&input, r#"{"orderId":7,"total":12.5,"junk":1}"#).unwrap();
    let input = input.to_str().unwrap();
    let text = up.cli_ok(&["routes", "test", "orders", input]).await;
    assert!(
        text.contains("payload: {\"id\":7,\"amount\":12.5}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_failing_at_run_time_is_dead_lettered_then_replayed_once_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let target = format!("http://{addr}");
    let mut up = Up::start_with(
        tmp.path(),
        &config(&orders(&target, FRAGILE_TRANSFORM)),
        &addr,
        &[],
    )
    .await;
    store_route_secret(&up).await;
    let (s, v) = sync(
        &up,
        &json!({"route": "orders", "data": {"orderId": 11, "total": 500}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    // The dead-letter alert names the message and the class.
    let class = eventually(Duration::from_secs(20), || async {
        let status = up.status().await;
        status
            .notifications
            .recent
            .iter()
            .flat_map(|n| n.dead_letters.iter())
            .find(|d| d.id == id)
            .and_then(|d| d.last_error.as_ref().map(|e| e.class.as_str()))
    })
    .await;
    assert_eq!(class, Some("transform"));
    assert_eq!(received(&up.client, &target).await.total, 0);
    up.stop();
    // The operator fixes the route and restarts; the dead letter is replayed with it.
    let mut up = Up::start_with(
        tmp.path(),
        &config(&orders(&target, EXAMPLE_TRANSFORM)),
        &addr,
        &[],
    )
    .await;
    up.cli_ok(&["retry", "--stream", "dead-letter"]).await;
    let got = delivery(&up, &target, &id)
        .await
        .expect("the replayed dead letter is delivered with the fixed route");
    assert_eq!(got["body"], r#"{"id":11,"amount":500}"#);
    assert_eq!(got["headers"]["authorization"], TOKEN);
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_does_not_compile_stops_up_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = up_refusing(
        tmp.path(),
        r#"
[[routes]]
name = "good"
target = "http://127.0.0.1:9/x"

[[routes]]
name = "broken-one"
target = "http://127.0.0.1:9/y"
transform = '{id: .orderId'
"#,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        stderr.contains("\"broken-one\"") && stderr.contains("transform does not compile"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_key_program_keeps_each_order_in_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let target = format!("http://{addr}");
    let routes = format!(
        r#"
[[routes]]
name = "steps"
target = "{target}/steps"
key = '.order | tostring'
transform = '{{order: .order, n: .n}}'
"#
    );
    // The retry schedule on, every second: the failed first step is retried by it.
    let mut up = Up::start_with(tmp.path(), &format!("{FAST}\n{routes}"), &addr, &[]).await;
    assert_eq!(
        post_json(
            &up.client,
            &format!("{target}/_control"),
            &json!({"status": 503, "count": 1})
        )
        .await,
        200
    );
    for n in 1..=4 {
        let (s, v) = sync(
            &up,
            &json!({"route": "steps", "data": {"order": 42, "n": n, "extra": "x"}}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        // Each in a later connector batch than the one before.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let steps = eventually(Duration::from_secs(40), || async {
        let mut steps = Vec::new();
        for m in received(&up.client, &target).await.messages.unwrap() {
            let body: Value = serde_json::from_str(&m.body).unwrap_or(Value::Null);
            if m.status == 200 && !steps.contains(&body["n"]) {
                steps.push(body["n"].clone());
            }
        }
        (steps.len() == 4).then_some(steps)
    })
    .await;
    assert_eq!(steps, Some(vec![json!(1), json!(2), json!(3), json!(4)]));
    up.stop();
}

/// Writes `json` (the routes' JSON form) to the routes object as an operator would.
async fn put_routes(up: &Up, json: Vec<u8>) {
    let put = signed(up)
        .send(
            http::Method::PUT,
            &format!(
                "/n/{}/b/{}/o/{}",
                datasync_local::emulator::NAMESPACE,
                datasync_local::stack::routes_bucket("datasync"),
                datasync_local::stack::ROUTES_OBJECT
            ),
            json,
            datasync_core::oci::signer::BodySigning::Exclude,
            http::HeaderMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
}

/// An operator changes the routes object in place: new messages take the new route once the
/// functions see its new ETag (`routes_check_ms`, 1 s here), without a restart; a version that
/// does not compile is reported and the last good routes stay in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_routes_object_is_taken_up_and_a_broken_one_keeps_the_last_good() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let target = format!("http://{addr}");
    let config = format!(
        "{}\n[functions.config]\nroutes_check_ms = \"1000\"\n",
        config(&orders(&target, EXAMPLE_TRANSFORM))
    );
    let log = tmp.path().join("up.log");
    let mut up = Up::start_logged(tmp.path(), &config, &addr, &[], &log, "warn").await;
    store_route_secret(&up).await;
    let send = |n: u64| {
        let up = &up;
        async move {
            let (s, v) = sync(
                up,
                &json!({"route": "orders", "data": {"orderId": n, "total": 5}}),
            )
            .await;
            assert_eq!(s, 200, "{v}");
            v["id"].as_str().unwrap().to_owned()
        }
    };
    let first = send(1).await;
    let got = delivery(&up, &target, &first).await.unwrap();
    assert_eq!(got["body"], r#"{"id":1,"amount":5}"#);

    // A new transform, put in place: a message sent after the next check is delivered with it.
    let changed = datasync_core::routes::RouteSet::from_toml(&orders(&target, "{order: .orderId}"))
        .unwrap()
        .to_json();
    put_routes(&up, changed.into_bytes()).await;
    let mut n = 2;
    let taken_up = eventually(Duration::from_secs(20), || {
        n += 1;
        let send = &send;
        let (up, target) = (&up, &target);
        async move {
            let id = send(n).await;
            let got = delivery(up, target, &id).await?;
            (got["body"] == format!(r#"{{"order":{n}}}"#)).then_some(n)
        }
    })
    .await;
    assert!(taken_up.is_some(), "the changed route was never used");

    // A broken version: reported in the log, and the last good routes stay in use.
    let broken = json!({"routes": [{
        "name": "orders",
        "target": format!("{target}/orders"),
        "operation": "POST",
        "transform": "{ unclosed",
    }]});
    put_routes(&up, broken.to_string().into_bytes()).await;
    // The functions check the object when messages come: keep sending until it is reported;
    // every message meanwhile is delivered with the last good route.
    let reported = eventually(Duration::from_secs(20), || {
        n += 1;
        let send = &send;
        let (up, target, log) = (&up, &target, &log);
        async move {
            let id = send(n).await;
            let got = delivery(up, target, &id)
                .await
                .expect("delivered with the last good routes");
            assert_eq!(got["body"], format!(r#"{{"order":{n}}}"#));
            let text = std::fs::read_to_string(log).ok()?;
            text.contains("routes object broken").then_some(())
        }
    })
    .await;
    assert!(
        reported.is_some(),
        "the broken routes object was not reported"
    );
    let after = send(1000).await;
    let got = delivery(&up, &target, &after).await.unwrap();
    assert_eq!(got["body"], r#"{"order":1000}"#);
    up.stop();
}
