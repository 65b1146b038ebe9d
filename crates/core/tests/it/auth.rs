//! Auth providers with real temporary files and the recording test server: resource principal
//! v2.2 (variables, path-or-literal rule, `ST$<token>` keyId, expiry from `exp`, re-reading
//! both files near expiry and once after a 401) and API keys from an OCI config file (every
//! failure names the file, profile and entry).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use datasync_core::oci::auth::{AuthError, AuthProvider, ConfigFileAuth, ResourcePrincipalAuth};
use datasync_core::oci::client::{OciClient, RetryPolicy, Timeouts};
use datasync_core::oci::endpoints::Endpoints;
use datasync_core::oci::objectstorage::ObjectStorageClient;
use http::Method;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::RsaPrivateKey;
use serde_json::json;

use crate::server::{Reply, TestServer};

/// Test keys, generated once per test run (1024-bit: these tests are about files and keyIds).
pub fn test_key(n: usize) -> RsaPrivateKey {
    static KEYS: OnceLock<Vec<RsaPrivateKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..3)
            .map(|_| RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap())
            .collect()
    })[n]
        .clone()
}

fn pem(n: usize) -> String {
    test_key(n)
        .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

fn public(n: usize) -> rsa::RsaPublicKey {
    rsa::RsaPublicKey::from(&test_key(n))
}

/// A JWT-shaped RPST whose `exp` is `ttl` from now.
fn token(ttl: Duration, tag: &str) -> String {
    let exp = (SystemTime::now() + ttl)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let enc = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.{}",
        enc(json!({"alg": "RS256", "typ": "JWT"})),
        enc(
            json!({"exp": exp, "res_tenant": "ocid1.tenancy.oc1..t", "res_type": "fnfunc", "jti": tag})
        ),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
    )
}

fn lookup(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

struct RpFiles {
    dir: tempfile::TempDir,
}

impl RpFiles {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn rpst(&self) -> std::path::PathBuf {
        self.dir.path().join("rpst")
    }
    fn pem(&self) -> std::path::PathBuf {
        self.dir.path().join("private.pem")
    }
    /// Writes both files, as the platform does when it rotates them.
    fn write(&self, token: &str, key: usize) {
        std::fs::write(self.rpst(), format!("{token}\n")).unwrap();
        std::fs::write(self.pem(), pem(key)).unwrap();
    }
    fn env(&self) -> impl Fn(&str) -> Option<String> {
        lookup(vec![
            ("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2".into()),
            (
                "OCI_RESOURCE_PRINCIPAL_RPST",
                self.rpst().display().to_string(),
            ),
            (
                "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM",
                self.pem().display().to_string(),
            ),
            ("OCI_RESOURCE_PRINCIPAL_REGION", "us-phoenix-1".into()),
        ])
    }
}

async fn namespace_server() -> TestServer {
    let server = TestServer::start().await;
    server.route(Method::GET, "/n/", |_| Reply::ok(json!("ns")));
    server
}

fn object_storage(auth: Arc<dyn AuthProvider>, server: &TestServer) -> ObjectStorageClient {
    let policy = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let client = OciClient::with_settings(auth, Timeouts::default(), policy).unwrap();
    ObjectStorageClient::new(client, &Endpoints::all_at(&server.base_url()).unwrap()).unwrap()
}

fn st(token: &str) -> String {
    format!("ST${token}")
}

// ---------------------------------------------------------------------------------------------
// Resource principal v2.2
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn resource_principal_signs_with_st_token_from_absolute_paths() {
    let files = RpFiles::new();
    let a = token(Duration::from_secs(3600), "a");
    files.write(&a, 0);
    let auth = Arc::new(ResourcePrincipalAuth::from_env(files.env()).unwrap());
    assert_eq!(auth.region().as_deref(), Some("us-phoenix-1"));
    assert_eq!(auth.signer().unwrap().key_id(), st(&a), "token trimmed");
    let server = namespace_server().await;
    server.add_key(&st(&a), &public(0));
    object_storage(auth, &server).get_namespace().await.unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].key_id(), st(&a));
    assert_eq!(reqs[0].verified, Ok(st(&a)));
}

