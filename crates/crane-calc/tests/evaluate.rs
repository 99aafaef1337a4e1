//! End-to-end tests of `evaluate`/`evaluate_with`: every feature, and the
//! exact text and position of every error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use crane_calc::{CalcError, Limits, Number, evaluate, evaluate_with};

/// The canonical text of a successful evaluation.
fn show(input: &str) -> String {
    match evaluate(input) {
        Ok(n) => n.to_string(),
        Err(e) => panic!("{input:?} failed: {e}"),
    }
}

/// The message of a failed evaluation.
fn fail(input: &str) -> String {
    match evaluate(input) {
        Ok(n) => panic!("{input:?} succeeded with {n}"),
        Err(e) => e.to_string(),
    }
}

fn err(input: &str) -> CalcError {
    evaluate(input).unwrap_err()
}

const FUNCTIONS: &str = "sqrt, abs, round, floor, ceil, min, max";

#[test]
fn the_briefs_examples() {
    assert_eq!(show("(41*7)+13"), "300");
    let sum = evaluate("0.1 + 0.2").unwrap();
    assert!(sum.is_exact());
    assert_eq!(sum.to_string(), "0.3");
    let product = evaluate("123456789 * 987654321").unwrap();
    assert!(product.is_exact());
    assert_eq!(product.as_i64(), Some(121_932_631_112_635_269));
    assert_eq!(product.to_string(), "121932631112635269");
    assert_eq!(show("10/4"), "2.5");
    assert_eq!(show("6/3"), "2");
    assert_eq!(show("2.50"), "2.5");
}

#[test]
fn number_literals() {
    assert_eq!(show("12"), "12");
    assert_eq!(show("3.5"), "3.5");
    assert_eq!(show(".5"), "0.5");
    assert_eq!(show("5."), "5");
    assert_eq!(show("1e3"), "1000");
    assert_eq!(show("2.5E-3"), "0.0025");
    assert_eq!(show("1E+2"), "100");
    assert_eq!(show("007"), "7");
    assert_eq!(show("0.000"), "0");
    assert!(evaluate("1e28").unwrap().is_exact());
    // Beyond rust_decimal: f64.
    let big = evaluate("1e200").unwrap();
    assert_eq!(big, Number::Approx(1e200));
    assert_eq!(big.to_string(), "1e200");
    assert_eq!(evaluate("1e-30").unwrap(), Number::Approx(1e-30));
    assert_eq!(show("1e-400"), "0");
}

#[test]
fn operators_and_precedence() {
    assert_eq!(show("1 + 2 * 3"), "7");
    assert_eq!(show("(1 + 2) * 3"), "9");
    assert_eq!(show("10 - 4 - 3"), "3");
    assert_eq!(show("100 / 10 / 5"), "2");
    assert_eq!(show("2 * 3 % 4"), "2");
    assert_eq!(show("7 % 3"), "1");
    assert_eq!(show("-7 % 3"), "-1");
    assert_eq!(show("7 % -3"), "1");
    assert_eq!(show("5.5 % 2"), "1.5");
    assert_eq!(show("2^10"), "1024");
    assert_eq!(show("2^3^2"), "512");
    assert_eq!(show("-2^2"), "-4");
    assert_eq!(show("(-2)^2"), "4");
    assert_eq!(show("2^-1"), "0.5");
    assert_eq!(show("2^-2^2"), "0.0625");
    assert_eq!(show("-2^-2"), "-0.25");
    assert_eq!(show("2*-3"), "-6");
    assert_eq!(show("2--3"), "5");
    assert_eq!(show("--3"), "3");
    assert_eq!(show("-+-3"), "3");
    assert_eq!(show("+3"), "3");
    assert_eq!(show("---3"), "-3");
    assert_eq!(show("2 * 3 ^ 2"), "18");
    assert_eq!(show("1 - 2^2 * 3"), "-11");
}

#[test]
fn operator_aliases() {
    assert_eq!(show("6 × 7"), "42");
    assert_eq!(show("84 ÷ 2"), "42");
    assert_eq!(show("2 ** 10"), "1024");
    assert_eq!(show("2**3**2"), "512");
    assert_eq!(show("5 − 2"), "3");
}

#[test]
fn whitespace_anywhere_between_tokens() {
    assert_eq!(show("  ( 1+\t2 )\n*3 "), "9");
    assert_eq!(show("max ( 1 , 2 )"), "2");
}

