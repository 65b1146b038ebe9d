//! PutMessages: the size limits checked before sending, the split into requests, the request
//! body, and the partial retries of the entries a request failed to store.

use std::ops::Range;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method};
use url::Url;

use super::{FailedMessage, PutMessage, PutOutcome, StoredMessage, StreamClient};
use super::{MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES};
use crate::oci::client::{OciError, OciRequest};
use crate::oci::models::PutMessagesResult;

impl StreamClient {
    /// PutMessages: stores `messages` in order and returns one outcome per message, in the
    /// same order.
    ///
    /// Every message is checked against [`MAX_MESSAGE_BYTES`] before anything is sent; the
    /// batch goes out in requests of at most [`MAX_REQUEST_BYTES`] (decoded), one after the
    /// other. Requests are signed without their body, as the SDKs do. When the service stores
    /// only part of a request (HTTP 200 with `failures > 0`), the failed entries alone are sent
    /// again after a backoff, up to the retry policy's `max_attempts`; entries still failing
    /// are reported as [`FailedMessage`]. An empty batch sends nothing.
    ///
    /// # Errors
    /// - [`OciError::Limit`] when a message is too large (nothing is sent).
    /// - The request's error when a request fails as a whole (after the transport's own
    ///   retries) before any message of this call was stored. Once some message is stored, a
    ///   failing request is instead reported per entry (that request's and all later
    ///   requests' messages become [`FailedMessage`]s carrying the error), so the stored ones
    ///   are never lost to the caller and never sent twice by it.
    /// - [`OciError::Decode`] when an answer does not have one entry per message sent, or a
    ///   stored entry lacks its partition or offset.
    pub async fn put_messages(
        &self,
        stream_id: &str,
        messages: &[PutMessage],
    ) -> Result<Vec<PutOutcome>, OciError> {
        for (i, m) in messages.iter().enumerate() {
            if m.decoded_len() > MAX_MESSAGE_BYTES {
                return Err(OciError::Limit {
                    operation: "PutMessages",
                    detail: format!(
                        "message {i} is {} bytes (key + value); a message may be at most {MAX_MESSAGE_BYTES} bytes",
                        m.decoded_len()
                    ),
                });
            }
        }
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let url = self.data_url(stream_id, "messages", &[]).await?;
        let mut outcomes: Vec<PutOutcome> = Vec::with_capacity(messages.len());
        let mut aborted: Option<FailedMessage> = None;
        let mut stored_any = false;
        for range in split_batches(messages) {
            if let Some(failure) = &aborted {
                outcomes.extend(range.map(|_| Err(failure.clone())));
                continue;
            }
            let mut request = RequestProgress::new(range);
            aborted = self
                .put_request(&url, messages, &mut request, stored_any)
                .await?;
            stored_any |= request.stored_any;
            outcomes.extend(request.into_outcomes());
        }
        Ok(outcomes)
    }

