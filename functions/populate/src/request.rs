//! The request, checked before anything is written: method, caller, media type, sizes, the
//! body's shape, every message rule, the token, and each envelope's size.

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use datasync_core::message::{
    is_valid_traceparent, new_traceparent, refuse_credential_headers, scoped_secret_name, validate,
    Envelope, Payload, Policy, StreamMessage, MAX_MESSAGE_BYTES, MAX_STREAM_KEY,
};
use datasync_core::oci::streaming::PutMessage;
use fdk::Context;
use http::{HeaderMap, Method};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::answer::Refusal;
use crate::{CALLER_HEADER, MAX_BATCH, MAX_BODY_BYTES, MAX_CALLER_LEN, MAX_TOKEN_BYTES};

/// The client's `Authorization` value. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token(Vec<u8>);

impl Token {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<{} bytes redacted>)", self.0.len())
    }
}

/// One accepted message, ready to write.
#[derive(Debug)]
pub(crate) struct Item {
    /// The envelope id.
    pub id: String,
    /// What goes on the stream.
    pub message: PutMessage,
    /// The scoped Vault secret name, when the item names a secret.
    pub secret: Option<String>,
    /// Where the item's secret name came from, for errors (`[2].streamMessage.vaultSecretName`).
    pub secret_field: String,
}

/// A request that passed every check.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub caller: String,
    pub token: Option<Token>,
    pub items: Vec<Item>,
    /// Whether the body was a JSON array (the answer is an array then).
    pub batch: bool,
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a http::HeaderValue> {
    headers.get_all(name).iter().collect()
}

/// Checks the call and its body. Nothing is written by this function.
pub(crate) fn accept(
    ctx: &Context,
    body: &Bytes,
    policy: &Policy,
    now: SystemTime,
) -> Result<Accepted, Refusal> {
    let empty = HeaderMap::new();
    let (method, headers) = match &ctx.http {
        Some(http) => (&http.method, &http.headers),
        // A plain invoke carries no gateway identity: refused below as unauthenticated.
        None => (&Method::POST, &empty),
    };
    if method != Method::POST {
        return Err(Refusal::method_not_allowed());
    }
    let caller = caller(headers)?;
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    if !json {
        return Err(Refusal::unsupported_media_type());
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(Refusal::too_large(format!(
            "the body is {} bytes; at most {MAX_BODY_BYTES}",
            body.len()
        )));
    }
    let token = token(headers)?;
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| is_valid_traceparent(t))
        .map_or_else(new_traceparent, str::to_owned);

    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal::invalid("body", "is empty; send a sync request"));
    }
    // serde_json's messages can quote the input: report where, not what. Parsed only as far as
    // the structure: each value stays JSON text until a rule needs it, and a payload never
    // becomes anything else (see `Payload`).
    let value: &RawValue = serde_json::from_slice(body).map_err(|e| {
        Refusal::invalid(
            "body",
            &format!(
                "is not valid JSON ({} error at line {} column {})",
                format!("{:?}", e.classify()).to_ascii_lowercase(),
                e.line(),
                e.column()
            ),
        )
    })?;
    let (values, batch) = match value.get().as_bytes().first() {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(value.get())
                .map_err(|_| Refusal::invalid("body", "is not a JSON array"))?;
            if items.is_empty() {
                return Err(Refusal::invalid("body", "is an empty array"));
            }
            if items.len() > MAX_BATCH {
                return Err(Refusal::too_large(format!(
                    "the batch has {} items; at most {MAX_BATCH}",
                    items.len()
                )));
            }
            (items, true)
        }
        _ => (vec![value], false),
    };

    let mut items = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let prefix = if batch {
            format!("[{index}].")
        } else {
            String::new()
        };
        items.push(item(
            &prefix,
            value,
            policy,
            &caller,
            token.is_some(),
            now,
            &traceparent,
        )?);
    }
    Ok(Accepted {
        caller,
        token,
        items,
        batch,
    })
}

