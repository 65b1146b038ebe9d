//! The target caller: one HTTP call to a target application, as process and retry make it.
//!
//! - One reqwest client (one connection pool) per function instance; redirects are never
//!   followed (a 3xx is a permanent failure the operator should see).
//! - Connect and total timeouts on every call.
//! - Targets resolving to loopback, private, link-local, shared, multicast or unspecified
//!   addresses (the cloud metadata service among them) are refused unless the deployment
//!   allows them, both for host names (checked on every resolution, so DNS rebinding cannot
//!   slip through) and for literal IPs.
//! - Transport failures are classified from reqwest's typed error kinds and the source chain,
//!   never from message text.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::classify::{AttemptOutcome, RetryAfter, TransportFailure};

/// The user agent target calls carry.
pub const USER_AGENT: &str = concat!("datasync/", env!("CARGO_PKG_VERSION"));

/// Settings of the target caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetSettings {
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of a whole call, response included.
    pub timeout: Duration,
    /// Whether targets may resolve to loopback, private and link-local addresses.
    pub allow_private: bool,
}

impl Default for TargetSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            allow_private: false,
        }
    }
}

/// One call to make.
#[derive(Clone)]
pub struct TargetCall<'a> {
    /// POST, PUT, PATCH or DELETE.
    pub method: Method,
    /// The target URL (already validated against the allow-list).
    pub url: &'a url::Url,
    /// The compact JSON body (None for DELETE or no payload).
    pub body: Option<Bytes>,
    /// The caller's custom headers (already validated).
    pub headers: &'a [(HeaderName, HeaderValue)],
    /// The secret from Vault and the header it goes in (`Authorization` unless the message
    /// names another in `vaultSecretHeader`); it replaces a custom header of that name.
    pub secret: Option<(&'a HeaderName, &'a HeaderValue)>,
    /// The message id, sent as `Idempotency-Key`.
    pub idempotency_key: &'a str,
    /// The W3C trace context.
    pub traceparent: Option<&'a str>,
    /// Overrides the total timeout for this call (per-host rules).
    pub timeout: Option<Duration>,
}

impl std::fmt::Debug for TargetCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token or the payload.
        f.debug_struct("TargetCall")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("idempotency_key", &self.idempotency_key)
            .finish_non_exhaustive()
    }
}

/// What one call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The outcome, for the classifier.
    pub outcome: AttemptOutcome,
    /// How long the call took.
    pub latency: Duration,
    /// A short, secret-free description (status line or failure kind).
    pub detail: String,
    /// For an answer other than 2xx, the start of its body ([`body_snippet`]: at most
    /// [`MAX_BODY_SNIPPET`] bytes read into it, control characters replaced); never for a 2xx.
    pub body: Option<String>,
}

/// The most bytes of a non-2xx answer's body kept for the trace.
pub const MAX_BODY_SNIPPET: usize = 256;

/// `bytes` (the start of a body) fit for a log line: decoded as UTF-8 (a character cut at the
/// end or invalid bytes become `\u{FFFD}`), control characters (CR, LF, TAB, ESC, ...) replaced
/// by spaces, runs of spaces kept to one, trimmed; `None` when nothing is left.
pub fn body_snippet(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY_SNIPPET)]);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    let out = out.trim_end();
    (!out.is_empty()).then(|| out.to_owned())
}

/// Why a target address was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "the target resolves to {0}, a loopback, private, link-local or otherwise internal address"
)]
pub struct BlockedAddress(pub IpAddr);

/// Whether `ip` is somewhere a target must not be unless the deployment allows it.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b)
        }
    }
}

