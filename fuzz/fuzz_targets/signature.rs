//! The verification of an incoming signed request, as the emulator runs it: the
//! `Authorization` header through `parse_authorization`, then `verify` (the signed header
//! list, the body hash and length, the date, the RSA check) with the emulator's key registry
//! (`KeyRegistry::lookup`: an API key by keyId, or a resource principal session token
//! `ST$...` checked against the registry's signing key).
//!
//! Input: `datasync_fuzz::read_input`: a first line `METHOD TARGET [exempt]`, header lines,
//! the body. The clock is fixed at the date of OCI's published signing vectors, whose key is
//! registered under their keyId (and signs the registry's tokens), so the seeds made from the
//! vectors verify and the fuzzer starts from requests that pass.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::signer::{parse_authorization, verify, ReceivedRequest};
use datasync_emulator::KeyRegistry;
use libfuzzer_sys::fuzz_target;

const VECTOR_KEY: &str = include_str!("../../crates/core/tests/data/keys/vector_pkcs1.pem");
const VECTOR_KEY_ID: &str = "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq/ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq/73:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5:b7";
// The vectors' own date says Thursday, but 5 January 2014 was a Sunday: no HTTP date parser
// reads it, so the seeds are signed with the vector key at the same instant, correctly named.
const VECTOR_DATE: &str = "Sun, 05 Jan 2014 21:31:40 GMT";

fn registry() -> &'static KeyRegistry {
    static REGISTRY: OnceLock<KeyRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("datasync-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        // The registry's token signing key (`auth::SIGNING_KEY_FILE`): the vector key.
        let _ = std::fs::write(dir.join("emulator_signing_key.pem"), VECTOR_KEY.as_bytes());
        let registry = match KeyRegistry::open(&dir) {
            Ok(r) => r,
            Err(e) => panic!("the key registry does not open: {e}"),
        };
        let _ = std::fs::remove_dir_all(&dir);
        match PrivateKey::from_pem(VECTOR_KEY, None) {
            Ok(key) => registry.insert(VECTOR_KEY_ID.to_owned(), key.public_key().clone()),
            Err(e) => panic!("the vector key does not read: {e}"),
        }
        registry
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = datasync_fuzz::read_input(data) else {
        return;
    };
    let mut words = input.first.split(' ');
    let method = words.next().unwrap_or_default();
    let target = words.next().unwrap_or_default();
    let body_exempt = words.next() == Some("exempt");
    let now = httpdate::parse_http_date(VECTOR_DATE).unwrap_or(SystemTime::UNIX_EPOCH);

    if let Some(Ok(value)) = input.headers.get("authorization").map(|v| v.to_str()) {
        let _ = parse_authorization(value);
    }
    let request = ReceivedRequest {
        method,
        target,
        headers: &input.headers,
        body: input.body,
        body_exempt,
    };
    let registry = registry();
    let verdict = verify(&request, now, |key_id| registry.lookup(key_id, now));
    // `DATASYNC_FUZZ_SHOW=1 cargo fuzz run ... signature FILE` shows what an input gets.
    if std::env::var_os("DATASYNC_FUZZ_SHOW").is_some() {
        eprintln!("verify: {verdict:?}");
    }
});
