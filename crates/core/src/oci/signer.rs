//! OCI request signing (Signature version 1, draft-cavage-http-signatures-08) and its verification.
//!
//! The pure part is [`signing_string`]: from a request's method, target, host, date and (for
//! POST/PUT/PATCH) body headers to the exact text that is signed. [`authorization`] turns it into
//! the `Authorization` value. [`Signer`] applies both to a real request and caches signatures:
//! PKCS#1 v1.5 is deterministic, so a signing string seen before (same second, same target) costs
//! no RSA operation. [`verify`] is the server side, used by the local emulator and the tests; it
//! rebuilds the signing string with the same code.
//!
//! The rules (contracts/oci-platform.md section E):
//! - GET, HEAD, DELETE (and OPTIONS): `date (request-target) host`.
//! - POST, PUT, PATCH: also `content-length content-type x-content-sha256`, except for the
//!   body-exempt operations (Streaming PutMessages, Object Storage PutObject/UploadPart), which
//!   the official SDKs sign with the three base headers only ([`BodySigning::Exclude`]).
//! - `x-date` replaces `date` when the request carries it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method};
use rsa::RsaPublicKey;
use sha2::{Digest as _, Sha256};

use super::key::PrivateKey;

/// `x-content-sha256` of an empty body.
pub const EMPTY_BODY_SHA256: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

/// Whether the body headers are signed for a POST, PUT or PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySigning {
    /// Sign `content-length`, `content-type` and `x-content-sha256` (the default).
    Include,
    /// Sign only `date (request-target) host` (PutMessages, PutObject, UploadPart).
    Exclude,
}

/// The body headers that are signed for POST, PUT and PATCH.
#[derive(Debug, Clone, Copy)]
pub struct BodyHeaders<'a> {
    /// The `content-length` value.
    pub content_length: u64,
    /// The `content-type` value.
    pub content_type: &'a str,
    /// The `x-content-sha256` value: base64 of the body's SHA-256.
    pub content_sha256: &'a str,
}

/// Everything a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SigningInput<'a> {
    /// The HTTP method, any case.
    pub method: &'a str,
    /// Path and query exactly as sent, percent-encoding kept.
    pub target: &'a str,
    /// The `host` header: host name, with `:port` when the URL has one.
    pub host: &'a str,
    /// The date, RFC 1123 (`Thu, 05 Jan 2014 21:31:40 GMT`).
    pub date: &'a str,
    /// True when the date travels in `x-date` instead of `date`.
    pub x_date: bool,
    /// The body headers, signed when present.
    pub body: Option<BodyHeaders<'a>>,
}

/// Whether OCI signs the body headers for this method (before body-exempt operations).
pub fn method_signs_body(method: &str) -> bool {
    ["POST", "PUT", "PATCH"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// The signing string and the `headers` list naming its lines, in the order the SDKs use.
pub fn signing_string(input: &SigningInput<'_>) -> (String, &'static str) {
    let date_name = if input.x_date { "x-date" } else { "date" };
    let mut s = String::with_capacity(128 + input.target.len());
    s.push_str(date_name);
    s.push_str(": ");
    s.push_str(input.date);
    s.push_str("\n(request-target): ");
    for c in input.method.chars() {
        s.push(c.to_ascii_lowercase());
    }
    s.push(' ');
    s.push_str(input.target);
    s.push_str("\nhost: ");
    s.push_str(input.host);
    let headers = match (input.body, input.x_date) {
        (None, false) => "date (request-target) host",
        (None, true) => "x-date (request-target) host",
        (Some(body), x_date) => {
            s.push_str("\ncontent-length: ");
            s.push_str(&body.content_length.to_string());
            s.push_str("\ncontent-type: ");
            s.push_str(body.content_type);
            s.push_str("\nx-content-sha256: ");
            s.push_str(body.content_sha256);
            if x_date {
                "x-date (request-target) host content-length content-type x-content-sha256"
            } else {
                "date (request-target) host content-length content-type x-content-sha256"
            }
        }
    };
    (s, headers)
}

/// The `Authorization` header value for a signature, in the field order of OCI's documentation.
pub fn authorization(headers: &str, key_id: &str, signature: &[u8]) -> String {
    let sig = base64::engine::general_purpose::STANDARD.encode(signature);
    format!(
        "Signature version=\"1\",headers=\"{headers}\",keyId=\"{key_id}\",algorithm=\"rsa-sha256\",signature=\"{sig}\""
    )
}

/// Base64 of the SHA-256 of `body`, the `x-content-sha256` value.
pub fn content_sha256(body: &[u8]) -> String {
    if body.is_empty() {
        return EMPTY_BODY_SHA256.to_owned();
    }
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body))
}

