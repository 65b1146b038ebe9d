//! Property tests of request parsing against a running emulator: random PutMessages bodies,
//! cursors, Authorization headers, object names and query strings get a well-formed 4xx OCI
//! error (or success), never a panic, a 500 or a dropped connection. A few hundred cases each.

use datasync_core::oci::models;
use datasync_core::oci::signer::{parse_authorization, BodySigning};
use http::{HeaderMap, HeaderValue, Method};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::util::*;

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A well-formed OCI error answer with one of `allowed` statuses.
fn check_error(
    answer: &datasync_emulator::client::Answer,
    allowed: &[u16],
) -> Result<String, TestCaseError> {
    let status = answer.status.as_u16();
    prop_assert!(
        allowed.contains(&status),
        "status {status}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let body: Result<models::ErrorBody, _> = answer.json();
    prop_assert!(body.is_ok(), "not an OCI error body: {:?}", answer.body);
    prop_assert!(answer.header("opc-request-id").is_some());
    Ok(body.map(|b| b.code).unwrap_or_default())
}

/// Arbitrary JSON, nested a little.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
        "[A-Za-z0-9+/=]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("messages".to_owned()),
                    Just("key".to_owned()),
                    Just("value".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// PutMessages bodies: raw bytes, arbitrary JSON, and well-shaped bodies whose keys and values
/// are random text (mostly not base64).
fn put_body() -> impl Strategy<Value = Vec<u8>> {
    let entry = (
        prop::option::of(prop_oneof![".{0,12}", "[A-Za-z0-9+/]{0,8}={0,3}"]),
        prop_oneof![".{0,16}", "[A-Za-z0-9+/]{0,16}={0,3}", "[^\"\\\\]{0,8}"],
    );
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        json_value()
            .prop_map(|v| serde_json::to_vec(&serde_json::json!({ "messages": v })).unwrap()),
        prop::collection::vec(entry, 0..6).prop_map(|entries| {
            let messages: Vec<_> = entries
                .into_iter()
                .map(|(key, value)| serde_json::json!({ "key": key, "value": value }))
                .collect();
            serde_json::to_vec(&serde_json::json!({ "messages": messages })).unwrap()
        }),
    ]
}

#[test]
fn put_messages_bodies_never_fail_the_server() {
    let rt = runtime();
    let emu = rt.block_on(start());
    let stream = rt.block_on(emu.create_stream("fuzz", 2)).id;
    runner(300)
        .run(&put_body(), |body| {
            let answer = rt.block_on(emu.put_raw(&stream, body));
            if answer.status == 200 {
                let result: Result<models::PutMessagesResult, _> = answer.json();
                prop_assert!(result.is_ok());
                return Ok(());
            }
            let code = check_error(&answer, &[400])?;
            prop_assert!(
                code == "InvalidParameter" || code == "CannotParseRequest",
                "code {code}"
            );
            Ok(())
        })
        .unwrap();

    // Oversize: a message over 1 MB decoded, a request over 1 MB decoded, a body over 2 MiB.
    let big = b64(&vec![7u8; datasync_emulator::MAX_MESSAGE_BYTES + 1]);
    let one = serde_json::json!({ "messages": [{ "value": big }] });
    let answer = rt.block_on(emu.put_raw(&stream, serde_json::to_vec(&one).unwrap()));
    assert_error(&answer, 413, "PayloadTooLarge");
    let half = b64(&vec![7u8; datasync_emulator::MAX_PUT_BYTES / 2 + 1]);
    let two = serde_json::json!({ "messages": [{ "value": half }, { "value": half }] });
    let answer = rt.block_on(emu.put_raw(&stream, serde_json::to_vec(&two).unwrap()));
    assert_error(&answer, 413, "PayloadTooLarge");
    let answer = rt.block_on(emu.put_raw(&stream, vec![b' '; 2 * 1024 * 1024 + 1]));
    assert_error(&answer, 413, "PayloadTooLarge");
}

#[test]
fn random_cursors_are_invalid_parameters() {
    let rt = runtime();
    let emu = rt.block_on(start());
    let stream = rt.block_on(emu.create_stream("cursors", 1)).id;
    let valid = rt.block_on(emu.cursor(
        &stream,
        &partition_cursor("0", models::CursorType::TrimHorizon, None),
    ));
    let strategy = prop_oneof![
        ".{1,64}",
        "[A-Za-z0-9_-]{1,200}",
        // A valid cursor with one character changed, cut short, or extended.
        (0..valid.len(), "[A-Za-z0-9_-]").prop_map({
            let valid = valid.clone();
            move |(i, c)| {
                let mut s = valid.clone();
                s.replace_range(i..=i, &c);
                s
            }
        }),
        (1..valid.len()).prop_map({
            let valid = valid.clone();
            move |n| valid[..n].to_owned()
        }),
        "[A-Za-z0-9_-]{1,8}".prop_map({
            let valid = valid.clone();
            move |tail| format!("{valid}{tail}")
        }),
    ]
    .prop_filter("not the valid cursor", {
        let valid = valid.clone();
        move |s| *s != valid
    });
    runner(300)
        .run(&strategy, |cursor| {
            let encoded = utf8_percent_encode(&cursor, NON_ALPHANUMERIC).to_string();
            for path in [
                format!("/20180418/streams/{stream}/messages?cursor={encoded}"),
                format!("/20180418/streams/{stream}/commit?cursor={encoded}"),
            ] {
                let answer = if path.contains("/commit") {
                    rt.block_on(emu.client.send(
                        Method::POST,
                        &path,
                        Vec::new(),
                        BodySigning::Include,
                        HeaderMap::new(),
                    ))
                } else {
                    rt.block_on(emu.client.get(&path))
                }
                .unwrap();
                let code = check_error(&answer, &[400])?;
                prop_assert_eq!(code, "InvalidParameter");
            }
            Ok(())
        })
        .unwrap();
}

/// Authorization values: random text, and a valid value with one character changed.
#[test]
fn random_authorization_headers_are_401() {
    let rt = runtime();
    let emu = rt.block_on(start());
    let http = reqwest::Client::new();
    let url = format!("{}/20180418/streams?compartmentId=x", emu.base);
    // A valid signature of this very request, to mutate.
    let mut signed = HeaderMap::new();
    let signer = {
        let profile = emu.emulator.profile();
        let pem = std::fs::read_to_string(&profile.key_file).unwrap();
        datasync_core::oci::signer::Signer::new(
            profile.key_id(),
            datasync_core::oci::key::PrivateKey::from_pem(&pem, None).unwrap(),
        )
    };
    signer
        .sign(
            &Method::GET,
            &url::Url::parse(&url).unwrap(),
            &mut signed,
            b"",
            BodySigning::Include,
            std::time::SystemTime::now(),
        )
        .unwrap();
    let valid = signed["authorization"].to_str().unwrap().to_owned();
    let date = signed["date"].clone();
    let strategy = prop_oneof![
        ".{0,80}",
        "Signature [ -~]{0,200}",
        r#"Signature version="1",headers="[a-z() -]{0,40}",keyId="[ -!#-~]{0,40}",algorithm="rsa-sha256",signature="[A-Za-z0-9+/=]{0,40}""#,
        (0..valid.len(), "[ -~]").prop_map({
            let valid = valid.clone();
            move |(i, c)| {
                let mut s = valid.clone();
                s.replace_range(i..=i, &c);
                s
            }
        }),
    ]
    .prop_filter("not the valid value", {
        let valid = valid.clone();
        move |s| *s != valid
    });
    runner(300)
        .run(&strategy, |value| {
            let Ok(header) = HeaderValue::from_bytes(value.as_bytes()) else {
                return Ok(());
            };
            let response = rt
                .block_on(
                    http.get(&url)
                        .header("date", date.clone())
                        .header("authorization", header)
                        .send(),
                )
                .unwrap();
            let status = response.status().as_u16();
            let body = rt.block_on(response.bytes()).unwrap();
            // A change the signature does not cover (e.g. a misspelt `version`, which is
            // optional) may still verify: only the keyId, header list and signature count.
            if parse_authorization(&value).ok() == parse_authorization(&valid).ok() {
                prop_assert!(status == 200 || status == 401);
                return Ok(());
            }
            prop_assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
            let error: models::ErrorBody = serde_json::from_slice(&body).unwrap();
            prop_assert_eq!(error.code, "NotAuthenticated");
            Ok(())
        })
        .unwrap();
    // The valid value still works (the server is fine after all that).
    let response = rt
        .block_on(
            http.get(&url)
                .header("date", date)
                .header("authorization", valid)
                .send(),
        )
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn object_names_round_trip_or_are_rejected() {
    let rt = runtime();
    let emu = rt.block_on(start());
    let compartment = emu.emulator.profile().compartment.clone();
    let answer = rt
        .block_on(emu.client.json(
            Method::POST,
            "/n/local/b/",
            &models::CreateBucketDetails {
                name: "names".into(),
                compartment_id: compartment,
            },
        ))
        .unwrap();
    assert_eq!(answer.status, 200);
    let strategy = prop_oneof![
        ".{1,40}",
        "[a-z0-9/ %?#&=+.-]{1,40}",
        "/{0,3}[a-z]{0,3}/{0,3}"
    ];
    runner(200)
        .run(&strategy, |name| {
            let encoded = utf8_percent_encode(&name, NON_ALPHANUMERIC).to_string();
            let path = format!("/n/local/b/names/o/{encoded}");
            let put = rt
                .block_on(emu.client.send(
                    Method::PUT,
                    &path,
                    name.as_bytes().to_vec(),
                    BodySigning::Exclude,
                    HeaderMap::new(),
                ))
                .unwrap();
            if put.status != 200 {
                check_error(&put, &[400])?;
                return Ok(());
            }
            let got = rt.block_on(emu.client.get(&path)).unwrap();
            prop_assert_eq!(got.status, 200);
            prop_assert_eq!(&got.body[..], name.as_bytes());
            Ok(())
        })
        .unwrap();
}

#[test]
fn random_query_strings_never_fail_the_server() {
    let rt = runtime();
    let emu = rt.block_on(start());
    let stream = rt.block_on(emu.create_stream("queries", 1)).id;
    let paths = [
        "/20180418/streams".to_owned(),
        format!("/20180418/streams/{stream}/messages"),
        "/20180608/secrets".to_owned(),
        "/n/local/b/none/o".to_owned(),
        "/20190301/secretbundles/ocid1.vaultsecret.oc1.local.x".to_owned(),
    ];
    let pair = (
        prop_oneof![
            Just("limit".to_owned()),
            Just("cursor".to_owned()),
            Just("compartmentId".to_owned()),
            Just("stage".to_owned()),
            Just("prefix".to_owned()),
            Just("start".to_owned()),
            Just("versionNumber".to_owned()),
            ".{0,8}"
        ],
        prop_oneof![".{0,12}", "-?[0-9]{1,22}"],
    );
    let strategy = (
        0..paths.len(),
        prop::collection::vec(pair, 0..4),
        prop::option::of("[&=%;+]{1,4}"),
    );
    runner(300)
        .run(&strategy, |(which, pairs, junk)| {
            let mut query: Vec<String> = pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        utf8_percent_encode(k, NON_ALPHANUMERIC),
                        utf8_percent_encode(v, NON_ALPHANUMERIC)
                    )
                })
                .collect();
            query.extend(junk);
            let path = format!("{}?{}", paths[which], query.join("&"));
            let answer = rt.block_on(emu.client.get(&path)).unwrap();
            if answer.status != 200 {
                check_error(&answer, &[400, 404])?;
            }
            Ok(())
        })
        .unwrap();
}
