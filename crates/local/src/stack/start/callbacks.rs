//! Stage 2b: the callback signing secret (`docs/callbacks.md`). Made on first start
//! (`whsec_` and base64 of 32 random bytes), kept owner-only in `DATA/callback-secret`, shown
//! once, and stored in the emulator's Vault as each local caller's secret
//! (`ds-callback-<hash of caller>`), so process and retry read it exactly as on OCI.

use std::path::Path;

use base64::Engine as _;
use datasync_core::callback::{callback_secret_name, SigningSecret};
use datasync_core::oci::models::{
    CreateSecretDetails, Secret, SecretBundle, SecretContent, UpdateSecretDetails,
};

use crate::client::SignedClient;
use crate::emulator::LOCAL_COMPARTMENT;
use crate::stack::error::{io, setup, StackError};
use crate::stack::keys::write_private;
use crate::stack::{Resources, StackSettings};

/// The file the secret is kept in, in the data directory.
pub const CALLBACK_SECRET_FILE: &str = "callback-secret";

/// Random bytes of a generated secret (the standard asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// The secret's text when this start made it (to show once), else `None`.
pub(crate) async fn ensure(
    dir: &Path,
    signed: &SignedClient,
    resources: &Resources,
    settings: &StackSettings,
) -> Result<Option<String>, StackError> {
    let file = dir.join(CALLBACK_SECRET_FILE);
    let (text, created) = match std::fs::read_to_string(&file) {
        Ok(text) => (text.trim().to_owned(), false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = SigningSecret::generate_text(SECRET_BYTES);
            write_private(&file, format!("{text}\n").as_bytes())
                .map_err(io(format!("writing {}", file.display())))?;
            (text, true)
        }
        Err(e) => return Err(io(format!("reading {}", file.display()))(e)),
    };
    // The error names the file and the rule, never the content.
    SigningSecret::parse(&text).map_err(|e| StackError::Setup {
        what: format!("{} (delete it to make a new one)", file.display()),
        detail: e.to_string(),
    })?;
    for caller in callers(settings) {
        store(signed, resources, &callback_secret_name(&caller), &text).await?;
    }
    Ok(created.then_some(text))
}

/// Every caller the local gateway names: its two generated keys' and the configured ones'.
fn callers(settings: &StackSettings) -> Vec<String> {
    let mut callers = vec!["source".to_owned(), "operator".to_owned()];
    for k in &settings.keys {
        if !callers.contains(&k.caller) {
            callers.push(k.caller.clone());
        }
    }
    callers
}

/// Creates the secret `name` holding `text`, or gives it a new version when it holds
/// something else (the file was replaced).
async fn store(
    signed: &SignedClient,
    resources: &Resources,
    name: &str,
    text: &str,
) -> Result<(), StackError> {
    let what = format!("the callback signing secret {name}");
    let list = signed
        .get(&format!(
            "/20180608/secrets?compartmentId={LOCAL_COMPARTMENT}&name={name}&vaultId={}",
            resources.vault
        ))
        .await
        .map_err(|e| setup(&what, &e))?;
    let found: Vec<Secret> = if list.status.is_success() {
        list.json().unwrap_or_default()
    } else {
        Vec::new()
    };
    let content = SecretContent::base64(text.as_bytes());
    let Some(secret) = found
        .into_iter()
        .find(|s| s.lifecycle_state != "PENDING_DELETION")
    else {
        let details = CreateSecretDetails {
            compartment_id: LOCAL_COMPARTMENT.to_owned(),
            vault_id: resources.vault.clone(),
            key_id: resources.vault_key.clone(),
            secret_name: name.to_owned(),
            description: Some("datasync delivery callback signing secret".to_owned()),
            secret_content: content,
            metadata: None,
        };
        let answer = signed
            .json(http::Method::POST, "/20180608/secrets", &details)
            .await
            .map_err(|e| setup(&what, &e))?;
        if !answer.status.is_success() {
            return Err(setup(&what, &String::from_utf8_lossy(&answer.body)));
        }
        return Ok(());
    };
    let bundle = signed
        .get(&format!("/20190301/secretbundles/{}", secret.id))
        .await
        .map_err(|e| setup(&what, &e))?;
    let current = bundle
        .json::<SecretBundle>()
        .ok()
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.secret_bundle_content.content)
                .ok()
        })
        .unwrap_or_default();
    if current == text.as_bytes() {
        return Ok(());
    }
    let update = UpdateSecretDetails {
        secret_content: Some(content),
        description: None,
        metadata: None,
    };
    let answer = signed
        .json(
            http::Method::PUT,
            &format!("/20180608/secrets/{}", secret.id),
            &update,
        )
        .await
        .map_err(|e| setup(&what, &e))?;
    if !answer.status.is_success() {
        return Err(setup(&what, &String::from_utf8_lossy(&answer.body)));
    }
    Ok(())
}
