//! Reading a sync request as populate accepts it: [`read_sync_request`] turns one JSON object
//! of the body into a [`SyncRequest`], or refuses it naming the field and the rule.
//!
//! The object is read once into its members, each still JSON text; each member the schema
//! knows is then decoded once from its own text into its typed value (no `serde_json::Value`
//! tree), and the payload is never decoded at all (see [`Payload`]). The field names compared
//! with are the serde schema's ([`fields_of`]).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::escape::has_lone_surrogate;
use super::suggest::{fields_of, may_echo, near_miss};
use super::{HeaderPair, Invalid, Payload, StreamMessage, SyncRequest, MAX_STREAM_KEY};

/// Reads one sync request. `prefix` is where it sits in the body, prepended to every field a
/// refusal names: empty for a single request, `[2].` for a batch's third.
///
/// Refused, in this order: an object that is not one or repeats a member; a member that looks
/// like a misspelt field absent beside it (other unknown members are ignored, as Oracle's sample
/// ignores them); a known member holding a number beyond `f64`; a header entry repeating a
/// member; a field of the wrong type or missing.
///
/// # Errors
/// The first rule broken, naming the field (e.g. `[2].streamMessage.targetRestApi`).
pub fn read_sync_request(raw: &RawValue, prefix: &str) -> Result<SyncRequest, Invalid> {
    let here = if prefix.is_empty() {
        "body"
    } else {
        prefix.trim_end_matches('.')
    };
    let request = Members::read(raw, here)?;
    request.refuse_near_misses(fields_of::<SyncRequest>(), prefix)?;
    let key_field = format!("{prefix}streamKey");
    let stream_key = match request.get("streamKey").map(decode::<Text>) {
        None | Some(Ok(Text::Null)) => None,
        Some(Ok(Text::String(k))) if k.is_empty() => None,
        Some(Ok(Text::String(k))) if k.len() > MAX_STREAM_KEY => {
            return Err(Invalid::new(
                key_field,
                format!("must be at most {MAX_STREAM_KEY} bytes"),
            ))
        }
        Some(Ok(Text::String(k))) => Some(k),
        Some(Ok(Text::Other)) => return Err(Invalid::new(key_field, "must be a string")),
        Some(Err(_)) => {
            let raw = request.get("streamKey").map_or("", RawValue::get);
            return Err(undecodable(raw, key_field, "must be a string"));
        }
    };
    let message_field = format!("{prefix}streamMessage");
    let Some(message) = request.get("streamMessage") else {
        return Err(Invalid::new(message_field, "must be a JSON object"));
    };
    let stream_message = read_stream_message(message, &message_field)?;
    let status_callback = match request.get("statusCallback") {
        None => None,
        Some(raw) => {
            let field = format!("{prefix}statusCallback");
            let text = decode::<Text>(raw)
                .map_err(|_| undecodable(raw.get(), field.clone(), "must be a string"))?;
            optional(Some(text), field)?
        }
    };
    Ok(SyncRequest {
        stream_key,
        stream_message,
        status_callback,
    })
}

