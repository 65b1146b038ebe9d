//! Resource principal session tokens (RPST): minted for a function, verified statelessly
//! from the `jwk` claim they carry (see the [module intro](super)).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use datasync_core::oci::key::fingerprint;
use datasync_core::oci::signer::verify_rsa_sha256;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use serde::{Deserialize, Serialize};

use super::profile::{LOCAL_COMPARTMENT, LOCAL_REGION, LOCAL_TENANCY};
use super::KeyRegistry;

/// The most verified tokens remembered (the set is emptied when full): a stack has a few
/// dozen function instances, each with one token at a time.
const TOKEN_MEMO_LIMIT: usize = 1024;

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

    pub(super) fn verify_token(&self, token: &str, now: SystemTime) -> Option<RsaPublicKey> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::auth::generate_key;

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
