//! Auth providers: where the signing key and keyId come from.
//!
//! - [`ConfigFileAuth`]: an API key from an OCI config file, as the CLI and SDKs read it.
//! - [`ResourcePrincipalAuth`]: resource principal v2.2, as OCI Functions provides it.
//! - [`StaticAuth`]: a fixed key and keyId, for tests and the local stack.
//!
//! Every provider hands out an `Arc<Signer>`; a signer's signature cache lives as long as its
//! credentials, so a refreshed token starts with an empty cache. Nothing here reads the process
//! environment directly: constructors take a lookup (`|name| std::env::var(name).ok()` in
//! binaries, a map in tests).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::key::{KeyError, PrivateKey};
use super::signer::Signer;

/// Why credentials could not be loaded. Messages name the file, profile and key involved, and
/// never contain key material, passphrases or tokens.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// What the file is for ("OCI config file", "key_file of profile DEFAULT", ...).
        what: String,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A config file line is neither a section, a `key=value` pair nor a comment.
    #[error("{path}:{line}: malformed line (expected [PROFILE] or key=value)")]
    MalformedLine {
        /// The config file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
    },
    /// The profile is not in the config file.
    #[error("profile {profile} not found in {path}")]
    NoProfile {
        /// The config file.
        path: PathBuf,
        /// The profile asked for.
        profile: String,
    },
    /// A required entry is missing from the profile.
    #[error("profile {profile} in {path} has no {key}")]
    MissingEntry {
        /// The config file.
        path: PathBuf,
        /// The profile.
        profile: String,
        /// The missing entry.
        key: &'static str,
    },
    /// The private key could not be parsed or decrypted.
    #[error("{what}: {source}")]
    Key {
        /// Which key ("key_file /x/y.pem of profile DEFAULT in /root/.oci/config", ...).
        what: String,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A resource-principal variable is missing or invalid.
    #[error("resource principal: {0}")]
    ResourcePrincipal(String),
    /// No home directory to find `~/.oci/config` or expand `~` in.
    #[error("cannot find the home directory to expand {0}")]
    NoHome(String),
}

/// A source of signing credentials.
pub trait AuthProvider: Send + Sync + std::fmt::Debug {
    /// The current signer, renewed first if the credentials are near expiry.
    ///
    /// # Errors
    /// [`AuthError`] when renewal is needed and fails.
    fn signer(&self) -> Result<Arc<Signer>, AuthError>;

    /// Re-reads the credentials after the service answered 401, and returns the new signer.
    /// Providers whose credentials cannot change return the current one.
    ///
    /// # Errors
    /// [`AuthError`] when the re-read fails.
    fn refresh(&self) -> Result<Arc<Signer>, AuthError>;

    /// The region the credentials belong to, when they name one.
    fn region(&self) -> Option<String>;
}

/// A fixed keyId and key: for tests and the local stack.
#[derive(Debug, Clone)]
pub struct StaticAuth {
    signer: Arc<Signer>,
    region: Option<String>,
}

impl StaticAuth {
    /// Signs every request with `key` under `key_id`.
    pub fn new(key_id: impl Into<String>, key: PrivateKey, region: Option<String>) -> Self {
        Self {
            signer: Arc::new(Signer::new(key_id, key)),
            region,
        }
    }
}

impl AuthProvider for StaticAuth {
    fn signer(&self) -> Result<Arc<Signer>, AuthError> {
        Ok(self.signer.clone())
    }
    fn refresh(&self) -> Result<Arc<Signer>, AuthError> {
        Ok(self.signer.clone())
    }
    fn region(&self) -> Option<String> {
        self.region.clone()
    }
}