/// A resolver that drops internal addresses and fails when none is left.
#[derive(Debug)]
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| !is_internal(a.ip()))
                .collect();
            match (allowed.is_empty(), addrs.first()) {
                (true, Some(first)) => {
                    Err(Box::new(BlockedAddress(first.ip())) as Box<dyn StdError + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The target caller.
#[derive(Debug, Clone)]
pub struct TargetClient {
    http: reqwest::Client,
    settings: TargetSettings,
}

/// The most bytes of a response body read (and discarded) to keep the connection reusable.
const MAX_DRAIN: usize = 64 * 1024;

impl TargetClient {
    /// A caller with `settings`.
    ///
    /// # Errors
    /// The reqwest error if the TLS backend cannot be initialised.
    pub fn new(settings: TargetSettings) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true);
        if !settings.allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Self {
            http: builder.build()?,
            settings,
        })
    }

    /// Makes the call and reports what happened. Never fails: every failure is an outcome.
    pub async fn call(&self, call: &TargetCall<'_>) -> AttemptRecord {
        let started = Instant::now();
        if !self.settings.allow_private {
            if let Some(ip) = literal_ip(call.url) {
                if is_internal(ip) {
                    return AttemptRecord {
                        outcome: AttemptOutcome::Transport(TransportFailure::Blocked),
                        latency: started.elapsed(),
                        detail: BlockedAddress(ip).to_string(),
                        body: None,
                    };
                }
            }
        }
        let mut headers = HeaderMap::with_capacity(call.headers.len() + 4);
        for (name, value) in call.headers {
            headers.append(name.clone(), value.clone());
        }
        if let Some((name, token)) = call.secret {
            headers.insert(name.clone(), token.clone());
        }
        if let Ok(key) = HeaderValue::from_str(call.idempotency_key) {
            headers.insert(HeaderName::from_static("idempotency-key"), key);
        }
        if let Some(tp) = call.traceparent.and_then(|t| HeaderValue::from_str(t).ok()) {
            headers.insert(HeaderName::from_static("traceparent"), tp);
        }
        let mut request = self.http.request(call.method.clone(), call.url.clone());
        if let Some(body) = &call.body {
            if !headers.contains_key(http::header::CONTENT_TYPE) {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            request = request.body(body.clone());
        }
        if let Some(timeout) = call.timeout {
            request = request.timeout(timeout);
        }
        let result = request.headers(headers).send().await;
        match result {
            Ok(mut response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(RetryAfter::parse)
                    .or_else(|| rate_limit_pause(response.headers()));
                // Read a bounded amount so the pooled connection can be reused (within the
                // call's timeout); keep only the start of a failure's body, for the trace.
                let keep = if status.is_success() {
                    0
                } else {
                    MAX_BODY_SNIPPET
                };
                let mut kept: Vec<u8> = Vec::new();
                let mut drained = 0usize;
                while drained < MAX_DRAIN {
                    match response.chunk().await {
                        Ok(Some(chunk)) => {
                            let room = keep - kept.len();
                            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                            drained += chunk.len();
                        }
                        _ => break,
                    }
                }
                AttemptRecord {
                    outcome: AttemptOutcome::Status {
                        status: status.as_u16(),
                        retry_after,
                    },
                    latency: started.elapsed(),
                    detail: format!(
                        "HTTP {} {}",
                        status.as_u16(),
                        status.canonical_reason().unwrap_or("")
                    )
                    .trim_end()
                    .to_owned(),
                    body: body_snippet(&kept),
                }
            }
            Err(error) => {
                let failure = transport_failure(&error);
                AttemptRecord {
                    outcome: AttemptOutcome::Transport(failure),
                    latency: started.elapsed(),
                    detail: describe(failure, &error),
                    body: None,
                }
            }
        }
    }
}

/// The pause a `RateLimit-*` answer asks for: its reset delay once nothing remains, from
/// `RateLimit-Remaining: 0` with `RateLimit-Reset: <seconds>`, or the structured
/// `RateLimit: limit=.., remaining=0, reset=<seconds>`.
fn rate_limit_pause(headers: &HeaderMap) -> Option<RetryAfter> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let number = |v: &str| v.trim().parse::<u64>().ok();
    let (remaining, reset) = match text("ratelimit") {
        Some(structured) => {
            let field = |name: &str| {
                structured.split([',', ';']).find_map(|part| {
                    let (k, v) = part.split_once('=')?;
                    (k.trim().eq_ignore_ascii_case(name))
                        .then(|| number(v))
                        .flatten()
                })
            };
            (field("remaining"), field("reset"))
        }
        None => (
            text("ratelimit-remaining").and_then(number),
            text("ratelimit-reset").and_then(number),
        ),
    };
    (remaining? == 0).then_some(RetryAfter::Delay(Duration::from_secs(reset?)))
}

fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

fn find_source<'e, T: StdError + 'static>(error: &'e (dyn StdError + 'static)) -> Option<&'e T> {
    let mut current: Option<&'e (dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The kind of a transport failure, from typed checks only.
pub fn transport_failure(error: &reqwest::Error) -> TransportFailure {
    if find_source::<BlockedAddress>(error).is_some() {
        TransportFailure::Blocked
    } else if error.is_timeout() {
        TransportFailure::Timeout
    } else if error.is_builder() || error.is_redirect() {
        TransportFailure::InvalidRequest
    } else if error.is_connect() {
        TransportFailure::Connect
    } else {
        TransportFailure::Reset
    }
}

/// A secret-free description of a transport failure. The URL is not included: it may carry
/// tokens in its query.
fn describe(failure: TransportFailure, error: &reqwest::Error) -> String {
    match failure {
        TransportFailure::Blocked => find_source::<BlockedAddress>(error).map_or_else(
            || "the target address is not allowed".to_owned(),
            ToString::to_string,
        ),
        TransportFailure::Timeout => "the call timed out".to_owned(),
        TransportFailure::Connect => match find_source::<std::io::Error>(error) {
            Some(io) => format!("cannot connect: {}", io.kind()),
            None => "cannot connect".to_owned(),
        },
        TransportFailure::Reset => "the connection was reset or the response cut short".to_owned(),
        TransportFailure::InvalidRequest => "the request could not be built".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rate_limit_answers_name_a_pause_only_when_nothing_remains() {
        use super::*;
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let pause = |pairs| rate_limit_pause(&headers(pairs));
        assert_eq!(
            pause(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "7")]),
            Some(RetryAfter::Delay(Duration::from_secs(7)))
        );
        assert_eq!(
            pause(&[("ratelimit-remaining", "3"), ("ratelimit-reset", "7")]),
            None
        );
        assert_eq!(
            pause(&[("ratelimit", "limit=10, remaining=0, reset=4")]),
            Some(RetryAfter::Delay(Duration::from_secs(4)))
        );
        assert_eq!(
            pause(&[("ratelimit", "limit=10, remaining=2, reset=4")]),
            None
        );
        assert_eq!(pause(&[("ratelimit-remaining", "0")]), None);
    }

    use super::*;

    #[test]
    fn internal_addresses() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            let ip: IpAddr = internal.parse().unwrap_or(IpAddr::V4([0, 0, 0, 0].into()));
            assert!(is_internal(ip), "{internal}");
        }
        for public in ["8.8.8.8", "140.91.1.1", "2606:4700::1111"] {
            let ip: IpAddr = public.parse().unwrap_or(IpAddr::V4([127, 0, 0, 1].into()));
            assert!(!is_internal(ip), "{public}");
        }
    }
}
