//! Property tests: `evaluate` never panics and keeps its invariants on
//! arbitrary input, and on generated arithmetic it agrees with an exact
//! rational reference evaluation (num-rational `BigRational`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crane_calc::{CalcError, Limits, Number, evaluate, evaluate_with};
use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive, Zero};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// `cases` cases, with failing inputs saved next to this file.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Robustness on arbitrary input
// ---------------------------------------------------------------------------

/// Checks what must hold for any input, whatever the outcome.
fn check_invariants(input: &str, limits: &Limits) {
    match evaluate_with(input, limits) {
        Ok(n) => {
            if let Number::Approx(f) = n {
                assert!(f.is_finite(), "{input:?} gave {f}");
            }
            let text = n.to_string();
            assert!(!text.is_empty());
            // The canonical text evaluates back to the same value.
            let again = evaluate(&text).unwrap_or_else(|e| panic!("{text:?} from {input:?}: {e}"));
            assert_eq!(again.as_f64(), n.as_f64(), "{input:?} → {text:?}");
            if n.is_exact() {
                assert_eq!(again, n, "{input:?} → {text:?}");
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            if let Some(position) = e.position() {
                let length = input.chars().count();
                assert!(
                    (1..=length + 1).contains(&position),
                    "{input:?}: {e:?} (length {length})"
                );
            }
        }
    }
}

fn small_limits() -> Limits {
    Limits {
        max_input_len: 40,
        max_depth: 3,
        max_digits: 5,
    }
}

/// Pieces of calculator syntax, valid and not, to build token soup from.
const PIECES: &[&str] = &[
    "0",
    "1",
    "2",
    "9",
    "10",
    "2.5",
    ".5",
    "5.",
    "1e3",
    "2.5E-3",
    "1e308",
    "1e-400",
    "1e28",
    "79228162514264337593543950335",
    "0.0000000000001",
    "(",
    ")",
    "(",
    ")",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "**",
    "×",
    "÷",
    "−",
    ",",
    "sqrt",
    "abs",
    "round",
    "floor",
    "ceil",
    "min",
    "max",
    "pi",
    "e",
    "E",
    "PI",
    "x",
    "foo",
    "$",
    ".",
    "e5",
    " ",
    "  ",
    "\t",
    "9^9",
    "0^",
    "-0",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn never_panics_on_arbitrary_strings(input in any::<String>()) {
        check_invariants(&input, &Limits::default());
        check_invariants(&input, &small_limits());
    }

    #[test]
    fn never_panics_on_calculator_like_characters(input in "[0-9.eE+*/%^(), a-z×÷−-]{0,60}") {
        check_invariants(&input, &Limits::default());
        check_invariants(&input, &small_limits());
    }

    #[test]
    fn never_panics_on_token_soup(input in token_soup()) {
        check_invariants(&input, &Limits::default());
        check_invariants(&input, &small_limits());
    }
}

// ---------------------------------------------------------------------------
// Agreement with exact rational arithmetic
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

impl Op {
    fn precedence(self) -> u8 {
        match self {
            Op::Add | Op::Sub => 1,
            Op::Mul | Op::Div => 2,
        }
    }

    fn symbol(self, alias: bool) -> &'static str {
        match (self, alias) {
            (Op::Add, _) => "+",
            (Op::Sub, false) => "-",
            (Op::Sub, true) => "−",
            (Op::Mul, false) => "*",
            (Op::Mul, true) => "×",
            (Op::Div, false) => "/",
            (Op::Div, true) => "÷",
        }
    }
}

#[derive(Debug, Clone)]
enum Tree {
    /// A literal worth `tenths / 10`, written as `text`.
    Leaf {
        tenths: i64,
        text: String,
    },
    Neg(Box<Tree>),
    Bin(Op, bool, Box<Tree>, Box<Tree>),
}

impl Tree {
    fn precedence(&self) -> u8 {
        match self {
            Tree::Leaf { .. } => 4,
            Tree::Neg(_) => 3,
            Tree::Bin(op, ..) => op.precedence(),
        }
    }

    /// Renders the tree; `full` parenthesizes every binary node, otherwise
    /// only where precedence and left-associativity require it (so the
    /// parse reproduces this exact tree, and thus the same rounding order).
    fn render(&self, full: bool, space: &str) -> String {
        match self {
            Tree::Leaf { text, .. } => text.clone(),
            Tree::Neg(inner) => {
                let text = inner.render(full, space);
                if matches!(**inner, Tree::Bin(..)) && !full {
                    format!("-({text})")
                } else {
                    format!("-{text}")
                }
            }
            Tree::Bin(op, alias, left, right) => {
                let mut l = left.render(full, space);
                let mut r = right.render(full, space);
                if !full {
                    if left.precedence() < op.precedence() {
                        l = format!("({l})");
                    }
                    if right.precedence() <= op.precedence() {
                        r = format!("({r})");
                    }
                }
                let text = format!("{l}{space}{}{space}{r}", op.symbol(*alias));
                if full { format!("({text})") } else { text }
            }
        }
    }

