//! Arithmetic on [`Number`]s: exact decimal where possible, `f64` fallback
//! where not, and the checks that keep every value finite, real and within
//! the configured magnitude limit.

use rust_decimal::Decimal;

use crate::error::CalcError;
use crate::number::Number;

/// Decimal results below this magnitude that used all 28 decimal places may
/// have kept fewer significant digits than an `f64`; they are recomputed in
/// floating point. (1e-13)
const TINY: Decimal = Decimal::from_parts(1, 0, 0, false, 13);

/// The magnitude limit, in both representations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Values must satisfy `|v| < approx_limit` (may be infinite).
    approx_limit: f64,
    /// The same limit for exact values, when it is below `Decimal::MAX`.
    exact_limit: Option<Decimal>,
}

impl Bounds {
    /// Bounds for `|value| < 10^max_digits`.
    pub(crate) fn new(max_digits: u32) -> Self {
        // Parsing gives the correctly rounded power of ten (or infinity).
        let approx_limit = format!("1e{max_digits}")
            .parse::<f64>()
            .unwrap_or(f64::INFINITY);
        let exact_limit = 10i128
            .checked_pow(max_digits)
            .and_then(|p| Decimal::try_from_i128_with_scale(p, 0).ok());
        Self {
            approx_limit,
            exact_limit,
        }
    }

    /// Accepts `value` as the result of whatever is at `position`, in
    /// canonical form (normalized decimal, no negative zero), or explains
    /// why not.
    pub(crate) fn check(&self, value: Number, position: usize) -> Result<Number, CalcError> {
        match value {
            Number::Exact(d) => {
                if self.exact_limit.is_some_and(|limit| d.abs() >= limit) {
                    Err(CalcError::TooLarge { position })
                } else {
                    Ok(Number::Exact(d.normalize()))
                }
            }
            Number::Approx(f) => {
                if f.is_nan() {
                    Err(CalcError::NotReal { position })
                } else if f.is_infinite() || f.abs() >= self.approx_limit {
                    Err(CalcError::TooLarge { position })
                } else if f == 0.0 {
                    Ok(Number::Approx(0.0))
                } else {
                    Ok(Number::Approx(f))
                }
            }
        }
    }

    /// `log10` of the limit, for estimating powers before computing them.
    fn max_log10(&self) -> f64 {
        self.approx_limit.log10()
    }
}

fn is_zero(n: Number) -> bool {
    match n {
        Number::Exact(d) => d.is_zero(),
        Number::Approx(f) => f == 0.0,
    }
}

/// Accepts a decimal product or quotient unless it lost too many digits to
/// underflow: a zero from non-zero operands, or a tiny value at full scale.
fn keep_decimal(result: Decimal, operands_nonzero: bool) -> Option<Decimal> {
    let underflowed = operands_nonzero && result.is_zero();
    let thinned = result.scale() >= Decimal::MAX_SCALE && result.abs() < TINY;
    (!underflowed && !thinned).then_some(result)
}

/// Applies an exact operation when both operands are exact and it succeeds,
/// else the floating-point one.
fn combine(
    a: Number,
    b: Number,
    exact: impl Fn(Decimal, Decimal) -> Option<Decimal>,
    approx: impl Fn(f64, f64) -> f64,
) -> Number {
    if let (Number::Exact(x), Number::Exact(y)) = (a, b)
        && let Some(r) = exact(x, y)
    {
        return Number::Exact(r);
    }
    Number::Approx(approx(a.as_f64(), b.as_f64()))
}

pub(crate) fn add(a: Number, b: Number) -> Number {
    combine(a, b, Decimal::checked_add, |x, y| x + y)
}

pub(crate) fn sub(a: Number, b: Number) -> Number {
    combine(a, b, Decimal::checked_sub, |x, y| x - y)
}

pub(crate) fn mul(a: Number, b: Number) -> Number {
    combine(
        a,
        b,
        |x, y| keep_decimal(x.checked_mul(y)?, !x.is_zero() && !y.is_zero()),
        |x, y| x * y,
    )
}

pub(crate) fn div(a: Number, b: Number, position: usize) -> Result<Number, CalcError> {
    if is_zero(b) {
        return Err(CalcError::DivisionByZero { position });
    }
    Ok(combine(
        a,
        b,
        |x, y| keep_decimal(x.checked_div(y)?, !x.is_zero()),
        |x, y| x / y,
    ))
}

