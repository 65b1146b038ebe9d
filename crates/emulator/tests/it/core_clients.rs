//! The Rust clients of `datasync-core` against a running emulator, for every operation they
//! have: authenticated with `ConfigFileAuth` on the emulator's generated `LOCAL` profile and,
//! for one call, with a minted resource principal (`ResourcePrincipalAuth`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use datasync_core::oci::auth::{AuthProvider, ConfigFileAuth, ResourcePrincipalAuth};
use datasync_core::oci::client::{OciClient, OciError, OciRequest, RetryPolicy, Timeouts};
use datasync_core::oci::endpoints::Endpoints;
use datasync_core::oci::models;
use datasync_core::oci::notifications::NotificationsClient;
use datasync_core::oci::objectstorage::ObjectStorageClient;
use datasync_core::oci::secrets::{SecretStage, SecretsClient};
use datasync_core::oci::streaming::{
    message_key, message_value, CursorStart, PutMessage, StreamClient, MAX_REQUEST_BYTES,
};
use datasync_core::oci::vault::VaultClient;
use http::Method;

use crate::util::*;

fn oci_client(auth: Arc<dyn AuthProvider>) -> OciClient {
    OciClient::with_settings(auth, Timeouts::default(), RetryPolicy::NONE).unwrap()
}

fn local_auth(emu: &Running) -> Arc<dyn AuthProvider> {
    let profile = emu.emulator.profile();
    Arc::new(
        ConfigFileAuth::from_config(Some(&profile.config_file), Some(&profile.profile), |_| None)
            .unwrap(),
    )
}

async fn send_json<T: serde::de::DeserializeOwned>(
    oci: &OciClient,
    base: &str,
    method: Method,
    path: &str,
    body: &impl serde::Serialize,
) -> T {
    let url = url::Url::parse(&format!("{base}{path}")).unwrap();
    let request = OciRequest::new("Setup", method, url).json(body).unwrap();
    oci.send_json(&request).await.unwrap()
}