#[test]
fn resource_principal_literal_values_and_variable_rules() {
    let a = token(Duration::from_secs(3600), "lit");
    let base = |rpst: String, pem: String| {
        vec![
            ("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2".to_owned()),
            ("OCI_RESOURCE_PRINCIPAL_RPST", rpst),
            ("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", pem),
            ("OCI_RESOURCE_PRINCIPAL_REGION", "eu-frankfurt-1".to_owned()),
        ]
    };
    // Literal token and literal PEM.
    let auth = ResourcePrincipalAuth::from_env(lookup(base(a.clone(), pem(1)))).unwrap();
    let signer = auth.signer().unwrap();
    assert_eq!(signer.key_id(), st(&a));
    assert_eq!(signer.key().public_key(), &public(1));
    let shown = format!("{auth:?}");
    assert!(
        !shown.contains(&a),
        "Debug must not show the token: {shown}"
    );
    assert!(
        !shown.contains("PRIVATE KEY"),
        "Debug must not show the key: {shown}"
    );

    let err_of = |pairs: Vec<(&'static str, String)>| {
        ResourcePrincipalAuth::from_env(lookup(pairs))
            .unwrap_err()
            .to_string()
    };
    for var in [
        "OCI_RESOURCE_PRINCIPAL_VERSION",
        "OCI_RESOURCE_PRINCIPAL_RPST",
        "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM",
        "OCI_RESOURCE_PRINCIPAL_REGION",
    ] {
        let pairs = base(a.clone(), pem(1))
            .into_iter()
            .filter(|(k, _)| *k != var)
            .collect();
        assert_eq!(
            err_of(pairs),
            format!("resource principal: {var} is not set")
        );
    }
    let mut v11 = base(a.clone(), pem(1));
    v11[0].1 = "1.1".into();
    assert!(err_of(v11).contains("only 2.2"));
    // A relative path is not a path: it is taken as the literal token, which is not a JWT.
    assert!(err_of(base("rpst".into(), pem(1))).contains("RPST token is not a JWT"));
    let no_exp = format!(
        "x.{}.y",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{}")
    );
    assert!(err_of(base(no_exp, pem(1))).contains("no exp"));

    // Passphrase: both paths or both literals.
    let dir = tempfile::tempdir().unwrap();
    let enc = include_str!("../data/keys/vector_pkcs8_encrypted.pem");
    let pem_path = dir.path().join("enc.pem");
    let pass_path = dir.path().join("pass");
    std::fs::write(&pem_path, enc).unwrap();
    std::fs::write(&pass_path, "hunter2\n").unwrap();
    let with_pass = |pem: String, pass: String| {
        let mut pairs = base(a.clone(), pem);
        pairs.push(("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE", pass));
        pairs
    };
    let mixed = err_of(with_pass(pem_path.display().to_string(), "hunter2".into()));
    assert!(
        mixed.contains("both be paths or both be literal"),
        "{mixed}"
    );
    let mixed = err_of(with_pass(enc.into(), pass_path.display().to_string()));
    assert!(
        mixed.contains("both be paths or both be literal"),
        "{mixed}"
    );
    ResourcePrincipalAuth::from_env(lookup(with_pass(
        pem_path.display().to_string(),
        pass_path.display().to_string(),
    )))
    .unwrap();
    ResourcePrincipalAuth::from_env(lookup(with_pass(enc.into(), "hunter2".into()))).unwrap();
    let wrong = err_of(with_pass(enc.into(), "not-it".into()));
    assert!(wrong.contains("passphrase"), "{wrong}");
    assert!(!wrong.contains("not-it"), "{wrong}");
    // A missing file is named.
    let missing = dir.path().join("nope").display().to_string();
    let err = err_of(base(missing.clone(), pem(1)));
    assert!(
        err.contains(&missing) && err.contains("OCI_RESOURCE_PRINCIPAL_RPST"),
        "{err}"
    );
}

#[tokio::test]
async fn a_token_near_expiry_makes_the_next_signer_re_read_both_files() {
    let files = RpFiles::new();
    // Expires within the 5-minute refresh margin.
    let a = token(Duration::from_secs(60), "a");
    files.write(&a, 0);
    let auth = Arc::new(ResourcePrincipalAuth::from_env(files.env()).unwrap());
    assert_eq!(auth.signer().unwrap().key_id(), st(&a));

    // The platform rotates both files mid-test.
    let b = token(Duration::from_secs(3600), "b");
    files.write(&b, 1);
    let server = namespace_server().await;
    server.add_key(&st(&b), &public(1));
    let os = object_storage(auth.clone(), &server);
    os.get_namespace().await.unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "no 401 needed: renewed before sending");
    assert_eq!(reqs[0].verified, Ok(st(&b)), "new token and new key");

    // B is far from expiry: the files are not read again (garbage now would fail).
    std::fs::write(files.rpst(), "garbage").unwrap();
    std::fs::write(files.pem(), "garbage").unwrap();
    os.get_namespace().await.unwrap();
    assert_eq!(server.requests()[1].verified, Ok(st(&b)));
}

