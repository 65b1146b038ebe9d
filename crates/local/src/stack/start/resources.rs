//! Stage 2: the streams, the alerts topic, the archive bucket, the parked-keys bucket and the
//! routes bucket and object ([`super::routes`]), created in the emulator when absent (as
//! `terraform/` creates them), their OCIDs kept in `DATA/stack.json`.

use std::path::Path;

use datasync_core::oci::models::{
    CreateBucketDetails, CreateStreamDetails, CreateTopicDetails, NotificationTopic, Stream,
};

use crate::client::SignedClient;
use crate::emulator::{LOCAL_COMPARTMENT, NAMESPACE};
use crate::stack::error::{setup, write_json, StackError};
use crate::stack::streams::{StreamRole, DATA, ROLES};
use crate::stack::{Resources, StackSettings, RESOURCES_FILE};

/// The resources of `dir/stack.json`, with whatever is missing created.
pub(crate) async fn ensure(
    dir: &Path,
    signed: &SignedClient,
    s: &StackSettings,
) -> Result<Resources, StackError> {
    let file = dir.join(RESOURCES_FILE);
    let mut res: Resources = match std::fs::read(&file) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
        Err(_) => Resources::default(),
    };
    let prefix = &s.name_prefix;
    for role in &ROLES {
        let name = role.stream_name(prefix);
        let id = ensure_stream(signed, s, role, &name).await?;
        res.streams.insert(name, id);
    }
    if res.topic.is_none() {
        res.topic = create_topic(signed, prefix).await?;
    }
    if let Some(topic) = &res.topic {
        res.topic_endpoint = topic_endpoint(signed, topic).await;
    }
    res.bucket = format!("{prefix}-failure-archive");
    ensure_bucket(signed, &res.bucket).await?;
    res.parked_bucket = format!("{prefix}-parked-keys");
    ensure_bucket(signed, &res.parked_bucket).await?;
    res.routes_object = super::routes::put(signed, s).await?;
    res.vault = format!("ocid1.vault.oc1.local.{prefix}");
    res.vault_key = format!("ocid1.key.oc1.local.{prefix}");
    write_json(&file, &res)?;
    Ok(res)
}

/// The OCID of the active stream `name`, created with the partitions and retention configured
/// for `role` when there is none. An existing stream keeps its partition count (fixed at
/// creation).
async fn ensure_stream(
    signed: &SignedClient,
    s: &StackSettings,
    role: &StreamRole,
    name: &str,
) -> Result<String, StackError> {
    let what = format!("stream {name}");
    let (partitions, retention) = if *role == DATA {
        (
            s.streams.data_stream_partitions,
            s.streams.data_stream_retention_hours,
        )
    } else {
        (
            s.streams.error_stream_partitions,
            s.streams.error_stream_retention_hours,
        )
    };
    let list = signed
        .get(&format!(
            "/20180418/streams?compartmentId={LOCAL_COMPARTMENT}&name={name}&lifecycleState=ACTIVE"
        ))
        .await
        .map_err(|e| setup(&what, &e))?;
    let found: Vec<Stream> = if list.status.is_success() {
        list.json().unwrap_or_default()
    } else {
        Vec::new()
    };
    if let Some(stream) = found.first() {
        if stream.partitions as u32 != partitions {
            tracing::warn!(stream = %name, has = stream.partitions, configured = partitions, "the stream exists with another partition count (fixed at creation); keeping it");
        }
        return Ok(stream.id.clone());
    }
    let details = CreateStreamDetails {
        name: name.to_owned(),
        partitions: partitions as i32,
        compartment_id: Some(LOCAL_COMPARTMENT.to_owned()),
        retention_in_hours: Some(retention as i32),
        stream_pool_id: None,
    };
    let answer = signed
        .json(http::Method::POST, "/20180418/streams", &details)
        .await
        .map_err(|e| setup(&what, &e))?;
    if !answer.status.is_success() {
        return Err(setup(&what, &String::from_utf8_lossy(&answer.body)));
    }
    let stream: Stream = answer.json().map_err(|e| setup(&what, &e))?;
    Ok(stream.id)
}

/// Creates the alerts topic; `None` (notifications off) when it exists already but its OCID
/// was not kept.
async fn create_topic(signed: &SignedClient, prefix: &str) -> Result<Option<String>, StackError> {
    let what = "the alerts topic";
    let details = CreateTopicDetails {
        name: format!("{prefix}-alerts"),
        compartment_id: LOCAL_COMPARTMENT.to_owned(),
        description: Some("dead-letter messages and failure summaries".to_owned()),
    };
    let answer = signed
        .json(http::Method::POST, "/20181201/topics", &details)
        .await
        .map_err(|e| setup(what, &e))?;
    if !answer.status.is_success() {
        tracing::warn!(answer = %String::from_utf8_lossy(&answer.body), "the alerts topic exists but its OCID is not in stack.json; notifications are off");
        return Ok(None);
    }
    let topic: NotificationTopic = answer.json().map_err(|e| setup(what, &e))?;
    Ok(Some(topic.topic_id))
}

/// The topic's `apiEndpoint` (GetTopic), which PublishMessage is sent to; `None` when it cannot
/// be read (the functions then use the Notifications endpoint).
async fn topic_endpoint(signed: &SignedClient, topic: &str) -> Option<String> {
    let answer = signed
        .get(&format!("/20181201/topics/{topic}"))
        .await
        .ok()?;
    if !answer.status.is_success() {
        tracing::warn!(status = %answer.status, "GetTopic failed; the functions publish to the Notifications endpoint");
        return None;
    }
    answer.json::<NotificationTopic>().ok()?.api_endpoint
}

/// Creates a bucket unless it exists.
pub(super) async fn ensure_bucket(signed: &SignedClient, bucket: &str) -> Result<(), StackError> {
    let what = format!("the bucket {bucket}");
    let details = CreateBucketDetails {
        name: bucket.to_owned(),
        compartment_id: LOCAL_COMPARTMENT.to_owned(),
    };
    let answer = signed
        .json(http::Method::POST, &format!("/n/{NAMESPACE}/b/"), &details)
        .await
        .map_err(|e| setup(&what, &e))?;
    if !answer.status.is_success() && answer.status != http::StatusCode::CONFLICT {
        return Err(setup(&what, &String::from_utf8_lossy(&answer.body)));
    }
    Ok(())
}
