//! The test stack shared by process and retry tests: the emulator in-process on 127.0.0.1:0
//! (streams, a vault secret, a topic), a scripted target, the function configuration with a
//! minted resource principal, and a capture of every log line.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use datasync_core::message::{scoped_secret_name, Envelope, HeaderPair, Payload, StreamMessage};
use datasync_core::oci::auth::ConfigFileAuth;
use datasync_core::oci::client::OciClient;
use datasync_core::oci::endpoints::{Endpoints, Service};
use datasync_core::oci::models;
use datasync_core::oci::streaming::{message_key, message_value, CursorStart, StreamClient};
use datasync_core::oci::vault::VaultClient;
use datasync_local::client::SignedClient;
use datasync_local::emulator::{Emulator, EmulatorOptions};
use datasync_local::target::ScriptedTarget;
use http::Method;
use tokio_util::sync::CancellationToken;

/// The token every test stores; no log line, stream value or notification may contain it.
pub const TOKEN: &str = "Bearer canary-tok-91c4e0d7b2";
/// The caller populate would have recorded as `source`.
pub const CALLER: &str = "app-orders";
/// The `vaultSecretName` the messages use.
pub const SECRET: &str = "orders-token";

#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary (all levels), JSON as in production.
pub fn logs() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .try_init();
        capture
    })
}

pub fn log_text() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

pub struct Streams {
    pub data: String,
    pub service_unavailable: String,
    pub internal_server: String,
    pub unrecoverable: String,
    pub default: String,
    pub dead_letter: String,
    /// A stream that is not configured anywhere.
    pub other: String,
}

