//! The expression grammar behind calculator phrases: a recursive-descent parser over a
//! clause's tokens for numbers (with thousands separators and number words), constants,
//! parentheses, function calls, signs, powers, products and sums, with both symbols and
//! words as operators ("times", "divided by", "to the power of", "squared", "% of"). Value
//! phrases ("the sum of ...") and verb forms live in `arithmetic`.
//!
//! Nesting is capped at [`MAX_DEPTH`]; there is no backtracking beyond a bounded lookahead,
//! so parsing is linear in the clause length.
//!
//! Thousands separators: a comma directly between digits ("1,000", "12,345.5") joins the
//! groups when every group after the first has exactly three digits. Inside a list phrase or
//! a `min(...)`/`max(...)` call this only happens when the list also has spaced commas or
//! "and" ("sum of 1,000 and 2,000" = 3000), so "sum of 1,2,3" and "sum of 100,200,300" are
//! lists of three numbers.

use crate::expr::{Expr, Op};
use crate::numbers::{is_number_word, parse_number_words, parse_ordinal};
use crate::text::{Kind, Tok, starts_with, strip_any_prefix};

/// Deepest nesting (parentheses, calls, signs, powers, phrases) the parser follows; the
/// calculator itself accepts 64.
pub(crate) const MAX_DEPTH: u32 = 40;

/// Words that refer to the previous calculation's result.
const PREV_REFS: &[&[&str]] = &[
    &["it"],
    &["that"],
    &["this"],
    &["the", "result"],
    &["the", "answer"],
    &["that", "result"],
    &["that", "number"],
    &["this", "result"],
    &["the", "previous", "result"],
    &["the", "last", "result"],
    &["the", "previous", "answer"],
    &["the", "last", "answer"],
];

/// The parser state: a position in the clause's tokens.
pub(crate) struct P<'a> {
    pub(crate) t: &'a [Tok],
    pub(crate) pos: usize,
    /// Where the innermost list or call argument list being parsed starts (`None` at the top
    /// level); decides whether "1,000" joins into one number (see the module docs).
    pub(crate) list_start: Option<usize>,
}

pub(crate) fn is_minus(t: &Tok) -> bool {
    matches!(t.kind, Kind::Sym('-' | '\u{2212}' | '\u{2013}'))
}

pub(crate) fn is_plain_digits(t: &Tok) -> bool {
    t.kind == Kind::Number && t.lower.bytes().all(|b| b.is_ascii_digit())
}

impl<'a> P<'a> {
    pub(crate) fn new(t: &'a [Tok]) -> Self {
        P {
            t,
            pos: 0,
            list_start: None,
        }
    }