#[test]
fn exact_decimal_arithmetic() {
    assert_eq!(show("0.1 * 3"), "0.3");
    assert_eq!(show("1.10 + 2.20"), "3.3");
    assert_eq!(show("0.3 - 0.1"), "0.2");
    let third = evaluate("1/3").unwrap();
    assert!(third.is_exact());
    assert_eq!(third.to_string(), "0.3333333333333333333333333333");
    assert_eq!(show("2/3"), "0.6666666666666666666666666667");
    assert_eq!(show("1e-10 * 1e-2"), "0.000000000001");
    assert_eq!(show("0 * 5"), "0");
    assert_eq!(show("-0"), "0");
    assert_eq!(show("0 * -1"), "0");
}

#[test]
fn overflowing_decimal_falls_back_to_f64() {
    let n = evaluate("79228162514264337593543950335 + 1").unwrap();
    assert!(!n.is_exact());
    assert_eq!(n.to_string(), "7.922816251426434e28");
    let n = evaluate("1e20 * 1e20").unwrap();
    assert_eq!(n, Number::Approx(1e40));
    assert_eq!(n.to_string(), "1e40");
    // Everything computed from an approximation stays approximate.
    let n = evaluate("1e40 / 1e40").unwrap();
    assert_eq!(n, Number::Approx(1.0));
    assert_eq!(n.to_string(), "1");
    // Results too small for 28 decimal places are approximate, not zero.
    assert_eq!(evaluate("1e-20 * 1e-20").unwrap(), Number::Approx(1e-40));
    assert_eq!(evaluate("1e-20 / 1e20").unwrap(), Number::Approx(1e-40));
}

#[test]
fn powers() {
    assert_eq!(show("1.5^2"), "2.25");
    assert_eq!(show("10^28"), "10000000000000000000000000000");
    assert!(evaluate("10^28").unwrap().is_exact());
    assert_eq!(evaluate("10^30").unwrap(), Number::Approx(1e30));
    assert_eq!(show("2^0.5"), "1.4142135623730951");
    assert_eq!(show("4^0.5"), "2");
    assert!(evaluate("4^0.5").unwrap().is_exact());
    assert_eq!(show("8^(1/3)"), "2");
    assert_eq!(show("0^0"), "1");
    assert_eq!(show("0^5"), "0");
    assert_eq!(show("1^1e299"), "1");
    assert_eq!(fail("1^1e300"), "result too large");
    assert_eq!(show("(-1)^1e20"), "1");
    assert_eq!(show("(-1)^(10^20+1)"), "-1");
    assert_eq!(show("0.5^1e20"), "0");
    assert_eq!(show("2^-100"), "7.888609052210118e-31");
    assert_eq!(show("(-2)^3"), "-8");
    assert_eq!(show("(-2)^-3"), "-0.125");
}

#[test]
fn functions() {
    assert_eq!(show("sqrt(16)"), "4");
    assert!(evaluate("sqrt(16)").unwrap().is_exact());
    assert_eq!(show("sqrt(2.25)"), "1.5");
    assert_eq!(show("sqrt(0)"), "0");
    let root2 = evaluate("sqrt(2)").unwrap();
    assert_eq!(root2, Number::Approx(std::f64::consts::SQRT_2));
    assert_eq!(show("abs(-3.5)"), "3.5");
    assert_eq!(show("abs(3)"), "3");
    assert_eq!(show("round(2.5)"), "3");
    assert_eq!(show("round(-2.5)"), "-3");
    assert_eq!(show("round(2.4)"), "2");
    assert_eq!(show("round(3.14159, 2)"), "3.14");
    assert_eq!(show("round(2.675, 2)"), "2.68");
    assert_eq!(show("round(pi, 4)"), "3.1416");
    assert_eq!(show("floor(-2.5)"), "-3");
    assert_eq!(show("floor(2.5)"), "2");
    assert_eq!(show("ceil(2.1)"), "3");
    assert_eq!(show("ceil(-2.1)"), "-2");
    assert_eq!(show("min(3, 1, 2)"), "1");
    assert_eq!(show("max(3, 1, 2)"), "3");
    assert_eq!(show("max(7)"), "7");
    assert_eq!(show("min(-1, -2)"), "-2");
    assert_eq!(show("max(sqrt(2), 1.5)"), "1.5");
    assert_eq!(show("SQRT(16) + Abs(-1) + MAX(1,2)"), "7");
    assert_eq!(show("sqrt(sqrt(16))"), "2");
    assert_eq!(show("2^sqrt(4)"), "4");
}

