//! `{source}` and `{date}` in sink paths, subjects, stream keys and routing
//! keys: the only placeholders, so a template cannot reach anything else.

/// `template` with `{source}` replaced by `source` and `{date}` by the UTC
/// day (`YYYY-MM-DD`) of `at_ms`. Other text, braces included, is kept.
pub fn render(template: &str, source: &str, at_ms: i64) -> String {
    let mut out = template.replace("{source}", source);
    if out.contains("{date}") {
        out = out.replace("{date}", &utc_date(at_ms));
    }
    out
}

/// The UTC calendar day of `at_ms` (unix milliseconds) as `YYYY-MM-DD`.
pub fn utc_date(at_ms: i64) -> String {
    let (year, month, day) = crate::civil::civil_from_days(at_ms.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(86_399_999), "1970-01-01");
        assert_eq!(utc_date(86_400_000), "1970-01-02");
        // 2024-02-29T23:59:59.999Z and the next millisecond.
        assert_eq!(utc_date(1_709_251_199_999), "2024-02-29");
        assert_eq!(utc_date(1_709_251_200_000), "2024-03-01");
        assert_eq!(utc_date(1_798_761_600_000), "2027-01-01");
    }

    #[test]
    fn only_source_and_date_are_replaced() {
        assert_eq!(
            render("data/{source}/{date}.jsonl", "github", 0),
            "data/github/1970-01-01.jsonl"
        );
        assert_eq!(
            render("hookyard.{source}.{other}", "s", 0),
            "hookyard.s.{other}"
        );
    }
}
