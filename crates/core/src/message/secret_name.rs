//! Where a caller's token is kept in Vault: its secret name, scoped by caller.

use sha2::{Digest as _, Sha256};

/// The Vault secret name for `caller`'s `vaultSecretName`: `ds-<16 hex of SHA-256(caller)>-<name>`.
/// Scoping by caller means no caller can read or overwrite another's token, whatever name it
/// picks (the sample's confused-deputy bug).
pub fn scoped_secret_name(caller: &str, vault_secret_name: &str) -> String {
    let digest = Sha256::digest(caller.as_bytes());
    let mut out = String::with_capacity(20 + vault_secret_name.len());
    out.push_str("ds-");
    for byte in &digest[..8] {
        out.push_str(&format!("{byte:02x}"));
    }
    out.push('-');
    out.push_str(vault_secret_name);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn secret_names_are_scoped_by_caller() {
        let a = scoped_secret_name("caller-a", "789");
        let b = scoped_secret_name("caller-b", "789");
        assert_ne!(a, b);
        assert!(a.starts_with("ds-") && a.ends_with("-789") && a.len() == 3 + 16 + 1 + 3);
    }
}
