//! Calculator phrases: symbolic expressions ("(41*7)+13", "2^10", "sqrt(16) + 1"), word
//! operators ("7 times 6", "100 divided by 8", "2 to the power of 8", "5 squared"), verb forms
//! ("multiply 5 by 3", "subtract 3 from 10", "add 2 and 3"), list phrases ("sum of 1, 2 and 3",
//! "average of 4, 8 and 15", "max of ..."), percentages ("15% of 80"), number words ("seven
//! times six") and question wrappers ("what is ...?", "calculate ...").
//!
//! This module holds the clause level (question wrappers, verb forms, percentage questions)
//! and the value phrases; the operator grammar is in `grammar`. Both build an [`Expr`], so
//! nothing is ever passed to the calculator as raw words. See `grammar` for thousands
//! separators.

use crate::expr::{Expr, Op};
use crate::grammar::P;
use crate::text::{Tok, strip_any_prefix, strip_any_suffix};

/// A parsed calculator clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arith {
    pub(crate) expr: Expr,
    /// Introduced by a question word or verb ("what is", "calculate", "multiply"): such a
    /// clause may start a new step after a plain "and" or comma.
    pub(crate) strong: bool,
}

const QUESTION_PREFIXES: &[&[&str]] = &[
    &["what", "is"],
    &["what's"],
    &["whats"],
    &["what", "are"],
    &["what", "was"],
    &["what"],
    &["how", "much", "is"],
    &["how", "much", "are"],
    &["how", "much"],
    &["calculate"],
    &["calc"],
    &["compute"],
    &["evaluate"],
    &["eval"],
    &["solve"],
    &["work", "out"],
    &["figure", "out"],
    &["find"],
    &["find", "out"],
    &["tell", "me"],
    &["give", "me"],
    &["show", "me"],
    &["determine"],
    &["what", "does"],
    &["what", "do"],
    &["what", "would"],
    &["what", "will"],
    &["what", "do", "you", "get", "if", "you"],
    &["what", "do", "you", "get", "when", "you"],
    &["what", "do", "you", "get", "for"],
    &["what", "do", "i", "get", "if", "i"],
    &["the", "result", "of"],
    &["the", "value", "of"],
    &["the", "answer", "to"],
    &["the", "answer", "of"],
    &["result", "of"],
    &["value", "of"],
    &["answer", "to"],
    &["i", "want", "to", "know"],
    &["i'd", "like", "to", "know"],
    &["do", "the", "math", "for"],
    &["do", "the", "math", "on"],
];

pub(crate) const QUESTION_SUFFIXES: &[&[&str]] = &[
    &["="],
    &["equal"],
    &["equals"],
    &["equal", "to"],
    &["is", "equal", "to"],
    &["make"],
    &["makes"],
    &["come", "to"],
    &["comes", "to"],
    &["give"],
    &["give", "you"],
    &["for", "me"],
    &["please"],
    &["in", "total"],
    &["altogether"],
    &["exactly"],
    &["is"],
    &["are"],
];

/// Parses a whole clause as a calculation.
pub(crate) fn parse(toks: &[Tok]) -> Option<Arith> {
    let mut toks = toks;
    let mut strong = false;
    for _ in 0..4 {
        if let Some(expr) = percent_question(toks) {
            return Some(Arith { expr, strong: true });
        }
        match strip_any_prefix(toks, QUESTION_PREFIXES) {
            Some(rest) if !rest.is_empty() => {
                toks = rest;
                strong = true;
            }
            _ => break,
        }
    }
    if let Some(expr) = percent_question(toks) {
        return Some(Arith { expr, strong: true });
    }
    for _ in 0..3 {
        match strip_any_suffix(toks, QUESTION_SUFFIXES) {
            Some(rest) if !rest.is_empty() => toks = rest,
            _ => break,
        }
    }
    if toks.is_empty() {
        return None;
    }
    let mut p = P::new(toks);
    if let Some(expr) = p.verb(0)
        && p.at_end()
    {
        // "sum 1, 2 and 3" reads like a list continuation, so only verbs that cannot
        // continue a number list make the clause strong.
        let list_verb = toks
            .first()
            .is_some_and(|t| t.is_word("sum") || t.is_word("total"));
        return Some(Arith {
            expr,
            strong: strong || !list_verb,
        });
    }
    let mut p = P::new(toks);
    let expr = p.expr(0)?;
    p.at_end().then_some(Arith { expr, strong })
}

/// Parses all of `toks` as one expression.
fn whole(toks: &[Tok]) -> Option<Expr> {
    let mut p = P::new(toks);
    let e = p.expr(1)?;
    p.at_end().then_some(e)
}

