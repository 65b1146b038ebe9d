//! Each service client against the recording test server: method, path, query, headers, body
//! and signature checked against contracts/oci-platform.md sections D, E and G; retries,
//! partial PutMessages failures, limits and typed errors.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use datasync_core::oci::auth::StaticAuth;
use datasync_core::oci::client::{OciClient, OciError, RetryPolicy, Timeouts};
use datasync_core::oci::endpoints::{Endpoints, Service};
use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::models::{
    CreateGroupCursorDetails, CreateSecretDetails, GroupCursorType, MessageDetails, SecretContent,
    UpdateSecretDetails,
};
use datasync_core::oci::notifications::NotificationsClient;
use datasync_core::oci::objectstorage::ObjectStorageClient;
use datasync_core::oci::secrets::{SecretStage, SecretsClient};
use datasync_core::oci::signer::{VerifyError, EMPTY_BODY_SHA256};
use datasync_core::oci::streaming::{
    self, CursorStart, PutMessage, StreamClient, MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES,
};
use datasync_core::oci::vault::VaultClient;
use http::Method;
use serde_json::{json, Value};

use crate::server::{store_all, Reply, TestServer};

const KEY_ID: &str = "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/73:61:a2:21";
const STREAM: &str = "ocid1.stream.oc1.phx.s1";
const MESSAGES: &str = "/20180418/streams/ocid1.stream.oc1.phx.s1/messages";

fn key() -> PrivateKey {
    PrivateKey::from_pem(include_str!("../data/keys/vector_pkcs1.pem"), None).unwrap()
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

/// A server that knows the test key, and a client signing with it.
async fn setup(max_attempts: u32) -> (TestServer, OciClient, Endpoints) {
    let server = TestServer::start().await;
    let key = key();
    server.add_key(KEY_ID, key.public_key());
    let auth = Arc::new(StaticAuth::new(KEY_ID, key, None));
    let client =
        OciClient::with_settings(auth, Timeouts::default(), fast_retries(max_attempts)).unwrap();
    let endpoints = Endpoints::all_at(&server.base_url()).unwrap();
    (server, client, endpoints)
}

const BODY_HEADERS: &str =
    "date (request-target) host content-length content-type x-content-sha256";
const BASE_HEADERS: &str = "date (request-target) host";

fn b64(s: &str) -> Value {
    use base64::Engine as _;
    Value::String(base64::engine::general_purpose::STANDARD.encode(s))
}

fn msg(key: Option<&str>, value: &str) -> PutMessage {
    PutMessage::new(
        key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        Bytes::copy_from_slice(value.as_bytes()),
    )
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn put_messages_is_body_exempt_base64_and_keeps_request_order() {
    let (server, client, endpoints) = setup(4).await;
    server.route(Method::POST, MESSAGES, store_all(100));
    let streams = StreamClient::new(client, &endpoints).unwrap();
    let out = streams
        .put_messages(STREAM, &[msg(Some("k"), "{\"a\":1}"), msg(None, "two")])
        .await
        .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].as_ref().unwrap().offset, 100);
    assert_eq!(out[1].as_ref().unwrap().offset, 101);
    assert_eq!(out[1].as_ref().unwrap().partition, "0");

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.target, MESSAGES);
    assert_eq!(r.verified.as_deref(), Ok(KEY_ID));
    assert_eq!(
        r.signed_headers(),
        BASE_HEADERS,
        "PutMessages is signed without its body"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert!(r.header("x-content-sha256").is_none());
    assert_eq!(
        r.json(),
        json!({"messages": [{"key": b64("k"), "value": b64("{\"a\":1}")}, {"value": b64("two")}]})
    );
}

#[tokio::test]
async fn put_messages_refuses_a_message_over_1mb_before_sending() {
    let (server, client, endpoints) = setup(4).await;
    let streams = StreamClient::new(client, &endpoints).unwrap();
    // Key and value together count: 1 MiB + 1 byte.
    let too_big = PutMessage::keyed(vec![b'k'; 1], vec![0u8; MAX_MESSAGE_BYTES]);
    let err = streams
        .put_messages(STREAM, &[msg(None, "fine"), too_big])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OciError::Limit {
                operation: "PutMessages",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("message 1"), "{err}");
    // Exactly the limit is fine (counted decoded, not as base64).
    server.route(Method::POST, MESSAGES, store_all(0));
    let exact = PutMessage::keyed(vec![b'k'; 10], vec![0u8; MAX_MESSAGE_BYTES - 10]);
    let out = streams.put_messages(STREAM, &[exact]).await.unwrap();
    assert!(out[0].is_ok());
    assert_eq!(server.requests().len(), 1, "the refused batch sent nothing");
    assert!(streams.put_messages(STREAM, &[]).await.unwrap().is_empty());
    assert_eq!(server.requests().len(), 1, "an empty batch sends nothing");
}

