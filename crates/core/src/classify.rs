//! The retry classifier: a pure function from one delivery attempt's outcome to a decision.
//!
//! No I/O, no clock, no randomness: the caller passes `now` and a jitter draw in, so every path
//! is tested on exact values. The rules are data ([`Rules`]), with per-host overrides
//! ([`RuleOverride`]) read from the function configuration.
//!
//! Defaults (ARCHITECTURE.md, Classification):
//! - 2xx: delivered.
//! - 408, 425, 429, 500, 502, 503, 504, connect errors, timeouts and resets: retry, honouring
//!   `Retry-After` (clamped), else capped exponential backoff with full jitter; 429 and
//!   timeouts wait at least [`Rules::throttle_min_delay`].
//! - 401/403: fetch the secret again and retry once at once; after that, permanent.
//! - 3xx and every other 4xx (and 501): permanent.
//! - A retry that would exceed the attempt bound, or the age bound (kept below the stream's
//!   retention), becomes permanent with class [`ErrorClass::Exhausted`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::function_config;

/// What went wrong, as recorded in `lastError.class` and counted in notifications. The class
/// also picks the error stream ([`ErrorClass::route`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorClass {
    /// 503 Service Unavailable.
    ServiceUnavailable,
    /// 429 Too Many Requests.
    TooManyRequests,
    /// 408 Request Timeout or 425 Too Early.
    RequestTimeout,
    /// The call timed out.
    Timeout,
    /// The connection could not be made, was reset, or the answer was cut short.
    Connect,
    /// 500 Internal Server Error.
    InternalServer,
    /// 502 Bad Gateway.
    BadGateway,
    /// 504 Gateway Timeout.
    GatewayTimeout,
    /// A status made retryable by a per-host override.
    RetryableStatus,
    /// The function's deadline came before this message's turn; it was re-routed untried.
    Deadline,
    /// The call did not finish (or start) within its host's share of the batch's time, so that
    /// one slow host does not hold back the others' next batch.
    Slow,
    /// 401 or 403, after the secret was fetched again.
    Unauthorized,
    /// A 3xx: redirects are never followed.
    Redirect,
    /// Any other 4xx, 501, or a status made permanent by an override.
    ClientError,
    /// The message is malformed or breaks a rule (bad URL, header, operation).
    Invalid,
    /// The target is not on the allow-list or resolves to a forbidden address.
    NotAllowed,
    /// The message's token could not be had: Vault or Key Management answered 404/403 (a
    /// missing or still-propagating policy, a secret still `CREATING`). Retried, untried at the
    /// target, until the age bound; the attempt count is not spent.
    SecretUnavailable,
    /// A retryable failure ran out of attempts or age.
    Exhausted,
    /// A routed message (issue 21) could not be made into a call: its route's transform,
    /// operation, path or key program failed or broke a bound, or the route no longer exists.
    /// Permanent; replayable once the route is fixed (delivery uses the current route).
    Transform,
}

/// Which stream a failure goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `serviceUnavailable_error_stream_ocid`: the target was unavailable or throttled.
    ServiceUnavailable,
    /// `internalserver_error_stream_ocid`: the target failed with 500, 502 or 504.
    InternalServer,
    /// `default_error_stream_ocid`: other retryable failures.
    Default,
    /// `dead_letter_stream_ocid`: permanent failures, announced and archived.
    DeadLetter,
}

impl Route {
    /// The configuration key holding this route's stream OCID.
    pub fn config_key(self) -> &'static str {
        match self {
            Route::ServiceUnavailable => function_config::SERVICE_UNAVAILABLE_STREAM,
            Route::InternalServer => function_config::INTERNAL_SERVER_STREAM,
            Route::Default => function_config::DEFAULT_ERROR_STREAM,
            Route::DeadLetter => function_config::DEAD_LETTER_STREAM,
        }
    }
}