#[test]
fn constants() {
    let pi = evaluate("pi").unwrap();
    assert!(pi.is_exact());
    assert_eq!(pi.to_string(), "3.1415926535897932384626433833");
    assert_eq!(show("PI"), "3.1415926535897932384626433833");
    assert_eq!(show("2*pi"), "6.2831853071795864769252867666");
    assert_eq!(show("e"), "2.7182818284590452353602874714");
    assert_eq!(show("E"), "2.7182818284590452353602874714");
    assert!((evaluate("pi").unwrap().as_f64() - std::f64::consts::PI).abs() < 1e-15);
}

#[test]
fn number_accessors() {
    let n = evaluate("2.5").unwrap();
    assert!(n.is_exact());
    assert_eq!(n.as_f64(), 2.5);
    assert_eq!(n.as_i64(), None);
    assert_eq!(evaluate("-42").unwrap().as_i64(), Some(-42));
    assert_eq!(evaluate("2^62").unwrap().as_i64(), Some(1 << 62));
    assert_eq!(evaluate("2^64").unwrap().as_i64(), None);
    assert_eq!(evaluate("1e30").unwrap().as_i64(), None);
    assert_eq!(evaluate("sqrt(2)").unwrap().as_i64(), None);
    assert_eq!(evaluate("1e20 * 1e20 / 1e38").unwrap().as_i64(), Some(100));
}

#[test]
fn unexpected_characters_and_tokens() {
    assert_eq!(fail("2 + $"), "unexpected '$' at position 5");
    assert_eq!(err("2 + $").position(), Some(5));
    assert_eq!(fail("2 @ 3"), "unexpected '@' at position 3");
    assert_eq!(fail("π"), "unexpected 'π' at position 1");
    assert_eq!(fail("×× 2"), "unexpected '×' at position 1");
    assert_eq!(fail("1 2"), "unexpected '2' at position 3");
    assert_eq!(fail("2x"), "unexpected 'x' at position 2");
    assert_eq!(fail("1.2.3"), "unexpected '.3' at position 4");
    assert_eq!(fail("* 2"), "unexpected '*' at position 1");
    assert_eq!(fail("2 * / 3"), "unexpected '/' at position 5");
    assert_eq!(fail("()"), "unexpected ')' at position 2");
    assert_eq!(fail("2 + )"), "unexpected ')' at position 5");
    assert_eq!(fail("(1 2)"), "unexpected '2' at position 4");
    assert_eq!(fail("max(1 2)"), "unexpected '2' at position 7");
    assert_eq!(fail("max(1,,2)"), "unexpected ',' at position 7");
    assert_eq!(fail("1, 2"), "unexpected ',' at position 2");
    assert_eq!(fail("."), "unexpected '.' at position 1");
    assert_eq!(fail("2 ^ ^ 3"), "unexpected '^' at position 5");
    assert_eq!(fail("2 ** * 3"), "unexpected '*' at position 6");
    let long = format!("1 {}", "9".repeat(100));
    assert_eq!(
        fail(&long),
        format!("unexpected '{}…' at position 3", "9".repeat(23))
    );
}

#[test]
fn unexpected_end_and_empty_input() {
    assert_eq!(fail("2 +"), "unexpected end of expression");
    assert_eq!(err("2 +").position(), Some(4));
    assert_eq!(fail("-"), "unexpected end of expression");
    assert_eq!(fail("2^"), "unexpected end of expression");
    assert_eq!(fail(""), "empty expression");
    assert_eq!(fail("   \t\n"), "empty expression");
    assert_eq!(err("").position(), None);
}

#[test]
fn parentheses_errors() {
    assert_eq!(fail("(1+2"), "unclosed parenthesis opened at position 1");
    assert_eq!(err("(1+2").position(), Some(1));
    assert_eq!(
        fail("2*((1+2)"),
        "unclosed parenthesis opened at position 3"
    );
    assert_eq!(fail("sqrt(4"), "unclosed parenthesis opened at position 5");
    assert_eq!(fail("max(1,"), "unexpected end of expression");
    assert_eq!(fail("1+2)"), "unmatched ')' at position 4");
    assert_eq!(err("1+2)").position(), Some(4));
    assert_eq!(fail("(1))"), "unmatched ')' at position 4");
    assert_eq!(fail(")"), "unexpected ')' at position 1");
}