/// The entries of one profile of an OCI config file. `Debug` does not show `pass_phrase`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigProfile {
    /// The config file it came from.
    pub path: PathBuf,
    /// The profile name.
    pub profile: String,
    /// `user`.
    pub user: String,
    /// `tenancy`.
    pub tenancy: String,
    /// `fingerprint`.
    pub fingerprint: String,
    /// `key_file`, with `~` expanded.
    pub key_file: PathBuf,
    /// `pass_phrase`, when set.
    pub pass_phrase: Option<String>,
    /// `region`, when set.
    pub region: Option<String>,
}

impl std::fmt::Debug for ConfigProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigProfile")
            .field("path", &self.path)
            .field("profile", &self.profile)
            .field("user", &self.user)
            .field("tenancy", &self.tenancy)
            .field("fingerprint", &self.fingerprint)
            .field("key_file", &self.key_file)
            .field(
                "pass_phrase",
                &self.pass_phrase.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .finish()
    }
}

impl ConfigProfile {
    /// Reads `profile` from the config file at `path`. Entries of the `DEFAULT` profile are
    /// inherited by other profiles, as the OCI CLI does. `home` expands `~` in `key_file`.
    ///
    /// # Errors
    /// [`AuthError`] naming the file, the profile and the entry at fault.
    pub fn load(path: &Path, profile: &str, home: Option<&Path>) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            what: "OCI config file".into(),
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, profile, home)
    }

    /// Like [`load`](Self::load), from text already read.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(
        text: &str,
        path: &Path,
        profile: &str,
        home: Option<&Path>,
    ) -> Result<Self, AuthError> {
        let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                sections.push((name.trim().to_owned(), Vec::new()));
                continue;
            }
            let (Some((key, value)), Some(section)) = (line.split_once('='), sections.last_mut())
            else {
                return Err(AuthError::MalformedLine {
                    path: path.to_owned(),
                    line: i + 1,
                });
            };
            section
                .1
                .push((key.trim().to_owned(), value.trim().to_owned()));
        }
        let find = |name: &str| sections.iter().find(|(n, _)| n == name).map(|(_, e)| e);
        let own = find(profile).ok_or_else(|| AuthError::NoProfile {
            path: path.to_owned(),
            profile: profile.to_owned(),
        })?;
        let defaults = find("DEFAULT");
        let get = |key: &str| -> Option<String> {
            own.iter()
                .rev()
                .find(|(k, _)| k == key)
                .or_else(|| defaults.and_then(|d| d.iter().rev().find(|(k, _)| k == key)))
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let required = |key: &'static str| {
            get(key).ok_or_else(|| AuthError::MissingEntry {
                path: path.to_owned(),
                profile: profile.to_owned(),
                key,
            })
        };
        let key_file = expand_tilde(&required("key_file")?, home)?;
        Ok(Self {
            path: path.to_owned(),
            profile: profile.to_owned(),
            user: required("user")?,
            tenancy: required("tenancy")?,
            fingerprint: required("fingerprint")?,
            key_file,
            pass_phrase: get("pass_phrase"),
            region: get("region"),
        })
    }

    /// The API-key keyId: `<tenancy>/<user>/<fingerprint>`.
    pub fn key_id(&self) -> String {
        format!("{}/{}/{}", self.tenancy, self.user, self.fingerprint)
    }
}

fn expand_tilde(value: &str, home: Option<&Path>) -> Result<PathBuf, AuthError> {
    match value.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            let home = home.ok_or_else(|| AuthError::NoHome(value.to_owned()))?;
            Ok(home.join(rest.trim_start_matches('/')))
        }
        _ => Ok(PathBuf::from(value)),
    }
}

/// An API key from an OCI config file.
#[derive(Debug)]
pub struct ConfigFileAuth {
    profile: ConfigProfile,
    signer: Arc<Signer>,
}

