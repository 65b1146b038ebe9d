//! The process benchmark: a 1,000-message connector batch, 10% of which the target refuses
//! permanently (400), against the emulator in-process and a target that answers at once.
//! Reports the handling time, the OCI calls made (counted by a wrapper around the auth
//! provider: one signer per request), and the peak RSS with a ~6 MB batch.
//!
//! `cargo run --release -p process --example process_bench`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use datasync_core::deliver::Deliverer;
use datasync_core::function_config::Function;
use datasync_core::message::{scoped_secret_name, Envelope, HeaderPair, StreamMessage};
use datasync_core::oci::auth::{AuthError, AuthProvider, ConfigFileAuth};
use datasync_core::oci::client::OciClient;
use datasync_core::oci::models;
use datasync_core::oci::notifications::NotificationsClient;
use datasync_core::oci::secrets::SecretsClient;
use datasync_core::oci::signer::Signer;
use datasync_core::oci::streaming::StreamClient;
use datasync_core::oci::vault::VaultClient;
use datasync_core::settings::Settings;
use datasync_core::target::TargetClient;
use datasync_local::client::SignedClient;
use datasync_local::emulator::{Emulator, EmulatorOptions};
use datasync_local::target::{Reply, ScriptedTarget};
use http::Method;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Counting {
    inner: ConfigFileAuth,
    calls: Arc<AtomicUsize>,
}

