//! The evaluator: walks an expression tree and computes its value, checking
//! every literal, intermediate and result against the magnitude limit.

use crate::arith::{self, Bounds};
use crate::error::CalcError;
use crate::number::Number;
use crate::parser::{BinOp, Expr};

/// The value of `expr`. Recursion follows the tree's nesting, which the
/// parser has already bounded.
pub(crate) fn eval(expr: &Expr, bounds: &Bounds) -> Result<Number, CalcError> {
    match expr {
        Expr::Num { value, position } => bounds.check(*value, *position),
        Expr::Neg(inner) => Ok(arith::neg(eval(inner, bounds)?)),
        Expr::Chain { first, rest } => {
            let mut acc = eval(first, bounds)?;
            for (op, position, operand) in rest {
                let rhs = eval(operand, bounds)?;
                let value = match op {
                    BinOp::Add => arith::add(acc, rhs),
                    BinOp::Sub => arith::sub(acc, rhs),
                    BinOp::Mul => arith::mul(acc, rhs),
                    BinOp::Div => arith::div(acc, rhs, *position)?,
                    BinOp::Rem => arith::rem(acc, rhs, *position)?,
                };
                acc = bounds.check(value, *position)?;
            }
            Ok(acc)
        }
        Expr::Power { base, rest } => {
            let base = eval(base, bounds)?;
            let mut operands = Vec::with_capacity(rest.len());
            for step in rest {
                operands.push((step.caret, step.negate, eval(&step.operand, bounds)?));
            }
            // base ^ (s1 (e1 ^ (s2 (e2 ^ … (sn en))))): fold from the right.
            // `exponent` is the value of everything right of the current `^`.
            let mut steps = operands.into_iter().rev();
            let Some((mut caret, negate, last)) = steps.next() else {
                return Ok(base);
            };
            let mut exponent = if negate { arith::neg(last) } else { last };
            for (earlier_caret, negate, operand) in steps {
                let power = arith::pow(operand, exponent, caret, bounds)?;
                let power = bounds.check(power, caret)?;
                exponent = if negate { arith::neg(power) } else { power };
                caret = earlier_caret;
            }
            let power = arith::pow(base, exponent, caret, bounds)?;
            bounds.check(power, caret)
        }
        Expr::Call {
            func,
            position,
            args,
        } => {
            let values = args
                .iter()
                .map(|arg| eval(arg, bounds))
                .collect::<Result<Vec<_>, _>>()?;
            let value = func.apply(&values, *position)?;
            bounds.check(value, *position)
        }
    }
}
