//! populate against the OCI emulator (in-process, on 127.0.0.1:0), called through the FDK
//! socket as API Gateway calls it, and through the library for the rule tables.
//!
//! Every test uses the same distinctive token; `no_token_anywhere` searches every log line,
//! stream value, notification and answer captured for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use datasync_core::message::{
    is_valid_traceparent, scoped_secret_name, sealed_context, Envelope, Payload,
};
use datasync_core::oci::auth::ConfigFileAuth;
use datasync_core::oci::client::OciClient;
use datasync_core::oci::crypto::CryptoClient;
use datasync_core::oci::endpoints::Endpoints;
use datasync_core::oci::models::{self, Secret};
use datasync_core::oci::streaming::{message_key, message_value, CursorStart, StreamClient};
use datasync_core::oci::vault::VaultClient;
use datasync_local::client::SignedClient;
use datasync_local::emulator::{Emulator, EmulatorOptions, LOCAL_COMPARTMENT};
use fdk::agent::{gateway_request, gateway_response, Invoker};
use fdk::{Context, FnEvent, HttpRequest, Intent};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use populate::{Handler, Populate};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "Bearer tok-CANARY-5f0c1e9a-never-log-me";
const VAULT: &str = "ocid1.vault.oc1.local.populatetest";
const KEY: &str = "ocid1.key.oc1.local.populatetest";
const CALLER_A: &str = "client-a@example";
const CALLER_B: &str = "client-b@example";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// ---------------------------------------------------------------------------------------------
// Captured logs: one global subscriber writing every event (debug and up) into a buffer.
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let capture = Capture(Arc::new(Mutex::new(Vec::new())));
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .init();
        capture
    })
}

fn captured_logs() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The stack: emulator, data stream, configuration.
// ---------------------------------------------------------------------------------------------

