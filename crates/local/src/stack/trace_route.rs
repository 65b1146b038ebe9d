//! A message's timeline from the local stack's invoke log, searched through the emulator's
//! Logging Search with the `LOCAL` profile (the code `datasync trace --oci` uses against OCI),
//! and the gateway's `GET /trace?id=ID` / `GET /trace?key=KEY&since=DUR` answer
//! (`{"entries":[{"time","event",...}]}`), which the status page's search box calls.

use crate::stack::gateway::error;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use datasync_core::oci::auth::ConfigFileAuth;
use datasync_core::oci::client::OciClient;
use datasync_core::oci::endpoints::Endpoints;
use datasync_core::oci::logging::LogSearchClient;
use datasync_core::trace::search::{timeline, Subject, TraceSearch, TraceSearchError, MAX_WINDOW};
use datasync_core::trace::Timeline;
use http::{HeaderValue, Response, StatusCode};

use crate::emulator::{LocalProfile, LogIds};

/// How far back a key's timeline looks when `since` is not given.
pub const DEFAULT_KEY_SINCE: Duration = Duration::from_secs(86_400);

/// Where timelines are read: the invoke log, through a Logging Search client.
#[derive(Debug, Clone)]
pub struct TraceSource {
    client: LogSearchClient,
    scopes: Vec<String>,
    /// Stream OCIDs → names: the lines name streams by OCID (all the functions know), the
    /// timeline by name where the stack knows it.
    stream_names: BTreeMap<String, String>,
}

/// Why a [`TraceSource`] could not be built.
#[derive(Debug, thiserror::Error)]
#[error("the trace search client: {0}")]
pub struct TraceSourceError(String);

impl TraceSource {
    /// A source searching `logs` on the emulator at `emulator_base`, signed with `profile`.
    ///
    /// # Errors
    /// [`TraceSourceError`] when the profile or the URL cannot be used.
    pub fn local(
        emulator_base: &str,
        profile: &LocalProfile,
        logs: &LogIds,
    ) -> Result<Self, TraceSourceError> {
        let fail = |e: &dyn std::fmt::Display| TraceSourceError(e.to_string());
        let auth = ConfigFileAuth::from_config(
            Some(profile.config_file.as_path()),
            Some(&profile.profile),
            |_| None,
        )
        .map_err(|e| fail(&e))?;
        let endpoints = Endpoints::all_at(emulator_base).map_err(|e| fail(&e))?;
        let client = OciClient::new(Arc::new(auth)).map_err(|e| fail(&e))?;
        Ok(Self::new(
            LogSearchClient::new(client, &endpoints).map_err(|e| fail(&e))?,
            vec![logs.log_id.clone()],
        ))
    }

    /// A source searching `scopes` through `client`.
    pub fn new(client: LogSearchClient, scopes: Vec<String>) -> Self {
        Self {
            client,
            scopes,
            stream_names: BTreeMap::new(),
        }
    }

    /// Shows the streams of `streams` (names → OCIDs, as the stack keeps them) by name.
    #[must_use]
    pub fn with_stream_names(mut self, streams: &BTreeMap<String, String>) -> Self {
        self.stream_names = streams
            .iter()
            .map(|(name, ocid)| (ocid.clone(), name.clone()))
            .collect();
        self
    }

    /// The timeline of `subject` over the `since` before now.
    ///
    /// # Errors
    /// [`TraceSearchError`] when the subject cannot be searched or the search fails.
    pub async fn timeline(
        &self,
        subject: Subject,
        since: Duration,
    ) -> Result<Timeline, TraceSearchError> {
        let until = SystemTime::now();
        let search = TraceSearch {
            scopes: self.scopes.clone(),
            subject,
            since: until.checked_sub(since).unwrap_or(SystemTime::UNIX_EPOCH),
            // Lines written in this very millisecond are included.
            until: until + Duration::from_millis(1),
        };
        let mut found = timeline(&self.client, &search).await?;
        for entry in &mut found.entries {
            let named = entry
                .event
                .stream
                .as_ref()
                .and_then(|s| self.stream_names.get(s));
            if let Some(name) = named {
                entry.event.stream = Some(name.clone());
            }
        }
        Ok(found)
    }
}

/// What `GET /trace` asks: the subject and how far back.
fn parse_ask(query: Option<&str>) -> Result<(Subject, Duration), String> {
    let mut id = None;
    let mut key = None;
    let mut since = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "id" => id = Some(v.into_owned()),
            "key" => key = Some(v.into_owned()),
            "since" => since = Some(v.into_owned()),
            other => {
                return Err(format!(
                    "unknown parameter {other:?}: use id, or key and since"
                ))
            }
        }
    }
    let since = since
        .map(|s| datasync_core::trace::search::parse_since(&s))
        .transpose()?;
    match (id, key) {
        // A message's whole story: as far back as one search reaches.
        (Some(id), None) => Ok((Subject::Id(id), since.unwrap_or(MAX_WINDOW))),
        (None, Some(key)) => Ok((Subject::Key(key), since.unwrap_or(DEFAULT_KEY_SINCE))),
        _ => Err("give either id or key".into()),
    }
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The answer of `GET /trace?<query>`.
pub(crate) async fn answer(source: Option<&TraceSource>, query: Option<&str>) -> Response<Body> {
    let Some(source) = source else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "TraceUnavailable",
            "the trace log is not configured in this stack",
        );
    };
    let (subject, since) = match parse_ask(query) {
        Ok(a) => a,
        Err(m) => return error(StatusCode::BAD_REQUEST, "InvalidParameter", &m),
    };
    match source.timeline(subject, since).await {
        Ok(t) => match serde_json::to_string(&t) {
            Ok(body) => json(StatusCode::OK, body),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &e.to_string(),
            ),
        },
        Err(e @ TraceSearchError::Unsearchable(_)) => {
            error(StatusCode::BAD_REQUEST, "InvalidParameter", &e.to_string())
        }
        Err(e) => {
            tracing::warn!(error = %e, "GET /trace failed");
            error(
                StatusCode::BAD_GATEWAY,
                "SearchFailed",
                "the log search failed",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn asks_name_an_id_or_a_key() {
        assert_eq!(
            parse_ask(Some("id=m%201")).unwrap(),
            (Subject::Id("m 1".into()), MAX_WINDOW)
        );
        assert_eq!(
            parse_ask(Some("key=k&since=2h")).unwrap(),
            (Subject::Key("k".into()), Duration::from_secs(7200))
        );
        assert_eq!(parse_ask(Some("key=k")).unwrap().1, DEFAULT_KEY_SINCE);
        for bad in [
            None,
            Some("id=a&key=b"),
            Some("x=1"),
            Some("key=k&since=soon"),
        ] {
            assert!(parse_ask(bad).is_err(), "{bad:?}");
        }
    }
}