/// The `streamMessage` at `field`.
fn read_stream_message(raw: &RawValue, field: &str) -> Result<StreamMessage, Invalid> {
    let members = Members::read(raw, field)?;
    let prefix = format!("{field}.");
    members.refuse_near_misses(fields_of::<StreamMessage>(), &prefix)?;
    let f = |name: &str| format!("{prefix}{name}");
    let out_of_range =
        |name: &str, raw: &RawValue| undecodable(raw.get(), f(name), "holds a number out of range");

    // Each known member decoded once, in the order sent.
    let mut fields = Fields::default();
    for (name, raw) in &members.0 {
        let text = || decode::<Text>(raw).map_err(|_| out_of_range(name, raw));
        match name.as_str() {
            "vaultSecretName" => fields.vault_secret_name = Some(text()?),
            "vaultSecretHeader" => fields.vault_secret_header = Some(text()?),
            "targetRestApi" => fields.target_rest_api = Some(text()?),
            "targetRestApiOperation" => fields.target_rest_api_operation = Some(text()?),
            "targetRestApiHeaders" => {
                fields.headers = Some(decode::<Headers>(raw).map_err(|_| out_of_range(name, raw))?)
            }
            "targetRestApiPayload" => fields.payload = Some(*raw),
            _ => {}
        }
    }
    let headers_field = f("targetRestApiHeaders");
    if let Some(Headers::Array(entries)) = &fields.headers {
        for (i, entry) in entries.iter().enumerate() {
            if let Entry::Object(members) = entry {
                refuse_repeated(
                    members.iter().map(|(n, _)| n),
                    &format!("{headers_field}[{i}]"),
                )?;
            }
        }
    }
    let target_rest_api = required(fields.target_rest_api, f("targetRestApi"))?;
    let target_rest_api_operation = required(
        fields.target_rest_api_operation,
        f("targetRestApiOperation"),
    )?;
    let vault_secret_name = optional(fields.vault_secret_name, f("vaultSecretName"))?;
    let vault_secret_header = optional(fields.vault_secret_header, f("vaultSecretHeader"))?;
    let target_rest_api_headers = header_pairs(fields.headers, &headers_field)?;
    let target_rest_api_payload = match fields.payload {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => Some(
            Payload::from_raw(raw)
                .map_err(|_| Invalid::new(f("targetRestApiPayload"), "is not valid JSON"))?,
        ),
    };
    Ok(StreamMessage {
        vault_secret_name,
        vault_secret_header,
        target_rest_api,
        target_rest_api_operation,
        target_rest_api_payload,
        target_rest_api_headers,
    })
}

/// The members of a `streamMessage` the schema knows, each decoded.
#[derive(Default)]
struct Fields<'a> {
    vault_secret_name: Option<Text>,
    vault_secret_header: Option<Text>,
    target_rest_api: Option<Text>,
    target_rest_api_operation: Option<Text>,
    headers: Option<Headers>,
    payload: Option<&'a RawValue>,
}

/// A string field that must be there.
fn required(value: Option<Text>, field: String) -> Result<String, Invalid> {
    match value {
        Some(Text::String(s)) => Ok(s),
        None | Some(Text::Null) => Err(Invalid::new(field, "is required")),
        Some(Text::Other) => Err(Invalid::new(field, "must be a string")),
    }
}

/// A string field that may be absent or null.
fn optional(value: Option<Text>, field: String) -> Result<Option<String>, Invalid> {
    match value {
        Some(Text::String(s)) => Ok(Some(s)),
        None | Some(Text::Null) => Ok(None),
        Some(Text::Other) => Err(Invalid::new(field, "must be a string")),
    }
}

/// `targetRestApiHeaders`: absent, null, or an array of `{"key": …, "value": …}` (other
/// members of an entry are ignored).
fn header_pairs(headers: Option<Headers>, field: &str) -> Result<Vec<HeaderPair>, Invalid> {
    let entries = match headers {
        None | Some(Headers::Null) => return Ok(Vec::new()),
        Some(Headers::NotArray) => {
            return Err(Invalid::new(
                field,
                "must be an array of {\"key\": …, \"value\": …}",
            ))
        }
        Some(Headers::Array(entries)) => entries,
    };
    let mut pairs = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let field = format!("{field}[{i}]");
        let Entry::Object(mut members) = entry else {
            return Err(Invalid::new(
                field,
                "must be an object {\"key\": …, \"value\": …}",
            ));
        };
        let mut take = |name: &str| {
            let at = members.iter().position(|(n, _)| n == name);
            at.map(|at| members.swap_remove(at).1)
        };
        let key = take("key");
        let value = take("value");
        pairs.push(HeaderPair {
            key: required(key, format!("{field}.key"))?,
            value: required(value, format!("{field}.value"))?,
        });
    }
    Ok(pairs)
}

