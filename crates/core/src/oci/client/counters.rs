//! Process-wide counters of the requests every [`OciClient`](super::OciClient) sends: one
//! relaxed atomic add per request, read by the benchmark and the local stack's status.

use std::sync::atomic::{AtomicU64, Ordering};

/// HTTP requests sent to OCI by every [`OciClient`](super::OciClient) of this process
/// (retries included).
static OCI_REQUESTS_SENT: AtomicU64 = AtomicU64::new(0);

/// A metric: the number of HTTP requests (attempts, retries included) every
/// [`OciClient`](super::OciClient) of this process has sent to OCI since it started.
/// Process-wide because the functions build their own clients; read it twice and subtract to
/// count the calls of a piece of work (the benchmark reports calls per 1,000 messages this
/// way). Costs one relaxed atomic add per request.
pub fn oci_requests_sent() -> u64 {
    OCI_REQUESTS_SENT.load(Ordering::Relaxed)
}

/// The part of [`oci_requests_sent`] signed with a resource-principal session token (keyId
/// `ST$...`): the calls the functions made, as opposed to those of API-key clients (in the
/// local stack, the Service Connector emulation and the tools).
static OCI_REQUESTS_SENT_BY_RESOURCE_PRINCIPALS: AtomicU64 = AtomicU64::new(0);

/// A metric: the requests of [`oci_requests_sent`] signed by a resource principal (keyId
/// `ST$...`), i.e. made by functions.
pub fn oci_requests_sent_by_resource_principals() -> u64 {
    OCI_REQUESTS_SENT_BY_RESOURCE_PRINCIPALS.load(Ordering::Relaxed)
}

/// Counts one request (one attempt) signed with `key_id`.
pub(super) fn count_request(key_id: &str) {
    OCI_REQUESTS_SENT.fetch_add(1, Ordering::Relaxed);
    if key_id.starts_with("ST$") {
        OCI_REQUESTS_SENT_BY_RESOURCE_PRINCIPALS.fetch_add(1, Ordering::Relaxed);
    }
}
