//! Notifications: topics and recorded publications.

use datasync_core::oci::models;
use datasync_core::oci::signer::BodySigning;
use http::{HeaderMap, HeaderValue, Method};

use crate::util::*;

/// PublishMessage to `topic`, signed with the body.
async fn publish(
    emu: &Running,
    topic: &str,
    body: Vec<u8>,
    headers: HeaderMap,
) -> datasync_emulator::client::Answer {
    emu.client
        .send(
            Method::POST,
            &format!("/20181201/topics/{topic}/messages"),
            body,
            BodySigning::Include,
            headers,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn publish_is_recorded_and_listable() {
    let emu = start().await;
    let compartment = emu.emulator.profile().compartment.clone();
    let topic: models::NotificationTopic = emu
        .client
        .json(
            Method::POST,
            "/20181201/topics",
            &models::CreateTopicDetails {
                name: "dead-letters".into(),
                compartment_id: compartment.clone(),
                description: None,
            },
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    let got: models::NotificationTopic = emu
        .client
        .get(&format!("/20181201/topics/{}", topic.topic_id))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(got, topic);
    let mut headers = HeaderMap::new();
    headers.insert("messageType", HeaderValue::from_static("RAW_TEXT"));
    let body = serde_json::to_vec(&models::MessageDetails {
        title: Some("3 permanent failures".into()),
        body: "batch 7".into(),
    })
    .unwrap();
    let answer = publish(&emu, &topic.topic_id, body.clone(), headers).await;
    let published: models::PublishResult = answer.json().unwrap();
    let recorded = emu.emulator.notifications().await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].message_id, published.message_id);
    assert_eq!(recorded[0].title.as_deref(), Some("3 permanent failures"));
    assert_eq!(recorded[0].message_type.as_deref(), Some("RAW_TEXT"));
    let unknown = publish(
        &emu,
        "ocid1.onstopic.oc1.local.nope",
        body,
        HeaderMap::new(),
    )
    .await;
    assert_error(&unknown, 404, "NotAuthorizedOrNotFound");
    assert_eq!(emu.emulator.notifications().await.unwrap().len(), 1);

    // The status page reads only the latest few, oldest first.
    for i in 0..4 {
        let body = serde_json::to_vec(&models::MessageDetails {
            title: Some(format!("more {i}")),
            body: "b".into(),
        })
        .unwrap();
        let answer = publish(&emu, &topic.topic_id, body, HeaderMap::new()).await;
        assert_eq!(answer.status, 200);
    }
    let titles = |notes: Vec<datasync_emulator::PublishedNotification>| {
        notes
            .into_iter()
            .map(|n| n.title.unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let (total, recent) = emu.emulator.recent_notifications(3).await.unwrap();
    assert_eq!(total, 5);
    assert_eq!(titles(recent), ["more 1", "more 2", "more 3"]);
    let (total, recent) = emu.emulator.recent_notifications(10).await.unwrap();
    assert_eq!((total, recent.len()), (5, 5));
}
