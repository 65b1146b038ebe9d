//! The outer response: a handler's response (or a failure) mapped onto what the agent reads.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::Full;

use super::HttpResponse;
use crate::protocol;
use crate::response::Response;

const FDK_VERSION: HeaderValue = HeaderValue::from_static(protocol::FDK_VERSION);
const FDK_RUNTIME: HeaderValue = HeaderValue::from_static(protocol::FDK_RUNTIME);

/// An outer failure (502/504) with an OCI-style JSON body, for every intent.
pub(super) fn failure(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let r = Response::error(status, code, message);
    finish(status, r.headers, r.body)
}

/// Maps a handler's response onto the outer response (section A):
/// - `httprequest`: outer 200, `Fn-Http-Status`, headers re-prefixed `Fn-Http-H-` except
///   `Content-Type` and already-prefixed ones;
/// - otherwise: headers as they are; status < 400 → 200, 504 → 504, other ≥ 400 → 502.
pub(super) fn to_http(response: Response, is_http: bool) -> HttpResponse {
    let Response {
        status,
        headers,
        body,
    } = response;
    let mut out = HeaderMap::with_capacity(headers.len() + 4);
    let mut name = None;
    for (n, value) in headers {
        // `HeaderMap::into_iter` yields the name only for the first of repeated values.
        if let Some(n) = n {
            name = Some(n);
        }
        let Some(n) = &name else { continue };
        if protocol::is_hop_by_hop(n) || is_reserved(n) {
            continue;
        }
        if is_http && *n != CONTENT_TYPE && protocol::unprefixed(n).is_none() {
            if let Some(p) = protocol::prefixed(n) {
                out.append(p, value);
            }
        } else {
            out.append(n.clone(), value);
        }
    }
    let outer = if is_http {
        out.insert(
            protocol::FN_HTTP_STATUS.clone(),
            HeaderValue::from(status.as_u16()),
        );
        StatusCode::OK
    } else if status == StatusCode::GATEWAY_TIMEOUT {
        status
    } else if status.as_u16() >= 400 {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    finish(outer, out, body)
}

/// Headers the FDK itself owns on the outer response.
fn is_reserved(name: &HeaderName) -> bool {
    *name == protocol::FN_HTTP_STATUS
        || *name == protocol::FN_FDK_VERSION
        || *name == protocol::FN_FDK_RUNTIME
}

fn finish(status: StatusCode, mut headers: HeaderMap, body: Bytes) -> HttpResponse {
    headers.insert(protocol::FN_FDK_VERSION.clone(), FDK_VERSION);
    headers.insert(protocol::FN_FDK_RUNTIME.clone(), FDK_RUNTIME);
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn resp() -> Response {
        Response::new("b")
            .with_status(StatusCode::CREATED)
            .with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain"))
            .with_header(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("1"),
            )
            .with_header(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("2"),
            )
            .with_header(
                HeaderName::from_static("fn-http-h-x-pre"),
                HeaderValue::from_static("p"),
            )
            .with_header(
                HeaderName::from_static("transfer-encoding"),
                HeaderValue::from_static("chunked"),
            )
    }

    #[test]
    fn http_intent_mapping() {
        let r = to_http(resp(), true);
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert_eq!(h["fn-http-status"], "201");
        assert_eq!(h["content-type"], "text/plain");
        let a: Vec<_> = h.get_all("fn-http-h-x-a").iter().collect();
        assert_eq!(a, ["1", "2"]);
        assert_eq!(h["fn-http-h-x-pre"], "p");
        assert!(h.get("x-a").is_none());
        assert!(h.get("transfer-encoding").is_none());
        assert!(h.get("fn-http-h-transfer-encoding").is_none());
        assert_eq!(h["fn-fdk-version"], protocol::FDK_VERSION);
        assert!(h["fn-fdk-runtime"].to_str().unwrap().starts_with("rust/1."));
    }

    #[test]
    fn plain_intent_mapping() {
        let r = to_http(resp(), false);
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("fn-http-status").is_none());
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        for (status, outer) in [
            (200, 200),
            (302, 200),
            (400, 502),
            (500, 502),
            (502, 502),
            (504, 504),
        ] {
            let r = Response::new("").with_status(StatusCode::from_u16(status).unwrap());
            assert_eq!(to_http(r, false).status(), outer, "{status}");
        }
        for status in [200, 404, 500, 504] {
            let r = Response::new("").with_status(StatusCode::from_u16(status).unwrap());
            let out = to_http(r, true);
            assert_eq!(out.status(), 200);
            assert_eq!(out.headers()["fn-http-status"], status.to_string().as_str());
        }
    }
}