/// The caller named by the gateway. Never taken from the body.
fn caller(headers: &HeaderMap) -> Result<String, Refusal> {
    let values = header_values(headers, CALLER_HEADER);
    let missing = || {
        Refusal::not_authenticated(
            "no caller identity: populate must be called through the API gateway, which authenticates the caller",
        )
    };
    let [value] = values.as_slice() else {
        return Err(missing());
    };
    let text = value.to_str().map_err(|_| missing())?.trim();
    if text.is_empty() || text.len() > MAX_CALLER_LEN || text.chars().any(char::is_control) {
        return Err(missing());
    }
    Ok(text.to_owned())
}

/// The client's `Authorization` header, the token to keep in Vault.
fn token(headers: &HeaderMap) -> Result<Option<Token>, Refusal> {
    match header_values(headers, "authorization").as_slice() {
        [] => Ok(None),
        [value] => {
            let bytes = value.as_bytes();
            if bytes.iter().all(u8::is_ascii_whitespace) {
                Err(Refusal::invalid("Authorization", "header is empty"))
            } else if bytes.len() > MAX_TOKEN_BYTES {
                Err(Refusal::invalid(
                    "Authorization",
                    &format!("header is longer than {MAX_TOKEN_BYTES} bytes"),
                ))
            } else {
                Ok(Some(Token(bytes.to_vec())))
            }
        }
        _ => Err(Refusal::invalid(
            "Authorization",
            "header is sent more than once",
        )),
    }
}

fn expect_string(
    map: &Map<String, Value>,
    key: &str,
    field: &str,
    required: bool,
) -> Result<(), Refusal> {
    match map.get(key) {
        Some(Value::String(_)) => Ok(()),
        None | Some(Value::Null) if !required => Ok(()),
        None | Some(Value::Null) => Err(Refusal::invalid(field, "is required")),
        Some(_) => Err(Refusal::invalid(field, "must be a string")),
    }
}

/// The fields of a sync request, and of its `streamMessage`.
const REQUEST_FIELDS: &[&str] = &["streamKey", "streamMessage"];
const MESSAGE_FIELDS: &[&str] = &[
    "vaultSecretName",
    "vaultSecretHeader",
    "targetRestApi",
    "targetRestApiOperation",
    "targetRestApiPayload",
    "targetRestApiHeaders",
];

/// The members of a JSON object in their order, each value still JSON text; `field` names the
/// object in the refusal when `raw` is not an object or repeats a key (which one of two values
/// was meant cannot be told, and parsers disagree on it).
fn members<'a>(raw: &'a RawValue, field: &str) -> Result<Vec<(String, &'a RawValue)>, Refusal> {
    struct Members<'a>(Vec<(String, &'a RawValue)>);
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
    let Ok(Members(members)) = serde_json::from_str::<Members<'a>>(raw.get()) else {
        return Err(Refusal::invalid(field, "must be a JSON object"));
    };
    let mut names: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        let name = pair[0];
        let named = if may_echo(name) {
            format!("{field}.{name}")
        } else {
            field.to_owned()
        };
        return Err(Refusal::invalid(
            &named,
            "appears more than once in the object; send each field once",
        ));
    }
    Ok(members)
}

/// Refuses a `targetRestApiHeaders` entry that repeats a member (`{"key": "a", "key": "b",
/// …}`), as [`members`] refuses it in the request and its message: parsed into a `Value`, the
/// last would win. Entries of the wrong shape pass here; the shape rules refuse them after. (A
/// `RawValue` starts at its value's first byte: `{` for an object, however the client spaced it.)
fn refuse_repeated_header_members(raw: &RawValue, field: &str) -> Result<(), Refusal> {
    let Ok(entries) = serde_json::from_str::<Vec<&RawValue>>(raw.get()) else {
        return Ok(());
    };
    for (i, entry) in entries.iter().enumerate() {
        if entry.get().starts_with('{') {
            members(entry, &format!("{field}[{i}]"))?;
        }
    }
    Ok(())
}

/// The value of member `name`, or `None`.
fn member<'a>(members: &[(String, &'a RawValue)], name: &str) -> Option<&'a RawValue> {
    members
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| *value)
}

/// The members named in `fields` as parsed values, for the rules to look into; except
/// `targetRestApiPayload`, which is never parsed into a `Value`.
fn parse_fields(
    members: &[(String, &RawValue)],
    fields: &[&str],
    prefix: &str,
) -> Result<Map<String, Value>, Refusal> {
    let mut map = Map::new();
    for (name, raw) in members {
        if fields.contains(&name.as_str()) && name != "targetRestApiPayload" {
            let value = serde_json::from_str(raw.get()).map_err(|_| {
                Refusal::invalid(&format!("{prefix}{name}"), "holds a number out of range")
            })?;
            map.insert(name.clone(), value);
        }
    }
    Ok(map)
}

