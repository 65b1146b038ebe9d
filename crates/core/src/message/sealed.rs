//! [`SealedToken`]: a caller's token as the envelope carries it, encrypted with the vault's
//! master key (Key Management Encrypt), never in clear (docs/secrets.md).

use serde::{Deserialize, Serialize};

use crate::oci::crypto::AssociatedData;

/// The associated-data key binding a ciphertext to its caller-scoped secret name.
pub const SEALED_FOR: &str = "datasync.secret";

/// The token a message is sent with, sealed by populate.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedToken {
    /// The master key's OCID.
    pub key_id: String,
    /// The Encrypt ciphertext, as OCI encodes it.
    pub ciphertext: String,
}

impl std::fmt::Debug for SealedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ciphertext is not the token, but there is no reason to print it either.
        f.debug_struct("SealedToken")
            .field("key_id", &self.key_id)
            .field(
                "ciphertext",
                &format_args!("<{} chars>", self.ciphertext.len()),
            )
            .finish()
    }
}

/// The most bytes a sealed token adds to an envelope for a token of `token_len` bytes: the
/// member's name and JSON, the key OCID, and a ciphertext of at most the token plus 1 KB of
/// OCI's framing (nonce, tag, key version), base64-encoded.
pub fn sealed_allowance(token_len: usize) -> usize {
    64 + 256 + (token_len + 1024).div_ceil(3) * 4
}

/// `encoded` (an envelope as [`Envelope::encode`](super::Envelope::encode) wrote it, without a
/// sealed token) with `sealedToken` added as its last member; `None` when `encoded` is not a
/// JSON object's text. Saves encoding the envelope (and its payload) a second time.
pub fn with_sealed_token(encoded: &[u8], sealed: &SealedToken) -> Option<Vec<u8>> {
    let end = encoded.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if encoded.first() != Some(&b'{') || encoded[end] != b'}' {
        return None;
    }
    let member = serde_json::to_vec(sealed).ok()?;
    let empty = encoded[1..end].iter().all(u8::is_ascii_whitespace);
    let mut out = Vec::with_capacity(end + member.len() + 20);
    out.extend_from_slice(&encoded[..end]);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(br#""sealedToken":"#);
    out.extend_from_slice(&member);
    out.push(b'}');
    Some(out)
}

/// The associated data a token sealed for `scoped_name` is encrypted and decrypted with: a
/// ciphertext made for one caller's secret cannot be opened under another caller's name.
pub fn sealed_context(scoped_name: &str) -> AssociatedData {
    AssociatedData::from([(SEALED_FOR.to_owned(), scoped_name.to_owned())])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::message::Envelope;

    #[test]
    fn a_sealed_token_is_added_to_an_encoded_envelope_and_read_back() {
        let env = Envelope::decode(
            br#"{"targetRestApi":"https://a.example/x","targetRestApiOperation":"POST","vaultSecretName":"s","targetRestApiPayload":{"a":[1,2]}}"#,
        )
        .unwrap();
        let encoded = env.encode().unwrap();
        let sealed = SealedToken {
            key_id: "ocid1.key.oc1..k".into(),
            ciphertext: "Y2lwaGVy".into(),
        };
        let with = with_sealed_token(&encoded, &sealed).unwrap();
        assert!(with.len() <= encoded.len() + sealed_allowance(6));
        let back = Envelope::decode(&with).unwrap();
        assert_eq!(back.sealed_token.as_ref(), Some(&sealed));
        assert_eq!(back.message, env.message);
        assert!(with_sealed_token(b"[1]", &sealed).is_none());
        let empty = with_sealed_token(b"{}", &sealed).unwrap();
        assert_eq!(
            String::from_utf8(empty).unwrap(),
            r#"{"sealedToken":{"keyId":"ocid1.key.oc1..k","ciphertext":"Y2lwaGVy"}}"#
        );
    }
}
