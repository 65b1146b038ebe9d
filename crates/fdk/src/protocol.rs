//! The Fn `http-stream` protocol, shared by both sides: the FDK (this crate's server) and the
//! agent (the local stack's function host, and [`crate::agent`]).
//!
//! Everything here is a pure function or a constant: header names, the rules for the listener
//! socket path, and the `Fn-Deadline` timestamp format. The facts come from
//! `contracts/oci-platform.md` section A.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderName;
use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::Error;

/// Environment variable naming the socket to listen on, e.g. `unix:/tmp/iofs/lsnr.sock`.
pub const ENV_LISTENER: &str = "FN_LISTENER";
/// Environment variable naming the wire format; must be empty or `http-stream`.
pub const ENV_FORMAT: &str = "FN_FORMAT";
/// Environment variable: the log frame name (with [`ENV_LOGFRAME_HDR`]).
pub const ENV_LOGFRAME_NAME: &str = "FN_LOGFRAME_NAME";
/// Environment variable: the request header whose value goes in the log frame.
pub const ENV_LOGFRAME_HDR: &str = "FN_LOGFRAME_HDR";
/// Environment variable: the application OCID.
pub const ENV_APP_ID: &str = "FN_APP_ID";
/// Environment variable: the application name.
pub const ENV_APP_NAME: &str = "FN_APP_NAME";
/// Environment variable: the function OCID.
pub const ENV_FN_ID: &str = "FN_FN_ID";
/// Environment variable: the function name.
pub const ENV_FN_NAME: &str = "FN_FN_NAME";
/// Environment variable: the function's memory in MB.
pub const ENV_MEMORY: &str = "FN_MEMORY";
/// Environment variable: `sync` or `async`.
pub const ENV_TYPE: &str = "FN_TYPE";

/// The only format this FDK speaks.
pub const FORMAT_HTTP_STREAM: &str = "http-stream";
/// The scheme prefix of [`ENV_LISTENER`].
pub const LISTENER_PREFIX: &str = "unix:";
/// The longest socket path the agent accepts (`sun_path` is 108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;
/// The prefix of the bound socket's file name; the advertised name is a symlink to it.
pub const PHONY_PREFIX: &str = "phony";
/// The directory the OCI agent mounts into the container.
pub const IOFS_DIR: &str = "/tmp/iofs";
/// The socket file name the OCI agent uses.
pub const SOCKET_NAME: &str = "lsnr.sock";
/// The only request path: `POST /call`.
pub const CALL_PATH: &str = "/call";

/// The largest request body accepted: the 6 MB InvokeFunction limit.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// The deadline used when `Fn-Deadline` is missing or unparsable (as the Python FDK does).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// The intent value of calls that come through an HTTP trigger or API Gateway.
pub const INTENT_HTTP_REQUEST: &str = "httprequest";
/// The intent value of CloudEvents invocations.
pub const INTENT_CLOUD_EVENT: &str = "cloudevent";

/// Header prefix carrying the client's headers for `httprequest` calls, both ways.
pub const HTTP_HEADER_PREFIX: &str = "fn-http-h-";

/// `Fn-Call-Id`: the call's id.
pub static FN_CALL_ID: HeaderName = HeaderName::from_static("fn-call-id");
/// `Fn-Deadline`: RFC 3339, e.g. `2020-06-23T01:10:21Z`.
pub static FN_DEADLINE: HeaderName = HeaderName::from_static("fn-deadline");
/// `Fn-Intent`: `httprequest`, `cloudevent`, or absent.
pub static FN_INTENT: HeaderName = HeaderName::from_static("fn-intent");
/// `Fn-Invoke-Type`: `sync` or `detached`.
pub static FN_INVOKE_TYPE: HeaderName = HeaderName::from_static("fn-invoke-type");
/// `Fn-Http-Method`: the client's method (httprequest only).
pub static FN_HTTP_METHOD: HeaderName = HeaderName::from_static("fn-http-method");
/// `Fn-Http-Request-Url`: the client's URL; OCI sends path and query only.
pub static FN_HTTP_REQUEST_URL: HeaderName = HeaderName::from_static("fn-http-request-url");
/// `Fn-Http-Status`: the handler's status for the client (httprequest only).
pub static FN_HTTP_STATUS: HeaderName = HeaderName::from_static("fn-http-status");
/// `Fn-Fdk-Version`: `fdk-rust/<version>` on every response.
pub static FN_FDK_VERSION: HeaderName = HeaderName::from_static("fn-fdk-version");
/// `Fn-Fdk-Runtime`: `rust/<rustc version>` on every response.
pub static FN_FDK_RUNTIME: HeaderName = HeaderName::from_static("fn-fdk-runtime");