    /// Sends the messages of one request, then its failed entries again as the retry policy
    /// allows, recording each outcome in `request`. Returns the failure that ends the call's
    /// later requests, when this one failed as a whole after some message was stored
    /// (`stored_before`, or by this request).
    ///
    /// # Errors
    /// As [`put_messages`](Self::put_messages).
    async fn put_request(
        &self,
        url: &Url,
        messages: &[PutMessage],
        request: &mut RequestProgress,
        stored_before: bool,
    ) -> Result<Option<FailedMessage>, OciError> {
        let policy = self.client.retry_policy();
        let mut attempt = 1u32;
        loop {
            let sent = OciRequest {
                body: encode_put_body(messages, &request.pending),
                ..json_request("PutMessages", Method::POST, url.clone())
            }
            .exclude_body_from_signature();
            let answer = match self.client.send(&sent).await {
                Ok(response) => response.json::<PutMessagesResult>(),
                Err(e) => Err(e),
            };
            let answer = match answer {
                Ok(answer) => answer,
                Err(e @ OciError::Decode { .. }) => return Err(e),
                Err(e) if !(stored_before || request.stored_any) => return Err(e),
                Err(e) => {
                    let failure = failed_from_error(&e, attempt);
                    request.fail_pending(&failure);
                    return Ok(Some(failure));
                }
            };
            request.record(answer, attempt)?;
            if request.pending.is_empty() || attempt >= policy.max_attempts {
                return Ok(None);
            }
            let delay = policy.delay(attempt, None, rand::random::<f64>());
            tracing::debug!(
                operation = "PutMessages",
                attempt,
                failed = request.pending.len(),
                delay_ms = delay.as_millis() as u64,
                "partial failure: sending the failed entries again"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// One PutMessages request's messages while they are sent and sent again: the outcome of each
/// so far, and those still to send.
struct RequestProgress {
    /// The index (in the whole batch) of the request's first message.
    start: usize,
    /// The outcome of each message of the request, once known.
    results: Vec<Option<PutOutcome>>,
    /// The indexes of the messages to send (again), in order.
    pending: Vec<usize>,
    /// Whether some message of the request was stored.
    stored_any: bool,
}

impl RequestProgress {
    fn new(range: Range<usize>) -> Self {
        Self {
            start: range.start,
            results: vec![None; range.len()],
            pending: range.collect(),
            stored_any: false,
        }
    }

    /// Every message still pending failed with `failure`.
    fn fail_pending(&mut self, failure: &FailedMessage) {
        for &i in &self.pending {
            self.results[i - self.start] = Some(Err(failure.clone()));
        }
    }

    /// Records the answer to sending the pending messages (one entry each, in order) at
    /// `attempt`; those that failed stay pending.
    ///
    /// # Errors
    /// [`OciError::Decode`] when the answer does not have one entry per message sent, or a
    /// stored entry lacks its partition or offset.
    fn record(&mut self, answer: PutMessagesResult, attempt: u32) -> Result<(), OciError> {
        let pending = std::mem::take(&mut self.pending);
        if answer.entries.len() != pending.len() {
            return Err(OciError::Decode {
                operation: "PutMessages",
                detail: format!(
                    "{} entries for {} messages",
                    answer.entries.len(),
                    pending.len()
                ),
            });
        }
        let mut still_failing = Vec::new();
        for (&i, entry) in pending.iter().zip(answer.entries) {
            let outcome = match entry.error.filter(|e| !e.is_empty()) {
                None => match (entry.partition, entry.offset) {
                    (Some(partition), Some(offset)) => {
                        self.stored_any = true;
                        Ok(StoredMessage {
                            partition,
                            offset,
                            timestamp: entry.timestamp,
                        })
                    }
                    _ => {
                        return Err(OciError::Decode {
                            operation: "PutMessages",
                            detail: format!(
                            "entry for message {i} has neither an error nor a partition and offset"
                        ),
                        })
                    }
                },
                Some(code) => {
                    still_failing.push(i);
                    Err(FailedMessage {
                        code,
                        message: entry.error_message.unwrap_or_default(),
                        status: None,
                        attempts: attempt,
                    })
                }
            };
            self.results[i - self.start] = Some(outcome);
        }
        self.pending = still_failing;
        Ok(())
    }

    /// The outcome of each message, in order; a message never answered is `NotSent`.
    fn into_outcomes(self) -> Vec<PutOutcome> {
        self.results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(FailedMessage {
                        code: "NotSent".into(),
                        message: "the request carrying this message was not answered".into(),
                        status: None,
                        attempts: 0,
                    })
                })
            })
            .collect()
    }
}

fn json_request(operation: &'static str, method: Method, url: Url) -> OciRequest {
    let mut request = OciRequest::new(operation, method, url);
    request.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    request
}

fn failed_from_error(error: &OciError, attempts: u32) -> FailedMessage {
    let (code, status) = match error {
        OciError::Service { code, status, .. } => (code.clone(), Some(*status)),
        OciError::Transport { .. } => ("RequestFailed".to_owned(), None),
        _ => ("NotSent".to_owned(), None),
    };
    FailedMessage {
        code,
        message: error.to_string(),
        status,
        attempts,
    }
}