impl ErrorClass {
    /// Whether a failure of this class can succeed later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::ServiceUnavailable
                | ErrorClass::TooManyRequests
                | ErrorClass::RequestTimeout
                | ErrorClass::Timeout
                | ErrorClass::Connect
                | ErrorClass::InternalServer
                | ErrorClass::BadGateway
                | ErrorClass::GatewayTimeout
                | ErrorClass::RetryableStatus
                | ErrorClass::Deadline
                | ErrorClass::SecretUnavailable
                | ErrorClass::Slow
        )
    }

    /// The stream a failure of this class goes to.
    pub fn route(self) -> Route {
        match self {
            ErrorClass::ServiceUnavailable
            | ErrorClass::TooManyRequests
            | ErrorClass::RequestTimeout
            | ErrorClass::Timeout
            | ErrorClass::Connect
            | ErrorClass::Slow => Route::ServiceUnavailable,
            ErrorClass::InternalServer | ErrorClass::BadGateway | ErrorClass::GatewayTimeout => {
                Route::InternalServer
            }
            ErrorClass::RetryableStatus | ErrorClass::Deadline | ErrorClass::SecretUnavailable => {
                Route::Default
            }
            ErrorClass::Unauthorized
            | ErrorClass::Redirect
            | ErrorClass::ClientError
            | ErrorClass::Invalid
            | ErrorClass::NotAllowed
            | ErrorClass::Exhausted
            | ErrorClass::Transform => Route::DeadLetter,
        }
    }

    /// The class's name as serialised (`serviceUnavailable`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::ServiceUnavailable => "serviceUnavailable",
            ErrorClass::TooManyRequests => "tooManyRequests",
            ErrorClass::RequestTimeout => "requestTimeout",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connect => "connect",
            ErrorClass::InternalServer => "internalServer",
            ErrorClass::BadGateway => "badGateway",
            ErrorClass::GatewayTimeout => "gatewayTimeout",
            ErrorClass::RetryableStatus => "retryableStatus",
            ErrorClass::Deadline => "deadline",
            ErrorClass::Slow => "slow",
            ErrorClass::Unauthorized => "unauthorized",
            ErrorClass::Redirect => "redirect",
            ErrorClass::ClientError => "clientError",
            ErrorClass::Invalid => "invalid",
            ErrorClass::NotAllowed => "notAllowed",
            ErrorClass::SecretUnavailable => "secretUnavailable",
            ErrorClass::Exhausted => "exhausted",
            ErrorClass::Transform => "transform",
        }
    }
}

/// A transport failure, by kind (decided from typed error sources, never from text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// The connection could not be established.
    Connect,
    /// The call did not finish within its timeout.
    Timeout,
    /// The connection was reset or the response cut short.
    Reset,
    /// The request could not be built (bad URL, header) or TLS is misconfigured.
    InvalidRequest,
    /// The target resolves to an address the deployment does not allow.
    Blocked,
}

/// `Retry-After`, as the target sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// A delay in seconds.
    Delay(Duration),
    /// An HTTP date.
    At(SystemTime),
}

impl RetryAfter {
    /// Parses a `Retry-After` value: seconds or an HTTP date. None for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(RetryAfter::Delay(Duration::from_secs(secs)));
        }
        httpdate::parse_http_date(value).ok().map(RetryAfter::At)
    }

    fn delay_from(self, now: SystemTime) -> Duration {
        match self {
            RetryAfter::Delay(d) => d,
            RetryAfter::At(t) => t.duration_since(now).unwrap_or(Duration::ZERO),
        }
    }
}

/// The outcome of one call to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The target answered.
    Status {
        /// The HTTP status.
        status: u16,
        /// Its `Retry-After`, when present and valid.
        retry_after: Option<RetryAfter>,
    },
    /// No answer.
    Transport(TransportFailure),
}

