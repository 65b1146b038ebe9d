//! Kill -9 the `datasync emulator` process during sustained PutMessages; after a restart every
//! acknowledged message reads back at its offset with the same content, and no partial or
//! unacknowledged-but-corrupt message exists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datasync_core::oci::auth::ConfigProfile;
use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::models;
use datasync_core::oci::signer::Signer;
use datasync_local::client::{message_value, SignedClient};

/// Every acknowledged message: (partition, offset) -> value.
type Acked = HashMap<(String, i64), Vec<u8>>;

fn start(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_datasync"))
        .args(["emulator", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .strip_prefix("listening on ")
        .expect(&first)
        .to_owned();
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

fn client(dir: &std::path::Path, base: &str) -> SignedClient {
    let profile = ConfigProfile::load(&dir.join("config"), "LOCAL", None).unwrap();
    let key =
        PrivateKey::from_pem(&std::fs::read_to_string(&profile.key_file).unwrap(), None).unwrap();
    SignedClient::new(base, Signer::new(profile.key_id(), key)).unwrap()
}

fn value(writer: usize, seq: usize) -> Vec<u8> {
    let mut v = format!("w{writer:02}-{seq:08}-").into_bytes();
    v.resize(300, b'0' + (seq % 10) as u8);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = start(dir.path());
    let c = client(dir.path(), &base);
    let stream = create_stream(&c).await;
    let acked = write_until_killed(&c, &stream.id, child).await;

    let (mut child, base) = start(dir.path());
    let c = client(dir.path(), &base);
    let stored = read_back(&c, &stream.id).await;
    for (at, v) in &acked {
        assert_eq!(
            stored.get(at),
            Some(v),
            "acknowledged message {at:?} was lost or changed"
        );
    }
    eprintln!(
        "{} acknowledged, {} stored after kill -9",
        acked.len(),
        stored.len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A stream of two partitions.
async fn create_stream(c: &SignedClient) -> models::Stream {
    let created = c
        .json(
            http::Method::POST,
            "/20180418/streams",
            &models::CreateStreamDetails {
                name: "crash".into(),
                partitions: 2,
                compartment_id: Some("ocid1.tenancy.oc1..aaaaaaaalocaltenancy".into()),
                retention_in_hours: None,
                stream_pool_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(created.status, 200);
    created.json().unwrap()
}

/// Eight writers put batches of five until `child` is killed (SIGKILL) after 2,000
/// acknowledged messages (or 20 s); every message acknowledged.
async fn write_until_killed(c: &SignedClient, stream_id: &str, mut child: Child) -> Acked {
    // (partition, offset) -> value, for every acknowledged message.
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let (c, id, acked) = (c.clone(), stream_id.to_owned(), acked.clone());
        writers.push(tokio::spawn(async move {
            for seq in 0.. {
                let batch: Vec<Vec<u8>> = (0..5).map(|i| value(w, seq * 5 + i)).collect();
                let refs: Vec<(Option<&[u8]>, &[u8])> =
                    batch.iter().map(|v| (None, v.as_slice())).collect();
                let Ok(answer) = c.put_messages(&id, &refs).await else {
                    break;
                };
                if answer.status != 200 {
                    break;
                }
                let result: models::PutMessagesResult = answer.json().unwrap();
                let mut map = acked.lock().unwrap();
                for (entry, v) in result.entries.into_iter().zip(batch) {
                    map.insert((entry.partition.unwrap(), entry.offset.unwrap()), v);
                }
            }
        }));
    }
    let started = Instant::now();
    while acked.lock().unwrap().len() < 2_000 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "too few messages were acknowledged before the kill: {}",
        acked.len()
    );

    acked
}

/// Every message of the stream, partition by partition from the trim horizon, checking
/// offsets are contiguous and each value is whole.
async fn read_back(c: &SignedClient, stream_id: &str) -> Acked {
    let mut stored: HashMap<(String, i64), Vec<u8>> = HashMap::new();
    for partition in ["0", "1"] {
        let cursor: models::Cursor = c
            .json(
                http::Method::POST,
                &format!("/20180418/streams/{}/cursors", stream_id),
                &models::CreateCursorDetails {
                    partition: partition.into(),
                    cursor_type: models::CursorType::TrimHorizon,
                    offset: None,
                    time: None,
                },
            )
            .await
            .unwrap()
            .json()
            .unwrap();
        let mut cursor = cursor.value;
        let mut expected_offset = 0;
        loop {
            let answer = c
                .get(&format!(
                    "/20180418/streams/{}/messages?cursor={cursor}",
                    stream_id
                ))
                .await
                .unwrap();
            assert_eq!(answer.status, 200);
            let page: Vec<models::Message> = answer.json().unwrap();
            if page.is_empty() {
                break;
            }
            for m in &page {
                assert_eq!(m.offset, expected_offset, "offsets are contiguous");
                expected_offset += 1;
                let v = message_value(m).unwrap();
                // Whole messages only: every stored value is one a writer produced.
                let text = String::from_utf8_lossy(&v[..13]).to_string();
                let (w, seq) = (
                    text[1..3].parse::<usize>().unwrap(),
                    text[4..12].parse::<usize>().unwrap(),
                );
                assert_eq!(
                    v,
                    value(w, seq),
                    "partial or corrupt message at {partition}/{}",
                    m.offset
                );
                stored.insert((partition.to_owned(), m.offset), v);
            }
            cursor = answer.header("opc-next-cursor").unwrap().to_owned();
        }
    }
    stored
}