impl AuthProvider for Counting {
    fn signer(&self) -> Result<Arc<Signer>, AuthError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.signer()
    }
    fn refresh(&self) -> Result<Arc<Signer>, AuthError> {
        self.inner.refresh()
    }
    fn region(&self) -> Option<String> {
        self.inner.region()
    }
}

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn batch(target: &ScriptedTarget, first: i64, n: usize, payload_bytes: usize) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let filler = "x".repeat(payload_bytes);
    let list: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let path = if i % 10 == 0 { "/bad" } else { "/ok" };
            let e = Envelope::new(
                StreamMessage {
                    vault_secret_name: Some("bench".into()),
                    target_rest_api: target.url(path),
                    target_rest_api_operation: "POST".into(),
                    target_rest_api_payload: Some(serde_json::json!({"i": i, "fill": filler})),
                    target_rest_api_headers: vec![HeaderPair {
                        key: "X-Bench".into(),
                        value: "1".into(),
                    }],
                },
                "bench-app".into(),
                SystemTime::now(),
                datasync_core::message::new_traceparent(),
            );
            serde_json::json!({
                "stream": "DataSyncStream", "partition": "0", "key": null,
                "value": b64.encode(e.encode().unwrap()),
                "offset": (first + i as i64).to_string(),
                "timestamp": "2026-01-01T00:00:00.000Z",
            })
        })
        .collect();
    serde_json::to_vec(&list).unwrap()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::open(dir.path(), EmulatorOptions::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    {
        let (emu, stop) = (emulator.clone(), stop.clone());
        tokio::spawn(async move { emu.serve(listener, stop).await });
    }
    let admin = SignedClient::for_profile(&base, emulator.profile()).unwrap();
    let compartment = emulator.profile().compartment.clone();
    let mut streams = Vec::new();
    for name in ["su", "is", "un", "df", "dl"] {
        let s: models::Stream = admin
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
        streams.push(s.id);
    }
    let topic: models::NotificationTopic = admin
        .json(
            Method::POST,
            "/20181201/topics",
            &models::CreateTopicDetails {
                name: "t".into(),
                compartment_id: compartment.clone(),
                description: None,
            },
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    let config: Vec<(&str, String)> = vec![
        ("vault_ocid", "ocid1.vault.oc1.local.bench".into()),
        ("serviceUnavailable_error_stream_ocid", streams[0].clone()),
        ("internalserver_error_stream_ocid", streams[1].clone()),
        ("unrecoverable_error_stream_ocid", streams[2].clone()),
        ("default_error_stream_ocid", streams[3].clone()),
        ("dead_letter_stream_ocid", streams[4].clone()),
        ("notification_topic_ocid", topic.topic_id.clone()),
        ("target_allow_list", "127.0.0.1".into()),
        ("allow_http_targets", "true".into()),
        ("allow_private_targets", "true".into()),
        ("DATASYNC_OCI_ENDPOINT", base.clone()),
        // One target host here: let it have the global limit (the default per-host limit,
        // 16, is the bound for many hosts sharing an invocation).
        (
            "per_host_concurrency",
            std::env::var("BENCH_PER_HOST").unwrap_or_else(|_| "64".into()),
        ),
    ];
    let settings = Settings::from_lookup(Function::Process, |k| {
        config.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let auth = Counting {
        inner: ConfigFileAuth::from_config(
            Some(&emulator.profile().config_file),
            Some(&emulator.profile().profile),
            |_| None,
        )
        .unwrap(),
        calls: Arc::clone(&calls),
    };
    let oci = OciClient::new(Arc::new(auth)).unwrap();
    let ep = &settings.endpoints;
    VaultClient::new(oci.clone(), ep)
        .unwrap()
        .create_secret(&models::CreateSecretDetails {
            compartment_id: compartment,
            vault_id: settings.vault.clone(),
            key_id: "ocid1.key.oc1.local.k".into(),
            secret_name: scoped_secret_name("bench-app", "bench"),
            description: None,
            secret_content: models::SecretContent::base64(b"Bearer bench-token"),
            metadata: None,
        })
        .await
        .unwrap();
    let deliverer = Deliverer::new(
        Arc::new(settings.clone()),
        TargetClient::new(settings.target).unwrap(),
        SecretsClient::new(oci.clone(), ep).unwrap(),
        StreamClient::new(oci.clone(), ep).unwrap(),
        NotificationsClient::new(oci, ep).unwrap(),
    );
    let process = process::Process::new(deliverer);
    let target = ScriptedTarget::start().await.unwrap();
    let ctx = || {
        let mut c = fdk::Context::for_test("bench");
        c.deadline = SystemTime::now() + Duration::from_secs(30);
        c
    };
    let run = |label: &'static str, body: Vec<u8>| {
        let process = &process;
        let calls = Arc::clone(&calls);
        let target = &target;
        async move {
            target.clear_requests();
            target.script("/bad", (0..1000).map(|_| Reply::status(400)));
            let before = calls.load(Ordering::SeqCst);
            let started = Instant::now();
            let answer = process.handle(&ctx(), &body).await;
            let took = started.elapsed();
            let made = calls.load(Ordering::SeqCst) - before;
            let summary: serde_json::Value =
                serde_json::from_slice(&answer.body).unwrap_or_default();
            println!(
                "{label}: {} bytes, status {}, {:.1} ms, {made} OCI calls, answer {summary}",
                body.len(),
                answer.status,
                took.as_secs_f64() * 1000.0
            );
            (took, made)
        }
    };
    println!("RSS before: {} kB", rss_kb("VmRSS:"));
    // First batch: the token is read from Vault once.
    run("cold 1000 x ~150 B", batch(&target, 0, 1000, 10)).await;
    let mut times = Vec::new();
    for round in 0..5 {
        let (t, made) = run(
            "warm 1000 x ~150 B",
            batch(&target, 1000 * (round + 1), 1000, 10),
        )
        .await;
        assert!(made <= 3);
        times.push(t);
    }
    times.sort();
    println!("warm median: {:.1} ms", times[2].as_secs_f64() * 1000.0);
    println!(
        "RSS after small batches: {} kB (peak {} kB)",
        rss_kb("VmRSS:"),
        rss_kb("VmHWM:")
    );
    let big = batch(&target, 100_000, 1000, 4_300);
    run("6 MB batch", big).await;
    println!(
        "RSS after the 6 MB batch: {} kB (peak {} kB; the emulator and SQLite run in this process too)",
        rss_kb("VmRSS:"),
        rss_kb("VmHWM:")
    );
    stop.cancel();
}
