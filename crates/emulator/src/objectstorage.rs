//! Object Storage: one namespace ([`NAMESPACE`]), buckets and objects with ETags.
//! Objects live in the database; PutObject bodies are capped by
//! [`EmulatorOptions::max_object_bytes`](crate::EmulatorOptions::max_object_bytes).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use datasync_core::oci::models;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use md5::{Digest as _, Md5};
use percent_encoding::percent_decode_str;
use rusqlite::{Connection, OptionalExtension as _};

use crate::clock::{http_date, now_ms, parse_time_ms, rfc3339_ms};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::{parse_json, parse_limit, Call};
use crate::response::{empty, ok, set_header as insert};
use crate::NAMESPACE;

/// The first path segment of Object Storage (`/n/{namespace}/...`).
pub(crate) const PREFIX: &str = "n";

/// Whether a request is PutObject, whose body has its own limit and is not signed.
pub(crate) fn is_put_object(method: &Method, path: &str) -> bool {
    method == Method::PUT && path.starts_with("/n/") && path.contains("/o/")
}

/// Routes an Object Storage call: GetNamespace; CreateBucket, GetBucket; ListObjects,
/// PutObject, GetObject, HeadObject, DeleteObject.
///
/// # Errors
/// The operation's [`ApiError`]; 404 for any other path or another namespace.
pub(crate) async fn route(inner: &Arc<Inner>, call: &Call) -> Result<Response, ApiError> {
    let segments = call.segments();
    match (&call.method, segments.as_slice()) {
        (&Method::GET, ["n"] | ["n", ""]) => ok(&NAMESPACE),
        (_, ["n", ns, ..]) if *ns != NAMESPACE => {
            Err(ApiError::not_found(format!("namespace {ns}")))
        }
        (&Method::POST, ["n", _, "b"] | ["n", _, "b", ""]) => {
            ok(&create_bucket(inner, &call.body).await?)
        }
        (&Method::GET, ["n", _, "b", bucket]) => ok(&get_bucket(inner, bucket).await?),
        (&Method::GET, ["n", _, "b", bucket, "o"]) => ok(&list(inner, bucket, &call.query).await?),
        (method, ["n", _, "b", bucket, "o", _, ..]) => {
            // The object name is everything after `/o/`, decoded (it may contain `/`).
            let raw = call.path.splitn(7, '/').nth(6).unwrap_or_default();
            let name = percent_decode_str(raw).decode_utf8_lossy().into_owned();
            match *method {
                Method::PUT => put(inner, bucket, &name, &call.headers, call.body.clone()).await,
                Method::GET => get(inner, bucket, &name, false, &call.headers).await,
                Method::HEAD => get(inner, bucket, &name, true, &call.headers).await,
                Method::DELETE => delete(inner, bucket, &name, &call.headers).await,
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        _ => Err(call.not_found()),
    }
}

/// GetObject and HeadObject calls per `(bucket, object)` since start, counted before the call
/// is answered.
#[derive(Debug, Default)]
pub(crate) struct ReadCounts(std::sync::Mutex<HashMap<(String, String), u64>>);

impl ReadCounts {
    fn add(&self, bucket: &str, name: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((bucket.to_owned(), name.to_owned())).or_insert(0) += 1;
    }

    pub(crate) fn get(&self, bucket: &str, name: &str) -> u64 {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(bucket.to_owned(), name.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

fn bucket_not_found(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "BucketNotFound", format!("either the bucket named '{name}' does not exist in the namespace '{NAMESPACE}' or you are not authorized to access it"))
}

fn object_not_found(bucket: &str, name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ObjectNotFound",
        format!("the object '{name}' was not found in the bucket '{bucket}'"),
    )
}

fn load_bucket(conn: &Connection, name: &str) -> Result<models::Bucket, ApiError> {
    conn.query_row(
        "SELECT name, compartment, created, etag FROM buckets WHERE name=?1",
        [name],
        |r| {
            Ok(models::Bucket {
                namespace: NAMESPACE.into(),
                name: r.get(0)?,
                compartment_id: r.get(1)?,
                time_created: r.get(2)?,
                etag: r.get(3)?,
            })
        },
    )
    .optional()?
    .ok_or_else(|| bucket_not_found(name))
}

/// CreateBucket.
pub async fn create_bucket(inner: &Arc<Inner>, body: &[u8]) -> Result<models::Bucket, ApiError> {
    let details: models::CreateBucketDetails = parse_json(body)?;
    let valid = !details.name.is_empty()
        && details.name.len() <= 256
        && details
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid {
        return Err(ApiError::invalid(
            "bucket names are 1 to 256 letters, digits, '-', '_' or '.'",
        ));
    }
    inner
        .store
        .write(move |conn, _| {
            if load_bucket(conn, &details.name).is_ok() {
                return Err(ApiError::conflict(
                    "BucketAlreadyExists",
                    format!("the bucket '{}' already exists", details.name),
                ));
            }
            conn.execute(
                "INSERT INTO buckets(name, compartment, created, etag) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    details.name,
                    details.compartment_id,
                    rfc3339_ms(now_ms()),
                    uuid::Uuid::new_v4().to_string()
                ],
            )?;
            load_bucket(conn, &details.name)
        })
        .await
}

/// GetBucket.
pub async fn get_bucket(inner: &Arc<Inner>, name: &str) -> Result<models::Bucket, ApiError> {
    let name = name.to_owned();
    inner.store.read(move |conn| load_bucket(conn, &name)).await
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn check_preconditions(
    existing: Option<&str>,
    if_match: Option<&str>,
    if_none_match: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(want) = if_match {
        if existing != Some(want.trim_matches('"')) {
            return Err(ApiError::precondition(
                "IfMatchFailed",
                "the If-Match header does not match the object's ETag",
            ));
        }
    }
    if if_none_match == Some("*") && existing.is_some() {
        return Err(ApiError::precondition(
            "IfNoneMatchFailed",
            "the object exists and If-None-Match is *",
        ));
    }
    Ok(())
}

/// PutObject.
pub async fn put(
    inner: &Arc<Inner>,
    bucket: &str,
    name: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if name.is_empty() || name.len() > 1024 {
        return Err(ApiError::invalid("object names are 1 to 1024 bytes"));
    }
    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
    if let Some(given) = header(headers, "content-md5") {
        if given != md5 {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "UnmatchedContentMD5",
                "the Content-MD5 header does not match the body",
            ));
        }
    }
    let meta: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("opc-meta-"))
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_owned(),
                serde_json::Value::String(v.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    let content_type = header(headers, "content-type");
    let (if_match, if_none_match) = (
        header(headers, "if-match"),
        header(headers, "if-none-match"),
    );
    let etag = uuid::Uuid::new_v4().to_string();
    let created = now_ms();
    let (bucket, name, md5_reply, etag_reply) = (
        bucket.to_owned(),
        name.to_owned(),
        md5.clone(),
        etag.clone(),
    );
    inner
        .store
        .write(move |conn, _| {
            load_bucket(conn, &bucket)?;
            let existing: Option<String> = conn
                .query_row("SELECT etag FROM objects WHERE bucket=?1 AND name=?2", [&bucket, &name], |r| r.get(0))
                .optional()?;
            check_preconditions(existing.as_deref(), if_match.as_deref(), if_none_match.as_deref())?;
            conn.execute(
                "INSERT OR REPLACE INTO objects(bucket, name, data, etag, md5, content_type, created, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![bucket, name, body.as_ref(), etag, md5, content_type, rfc3339_ms(created), serde_json::Value::Object(meta).to_string()],
            )?;
            Ok(())
        })
        .await?;
    let mut response = empty(StatusCode::OK);
    let h = response.headers_mut();
    insert(h, "etag", &etag_reply);
    insert(h, "opc-content-md5", &md5_reply);
    insert(h, "last-modified", &http_date(created));
    Ok(response)
}

/// GetObject and HeadObject. `if-match: <etag>` answers 412 `IfMatchFailed` unless it is the
/// object's; `if-none-match: <etag>` answers 304 with no body when it is.
pub async fn get(
    inner: &Arc<Inner>,
    bucket: &str,
    name: &str,
    head_only: bool,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    inner.object_reads.add(bucket, name);
    let (bucket, name) = (bucket.to_owned(), name.to_owned());
    type Row = (
        Vec<u8>,
        i64,
        String,
        String,
        Option<String>,
        String,
        Option<String>,
    );
    let (data, size, etag, md5, content_type, created, meta): Row = inner
        .store
        .read(move |conn| {
            load_bucket(conn, &bucket)?;
            let column = if head_only { "zeroblob(0)" } else { "data" };
            conn.query_row(
                &format!("SELECT {column}, length(data), etag, md5, content_type, created, meta FROM objects WHERE bucket=?1 AND name=?2"),
                [&bucket, &name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .optional()?
            .ok_or_else(|| object_not_found(&bucket, &name))
        })
        .await?;
    if let Some(want) = header(headers, "if-match") {
        check_preconditions(Some(&etag), Some(&want), None)?;
    }
    if header(headers, "if-none-match").is_some_and(|v| v.trim_matches('"') == etag) {
        let mut response = empty(StatusCode::NOT_MODIFIED);
        insert(response.headers_mut(), "etag", &etag);
        return Ok(response);
    }
    let mut response = Response::new(if head_only {
        Body::empty()
    } else {
        Body::from(data)
    });
    let h = response.headers_mut();
    insert(h, "content-length", &size.to_string());
    insert(
        h,
        "content-type",
        content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
    );
    insert(h, "etag", &etag);
    insert(h, "opc-content-md5", &md5);
    insert(
        h,
        "last-modified",
        &http_date(parse_time_ms(&created).unwrap_or(0)),
    );
    if let Some(Ok(serde_json::Value::Object(meta))) = meta.map(|m| serde_json::from_str(&m)) {
        for (k, v) in meta {
            if let (Ok(name), Some(Ok(value))) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                h.insert(name, value);
            }
        }
    }
    Ok(response)
}

/// DeleteObject.
pub async fn delete(
    inner: &Arc<Inner>,
    bucket: &str,
    name: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (bucket, name) = (bucket.to_owned(), name.to_owned());
    let if_match = header(headers, "if-match");
    inner
        .store
        .write(move |conn, _| {
            load_bucket(conn, &bucket)?;
            let existing: Option<String> = conn
                .query_row(
                    "SELECT etag FROM objects WHERE bucket=?1 AND name=?2",
                    [&bucket, &name],
                    |r| r.get(0),
                )
                .optional()?;
            if existing.is_none() {
                return Err(object_not_found(&bucket, &name));
            }
            check_preconditions(existing.as_deref(), if_match.as_deref(), None)?;
            conn.execute(
                "DELETE FROM objects WHERE bucket=?1 AND name=?2",
                [&bucket, &name],
            )?;
            Ok(())
        })
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// ListObjects: by `prefix`, from `start` (inclusive), at most `limit` (default and max 1000).
/// Each summary holds the name, plus what `fields` asks for of `size`, `etag` and
/// `timeCreated`, as OCI answers. Only what is asked for is read: the etag and time are stored
/// after the object's content, so reading them walks the content's overflow pages.
pub async fn list(
    inner: &Arc<Inner>,
    bucket: &str,
    query: &HashMap<String, String>,
) -> Result<models::ListObjects, ApiError> {
    let limit = parse_limit(query.get("limit").map(String::as_str), 1000, 1000)?;
    let prefix = query.get("prefix").cloned().unwrap_or_default();
    let start = query.get("start").cloned().unwrap_or_default();
    let bucket = bucket.to_owned();
    let fields = query.get("fields").map(String::as_str).unwrap_or("");
    let wants = |field: &str| fields.split(',').any(|f| f.trim() == field);
    let columns = format!(
        "name, {}, {}, {}",
        if wants("size") {
            "length(data)"
        } else {
            "NULL"
        },
        if wants("etag") { "etag" } else { "NULL" },
        if wants("timeCreated") {
            "created"
        } else {
            "NULL"
        },
    );
    inner
        .store
        .read(move |conn| {
            load_bucket(conn, &bucket)?;
            let mut stmt = conn.prepare(&format!(
                "SELECT {columns} FROM objects WHERE bucket=?1 AND name >= ?2
                 AND substr(name, 1, length(?3)) = ?3 ORDER BY name LIMIT ?4"
            ))?;
            let mut objects: Vec<models::ObjectSummary> = stmt
                .query_map(rusqlite::params![bucket, start, prefix, limit + 1], |r| {
                    Ok(models::ObjectSummary {
                        name: r.get(0)?,
                        size: r.get(1)?,
                        etag: r.get(2)?,
                        time_created: r.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let next_start_with = if objects.len() as i64 > limit {
                objects.pop().map(|o| o.name)
            } else {
                None
            };
            Ok(models::ListObjects {
                objects,
                next_start_with,
            })
        })
        .await
}
