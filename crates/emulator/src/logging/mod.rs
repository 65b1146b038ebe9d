//! Logging Search (20190909): `SearchLogs` over the logs the emulator keeps
//! (contracts/oci-round2.md section B).
//!
//! `POST /20190909/search?limit=&page=` with `{"timeStart","timeEnd","searchQuery"}` answers
//! `{"summary":{"resultCount","fieldCount"},"results":[{"data":{"datetime","logContent"}}],
//! "fields":[]}` and `opc-next-page` while more results follow. The query subset is
//! [`query`]'s; anything else is a 400 naming what is not supported. The span between
//! `timeStart` and `timeEnd` may not exceed 14 days, as on OCI.
//!
//! Each entry has the shape of a Functions invoke log entry (`type`
//! `com.oraclecloud.functions.application.functioninvoke`, `source` the application,
//! `subject` the function, `data.message` one line of the function's output).
//!
//! Logs are created and written in-process ([`crate::Emulator::ensure_log`],
//! [`crate::Emulator::append_log_lines`]): the local stack collects its functions' trace lines
//! as OCI Functions collects their stdout. Records are kept for their log's retention.

pub mod query;

use std::sync::Arc;
use std::time::SystemTime;

use axum::response::Response;
use datasync_core::trace::TraceLine;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock::{ms_since_epoch, now_ms, parse_time_ms, rfc3339_ms};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::{new_ocid, parse_json, parse_limit, Call};
use crate::response::{ok, set_header};
use crate::store::logs::{self, LogRow, RecordFilter, RecordRow};

use query::Condition;

/// The Search API's first path segment.
pub(crate) const API: &str = "20190909";

/// The longest span a search may cover.
const MAX_SPAN_MS: i64 = 14 * 86_400_000;
/// The most results per page.
const MAX_LIMIT: i64 = 1000;
/// Results per page when `limit` is absent.
const DEFAULT_LIMIT: i64 = 100;
/// Every invoke log entry's `type`.
const INVOKE_TYPE: &str = "com.oraclecloud.functions.application.functioninvoke";

/// Routes a Logging Search call: SearchLogs.
///
/// # Errors
/// The operation's [`ApiError`]; 404 for any other path.
pub(crate) async fn route(inner: &Arc<Inner>, call: &Call) -> Result<Response, ApiError> {
    match (&call.method, call.segments().as_slice()) {
        (&Method::POST, [API, "search"]) => search(inner, call).await,
        _ => Err(call.not_found()),
    }
}

/// `SearchLogsDetails`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchDetails {
    time_start: String,
    time_end: String,
    search_query: String,
    #[serde(default)]
    #[allow(dead_code)]
    is_return_field_info: Option<bool>,
}

/// `SearchResponse`.
#[derive(Debug, Serialize)]
struct SearchAnswer {
    summary: Summary,
    results: Vec<SearchResult>,
    fields: Vec<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    result_count: usize,
    field_count: usize,
}

#[derive(Debug, Serialize)]
struct SearchResult {
    data: Value,
}

async fn search(inner: &Arc<Inner>, call: &Call) -> Result<Response, ApiError> {
    let details: SearchDetails = parse_json(&call.body)?;
    let start = parse_time_ms(&details.time_start)?;
    let end = parse_time_ms(&details.time_end)?;
    if end < start {
        return Err(ApiError::invalid("timeEnd is before timeStart"));
    }
    if end - start > MAX_SPAN_MS {
        return Err(ApiError::invalid(
            "Period between start time and end time cannot be more than 14 days",
        ));
    }
    let limit = parse_limit(call.query("limit"), DEFAULT_LIMIT, MAX_LIMIT)?;
    let limit = usize::try_from(limit).unwrap_or(1);
    let after = call.query("page").map(parse_page).transpose()?;
    let query = query::parse(&details.search_query)
        .map_err(|e| ApiError::invalid(format!("searchQuery: {e}")))?;
    let tenancy = inner.profile.tenancy.clone();
    let (rows, next) = inner
        .logs
        .read(move |conn| {
            let all = logs::all_logs(conn)?;
            let scoped = scope_logs(&all, &query.scopes)?;
            let filter = RecordFilter {
                logs: scoped.iter().map(|l| l.id).collect(),
                start,
                // The end is inclusive on OCI's side; one more millisecond makes it so here.
                end: end.saturating_add(1),
                after,
                descending: query.descending.unwrap_or(false),
                ..prefilter(&query.conditions)
            };
            let found = matching(conn, filter, &query.conditions, &scoped, &tenancy, limit)?;
            Ok(found)
        })
        .await?;
    let answer = SearchAnswer {
        summary: Summary {
            result_count: rows.len(),
            field_count: 0,
        },
        results: rows.into_iter().map(|data| SearchResult { data }).collect(),
        fields: Vec::new(),
    };
    let mut response = ok(&answer)?;
    if let Some((ts, id)) = next {
        set_header(
            response.headers_mut(),
            "opc-next-page",
            &format!("{ts}.{id}"),
        );
    }
    Ok(response)
}

