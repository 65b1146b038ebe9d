//! Logging Search (API 20190909): SearchLogs (contracts/oci-round2.md section B).
//!
//! `POST /20190909/search?limit=&page=` with [`SearchLogsDetails`]; the answer's
//! `opc-next-page` header, when present, asks for the next page.

use http::Method;
use serde::{Deserialize, Serialize};
use url::Url;

use super::client::{OciClient, OciError, OciRequest};
use super::endpoints::{Endpoints, Service};
use super::service_url;

const API: &str = "20190909";

/// The body of SearchLogs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchLogsDetails {
    /// From (RFC 3339).
    pub time_start: String,
    /// To (RFC 3339); at most 14 days after `time_start`.
    pub time_end: String,
    /// The query (`search "<scope>" | where ... | sort by datetime asc`).
    pub search_query: String,
    /// Whether the answer lists the fields found.
    #[serde(default)]
    pub is_return_field_info: bool,
}

/// The answer of SearchLogs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResponse {
    /// The entries found.
    #[serde(default)]
    pub results: Vec<SearchResult>,
}

/// One entry found.
#[derive(Debug, Clone, Deserialize)]
pub struct SearchResult {
    /// The entry.
    pub data: ResultData,
}

/// An entry: when, and the log entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultData {
    /// When it was written (ms since the epoch).
    #[serde(default)]
    pub datetime: Option<i64>,
    /// The log entry.
    pub log_content: LogContent,
}

/// A log entry (a Functions invoke log entry for datasync's logs).
#[derive(Debug, Clone, Deserialize)]
pub struct LogContent {
    /// When it was produced (RFC 3339).
    #[serde(default)]
    pub time: Option<String>,
    /// The function's name, for an invoke log.
    #[serde(default)]
    pub subject: Option<String>,
    /// The entry's data.
    pub data: InvokeData,
}

/// An invoke log entry's `data`.
#[derive(Debug, Clone, Deserialize)]
pub struct InvokeData {
    /// One line of the function's output.
    #[serde(default)]
    pub message: Option<String>,
}

/// One page of SearchLogs.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    /// The entries.
    pub results: Vec<SearchResult>,
    /// The next page's token, when more follow.
    pub next_page: Option<String>,
}

/// The Logging Search client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogSearchClient {
    client: OciClient,
    base: Url,
}

impl LogSearchClient {
    /// A client for the Logging endpoint of `endpoints`.
    ///
    /// # Errors
    /// [`OciError::Endpoint`] when the endpoint is not configured.
    pub fn new(client: OciClient, endpoints: &Endpoints) -> Result<Self, OciError> {
        Ok(Self {
            client,
            base: endpoints.require(Service::Logging)?,
        })
    }

    /// SearchLogs: one page of `details`, at most `limit` entries, from `page`.
    ///
    /// # Errors
    /// As [`OciClient::send`], and [`OciError::Decode`] for an unexpected body.
    pub async fn search_logs(
        &self,
        details: &SearchLogsDetails,
        limit: Option<u32>,
        page: Option<&str>,
    ) -> Result<SearchPage, OciError> {
        let limit = limit.map(|l| l.to_string());
        let url = service_url(
            &self.base,
            &[API, "search"],
            &[("limit", limit.as_deref()), ("page", page)],
        )?;
        let request = OciRequest::new("SearchLogs", Method::POST, url).json(details)?;
        let response = self.client.send(&request).await?;
        let body: SearchResponse = response.json()?;
        Ok(SearchPage {
            results: body.results,
            next_page: response.header("opc-next-page").map(str::to_owned),
        })
    }
}
