//! Streaming (API 20180418): the control plane (streams) and the data plane (messages,
//! cursors, consumer groups), on the store.
//!
//! - `streams`: CreateStream, GetStream, ListStreams, DeleteStream and the stream cache.
//!   `update`: UpdateStream (partitions and retention stay as created).
//! - `put`: PutMessages. `get`: GetMessages, streamed from the store.
//! - `cursor`: the sealed cursor state and CreateCursor. `groups`: consumer groups.
//! - `offsets`: positions in a partition. `limits`: OCI's limits.
//! - `stats`: what the status page reads. `retention`: the retention sweep.

mod cursor;
mod get;
mod groups;
mod limits;
mod offsets;
mod put;
mod retention;
mod stats;
mod streams;
mod update;

use std::sync::Arc;

use axum::response::Response;
use http::{HeaderValue, Method, StatusCode};

pub use limits::{MAX_GET_LIMIT, MAX_MESSAGE_BYTES, MAX_PUT_BYTES};
pub(crate) use retention::trim;
pub(crate) use stats::{append_times, read_messages, stats};
pub use stats::{GroupPositions, StoredMessage, StreamStats};
pub(crate) use streams::StreamRow;

use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::Call;
use crate::response::{empty, ok};

/// The API's first path segment.
pub(crate) const API: &str = "20180418";

/// Whether a request is PutMessages, whose signature leaves the body out.
pub(crate) fn is_put_messages(method: &Method, segments: &[String]) -> bool {
    method == Method::POST
        && segments.len() == 4
        && segments[0] == API
        && segments[1] == "streams"
        && segments[3] == "messages"
}

/// Routes a Streaming call to its operation.
///
/// # Errors
/// The operation's [`ApiError`]; 404 for any other path.
pub(crate) async fn route(inner: &Arc<Inner>, call: &Call) -> Result<Response, ApiError> {
    use Method as M;
    let (body, query) = (&call.body, &call.query);
    match (&call.method, call.segments().as_slice()) {
        // The control plane.
        (&M::POST, [API, "streams"]) => ok(&streams::create_stream(inner, body).await?),
        (&M::GET, [API, "streams"]) => ok(&streams::list_streams(inner, query).await?),
        (&M::GET, [API, "streams", id]) => ok(&streams::get_stream(inner, id).await?),
        (&M::PUT, [API, "streams", id]) => ok(&update::update_stream(inner, id, body).await?),
        (&M::DELETE, [API, "streams", id]) => {
            streams::delete_stream(inner, id).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        // The data plane.
        (&M::POST, [API, "streams", id, "messages"]) => {
            ok(&put::put_messages(inner, id, body).await?)
        }
        (&M::GET, [API, "streams", id, "messages"]) => {
            let (body, next) = get::get_messages(inner, id, query).await?;
            let mut response = Response::new(body);
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response.headers_mut().insert(
                "opc-next-cursor",
                HeaderValue::from_str(&next).map_err(|e| ApiError::internal(e.to_string()))?,
            );
            Ok(response)
        }
        (&M::POST, [API, "streams", id, "cursors"]) => {
            ok(&cursor::create_cursor(inner, id, body).await?)
        }
        (&M::POST, [API, "streams", id, "groupCursors"]) => {
            ok(&groups::create_group_cursor(inner, id, body).await?)
        }
        (&M::POST, [API, "streams", id, "commit"]) => {
            ok(&groups::commit_or_heartbeat(inner, id, call.query("cursor"), true).await?)
        }
        (&M::POST, [API, "streams", id, "heartbeat"]) => {
            ok(&groups::commit_or_heartbeat(inner, id, call.query("cursor"), false).await?)
        }
        (&M::GET, [API, "streams", id, "groups", group]) => {
            ok(&groups::get_group(inner, id, group).await?)
        }
        (&M::PUT, [API, "streams", id, "groups", group]) => {
            groups::update_group(inner, id, group, body).await?;
            Ok(empty(StatusCode::OK))
        }
        _ => Err(call.not_found()),
    }
}
