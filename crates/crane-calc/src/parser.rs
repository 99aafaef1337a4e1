//! The parser: a recursive-descent parser from tokens to an expression tree,
//! with the nesting depth checked before every recursive step.
//!
//! Grammar (lowest to highest precedence):
//!
//! ```text
//! expr    = term (('+' | '-') term)*
//! term    = unary (('*' | '/' | '%') unary)*
//! unary   = ('+' | '-')* power
//! power   = primary ('^' ('+' | '-')* primary)*      right-associative
//! primary = number | name | name '(' expr (',' expr)* ')' | '(' expr ')'
//! ```
//!
//! So `-2^2` is `-(2^2)`, `2^-1` is `2^(-1)` and `2^3^2` is `2^(3^2)`.
//! Nesting depth counts parentheses, function calls and unary signs; chains
//! of binary operators (including `^`) are stored flat and add no depth.

use crate::Limits;
use crate::error::{CalcError, excerpt};
use crate::functions::{Func, constant};
use crate::lexer::{Token, TokenKind};
use crate::number::Number;

/// A hard ceiling on nesting, whatever [`Limits::max_depth`] says, so that
/// recursion always stays far inside a thread's stack.
pub(crate) const HARD_MAX_DEPTH: usize = 256;

/// A binary operator of the `+ - * / %` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// An expression tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// A literal or constant.
    Num { value: Number, position: usize },
    /// Negation.
    Neg(Box<Expr>),
    /// A left-associative chain: `first op1 e1 op2 e2 …`, each with the
    /// operator's position.
    Chain {
        first: Box<Expr>,
        rest: Vec<(BinOp, usize, Expr)>,
    },
    /// A right-associative power chain: `base ^ s1 e1 ^ s2 e2 …`, meaning
    /// `base ^ (s1 (e1 ^ (s2 (e2 ^ …))))` where each `si` is an optional
    /// negation written right after the `^`.
    Power {
        base: Box<Expr>,
        rest: Vec<PowerStep>,
    },
    /// A function call; the argument count is already checked.
    Call {
        func: Func,
        position: usize,
        args: Vec<Expr>,
    },
}

/// One `^ [signs] operand` step of a power chain.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PowerStep {
    /// Position of the `^`.
    pub(crate) caret: usize,
    /// Whether the signs after the `^` negate the rest of the chain.
    pub(crate) negate: bool,
    pub(crate) operand: Expr,
}

