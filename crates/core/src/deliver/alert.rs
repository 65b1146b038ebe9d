//! What a dead-letter notification says: [`DeadLetterAlert`], a JSON document (pretty-printed,
//! so it reads in an e-mail) naming each dead letter of a batch by id, key, class, status,
//! attempts, size and where the archive keeps it; never a custom header value, a target URL, a
//! secret name or a token, and a payload only when the operator asked for payloads
//! (`notify_dead_letter_payloads`), cut short.
//!
//! A notification never exceeds [`MAX_BODY_BYTES`], well under the 64 KB Notifications accepts
//! per message (contracts/oci-round2.md section D): payloads are cut to [`MAX_PAYLOAD_BYTES`],
//! and the dead letters that do not fit are counted in [`DeadLetterAlert::not_listed`].
//!
//! The type is the contract with the local status page, which reads it back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::classify::ErrorClass;
use crate::message::{truncate_utf8, LastError};
use crate::oci::models::MessageDetails;

use super::item::Item;
use super::route::RouteReport;

/// The kind every dead-letter notification names, so readers can tell it from others.
pub const ALERT_KIND: &str = "datasync.deadLetters";
/// The largest body a notification gets (title and JSON framing fit in the rest of 64 KB).
pub const MAX_BODY_BYTES: usize = 60_000;
/// The most of one payload a notification carries, when payloads are on.
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024;
/// The most dead letters one notification lists.
pub const MAX_LISTED: usize = 100;
/// The most bytes of a message key shown.
const MAX_KEY_BYTES: usize = 256;
/// The most held-back ids remembered for the next notification.
pub const MAX_HELD_IDS: usize = 10;
/// The archive's object name prefix for the dead-letter stream (`terraform/connectors.tf`).
pub const ARCHIVE_PREFIX: &str = "dead-letter/";

/// A dead-letter notification's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterAlert {
    /// Always [`ALERT_KIND`].
    pub kind: String,
    /// One sentence for people.
    pub summary: String,
    /// The stream the batch was read from.
    pub source: String,
    /// The dead-letter stream the messages were written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_stream: Option<String>,
    /// Messages delivered in the same batch.
    pub delivered: usize,
    /// Failures of the batch by class (dead-lettered or to be retried).
    pub by_class: BTreeMap<String, usize>,
    /// The dead letters, at most [`MAX_LISTED`] and what fits in [`MAX_BODY_BYTES`].
    pub messages: Vec<DeadLetter>,
    /// Dead letters of this batch not listed (over [`MAX_LISTED`] or the size limit).
    #[serde(default)]
    pub not_listed: usize,
    /// Earlier alerts of this instance that were held back by the rate limit or failed to
    /// publish, folded into this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_back: Option<HeldBack>,
    /// What to do about them.
    pub replay: String,
}

/// One dead letter as a notification names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The message id (the target's `Idempotency-Key`).
    pub id: String,
    /// Its stream key, when it has one (cut to 256 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Why it failed (`lastError.class`).
    pub class: ErrorClass,
    /// The target's last HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Failed attempts.
    pub attempts: u32,
    /// Size of the dead-letter record in bytes.
    pub bytes: usize,
    /// Where the dead-letter stream (and so the archive) keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveLocation>,
    /// The payload, only with `notify_dead_letter_payloads` on, cut to [`MAX_PAYLOAD_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Whether `payload` was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub payload_truncated: bool,
}

impl DeadLetter {
    /// The dead letter `item` became, with the error written for it and the size of its record;
    /// `payload`: whether to carry its payload.
    pub(super) fn of(
        item: &Item,
        error: &LastError,
        tried: bool,
        bytes: usize,
        payload: bool,
    ) -> Self {
        let before = item.envelope().map_or(0, |e| e.attempt);
        let key = item.key.as_ref().map(|k| {
            let mut k = String::from_utf8_lossy(k).into_owned();
            truncate_utf8(&mut k, MAX_KEY_BYTES);
            k
        });
        let (payload, payload_truncated) = if payload {
            payload_text(item)
        } else {
            (None, false)
        };
        Self {
            id: item.id.clone(),
            key,
            class: error.class,
            status: error.status,
            attempts: before.saturating_add(u32::from(tried)),
            bytes,
            archive: None,
            payload,
            payload_truncated,
        }
    }

    /// What the status page shows of it: id, attempts, class and status (never a detail, which
    /// may quote the target's answer).
    pub fn last_error(&self) -> LastError {
        LastError {
            class: self.class,
            status: self.status,
            detail: None,
        }
    }
}