#[tokio::test]
async fn put_messages_splits_batches_into_requests_of_at_most_1mb_decoded() {
    let (server, client, endpoints) = setup(4).await;
    server.route(Method::POST, MESSAGES, store_all(0));
    let streams = StreamClient::new(client, &endpoints).unwrap();
    let size = 400 * 1024;
    let batch: Vec<PutMessage> = (0..5u8)
        .map(|i| PutMessage::keyed(vec![i; 8], vec![i; size]))
        .collect();
    let out = streams.put_messages(STREAM, &batch).await.unwrap();
    let offsets: Vec<i64> = out.iter().map(|o| o.as_ref().unwrap().offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    let reqs = server.requests();
    let counts: Vec<usize> = reqs
        .iter()
        .map(|r| r.json()["messages"].as_array().unwrap().len())
        .collect();
    assert_eq!(counts, vec![2, 2, 1]);
    for r in &reqs {
        use base64::Engine as _;
        let decoded: usize = r.json()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                ["key", "value"]
                    .iter()
                    .filter_map(|f| m[*f].as_str())
                    .map(|s| {
                        base64::engine::general_purpose::STANDARD
                            .decode(s)
                            .unwrap()
                            .len()
                    })
                    .sum::<usize>()
            })
            .sum();
        assert!(decoded <= MAX_REQUEST_BYTES, "{decoded}");
        assert!(r.verified.is_ok());
    }
    assert!(
        reqs[0].body.len() > MAX_REQUEST_BYTES,
        "the limit counts decoded bytes: the base64 body itself is larger"
    );
}

#[tokio::test]
async fn put_messages_resends_only_the_failed_entries() {
    let (server, client, endpoints) = setup(4).await;
    server.script(
        Method::POST,
        MESSAGES,
        [Reply::ok(json!({"failures": 2, "entries": [
            {"partition": "0", "offset": 10, "timestamp": "t"},
            {"error": "TooManyRequests", "errorMessage": "throttled"},
            {"partition": "1", "offset": 20, "timestamp": "t"},
            {"error": "InternalServerError", "errorMessage": "oops"}
        ]}))],
    );
    server.route(Method::POST, MESSAGES, store_all(30));
    let streams = StreamClient::new(client, &endpoints).unwrap();
    let batch = [
        msg(None, "a"),
        msg(Some("kb"), "b"),
        msg(None, "c"),
        msg(None, "d"),
    ];
    let out = streams.put_messages(STREAM, &batch).await.unwrap();
    let got: Vec<(String, i64)> = out
        .iter()
        .map(|o| {
            let s = o.as_ref().unwrap();
            (s.partition.clone(), s.offset)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("0".into(), 10),
            ("0".into(), 30),
            ("1".into(), 20),
            ("0".into(), 31)
        ]
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[1].json(),
        json!({"messages": [{"key": b64("kb"), "value": b64("b")}, {"value": b64("d")}]})
    );
    assert!(reqs[1].verified.is_ok());
}

#[tokio::test]
async fn put_messages_reports_entries_still_failing_after_the_retry_budget() {
    let (server, client, endpoints) = setup(3).await;
    server.route(Method::POST, MESSAGES, |r| {
        let entries: Vec<Value> = r.json()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                if m["value"] == b64("bad") {
                    json!({"error": "TooManyRequests", "errorMessage": "partition throttled"})
                } else {
                    json!({"partition": "0", "offset": 1})
                }
            })
            .collect();
        let failures = entries.iter().filter(|e| e.get("error").is_some()).count();
        Reply::ok(json!({"failures": failures, "entries": entries}))
    });
    let streams = StreamClient::new(client, &endpoints).unwrap();
    let out = streams
        .put_messages(STREAM, &[msg(None, "good"), msg(None, "bad")])
        .await
        .unwrap();
    assert!(out[0].is_ok());
    let failed = out[1].as_ref().unwrap_err();
    assert_eq!(failed.code, "TooManyRequests");
    assert_eq!(failed.message, "partition throttled");
    assert_eq!(failed.attempts, 3);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3, "max_attempts requests in all");
    assert_eq!(reqs[2].json(), json!({"messages": [{"value": b64("bad")}]}));
}

#[tokio::test]
async fn put_messages_whole_request_failures_are_typed_or_reported_per_entry() {
    let (server, client, endpoints) = setup(2).await;
    let streams = StreamClient::new(client, &endpoints).unwrap();
    // Nothing stored yet: the typed error.
    server.script(
        Method::POST,
        MESSAGES,
        [Reply::error(400, "InvalidParameter", "bad stream")],
    );
    let err = streams
        .put_messages(STREAM, &[msg(None, "x")])
        .await
        .unwrap_err();
    match err {
        OciError::Service {
            operation,
            status,
            code,
            message,
            opc_request_id,
        } => {
            assert_eq!(
                (operation, status, code.as_str(), message.as_str()),
                ("PutMessages", 400, "InvalidParameter", "bad stream")
            );
            assert_eq!(opc_request_id.as_deref(), Some("req-400-InvalidParameter"));
        }
        other => panic!("{other:?}"),
    }
    // The first request is stored, the second fails as a whole: per-entry failures, and the
    // stored offsets are kept.
    let big = || PutMessage::new(None, vec![7u8; 600 * 1024]);
    server.script(
        Method::POST,
        MESSAGES,
        [
            Reply::ok(json!({"failures": 0, "entries": [{"partition": "0", "offset": 5}]})),
            Reply::error(404, "NotAuthorizedOrNotFound", "gone"),
        ],
    );
    let out = streams
        .put_messages(STREAM, &[big(), big(), big()])
        .await
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap().offset, 5);
    for o in &out[1..] {
        let f = o.as_ref().unwrap_err();
        assert_eq!(f.code, "NotAuthorizedOrNotFound");
        assert_eq!(f.status, Some(404));
    }
    assert_eq!(server.requests().len(), 3, "the third message was not sent");
}

