//! What a handler receives: [`FnEvent`] = [`Context`] + payload.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::de::DeserializeOwned;

use crate::protocol::{self, ENV_APP_ID, ENV_APP_NAME, ENV_FN_ID, ENV_FN_NAME, ENV_MEMORY};
use crate::response::Response;

/// The function's configuration: the environment of the process, captured once at start.
///
/// On OCI the application and function `config` keys arrive as environment variables, next to
/// the `FN_*` and `OCI_*` variables. [`crate::run`] captures the environment with
/// [`Config::from_env`]; hosts and tests build one explicitly, so nothing reads the process
/// environment during a call and no test needs `std::env::set_var`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    vars: BTreeMap<String, String>,
}

impl Config {
    /// The current process environment (variables that are not valid UTF-8 are skipped).
    pub fn from_env() -> Self {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }

    /// A configuration holding exactly `keys`, each looked up with `lookup` (missing keys are
    /// left out).
    pub fn from_lookup<'a>(
        keys: impl IntoIterator<Item = &'a str>,
        mut lookup: impl FnMut(&str) -> Option<String>,
    ) -> Self {
        keys.into_iter()
            .filter_map(|k| Some((k.to_owned(), lookup(k)?)))
            .collect()
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// All variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sets `key` (builder style, for hosts and tests).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(key.into(), value.into());
        self
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Config {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            vars: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// Why the function was called (`Fn-Intent`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Intent {
    /// No `Fn-Intent`: a plain invoke (InvokeFunction, Connector Hub, `fn invoke`).
    #[default]
    Invoke,
    /// `httprequest`: an HTTP trigger or API Gateway; see [`Context::http`].
    HttpRequest,
    /// `cloudevent`.
    CloudEvent,
    /// Any other value.
    Other(String),
}

impl Intent {
    fn parse(value: Option<&str>) -> Self {
        match value {
            None | Some("") => Self::Invoke,
            Some(v) if v.eq_ignore_ascii_case(protocol::INTENT_HTTP_REQUEST) => Self::HttpRequest,
            Some(v) if v.eq_ignore_ascii_case(protocol::INTENT_CLOUD_EVENT) => Self::CloudEvent,
            Some(v) => Self::Other(v.to_owned()),
        }
    }
}

/// The gateway's view of an `httprequest` call: the client's request line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpRequest {
    /// The client's method (`Fn-Http-Method`).
    pub method: Method,
    /// The client's URL as sent in `Fn-Http-Request-Url`: path and query on OCI
    /// (`/v1/items?id=3`), an absolute URL on open-source Fn.
    pub request_url: String,
    /// The client's headers: every `Fn-Http-H-X` as `X`, plus `Content-Type`.
    pub headers: HeaderMap,
}

impl HttpRequest {
    /// A request for tests.
    pub fn new(method: Method, request_url: impl Into<String>, headers: HeaderMap) -> Self {
        Self {
            method,
            request_url: request_url.into(),
            headers,
        }
    }

    /// The path and query, without any scheme and host.
    fn path_and_query(&self) -> &str {
        let url = self.request_url.as_str();
        for scheme in ["http://", "https://"] {
            if let Some(rest) = url.strip_prefix(scheme) {
                return rest.find('/').map_or("/", |i| &rest[i..]);
            }
        }
        url
    }

    /// The URL's path (percent-encoding preserved).
    pub fn path(&self) -> &str {
        let pq = self.path_and_query();
        let end = pq.find(['?', '#']).unwrap_or(pq.len());
        &pq[..end]
    }

    /// The raw query string, without the `?`.
    pub fn query(&self) -> Option<&str> {
        let pq = self.path_and_query();
        let q = &pq[pq.find('?')? + 1..];
        Some(q.split('#').next().unwrap_or(q))
    }

