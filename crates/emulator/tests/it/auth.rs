//! Signature verification: every route is signed; bad signatures get 401 and store nothing.

use std::time::{Duration, SystemTime};

use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::signer::{BodySigning, Signer};
use http::{HeaderMap, HeaderValue, Method};

use crate::util::*;

async fn raw(
    emu: &Running,
    method: Method,
    path: &str,
    headers: HeaderMap,
    body: &[u8],
) -> datasync_emulator::client::Answer {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", emu.base))
        .headers(headers)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    datasync_emulator::client::Answer {
        status,
        headers,
        body: response.bytes().await.unwrap(),
    }
}

fn sign(
    signer: &Signer,
    emu: &Running,
    method: &Method,
    path: &str,
    body: &[u8],
    signing: BodySigning,
    now: SystemTime,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let url = url::Url::parse(&format!("{}{path}", emu.base)).unwrap();
    signer
        .sign(method, &url, &mut headers, body, signing, now)
        .unwrap();
    headers
}

fn profile_signer(emu: &Running) -> Signer {
    let p = emu.emulator.profile();
    Signer::new(
        p.key_id(),
        PrivateKey::from_pem(&std::fs::read_to_string(&p.key_file).unwrap(), None).unwrap(),
    )
}

#[tokio::test]
async fn unsigned_forged_stale_and_tampered_requests_get_401() {
    let emu = start().await;
    let s = emu.create_stream("auth", 1).await.id;
    let put_path = format!("/20180418/streams/{s}/messages");
    let body = br#"{"messages":[{"value":"YQ=="}]}"#;
    let signer = profile_signer(&emu);
    let now = SystemTime::now();

    // No signature at all, on every service.
    for path in [
        "/20180418/streams?compartmentId=x",
        "/n/",
        "/20181201/topics/x",
        "/20190301/secretbundles/x",
        "/20180608/secrets?compartmentId=x",
    ] {
        assert_error(
            &raw(&emu, Method::GET, path, HeaderMap::new(), b"").await,
            401,
            "NotAuthenticated",
        );
    }
    // A key nobody registered.
    let stranger = Signer::new(
        emu.emulator.profile().key_id(),
        PrivateKey::from_rsa(rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap()),
    );
    let headers = sign(
        &stranger,
        &emu,
        &Method::POST,
        &put_path,
        body,
        BodySigning::Exclude,
        now,
    );
    assert_error(
        &raw(&emu, Method::POST, &put_path, headers, body).await,
        401,
        "NotAuthenticated",
    );
    // A date more than 5 minutes off, either way.
    for skew in [
        now - Duration::from_secs(400),
        now + Duration::from_secs(400),
    ] {
        let headers = sign(
            &signer,
            &emu,
            &Method::POST,
            &put_path,
            body,
            BodySigning::Exclude,
            skew,
        );
        assert_error(
            &raw(&emu, Method::POST, &put_path, headers, body).await,
            401,
            "NotAuthenticated",
        );
    }
    // A body that is not the one signed (x-content-sha256 mismatch).
    let headers = sign(
        &signer,
        &emu,
        &Method::POST,
        &put_path,
        body,
        BodySigning::Include,
        now,
    );
    let other = br#"{"messages":[{"value":"Yg=="}]}"#;
    assert_error(
        &raw(&emu, Method::POST, &put_path, headers, other).await,
        401,
        "NotAuthenticated",
    );
    // A non-exempt POST signed without the body headers.
    let create = br#"{"name":"x","partitions":1,"compartmentId":"c"}"#;
    let headers = sign(
        &signer,
        &emu,
        &Method::POST,
        "/20180418/streams",
        create,
        BodySigning::Exclude,
        now,
    );
    assert_error(
        &raw(&emu, Method::POST, "/20180418/streams", headers, create).await,
        401,
        "NotAuthenticated",
    );
    // A signature for another path.
    let mut headers = sign(
        &signer,
        &emu,
        &Method::GET,
        "/n/",
        b"",
        BodySigning::Include,
        now,
    );
    headers.remove("content-type");
    assert_error(
        &raw(
            &emu,
            Method::GET,
            "/20180418/streams?compartmentId=x",
            headers,
            b"",
        )
        .await,
        401,
        "NotAuthenticated",
    );
    // Nothing was stored.
    assert_eq!(
        emu.emulator.stream_stats().await.unwrap()[0].partitions[0].2,
        0
    );

    // Body-exempt operations are accepted signed either way.
    for signing in [BodySigning::Exclude, BodySigning::Include] {
        let headers = sign(
            &signer,
            &emu,
            &Method::POST,
            &put_path,
            body,
            signing,
            SystemTime::now(),
        );
        let answer = raw(&emu, Method::POST, &put_path, headers, body).await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert!(answer.header("opc-request-id").is_some());
    }
}