#[test]
fn unknown_names_and_functions() {
    assert_eq!(
        fail("2 + x"),
        format!(
            "unknown name 'x' at position 5 (available constants: pi, e; functions: {FUNCTIONS})"
        )
    );
    assert_eq!(err("2 + x").position(), Some(5));
    assert_eq!(
        fail("foo(1)"),
        format!("unknown function 'foo' at position 1 (available functions: {FUNCTIONS})")
    );
    assert_eq!(
        fail("1 + Pi(2)"),
        format!("unknown function 'Pi' at position 5 (available functions: {FUNCTIONS})")
    );
    assert_eq!(
        fail("sqrt 4"),
        "function 'sqrt' at position 1 needs parentheses, e.g. sqrt(2)"
    );
    assert_eq!(
        fail("1 + MAX"),
        "function 'max' at position 5 needs parentheses, e.g. max(2)"
    );
    let long_name = "a".repeat(50);
    assert!(fail(&long_name).starts_with(&format!("unknown name '{}…'", "a".repeat(23))));
}

#[test]
fn wrong_argument_counts() {
    assert_eq!(fail("max()"), "max expects at least 1 argument (got 0)");
    assert_eq!(err("1 + max()").position(), Some(5));
    assert_eq!(fail("min()"), "min expects at least 1 argument (got 0)");
    assert_eq!(
        fail("sqrt(1, 2)"),
        "sqrt expects exactly 1 argument (got 2)"
    );
    assert_eq!(fail("abs()"), "abs expects exactly 1 argument (got 0)");
    assert_eq!(
        fail("floor(1,2)"),
        "floor expects exactly 1 argument (got 2)"
    );
    assert_eq!(fail("ceil(1,2)"), "ceil expects exactly 1 argument (got 2)");
    assert_eq!(
        fail("round(1,2,3)"),
        "round expects 1 or 2 arguments (got 3)"
    );
    assert_eq!(fail("round()"), "round expects 1 or 2 arguments (got 0)");
}

#[test]
fn invalid_round_places() {
    let reason = "decimal places must be a whole number from 0 to 28";
    assert_eq!(
        fail("round(1, 2.5)"),
        format!("invalid argument to round: {reason} (got 2.5)")
    );
    assert_eq!(
        fail("round(1, -1)"),
        format!("invalid argument to round: {reason} (got -1)")
    );
    assert_eq!(
        fail("round(1, 29)"),
        format!("invalid argument to round: {reason} (got 29)")
    );
    assert_eq!(err("2*round(1, 29)").position(), Some(3));
}

#[test]
fn division_by_zero() {
    assert_eq!(fail("1/0"), "division by zero");
    assert_eq!(err("1/0").position(), Some(2));
    assert_eq!(fail("1 / (2 - 2)"), "division by zero");
    assert_eq!(fail("5 % 0"), "division by zero");
    assert_eq!(fail("1e200 / 0"), "division by zero");
    assert_eq!(fail("1 / (1e200 - 1e200)"), "division by zero");
    assert_eq!(fail("0^-1"), "division by zero");
    assert_eq!(err("0^-1").position(), Some(2));
    assert_eq!(fail("0^-0.5"), "division by zero");
    // Syntax errors win over arithmetic ones.
    assert_eq!(fail("1/0 +"), "unexpected end of expression");
}

#[test]
fn not_real_and_negative_roots() {
    assert_eq!(fail("sqrt(-4)"), "sqrt of a negative number");
    assert_eq!(err("1 + sqrt(-4)").position(), Some(5));
    assert_eq!(fail("sqrt(-1e200)"), "sqrt of a negative number");
    assert_eq!(fail("(-8)^(1/3)"), "result is not a real number");
    assert_eq!(err("(-8)^(1/3)").position(), Some(5));
    assert_eq!(fail("(-4)^0.5"), "result is not a real number");
}

#[test]
fn results_too_large() {
    assert_eq!(fail("9^9^9^9"), "result too large");
    assert_eq!(fail("9^387420489"), "result too large");
    assert_eq!(err("9^387420489").position(), Some(2));
    assert_eq!(fail("1e308*10"), "result too large");
    assert_eq!(fail("1e308"), "result too large");
    assert_eq!(fail("1e301"), "result too large");
    assert_eq!(fail("1e999999999999999999999"), "result too large");
    assert_eq!(fail("1e200 * 1e200"), "result too large");
    assert_eq!(fail("1e200 * 1e200 / 1e200"), "result too large");
    assert_eq!(fail("2^1e300"), "result too large");
    assert_eq!(fail("(-2)^1001"), "result too large");
    assert_eq!(fail("10^300"), "result too large");
    assert_eq!(show("10^299"), "1e299");
    assert_eq!(fail("1e150^2.5"), "result too large");
    assert_eq!(fail(&format!("1{}", "0".repeat(301))), "result too large");
}