impl ConfigFileAuth {
    /// Loads the profile and its key. `config_file` defaults to `OCI_CONFIG_FILE`, then
    /// `~/.oci/config`; `profile` to `OCI_CLI_PROFILE`, then `DEFAULT`. `env` looks up variables
    /// (`HOME` too).
    ///
    /// # Errors
    /// [`AuthError`] naming the file, profile and entry when anything is missing or unreadable.
    pub fn from_config(
        config_file: Option<&Path>,
        profile: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AuthError> {
        let home = env("HOME").map(PathBuf::from);
        let path = match (config_file, env("OCI_CONFIG_FILE")) {
            (Some(p), _) => p.to_owned(),
            (None, Some(p)) => expand_tilde(&p, home.as_deref())?,
            (None, None) => home
                .as_deref()
                .map(|h| h.join(".oci").join("config"))
                .ok_or_else(|| AuthError::NoHome("~/.oci/config".into()))?,
        };
        let profile_name = profile
            .map(str::to_owned)
            .or_else(|| env("OCI_CLI_PROFILE"))
            .unwrap_or_else(|| "DEFAULT".to_owned());
        let profile = ConfigProfile::load(&path, &profile_name, home.as_deref())?;
        let what = || {
            format!(
                "key_file {} of profile {} in {}",
                profile.key_file.display(),
                profile.profile,
                profile.path.display()
            )
        };
        let pem = std::fs::read_to_string(&profile.key_file).map_err(|source| AuthError::Read {
            what: format!(
                "key_file of profile {} in {}",
                profile.profile,
                profile.path.display()
            ),
            path: profile.key_file.clone(),
            source,
        })?;
        let key = PrivateKey::from_pem(&pem, profile.pass_phrase.as_deref()).map_err(|source| {
            AuthError::Key {
                what: what(),
                source,
            }
        })?;
        let signer = Arc::new(Signer::new(profile.key_id(), key));
        Ok(Self { profile, signer })
    }

    /// The profile the key came from.
    pub fn profile(&self) -> &ConfigProfile {
        &self.profile
    }
}

impl AuthProvider for ConfigFileAuth {
    fn signer(&self) -> Result<Arc<Signer>, AuthError> {
        Ok(self.signer.clone())
    }
    fn refresh(&self) -> Result<Arc<Signer>, AuthError> {
        Ok(self.signer.clone())
    }
    fn region(&self) -> Option<String> {
        self.profile.region.clone()
    }
}

/// How long before the token's `exp` a resource principal re-reads its files.
pub const RP_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A value given either as an absolute path to a file or as the literal content.
#[derive(Clone, PartialEq, Eq)]
enum PathOrLiteral {
    Path(PathBuf),
    Literal(String),
}

impl std::fmt::Debug for PathOrLiteral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A literal is a token, a private key or a passphrase: never print it.
        match self {
            PathOrLiteral::Path(p) => f.debug_tuple("Path").field(p).finish(),
            PathOrLiteral::Literal(_) => f.write_str("Literal(<redacted>)"),
        }
    }
}

impl PathOrLiteral {
    fn new(value: String) -> Self {
        if Path::new(&value).is_absolute() {
            PathOrLiteral::Path(PathBuf::from(value))
        } else {
            PathOrLiteral::Literal(value)
        }
    }

    fn read(&self, what: &str) -> Result<String, AuthError> {
        match self {
            PathOrLiteral::Literal(v) => Ok(v.clone()),
            PathOrLiteral::Path(p) => {
                std::fs::read_to_string(p).map_err(|source| AuthError::Read {
                    what: what.to_owned(),
                    path: p.clone(),
                    source,
                })
            }
        }
    }

    fn describe(&self, var: &str) -> String {
        match self {
            PathOrLiteral::Path(p) => format!("{var} file {}", p.display()),
            PathOrLiteral::Literal(_) => format!("{var} (literal value)"),
        }
    }
}

#[derive(Debug)]
struct RpState {
    signer: Arc<Signer>,
    expires_at: SystemTime,
}

/// Resource principal v2.2: the RPST token and its key, from the `OCI_RESOURCE_PRINCIPAL_*`
/// variables, each an absolute path or the literal value. The token's `exp` decides when both
/// are re-read.
#[derive(Debug)]
pub struct ResourcePrincipalAuth {
    rpst: PathOrLiteral,
    pem: PathOrLiteral,
    passphrase: Option<PathOrLiteral>,
    region: String,
    state: RwLock<RpState>,
    clock: fn() -> SystemTime,
}

