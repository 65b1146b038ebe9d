//! RSA private keys for request signing: parsed once from PEM, never per request.
//!
//! Accepted forms, as the OCI CLI and console produce them:
//! - PKCS#1 `BEGIN RSA PRIVATE KEY`, plain or encrypted the traditional OpenSSL way
//!   (`Proc-Type: 4,ENCRYPTED` with `DEK-Info: AES-{128,192,256}-CBC,<iv>`; this is what
//!   `oci setup keys --passphrase` writes);
//! - PKCS#8 `BEGIN PRIVATE KEY` and `BEGIN ENCRYPTED PRIVATE KEY` (PBES2).

use std::fmt;
use std::sync::Arc;

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use base64::Engine as _;
use md5::{Digest as _, Md5};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

/// Why a key could not be read. Never contains key material or the passphrase.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text holds no PEM block of a kind we know.
    #[error("no RSA private key PEM block found (expected BEGIN RSA PRIVATE KEY, BEGIN PRIVATE KEY or BEGIN ENCRYPTED PRIVATE KEY)")]
    NoPemBlock,
    /// The key is encrypted and no passphrase was given.
    #[error("the private key is encrypted and no passphrase was given (set pass_phrase in the OCI config)")]
    PassphraseRequired,
    /// The passphrase did not decrypt the key.
    #[error("the passphrase does not decrypt the private key")]
    WrongPassphrase,
    /// The key is encrypted with a cipher we do not implement.
    #[error("the private key is encrypted with {0}, which is not supported; convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc`")]
    UnsupportedCipher(String),
    /// The PEM block or the DER inside it is malformed.
    #[error("the private key is malformed: {0}")]
    Malformed(String),
}

/// A parsed RSA private key with its PKCS#1 v1.5 SHA-256 signer.
///
/// Keys of 2048 bits or more (every key OCI issues or accepts) sign with `ring`, whose
/// constant-time assembly is about four times faster than the `rsa` crate; one signature is made
/// per OCI request with a body, so this is the signer's hot path. Smaller keys, such as the
/// 1024-bit key of the published signing vectors, which `ring` refuses, sign with `rsa`. PKCS#1
/// v1.5 signatures are deterministic, so both give the same bytes (a test checks).
#[derive(Clone)]
pub struct PrivateKey {
    signer: rsa::pkcs1v15::SigningKey<Sha256>,
    fast: Option<Arc<ring::signature::RsaKeyPair>>,
    public: RsaPublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Parses a PEM private key, decrypting it with `passphrase` when it is encrypted.
    ///
    /// # Errors
    /// [`KeyError`] when the text is not a supported RSA key or the passphrase is missing or wrong.
    pub fn from_pem(pem: &str, passphrase: Option<&str>) -> Result<Self, KeyError> {
        let key = if let Some(block) = find_block(pem, "ENCRYPTED PRIVATE KEY") {
            let pass = passphrase.ok_or(KeyError::PassphraseRequired)?;
            RsaPrivateKey::from_pkcs8_encrypted_pem(block, pass).map_err(|e| match e {
                rsa::pkcs8::Error::EncryptedPrivateKey(_) => KeyError::WrongPassphrase,
                other => KeyError::Malformed(other.to_string()),
            })?
        } else if let Some(block) = find_block(pem, "RSA PRIVATE KEY") {
            parse_pkcs1_block(block, passphrase)?
        } else if let Some(block) = find_block(pem, "PRIVATE KEY") {
            RsaPrivateKey::from_pkcs8_pem(block).map_err(|e| KeyError::Malformed(e.to_string()))?
        } else {
            return Err(KeyError::NoPemBlock);
        };
        Ok(Self::from_rsa(key))
    }

    /// Wraps an already parsed key (for generated keys, such as the local emulator's).
    pub fn from_rsa(key: RsaPrivateKey) -> Self {
        let public = key.to_public_key();
        // ring takes the PKCS#1 DER; it refuses keys under 2048 bits, which then sign with `rsa`.
        let fast = key
            .to_pkcs1_der()
            .ok()
            .and_then(|der| ring::signature::RsaKeyPair::from_der(der.as_bytes()).ok())
            .map(Arc::new);
        Self {
            signer: rsa::pkcs1v15::SigningKey::<Sha256>::new(key),
            fast,
            public,
        }
    }

