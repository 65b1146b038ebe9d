//! Reading a call's body, within the size the agent allows.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use crate::protocol::MAX_BODY_BYTES;

/// How much of an oversized body is read and discarded so that the agent, still writing it,
/// receives the refusal and the connection stays usable. Beyond this, the connection closes.
const DRAIN_LIMIT: u64 = 4 * MAX_BODY_BYTES as u64;

/// Why a body was not read.
pub(super) enum BodyFailure {
    TooLarge,
    Read(hyper::Error),
}

/// Reads the whole body if it is at most [`MAX_BODY_BYTES`]; otherwise drains it (up to
/// [`DRAIN_LIMIT`]) and reports it too large.
pub(super) async fn read_body(
    mut body: Incoming,
    declared: Option<u64>,
) -> Result<Bytes, BodyFailure> {
    let limit = MAX_BODY_BYTES as u64;
    let mut too_large = declared.is_some_and(|n| n > limit);
    if too_large && declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(BodyFailure::TooLarge);
    }
    let capacity = declared.filter(|n| *n <= limit).unwrap_or(0);
    let mut buf = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0));
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyFailure::Read)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limit {
            too_large = true;
            if total > DRAIN_LIMIT {
                break;
            }
        }
        if !too_large {
            buf.extend_from_slice(&data);
        }
    }
    if too_large {
        Err(BodyFailure::TooLarge)
    } else {
        Ok(buf.freeze())
    }
}