/// The value of `Fn-Fdk-Version` this crate sends.
pub const FDK_VERSION: &str = concat!("fdk-rust/", env!("CARGO_PKG_VERSION"));
/// The value of `Fn-Fdk-Runtime` this crate sends.
pub const FDK_RUNTIME: &str = concat!("rust/", env!("FDK_RUSTC_VERSION"));

/// Parses `FN_LISTENER` as the agent writes it: `unix:` followed by an absolute path of at
/// most [`MAX_SOCKET_PATH`] bytes.
///
/// # Errors
///
/// [`Error::InvalidListener`] when the prefix is missing, the path is empty, relative, has no
/// file name, or is too long.
pub fn parse_listener(value: &str) -> Result<PathBuf, Error> {
    let invalid = |reason: &str| Error::InvalidListener {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let path = value
        .strip_prefix(LISTENER_PREFIX)
        .ok_or_else(|| invalid("it must start with `unix:`"))?;
    check_socket_path(Path::new(path)).map_err(|reason| invalid(&reason))?;
    Ok(PathBuf::from(path))
}

/// The value of `FN_LISTENER` for a socket path (the agent side of [`parse_listener`]).
pub fn listener_value(socket: &Path) -> String {
    format!("{LISTENER_PREFIX}{}", socket.display())
}

/// Checks the rules for a socket path: absolute, a file name, the phony sibling's length
/// at most [`MAX_SOCKET_PATH`] bytes... and the advertised path itself too.
fn check_socket_path(path: &Path) -> Result<(), String> {
    let len = path.as_os_str().len();
    if len == 0 {
        return Err("the socket path is empty".to_owned());
    }
    if !path.is_absolute() {
        return Err("the socket path must be absolute".to_owned());
    }
    if len > MAX_SOCKET_PATH {
        return Err(format!(
            "the socket path is {len} bytes; at most {MAX_SOCKET_PATH} are allowed"
        ));
    }
    match phony_path(path) {
        Some(phony) if phony.as_os_str().len() <= MAX_SOCKET_PATH => Ok(()),
        Some(phony) => Err(format!(
            "the bound socket path {} is {} bytes; at most {MAX_SOCKET_PATH} are allowed",
            phony.display(),
            phony.as_os_str().len()
        )),
        None => Err("the socket path has no file name".to_owned()),
    }
}

/// The path actually bound: `phony<name>` in the same directory as `socket`.
///
/// Returns `None` when `socket` has no file name.
pub fn phony_path(socket: &Path) -> Option<PathBuf> {
    let name = socket.file_name()?;
    let mut phony = std::ffi::OsString::from(PHONY_PREFIX);
    phony.push(name);
    Some(socket.with_file_name(phony))
}

/// The agent's `checkSocketDestination`: `socket` must be a symlink whose target is a file
/// name in the same directory (no `/`), and the target must be a socket.
///
/// # Errors
///
/// [`Error::Socket`] with a description of the first rule broken.
pub fn check_socket_destination(socket: &Path) -> Result<(), Error> {
    use std::os::unix::fs::FileTypeExt;
    let bad = |msg: String| Error::Socket {
        path: socket.to_owned(),
        source: std::io::Error::other(msg),
    };
    let io = |source| Error::Socket {
        path: socket.to_owned(),
        source,
    };
    let meta = std::fs::symlink_metadata(socket).map_err(io)?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(socket).map_err(io)?;
        let dir = target
            .parent()
            .map(|p| p.as_os_str().is_empty())
            .unwrap_or(true);
        if !dir || target.is_absolute() {
            return Err(bad(format!(
                "the symlink target {} is not in the same directory",
                target.display()
            )));
        }
    }
    let meta = std::fs::metadata(socket).map_err(io)?;
    if !meta.file_type().is_socket() {
        return Err(bad("the target is not a socket".to_owned()));
    }
    Ok(())
}

