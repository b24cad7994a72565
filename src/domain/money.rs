//! Exact money: amounts, hours and rates as decimals, never as accumulated binary floats.
//!
//! Stored and configured numbers are read as the decimal they print as (`0.1` is one
//! tenth, not the nearest binary fraction), and every sum and product is exact. A rate
//! that JavaScript would read as `NaN` stays "not a number" (`None`), which the answers
//! print as `null`, as the original did.

use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
pub use rust_decimal::Decimal;
use rust_decimal::RoundingStrategy;

use super::jsnum;

/// The decimal a number prints as, `None` for NaN and infinities.
pub fn exact(x: f64) -> Option<Decimal> {
    let text = jsnum::format(x)?;
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

/// A decimal as the JSON number of an answer (`None`: `NaN`, printed `null`).
pub fn number(d: Option<Decimal>) -> f64 {
    d.and_then(|d| d.to_f64()).unwrap_or(f64::NAN)
}

/// `max(0, x)`; "not a number" stays so.
pub fn at_least_zero(x: Option<Decimal>) -> Option<Decimal> {
    x.map(|d| d.max(Decimal::ZERO))
}

/// Rounded to cents, halves away from zero.
pub fn cents(x: Option<Decimal>) -> Option<Decimal> {
    x.map(|d| d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero))
}

/// A money amount as Ko-fi sends it (`"3.00"`): a positive decimal with at most two
/// places and at most a million, or why not.
pub fn amount(text: &str) -> Result<Decimal, String> {
    let d = Decimal::from_str(text.trim()).map_err(|_| format!("amount '{text}' is not a number"))?;
    if d <= Decimal::ZERO {
        return Err(format!("amount '{text}' is not positive"));
    }
    // Trailing zeros do not count ("3.000" is 3).
    if d.normalize().scale() > 2 {
        return Err(format!("amount '{text}' has more than two decimals"));
    }
    if d > Decimal::from(1_000_000) {
        return Err(format!("amount '{text}' is too large"));
    }
    Ok(d.normalize())
}

/// The cost figures of one user and month.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub hours: Option<Decimal>,
    pub total: Option<Decimal>,
    pub donations: Option<Decimal>,
    pub uncovered: Option<Decimal>,
}

/// `hours × rate` and what the donations leave uncovered.
pub fn cost(hours: f64, donations: f64, rate: Option<Decimal>) -> Cost {
    let hours = exact(hours);
    let donations = exact(donations);
    let total = match (hours, rate) {
        (Some(h), Some(r)) => h.checked_mul(r),
        _ => None,
    };
    let uncovered = match (total, donations) {
        (Some(t), Some(d)) => at_least_zero(Some(t - d)),
        _ => None,
    };
    Cost {
        hours,
        total,
        donations,
        uncovered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn sums_of_stored_numbers_are_exact() {
        let total: Decimal = [0.1, 0.2].iter().filter_map(|x| exact(*x)).sum();
        assert_eq!(total, d("0.3"));
        assert_eq!(number(Some(total)), 0.3, "not 0.30000000000000004");
        assert!(number(None).is_nan());
    }

    #[test]
    fn costs_multiply_exactly_and_never_go_below_zero() {
        let c = cost(2.5, 1.0, exact(0.1));
        assert_eq!(c.total, Some(d("0.25")));
        assert_eq!(c.uncovered, Some(Decimal::ZERO));
        let c = cost(10.0, 0.3, exact(0.1));
        assert_eq!(c.uncovered, Some(d("0.7")));
        assert_eq!(cost(1.0, 0.0, exact(f64::NAN)).uncovered, None);
    }

    #[test]
    fn cents_round_half_away_from_zero() {
        assert_eq!(cents(Some(d("1.005"))), Some(d("1.01")));
        assert_eq!(cents(Some(d("3.333"))), Some(d("3.33")));
        assert_eq!(cents(Some(d("-0.125"))), Some(d("-0.13")));
    }

    #[test]
    fn amounts_are_positive_with_at_most_two_decimals() {
        assert_eq!(amount("3.00").unwrap(), d("3"));
        assert_eq!(amount(" 12.5 ").unwrap(), d("12.5"));
        assert!(amount("0").is_err());
        assert!(amount("-1").is_err());
        assert!(amount("3,50").is_err());
        assert!(amount("1.234").is_err());
        assert!(amount("NaN").is_err());
        assert!(amount("2000000").is_err());
        // The bounds: two decimals and a million are fine, trailing zeros do not count.
        assert_eq!(amount("1.25").unwrap(), d("1.25"));
        assert_eq!(amount("3.000").unwrap(), d("3"));
        assert_eq!(amount("1000000").unwrap(), d("1000000"));
        assert!(amount("1000000.01").is_err());
        assert!(amount("0.001").is_err());
    }
}
