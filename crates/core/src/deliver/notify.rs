//! The last stage: one notification per batch with permanent failures, summarising them
//! (counts by class, up to [`NOTIFY_IDS`] ids, the stream names; never payloads, URLs, secret
//! names or tokens).

use crate::classify::Route;
use crate::oci::models::MessageDetails;
use crate::oci::notifications::NotificationsClient;
use crate::settings::Settings;

use super::route::RouteReport;

/// The most ids a notification names.
pub const NOTIFY_IDS: usize = 10;

/// Publishes the dead-letter summaries to the configured topic.
#[derive(Debug)]
pub(super) struct Notifier {
    client: NotificationsClient,
    /// The topic; none configured means nothing is announced.
    topic: Option<String>,
    /// The dead-letter stream, named in the summary.
    dead_letter: Option<String>,
}

impl Notifier {
    pub(super) fn new(client: NotificationsClient, settings: &Settings) -> Self {
        Self {
            client,
            topic: settings.topic.clone(),
            dead_letter: settings.stream_for(Route::DeadLetter).map(str::to_owned),
        }
    }

    /// Publishes the summary of `report` (`ids`: the dead-lettered messages, `source`: the
    /// batch's stream). Whether it was published; a failure is logged, not returned: the
    /// messages are already stored.
    pub(super) async fn announce(
        &self,
        report: &RouteReport,
        ids: &[String],
        source: &str,
    ) -> bool {
        let Some(topic) = self.topic.as_deref() else {
            return false;
        };
        let message = summary(report, ids, source, self.dead_letter.as_deref());
        match self.client.publish_message(topic, &message).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "the dead-letter summary could not be published");
                false
            }
        }
    }
}

/// The notification for a batch's permanent failures: counts by class, up to
/// [`NOTIFY_IDS`] ids, the streams. No payloads, URLs, secret names or tokens.
pub fn summary(
    report: &RouteReport,
    ids: &[String],
    source: &str,
    dead_letter: Option<&str>,
) -> MessageDetails {
    let n = report.dead_lettered;
    let mut body = format!(
        "{n} message{} from stream {source} failed permanently",
        if n == 1 { "" } else { "s" }
    );
    if let Some(dl) = dead_letter {
        body.push_str(&format!(" and were written to the dead-letter stream {dl}"));
    }
    body.push_str(".\n\nFailures by class (this batch):\n");
    for (class, count) in &report.by_class {
        body.push_str(&format!("  {class}: {count}\n"));
    }
    body.push_str(&format!(
        "\nDelivered in this batch: {}\n",
        report.delivered
    ));
    body.push_str("\nMessage ids");
    if ids.len() > NOTIFY_IDS {
        body.push_str(&format!(" (first {NOTIFY_IDS} of {})", ids.len()));
    }
    body.push_str(":\n");
    for id in ids.iter().take(NOTIFY_IDS) {
        body.push_str(&format!("  {id}\n"));
    }
    body.push_str(
        "\nReplay them with POST /stream/retry once the cause is fixed; the messages keep their ids.\n",
    );
    MessageDetails {
        title: Some(format!(
            "datasync: {n} message{} dead-lettered",
            if n == 1 { "" } else { "s" }
        )),
        body,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn summary_has_counts_and_ids_but_no_payload() {
        let report = RouteReport {
            delivered: 5,
            rerouted: BTreeMap::new(),
            by_class: BTreeMap::from([("clientError".to_owned(), 12)]),
            to_retry: 0,
            dead_lettered: 12,
            notified: None,
        };
        let ids: Vec<String> = (0..12).map(|i| format!("id-{i}")).collect();
        let m = summary(&report, &ids, "DataSyncStream", Some("ocid1.stream.dl"));
        assert_eq!(
            m.title.as_deref(),
            Some("datasync: 12 messages dead-lettered")
        );
        assert!(m.body.contains("clientError: 12"));
        assert!(m.body.contains("id-9"));
        assert!(!m.body.contains("id-10"));
        assert!(m.body.contains("first 10 of 12"));
    }
}
