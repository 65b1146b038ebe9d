//! The group-mode contract of `POST /stream/retry`, one type per message: the request a
//! client sends ([`GroupModeRequest`]) and the two answers ([`GroupAnswer`], [`DryRunAnswer`]).
//! The function writes its answers through these types and `datasync retry` reads them back
//! through the same ones, so a renamed field is a compile error on both sides rather than a
//! silent zero.
//!
//! The function itself does not read the request through [`GroupModeRequest`]: it parses every
//! body with [`crate::request::RetryRequest`], which refuses unknown fields and names the field
//! at fault in its 400.

use datasync_core::deliver::HostHealth;
use serde::{Deserialize, Serialize};

/// A group-mode call, as a client sends it: `{"stream","max"?,"dryRun"?,"group"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupModeRequest {
    /// The error stream to read (an OCID).
    pub stream: String,
    /// The most messages to handle, 1 to 10000 (left out: [`crate::DEFAULT_GROUP_MAX`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Report what is due without delivering anything (left out when false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// The consumer group keeping the position (left out: the function's retry group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl GroupModeRequest {
    /// A call handling up to `max` messages of `stream` in the function's own group.
    pub fn new(stream: impl Into<String>, max: u32) -> Self {
        Self {
            stream: stream.into(),
            max: Some(max),
            dry_run: false,
            group: None,
        }
    }
}

/// What a group-mode call did:
/// `{"dryRun":false,"processed","delivered","rerouted","deadLettered","nextDueAt","endOfStream"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupAnswer {
    /// Always false.
    pub dry_run: bool,
    /// Messages handled (and committed).
    pub processed: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages that failed again and were re-routed to be retried.
    pub rerouted: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// The `notBefore` (RFC 3339) of the first message not yet due, if one stopped the call.
    pub next_due_at: Option<String>,
    /// Whether nothing follows what was handled.
    pub end_of_stream: bool,
    /// Every target host this instance called: breaker state, adaptive concurrency, pause
    /// (`docs/isolation.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostHealth>,
    /// Per route, the routed messages delivered and failed again (`docs/routes.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<datasync_core::route_counts::RouteTally>,
}

/// What a group-mode call on the callback stream did (`docs/callbacks.md`):
/// `{"callbacks":true,"dryRun","processed","due","sent","queued","abandoned","nextDueAt","endOfStream"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackAnswer {
    /// Always true: the stream read was the callback stream.
    pub callbacks: bool,
    /// Whether nothing was sent (a dry run).
    pub dry_run: bool,
    /// Records handled (and committed): those due, and those not yet due written back behind.
    pub processed: u64,
    /// Records that were due.
    pub due: u64,
    /// Callbacks a receiver took.
    pub sent: u64,
    /// Callbacks written back to be tried again later (the not-yet-due ones included).
    pub queued: u64,
    /// Callbacks abandoned: their tries or age used up, or refused for good.
    pub abandoned: u64,
    /// The earliest `notBefore` (RFC 3339) of the records left in place, if any.
    pub next_due_at: Option<String>,
    /// Whether nothing follows what was handled.
    pub end_of_stream: bool,
}

/// A release-mode call, as a client sends it: `{"releaseKey"}`. The key's blocker leaves the
/// parked keys, so the messages waiting behind it are attempted in order; the key is released
/// when none wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseKeyRequest {
    /// The message key, as text.
    pub release_key: String,
}

/// What a release did: `{"key","parked","dropped","waiting"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseKeyAnswer {
    /// The key, as sent.
    pub key: String,
    /// Whether it was parked.
    pub parked: bool,
    /// The id of the blocker dropped, when it was parked.
    pub dropped: Option<String>,
    /// Messages still waiting behind the key (0: released).
    pub waiting: u64,
}

