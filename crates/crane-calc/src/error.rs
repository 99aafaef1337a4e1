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