#[tokio::test]
async fn transport_retries_429_and_5xx_with_backoff_and_stops_at_the_budget() {
    let (server, client, endpoints) = setup(4).await;
    let cursors = "/20180418/streams/ocid1.stream.oc1.phx.s1/cursors";
    server.script(
        Method::POST,
        cursors,
        [
            Reply::error(429, "TooManyRequests", "slow down").header("retry-after", "0"),
            Reply::error(503, "ServiceUnavailable", "later"),
            Reply::ok(json!({"value": "c1"})),
        ],
    );
    let streams = StreamClient::new(client, &endpoints).unwrap();
    let c = streams
        .create_cursor(STREAM, "0", &CursorStart::Latest)
        .await
        .unwrap();
    assert_eq!(c, "c1");
    assert_eq!(server.requests().len(), 3);

    server.script(
        Method::POST,
        cursors,
        (0..4).map(|_| Reply::error(500, "InternalServerError", "boom")),
    );
    let err = streams
        .create_cursor(STREAM, "0", &CursorStart::Latest)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert!(err.is_retryable());
    assert_eq!(server.requests().len(), 3 + 4, "max_attempts = 4");

    server.script(
        Method::POST,
        cursors,
        [Reply::error(400, "InvalidParameter", "no")],
    );
    let err = streams
        .create_cursor(STREAM, "0", &CursorStart::Latest)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(server.requests().len(), 3 + 4 + 1, "400 is not retried");
    // A non-JSON error body still gives a typed error.
    server.script(
        Method::POST,
        cursors,
        [Reply::raw(502, b"<html>bad gateway</html>")],
    );
    server.script(Method::POST, cursors, [Reply::raw(502, b"")]);
    server.script(Method::POST, cursors, [Reply::raw(502, b"")]);
    server.script(Method::POST, cursors, [Reply::raw(502, b"")]);
    let err = streams
        .create_cursor(STREAM, "0", &CursorStart::Latest)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OciError::Service { status: 502, code, .. } if code == "BadGateway"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_401_re_reads_credentials_once_and_sends_again() {
    let (server, client, endpoints) = setup(4).await;
    let path = "/20180418/streams/ocid1.stream.oc1.phx.s1/heartbeat";
    server.script(
        Method::POST,
        path,
        [
            Reply::error(401, "NotAuthenticated", "expired"),
            Reply::ok(json!({"value": "c2"})),
        ],
    );
    let streams = StreamClient::new(client, &endpoints).unwrap();
    assert_eq!(
        streams.consumer_heartbeat(STREAM, "c1").await.unwrap(),
        "c2"
    );
    assert_eq!(server.requests().len(), 2);
    server.script(
        Method::POST,
        path,
        (0..3).map(|_| Reply::error(401, "NotAuthenticated", "no")),
    );
    let err = streams.consumer_heartbeat(STREAM, "c1").await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(
        server.requests().len(),
        4,
        "only one re-read and retry per call"
    );
}

#[tokio::test]
async fn cursors_of_all_five_types_and_group_cursors_match_the_contract() {
    let (server, client, endpoints) = setup(1).await;
    let cursors = "/20180418/streams/ocid1.stream.oc1.phx.s1/cursors";
    server.route(Method::POST, cursors, |_| {
        Reply::ok(json!({"value": "cur"}))
    });
    let groups = "/20180418/streams/ocid1.stream.oc1.phx.s1/groupCursors";
    server.route(Method::POST, groups, |_| {
        Reply::ok(json!({"value": "gcur"}))
    });
    let streams = StreamClient::new(client, &endpoints).unwrap();
    let starts = [
        (
            CursorStart::AtOffset(5),
            json!({"partition": "3", "type": "AT_OFFSET", "offset": 5}),
        ),
        (
            CursorStart::AfterOffset(6),
            json!({"partition": "3", "type": "AFTER_OFFSET", "offset": 6}),
        ),
        (
            CursorStart::AtTime("2024-05-01T00:00:00.000Z".into()),
            json!({"partition": "3", "type": "AT_TIME", "time": "2024-05-01T00:00:00.000Z"}),
        ),
        (
            CursorStart::Latest,
            json!({"partition": "3", "type": "LATEST"}),
        ),
        (
            CursorStart::TrimHorizon,
            json!({"partition": "3", "type": "TRIM_HORIZON"}),
        ),
    ];
    for (start, _) in &starts {
        assert_eq!(
            streams.create_cursor(STREAM, "3", start).await.unwrap(),
            "cur"
        );
    }
    let g = streams
        .create_group_cursor(
            STREAM,
            &CreateGroupCursorDetails {
                cursor_type: GroupCursorType::TrimHorizon,
                time: None,
                group_name: "process".into(),
                instance_name: Some("i-1".into()),
                timeout_in_ms: Some(30_000),
                commit_on_get: Some(false),
            },
        )
        .await
        .unwrap();
    assert_eq!(g, "gcur");
    let reqs = server.requests();
    for (r, (_, body)) in reqs.iter().zip(&starts) {
        assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", cursors));
        assert_eq!(&r.json(), body);
        assert_eq!(r.signed_headers(), BODY_HEADERS);
        assert!(r.verified.is_ok());
    }
    assert_eq!(reqs[5].target, groups);
    assert_eq!(
        reqs[5].json(),
        json!({"type": "TRIM_HORIZON", "groupName": "process", "instanceName": "i-1", "timeoutInMs": 30000, "commitOnGet": false})
    );
}

#[tokio::test]
async fn get_messages_reads_opc_next_cursor_and_validates_limit() {
    let (server, client, endpoints) = setup(1).await;
    let cursor = "eyJjdXJzb3JUeXBlIjoicGFydGl0aW9uIn0+/=";
    server.script(
        Method::GET,
        MESSAGES,
        [
            Reply::ok(json!([
                {"stream": "s1", "partition": "0", "key": null, "value": b64("v1"), "offset": 7, "timestamp": "2024-01-01T00:00:00.000Z"},
                {"stream": "s1", "partition": "0", "key": b64("k"), "value": b64("v2"), "offset": 8, "timestamp": "2024-01-01T00:00:00.001Z"}
            ]))
            .header("opc-next-cursor", "next-1"),
            Reply::ok(json!([])).header("opc-next-cursor", "next-2"),
            Reply::ok(json!([])),
        ],
    );
    let streams = StreamClient::new(client, &endpoints).unwrap();
    let (messages, next) = streams
        .get_messages(STREAM, cursor, Some(10_000))
        .await
        .unwrap();
    assert_eq!(next, "next-1");
    assert_eq!(messages.len(), 2);
    assert_eq!(streaming::message_value(&messages[0]).unwrap(), b"v1");
    assert_eq!(streaming::message_key(&messages[0]).unwrap(), None);
    assert_eq!(streaming::message_key(&messages[1]).unwrap().unwrap(), b"k");
    let (empty, next) = streams.get_messages(STREAM, "next-1", None).await.unwrap();
    assert!(empty.is_empty());
    assert_eq!(
        next, "next-2",
        "an empty page still carries the next cursor"
    );
    let err = streams
        .get_messages(STREAM, "next-2", None)
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::Decode { .. }), "{err}");
    for bad in [0, 10_001] {
        let err = streams
            .get_messages(STREAM, cursor, Some(bad))
            .await
            .unwrap_err();
        assert!(matches!(err, OciError::Limit { .. }), "{err}");
    }
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3, "bad limits are refused before sending");
    assert_eq!(reqs[0].method, Method::GET);
    assert_eq!(reqs[0].path, MESSAGES);
    assert_eq!(reqs[0].query_value("cursor").as_deref(), Some(cursor));
    assert_eq!(reqs[0].query_value("limit").as_deref(), Some("10000"));
    assert!(!reqs[0].target.contains('+') || reqs[0].target.contains("%2B"));
    assert_eq!(reqs[1].query(), vec![("cursor".into(), "next-1".into())]);
    assert_eq!(reqs[0].signed_headers(), BASE_HEADERS);
    assert!(reqs.iter().all(|r| r.verified.is_ok()));
}