#[tokio::test]
async fn stream_client_every_operation() {
    let emu = start().await;
    let endpoints = Endpoints::all_at(&emu.base).unwrap();
    let streams = StreamClient::new(oci_client(local_auth(&emu)), &endpoints).unwrap();
    let created = emu.create_stream("core-clients", 2).await;
    let id = created.id.as_str();

    // GetStream.
    let got = streams.get_stream(id).await.unwrap();
    assert_eq!(got.name, "core-clients");
    assert_eq!(got.partitions, 2);
    assert_eq!(got.messages_endpoint, emu.base);

    // PutMessages: one small keyed batch, then a batch the client must split (> 1 MiB).
    let small = vec![
        PutMessage::keyed(&b"k"[..], &b"first"[..]),
        PutMessage::keyed(&b"k"[..], &b"second"[..]),
    ];
    let stored: Vec<_> = streams
        .put_messages(id, &small)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].partition, stored[1].partition);
    assert_eq!(stored[1].offset, stored[0].offset + 1);
    let keyed_partition = stored[0].partition.clone();

    let chunk = MAX_REQUEST_BYTES / 3;
    let big: Vec<PutMessage> = (0..5u8)
        .map(|i| PutMessage::keyed(Bytes::from(vec![b'b']), Bytes::from(vec![i; chunk])))
        .collect();
    let outcomes = streams.put_messages(id, &big).await.unwrap();
    assert_eq!(outcomes.len(), 5);
    let big_stored: Vec<_> = outcomes.into_iter().map(Result::unwrap).collect();
    let big_partition = big_stored[0].partition.clone();
    assert!(big_stored.iter().all(|s| s.partition == big_partition));
    for pair in big_stored.windows(2) {
        assert_eq!(pair[1].offset, pair[0].offset + 1);
    }

    // CreateCursor, all five types, and GetMessages from each.
    let p = keyed_partition.as_str();
    let read = |cursor: String| {
        let streams = streams.clone();
        async move {
            let (messages, next) = streams.get_messages(id, &cursor, Some(10)).await.unwrap();
            assert!(!next.is_empty());
            messages
                .iter()
                .map(|m| message_value(m).unwrap())
                .collect::<Vec<_>>()
        }
    };
    let trim = streams
        .create_cursor(id, p, &CursorStart::TrimHorizon)
        .await
        .unwrap();
    let all = read(trim).await;
    assert_eq!(all[0], b"first");
    assert_eq!(all[1], b"second");
    let at = streams
        .create_cursor(id, p, &CursorStart::AtOffset(stored[1].offset))
        .await
        .unwrap();
    assert_eq!(read(at).await[0], b"second");
    let after = streams
        .create_cursor(id, p, &CursorStart::AfterOffset(stored[0].offset))
        .await
        .unwrap();
    assert_eq!(read(after).await[0], b"second");
    let time = stored[0].timestamp.clone().unwrap();
    let at_time = streams
        .create_cursor(id, p, &CursorStart::AtTime(time))
        .await
        .unwrap();
    assert_eq!(read(at_time).await[0], b"first");
    let latest = streams
        .create_cursor(id, p, &CursorStart::Latest)
        .await
        .unwrap();
    assert!(read(latest).await.is_empty());

    // The split batch reads back whole, keys included.
    let cursor = streams
        .create_cursor(
            id,
            &big_partition,
            &CursorStart::AtOffset(big_stored[0].offset),
        )
        .await
        .unwrap();
    let mut cursor = cursor;
    let mut values = Vec::new();
    for _ in 0..10 {
        let (page, next) = streams.get_messages(id, &cursor, None).await.unwrap();
        cursor = next;
        for m in &page {
            if message_key(m).unwrap().as_deref() == Some(&b"b"[..]) {
                values.push(message_value(m).unwrap());
            }
        }
        if values.len() == 5 || page.is_empty() {
            break;
        }
    }
    assert_eq!(values.len(), 5);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v.len(), chunk);
        assert!(v.iter().all(|b| usize::from(*b) == i));
    }

    // Consumer groups: CreateGroupCursor, GetMessages, ConsumerCommit, ConsumerHeartbeat.
    let group = streams
        .create_group_cursor(
            id,
            &models::CreateGroupCursorDetails {
                cursor_type: models::GroupCursorType::TrimHorizon,
                time: None,
                group_name: "g".into(),
                instance_name: Some("i1".into()),
                timeout_in_ms: Some(30_000),
                commit_on_get: Some(false),
            },
        )
        .await
        .unwrap();
    let (messages, next) = streams
        .get_messages(id, &group, Some(10_000))
        .await
        .unwrap();
    assert_eq!(messages.len(), 7);
    let committed = streams.consumer_commit(id, &next).await.unwrap();
    let beat = streams.consumer_heartbeat(id, &committed).await.unwrap();
    let (rest, _) = streams.get_messages(id, &beat, None).await.unwrap();
    assert!(rest.is_empty());
    // A new instance of the group starts after the committed offsets.
    let other = streams
        .create_group_cursor(
            id,
            &models::CreateGroupCursorDetails {
                cursor_type: models::GroupCursorType::TrimHorizon,
                time: None,
                group_name: "g".into(),
                instance_name: Some("i1".into()),
                timeout_in_ms: None,
                commit_on_get: None,
            },
        )
        .await
        .unwrap();
    let (again, _) = streams.get_messages(id, &other, None).await.unwrap();
    assert!(again.is_empty());

    // An unknown stream is a 404 the client reports with its status.
    let err = streams.get_stream("ocid1.stream.oc1.local.none").await;
    assert!(
        matches!(err, Err(ref e) if e.status() == Some(404)),
        "{err:?}"
    );
}

#[tokio::test]
async fn vault_and_secrets_clients() {
    let emu = start().await;
    let endpoints = Endpoints::all_at(&emu.base).unwrap();
    let oci = oci_client(local_auth(&emu));
    let vault = VaultClient::new(oci.clone(), &endpoints).unwrap();
    let secrets = SecretsClient::new(oci, &endpoints).unwrap();
    let compartment = emu.emulator.profile().compartment.clone();
    let vault_id = "ocid1.vault.oc1.local.core";

    let secret = vault
        .create_secret(&models::CreateSecretDetails {
            compartment_id: compartment.clone(),
            vault_id: vault_id.into(),
            key_id: "ocid1.key.oc1.local.k".into(),
            secret_name: "api-token".into(),
            description: Some("first".into()),
            secret_content: models::SecretContent::base64(b"v1"),
            metadata: None,
        })
        .await
        .unwrap();
    assert_eq!(secret.current_version_number, Some(1));

    let updated = vault
        .update_secret(
            &secret.id,
            &models::UpdateSecretDetails {
                secret_content: Some(models::SecretContent::base64(b"v2")),
                description: Some("second".into()),
                metadata: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.current_version_number, Some(2));
    assert_eq!(updated.description.as_deref(), Some("second"));

    let listed = vault
        .list_secrets(&compartment, Some(vault_id), Some("api-token"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, secret.id);
    assert!(vault
        .list_secrets(&compartment, Some(vault_id), Some("absent"))
        .await
        .unwrap()
        .is_empty());

    let current = secrets.get_secret_bundle(&secret.id, None).await.unwrap();
    assert_eq!(current.content(), b"v2");
    let previous = secrets
        .get_secret_bundle(&secret.id, Some(SecretStage::Previous))
        .await
        .unwrap();
    assert_eq!(previous.content(), b"v1");
    let by_name = secrets
        .get_secret_bundle_by_name("api-token", vault_id)
        .await
        .unwrap();
    assert_eq!(by_name.text().unwrap(), "v2");
    let missing = secrets
        .get_secret_bundle_by_name("absent", vault_id)
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404));
}