struct Stack {
    emulator: Emulator,
    stream: String,
    config: fdk::Config,
    streams: StreamClient,
    vault: VaultClient,
    crypto: CryptoClient,
    signed: SignedClient,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn stack() -> Stack {
    let _ = logs();
    let dir = tempfile::tempdir().unwrap();
    let emulator =
        Emulator::open(&dir.path().join("emulator"), EmulatorOptions::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    {
        let (emulator, stop) = (emulator.clone(), shutdown.clone());
        tokio::spawn(async move { emulator.serve(listener, stop).await.unwrap() });
    }
    let signed = SignedClient::for_profile(&base, emulator.profile()).unwrap();
    let created = signed
        .json(
            Method::POST,
            "/20180418/streams",
            &models::CreateStreamDetails {
                name: "data".into(),
                partitions: 1,
                compartment_id: Some(LOCAL_COMPARTMENT.into()),
                retention_in_hours: Some(24),
                stream_pool_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(created.status, 200, "{:?}", created.body);
    let stream: models::Stream = created.json().unwrap();

    let profile = emulator.profile();
    let config: fdk::Config = [
        ("data_stream_ocid", stream.id.clone()),
        ("vault_ocid", VAULT.into()),
        ("vault_compartment_ocid", LOCAL_COMPARTMENT.into()),
        ("vault_key_ocid", KEY.into()),
        (
            "target_allow_list",
            "api.example.com, *.corp.example.org".into(),
        ),
        ("DATASYNC_OCI_ENDPOINT", base.clone()),
        ("OCI_CONFIG_FILE", profile.config_file.display().to_string()),
        ("OCI_CLI_PROFILE", profile.profile.clone()),
    ]
    .into_iter()
    .collect();

    let auth = Arc::new(
        ConfigFileAuth::from_config(
            Some(profile.config_file.as_path()),
            Some(&profile.profile),
            |_| None,
        )
        .unwrap(),
    );
    let client = OciClient::new(auth).unwrap();
    let endpoints = Endpoints::all_at(&base).unwrap();
    let stack = Stack {
        streams: StreamClient::new(client.clone(), &endpoints).unwrap(),
        vault: VaultClient::new(client.clone(), &endpoints).unwrap(),
        crypto: CryptoClient::new(client, &endpoints).unwrap(),
        emulator,
        stream: stream.id,
        config,
        signed,
        dir,
        shutdown,
    };
    // The operator stored "erp" for both callers: requests without a token may name it.
    for caller in [CALLER_A, CALLER_B] {
        stack.store_secret(caller, "erp").await;
    }
    stack
}

impl Stack {
    fn populate(&self) -> Populate {
        Populate::from_config(&self.config).unwrap()
    }

    /// Every message on the data stream: (key, value, offset).
    async fn messages(&self) -> Vec<(Option<Vec<u8>>, Vec<u8>, i64)> {
        let mut cursor = self
            .streams
            .create_cursor(&self.stream, "0", &CursorStart::TrimHorizon)
            .await
            .unwrap();
        let mut out = Vec::new();
        loop {
            let (batch, next) = self
                .streams
                .get_messages(&self.stream, &cursor, Some(1000))
                .await
                .unwrap();
            if batch.is_empty() {
                return out;
            }
            for m in &batch {
                out.push((message_key(m).unwrap(), message_value(m).unwrap(), m.offset));
            }
            cursor = next;
        }
    }

    async fn envelopes(&self) -> Vec<Envelope> {
        self.messages()
            .await
            .iter()
            .map(|(_, v, _)| Envelope::decode(v).unwrap())
            .collect()
    }

    /// Stores `caller`'s secret `name` as an operator would (a fixed operator token).
    async fn store_secret(&self, caller: &str, name: &str) -> Secret {
        self.vault
            .create_secret(&models::CreateSecretDetails {
                compartment_id: LOCAL_COMPARTMENT.into(),
                vault_id: VAULT.into(),
                key_id: KEY.into(),
                secret_name: scoped_secret_name(caller, name),
                description: None,
                secret_content: models::SecretContent::base64(b"Bearer operator-token"),
                metadata: None,
            })
            .await
            .unwrap()
    }

    /// The token an envelope carries sealed, opened as process opens it.
    async fn open(&self, envelope: &Envelope, caller: &str) -> Result<Vec<u8>, String> {
        let sealed = envelope.sealed_token.as_ref().ok_or("no sealed token")?;
        let name = scoped_secret_name(
            caller,
            envelope.message.vault_secret_name.as_deref().unwrap(),
        );
        self.crypto
            .decrypt(&sealed.key_id, &sealed.ciphertext, &sealed_context(&name))
            .await
            .map(|p| p.bytes().to_vec())
            .map_err(|e| e.to_string())
    }

    async fn secrets_list(&self) -> Vec<Secret> {
        self.vault
            .list_secrets(LOCAL_COMPARTMENT, Some(VAULT), None)
            .await
            .unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Calls.
// ---------------------------------------------------------------------------------------------

fn sample(target: &str) -> Value {
    json!({
        "streamKey": "order-42",
        "streamMessage": {
            "vaultSecretName": "erp",
            "targetRestApi": target,
            "targetRestApiOperation": "post",
            "targetRestApiPayload": {"orderId": 42, "note": "ünïcode"},
            "targetRestApiHeaders": [{"key": "Content-Type", "value": "application/json"}]
        }
    })
}

fn good() -> Value {
    sample("https://api.example.com/orders")
}

/// Client headers as the gateway hands them over (caller set by the gateway).
fn headers(caller: Option<&str>, token: Option<&str>) -> Vec<(String, String)> {
    let mut h = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(c) = caller {
        h.push(("x-datasync-caller".into(), c.into()));
    }
    if let Some(t) = token {
        h.push(("authorization".into(), t.into()));
    }
    h
}

fn event(method: Method, headers: &[(String, String)], body: impl Into<Bytes>) -> FnEvent {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    let mut ctx = Context::for_test("call-test");
    ctx.intent = Intent::HttpRequest;
    ctx.http = Some(HttpRequest::new(method, "/stream/sync", map));
    FnEvent::new(ctx, body.into())
}

struct Answer {
    status: u16,
    body: Value,
    raw: String,
}

async fn call(
    p: &Populate,
    method: Method,
    headers: &[(String, String)],
    body: impl Into<Bytes>,
) -> Answer {
    let r = p.handle(event(method, headers, body)).await;
    let raw = String::from_utf8_lossy(&r.body).into_owned();
    Answer {
        status: r.status.as_u16(),
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
    }
}

async fn post(p: &Populate, caller: &str, token: Option<&str>, body: &Value) -> Answer {
    call(
        p,
        Method::POST,
        &headers(Some(caller), token),
        body.to_string(),
    )
    .await
}

fn assert_error(a: &Answer, status: u16, code: &str, mentions: &str) {
    assert_eq!(a.status, status, "{}", a.raw);
    assert_eq!(a.body["code"], code, "{}", a.raw);
    let message = a.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(mentions),
        "{mentions:?} not in {message:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

/// The real path: API Gateway's mapping (`Fn-Intent: httprequest`, `Fn-Http-H-*`) into the
/// FDK socket, populate answering through `Fn-Http-Status`.
#[tokio::test]
async fn through_the_gateway_mapping_and_the_fdk_socket() {
    let s = stack().await;
    let socket = s.dir.path().join("fn").join("lsnr.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let handler = Handler::from_config(&s.config);
    let stop = CancellationToken::new();
    let server = {
        let stop = stop.clone();
        let socket = socket.clone();
        let config = s.config.clone();
        tokio::spawn(async move {
            fdk::Runtime::new(fdk::service_fn(move |event: FnEvent| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler.handle(event).await) }
            }))
            .with_config(config)
            .with_shutdown(async move { stop.cancelled().await })
            .serve(&socket)
            .await
        })
    };
    let mut invoker = loop {
        match Invoker::connect(&socket).await {
            Ok(i) => break i,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let mut hs = headers(Some(CALLER_A), Some(TOKEN));
    hs.push(("traceparent".into(), TRACEPARENT.into()));
    let (status, body, _) = send(&mut invoker, Method::POST, hs, good().to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["partition"], "0");
    assert_eq!(body["offset"], 0);
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(uuid_version(&id), 7, "{id}");

    let (status, body, h) = send(
        &mut invoker,
        Method::GET,
        headers(Some(CALLER_A), None),
        String::new(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("MethodNotAllowed"))
    );
    assert_eq!(h.get("allow").unwrap(), "POST");
    let (status, body, _) = send(
        &mut invoker,
        Method::POST,
        headers(None, None),
        good().to_string(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("NotAuthenticated"))
    );
    let mut text = headers(Some(CALLER_A), None);
    text[0].1 = "text/plain".into();
    let (status, body, _) = send(&mut invoker, Method::POST, text, good().to_string()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let mut bad = good();
    bad["streamMessage"]["targetRestApi"] = json!("https://evil.example.net/x");
    let (status, body, _) = send(
        &mut invoker,
        Method::POST,
        headers(Some(CALLER_A), None),
        bad.to_string(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("InvalidParameter"))
    );

    let envelopes = s.envelopes().await;
    assert_eq!(envelopes.len(), 1, "only the accepted call wrote");
    let e = &envelopes[0];
    assert_eq!(e.id.as_deref(), Some(id.as_str()));
    assert_eq!(e.source.as_deref(), Some(CALLER_A));
    assert_eq!(e.traceparent.as_deref(), Some(TRACEPARENT));
    assert_eq!(e.message.target_rest_api_operation, "POST");
    // The token travels sealed in the envelope, for the caller's scoped name.
    assert_eq!(s.open(e, CALLER_A).await.unwrap(), TOKEN.as_bytes());

    stop.cancel();
    server.await.unwrap().unwrap();
}

async fn send(
    invoker: &mut Invoker,
    method: Method,
    hs: Vec<(String, String)>,
    body: String,
) -> (u16, Value, HeaderMap) {
    let mut req = http::Request::builder().method(method).uri("/stream/sync");
    for (k, v) in hs {
        req = req.header(k, v);
    }
    let req = gateway_request(
        req.body(Bytes::from(body)).unwrap(),
        "01CALL",
        SystemTime::now() + Duration::from_secs(30),
    )
    .unwrap();
    let r = gateway_response(invoker.call(req, Duration::from_secs(30)).await.unwrap());
    let raw = String::from_utf8_lossy(r.body()).into_owned();
    let body = serde_json::from_str::<Value>(&raw).unwrap_or(Value::Null);
    (r.status().as_u16(), body, r.headers().clone())
}

fn msg(v: &mut Value) -> &mut Value {
    &mut v["streamMessage"]
}

fn uuid_version(id: &str) -> u32 {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    assert_eq!(hex.len(), 32, "{id}");
    hex[12..13].parse::<u32>().unwrap()
}

/// The payload is stored as the source wrote it, only the whitespace between tokens gone: key
/// order, numbers of any size or form, escapes and repeated keys are the target's to see (a
/// parsed value would sort the keys and round the big number to 1.2345678901234568e+29). A
/// `null` payload is none.
#[tokio::test]
async fn payloads_are_stored_as_sent() {
    let s = stack().await;
    let p = s.populate();
    let payload = r#"{ "z": 1, "a" : [ 1.10, -0, 1E2, 123456789012345678901234567890 ],
        "s": "a \" b\n\u00e9 { } ", "dup": 1, "dup": 2 }"#;
    let compact = r#"{"z":1,"a":[1.10,-0,1E2,123456789012345678901234567890],"s":"a \" b\n\u00e9 { } ","dup":1,"dup":2}"#;
    let message = |payload: &str| {
        format!(
            r#"{{"streamKey":"k","streamMessage":{{"vaultSecretName":"erp","targetRestApi":"https://api.example.com/orders","targetRestApiOperation":"POST","targetRestApiPayload":{payload}}}}}"#
        )
    };
    let body = format!("[{},\n{}]", message(payload), message("null"));
    let a = call(
        &p,
        Method::POST,
        &headers(Some(CALLER_A), Some(TOKEN)),
        body,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.raw);

    let stored = s.messages().await;
    let text = String::from_utf8(stored[0].1.clone()).unwrap();
    assert!(
        text.contains(&format!(r#""targetRestApiPayload":{compact}"#)),
        "{text}"
    );
    let envelopes = s.envelopes().await;
    let kept = envelopes[0]
        .message
        .target_rest_api_payload
        .as_ref()
        .unwrap();
    assert_eq!(kept.get(), compact);
    assert_eq!(envelopes[1].message.target_rest_api_payload, None);
    assert!(!String::from_utf8_lossy(&stored[1].1).contains("targetRestApiPayload"));
}

/// Every rule, one case each; nothing is written by any of them (sample: no validation at
/// all, a missing vaultSecretName was a NullPointerException).
#[tokio::test]
async fn every_rule_refuses_and_nothing_is_written() {
    let s = stack().await;
    let p = s.populate();
    type Mutate = fn(&mut Value);
    let cases: Vec<(&str, Mutate, u16, &str)> = vec![
        ("streamKey number", |v| v["streamKey"] = json!(7), 400, "streamKey: must be a string"),
        ("streamKey too long", |v| v["streamKey"] = json!("k".repeat(1025)), 400, "streamKey: must be at most 1024"),
        ("no streamMessage", |v| { v.as_object_mut().unwrap().remove("streamMessage"); }, 400, "streamMessage: must be a JSON object"),
        ("streamMessage string", |v| v["streamMessage"] = json!("x"), 400, "streamMessage: must be a JSON object"),
        ("no targetRestApi", |v| { msg(v).as_object_mut().unwrap().remove("targetRestApi"); }, 400, "streamMessage.targetRestApi: is required"),
        ("targetRestApi number", |v| msg(v)["targetRestApi"] = json!(1), 400, "streamMessage.targetRestApi: must be a string"),
        ("relative URL", |v| msg(v)["targetRestApi"] = json!("/orders"), 400, "streamMessage.targetRestApi: must be an absolute URL"),
        ("plain http", |v| msg(v)["targetRestApi"] = json!("http://api.example.com/x"), 400, "streamMessage.targetRestApi: must use https"),
        ("ftp", |v| msg(v)["targetRestApi"] = json!("ftp://api.example.com/x"), 400, "streamMessage.targetRestApi: must be an https URL"),
        ("host not allowed", |v| msg(v)["targetRestApi"] = json!("https://evil.example.net/x"), 400, "streamMessage.targetRestApi: host evil.example.net:443 is not on the target allow-list"),
        ("look-alike host", |v| msg(v)["targetRestApi"] = json!("https://api.example.com.evil.net/x"), 400, "allow-list"),
        ("credentials in URL", |v| msg(v)["targetRestApi"] = json!("https://u:p@api.example.com/x"), 400, "must not carry credentials"),
        ("operation GET", |v| msg(v)["targetRestApiOperation"] = json!("GET"), 400, "streamMessage.targetRestApiOperation: must be one of"),
        ("no operation", |v| { msg(v).as_object_mut().unwrap().remove("targetRestApiOperation"); }, 400, "streamMessage.targetRestApiOperation: is required"),
        ("headers not array", |v| msg(v)["targetRestApiHeaders"] = json!({"a": "b"}), 400, "streamMessage.targetRestApiHeaders: must be an array"),
        ("header not object", |v| msg(v)["targetRestApiHeaders"] = json!(["a: b"]), 400, "streamMessage.targetRestApiHeaders[0]: must be an object"),
        ("header value number", |v| msg(v)["targetRestApiHeaders"] = json!([{"key": "X-A", "value": 1}]), 400, "streamMessage.targetRestApiHeaders[0].value: must be a string"),
        ("illegal name", |v| msg(v)["targetRestApiHeaders"][0]["key"] = json!("Bad Name"), 400, "streamMessage.targetRestApiHeaders[0]: key must be a legal header name"),
        ("CR LF in value", |v| msg(v)["targetRestApiHeaders"][0]["value"] = json!("a\r\nX-Injected: 1"), 400, "streamMessage.targetRestApiHeaders[0]: value must not contain CR, LF or NUL"),
        ("NUL in value", |v| msg(v)["targetRestApiHeaders"][0]["value"] = json!("a\u{0}b"), 400, "value must not contain CR, LF or NUL"),
        ("51 headers", |v| msg(v)["targetRestApiHeaders"] = json!(vec![json!({"key": "X-A", "value": "1"}); 51]), 400, "streamMessage.targetRestApiHeaders: at most 50 headers"),
        ("hop-by-hop", |v| msg(v)["targetRestApiHeaders"][0]["key"] = json!("Connection"), 400, "connection may not be set by the caller"),
        ("Host", |v| msg(v)["targetRestApiHeaders"][0]["key"] = json!("Host"), 400, "host may not be set by the caller"),
        ("Content-Length", |v| msg(v)["targetRestApiHeaders"][0]["key"] = json!("Content-Length"), 400, "content-length may not be set by the caller"),
        ("Authorization header in body", |v| msg(v)["targetRestApiHeaders"][0]["key"] = json!("authorization"), 400, "authorization may not be set by the caller"),
        ("API key as a custom header", |v| msg(v)["targetRestApiHeaders"] = json!([{"key": "X-Api-Key", "value": "k-CANARY"}]), 400, "streamMessage.targetRestApiHeaders[0]: x-api-key carries a credential"),
        ("cookie as a custom header", |v| msg(v)["targetRestApiHeaders"] = json!([{"key": "Cookie", "value": "s=k-CANARY"}]), 400, "\"vaultSecretHeader\": \"cookie\""),
        ("secret header number", |v| msg(v)["vaultSecretHeader"] = json!(1), 400, "streamMessage.vaultSecretHeader: must be a string"),
        ("secret header Host", |v| msg(v)["vaultSecretHeader"] = json!("Host"), 400, "streamMessage.vaultSecretHeader: host may not be set by the caller"),
        ("secret header without name", |v| { msg(v).as_object_mut().unwrap().remove("vaultSecretName"); msg(v)["vaultSecretHeader"] = json!("x-api-key"); }, 400, "streamMessage.vaultSecretHeader: needs vaultSecretName"),
        ("secret name path", |v| msg(v)["vaultSecretName"] = json!("../other"), 400, "streamMessage.vaultSecretName: must be 1 to 100"),
        ("secret name long", |v| msg(v)["vaultSecretName"] = json!("s".repeat(101)), 400, "streamMessage.vaultSecretName"),
        ("secret name empty", |v| msg(v)["vaultSecretName"] = json!(""), 400, "streamMessage.vaultSecretName"),
        ("secret name number", |v| msg(v)["vaultSecretName"] = json!(789), 400, "streamMessage.vaultSecretName: must be a string"),
        ("token without secret name", |v| { msg(v).as_object_mut().unwrap().remove("vaultSecretName"); }, 400, "streamMessage.vaultSecretName: is required when the request carries an Authorization header"),
        ("misspelt payload", |v| { let m = msg(v).as_object_mut().unwrap(); let p = m.remove("targetRestApiPayload").unwrap(); m.insert("targetRestApiPayLoad".into(), p); }, 400, "streamMessage.targetRestApiPayLoad: is not a field of a sync request; did you mean targetRestApiPayload?"),
        ("snake-case secret name", |v| { let m = msg(v).as_object_mut().unwrap(); let n = m.remove("vaultSecretName").unwrap(); m.insert("vault_secret_name".into(), n); }, 400, "streamMessage.vault_secret_name: is not a field of a sync request; did you mean vaultSecretName?"),
        ("misspelt required field", |v| { let m = msg(v).as_object_mut().unwrap(); let t = m.remove("targetRestApi").unwrap(); m.insert("targetRestAPI".into(), t); }, 400, "streamMessage.targetRestAPI: is not a field of a sync request; did you mean targetRestApi?"),
        ("misspelt streamKey", |v| { let o = v.as_object_mut().unwrap(); let k = o.remove("streamKey").unwrap(); o.insert("streamkey".into(), k); }, 400, "streamkey: is not a field of a sync request; did you mean streamKey?"),
        ("envelope over 1 MB", |v| msg(v)["targetRestApiPayload"] = json!("x".repeat(1024 * 1024)), 413, "body: the message is"),
    ];
    for (name, mutate, status, mentions) in &cases {
        let mut body = good();
        mutate(&mut body);
        let a = post(&p, CALLER_A, Some(TOKEN), &body).await;
        let code = if *status == 413 {
            "PayloadTooLarge"
        } else {
            "InvalidParameter"
        };
        assert_eq!(a.status, *status, "{name}: {}", a.raw);
        assert_eq!(a.body["code"], code, "{name}: {}", a.raw);
        let message = a.body["message"].as_str().unwrap();
        assert!(
            message.contains(mentions),
            "{name}: {mentions:?} not in {message:?}"
        );
        assert!(!a.raw.contains("tok-CANARY"), "{name}: {}", a.raw);
        assert!(!a.raw.contains("k-CANARY"), "{name}: {}", a.raw);
    }

    // Whole-request rules.
    let h = headers(Some(CALLER_A), Some(TOKEN));
    type Case = (
        &'static str,
        Vec<(String, String)>,
        Method,
        Bytes,
        u16,
        &'static str,
        &'static str,
    );
    let body_cases: Vec<Case> = vec![
        ("not JSON", h.clone(), Method::POST, Bytes::from_static(b"{\"streamKey\": tok-CANARY"), 400, "InvalidParameter", "body: is not valid JSON"),
        ("empty body", h.clone(), Method::POST, Bytes::new(), 400, "InvalidParameter", "body: is empty"),
        ("empty batch", h.clone(), Method::POST, Bytes::from_static(b"[]"), 400, "InvalidParameter", "body: is an empty array"),
        ("JSON string", h.clone(), Method::POST, Bytes::from_static(b"\"hello\""), 400, "InvalidParameter", "body: must be a JSON object"),
        ("batch item 1 invalid", h.clone(), Method::POST, Bytes::from(json!([good(), {"streamMessage": {"targetRestApi": "https://evil.example.net/", "targetRestApiOperation": "PUT", "vaultSecretName": "erp"}}]).to_string()), 400, "InvalidParameter", "[1].streamMessage.targetRestApi: host evil.example.net:443 is not on the target allow-list"),
        ("batch item not object", h.clone(), Method::POST, Bytes::from(json!([good(), 3]).to_string()), 400, "InvalidParameter", "[1]: must be a JSON object"),
        ("batch of 101", h.clone(), Method::POST, Bytes::from(Value::Array(vec![good(); 101]).to_string()), 413, "PayloadTooLarge", "at most 100"),
        ("batch item over 1 MB", h.clone(), Method::POST, Bytes::from(json!([good(), {"streamMessage": {"targetRestApi": "https://api.example.com/", "targetRestApiOperation": "PUT", "vaultSecretName": "erp", "targetRestApiPayload": "y".repeat(1024 * 1024)}}]).to_string()), 413, "PayloadTooLarge", "[1]: the message is"),
        ("body over 6 MB", h.clone(), Method::POST, Bytes::from(vec![b' '; 6 * 1024 * 1024 + 1]), 413, "PayloadTooLarge", "at most 6291456"),
        ("GET", h.clone(), Method::GET, Bytes::new(), 405, "MethodNotAllowed", "POST"),
        ("PUT", h.clone(), Method::PUT, Bytes::from(good().to_string()), 405, "MethodNotAllowed", "POST"),
        ("text/plain", vec![("content-type".into(), "text/plain".into()), ("x-datasync-caller".into(), CALLER_A.into())], Method::POST, Bytes::from(good().to_string()), 415, "UnsupportedMediaType", "application/json"),
        ("no content type", vec![("x-datasync-caller".into(), CALLER_A.into())], Method::POST, Bytes::from(good().to_string()), 415, "UnsupportedMediaType", "application/json"),
        ("no caller", headers(None, Some(TOKEN)), Method::POST, Bytes::from(good().to_string()), 401, "NotAuthenticated", "caller"),
        ("empty caller", headers(Some(" "), None), Method::POST, Bytes::from(good().to_string()), 401, "NotAuthenticated", "caller"),
        ("two callers", { let mut h = headers(Some(CALLER_A), None); h.push(("x-datasync-caller".into(), CALLER_B.into())); h }, Method::POST, Bytes::from(good().to_string()), 401, "NotAuthenticated", "caller"),
        ("empty Authorization", headers(Some(CALLER_A), Some("")), Method::POST, Bytes::from(good().to_string()), 400, "InvalidParameter", "Authorization: header is empty"),
        ("two Authorization", { let mut h = headers(Some(CALLER_A), Some(TOKEN)); h.push(("authorization".into(), "Basic eA==".into())); h }, Method::POST, Bytes::from(good().to_string()), 400, "InvalidParameter", "Authorization: header is sent more than once"),
        ("streamKey twice", h.clone(), Method::POST, Bytes::from(good().to_string().replacen('{', r#"{"streamKey":"other","#, 1)), 400, "InvalidParameter", "streamKey: appears more than once"),
        ("targetRestApi twice", h.clone(), Method::POST, Bytes::from(good().to_string().replacen(r#""streamMessage":{"#, r#""streamMessage":{"targetRestApi":"https://api.example.com/other","#, 1)), 400, "InvalidParameter", "streamMessage.targetRestApi: appears more than once"),
        ("payload twice in a batch item", h.clone(), Method::POST, Bytes::from(format!("[{},{}]", good(), good().to_string().replacen(r#""streamMessage":{"#, r#""streamMessage":{"targetRestApiPayload":{},"#, 1))), 400, "InvalidParameter", "[1].streamMessage.targetRestApiPayload: appears more than once"),
        ("header key twice", h.clone(), Method::POST, Bytes::from(good().to_string().replacen(r#"{"key":"#, r#"{"key":"X-Other","key":"#, 1)), 400, "InvalidParameter", "streamMessage.targetRestApiHeaders[0].key: appears more than once"),
        ("header key twice, spaced", h.clone(), Method::POST, Bytes::from(good().to_string().replacen(r#"[{"key":"#, r#"[ { "key" : "X-Other" , "key":"#, 1)), 400, "InvalidParameter", "streamMessage.targetRestApiHeaders[0].key: appears more than once"),
        ("streamKey out of range", h.clone(), Method::POST, Bytes::from(good().to_string().replacen(r#""streamKey":"#, r#""streamKey":1e400,"x":"#, 1)), 400, "InvalidParameter", "streamKey: must be a string"),
    ];
    for (name, hs, method, body, status, code, mentions) in body_cases {
        let a = call(&p, method, &hs, body).await;
        assert_eq!(a.status, status, "{name}: {}", a.raw);
        assert_eq!(a.body["code"], code, "{name}: {}", a.raw);
        let message = a.body["message"].as_str().unwrap();
        assert!(
            message.contains(mentions),
            "{name}: {mentions:?} not in {message:?}"
        );
        assert!(!a.raw.contains("tok-CANARY"), "{name}: {}", a.raw);
    }

    // A plain invoke (not through the gateway) has no caller identity.
    let plain = p
        .handle(FnEvent::new(
            Context::for_test("c"),
            Bytes::from(good().to_string()),
        ))
        .await;
    assert_eq!(plain.status, 401);

    assert!(
        s.messages().await.is_empty(),
        "a refused call wrote to the stream"
    );
    assert_eq!(
        s.secrets_list().await.len(),
        2,
        "a refused call wrote a secret"
    );
}

/// Content types with parameters and any-case operations are accepted (operation stored
/// upper case), fields the sample format does not have are ignored (not stored), and a single
/// request and a batch answer with real offsets.
#[tokio::test]
async fn single_and_batch_answers_carry_real_offsets() {
    let s = stack().await;
    let p = s.populate();
    let mut hs = headers(Some(CALLER_A), None);
    hs[0].1 = "Application/JSON; charset=utf-8".into();
    let mut single = good();
    single["streamMessage"]["targetRestApiOperation"] = json!("pAtCh");
    let a = call(&p, Method::POST, &hs, single.to_string()).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["offset"], 0);
    assert_eq!(a.body["partition"], "0");

    let mut second = sample("https://x.corp.example.org/v1/items");
    second.as_object_mut().unwrap().remove("streamKey");
    second["streamMessage"]["targetRestApiOperation"] = json!("delete");
    // Fields of the caller's own, unlike any sync-request field.
    second["sourceSystem"] = json!("erp-eu");
    second["streamMessage"]["correlationId"] = json!("corr-77");
    // Like a field's name, but that field is there too: not a misspelling of it.
    second["streamMessageId"] = json!("smid-9");
    let mut third = good();
    third["streamKey"] = json!("");
    third["streamMessage"]
        .as_object_mut()
        .unwrap()
        .remove("targetRestApiHeaders");
    let batch = json!([good(), second, third]);
    let a = call(&p, Method::POST, &hs, batch.to_string()).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let answers = a.body.as_array().unwrap();
    assert_eq!(answers.len(), 3);
    let offsets: Vec<i64> = answers
        .iter()
        .map(|x| x["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, vec![1, 2, 3]);

    let stored = s.messages().await;
    assert_eq!(stored.len(), 4);
    for (_, value, _) in &stored {
        let text = String::from_utf8_lossy(value);
        assert!(text.contains("targetRestApi"), "{text}");
        for theirs in ["corr-77", "erp-eu", "smid-9"] {
            assert!(!text.contains(theirs), "{text}");
        }
    }
    let envelopes = s.envelopes().await;
    let ops: Vec<&str> = envelopes
        .iter()
        .map(|e| e.message.target_rest_api_operation.as_str())
        .collect();
    assert_eq!(ops, vec!["PATCH", "POST", "DELETE", "POST"]);
    let keys: Vec<Option<&[u8]>> = stored.iter().map(|(k, _, _)| k.as_deref()).collect();
    assert_eq!(
        keys,
        vec![Some(&b"order-42"[..]), Some(&b"order-42"[..]), None, None]
    );
    for (i, e) in envelopes.iter().enumerate() {
        assert_eq!(e.source.as_deref(), Some(CALLER_A));
        assert_eq!(e.attempt, 0);
        assert!(e.received_at().is_some());
        assert!(is_valid_traceparent(e.traceparent.as_deref().unwrap()));
        assert_eq!(uuid_version(e.id.as_deref().unwrap()), 7);
        if i > 0 {
            assert_eq!(e.id.as_deref(), answers[i - 1]["id"].as_str());
            // The caller's own name is kept; the secret lives under the scoped one.
            assert_eq!(e.message.vault_secret_name.as_deref(), Some("erp"));
        }
    }
    assert_eq!(
        envelopes[1].message.target_rest_api_payload,
        Some(Payload::from_value(&json!({"orderId": 42, "note": "ünïcode"})).unwrap())
    );
}

/// Each caller's token is sealed for its own scoped name: neither can open the other's, and no
/// secret is written (sample bug 11: first writer wins, anyone can use the name).
#[tokio::test]
async fn sealed_tokens_are_bound_to_their_caller() {
    let s = stack().await;
    let p = s.populate();
    let token_b = "Bearer tok-CANARY-second-caller";
    assert_eq!(post(&p, CALLER_A, Some(TOKEN), &good()).await.status, 200);
    assert_eq!(post(&p, CALLER_B, Some(token_b), &good()).await.status, 200);
    // B without a token, naming "erp": refers to B's own stored secret, never A's token.
    assert_eq!(post(&p, CALLER_B, None, &good()).await.status, 200);

    let envelopes = s.envelopes().await;
    assert_eq!(
        s.open(&envelopes[0], CALLER_A).await.unwrap(),
        TOKEN.as_bytes()
    );
    assert_eq!(
        s.open(&envelopes[1], CALLER_B).await.unwrap(),
        token_b.as_bytes()
    );
    assert!(
        s.open(&envelopes[0], CALLER_B).await.is_err(),
        "A's sealed token does not open under B's name"
    );
    assert!(envelopes[2].sealed_token.is_none());
    // Only the two secrets the operator stored: no version per token.
    assert_eq!(s.secrets_list().await.len(), 2);
    let sources: Vec<Option<String>> = envelopes.into_iter().map(|e| e.source).collect();
    assert_eq!(
        sources,
        vec![
            Some(CALLER_A.into()),
            Some(CALLER_B.into()),
            Some(CALLER_B.into())
        ]
    );
    // The body cannot choose the caller, nor bring its own sealed token.
    let mut spoof = good();
    spoof["source"] = json!(CALLER_A);
    spoof["streamMessage"]["source"] = json!(CALLER_A);
    assert_eq!(post(&p, CALLER_B, None, &spoof).await.status, 200);
    assert_eq!(s.envelopes().await[3].source.as_deref(), Some(CALLER_B));
}

/// A steady token is sealed once per name (the same ciphertext, no Encrypt); a new token, a
/// new instance or another name is sealed again; a batch naming one secret seals once; any
/// header byte survives.
#[tokio::test]
async fn a_steady_token_is_sealed_once_and_a_new_token_again() {
    let s = stack().await;
    let p = s.populate();
    let sealed = |e: &Envelope| e.sealed_token.clone().unwrap().ciphertext;
    assert_eq!(post(&p, CALLER_A, Some(TOKEN), &good()).await.status, 200);
    assert_eq!(post(&p, CALLER_A, Some(TOKEN), &good()).await.status, 200);
    let e = s.envelopes().await;
    assert_eq!(sealed(&e[0]), sealed(&e[1]), "cached: one Encrypt");
    // A fresh instance (empty cache) seals again: another ciphertext, the same token.
    let fresh = s.populate();
    assert_eq!(
        post(&fresh, CALLER_A, Some(TOKEN), &good()).await.status,
        200
    );
    let e = s.envelopes().await;
    assert_ne!(sealed(&e[2]), sealed(&e[0]));
    assert_eq!(s.open(&e[2], CALLER_A).await.unwrap(), TOKEN.as_bytes());

    let rotated = "Bearer tok-CANARY-rotated-\u{e9}"; // non-ASCII byte in a header value
    assert_eq!(post(&p, CALLER_A, Some(rotated), &good()).await.status, 200);
    let e = s.envelopes().await;
    assert_eq!(s.open(&e[3], CALLER_A).await.unwrap(), rotated.as_bytes());

    let third = "Bearer tok-CANARY-third";
    let batch = json!([good(), good(), good()]);
    let a = call(
        &p,
        Method::POST,
        &headers(Some(CALLER_A), Some(third)),
        batch.to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let e = s.envelopes().await;
    assert!(e[4..].iter().all(|x| sealed(x) == sealed(&e[4])));
    assert_eq!(s.open(&e[6], CALLER_A).await.unwrap(), third.as_bytes());
    assert_eq!(s.secrets_list().await.len(), 2, "no secret version written");
}

/// The token is sealed before the message is written; a Key Management or Vault failure is
/// answered, never swallowed, and nothing reaches the stream.
#[tokio::test]
async fn vault_failure_is_reported_and_nothing_written() {
    let s = stack().await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let config = s
        .config
        .clone()
        .with("DATASYNC_OCI_ENDPOINT_CRYPTO", dead_url.clone());
    let p = Populate::from_config(&config).unwrap();
    let a = post(&p, CALLER_A, Some(TOKEN), &good()).await;
    assert_error(
        &a,
        503,
        "VaultUnavailable",
        "nothing was written to the stream",
    );
    assert!(!a.raw.contains("tok-CANARY"));
    assert!(s.messages().await.is_empty());
    // Without a token Key Management is not needed, and the message is stored.
    assert_eq!(post(&p, CALLER_A, None, &good()).await.status, 200);
    assert_eq!(s.messages().await.len(), 1);
    // Without a token and without Vault, the stored secret cannot be checked: 503.
    let config = s
        .config
        .clone()
        .with("DATASYNC_OCI_ENDPOINT_VAULT", dead_url);
    let a = post(
        &Populate::from_config(&config).unwrap(),
        CALLER_A,
        None,
        &good(),
    )
    .await;
    assert_error(
        &a,
        503,
        "VaultUnavailable",
        "nothing was written to the stream",
    );
    assert_eq!(s.messages().await.len(), 1);
}

/// A stream failure is an error with a per-item list, never `success` (sample bug 1).
#[tokio::test]
async fn stream_failure_is_not_success() {
    let s = stack().await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let config = s
        .config
        .clone()
        .with("DATASYNC_OCI_ENDPOINT_STREAMING_MESSAGES", dead_url);
    let p = Populate::from_config(&config).unwrap();
    let batch = json!([good(), good()]);
    let a = call(
        &p,
        Method::POST,
        &headers(Some(CALLER_A), None),
        batch.to_string(),
    )
    .await;
    assert_error(&a, 503, "StreamUnavailable", "nothing was stored");
    let items = a.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i["stored"] == false));
    assert!(s.messages().await.is_empty());

    // A stream that does not exist: not retryable, 502.
    let config = s
        .config
        .clone()
        .with("data_stream_ocid", "ocid1.stream.oc1.local.missing");
    let p = Populate::from_config(&config).unwrap();
    let a = post(&p, CALLER_A, None, &good()).await;
    assert_eq!(a.status, 502, "{}", a.raw);
    assert_eq!(a.body["code"], "StreamError");
}

/// A missing or invalid key is answered on every call, naming the key.
#[tokio::test]
async fn misconfiguration_names_the_key_on_every_call() {
    let s = stack().await;
    let mut broken: fdk::Config = s
        .config
        .iter()
        .filter(|(k, _)| *k != "vault_key_ocid")
        .collect();
    for _ in 0..2 {
        let h = Handler::from_config(&broken);
        let r = h
            .handle(event(
                Method::POST,
                &headers(Some(CALLER_A), None),
                good().to_string(),
            ))
            .await;
        assert_eq!(r.status, 500);
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["code"], "FunctionMisconfigured");
        assert!(
            body["message"].as_str().unwrap().contains("vault_key_ocid"),
            "{body}"
        );
    }
    broken = broken.with("vault_key_ocid", "not-an-ocid");
    let err = Populate::from_config(&broken).unwrap_err();
    assert_eq!(err.key(), "vault_key_ocid");
    let err = Populate::from_config(&s.config.clone().with("target_allow_list", " ")).unwrap_err();
    assert_eq!(err.key(), "target_allow_list");
}

/// The token never appears in a log line, a stream value, a notification or an answer.
#[tokio::test]
async fn no_token_anywhere() {
    let s = stack().await;
    let p = s.populate();
    let mut answers = Vec::new();
    answers.push(post(&p, CALLER_A, Some(TOKEN), &good()).await.raw);
    answers.push(
        post(&p, CALLER_A, Some(TOKEN), &json!([good(), good()]))
            .await
            .raw,
    );
    let mut bad = good();
    bad["streamMessage"]["targetRestApiHeaders"][0]["value"] = json!(format!("{TOKEN}\r\n"));
    answers.push(post(&p, CALLER_A, Some(TOKEN), &bad).await.raw);
    bad = good();
    bad["streamMessage"]["targetRestApi"] = json!(format!("https://evil.example.net/?t={TOKEN}"));
    answers.push(post(&p, CALLER_A, Some(TOKEN), &bad).await.raw);
    let a = call(
        &p,
        Method::POST,
        &headers(Some(CALLER_A), Some(TOKEN)),
        format!("{{\"x\": \"{TOKEN}"),
    )
    .await;
    answers.push(a.raw);
    let dead = s
        .config
        .clone()
        .with("DATASYNC_OCI_ENDPOINT_CRYPTO", "http://127.0.0.1:9");
    answers.push(
        post(
            &Populate::from_config(&dead).unwrap(),
            CALLER_A,
            Some(TOKEN),
            &good(),
        )
        .await
        .raw,
    );

    let b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN);
    let needles = ["tok-CANARY-5f0c1e9a", b64.as_str()];
    let mut haystacks: Vec<(String, String)> = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        haystacks.push((format!("answer {i}"), a.clone()));
    }
    let stored = s.messages().await;
    assert_eq!(stored.len(), 3);
    for (k, v, offset) in stored {
        haystacks.push((
            format!("stream value {offset}"),
            String::from_utf8_lossy(&v).into_owned(),
        ));
        haystacks.push((
            format!("stream key {offset}"),
            String::from_utf8_lossy(&k.unwrap_or_default()).into_owned(),
        ));
    }
    for n in s.emulator.notifications().await.unwrap() {
        haystacks.push(("notification".into(), format!("{n:?}")));
    }
    let logs = captured_logs();
    // The acceptance trace lines (docs/trace.md) are in the capture: it works.
    assert!(
        logs.contains(r#""event":"accepted""#) && logs.contains(r#""target":"datasync_trace""#),
        "the log capture works"
    );
    haystacks.push(("logs".into(), logs));
    for (what, text) in &haystacks {
        for needle in needles {
            assert!(!text.contains(needle), "the token leaked into {what}");
        }
    }
}

/// Without a token, the named secret must be stored (issue 19): a name never stored, or a
/// secret scheduled for deletion, is refused with 400 naming the field, and nothing is written.
/// A secret found is remembered: later calls make no Vault call (shown by deleting it behind
/// the instance's back, which only a fresh instance notices).
#[tokio::test]
async fn a_name_with_no_stored_secret_and_no_token_is_refused() {
    let s = stack().await;
    let mut never = good();
    never["streamMessage"]["vaultSecretName"] = json!("never-stored");
    let p = s.populate();
    let a = post(&p, CALLER_A, None, &never).await;
    assert_error(
        &a,
        400,
        "InvalidParameter",
        "streamMessage.vaultSecretName: names no secret",
    );
    let a = post(&p, CALLER_A, None, &json!([good(), never.clone()])).await;
    assert_error(
        &a,
        400,
        "InvalidParameter",
        "[1].streamMessage.vaultSecretName: names no secret",
    );
    // Another caller's secret of that name does not count.
    let only_b = s.store_secret(CALLER_B, "only-b").await;
    let mut for_b = good();
    for_b["streamMessage"]["vaultSecretName"] = json!("only-b");
    let a = post(&p, CALLER_A, None, &for_b).await;
    assert_error(&a, 400, "InvalidParameter", "streamMessage.vaultSecretName");
    assert!(s.messages().await.is_empty());

    // Found once, then trusted for the cache's time.
    assert_eq!(post(&p, CALLER_B, None, &for_b).await.status, 200);
    let scheduled = s
        .signed
        .send(
            Method::POST,
            &format!("/20180608/secrets/{}/actions/scheduleDeletion", only_b.id),
            vec![],
            datasync_core::oci::signer::BodySigning::Include,
            HeaderMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(scheduled.status, 200);
    for _ in 0..5 {
        assert_eq!(post(&p, CALLER_B, None, &for_b).await.status, 200);
    }
    assert_eq!(s.messages().await.len(), 6);
    // A fresh instance asks Vault: a secret pending deletion is not present.
    let a = post(&s.populate(), CALLER_B, None, &for_b).await;
    assert_error(&a, 400, "InvalidParameter", "streamMessage.vaultSecretName");
    assert_eq!(s.messages().await.len(), 6);
    // With a token the name need not be stored: the token travels sealed.
    assert_eq!(post(&p, CALLER_A, Some(TOKEN), &never).await.status, 200);
}

/// A stand-in for the Streaming data plane that stores the first entry of each PutMessages
/// request it is sent for the first time and fails every other entry with TooManyRequests.
async fn throttling_stream() -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            let (head_end, length) = loop {
                let n = conn.read(&mut chunk).await.unwrap();
                assert!(n > 0, "request cut short");
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                    break (i + 4, length);
                }
            };
            while buf.len() < head_end + length {
                let n = conn.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            let body: Value = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap();
            let n = body["messages"].as_array().unwrap().len();
            let entries: Vec<Value> = (0..n)
                .map(|i| {
                    if first && i == 0 {
                        json!({"partition": "0", "offset": 41, "timestamp": "2026-01-01T00:00:00.000Z"})
                    } else {
                        json!({"error": "TooManyRequests", "errorMessage": "slow down"})
                    }
                })
                .collect();
            first = false;
            let failures = if n > 0 && entries[0].get("error").is_none() {
                n - 1
            } else {
                n
            };
            let answer = json!({"failures": failures, "entries": entries}).to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nopc-request-id: fake\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            conn.write_all(response.as_bytes()).await.unwrap();
        }
    });
    url
}

/// Entry errors that persist after the client's retries are an error naming which items were
/// stored, never `success` (sample bug 1).
#[tokio::test]
async fn entry_failures_are_answered_per_item() {
    let s = stack().await;
    let fake = throttling_stream().await;
    let config = s
        .config
        .clone()
        .with("DATASYNC_OCI_ENDPOINT_STREAMING_MESSAGES", fake);
    let p = Populate::from_config(&config).unwrap();
    let a = call(
        &p,
        Method::POST,
        &headers(Some(CALLER_A), None),
        json!([good(), good(), good()]).to_string(),
    )
    .await;
    assert_error(
        &a,
        503,
        "StreamUnavailable",
        "2 of 3 message(s) were not stored",
    );
    let items = a.body["items"].as_array().unwrap();
    assert_eq!(items[0]["stored"], true);
    assert_eq!(items[0]["offset"], 41);
    assert!(items[0]["id"].is_string());
    for item in &items[1..] {
        assert_eq!(item["stored"], false);
        assert_eq!(item["code"], "TooManyRequests");
        assert!(item["id"].is_string());
    }
    // A single request whose only entry fails is not a 200 either.
    let a = post(&p, CALLER_A, None, &good()).await;
    assert_error(
        &a,
        503,
        "StreamUnavailable",
        "1 of 1 message(s) were not stored",
    );
}
