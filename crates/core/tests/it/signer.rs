//! The signer against OCI's published test vectors (contracts/oci-platform.md section E), and
//! every header-set rule, through the public API.

use std::time::{Duration, SystemTime};

use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::signer::{
    self, BodySigning, ReceivedRequest, Signer, SigningInput, VerifyError, EMPTY_BODY_SHA256,
};
use http::{HeaderMap, HeaderValue, Method};

const KEY_ID: &str = "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq/ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq/73:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5:b7";
const DATE: &str = "Thu, 05 Jan 2014 21:31:40 GMT";
const GET_URL: &str = "https://iaas.us-phoenix-1.oraclecloud.com/20160918/instances?availabilityDomain=Pjwf%3A%20PHX-AD-1&compartmentId=ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa&displayName=TeamXInstances&volumeId=ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q";
const GET_AUTHORIZATION: &str = r#"Signature version="1",headers="date (request-target) host",keyId="ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq/ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq/73:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5:b7",algorithm="rsa-sha256",signature="GBas7grhyrhSKHP6AVIj/h5/Vp8bd/peM79H9Wv8kjoaCivujVXlpbKLjMPeDUhxkFIWtTtLBj3sUzaFj34XE6YZAHc9r2DmE4pMwOAy/kiITcZxa1oHPOeRheC0jP2dqbTll8fmTZVwKZOKHYPtrLJIJQHJjNvxFWeHQjMaR7M=""#;
const POST_URL: &str = "https://iaas.us-phoenix-1.oraclecloud.com/20160918/volumeAttachments";
const POST_BODY: &str = "{\n    \"compartmentId\": \"ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa\",\n    \"instanceId\": \"ocid1.instance.oc1.phx.abuw4ljrlsfiqw6vzzxb43vyypt4pkodawglp3wqxjqofakrwvou52gb6s5a\",\n    \"volumeId\": \"ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q\"\n}";
const POST_AUTHORIZATION: &str = r#"Signature version="1",headers="date (request-target) host content-length content-type x-content-sha256",keyId="ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq/ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq/73:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5:b7",algorithm="rsa-sha256",signature="Mje8vIDPlwIHmD/cTDwRxE7HaAvBg16JnVcsuqaNRim23fFPgQfLoOOxae6WqKb1uPjYEl0qIdazWaBy/Ml8DRhqlocMwoSXv0fbukP8J5N80LCmzT/FFBvIvTB91XuXI3hYfP9Zt1l7S6ieVadHUfqBedWH0itrtPJBgKmrWso=""#;

fn vector_key() -> PrivateKey {
    let pem = include_str!("../data/keys/vector_pkcs1.pem");
    PrivateKey::from_pem(pem, None).unwrap()
}

