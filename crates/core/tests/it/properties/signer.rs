//! The signer and its verifier: a request signed by `Signer::sign` verifies for any method,
//! URL, body and date placement, and a change to any part the signature covers makes
//! `verify` refuse it.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::signer::{
    self, http_date, BodySigning, ReceivedRequest, Signer, VerifyError,
};
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use rsa::RsaPublicKey;

const KEY_ID: &str = "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/73:61:a2:21";

/// One signer for every case (the published vector's key: small, so each case is quick).
fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let pem = include_str!("../../data/keys/vector_pkcs1.pem");
        Signer::new(KEY_ID, PrivateKey::from_pem(pem, None).unwrap())
    })
}

fn public() -> RsaPublicKey {
    signer().key().public_key().clone()
}

/// A signed request as the server receives it.
#[derive(Debug, Clone)]
struct Sent {
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Vec<u8>,
    exempt: bool,
}

impl Sent {
    fn verify(&self, now: SystemTime) -> Result<String, VerifyError> {
        let request = ReceivedRequest {
            method: self.method.as_str(),
            target: &self.target,
            headers: &self.headers,
            body: &self.body,
            body_exempt: self.exempt,
        };
        signer::verify(&request, now, |id| (id == KEY_ID).then(public))
    }

    fn signed(&self) -> Vec<String> {
        let auth = self.headers["authorization"].to_str().unwrap();
        signer::parse_authorization(auth).unwrap().headers
    }
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::GET,
        Method::HEAD,
        Method::DELETE,
        Method::POST,
        Method::PUT,
        Method::PATCH,
    ])
}

fn url() -> impl Strategy<Value = url::Url> {
    (
        prop::sample::select(vec![
            "localhost",
            "streaming.us-ashburn-1.oci.oraclecloud.com",
        ]),
        prop::option::of(1u16..),
        prop::string::string_regex("(/[a-zA-Z0-9._~-]{0,8}|/%[0-9A-F]{2}){0,5}").unwrap(),
        prop::option::of(prop::string::string_regex("[a-zA-Z0-9=&%._-]{0,20}").unwrap()),
    )
        .prop_map(|(host, port, path, query)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            url::Url::parse(&format!("https://{host}{port}{path}{query}")).unwrap()
        })
}

/// A request signed at `now` as a client sends it (the client adds `host`).
fn sign(
    method: &Method,
    url: &url::Url,
    body: &[u8],
    body_signing: BodySigning,
    x_date: bool,
    content_type: Option<&str>,
    now: SystemTime,
) -> Sent {
    let mut headers = HeaderMap::new();
    if x_date {
        headers.insert("x-date", HeaderValue::from_str(&http_date(now)).unwrap());
    }
    if let Some(ct) = content_type {
        headers.insert("content-type", HeaderValue::from_str(ct).unwrap());
    }
    signer()
        .sign(method, url, &mut headers, body, body_signing, now)
        .unwrap();
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap()),
        None => url.host_str().unwrap().to_owned(),
    };
    headers.insert("host", HeaderValue::from_str(&host).unwrap());
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    Sent {
        method: method.clone(),
        target,
        headers,
        body: body.to_vec(),
        exempt: body_signing == BodySigning::Exclude,
    }
}

/// A change to one part the signature covers.
#[derive(Debug, Clone, Copy)]
enum Change {
    Method,
    Target,
    Host,
    Date,
    Body,
    ContentType,
    Signature,
    KeyId,
}

fn change() -> impl Strategy<Value = Change> {
    use Change::*;
    prop::sample::select(vec![
        Method,
        Target,
        Host,
        Date,
        Body,
        ContentType,
        Signature,
        KeyId,
    ])
}

/// `sent` with `change` applied, or `None` when the signature does not cover that part.
fn changed(sent: &Sent, change: Change, now: SystemTime) -> Option<Sent> {
    let mut out = sent.clone();
    let signed = sent.signed();
    let covers = |name: &str| signed.iter().any(|h| h == name);
    let set = |out: &mut Sent, name: &'static str, value: String| {
        out.headers
            .insert(name, HeaderValue::from_str(&value).unwrap());
    };
    match change {
        Change::Method => {
            out.method = if sent.method == Method::GET {
                Method::HEAD
            } else {
                Method::GET
            };
        }
        Change::Target => out.target.push('x'),
        Change::Host => {
            let host = format!("x{}", sent.headers["host"].to_str().unwrap());
            set(&mut out, "host", host);
        }
        Change::Date => {
            // Still within the allowed clock skew: only the signature can tell.
            let name = if covers("x-date") { "x-date" } else { "date" };
            set(&mut out, name, http_date(now + Duration::from_secs(1)));
        }
        Change::Body if covers("x-content-sha256") => out.body.push(b' '),
        Change::ContentType if covers("content-type") => {
            set(&mut out, "content-type", "text/plain".to_owned());
        }
        Change::Body | Change::ContentType => return None,
        Change::Signature | Change::KeyId => {
            let auth = sent.headers["authorization"].to_str().unwrap();
            let parsed = signer::parse_authorization(auth).unwrap();
            let (key_id, mut signature) = (parsed.key_id, parsed.signature);
            let key_id = match change {
                Change::KeyId => format!("{key_id}x"),
                _ => {
                    signature[0] ^= 1;
                    key_id
                }
            };
            set(
                &mut out,
                "authorization",
                signer::authorization(&parsed.headers.join(" "), &key_id, &signature),
            );
        }
    }
    Some(out)
}

fn request() -> impl Strategy<
    Value = (
        Method,
        url::Url,
        Vec<u8>,
        BodySigning,
        bool,
        Option<&'static str>,
        u64,
    ),
> {
    (
        method(),
        url(),
        prop::collection::vec(any::<u8>(), 0..64),
        prop::sample::select(vec![BodySigning::Include, BodySigning::Exclude]),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![
            "application/json",
            "application/octet-stream",
        ])),
        1_300_000_000u64..2_000_000_000,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_signed_request_verifies_and_any_change_to_a_signed_part_is_refused(
        (method, url, body, body_signing, x_date, content_type, secs) in request(),
        change in change(),
    ) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let sent = sign(&method, &url, &body, body_signing, x_date, content_type, now);
        prop_assert_eq!(sent.verify(now), Ok(KEY_ID.to_owned()));
        // Within the allowed skew either way.
        prop_assert!(sent.verify(now + Duration::from_secs(299)).is_ok());
        prop_assert!(sent.verify(now - Duration::from_secs(299)).is_ok());
        if let Some(altered) = changed(&sent, change, now) {
            let verdict = altered.verify(now);
            prop_assert!(verdict.is_err(), "{:?} still verifies: {:?}", change, altered);
        }
    }
}