/// Remainder with the sign of the dividend, like Rust's `%`.
pub(crate) fn rem(a: Number, b: Number, position: usize) -> Result<Number, CalcError> {
    if is_zero(b) {
        return Err(CalcError::DivisionByZero { position });
    }
    Ok(combine(a, b, Decimal::checked_rem, |x, y| x % y))
}

pub(crate) fn neg(a: Number) -> Number {
    match a {
        Number::Exact(d) => Number::Exact(-d),
        Number::Approx(f) => Number::Approx(-f),
    }
}

/// `base ^ exponent`, with `position` the `^`'s.
///
/// Integer exponents on exact bases are computed exactly by repeated
/// squaring (at most 64 squarings), after estimating the result's magnitude
/// with logarithms so that e.g. `9^387420489` fails at once. Other cases use
/// `f64::powf`. `0^0` is 1.
pub(crate) fn pow(
    base: Number,
    exponent: Number,
    position: usize,
    bounds: &Bounds,
) -> Result<Number, CalcError> {
    let both_exact = base.is_exact() && exponent.is_exact();
    let one = if both_exact {
        Number::Exact(Decimal::ONE)
    } else {
        Number::Approx(1.0)
    };
    let b = base.as_f64();
    let e = exponent.as_f64();
    if is_zero(exponent) {
        return Ok(one);
    }
    if is_zero(base) {
        return if e < 0.0 {
            Err(CalcError::DivisionByZero { position })
        } else {
            Ok(base)
        };
    }
    let integer = match exponent {
        Number::Exact(d) => d.fract().is_zero(),
        Number::Approx(f) => f.fract() == 0.0,
    };
    if !integer {
        if let (Number::Exact(d), Number::Exact(half)) = (base, exponent)
            && half == Decimal::new(5, 1)
            && d.is_sign_positive()
            && let Some(root) = exact_sqrt(d)
        {
            return Ok(Number::Exact(root));
        }
        if b < 0.0 {
            return Err(CalcError::NotReal { position });
        }
        return Ok(Number::Approx(b.powf(e)));
    }
    if b.abs() == 1.0 && base.is_exact() {
        // ±1 to an integer power: no need to look at the exponent's size.
        let odd = match exponent {
            Number::Exact(d) => d.checked_rem(Decimal::TWO).is_some_and(|r| !r.is_zero()),
            Number::Approx(f) => f % 2.0 != 0.0,
        };
        return Ok(if b < 0.0 && odd { neg(one) } else { one });
    }
    // |base|^exponent = 10^magnitude
    let magnitude = e * b.abs().log10();
    if magnitude > bounds.max_log10() + 1.0 {
        return Err(CalcError::TooLarge { position });
    }
    if magnitude < -400.0 {
        // Far below the smallest f64: the value rounds to zero.
        return Ok(Number::Approx(0.0));
    }
    if let (Number::Exact(d), Some(n)) = (base, exponent.as_i64())
        && let Some(r) = exact_powi(d, n)
    {
        return Ok(Number::Exact(r));
    }
    Ok(Number::Approx(b.powf(e)))
}

/// `base^n` in decimal arithmetic, or `None` when it overflows or
/// underflows.
fn exact_powi(base: Decimal, n: i64) -> Option<Decimal> {
    let mut result = Decimal::ONE;
    let mut square = base;
    let mut k = n.unsigned_abs();
    while k > 0 {
        if k & 1 == 1 {
            result = result.checked_mul(square)?;
        }
        k >>= 1;
        if k > 0 {
            square = square.checked_mul(square)?;
        }
    }
    let result = if n < 0 {
        Decimal::ONE.checked_div(result)?
    } else {
        result
    };
    keep_decimal(result, true)
}

/// The square root of `d` when it is an exact decimal, else `None`.
pub(crate) fn exact_sqrt(d: Decimal) -> Option<Decimal> {
    if d.is_sign_negative() && !d.is_zero() {
        return None;
    }
    let mut mantissa = u128::try_from(d.mantissa()).ok()?;
    let mut scale = d.scale();
    if scale % 2 == 1 {
        mantissa = mantissa.checked_mul(10)?;
        scale += 1;
    }
    let root = isqrt(mantissa);
    if root.checked_mul(root)? != mantissa {
        return None;
    }
    Decimal::try_from_i128_with_scale(i128::try_from(root).ok()?, scale / 2).ok()
}