/// Everything about the message the classifier needs besides the outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttemptContext {
    /// Attempts made so far, this one included (1 for the first).
    pub attempts: u32,
    /// When the message was first received (`receivedAt`).
    pub received_at: SystemTime,
    /// Now.
    pub now: SystemTime,
    /// Whether the call carried a token from Vault.
    pub used_secret: bool,
    /// Whether the token was already fetched again for this message in this invocation.
    pub secret_refreshed: bool,
    /// A uniform draw in [0, 1) for the jitter.
    pub jitter: f64,
}

/// What to do with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It was delivered.
    Delivered,
    /// 401/403 with a Vault token: fetch the secret again and call once more, now.
    RefreshSecretAndRetry,
    /// Send it to the class's error stream, to be tried again no earlier than `not_before`.
    Retry {
        /// Why it failed.
        class: ErrorClass,
        /// The earliest next attempt.
        not_before: SystemTime,
    },
    /// Send it to the dead-letter stream.
    Permanent {
        /// Why it failed; [`ErrorClass::Exhausted`] when a retryable failure ran out of bounds.
        class: ErrorClass,
        /// The class of the last failure, when the class is `Exhausted`.
        last: Option<ErrorClass>,
    },
}

/// A set of HTTP statuses written as codes and ranges: `"429"`, `"5xx"`, `"500-599"`, and
/// exclusions with `!`: `["5xx", "!501"]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct StatusSet {
    specs: Vec<String>,
    include: Vec<(u16, u16)>,
    exclude: Vec<(u16, u16)>,
}

impl StatusSet {
    /// Parses the specs.
    ///
    /// # Errors
    /// A message naming the first spec that is not a code, `Nxx` or `A-B` range within 100..=599.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Self, String> {
        let mut set = StatusSet::default();
        for spec in specs {
            let spec = spec.as_ref().trim();
            let (negated, body) = match spec.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, spec),
            };
            let range = parse_range(body).ok_or_else(|| {
                format!("{spec:?} is not a status code, an Nxx class or an A-B range between 100 and 599")
            })?;
            if negated {
                set.exclude.push(range);
            } else {
                set.include.push(range);
            }
            set.specs.push(spec.to_owned());
        }
        Ok(set)
    }

    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        let within =
            |ranges: &[(u16, u16)]| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&status));
        within(&self.include) && !within(&self.exclude)
    }
}

fn parse_range(body: &str) -> Option<(u16, u16)> {
    let valid = |n: u16| (100..=599).contains(&n);
    if let Some(class) = body.strip_suffix("xx").or_else(|| body.strip_suffix("XX")) {
        let digit: u16 = class.parse().ok()?;
        return (1..=5)
            .contains(&digit)
            .then_some((digit * 100, digit * 100 + 99));
    }
    if let Some((lo, hi)) = body.split_once('-') {
        let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
        return (valid(lo) && valid(hi) && lo <= hi).then_some((lo, hi));
    }
    let code: u16 = body.parse().ok()?;
    valid(code).then_some((code, code))
}

impl TryFrom<Vec<String>> for StatusSet {
    type Error = String;
    fn try_from(specs: Vec<String>) -> Result<Self, String> {
        StatusSet::parse(&specs)
    }
}

impl From<StatusSet> for Vec<String> {
    fn from(set: StatusSet) -> Self {
        set.specs
    }
}

/// The classification rules for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Statuses that are retried; everything else that is not 2xx or 401/403 is permanent.
    pub retry_statuses: StatusSet,
    /// Statuses counted as delivered (default 2xx).
    pub success_statuses: StatusSet,
    /// Attempts before a retryable failure becomes permanent.
    pub max_attempts: u32,
    /// Age (since `receivedAt`) after which a retryable failure becomes permanent. Keep it
    /// below the error streams' retention, or messages expire before they are retried.
    pub max_age: Duration,
    /// The first backoff ceiling; doubled per attempt.
    pub base_delay: Duration,
    /// The largest backoff ceiling, and the most a `Retry-After` is honoured.
    pub max_delay: Duration,
    /// The least delay after a 429 or a timeout.
    pub throttle_min_delay: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            retry_statuses: StatusSet::parse(&["408", "425", "429", "500", "502", "503", "504"])
                .unwrap_or_default(),
            success_statuses: StatusSet::parse(&["2xx"]).unwrap_or_default(),
            max_attempts: 8,
            max_age: Duration::from_secs(23 * 3600),
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(3600),
            throttle_min_delay: Duration::from_secs(30),
        }
    }
}