/// The RFC 1123 date OCI expects, e.g. `Thu, 05 Jan 2014 21:31:40 GMT`.
pub fn http_date(now: SystemTime) -> String {
    httpdate::fmt_http_date(now)
}

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The URL has no host to sign.
    #[error("the URL {0} has no host")]
    NoHost(String),
    /// A header we must sign holds bytes that are not visible ASCII.
    #[error("the {0} header is not valid ASCII")]
    BadHeader(&'static str),
}

/// The most signatures a [`Signer`] keeps for the current second.
const CACHE_LIMIT: usize = 4096;

/// Signs requests with one key and keyId, caching signatures by signing string.
///
/// The cache holds only the current date's entries (dates have one-second resolution, so a new
/// second empties it) and at most [`CACHE_LIMIT`] of them: memory stays bounded and a signature
/// is reused only when its every signed byte is the same.
pub struct Signer {
    key_id: String,
    key: PrivateKey,
    cache: Mutex<SignatureCache>,
    /// Held while signing a string the cache lacks, so that concurrent requests needing the
    /// same new signature (every request of a busy client, at each new second) wait for one
    /// RSA operation (about 0.8 ms) instead of each computing it.
    signing: Mutex<()>,
    /// RSA signatures computed (the other answers came from the cache).
    computed: AtomicU64,
}

#[derive(Default)]
struct SignatureCache {
    date: String,
    entries: HashMap<String, String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keyId of a resource principal embeds its token: never print it.
        f.debug_struct("Signer")
            .field("fingerprint", &self.key.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `key_id` (`<tenancy>/<user>/<fingerprint>` or `ST$<token>`) and `key`.
    pub fn new(key_id: impl Into<String>, key: PrivateKey) -> Self {
        Self {
            key_id: key_id.into(),
            key,
            cache: Mutex::new(SignatureCache::default()),
            signing: Mutex::new(()),
            computed: AtomicU64::new(0),
        }
    }

    /// The keyId this signer puts in its signatures.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The key this signer signs with.
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// The `Authorization` value for `input`, from the cache when the same signing string was
    /// signed before in the same second. Uncached, this is one RSA operation.
    pub fn authorization_for(&self, input: &SigningInput<'_>) -> String {
        let (string, headers) = signing_string(input);
        if let Some(hit) = self.cached(input.date, &string) {
            return hit;
        }
        // A poisoned lock only means another signer panicked; signing without it is correct.
        let _one_at_a_time = self.signing.lock();
        if let Some(hit) = self.cached(input.date, &string) {
            return hit;
        }
        let value = authorization(headers, &self.key_id, &self.key.sign(string.as_bytes()));
        self.computed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.date != input.date {
                cache.date = input.date.to_owned();
                cache.entries.clear();
            }
            if cache.entries.len() < CACHE_LIMIT {
                cache.entries.insert(string, value.clone());
            }
        }
        value
    }

    /// How many signatures this signer has computed with its key; every other
    /// [`Signer::authorization_for`] answer came from the cache.
    pub fn signatures_computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    fn cached(&self, date: &str, string: &str) -> Option<String> {
        let cache = self.cache.lock().ok()?;
        if cache.date != date {
            return None;
        }
        cache.entries.get(string).cloned()
    }