/// The vectors' date header. It is set on the request rather than produced from a clock: the
/// published date says Thursday, but 5 January 2014 was a Sunday, so no clock formats it.
fn dated(mut map: HeaderMap) -> HeaderMap {
    map.insert("date", HeaderValue::from_static(DATE));
    map
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

fn signed_header_list(map: &HeaderMap) -> String {
    let auth = map["authorization"].to_str().unwrap();
    signer::parse_authorization(auth).unwrap().headers.join(" ")
}

#[test]
fn get_vector_signing_string_and_authorization_match_byte_for_byte() {
    let url = url::Url::parse(GET_URL).unwrap();
    let target = format!("{}?{}", url.path(), url.query().unwrap());
    let input = SigningInput {
        method: "GET",
        target: &target,
        host: "iaas.us-phoenix-1.oraclecloud.com",
        date: DATE,
        x_date: false,
        body: None,
    };
    let (string, headers) = signer::signing_string(&input);
    assert_eq!(
        string,
        format!(
            "date: {DATE}\n(request-target): get {target}\nhost: iaas.us-phoenix-1.oraclecloud.com"
        )
    );
    assert_eq!(headers, "date (request-target) host");
    assert_eq!(
        Signer::new(KEY_ID, vector_key()).authorization_for(&input),
        GET_AUTHORIZATION
    );
}

#[test]
fn get_vector_through_sign_keeps_percent_encoding() {
    let signer = Signer::new(KEY_ID, vector_key());
    let mut map = dated(HeaderMap::new());
    let url = url::Url::parse(GET_URL).unwrap();
    signer
        .sign(
            &Method::GET,
            &url,
            &mut map,
            b"",
            BodySigning::Include,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(map["date"], DATE);
    assert_eq!(map["authorization"], GET_AUTHORIZATION);
    assert!(!map.contains_key("x-content-sha256"));
}

#[test]
fn post_vector_authorization_matches_byte_for_byte() {
    assert_eq!(POST_BODY.len(), 316);
    let signer = Signer::new(KEY_ID, vector_key());
    let mut map = dated(headers(&[("content-type", "application/json")]));
    let url = url::Url::parse(POST_URL).unwrap();
    signer
        .sign(
            &Method::POST,
            &url,
            &mut map,
            POST_BODY.as_bytes(),
            BodySigning::Include,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(
        map["x-content-sha256"],
        "V9Z20UJTvkvpJ50flBzKE32+6m2zJjweHpDMX/U4Uy0="
    );
    assert_eq!(map["content-length"], "316");
    assert_eq!(map["authorization"], POST_AUTHORIZATION);
}

#[test]
fn every_key_form_reproduces_the_vectors() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keys");
    for (file, pass) in [
        ("vector_pkcs8.pem", None),
        ("vector_pkcs8_encrypted.pem", Some("hunter2")),
        ("vector_pkcs1_aes256.pem", Some("hunter2")),
    ] {
        let pem = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        let signer = Signer::new(KEY_ID, PrivateKey::from_pem(&pem, pass).unwrap());
        let mut map = dated(HeaderMap::new());
        signer
            .sign(
                &Method::GET,
                &url::Url::parse(GET_URL).unwrap(),
                &mut map,
                b"",
                BodySigning::Include,
                SystemTime::now(),
            )
            .unwrap();
        assert_eq!(map["authorization"], GET_AUTHORIZATION, "{file}");
    }
}

#[test]
fn host_carries_the_port_when_the_url_has_one() {
    // The go-sdk's trivial vector: GET http://localhost:7000/api.
    let signer = Signer::new("k", vector_key());
    let mut map = dated(HeaderMap::new());
    let url = url::Url::parse("http://localhost:7000/api").unwrap();
    signer
        .sign(
            &Method::GET,
            &url,
            &mut map,
            b"",
            BodySigning::Include,
            SystemTime::now(),
        )
        .unwrap();
    let auth = map["authorization"].to_str().unwrap();
    let parsed = signer::parse_authorization(auth).unwrap();
    let (string, _) = signer::signing_string(&SigningInput {
        method: "GET",
        target: "/api",
        host: "localhost:7000",
        date: DATE,
        x_date: false,
        body: None,
    });
    assert_eq!(
        string,
        format!("date: {DATE}\n(request-target): get /api\nhost: localhost:7000")
    );
    assert_eq!(parsed.signature, vector_key().sign(string.as_bytes()));
}

#[test]
fn header_sets_per_method() {
    let signer = Signer::new("k", vector_key());
    let url = url::Url::parse("https://example.com/x").unwrap();
    for (method, signing, expected) in [
        (
            Method::GET,
            BodySigning::Include,
            "date (request-target) host",
        ),
        (
            Method::HEAD,
            BodySigning::Include,
            "date (request-target) host",
        ),
        (
            Method::DELETE,
            BodySigning::Include,
            "date (request-target) host",
        ),
        (
            Method::POST,
            BodySigning::Include,
            "date (request-target) host content-length content-type x-content-sha256",
        ),
        (
            Method::PUT,
            BodySigning::Include,
            "date (request-target) host content-length content-type x-content-sha256",
        ),
        (
            Method::PATCH,
            BodySigning::Include,
            "date (request-target) host content-length content-type x-content-sha256",
        ),
        (
            Method::POST,
            BodySigning::Exclude,
            "date (request-target) host",
        ),
        (
            Method::PUT,
            BodySigning::Exclude,
            "date (request-target) host",
        ),
    ] {
        let mut map = HeaderMap::new();
        signer
            .sign(&method, &url, &mut map, b"{}", signing, SystemTime::now())
            .unwrap();
        assert_eq!(signed_header_list(&map), expected, "{method} {signing:?}");
        if signing == BodySigning::Exclude {
            assert!(
                !map.contains_key("x-content-sha256"),
                "{method}: body-exempt sets no body hash"
            );
        }
    }
}

#[test]
fn an_empty_post_signs_the_empty_body_hash_and_zero_length() {
    // GetSecretBundleByName is a POST with no body.
    let signer = Signer::new("k", vector_key());
    let mut map = HeaderMap::new();
    let url = url::Url::parse("https://secrets.vaults.us-phoenix-1.oci.oraclecloud.com/20190301/secretbundles/actions/getByName?secretName=a&vaultId=b").unwrap();
    signer
        .sign(
            &Method::POST,
            &url,
            &mut map,
            b"",
            BodySigning::Include,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(map["x-content-sha256"], EMPTY_BODY_SHA256);
    assert_eq!(map["content-length"], "0");
    assert_eq!(signer::content_sha256(b""), EMPTY_BODY_SHA256);
}

#[test]
fn x_date_replaces_date_when_present() {
    let signer = Signer::new("k", vector_key());
    let mut map = headers(&[("x-date", DATE)]);
    let url = url::Url::parse("https://example.com/x").unwrap();
    signer
        .sign(
            &Method::GET,
            &url,
            &mut map,
            b"",
            BodySigning::Include,
            SystemTime::now(),
        )
        .unwrap();
    assert!(!map.contains_key("date"));
    assert_eq!(signed_header_list(&map), "x-date (request-target) host");
}

#[test]
fn an_existing_content_type_is_kept_and_signed() {
    let signer = Signer::new("k", vector_key());
    let mut map = headers(&[("content-type", "application/octet-stream")]);
    let url = url::Url::parse("https://example.com/x").unwrap();
    signer
        .sign(
            &Method::PUT,
            &url,
            &mut map,
            b"abc",
            BodySigning::Include,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(map["content-type"], "application/octet-stream");
}

#[test]
fn the_cache_reuses_a_signature_only_for_the_same_signing_string() {
    let signer = Signer::new("k", vector_key());
    let input = |target: &'static str, date: &'static str| SigningInput {
        method: "POST",
        target,
        host: "cell-1.streaming.us-phoenix-1.oci.oraclecloud.com",
        date,
        x_date: false,
        body: None,
    };
    let a = signer.authorization_for(&input("/20180418/streams/s1/messages", DATE));
    assert_eq!(
        a,
        signer.authorization_for(&input("/20180418/streams/s1/messages", DATE))
    );
    let b = signer.authorization_for(&input("/20180418/streams/s2/messages", DATE));
    assert_ne!(a, b);
    let c = signer.authorization_for(&input(
        "/20180418/streams/s1/messages",
        "Thu, 05 Jan 2014 21:31:41 GMT",
    ));
    assert_ne!(a, c);
    // Back to the first second: a fresh signature, still identical because PKCS#1 v1.5 is deterministic.
    assert_eq!(
        a,
        signer.authorization_for(&input("/20180418/streams/s1/messages", DATE))
    );
}

/// At each new second every concurrent request needs the same new signature: one computes it,
/// the others wait for it instead of each doing the RSA operation.
#[test]
fn concurrent_requests_for_a_new_signature_compute_it_once() {
    let signer = Signer::new("k", vector_key());
    let barrier = std::sync::Barrier::new(16);
    let values: Vec<String> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    signer.authorization_for(&SigningInput {
                        method: "POST",
                        target: "/20180418/streams/s1/messages",
                        host: "cell-1.streaming.us-phoenix-1.oci.oraclecloud.com",
                        date: DATE,
                        x_date: false,
                        body: None,
                    })
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(values.iter().all(|v| v == &values[0]));
    assert_eq!(signer.signatures_computed(), 1);
}

fn request_for<'a>(
    method: &'a str,
    target: &'a str,
    map: &'a HeaderMap,
    body: &'a [u8],
    exempt: bool,
) -> ReceivedRequest<'a> {
    ReceivedRequest {
        method,
        target,
        headers: map,
        body,
        body_exempt: exempt,
    }
}

fn signed(
    method: Method,
    url: &str,
    body: &[u8],
    signing: BodySigning,
    at: SystemTime,
) -> HeaderMap {
    let signer = Signer::new(KEY_ID, vector_key());
    let url = url::Url::parse(url).unwrap();
    let mut map = HeaderMap::new();
    signer
        .sign(&method, &url, &mut map, body, signing, at)
        .unwrap();
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap()),
        None => url.host_str().unwrap().to_owned(),
    };
    map.insert("host", HeaderValue::from_str(&host).unwrap());
    map
}

