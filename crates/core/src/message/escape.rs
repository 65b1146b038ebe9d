//! Finding what serde_json refuses in a string that is otherwise valid JSON text: a `\u`
//! escape naming half of a UTF-16 surrogate pair without the other half. Such text passes a
//! structural read (a raw value does not decode its strings) and fails only when a string is
//! decoded, where the failure would otherwise be reported as a wrong type.

/// Whether the JSON text `json` holds a `\uD800`–`\uDFFF` escape that is not a high surrogate
/// directly followed by a low one.
pub(crate) fn has_lone_surrogate(json: &str) -> bool {
    let bytes = json.as_bytes();
    let mut i = 0;
    // The high surrogate just read, waiting for its low half.
    let mut pending_high = false;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            if pending_high {
                return true;
            }
            i += 1;
            continue;
        }
        let Some(&kind) = bytes.get(i + 1) else {
            return pending_high;
        };
        if kind != b'u' {
            if pending_high {
                return true;
            }
            i += 2;
            continue;
        }
        let unit = bytes
            .get(i + 2..i + 6)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u16::from_str_radix(h, 16).ok());
        i += 6;
        match unit {
            Some(0xD800..=0xDBFF) if pending_high => return true,
            Some(0xD800..=0xDBFF) => pending_high = true,
            Some(0xDC00..=0xDFFF) if pending_high => pending_high = false,
            Some(0xDC00..=0xDFFF) => return true,
            _ if pending_high => return true,
            _ => {}
        }
    }
    pending_high
}

#[cfg(test)]
mod tests {
    use super::has_lone_surrogate;

    #[test]
    fn lone_halves_are_found_and_pairs_pass() {
        for lone in [
            r#""\ud800""#,
            r#""\uDC00""#,
            r#""a\ud800b""#,
            r#""\ud800\n""#,
            r#""\ud800\u0041""#,
            r#""\ud800\ud800\udc00""#,
            r#"{"k":"\udfff"}"#,
        ] {
            assert!(has_lone_surrogate(lone), "{lone}");
        }
        for fine in [
            r#""\ud83d\ude00""#,
            r#""plain""#,
            r#""\\ud800""#,
            r#""\u00e9\n\"""#,
            r#""é""#,
        ] {
            assert!(!has_lone_surrogate(fine), "{fine}");
        }
    }
}
