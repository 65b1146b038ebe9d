//! Request signature verification: [`authenticate`] runs `datasync-core`'s [`verify`] (the
//! same code the clients sign with) with the keys of [`super::KeyRegistry`], and remembers
//! within one second the RSA checks that passed ([`VerifiedMemo`]).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use datasync_core::oci::signer::{
    check_signed_values, parse_authorization, verify, ReceivedRequest, VerifyError,
};
use sha2::{Digest as _, Sha256};

use crate::emulator::Inner;

/// The most signatures remembered per second.
const MEMO_LIMIT: usize = 4096;

/// Signatures that verified during the current second of the server's clock.
///
/// An RSA-2048 verification costs about 32 µs with `ring` here (the `signer_bench` example),
/// a good part of what the rest of a PutMessages request costs. OCI clients cache
/// their signatures per signing string and second (PKCS#1 v1.5 is deterministic), so concurrent
/// PutMessages to one stream carry byte-identical `Authorization` values. This memo remembers
/// (as a SHA-256) every input of the RSA check of a request that verified: method, target,
/// the `Authorization` value (keyId, signed header list, signature) and the value of every
/// signed header. A later request with the same digest *in the same second of the server's
/// clock* would make [`verify`] run the same RSA check on the same bytes with the same key
/// (a token's expiry is compared at one-second resolution), so its result is reused; the checks
/// that depend on anything else (body hash and length against the body, date skew against the
/// clock) still run on every request. Nothing is remembered across seconds, and a failed
/// verification is never remembered.
#[derive(Debug, Default)]
pub(crate) struct VerifiedMemo {
    inner: Mutex<(u64, HashSet<[u8; 32]>)>,
}

impl VerifiedMemo {
    /// Forgets everything (when a key is registered or replaced).
    pub(crate) fn clear(&self) {
        if let Ok(mut memo) = self.inner.lock() {
            memo.1.clear();
        }
    }

    fn contains(&self, second: u64, digest: &[u8; 32]) -> bool {
        self.inner
            .lock()
            .map(|memo| memo.0 == second && memo.1.contains(digest))
            .unwrap_or(false)
    }

    fn insert(&self, second: u64, digest: [u8; 32]) {
        if let Ok(mut memo) = self.inner.lock() {
            if memo.0 != second {
                memo.0 = second;
                memo.1.clear();
            }
            if memo.1.len() < MEMO_LIMIT {
                memo.1.insert(digest);
            }
        }
    }
}

/// The digest of every input of a request's RSA check, and the signed header names; `None`
/// when the request is not signed well enough to get that far (then [`verify`] decides).
fn signature_inputs(request: &ReceivedRequest<'_>) -> Option<([u8; 32], Vec<String>)> {
    let value = request
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let parsed = parse_authorization(value).ok()?;
    let mut hash = Sha256::new();
    for part in [request.method, request.target, value] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    for name in &parsed.headers {
        if name == "(request-target)" {
            continue;
        }
        let header = request.headers.get(name.as_str())?.as_bytes();
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update((header.len() as u64).to_le_bytes());
        hash.update(header);
    }
    Some((hash.finalize().into(), parsed.headers))
}

/// Verifies a request's signature with [`verify`], reusing the RSA check of an identical
/// signature verified in the same second (see [`VerifiedMemo`]).
///
/// # Errors
/// [`VerifyError`] when the request is not signed by a known key, or not as OCI requires.
pub(crate) fn authenticate(
    inner: &Inner,
    request: &ReceivedRequest<'_>,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let inputs = signature_inputs(request);
    if let Some((digest, signed)) = &inputs {
        if inner.verified.contains(second, digest) {
            return check_signed_values(request, signed, now);
        }
    }
    verify(request, now, |key_id| inner.keys.lookup(key_id, now))?;
    if let Some((digest, _)) = inputs {
        inner.verified.insert(second, digest);
    }
    Ok(())
}
