//! The calculator's named constants (`pi`, `e`) and functions (`sqrt abs
//! round floor ceil min max`): lookup, argument counts and evaluation.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::arith;
use crate::error::CalcError;
use crate::number::Number;

/// The value of the constant `name` (already lower-cased).
///
/// `pi` and `e` are the 28-decimal-place constants `Decimal::PI` and
/// `Decimal::E`, so they are exact values as far as the calculator is
/// concerned: `2*pi` is deterministic decimal arithmetic and displays all
/// 28 places (6.2831853071795864769252867666).
pub(crate) fn constant(name: &str) -> Option<Number> {
    match name {
        "pi" => Some(Number::Exact(Decimal::PI)),
        "e" => Some(Number::Exact(Decimal::E)),
        _ => None,
    }
}

/// A built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Sqrt,
    Abs,
    Round,
    Floor,
    Ceil,
    Min,
    Max,
}

/// Every function, in the order error messages list them.
pub(crate) const ALL: [Func; 7] = [
    Func::Sqrt,
    Func::Abs,
    Func::Round,
    Func::Floor,
    Func::Ceil,
    Func::Min,
    Func::Max,
];

/// The most decimal places `round(x, n)` accepts.
const MAX_PLACES: u32 = 28;

impl Func {
    /// The function called `name` (already lower-cased).
    pub(crate) fn lookup(name: &str) -> Option<Self> {
        ALL.into_iter().find(|f| f.name() == name)
    }

    /// The canonical (lower-case) name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sqrt => "sqrt",
            Self::Abs => "abs",
            Self::Round => "round",
            Self::Floor => "floor",
            Self::Ceil => "ceil",
            Self::Min => "min",
            Self::Max => "max",
        }
    }

    /// Fails unless the function accepts `count` arguments. `position` is
    /// the function name's.
    pub(crate) fn check_arity(self, count: usize, position: usize) -> Result<(), CalcError> {
        let (ok, expected) = match self {
            Self::Sqrt | Self::Abs | Self::Floor | Self::Ceil => (count == 1, "exactly 1 argument"),
            Self::Round => ((1..=2).contains(&count), "1 or 2 arguments"),
            Self::Min | Self::Max => (count >= 1, "at least 1 argument"),
        };
        if ok {
            Ok(())
        } else {
            Err(CalcError::WrongArgumentCount {
                function: self.name(),
                expected,
                found: count,
                position,
            })
        }
    }

    /// Applies the function to `args` (whose count is already checked).
    /// `position` is the function name's.
    pub(crate) fn apply(self, args: &[Number], position: usize) -> Result<Number, CalcError> {
        let wrong_count = || CalcError::WrongArgumentCount {
            function: self.name(),
            expected: "a different number of arguments",
            found: args.len(),
            position,
        };
        let first = *args.first().ok_or_else(wrong_count)?;
        match self {
            Self::Sqrt => arith::sqrt(first, position),
            Self::Abs => Ok(map(first, |d| d.abs(), f64::abs)),
            Self::Floor => Ok(map(first, |d| d.floor(), f64::floor)),
            Self::Ceil => Ok(map(first, |d| d.ceil(), f64::ceil)),
            Self::Round => {
                let places = match args.get(1) {
                    None => 0,
                    Some(n) => decimal_places(*n).ok_or_else(|| CalcError::InvalidArgument {
                        function: "round",
                        reason: format!(
                            "decimal places must be a whole number from 0 to {MAX_PLACES} (got {n})"
                        ),
                        position,
                    })?,
                };
                Ok(round(first, places))
            }
            Self::Min => Ok(pick(args, first, |candidate, best| candidate < best)),
            Self::Max => Ok(pick(args, first, |candidate, best| candidate > best)),
        }
    }
}

fn map(n: Number, exact: impl Fn(Decimal) -> Decimal, approx: impl Fn(f64) -> f64) -> Number {
    match n {
        Number::Exact(d) => Number::Exact(exact(d)),
        Number::Approx(f) => Number::Approx(approx(f)),
    }
}