/// `Fn-Deadline` as the agent writes it: UTC at second precision with a `Z`.
const DEADLINE_FORMAT: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// Parses an `Fn-Deadline` value (RFC 3339: `2020-06-23T01:10:21Z`, with optional fraction
/// and a `Z` or `±hh:mm` offset), surrounding whitespace ignored. None when malformed or
/// before 1970.
///
/// Besides the strict grammar it reads a lower-case `t` or a space between date and time, a
/// lower-case `z`, and a leap second (`:60`) at any minute as the first second of the next, as
/// the FDK always has.
pub fn parse_deadline(value: &str) -> Option<SystemTime> {
    let (text, leap) = normalise_rfc3339(value.trim())?;
    let at = OffsetDateTime::parse(&text, &Rfc3339).ok()?;
    let since = Duration::try_from(at - OffsetDateTime::UNIX_EPOCH).ok()?;
    let leap = if leap {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    UNIX_EPOCH.checked_add(since)?.checked_add(leap)
}

/// `s` in the form `time`'s RFC 3339 parser reads, and whether its second was 60. That parser
/// wants an upper-case `T` and `Z` (RFC 3339 allows `t`, `z` and, by its §5.6 note, a space)
/// but takes any character between date and time (only these three are read), and takes a
/// leap second only at 23:59:60 UTC, clamped into that minute; the FDK reads `:60` at any
/// minute as the next minute's first second, so the 60 is read as 59 and the second added
/// back.
fn normalise_rfc3339(s: &str) -> Option<(String, bool)> {
    let mut text = s.as_bytes().to_vec();
    if text.len() < 20 {
        return None;
    }
    match text[10] {
        b'T' => {}
        b't' | b' ' => text[10] = b'T',
        _ => return None,
    }
    if let Some(last) = text.last_mut().filter(|c| **c == b'z') {
        *last = b'Z';
    }
    let leap = text[16] == b':' && &text[17..19] == b"60";
    if leap {
        text[17..19].copy_from_slice(b"59");
    }
    Some((String::from_utf8(text).ok()?, leap))
}

/// Formats a time as `Fn-Deadline` does: RFC 3339 in UTC at second precision. A time before
/// 1970 is written as 1970's first second, one beyond year 9999 as that year's last.
pub fn format_deadline(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let since = time::Duration::try_from(since).unwrap_or(time::Duration::MAX);
    // Every component the format names is in an `OffsetDateTime`, and its year has four
    // digits: formatting cannot fail, and the empty text is never written.
    OffsetDateTime::UNIX_EPOCH
        .saturating_add(since)
        .format(DEADLINE_FORMAT)
        .unwrap_or_default()
}

/// Whether the agent keeps a container after this outer status: only 200, 502 and 504 are
/// valid; anything else makes the agent kill the container (ErrFunctionInvalidResponse).
pub fn is_valid_outer_status(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 200 | 502 | 504)
}

/// Whether a header is connection-specific and must not be forwarded (RFC 9110 §7.6.1),
/// or describes framing this layer recomputes (`Content-Length`).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

/// The `Fn-Http-H-<name>` header carrying client header `name`.
///
/// Returns `None` if the result is not a valid header name (it always is for valid `name`s).
pub fn prefixed(name: &HeaderName) -> Option<HeaderName> {
    let mut s = String::with_capacity(HTTP_HEADER_PREFIX.len() + name.as_str().len());
    s.push_str(HTTP_HEADER_PREFIX);
    s.push_str(name.as_str());
    HeaderName::from_bytes(s.as_bytes()).ok()
}

