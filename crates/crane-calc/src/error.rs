//! The calculator's error type: what went wrong and, where it applies, at
//! which 1-based character position of the input.

use thiserror::Error;

/// Everything that can make an expression fail to evaluate.
///
/// Every variant's `Display` text is a complete, user-facing sentence
/// fragment (no trailing period), e.g. `unexpected '$' at position 5`.
/// Positions count Unicode characters (not bytes) and start at 1; they are
/// also available through [`CalcError::position`], including for variants
/// whose text does not repeat them (such as `division by zero`, where the
/// position is the operator's).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CalcError {
    /// The input holds nothing but whitespace.
    #[error("empty expression")]
    Empty,
    /// The input is longer than [`Limits::max_input_len`](crate::Limits).
    #[error("expression too long ({length} characters, limit {limit})")]
    TooLong {
        /// Length of the input in characters.
        length: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Parentheses, unary signs and function calls nest deeper than allowed.
    #[error("expression nested too deeply (limit {limit})")]
    TooDeep {
        /// The effective nesting limit.
        limit: usize,
        /// Where the level that went over the limit starts.
        position: usize,
    },
    /// A character or token that cannot appear where it does.
    #[error("unexpected '{found}' at position {position}")]
    Unexpected {
        /// The offending text (shortened when very long).
        found: String,
        /// Where it starts.
        position: usize,
    },
    /// The input stops where an operand or `)` was still needed (`2 +`).
    #[error("unexpected end of expression")]
    UnexpectedEnd {
        /// One past the last character of the input.
        position: usize,
    },
    /// A `(` that is never closed.
    #[error("unclosed parenthesis opened at position {position}")]
    UnclosedParen {
        /// Where the `(` is.
        position: usize,
    },
    /// A `)` without a matching `(`.
    #[error("unmatched ')' at position {position}")]
    UnmatchedParen {
        /// Where the `)` is.
        position: usize,
    },
    /// `name(...)` where `name` is not a known function.
    #[error(
        "unknown function '{name}' at position {position} \
         (available functions: sqrt, abs, round, floor, ceil, min, max)"
    )]
    UnknownFunction {
        /// The name as written (shortened when very long).
        name: String,
        /// Where the name starts.
        position: usize,
    },
    /// A bare name that is neither a constant nor a function.
    #[error(
        "unknown name '{name}' at position {position} (available constants: pi, e; \
         functions: sqrt, abs, round, floor, ceil, min, max)"
    )]
    UnknownName {
        /// The name as written (shortened when very long).
        name: String,
        /// Where the name starts.
        position: usize,
    },
    /// A function name used without an argument list (`sqrt 4`).
    #[error("function '{name}' at position {position} needs parentheses, e.g. {name}(2)")]
    MissingParens {
        /// The function's canonical (lower-case) name.
        name: &'static str,
        /// Where the name starts.
        position: usize,
    },
    /// A function called with the wrong number of arguments.
    #[error("{function} expects {expected} (got {found})")]
    WrongArgumentCount {
        /// The function's canonical name.
        function: &'static str,
        /// What it accepts, e.g. `exactly 1 argument`.
        expected: &'static str,
        /// How many arguments were given.
        found: usize,
        /// Where the function name starts.
        position: usize,
    },
    /// A function argument outside what the function accepts.
    #[error("invalid argument to {function}: {reason}")]
    InvalidArgument {
        /// The function's canonical name.
        function: &'static str,
        /// What is wrong with the argument.
        reason: String,
        /// Where the function name starts.
        position: usize,
    },
    /// Division or remainder (`%`) by zero, or zero raised to a negative power.
    #[error("division by zero")]
    DivisionByZero {
        /// Where the operator (`/`, `%`, `^`) is.
        position: usize,
    },
    /// `sqrt` of a value below zero.
    #[error("sqrt of a negative number")]
    SqrtOfNegative {
        /// Where `sqrt` starts.
        position: usize,
    },
    /// A power whose value is not real, e.g. `(-8)^(1/3)`.
    #[error("result is not a real number")]
    NotReal {
        /// Where the `^` is.
        position: usize,
    },
    /// A literal, intermediate or final value beyond the magnitude limit.
    #[error("result too large")]
    TooLarge {
        /// The literal, operator or function that produced the value.
        position: usize,
    },
}