/// A per-host change to the rules, as written in `classification_overrides`:
/// `{"api.example.com": {"retry": ["5xx", "!501", "409"], "maxAttempts": 3}}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleOverride {
    /// Replaces the retryable statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<StatusSet>,
    /// Replaces the statuses counted as delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<StatusSet>,
    /// Replaces the attempt bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Replaces the age bound, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u64>,
    /// The call timeout for this host, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Calls in flight to this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Park a message's key when it fails permanently, so its later messages wait (in an
    /// error stream, not dead-lettered) until an operator releases the key; by default they
    /// are attempted ([`crate::parked`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub park_on_permanent: Option<bool>,
}

/// Every host's overrides, keyed by host (`host` or `host:port`, lower case).
pub type Overrides = BTreeMap<String, RuleOverride>;

impl Rules {
    /// These rules with `ov` applied.
    pub fn with_override(&self, ov: &RuleOverride) -> Rules {
        let mut rules = self.clone();
        if let Some(retry) = &ov.retry {
            rules.retry_statuses = retry.clone();
        }
        if let Some(success) = &ov.success {
            rules.success_statuses = success.clone();
        }
        if let Some(n) = ov.max_attempts {
            rules.max_attempts = n.max(1);
        }
        if let Some(secs) = ov.max_age_seconds {
            rules.max_age = Duration::from_secs(secs);
        }
        rules
    }