    /// Signs a request about to be sent: sets `date` (unless `date` or `x-date` is present),
    /// and for POST/PUT/PATCH with [`BodySigning::Include`] also `content-length`,
    /// `content-type` (`application/json` unless set) and `x-content-sha256`; then sets
    /// `authorization`. `url` must be the URL the request goes to, as it will be sent.
    ///
    /// # Errors
    /// [`SignError`] when the URL has no host or a signed header is not ASCII.
    pub fn sign(
        &self,
        method: &Method,
        url: &url::Url,
        headers: &mut HeaderMap,
        body: &[u8],
        body_signing: BodySigning,
        now: SystemTime,
    ) -> Result<(), SignError> {
        let host_name = url
            .host_str()
            .ok_or_else(|| SignError::NoHost(url.as_str().to_owned()))?;
        let host = match url.port() {
            Some(port) => format!("{host_name}:{port}"),
            None => host_name.to_owned(),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let x_date = headers.contains_key("x-date");
        if !x_date && !headers.contains_key(http::header::DATE) {
            let date =
                HeaderValue::from_str(&http_date(now)).map_err(|_| SignError::BadHeader("date"))?;
            headers.insert(http::header::DATE, date);
        }
        let date_name = if x_date { "x-date" } else { "date" };
        let date = header_str(headers, date_name)?.to_owned();

        let signs_body = method_signs_body(method.as_str()) && body_signing == BodySigning::Include;
        let sha;
        let content_type;
        let body_headers = if signs_body {
            sha = content_sha256(body);
            headers.insert(
                http::header::CONTENT_LENGTH,
                HeaderValue::from(body.len() as u64),
            );
            if !headers.contains_key(http::header::CONTENT_TYPE) {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            headers.insert(
                "x-content-sha256",
                HeaderValue::from_str(&sha)
                    .map_err(|_| SignError::BadHeader("x-content-sha256"))?,
            );
            content_type = header_str(headers, "content-type")?.to_owned();
            Some(BodyHeaders {
                content_length: body.len() as u64,
                content_type: &content_type,
                content_sha256: &sha,
            })
        } else {
            None
        };
        let value = self.authorization_for(&SigningInput {
            method: method.as_str(),
            target: &target,
            host: &host,
            date: &date,
            x_date,
            body: body_headers,
        });
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&value).map_err(|_| SignError::BadHeader("authorization"))?,
        );
        Ok(())
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, SignError> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| SignError::BadHeader(name)))
        .transpose()?
        .ok_or(SignError::BadHeader(name))
}

/// A parsed `Authorization: Signature ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    /// `keyId`.
    pub key_id: String,
    /// The lower-case header names from `headers`, in order.
    pub headers: Vec<String>,
    /// The decoded signature bytes.
    pub signature: Vec<u8>,
}

/// Why a request's signature was rejected. The emulator answers each with 401 NotAuthenticated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// No `Authorization` header.
    #[error("the request is not signed: no Authorization header")]
    Missing,
    /// The header is not a well-formed version 1 RSA-SHA256 signature.
    #[error("the Authorization header is malformed: {0}")]
    Malformed(String),
    /// A header the method requires is not among the signed ones.
    #[error("the signature must cover the {0} header")]
    HeaderNotSigned(&'static str),
    /// A signed header is absent from the request.
    #[error("the signed header {0} is missing from the request")]
    HeaderMissing(String),
    /// `x-content-sha256` does not match the body.
    #[error("x-content-sha256 does not match the request body")]
    BodyHashMismatch,
    /// `content-length` does not match the body.
    #[error("content-length does not match the request body")]
    ContentLengthMismatch,
    /// The date is unreadable or more than five minutes from the server's clock.
    #[error("the request date is missing, malformed or more than 5 minutes off the server clock")]
    DateSkew,
    /// The keyId names no key the server knows.
    #[error("unknown keyId")]
    UnknownKey,
    /// The signature does not verify with the key.
    #[error("the signature does not match the request")]
    BadSignature,
}