/// `n` as a count of decimal places for `round`, if it is one.
fn decimal_places(n: Number) -> Option<u32> {
    n.as_i64()
        .and_then(|i| u32::try_from(i).ok())
        .filter(|&p| p <= MAX_PLACES)
}

/// Rounds half away from zero to `places` decimal places.
fn round(n: Number, places: u32) -> Number {
    match n {
        Number::Exact(d) => {
            Number::Exact(d.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero))
        }
        Number::Approx(f) => {
            let scale = 10f64.powi(i32::try_from(places).unwrap_or(0));
            let scaled = f * scale;
            if !scaled.is_finite() || scaled.abs() >= 2f64.powi(52) {
                // Already more precise than an f64 can tell apart.
                Number::Approx(f)
            } else {
                Number::Approx(scaled.round() / scale)
            }
        }
    }
}

/// The argument that `better` prefers over all others (the first on ties).
fn pick(args: &[Number], first: Number, better: impl Fn(Ordered, Ordered) -> bool) -> Number {
    args.iter().skip(1).fold(first, |best, &candidate| {
        if better(Ordered(candidate), Ordered(best)) {
            candidate
        } else {
            best
        }
    })
}

/// A [`Number`] compared by value: exactly between two exact values, as
/// `f64` otherwise.
#[derive(Clone, Copy, PartialEq)]
struct Ordered(Number);

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match (self.0, other.0) {
            (Number::Exact(a), Number::Exact(b)) => a.partial_cmp(&b),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(s: &str) -> Number {
        Number::Exact(s.parse().unwrap())
    }

    #[test]
    fn lookup_by_name() {
        for f in ALL {
            assert_eq!(Func::lookup(f.name()), Some(f));
        }
        assert_eq!(Func::lookup("foo"), None);
        assert!(constant("pi").is_some());
        assert!(constant("e").is_some());
        assert!(constant("tau").is_none());
    }

    #[test]
    fn error_messages_list_every_function() {
        let names: Vec<&str> = ALL.iter().map(|f| f.name()).collect();
        let list = names.join(", ");
        let unknown = CalcError::UnknownFunction {
            name: "foo".to_owned(),
            position: 1,
        };
        assert!(unknown.to_string().contains(&list));
        let unknown = CalcError::UnknownName {
            name: "x".to_owned(),
            position: 1,
        };
        assert!(unknown.to_string().contains(&list));
    }

    #[test]
    fn rounding() {
        assert_eq!(round(exact("2.5"), 0).to_string(), "3");
        assert_eq!(round(exact("-2.5"), 0).to_string(), "-3");
        assert_eq!(round(exact("3.14159"), 2).to_string(), "3.14");
        assert_eq!(round(Number::Approx(2.5), 0), Number::Approx(3.0));
        assert_eq!(round(Number::Approx(-2.5), 0), Number::Approx(-3.0));
        assert_eq!(round(Number::Approx(1.23456), 3), Number::Approx(1.235));
        assert_eq!(round(Number::Approx(1e300), 5), Number::Approx(1e300));
    }

    #[test]
    fn min_and_max_compare_mixed_values() {
        let args = [exact("2"), Number::Approx(1.5), exact("3")];
        assert_eq!(Func::Min.apply(&args, 1), Ok(Number::Approx(1.5)));
        assert_eq!(Func::Max.apply(&args, 1), Ok(exact("3")));
    }

    #[test]
    fn decimal_places_must_be_small_whole_numbers() {
        assert_eq!(decimal_places(exact("2")), Some(2));
        assert_eq!(decimal_places(exact("2.5")), None);
        assert_eq!(decimal_places(exact("-1")), None);
        assert_eq!(decimal_places(exact("29")), None);
        assert_eq!(decimal_places(Number::Approx(3.0)), Some(3));
    }
}