/// Why the valid JSON text `raw` at `field` could not be decoded: a lone surrogate escape
/// (serde_json refuses to decode one into a string), else `otherwise`.
fn undecodable(raw: &str, field: String, otherwise: &str) -> Invalid {
    if has_lone_surrogate(raw) {
        Invalid::new(
            field,
            "holds an invalid Unicode escape: a lone surrogate (\\uD800 to \\uDFFF not in a \
             high-low pair); send the character itself or its full pair",
        )
    } else {
        Invalid::new(field, otherwise)
    }
}

/// `raw` decoded as `T`; an error is a number beyond `f64` or a lone surrogate escape (the
/// text is valid JSON already).
fn decode<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Result<T, serde_json::Error> {
    serde_json::from_str(raw.get())
}

/// The members of a JSON object in their order, each value still JSON text.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'a> Members<'a> {
    /// The members of `raw`; `field` names the object in the refusal when `raw` is not an
    /// object or repeats a member (which of two values was meant cannot be told, and parsers
    /// disagree on it).
    fn read(raw: &'a RawValue, field: &str) -> Result<Self, Invalid> {
        let Ok(members) = serde_json::from_str::<Members<'a>>(raw.get()) else {
            return Err(undecodable(
                raw.get(),
                field.to_owned(),
                "must be a JSON object",
            ));
        };
        refuse_repeated(members.0.iter().map(|(n, _)| n), field)?;
        Ok(members)
    }

    /// The value of member `name`.
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Refuses a member that is not one of `known` but looks like a misspelling of one that
    /// is absent: left alone it would be dropped and the message delivered without its
    /// payload, its token or its key. Other members are ignored, and so is a look-alike of a
    /// field that is there too (`streamMessageId` beside `streamMessage`).
    fn refuse_near_misses(&self, known: &[&'static str], prefix: &str) -> Result<(), Invalid> {
        for (name, _) in &self.0 {
            if known.contains(&name.as_str()) {
                continue;
            }
            if let Some(meant) = near_miss(name, known).filter(|m| self.get(m).is_none()) {
                return Err(Invalid::new(
                    format!("{prefix}{name}"),
                    format!("is not a field of a sync request; did you mean {meant}?"),
                ));
            }
        }
        Ok(())
    }
}

/// Refuses the object at `field` when `names` repeats one, naming the first repeated in sort
/// order (when it may be echoed).
fn refuse_repeated<'n>(
    names: impl Iterator<Item = &'n String>,
    field: &str,
) -> Result<(), Invalid> {
    let mut names: Vec<&str> = names.map(String::as_str).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        let name = pair[0];
        let named = if may_echo(name) {
            format!("{field}.{name}")
        } else {
            field.to_owned()
        };
        return Err(Invalid::new(
            named,
            "appears more than once in the object; send each field once",
        ));
    }
    Ok(())
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// A member that should hold a string: the string, null, or anything else.
enum Text {
    String(String),
    Null,
    Other,
}

/// `targetRestApiHeaders`: null, an array of entries, or anything else.
enum Headers {
    Null,
    Array(Vec<Entry>),
    NotArray,
}

/// One header entry: an object's members (the text ones decoded), or anything else.
enum Entry {
    Object(Vec<(String, Text)>),
    NotObject,
}

/// Any JSON value, read to its end and dropped, failing on a number beyond `f64` as decoding it
/// into a value would.
struct InRange;

/// Visitor methods answering `$other` for the scalars a decoder does not want.
macro_rules! other_scalars {
    ($other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }
    };
}

/// Visitor methods reading an array or object to its end (numbers in range) and answering
/// `$other`.
macro_rules! other_containers {
    ($other:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<InRange>()?.is_some() {}
            Ok($other)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, InRange>()?.is_some() {}
            Ok($other)
        }
    };
}

/// Visitor methods answering `$other` for a string or null.
macro_rules! other_text {
    ($other:expr) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
    };
}

