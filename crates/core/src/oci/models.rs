//! The wire types of the OCI operations datasync uses, shared by the clients in this crate and
//! the local emulator, so both sides agree by construction. Field names follow the OCI REST
//! API (camelCase JSON); optional fields are skipped when absent so requests match what the
//! official SDKs send.

use serde::{Deserialize, Serialize};

/// The standard OCI error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code such as `InvalidParameter` or `NotAuthorizedOrNotFound`.
    pub code: String,
    /// A message for people.
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Streaming (API 20180418)
// ---------------------------------------------------------------------------------------------

/// One message to put. `key` and `value` are base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutMessagesDetailsEntry {
    /// The key, base64; messages with the same key go to the same partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value, base64.
    pub value: String,
}

/// The body of PutMessages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutMessagesDetails {
    /// The messages, in order.
    pub messages: Vec<PutMessagesDetailsEntry>,
}

/// The outcome of one message of a PutMessages call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutMessagesResultEntry {
    /// The partition it went to (absent on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Its offset (absent on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// When the stream stored it, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The error code when this message failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The error message when this message failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// The answer to PutMessages: one entry per message, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutMessagesResult {
    /// How many entries failed.
    pub failures: i32,
    /// The entries.
    pub entries: Vec<PutMessagesResultEntry>,
}

/// Where a partition cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CursorType {
    /// At `offset`.
    AtOffset,
    /// Just after `offset`.
    AfterOffset,
    /// At the first message at or after `time`.
    AtTime,
    /// After the last message now in the partition.
    Latest,
    /// At the oldest message retained.
    TrimHorizon,
}

/// The body of CreateCursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateCursorDetails {
    /// The partition, as a string.
    pub partition: String,
    /// The cursor type.
    #[serde(rename = "type")]
    pub cursor_type: CursorType,
    /// For AT_OFFSET and AFTER_OFFSET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// For AT_TIME, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// Where a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupCursorType {
    /// At the first message at or after `time`.
    AtTime,
    /// After the last message now in the stream.
    Latest,
    /// At the oldest message retained.
    TrimHorizon,
}

/// The body of CreateGroupCursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateGroupCursorDetails {
    /// Used only when the group is first created.
    #[serde(rename = "type")]
    pub cursor_type: GroupCursorType,
    /// For AT_TIME, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The consumer group.
    pub group_name: String,
    /// This consumer's name in the group (a UUID when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    /// Inactivity after which this instance's partition reservations are released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_in_ms: Option<i64>,
    /// Whether GetMessages commits the previous batch (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_on_get: Option<bool>,
}

/// A cursor, opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The cursor.
    pub value: String,
}

/// A message as GetMessages returns it (and as Service Connector Hub delivers it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The stream's name.
    pub stream: String,
    /// The partition, as a string.
    pub partition: String,
    /// The key, base64, or null.
    pub key: Option<String>,
    /// The value, base64.
    pub value: String,
    /// The offset in the partition.
    pub offset: i64,
    /// When it was stored, RFC 3339 with milliseconds.
    pub timestamp: String,
}

/// A stream (control plane).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stream {
    /// The stream's OCID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Retention, 24 to 168 hours.
    pub retention_in_hours: i32,
    /// Its compartment.
    pub compartment_id: String,
    /// Its stream pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_pool_id: Option<String>,
    /// `CREATING`, `ACTIVE`, `DELETING`, `DELETED`, `FAILED` or `UPDATING`.
    pub lifecycle_state: String,
    /// The data-plane endpoint for this stream's messages.
    pub messages_endpoint: String,
    /// Creation time, RFC 3339.
    pub time_created: String,
}

/// The body of CreateStream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateStreamDetails {
    /// The name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Its compartment (or give `stream_pool_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compartment_id: Option<String>,
    /// Retention, 24 to 168 hours (default 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_in_hours: Option<i32>,
    /// Its stream pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_pool_id: Option<String>,
}

/// A partition reservation of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionReservation {
    /// The partition.
    pub partition: String,
    /// The latest committed offset, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_offset: Option<i64>,
    /// When the reservation lapses, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_reserved_until: Option<String>,
    /// The instance holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_instance: Option<String>,
}

/// A consumer group (GetGroup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The stream.
    pub stream_id: String,
    /// The group's name.
    pub group_name: String,
    /// Its partition reservations, with committed offsets.
    #[serde(default)]
    pub reservations: Vec<PartitionReservation>,
}

/// The body of UpdateGroup: moves the group's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateGroupDetails {
    /// Where to move it.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub cursor_type: Option<GroupCursorType>,
    /// For AT_TIME.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Secrets (20190301) and Vault secret management (20180608)
// ---------------------------------------------------------------------------------------------

/// Secret content; datasync always uses `contentType: BASE64`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretContent {
    /// `BASE64`.
    pub content_type: String,
    /// The secret, base64.
    pub content: String,
    /// A version name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `CURRENT` or `PENDING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

