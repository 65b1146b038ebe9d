//! What a service reads from a request: the [`Call`] the router hands it (method, decoded path
//! segments, query, headers, body), JSON bodies, `limit` parameters, and new OCIDs.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::error::ApiError;

/// A verified request, as a service's `route` sees it.
#[derive(Debug)]
pub(crate) struct Call {
    /// The method.
    pub method: Method,
    /// The path as sent (still percent-encoded).
    pub path: String,
    /// The path's segments after the leading `/`, percent-decoded.
    pub segments: Vec<String>,
    /// The query parameters, decoded.
    pub query: HashMap<String, String>,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body, read within its limit.
    pub body: Bytes,
}

impl Call {
    /// The segments as `&str`, for matching on slice patterns.
    pub fn segments(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }

    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A header as text; `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// 404 for a path no service serves.
    pub fn not_found(&self) -> ApiError {
        ApiError::not_found(format!("{} {}", self.method, self.path))
    }
}

/// Parses a JSON body: a syntax error is 400 CannotParseRequest, a wrong shape 400
/// InvalidParameter.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::invalid(format!("invalid request body: {e}"))
        }
        _ => ApiError::cannot_parse(format!("the request body is not valid JSON: {e}")),
    })
}

/// Parses a `limit` query parameter: `default` when absent, 400 unless in `1..=max`.
pub(crate) fn parse_limit(value: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(format!(
                "limit must be an integer from 1 to {max}"
            ))),
        },
    }
}

/// A new OCID of `kind`: `ocid1.<kind>.oc1.local.<random>`.
pub(crate) fn new_ocid(kind: &str) -> String {
    format!("ocid1.{kind}.oc1.local.{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn limits_are_bounded() {
        assert_eq!(parse_limit(None, 10, 100).unwrap(), 10);
        assert_eq!(parse_limit(Some("100"), 10, 100).unwrap(), 100);
        for bad in ["0", "101", "-1", "x", ""] {
            assert_eq!(
                parse_limit(Some(bad), 10, 100).unwrap_err().code,
                "InvalidParameter"
            );
        }
    }

    #[test]
    fn bodies_fail_as_oci_answers() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            name: String,
        }
        assert_eq!(
            parse_json::<Body>(b"{").unwrap_err().code,
            "CannotParseRequest"
        );
        assert_eq!(
            parse_json::<Body>(b"{}").unwrap_err().code,
            "InvalidParameter"
        );
        assert!(new_ocid("stream").starts_with("ocid1.stream.oc1.local."));
    }
}