#[tokio::test]
async fn resource_principal_tokens_verify_until_they_expire() {
    let emu = start().await;
    let dir = emu.dir.path().join("rp-populate");
    let rp = emu
        .emulator
        .mint_resource_principal("populate", &dir, Duration::from_secs(2))
        .unwrap();
    let env: std::collections::HashMap<String, String> = rp.env().into_iter().collect();
    assert_eq!(env["OCI_RESOURCE_PRINCIPAL_VERSION"], "2.2");
    // The core's resource principal provider reads the files as OCI Functions provides them.
    let auth =
        datasync_core::oci::auth::ResourcePrincipalAuth::from_env(|k| env.get(k).cloned()).unwrap();
    let signer = datasync_core::oci::auth::AuthProvider::signer(&auth).unwrap();
    assert!(signer.key_id().starts_with("ST$"));
    let client = datasync_emulator::client::SignedClient::new(
        &emu.base,
        Signer::new(signer.key_id(), signer.key().clone()),
    )
    .unwrap();
    assert_eq!(client.get("/n/").await.unwrap().status, 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_error(&client.get("/n/").await.unwrap(), 401, "NotAuthenticated");
}

/// The emulator reuses the RSA check of a signature it verified in the same second; the checks
/// that depend on the body and the clock must still run on every request.
#[tokio::test]
async fn a_remembered_signature_still_checks_body_and_date() {
    let emu = start().await;
    let signer = profile_signer(&emu);
    let path = "/20181201/topics";
    let body = serde_json::to_vec(&serde_json::json!({
        "name": "memo",
        "compartmentId": emu.emulator.profile().compartment,
    }))
    .unwrap();
    let now = SystemTime::now();
    let headers = sign(
        &signer,
        &emu,
        &Method::POST,
        path,
        &body,
        BodySigning::Include,
        now,
    );
    let first = raw(&emu, Method::POST, path, headers.clone(), &body).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    // Same headers (same signature), other body of the same length: the body hash fails.
    let mut other = body.clone();
    let at = other.iter().position(|b| *b == b'm').unwrap();
    other[at] = b'n';
    let answer = raw(&emu, Method::POST, path, headers.clone(), &other).await;
    assert_error(&answer, 401, "NotAuthenticated");
    // A signed GET repeated within the second verifies again, and a stale one never does.
    let get = "/20181201/topics/none";
    let fresh = sign(
        &signer,
        &emu,
        &Method::GET,
        get,
        b"",
        BodySigning::Include,
        now,
    );
    for _ in 0..3 {
        let answer = raw(&emu, Method::GET, get, fresh.clone(), b"").await;
        assert_error(&answer, 404, "NotAuthorizedOrNotFound");
    }
    let stale = now - Duration::from_secs(600);
    let old = sign(
        &signer,
        &emu,
        &Method::GET,
        get,
        b"",
        BodySigning::Include,
        stale,
    );
    for _ in 0..2 {
        let answer = raw(&emu, Method::GET, get, old.clone(), b"").await;
        assert_error(&answer, 401, "NotAuthenticated");
    }
}