/// Refuses a field that is not one of `known` but looks like a misspelling of one that is
/// absent (`targetRestApiPayLoad`, `vault_secret_name`, `streamkey`): left alone it would be
/// dropped and the message delivered without its payload, its token or its key. Other fields
/// are ignored, as Oracle's sample ignores them, so source apps that send more keep working;
/// so is a look-alike of a field that is there too (`streamMessageId` beside `streamMessage`).
fn refuse_near_misses(
    members: &[(String, &RawValue)],
    known: &[&'static str],
    prefix: &str,
) -> Result<(), Refusal> {
    for (name, _) in members {
        if known.contains(&name.as_str()) {
            continue;
        }
        if let Some(meant) = near_miss(name, known).filter(|m| member(members, m).is_none()) {
            return Err(Refusal::invalid(
                &format!("{prefix}{name}"),
                &format!("is not a field of a sync request; did you mean {meant}?"),
            ));
        }
    }
    Ok(())
}

/// Whether a member name the client sent may be quoted back in a refusal: at most 40
/// characters, and no control or non-ASCII character.
fn may_echo(name: &str) -> bool {
    name.len() <= 40 && name.chars().all(|c| c.is_ascii_graphic() || c == ' ')
}

/// The field of `known` that `name` most likely misspells: the same letters in another case
/// or with `_`/`-` between words, or at most two letters added, dropped or changed.
fn near_miss(name: &str, known: &[&'static str]) -> Option<&'static str> {
    // Longer names are nobody's typo of a field here, and need not be compared.
    if !may_echo(name) {
        return None;
    }
    let folded: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect();
    known
        .iter()
        .map(|k| (edit_distance(&folded, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance (insertions, deletions, substitutions), by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// One sync request: shape, rules, secret, envelope size.
fn item(
    prefix: &str,
    value: &RawValue,
    policy: &Policy,
    caller: &str,
    has_token: bool,
    now: SystemTime,
    traceparent: &str,
) -> Result<Item, Refusal> {
    let here = if prefix.is_empty() {
        "body".to_owned()
    } else {
        prefix.trim_end_matches('.').to_owned()
    };
    let request = members(value, &here)?;
    refuse_near_misses(&request, REQUEST_FIELDS, prefix)?;
    let key_field = format!("{prefix}streamKey");
    let streamkey = member(&request, "streamKey")
        .map(|raw| serde_json::from_str::<Value>(raw.get()))
        .transpose()
        .map_err(|_| Refusal::invalid(&key_field, "must be a string"))?;
    let key = match streamkey {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if k.is_empty() => None,
        Some(Value::String(k)) if k.len() > MAX_STREAM_KEY => {
            return Err(Refusal::invalid(
                &key_field,
                &format!("must be at most {MAX_STREAM_KEY} bytes"),
            ))
        }
        Some(Value::String(k)) => Some(Bytes::from(k.into_bytes())),
        Some(_) => return Err(Refusal::invalid(&key_field, "must be a string")),
    };
    let message_field = format!("{prefix}streamMessage");
    let Some(message) = member(&request, "streamMessage") else {
        return Err(Refusal::invalid(&message_field, "must be a JSON object"));
    };
    let fields = members(message, &message_field)?;
    refuse_near_misses(&fields, MESSAGE_FIELDS, &format!("{message_field}."))?;
    let f = |name: &str| format!("{message_field}.{name}");
    let payload = member(&fields, "targetRestApiPayload");
    let message = parse_fields(&fields, MESSAGE_FIELDS, &format!("{message_field}."))?;
    if let Some(raw) = member(&fields, "targetRestApiHeaders") {
        refuse_repeated_header_members(raw, &f("targetRestApiHeaders"))?;
    }
    expect_string(&message, "targetRestApi", &f("targetRestApi"), true)?;
    expect_string(
        &message,
        "targetRestApiOperation",
        &f("targetRestApiOperation"),
        true,
    )?;
    expect_string(&message, "vaultSecretName", &f("vaultSecretName"), false)?;
    expect_string(
        &message,
        "vaultSecretHeader",
        &f("vaultSecretHeader"),
        false,
    )?;
    match message.get("targetRestApiHeaders") {
        None | Some(Value::Null) => {}
        Some(Value::Array(headers)) => {
            for (i, h) in headers.iter().enumerate() {
                let field = f(&format!("targetRestApiHeaders[{i}]"));
                let Value::Object(h) = h else {
                    return Err(Refusal::invalid(
                        &field,
                        "must be an object {\"key\": …, \"value\": …}",
                    ));
                };
                expect_string(h, "key", &format!("{field}.key"), true)?;
                expect_string(h, "value", &format!("{field}.value"), true)?;
            }
        }
        Some(_) => {
            return Err(Refusal::invalid(
                &f("targetRestApiHeaders"),
                "must be an array of {\"key\": …, \"value\": …}",
            ))
        }
    }
    let mut message: StreamMessage = serde_json::from_value(Value::Object(message))
        .map_err(|_| Refusal::invalid(&message_field, "is not a sync message"))?;
    message.target_rest_api_payload = match payload {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => Some(
            Payload::from_raw(raw)
                .map_err(|_| Refusal::invalid(&f("targetRestApiPayload"), "is not valid JSON"))?,
        ),
    };
    validate(&mut message, policy)
        .and_then(|_| refuse_credential_headers(&message))
        .map_err(|invalid| {
            Refusal::invalid(&format!("{prefix}{}", invalid.field), &invalid.rule)
        })?;

    let secret_field = f("vaultSecretName");
    let secret = match (&message.vault_secret_name, has_token) {
        (Some(name), _) => Some(scoped_secret_name(caller, name)),
        (None, true) => {
            return Err(Refusal::invalid(
                &secret_field,
                "is required when the request carries an Authorization header (the token is kept in Vault under this name)",
            ))
        }
        (None, false) => None,
    };

    let envelope = Envelope::new(message, caller.to_owned(), now, traceparent.to_owned());
    let id = envelope.id.clone().unwrap_or_default();
    let value = envelope
        .encode()
        .map_err(|_| Refusal::invalid(&message_field, "cannot be encoded"))?;
    let size = value.len() + key.as_ref().map_or(0, Bytes::len);
    if size > MAX_MESSAGE_BYTES {
        return Err(Refusal::too_large(format!(
            "{here}: the message is {size} bytes on the stream (streamKey + envelope); at most {MAX_MESSAGE_BYTES}"
        )));
    }
    Ok(Item {
        id,
        message: PutMessage::new(key, value),
        secret,
        secret_field,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_fields_are_recognised_and_other_fields_are_not() {
        for (name, meant) in [
            ("targetRestApiPayLoad", "targetRestApiPayload"),
            ("targetRestAPI", "targetRestApi"),
            ("target_rest_api_payload", "targetRestApiPayload"),
            ("vault-secret-name", "vaultSecretName"),
            ("targetRestApiHeader", "targetRestApiHeaders"),
            ("targetRestApiOpertion", "targetRestApiOperation"),
            ("vaultSecretNme", "vaultSecretName"),
            ("vaultSecretHeadr", "vaultSecretHeader"),
        ] {
            assert_eq!(near_miss(name, MESSAGE_FIELDS), Some(meant), "{name}");
        }
        assert_eq!(near_miss("streamkey", REQUEST_FIELDS), Some("streamKey"));
        assert_eq!(
            near_miss("streamMessages", REQUEST_FIELDS),
            Some("streamMessage")
        );
        for other in [
            "note",
            "correlationId",
            "metadata",
            "targetSystem",
            "payload",
            "",
        ] {
            assert_eq!(near_miss(other, MESSAGE_FIELDS), None, "{other}");
        }
        assert_eq!(near_miss(&"x".repeat(41), MESSAGE_FIELDS), None);
        assert_eq!(near_miss("targetRestApi\n", MESSAGE_FIELDS), None);
        assert_eq!(
            near_miss("targetRestApi ", MESSAGE_FIELDS),
            Some("targetRestApi")
        );
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("payload", "payloda"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
