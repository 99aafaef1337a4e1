//! Fuzz target: the calculator (`crane_calc`) on arbitrary strings.
//!
//! Invariants (besides "never panics, never overflows the stack"):
//! - a success is never NaN or infinite, and its magnitude is below `10^max_digits`;
//! - evaluation is deterministic;
//! - every error position is a 1-based character column inside the input, or one past its
//!   end (`unexpected end of expression`), and every error has a non-empty message;
//! - the canonical text of a result evaluates back to the same value (exactly, for an exact
//!   decimal; to the same `f64`, for an approximation);
//! - tighter limits never change a result, they can only turn it into an error.
#![no_main]

use crane_calc::{CalcError, Limits, Number, evaluate, evaluate_with};
use libfuzzer_sys::fuzz_target;

/// Limits small enough that the fuzzer reaches the depth and magnitude checks often.
const TIGHT: Limits = Limits {
    max_input_len: 256,
    max_depth: 6,
    max_digits: 24,
};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let result = evaluate(input);
    assert_eq!(result, evaluate(input), "not deterministic: {input:?}");
    match &result {
        Ok(value) => {
            check_value(input, value, &Limits::default());
            round_trip(input, value);
        }
        Err(error) => check_error(input, error),
    }

    let tight = evaluate_with(input, &TIGHT);
    match &tight {
        Ok(value) => {
            check_value(input, value, &TIGHT);
            assert_eq!(
                Ok(*value),
                result,
                "tight limits changed the result of {input:?}"
            );
        }
        Err(error) => check_error(input, error),
    }
});

fn check_value(input: &str, value: &Number, limits: &Limits) {
    let f = value.as_f64();
    assert!(f.is_finite(), "{input:?} gave a non-finite value {value:?}");
    if let Number::Approx(a) = value {
        assert!(a.is_finite(), "{input:?} gave a non-finite Approx {a}");
    }
    let limit: f64 = format!("1e{}", limits.max_digits)
        .parse()
        .unwrap_or(f64::INFINITY);
    // The exact check is |d| < 10^max_digits; as_f64 of an exact value may round up to the
    // limit itself, so compare with <=.
    assert!(
        f.abs() <= limit,
        "{input:?} gave {value} above the 10^{} limit",
        limits.max_digits
    );
    if let Some(i) = value.as_i64() {
        assert_eq!(
            i as f64,
            f.trunc(),
            "as_i64 disagrees with as_f64 for {value:?}"
        );
    }
    let text = value.to_string();
    assert!(!text.is_empty());
    assert!(
        !text.contains("NaN") && !text.contains("inf"),
        "{input:?} printed as {text}"
    );
}

fn check_error(input: &str, error: &CalcError) {
    let chars = input.chars().count();
    if let Some(position) = error.position() {
        assert!(
            (1..=chars + 1).contains(&position),
            "{input:?} ({chars} chars): error {error:?} at position {position}"
        );
    }
    assert!(!error.to_string().is_empty());
}

/// The canonical text of a value evaluates to the same value.
fn round_trip(input: &str, value: &Number) {
    let text = value.to_string();
    let again = evaluate(&text)
        .unwrap_or_else(|e| panic!("{input:?} = {text}, which does not evaluate: {e}"));
    match value {
        Number::Exact(_) => assert_eq!(
            &again, value,
            "{input:?} = {text}, which evaluates to {again:?}"
        ),
        Number::Approx(f) => assert_eq!(
            again.as_f64(),
            *f,
            "{input:?} = {text}, which evaluates to {again:?}"
        ),
    }
}