    /// The public half.
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    /// The OCI API-key fingerprint: MD5 of the public key's DER (SubjectPublicKeyInfo), as
    /// colon-separated lower-case hex, e.g. `73:61:a2:21:...`.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public)
    }

    /// Signs `message` with RSASSA-PKCS1-v1_5 over SHA-256 and returns the signature bytes.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        if let Some(pair) = &self.fast {
            let mut signature = vec![0; pair.public().modulus_len()];
            let rng = ring::rand::SystemRandom::new();
            // ring fails only when the system random source does (it blinds with it); the
            // portable signer below then still gives the same signature.
            if pair
                .sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &rng,
                    message,
                    &mut signature,
                )
                .is_ok()
            {
                return signature;
            }
        }
        use rsa::signature::{SignatureEncoding, Signer};
        self.signer.sign(message).to_vec()
    }

    /// Whether signatures come from the fast (`ring`) signer: true for keys of 2048 bits or more.
    pub fn signs_fast(&self) -> bool {
        self.fast.is_some()
    }
}

/// The OCI fingerprint of a public key (see [`PrivateKey::fingerprint`]). Empty if the key cannot
/// be DER-encoded, which does not happen for a valid RSA key.
pub fn fingerprint(public: &RsaPublicKey) -> String {
    let Ok(der) = public.to_public_key_der() else {
        return String::new();
    };
    let digest = Md5::digest(der.as_bytes());
    let mut out = String::with_capacity(47);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The text from `-----BEGIN <label>-----` to the matching END line, inclusive.
fn find_block<'a>(pem: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)?;
    let stop = pem[start..].find(&end)? + start + end.len();
    Some(&pem[start..stop])
}

/// A PKCS#1 block, plain or with traditional OpenSSL encryption headers.
fn parse_pkcs1_block(block: &str, passphrase: Option<&str>) -> Result<RsaPrivateKey, KeyError> {
    let mut dek_info = None;
    let mut encrypted = false;
    let mut body = String::new();
    for line in block.lines().map(str::trim) {
        if line.starts_with("-----") || line.is_empty() {
            continue;
        }
        if let Some(value) = line.strip_prefix("Proc-Type:") {
            encrypted = value.trim() == "4,ENCRYPTED";
        } else if let Some(value) = line.strip_prefix("DEK-Info:") {
            dek_info = Some(value.trim().to_owned());
        } else {
            body.push_str(line);
        }
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| KeyError::Malformed(format!("bad base64 in PEM: {e}")))?;
    if !encrypted {
        return RsaPrivateKey::from_pkcs1_der(&der).map_err(|e| KeyError::Malformed(e.to_string()));
    }
    let pass = passphrase.ok_or(KeyError::PassphraseRequired)?;
    let dek =
        dek_info.ok_or_else(|| KeyError::Malformed("encrypted key without DEK-Info".into()))?;
    let (cipher, iv_hex) = dek
        .split_once(',')
        .ok_or_else(|| KeyError::Malformed("DEK-Info without an IV".into()))?;
    let iv = decode_hex(iv_hex.trim())
        .ok_or_else(|| KeyError::Malformed("DEK-Info IV is not hex".into()))?;
    let key_len = match cipher {
        "AES-128-CBC" => 16,
        "AES-192-CBC" => 24,
        "AES-256-CBC" => 32,
        other => return Err(KeyError::UnsupportedCipher(other.to_owned())),
    };
    if iv.len() != 16 {
        return Err(KeyError::Malformed("DEK-Info IV must be 16 bytes".into()));
    }
    let key = evp_bytes_to_key(pass.as_bytes(), &iv[..8], key_len);
    let plain = match key_len {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
            .map_err(|_| KeyError::Malformed("bad key or IV length".into()))?
            .decrypt_padded_vec_mut::<Pkcs7>(&der),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
            .map_err(|_| KeyError::Malformed("bad key or IV length".into()))?
            .decrypt_padded_vec_mut::<Pkcs7>(&der),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .map_err(|_| KeyError::Malformed("bad key or IV length".into()))?
            .decrypt_padded_vec_mut::<Pkcs7>(&der),
    }
    // A wrong passphrase almost always shows as bad padding, else as undecodable DER.
    .map_err(|_| KeyError::WrongPassphrase)?;
    RsaPrivateKey::from_pkcs1_der(&plain).map_err(|_| KeyError::WrongPassphrase)
}

