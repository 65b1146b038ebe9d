//! The connector pump of the local stack (`stack::pump`), against the emulator: batches form
//! as Connector Hub forms them (full, or `max_wait` after the first message), the append
//! signal replaces polling, and checkpoints survive a restart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datasync_core::oci::auth::{AuthError, AuthProvider, ConfigFileAuth};
use datasync_core::oci::client::{OciClient, RetryPolicy, Timeouts};
use datasync_core::oci::endpoints::Endpoints;
use datasync_core::oci::models;
use datasync_core::oci::objectstorage::ObjectStorageClient;
use datasync_core::oci::signer::Signer;
use datasync_core::oci::streaming::StreamClient;
use datasync_local::emulator::NAMESPACE;
use datasync_local::stack::pump::{Batching, Connector, ConnectorOptions, Sink};
use http::Method;
use tokio_util::sync::CancellationToken;

use crate::util::*;

/// The LOCAL profile, counting the requests signed with it.
#[derive(Debug)]
struct Counting {
    inner: ConfigFileAuth,
    requests: Arc<AtomicUsize>,
}

impl AuthProvider for Counting {
    fn signer(&self) -> Result<Arc<Signer>, AuthError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.signer()
    }
    fn refresh(&self) -> Result<Arc<Signer>, AuthError> {
        self.inner.refresh()
    }
    fn region(&self) -> Option<String> {
        self.inner.region()
    }
}

struct Setup {
    emu: Running,
    stream: String,
    streams: StreamClient,
    objects: ObjectStorageClient,
    /// Requests the connector's clients made.
    requests: Arc<AtomicUsize>,
}

