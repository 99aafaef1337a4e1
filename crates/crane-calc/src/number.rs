//! The calculator's value type, [`Number`]: an exact decimal or, once
//! exactness is lost, an `f64`; plus how number literals become values.

use std::fmt;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// A calculator value.
///
/// `Exact` values are computed with `rust_decimal` (96-bit mantissa, up to
/// 28 decimal places): sums, differences, products and remainders are exact
/// whenever the result fits; quotients that do not terminate (`1/3`) are
/// rounded to 28 significant places, as any decimal calculator does. A value
/// becomes `Approx` when decimal arithmetic cannot hold it (overflow, a
/// literal such as `1e308`, results below about 1e-13 that would keep too few
/// digits) or the operation is inherently inexact (`sqrt(2)`, `2^0.5`); every
/// value computed from an `Approx` is `Approx` too. An `Approx` is never NaN
/// or infinite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An exact decimal value.
    Exact(Decimal),
    /// A binary floating-point approximation.
    Approx(f64),
}

impl Number {
    /// Whether the value is an exact decimal.
    pub fn is_exact(&self) -> bool {
        matches!(self, Self::Exact(_))
    }

    /// The value as the nearest `f64`.
    pub fn as_f64(&self) -> f64 {
        match self {
            Self::Exact(d) => decimal_to_f64(*d),
            Self::Approx(f) => *f,
        }
    }

    /// `Some(i)` when the value is an integer that fits in `i64` exactly,
    /// else `None`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Exact(d) => {
                if d.fract().is_zero() {
                    d.to_i64()
                } else {
                    None
                }
            }
            Self::Approx(f) => {
                // -2^63 is representable; 2^63 is not.
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                if f.is_finite() && f.fract() == 0.0 && *f >= -LIMIT && *f < LIMIT {
                    // The range check above makes this conversion exact.
                    #[allow(clippy::cast_possible_truncation)]
                    Some(*f as i64)
                } else {
                    None
                }
            }
        }
    }
}

impl fmt::Display for Number {
    /// Canonical text. Exact values are normalized and never use an exponent
    /// (`2.50` → `2.5`, `6/3` → `2`). Approximate values use Rust's shortest
    /// round-trip form: plain notation for magnitudes in `[1e-7, 1e21)`, and
    /// scientific notation outside it (`1e300`, `1.5e-30`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(d) => write!(f, "{}", d.normalize()),
            Self::Approx(v) => {
                let magnitude = v.abs();
                if *v == 0.0 {
                    f.write_str("0")
                } else if !(1e-7..1e21).contains(&magnitude) {
                    write!(f, "{v:e}")
                } else {
                    write!(f, "{v}")
                }
            }
        }
    }
}

/// The `f64` nearest to `d` (correctly rounded, via its decimal text).
pub(crate) fn decimal_to_f64(d: Decimal) -> f64 {
    d.to_string()
        .parse::<f64>()
        .unwrap_or_else(|_| d.to_f64().unwrap_or(0.0))
}

/// The value of a number literal with integer digits `int_digits`, fraction
/// digits `frac_digits` (both ASCII digits only, possibly empty) and decimal
/// exponent `exponent`. Exact when `rust_decimal` can hold it exactly;
/// otherwise the nearest `f64`, which may be infinite (the evaluator rejects
/// that as too large).
pub(crate) fn literal_value(int_digits: &str, frac_digits: &str, exponent: i64) -> Number {
    let digits = format!("{int_digits}{frac_digits}");
    let digits = digits.trim_start_matches('0');
    let significant = digits.trim_end_matches('0');
    if significant.is_empty() {
        return Number::Exact(Decimal::ZERO);
    }
    let trailing_zeros = to_i64(digits.len() - significant.len());
    let frac_len = to_i64(frac_digits.len());
    // value = significant × 10^exp10
    let exp10 = exponent
        .saturating_sub(frac_len)
        .saturating_add(trailing_zeros);
    if let Some(d) = exact_decimal(significant, exp10) {
        return Number::Exact(d);
    }
    let len = to_i64(significant.len());
    if exp10 > 400 {
        Number::Approx(f64::INFINITY)
    } else if len.saturating_add(exp10) < -400 {
        Number::Approx(0.0)
    } else {
        Number::Approx(
            format!("{significant}e{exp10}")
                .parse::<f64>()
                .unwrap_or(0.0),
        )
    }
}

