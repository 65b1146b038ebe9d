//! Routed messages (issue 21) through process: the route in the routes object (read from
//! the emulator's Object Storage) makes the call at delivery.

use std::sync::Arc;
use std::time::SystemTime;

use datasync_core::classify::ErrorClass;
use datasync_core::message::{Envelope, Payload};
use datasync_core::oci::auth::ConfigFileAuth;
use datasync_core::oci::client::OciClient;
use datasync_core::oci::endpoints::{Endpoints, Service};
use datasync_core::oci::models;
use datasync_core::oci::objectstorage::ObjectStorageClient;
use datasync_core::oci::vault::VaultClient;
use http::Method;
use process::Process;
use serde_json::{json, Value};

use super::common::*;
use super::{invoke, over_socket};

const ROUTE_TOKEN: &str = "Bearer route-tok-5e21";

/// Puts the routes object in the emulator and the route's operator secret in Vault.
async fn install_routes(stack: &Stack, routes: &Value) {
    let auth = ConfigFileAuth::from_config(
        Some(&stack.emulator.profile().config_file),
        Some(&stack.emulator.profile().profile),
        |_| None,
    )
    .unwrap();
    let oci = OciClient::new(Arc::new(auth)).unwrap();
    let mut endpoints = Endpoints::default();
    for service in Service::ALL {
        endpoints = endpoints.with_override(service, &stack.base).unwrap();
    }
    let os = ObjectStorageClient::new(oci.clone(), &endpoints).unwrap();
    let ns = os.get_namespace().await.unwrap();
    let answer = stack
        .admin
        .json(
            Method::POST,
            &format!("/n/{ns}/b/"),
            &models::CreateBucketDetails {
                name: "routes".into(),
                compartment_id: stack.emulator.profile().compartment.clone(),
            },
        )
        .await
        .unwrap();
    assert!(answer.status.is_success(), "{:?}", answer.status);
    os.put_object(
        &ns,
        "routes",
        "routes.json",
        routes.to_string().into(),
        Some("application/json"),
    )
    .await
    .unwrap();
    VaultClient::new(oci, &endpoints)
        .unwrap()
        .create_secret(&models::CreateSecretDetails {
            compartment_id: stack.emulator.profile().compartment.clone(),
            vault_id: stack.vault.clone(),
            key_id: "ocid1.key.oc1.local.k".into(),
            secret_name: "orders-route-token".into(),
            description: None,
            secret_content: models::SecretContent::base64(ROUTE_TOKEN.as_bytes()),
            metadata: None,
        })
        .await
        .unwrap();
}

fn routed(route: &str, data: Value) -> Envelope {
    Envelope::routed(
        route.into(),
        Payload::from_value(&data).unwrap(),
        CALLER.into(),
        SystemTime::now(),
        datasync_core::message::new_traceparent(),
    )
}

#[tokio::test]
async fn routed_messages_are_transformed_at_delivery_and_failures_are_class_transform() {
    let stack = Stack::start().await;
    let routes = json!({"routes": [
        {
            "name": "orders",
            "target": stack.target.url("/orders"),
            "operation": "POST",
            "filter": ".total > 0",
            "transform": "{id: .orderId, amount: .total}",
            "key": ".orderId | tostring",
            "path": "\"/\\(.orderId)\"",
            "headers": {"X-Source": "shop"},
            "vault_secret": "orders-route-token"
        },
        {"name": "broken", "target": stack.target.url("/b"), "transform": ".order.id"}
    ]});
    install_routes(&stack, &routes).await;
    let config = stack
        .config
        .clone()
        .with("routes_object", "routes/routes.json");
    let mut invoker = over_socket(&stack, Process::from_config(&config)).await;

    let first = routed("orders", json!({"orderId": 7, "total": 12.5, "junk": 1}));
    let second = routed("orders", json!({"orderId": 7, "total": 3, "junk": 2}));
    let failing = routed("broken", json!({"order": 5}));
    let gone = routed("no-such-route", json!({}));
    let batch = connector_batch(
        0,
        &[
            (Some("7"), first.encode().unwrap()),
            (Some("7"), second.encode().unwrap()),
            (None, failing.encode().unwrap()),
            (None, gone.encode().unwrap()),
        ],
    );
    let (status, answer) = invoke(&mut invoker, batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["delivered"], 2, "{answer}");
    assert_eq!(answer["deadLettered"], 2, "{answer}");

    let requests = stack.target.requests();
    assert_eq!(requests.len(), 2);
    let bodies: Vec<Value> = requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    // Same key: in offset order, each transformed, to the path the route made.
    assert_eq!(
        bodies,
        [
            json!({"id": 7, "amount": 12.5}),
            json!({"id": 7, "amount": 3})
        ]
    );
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/orders/7");
    assert_eq!(r.header("x-source"), Some("shop"));
    assert_eq!(r.header("authorization"), Some(ROUTE_TOKEN));
    assert_eq!(r.header("idempotency-key"), first.id.as_deref());
    assert_eq!(requests[1].header("idempotency-key"), second.id.as_deref());

    let dead = stack.envelopes_in(&stack.ids.dead_letter).await;
    assert_eq!(dead.len(), 2);
    for (_, e) in &dead {
        let last = e.last_error.as_ref().unwrap();
        assert_eq!(last.class, ErrorClass::Transform);
        // The stream keeps route and data as sent, so a replay uses the route as it is then.
        assert!(e.route.is_some() && e.data.is_some());
        assert!(e.message.target_rest_api.is_empty());
    }
    let details: Vec<&str> = dead
        .iter()
        .map(|(_, e)| e.last_error.as_ref().unwrap().detail.as_deref().unwrap())
        .collect();
    assert!(
        details[0].starts_with("route \"broken\": transform failed: cannot index"),
        "{details:?}"
    );
    assert!(
        details[1].contains("\"no-such-route\" does not exist"),
        "{details:?}"
    );
    stack.assert_no_token_leaked().await;
}