impl CalcError {
    /// The 1-based character position the error refers to, when there is one.
    ///
    /// `None` only for [`CalcError::Empty`] and [`CalcError::TooLong`], which
    /// concern the input as a whole.
    pub fn position(&self) -> Option<usize> {
        match self {
            Self::Empty | Self::TooLong { .. } => None,
            Self::TooDeep { position, .. }
            | Self::Unexpected { position, .. }
            | Self::UnexpectedEnd { position }
            | Self::UnclosedParen { position }
            | Self::UnmatchedParen { position }
            | Self::UnknownFunction { position, .. }
            | Self::UnknownName { position, .. }
            | Self::MissingParens { position, .. }
            | Self::WrongArgumentCount { position, .. }
            | Self::InvalidArgument { position, .. }
            | Self::DivisionByZero { position }
            | Self::SqrtOfNegative { position }
            | Self::NotReal { position }
            | Self::TooLarge { position } => Some(*position),
        }
    }
}

/// The functions every "unknown function/name" message lists.
const FUNCTIONS: &str = "sqrt, abs, round, floor, ceil, min, max";

impl CalcError {
    /// The error as a message like its `Display` text, but with every position written by
    /// `place` instead of "position N" — and written for every variant that has a position,
    /// including those whose `Display` omits it (`division by zero at …`).
    ///
    /// For callers that hand the calculator text derived from something larger (a prompt, a
    /// form field) and want to point at the user's own column:
    ///
    /// ```
    /// let error = crane_calc::evaluate("(2 + 3").unwrap_err();
    /// let at = |p: usize| format!("column {} of the prompt", p + 10);
    /// assert_eq!(
    ///     error.describe_with(at),
    ///     "unclosed parenthesis opened at column 11 of the prompt"
    /// );
    /// ```
    pub fn describe_with(&self, place: impl Fn(usize) -> String) -> String {
        match self {
            Self::Empty | Self::TooLong { .. } => self.to_string(),
            Self::TooDeep { limit, position } => {
                format!(
                    "expression nested too deeply (limit {limit}) at {}",
                    place(*position)
                )
            }
            Self::Unexpected { found, position } => {
                format!("unexpected '{found}' at {}", place(*position))
            }
            Self::UnexpectedEnd { position } => {
                format!("unexpected end of expression at {}", place(*position))
            }
            Self::UnclosedParen { position } => {
                format!("unclosed parenthesis opened at {}", place(*position))
            }
            Self::UnmatchedParen { position } => {
                format!("unmatched ')' at {}", place(*position))
            }
            Self::UnknownFunction { name, position } => format!(
                "unknown function '{name}' at {} (available functions: {FUNCTIONS})",
                place(*position)
            ),
            Self::UnknownName { name, position } => format!(
                "unknown name '{name}' at {} (available constants: pi, e; functions: {FUNCTIONS})",
                place(*position)
            ),
            Self::MissingParens { name, position } => format!(
                "function '{name}' at {} needs parentheses, e.g. {name}(2)",
                place(*position)
            ),
            Self::WrongArgumentCount {
                function,
                expected,
                found,
                position,
            } => format!(
                "{function} at {} expects {expected} (got {found})",
                place(*position)
            ),
            Self::InvalidArgument {
                function,
                reason,
                position,
            } => format!(
                "invalid argument to {function} at {}: {reason}",
                place(*position)
            ),
            Self::DivisionByZero { position } => {
                format!("division by zero at {}", place(*position))
            }
            Self::SqrtOfNegative { position } => {
                format!("sqrt of a negative number at {}", place(*position))
            }
            Self::NotReal { position } => {
                format!("result is not a real number at {}", place(*position))
            }
            Self::TooLarge { position } => format!("result too large at {}", place(*position)),
        }
    }

    /// True for failures of a well-formed expression's arithmetic (division by zero, the
    /// square root of a negative number, a power that is not real, a value beyond the
    /// magnitude limit), as opposed to input the calculator cannot read.
    pub fn is_arithmetic(&self) -> bool {
        matches!(
            self,
            Self::DivisionByZero { .. }
                | Self::SqrtOfNegative { .. }
                | Self::NotReal { .. }
                | Self::TooLarge { .. }
        )
    }
}