/// The payload's JSON text, cut to [`MAX_PAYLOAD_BYTES`]; whether it was cut. A value that is
/// not a datasync message has no payload to show.
fn payload_text(item: &Item) -> (Option<String>, bool) {
    let Some(envelope) = item.decoded() else {
        return (None, false);
    };
    let Some(p) = envelope.message.target_rest_api_payload.as_ref() else {
        return (None, false);
    };
    let mut text = p.get().to_owned();
    let cut = text.len() > MAX_PAYLOAD_BYTES;
    truncate_utf8(&mut text, MAX_PAYLOAD_BYTES);
    (Some(text), cut)
}

/// Where a dead letter is kept: its position in the dead-letter stream, which the archive
/// connector writes under [`ARCHIVE_PREFIX`] (locally in objects named
/// `dead-letter/<partition>/<first offset>-<last offset>.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveLocation {
    /// The dead-letter stream's partition.
    pub partition: String,
    /// Its offset there.
    pub offset: i64,
    /// The archive bucket's object prefix.
    pub prefix: String,
}

/// Alerts not published when they were due, announced with the next one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldBack {
    /// How many alerts (batches) were held back.
    pub alerts: u64,
    /// How many dead letters they named.
    pub dead_letters: u64,
    /// The first [`MAX_HELD_IDS`] of their ids.
    pub ids: Vec<String>,
}

impl HeldBack {
    /// Adds an alert of `ids`.
    pub(super) fn add<'a>(&mut self, ids: impl Iterator<Item = &'a str>, count: usize) {
        self.alerts += 1;
        self.dead_letters += count as u64;
        for id in ids {
            if self.ids.len() >= MAX_HELD_IDS {
                break;
            }
            self.ids.push(id.to_owned());
        }
    }

    /// Adds everything `other` held.
    pub(super) fn merge(&mut self, other: HeldBack) {
        self.alerts += other.alerts;
        self.dead_letters += other.dead_letters;
        let room = MAX_HELD_IDS.saturating_sub(self.ids.len());
        self.ids.extend(other.ids.into_iter().take(room));
    }
}

/// What [`DeadLetterAlert::new`] needs.
pub(super) struct AlertInput<'a> {
    /// The batch's route report.
    pub report: &'a RouteReport,
    /// Its dead letters.
    pub dead: Vec<DeadLetter>,
    /// The stream the batch was read from.
    pub source: &'a str,
    /// The dead-letter stream.
    pub dead_letter_stream: Option<&'a str>,
    /// Earlier alerts folded in.
    pub held_back: Option<HeldBack>,
}

impl DeadLetterAlert {
    /// The alert for a batch: at most [`MAX_LISTED`] dead letters, fewer when they would not
    /// fit in [`MAX_BODY_BYTES`].
    pub(super) fn new(input: AlertInput<'_>) -> Self {
        let n = input.dead.len();
        let mut summary = format!(
            "{n} message{} from stream {} failed permanently",
            plural(n),
            input.source
        );
        if let Some(dl) = input.dead_letter_stream {
            summary.push_str(&format!(" and were written to the dead-letter stream {dl}"));
        }
        summary.push('.');
        let mut messages = input.dead;
        let mut not_listed = messages.len().saturating_sub(MAX_LISTED);
        messages.truncate(MAX_LISTED);
        let mut alert = Self {
            kind: ALERT_KIND.to_owned(),
            summary,
            source: input.source.to_owned(),
            dead_letter_stream: input.dead_letter_stream.map(str::to_owned),
            delivered: input.report.delivered,
            by_class: input.report.by_class.clone(),
            messages,
            not_listed,
            held_back: input.held_back,
            replay:
                "Fix the cause, then replay them with POST /stream/retry (they keep their ids); \
                     the archive bucket keeps every dead letter under dead-letter/."
                    .to_owned(),
        };
        // Drop listed dead letters from the end until the body fits.
        while alert.body_len() > MAX_BODY_BYTES && !alert.messages.is_empty() {
            let drop = (alert.messages.len() / 8).max(1);
            let keep = alert.messages.len() - drop;
            alert.messages.truncate(keep);
            not_listed += drop;
            alert.not_listed = not_listed;
        }
        alert
    }

    /// The body's length as published.
    fn body_len(&self) -> usize {
        self.body().len()
    }