#[tokio::test]
async fn commit_and_heartbeat_are_empty_body_posts_signed_with_body_headers() {
    let (server, client, endpoints) = setup(1).await;
    for op in ["commit", "heartbeat"] {
        server.route(
            Method::POST,
            &format!("/20180418/streams/{STREAM}/{op}"),
            move |r| {
                Reply::ok(json!({"value": format!("{op}:{}", r.query_value("cursor").unwrap())}))
            },
        );
    }
    let streams = StreamClient::new(client, &endpoints).unwrap();
    assert_eq!(
        streams.consumer_commit(STREAM, "a b+c").await.unwrap(),
        "commit:a b+c"
    );
    assert_eq!(
        streams.consumer_heartbeat(STREAM, "x").await.unwrap(),
        "heartbeat:x"
    );
    for r in server.requests() {
        assert_eq!(r.method, Method::POST);
        assert!(r.body.is_empty());
        assert_eq!(r.header("content-length"), Some("0"));
        assert_eq!(r.header("x-content-sha256"), Some(EMPTY_BODY_SHA256));
        assert_eq!(r.signed_headers(), BODY_HEADERS);
        assert!(r.verified.is_ok(), "{:?}", r.verified);
    }
}

#[tokio::test]
async fn the_data_plane_comes_from_get_stream_once_per_stream() {
    let (server, client, _) = setup(1).await;
    let base = server.base_url();
    let endpoints = Endpoints::default()
        .with_override(Service::Streaming, &base)
        .unwrap();
    let get_stream = format!("/20180418/streams/{STREAM}");
    let messages_endpoint = base.clone();
    server.route(Method::GET, &get_stream, move |_| {
        Reply::ok(json!({
            "id": STREAM, "name": "s1", "partitions": 1, "retentionInHours": 24,
            "compartmentId": "ocid1.compartment.oc1..c", "lifecycleState": "ACTIVE",
            "messagesEndpoint": messages_endpoint, "timeCreated": "2024-01-01T00:00:00Z"
        }))
    });
    server.route(Method::POST, MESSAGES, store_all(0));
    let streams = StreamClient::new(client, &endpoints).unwrap();
    let other = streams.clone();
    streams
        .put_messages(STREAM, &[msg(None, "1")])
        .await
        .unwrap();
    other.put_messages(STREAM, &[msg(None, "2")]).await.unwrap();
    let stream = streams.get_stream(STREAM).await.unwrap();
    assert_eq!(stream.messages_endpoint, base);
    let reqs = server.requests();
    let paths: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("GET", get_stream.as_str()),
            ("POST", MESSAGES),
            ("POST", MESSAGES),
            ("GET", get_stream.as_str())
        ],
        "GetStream once for both puts (clones share the cache)"
    );
    // Without a control plane or a data-plane override the client cannot be built.
    assert!(StreamClient::new(streams.oci_client().clone(), &Endpoints::default()).is_err());
}