static CLOCK_OFFSET_SECS: AtomicU64 = AtomicU64::new(0);

fn shifted_clock() -> SystemTime {
    SystemTime::now() + Duration::from_secs(CLOCK_OFFSET_SECS.load(Ordering::SeqCst))
}

#[test]
fn expiry_is_read_from_exp_against_the_injected_clock() {
    let files = RpFiles::new();
    let a = token(Duration::from_secs(3600), "a");
    files.write(&a, 0);
    let auth = ResourcePrincipalAuth::with_clock(files.env(), shifted_clock).unwrap();
    let b = token(Duration::from_secs(7200), "b");
    files.write(&b, 2);
    assert_eq!(
        auth.signer().unwrap().key_id(),
        st(&a),
        "an hour left: cached"
    );
    CLOCK_OFFSET_SECS.store(3600 - 299, Ordering::SeqCst);
    let signer = auth.signer().unwrap();
    assert_eq!(
        signer.key_id(),
        st(&b),
        "inside the margin: both files re-read"
    );
    assert_eq!(signer.key().public_key(), &public(2));
}

#[tokio::test]
async fn a_401_re_reads_the_files_once_and_retries() {
    let files = RpFiles::new();
    let a = token(Duration::from_secs(3600), "a");
    files.write(&a, 0);
    let auth = Arc::new(ResourcePrincipalAuth::from_env(files.env()).unwrap());
    let server = namespace_server().await;
    // The service no longer accepts A (revoked); the platform has already written B.
    let b = token(Duration::from_secs(3600), "b");
    files.write(&b, 1);
    server.add_key(&st(&b), &public(1));
    let os = object_storage(auth.clone(), &server);
    os.get_namespace().await.unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].key_id(), st(&a));
    assert!(reqs[0].verified.is_err());
    assert_eq!(reqs[1].verified, Ok(st(&b)));

    // B is revoked too and the files now hold C, which the service does not know either:
    // exactly one re-read and one retry, then the typed 401.
    server.remove_key(&st(&b));
    let c = token(Duration::from_secs(3600), "c");
    files.write(&c, 2);
    let err = os.get_namespace().await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[2].key_id(), st(&b));
    assert_eq!(reqs[3].key_id(), st(&c));
}

// ---------------------------------------------------------------------------------------------
// API key from an OCI config file
// ---------------------------------------------------------------------------------------------

fn config_env(home: &Path) -> impl Fn(&str) -> Option<String> {
    lookup(vec![("HOME", home.display().to_string())])
}

#[tokio::test]
async fn config_file_key_signs_as_tenancy_user_fingerprint() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".oci")).unwrap();
    std::fs::write(home.path().join(".oci/key.pem"), pem(0)).unwrap();
    std::fs::write(
        home.path().join(".oci/config"),
        "[DEFAULT]\nuser=ocid1.user.oc1..u\nfingerprint=aa:bb\ntenancy=ocid1.tenancy.oc1..t\nregion=us-ashburn-1\nkey_file=~/.oci/key.pem\n\n[OTHER]\nuser=ocid1.user.oc1..other\n",
    )
    .unwrap();
    // ~/.oci/config and DEFAULT by default; OCI_CLI_PROFILE picks another profile.
    let auth = Arc::new(ConfigFileAuth::from_config(None, None, config_env(home.path())).unwrap());
    assert_eq!(auth.region().as_deref(), Some("us-ashburn-1"));
    let key_id = "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb";
    assert_eq!(auth.signer().unwrap().key_id(), key_id);
    let home_text = home.path().display().to_string();
    let other = ConfigFileAuth::from_config(
        None,
        None,
        lookup(vec![
            ("HOME", home_text),
            ("OCI_CLI_PROFILE", "OTHER".into()),
        ]),
    )
    .unwrap();
    assert_eq!(
        other.signer().unwrap().key_id(),
        "ocid1.tenancy.oc1..t/ocid1.user.oc1..other/aa:bb"
    );

    let server = namespace_server().await;
    server.add_key(key_id, &public(0));
    object_storage(auth, &server).get_namespace().await.unwrap();
    assert_eq!(server.requests()[0].verified.as_deref(), Ok(key_id));
}

