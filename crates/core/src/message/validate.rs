//! The rules a message must follow before it is accepted ([`validate`]), which populate
//! enforces and process re-checks, and [`Invalid`], the refusal naming the field.

use super::{AllowList, HeaderPair, StreamMessage, MAX_HEADERS, MAX_SECRET_NAME};
use crate::classify::ErrorClass;

/// The rules a message must follow, from the function configuration.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Allowed target hosts.
    pub allow_list: AllowList,
    /// Whether plain-http targets are allowed.
    pub allow_http: bool,
}

/// Why a message was refused. The message names the field and the rule, never a value that
/// could be a secret (a target's host and port may be named; its path and query may not).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Invalid {
    /// The offending field, e.g. `streamMessage.targetRestApi`.
    pub field: String,
    /// The rule it breaks.
    pub rule: String,
    class: ErrorClass,
}

impl Invalid {
    pub(crate) fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
            class: ErrorClass::Invalid,
        }
    }

    /// The class a delivery failure of this kind is recorded under: `NotAllowed` for a target
    /// off the allow-list, `Invalid` for every other rule.
    pub fn class(&self) -> ErrorClass {
        self.class
    }
}

/// Header names the caller may not set: hop-by-hop headers, and those datasync owns.
const FORBIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "host",
    "idempotency-key",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Header names that carry credentials by convention. A custom header is stored in the stream
/// with its message and, for a message that fails permanently, reaches the dead-letter stream,
/// its notification and its archive: populate refuses these and points the caller to Vault
/// (`vaultSecretName` with `vaultSecretHeader`). Delivery does not check them, so messages
/// accepted before this rule still go out.
const CREDENTIAL_HEADERS: &[&str] = &[
    "api-key",
    "apikey",
    "cookie",
    "x-access-token",
    "x-api-key",
    "x-api-token",
    "x-auth-token",
    "x-amz-security-token",
    "x-functions-key",
];

/// Refuses a message whose custom headers carry a credential by name ([`CREDENTIAL_HEADERS`]),
/// saying how to send it through Vault instead. For new messages only (populate): delivery
/// keeps sending those already stored.
///
/// # Errors
/// The first such header, naming its field.
pub fn refuse_credential_headers(message: &StreamMessage) -> Result<(), Invalid> {
    for (i, h) in message.target_rest_api_headers.iter().enumerate() {
        if let Some(name) = CREDENTIAL_HEADERS
            .iter()
            .find(|c| c.eq_ignore_ascii_case(&h.key))
        {
            return Err(Invalid::new(
                format!("streamMessage.targetRestApiHeaders[{i}]"),
                format!(
                    "{name} carries a credential, which would be stored in the stream and shown \
                     in dead-letter notifications; send its value as this request's \
                     Authorization header with vaultSecretName and \
                     \"vaultSecretHeader\": \"{name}\" (it is kept in Vault and sent as {name})"
                ),
            ));
        }
    }
    Ok(())
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Checks `message` against every rule, normalises the operation to upper case, and returns
/// the parsed target URL.
///
/// # Errors
/// The first rule broken, naming the field.
pub fn validate(message: &mut StreamMessage, policy: &Policy) -> Result<url::Url, Invalid> {
    let url = checked_url(&message.target_rest_api, TARGET_FIELD, policy)?;
    let op = message.target_rest_api_operation.to_ascii_uppercase();
    if !matches!(op.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
        return Err(Invalid::new(
            "streamMessage.targetRestApiOperation",
            "must be one of POST, PUT, PATCH, DELETE",
        ));
    }
    message.target_rest_api_operation = op;

    check_headers(&message.target_rest_api_headers)?;
    check_vault_secret(message)?;
    Ok(url)
}

/// The field a target URL is refused under.
const TARGET_FIELD: &str = "streamMessage.targetRestApi";

/// The field a callback URL is refused under.
pub const STATUS_CALLBACK_FIELD: &str = "statusCallback";

/// Checks a sync request's `statusCallback` by the rules of a target URL (absolute, https or
/// http where allowed, a host on the allow-list, no credentials, no control characters): the
/// callback is an outgoing call like a delivery, so it gets the same guard, and the same
/// resolution checks when it is made (it goes through [`crate::target::TargetClient`]).
///
/// # Errors
/// The rule broken, naming `statusCallback`.
pub fn validate_status_callback(url: &str, policy: &Policy) -> Result<url::Url, Invalid> {
    if url.len() > MAX_CALLBACK_URL {
        return Err(Invalid::new(
            STATUS_CALLBACK_FIELD,
            format!("must be at most {MAX_CALLBACK_URL} bytes"),
        ));
    }
    checked_url(url, STATUS_CALLBACK_FIELD, policy)
}

/// The longest `statusCallback`, in bytes.
pub const MAX_CALLBACK_URL: usize = 2048;

/// A URL at `field` (`targetRestApi` or `statusCallback`), parsed: absolute, https (or http
/// where allowed), a host on the allow-list, no credentials.
fn checked_url(target: &str, field: &str, policy: &Policy) -> Result<url::Url, Invalid> {
    // The URL parser strips tabs and newlines (and trims control characters at either end)
    // rather than refusing them, so a URL carrying CR LF would be delivered somewhere other
    // than what the caller wrote (and looks like a header-injection attempt): refuse it.
    if target.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            "must not contain control characters (CR, LF, TAB or others)",
        ));
    }
    let url =
        url::Url::parse(target).map_err(|_| Invalid::new(field, "must be an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => {
            return Err(Invalid::new(
                field,
                "must use https (plain http is not allowed by this deployment)",
            ))
        }
        _ => return Err(Invalid::new(field, "must be an https URL")),
    }
    if url.host_str().is_none() {
        return Err(Invalid::new(field, "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        let rule = if field == STATUS_CALLBACK_FIELD {
            "must not carry credentials; callbacks are signed (webhook-signature) instead"
        } else {
            "must not carry credentials; use the Authorization header"
        };
        return Err(Invalid::new(field, rule));
    }
    if !policy.allow_list.allows(&url) {
        // Host and port as the allow-list compares them, so a port that differs shows.
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or_default();
        return Err(Invalid {
            class: ErrorClass::NotAllowed,
            ..Invalid::new(
                field,
                format!(
                    "host {host}:{port} is not on the target allow-list (the functions' \
                     target_allow_list)"
                ),
            )
        });
    }

    Ok(url)
}