#[test]
fn verify_accepts_what_the_signer_makes_and_rejects_tampering() {
    let public = vector_key().public_key().clone();
    let lookup = |id: &str| (id == KEY_ID).then(|| public.clone());
    let now = SystemTime::now();
    let body = br#"{"a":1}"#;
    let map = signed(
        Method::POST,
        "http://127.0.0.1:9000/20180418/streams/x/cursors",
        body,
        BodySigning::Include,
        now,
    );
    let ok = request_for("POST", "/20180418/streams/x/cursors", &map, body, false);
    assert_eq!(signer::verify(&ok, now, lookup).unwrap(), KEY_ID);

    let tampered_body = request_for(
        "POST",
        "/20180418/streams/x/cursors",
        &map,
        br#"{"a":2}"#,
        false,
    );
    assert_eq!(
        signer::verify(&tampered_body, now, lookup),
        Err(VerifyError::BodyHashMismatch)
    );
    let other_target = request_for("POST", "/20180418/streams/y/cursors", &map, body, false);
    assert_eq!(
        signer::verify(&other_target, now, lookup),
        Err(VerifyError::BadSignature)
    );
    let other_method = request_for("PUT", "/20180418/streams/x/cursors", &map, body, false);
    assert_eq!(
        signer::verify(&other_method, now, lookup),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        signer::verify(&ok, now, |_| None),
        Err(VerifyError::UnknownKey)
    );
    let late = now + Duration::from_secs(301);
    assert_eq!(
        signer::verify(&ok, late, lookup),
        Err(VerifyError::DateSkew)
    );
    let early = now - Duration::from_secs(301);
    assert_eq!(
        signer::verify(&ok, early, lookup),
        Err(VerifyError::DateSkew)
    );

    let mut unsigned = map.clone();
    unsigned.remove("authorization");
    let req = request_for(
        "POST",
        "/20180418/streams/x/cursors",
        &unsigned,
        body,
        false,
    );
    assert_eq!(signer::verify(&req, now, lookup), Err(VerifyError::Missing));
}