    fn has_division(&self) -> bool {
        match self {
            Tree::Leaf { .. } => false,
            Tree::Neg(inner) => inner.has_division(),
            Tree::Bin(op, _, l, r) => *op == Op::Div || l.has_division() || r.has_division(),
        }
    }
}

fn leaf() -> impl Strategy<Value = Tree> {
    prop_oneof![
        (0i64..=20).prop_map(|k| Tree::Leaf {
            tenths: k * 10,
            text: k.to_string()
        }),
        (0i64..=99, any::<bool>()).prop_map(|(t, bare)| Tree::Leaf {
            tenths: t,
            text: if bare && t < 10 {
                format!(".{t}")
            } else {
                format!("{}.{}", t / 10, t % 10)
            },
        }),
    ]
}

fn tree() -> impl Strategy<Value = Tree> {
    leaf().prop_recursive(5, 48, 2, |inner| {
        prop_oneof![
            1 => inner.clone().prop_map(|t| Tree::Neg(Box::new(t))),
            4 => (
                prop::sample::select(vec![Op::Add, Op::Sub, Op::Mul, Op::Div]),
                any::<bool>(),
                inner.clone(),
                inner,
            )
                .prop_map(|(op, alias, l, r)| Tree::Bin(op, alias, Box::new(l), Box::new(r))),
        ]
    })
}

/// Bound on the relative rounding error of one evaluator operation,
/// including converting exact operands to `f64` (2^-53 ≈ 1.1e-16) and
/// decimal rounding (at most 5e-16 relative, since decimal results below
/// 1e-13 at full scale are recomputed in `f64`).
const U: f64 = 2e-15;

/// What the evaluator must produce for a tree.
enum Outcome {
    /// The exact value; whether every step is exactly representable in
    /// `rust_decimal` (so the evaluator must be exact); and a bound on the
    /// absolute error a correctly rounding evaluator can accumulate.
    Value {
        q: BigRational,
        exact: bool,
        err: f64,
    },
    /// An exactly computed divisor is zero.
    DivZero,
    /// A divisor is zero or within its error bound of zero, and was not
    /// computed exactly: either a number or "division by zero" is correct.
    Unconstrained,
}

fn ten() -> BigInt {
    BigInt::from(10)
}

/// Whether `q` is a decimal that the evaluator keeps exact: a terminating
/// decimal with at most 28 places and a mantissa below 2^96, and not a
/// full-scale value below 1e-13 (which is recomputed in `f64`).
fn representable(q: &BigRational) -> bool {
    let mut den = q.denom().clone();
    let (two, five) = (BigInt::from(2), BigInt::from(5));
    let (mut twos, mut fives) = (0u32, 0u32);
    while (&den % &two).is_zero() {
        den /= &two;
        twos += 1;
    }
    while (&den % &five).is_zero() {
        den /= &five;
        fives += 1;
    }
    if den != BigInt::from(1) {
        return false;
    }
    let scale = twos.max(fives);
    if scale > 28 {
        return false;
    }
    let mantissa = q * BigRational::from_integer(ten().pow(scale));
    let below_max = mantissa.abs() < BigRational::from_integer(BigInt::from(2).pow(96));
    let thinned = scale == 28 && q.abs() < BigRational::new(BigInt::from(1), ten().pow(13));
    below_max && !thinned
}

fn magnitude(q: &BigRational) -> f64 {
    q.abs().to_f64().unwrap_or(f64::INFINITY)
}