/// The claims of an RPST that datasync uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpstClaims {
    /// `exp`: when the token expires.
    pub expires_at: SystemTime,
    /// `res_tenant`: the tenancy OCID, when present.
    pub tenancy: Option<String>,
}

/// Reads the claims of an RPST (a JWT) without verifying it: the service verifies it.
///
/// # Errors
/// [`AuthError::ResourcePrincipal`] when the token is not a JWT with a numeric `exp`.
pub fn rpst_claims(token: &str) -> Result<RpstClaims, AuthError> {
    let bad = |why: &str| AuthError::ResourcePrincipal(format!("the RPST token {why}"));
    let payload = token.split('.').nth(1).ok_or_else(|| bad("is not a JWT"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| bad("payload is not base64url"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| bad("payload is not JSON"))?;
    let exp = claims
        .get("exp")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| bad("has no exp claim"))?;
    Ok(RpstClaims {
        expires_at: UNIX_EPOCH + Duration::from_secs(exp),
        tenancy: claims
            .get("res_tenant")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
    })
}

impl ResourcePrincipalAuth {
    /// Reads `OCI_RESOURCE_PRINCIPAL_VERSION` (must be `2.2`), `_RPST`, `_PRIVATE_PEM`,
    /// `_PRIVATE_PEM_PASSPHRASE` (optional; a path when the PEM is a path, a literal when it is
    /// a literal) and `_REGION` through `env`, and loads the token and key once.
    ///
    /// # Errors
    /// [`AuthError`] naming the variable or file at fault.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, AuthError> {
        Self::with_clock(env, SystemTime::now)
    }

    /// As [`from_env`](Self::from_env), with the clock passed in (tests).
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn with_clock(
        env: impl Fn(&str) -> Option<String>,
        clock: fn() -> SystemTime,
    ) -> Result<Self, AuthError> {
        let var = |name: &str| {
            env(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| AuthError::ResourcePrincipal(format!("{name} is not set")))
        };
        let version = var("OCI_RESOURCE_PRINCIPAL_VERSION")?;
        if version.trim() != "2.2" {
            return Err(AuthError::ResourcePrincipal(format!(
                "OCI_RESOURCE_PRINCIPAL_VERSION is {version}; only 2.2 is supported"
            )));
        }
        let rpst = PathOrLiteral::new(var("OCI_RESOURCE_PRINCIPAL_RPST")?);
        let pem = PathOrLiteral::new(var("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM")?);
        let passphrase = env("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE")
            .filter(|v| !v.is_empty())
            .map(PathOrLiteral::new);
        if let Some(pass) = &passphrase {
            let same_kind = matches!(
                (pass, &pem),
                (PathOrLiteral::Path(_), PathOrLiteral::Path(_))
                    | (PathOrLiteral::Literal(_), PathOrLiteral::Literal(_))
            );
            if !same_kind {
                return Err(AuthError::ResourcePrincipal(
                    "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM and _PRIVATE_PEM_PASSPHRASE must both be paths or both be literal values".into(),
                ));
            }
        }
        let region = var("OCI_RESOURCE_PRINCIPAL_REGION")?;
        let state = load_rp(&rpst, &pem, passphrase.as_ref())?;
        Ok(Self {
            rpst,
            pem,
            passphrase,
            region,
            state: RwLock::new(state),
            clock,
        })
    }

    fn reload(&self) -> Result<Arc<Signer>, AuthError> {
        let fresh = load_rp(&self.rpst, &self.pem, self.passphrase.as_ref())?;
        let signer = fresh.signer.clone();
        if let Ok(mut state) = self.state.write() {
            *state = fresh;
        }
        Ok(signer)
    }
}

