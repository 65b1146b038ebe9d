//! The parked keys (`datasync_core::parked`) against the emulator's Object Storage: each store
//! stands for one function instance, with its own remembered version, and the interleavings
//! that matter for per-key order are played out call by call.

use std::sync::Arc;

use datasync_core::classify::ErrorClass;
use datasync_core::oci::auth::{AuthProvider, ConfigFileAuth};
use datasync_core::oci::client::{OciClient, RetryPolicy, Timeouts};
use datasync_core::oci::endpoints::Endpoints;
use datasync_core::oci::models;
use datasync_core::oci::objectstorage::ObjectStorageClient;
use datasync_core::parked::{
    parked_reads, parked_writes, Change, ParkedLocation, ParkedStore, Parking,
};
use http::Method;

use crate::util::*;

async fn stores(emu: &Running, n: usize) -> Vec<ParkedStore> {
    let profile = emu.emulator.profile();
    emu.client
        .json(
            Method::POST,
            "/n/local/b/",
            &models::CreateBucketDetails {
                name: "parked".into(),
                compartment_id: profile.compartment.clone(),
            },
        )
        .await
        .unwrap();
    let auth: Arc<dyn AuthProvider> = Arc::new(
        ConfigFileAuth::from_config(Some(&profile.config_file), Some(&profile.profile), |_| None)
            .unwrap(),
    );
    let endpoints = Endpoints::all_at(&emu.base).unwrap();
    (0..n)
        .map(|_| {
            let oci =
                OciClient::with_settings(Arc::clone(&auth), Timeouts::default(), RetryPolicy::NONE)
                    .unwrap();
            ParkedStore::new(
                ObjectStorageClient::new(oci, &endpoints).unwrap(),
                ParkedLocation {
                    namespace: "local".into(),
                    bucket: "parked".into(),
                    object: "parked-keys.json".into(),
                },
            )
        })
        .collect()
}

fn parking() -> Parking {
    Parking {
        stream: "ocid1.stream.errors".into(),
        class: ErrorClass::ServiceUnavailable,
        not_before_ms: 0,
        manual: false,
    }
}

fn hold(key: &str, ids: &[&str]) -> Change {
    Change::Hold {
        key: key.into(),
        ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        parking: parking(),
    }
}

fn settled(key: &str, id: &str) -> Change {
    Change::Settled {
        key: key.into(),
        id: id.into(),
    }
}

async fn queue(store: &ParkedStore, key: &str) -> Vec<String> {
    let snapshot = store.read().await.unwrap();
    snapshot
        .set
        .get(key)
        .map(|e| e.queue.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn two_instances_parking_one_key_at_once_queue_both_in_write_order() {
    let emu = start().await;
    let s = stores(&emu, 3).await;
    // Both read the set before either parks: no object yet.
    let (a, b) = (s[0].read().await.unwrap(), s[1].read().await.unwrap());
    assert!(a.etag.is_none() && a.set.is_empty());
    s[0].commit(a, &[hold("k", &["m1"])]).await.unwrap();
    // The second create-only write loses (412 IfNoneMatchFailed), reads the first one's set,
    // and queues its message behind m1.
    s[1].commit(b, &[hold("k", &["m2"])]).await.unwrap();
    assert_eq!(queue(&s[2], "k").await, ["m1", "m2"]);
}

#[tokio::test]
async fn a_reader_sees_a_park_made_after_its_last_read_and_304_costs_no_body() {
    let emu = start().await;
    let s = stores(&emu, 2).await;
    let before = s[1].read().await.unwrap();
    assert!(before.set.is_empty());
    let base = s[0].read().await.unwrap();
    s[0].commit(base, &[hold("k", &["m1"])]).await.unwrap();
    let after = s[1].read().await.unwrap();
    assert_eq!(after.set.get("k").unwrap().queue, ["m1"]);
    // Unchanged since: the read is a 304 and yields the same version.
    let again = s[1].read().await.unwrap();
    assert_eq!(again.etag, after.etag);
    assert!(Arc::ptr_eq(&again.set, &after.set));
}

#[tokio::test]
async fn a_message_held_while_its_key_is_released_becomes_the_new_blocker() {
    let emu = start().await;
    let s = stores(&emu, 3).await;
    let (process, retry) = (&s[0], &s[1]);
    let base = process.read().await.unwrap();
    process.commit(base, &[hold("k", &["m1"])]).await.unwrap();
    // process reads the key parked and routes m2 behind m1 ...
    let seen_by_process = process.read().await.unwrap();
    assert!(seen_by_process.set.get("k").is_some());
    // ... while retry delivers m1 and releases the key.
    let seen_by_retry = retry.read().await.unwrap();
    retry
        .commit(seen_by_retry, &[settled("k", "m1")])
        .await
        .unwrap();
    assert!(queue(&s[2], "k").await.is_empty());
    // process's write is refused (if-match on the old version), applied to the released set,
    // and parks the key again behind m2: it is never delivered before m1 was, and a later
    // message of the key waits behind it.
    process
        .commit(seen_by_process, &[hold("k", &["m2"])])
        .await
        .unwrap();
    assert_eq!(queue(&s[2], "k").await, ["m2"]);
}

#[tokio::test]
async fn a_blocker_never_written_is_dropped_by_the_age_sweep() {
    let emu = start().await;
    let s = stores(&emu, 2).await;
    // A crash between parking and routing: m1 parked the key but never reached a stream, and
    // its batch was not delivered again.
    let base = s[0].read().await.unwrap();
    s[0].commit(base, &[hold("k", &["m1", "m2"])])
        .await
        .unwrap();
    let snapshot = s[1].read().await.unwrap();
    let now = datasync_core::parked::epoch_ms(std::time::SystemTime::now());
    assert!(
        snapshot.set.stale(now, 60_000).is_empty(),
        "young heads stay"
    );
    let stale = snapshot.set.stale(now + 120_000, 60_000);
    s[1].commit(snapshot, &stale).await.unwrap();
    assert_eq!(queue(&s[0], "k").await, ["m2"]);
}

#[tokio::test]
async fn reads_and_writes_are_counted_and_an_unchanged_set_is_not_written() {
    let emu = start().await;
    let s = stores(&emu, 1).await;
    let (reads, writes) = (parked_reads(), parked_writes());
    let base = s[0].read().await.unwrap();
    let written = s[0].commit(base, &[hold("k", &["m1"])]).await.unwrap();
    // Settling a message that is not queued changes nothing: no write.
    s[0].commit(written, &[settled("k", "other")])
        .await
        .unwrap();
    // Counters are process-wide (other tests run alongside): at least ours.
    assert!(parked_reads() > reads);
    assert!(parked_writes() > writes);
}
