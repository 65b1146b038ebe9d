//! [`Payload`]: a `targetRestApiPayload` kept as the JSON text the source sent, compacted.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// sorted, integers beyond 64 bits and decimals beyond 17 digits rounded (an id of
/// `123456789012345678901234567890` arriving as `1.2345678901234568e+29`), `1E2` as `100.0` and
/// duplicate keys merged. Oracle's sample re-serialises a Jackson tree, which keeps key order
/// and big integers.
///
/// Compact means without whitespace between tokens; strings, numbers and key order are the
/// source's, byte for byte. A JSON `null` payload is no payload (`Option::None`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The payload of a JSON text, whitespace between tokens removed.
    ///
    /// # Errors
    /// When `json` is not one JSON value.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        Self::from_raw(serde_json::from_str(json)?)
    }

    /// The payload of a JSON value already read (one value, whatever it holds), whitespace
    /// between tokens removed.
    ///
    /// # Errors
    /// Never in practice: the compact text of one JSON value is one JSON value.
    pub fn from_raw(raw: &RawValue) -> Result<Self, serde_json::Error> {
        match compact_json(raw.get()) {
            None => Ok(Self(raw.to_owned())),
            Some(compact) => RawValue::from_string(compact).map(Self),
        }
    }

    /// The payload of a parsed value (its keys in the value's order).
    ///
    /// # Errors
    /// Never in practice: a [`serde_json::Value`] always encodes.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The compact JSON text: what the target's body holds.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Payload").field(&self.get()).finish()
    }
}

/// `json` (one valid JSON value: `1 2` would become `12`) without the whitespace between its
/// tokens (JSON's four whitespace bytes outside strings), or `None` when it has none, as
/// machine-written JSON mostly has not: the caller keeps the text it has. Strings are copied as
/// they are, escapes included, found a block at a time (`memchr`): most of a payload's bytes
/// are in its strings.
fn compact_json(json: &str) -> Option<String> {
    let bytes = json.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    // `bytes[..kept]` is in `out` already (or needs no copy while `out` is `None`).
    let mut kept = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                loop {
                    let Some(at) = memchr::memchr2(b'"', b'\\', &bytes[i..]) else {
                        i = bytes.len();
                        break;
                    };
                    let quote = bytes[i + at] == b'"';
                    // Past the closing quote, or past a backslash and the byte it escapes.
                    i = (i + at + if quote { 1 } else { 2 }).min(bytes.len());
                    if quote {
                        break;
                    }
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                out.extend_from_slice(&bytes[kept..i]);
                i += 1;
                kept = i;
            }
            _ => i += 1,
        }
    }
    let mut out = out?;
    out.extend_from_slice(&bytes[kept..]);
    // Only ASCII bytes between characters were left out: still UTF-8.
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn payloads_lose_only_the_whitespace_between_tokens() {
        for (json, compact) in [
            (
                " { \"a\" : [ 1 , 2 ] ,\n\t\"b\":{ } }\r\n",
                r#"{"a":[1,2],"b":{}}"#,
            ),
            (
                r#"{"s": " keep  this \" { , } \\" , "t" : "\\"}"#,
                r#"{"s":" keep  this \" { , } \\","t":"\\"}"#,
            ),
            (" 42 ", "42"),
            (r#""a string""#, r#""a string""#),
            (r#"{"s":"a b\t","n":[1,2]}"#, r#"{"s":"a b\t","n":[1,2]}"#),
        ] {
            assert_eq!(Payload::from_json(json).unwrap().get(), compact, "{json}");
        }
        assert!(Payload::from_json("{").is_err());
        assert!(Payload::from_json("1 2").is_err());
        let value = serde_json::json!({"b": 1, "a": 2});
        assert_eq!(
            Payload::from_value(&value).unwrap().get(),
            value.to_string()
        );
    }
}