// ---------------------------------------------------------------------------------------------
// Secrets and Vault
// ---------------------------------------------------------------------------------------------

fn bundle(content: &str) -> Value {
    json!({
        "secretId": "ocid1.vaultsecret.oc1..s", "versionNumber": 4, "versionName": "v4",
        "stages": ["CURRENT", "LATEST"], "timeCreated": "2024-01-01T00:00:00Z",
        "secretBundleContent": {"contentType": "BASE64", "content": content}
    })
}

#[tokio::test]
async fn secret_bundles_by_id_and_by_name_decode_their_content() {
    let (server, client, endpoints) = setup(1).await;
    server.route(
        Method::GET,
        "/20190301/secretbundles/ocid1.vaultsecret.oc1..s",
        |_| Reply::ok(bundle("c2VjcmV0LXRva2Vu")),
    );
    server.route(
        Method::POST,
        "/20190301/secretbundles/actions/getByName",
        |_| Reply::ok(bundle("AAEC/w==")),
    );
    let secrets = SecretsClient::new(client, &endpoints).unwrap();
    let v = secrets
        .get_secret_bundle("ocid1.vaultsecret.oc1..s", None)
        .await
        .unwrap();
    assert_eq!(v.content(), b"secret-token");
    assert_eq!(v.version_number, 4);
    assert_eq!(v.stages, vec!["CURRENT", "LATEST"]);
    assert!(!format!("{v:?}").contains("secret-token"));
    secrets
        .get_secret_bundle("ocid1.vaultsecret.oc1..s", Some(SecretStage::Previous))
        .await
        .unwrap();
    let by_name = secrets
        .get_secret_bundle_by_name("target api/key", "ocid1.vault.oc1..v")
        .await
        .unwrap();
    assert_eq!(by_name.content(), &[0u8, 1, 2, 255]);

    let reqs = server.requests();
    assert_eq!(reqs[0].method, Method::GET);
    assert_eq!(
        reqs[0].target,
        "/20190301/secretbundles/ocid1.vaultsecret.oc1..s"
    );
    assert_eq!(reqs[0].signed_headers(), BASE_HEADERS);
    assert_eq!(
        reqs[1].target,
        "/20190301/secretbundles/ocid1.vaultsecret.oc1..s?stage=PREVIOUS"
    );
    let r = &reqs[2];
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, "/20190301/secretbundles/actions/getByName");
    assert_eq!(
        r.query(),
        vec![
            ("secretName".into(), "target api/key".into()),
            ("vaultId".into(), "ocid1.vault.oc1..v".into())
        ]
    );
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(r.header("x-content-sha256"), Some(EMPTY_BODY_SHA256));
    assert_eq!(
        r.signed_headers(),
        BODY_HEADERS,
        "an empty-body POST still signs the body headers"
    );
    assert!(reqs.iter().all(|r| r.verified.is_ok()));
}

