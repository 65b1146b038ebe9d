//! Secrets (20190301: secret bundles) and Vault secret management (20180608). Contents are
//! sealed with AES-256-GCM under the data directory's key before they reach the database.

use std::collections::HashMap;
use std::sync::Arc;

use axum::response::Response;
use base64::Engine as _;
use datasync_core::oci::models;
use http::{Method, StatusCode};
use rusqlite::{Connection, OptionalExtension as _};

use crate::clock::{now_ms, parse_time_ms, rfc3339_ms};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::{new_ocid, parse_json, Call};
use crate::response::{empty, ok};
use crate::secret_versions;

/// The first path segment of Secrets (secret bundles, retrieval).
pub(crate) const SECRETS_API: &str = "20190301";
/// The first path segment of Vault (secret management).
pub(crate) const VAULT_API: &str = "20180608";

/// A secret metadata key the emulator reads, for tests of what OCI does while a policy is
/// missing or still propagating: until this RFC 3339 time, reading the secret's bundles answers
/// 404 `NotAuthorizedOrNotFound`, as OCI does then.
pub const UNREADABLE_UNTIL: &str = "datasync-emulator-unreadable-until";

/// The most a secret's content may hold, decoded (OCI's limit is 25 KB).
pub const MAX_SECRET_BYTES: usize = 25 * 1024;

/// Routes a Secrets or Vault call: GetSecretBundle(ByName); CreateSecret, ListSecrets,
/// GetSecret, UpdateSecret, ScheduleSecretDeletion, ScheduleSecretVersionDeletion.
///
/// # Errors
/// The operation's [`ApiError`]; 404 for any other path.
pub(crate) async fn route(inner: &Arc<Inner>, call: &Call) -> Result<Response, ApiError> {
    let (body, query) = (&call.body, &call.query);
    match (&call.method, call.segments().as_slice()) {
        (&Method::GET, [SECRETS_API, "secretbundles", id]) => {
            ok(&get_bundle(inner, Some(id), query).await?)
        }
        (&Method::POST, [SECRETS_API, "secretbundles", "actions", "getByName"]) => {
            ok(&get_bundle(inner, None, query).await?)
        }
        (&Method::POST, [VAULT_API, "secrets"]) => ok(&create(inner, body).await?),
        (&Method::GET, [VAULT_API, "secrets"]) => ok(&list(inner, query).await?),
        (&Method::GET, [VAULT_API, "secrets", id]) => ok(&get(inner, id).await?),
        (&Method::PUT, [VAULT_API, "secrets", id]) => ok(&update(inner, id, body).await?),
        (&Method::POST, [VAULT_API, "secrets", id, "actions", "scheduleDeletion"]) => {
            schedule_deletion(inner, id, body).await?;
            Ok(empty(StatusCode::OK))
        }
        (
            &Method::POST,
            [VAULT_API, "secrets", id, "version", n, "actions", "scheduleDeletion"],
        ) => {
            secret_versions::schedule_deletion(inner, id, n, body, check_active).await?;
            Ok(empty(StatusCode::OK))
        }
        _ => Err(call.not_found()),
    }
}

const SECRET_COLUMNS: &str =
    "ocid, name, vault, compartment, key_id, description, state, created, deletion";

/// How long a secret stays `CREATING` after CreateSecret, or `UPDATING` after a new version,
/// in milliseconds ([`EmulatorOptions::secret_transition`](crate::EmulatorOptions)).
fn transition_ms(inner: &Inner) -> i64 {
    i64::try_from(inner.options.secret_transition.as_millis()).unwrap_or(i64::MAX)
}

/// The state OCI would show: a stored `ACTIVE` is `CREATING` (one version) or `UPDATING` (more)
/// until `window_ms` after its newest version was written.
fn effective_state(
    conn: &Connection,
    id: &str,
    stored: String,
    window_ms: i64,
) -> rusqlite::Result<String> {
    if stored != "ACTIVE" || window_ms <= 0 {
        return Ok(stored);
    }
    let (count, newest): (i64, Option<String>) = conn
        .prepare_cached("SELECT COUNT(*), MAX(created) FROM secret_versions WHERE secret=?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let newest = newest.and_then(|t| parse_time_ms(&t).ok()).unwrap_or(0);
    if now_ms() >= newest.saturating_add(window_ms) {
        return Ok(stored);
    }
    Ok(if count <= 1 { "CREATING" } else { "UPDATING" }.to_owned())
}

fn secret_from_row(
    conn: &Connection,
    r: &rusqlite::Row<'_>,
    window_ms: i64,
) -> rusqlite::Result<models::Secret> {
    let id: String = r.get(0)?;
    let state = effective_state(conn, &id, r.get(6)?, window_ms)?;
    let current: Option<i64> = conn
        .prepare_cached(
            "SELECT version FROM secret_versions WHERE secret=?1 AND stages LIKE '%\"CURRENT\"%'",
        )?
        .query_row([&id], |v| v.get(0))
        .optional()?;
    Ok(models::Secret {
        id,
        secret_name: r.get(1)?,
        vault_id: r.get(2)?,
        compartment_id: r.get(3)?,
        key_id: r.get(4)?,
        description: r.get(5)?,
        lifecycle_state: state,
        time_created: r.get(7)?,
        time_of_deletion: r.get(8)?,
        current_version_number: current,
    })
}

fn load(conn: &Connection, id: &str, window_ms: i64) -> Result<models::Secret, ApiError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SECRET_COLUMNS} FROM secrets WHERE ocid=?1"
    ))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => Ok(secret_from_row(conn, r, window_ms)?),
        None => Err(ApiError::not_found(format!("secret {id}"))),
    }
}

