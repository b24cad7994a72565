//! Usage and cost arithmetic: month keys, run hours split at
//! UTC month boundaries, costs.

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

/// Cost figures of one user and month.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub hours: f64,
    pub total_cost: f64,
    pub donations: f64,
    pub uncovered: f64,
}

pub fn cost(hours: f64, donations: f64, rate: f64) -> Cost {
    let total_cost = hours * rate;
    Cost {
        hours,
        total_cost,
        donations,
        uncovered: js_max0(total_cost - donations),
    }
}

/// `Math.max(0, x)`: NaN stays NaN, as in JavaScript.
pub fn js_max0(x: f64) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else {
        x.max(0.0)
    }
}

/// JavaScript `Number(x.toFixed(2))`: the exact binary value rounded half away from
/// zero to 2 decimals (Rust's own `{:.2}` rounds exact ties to even instead).
pub fn round2(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    // 1100 fractional digits print every f64 exactly, so ties are detected exactly.
    let exact = format!("{:.1100}", x.abs());
    let Some((int, frac)) = exact.split_once('.') else {
        return x;
    };
    let kept: String = format!("{int}{}", &frac[..2]);
    let mut n: u128 = match kept.parse() {
        Ok(n) => n,
        Err(_) => return x, // beyond u128: already far past 2-decimal precision
    };
    if frac.as_bytes()[2] >= b'5' {
        n += 1;
    }
    let v = n as f64 / 100.0;
    if x < 0.0 {
        -v
    } else {
        v
    }
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

    #[test]
    fn costs_follow_the_spec() {
        let c = cost(2.5, 1.0, 1.0);
        assert_eq!(c.total_cost, 2.5);
        assert_eq!(c.uncovered, 1.5);
        assert_eq!(cost(1.0, 5.0, 1.0).uncovered, 0.0);
        assert!(cost(1.0, 0.0, f64::NAN).uncovered.is_nan());
    }

    #[test]
    fn round2_matches_to_fixed() {
        assert_eq!(round2(1.234), 1.23);
        assert_eq!(round2(2.0), 2.0);
        assert_eq!(round2(0.125), 0.13);
        assert_eq!(round2(10.0 / 3.0), 3.33);
        assert_eq!(round2(1.005), 1.0); // 1.005 is 1.00499999… in binary, as in JS
        assert_eq!(round2(-0.125), -0.13);
        assert_eq!(round2(1e300), 1e300);
    }
}