    /// The body as published: pretty JSON.
    pub fn body(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| self.summary.clone())
    }

    /// How many dead letters it announces, this batch's and those held back.
    pub fn dead_letters(&self) -> u64 {
        (self.messages.len() + self.not_listed) as u64
            + self.held_back.as_ref().map_or(0, |h| h.dead_letters)
    }

    /// The message to publish: titled with the batch's count.
    pub fn to_message(&self) -> MessageDetails {
        let n = self.messages.len() + self.not_listed;
        MessageDetails {
            title: Some(format!("datasync: {n} message{} dead-lettered", plural(n))),
            body: self.body(),
        }
    }

    /// Reads a notification body back; `None` when it is not a dead-letter alert.
    pub fn parse(body: &str) -> Option<Self> {
        serde_json::from_str::<Self>(body)
            .ok()
            .filter(|a| a.kind == ALERT_KIND)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use bytes::Bytes;

    use super::*;
    use crate::deliver::Body;
    use crate::message::Envelope;

    fn item(payload_bytes: usize, header_value: &str) -> Item {
        let envelope: Envelope = serde_json::from_value(serde_json::json!({
            "targetRestApi": "https://target.example/orders?token=t0k3n",
            "targetRestApiOperation": "POST",
            "targetRestApiPayload": {"p": "x".repeat(payload_bytes)},
            "targetRestApiHeaders": [{"key": "x-client-secret", "value": header_value}],
            "id": "id-1",
            "attempt": 2,
        }))
        .unwrap();
        Item {
            stream: "data".into(),
            partition: "0".into(),
            offset: 7,
            key: Some(Bytes::from_static(b"k1")),
            body: Body::Envelope(Box::new(envelope)),
            id: "id-1".into(),
            appended_at: None,
        }
    }

    fn client_error() -> LastError {
        LastError {
            class: ErrorClass::ClientError,
            status: Some(400),
            detail: Some("the target said: s3cr3t".into()),
        }
    }

    fn report(n: usize) -> RouteReport {
        RouteReport {
            by_class: BTreeMap::from([("clientError".to_owned(), n)]),
            dead_lettered: n,
            ..RouteReport::default()
        }
    }

    fn alert_of(dead: Vec<DeadLetter>) -> DeadLetterAlert {
        let report = report(dead.len());
        DeadLetterAlert::new(AlertInput {
            report: &report,
            dead,
            source: "DataSyncStream",
            dead_letter_stream: Some("ocid1.stream.dl"),
            held_back: None,
        })
    }

    #[test]
    fn names_the_message_but_never_header_values_urls_details_or_payloads_by_default() {
        let d = DeadLetter::of(&item(10, "s3cr3t"), &client_error(), true, 321, false);
        assert_eq!(d.attempts, 3);
        assert_eq!(d.key.as_deref(), Some("k1"));
        let m = alert_of(vec![d]).to_message();
        assert_eq!(
            m.title.as_deref(),
            Some("datasync: 1 message dead-lettered")
        );
        for absent in [
            "s3cr3t",
            "t0k3n",
            "target.example",
            "x-client-secret",
            "xxxxxxxxxx",
        ] {
            assert!(!m.body.contains(absent), "{absent} in {}", m.body);
        }
        let back = DeadLetterAlert::parse(&m.body).unwrap();
        assert_eq!(back.messages[0].id, "id-1");
        assert_eq!(back.messages[0].status, Some(400));
        assert_eq!(back.messages[0].bytes, 321);
    }

    #[test]
    fn a_70000_byte_payload_is_cut_and_the_notification_stays_under_64_kb() {
        let d = DeadLetter::of(&item(70_000, "v"), &client_error(), true, 70_300, true);
        assert!(d.payload_truncated);
        assert_eq!(d.payload.as_ref().unwrap().len(), MAX_PAYLOAD_BYTES);
        let many: Vec<DeadLetter> = (0..40).map(|_| d.clone()).collect();
        let alert = alert_of(many);
        let m = alert.to_message();
        let total = m.body.len() + m.title.as_ref().map_or(0, String::len);
        assert!(total <= 64 * 1024, "{total}");
        assert!(alert.not_listed > 0 && !alert.messages.is_empty());
        assert_eq!(alert.messages.len() + alert.not_listed, 40);
        assert_eq!(alert.dead_letters(), 40);
    }

    #[test]
    fn at_most_a_hundred_are_listed_and_the_rest_counted() {
        let d = DeadLetter::of(&item(1, "v"), &client_error(), false, 10, false);
        let alert = alert_of(vec![d; 250]);
        assert_eq!(alert.messages.len(), MAX_LISTED);
        assert_eq!(alert.not_listed, 150);
        assert!(alert.body().len() <= MAX_BODY_BYTES);
    }

    #[test]
    fn held_back_alerts_keep_counts_and_a_bounded_list_of_ids() {
        let mut held = HeldBack::default();
        let ids: Vec<String> = (0..8).map(|i| format!("a{i}")).collect();
        held.add(ids.iter().map(String::as_str), 8);
        let mut more = HeldBack::default();
        more.add(ids.iter().map(String::as_str), 8);
        held.merge(more);
        assert_eq!((held.alerts, held.dead_letters), (2, 16));
        assert_eq!(held.ids.len(), MAX_HELD_IDS);
    }
}