/// OpenSSL's EVP_BytesToKey with MD5 and one iteration, as traditional PEM encryption uses.
fn evp_bytes_to_key(pass: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    let mut prev: Vec<u8> = Vec::new();
    while out.len() < len {
        let mut hasher = Md5::new();
        hasher.update(&prev);
        hasher.update(pass);
        hasher.update(salt);
        prev = hasher.finalize().to_vec();
        out.extend_from_slice(&prev);
    }
    out.truncate(len);
    out
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const VECTOR_FINGERPRINT: &str = "73:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5:b7";

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/data/keys/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap()
    }

    #[test]
    fn every_supported_form_of_the_vector_key_gives_the_published_fingerprint() {
        for (file, pass) in [
            ("vector_pkcs1.pem", None),
            ("vector_pkcs8.pem", None),
            ("vector_pkcs8_encrypted.pem", Some("hunter2")),
            ("vector_pkcs1_aes128.pem", Some("hunter2")),
            ("vector_pkcs1_aes256.pem", Some("hunter2")),
        ] {
            let key = PrivateKey::from_pem(&fixture(file), pass)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(key.fingerprint(), VECTOR_FINGERPRINT, "{file}");
        }
    }

    #[test]
    fn encrypted_keys_need_the_right_passphrase() {
        for file in [
            "vector_pkcs8_encrypted.pem",
            "vector_pkcs1_aes128.pem",
            "vector_pkcs1_aes256.pem",
        ] {
            assert!(
                matches!(
                    PrivateKey::from_pem(&fixture(file), None),
                    Err(KeyError::PassphraseRequired)
                ),
                "{file}"
            );
            assert!(
                matches!(
                    PrivateKey::from_pem(&fixture(file), Some("wrong")),
                    Err(KeyError::WrongPassphrase)
                ),
                "{file}"
            );
        }
    }

    #[test]
    fn unsupported_cipher_and_garbage_are_clear_errors() {
        let err =
            PrivateKey::from_pem(&fixture("vector_pkcs1_des3.pem"), Some("hunter2")).unwrap_err();
        assert!(
            matches!(err, KeyError::UnsupportedCipher(ref c) if c == "DES-EDE3-CBC"),
            "{err}"
        );
        assert!(matches!(
            PrivateKey::from_pem("hello", None),
            Err(KeyError::NoPemBlock)
        ));
        let broken = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(
            PrivateKey::from_pem(broken, None),
            Err(KeyError::Malformed(_))
        ));
    }

    #[test]
    fn large_keys_sign_fast_and_give_the_portable_signers_bytes() {
        let rsa_key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let portable = rsa::pkcs1v15::SigningKey::<Sha256>::new(rsa_key.clone());
        let key = PrivateKey::from_rsa(rsa_key);
        assert!(key.signs_fast());
        for message in [
            &b""[..],
            b"date: Thu, 05 Jan 2014 21:31:40 GMT",
            &[7u8; 5000],
        ] {
            use rsa::signature::{SignatureEncoding, Signer};
            assert_eq!(key.sign(message), portable.sign(message).to_vec());
        }
        // The published vector key has 1024 bits, which ring refuses: it signs portably.
        let vector = PrivateKey::from_pem(&fixture("vector_pkcs1.pem"), None).unwrap();
        assert!(!vector.signs_fast());
    }

    #[test]
    fn errors_never_echo_the_passphrase() {
        let err = PrivateKey::from_pem(&fixture("vector_pkcs1_aes128.pem"), Some("s3cret-pass"))
            .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("s3cret-pass"));
    }
}
