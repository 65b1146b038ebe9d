//! The gateway's API keys: a source key and an operator key, generated on first start and
//! kept in `DATA/gateway-keys.json` (mode 0600), plus any configured in the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use super::config::ApiKeyConfig;

/// The file name in the data directory.
pub const KEYS_FILE: &str = "gateway-keys.json";

/// The two generated keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GeneratedKeys {
    /// May call `/stream/sync`; caller identity `source`.
    pub source: String,
    /// May call both routes; caller identity `operator`.
    pub operator: String,
}

/// Who a key stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The identity set in `x-datasync-caller`.
    pub name: String,
    /// Whether `/stream/retry` is allowed.
    pub operator: bool,
}

/// Every key the gateway accepts.
#[derive(Debug, Clone)]
pub struct KeyRing {
    /// The generated keys.
    pub generated: GeneratedKeys,
    /// The file they are stored in.
    pub file: PathBuf,
    /// Whether they were created by this start.
    pub created: bool,
    by_key: HashMap<String, Caller>,
}

fn new_key(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

impl KeyRing {
    /// Loads `dir/gateway-keys.json`, creating it (0600) with two fresh keys when absent,
    /// and adds the configured `extra` keys.
    ///
    /// # Errors
    /// When the file cannot be read, parsed or written.
    pub fn load_or_create(dir: &Path, extra: &[ApiKeyConfig]) -> std::io::Result<Self> {
        let file = dir.join(KEYS_FILE);
        let (generated, created) = match std::fs::read(&file) {
            Ok(bytes) => {
                let keys: GeneratedKeys = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{} is not a key file ({e}); delete it to make new keys",
                            file.display()
                        ),
                    )
                })?;
                (keys, false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keys = GeneratedKeys {
                    source: new_key("dss"),
                    operator: new_key("dso"),
                };
                let text = serde_json::to_vec_pretty(&keys).map_err(std::io::Error::other)?;
                write_private(&file, &text)?;
                (keys, true)
            }
            Err(e) => return Err(e),
        };
        let mut by_key = HashMap::new();
        by_key.insert(
            generated.source.clone(),
            Caller {
                name: "source".into(),
                operator: false,
            },
        );
        by_key.insert(
            generated.operator.clone(),
            Caller {
                name: "operator".into(),
                operator: true,
            },
        );
        for k in extra {
            by_key.insert(
                k.key.clone(),
                Caller {
                    name: k.caller.clone(),
                    operator: k.operator,
                },
            );
        }
        Ok(Self {
            generated,
            file,
            created,
            by_key,
        })
    }

    /// The caller a key stands for.
    pub fn caller(&self, key: &str) -> Option<&Caller> {
        self.by_key.get(key)
    }
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn keys_are_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = KeyRing::load_or_create(dir.path(), &[]).unwrap();
        assert!(a.created);
        let mode = std::fs::metadata(&a.file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = KeyRing::load_or_create(dir.path(), &[]).unwrap();
        assert!(!b.created);
        assert_eq!(a.generated.source, b.generated.source);
        assert!(!b.caller(&b.generated.source).unwrap().operator);
        assert!(b.caller(&b.generated.operator).unwrap().operator);
        assert!(b.caller("nope").is_none());
    }
}