/// Parses all of `tokens` (which must not be empty) into one expression.
/// `end_position` is one past the input's last character.
pub(crate) fn parse(
    tokens: &[Token],
    end_position: usize,
    limits: &Limits,
) -> Result<Expr, CalcError> {
    let mut parser = Parser {
        tokens,
        next: 0,
        end_position,
        max_depth: limits.max_depth.min(HARD_MAX_DEPTH),
    };
    let expr = parser.expr(0)?;
    match parser.peek() {
        None => Ok(expr),
        Some(token) if token.kind == TokenKind::RParen => Err(CalcError::UnmatchedParen {
            position: token.position,
        }),
        Some(token) => Err(unexpected(token)),
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    next: usize,
    end_position: usize,
    max_depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn peek_kind(&self) -> Option<&TokenKind> {
        self.peek().map(|t| &t.kind)
    }

    fn advance(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        if token.is_some() {
            self.next += 1;
        }
        token
    }

    fn end(&self) -> CalcError {
        CalcError::UnexpectedEnd {
            position: self.end_position,
        }
    }

    /// Fails when entering a level at `depth` would exceed the limit.
    fn enter(&self, depth: usize, position: usize) -> Result<(), CalcError> {
        if depth > self.max_depth {
            Err(CalcError::TooDeep {
                limit: self.max_depth,
                position,
            })
        } else {
            Ok(())
        }
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, CalcError> {
        let first = self.term(depth)?;
        let mut rest = Vec::new();
        while let Some(token) = self.peek() {
            let op = match token.kind {
                TokenKind::Plus => BinOp::Add,
                TokenKind::Minus => BinOp::Sub,
                _ => break,
            };
            let position = token.position;
            self.next += 1;
            rest.push((op, position, self.term(depth)?));
        }
        Ok(chain(first, rest))
    }

    fn term(&mut self, depth: usize) -> Result<Expr, CalcError> {
        let first = self.unary(depth)?;
        let mut rest = Vec::new();
        while let Some(token) = self.peek() {
            let op = match token.kind {
                TokenKind::Star => BinOp::Mul,
                TokenKind::Slash => BinOp::Div,
                TokenKind::Percent => BinOp::Rem,
                _ => break,
            };
            let position = token.position;
            self.next += 1;
            rest.push((op, position, self.unary(depth)?));
        }
        Ok(chain(first, rest))
    }

    /// Consumes a run of `+`/`-` signs, each one nesting level deeper than
    /// `depth`. Returns whether they negate, and the depth after them.
    fn signs(&mut self, mut depth: usize) -> Result<(bool, usize), CalcError> {
        let mut negate = false;
        while let Some(token) = self.peek() {
            match token.kind {
                TokenKind::Plus => {}
                TokenKind::Minus => negate = !negate,
                _ => break,
            }
            depth += 1;
            self.enter(depth, token.position)?;
            self.next += 1;
        }
        Ok((negate, depth))
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, CalcError> {
        let (negate, depth) = self.signs(depth)?;
        let operand = self.power(depth)?;
        Ok(if negate {
            Expr::Neg(Box::new(operand))
        } else {
            operand
        })
    }

    fn power(&mut self, mut depth: usize) -> Result<Expr, CalcError> {
        let base = self.primary(depth)?;
        let mut rest = Vec::new();
        while let Some(token) = self.peek() {
            if token.kind != TokenKind::Caret {
                break;
            }
            let caret = token.position;
            self.next += 1;
            let (negate, deeper) = self.signs(depth)?;
            depth = deeper;
            let operand = self.primary(depth)?;
            rest.push(PowerStep {
                caret,
                negate,
                operand,
            });
        }
        Ok(if rest.is_empty() {
            base
        } else {
            Expr::Power {
                base: Box::new(base),
                rest,
            }
        })
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, CalcError> {
        let token = self.advance().ok_or_else(|| self.end())?;
        match token.kind {
            TokenKind::Number(value) => Ok(Expr::Num {
                value,
                position: token.position,
            }),
            TokenKind::LParen => {
                self.enter(depth + 1, token.position)?;
                let inner = self.expr(depth + 1)?;
                self.close(token.position)?;
                Ok(inner)
            }
            TokenKind::Ident(name) => self.name(&name, token.position, depth),
            _ => Err(unexpected(&token)),
        }
    }

    /// Expects the `)` matching the `(` at `open`.
    fn close(&mut self, open: usize) -> Result<(), CalcError> {
        match self.advance() {
            Some(token) if token.kind == TokenKind::RParen => Ok(()),
            Some(token) => Err(unexpected(&token)),
            None => Err(CalcError::UnclosedParen { position: open }),
        }
    }

    /// A constant, or a function call when `(` follows.
    fn name(&mut self, name: &str, position: usize, depth: usize) -> Result<Expr, CalcError> {
        let lower = name.to_ascii_lowercase();
        let Some(open) = self.peek().filter(|t| t.kind == TokenKind::LParen) else {
            if let Some(value) = constant(&lower) {
                return Ok(Expr::Num { value, position });
            }
            if let Some(func) = Func::lookup(&lower) {
                return Err(CalcError::MissingParens {
                    name: func.name(),
                    position,
                });
            }
            return Err(CalcError::UnknownName {
                name: excerpt(name),
                position,
            });
        };
        let open = open.position;
        let Some(func) = Func::lookup(&lower) else {
            return Err(CalcError::UnknownFunction {
                name: excerpt(name),
                position,
            });
        };
        self.enter(depth + 1, open)?;
        self.next += 1;
        let mut args = Vec::new();
        if self.peek_kind() == Some(&TokenKind::RParen) {
            self.next += 1;
        } else {
            loop {
                args.push(self.expr(depth + 1)?);
                match self.advance() {
                    Some(token) if token.kind == TokenKind::Comma => {}
                    Some(token) if token.kind == TokenKind::RParen => break,
                    Some(token) => return Err(unexpected(&token)),
                    None => return Err(CalcError::UnclosedParen { position: open }),
                }
            }
        }
        func.check_arity(args.len(), position)?;
        Ok(Expr::Call {
            func,
            position,
            args,
        })
    }
}

fn chain(first: Expr, rest: Vec<(BinOp, usize, Expr)>) -> Expr {
    if rest.is_empty() {
        first
    } else {
        Expr::Chain {
            first: Box::new(first),
            rest,
        }
    }
}

fn unexpected(token: &Token) -> CalcError {
    CalcError::Unexpected {
        found: token.text.clone(),
        position: token.position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::tokenize;

    fn parse_str(input: &str, max_depth: usize) -> Result<Expr, CalcError> {
        let chars: Vec<char> = input.chars().collect();
        let tokens = tokenize(&chars)?;
        let limits = Limits {
            max_depth,
            ..Limits::default()
        };
        parse(&tokens, chars.len() + 1, &limits)
    }

    #[test]
    fn binary_chains_are_flat() {
        let expr = parse_str("1+2-3+4", 0).unwrap();
        match expr {
            Expr::Chain { rest, .. } => assert_eq!(rest.len(), 3),
            other => panic!("expected a chain, got {other:?}"),
        }
        let long = vec!["1"; 1000].join("^");
        assert!(parse_str(&long, 0).is_ok());
    }

    #[test]
    fn depth_counts_parens_signs_and_calls() {
        assert!(parse_str("1", 0).is_ok());
        assert!(parse_str("(1)", 0).is_err());
        assert!(parse_str("(1)", 1).is_ok());
        assert!(parse_str("-1", 1).is_ok());
        assert!(parse_str("--1", 1).is_err());
        assert!(parse_str("2^-1", 1).is_ok());
        assert!(parse_str("2^-2^-1", 1).is_err());
        assert!(parse_str("abs(1)", 1).is_ok());
        assert!(parse_str("abs((1))", 1).is_err());
    }

    #[test]
    fn the_hard_ceiling_applies_to_huge_limits() {
        let deep = format!("{}1{}", "(".repeat(300), ")".repeat(300));
        assert_eq!(
            parse_str(&deep, usize::MAX),
            Err(CalcError::TooDeep {
                limit: HARD_MAX_DEPTH,
                position: HARD_MAX_DEPTH + 1
            })
        );
    }

    #[test]
    fn names_are_case_insensitive() {
        assert!(parse_str("PI + E + Sqrt(4) + MAX(1, 2)", 2).is_ok());
    }
}