fn parse_page(page: &str) -> Result<(i64, i64), ApiError> {
    page.split_once('.')
        .and_then(|(t, i)| Some((t.parse().ok()?, i.parse().ok()?)))
        .ok_or_else(|| ApiError::invalid("page is not a page token this API returned"))
}

/// The logs `scopes` name: a compartment, a compartment's log group, a log group's log (names
/// or OCIDs), or a log's OCID.
fn scope_logs(all: &[LogRow], scopes: &[String]) -> Result<Vec<LogRow>, ApiError> {
    let mut out: Vec<LogRow> = Vec::new();
    for scope in scopes {
        let parts: Vec<&str> = scope.split('/').collect();
        let found: Vec<&LogRow> = match parts.as_slice() {
            [log] if log.starts_with("ocid1.log.") => {
                all.iter().filter(|l| l.ocid == *log).collect()
            }
            [c] => all.iter().filter(|l| l.compartment == *c).collect(),
            [c, g] => all
                .iter()
                .filter(|l| l.compartment == *c && (l.log_group == *g || l.log_group_name == *g))
                .collect(),
            [c, g, n] => all
                .iter()
                .filter(|l| {
                    l.compartment == *c
                        && (l.log_group == *g || l.log_group_name == *g)
                        && (l.ocid == *n || l.name == *n)
                })
                .collect(),
            _ => {
                return Err(ApiError::invalid(format!(
                    "searchQuery: the scope {scope:?} is not <compartment>[/<log group>[/<log>]] or a log OCID"
                )))
            }
        };
        if found.is_empty() && (parts.len() > 1 || scope.starts_with("ocid1.log.")) {
            return Err(ApiError::not_found(format!("log scope {scope}")));
        }
        for l in found {
            if !out.iter().any(|o| o.id == l.id) {
                out.push(l.clone());
            }
        }
    }
    Ok(out)
}

/// What the store's indexes can narrow from `conditions`: a condition on `data.message`
/// containing `"id":"X"` or `"key":"X"` (a trace line's field, as the JSON log formats write
/// it) reads that id's or key's records only; any `*text*` condition on `data.message` reads
/// only lines containing `text`. Every record read is still checked against every condition.
fn prefilter(conditions: &[Condition]) -> RecordFilter {
    let mut filter = RecordFilter::default();
    for c in conditions {
        if c.field != ["data", "message"] {
            continue;
        }
        let Some(text) = c.pattern.contained() else {
            continue;
        };
        if let Some(v) = field_value(text, "id") {
            filter.msg_id = Some(v.to_owned());
        } else if let Some(v) = field_value(text, "key") {
            filter.msg_key = Some(v.to_owned());
        }
        filter.contains.push(text.to_owned());
    }
    filter
}

/// `X` when `text` is exactly `"<name>":"X"` and `X` needs no JSON escaping (so the text can
/// only be that field, written by a JSON log format).
fn field_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let v = text
        .strip_prefix(&format!("\"{name}\":\""))?
        .strip_suffix('"')?;
    let plain = !v.is_empty() && !v.chars().any(|c| c == '"' || c == '\\' || c.is_control());
    plain.then_some(v)
}

/// Entries found, and the page position after the last when more follow.
type Found = (Vec<Value>, Option<(i64, i64)>);

/// Up to `limit` entries matching `conditions`, and the page position after the last when
/// more follow.
fn matching(
    conn: &rusqlite::Connection,
    mut filter: RecordFilter,
    conditions: &[Condition],
    scoped: &[LogRow],
    tenancy: &str,
    limit: usize,
) -> Result<Found, ApiError> {
    let chunk = (limit + 1).max(64);
    let mut out = Vec::new();
    let mut last = None;
    loop {
        let rows = logs::read_records(conn, &filter, chunk)?;
        for row in &rows {
            let Some(log) = scoped.iter().find(|l| l.id == row.log) else {
                continue;
            };
            let entry = entry(row, log, tenancy);
            if conditions.iter().all(|c| holds(c, &entry["logContent"])) {
                if out.len() == limit {
                    // One more exists: the next page starts after the last one returned.
                    return Ok((out, last));
                }
                out.push(entry);
                last = Some((row.ts, row.id));
            }
        }
        match rows.last() {
            Some(r) if rows.len() == chunk => filter.after = Some((r.ts, r.id)),
            _ => return Ok((out, None)),
        }
    }
}

