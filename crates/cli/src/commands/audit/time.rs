//! Times on the command line and in tables: milliseconds since the Unix
//! epoch, or RFC 3339 in UTC or with an offset (`2026-01-31T12:00:00Z`,
//! `2026-01-31T12:00:00.250+01:00`). No leap seconds (as in Unix time).

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn number(text: &str, digits: usize, min: i64, max: i64) -> Option<i64> {
    if text.len() != digits || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|n| (min..=max).contains(n))
}

/// Parses a `--since`/`--until` time: digits alone are milliseconds since
/// the epoch; anything else must be RFC 3339 (`T` between date and time;
/// fractions beyond milliseconds are cut).
pub(crate) fn parse_time(text: &str) -> Result<u64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|e| format!("{e}"));
    }
    rfc3339(text).ok_or_else(|| format!("not milliseconds since the epoch nor RFC 3339: {text:?}"))
}

fn rfc3339(text: &str) -> Option<u64> {
    let (date, rest) = text.split_once(['T', 't'])?;
    let mut parts = date.split('-');
    let year = number(parts.next()?, 4, 1970, 9999)?;
    let month = number(parts.next()?, 2, 1, 12)?;
    let day = number(parts.next()?, 2, 1, 31)?;
    if parts.next().is_some() || rest.len() < 9 {
        return None;
    }
    let hour = number(&rest[0..2], 2, 0, 23)?;
    let minute = number(rest.get(3..5)?, 2, 0, 59)?;
    let second = number(rest.get(6..8)?, 2, 0, 60)?;
    if &rest[2..3] != ":" || &rest[5..6] != ":" {
        return None;
    }
    let mut tail = &rest[8..];
    let mut millis = 0;
    if let Some(fraction) = tail.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse::<i64>().ok()?;
        tail = &fraction[digits..];
    }
    let offset_minutes = match tail {
        "Z" | "z" => 0,
        _ => {
            let sign = match tail.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            if tail.len() != 6 || &tail[3..4] != ":" {
                return None;
            }
            sign * (number(&tail[1..3], 2, 0, 23)? * 60 + number(&tail[4..6], 2, 0, 59)?)
        }
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    u64::try_from(seconds * 1000 + millis).ok()
}

/// Milliseconds since the epoch as RFC 3339 in UTC, to the millisecond.
pub(crate) fn format_ms(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_offsets() {
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("1767225601000"), Ok(1_767_225_601_000));
        assert_eq!(parse_time("2026-01-01T00:00:01Z"), Ok(1_767_225_601_000));
        assert_eq!(parse_time("2026-01-01T01:00:01.5+01:00"), Ok(1_767_225_601_500));
        assert_eq!(format_ms(1_767_225_601_500), "2026-01-01T00:00:01.500Z");
        assert_eq!(parse_time(&format_ms(951_782_400_123)), Ok(951_782_400_123));
        for bad in [
            "",
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "1e3",
            "-5",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
