//! Usage arithmetic: month keys, and run hours split at UTC month boundaries.

use time::{Date, Month, OffsetDateTime};

/// `YYYY-MM` of the UTC calendar month containing `t` (Unix seconds).
pub fn month_key(t: i64) -> String {
    let d = OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}", d.year(), u8::from(d.month()))
}

/// `<userId>#<YYYY-MM>`
pub fn usage_key(user_id: &str, t: i64) -> String {
    format!("{user_id}#{}", month_key(t))
}

/// Unix seconds of the first instant of the month after the one containing `t`.
fn next_month_start(t: i64) -> i64 {
    let d = OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (y, m) = match d.month() {
        Month::December => (d.year() + 1, Month::January),
        m => (d.year(), m.next()),
    };
    Date::from_calendar_date(y, m, 1)
        .map(|date| date.midnight().assume_utc().unix_timestamp())
        .unwrap_or(i64::MAX)
}

/// The hours of the run `[started, stopped)` per UTC month, in order: `(month, hours)`.
/// Empty when the run has no positive length.
pub fn split_run_hours(started: i64, stopped: i64) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut from = started;
    while from < stopped {
        let to = next_month_start(from).min(stopped);
        if to <= from {
            break;
        }
        out.push((month_key(from), (to - from) as f64 / 3600.0));
        from = to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_31_2330: i64 = 1_738_366_200; // 2025-01-31T23:30:00Z
    const FEB_01_0130: i64 = 1_738_373_400; // 2025-02-01T01:30:00Z

    #[test]
    fn month_keys_are_utc_and_zero_padded() {
        assert_eq!(month_key(JAN_31_2330), "2025-01");
        assert_eq!(month_key(FEB_01_0130), "2025-02");
        assert_eq!(usage_key("42", 0), "42#1970-01");
    }

    #[test]
    fn a_run_across_midnight_of_a_month_is_split() {
        let parts = split_run_hours(JAN_31_2330, FEB_01_0130);
        assert_eq!(parts, vec![("2025-01".to_string(), 0.5), ("2025-02".to_string(), 1.5)]);
    }

    #[test]
    fn a_run_across_new_year_and_several_months_is_split() {
        let dec_31_23h = 1_767_222_000; // 2025-12-31T23:00:00Z
        let feb_01_01h = 1_769_907_600; // 2026-02-01T01:00:00Z
        let parts = split_run_hours(dec_31_23h, feb_01_01h);
        assert_eq!(
            parts,
            vec![
                ("2025-12".to_string(), 1.0),
                ("2026-01".to_string(), 744.0),
                ("2026-02".to_string(), 1.0)
            ]
        );
    }

    #[test]
    fn empty_and_negative_runs_book_nothing() {
        assert!(split_run_hours(100, 100).is_empty());
        assert!(split_run_hours(200, 100).is_empty());
    }
}