#[test]
fn verify_requires_the_body_headers_except_for_body_exempt_operations() {
    let public = vector_key().public_key().clone();
    let lookup = |_: &str| Some(public.clone());
    let now = SystemTime::now();
    let body = br#"{"messages":[]}"#;
    let map = signed(
        Method::POST,
        "http://127.0.0.1:9000/20180418/streams/x/messages",
        body,
        BodySigning::Exclude,
        now,
    );
    let exempt = request_for("POST", "/20180418/streams/x/messages", &map, body, true);
    assert!(signer::verify(&exempt, now, lookup).is_ok());
    let not_exempt = request_for("POST", "/20180418/streams/x/messages", &map, body, false);
    assert_eq!(
        signer::verify(&not_exempt, now, lookup),
        Err(VerifyError::HeaderNotSigned("content-length"))
    );
    // Body-exempt operations signed with the body headers are accepted too.
    let full = signed(
        Method::POST,
        "http://127.0.0.1:9000/20180418/streams/x/messages",
        body,
        BodySigning::Include,
        now,
    );
    assert!(signer::verify(
        &request_for("POST", "/20180418/streams/x/messages", &full, body, true),
        now,
        lookup
    )
    .is_ok());
}

#[test]
fn malformed_authorization_headers_are_rejected() {
    for bad in [
        "Basic abc",
        r#"Signature version="1",headers="date",keyId="k",algorithm="hmac-sha256",signature="AA==""#,
        r#"Signature version="2",headers="date",keyId="k",algorithm="rsa-sha256",signature="AA==""#,
        r#"Signature version="1",headers="date",algorithm="rsa-sha256",signature="AA==""#,
        r#"Signature version="1",headers="date",keyId="k",algorithm="rsa-sha256",signature="!!""#,
        r#"Signature version="1",keyId="k",keyId="j",algorithm="rsa-sha256",signature="AA==""#,
        r#"Signature version="1",keyId=k"#,
    ] {
        assert!(
            matches!(
                signer::parse_authorization(bad),
                Err(VerifyError::Malformed(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn verify_checks_2048_bit_keys_too_and_rejects_another_keys_signature() {
    // Real OCI keys have 2048 bits or more; they take the fast verifier, the vector key the
    // portable one. Both must accept good signatures and refuse everything else.
    let key = PrivateKey::from_rsa(rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap());
    let other =
        PrivateKey::from_rsa(rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap());
    let now = SystemTime::now();
    let body = br#"{"a":1}"#;
    let url = url::Url::parse("http://127.0.0.1:9000/20180418/streams/x/cursors").unwrap();
    let mut map = HeaderMap::new();
    Signer::new(KEY_ID, key.clone())
        .sign(
            &Method::POST,
            &url,
            &mut map,
            body,
            BodySigning::Include,
            now,
        )
        .unwrap();
    map.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
    let ok = request_for("POST", "/20180418/streams/x/cursors", &map, body, false);
    let public = key.public_key().clone();
    assert_eq!(
        signer::verify(&ok, now, |_| Some(public.clone())).unwrap(),
        KEY_ID
    );
    let moved = request_for("POST", "/20180418/streams/y/cursors", &map, body, false);
    assert_eq!(
        signer::verify(&moved, now, |_| Some(public.clone())),
        Err(VerifyError::BadSignature)
    );
    let wrong = other.public_key().clone();
    assert_eq!(
        signer::verify(&ok, now, |_| Some(wrong.clone())),
        Err(VerifyError::BadSignature)
    );
}