/// Whether `content` (an entry's `logContent`) meets `c`.
fn holds(c: &Condition, content: &Value) -> bool {
    let mut at = content;
    for name in &c.field {
        match at.get(name) {
            Some(v) => at = v,
            None => return false,
        }
    }
    match at {
        Value::String(s) => c.pattern.matches(s),
        Value::Number(n) => c.pattern.matches(&n.to_string()),
        Value::Bool(b) => c.pattern.matches(if *b { "true" } else { "false" }),
        _ => false,
    }
}

/// A search result's `data`: `datetime` and the invoke log entry.
fn entry(row: &RecordRow, log: &LogRow, tenancy: &str) -> Value {
    let time = rfc3339_ms(row.ts);
    json!({
        "datetime": row.ts,
        "logContent": {
            "id": format!("00000000-0000-4000-8000-{:012x}", row.id & 0xffff_ffff_ffff),
            "source": log.source,
            "specversion": "1.0",
            "subject": row.subject,
            "time": time,
            "type": INVOKE_TYPE,
            "oracle": {
                "compartmentid": log.compartment,
                "ingestedtime": time,
                "loggroupid": log.log_group,
                "logid": log.ocid,
                "tenantid": tenancy,
            },
            "data": {
                "applicationId": log.application_id,
                "containerId": "n/a",
                "functionId": function_id(&row.subject),
                "message": row.message,
                "src": "STDOUT",
            }
        }
    })
}

/// The OCID the local stack gives function `name` (its resource principal's `res_id`).
fn function_id(name: &str) -> String {
    format!("ocid1.fnfunc.oc1.local.{name}")
}

/// A log to create (or find) in-process: an application's invoke log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSpec {
    /// The compartment.
    pub compartment: String,
    /// The log group's name (created when absent).
    pub group_name: String,
    /// The log's name (created when absent).
    pub log_name: String,
    /// The application's display name (each entry's `source`).
    pub application_name: String,
    /// The application's OCID.
    pub application_id: String,
    /// How long records are kept.
    pub retention_hours: i64,
}

/// The OCIDs of a log and its group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogIds {
    /// The log group.
    pub log_group_id: String,
    /// The log.
    pub log_id: String,
}

/// One line of a function's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When it was written.
    pub time: SystemTime,
    /// The function's name (the entry's `subject`).
    pub function: String,
    /// The line.
    pub message: String,
    /// The trace line's `id` and `key` (the indexed columns), when the writer of the line
    /// knows them; `None` has the store read them from the line ([`LogLine::new`]).
    pub ids: Option<TraceIds>,
}

impl LogLine {
    /// A line whose trace fields the store reads from `message` when it is a trace line.
    pub fn new(time: SystemTime, function: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            time,
            function: function.into(),
            message: message.into(),
            ids: None,
        }
    }

    /// The indexed `id` and `key`: those given, else the line's when it is a trace line.
    fn indexed(&self) -> (Option<String>, Option<String>) {
        match &self.ids {
            Some(t) => (Some(t.id.clone()), t.key.clone()),
            None => match TraceLine::parse(&self.message) {
                Some(t) => (Some(t.fields.id), t.fields.key),
                None => (None, None),
            },
        }
    }
}

/// A trace line's message id and stream key, as its `id` and `key` fields hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceIds {
    /// The `id` field.
    pub id: String,
    /// The `key` field, when the line has one.
    pub key: Option<String>,
}

/// Creates the log group and log of `spec` when absent (a log's retention follows `spec`).
pub(crate) async fn ensure_log(inner: &Arc<Inner>, spec: LogSpec) -> Result<LogIds, ApiError> {
    inner
        .logs
        .write(move |conn, _| {
            let now = rfc3339_ms(now_ms());
            let group = match logs::group_by_name(conn, &spec.compartment, &spec.group_name)? {
                Some(g) => g,
                None => {
                    let g = new_ocid("loggroup");
                    conn.execute(
                        "INSERT INTO log_groups(ocid, name, compartment, created) VALUES (?1,?2,?3,?4)",
                        [&g, &spec.group_name, &spec.compartment, &now],
                    )?;
                    g
                }
            };
            let log = match logs::log_by_name(conn, &group, &spec.log_name)? {
                Some(l) => {
                    conn.execute(
                        "UPDATE logs SET retention_hours = ?1 WHERE ocid = ?2",
                        rusqlite::params![spec.retention_hours, l],
                    )?;
                    l
                }
                None => {
                    let l = new_ocid("log");
                    conn.execute(
                        "INSERT INTO logs(ocid, name, log_group, compartment, source, application_id, \
                         retention_hours, created) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                        rusqlite::params![
                            l,
                            spec.log_name,
                            group,
                            spec.compartment,
                            spec.application_name,
                            spec.application_id,
                            spec.retention_hours,
                            now
                        ],
                    )?;
                    l
                }
            };
            Ok(LogIds {
                log_group_id: group,
                log_id: log,
            })
        })
        .await
}