/// Parses an `Authorization: Signature version="1",headers="...",keyId="...",...` value.
///
/// # Errors
/// [`VerifyError::Malformed`] for anything other than a version 1 rsa-sha256 signature.
pub fn parse_authorization(value: &str) -> Result<ParsedAuthorization, VerifyError> {
    let rest = value
        .strip_prefix("Signature ")
        .ok_or_else(|| VerifyError::Malformed("expected the Signature scheme".into()))?;
    let mut fields: HashMap<&str, &str> = HashMap::new();
    let mut remaining = rest.trim();
    while !remaining.is_empty() {
        let (name, after) = remaining
            .split_once('=')
            .ok_or_else(|| VerifyError::Malformed("expected name=\"value\"".into()))?;
        let after = after
            .strip_prefix('"')
            .ok_or_else(|| VerifyError::Malformed(format!("{name} is not quoted")))?;
        let end = after
            .find('"')
            .ok_or_else(|| VerifyError::Malformed(format!("{name} has no closing quote")))?;
        if fields.insert(name.trim(), &after[..end]).is_some() {
            return Err(VerifyError::Malformed(format!("{name} appears twice")));
        }
        remaining = after[end + 1..].trim_start_matches(',').trim_start();
    }
    if let Some(version) = fields.get("version") {
        if *version != "1" {
            return Err(VerifyError::Malformed(format!(
                "unsupported version {version}"
            )));
        }
    }
    match fields.get("algorithm") {
        Some(&"rsa-sha256") => {}
        _ => {
            return Err(VerifyError::Malformed(
                "algorithm must be rsa-sha256".into(),
            ))
        }
    }
    let key_id = fields
        .get("keyId")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| VerifyError::Malformed("no keyId".into()))?;
    let headers = fields
        .get("headers")
        .unwrap_or(&"date")
        .split_ascii_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(
            fields
                .get("signature")
                .ok_or_else(|| VerifyError::Malformed("no signature".into()))?,
        )
        .map_err(|_| VerifyError::Malformed("signature is not base64".into()))?;
    Ok(ParsedAuthorization {
        key_id: (*key_id).to_owned(),
        headers,
        signature,
    })
}

/// A received request, as the verifier sees it.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedRequest<'a> {
    /// The method.
    pub method: &'a str,
    /// Path and query exactly as received.
    pub target: &'a str,
    /// The request headers (must include `host`).
    pub headers: &'a HeaderMap,
    /// The whole body.
    pub body: &'a [u8],
    /// True for the body-exempt operations, which may be signed either way.
    pub body_exempt: bool,
}

/// The most a request's date may differ from the server's clock.
pub const MAX_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(300);

