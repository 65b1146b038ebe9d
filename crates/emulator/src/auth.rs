//! Who may call: the key registry the signature verifier looks keyIds up in, the development
//! key pair and OCI config file written on first start, and emulated resource principals.
//!
//! **API keys** are registered by keyId `<tenancy>/<user>/<fingerprint>` with their public key,
//! in the database (so they survive restarts) and in memory (so verifying costs no query).
//!
//! **Resource principal tokens (RPST)** are JWTs signed RS256 by the emulator's own signing key
//! (`emulator_signing_key.pem` in the data directory). Like OCI's, a token carries the public
//! half of the principal's key as a `jwk` claim, so verification needs no state: a keyId
//! `ST$<token>` verifies when the token's signature checks out with the emulator key and its
//! `exp` is in the future; the request signature is then checked with the key in the token.
//! An expired, altered or foreign token is an unknown key: 401.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use datasync_core::oci::key::{fingerprint, PrivateKey};
use datasync_core::oci::signer::verify_rsa_sha256;
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};

use super::crypto::write_private;
use super::error::EmulatorError;

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
/// The key the emulator signs resource principal tokens with.
pub const SIGNING_KEY_FILE: &str = "emulator_signing_key.pem";
/// RSA key size for generated keys.
const KEY_BITS: usize = 2048;

/// The keyId registry and the token verifier.
pub struct KeyRegistry {
    api_keys: RwLock<HashMap<String, RsaPublicKey>>,
    signing: PrivateKey,
    /// Session tokens whose signature verified, with their principal's key and expiry (Unix
    /// seconds). A function signs with the same token for its whole session, while each second
    /// brings new request signatures to check: without this every such request paid a second
    /// RSA check and a JSON parse for the token. Only verified tokens are kept; expiry is still
    /// checked on every lookup.
    tokens: Mutex<HashMap<String, (RsaPublicKey, u64)>>,
}

/// The most verified tokens remembered (the set is emptied when full): a stack has a few
/// dozen function instances, each with one token at a time.
const TOKEN_MEMO_LIMIT: usize = 1024;

impl std::fmt::Debug for KeyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRegistry").finish_non_exhaustive()
    }
}

/// Generates a fresh RSA key.
pub fn generate_key() -> Result<RsaPrivateKey, EmulatorError> {
    RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS)
        .map_err(|e| EmulatorError::Key(e.to_string()))
}

/// The PKCS#8 PEM of a private key.
pub fn private_pem(key: &RsaPrivateKey) -> Result<String, EmulatorError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| EmulatorError::Key(e.to_string()))
}

/// The SubjectPublicKeyInfo PEM of a public key.
pub fn public_pem(key: &RsaPublicKey) -> Result<String, EmulatorError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| EmulatorError::Key(e.to_string()))
}