fn load_rp(
    rpst: &PathOrLiteral,
    pem: &PathOrLiteral,
    passphrase: Option<&PathOrLiteral>,
) -> Result<RpState, AuthError> {
    let token = rpst.read("OCI_RESOURCE_PRINCIPAL_RPST")?.trim().to_owned();
    let claims = rpst_claims(&token)?;
    let pass = passphrase
        .map(|p| p.read("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE"))
        .transpose()?
        .map(|p| p.trim().to_owned());
    let key = PrivateKey::from_pem(
        &pem.read("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM")?,
        pass.as_deref(),
    )
    .map_err(|source| AuthError::Key {
        what: pem.describe("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM"),
        source,
    })?;
    Ok(RpState {
        signer: Arc::new(Signer::new(format!("ST${token}"), key)),
        expires_at: claims.expires_at,
    })
}

impl AuthProvider for ResourcePrincipalAuth {
    fn signer(&self) -> Result<Arc<Signer>, AuthError> {
        let now = (self.clock)();
        if let Ok(state) = self.state.read() {
            if now + RP_REFRESH_MARGIN < state.expires_at {
                return Ok(state.signer.clone());
            }
        }
        self.reload()
    }
    fn refresh(&self) -> Result<Arc<Signer>, AuthError> {
        self.reload()
    }
    fn region(&self) -> Option<String> {
        Some(self.region.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const CONFIG: &str = "\
# a comment
[DEFAULT]
user=ocid1.user.oc1..u
fingerprint=aa:bb
tenancy=ocid1.tenancy.oc1..t
region=us-phoenix-1
key_file=~/.oci/key.pem

[OTHER]
user = ocid1.user.oc1..other
; inherits the rest from DEFAULT
";

    #[test]
    fn profiles_inherit_default_and_expand_tilde() {
        let home = Path::new("/home/me");
        let p = ConfigProfile::parse(CONFIG, Path::new("/c"), "OTHER", Some(home)).unwrap();
        assert_eq!(p.user, "ocid1.user.oc1..other");
        assert_eq!(p.tenancy, "ocid1.tenancy.oc1..t");
        assert_eq!(p.key_file, PathBuf::from("/home/me/.oci/key.pem"));
        assert_eq!(p.region.as_deref(), Some("us-phoenix-1"));
        assert_eq!(
            p.key_id(),
            "ocid1.tenancy.oc1..t/ocid1.user.oc1..other/aa:bb"
        );
    }

    #[test]
    fn errors_name_the_file_profile_and_entry() {
        let err = ConfigProfile::parse(CONFIG, Path::new("/c"), "NOPE", None).unwrap_err();
        assert_eq!(err.to_string(), "profile NOPE not found in /c");
        let no_user = "[P]\ntenancy=t\nfingerprint=f\nkey_file=/k\n";
        let err = ConfigProfile::parse(no_user, Path::new("/c"), "P", None).unwrap_err();
        assert_eq!(err.to_string(), "profile P in /c has no user");
        let err = ConfigProfile::parse("[P]\njunk\n", Path::new("/c"), "P", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/c:2: malformed line (expected [PROFILE] or key=value)"
        );
        let err = ConfigProfile::parse("user=x\n", Path::new("/c"), "P", None).unwrap_err();
        assert!(matches!(err, AuthError::MalformedLine { line: 1, .. }));
    }

    #[test]
    fn rpst_claims_read_exp_and_tenant() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"exp":1700000000,"res_tenant":"ocid1.tenancy.oc1..t"}"#);
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig");
        let claims = rpst_claims(&token).unwrap();
        assert_eq!(
            claims.expires_at,
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert_eq!(claims.tenancy.as_deref(), Some("ocid1.tenancy.oc1..t"));
        assert!(rpst_claims("not-a-jwt").is_err());
        let no_exp = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{}");
        assert!(rpst_claims(&format!("a.{no_exp}.c")).is_err());
    }
}