#[tokio::test]
async fn secret_errors_are_typed_and_never_quote_content() {
    let (server, client, endpoints) = setup(1).await;
    let path = "/20190301/secretbundles/ocid1.vaultsecret.oc1..s";
    server.script(
        Method::GET,
        path,
        [
            Reply::error(404, "NotAuthorizedOrNotFound", "no secret"),
            Reply::ok(bundle("not base64 hunter2!")),
            Reply::ok(json!({"secretId": 5, "secretBundleContent": "hunter2"})),
        ],
    );
    let secrets = SecretsClient::new(client, &endpoints).unwrap();
    let err = secrets
        .get_secret_bundle("ocid1.vaultsecret.oc1..s", None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    for _ in 0..2 {
        let err = secrets
            .get_secret_bundle("ocid1.vaultsecret.oc1..s", None)
            .await
            .unwrap_err();
        assert!(matches!(err, OciError::Decode { .. }), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

fn secret_json(id: &str, name: &str) -> Value {
    json!({
        "id": id, "secretName": name, "vaultId": "ocid1.vault.oc1..v",
        "compartmentId": "ocid1.compartment.oc1..c", "keyId": "ocid1.key.oc1..k",
        "lifecycleState": "ACTIVE", "currentVersionNumber": 1, "timeCreated": "2024-01-01T00:00:00Z"
    })
}

#[tokio::test]
async fn vault_create_update_and_list_with_paging() {
    let (server, client, endpoints) = setup(1).await;
    server.route(Method::POST, "/20180608/secrets", |r| {
        Reply::ok(secret_json(
            "ocid1.vaultsecret.oc1..new",
            r.json()["secretName"].as_str().unwrap(),
        ))
    });
    server.route(
        Method::PUT,
        "/20180608/secrets/ocid1.vaultsecret.oc1..new",
        |_| Reply::ok(secret_json("ocid1.vaultsecret.oc1..new", "api-key")),
    );
    server.script(
        Method::GET,
        "/20180608/secrets",
        [
            Reply::ok(json!([secret_json("s1", "a")])).header("opc-next-page", "p2"),
            Reply::ok(json!([secret_json("s2", "b")])),
        ],
    );
    let vault = VaultClient::new(client, &endpoints).unwrap();
    let created = vault
        .create_secret(&CreateSecretDetails {
            compartment_id: "ocid1.compartment.oc1..c".into(),
            vault_id: "ocid1.vault.oc1..v".into(),
            key_id: "ocid1.key.oc1..k".into(),
            secret_name: "api-key".into(),
            description: None,
            secret_content: SecretContent::base64(b"s3cr3t"),
            metadata: None,
        })
        .await
        .unwrap();
    assert_eq!(created.id, "ocid1.vaultsecret.oc1..new");
    vault
        .update_secret(
            "ocid1.vaultsecret.oc1..new",
            &UpdateSecretDetails {
                secret_content: Some(SecretContent::base64(b"n3w")),
                description: None,
                metadata: None,
            },
        )
        .await
        .unwrap();
    let listed = vault
        .list_secrets(
            "ocid1.compartment.oc1..c",
            Some("ocid1.vault.oc1..v"),
            Some("api key"),
        )
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["s1", "s2"]
    );

    let reqs = server.requests();
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].target.as_str()),
        ("POST", "/20180608/secrets")
    );
    assert_eq!(
        reqs[0].json(),
        json!({
            "compartmentId": "ocid1.compartment.oc1..c", "vaultId": "ocid1.vault.oc1..v",
            "keyId": "ocid1.key.oc1..k", "secretName": "api-key",
            "secretContent": {"contentType": "BASE64", "content": "czNjcjN0", "stage": "CURRENT"}
        })
    );
    assert_eq!(reqs[0].signed_headers(), BODY_HEADERS);
    assert_eq!(reqs[1].method, Method::PUT);
    assert_eq!(
        reqs[1].target,
        "/20180608/secrets/ocid1.vaultsecret.oc1..new"
    );
    assert_eq!(reqs[1].json()["secretContent"]["content"], "bjN3");
    assert_eq!(reqs[1].signed_headers(), BODY_HEADERS);
    assert_eq!(
        reqs[2].query(),
        vec![
            ("compartmentId".into(), "ocid1.compartment.oc1..c".into()),
            ("vaultId".into(), "ocid1.vault.oc1..v".into()),
            ("name".into(), "api key".into())
        ]
    );
    assert_eq!(reqs[3].query_value("page").as_deref(), Some("p2"));
    assert!(reqs.iter().all(|r| r.verified.is_ok()));
}

// ---------------------------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn publish_message_posts_raw_text_signed_with_the_body() {
    let (server, client, endpoints) = setup(1).await;
    let path = "/20181201/topics/ocid1.onstopic.oc1..t/messages";
    server.route(Method::POST, path, |_| {
        Reply::ok(json!({"messageId": "m-1", "timeStamp": "2024-01-01T00:00:00Z"}))
    });
    let ons = NotificationsClient::new(client, &endpoints).unwrap();
    let out = ons
        .publish_message(
            "ocid1.onstopic.oc1..t",
            &MessageDetails {
                title: Some("datasync: 3 records failed".into()),
                body: "see the failure stream".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(out.message_id, "m-1");
    let r = &server.requests()[0];
    assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", path));
    assert_eq!(r.header("messagetype"), Some("RAW_TEXT"));
    assert_eq!(
        r.json(),
        json!({"title": "datasync: 3 records failed", "body": "see the failure stream"})
    );
    assert_eq!(
        r.signed_headers(),
        BODY_HEADERS,
        "not body-exempt, unlike PutMessages"
    );
    assert!(r.verified.is_ok());
}

// ---------------------------------------------------------------------------------------------
// Object Storage
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn object_storage_namespace_put_get_and_list() {
    let (server, client, endpoints) = setup(1).await;
    server.route(Method::GET, "/n/", |_| Reply::ok(json!("axaxnpcrorw5")));
    let object_path = "/n/axaxnpcrorw5/b/archive/o/failures%2F2024-01-01%2Fa%20b%23.json";
    server.route(Method::PUT, object_path, |_| {
        Reply::raw(200, b"")
            .header("etag", "e-1")
            .header("opc-content-md5", "md5==")
    });
    server.route(Method::GET, object_path, |_| {
        Reply::raw(200, b"{\"x\":1}")
            .header("content-type", "application/json")
            .header("etag", "e-1")
    });
    server.route(Method::GET, "/n/axaxnpcrorw5/b/archive/o", |_| {
        Reply::ok(json!({
            "objects": [{"name": "failures/2024-01-01/a b#.json", "size": 7, "etag": "e-1", "timeCreated": "2024-01-01T00:00:00Z"}],
            "nextStartWith": "failures/2024-01-02"
        }))
    });
    let os = ObjectStorageClient::new(client, &endpoints).unwrap();
    let ns = os.get_namespace().await.unwrap();
    assert_eq!(ns, "axaxnpcrorw5");
    let name = "failures/2024-01-01/a b#.json";
    let put = os
        .put_object(
            &ns,
            "archive",
            name,
            Bytes::from_static(b"{\"x\":1}"),
            Some("application/json"),
        )
        .await
        .unwrap();
    assert_eq!(put.etag.as_deref(), Some("e-1"));
    assert_eq!(put.content_md5.as_deref(), Some("md5=="));
    let got = os.get_object(&ns, "archive", name).await.unwrap();
    assert_eq!(&got.body[..], b"{\"x\":1}");
    assert_eq!(got.content_type.as_deref(), Some("application/json"));
    let list = os
        .list_objects(
            &ns,
            "archive",
            Some("failures/"),
            Some("failures/2024"),
            Some(100),
        )
        .await
        .unwrap();
    assert_eq!(list.objects[0].name, name);
    assert_eq!(list.objects[0].size, Some(7));
    assert_eq!(list.next_start_with.as_deref(), Some("failures/2024-01-02"));

    let reqs = server.requests();
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].target.as_str()),
        ("GET", "/n/")
    );
    let put = &reqs[1];
    assert_eq!(
        (put.method.as_str(), put.target.as_str()),
        ("PUT", object_path)
    );
    assert_eq!(
        put.signed_headers(),
        BASE_HEADERS,
        "PutObject is body-exempt"
    );
    assert_eq!(put.header("content-length"), Some("7"));
    assert_eq!(put.header("content-type"), Some("application/json"));
    assert_eq!(&put.body[..], b"{\"x\":1}");
    assert_eq!(
        (reqs[2].method.as_str(), reqs[2].target.as_str()),
        ("GET", object_path)
    );
    assert_eq!(reqs[3].path, "/n/axaxnpcrorw5/b/archive/o");
    assert_eq!(
        reqs[3].query(),
        vec![
            ("prefix".into(), "failures/".into()),
            ("start".into(), "failures/2024".into()),
            ("limit".into(), "100".into()),
            ("fields".into(), "name,size,etag,timeCreated".into())
        ]
    );
    assert!(reqs.iter().all(|r| r.verified.is_ok()), "{reqs:#?}");
}

