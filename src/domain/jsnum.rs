//! JavaScript number semantics: `Number.prototype.toString` (what `JSON.stringify`
//! prints) and `parseFloat`: the answers and the cost rate must read as the original's did.

/// Formats `x` as JavaScript does: `2` not `2.0`, shortest round-trip digits,
/// exponent form outside 1e-7 < |x| < 1e21. `None` for NaN and ±Infinity (which
/// `JSON.stringify` prints as `null`).
pub fn format(x: f64) -> Option<String> {
    if !x.is_finite() {
        return None;
    }
    if x == 0.0 {
        return Some("0".to_string());
    }
    let (sign, x) = if x < 0.0 { ("-", -x) } else { ("", x) };
    // Rust's `{:e}` yields the shortest digits that round-trip, e.g. `4.166666666666667e-1`.
    let exp_form = format!("{x:e}");
    let (mantissa, exp) = exp_form.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = i32::try_from(digits.len()).ok()?;
    let n = exp + 1; // value = 0.d1d2…dk × 10^n
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let esign = if e < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{esign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{esign}{}", e.abs())
        }
    };
    Some(format!("{sign}{body}"))
}

/// JavaScript `parseFloat`: skips leading white space, reads the longest decimal prefix
/// (`Infinity` included), and yields NaN when there is none.
pub fn parse_float(text: &str) -> f64 {
    let s = text.trim_start();
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if s[i..].starts_with("Infinity") {
        return if b.first() == Some(&b'-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut mantissa_digits = i - digits_start;
    if i < b.len() && b[i] == b'.' {
        let dot = i;
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        mantissa_digits += i - frac_start;
        if mantissa_digits == 0 {
            i = dot;
        }
    }
    if mantissa_digits == 0 {
        return f64::NAN;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    s[..i].parse::<f64>().unwrap_or(f64::NAN)
}

/// The DynamoDB `N` text of a number (same digits as JavaScript would send).
pub fn to_dynamo(x: f64) -> Option<String> {
    format(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_javascript() {
        let cases: &[(f64, &str)] = &[
            (2.0, "2"),
            (-2.0, "-2"),
            (0.0, "0"),
            (-0.0, "0"),
            (0.1, "0.1"),
            (0.4166666666666667, "0.4166666666666667"),
            (5.0 / 12.0, "0.4166666666666667"),
            (1.5, "1.5"),
            (123456789.125, "123456789.125"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (1e20, "100000000000000000000"),
            (0.000001, "0.000001"),
            (0.0000001, "1e-7"),
            (1.234e-7, "1.234e-7"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1_700_000_000.0, "1700000000"),
            (9007199254740993.0, "9007199254740992"),
        ];
        for (x, want) in cases {
            assert_eq!(format(*x).as_deref(), Some(*want), "format({x})");
        }
        assert_eq!(format(f64::NAN), None);
        assert_eq!(format(f64::INFINITY), None);
    }

    #[test]
    fn parse_float_reads_the_longest_decimal_prefix() {
        assert_eq!(parse_float("0.10"), 0.1);
        assert_eq!(parse_float("  1.00"), 1.0);
        assert_eq!(parse_float("3,50"), 3.0);
        assert_eq!(parse_float("3.00 EUR"), 3.0);
        assert_eq!(parse_float("-2.5e1x"), -25.0);
        assert_eq!(parse_float("1e"), 1.0);
        assert_eq!(parse_float(".5"), 0.5);
        assert_eq!(parse_float("5."), 5.0);
        assert_eq!(parse_float("Infinity"), f64::INFINITY);
        assert!(parse_float("abc").is_nan());
        assert!(parse_float("").is_nan());
        assert!(parse_float(".").is_nan());
        assert!(parse_float("-").is_nan());
    }
}
