//! [`AllowList`]: the target hosts messages may be delivered to.

use std::num::ParseIntError;

/// Why an allow-list could not be read: its first bad entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowListError {
    /// An entry's port is not a number from 0 to 65535.
    #[error("{entry:?}: bad port")]
    BadPort {
        /// The entry as written.
        entry: String,
        /// Why its port is not one.
        #[source]
        source: ParseIntError,
    },
    /// An entry is not a host name or IP address.
    #[error("{entry:?} is not a host, host:port or *.domain")]
    NotAHost {
        /// The entry as written.
        entry: String,
    },
}

/// The target hosts messages may be delivered to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowList {
    entries: Vec<AllowEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowEntry {
    /// Lower-case host, without a leading `*.`.
    host: String,
    /// True for `*.host`: any subdomain (not the host itself).
    subdomains: bool,
    port: Option<u16>,
}

impl AllowList {
    /// Parses a comma-separated list of `host`, `host:port` and `*.domain` entries.
    ///
    /// # Errors
    /// The first entry that is not a host name or IP with an optional port.
    pub fn parse(list: &str) -> Result<Self, AllowListError> {
        let mut entries = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (pattern, port) = match raw.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || raw.starts_with('[') => {
                    let port = p.parse::<u16>().map_err(|source| AllowListError::BadPort {
                        entry: raw.to_owned(),
                        source,
                    })?;
                    (h, Some(port))
                }
                _ => (raw, None),
            };
            let (host, subdomains) = match pattern.strip_prefix("*.") {
                Some(rest) => (rest, true),
                None => (pattern, false),
            };
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            let legal = !host.is_empty()
                && host
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':'));
            if !legal {
                return Err(AllowListError::NotAHost {
                    entry: raw.to_owned(),
                });
            }
            entries.push(AllowEntry {
                host,
                subdomains,
                port,
            });
        }
        Ok(Self { entries })
    }

    /// Adds `host[:port]` entries (the local stack adds its demo target).
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn extend(&mut self, list: &str) -> Result<(), AllowListError> {
        self.entries.extend(Self::parse(list)?.entries);
        Ok(())
    }

    /// Whether the list is empty (then nothing is allowed).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `url`'s host (and port) is allowed.
    pub fn allows(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = url.port_or_known_default();
        self.entries.iter().any(|e| {
            let host_ok = if e.subdomains {
                host.len() > e.host.len()
                    && host.ends_with(&e.host)
                    && host[..host.len() - e.host.len()].ends_with('.')
            } else {
                host == e.host
            };
            host_ok && e.port.is_none_or(|p| Some(p) == port)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn allow_list_entries() {
        let list = AllowList::parse("api.example.com, *.corp.example.org, 10.0.0.5:8443").unwrap();
        let allows = |u: &str| list.allows(&url::Url::parse(u).unwrap());
        assert!(allows("https://API.example.com/x"));
        assert!(allows("https://a.b.corp.example.org/x"));
        assert!(!allows("https://corp.example.org/x"));
        assert!(!allows("https://evilcorp.example.org/x"));
        assert!(allows("https://10.0.0.5:8443/x"));
        assert!(!allows("https://10.0.0.5/x"));
        assert!(!allows("https://api.example.com.evil.net/x"));
        assert!(AllowList::parse("bad host").is_err());
        assert!(AllowList::parse("h:99999").is_err());
        assert!(AllowList::parse("").unwrap().is_empty());
    }
}