pub struct Stack {
    pub emulator: Emulator,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub admin: SignedClient,
    pub streams: StreamClient,
    pub ids: Streams,
    pub topic: String,
    pub vault: String,
    pub secret_id: String,
    pub target: ScriptedTarget,
    pub config: fdk::Config,
    shutdown: CancellationToken,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Stack {
    pub async fn start() -> Stack {
        logs();
        let dir = tempfile::tempdir().unwrap();
        let emulator = Emulator::open(&dir.path().join("emu"), EmulatorOptions::default()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        {
            let (emu, stop) = (emulator.clone(), shutdown.clone());
            tokio::spawn(async move { emu.serve(listener, stop).await.unwrap() });
        }
        let admin = SignedClient::for_profile(&base, emulator.profile()).unwrap();
        let auth = ConfigFileAuth::from_config(
            Some(&emulator.profile().config_file),
            Some(&emulator.profile().profile),
            |_| None,
        )
        .unwrap();
        let oci = OciClient::new(Arc::new(auth)).unwrap();
        let mut endpoints = Endpoints::default();
        for service in Service::ALL {
            endpoints = endpoints.with_override(service, &base).unwrap();
        }
        let streams = StreamClient::new(oci.clone(), &endpoints).unwrap();
        let compartment = emulator.profile().compartment.clone();
        let mut stack_ids = Vec::new();
        for name in [
            "DataSyncStream",
            "ServerUnavailableStream",
            "InternalserverErrorStream",
            "UnrecoverableErrorStream",
            "DefaultErrorStream",
            "DeadLetterStream",
            "OtherStream",
        ] {
            let stream: models::Stream = admin
                .json(
                    Method::POST,
                    "/20180418/streams",
                    &models::CreateStreamDetails {
                        name: name.into(),
                        partitions: 1,
                        compartment_id: Some(compartment.clone()),
                        retention_in_hours: Some(24),
                        stream_pool_id: None,
                    },
                )
                .await
                .unwrap()
                .json()
                .unwrap();
            stack_ids.push(stream.id);
        }
        let ids = Streams {
            data: stack_ids[0].clone(),
            service_unavailable: stack_ids[1].clone(),
            internal_server: stack_ids[2].clone(),
            unrecoverable: stack_ids[3].clone(),
            default: stack_ids[4].clone(),
            dead_letter: stack_ids[5].clone(),
            other: stack_ids[6].clone(),
        };
        let topic: models::NotificationTopic = admin
            .json(
                Method::POST,
                "/20181201/topics",
                &models::CreateTopicDetails {
                    name: "datasync-errors".into(),
                    compartment_id: compartment.clone(),
                    description: None,
                },
            )
            .await
            .unwrap()
            .json()
            .unwrap();
        let vault = "ocid1.vault.oc1.local.datasync".to_owned();
        let secret = VaultClient::new(oci, &endpoints)
            .unwrap()
            .create_secret(&models::CreateSecretDetails {
                compartment_id: compartment,
                vault_id: vault.clone(),
                key_id: "ocid1.key.oc1.local.k".into(),
                secret_name: scoped_secret_name(CALLER, SECRET),
                description: None,
                secret_content: models::SecretContent::base64(TOKEN.as_bytes()),
                metadata: None,
            })
            .await
            .unwrap();
        let rp = emulator
            .mint_resource_principal("process", &dir.path().join("rp"), Duration::from_secs(3600))
            .unwrap();
        let target = ScriptedTarget::start().await.unwrap();
        let mut config = fdk::Config::default()
            .with("vault_ocid", &vault)
            .with(
                "serviceUnavailable_error_stream_ocid",
                &ids.service_unavailable,
            )
            .with("internalserver_error_stream_ocid", &ids.internal_server)
            .with("unrecoverable_error_stream_ocid", &ids.unrecoverable)
            .with("default_error_stream_ocid", &ids.default)
            .with("dead_letter_stream_ocid", &ids.dead_letter)
            .with("notification_topic_ocid", &topic.topic_id)
            .with("target_allow_list", "127.0.0.1")
            .with("allow_http_targets", "true")
            .with("allow_private_targets", "true")
            .with("target_timeout_ms", "2000")
            .with("DATASYNC_OCI_ENDPOINT", &base);
        for (k, v) in rp.env() {
            config = config.with(k, v);
        }
        Stack {
            emulator,
            base,
            dir,
            admin,
            streams,
            ids,
            topic: topic.topic_id,
            vault,
            secret_id: secret.id,
            target,
            config,
            shutdown,
        }
    }

    /// A message for the scripted target's `path`, as populate writes it.
    pub fn envelope(&self, path: &str, op: &str, payload: serde_json::Value) -> Envelope {
        let mut e = Envelope::new(
            StreamMessage {
                vault_secret_name: Some(SECRET.into()),
                vault_secret_header: None,
                target_rest_api: self.target.url(path),
                target_rest_api_operation: op.into(),
                target_rest_api_payload: Some(Payload::from_value(&payload).unwrap()),
                target_rest_api_headers: vec![HeaderPair {
                    key: "X-Tenant".into(),
                    value: "acme".into(),
                }],
            },
            CALLER.into(),
            SystemTime::now(),
            datasync_core::message::new_traceparent(),
        );
        if op == "DELETE" {
            e.message.target_rest_api_payload = None;
        }
        e
    }

    /// Every message now in `stream`, decoded: (key, value).
    pub async fn read_all(&self, stream: &str) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
        let cursor = self
            .streams
            .create_cursor(stream, "0", &CursorStart::TrimHorizon)
            .await
            .unwrap();
        let (messages, _) = self
            .streams
            .get_messages(stream, &cursor, Some(10_000))
            .await
            .unwrap();
        messages
            .iter()
            .map(|m| (message_key(m).unwrap(), message_value(m).unwrap()))
            .collect()
    }

    pub async fn envelopes_in(&self, stream: &str) -> Vec<(Option<Vec<u8>>, Envelope)> {
        self.read_all(stream)
            .await
            .into_iter()
            .map(|(k, v)| (k, Envelope::decode(&v).unwrap()))
            .collect()
    }

    /// Every value in every stream, and every notification, as one text.
    pub async fn everything_written(&self) -> String {
        let mut all = String::new();
        for s in [
            &self.ids.service_unavailable,
            &self.ids.internal_server,
            &self.ids.unrecoverable,
            &self.ids.default,
            &self.ids.dead_letter,
            &self.ids.other,
        ] {
            for (_, v) in self.read_all(s).await {
                all.push_str(&String::from_utf8_lossy(&v));
                all.push('\n');
            }
        }
        for n in self.emulator.notifications().await.unwrap() {
            all.push_str(&format!("{:?}\n{}\n", n.title, n.body));
        }
        all
    }

    /// Asserts the token appears in no log line, stream value or notification.
    pub async fn assert_no_token_leaked(&self) {
        let secret_part = TOKEN.trim_start_matches("Bearer ");
        let written = self.everything_written().await;
        assert!(
            !written.contains(secret_part),
            "token in a stream or notification"
        );
        assert!(!log_text().contains(secret_part), "token in a log line");
    }
}

/// Serves `handle` with the FDK on a real Unix socket in the stack's directory, as the Fn agent
/// would reach it, and returns an invoker connected to it.
pub async fn serve_on_socket<H, F>(stack: &Stack, handle: H) -> fdk::agent::Invoker
where
    H: Fn(fdk::Context, Bytes) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = fdk::Response> + Send + 'static,
{
    let socket = stack.dir.path().join("fn").join("lsnr.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let handle = Arc::new(handle);
    let svc = fdk::service_fn(move |event: fdk::FnEvent| {
        let (ctx, body) = event.into_parts();
        let answer = handle(ctx, body);
        async move { Ok::<_, std::convert::Infallible>(answer.await) }
    });
    let path = socket.clone();
    tokio::spawn(async move { fdk::serve(path, svc).await });
    for _ in 0..200 {
        if let Ok(invoker) = fdk::agent::Invoker::connect(&socket).await {
            return invoker;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the function did not listen");
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A connector batch (section C) of `(key, value)` at offsets from `first`.
pub fn connector_batch(first: i64, messages: &[(Option<&str>, Vec<u8>)]) -> Bytes {
    let list: Vec<serde_json::Value> = messages
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            serde_json::json!({
                "stream": "DataSyncStream",
                "partition": "0",
                "key": k.map(|k| b64(k.as_bytes())),
                "value": b64(v),
                "offset": (first + i as i64).to_string(),
                "timestamp": "2026-01-01T00:00:00.000Z",
            })
        })
        .collect();
    Bytes::from(serde_json::to_vec(&list).unwrap())
}