    /// The query parameters in order, percent-decoded (`+` is a space), repeats kept.
    pub fn query_params(&self) -> Vec<(String, String)> {
        self.query()
            .map(|q| {
                q.split('&')
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        (form_decode(k), form_decode(v))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// `application/x-www-form-urlencoded` decoding; invalid escapes are kept as they are.
fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything known about a call besides its payload.
///
/// `#[non_exhaustive]`: outside this crate, start from [`Context::default`] (or
/// [`Context::for_test`]) and set the public fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Context {
    /// `Fn-Call-Id`.
    pub call_id: String,
    /// When the call must be finished (`Fn-Deadline`; 30 s after arrival if absent). The
    /// FDK cancels the handler at this instant and answers 504.
    pub deadline: SystemTime,
    /// `Fn-Intent`.
    pub intent: Intent,
    /// `Fn-Invoke-Type` (`sync` or `detached`), if sent.
    pub invoke_type: Option<String>,
    /// `FN_APP_ID`.
    pub app_id: String,
    /// `FN_APP_NAME`.
    pub app_name: String,
    /// `FN_FN_ID`.
    pub fn_id: String,
    /// `FN_FN_NAME`.
    pub fn_name: String,
    /// `FN_MEMORY` in MB.
    pub memory_mb: Option<u32>,
    /// The request headers exactly as the agent sent them (all `Fn-*` headers included).
    pub headers: HeaderMap,
    /// For `httprequest` calls: the client's method, URL and headers.
    pub http: Option<HttpRequest>,
    /// The function's configuration (its environment).
    pub config: Arc<Config>,
}

impl Default for Context {
    fn default() -> Self {
        Self {
            call_id: String::new(),
            deadline: SystemTime::now() + protocol::DEFAULT_DEADLINE,
            intent: Intent::Invoke,
            invoke_type: None,
            app_id: String::new(),
            app_name: String::new(),
            fn_id: String::new(),
            fn_name: String::new(),
            memory_mb: None,
            headers: HeaderMap::new(),
            http: None,
            config: Arc::new(Config::default()),
        }
    }
}

impl Context {
    /// A context for unit tests: the given call id, a deadline 30 s away, nothing else.
    pub fn for_test(call_id: impl Into<String>) -> Self {
        Self {
            call_id: call_id.into(),
            ..Self::default()
        }
    }

    /// Builds the context of a call from the agent's request headers and the captured
    /// configuration, as the runtime does for each call (public for the `fn_http_stream`
    /// fuzz target and for tests).
    pub fn from_call(headers: HeaderMap, config: Arc<Config>, now: SystemTime) -> Self {
        let text = |name: &http::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let call_id = text(&protocol::FN_CALL_ID).unwrap_or_default().to_owned();
        let deadline = text(&protocol::FN_DEADLINE)
            .and_then(protocol::parse_deadline)
            .unwrap_or(now + protocol::DEFAULT_DEADLINE);
        let intent = Intent::parse(text(&protocol::FN_INTENT));
        let invoke_type = text(&protocol::FN_INVOKE_TYPE).map(str::to_owned);
        let http = (intent == Intent::HttpRequest).then(|| {
            let method = text(&protocol::FN_HTTP_METHOD)
                .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
                .unwrap_or(Method::GET);
            let request_url = text(&protocol::FN_HTTP_REQUEST_URL)
                .unwrap_or("/")
                .to_owned();
            let mut client = HeaderMap::with_capacity(headers.len());
            for (name, value) in &headers {
                if let Some(stripped) = protocol::unprefixed(name) {
                    client.append(stripped, value.clone());
                }
            }
            if let Some(ct) = headers.get(http::header::CONTENT_TYPE) {
                if !client.contains_key(http::header::CONTENT_TYPE) {
                    client.insert(http::header::CONTENT_TYPE, ct.clone());
                }
            }
            HttpRequest {
                method,
                request_url,
                headers: client,
            }
        });
        let var = |k: &str| config.get(k).unwrap_or_default().to_owned();
        Self {
            call_id,
            deadline,
            intent,
            invoke_type,
            app_id: var(ENV_APP_ID),
            app_name: var(ENV_APP_NAME),
            fn_id: var(ENV_FN_ID),
            fn_name: var(ENV_FN_NAME),
            memory_mb: config.get(ENV_MEMORY).and_then(|m| m.trim().parse().ok()),
            headers,
            http,
            config,
        }
    }

    /// Time left before the deadline (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }

    /// A configuration value (an environment variable of the function).
    pub fn config(&self, key: &str) -> Option<&str> {
        self.config.get(key)
    }

    /// Whether this call came through an HTTP trigger or API Gateway.
    pub fn is_http(&self) -> bool {
        self.intent == Intent::HttpRequest
    }
}

/// One call: its [`Context`] and its payload.
///
/// The payload type is anything implementing [`Payload`]: [`Bytes`] (the default),
/// `Vec<u8>`, `String`, or [`Json<T>`] for a deserialized JSON body.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FnEvent<T = Bytes> {
    /// The call's context.
    pub context: Context,
    /// The request body.
    pub payload: T,
}

impl<T> FnEvent<T> {
    /// An event (for tests and middleware).
    pub fn new(context: Context, payload: T) -> Self {
        Self { context, payload }
    }

    /// Splits the event into its context and payload.
    pub fn into_parts(self) -> (Context, T) {
        (self.context, self.payload)
    }
}

/// A request body a handler can receive. A decoding failure becomes an error response
/// (`400 InvalidParameter` for `httprequest` calls, outer `502` otherwise) without calling the
/// handler.
pub trait Payload: Sized + Send + 'static {
    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// The response to send instead of calling the handler.
    fn from_body(body: Bytes) -> Result<Self, PayloadError>;
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

impl PayloadError {
    pub(crate) fn response(&self) -> Response {
        Response::error(http::StatusCode::BAD_REQUEST, "InvalidParameter", &self.0)
    }
}

impl Payload for Bytes {
    fn from_body(body: Bytes) -> Result<Self, PayloadError> {
        Ok(body)
    }
}

impl Payload for Vec<u8> {
    fn from_body(body: Bytes) -> Result<Self, PayloadError> {
        Ok(body.to_vec())
    }
}

impl Payload for String {
    fn from_body(body: Bytes) -> Result<Self, PayloadError> {
        String::from_utf8(body.to_vec())
            .map_err(|e| PayloadError(format!("the body is not UTF-8: {e}")))
    }
}

/// A JSON body deserialized into `T`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + Send + 'static> Payload for Json<T> {
    fn from_body(body: Bytes) -> Result<Self, PayloadError> {
        serde_json::from_slice(&body)
            .map(Json)
            .map_err(|e| PayloadError(format!("the body is not the expected JSON: {e}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn http_context_from_gateway_headers() {
        let config = Arc::new(
            Config::default()
                .with("FN_APP_ID", "ocid1.app")
                .with("FN_FN_NAME", "populate")
                .with("FN_MEMORY", "256")
                .with("TARGET_URL", "http://t"),
        );
        let h = headers(&[
            ("fn-call-id", "01ABC"),
            ("fn-deadline", "2030-01-01T00:00:00Z"),
            ("fn-intent", "httprequest"),
            ("fn-http-method", "PUT"),
            (
                "fn-http-request-url",
                "/v1/items?id=3&name=a+b%21&flag&id=4",
            ),
            ("fn-http-h-x-api-key", "k"),
            ("fn-http-h-accept", "a"),
            ("fn-http-h-accept", "b"),
            ("content-type", "application/json"),
            ("oci-subject-id", "gw"),
        ]);
        let now = SystemTime::now();
        let ctx = Context::from_call(h, config, now);
        assert_eq!(ctx.call_id, "01ABC");
        assert_eq!(
            ctx.deadline,
            protocol::parse_deadline("2030-01-01T00:00:00Z").unwrap()
        );
        assert!(ctx.is_http());
        assert_eq!(ctx.app_id, "ocid1.app");
        assert_eq!(ctx.fn_name, "populate");
        assert_eq!(ctx.memory_mb, Some(256));
        assert_eq!(ctx.config("TARGET_URL"), Some("http://t"));
        let http = ctx.http.as_ref().unwrap();
        assert_eq!(http.method, Method::PUT);
        assert_eq!(http.path(), "/v1/items");
        assert_eq!(http.query(), Some("id=3&name=a+b%21&flag&id=4"));
        assert_eq!(
            http.query_params(),
            vec![
                ("id".into(), "3".into()),
                ("name".into(), "a b!".into()),
                ("flag".into(), String::new()),
                ("id".into(), "4".into()),
            ]
        );
        assert_eq!(http.query_param("id").as_deref(), Some("3"));
        assert_eq!(http.headers.get("x-api-key").unwrap(), "k");
        assert_eq!(http.headers.get_all("accept").iter().count(), 2);
        assert_eq!(
            http.headers.get("content-type").unwrap(),
            "application/json"
        );
        assert!(http.headers.get("oci-subject-id").is_none());
        assert!(http.headers.get("fn-call-id").is_none());
    }

    #[test]
    fn plain_invoke_defaults() {
        let now = SystemTime::now();
        let ctx = Context::from_call(headers(&[]), Arc::default(), now);
        assert_eq!(ctx.intent, Intent::Invoke);
        assert!(ctx.http.is_none());
        assert_eq!(ctx.deadline, now + Duration::from_secs(30));
        let bad = Context::from_call(headers(&[("fn-deadline", "soon")]), Arc::default(), now);
        assert_eq!(bad.deadline, now + Duration::from_secs(30));
        let other =
            Context::from_call(headers(&[("fn-intent", "cloudevent")]), Arc::default(), now);
        assert_eq!(other.intent, Intent::CloudEvent);
    }

    #[test]
    fn absolute_urls_are_reduced() {
        let r = HttpRequest::new(
            Method::GET,
            "http://h:8080/r/app/fn?x=1#frag",
            HeaderMap::new(),
        );
        assert_eq!(r.path(), "/r/app/fn");
        assert_eq!(r.query(), Some("x=1"));
        let bare = HttpRequest::new(Method::GET, "https://h", HeaderMap::new());
        assert_eq!(bare.path(), "/");
        assert_eq!(bare.query(), None);
    }

    #[test]
    fn form_decoding_keeps_bad_escapes() {
        assert_eq!(form_decode("a%2"), "a%2");
        assert_eq!(form_decode("%zz"), "%zz");
        assert_eq!(form_decode("%41%42"), "AB");
        assert_eq!(form_decode("%"), "%");
    }

    #[test]
    fn payloads() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct P {
            a: u32,
        }
        let Json(p) = Json::<P>::from_body(Bytes::from_static(br#"{"a":1}"#)).unwrap();
        assert_eq!(p, P { a: 1 });
        let err = Json::<P>::from_body(Bytes::from_static(b"{")).unwrap_err();
        assert!(err.0.contains("line 1"), "{err}");
        assert!(String::from_body(Bytes::from_static(&[0xff])).is_err());
    }
}
