//! The Standard Webhooks `v1` signature (round2 §E): HMAC-SHA256 over
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed by the secret's bytes (the text after
//! `whsec_`, base64-decoded), sent as `v1,<base64>`. A pure function: no clock, no I/O.
//!
//! HMAC comes from the RustCrypto `hmac` crate over the `sha2` already used for secret names:
//! the same `digest` traits, pure Rust, already in the lock file; the signature is then checked
//! in tests against the value the standard's own libraries publish.

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// The prefix of a symmetric Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The fewest secret bytes the standard allows (192 bits).
pub const MIN_SECRET_BYTES: usize = 24;
/// The most secret bytes the standard allows (512 bits).
pub const MAX_SECRET_BYTES: usize = 64;

/// Why a signing secret was refused. Never carries the secret or any part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretFormatError {
    /// The text does not start with `whsec_`.
    #[error("the callback signing secret does not start with whsec_")]
    NoPrefix,
    /// The text after `whsec_` is not base64.
    #[error("the callback signing secret is not whsec_ followed by base64")]
    NotBase64,
    /// The key is shorter or longer than the standard allows.
    #[error("the callback signing secret holds {0} bytes; Standard Webhooks asks for 24 to 64")]
    Length(usize),
}

/// A callback signing secret: the key bytes. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningSecret(<{} bytes redacted>)", self.0.len())
    }
}

impl SigningSecret {
    /// Reads `whsec_<base64>` (surrounding whitespace ignored; missing padding tolerated, as
    /// the standard's Python library tolerates it).
    ///
    /// # Errors
    /// [`SecretFormatError`] for another prefix, text that is not base64, or a key outside
    /// 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<Self, SecretFormatError> {
        let b64 = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretFormatError::NoPrefix)?;
        let key = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map_err(|_| SecretFormatError::NotBase64)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SecretFormatError::Length(key.len()));
        }
        Ok(Self(key))
    }

    /// A secret of `bytes` random bytes from the operating system's generator, as `whsec_…`
    /// text (what the local stack stores and shows once).
    pub fn generate_text(bytes: usize) -> String {
        use rand::RngCore as _;
        let mut key = vec![0u8; bytes.clamp(MIN_SECRET_BYTES, MAX_SECRET_BYTES)];
        rand::rngs::OsRng.fill_bytes(&mut key);
        format!(
            "{SECRET_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(&key)
        )
    }
}

/// The `webhook-signature` value for `body` sent with `id` and `timestamp` (unix seconds):
/// `v1,<standard base64 with padding>`.
pub fn sign(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail; an empty key is refused by `parse`.
    let mut mac = match Hmac::<Sha256>::new_from_slice(&secret.0) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

/// The `webhook-id` of a message's outcome: `cb_` and 32 hex digits of SHA-256 over the
/// message id, the status and the attempt count. The same outcome always gets the same id, so
/// every retry of it (and a repeat after a batch is delivered again) can be dropped by the
/// receiver; a later, different outcome of the same message (after a replay) gets a new one.
/// It never holds a `.`, which the signed content uses as its separator.
pub fn webhook_id(message_id: &str, status: &str, attempts: u32) -> String {
    let digest = Sha256::digest(format!("{message_id}\n{status}\n{attempts}").as_bytes());
    let mut id = String::with_capacity(35);
    id.push_str("cb_");
    for byte in &digest[..16] {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The published test vector (round2 §E; `libraries/rust/src/lib.rs` `test_sign` of
    /// standard-webhooks).
    #[test]
    fn the_standard_test_vector_signs_as_published() {
        let secret = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let signature = sign(
            &secret,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn secrets_are_whsec_base64_of_24_to_64_bytes_and_never_shown() {
        assert_eq!(
            SigningSecret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
            Err(SecretFormatError::NoPrefix)
        );
        assert_eq!(
            SigningSecret::parse("whsec_not base64!"),
            Err(SecretFormatError::NotBase64)
        );
        assert_eq!(
            SigningSecret::parse("whsec_AAAA"),
            Err(SecretFormatError::Length(3))
        );
        // Missing padding is tolerated.
        let padded = SigningSecret::generate_text(32);
        assert!(padded.ends_with('='));
        let unpadded = padded.trim_end_matches('=');
        assert_eq!(
            SigningSecret::parse(unpadded).unwrap(),
            SigningSecret::parse(&padded).unwrap()
        );
        let secret = SigningSecret::parse(&padded).unwrap();
        assert_eq!(secret.0.len(), 32);
        assert!(!format!("{secret:?}").contains(&padded[6..16]));
        assert_ne!(SigningSecret::generate_text(32), padded);
    }

    #[test]
    fn webhook_ids_are_stable_per_outcome_and_have_no_dot() {
        let a = webhook_id("0193-a", "delivered", 1);
        assert_eq!(a, webhook_id("0193-a", "delivered", 1));
        assert_ne!(a, webhook_id("0193-a", "deadLettered", 1));
        assert_ne!(a, webhook_id("0193-a", "delivered", 2));
        assert_ne!(a, webhook_id("0193-b", "delivered", 1));
        assert!(a.starts_with("cb_") && a.len() == 35 && !a.contains('.'));
    }
}
