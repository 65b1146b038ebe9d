//! OCI Streaming's limits, as the emulator enforces them.

/// The most a message may hold (key plus value, after base64 decoding).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The most a PutMessages request may hold (sum of keys and values, after decoding).
pub const MAX_PUT_BYTES: usize = 1024 * 1024;
/// The largest `limit` GetMessages accepts.
pub const MAX_GET_LIMIT: i64 = 10_000;
/// How long a cursor stays valid.
pub const CURSOR_TTL_MS: i64 = 5 * 60 * 1000;
/// Default `timeoutInMs` of a group cursor.
pub const DEFAULT_GROUP_TIMEOUT_MS: i64 = 30_000;

/// Whether `name` is a valid stream or group name: 1 to 255 letters, digits, `-`, `_`, `.`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