/// The integer square root (floor) of `n`.
fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    // Start at a power of two not below the root; Newton's iteration then
    // decreases strictly until it reaches the floor of the root.
    let bits = 128 - n.leading_zeros();
    let mut x: u128 = 1 << bits.div_ceil(2);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// `sqrt(a)`, exact when the root is an exact decimal. `position` is the
/// function name's.
pub(crate) fn sqrt(a: Number, position: usize) -> Result<Number, CalcError> {
    let f = a.as_f64();
    if f < 0.0 || matches!(a, Number::Exact(d) if d.is_sign_negative() && !d.is_zero()) {
        return Err(CalcError::SqrtOfNegative { position });
    }
    if let Number::Exact(d) = a
        && let Some(root) = exact_sqrt(d)
    {
        return Ok(Number::Exact(root));
    }
    Ok(Number::Approx(f.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn isqrt_is_exact_floor() {
        for n in 0u128..2000 {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "{n}");
        }
        let big = u128::from(u64::MAX);
        assert_eq!(isqrt(big * big), big);
        assert_eq!(isqrt(big * big - 1), big - 1);
        assert_eq!(isqrt(u128::MAX), u128::from(u64::MAX));
    }

    #[test]
    fn exact_square_roots() {
        assert_eq!(exact_sqrt(dec("16")), Some(dec("4")));
        assert_eq!(exact_sqrt(dec("2.25")), Some(dec("1.5")));
        assert_eq!(exact_sqrt(dec("0.0001")), Some(dec("0.01")));
        assert_eq!(exact_sqrt(dec("0.001")), None);
        assert_eq!(exact_sqrt(dec("2")), None);
        assert_eq!(exact_sqrt(Decimal::ZERO), Some(Decimal::ZERO));
        assert_eq!(exact_sqrt(dec("-4")), None);
        assert!(exact_sqrt(Decimal::MAX).is_none());
    }

    #[test]
    fn exact_integer_powers() {
        assert_eq!(exact_powi(dec("2"), 10), Some(dec("1024")));
        assert_eq!(exact_powi(dec("2"), -2), Some(dec("0.25")));
        assert_eq!(exact_powi(dec("-3"), 3), Some(dec("-27")));
        assert_eq!(exact_powi(dec("1.5"), 2), Some(dec("2.25")));
        assert_eq!(exact_powi(dec("10"), 29), None);
        assert_eq!(
            exact_powi(dec("0.1"), 20),
            Some(dec("0.00000000000000000001"))
        );
        assert_eq!(exact_powi(dec("0.1"), 29), None);
        assert_eq!(exact_powi(dec("0.3"), 40), None);
    }

    #[test]
    fn bounds_reject_large_and_nan_values() {
        let bounds = Bounds::new(300);
        assert!(bounds.check(Number::Approx(1e299), 1).is_ok());
        assert_eq!(
            bounds.check(Number::Approx(1e301), 1),
            Err(CalcError::TooLarge { position: 1 })
        );
        assert_eq!(
            bounds.check(Number::Approx(f64::NAN), 2),
            Err(CalcError::NotReal { position: 2 })
        );
        assert!(bounds.check(Number::Exact(Decimal::MAX), 1).is_ok());
        let small = Bounds::new(2);
        assert!(small.check(Number::Exact(dec("99.9")), 1).is_ok());
        assert!(small.check(Number::Exact(dec("-100")), 1).is_err());
        assert!(small.check(Number::Approx(100.0), 1).is_err());
        let huge = Bounds::new(u32::MAX);
        assert!(huge.check(Number::Approx(f64::MAX), 1).is_ok());
        assert!(huge.check(Number::Approx(f64::INFINITY), 1).is_err());
    }

    #[test]
    fn tiny_decimal_products_fall_back_to_f64() {
        let a = Number::Exact(dec("0.0000001"));
        assert_eq!(mul(a, a), Number::Exact(dec("0.00000000000001")));
        let b = Number::Exact(dec("0.0000000001234567"));
        assert_eq!(mul(b, b), Number::Approx(1.234567e-10 * 1.234567e-10));
        let c = Number::Exact(dec("0.00000000000001"));
        assert_eq!(mul(c, c), Number::Approx(1e-28));
        let third = div(
            Number::Exact(Decimal::ONE),
            Number::Exact(dec("300000000000000000000")),
            1,
        )
        .unwrap();
        assert!(!third.is_exact());
        assert_eq!(
            mul(Number::Exact(dec("0.5")), Number::Exact(dec("0.5"))).to_string(),
            "0.25"
        );
    }
}