/// Appends `lines` to the log `log_id` in one transaction; how many were written.
pub(crate) async fn append(
    inner: &Arc<Inner>,
    log_id: &str,
    lines: Vec<LogLine>,
) -> Result<usize, ApiError> {
    let log_id = log_id.to_owned();
    inner
        .logs
        .write(move |conn, _| {
            let log: i64 = conn
                .query_row("SELECT id FROM logs WHERE ocid = ?1", [&log_id], |r| r.get(0))
                .map_err(|_| ApiError::not_found(format!("log {log_id}")))?;
            let mut insert = conn.prepare_cached(
                "INSERT INTO log_records(log, ts, subject, msg_id, msg_key, message) VALUES (?1,?2,?3,?4,?5,?6)",
            )?;
            for line in &lines {
                let (id, key) = line.indexed();
                insert.execute(rusqlite::params![
                    log,
                    ms_since_epoch(line.time),
                    line.function,
                    id,
                    key,
                    line.message
                ])?;
            }
            Ok(lines.len())
        })
        .await
}

/// Deletes records older than their log's retention at `now`; how many were deleted.
pub(crate) async fn trim(inner: &Arc<Inner>, now: SystemTime) -> Result<u64, ApiError> {
    let now = ms_since_epoch(now);
    let logs = inner.logs.read(logs::all_logs).await?;
    let mut total = 0u64;
    for log in logs {
        let cutoff = now.saturating_sub(log.retention_hours.saturating_mul(3_600_000));
        let id = log.id;
        loop {
            let n = inner
                .logs
                .write(move |conn, _| {
                    Ok(conn.execute(
                        "DELETE FROM log_records WHERE id IN (SELECT id FROM log_records \
                         WHERE log = ?1 AND ts < ?2 LIMIT 10000)",
                        [id, cutoff],
                    )?)
                })
                .await?;
            total += n as u64;
            if n < 10_000 {
                break;
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn only_plain_trace_fields_use_the_indexes() {
        let q = query::parse(
            r#"search "c" | where data.message = '*"id":"m-1"*' and data.src = 'STDOUT'"#,
        )
        .unwrap();
        let f = prefilter(&q.conditions);
        assert_eq!(f.msg_id.as_deref(), Some("m-1"));
        assert_eq!(f.contains, [r#""id":"m-1""#]);
        let q = query::parse(r#"search "c" | where data.message = '*"key":"k"*'"#).unwrap();
        assert_eq!(prefilter(&q.conditions).msg_key.as_deref(), Some("k"));
        for text in [r#"*"id":"a\"b"*"#, r#"*"id":"a"b*"#, "*id*", r#""id":"a""#] {
            let q = query::parse(&format!(
                "search \"c\" | where data.message = '{}'",
                text.replace('\'', "''")
            ))
            .unwrap();
            let f = prefilter(&q.conditions);
            assert_eq!(f.msg_id, None, "{text}");
        }
    }

    #[test]
    fn conditions_read_the_entry_by_path() {
        let c = |q: &str| {
            query::parse(&format!("search \"c\" | where {q}"))
                .unwrap()
                .conditions
        };
        let content = json!({"type": "t", "data": {"message": "hello world", "n": 3}});
        assert!(holds(&c("type = 't'")[0], &content));
        assert!(holds(&c("data.message = '*world'")[0], &content));
        assert!(holds(&c("data.n = '3'")[0], &content));
        assert!(!holds(&c("data.message = 'hello'")[0], &content));
        assert!(!holds(&c("data.missing = '*'")[0], &content));
        assert!(!holds(&c("data = '*'")[0], &content));
    }

    #[test]
    fn pages_are_tokens_of_time_and_row() {
        assert_eq!(parse_page("5.7").unwrap(), (5, 7));
        assert!(parse_page("x").is_err());
    }
}