/// [`load_active`] as a check for [`secret_versions`]: the secret is not pending deletion.
fn check_active(conn: &Connection, id: &str) -> Result<(), ApiError> {
    load_active(conn, id, 0).map(|_| ())
}

/// The secret `id`, which must be ACTIVE to be changed (409 `IncorrectState` otherwise, also
/// while it is still `CREATING` or `UPDATING`).
fn load_active(conn: &Connection, id: &str, window_ms: i64) -> Result<models::Secret, ApiError> {
    let secret = load(conn, id, window_ms)?;
    if secret.lifecycle_state != "ACTIVE" {
        return Err(ApiError::conflict(
            "IncorrectState",
            format!("the secret is {}", secret.lifecycle_state),
        ));
    }
    Ok(secret)
}

fn decode_content(content: &models::SecretContent) -> Result<Vec<u8>, ApiError> {
    if content.content_type != "BASE64" {
        return Err(ApiError::invalid(
            "secretContent.contentType must be BASE64",
        ));
    }
    let plain = base64::engine::general_purpose::STANDARD
        .decode(&content.content)
        .map_err(|_| ApiError::invalid("secretContent.content is not valid base64"))?;
    if plain.len() > MAX_SECRET_BYTES {
        return Err(ApiError::invalid(format!(
            "a secret may hold at most {MAX_SECRET_BYTES} bytes"
        )));
    }
    Ok(plain)
}

fn stages_of(conn: &Connection, id: &str) -> Result<Vec<(i64, Vec<String>)>, ApiError> {
    Ok(conn
        .prepare_cached(
            "SELECT version, stages FROM secret_versions WHERE secret=?1 ORDER BY version",
        )?
        .query_map([id], |r| {
            let text: String = r.get(1)?;
            Ok((r.get(0)?, serde_json::from_str(&text).unwrap_or_default()))
        })?
        .collect::<Result<_, _>>()?)
}

/// Adds a version with `plain` sealed, moving the stages as Vault does: a CURRENT version
/// demotes the old CURRENT to PREVIOUS (and the old PREVIOUS to DEPRECATED); LATEST always
/// moves to the new version; a PENDING version leaves CURRENT alone.
fn add_version(
    conn: &Connection,
    id: &str,
    sealed: Vec<u8>,
    name: Option<String>,
    pending: bool,
) -> Result<(), ApiError> {
    secret_versions::check_room(conn, id)?;
    let versions = stages_of(conn, id)?;
    let next = versions.last().map_or(1, |(v, _)| v + 1);
    let mut update =
        conn.prepare_cached("UPDATE secret_versions SET stages=?3 WHERE secret=?1 AND version=?2")?;
    for (version, mut stages) in versions {
        let before = stages.clone();
        stages.retain(|s| s != "LATEST" && (!pending || s != "PENDING"));
        if !pending {
            if stages.iter().any(|s| s == "PREVIOUS") {
                stages.retain(|s| s != "PREVIOUS");
                stages.push("DEPRECATED".into());
            }
            if stages.iter().any(|s| s == "CURRENT") {
                stages.retain(|s| s != "CURRENT");
                stages.push("PREVIOUS".into());
            }
        }
        if stages != before {
            update.execute(rusqlite::params![
                id,
                version,
                serde_json::to_string(&stages).unwrap_or_default()
            ])?;
        }
    }
    let stages = if pending {
        r#"["PENDING","LATEST"]"#
    } else {
        r#"["CURRENT","LATEST"]"#
    };
    conn.execute(
        "INSERT INTO secret_versions(secret, version, name, stages, created, sealed) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![id, next, name, stages, rfc3339_ms(now_ms()), sealed],
    )?;
    Ok(())
}