#[tokio::test]
async fn notifications_and_object_storage_clients() {
    let emu = start().await;
    let endpoints = Endpoints::all_at(&emu.base).unwrap();
    let oci = oci_client(local_auth(&emu));
    let compartment = emu.emulator.profile().compartment.clone();

    let topic: models::NotificationTopic = send_json(
        &oci,
        &emu.base,
        Method::POST,
        "/20181201/topics",
        &models::CreateTopicDetails {
            name: "alerts".into(),
            compartment_id: compartment.clone(),
            description: None,
        },
    )
    .await;
    let notifications = NotificationsClient::new(oci.clone(), &endpoints).unwrap();
    let published = notifications
        .publish_message(
            &topic.topic_id,
            &models::MessageDetails {
                title: Some("disk".into()),
                body: "almost full".into(),
            },
        )
        .await
        .unwrap();
    assert!(!published.message_id.is_empty());
    let seen = emu.emulator.notifications().await.unwrap();
    assert_eq!(seen.len(), 1);

    let objects = ObjectStorageClient::new(oci.clone(), &endpoints).unwrap();
    let ns = objects.get_namespace().await.unwrap();
    assert_eq!(ns, datasync_emulator::NAMESPACE);
    let _: models::Bucket = send_json(
        &oci,
        &emu.base,
        Method::POST,
        &format!("/n/{ns}/b/"),
        &models::CreateBucketDetails {
            name: "dead".into(),
            compartment_id: compartment,
        },
    )
    .await;
    let names = ["2024/a b.json", "2024/c.json", "other/ünï.json"];
    let mut etags = HashMap::new();
    for name in names {
        let put = objects
            .put_object(
                &ns,
                "dead",
                name,
                Bytes::from(format!("body of {name}")),
                Some("application/json"),
            )
            .await
            .unwrap();
        assert!(put.content_md5.is_some());
        etags.insert(name, put.etag.unwrap());
    }
    for name in names {
        let got = objects.get_object(&ns, "dead", name).await.unwrap();
        assert_eq!(got.body, Bytes::from(format!("body of {name}")));
        assert_eq!(got.content_type.as_deref(), Some("application/json"));
        assert_eq!(got.etag.as_ref(), etags.get(name));
    }
    let page = objects
        .list_objects(&ns, "dead", Some("2024/"), None, Some(1))
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 1);
    assert_eq!(page.objects[0].name, "2024/a b.json");
    let start = page.next_start_with.unwrap();
    let rest = objects
        .list_objects(&ns, "dead", Some("2024/"), Some(&start), None)
        .await
        .unwrap();
    assert_eq!(rest.objects.len(), 1);
    assert_eq!(rest.objects[0].name, "2024/c.json");
    let missing = objects.get_object(&ns, "dead", "nope").await.unwrap_err();
    assert!(matches!(missing, OciError::Service { status: 404, .. }));
}

#[tokio::test]
async fn resource_principal_signs_a_core_client_call() {
    let emu = start().await;
    let principal = emu
        .emulator
        .mint_resource_principal("fn", &emu.dir.path().join("rp"), Duration::from_secs(600))
        .unwrap();
    let env: HashMap<String, String> = principal.env().into_iter().collect();
    let auth = ResourcePrincipalAuth::from_env(|k| env.get(k).cloned()).unwrap();
    let endpoints = Endpoints::all_at(&emu.base).unwrap();
    let streams = StreamClient::new(oci_client(Arc::new(auth)), &endpoints).unwrap();
    let created = emu.create_stream("rp", 1).await;
    let got = streams.get_stream(&created.id).await.unwrap();
    assert_eq!(got.id, created.id);
    let stored = streams
        .put_messages(
            &created.id,
            &[PutMessage::new(None, &b"from a function"[..])],
        )
        .await
        .unwrap();
    assert!(stored[0].is_ok());
}
