//! Object Storage: GetNamespace, PutObject, GetObject and ListObjects
//! (contracts/oci-platform.md section G), and the conditional forms of PutObject and GetObject
//! (`if-match`, `if-none-match`; contracts/oci-round2.md section D).
//!
//! Object names are percent-encoded as one path segment (`a/b.json` is sent as `a%2Fb.json`).
//! PutObject is signed without its body, as the SDKs do, and always carries `content-length`.

use bytes::Bytes;
use http::{HeaderValue, Method};
use url::Url;

use super::client::{OciClient, OciError, OciRequest, OciResponse};
use super::endpoints::{Endpoints, Service};
use super::models::ListObjects;
use super::service_url;

/// The fields ListObjects is asked to include (by default it returns names only).
const LIST_FIELDS: &str = "name,size,etag,timeCreated";

/// What the service said about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutObjectResult {
    /// The `etag` header.
    pub etag: Option<String>,
    /// The `opc-content-md5` header (base64 MD5 of the body).
    pub content_md5: Option<String>,
    /// The `version-id` header, in a versioned bucket.
    pub version_id: Option<String>,
}

/// An object's content and the headers that describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectContent {
    /// The bytes.
    pub body: Bytes,
    /// The `content-type` header.
    pub content_type: Option<String>,
    /// The `etag` header.
    pub etag: Option<String>,
}

/// One object: its namespace, bucket and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRef<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The bucket.
    pub bucket: &'a str,
    /// The object name.
    pub name: &'a str,
}

/// The condition of a conditional PutObject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition<'a> {
    /// `if-none-match: *`: only when no object has the name.
    Absent,
    /// `if-match: <etag>`: only when the object is at this version.
    Matches(&'a str),
}

impl Precondition<'_> {
    fn header(self) -> Result<(http::HeaderName, HeaderValue), OciError> {
        match self {
            Precondition::Absent => {
                Ok((http::header::IF_NONE_MATCH, HeaderValue::from_static("*")))
            }
            Precondition::Matches(etag) => HeaderValue::from_str(etag)
                .map(|v| (http::header::IF_MATCH, v))
                .map_err(|_| OciError::Limit {
                    operation: "PutObject",
                    detail: "the ETag is not a valid header value".into(),
                }),
        }
    }
}

/// The Object Storage client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ObjectStorageClient {
    client: OciClient,
    base: Url,
}

impl ObjectStorageClient {
    /// A client for the Object Storage endpoint of `endpoints`.
    ///
    /// # Errors
    /// [`OciError::Endpoint`] when the endpoint is not configured.
    pub fn new(client: OciClient, endpoints: &Endpoints) -> Result<Self, OciError> {
        Ok(Self {
            client,
            base: endpoints.require(Service::ObjectStorage)?,
        })
    }

    /// GetNamespace: `GET /n/`, the tenancy's namespace (the body is a JSON string).
    ///
    /// # Errors
    /// As [`OciClient::send`], and [`OciError::Decode`] for an unexpected body.
    pub async fn get_namespace(&self) -> Result<String, OciError> {
        // `/n/`: the trailing empty segment keeps the slash.
        let url = service_url(&self.base, &["n", ""], &[])?;
        self.client
            .send_json(&OciRequest::new("GetNamespace", Method::GET, url))
            .await
    }

    /// PutObject: `PUT /n/{namespace}/b/{bucket}/o/{objectName}` with `content-length` and
    /// `content-type` (`application/octet-stream` unless given); the body is not signed.
    ///
    /// # Errors
    /// As [`OciClient::send`]; [`OciError::Limit`] when `content_type` is not a valid header
    /// value.
    pub async fn put_object(
        &self,
        namespace: &str,
        bucket: &str,
        object_name: &str,
        body: Bytes,
        content_type: Option<&str>,
    ) -> Result<PutObjectResult, OciError> {
        let url = self.object_url(namespace, bucket, object_name)?;
        let request = OciRequest::new("PutObject", Method::PUT, url);
        let content_type = HeaderValue::from_str(
            content_type.unwrap_or("application/octet-stream"),
        )
        .map_err(|_| OciError::Limit {
            operation: "PutObject",
            detail: "content type is not a valid header value".into(),
        })?;
        self.send_put(request, body, content_type).await
    }