/// `targetRestApiHeaders`: how many, legal names the caller may set, values without CR, LF
/// or NUL.
fn check_headers(headers: &[HeaderPair]) -> Result<(), Invalid> {
    if headers.len() > MAX_HEADERS {
        return Err(Invalid::new(
            "streamMessage.targetRestApiHeaders",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    for (i, h) in headers.iter().enumerate() {
        let field = format!("streamMessage.targetRestApiHeaders[{i}]");
        if !is_token(&h.key) {
            return Err(Invalid::new(field, "key must be a legal header name"));
        }
        if FORBIDDEN_HEADERS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(&h.key))
        {
            return Err(Invalid::new(
                field,
                format!(
                    "{} may not be set by the caller",
                    h.key.to_ascii_lowercase()
                ),
            ));
        }
        if h.value.bytes().any(|c| matches!(c, b'\r' | b'\n' | 0)) {
            return Err(Invalid::new(field, "value must not contain CR, LF or NUL"));
        }
    }

    Ok(())
}

/// `vaultSecretHeader` (which needs `vaultSecretName`, a legal header name datasync does not
/// own, not set by `targetRestApiHeaders` too) and `vaultSecretName`'s characters.
fn check_vault_secret(message: &StreamMessage) -> Result<(), Invalid> {
    if let Some(header) = &message.vault_secret_header {
        const FIELD: &str = "streamMessage.vaultSecretHeader";
        if message.vault_secret_name.is_none() {
            return Err(Invalid::new(FIELD, "needs vaultSecretName"));
        }
        if !is_token(header) {
            return Err(Invalid::new(FIELD, "must be a legal header name"));
        }
        let owned = FORBIDDEN_HEADERS
            .iter()
            .any(|f| *f != "authorization" && f.eq_ignore_ascii_case(header));
        if owned {
            return Err(Invalid::new(
                FIELD,
                format!(
                    "{} may not be set by the caller",
                    header.to_ascii_lowercase()
                ),
            ));
        }
        if message
            .target_rest_api_headers
            .iter()
            .any(|h| h.key.eq_ignore_ascii_case(header))
        {
            return Err(Invalid::new(
                FIELD,
                "names a header that targetRestApiHeaders also sets",
            ));
        }
    }

    if let Some(name) = &message.vault_secret_name {
        let legal = !name.is_empty()
            && name.len() <= MAX_SECRET_NAME
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
        if !legal {
            return Err(Invalid::new(
                "streamMessage.vaultSecretName",
                format!("must be 1 to {MAX_SECRET_NAME} of A-Z a-z 0-9 . _ -"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::message::test_support::{message, policy};

    #[test]
    fn a_sample_message_is_valid_and_its_operation_upper_cased() {
        let mut m = message();
        let url = validate(&mut m, &policy("api.example.com")).unwrap();
        assert_eq!(url.host_str(), Some("api.example.com"));
        assert_eq!(m.target_rest_api_operation, "POST");
    }

    #[test]
    fn the_vault_secret_may_go_in_another_header() {
        let mut m = message();
        m.vault_secret_header = Some("X-Api-Key".into());
        validate(&mut m, &policy("api.example.com")).unwrap();
        m.vault_secret_header = Some("Authorization".into());
        validate(&mut m, &policy("api.example.com")).unwrap();
    }

    #[test]
    fn credential_headers_are_refused_for_new_messages_only() {
        for name in ["x-api-key", "Cookie", "X-Auth-Token", "apikey"] {
            let mut m = message();
            m.target_rest_api_headers.push(HeaderPair {
                key: name.into(),
                value: "s3cret".into(),
            });
            let err = refuse_credential_headers(&m).unwrap_err();
            assert_eq!(err.field, "streamMessage.targetRestApiHeaders[1]");
            assert!(err.rule.contains("vaultSecretHeader"), "{}", err.rule);
            assert!(!err.rule.contains("s3cret"));
            // Stored before the rule: still delivered.
            validate(&mut m, &policy("api.example.com")).unwrap();
        }
        refuse_credential_headers(&message()).unwrap();
    }

    #[test]
    fn every_rule_names_its_field() {
        let p = policy("api.example.com");
        type Case = (fn(&mut StreamMessage), &'static str);
        let cases: Vec<Case> = vec![
            (
                |m| m.target_rest_api = "/relative".into(),
                "streamMessage.targetRestApi",
            ),
            (
                |m| m.target_rest_api = "ftp://api.example.com/x".into(),
                "streamMessage.targetRestApi",
            ),
            (
                |m| m.target_rest_api = "http://api.example.com/x".into(),
                "streamMessage.targetRestApi",
            ),
            (
                |m| m.target_rest_api = "https://evil.example.net/x".into(),
                "streamMessage.targetRestApi",
            ),
            (
                |m| m.target_rest_api = "https://u:p@api.example.com/x".into(),
                "streamMessage.targetRestApi",
            ),
            (
                |m| m.target_rest_api_operation = "GET".into(),
                "streamMessage.targetRestApiOperation",
            ),
            (
                |m| m.target_rest_api_headers[0].key = "Bad Name".into(),
                "streamMessage.targetRestApiHeaders[0]",
            ),
            (
                |m| m.target_rest_api_headers[0].key = "Authorization".into(),
                "streamMessage.targetRestApiHeaders[0]",
            ),
            (
                |m| m.target_rest_api_headers[0].key = "transfer-encoding".into(),
                "streamMessage.targetRestApiHeaders[0]",
            ),
            (
                |m| m.target_rest_api_headers[0].key = "Host".into(),
                "streamMessage.targetRestApiHeaders[0]",
            ),
            (
                |m| m.target_rest_api_headers[0].value = "a\r\nX-Injected: 1".into(),
                "streamMessage.targetRestApiHeaders[0]",
            ),
            (
                |m| m.target_rest_api_headers[0].value = "a\0".into(),
                "streamMessage.targetRestApiHeaders[0]",
            ),
            (
                |m| {
                    m.target_rest_api_headers = vec![
                        HeaderPair {
                            key: "X-A".into(),
                            value: "1".into()
                        };
                        51
                    ]
                },
                "streamMessage.targetRestApiHeaders",
            ),
            (
                |m| m.vault_secret_name = Some("../other".into()),
                "streamMessage.vaultSecretName",
            ),
            (
                |m| m.vault_secret_name = Some("x".repeat(101)),
                "streamMessage.vaultSecretName",
            ),
            (
                |m| m.vault_secret_name = Some(String::new()),
                "streamMessage.vaultSecretName",
            ),
            (
                |m| m.vault_secret_header = Some("x api key".into()),
                "streamMessage.vaultSecretHeader",
            ),
            (
                |m| m.vault_secret_header = Some("Host".into()),
                "streamMessage.vaultSecretHeader",
            ),
            (
                |m| m.vault_secret_header = Some("idempotency-key".into()),
                "streamMessage.vaultSecretHeader",
            ),
            (
                |m| m.vault_secret_header = Some("content-type".into()),
                "streamMessage.vaultSecretHeader",
            ),
            (
                |m| {
                    m.vault_secret_name = None;
                    m.vault_secret_header = Some("x-api-key".into());
                },
                "streamMessage.vaultSecretHeader",
            ),
        ];
        for (i, (mutate, field)) in cases.into_iter().enumerate() {
            let mut m = message();
            mutate(&mut m);
            let err = validate(&mut m, &p).unwrap_err();
            assert_eq!(err.field, field, "case {i}: {err}");
        }
    }

    #[test]
    fn control_characters_in_the_url_are_refused_not_stripped() {
        let p = policy("api.example.com");
        for url in [
            "https://api.example.com/ok/44\r\nx-injected: 1",
            "https://api.example.com/o\tk",
            "https://api.example.com/ok\n",
            "\u{1}https://api.example.com/ok",
            "https://api.example.com/ok\u{7f}",
            "https://api.example.com/ok\u{85}",
        ] {
            let mut m = message();
            m.target_rest_api = url.into();
            let err = validate(&mut m, &p).unwrap_err();
            assert_eq!(err.field, "streamMessage.targetRestApi", "{url:?}");
            assert!(err.rule.contains("control characters"), "{url:?}: {err}");
        }
    }

    #[test]
    fn a_status_callback_follows_the_target_rules_and_names_its_field() {
        let p = policy("app.example.com");
        assert!(validate_status_callback("https://app.example.com/cb?x=1", &p).is_ok());
        for (url, rule) in [
            (
                "https://evil.example.net/cb",
                "not on the target allow-list",
            ),
            ("http://app.example.com/cb", "must use https"),
            (
                "https://u:p@app.example.com/cb",
                "must not carry credentials",
            ),
            ("https://app.example.com/cb\r\nx: 1", "control characters"),
            ("https://app.example.com/c\tb", "control characters"),
            ("/relative", "absolute URL"),
            ("ftp://app.example.com/cb", "https URL"),
        ] {
            let err = validate_status_callback(url, &p).unwrap_err();
            assert_eq!(err.field, STATUS_CALLBACK_FIELD, "{url:?}");
            assert!(err.rule.contains(rule), "{url:?}: {err}");
            assert!(!err.rule.contains("u:p"), "{err}");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(MAX_CALLBACK_URL));
        assert!(validate_status_callback(&long, &p).is_err());
        let mut http = p.clone();
        http.allow_http = true;
        assert!(validate_status_callback("http://app.example.com/cb", &http).is_ok());
    }

    #[test]
    fn http_only_where_allowed() {
        let mut p = policy("localhost:8081");
        p.allow_http = true;
        let mut m = message();
        m.target_rest_api = "http://localhost:8081/x".into();
        assert!(validate(&mut m, &p).is_ok());
        m.target_rest_api = "http://localhost:9999/x?token=t".into();
        let refused = validate(&mut m, &p).unwrap_err();
        assert_eq!(refused.class(), ErrorClass::NotAllowed);
        // It names the host and port it compared, so the port that differs shows; never the
        // path or query.
        assert!(
            refused
                .rule
                .starts_with("host localhost:9999 is not on the target allow-list"),
            "{refused}"
        );
        assert!(!refused.rule.contains("token"), "{refused}");
        m.target_rest_api = "http://localhost:8081/x".into();
        m.target_rest_api_operation = "GET".into();
        assert_eq!(
            validate(&mut m, &p).unwrap_err().class(),
            ErrorClass::Invalid
        );
    }
}