impl SecretContent {
    /// Base64 content of `secret`, staged CURRENT.
    pub fn base64(secret: &[u8]) -> Self {
        use base64::Engine as _;
        Self {
            content_type: "BASE64".into(),
            content: base64::engine::general_purpose::STANDARD.encode(secret),
            name: None,
            stage: Some("CURRENT".into()),
        }
    }
}

/// The content part of a secret bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretBundleContent {
    /// `BASE64`.
    pub content_type: String,
    /// The secret, base64.
    pub content: String,
}

/// A secret version's content (GetSecretBundle, GetSecretBundleByName).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretBundle {
    /// The secret's OCID.
    pub secret_id: String,
    /// The version number.
    pub version_number: i64,
    /// The version name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_name: Option<String>,
    /// The stages of this version (`CURRENT`, `LATEST`, ...).
    #[serde(default)]
    pub stages: Vec<String>,
    /// When the version was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_created: Option<String>,
    /// When the version expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_of_expiry: Option<String>,
    /// The content.
    pub secret_bundle_content: SecretBundleContent,
}

/// The body of CreateSecret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSecretDetails {
    /// The compartment.
    pub compartment_id: String,
    /// The vault.
    pub vault_id: String,
    /// The AES master key in that vault.
    pub key_id: String,
    /// The name, unique in the vault.
    pub secret_name: String,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The first version's content.
    pub secret_content: SecretContent,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The body of UpdateSecret: a new content makes a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSecretDetails {
    /// The new version's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_content: Option<SecretContent>,
    /// A new description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A secret's management view (CreateSecret, UpdateSecret, GetSecret, ListSecrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// The secret's OCID.
    pub id: String,
    /// Its name.
    pub secret_name: String,
    /// Its vault.
    pub vault_id: String,
    /// Its compartment.
    pub compartment_id: String,
    /// Its master key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// `ACTIVE`, `PENDING_DELETION`, ...
    pub lifecycle_state: String,
    /// The CURRENT version's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version_number: Option<i64>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was created.
    pub time_created: String,
    /// When a scheduled deletion happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_of_deletion: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Notifications (20181201)
// ---------------------------------------------------------------------------------------------

/// The body of PublishMessage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDetails {
    /// The title (email subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The body.
    pub body: String,
}

/// The answer to PublishMessage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishResult {
    /// The message's id.
    pub message_id: String,
    /// When it was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_stamp: Option<String>,
}

/// A notification topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationTopic {
    /// The topic's OCID.
    pub topic_id: String,
    /// Its name.
    pub name: String,
    /// Its compartment.
    pub compartment_id: String,
    /// `ACTIVE`, ...
    pub lifecycle_state: String,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was created.
    pub time_created: String,
    /// Where to publish to it and manage its subscriptions (`apiEndpoint`): PublishMessage
    /// is documented against this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_endpoint: Option<String>,
}

/// The body of CreateTopic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTopicDetails {
    /// The name.
    pub name: String,
    /// The compartment.
    pub compartment_id: String,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Object Storage
// ---------------------------------------------------------------------------------------------

/// The body of CreateBucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBucketDetails {
    /// The name.
    pub name: String,
    /// The compartment.
    pub compartment_id: String,
}

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The compartment.
    pub compartment_id: String,
    /// When it was created.
    pub time_created: String,
    /// Its entity tag.
    pub etag: String,
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSummary {
    /// The object's name.
    pub name: String,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Its entity tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// When it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_created: Option<String>,
}

/// The answer to ListObjects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListObjects {
    /// The objects, in name order.
    pub objects: Vec<ObjectSummary>,
    /// Where the next page starts, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_start_with: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn connector_and_get_messages_shape_round_trips() {
        let text = r#"{"stream":"mynewstream","partition":"0","key":null,"value":"eyJhIjoxfQ==","offset":0,"timestamp":"2018-04-26T01:03:06.051Z"}"#;
        let m: Message = serde_json::from_str(text).unwrap();
        assert_eq!(m.key, None);
        assert_eq!(serde_json::to_string(&m).unwrap(), text);
    }

    #[test]
    fn cursor_types_use_the_api_spelling() {
        let d = CreateCursorDetails {
            partition: "0".into(),
            cursor_type: CursorType::AfterOffset,
            offset: Some(41),
            time: None,
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"partition":"0","type":"AFTER_OFFSET","offset":41}"#
        );
        let g: CreateGroupCursorDetails = serde_json::from_str(
            r#"{"type":"TRIM_HORIZON","groupName":"g","commitOnGet":false,"timeoutInMs":30000}"#,
        )
        .unwrap();
        assert_eq!(g.cursor_type, GroupCursorType::TrimHorizon);
        assert_eq!(g.commit_on_get, Some(false));
    }

    #[test]
    fn put_messages_result_entries_keep_errors() {
        let r: PutMessagesResult = serde_json::from_str(
            r#"{"failures":1,"entries":[{"partition":"0","offset":5,"timestamp":"t"},{"error":"TooManyRequests","errorMessage":"slow down"}]}"#,
        )
        .unwrap();
        assert_eq!(r.entries[0].offset, Some(5));
        assert_eq!(r.entries[1].error.as_deref(), Some("TooManyRequests"));
    }
}
