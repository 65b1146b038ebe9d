//! Part of stage 2: the routes bucket and its one object, as `terraform/routes.tf` creates them.
//! The configured routes' JSON form is written to `<prefix>-routes/routes.json` at every start
//! (an empty route set when none are configured), so the functions read their routes from
//! Object Storage through the same code as on OCI (function configuration `routes_object`).

use datasync_core::oci::signer::BodySigning;
use http::{header, HeaderMap, HeaderValue, Method};

use super::resources::ensure_bucket;
use crate::client::SignedClient;
use crate::emulator::NAMESPACE;
use crate::stack::error::{setup, StackError};
use crate::stack::StackSettings;

/// The routes object's name in its bucket.
pub const ROUTES_OBJECT: &str = "routes.json";

/// The routes bucket of a stack whose resources are named with `prefix`.
pub fn routes_bucket(prefix: &str) -> String {
    format!("{prefix}-routes")
}

/// Creates the routes bucket when absent and writes the configured routes into its object;
/// the object as the functions' configuration names it, `bucket/object`.
pub(crate) async fn put(signed: &SignedClient, s: &StackSettings) -> Result<String, StackError> {
    let bucket = routes_bucket(&s.name_prefix);
    ensure_bucket(signed, &bucket).await?;
    let what = format!("the routes object {bucket}/{ROUTES_OBJECT}");
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let answer = signed
        .send(
            Method::PUT,
            &format!("/n/{NAMESPACE}/b/{bucket}/o/{ROUTES_OBJECT}"),
            s.routes.json.clone(),
            BodySigning::Exclude,
            headers,
        )
        .await
        .map_err(|e| setup(&what, &e))?;
    if !answer.status.is_success() {
        return Err(setup(&what, &String::from_utf8_lossy(&answer.body)));
    }
    if !s.routes.names.is_empty() {
        tracing::info!(routes = ?s.routes.names, "routes stored for the functions");
    }
    Ok(format!("{bucket}/{ROUTES_OBJECT}"))
}