/// `(a / b) * 100`.
fn percentage(a: Expr, b: Expr) -> Expr {
    Expr::bin(
        Op::Mul,
        Expr::group(Expr::bin(Op::Div, a, b)),
        Expr::num("100"),
    )
}

/// "what percent of 80 is 20" and "20 is what percent of 80".
fn percent_question(toks: &[Tok]) -> Option<Expr> {
    const ASK: &[&[&str]] = &[
        &["what", "percent", "of"],
        &["what", "percentage", "of"],
        &["what", "%", "of"],
    ];
    if let Some(rest) = strip_any_prefix(toks, ASK) {
        let is = rest.iter().position(|t| t.is_word("is"))?;
        let whole_part = whole(&rest[..is])?;
        let part = whole(&rest[is + 1..])?;
        return Some(percentage(part, whole_part));
    }
    // The part before "is" is a short expression; looking further would make every failed
    // parse of a long clause scan all of it.
    let is = toks.iter().take(32).position(|t| t.is_word("is"))?;
    let rest = strip_any_prefix(&toks[is + 1..], ASK)?;
    let part = whole(&toks[..is])?;
    let whole_part = whole(rest)?;
    Some(percentage(part, whole_part))
}

impl P<'_> {
    /// Word phrases that stand for a value: "the square root of 81", "the sum of 1, 2 and 3",
    /// "half of 10", "the difference between 10 and 3", ...
    pub(crate) fn phrase(&mut self, d: u32) -> Option<Expr> {
        const SQRT: &[&[&str]] = &[
            &["square", "root", "of"],
            &["square", "root"],
            &["sqrt", "of"],
        ];
        const ABS: &[&[&str]] = &[
            &["absolute", "value", "of"],
            &["absolute", "value"],
            &["abs", "of"],
        ];
        const FLOOR: &[&[&str]] = &[&["floor", "of"]];
        const CEIL: &[&[&str]] = &[&["ceiling", "of"], &["ceil", "of"]];
        const SUM: &[&[&str]] = &[&["sum", "of"], &["total", "of"]];
        const PRODUCT: &[&[&str]] = &[&["product", "of"]];
        const AVERAGE: &[&[&str]] = &[
            &["average", "of"],
            &["mean", "of"],
            &["avg", "of"],
            &["arithmetic", "mean", "of"],
        ];
        const MIN: &[&[&str]] = &[
            &["minimum", "of"],
            &["smallest", "of"],
            &["lowest", "of"],
            &["least", "of"],
            &["smaller", "of"],
            &["lesser", "of"],
        ];
        const MAX: &[&[&str]] = &[
            &["maximum", "of"],
            &["largest", "of"],
            &["biggest", "of"],
            &["greatest", "of"],
            &["highest", "of"],
            &["larger", "of"],
            &["greater", "of"],
            &["bigger", "of"],
        ];
        const SQUARE: &[&[&str]] = &[&["square", "of"]];
        const CUBE: &[&[&str]] = &[&["cube", "of"]];
        const HALF: &[&[&str]] = &[&["half", "of"], &["half"]];
        const THIRD: &[&[&str]] = &[&["third", "of"]];
        const QUARTER: &[&[&str]] = &[&["quarter", "of"]];
        const DOUBLE: &[&[&str]] = &[&["double"], &["twice"]];
        const TRIPLE: &[&[&str]] = &[&["triple"], &["thrice"]];
        const DIFFERENCE: &[&[&str]] = &[&["difference", "between"], &["difference", "of"]];
        const QUOTIENT: &[&[&str]] = &[&["quotient", "of"]];
        const REMAINDER: &[&[&str]] = &[&["remainder", "of"]];
        let save = self.pos;
        let _ = self.eat_w("the") || self.eat_w("a") || self.eat_w("one");
        let e = if self.eat_any(SQRT) {
            Expr::Call("sqrt", vec![self.unary(d + 1)?])
        } else if self.eat_any(ABS) {
            Expr::Call("abs", vec![self.unary(d + 1)?])
        } else if self.eat_any(FLOOR) {
            Expr::Call("floor", vec![self.unary(d + 1)?])
        } else if self.eat_any(CEIL) {
            Expr::Call("ceil", vec![self.unary(d + 1)?])
        } else if self.eat_any(SUM) {
            Expr::fold(Op::Add, self.list(d)?)?
        } else if self.eat_any(PRODUCT) {
            Expr::fold(Op::Mul, self.list(d)?)?
        } else if self.eat_any(AVERAGE) {
            let items = self.list(d)?;
            let n = items.len();
            let sum = Expr::fold(Op::Add, items)?;
            Expr::bin(Op::Div, Expr::group(sum), Expr::num(n.to_string()))
        } else if self.eat_any(MIN) {
            Expr::Call("min", self.list(d)?)
        } else if self.eat_any(MAX) {
            Expr::Call("max", self.list(d)?)
        } else if self.eat_any(SQUARE) {
            Expr::pow(self.unary(d + 1)?, Expr::num("2"))
        } else if self.eat_any(CUBE) {
            Expr::pow(self.unary(d + 1)?, Expr::num("3"))
        } else if self.eat_any(HALF) {
            Expr::bin(Op::Div, self.unary(d + 1)?, Expr::num("2"))
        } else if self.eat_any(THIRD) {
            Expr::bin(Op::Div, self.unary(d + 1)?, Expr::num("3"))
        } else if self.eat_any(QUARTER) {
            Expr::bin(Op::Div, self.unary(d + 1)?, Expr::num("4"))
        } else if self.eat_any(DOUBLE) {
            Expr::bin(Op::Mul, Expr::num("2"), self.unary(d + 1)?)
        } else if self.eat_any(TRIPLE) {
            Expr::bin(Op::Mul, Expr::num("3"), self.unary(d + 1)?)
        } else if self.eat_any(DIFFERENCE) {
            let a = self.expr(d + 1)?;
            if !(self.eat_w("and") || self.eat_sym(',')) {
                return None;
            }
            Expr::bin(Op::Sub, a, self.expr(d + 1)?)
        } else if self.eat_any(QUOTIENT) {
            let a = self.expr(d + 1)?;
            if !self.eat_any(&[&["and"], &["by"], &["divided", "by"], &["over"]]) {
                return None;
            }
            Expr::bin(Op::Div, a, self.expr(d + 1)?)
        } else if self.eat_any(REMAINDER) {
            let a = self.unary(d + 1)?;
            let ops: &[&[&str]] = &[
                &["divided", "by"],
                &["when", "divided", "by"],
                &["/"],
                &["mod"],
                &["modulo"],
                &["over"],
                &["and"],
                &["by"],
            ];
            if !self.eat_any(ops) {
                return None;
            }
            Expr::bin(Op::Rem, a, self.unary(d + 1)?)
        } else if self.eat_ws(&["remainder", "when"]) {
            let a = self.unary(d + 1)?;
            if !self.eat_ws(&["is", "divided", "by"]) {
                return None;
            }
            Expr::bin(Op::Rem, a, self.unary(d + 1)?)
        } else {
            self.pos = save;
            return None;
        };
        Some(e)
    }

    // ---- verb forms --------------------------------------------------------------------

    /// "add 2 and 3", "add 2 to 3", "subtract 3 from 10", "multiply 5 by 3", "divide 100 by
    /// 8", "square 5", "raise 2 to the power of 8", "increase 200 by 10%", ...
    fn verb(&mut self, d: u32) -> Option<Expr> {
        let w0 = self.w(0)?;
        match w0 {
            "add" | "sum" | "total" => {
                self.pos += 1;
                let _ = self.eat_w("up") || self.eat_w("together");
                self.list_start = Some(self.pos);
                let a = self.expr(d + 1)?;
                if w0 == "add" && self.eat_w("to") {
                    let b = self.expr(d + 1)?;
                    return Some(Expr::bin(Op::Add, b, a));
                }
                let items = self.list_rest(d, a)?;
                if items.len() < 2 {
                    return None;
                }
                Expr::fold(Op::Add, items)
            }
            "subtract" | "take" => {
                self.pos += 1;
                if w0 == "take" {
                    self.eat_w("away");
                }
                let a = self.expr(d + 1)?;
                self.eat_w("away");
                if !self.eat_w("from") {
                    return None;
                }
                let b = self.expr(d + 1)?;
                Some(Expr::bin(Op::Sub, b, a))
            }
            "multiply" => {
                self.pos += 1;
                self.list_start = Some(self.pos);
                let a = self.expr(d + 1)?;
                if self.eat_w("by") || self.eat_w("with") || self.eat_w("times") {
                    let b = self.expr(d + 1)?;
                    return Some(Expr::bin(Op::Mul, a, b));
                }
                let items = self.list_rest(d, a)?;
                if items.len() < 2 {
                    return None;
                }
                Expr::fold(Op::Mul, items)
            }
            "divide" => {
                self.pos += 1;
                let a = self.expr(d + 1)?;
                if !self.eat_w("by") {
                    return None;
                }
                let b = self.expr(d + 1)?;
                Some(Expr::bin(Op::Div, a, b))
            }
            "square" | "cube" => {
                if self.w(1) == Some("root") {
                    return None;
                }
                self.pos += 1;
                let a = self.unary(d + 1)?;
                let n = if w0 == "square" { "2" } else { "3" };
                Some(Expr::pow(a, Expr::num(n)))
            }
            "halve" => {
                self.pos += 1;
                Some(Expr::bin(Op::Div, self.unary(d + 1)?, Expr::num("2")))
            }
            "negate" => {
                self.pos += 1;
                Some(Expr::Neg(Box::new(self.unary(d + 1)?)))
            }
            "raise" => {
                self.pos += 1;
                let a = self.unary(d + 1)?;
                if matches!(a, Expr::Pow(..)) && self.at_end() {
                    return Some(a);
                }
                if !self.eat_w("to") {
                    return None;
                }
                let _ = self.eat_ws(&["the", "power", "of"]) || self.eat_ws(&["the", "power"]);
                Some(Expr::pow(a, self.unary(d + 1)?))
            }
            "increase" | "decrease" | "reduce" => {
                self.pos += 1;
                let a = self.expr(d + 1)?;
                if !self.eat_w("by") {
                    return None;
                }
                let up = w0 == "increase";
                let rest = self.rest();
                let pct_len = match rest.last() {
                    Some(t) if t.is_sym('%') || t.is_word("percent") || t.is_word("pct") => 1,
                    Some(t)
                        if t.is_word("cent")
                            && rest.len() >= 2
                            && rest[rest.len() - 2].is_word("per") =>
                    {
                        2
                    }
                    _ => 0,
                };
                if pct_len > 0 {
                    let b = whole(&rest[..rest.len() - pct_len])?;
                    self.pos = self.t.len();
                    let op = if up { Op::Add } else { Op::Sub };
                    let factor =
                        Expr::bin(op, Expr::num("1"), Expr::bin(Op::Div, b, Expr::num("100")));
                    return Some(Expr::bin(Op::Mul, a, Expr::group(factor)));
                }
                let b = self.expr(d + 1)?;
                Some(Expr::bin(if up { Op::Add } else { Op::Sub }, a, b))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenize;

    fn calc(s: &str) -> Option<String> {
        parse(&tokenize(s)).map(|a| a.expr.render(1))
    }

    #[test]
    fn symbolic_expressions_keep_user_parentheses() {
        assert_eq!(calc("(41*7)+13").unwrap(), "(41 * 7) + 13");
        assert_eq!(calc("2^10").unwrap(), "2 ^ 10");
        assert_eq!(calc("2**10").unwrap(), "2 ^ 10");
        assert_eq!(calc("sqrt(16) + 1").unwrap(), "sqrt(16) + 1");
        assert_eq!(calc("-2^2").unwrap(), "-(2 ^ 2)");
        assert_eq!(calc("2^-1").unwrap(), "2 ^ (-1)");
        assert_eq!(
            calc("max(1, 2, 3) - min(4,5)").unwrap(),
            "max(1, 2, 3) - min(4, 5)"
        );
        assert_eq!(calc("round(2.345, 2)").unwrap(), "round(2.345, 2)");
        assert_eq!(calc(".5 + 1E3").unwrap(), "0.5 + 1e3");
        assert_eq!(calc("10 % 3").unwrap(), "10 % 3");
        assert_eq!(calc("2 × 3 ÷ 4 − 1").unwrap(), "2 * 3 / 4 - 1");
        assert_eq!(calc("√16").unwrap(), "sqrt(16)");
        assert_eq!(calc("2 * pi"), Some("2 * pi".into()));
    }

    #[test]
    fn word_operators() {
        assert_eq!(calc("What is 7 times 6").unwrap(), "7 * 6");
        assert_eq!(calc("7 x 6").unwrap(), "7 * 6");
        assert_eq!(calc("7 multiplied by 6").unwrap(), "7 * 6");
        assert_eq!(calc("100 divided by 8").unwrap(), "100 / 8");
        assert_eq!(calc("10 minus 3 plus 2").unwrap(), "10 - 3 + 2");
        assert_eq!(calc("5 squared").unwrap(), "5 ^ 2");
        assert_eq!(calc("2 to the power of 8").unwrap(), "2 ^ 8");
        assert_eq!(calc("2 to the 8th power").unwrap(), "2 ^ 8");
        assert_eq!(calc("2 raised to 3").unwrap(), "2 ^ 3");
        assert_eq!(calc("17 mod 5").unwrap(), "17 % 5");
        assert_eq!(calc("seven times six").unwrap(), "7 * 6");
        assert_eq!(calc("minus 5 plus 3").unwrap(), "-5 + 3");
    }

    #[test]
    fn verbs() {
        assert_eq!(calc("multiply 5 by 3").unwrap(), "5 * 3");
        assert_eq!(calc("divide 100 by 8").unwrap(), "100 / 8");
        assert_eq!(calc("add 2 and 3").unwrap(), "2 + 3");
        assert_eq!(calc("add 2, 3 and 4").unwrap(), "2 + 3 + 4");
        assert_eq!(calc("add 2 to 3").unwrap(), "3 + 2");
        assert_eq!(calc("subtract 3 from 10").unwrap(), "10 - 3");
        assert_eq!(calc("square 5").unwrap(), "5 ^ 2");
        assert_eq!(calc("raise 2 to the power of 8").unwrap(), "2 ^ 8");
        assert_eq!(calc("increase 200 by 10%").unwrap(), "200 * (1 + 10 / 100)");
        assert_eq!(calc("decrease 80 by 5").unwrap(), "80 - 5");
        assert_eq!(
            calc("round 2.345 to 2 decimal places").unwrap(),
            "round(2.345, 2)"
        );
        assert_eq!(calc("add milk"), None);
        assert_eq!(calc("add 2"), None);
    }

    #[test]
    fn phrases_lists_and_percentages() {
        assert_eq!(calc("square root of 81").unwrap(), "sqrt(81)");
        assert_eq!(
            calc("the square root of 81 plus 1").unwrap(),
            "sqrt(81) + 1"
        );
        assert_eq!(calc("15% of 80").unwrap(), "(15 / 100) * 80");
        assert_eq!(calc("15 percent of 80").unwrap(), "(15 / 100) * 80");
        assert_eq!(calc("what is 50%").unwrap(), "50 / 100");
        assert_eq!(calc("200 + 10%"), None);
        assert_eq!(calc("sum of 1, 2 and 3").unwrap(), "1 + 2 + 3");
        assert_eq!(calc("the total of 4 and 5").unwrap(), "4 + 5");
        assert_eq!(calc("average of 4, 8 and 15").unwrap(), "(4 + 8 + 15) / 3");
        assert_eq!(calc("mean of 1 and 2").unwrap(), "(1 + 2) / 2");
        assert_eq!(calc("the smallest of 3, 1 and 2").unwrap(), "min(3, 1, 2)");
        assert_eq!(calc("max of 3 and 9").unwrap(), "max(3, 9)");
        assert_eq!(calc("product of 2, 3 and 4").unwrap(), "2 * 3 * 4");
        assert_eq!(calc("difference between 10 and 3").unwrap(), "10 - 3");
        assert_eq!(calc("half of 10").unwrap(), "10 / 2");
        assert_eq!(calc("twice 7").unwrap(), "2 * 7");
        assert_eq!(calc("remainder of 17 divided by 5").unwrap(), "17 % 5");
        assert_eq!(calc("what percent of 80 is 20").unwrap(), "(20 / 80) * 100");
        assert_eq!(calc("20 is what percent of 80").unwrap(), "(20 / 80) * 100");
        assert_eq!(calc("sum of"), None);
        assert_eq!(calc("sum of 5"), None);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(calc("1,000 * 3").unwrap(), "1000 * 3");
        assert_eq!(calc("1,234,567.5 + 1").unwrap(), "1234567.5 + 1");
        assert_eq!(calc("sum of 1,2,3").unwrap(), "1 + 2 + 3");
        assert_eq!(calc("sum of 100,200,300").unwrap(), "100 + 200 + 300");
        assert_eq!(calc("sum of 1,000 and 2,000").unwrap(), "1000 + 2000");
        assert_eq!(calc("sum of 1,000, 2,000, 3").unwrap(), "1000 + 2000 + 3");
        assert_eq!(calc("max(1,2)").unwrap(), "max(1, 2)");
        assert_eq!(calc("1,00 + 1"), None);
        assert_eq!(calc("1, 000"), None);
    }

    #[test]
    fn previous_result_and_failures() {
        assert_eq!(calc("multiply it by 3").unwrap(), "(${steps.1.value}) * 3");
        assert_eq!(
            calc("add 5 to the result").unwrap(),
            "(${steps.1.value}) + 5"
        );
        assert_eq!(calc("5 by 3"), None);
        assert_eq!(calc("x + 2"), None);
        assert_eq!(calc("2 +"), None);
        assert_eq!(calc("((2)"), None);
        assert_eq!(calc("sqrt 16"), Some("sqrt(16)".into()));
        let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(calc(&deep), None);
    }
}