    pub(crate) fn peek(&self, k: usize) -> Option<&'a Tok> {
        self.t.get(self.pos + k)
    }

    pub(crate) fn w(&self, k: usize) -> Option<&'a str> {
        self.peek(k).and_then(Tok::word)
    }

    pub(crate) fn rest(&self) -> &'a [Tok] {
        self.t.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.t.len()
    }

    pub(crate) fn eat_w(&mut self, w: &str) -> bool {
        let hit = self.peek(0).is_some_and(|t| t.is_word(w));
        if hit {
            self.pos += 1;
        }
        hit
    }

    pub(crate) fn eat_ws(&mut self, ws: &[&str]) -> bool {
        let hit = starts_with(self.rest(), ws);
        if hit {
            self.pos += ws.len();
        }
        hit
    }

    pub(crate) fn eat_any(&mut self, pats: &[&[&str]]) -> bool {
        match strip_any_prefix(self.rest(), pats) {
            Some(rest) => {
                self.pos = self.t.len() - rest.len();
                true
            }
            None => false,
        }
    }

    pub(crate) fn eat_sym(&mut self, c: char) -> bool {
        let hit = self.peek(0).is_some_and(|t| t.is_sym(c));
        if hit {
            self.pos += 1;
        }
        hit
    }

    pub(crate) fn eat_minus(&mut self) -> bool {
        let hit = self.peek(0).is_some_and(is_minus);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// `**` written as two adjacent stars.
    pub(crate) fn at_double_star(&self) -> bool {
        match (self.peek(0), self.peek(1)) {
            (Some(a), Some(b)) => a.is_sym('*') && b.is_sym('*') && a.end == b.start,
            _ => false,
        }
    }

    // ---- expression levels -------------------------------------------------------------

    /// An additive operator here, consumed.
    pub(crate) fn add_op(&mut self) -> Option<Op> {
        if self.eat_sym('+') || self.eat_w("plus") {
            Some(Op::Add)
        } else if self.eat_minus() || self.eat_w("minus") || self.eat_ws(&["take", "away"]) {
            Some(Op::Sub)
        } else {
            None
        }
    }

    /// A multiplicative operator here, consumed (`**` is left for the power level).
    pub(crate) fn mul_op(&mut self) -> Option<Op> {
        const MUL: &[&[&str]] = &[
            &["*"],
            &["\u{00D7}"],
            &["\u{00B7}"],
            &["times"],
            &["x"],
            &["multiplied", "by"],
            &["multiplied", "with"],
        ];
        const DIV: &[&[&str]] = &[&["/"], &["\u{00F7}"], &["divided", "by"], &["over"]];
        const REM: &[&[&str]] = &[&["mod"], &["modulo"], &["modulus"], &["%"]];
        if self.at_double_star() {
            None
        } else if self.eat_any(MUL) {
            Some(Op::Mul)
        } else if self.eat_any(DIV) {
            Some(Op::Div)
        } else if self.eat_any(REM) {
            Some(Op::Rem)
        } else {
            None
        }
    }

    /// At the top level (not in a list), "3 plus 4, times 2" groups what came before the
    /// comma: `(3 + 4) * 2`. Consumes the comma if one such follows.
    pub(crate) fn comma_group(&mut self) -> bool {
        const OPS: &[&str] = &[
            "+",
            "-",
            "*",
            "/",
            "\u{00D7}",
            "\u{00F7}",
            "^",
            "plus",
            "minus",
            "times",
            "multiplied",
            "divided",
            "over",
            "mod",
            "modulo",
        ];
        let hit = self.list_start.is_none()
            && self.peek(0).is_some_and(|t| t.is_sym(','))
            && self
                .peek(1)
                .is_some_and(|t| OPS.contains(&t.lower.as_str()));
        if hit {
            self.pos += 1;
        }
        hit
    }

    pub(crate) fn expr(&mut self, d: u32) -> Option<Expr> {
        let mut e = self.term(d)?;
        loop {
            if self.comma_group() {
                e = Expr::group(e);
                if self.eat_any(&[&["^"], &["to", "the", "power", "of"]]) {
                    let exponent = self.unary(d + 1)?;
                    e = self.term_rest(d, Expr::pow(e, exponent))?;
                    continue;
                }
                if let Some(op) = self.mul_op() {
                    let r = self.unary(d)?;
                    e = self.term_rest(d, Expr::bin(op, e, r))?;
                    continue;
                }
            }
            let Some(op) = self.add_op() else { break };
            let r = self.term(d)?;
            e = Expr::bin(op, e, r);
        }
        Some(e)
    }

    pub(crate) fn term(&mut self, d: u32) -> Option<Expr> {
        let e = self.unary(d)?;
        self.term_rest(d, e)
    }

    /// Continues a product/quotient chain after `e`.
    pub(crate) fn term_rest(&mut self, d: u32, mut e: Expr) -> Option<Expr> {
        while let Some(op) = self.mul_op() {
            let r = self.unary(d)?;
            e = Expr::bin(op, e, r);
        }
        if self.at_double_star() {
            return None;
        }
        Some(e)
    }

    pub(crate) fn unary(&mut self, d: u32) -> Option<Expr> {
        if d > MAX_DEPTH {
            return None;
        }
        if self.eat_minus() || self.eat_w("minus") || self.eat_w("negative") {
            // "-5 squared", "negative three cubed": the sign belongs to the number (only for
            // a plain number, so nothing is parsed twice).
            let number_next = self
                .peek(0)
                .is_some_and(|t| t.kind == Kind::Number || t.word().is_some_and(is_number_word));
            if number_next {
                let save = self.pos;
                if let Some(n) = self.primary(d + 1)
                    && matches!(self.w(0), Some("squared" | "cubed"))
                {
                    let negated = Expr::Neg(Box::new(n));
                    let base = self.postfix_rest(d, negated, usize::MAX)?;
                    return self.power_rest(d, base);
                }
                self.pos = save;
            }
            return Some(Expr::Neg(Box::new(self.unary(d + 1)?)));
        }
        if self.eat_sym('+') || self.eat_w("positive") {
            return self.unary(d + 1);
        }
        self.power(d)
    }

    /// "to the 3rd power", "raised to the fifth power": the exponent, if written that way.
    pub(crate) fn ordinal_power(&mut self) -> Option<Expr> {
        let save = self.pos;
        if (self.eat_ws(&["raised", "to", "the"]) || self.eat_ws(&["to", "the"]))
            && let Some((n, used)) = parse_ordinal(self.rest())
        {
            self.pos += used;
            if self.eat_w("power") {
                return Some(Expr::num(n.to_string()));
            }
        }
        self.pos = save;
        None
    }

    pub(crate) fn power(&mut self, d: u32) -> Option<Expr> {
        let base = self.postfix(d)?;
        self.power_rest(d, base)
    }

    /// The optional `^ exponent` after `base`.
    pub(crate) fn power_rest(&mut self, d: u32, base: Expr) -> Option<Expr> {
        const POW: &[&[&str]] = &[
            &["^"],
            &["to", "the", "power", "of"],
            &["to", "the", "power"],
            &["to", "power"],
            &["raised", "to", "the", "power", "of"],
            &["raised", "to", "the", "power"],
            &["raised", "to"],
        ];
        if let Some(exponent) = self.ordinal_power() {
            return Some(Expr::pow(base, exponent));
        }
        if self.at_double_star() {
            self.pos += 2;
        } else if !self.eat_any(POW) {
            return Some(base);
        }
        let exponent = self.unary(d + 1)?;
        Some(Expr::pow(base, exponent))
    }

    /// How many tokens a percent sign or word takes here (0 if none).
    pub(crate) fn percent_len(&self) -> usize {
        match self.peek(0) {
            Some(t) if t.is_sym('%') || t.is_word("percent") || t.is_word("pct") => 1,
            Some(t) if t.is_word("per") && self.peek(1).is_some_and(|n| n.is_word("cent")) => 2,
            _ => 0,
        }
    }

    pub(crate) fn postfix(&mut self, d: u32) -> Option<Expr> {
        let start = self.pos;
        let e = self.primary(d)?;
        self.postfix_rest(d, e, start)
    }

    /// Postfix words after `e` (which started at token `start`): "squared", "cubed",
    /// "rounded", "% of ...".
    pub(crate) fn postfix_rest(&mut self, d: u32, mut e: Expr, start: usize) -> Option<Expr> {
        loop {
            if self.eat_w("squared") {
                e = Expr::pow(e, Expr::num("2"));
            } else if self.eat_w("cubed") {
                e = Expr::pow(e, Expr::num("3"));
            } else if self.eat_w("rounded") {
                e = self.round_tail(e)?;
            } else {
                let len = self.percent_len();
                if len == 0 {
                    break;
                }
                let after = self.peek(len);
                if after.is_some_and(|t| t.is_word("of")) {
                    // "15% of 80" = (15 / 100) * 80
                    self.pos += len + 1;
                    let of = self.unary(d + 1)?;
                    let fraction = Expr::group(Expr::bin(Op::Div, e, Expr::num("100")));
                    e = Expr::bin(Op::Mul, fraction, of);
                } else if after.is_none() && start == 0 {
                    // The whole expression is "50%".
                    self.pos += len;
                    return Some(Expr::bin(Op::Div, e, Expr::num("100")));
                } else if self.peek(0).is_some_and(|t| t.is_sym('%')) && after.is_some() {
                    break; // the remainder operator
                } else {
                    return None;
                }
            }
        }
        Some(e)
    }

    /// After "round X" / "X rounded": optional "to N decimal places" or "to the nearest whole
    /// number".
    pub(crate) fn round_tail(&mut self, x: Expr) -> Option<Expr> {
        const NEAREST: &[&[&str]] = &[
            &["to", "the", "nearest", "whole", "number"],
            &["to", "the", "nearest", "integer"],
            &["to", "a", "whole", "number"],
            &["to", "an", "integer"],
        ];
        const PLACES: &[&str] = &["decimal", "decimals", "places", "digits", "dp"];
        if self.eat_any(NEAREST) {
            return Some(Expr::Call("round", vec![x]));
        }
        let save = self.pos;
        if self.eat_w("to") {
            let n = match self.peek(0) {
                Some(t) if is_plain_digits(t) => {
                    self.pos += 1;
                    Some(t.lower.clone())
                }
                Some(t) if t.word().is_some_and(is_number_word) => parse_number_words(self.rest())
                    .map(|(n, used)| {
                        self.pos += used;
                        n
                    }),
                _ => None,
            };
            if let Some(n) = n {
                let mut saw = false;
                while self
                    .w(0)
                    .is_some_and(|w| PLACES.contains(&w) || w == "place")
                {
                    self.pos += 1;
                    saw = true;
                }
                if saw {
                    return Some(Expr::Call("round", vec![x, Expr::num(n)]));
                }
            }
        }
        self.pos = save;
        Some(Expr::Call("round", vec![x]))
    }

    pub(crate) fn number(&mut self) -> Option<Expr> {
        let first = self.peek(0)?;
        self.pos += 1;
        let mut text = first.lower.clone();
        if is_plain_digits(first) && first.lower.len() <= 3 && self.thousands_allowed() {
            let mut j = self.pos;
            let mut merged = text.clone();
            let mut prev_end = first.end;
            let mut ok = false;
            while let (Some(comma), Some(group)) = (self.t.get(j), self.t.get(j + 1)) {
                let glued = comma.is_sym(',')
                    && comma.start == prev_end
                    && group.kind == Kind::Number
                    && group.start == comma.end;
                if !glued {
                    break;
                }
                let int_len = group.lower.bytes().take_while(u8::is_ascii_digit).count();
                if int_len != 3 || group.lower.starts_with('.') {
                    ok = false;
                    break;
                }
                merged.push_str(&group.lower);
                prev_end = group.end;
                j += 2;
                ok = true;
                if int_len != group.lower.len() {
                    // A fraction or exponent ends the number.
                    let next_glued = self
                        .t
                        .get(j)
                        .is_some_and(|c| c.is_sym(',') && c.start == prev_end);
                    ok = !next_glued;
                    break;
                }
            }
            if ok {
                text = merged;
                self.pos = j;
            }
        }
        if text.starts_with('.') {
            text.insert(0, '0');
        }
        Some(Expr::Num(text.replace('E', "e")))
    }

    /// Whether glued commas between digits are thousands separators here: always at the top
    /// level; in a list only if the list also uses spaced commas or "and". Looks at most 64
    /// tokens from the list start, stopping at an unmatched `)`.
    pub(crate) fn thousands_allowed(&self) -> bool {
        let Some(start) = self.list_start else {
            return true;
        };
        let toks = self.t.get(start..).unwrap_or_default();
        let mut depth = 0usize;
        for (i, t) in toks.iter().enumerate().take(64) {
            match t.kind {
                Kind::Sym('(') => depth += 1,
                Kind::Sym(')') => {
                    if depth == 0 {
                        return false;
                    }
                    depth -= 1;
                }
                Kind::Sym(',') => {
                    let next = toks.get(i + 1);
                    if next.is_none_or(|n| n.start > t.end || n.kind != Kind::Number) {
                        return true;
                    }
                }
                Kind::Sym('&') => return true,
                Kind::Word if t.lower == "and" => return true,
                _ => {}
            }
        }
        false
    }

    /// Parses the rest of a list after its first item.
    pub(crate) fn list_rest(&mut self, d: u32, first: Expr) -> Option<Vec<Expr>> {
        let mut items = vec![first];
        loop {
            if self.eat_sym(',') {
                self.eat_w("and");
            } else if !(self.eat_w("and") || self.eat_sym('&')) {
                break;
            }
            items.push(self.expr(d + 1)?);
        }
        self.eat_w("together");
        Some(items)
    }

    /// A list of at least two expressions: "1, 2 and 3", "the numbers 4, 8, 15".
    pub(crate) fn list(&mut self, d: u32) -> Option<Vec<Expr>> {
        if d > MAX_DEPTH {
            return None;
        }
        let _ = self.eat_ws(&["the", "numbers"]) || self.eat_w("numbers");
        let saved = self.list_start.replace(self.pos);
        let first = self.expr(d + 1);
        let items = first.and_then(|f| self.list_rest(d, f));
        self.list_start = saved;
        items.filter(|i| i.len() >= 2)
    }

    /// `( args )` after a function name.
    pub(crate) fn call_args(&mut self, d: u32) -> Option<Vec<Expr>> {
        if !self.eat_sym('(') {
            return None;
        }
        let saved = self.list_start.replace(self.pos);
        let mut args = Vec::new();
        let ok = loop {
            match self.expr(d + 1) {
                Some(a) => args.push(a),
                None => break false,
            }
            if !self.eat_sym(',') {
                break self.eat_sym(')');
            }
        };
        self.list_start = saved;
        ok.then_some(args)
    }

    pub(crate) fn function(&mut self, name: &'static str, d: u32) -> Option<Expr> {
        let single = !matches!(name, "min" | "max");
        if self.peek(0).is_some_and(|t| t.is_sym('(')) {
            let args = self.call_args(d)?;
            let arity_ok = match name {
                "round" => (1..=2).contains(&args.len()),
                "min" | "max" => !args.is_empty(),
                _ => args.len() == 1,
            };
            return arity_ok.then_some(Expr::Call(name, args));
        }
        let of = self.eat_w("of");
        if single {
            let x = self.unary(d + 1)?;
            if name == "round" {
                return self.round_tail(x);
            }
            Some(Expr::Call(name, vec![x]))
        } else if of {
            Some(Expr::Call(name, self.list(d)?))
        } else {
            None
        }
    }

    pub(crate) fn primary(&mut self, d: u32) -> Option<Expr> {
        if d > MAX_DEPTH {
            return None;
        }
        let tok = self.peek(0)?;
        match tok.kind {
            Kind::Number => return self.number(),
            Kind::Sym('(' | '[') => {
                let close = if tok.is_sym('(') { ')' } else { ']' };
                self.pos += 1;
                let inner = self.expr(d + 1)?;
                return self.eat_sym(close).then(|| Expr::group(inner));
            }
            Kind::Sym('\u{221A}') => {
                self.pos += 1;
                return Some(Expr::Call("sqrt", vec![self.unary(d + 1)?]));
            }
            Kind::Sym('\u{03C0}') => {
                self.pos += 1;
                return Some(Expr::Const("pi"));
            }
            Kind::Word => {}
            _ => return None,
        }
        if self.eat_any(PREV_REFS) {
            // "the result of ..." is a phrase, not a reference.
            if self.w(0) == Some("of") {
                return None;
            }
            return Some(Expr::Prev);
        }
        let w = tok.lower.as_str();
        let function = match w {
            "sqrt" => Some("sqrt"),
            "abs" => Some("abs"),
            "round" => Some("round"),
            "floor" => Some("floor"),
            "ceil" | "ceiling" => Some("ceil"),
            "min" => Some("min"),
            "max" => Some("max"),
            _ => None,
        };
        if let Some(name) = function {
            self.pos += 1;
            return self.function(name, d);
        }
        match w {
            "pi" => {
                self.pos += 1;
                return Some(Expr::Const("pi"));
            }
            "e" => {
                self.pos += 1;
                return Some(Expr::Const("e"));
            }
            _ => {}
        }
        if let Some(e) = self.phrase(d) {
            return Some(e);
        }
        if is_number_word(w) {
            let (n, used) = parse_number_words(self.rest())?;
            self.pos += used;
            return Some(Expr::Num(n));
        }
        None
    }
}
