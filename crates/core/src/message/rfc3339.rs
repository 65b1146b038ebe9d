//! RFC 3339 timestamps as the envelope writes and reads them, through the `time` crate.

use std::time::{Duration, SystemTime};

use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// UTC with milliseconds and a `Z`, as every envelope time is written.
const MILLIS_UTC: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats a time as RFC 3339 UTC with milliseconds (cut, not rounded), e.g.
/// `2026-11-27T18:05:53.123Z`. A time before 1970 is written as 1970's first instant, one
/// beyond year 9999 as that year's last millisecond.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let since = time::Duration::try_from(since).unwrap_or(time::Duration::MAX);
    // Every component the description names is in an `OffsetDateTime`, and its year has four
    // digits: formatting cannot fail, and the empty text is never written.
    OffsetDateTime::UNIX_EPOCH
        .saturating_add(since)
        .format(MILLIS_UTC)
        .unwrap_or_default()
}

/// Parses RFC 3339 (`Z` or a numeric offset, any fraction, digits beyond nanoseconds dropped).
/// None when malformed, or before 1970.
///
/// Besides the strict grammar it reads what the format's §5.6 allows and what datasync always
/// has: a lower-case `t` or a space between date and time, a lower-case `z`, and a leap second
/// (`:60`) at any minute, read as the first second of the next.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let (text, leap) = normalise(s)?;
    let at = OffsetDateTime::parse(&text, &Rfc3339).ok()?;
    let since = std::time::Duration::try_from(at - OffsetDateTime::UNIX_EPOCH).ok()?;
    let leap = if leap {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    SystemTime::UNIX_EPOCH.checked_add(since)?.checked_add(leap)
}

/// `s` in the form `time`'s RFC 3339 parser reads, and whether its second was 60. That parser
/// wants an upper-case `T` and `Z` (RFC 3339 allows `t`, `z` and, by its §5.6 note, a space),
/// takes any character between date and time (only these three are read), and takes a leap
/// second only at 23:59:60 UTC, clamped into that minute; datasync reads `:60` at any minute
/// as the next minute's first second, so the 60 is read as 59 and the second added back.
fn normalise(s: &str) -> Option<(String, bool)> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_rejects_junk() {
        for ms in [
            0u64,
            1,
            951_782_400_000,
            1_795_000_000_123,
            4_102_444_799_999,
        ] {
            let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{ms}");
        }
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            parse_rfc3339("2018-04-26T01:03:06.051+02:00"),
            parse_rfc3339("2018-04-25T23:03:06.051Z")
        );
        for junk in [
            "",
            "2018-04-26",
            "2018-13-26T01:03:06Z",
            "2018-04-26T01:03:06",
            "2018-04-26T01:03:06.Z",
            "x018-04-26T01:03:06Z",
        ] {
            assert_eq!(parse_rfc3339(junk), None, "{junk}");
        }
    }

    /// Every form datasync has always accepted: none may start to be refused.
    #[test]
    fn rfc3339_accepts_every_form_it_always_has() {
        let at =
            |s: &str| parse_rfc3339(s).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap());
        let base = Duration::from_secs(1_524_704_586); // 2018-04-26T01:03:06Z
        for (text, want) in [
            ("2018-04-26T01:03:06Z", base),
            ("2018-04-26t01:03:06Z", base),
            ("2018-04-26 01:03:06Z", base),
            ("2018-04-26T01:03:06z", base),
            ("2018-04-26T01:03:06+00:00", base),
            ("2018-04-26T01:03:06-00:00", base),
            ("2018-04-26T06:33:06+05:30", base),
            ("2018-04-25T23:03:06-02:00", base),
            ("2018-04-26T01:03:06.5Z", base + Duration::from_millis(500)),
            (
                "2018-04-26T01:03:06.123456789Z",
                base + Duration::from_nanos(123_456_789),
            ),
            // Digits beyond the ninth are dropped, not rounded.
            (
                "2018-04-26T01:03:06.123456789999Z",
                base + Duration::from_nanos(123_456_789),
            ),
            (
                "2018-04-26T01:03:06.000001+00:00",
                base + Duration::from_micros(1),
            ),
            // A leap second is the first second of the next minute.
            ("2018-04-26T01:02:60Z", base - Duration::from_secs(6)),
            ("2016-12-31T23:59:60Z", Duration::from_secs(1_483_228_800)),
            (
                "2016-12-31T23:59:60.250Z",
                Duration::from_millis(1_483_228_800_250),
            ),
            ("1970-01-01T00:00:00Z", Duration::ZERO),
        ] {
            assert_eq!(at(text), Some(want), "{text}");
        }
        for junk in [
            " 2018-04-26T01:03:06Z",
            "2018-04-26T01:03:06Z ",
            "2018-04-26T01:03:61Z",
            "2018-04-26T24:03:06Z",
            "2018-04-26T01:60:06Z",
            "2018-00-26T01:03:06Z",
            "2018-04-00T01:03:06Z",
            "2018-04-26T01:03:06+0200",
            "2018-04-26X01:03:06Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339(junk), None, "{junk}");
        }
    }
}
