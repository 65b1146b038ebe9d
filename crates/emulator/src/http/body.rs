//! Request bodies: the limits, and reading a body within its limit.

use bytes::Bytes;

use crate::error::ApiError;

/// The most a request body may be outside Object Storage PutObject: a 1 MB PutMessages grows
/// to about 1.37 MB as base64 in JSON; 2 MiB leaves room and rejects anything larger with 413
/// before it is read.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The largest over-limit request body a server reads (and drops) before answering 413.
pub const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// Reads and drops `body` when its declared length `declared` is at most [`DRAIN_LIMIT`],
/// before a server answers 413 to it. Closing a connection with unread data resets it, so a
/// client still sending would see the reset instead of the 413; a larger body is not read,
/// and its connection closes. The local stack's gateway does the same.
pub async fn drain_refused_body(body: axum::body::Body, declared: u64) {
    if declared > DRAIN_LIMIT {
        return;
    }
    let mut body = body;
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        if frame.is_err() {
            break;
        }
    }
}

/// Reads `body` whole when it is at most `limit` bytes; 413 otherwise, before reading it when
/// its `Content-Length` (`declared`) says so.
pub(crate) async fn read(
    body: axum::body::Body,
    declared: Option<u64>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::too_large(format!("the request body exceeds {limit} bytes"));
    if let Some(n) = declared.filter(|&n| n > limit as u64) {
        drain_refused_body(body, n).await;
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}