async fn setup() -> Setup {
    // Warnings (a connector's failed read or write, the emulator's slow commits) explain a
    // batch that never arrives; the test harness shows them beside a failing test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let emu = start().await;
    let stream = emu.create_stream("pumped", 1).await.id;
    let compartment = emu.emulator.profile().compartment.clone();
    let answer = emu
        .client
        .json(
            Method::POST,
            &format!("/n/{NAMESPACE}/b/"),
            &models::CreateBucketDetails {
                name: "archive".into(),
                compartment_id: compartment,
            },
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let profile = emu.emulator.profile();
    let requests = Arc::new(AtomicUsize::new(0));
    let auth = Arc::new(Counting {
        inner: ConfigFileAuth::from_config(
            Some(&profile.config_file),
            Some(&profile.profile),
            |_| None,
        )
        .unwrap(),
        requests: requests.clone(),
    });
    let oci = OciClient::with_settings(auth, Timeouts::default(), RetryPolicy::NONE).unwrap();
    let endpoints = Endpoints::all_at(&emu.base).unwrap();
    Setup {
        streams: StreamClient::new(oci.clone(), &endpoints).unwrap(),
        objects: ObjectStorageClient::new(oci, &endpoints).unwrap(),
        emu,
        stream,
        requests,
    }
}

impl Setup {
    fn connector(&self, batching: Batching) -> Arc<Connector> {
        let sink = Sink::Archive {
            client: self.objects.clone(),
            namespace: NAMESPACE.into(),
            bucket: "archive".into(),
            prefix: "p".into(),
        };
        let connector = Connector::new(ConnectorOptions {
            dir: self.emu.dir.path().join("connectors"),
            name: "to-archive".into(),
            stream_id: self.stream.clone(),
            stream_name: "pumped".into(),
            partitions: 1,
            sink,
            batching,
            max_backoff: Duration::from_millis(200),
        })
        .unwrap()
        .with_append_signal(self.emu.emulator.appended(&self.stream));
        Arc::new(connector)
    }

    fn run(&self, connector: &Arc<Connector>) -> CancellationToken {
        let stop = CancellationToken::new();
        tokio::spawn(Arc::clone(connector).run(self.streams.clone(), stop.clone()));
        stop
    }

    async fn put(&self, n: usize, from: usize) {
        let values: Vec<String> = (from..from + n).map(|i| format!("m{i}")).collect();
        let messages: Vec<(Option<&[u8]>, &[u8])> =
            values.iter().map(|v| (None, v.as_bytes())).collect();
        self.emu.put(&self.stream, &messages).await;
    }

    /// Partition 0's committed offset, waiting up to 10 s for it to reach `offset`.
    async fn checkpoint(&self, connector: &Connector, offset: i64) -> Option<i64> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let now = connector.checkpoints().get(&0).copied();
            if now >= Some(offset) || Instant::now() > until {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The archived objects' names, waiting up to 10 s for at least `n`.
    async fn objects(&self, n: usize) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let names: Vec<String> = self
                .objects
                .list_objects(NAMESPACE, "archive", Some("p/"), None, None)
                .await
                .unwrap()
                .objects
                .into_iter()
                .map(|o| o.name)
                .collect();
            if names.len() >= n || Instant::now() > until {
                return names;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn full_batches_go_at_once_and_a_partial_one_after_its_batch_time() {
    let s = setup().await;
    let connector = s.connector(Batching {
        max_messages: 3,
        max_bytes: 1 << 20,
        max_wait: Duration::from_millis(400),
    });
    let stop = s.run(&connector);
    let put_at = Instant::now();
    s.put(7, 0).await;
    let names = s.objects(3).await;
    assert_eq!(
        names,
        [
            "p/0/00000000000000000000-00000000000000000002.jsonl",
            "p/0/00000000000000000003-00000000000000000005.jsonl",
            "p/0/00000000000000000006-00000000000000000006.jsonl",
        ]
    );
    // The seventh message waited for its batch to fill until the batch time ran out.
    assert!(put_at.elapsed() >= Duration::from_millis(400));
    // The checkpoint moves once the target took the batch: just after its object appears.
    assert_eq!(s.checkpoint(&connector, 6).await, Some(6));
    stop.cancel();
}

#[tokio::test]
async fn a_batch_goes_when_its_bytes_are_reached_without_waiting_for_its_time() {
    let s = setup().await;
    let connector = s.connector(Batching {
        max_messages: 10_000,
        max_bytes: 2048,
        max_wait: Duration::from_secs(60),
    });
    let stop = s.run(&connector);
    let big = "x".repeat(1500);
    s.emu
        .put(&s.stream, &[(None, big.as_bytes()), (None, big.as_bytes())])
        .await;
    // Within the helper's 10 s, far from the 60 s batch time.
    assert_eq!(
        s.objects(1).await,
        ["p/0/00000000000000000000-00000000000000000001.jsonl"]
    );
    stop.cancel();
}

#[tokio::test]
async fn an_idle_connector_reads_nothing_until_a_message_is_appended() {
    let s = setup().await;
    let connector = s.connector(Batching {
        max_messages: 100,
        max_bytes: 1 << 20,
        max_wait: Duration::from_millis(50),
    });
    let stop = s.run(&connector);
    // Start: one cursor and one read find the stream empty; then silence.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = s.requests.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        s.requests.load(Ordering::Relaxed),
        settled,
        "an idle connector polled the stream"
    );
    s.put(2, 0).await;
    let names = s.objects(1).await;
    assert_eq!(
        names,
        ["p/0/00000000000000000000-00000000000000000001.jsonl"]
    );
    stop.cancel();
}

#[tokio::test]
async fn a_restarted_connector_continues_after_its_checkpoint() {
    let s = setup().await;
    let batching = Batching {
        max_messages: 2,
        max_bytes: 1 << 20,
        max_wait: Duration::from_millis(50),
    };
    let first = s.connector(batching);
    let stop = s.run(&first);
    s.put(2, 0).await;
    assert_eq!(s.objects(1).await.len(), 1);
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Written while no connector runs: the backlog is read at start, without a signal.
    s.put(2, 2).await;
    let second = s.connector(batching);
    let stop = s.run(&second);
    assert_eq!(
        s.objects(2).await,
        [
            "p/0/00000000000000000000-00000000000000000001.jsonl",
            "p/0/00000000000000000002-00000000000000000003.jsonl",
        ]
    );
    stop.cancel();
}
