//! [`RouteDef`]: a route as an operator writes it (TOML `[[routes]]` or the JSON form), and
//! the rules its fields follow. The target, headers and Vault secret follow the rules of a
//! sample message's `targetRestApi`, `targetRestApiHeaders` and `vaultSecretName` (checked by
//! the same code, [`crate::message::validate`]), except that the route's own target host is
//! allowed: an operator defined it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{Field, RouteError};
use crate::message::{
    refuse_credential_headers, validate, validate_status_callback, AllowList, HeaderPair, Invalid,
    Policy, StreamMessage,
};

/// The longest route name.
pub const MAX_NAME: usize = 64;

/// One route, as written: snake_case keys, unknown keys refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDef {
    /// `[a-z0-9-]{1,64}`: what sources name in `"route"`.
    pub name: String,
    /// The target URL (https, or http where the deployment allows it).
    pub target: String,
    /// `POST`, `PUT`, `PATCH` or `DELETE`, or a jq program over the data yielding one of them.
    /// Default `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Static, non-credential headers for the target call, name to value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The Vault secret holding the target's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_secret: Option<String>,
    /// The header the token is sent in (default `Authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_secret_header: Option<String>,
    /// jq: a message whose first output is `false`, `null` or none is not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// jq: its single output is the payload (default: the data as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    /// jq: the stream key (a string) when the source sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// jq: a string appended to the target URL's path (`/orders/{id}`-style APIs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The default `statusCallback` of the route's messages (a request's own wins): checked
    /// by the rules of a request's (`crate::message::validate_status_callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback: Option<String>,
}

/// The operations a target call may use.
pub const OPERATIONS: [&str; 4] = ["POST", "PUT", "PATCH", "DELETE"];

/// `word` upper-cased when it is one of [`OPERATIONS`].
pub(crate) fn fixed_operation(word: &str) -> Option<&'static str> {
    OPERATIONS
        .iter()
        .copied()
        .find(|op| op.eq_ignore_ascii_case(word.trim()))
}

impl RouteDef {
    /// Checks the name, target, headers and Vault fields (not the programs: see
    /// [`super::Route::compile`]).
    ///
    /// # Errors
    /// The first rule broken, naming the route and field.
    pub fn check(&self) -> Result<url::Url, RouteError> {
        let invalid = |field, rule: String| RouteError::Invalid {
            route: self.name.clone(),
            field,
            rule,
        };
        let legal_name = !self.name.is_empty()
            && self.name.len() <= MAX_NAME
            && self
                .name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !legal_name {
            return Err(invalid(
                Field::Name,
                format!("must be 1 to {MAX_NAME} of a-z 0-9 -"),
            ));
        }
        let mut message = self.as_stream_message();
        let policy = Policy {
            allow_list: own_host(&self.target),
            // The scheme is the deployment's choice: `RouteSet::check_scheme`.
            allow_http: true,
        };
        let url = validate(&mut message, &policy)
            .and_then(|url| refuse_credential_headers(&message).map(|()| url))
            .map_err(|e| invalid(field_of(&e), rule_of(&e, &self.headers)))?;
        if url.fragment().is_some() {
            return Err(invalid(Field::Target, "must not have a #fragment".into()));
        }
        if self.path.is_some() && url.query().is_some() {
            return Err(invalid(
                Field::Target,
                "must not have a ?query when the route has a path program".into(),
            ));
        }
        if let Some(callback) = &self.status_callback {
            // Form, credentials and control characters here; the deployment's allow-list and
            // scheme rule in `RouteSet::check_callbacks`.
            let own = Policy {
                allow_list: own_host(callback),
                allow_http: true,
            };
            self.check_callback(callback, &own)?;
        }
        Ok(url)
    }

    /// Checks `status_callback` by `policy`, as a request's `statusCallback` is checked.
    ///
    /// # Errors
    /// The rule broken, naming the route and `status_callback`.
    pub fn check_callback(&self, callback: &str, policy: &Policy) -> Result<(), RouteError> {
        validate_status_callback(callback, policy)
            .map(|_| ())
            .map_err(|e| RouteError::Invalid {
                route: self.name.clone(),
                field: Field::StatusCallback,
                rule: e.rule.replace("statusCallback", "status_callback"),
            })
    }

    /// The fields a sample message would carry for this route, so the sample's rules apply.
    fn as_stream_message(&self) -> StreamMessage {
        let operation = self
            .operation
            .as_deref()
            .and_then(fixed_operation)
            .unwrap_or("POST");
        StreamMessage {
            vault_secret_name: self.vault_secret.clone(),
            vault_secret_header: self.vault_secret_header.clone(),
            target_rest_api: self.target.clone(),
            target_rest_api_operation: operation.to_owned(),
            target_rest_api_payload: None,
            target_rest_api_headers: self
                .headers
                .iter()
                .map(|(key, value)| HeaderPair {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

/// An allow-list holding `target`'s own host and port (empty when it has none: `validate`
/// then refuses the URL for its real fault first).
fn own_host(target: &str) -> AllowList {
    let Ok(url) = url::Url::parse(target) else {
        return AllowList::default();
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return AllowList::default();
    };
    AllowList::parse(&format!("{host}:{port}")).unwrap_or_default()
}

/// The route field a sample-message refusal is about.
fn field_of(e: &Invalid) -> Field {
    let f = e.field.as_str();
    if f.starts_with("streamMessage.targetRestApiHeaders") {
        Field::Headers
    } else if f == "streamMessage.vaultSecretName" {
        Field::VaultSecret
    } else if f == "streamMessage.vaultSecretHeader" {
        Field::VaultSecretHeader
    } else if f == "streamMessage.targetRestApiOperation" {
        Field::Operation
    } else {
        Field::Target
    }
}

/// The refusal's rule in the route's words: a header is named (by name, never its value),
/// and the sample's field names become the route's keys.
fn rule_of(e: &Invalid, headers: &BTreeMap<String, String>) -> String {
    let index = e
        .field
        .strip_prefix("streamMessage.targetRestApiHeaders[")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|i| i.parse::<usize>().ok());
    let rule = e
        .rule
        .replace("vaultSecretName", "vault_secret")
        .replace("vaultSecretHeader", "vault_secret_header")
        .replace("targetRestApiHeaders", "headers");
    match index.and_then(|i| headers.keys().nth(i)) {
        Some(name) => format!("{name:?}: {rule}"),
        None => rule,
    }
}
