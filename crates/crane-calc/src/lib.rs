//! `crane-calc`: a safe calculator for the agent runtime — its own lexer,
//! parser and exact-decimal evaluator (never an `eval`), with bounded work
//! on any input and no panics.
//!
//! ```
//! use crane_calc::evaluate;
//!
//! assert_eq!(evaluate("(41*7)+13").unwrap().to_string(), "300");
//! assert!(evaluate("0.1 + 0.2").unwrap().is_exact());
//! let error = evaluate("1/0").unwrap_err();
//! assert_eq!(error.to_string(), "division by zero");
//! assert_eq!(error.position(), Some(2));
//! ```
//!
//! Syntax: numbers (`12`, `3.5`, `.5`, `1e3`, `2.5E-3`), `+ - * / %` and
//! `^` (also `×`, `÷`, `**`, and `−` for minus), parentheses, unary `+`/`-`,
//! the constants `pi` and `e`, and the functions `sqrt abs round floor ceil
//! min max` (names are case-insensitive). `^` is right-associative and binds
//! tighter than a unary minus on its left (`-2^2 = -4`, `2^-1 = 0.5`); `%`
//! is the remainder with the dividend's sign.
//!
//! Arithmetic is exact decimal ([`Number::Exact`]) where possible and falls
//! back to `f64` ([`Number::Approx`]) where not; see [`Number`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod arith;
mod error;
mod eval;
mod functions;
mod lexer;
mod number;
mod parser;

pub use error::CalcError;
pub use number::Number;

/// Bounds on the work one evaluation may do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The longest accepted input, in characters. Default 4096.
    pub max_input_len: usize,
    /// The deepest accepted nesting of parentheses, function calls and
    /// unary signs. Default 64. Values above 256 act as 256, which keeps
    /// the recursive parser and evaluator well inside any thread's stack.
    pub max_depth: usize,
    /// Every literal, intermediate and final value must satisfy
    /// `|value| < 10^max_digits`. Default 300.
    pub max_digits: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_len: 4096,
            max_depth: 64,
            max_digits: 300,
        }
    }
}

/// Evaluates `input` with the default [`Limits`].
pub fn evaluate(input: &str) -> Result<Number, CalcError> {
    evaluate_with(input, &Limits::default())
}

/// Evaluates `input` within `limits`.
///
/// Syntax errors are reported before any arithmetic is done, so `1/0 +`
/// fails with "unexpected end of expression". Runs in time roughly linear in
/// the input's length.
pub fn evaluate_with(input: &str, limits: &Limits) -> Result<Number, CalcError> {
    // Count no further than the limit, so huge inputs are rejected quickly.
    let length = input
        .chars()
        .take(limits.max_input_len.saturating_add(1))
        .count();
    if length > limits.max_input_len {
        return Err(CalcError::TooLong {
            length: input.chars().count(),
            limit: limits.max_input_len,
        });
    }
    let chars: Vec<char> = input.chars().collect();
    let tokens = lexer::tokenize(&chars)?;
    if tokens.is_empty() {
        return Err(CalcError::Empty);
    }
    let expr = parser::parse(&tokens, chars.len() + 1, limits)?;
    eval::eval(&expr, &arith::Bounds::new(limits.max_digits))
}
