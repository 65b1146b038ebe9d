//! Secrets and Vault: create, bundles by id and name, versions and stages, deletion, and
//! encryption at rest.

use datasync_core::oci::models;
use datasync_core::oci::signer::BodySigning;
use datasync_emulator::EmulatorOptions;
use http::{HeaderMap, Method};

use crate::util::*;

#[tokio::test]
async fn secrets_versions_stages_and_encryption_at_rest() {
    let emu = start().await;
    let compartment = emu.emulator.profile().compartment.clone();
    let vault = "ocid1.vault.oc1.local.v";
    let details = models::CreateSecretDetails {
        compartment_id: compartment.clone(),
        vault_id: vault.into(),
        key_id: "ocid1.key.oc1.local.k".into(),
        secret_name: "caller-789".into(),
        description: None,
        secret_content: models::SecretContent::base64(b"Bearer plaintext-canary-1"),
        metadata: None,
    };
    let secret: models::Secret = emu
        .client
        .json(Method::POST, "/20180608/secrets", &details)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(secret.lifecycle_state, "ACTIVE");
    assert_eq!(secret.current_version_number, Some(1));
    assert_error(
        &emu.client
            .json(Method::POST, "/20180608/secrets", &details)
            .await
            .unwrap(),
        409,
        "NotAuthorizedOrResourceAlreadyExists",
    );

    let by_name = |query: String| {
        let client = emu.client.clone();
        async move {
            client
                .send(
                    Method::POST,
                    &format!("/20190301/secretbundles/actions/getByName?{query}"),
                    vec![],
                    BodySigning::Include,
                    HeaderMap::new(),
                )
                .await
                .unwrap()
        }
    };
    let bundle: models::SecretBundle = by_name(format!("secretName=caller-789&vaultId={vault}"))
        .await
        .json()
        .unwrap();
    assert_eq!(
        unb64(&bundle.secret_bundle_content.content),
        b"Bearer plaintext-canary-1"
    );
    assert_eq!(bundle.stages, vec!["CURRENT", "LATEST"]);

    let update = models::UpdateSecretDetails {
        secret_content: Some(models::SecretContent::base64(b"Bearer plaintext-canary-2")),
        description: None,
        metadata: None,
    };
    let updated: models::Secret = emu
        .client
        .json(
            Method::PUT,
            &format!("/20180608/secrets/{}", secret.id),
            &update,
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(updated.current_version_number, Some(2));
    let current: models::SecretBundle = emu
        .client
        .get(&format!("/20190301/secretbundles/{}", secret.id))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (
            current.version_number,
            unb64(&current.secret_bundle_content.content)
        ),
        (2, b"Bearer plaintext-canary-2".to_vec())
    );
    let previous: models::SecretBundle = emu
        .client
        .get(&format!(
            "/20190301/secretbundles/{}?stage=PREVIOUS",
            secret.id
        ))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(previous.version_number, 1);
    let v1: models::SecretBundle = emu
        .client
        .get(&format!(
            "/20190301/secretbundles/{}?versionNumber=1",
            secret.id
        ))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        unb64(&v1.secret_bundle_content.content),
        b"Bearer plaintext-canary-1"
    );

    let got: models::Secret = emu
        .client
        .get(&format!("/20180608/secrets/{}", secret.id))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(got.id, secret.id);
    let listed: Vec<models::Secret> = emu
        .client
        .get(&format!(
            "/20180608/secrets?compartmentId={compartment}&name=caller-789"
        ))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed.len(), 1);

    // Bad input.
    let mut bad = details.clone();
    bad.secret_name = "other".into();
    bad.secret_content.content = "%%%".into();
    assert_error(
        &emu.client
            .json(Method::POST, "/20180608/secrets", &bad)
            .await
            .unwrap(),
        400,
        "InvalidParameter",
    );
    assert_error(
        &by_name(format!("secretName=nope&vaultId={vault}")).await,
        404,
        "NotAuthorizedOrNotFound",
    );
    assert_error(
        &by_name("secretName=caller-789".into()).await,
        400,
        "MissingParameter",
    );

    // Deletion hides the bundles.
    let scheduled = emu
        .client
        .send(
            Method::POST,
            &format!("/20180608/secrets/{}/actions/scheduleDeletion", secret.id),
            b"{}".to_vec(),
            BodySigning::Include,
            HeaderMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(scheduled.status, 200);
    assert_error(
        &emu.client
            .get(&format!("/20190301/secretbundles/{}", secret.id))
            .await
            .unwrap(),
        404,
        "NotAuthorizedOrNotFound",
    );

    // At rest, the database holds no plaintext.
    emu.emulator.close();
    for file in ["emulator.db", "emulator.db-wal"] {
        if let Ok(bytes) = std::fs::read(emu.dir.path().join(file)) {
            assert!(
                !bytes.windows(17).any(|w| w == b"plaintext-canary-"),
                "{file} holds the secret in clear"
            );
        }
    }
}

/// A new secret is `CREATING` and a new version `UPDATING` for the configured window, as OCI's
/// are for a moment: meanwhile it is listed and readable, and changing it answers 409
/// `IncorrectState`; then it is `ACTIVE` again.
#[tokio::test]
async fn secrets_are_creating_then_updating_for_the_configured_window() {
    let mut options = EmulatorOptions::default();
    options.secret_transition = std::time::Duration::from_millis(600);
    let emu = start_with(options).await;
    let compartment = emu.emulator.profile().compartment.clone();
    let details = models::CreateSecretDetails {
        compartment_id: compartment.clone(),
        vault_id: "ocid1.vault.oc1.local.w".into(),
        key_id: "ocid1.key.oc1.local.k".into(),
        secret_name: "windowed".into(),
        description: None,
        secret_content: models::SecretContent::base64(b"one"),
        metadata: None,
    };
    let created: models::Secret = emu
        .client
        .json(Method::POST, "/20180608/secrets", &details)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(created.lifecycle_state, "CREATING");
    let update = models::UpdateSecretDetails {
        secret_content: Some(models::SecretContent::base64(b"two")),
        description: None,
        metadata: None,
    };
    let path = format!("/20180608/secrets/{}", created.id);
    assert_error(
        &emu.client.json(Method::PUT, &path, &update).await.unwrap(),
        409,
        "IncorrectState",
    );
    let listed: Vec<models::Secret> = emu
        .client
        .get(&format!(
            "/20180608/secrets?compartmentId={compartment}&name=windowed"
        ))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed[0].lifecycle_state, "CREATING");
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let active: models::Secret = emu.client.get(&path).await.unwrap().json().unwrap();
    assert_eq!(active.lifecycle_state, "ACTIVE");
    let updated: models::Secret = emu
        .client
        .json(Method::PUT, &path, &update)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(updated.lifecycle_state, "UPDATING");
    assert_eq!(updated.current_version_number, Some(2));
}