/// A `Deserialize` through `deserialize_any` with the visitor methods given.
macro_rules! decoder {
    ($ty:ty, $($methods:tt)*) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visit;
                impl<'de> Visitor<'de> for Visit {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("any JSON value")
                    }
                    $($methods)*
                }
                d.deserialize_any(Visit)
            }
        }
    };
}

decoder!(InRange, other_scalars!(InRange); other_containers!(InRange); other_text!(InRange););

decoder!(Text,
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
        Ok(Text::String(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Text, E> {
        Ok(Text::String(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
        Ok(Text::Null)
    }
    other_scalars!(Text::Other);
    other_containers!(Text::Other);
);

decoder!(Headers,
    fn visit_unit<E: de::Error>(self) -> Result<Headers, E> {
        Ok(Headers::Null)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Headers, E> {
        Ok(Headers::NotArray)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Headers, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = seq.next_element::<Entry>()? {
            entries.push(entry);
        }
        Ok(Headers::Array(entries))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
        while map.next_entry::<IgnoredAny, InRange>()?.is_some() {}
        Ok(Headers::NotArray)
    }
    other_scalars!(Headers::NotArray);
);

decoder!(Entry,
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Text>()? {
            members.push(member);
        }
        Ok(Entry::Object(members))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
        while seq.next_element::<InRange>()?.is_some() {}
        Ok(Entry::NotObject)
    }
    other_scalars!(Entry::NotObject);
    other_text!(Entry::NotObject);
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn read(json: &str, prefix: &str) -> Result<SyncRequest, String> {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        read_sync_request(raw, prefix).map_err(|e| e.to_string())
    }

    const GOOD: &str = r#"{"streamKey":"k","streamMessage":{"targetRestApi":"https://a/b","targetRestApiOperation":"post","targetRestApiPayload": { "n" : 1e400 },"targetRestApiHeaders":[{"key":"X-A","value":"1","note":true}],"note":1e400}}"#;

    #[test]
    fn a_request_is_read_once_into_the_schema() {
        let request = read(GOOD, "").unwrap();
        assert_eq!(request.stream_key.as_deref(), Some("k"));
        let m = request.stream_message;
        assert_eq!(m.target_rest_api_operation, "post");
        // The payload is never decoded: a number beyond f64 stays as sent, compacted.
        assert_eq!(m.target_rest_api_payload.unwrap().get(), r#"{"n":1e400}"#);
        assert_eq!(
            m.target_rest_api_headers,
            vec![HeaderPair {
                key: "X-A".into(),
                value: "1".into()
            }]
        );
        let bare = read(
            r#"{"streamKey":"","streamMessage":{"targetRestApi":"u","targetRestApiOperation":"PUT","targetRestApiPayload":null,"targetRestApiHeaders":null,"vaultSecretName":null}}"#,
            "",
        )
        .unwrap();
        assert_eq!(bare.stream_key, None);
        assert_eq!(bare.status_callback, None);
        assert_eq!(bare.stream_message.target_rest_api_payload, None);
        let with_callback = read(
            r#"{"statusCallback":"https://app/cb","streamMessage":{"targetRestApi":"u","targetRestApiOperation":"PUT"}}"#,
            "",
        )
        .unwrap();
        assert_eq!(
            with_callback.status_callback.as_deref(),
            Some("https://app/cb")
        );
        assert!(bare.stream_message.target_rest_api_headers.is_empty());
    }

    #[test]
    fn a_lone_surrogate_is_named_as_such() {
        let m = |members: &str| {
            format!(
                r#"{{"streamMessage":{{"targetRestApi":"u","targetRestApiOperation":"PUT"{members}}}}}"#
            )
        };
        for (json, field) in [
            (
                r#"{"streamKey":"\ud800","streamMessage":{}}"#.to_owned(),
                "streamKey",
            ),
            (
                m(r#","vaultSecretName":"a\udc00""#),
                "streamMessage.vaultSecretName",
            ),
            (
                m(r#","targetRestApiHeaders":[{"key":"a","value":"\ud83d"}]"#),
                "streamMessage.targetRestApiHeaders",
            ),
            (
                r#"{"streamMessage":{"\ud800":1}}"#.to_owned(),
                "streamMessage",
            ),
        ] {
            let refusal = read(&json, "").unwrap_err();
            assert_eq!(
                refusal,
                format!(
                    "{field}: holds an invalid Unicode escape: a lone surrogate (\\uD800 to \\uDFFF not in a high-low pair); send the character itself or its full pair"
                ),
                "{json}"
            );
        }
        // A full pair is a character like any other.
        let pair = read(r#"{"streamKey":"\ud83d\ude00","streamMessage":{"targetRestApi":"u","targetRestApiOperation":"PUT"}}"#, "").unwrap();
        assert_eq!(pair.stream_key.as_deref(), Some("\u{1f600}"));
    }

    #[test]
    fn each_refusal_names_its_field() {
        let m = |members: &str| {
            format!(
                r#"{{"streamMessage":{{"targetRestApi":"u","targetRestApiOperation":"PUT"{members}}}}}"#
            )
        };
        let long_key = format!(
            r#"{{"streamKey":"{}","streamMessage":{{}}}}"#,
            "k".repeat(1025)
        );
        for (json, prefix, refusal) in [
            ("3".to_owned(), "[1].", "[1]: must be a JSON object"),
            (r#"{"streamKey":1e400}"#.to_owned(), "", "streamKey: must be a string"),
            (r#"{"statusCallback":5,"streamMessage":{"targetRestApi":"u","targetRestApiOperation":"PUT"}}"#.to_owned(), "[2].", "[2].statusCallback: must be a string"),
            (long_key, "", "streamKey: must be at most 1024 bytes"),
            (r#"{"streamMessage":null}"#.to_owned(), "", "streamMessage: must be a JSON object"),
            (m(r#","targetRestApi":"v""#), "", "streamMessage.targetRestApi: appears more than once in the object; send each field once"),
            (m(r#","vaultSecretNam":"s""#), "[0].", "[0].streamMessage.vaultSecretNam: is not a field of a sync request; did you mean vaultSecretName?"),
            (m(r#","vaultSecretName":[1e400]"#), "", "streamMessage.vaultSecretName: holds a number out of range"),
            (m(r#","targetRestApiHeaders":[{"key":"a","value":"b","n":1e400}]"#), "", "streamMessage.targetRestApiHeaders: holds a number out of range"),
            (m(r#","targetRestApiHeaders":[{"key":"a","key":"b","value":1}]"#), "", "streamMessage.targetRestApiHeaders[0].key: appears more than once in the object; send each field once"),
            (m(r#","targetRestApiHeaders":[{"key":"a"}]"#), "", "streamMessage.targetRestApiHeaders[0].value: is required"),
            (m(r#","targetRestApiHeaders":[{"key":null,"value":"b"}]"#), "", "streamMessage.targetRestApiHeaders[0].key: is required"),
            (m(r#","targetRestApiHeaders":[[]]"#), "", "streamMessage.targetRestApiHeaders[0]: must be an object {\"key\": …, \"value\": …}"),
            (m(r#","targetRestApiHeaders":"a""#), "", "streamMessage.targetRestApiHeaders: must be an array of {\"key\": …, \"value\": …}"),
            (m(r#","vaultSecretHeader":true"#), "", "streamMessage.vaultSecretHeader: must be a string"),
            (r#"{"streamMessage":{"targetRestApiOperation":"PUT"}}"#.to_owned(), "", "streamMessage.targetRestApi: is required"),
            (r#"{"streamMessage":{"targetRestApi":{},"targetRestApiOperation":1}}"#.to_owned(), "", "streamMessage.targetRestApi: must be a string"),
        ] {
            assert_eq!(read(&json, prefix).unwrap_err(), refusal, "{json}");
        }
    }
}