/// What a dry run found:
/// `{"dryRun":true,"processed":0,"due","read","nextDueAt","endOfStream":null}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRunAnswer {
    /// Always true.
    pub dry_run: bool,
    /// Always 0: nothing is delivered.
    pub processed: u64,
    /// Messages that would be handled.
    pub due: u64,
    /// Messages read.
    pub read: u64,
    /// The `notBefore` (RFC 3339) of the first message not yet due.
    pub next_due_at: Option<String>,
    /// Not checked: always `null`.
    pub end_of_stream: Option<bool>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_round_trip_with_their_wire_names() {
        let group = GroupAnswer {
            dry_run: false,
            processed: 3,
            delivered: 1,
            rerouted: 1,
            dead_lettered: 1,
            next_due_at: Some("2026-12-05T09:00:00Z".into()),
            end_of_stream: false,
            hosts: Vec::new(),
            routes: vec![datasync_core::route_counts::RouteTally {
                route: "orders".into(),
                delivered: 1,
                failed: 1,
            }],
        };
        let wire = json!({
            "dryRun": false, "processed": 3, "delivered": 1, "rerouted": 1, "deadLettered": 1,
            "nextDueAt": "2026-12-05T09:00:00Z", "endOfStream": false,
            "routes": [{"route": "orders", "delivered": 1, "failed": 1}]
        });
        assert_eq!(serde_json::to_value(&group).unwrap(), wire);
        assert_eq!(serde_json::from_value::<GroupAnswer>(wire).unwrap(), group);

        let dry = DryRunAnswer {
            dry_run: true,
            processed: 0,
            due: 2,
            read: 5,
            next_due_at: None,
            end_of_stream: None,
        };
        let wire = json!({
            "dryRun": true, "processed": 0, "due": 2, "read": 5, "nextDueAt": null,
            "endOfStream": null
        });
        assert_eq!(serde_json::to_value(&dry).unwrap(), wire);
        assert_eq!(serde_json::from_value::<DryRunAnswer>(wire).unwrap(), dry);
    }

    #[test]
    fn the_request_leaves_out_what_is_not_set() {
        assert_eq!(
            serde_json::to_value(GroupModeRequest::new("ocid1.stream.x", 100)).unwrap(),
            json!({"stream": "ocid1.stream.x", "max": 100})
        );
        let all = GroupModeRequest {
            dry_run: true,
            group: Some("other".into()),
            ..GroupModeRequest::new("ocid1.stream.x", 5)
        };
        assert_eq!(
            serde_json::to_value(all).unwrap(),
            json!({"stream": "ocid1.stream.x", "max": 5, "dryRun": true, "group": "other"})
        );
    }

    /// The body each Resource Scheduler schedule of `terraform/schedule.tf` sends: Terraform's
    /// `jsonencode({ stream = ..., max = ... })`, keys sorted, numbers bare.
    #[test]
    fn the_function_reads_the_scheduled_body_as_group_mode() {
        let body = br#"{"max":500,"stream":"ocid1.stream.oc1.eu-frankfurt-1.scheduled"}"#;
        let read = crate::request::parse(body)
            .and_then(|r| r.check(|s| s == "ocid1.stream.oc1.eu-frankfurt-1.scheduled"))
            .unwrap();
        let crate::request::Mode::Group(g) = read else {
            panic!("not group mode: {read:?}");
        };
        assert_eq!(
            (g.stream.as_str(), g.max, g.dry_run, g.group.as_deref()),
            (
                "ocid1.stream.oc1.eu-frankfurt-1.scheduled",
                500,
                false,
                None
            )
        );
        assert_eq!(
            serde_json::to_vec(&GroupModeRequest::new(g.stream, 500)).unwrap(),
            br#"{"stream":"ocid1.stream.oc1.eu-frankfurt-1.scheduled","max":500}"#
        );
    }

    #[test]
    fn the_function_reads_what_a_client_sends() {
        let sent = GroupModeRequest {
            dry_run: true,
            group: Some("other".into()),
            ..GroupModeRequest::new("ocid1.stream.x", 5)
        };
        let body = serde_json::to_vec(&sent).unwrap();
        let read = crate::request::parse(&body)
            .and_then(|r| r.check(|_| true))
            .unwrap();
        let crate::request::Mode::Group(g) = read else {
            panic!("not group mode: {read:?}");
        };
        assert_eq!(
            (g.stream.as_str(), g.max, g.dry_run, g.group.as_deref()),
            ("ocid1.stream.x", 5, true, Some("other"))
        );
    }
}