    /// The backoff for the retry after `attempts` attempts: a uniform draw under a capped
    /// exponential ceiling (full jitter).
    pub fn backoff(&self, attempts: u32, jitter: f64) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay
            .saturating_mul(factor)
            .min(self.max_delay)
            .mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// The class of a failed status under `rules`, and whether it is retried.
fn status_class(status: u16, rules: &Rules) -> ErrorClass {
    let retry = rules.retry_statuses.contains(status);
    match status {
        503 if retry => ErrorClass::ServiceUnavailable,
        429 if retry => ErrorClass::TooManyRequests,
        408 | 425 if retry => ErrorClass::RequestTimeout,
        500 if retry => ErrorClass::InternalServer,
        502 if retry => ErrorClass::BadGateway,
        504 if retry => ErrorClass::GatewayTimeout,
        _ if retry => ErrorClass::RetryableStatus,
        401 | 403 => ErrorClass::Unauthorized,
        300..=399 => ErrorClass::Redirect,
        _ => ErrorClass::ClientError,
    }
}

/// Decides what happens to a message after one attempt.
pub fn classify(outcome: AttemptOutcome, ctx: &AttemptContext, rules: &Rules) -> Decision {
    let (class, retry_after) = match outcome {
        AttemptOutcome::Status {
            status,
            retry_after,
        } => {
            if rules.success_statuses.contains(status) {
                return Decision::Delivered;
            }
            if matches!(status, 401 | 403) && ctx.used_secret && !ctx.secret_refreshed {
                return Decision::RefreshSecretAndRetry;
            }
            (status_class(status, rules), retry_after)
        }
        AttemptOutcome::Transport(TransportFailure::Connect | TransportFailure::Reset) => {
            (ErrorClass::Connect, None)
        }
        AttemptOutcome::Transport(TransportFailure::Timeout) => (ErrorClass::Timeout, None),
        AttemptOutcome::Transport(TransportFailure::InvalidRequest) => (ErrorClass::Invalid, None),
        AttemptOutcome::Transport(TransportFailure::Blocked) => (ErrorClass::NotAllowed, None),
    };
    retry_or_exhaust(class, retry_after, ctx, rules)
}

/// For a failure of `class`: a retry with its time, or permanence when the class is permanent
/// or the bounds are reached. Also used for failures found before any call (deadline, secret).
pub fn retry_or_exhaust(
    class: ErrorClass,
    retry_after: Option<RetryAfter>,
    ctx: &AttemptContext,
    rules: &Rules,
) -> Decision {
    if !class.is_retryable() {
        return Decision::Permanent { class, last: None };
    }
    let mut delay = match retry_after {
        Some(asked) => asked.delay_from(ctx.now).min(rules.max_delay),
        None => rules.backoff(ctx.attempts, ctx.jitter),
    };
    if matches!(class, ErrorClass::TooManyRequests | ErrorClass::Timeout) {
        delay = delay.max(rules.throttle_min_delay);
    }
    let not_before = ctx.now + delay;
    let age_then = not_before
        .duration_since(ctx.received_at)
        .unwrap_or(Duration::ZERO);
    // A deadline re-route or a secret not yet readable is not an attempt at the target: it never
    // exhausts the count, only the age.
    let untried = matches!(class, ErrorClass::Deadline | ErrorClass::SecretUnavailable);
    let out_of_attempts = !untried && ctx.attempts >= rules.max_attempts;
    if out_of_attempts || age_then > rules.max_age {
        return Decision::Permanent {
            class: ErrorClass::Exhausted,
            last: Some(class),
        };
    }
    Decision::Retry { class, not_before }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const T0: Duration = Duration::from_secs(1_800_000_000);

    fn ctx(attempts: u32) -> AttemptContext {
        let now = SystemTime::UNIX_EPOCH + T0;
        AttemptContext {
            attempts,
            received_at: now,
            now,
            used_secret: false,
            secret_refreshed: false,
            jitter: 0.5,
        }
    }

    fn status(status: u16) -> AttemptOutcome {
        AttemptOutcome::Status {
            status,
            retry_after: None,
        }
    }

    fn class_of(decision: Decision) -> Option<ErrorClass> {
        match decision {
            Decision::Retry { class, .. } | Decision::Permanent { class, .. } => Some(class),
            _ => None,
        }
    }

    #[test]
    fn default_status_table() {
        let rules = Rules::default();
        let c = ctx(1);
        use ErrorClass::*;
        #[rustfmt::skip]
        let table: &[(u16, Option<ErrorClass>, bool)] = &[
            (200, None, false), (201, None, false), (204, None, false), (299, None, false),
            (301, Some(Redirect), false), (302, Some(Redirect), false), (304, Some(Redirect), false), (308, Some(Redirect), false),
            (400, Some(ClientError), false), (401, Some(Unauthorized), false), (403, Some(Unauthorized), false),
            (404, Some(ClientError), false), (409, Some(ClientError), false), (413, Some(ClientError), false),
            (422, Some(ClientError), false), (408, Some(RequestTimeout), true), (425, Some(RequestTimeout), true),
            (429, Some(TooManyRequests), true), (500, Some(InternalServer), true), (501, Some(ClientError), false),
            (502, Some(BadGateway), true), (503, Some(ServiceUnavailable), true), (504, Some(GatewayTimeout), true),
            (505, Some(ClientError), false),
        ];
        for &(code, class, retry) in table {
            let d = classify(status(code), &c, &rules);
            assert_eq!(class_of(d), class, "{code}");
            assert_eq!(matches!(d, Decision::Retry { .. }), retry, "{code}: {d:?}");
            if class.is_none() {
                assert_eq!(d, Decision::Delivered, "{code}");
            }
        }
    }

    #[test]
    fn transport_failures() {
        let rules = Rules::default();
        let c = ctx(1);
        for (failure, class, retry) in [
            (TransportFailure::Connect, ErrorClass::Connect, true),
            (TransportFailure::Reset, ErrorClass::Connect, true),
            (TransportFailure::Timeout, ErrorClass::Timeout, true),
            (TransportFailure::InvalidRequest, ErrorClass::Invalid, false),
            (TransportFailure::Blocked, ErrorClass::NotAllowed, false),
        ] {
            let d = classify(AttemptOutcome::Transport(failure), &c, &rules);
            assert_eq!(class_of(d), Some(class), "{failure:?}");
            assert_eq!(matches!(d, Decision::Retry { .. }), retry, "{failure:?}");
        }
    }

    #[test]
    fn routes_follow_the_sample_keys() {
        assert_eq!(
            ErrorClass::ServiceUnavailable.route().config_key(),
            "serviceUnavailable_error_stream_ocid"
        );
        assert_eq!(
            ErrorClass::TooManyRequests.route(),
            Route::ServiceUnavailable
        );
        assert_eq!(ErrorClass::Connect.route(), Route::ServiceUnavailable);
        assert_eq!(
            ErrorClass::InternalServer.route().config_key(),
            "internalserver_error_stream_ocid"
        );
        assert_eq!(ErrorClass::GatewayTimeout.route(), Route::InternalServer);
        assert_eq!(
            ErrorClass::Deadline.route().config_key(),
            "default_error_stream_ocid"
        );
        for permanent in [
            ErrorClass::ClientError,
            ErrorClass::Exhausted,
            ErrorClass::Invalid,
            ErrorClass::Unauthorized,
        ] {
            assert_eq!(permanent.route(), Route::DeadLetter, "{permanent:?}");
            assert!(!permanent.is_retryable());
        }
    }

    #[test]
    fn unauthorized_refreshes_the_secret_once() {
        let rules = Rules::default();
        let mut c = ctx(1);
        assert_eq!(
            classify(status(401), &c, &rules),
            Decision::Permanent {
                class: ErrorClass::Unauthorized,
                last: None
            }
        );
        c.used_secret = true;
        assert_eq!(
            classify(status(403), &c, &rules),
            Decision::RefreshSecretAndRetry
        );
        c.secret_refreshed = true;
        assert_eq!(
            classify(status(401), &c, &rules),
            Decision::Permanent {
                class: ErrorClass::Unauthorized,
                last: None
            }
        );
    }

    #[test]
    fn backoff_is_exponential_capped_full_jitter() {
        let rules = Rules::default();
        let c = ctx(1);
        let at = |attempts: u32, jitter: f64| {
            let mut c = c;
            c.attempts = attempts;
            c.jitter = jitter;
            match classify(status(503), &c, &rules) {
                Decision::Retry { not_before, .. } => not_before.duration_since(c.now).unwrap(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(at(1, 0.5), Duration::from_secs(5));
        assert_eq!(at(2, 0.5), Duration::from_secs(10));
        assert_eq!(at(3, 1.0), Duration::from_secs(40));
        assert_eq!(at(1, 0.0), Duration::ZERO);
        let capped = Rules {
            max_attempts: 100,
            max_age: Duration::from_secs(1 << 40),
            ..Rules::default()
        };
        let mut c = ctx(40);
        c.jitter = 1.0;
        match classify(status(503), &c, &capped) {
            Decision::Retry { not_before, .. } => {
                assert_eq!(not_before.duration_since(c.now).unwrap(), capped.max_delay)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let rules = Rules::default();
        let c = ctx(1);
        let with = |ra: RetryAfter, code: u16| {
            classify(
                AttemptOutcome::Status {
                    status: code,
                    retry_after: Some(ra),
                },
                &c,
                &rules,
            )
        };
        let delay = |d: Decision| match d {
            Decision::Retry { not_before, .. } => not_before.duration_since(c.now).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            delay(with(RetryAfter::Delay(Duration::from_secs(120)), 503)),
            Duration::from_secs(120)
        );
        assert_eq!(
            delay(with(RetryAfter::Delay(Duration::from_secs(86_400)), 503)),
            rules.max_delay
        );
        assert_eq!(
            delay(with(RetryAfter::At(c.now + Duration::from_secs(90)), 503)),
            Duration::from_secs(90)
        );
        assert_eq!(
            delay(with(RetryAfter::At(c.now - Duration::from_secs(90)), 503)),
            Duration::ZERO
        );
        // 429 waits at least the throttle minimum, even when Retry-After asks for less.
        assert_eq!(
            delay(with(RetryAfter::Delay(Duration::from_secs(1)), 429)),
            rules.throttle_min_delay
        );
        assert_eq!(
            RetryAfter::parse(" 7 "),
            Some(RetryAfter::Delay(Duration::from_secs(7)))
        );
        assert!(matches!(
            RetryAfter::parse("Wed, 21 Oct 2026 07:28:00 GMT"),
            Some(RetryAfter::At(_))
        ));
        assert_eq!(RetryAfter::parse("soon"), None);
    }

    #[test]
    fn attempts_and_age_bound_retries() {
        let rules = Rules {
            max_attempts: 3,
            ..Rules::default()
        };
        assert!(matches!(
            classify(status(503), &ctx(2), &rules),
            Decision::Retry { .. }
        ));
        assert_eq!(
            classify(status(503), &ctx(3), &rules),
            Decision::Permanent {
                class: ErrorClass::Exhausted,
                last: Some(ErrorClass::ServiceUnavailable)
            }
        );
        let mut old = ctx(1);
        old.received_at = old.now - rules.max_age;
        assert_eq!(
            classify(status(500), &old, &rules),
            Decision::Permanent {
                class: ErrorClass::Exhausted,
                last: Some(ErrorClass::InternalServer)
            }
        );
        // A deadline re-route does not count as an attempt.
        assert!(matches!(
            retry_or_exhaust(ErrorClass::Deadline, None, &ctx(3), &rules),
            Decision::Retry {
                class: ErrorClass::Deadline,
                ..
            }
        ));
    }

    #[test]
    fn overrides_change_the_rules_per_host() {
        let overrides: Overrides = serde_json::from_str(
            r#"{"api.example.com": {"retry": ["5xx", "!501", "409"], "maxAttempts": 2, "timeoutMs": 3000}}"#,
        )
        .unwrap();
        let rules = Rules::default().with_override(&overrides["api.example.com"]);
        let c = ctx(1);
        assert_eq!(
            class_of(classify(status(409), &c, &rules)),
            Some(ErrorClass::RetryableStatus)
        );
        assert!(matches!(
            classify(status(409), &c, &rules),
            Decision::Retry { .. }
        ));
        assert!(matches!(
            classify(status(501), &c, &rules),
            Decision::Permanent { .. }
        ));
        assert!(matches!(
            classify(status(429), &c, &rules),
            Decision::Permanent { .. }
        ));
        assert!(matches!(
            classify(status(503), &ctx(2), &rules),
            Decision::Permanent {
                class: ErrorClass::Exhausted,
                ..
            }
        ));
        assert_eq!(ErrorClass::RetryableStatus.route(), Route::Default);
    }

    #[test]
    fn override_parsing_rejects_bad_specs_and_unknown_fields() {
        for bad in [
            r#"{"h": {"retry": ["6xx"]}}"#,
            r#"{"h": {"retry": ["99"]}}"#,
            r#"{"h": {"retry": ["500-400"]}}"#,
            r#"{"h": {"retries": ["500"]}}"#,
            r#"{"h": {"retry": "500"}}"#,
        ] {
            assert!(serde_json::from_str::<Overrides>(bad).is_err(), "{bad}");
        }
        let set = StatusSet::parse(&["4xx", "!404", "500-503"]).unwrap();
        assert!(set.contains(400) && !set.contains(404) && set.contains(502) && !set.contains(504));
        let round: StatusSet = serde_json::from_str(&serde_json::to_string(&set).unwrap()).unwrap();
        assert_eq!(round, set);
    }
}
