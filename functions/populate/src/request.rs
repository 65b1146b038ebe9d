//! The request, checked before anything is written: method, caller, media type, sizes, the
//! body's shape, every message rule, the token, and each envelope's size.

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use datasync_core::message::{
    is_valid_traceparent, new_traceparent, read_sync_request, refuse_credential_headers,
    scoped_secret_name, sealed_allowance, validate, validate_status_callback, Envelope, Invalid,
    Policy, MAX_MESSAGE_BYTES,
};
use datasync_core::oci::streaming::PutMessage;
use fdk::Context;
use http::{HeaderMap, Method};
use serde_json::value::RawValue;

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
    /// The route a routed item names (its answer names it, for per-route counts).
    pub route: Option<String>,
}

/// A request that passed every check.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub caller: String,
    pub token: Option<Token>,
    pub items: Vec<Item>,
    /// Whether the body was a JSON array (the answer is an array then).
    pub batch: bool,
    /// Routed messages their route's filter dropped: (index in the body, answer).
    pub filtered: Vec<(usize, crate::routed::Filtered)>,
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a http::HeaderValue> {
    headers.get_all(name).iter().collect()
}

/// Checks the call and its body. Nothing is written by this function.
pub(crate) fn accept(
    ctx: &Context,
    body: &Bytes,
    policy: &Policy,
    routes: Option<&datasync_core::routes::RouteSet>,
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
    if !is_json(headers) {
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

    let (values, batch) = requests(body)?;
    let each = ItemContext {
        policy,
        caller: &caller,
        has_token: token.is_some(),
        token_len: token.as_ref().map_or(0, |t| t.bytes().len()),
        now,
        traceparent: &traceparent,
    };
    let routed = crate::routed::RoutedContext {
        routes,
        policy,
        caller: &caller,
        now,
        traceparent: &traceparent,
    };
    let mut items = Vec::with_capacity(values.len());
    let mut filtered = Vec::new();
    for (index, value) in values.iter().enumerate() {
        let prefix = if batch {
            format!("[{index}].")
        } else {
            String::new()
        };
        if datasync_core::message::is_routed(value) {
            match crate::routed::item(&prefix, value, &routed)? {
                crate::routed::Routed::Store(item) => items.push(item),
                crate::routed::Routed::Filtered(f) => filtered.push((index, f)),
            }
        } else {
            items.push(item(&prefix, value, &each)?);
        }
    }
    Ok(Accepted {
        caller,
        token,
        items,
        batch,
        filtered,
    })
}

/// Whether the call's media type is `application/json` (any parameters).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}

/// The sync requests of the body, each still JSON text, and whether it was a batch (an array).
/// The body is read once, only as far as its structure: each request is read against the
/// schema after (see [`read_sync_request`]), and a payload never becomes anything but text.
fn requests(body: &Bytes) -> Result<(Vec<&RawValue>, bool), Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal::invalid("body", "is empty; send a sync request"));
    }
    // serde_json's messages can quote the input: report where, not what.
    let not_json = |e: serde_json::Error| {
        Refusal::invalid(
            "body",
            &format!(
                "is not valid JSON ({} error at line {} column {})",
                format!("{:?}", e.classify()).to_ascii_lowercase(),
                e.line(),
                e.column()
            ),
        )
    };
    let first = body
        .iter()
        .find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'[') {
        let value: &RawValue = serde_json::from_slice(body).map_err(not_json)?;
        return Ok((vec![value], false));
    }
    let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(not_json)?;
    if items.is_empty() {
        return Err(Refusal::invalid("body", "is an empty array"));
    }
    if items.len() > MAX_BATCH {
        return Err(Refusal::too_large(format!(
            "the batch has {} items; at most {MAX_BATCH}",
            items.len()
        )));
    }
    Ok((items, true))
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

/// What every item of a request shares.
struct ItemContext<'a> {
    policy: &'a Policy,
    caller: &'a str,
    /// Whether the call carries an `Authorization` header (then each item must name a secret).
    has_token: bool,
    /// The token's length: room is kept in each envelope for it sealed.
    token_len: usize,
    now: SystemTime,
    traceparent: &'a str,
}

/// One sync request at `prefix` (`[2].` in a batch): schema, rules, secret, envelope size.
fn item(prefix: &str, value: &RawValue, each: &ItemContext<'_>) -> Result<Item, Refusal> {
    let here = if prefix.is_empty() {
        "body".to_owned()
    } else {
        prefix.trim_end_matches('.').to_owned()
    };
    let invalid = |i: Invalid| Refusal::invalid(&i.field, &i.rule);
    let request = read_sync_request(value, prefix).map_err(invalid)?;
    let key = request.stream_key.map(|k| Bytes::from(k.into_bytes()));
    let message_field = format!("{prefix}streamMessage");
    let mut message = request.stream_message;
    let named =
        |invalid: Invalid| Refusal::invalid(&format!("{prefix}{}", invalid.field), &invalid.rule);
    validate(&mut message, each.policy)
        .and_then(|_| refuse_credential_headers(&message))
        .map_err(named)?;
    if let Some(url) = &request.status_callback {
        validate_status_callback(url, each.policy).map_err(named)?;
    }

    let secret_field = format!("{message_field}.vaultSecretName");
    let secret = match (&message.vault_secret_name, each.has_token) {
        (Some(name), _) => Some(scoped_secret_name(each.caller, name)),
        (None, true) => {
            return Err(Refusal::invalid(
                &secret_field,
                "is required when the request carries an Authorization header (the token is kept in Vault under this name)",
            ))
        }
        (None, false) => None,
    };

    let mut envelope = Envelope::new(
        message,
        each.caller.to_owned(),
        each.now,
        each.traceparent.to_owned(),
    );
    envelope.status_callback = request.status_callback;
    let id = envelope.id.clone().unwrap_or_default();
    let value = envelope
        .encode()
        .map_err(|_| Refusal::invalid(&message_field, "cannot be encoded"))?;
    let sealed = match &secret {
        Some(_) if each.has_token => sealed_allowance(each.token_len),
        _ => 0,
    };
    check_size(
        &here,
        value.len() + key.as_ref().map_or(0, Bytes::len) + sealed,
    )?;
    Ok(Item {
        id,
        message: PutMessage::new(key, value),
        secret,
        secret_field,
        route: None,
    })
}

/// Refuses a message whose `size` on the stream (key + envelope, and the sealed token to come)
/// is over Streaming's limit; `here` names the item (`body`, `[2]`).
pub(crate) fn check_size(here: &str, size: usize) -> Result<(), Refusal> {
    if size > MAX_MESSAGE_BYTES {
        return Err(Refusal::too_large(format!(
            "{here}: the message is {size} bytes on the stream (streamKey + envelope); at most {MAX_MESSAGE_BYTES}"
        )));
    }
    Ok(())
}