/// Shortens text quoted in an error message to at most `MAX` characters.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX: usize = 24;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(MAX - 1).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_keeps_short_text_and_shortens_long_text() {
        assert_eq!(excerpt("abc"), "abc");
        let long = "x".repeat(100);
        let short = excerpt(&long);
        assert_eq!(short.chars().count(), 24);
        assert!(short.ends_with('…'));
    }

    /// One error of every variant.
    fn every_variant() -> Vec<CalcError> {
        vec![
            CalcError::Empty,
            CalcError::TooLong {
                length: 5,
                limit: 4,
            },
            CalcError::TooDeep {
                limit: 64,
                position: 3,
            },
            CalcError::Unexpected {
                found: "$".into(),
                position: 3,
            },
            CalcError::UnexpectedEnd { position: 3 },
            CalcError::UnclosedParen { position: 3 },
            CalcError::UnmatchedParen { position: 3 },
            CalcError::UnknownFunction {
                name: "foo".into(),
                position: 3,
            },
            CalcError::UnknownName {
                name: "x".into(),
                position: 3,
            },
            CalcError::MissingParens {
                name: "sqrt",
                position: 3,
            },
            CalcError::WrongArgumentCount {
                function: "sqrt",
                expected: "exactly 1 argument",
                found: 2,
                position: 3,
            },
            CalcError::InvalidArgument {
                function: "round",
                reason: "bad".into(),
                position: 3,
            },
            CalcError::DivisionByZero { position: 3 },
            CalcError::SqrtOfNegative { position: 3 },
            CalcError::NotReal { position: 3 },
            CalcError::TooLarge { position: 3 },
        ]
    }

    #[test]
    fn describe_with_places_every_position() {
        let place = |p: usize| format!("column {}", p + 10);
        let described: Vec<String> = every_variant()
            .iter()
            .map(|e| e.describe_with(place))
            .collect();
        let f = FUNCTIONS;
        assert_eq!(
            described,
            [
                "empty expression".to_owned(),
                "expression too long (5 characters, limit 4)".to_owned(),
                "expression nested too deeply (limit 64) at column 13".to_owned(),
                "unexpected '$' at column 13".to_owned(),
                "unexpected end of expression at column 13".to_owned(),
                "unclosed parenthesis opened at column 13".to_owned(),
                "unmatched ')' at column 13".to_owned(),
                format!("unknown function 'foo' at column 13 (available functions: {f})"),
                format!(
                    "unknown name 'x' at column 13 (available constants: pi, e; functions: {f})"
                ),
                "function 'sqrt' at column 13 needs parentheses, e.g. sqrt(2)".to_owned(),
                "sqrt at column 13 expects exactly 1 argument (got 2)".to_owned(),
                "invalid argument to round at column 13: bad".to_owned(),
                "division by zero at column 13".to_owned(),
                "sqrt of a negative number at column 13".to_owned(),
                "result is not a real number at column 13".to_owned(),
                "result too large at column 13".to_owned(),
            ]
        );
        // Where `Display` names the position, `describe_with` words it the same way.
        for e in every_variant() {
            if e.to_string().contains("position") {
                assert_eq!(e.describe_with(|p| format!("position {p}")), e.to_string());
            }
        }
    }

    #[test]
    fn arithmetic_failures_are_told_apart_from_unreadable_input() {
        let arithmetic: Vec<bool> = every_variant()
            .iter()
            .map(CalcError::is_arithmetic)
            .collect();
        let n = arithmetic.len();
        assert_eq!(arithmetic[n - 4..], [true; 4]);
        assert!(arithmetic[..n - 4].iter().all(|a| !a));
    }

    #[test]
    fn whole_input_errors_have_no_position() {
        assert_eq!(CalcError::Empty.position(), None);
        let too_long = CalcError::TooLong {
            length: 5,
            limit: 4,
        };
        assert_eq!(too_long.position(), None);
        assert_eq!(
            CalcError::DivisionByZero { position: 3 }.position(),
            Some(3)
        );
    }
}