/// Reads a private key file, or generates one and writes it (mode 0600) when absent.
fn load_or_create_key(path: &Path) -> Result<(PrivateKey, bool), EmulatorError> {
    match std::fs::read_to_string(path) {
        Ok(pem) => Ok((
            PrivateKey::from_pem(&pem, None)
                .map_err(|e| EmulatorError::Key(format!("{}: {e}", path.display())))?,
            false,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate_key()?;
            write_private(path, private_pem(&key)?.as_bytes())?;
            Ok((PrivateKey::from_rsa(key), true))
        }
        Err(e) => Err(EmulatorError::io("reading", path)(e)),
    }
}

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

#[derive(Debug, Serialize, Deserialize)]
struct Jwk {
    kty: String,
    n: String,
    e: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RpstClaims {
    iss: String,
    sub: String,
    iat: u64,
    exp: u64,
    res_type: String,
    res_id: String,
    res_tenant: String,
    res_compartment: String,
    jwk: Jwk,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64url(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Files written for a resource principal, and the environment that points a function at them.
#[derive(Debug, Clone)]
pub struct ResourcePrincipal {
    /// The RPST file (`OCI_RESOURCE_PRINCIPAL_RPST`).
    pub rpst_file: PathBuf,
    /// The private key file (`OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM`), PKCS#8, mode 0600.
    pub private_pem_file: PathBuf,
    /// The principal's OCID (`res_id`), `ocid1.fnfunc.oc1.local.<name>`.
    pub resource_id: String,
    /// When the token expires.
    pub expires_at: SystemTime,
}

impl ResourcePrincipal {
    /// The environment OCI Functions sets for resource principal v2.2 (contracts section F).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("OCI_RESOURCE_PRINCIPAL_VERSION".into(), "2.2".into()),
            (
                "OCI_RESOURCE_PRINCIPAL_RPST".into(),
                self.rpst_file.display().to_string(),
            ),
            (
                "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM".into(),
                self.private_pem_file.display().to_string(),
            ),
            ("OCI_RESOURCE_PRINCIPAL_REGION".into(), LOCAL_REGION.into()),
        ]
    }
}

impl KeyRegistry {
    /// Loads (or creates) the emulator's token signing key from `dir`.
    pub fn open(dir: &Path) -> Result<Self, EmulatorError> {
        let (signing, _) = load_or_create_key(&dir.join(SIGNING_KEY_FILE))?;
        Ok(Self {
            api_keys: RwLock::new(HashMap::new()),
            signing,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Registers an API key under its keyId (in memory; the caller persists it).
    pub fn insert(&self, key_id: String, public: RsaPublicKey) {
        if let Ok(mut keys) = self.api_keys.write() {
            keys.insert(key_id, public);
        }
    }

    /// The public key a request signed with `key_id` must verify with, at time `now`.
    pub fn lookup(&self, key_id: &str, now: SystemTime) -> Option<RsaPublicKey> {
        if let Some(token) = key_id.strip_prefix("ST$") {
            return self.verify_token(token, now);
        }
        self.api_keys.read().ok()?.get(key_id).cloned()
    }

    /// Mints a token for `resource_id` whose principal signs with `public`, valid for `ttl`.
    pub fn mint_token(
        &self,
        resource_id: &str,
        public: &RsaPublicKey,
        now: SystemTime,
        ttl: Duration,
    ) -> String {
        let header = b64url(br#"{"alg":"RS256","typ":"JWT","kid":"datasync-emulator"}"#);
        let claims = RpstClaims {
            iss: "datasync-emulator".into(),
            sub: resource_id.into(),
            iat: unix(now),
            exp: unix(now + ttl),
            res_type: "fnfunc".into(),
            res_id: resource_id.into(),
            res_tenant: LOCAL_TENANCY.into(),
            res_compartment: LOCAL_COMPARTMENT.into(),
            jwk: Jwk {
                kty: "RSA".into(),
                n: b64url(&public.n().to_bytes_be()),
                e: b64url(&public.e().to_bytes_be()),
                kid: Some(fingerprint(public)),
            },
        };
        let payload = b64url(&serde_json::to_vec(&claims).unwrap_or_default());
        let signed = format!("{header}.{payload}");
        let signature = b64url(&self.signing.sign(signed.as_bytes()));
        format!("{signed}.{signature}")
    }

    fn verify_token(&self, token: &str, now: SystemTime) -> Option<RsaPublicKey> {
        let token = token.trim();
        let remembered = self
            .tokens
            .lock()
            .ok()
            .and_then(|tokens| tokens.get(token).cloned());
        if let Some((key, exp)) = remembered {
            return (exp > unix(now)).then_some(key);
        }
        let mut parts = token.split('.');
        let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let signed = format!("{header}.{payload}");
        if !verify_rsa_sha256(
            self.signing.public_key(),
            signed.as_bytes(),
            &unb64url(signature)?,
        ) {
            return None;
        }
        let claims: RpstClaims = serde_json::from_slice(&unb64url(payload)?).ok()?;
        if claims.jwk.kty != "RSA" {
            return None;
        }
        let key = RsaPublicKey::new(
            BigUint::from_bytes_be(&unb64url(&claims.jwk.n)?),
            BigUint::from_bytes_be(&unb64url(&claims.jwk.e)?),
        )
        .ok()?;
        if let Ok(mut tokens) = self.tokens.lock() {
            if tokens.len() >= TOKEN_MEMO_LIMIT {
                tokens.clear();
            }
            tokens.insert(token.to_owned(), (key.clone(), claims.exp));
        }
        (claims.exp > unix(now)).then_some(key)
    }
}

/// Parses a public key PEM stored in the registry table.
pub fn parse_public_pem(pem: &str) -> Result<RsaPublicKey, EmulatorError> {
    RsaPublicKey::from_public_key_pem(pem).map_err(|e| EmulatorError::Key(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire_and_not_when_altered() {
        let dir = tempfile::tempdir().unwrap();
        let registry = KeyRegistry::open(dir.path()).unwrap();
        let principal = generate_key().unwrap();
        let now = SystemTime::now();
        let token = registry.mint_token(
            "ocid1.fnfunc.oc1.local.f",
            &principal.to_public_key(),
            now,
            Duration::from_secs(60),
        );
        let claims = datasync_core::oci::auth::rpst_claims(&token).unwrap();
        assert_eq!(claims.tenancy.as_deref(), Some(LOCAL_TENANCY));
        let key = registry.lookup(&format!("ST${token}"), now).unwrap();
        assert_eq!(key, principal.to_public_key());
        assert!(registry
            .lookup(&format!("ST${token}"), now + Duration::from_secs(61))
            .is_none());
        let mut forged: Vec<&str> = token.split('.').collect();
        let other = b64url(br#"{"exp":99999999999}"#);
        forged[1] = &other;
        assert!(registry
            .lookup(&format!("ST${}", forged.join(".")), now)
            .is_none());
        // The genuine token is remembered once verified; a copy with another signature is
        // not the same token and is checked (and refused) on its own.
        let (signed, _) = token.rsplit_once('.').unwrap();
        let resigned = format!("{signed}.{}", b64url(&[7u8; 256]));
        assert!(registry.lookup(&format!("ST${resigned}"), now).is_none());
        assert!(registry.lookup(&format!("ST${token}"), now).is_some());
        // A token signed by another registry's key never verifies here.
        let elsewhere = KeyRegistry::open(tempfile::tempdir().unwrap().path()).unwrap();
        let theirs = elsewhere.mint_token(
            "ocid1.fnfunc.oc1.local.f",
            &principal.to_public_key(),
            now,
            Duration::from_secs(60),
        );
        assert!(registry.lookup(&format!("ST${theirs}"), now).is_none());
    }
}