fn b64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Splits a batch into consecutive ranges of at most [`MAX_REQUEST_BYTES`] decoded bytes
/// (every message is already known to fit alone).
pub(crate) fn split_batches(
    messages: &[PutMessage],
) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= messages.len() {
            return None;
        }
        let mut size = 0usize;
        let mut end = start;
        while end < messages.len() {
            let next = messages[end].decoded_len();
            if end > start && size + next > MAX_REQUEST_BYTES {
                break;
            }
            size += next;
            end += 1;
        }
        let range = start..end;
        start = end;
        Some(range)
    })
}

/// The PutMessages JSON body for `messages[i]` for each `i` in `indices`, written straight
/// into one buffer sized up front (base64 needs no JSON escaping).
pub(crate) fn encode_put_body(messages: &[PutMessage], indices: &[usize]) -> Bytes {
    let engine = base64::engine::general_purpose::STANDARD;
    let capacity = 16
        + indices
            .iter()
            .map(|&i| encoded_len(&messages[i]))
            .sum::<usize>();
    let mut body = String::with_capacity(capacity);
    body.push_str(r#"{"messages":["#);
    for (n, &i) in indices.iter().enumerate() {
        let m = &messages[i];
        if n > 0 {
            body.push(',');
        }
        body.push('{');
        if let Some(key) = &m.key {
            body.push_str(r#""key":""#);
            engine.encode_string(key, &mut body);
            body.push_str(r#"","#);
        }
        body.push_str(r#""value":""#);
        engine.encode_string(&m.value, &mut body);
        body.push_str(r#""}"#);
    }
    body.push_str("]}");
    debug_assert!(body.len() <= capacity);
    Bytes::from(body.into_bytes())
}

/// The size of `message` in a PutMessages body: its base64 key and value and their JSON.
fn encoded_len(message: &PutMessage) -> usize {
    message.key.as_ref().map_or(0, |k| b64_len(k.len()) + 10) + b64_len(message.value.len()) + 14
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::oci::models::PutMessagesDetails;

    #[test]
    fn body_is_the_model_json_with_base64_and_no_null_keys() {
        let messages = vec![
            PutMessage::keyed(&b"k1"[..], &b"{\"a\":1}"[..]),
            PutMessage::new(None, &b""[..]),
            PutMessage::keyed(&b""[..], vec![0u8, 255, 10]),
        ];
        let body = encode_put_body(&messages, &[0, 1, 2]);
        let parsed: PutMessagesDetails = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed.messages.len(), 3);
        assert_eq!(parsed.messages[0].key.as_deref(), Some("azE="));
        assert_eq!(parsed.messages[0].value, "eyJhIjoxfQ==");
        assert_eq!(parsed.messages[1].key, None);
        assert_eq!(parsed.messages[1].value, "");
        assert_eq!(parsed.messages[2].key.as_deref(), Some(""));
        assert_eq!(parsed.messages[2].value, "AP8K");
        // Exactly what serde would write for the same model.
        assert_eq!(&body[..], serde_json::to_vec(&parsed).unwrap().as_slice());
        let subset = encode_put_body(&messages, &[2]);
        assert_eq!(&subset[..], br#"{"messages":[{"key":"","value":"AP8K"}]}"#);
    }

    #[test]
    fn batches_split_at_the_request_limit_counting_decoded_bytes() {
        let third = MAX_REQUEST_BYTES / 3;
        let messages: Vec<PutMessage> = (0..7)
            .map(|_| PutMessage::keyed(vec![1u8; 10], vec![0u8; third - 10]))
            .collect();
        let ranges: Vec<_> = split_batches(&messages).collect();
        assert_eq!(ranges, vec![0..3, 3..6, 6..7]);
        let exact = vec![PutMessage::new(None, vec![0u8; MAX_REQUEST_BYTES])];
        assert_eq!(split_batches(&exact).collect::<Vec<_>>(), vec![0..1]);
        let mixed = vec![
            PutMessage::new(None, vec![0u8; 10]),
            PutMessage::new(None, vec![0u8; MAX_REQUEST_BYTES]),
            PutMessage::new(None, vec![0u8; 10]),
        ];
        assert_eq!(
            split_batches(&mixed).collect::<Vec<_>>(),
            vec![0..1, 1..2, 2..3]
        );
        assert_eq!(split_batches(&[]).count(), 0);
    }
}
