//! RFC 3339 timestamps as the envelope writes and reads them.

use std::time::{Duration, SystemTime};

/// Formats a time as RFC 3339 UTC with milliseconds, e.g. `2026-11-27T18:05:53.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = since.as_secs() as i64;
    let millis = since.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parses RFC 3339 (`Z` or a numeric offset, any fraction). None when malformed.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos: u64 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in frac[..digits].bytes().take(9).enumerate() {
            nanos += u64::from(c - b'0') * 10u64.pow(8 - i as u32);
        }
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest.get(1..3)?.parse::<i64>().ok()? * 3600
                + rest.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

// Howard Hinnant's civil-date algorithms (public domain), for proleptic Gregorian dates.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
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

    /// Every form the hand-written parser accepted, so a change of parser refuses none of them.
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