/// Verifies a request's signature as OCI does and returns its keyId.
///
/// Checks that the signature covers the headers the method requires, that every signed header
/// is present, that `x-content-sha256` and `content-length` (when signed) match the body, that
/// the date is within [`MAX_CLOCK_SKEW`] of `now`, and that the RSA signature verifies with the
/// key `lookup` returns for the keyId.
///
/// # Errors
/// The first [`VerifyError`] found.
pub fn verify(
    request: &ReceivedRequest<'_>,
    now: SystemTime,
    lookup: impl FnOnce(&str) -> Option<RsaPublicKey>,
) -> Result<String, VerifyError> {
    let value = request
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or(VerifyError::Missing)?
        .to_str()
        .map_err(|_| VerifyError::Malformed("not ASCII".into()))?;
    let parsed = parse_authorization(value)?;
    let signed = |name: &str| parsed.headers.iter().any(|h| h == name);

    if !signed("x-date") && !signed("date") {
        return Err(VerifyError::HeaderNotSigned("date"));
    }
    for required in ["(request-target)", "host"] {
        if !signed(required) {
            return Err(VerifyError::HeaderNotSigned(required));
        }
    }
    let signs_body = method_signs_body(request.method);
    if signs_body && !request.body_exempt {
        for required in ["content-length", "content-type", "x-content-sha256"] {
            if !signed(required) {
                return Err(VerifyError::HeaderNotSigned(required));
            }
        }
    }

    check_signed_values(request, &parsed.headers, now)?;

    let header = |name: &str| header_value(request, name);
    let mut string = String::new();
    for (i, name) in parsed.headers.iter().enumerate() {
        if i > 0 {
            string.push('\n');
        }
        string.push_str(name);
        string.push_str(": ");
        if name == "(request-target)" {
            string.push_str(&request.method.to_ascii_lowercase());
            string.push(' ');
            string.push_str(request.target);
        } else {
            string.push_str(header(name)?);
        }
    }
    let public = lookup(&parsed.key_id).ok_or(VerifyError::UnknownKey)?;
    if verify_rsa_sha256(&public, string.as_bytes(), &parsed.signature) {
        Ok(parsed.key_id)
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// The checks of [`verify`] that do not involve the signature itself: the signed
/// `x-content-sha256` and `content-length` against the body, and the signed date (`x-date`
/// when signed, else `date`) against `now`, within [`MAX_CLOCK_SKEW`]. `signed` lists the
/// header names the signature covers.
///
/// A verifier that remembers signatures it has already checked (the emulator does, for the
/// current second) must still run these on every request: the same signature may come with
/// another body.
///
/// # Errors
/// [`VerifyError::BodyHashMismatch`], [`VerifyError::ContentLengthMismatch`],
/// [`VerifyError::DateSkew`], or [`VerifyError::HeaderMissing`] for a signed header the
/// request lacks.
pub fn check_signed_values(
    request: &ReceivedRequest<'_>,
    signed: &[String],
    now: SystemTime,
) -> Result<(), VerifyError> {
    let header = |name: &str| header_value(request, name);
    let is_signed = |name: &str| signed.iter().any(|h| h == name);
    if is_signed("x-content-sha256") && header("x-content-sha256")? != content_sha256(request.body)
    {
        return Err(VerifyError::BodyHashMismatch);
    }
    if is_signed("content-length")
        && header("content-length")?.parse::<usize>().ok() != Some(request.body.len())
    {
        return Err(VerifyError::ContentLengthMismatch);
    }
    let date_name = if is_signed("x-date") {
        "x-date"
    } else {
        "date"
    };
    let date = httpdate::parse_http_date(header(date_name)?).map_err(|_| VerifyError::DateSkew)?;
    let skew = match now.duration_since(date) {
        Ok(ahead) => ahead,
        Err(behind) => behind.duration(),
    };
    if skew > MAX_CLOCK_SKEW {
        return Err(VerifyError::DateSkew);
    }
    Ok(())
}

/// The value of the signed header `name`, which the request must carry as ASCII.
fn header_value<'a>(request: &ReceivedRequest<'a>, name: &str) -> Result<&'a str, VerifyError> {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| VerifyError::HeaderMissing(name.to_owned()))
}

/// Checks an RSASSA-PKCS1-v1_5 SHA-256 signature: with `ring` for keys of 2048 bits or more
/// (several times faster), with `rsa` for smaller ones (such as the published vector's key).
/// Request signatures ([`verify`]) and the emulator's session tokens are checked with it.
pub fn verify_rsa_sha256(public: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    use rsa::traits::PublicKeyParts as _;
    if public.n().bits() >= 2048 {
        let (n, e) = (public.n().to_bytes_be(), public.e().to_bytes_be());
        return ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                message,
                signature,
            )
            .is_ok();
    }
    let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature) else {
        return false;
    };
    use rsa::signature::Verifier as _;
    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public.clone())
        .verify(message, &signature)
        .is_ok()
}