/// CreateSecret.
pub async fn create(inner: &Arc<Inner>, body: &[u8]) -> Result<models::Secret, ApiError> {
    let details: models::CreateSecretDetails = parse_json(body)?;
    if details.secret_name.is_empty() || details.secret_name.len() > 255 {
        return Err(ApiError::invalid("secretName must be 1 to 255 characters"));
    }
    let sealed = inner.key.seal(&decode_content(&details.secret_content)?);
    let id = new_ocid("vaultsecret");
    let window = transition_ms(inner);
    inner
        .store
        .write(move |conn, _| {
            let taken = conn
                .prepare_cached("SELECT 1 FROM secrets WHERE vault=?1 AND name=?2")?
                .query_row([&details.vault_id, &details.secret_name], |_| Ok(()))
                .optional()?
                .is_some();
            if taken {
                return Err(ApiError::conflict(
                    "NotAuthorizedOrResourceAlreadyExists",
                    format!("a secret named {} already exists in the vault", details.secret_name),
                ));
            }
            conn.execute(
                "INSERT INTO secrets(ocid, name, vault, compartment, key_id, description, metadata, state, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'ACTIVE', ?8)",
                rusqlite::params![
                    id,
                    details.secret_name,
                    details.vault_id,
                    details.compartment_id,
                    details.key_id,
                    details.description,
                    details.metadata.map(|m| serde_json::Value::Object(m).to_string()),
                    rfc3339_ms(now_ms())
                ],
            )?;
            add_version(conn, &id, sealed, details.secret_content.name, false)?;
            load(conn, &id, window)
        })
        .await
}

/// UpdateSecret: new content makes a new version.
pub async fn update(inner: &Arc<Inner>, id: &str, body: &[u8]) -> Result<models::Secret, ApiError> {
    let details: models::UpdateSecretDetails = parse_json(body)?;
    let content = match &details.secret_content {
        Some(c) => {
            let pending = match c.stage.as_deref() {
                None | Some("CURRENT") => false,
                Some("PENDING") => true,
                Some(other) => {
                    return Err(ApiError::invalid(format!(
                        "stage {other} is not CURRENT or PENDING"
                    )))
                }
            };
            Some((inner.key.seal(&decode_content(c)?), c.name.clone(), pending))
        }
        None => None,
    };
    let id = id.to_owned();
    let window = transition_ms(inner);
    inner
        .store
        .write(move |conn, _| {
            load_active(conn, &id, window)?;
            if let Some(description) = details.description {
                conn.execute(
                    "UPDATE secrets SET description=?2 WHERE ocid=?1",
                    [&id, &description],
                )?;
            }
            if let Some(metadata) = details.metadata {
                conn.execute(
                    "UPDATE secrets SET metadata=?2 WHERE ocid=?1",
                    [&id, &serde_json::Value::Object(metadata).to_string()],
                )?;
            }
            if let Some((sealed, name, pending)) = content {
                add_version(conn, &id, sealed, name, pending)?;
            }
            load(conn, &id, window)
        })
        .await
}

/// GetSecret.
pub async fn get(inner: &Arc<Inner>, id: &str) -> Result<models::Secret, ApiError> {
    let id = id.to_owned();
    let window = transition_ms(inner);
    inner.store.read(move |conn| load(conn, &id, window)).await
}

/// ListSecrets (by compartment; optionally by name, vault and lifecycle state).
pub async fn list(
    inner: &Arc<Inner>,
    query: &HashMap<String, String>,
) -> Result<Vec<models::Secret>, ApiError> {
    let compartment = query
        .get("compartmentId")
        .cloned()
        .ok_or_else(|| ApiError::missing("compartmentId"))?;
    let name = query.get("name").cloned();
    let vault = query.get("vaultId").cloned();
    let state = query.get("lifecycleState").cloned();
    let window = transition_ms(inner);
    inner
        .store
        .read(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {SECRET_COLUMNS} FROM secrets WHERE compartment=?1 AND (?2 IS NULL OR name=?2)
                 AND (?3 IS NULL OR vault=?3) AND (?4 IS NULL OR state=?4) ORDER BY created, ocid"
            ))?;
            let mut rows = stmt.query(rusqlite::params![compartment, name, vault, state])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(secret_from_row(conn, r, window)?);
            }
            Ok(out)
        })
        .await
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleDeletion {
    #[serde(default)]
    time_of_deletion: Option<String>,
}