#[test]
fn magnitude_limit_is_configurable() {
    let limits = Limits {
        max_digits: 3,
        ..Limits::default()
    };
    assert_eq!(evaluate_with("999", &limits).unwrap().to_string(), "999");
    assert_eq!(
        evaluate_with("999 + 1", &limits).unwrap_err().to_string(),
        "result too large"
    );
    assert_eq!(
        evaluate_with("1000 - 1", &limits).unwrap_err(),
        CalcError::TooLarge { position: 1 }
    );
}

#[test]
fn input_length_limit() {
    let limits = Limits {
        max_input_len: 5,
        ..Limits::default()
    };
    assert_eq!(evaluate_with("1+2+3", &limits).unwrap().to_string(), "6");
    assert_eq!(
        evaluate_with("1+2+34", &limits).unwrap_err().to_string(),
        "expression too long (6 characters, limit 5)"
    );
    // Characters, not bytes.
    assert!(evaluate_with("2×3×4", &limits).is_ok());
    let long = "1+".repeat(3000) + "1";
    assert_eq!(
        evaluate(&long).unwrap_err().to_string(),
        "expression too long (6001 characters, limit 4096)"
    );
    let fits = "1+".repeat(2047) + "1";
    assert_eq!(show(&fits), "2048");
}

#[test]
fn nesting_limit() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let limits = Limits {
        max_input_len: 100_000,
        ..Limits::default()
    };
    let started = Instant::now();
    let error = evaluate_with(&deep, &limits).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(error.to_string(), "expression nested too deeply (limit 64)");
    assert_eq!(error.position(), Some(65));
    // Within the default input length the nesting limit still applies first.
    let deep = format!("{}1{}", "(".repeat(2000), ")".repeat(2000));
    assert_eq!(fail(&deep), "expression nested too deeply (limit 64)");
    let ok = format!("{}1{}", "(".repeat(64), ")".repeat(64));
    assert_eq!(show(&ok), "1");
    let too_deep = format!("{}1{}", "(".repeat(65), ")".repeat(65));
    assert_eq!(fail(&too_deep), "expression nested too deeply (limit 64)");
    let calls = format!("{}1{}", "abs(".repeat(65), ")".repeat(65));
    assert_eq!(fail(&calls), "expression nested too deeply (limit 64)");
    let signs = format!("{}1", "-".repeat(65));
    assert_eq!(fail(&signs), "expression nested too deeply (limit 64)");
    assert_eq!(show(&format!("{}1", "-".repeat(64))), "1");
}

#[test]
fn hostile_inputs_fail_fast() {
    let limits = Limits {
        max_input_len: 1_000_000,
        max_depth: 10_000,
        ..Limits::default()
    };
    let cases = [
        "9^9^9^9".to_owned(),
        "9^9^9^9^9^9^9^9^9^9".to_owned(),
        "2^2^2^2^2^2".to_owned(),
        "1.0000001^1e15".to_owned(),
        "0.9999999^1e18".to_owned(),
        vec!["9"; 100_000].join("^"),
        vec!["1.1"; 100_000].join("*"),
        vec!["1"; 100_000].join("/"),
        format!("{}1", "-".repeat(100_000)),
        format!("{}1{}", "(".repeat(400_000), ")".repeat(400_000)),
        format!("{}1", "sqrt(".repeat(100_000)),
        "1".repeat(900_000),
        format!("1e{}", "9".repeat(900_000)),
        format!("0.{}1", "0".repeat(900_000)),
    ];
    for input in cases {
        let started = Instant::now();
        let _ = evaluate_with(&input, &limits);
        let _ = evaluate(&input);
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(3),
            "{}… took {elapsed:?}",
            input.chars().take(20).collect::<String>()
        );
    }
}

#[test]
fn error_positions_are_within_the_input() {
    for input in ["1+", "(1", "1)", "1/0", "$", "x", "sqrt(-1)", "9^9^9"] {
        let error = err(input);
        let position = error.position().unwrap();
        assert!(
            (1..=input.chars().count() + 1).contains(&position),
            "{input}: {error:?}"
        );
    }
}