/// `significant × 10^exp10` as an exact decimal, when it fits.
fn exact_decimal(significant: &str, exp10: i64) -> Option<Decimal> {
    if significant.len() > 29 {
        return None;
    }
    let mantissa = significant.bytes().try_fold(0i128, |acc, b| {
        acc.checked_mul(10)?
            .checked_add(i128::from(b.checked_sub(b'0')?))
    })?;
    if exp10 >= 0 {
        let factor = 10i128.checked_pow(u32::try_from(exp10).ok()?)?;
        Decimal::try_from_i128_with_scale(mantissa.checked_mul(factor)?, 0).ok()
    } else {
        let scale = u32::try_from(exp10.checked_neg()?).ok()?;
        Decimal::try_from_i128_with_scale(mantissa, scale).ok()
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(int: &str, frac: &str, exp: i64) -> Number {
        literal_value(int, frac, exp)
    }

    #[test]
    fn literals_that_fit_are_exact() {
        assert_eq!(lit("12", "", 0).to_string(), "12");
        assert_eq!(lit("3", "5", 0).to_string(), "3.5");
        assert_eq!(lit("", "5", 0).to_string(), "0.5");
        assert_eq!(lit("1", "", 3).to_string(), "1000");
        assert_eq!(lit("2", "5", -3).to_string(), "0.0025");
        assert_eq!(lit("000", "000", 0), Number::Exact(Decimal::ZERO));
        assert_eq!(
            lit("0", "1000000000000000000000000000000", 0).to_string(),
            "0.1"
        );
        assert!(lit("1", "", 28).is_exact());
        assert!(lit("1", "", -28).is_exact());
        assert!(lit("79228162514264337593543950335", "", 0).is_exact());
    }

    #[test]
    fn literals_beyond_decimal_fall_back_to_f64() {
        assert_eq!(lit("1", "", 308), Number::Approx(1e308));
        assert_eq!(lit("1", "", -29), Number::Approx(1e-29));
        assert!(!lit("79228162514264337593543950336", "", 0).is_exact());
        assert_eq!(lit("1", "", i64::MAX), Number::Approx(f64::INFINITY));
        assert_eq!(lit("1", "", i64::MIN), Number::Approx(0.0));
        let long = "1".repeat(5000);
        assert!(!lit(&long, "", 0).is_exact());
    }

    #[test]
    fn display_is_canonical() {
        let d = Decimal::new(250, 2);
        assert_eq!(Number::Exact(d).to_string(), "2.5");
        assert_eq!(Number::Exact(-Decimal::ZERO).to_string(), "0");
        assert_eq!(Number::Approx(0.1 + 0.2).to_string(), "0.30000000000000004");
        assert_eq!(Number::Approx(2.0).to_string(), "2");
        assert_eq!(Number::Approx(-0.0).to_string(), "0");
        assert_eq!(Number::Approx(1e300).to_string(), "1e300");
        assert_eq!(Number::Approx(-1.5e-30).to_string(), "-1.5e-30");
        assert_eq!(Number::Approx(1e20).to_string(), "100000000000000000000");
        assert_eq!(Number::Approx(1e21).to_string(), "1e21");
    }

    #[test]
    fn conversions() {
        let n = Number::Exact(Decimal::new(121_932_631_112_635_269, 0));
        assert_eq!(n.as_i64(), Some(121_932_631_112_635_269));
        assert_eq!(Number::Exact(Decimal::new(25, 1)).as_i64(), None);
        assert_eq!(Number::Exact(Decimal::new(20, 1)).as_i64(), Some(2));
        assert_eq!(Number::Exact(Decimal::MAX).as_i64(), None);
        assert_eq!(Number::Approx(3.0).as_i64(), Some(3));
        assert_eq!(Number::Approx(3.5).as_i64(), None);
        assert_eq!(Number::Approx(9.3e18).as_i64(), None);
        assert_eq!(
            Number::Approx(-9_223_372_036_854_775_808.0).as_i64(),
            Some(i64::MIN)
        );
        assert_eq!(Number::Exact(Decimal::new(1, 1)).as_f64(), 0.1);
        assert!(Number::Exact(Decimal::ONE).is_exact());
        assert!(!Number::Approx(1.0).is_exact());
    }
}