    /// PutObject on a condition: `if-none-match: *` ([`Precondition::Absent`], create only) or
    /// `if-match: <etag>` ([`Precondition::Matches`], replace only that version). A failed
    /// condition is a 412 [`OciError::Service`] (`IfNoneMatchFailed`, `IfMatchFailed`), never
    /// retried by the client.
    ///
    /// # Errors
    /// As [`put_object`](Self::put_object).
    pub async fn put_object_if(
        &self,
        target: ObjectRef<'_>,
        precondition: Precondition<'_>,
        body: Bytes,
        content_type: &'static str,
    ) -> Result<PutObjectResult, OciError> {
        let url = self.object_url(target.namespace, target.bucket, target.name)?;
        let mut request = OciRequest::new("PutObject", Method::PUT, url);
        let (name, value) = precondition.header()?;
        request.headers.insert(name, value);
        self.send_put(request, body, HeaderValue::from_static(content_type))
            .await
    }

    /// Sends a PutObject `request` with `body` (unsigned, as OCI signs PutObject) and reads the
    /// stored version from the answer's headers.
    async fn send_put(
        &self,
        mut request: OciRequest,
        body: Bytes,
        content_type: HeaderValue,
    ) -> Result<PutObjectResult, OciError> {
        request
            .headers
            .insert(http::header::CONTENT_TYPE, content_type);
        request.headers.insert(
            http::header::CONTENT_LENGTH,
            HeaderValue::from(body.len() as u64),
        );
        request.body = body;
        let response = self
            .client
            .send(&request.exclude_body_from_signature())
            .await?;
        Ok(PutObjectResult {
            etag: header(&response, "etag"),
            content_md5: header(&response, "opc-content-md5"),
            version_id: header(&response, "version-id"),
        })
    }

    /// GetObject unless it still has ETag `known` (`if-none-match: <etag>`): `None` when the
    /// service answers 304 (unchanged, no body), else the object.
    ///
    /// # Errors
    /// As [`get_object`](Self::get_object) (a missing object is a 404).
    pub async fn get_object_if_changed(
        &self,
        target: ObjectRef<'_>,
        known: Option<&str>,
    ) -> Result<Option<ObjectContent>, OciError> {
        let url = self.object_url(target.namespace, target.bucket, target.name)?;
        let mut request = OciRequest::new("GetObject", Method::GET, url);
        if let Some(etag) = known {
            let value = HeaderValue::from_str(etag).map_err(|_| OciError::Limit {
                operation: "GetObject",
                detail: "the ETag is not a valid header value".into(),
            })?;
            request.headers.insert(http::header::IF_NONE_MATCH, value);
        }
        match self.client.send(&request).await {
            Ok(response) => Ok(Some(ObjectContent {
                content_type: header(&response, "content-type"),
                etag: header(&response, "etag"),
                body: response.body,
            })),
            Err(e) if e.status() == Some(304) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GetObject: `GET /n/{namespace}/b/{bucket}/o/{objectName}`.
    ///
    /// # Errors
    /// As [`OciClient::send`] (a missing object is a 404 [`OciError::Service`]).
    pub async fn get_object(
        &self,
        namespace: &str,
        bucket: &str,
        object_name: &str,
    ) -> Result<ObjectContent, OciError> {
        let url = self.object_url(namespace, bucket, object_name)?;
        let response = self
            .client
            .send(&OciRequest::new("GetObject", Method::GET, url))
            .await?;
        Ok(ObjectContent {
            content_type: header(&response, "content-type"),
            etag: header(&response, "etag"),
            body: response.body,
        })
    }

    /// ListObjects: `GET /n/{namespace}/b/{bucket}/o?prefix=&start=&limit=&fields=`, one page;
    /// pass the answer's `next_start_with` as `start` for the next one.
    ///
    /// # Errors
    /// As [`OciClient::send`], and [`OciError::Decode`] for an unexpected body.
    pub async fn list_objects(
        &self,
        namespace: &str,
        bucket: &str,
        prefix: Option<&str>,
        start: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ListObjects, OciError> {
        let limit = limit.map(|l| l.to_string());
        let url = service_url(
            &self.base,
            &["n", namespace, "b", bucket, "o"],
            &[
                ("prefix", prefix),
                ("start", start),
                ("limit", limit.as_deref()),
                ("fields", Some(LIST_FIELDS)),
            ],
        )?;
        self.client
            .send_json(&OciRequest::new("ListObjects", Method::GET, url))
            .await
    }

    fn object_url(&self, namespace: &str, bucket: &str, object: &str) -> Result<Url, OciError> {
        service_url(&self.base, &["n", namespace, "b", bucket, "o", object], &[])
    }
}

fn header(response: &OciResponse, name: &str) -> Option<String> {
    response.header(name).map(str::to_owned)
}