// ---------------------------------------------------------------------------------------------
// The server's verification and the shared pool
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unsigned_tampered_and_foreign_key_requests_fail_verification() {
    let (server, client, endpoints) = setup(1).await;
    let cursors = format!("/20180418/streams/{STREAM}/cursors");
    server.route(Method::POST, &cursors, |_| Reply::ok(json!({"value": "c"})));

    // Unsigned: 401 with an OCI error body.
    let plain = reqwest::Client::new()
        .post(format!("{}{cursors}", server.base_url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    let body: Value = plain.json().await.unwrap();
    assert_eq!(body["code"], "NotAuthenticated");

    // Tampered in transit: the body hash no longer matches; the client's one 401 retry
    // (StaticAuth re-reads nothing new) goes through untouched.
    let streams = StreamClient::new(client, &endpoints).unwrap();
    server.tamper_next_body();
    assert_eq!(
        streams
            .create_cursor(STREAM, "0", &CursorStart::Latest)
            .await
            .unwrap(),
        "c"
    );
    let reqs = server.requests();
    assert_eq!(
        reqs[1].verified,
        Err(VerifyError::BodyHashMismatch.to_string())
    );
    assert!(reqs[2].verified.is_ok());

    // The recorded good request fails once any signed part changes.
    let good = &reqs[2];
    let public = key().public_key().clone();
    assert!(good
        .reverify("POST", &good.target, &good.body, &public)
        .is_ok());
    assert_eq!(
        good.reverify("POST", &good.target, b"{\"partition\":\"1\"}", &public),
        Err(VerifyError::BodyHashMismatch)
    );
    assert_eq!(
        good.reverify(
            "POST",
            "/20180418/streams/other/cursors",
            &good.body,
            &public
        ),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        good.reverify("PUT", &good.target, &good.body, &public),
        Err(VerifyError::BadSignature)
    );
    let other = rsa::RsaPublicKey::from(&crate::auth::test_key(1));
    assert_eq!(
        good.reverify("POST", &good.target, &good.body, &other),
        Err(VerifyError::BadSignature)
    );

    // Signed with a key the server does not know: 401, typed.
    let stranger = Arc::new(StaticAuth::new(
        "ocid1.tenancy.oc1..x/ocid1.user.oc1..y/00:11",
        PrivateKey::from_rsa(crate::auth::test_key(1)),
        None,
    ));
    let client = OciClient::with_settings(stranger, Timeouts::default(), fast_retries(1)).unwrap();
    let err = StreamClient::new(client, &endpoints)
        .unwrap()
        .create_cursor(STREAM, "0", &CursorStart::Latest)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OciError::Service { status: 401, code, .. } if code == "NotAuthenticated"),
        "{err:?}"
    );
    assert_eq!(
        server.requests().last().unwrap().verified,
        Err(VerifyError::UnknownKey.to_string())
    );
}

