//! The clock and the time formats on the wire, all through the `time` crate: RFC 3339 with
//! milliseconds in UTC for every JSON time (`2018-04-26T01:03:06.051Z`, as OCI writes them),
//! and the HTTP date of `Last-Modified` (`Thu, 26 Apr 2018 01:03:06 GMT`).

use std::time::SystemTime;

use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::error::ApiError;

/// `2018-04-26T01:03:06.051Z`: always three fraction digits and `Z`.
const RFC3339_MS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `Thu, 26 Apr 2018 01:03:06 GMT` (RFC 9110's IMF-fixdate).
const HTTP_DATE: &[BorrowedFormatItem<'_>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    ms_since_epoch(SystemTime::now())
}

/// Milliseconds since the Unix epoch of `t` (0 before 1970).
pub(crate) fn ms_since_epoch(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The UTC time `ms` milliseconds after the epoch. Times before 1970 read as 1970 (the
/// emulator has none), and times past what the formats can write (year 9999) as the epoch.
fn utc(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms.max(0)) * 1_000_000)
        .ok()
        .filter(|t| t.year() <= 9999)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 with milliseconds, UTC: `2018-04-26T01:03:06.051Z`.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    // Formatting fails only for years the format cannot write, which `utc` rules out.
    utc(ms).format(RFC3339_MS).unwrap_or_default()
}

/// The HTTP date of `ms` (whole seconds, rounded down): `Thu, 26 Apr 2018 01:03:06 GMT`.
pub(crate) fn http_date(ms: i64) -> String {
    utc(ms).format(HTTP_DATE).unwrap_or_default()
}

/// Parses an RFC 3339 time into milliseconds since the epoch.
///
/// # Errors
/// 400 InvalidParameter when `text` is not an RFC 3339 time.
pub(crate) fn parse_time_ms(text: &str) -> Result<i64, ApiError> {
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| ApiError::invalid(format!("{text:?} is not an RFC 3339 time")))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn times_round_trip_with_milliseconds() {
        let text = rfc3339_ms(1_524_704_586_051);
        assert_eq!(text, "2018-04-26T01:03:06.051Z");
        assert_eq!(parse_time_ms(&text).unwrap(), 1_524_704_586_051);
        assert!(parse_time_ms("yesterday").is_err());
    }

    /// The forms the emulator wrote before it used `time` (the `datasync-core` formatter and
    /// `httpdate`), byte for byte.
    #[test]
    fn written_forms_are_unchanged() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-5), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_000), "1970-01-01T00:00:01.000Z");
        assert_eq!(rfc3339_ms(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339_ms(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(1_524_704_586_051),
            "Thu, 26 Apr 2018 01:03:06 GMT"
        );
        assert_eq!(http_date(951_782_400_999), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            http_date(1_733_356_800_000),
            "Thu, 05 Dec 2024 00:00:00 GMT"
        );
        assert_eq!(http_date(-1), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(rfc3339_ms(4_102_444_800_123), "2100-01-01T00:00:00.123Z");
    }

    /// The forms callers send: offsets, lower case, fewer or more fraction digits.
    #[test]
    fn accepted_forms_are_unchanged() {
        let cases = [
            ("2018-04-26T01:03:06.051Z", 1_524_704_586_051),
            ("2018-04-26T01:03:06Z", 1_524_704_586_000),
            ("2018-04-26T01:03:06.5Z", 1_524_704_586_500),
            ("2018-04-26T01:03:06.051999Z", 1_524_704_586_051),
            ("2018-04-26T03:03:06.051+02:00", 1_524_704_586_051),
            ("2018-04-25T23:03:06.051-02:00", 1_524_704_586_051),
            ("2018-04-26t01:03:06.051z", 1_524_704_586_051),
            // RFC 3339 lets a space stand for the `T`.
            ("2018-04-26 01:03:06Z", 1_524_704_586_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_time_ms(text).unwrap(), ms, "{text}");
        }
        for bad in ["", "2018-04-26", "2018-04-26T01:03:06", "1524704586051"] {
            assert!(parse_time_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_clock_reads_milliseconds_since_the_epoch() {
        let before = ms_since_epoch(SystemTime::now());
        let now = now_ms();
        assert!(now >= before && now - before < 60_000);
        assert_eq!(ms_since_epoch(SystemTime::UNIX_EPOCH), 0);
    }
}