fn reference(tree: &Tree) -> Outcome {
    match tree {
        Tree::Leaf { tenths, .. } => Outcome::Value {
            q: BigRational::new(BigInt::from(*tenths), ten()),
            exact: true,
            err: 0.0,
        },
        Tree::Neg(inner) => match reference(inner) {
            Outcome::Value { q, exact, err } => Outcome::Value { q: -q, exact, err },
            other => other,
        },
        Tree::Bin(op, _, left, right) => {
            let (lq, le, lerr) = match reference(left) {
                Outcome::Value { q, exact, err } => (q, exact, err),
                other => return other,
            };
            let (rq, re, rerr) = match reference(right) {
                Outcome::Value { q, exact, err } => (q, exact, err),
                other => return other,
            };
            let (l, r) = (magnitude(&lq), magnitude(&rq));
            let (q, err) = match op {
                Op::Add | Op::Sub => {
                    let q = if *op == Op::Add { &lq + &rq } else { &lq - &rq };
                    let err = lerr + rerr + U * (l + r + magnitude(&q));
                    (q, err)
                }
                Op::Mul => {
                    let q = &lq * &rq;
                    (q, l * rerr + r * lerr + lerr * rerr + 3.0 * U * l * r)
                }
                Op::Div => {
                    if rq.is_zero() {
                        return if re {
                            Outcome::DivZero
                        } else {
                            Outcome::Unconstrained
                        };
                    }
                    if rerr >= r / 2.0 {
                        return Outcome::Unconstrained;
                    }
                    let q = &lq / &rq;
                    let m = magnitude(&q);
                    (q, (lerr + m * rerr) / (r - rerr) + 3.0 * U * m)
                }
            };
            let exact = le && re && representable(&q);
            if !err.is_finite() {
                return Outcome::Unconstrained;
            }
            Outcome::Value {
                q,
                exact,
                err: if exact { 0.0 } else { err },
            }
        }
    }
}

/// The exact value of an evaluator result.
fn to_rational(n: Number) -> BigRational {
    match n {
        Number::Exact(d) => {
            let d = d.normalize();
            BigRational::new(BigInt::from(d.mantissa()), ten().pow(d.scale()))
        }
        Number::Approx(f) => BigRational::from_float(f).unwrap(),
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn agrees_with_exact_rational_arithmetic(
        tree in tree(),
        full in any::<bool>(),
        spaced in any::<bool>(),
    ) {
        let input = tree.render(full, if spaced { " " } else { "" });
        let got = evaluate(&input);
        match reference(&tree) {
            Outcome::DivZero => {
                prop_assert!(
                    matches!(got, Err(CalcError::DivisionByZero { .. })),
                    "{input}: expected division by zero, got {got:?}"
                );
            }
            Outcome::Unconstrained => {
                prop_assert!(
                    matches!(got, Ok(_) | Err(CalcError::DivisionByZero { .. })),
                    "{input}: got {got:?}"
                );
            }
            Outcome::Value { q, exact, err } => {
                let n = match got {
                    Ok(n) => n,
                    Err(e) => return Err(TestCaseError::fail(format!("{input}: {e}"))),
                };
                let value = to_rational(n);
                if exact {
                    prop_assert!(n.is_exact(), "{input}: {n:?} should be exact");
                    prop_assert_eq!(&value, &q, "{}", input);
                } else {
                    if !tree.has_division() && representable(&q) && err == 0.0 {
                        prop_assert_eq!(&value, &q, "{}", input);
                    }
                    let diff = magnitude(&(&value - &q));
                    let tolerance = 1e-9 * magnitude(&q) + 4.0 * err;
                    prop_assert!(
                        diff <= tolerance,
                        "{input}: got {n}, exact {q} (≈{}), diff {diff:e} > {tolerance:e}",
                        magnitude(&q)
                    );
                }
            }
        }
    }
}

/// Without division every generated tree whose value fits is exact: the
/// reference's bookkeeping is not hiding evaluator rounding.
#[test]
fn trees_without_division_are_exact_when_they_fit() {
    let cases = [
        "(0.1 + 0.2) * 3 - 0.9",
        "19.9 * 19.9 * 19.9 * 19.9 * 19.9 * 19.9",
        "-(2.5 - 7.5) * (0.1 - 0.3)",
        "20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20",
    ];
    for input in cases {
        let n = evaluate(input).unwrap();
        assert!(n.is_exact(), "{input}: {n:?}");
    }
    assert_eq!(
        evaluate("20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20 * 20")
            .unwrap()
            .to_string(),
        "32768000000000000000"
    );
}

/// The generator reaches every kind of outcome, so the property above is
/// not vacuous.
#[test]
fn generated_trees_cover_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = tree();
    let (mut exact, mut inexact, mut div_zero, mut unconstrained) = (0, 0, 0, 0);
    for _ in 0..3000 {
        let tree = strategy.new_tree(&mut runner).unwrap().current();
        match reference(&tree) {
            Outcome::Value { exact: true, .. } => exact += 1,
            Outcome::Value { .. } => inexact += 1,
            Outcome::DivZero => div_zero += 1,
            Outcome::Unconstrained => unconstrained += 1,
        }
    }
    eprintln!(
        "exact {exact}, inexact {inexact}, division by zero {div_zero}, unconstrained {unconstrained}"
    );
    assert!(
        exact > 300 && inexact > 300 && div_zero > 30,
        "{exact} {inexact} {div_zero}"
    );
}
