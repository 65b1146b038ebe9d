//! `datasync up` end to end, callers' tokens (docs/secrets.md): tokens travel sealed with the
//! vault key, one per message, and no secret version is written; a `vaultSecretName` naming no
//! stored secret and no token is refused at ingest; a secret Vault refuses to read at first
//! (404, as while a policy propagates) is delivered once it can be read, not dead-lettered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use datasync_core::message::{rfc3339, scoped_secret_name};
use datasync_core::oci::auth::ConfigProfile;
use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::signer::Signer;
use datasync_local::client::SignedClient;
use serde_json::{json, Value};
use up_support::*;

/// The vault `datasync up` configures (its name prefix is `datasync`).
const VAULT: &str = "ocid1.vault.oc1.local.datasync";
/// The caller the gateway names for the generated source key.
const SOURCE: &str = "source";

fn signed(up: &Up) -> SignedClient {
    let profile = ConfigProfile::load(&up.dir.join("data").join("config"), "LOCAL", None).unwrap();
    let pem = std::fs::read_to_string(&profile.key_file).unwrap();
    let key = PrivateKey::from_pem(&pem, None).unwrap();
    SignedClient::new(&up.info.emulator, Signer::new(profile.key_id(), key)).unwrap()
}

/// Syncs `body` with the source key and, when given, `token`; the status and answer.
async fn sync(up: &Up, body: &Value, token: Option<&str>) -> (u16, Value) {
    let mut req = up
        .client
        .post(format!("{}/stream/sync", up.gateway()))
        .header("x-api-key", up.source_key())
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn named(target: &str, n: usize, secret: &str) -> Value {
    let mut body = sync_request(target, &format!("k{n}"), n);
    body["streamMessage"]["vaultSecretName"] = json!(secret);
    body
}

/// The secrets of the local compartment, as ListSecrets answers, but the callback signing
/// secrets every start stores (`ds-callback-…`, docs/callbacks.md): no caller token among them.
async fn secrets(up: &Up) -> Vec<Value> {
    let answer = signed(up)
        .get(&format!(
            "/20180608/secrets?compartmentId={}",
            up.info.compartment
        ))
        .await
        .unwrap();
    let all: Vec<Value> = answer.json().unwrap();
    all.into_iter()
        .filter(|s| {
            !s["secretName"]
                .as_str()
                .unwrap_or("")
                .starts_with("ds-callback-")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_new_tokens_for_one_name_each_arrive_with_their_message_and_no_version_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let mut up = Up::start_in(tmp.path(), FAST, &[]).await;
    let target = up.target();
    let mut sent: HashMap<String, String> = HashMap::new();
    for n in 0..40 {
        let token = format!("Bearer rotated-{n}-CANARY");
        let (s, v) = sync(&up, &named(&target, n, "erp"), Some(&token)).await;
        assert_eq!(s, 200, "sync {n}: {v}");
        sent.insert(v["id"].as_str().unwrap().to_owned(), token);
    }
    let got = eventually(Duration::from_secs(30), || async {
        let doc = get_json(&up.client, &format!("{target}/_received")).await;
        (doc["messages"].as_array().unwrap().len() >= 40).then_some(doc)
    })
    .await
    .expect("all forty messages reach the target");
    for m in got["messages"].as_array().unwrap() {
        let id = m["headers"]["idempotency-key"].as_str().unwrap();
        assert_eq!(
            m["headers"]["authorization"].as_str(),
            Some(sent[id].as_str()),
            "message {id} carries the token it was sent with"
        );
    }
    // No secret, so no version: the vault never holds more than OCI allows.
    assert!(secrets(&up).await.is_empty(), "{:?}", secrets(&up).await);
    let status = up.status().await;
    assert_eq!(stream_messages(&status, "datasync-dead-letter"), 0);
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_with_no_stored_secret_and_no_token_is_refused_at_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let mut up = Up::start_in(tmp.path(), FAST, &[]).await;
    let target = up.target();
    let (s, v) = sync(&up, &named(&target, 0, "never-stored"), None).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["code"], "InvalidParameter");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with("streamMessage.vaultSecretName:"),
        "{message}"
    );
    assert!(!message.contains("never-stored"), "{message}");
    // In a batch the item is named; nothing of the batch is stored.
    let batch = json!([
        sync_request(&target, "ok", 1),
        named(&target, 2, "never-stored")
    ]);
    let (s, v) = sync(&up, &batch, None).await;
    assert_eq!(s, 400, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("streamMessage.vaultSecretName: names no secret"),
        "{message}"
    );
    let status = up.status().await;
    assert_eq!(stream_messages(&status, "datasync-data"), 0);
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_unreadable_at_first_is_retried_and_delivered_not_dead_lettered() {
    let tmp = tempfile::tempdir().unwrap();
    let mut up = Up::start_in(tmp.path(), FAST, &[]).await;
    let target = up.target();
    // An operator stores the secret; Vault answers 404 to reads for its first seconds, as while
    // the functions' policy propagates.
    let until = rfc3339(SystemTime::now() + Duration::from_secs(4));
    let created = signed(&up)
        .json(
            http::Method::POST,
            "/20180608/secrets",
            &json!({
                "compartmentId": up.info.compartment,
                "vaultId": VAULT,
                "keyId": "ocid1.key.oc1.local.datasync",
                "secretName": scoped_secret_name(SOURCE, "operator-stored"),
                "secretContent": {
                    "contentType": "BASE64",
                    "content": base64::engine::general_purpose::STANDARD.encode("Bearer stored-by-operator"),
                },
                "metadata": {"datasync-emulator-unreadable-until": until},
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
    let (s, v) = sync(&up, &named(&target, 7, "operator-stored"), None).await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let got = eventually(Duration::from_secs(40), || async {
        let doc = get_json(&up.client, &format!("{target}/_received")).await;
        doc["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["headers"]["idempotency-key"] == id.as_str())
            .cloned()
    })
    .await
    .expect("the message is delivered once the secret can be read");
    assert_eq!(got["headers"]["authorization"], "Bearer stored-by-operator");
    let status = up.status().await;
    assert_eq!(stream_messages(&status, "datasync-dead-letter"), 0);
    assert!(
        stream_messages(&status, "datasync-errors-default") >= 1,
        "the 404 sent it to the default error stream first"
    );
    up.stop();
}