#[tokio::test]
async fn all_clients_share_one_connection_pool() {
    let (server, client, endpoints) = setup(1).await;
    server.route(Method::GET, "/n/", |_| Reply::ok(json!("ns")));
    server.route(Method::POST, MESSAGES, store_all(0));
    server.route(Method::POST, "/20181201/topics/t/messages", |_| {
        Reply::ok(json!({"messageId": "m"}))
    });
    let os = ObjectStorageClient::new(client.clone(), &endpoints).unwrap();
    let streams = StreamClient::new(client.clone(), &endpoints).unwrap();
    let ons = NotificationsClient::new(client, &endpoints).unwrap();
    for _ in 0..3 {
        os.get_namespace().await.unwrap();
        streams
            .put_messages(STREAM, &[msg(None, "v")])
            .await
            .unwrap();
        ons.publish_message(
            "t",
            &MessageDetails {
                title: None,
                body: "b".into(),
            },
        )
        .await
        .unwrap();
    }
    let peers: std::collections::HashSet<_> = server.requests().iter().map(|r| r.peer).collect();
    assert_eq!(
        peers.len(),
        1,
        "9 sequential calls over one kept-alive connection: {peers:?}"
    );
}

#[tokio::test]
async fn connection_errors_are_retried_then_typed_as_transport() {
    // A raw socket that accepts and hangs up without answering, counting connections.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let auth = Arc::new(StaticAuth::new(KEY_ID, key(), None));
    let client = OciClient::with_settings(auth, Timeouts::default(), fast_retries(3)).unwrap();
    let endpoints = Endpoints::all_at(&format!("http://{addr}")).unwrap();
    let err = ObjectStorageClient::new(client, &endpoints)
        .unwrap()
        .get_namespace()
        .await
        .unwrap_err();
    task.abort();
    assert!(
        matches!(
            err,
            OciError::Transport {
                operation: "GetNamespace",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "max_attempts connections"
    );
}

#[tokio::test]
async fn via_unix_socket_sends_the_same_signed_request_through_the_socket() {
    use hyper::service::service_fn;
    use std::sync::Mutex;

    // A server on a Unix socket only: the URL's host and port are never connected to.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oci.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let public = key().public_key().clone();
    // (Host, request target, verification) of each request.
    type Seen = Vec<(String, String, Result<String, String>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let task = {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (seen, public) = (Arc::clone(&seen), public.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (seen, public) = (Arc::clone(&seen), public.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = http_body_util::BodyExt::collect(body)
                                .await
                                .unwrap()
                                .to_bytes();
                            let target = parts.uri.path_and_query().unwrap().as_str();
                            let verified = datasync_core::oci::signer::verify(
                                &datasync_core::oci::signer::ReceivedRequest {
                                    method: parts.method.as_str(),
                                    target,
                                    headers: &parts.headers,
                                    body: &body,
                                    body_exempt: false,
                                },
                                std::time::SystemTime::now(),
                                |_| Some(public),
                            )
                            .map_err(|e| e.to_string());
                            let host = parts.headers["host"].to_str().unwrap().to_owned();
                            seen.lock()
                                .unwrap()
                                .push((host, target.to_owned(), verified));
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(Bytes::from_static(b"\"ns\"")),
                            ))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    };
    let auth = Arc::new(StaticAuth::new(KEY_ID, key(), None));
    let client = OciClient::with_settings(auth, Timeouts::default(), fast_retries(1))
        .unwrap()
        .via_unix_socket(Some(&path))
        .unwrap();
    // Port 9 (discard) on a reserved name: a TCP connection would fail.
    let endpoints = Endpoints::all_at("http://objectstorage.invalid:9").unwrap();
    let namespace = ObjectStorageClient::new(client, &endpoints)
        .unwrap()
        .get_namespace()
        .await
        .unwrap();
    task.abort();
    assert_eq!(namespace, "ns");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            "objectstorage.invalid:9".to_owned(),
            "/n/".to_owned(),
            Ok(KEY_ID.to_owned())
        )]
    );
}

#[tokio::test]
async fn via_unix_socket_failures_are_retryable_transport_errors() {
    use datasync_core::oci::client::TransportError;

    let dir = tempfile::tempdir().unwrap();
    let endpoints = Endpoints::all_at("http://objectstorage.invalid:9").unwrap();
    let client = |path: &std::path::Path, total: Duration| {
        let auth = Arc::new(StaticAuth::new(KEY_ID, key(), None));
        let timeouts = Timeouts {
            connect: Duration::from_secs(1),
            total,
        };
        let client = OciClient::with_settings(auth, timeouts, fast_retries(2))
            .unwrap()
            .via_unix_socket(Some(path))
            .unwrap();
        ObjectStorageClient::new(client, &endpoints).unwrap()
    };

    // Nobody listens on the path: a connect error, retried, then reported.
    let err = client(&dir.path().join("absent.sock"), Duration::from_secs(5))
        .get_namespace()
        .await
        .unwrap_err();
    match &err {
        OciError::Transport {
            operation: "GetNamespace",
            source: TransportError::Socket(e),
        } => assert!(e.is_connect(), "{e:?}"),
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    assert!(err.to_string().contains("absent.sock"), "{err}");

    // A listener that accepts and never answers: the total timeout ends each attempt.
    let path = dir.path().join("silent.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let task = {
        let accepted = Arc::clone(&accepted);
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                open.push(stream);
            }
        })
    };
    let started = std::time::Instant::now();
    let err = client(&path, Duration::from_millis(200))
        .get_namespace()
        .await
        .unwrap_err();
    task.abort();
    assert!(
        matches!(
            err,
            OciError::Transport {
                source: TransportError::TimedOut(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(started.elapsed() >= Duration::from_millis(400));
}
