//! Times on the command line (`--since`, `--until`): an RFC 3339 instant
//! (`2026-11-29T10:00:00Z`, `...+01:00`), a UTC day (`2026-11-29`), or a
//! span back from now (`90m`, `2h`, `7d`). Parsed by hand: three formats do
//! not justify a date-time crate. Also how tables print a time.

/// `YYYY-MM-DD HH:MM:SS` (UTC) of unix milliseconds, for tables.
pub(crate) fn format_ms(ms: i64) -> String {
    let (year, month, day) = crate::civil::civil_from_days(ms.div_euclid(86_400_000));
    let of_day = ms.rem_euclid(86_400_000) / 1000;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Unix milliseconds for `text`, given the current time.
pub(crate) fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Some(ago) = parse_span(text) {
        return Ok(now_ms.saturating_sub(ago));
    }
    let invalid = || {
        format!(
            "`{text}` is not a time: use 2026-11-29T10:00:00Z (RFC 3339), 2026-11-29 (a UTC day) \
             or a span back from now such as 90m, 2h or 7d"
        )
    };
    let (date, rest) = text.split_at(text.len().min(10));
    let day = parse_date(date).ok_or_else(invalid)?;
    let mut ms = day * 86_400_000;
    if rest.is_empty() {
        return Ok(ms);
    }
    let rest = rest
        .strip_prefix('T')
        .or_else(|| rest.strip_prefix('t'))
        .or_else(|| rest.strip_prefix(' '))
        .ok_or_else(invalid)?;
    let (clock, zone) = split_zone(rest).ok_or_else(invalid)?;
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let parts: Vec<&str> = hms.split(':').collect();
    let [h, m, s] = parts.as_slice() else {
        return Err(invalid());
    };
    let field = |v: &str, max: i64| {
        v.parse::<i64>()
            .ok()
            .filter(|n| (0..=max).contains(n) && v.len() == 2)
    };
    let (h, m, s) = (
        field(h, 23).ok_or_else(invalid)?,
        field(m, 59).ok_or_else(invalid)?,
        field(s, 60).ok_or_else(invalid)?,
    );
    ms += ((h * 60 + m) * 60 + s) * 1000;
    if !fraction.is_empty() {
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
        ms += millis.parse::<i64>().map_err(|_| invalid())?;
    }
    Ok(ms - zone * 60_000)
}

/// `90m`, `2h`, `7d`, `30s` as milliseconds.
fn parse_span(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let per = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    let n: i64 = text[..text.len() - 1].parse().ok()?;
    (n >= 0).then(|| n.saturating_mul(per))
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
fn parse_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let y: i64 = text[0..4].parse().ok()?;
    let m: i64 = text[5..7].parse().ok()?;
    let d: i64 = text[8..10].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(crate::civil::days_from_civil(y, m, d))
}

/// Splits `HH:MM:SS[.fff]` from its zone (`Z` or `±HH:MM`); the zone as
/// minutes east of UTC.
fn split_zone(rest: &str) -> Option<(&str, i64)> {
    if let Some(clock) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
        return Some((clock, 0));
    }
    let at = rest.len().checked_sub(6)?;
    let (clock, zone) = rest.split_at(at);
    let sign = match zone.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = zone[1..].split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    Some((clock, sign * (h * 60 + m)))
}

#[cfg(test)]
mod tests {
    use super::{format_ms, parse_time};

    #[test]
    fn tables_print_utc_to_the_second() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00");
        assert_eq!(format_ms(1_796_282_561_999), "2026-12-03 07:22:41");
    }

    const NOW: i64 = 1_764_410_400_000; // 2025-11-29T10:00:00Z

    #[test]
    fn instants_days_and_spans() {
        assert_eq!(parse_time("2025-11-29T10:00:00Z", 0), Ok(NOW));
        assert_eq!(parse_time("2025-11-29T11:00:00+01:00", 0), Ok(NOW));
        assert_eq!(parse_time("2025-11-29T10:00:00.5Z", 0), Ok(NOW + 500));
        assert_eq!(parse_time("2025-11-29", 0), Ok(NOW - 10 * 3_600_000));
        assert_eq!(parse_time("1970-01-01", 0), Ok(0));
        assert_eq!(parse_time("2h", NOW), Ok(NOW - 7_200_000));
        assert_eq!(parse_time("7d", NOW), Ok(NOW - 7 * 86_400_000));
    }

    #[test]
    fn anything_else_is_refused_with_the_formats() {
        for bad in [
            "yesterday",
            "2025-13-01",
            "2025-11-29T25:00:00Z",
            "2025-11-29T10:00Z",
            "-2h",
        ] {
            let error = parse_time(bad, NOW).unwrap_err();
            assert!(error.contains("RFC 3339"), "{bad}: {error}");
        }
    }
}
