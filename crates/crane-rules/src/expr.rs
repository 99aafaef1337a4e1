//! The calculator expression tree the arithmetic parser builds, and its printer.
//!
//! The printer writes only constructs the calculator's grammar accepts (`+ - * / % ^`,
//! parentheses, `sqrt(...)`-style calls, `pi`, `e`) and adds parentheses wherever the
//! calculator's precedence would otherwise read the tree differently, so the printed text
//! always evaluates to the tree's value. Parentheses the user wrote are kept.

use std::fmt::Write as _;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl Op {
    fn level(self) -> u8 {
        match self {
            Op::Add | Op::Sub => 1,
            Op::Mul | Op::Div | Op::Rem => 2,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Rem => "%",
        }
    }
}

/// An expression. Left-associative operator runs are stored flat (`Chain`) so long inputs
/// never build deep trees; nesting only comes from parentheses, calls, signs and powers, and
/// the parser bounds that.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// A number literal in calculator syntax (`12`, `0.5`, `1e3`).
    Num(String),
    /// `pi` or `e`.
    Const(&'static str),
    /// The value of the previous calculation in the prompt (`${steps.N.value}`).
    Prev,
    /// Negation.
    Neg(Box<Expr>),
    /// `first op1 e1 op2 e2 ...`, all operators of the same precedence level.
    Chain(Box<Expr>, Vec<(Op, Expr)>),
    /// `base ^ exponent`.
    Pow(Box<Expr>, Box<Expr>),
    /// A function call.
    Call(&'static str, Vec<Expr>),
    /// Parentheses the user wrote (or that a phrase's meaning requires).
    Group(Box<Expr>),
}

impl Expr {
    /// A number literal.
    pub(crate) fn num(n: impl Into<String>) -> Expr {
        Expr::Num(n.into())
    }

    /// `l op r`, extending `l` if it is already a chain of the same level.
    pub(crate) fn bin(op: Op, l: Expr, r: Expr) -> Expr {
        match l {
            Expr::Chain(first, mut rest)
                if rest.first().is_some_and(|(o, _)| o.level() == op.level()) =>
            {
                rest.push((op, r));
                Expr::Chain(first, rest)
            }
            l => Expr::Chain(Box::new(l), vec![(op, r)]),
        }
    }

    /// Folds `items` with `op` (`a op b op c`); `None` when empty.
    pub(crate) fn fold(op: Op, items: Vec<Expr>) -> Option<Expr> {
        let mut it = items.into_iter();
        let first = it.next()?;
        let rest: Vec<(Op, Expr)> = it.map(|e| (op, e)).collect();
        Some(if rest.is_empty() {
            first
        } else {
            Expr::Chain(Box::new(first), rest)
        })
    }

    /// `base ^ exponent`.
    pub(crate) fn pow(base: Expr, exponent: Expr) -> Expr {
        Expr::Pow(Box::new(base), Box::new(exponent))
    }

    /// `(inner)`.
    pub(crate) fn group(inner: Expr) -> Expr {
        Expr::Group(Box::new(inner))
    }

    /// True if the expression refers to the previous calculation.
    pub(crate) fn uses_prev(&self) -> bool {
        match self {
            Expr::Prev => true,
            Expr::Num(_) | Expr::Const(_) => false,
            Expr::Neg(x) | Expr::Group(x) => x.uses_prev(),
            Expr::Pow(a, b) => a.uses_prev() || b.uses_prev(),
            Expr::Chain(first, rest) => {
                first.uses_prev() || rest.iter().any(|(_, e)| e.uses_prev())
            }
            Expr::Call(_, args) => args.iter().any(Expr::uses_prev),
        }
    }

    fn is_atom(&self) -> bool {
        matches!(
            self,
            Expr::Num(_) | Expr::Const(_) | Expr::Prev | Expr::Call(..) | Expr::Group(_)
        )
    }

    /// Binding strength: chains by level, then negation, then power, then atoms.
    fn strength(&self) -> u8 {
        match self {
            Expr::Chain(_, rest) => rest.first().map_or(5, |(o, _)| o.level()),
            Expr::Neg(_) => 3,
            Expr::Pow(..) => 4,
            _ => 5,
        }
    }

    /// Prints the expression; `Prev` becomes `(${steps.N.value})` with `prev_step` as N.
    pub(crate) fn render(&self, prev_step: usize) -> String {
        let mut out = String::new();
        self.write(&mut out, prev_step);
        out
    }

    fn write_wrapped(&self, out: &mut String, prev: usize, wrap: bool) {
        if wrap {
            out.push('(');
            self.write(out, prev);
            out.push(')');
        } else {
            self.write(out, prev);
        }
    }

    fn write(&self, out: &mut String, prev: usize) {
        match self {
            Expr::Num(n) => out.push_str(n),
            Expr::Const(c) => out.push_str(c),
            Expr::Prev => {
                let _ = write!(out, "(${{steps.{prev}.value}})");
            }
            Expr::Neg(x) => {
                out.push('-');
                x.write_wrapped(out, prev, !x.is_atom());
            }
            Expr::Group(x) => x.write_wrapped(out, prev, true),
            Expr::Call(name, args) => {
                out.push_str(name);
                out.push('(');
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    a.write(out, prev);
                }
                out.push(')');
            }
            Expr::Pow(base, exponent) => {
                base.write_wrapped(out, prev, !base.is_atom());
                out.push_str(" ^ ");
                let ok = exponent.is_atom() || matches!(**exponent, Expr::Pow(..));
                exponent.write_wrapped(out, prev, !ok);
            }
            Expr::Chain(first, rest) => {
                let level = self.strength();
                first.write_wrapped(out, prev, first.strength() < level);
                for (op, e) in rest {
                    out.push(' ');
                    out.push_str(op.symbol());
                    out.push(' ');
                    let wrap = matches!(e, Expr::Neg(_)) || e.strength() <= level;
                    e.write_wrapped(out, prev, wrap);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Expr {
        Expr::num(s)
    }

    #[test]
    fn parenthesises_only_where_needed() {
        let e = Expr::bin(Op::Mul, Expr::bin(Op::Add, n("1"), n("2")), n("3"));
        assert_eq!(e.render(0), "(1 + 2) * 3");
        let e = Expr::bin(Op::Sub, n("1"), Expr::bin(Op::Sub, n("2"), n("3")));
        assert_eq!(e.render(0), "1 - (2 - 3)");
        let e = Expr::bin(Op::Add, Expr::bin(Op::Add, n("1"), n("2")), n("3"));
        assert_eq!(e.render(0), "1 + 2 + 3");
        let e = Expr::pow(Expr::Neg(Box::new(n("2"))), n("2"));
        assert_eq!(e.render(0), "(-2) ^ 2");
        let e = Expr::Neg(Box::new(Expr::pow(n("2"), n("2"))));
        assert_eq!(e.render(0), "-(2 ^ 2)");
        let e = Expr::pow(n("2"), Expr::pow(n("3"), n("2")));
        assert_eq!(e.render(0), "2 ^ 3 ^ 2");
        let e = Expr::pow(Expr::pow(n("2"), n("3")), n("2"));
        assert_eq!(e.render(0), "(2 ^ 3) ^ 2");
        let e = Expr::bin(Op::Mul, n("2"), Expr::Neg(Box::new(n("3"))));
        assert_eq!(e.render(0), "2 * (-3)");
        let e = Expr::bin(Op::Add, Expr::Prev, n("1"));
        assert_eq!(e.render(4), "(${steps.4.value}) + 1");
        let e = Expr::Call("max", vec![n("1"), Expr::group(n("2"))]);
        assert_eq!(e.render(0), "max(1, (2))");
    }
}
