//! The `LOCAL` profile: the development key pair and OCI config file written into the data
//! directory on first start, so the official CLI and SDKs can sign requests the emulator
//! accepts.

use std::path::{Path, PathBuf};

use rsa::RsaPublicKey;

use super::keys::load_or_create_key;
use crate::crypto::write_private;
use crate::error::EmulatorError;

/// The tenancy OCID of the `LOCAL` profile.
pub const LOCAL_TENANCY: &str = "ocid1.tenancy.oc1..aaaaaaaalocaltenancy";
/// The user OCID of the `LOCAL` profile.
pub const LOCAL_USER: &str = "ocid1.user.oc1..aaaaaaaalocaluser";
/// The compartment everything lives in by default: the tenancy's root compartment.
pub const LOCAL_COMPARTMENT: &str = LOCAL_TENANCY;
/// The region written in the config file. A real region name, so every SDK accepts the file;
/// requests go to the emulator because callers pass its endpoint.
pub const LOCAL_REGION: &str = "us-ashburn-1";
/// The profile name in the generated config file.
pub const LOCAL_PROFILE: &str = "LOCAL";
/// The config file's name in the data directory.
pub const CONFIG_FILE: &str = "config";
/// The `LOCAL` profile's private key file.
pub const API_KEY_FILE: &str = "oci_api_key.pem";

/// The `LOCAL` profile: what a client needs to sign requests the emulator accepts.
#[derive(Debug, Clone)]
pub struct LocalProfile {
    /// The OCI config file (INI) holding the `LOCAL` profile.
    pub config_file: PathBuf,
    /// The profile's name, `LOCAL`.
    pub profile: String,
    /// The private key file.
    pub key_file: PathBuf,
    /// The tenancy OCID.
    pub tenancy: String,
    /// The user OCID.
    pub user: String,
    /// The key's fingerprint.
    pub fingerprint: String,
    /// The compartment to create resources in.
    pub compartment: String,
}

impl LocalProfile {
    /// The keyId of the profile's API key.
    pub fn key_id(&self) -> String {
        format!("{}/{}/{}", self.tenancy, self.user, self.fingerprint)
    }
}

/// Writes the development key and config file on first start; returns the profile and the
/// API key to register.
pub fn ensure_local_profile(dir: &Path) -> Result<(LocalProfile, RsaPublicKey), EmulatorError> {
    let key_file = dir.join(API_KEY_FILE);
    let (key, _) = load_or_create_key(&key_file)?;
    let fingerprint = key.fingerprint();
    let config_file = dir.join(CONFIG_FILE);
    let key_path =
        std::fs::canonicalize(&key_file).map_err(EmulatorError::io("resolving", &key_file))?;
    let text = format!(
        "# Written by the datasync OCI emulator. Use with: --config-file {cfg} --profile {LOCAL_PROFILE}\n\
         [{LOCAL_PROFILE}]\nuser={LOCAL_USER}\nfingerprint={fingerprint}\ntenancy={LOCAL_TENANCY}\n\
         region={LOCAL_REGION}\nkey_file={key}\n",
        cfg = config_file.display(),
        key = key_path.display(),
    );
    // Rewritten on every start so it always names the current key and location.
    write_private(&config_file, text.as_bytes())?;
    Ok((
        LocalProfile {
            config_file,
            profile: LOCAL_PROFILE.into(),
            key_file: key_path,
            tenancy: LOCAL_TENANCY.into(),
            user: LOCAL_USER.into(),
            fingerprint,
            compartment: LOCAL_COMPARTMENT.into(),
        },
        key.public_key().clone(),
    ))
}