/// The client header name inside an `Fn-Http-H-<name>` header, or `None` if `name` does not
/// carry that prefix (or carries nothing after it).
pub fn unprefixed(name: &HeaderName) -> Option<HeaderName> {
    let rest = name.as_str().strip_prefix(HTTP_HEADER_PREFIX)?;
    HeaderName::from_bytes(rest.as_bytes()).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn listener_rules() {
        assert_eq!(
            parse_listener("unix:/tmp/iofs/lsnr.sock").unwrap(),
            PathBuf::from("/tmp/iofs/lsnr.sock")
        );
        for bad in [
            "",
            "/tmp/iofs/lsnr.sock",
            "unix:",
            "unix:relative.sock",
            "tcp://localhost:80",
            "unix:/",
        ] {
            assert!(parse_listener(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("unix:/{}", "a".repeat(106));
        assert_eq!(long.len() - 5, 107);
        // 107 bytes is fine for the advertised path, but its phony sibling is 112.
        let err = parse_listener(&long).unwrap_err().to_string();
        assert!(err.contains("bound socket path"), "{err}");
        let ok = format!("unix:/{}", "a".repeat(101));
        assert!(parse_listener(&ok).is_ok());
        let too_long = format!("unix:/{}", "a".repeat(107));
        assert!(parse_listener(&too_long)
            .unwrap_err()
            .to_string()
            .contains("108 bytes"));
    }

    #[test]
    fn phony_is_a_sibling() {
        assert_eq!(
            phony_path(Path::new("/tmp/iofs/lsnr.sock")).unwrap(),
            PathBuf::from("/tmp/iofs/phonylsnr.sock")
        );
        assert_eq!(
            listener_value(Path::new("/tmp/iofs/lsnr.sock")),
            "unix:/tmp/iofs/lsnr.sock"
        );
    }

    #[test]
    fn deadlines_round_trip() {
        let t = parse_deadline("2020-06-23T01:10:21Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_592_874_621
        );
        assert_eq!(format_deadline(t), "2020-06-23T01:10:21Z");
        let frac = parse_deadline("2020-06-23T01:10:21.250Z").unwrap();
        assert_eq!(frac.duration_since(t).unwrap(), Duration::from_millis(250));
        let off = parse_deadline("2020-06-23T03:10:21+02:00").unwrap();
        assert_eq!(off, t);
        let neg = parse_deadline("2020-06-22T23:10:21-02:00").unwrap();
        assert_eq!(neg, t);
        assert_eq!(
            format_deadline(parse_deadline("2024-02-29T23:59:59Z").unwrap()),
            "2024-02-29T23:59:59Z"
        );
        assert_eq!(format_deadline(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        for bad in [
            "",
            "2020-06-23",
            "2020-06-23T01:10:21",
            "2020-13-23T01:10:21Z",
            "2020-06-23T01:10:21Zjunk",
            "2020-06-23T01:10:21.Z",
            "20x0-06-23T01:10:21Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(parse_deadline(bad).is_none(), "{bad:?}");
        }
    }

    /// Every form datasync has always accepted: none may start to be refused.
    #[test]
    fn deadlines_accept_every_form_they_always_have() {
        let at = |s: &str| parse_deadline(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap());
        let base = Duration::from_secs(1_592_874_621); // 2020-06-23T01:10:21Z
        for (text, want) in [
            ("2020-06-23T01:10:21Z", base),
            (" 2020-06-23T01:10:21Z\r\n", base),
            ("2020-06-23t01:10:21Z", base),
            ("2020-06-23 01:10:21Z", base),
            ("2020-06-23T01:10:21z", base),
            ("2020-06-23T01:10:21-00:00", base),
            ("2020-06-23T06:40:21+05:30", base),
            ("2020-06-23T01:10:21.5Z", base + Duration::from_millis(500)),
            (
                "2020-06-23T01:10:21.123456789999Z",
                base + Duration::from_nanos(123_456_789),
            ),
            ("2020-06-23T01:09:60Z", base - Duration::from_secs(21)),
            ("2016-12-31T23:59:60Z", Duration::from_secs(1_483_228_800)),
        ] {
            assert_eq!(at(text), Some(want), "{text:?}");
        }
        for bad in [
            "2020-06-23T01:10:61Z",
            "2020-06-23T24:10:21Z",
            "2020-06-23T01:10:21+0200",
            "2020-06-23X01:10:21Z",
        ] {
            assert!(parse_deadline(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes() {
        let h = HeaderName::from_static("x-trace");
        let p = prefixed(&h).unwrap();
        assert_eq!(p.as_str(), "fn-http-h-x-trace");
        assert_eq!(unprefixed(&p).unwrap(), h);
        assert!(unprefixed(&h).is_none());
        assert!(unprefixed(&HeaderName::from_static("fn-http-h-")).is_none());
        assert!(is_hop_by_hop(&HeaderName::from_static("transfer-encoding")));
        assert!(!is_hop_by_hop(&HeaderName::from_static("content-type")));
    }
}