#[test]
fn config_file_errors_name_the_file_profile_and_entry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_path = d.join("key.pem");
    std::fs::write(&key_path, pem(0)).unwrap();
    let enc_path = d.join("enc.pem");
    std::fs::write(
        &enc_path,
        include_str!("../data/keys/vector_pkcs8_encrypted.pem"),
    )
    .unwrap();
    let write = |name: &str, text: String| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let full = |key: &Path, extra: &str| {
        format!(
            "[DEFAULT]\nuser=u\nfingerprint=f\ntenancy=t\nkey_file={}\n{extra}",
            key.display()
        )
    };
    let err = |path: &Path, profile: &str| -> (String, AuthError) {
        let e = ConfigFileAuth::from_config(Some(path), Some(profile), |_| None).unwrap_err();
        (e.to_string(), e)
    };
    let shown = |p: &Path| p.display().to_string();

    // Missing config file.
    let missing = d.join("no-config");
    let (msg, e) = err(&missing, "DEFAULT");
    assert!(matches!(e, AuthError::Read { .. }));
    assert!(
        msg.contains("OCI config file") && msg.contains(&shown(&missing)),
        "{msg}"
    );

    // Missing profile.
    let ok = write("ok", full(&key_path, ""));
    let (msg, _) = err(&ok, "PROD");
    assert_eq!(msg, format!("profile PROD not found in {}", shown(&ok)));

    // Missing entry.
    let no_fp = write(
        "no-fp",
        format!(
            "[DEFAULT]\nuser=u\ntenancy=t\nkey_file={}\n",
            shown(&key_path)
        ),
    );
    let (msg, _) = err(&no_fp, "DEFAULT");
    assert_eq!(
        msg,
        format!("profile DEFAULT in {} has no fingerprint", shown(&no_fp))
    );

    // Malformed line.
    let bad = write(
        "bad",
        format!("{}this is not an entry\n", full(&key_path, "")),
    );
    let (msg, e) = err(&bad, "DEFAULT");
    assert!(
        matches!(e, AuthError::MalformedLine { line: 6, .. }),
        "{msg}"
    );
    assert!(msg.starts_with(&format!("{}:6:", shown(&bad))), "{msg}");

    // Unreadable key file.
    let gone = d.join("gone.pem");
    let cfg = write("gone", full(&gone, ""));
    let (msg, _) = err(&cfg, "DEFAULT");
    for part in [shown(&gone), shown(&cfg), "profile DEFAULT".into()] {
        assert!(msg.contains(&part), "{part} not in {msg}");
    }

    // Not a PEM key.
    let junk = write("junk.pem", "-----BEGIN CERTIFICATE-----\nxx\n".into());
    let cfg = write("junk", full(&junk, ""));
    let (msg, e) = err(&cfg, "DEFAULT");
    assert!(matches!(e, AuthError::Key { .. }));
    for part in [shown(&junk), shown(&cfg), "profile DEFAULT".into()] {
        assert!(msg.contains(&part), "{part} not in {msg}");
    }

    // Encrypted key: no passphrase, wrong passphrase (never echoed), right passphrase.
    let cfg = write("enc-none", full(&enc_path, ""));
    let (msg, _) = err(&cfg, "DEFAULT");
    assert!(
        msg.contains("no passphrase") && msg.contains(&shown(&enc_path)),
        "{msg}"
    );
    let cfg = write("enc-wrong", full(&enc_path, "pass_phrase=sup3r-s3cret\n"));
    let (msg, _) = err(&cfg, "DEFAULT");
    assert!(
        msg.contains("passphrase does not decrypt") && msg.contains(&shown(&cfg)),
        "{msg}"
    );
    assert!(!msg.contains("sup3r-s3cret"), "{msg}");
    let cfg = write("enc-right", full(&enc_path, "pass_phrase=hunter2\n"));
    let auth = ConfigFileAuth::from_config(Some(&cfg), None, |_| None).unwrap();
    let shown_auth = format!("{auth:?}");
    assert!(
        !shown_auth.contains("hunter2"),
        "Debug must not show pass_phrase: {shown_auth}"
    );

    // No HOME to find ~/.oci/config: an error, not a panic.
    let e = ConfigFileAuth::from_config(None, None, |_| None).unwrap_err();
    assert!(matches!(e, AuthError::NoHome(_)), "{e}");
}