/// ScheduleSecretDeletion: the secret becomes PENDING_DELETION; its bundles are no longer served.
pub async fn schedule_deletion(inner: &Arc<Inner>, id: &str, body: &[u8]) -> Result<(), ApiError> {
    let details: ScheduleDeletion = if body.is_empty() {
        ScheduleDeletion {
            time_of_deletion: None,
        }
    } else {
        parse_json(body)?
    };
    let when = match details.time_of_deletion {
        Some(t) => rfc3339_ms(parse_time_ms(&t)?),
        None => rfc3339_ms(now_ms() + 30 * 24 * 3_600_000),
    };
    let id = id.to_owned();
    let window = transition_ms(inner);
    inner
        .store
        .write(move |conn, _| {
            load_active(conn, &id, window)?;
            conn.execute(
                "UPDATE secrets SET state='PENDING_DELETION', deletion=?2 WHERE ocid=?1",
                [&id, &when],
            )?;
            Ok(())
        })
        .await
}

/// Whether a secret's metadata holds [`UNREADABLE_UNTIL`] with a time still to come.
fn unreadable_now(metadata: Option<&str>) -> bool {
    let Some(text) = metadata else { return false };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str(text) else {
        return false;
    };
    map.get(UNREADABLE_UNTIL)
        .and_then(serde_json::Value::as_str)
        .and_then(|t| parse_time_ms(t).ok())
        .is_some_and(|until| now_ms() < until)
}

/// GetSecretBundle (`id` given) and GetSecretBundleByName (`secretName` and `vaultId` in the
/// query), selecting the version by `versionNumber`, `secretVersionName` or `stage` (default
/// CURRENT).
pub async fn get_bundle(
    inner: &Arc<Inner>,
    id: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<models::SecretBundle, ApiError> {
    let by_name = match id {
        Some(_) => None,
        None => Some((
            query
                .get("secretName")
                .cloned()
                .ok_or_else(|| ApiError::missing("secretName"))?,
            query
                .get("vaultId")
                .cloned()
                .ok_or_else(|| ApiError::missing("vaultId"))?,
        )),
    };
    let version = match query.get("versionNumber") {
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| ApiError::invalid("versionNumber must be an integer"))?,
        ),
        None => None,
    };
    let version_name = query.get("secretVersionName").cloned();
    let stage = query
        .get("stage")
        .cloned()
        .unwrap_or_else(|| "CURRENT".into());
    if !["CURRENT", "PENDING", "LATEST", "PREVIOUS", "DEPRECATED"].contains(&stage.as_str()) {
        return Err(ApiError::invalid(format!("stage {stage} is not valid")));
    }
    let id = id.map(str::to_owned);
    let (secret_id, number, name, stages, created, sealed) = inner
        .store
        .read(move |conn| {
            let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
            let (secret_id, state, metadata): (String, String, Option<String>) = match (&id, &by_name) {
                (Some(id), _) => conn
                    .query_row("SELECT ocid, state, metadata FROM secrets WHERE ocid=?1", [id], row)
                    .optional()?
                    .ok_or_else(|| ApiError::not_found(format!("secret {id}")))?,
                (None, Some((name, vault))) => conn
                    .query_row("SELECT ocid, state, metadata FROM secrets WHERE name=?1 AND vault=?2", [name, vault], row)
                    .optional()?
                    .ok_or_else(|| ApiError::not_found(format!("secret {name}")))?,
                (None, None) => return Err(ApiError::missing("secretName")),
            };
            if state != "ACTIVE" {
                return Err(ApiError::not_found(format!("secret {secret_id} (it is {state})")));
            }
            if unreadable_now(metadata.as_deref()) {
                return Err(ApiError::not_found(format!("secret {secret_id}")));
            }
            let mut stmt = conn.prepare_cached("SELECT version, name, stages, created, sealed FROM secret_versions WHERE secret=?1 ORDER BY version DESC")?;
            let rows = stmt.query_map([&secret_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, Vec<u8>>(4)?))
            })?;
            for row in rows {
                let (number, name, stages, created, sealed) = row?;
                if secret_versions::is_pending(conn, &secret_id, number)? {
                    continue;
                }
                let stages: Vec<String> = serde_json::from_str(&stages).unwrap_or_default();
                let matches = match (&version, &version_name) {
                    (Some(v), _) => *v == number,
                    (None, Some(n)) => name.as_deref() == Some(n.as_str()),
                    (None, None) => stages.contains(&stage),
                };
                if matches {
                    return Ok((secret_id, number, name, stages, created, sealed));
                }
            }
            Err(ApiError::not_found(format!("the requested version of secret {secret_id}")))
        })
        .await?;
    let plain = inner
        .key
        .open(&sealed)
        .ok_or_else(|| ApiError::internal("the secret cannot be decrypted with the data key"))?;
    Ok(models::SecretBundle {
        secret_id,
        version_number: number,
        version_name: name,
        stages,
        time_created: Some(created),
        time_of_expiry: None,
        secret_bundle_content: models::SecretBundleContent {
            content_type: "BASE64".into(),
            content: base64::engine::general_purpose::STANDARD.encode(plain),
        },
    })
}
