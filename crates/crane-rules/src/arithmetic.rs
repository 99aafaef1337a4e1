//! Calculator phrases: symbolic expressions ("(41*7)+13", "2^10", "sqrt(16) + 1"), word
//! operators ("7 times 6", "100 divided by 8", "2 to the power of 8", "5 squared"), verb forms
//! ("multiply 5 by 3", "subtract 3 from 10", "add 2 and 3"), list phrases ("sum of 1, 2 and 3",
//! "average of 4, 8 and 15", "max of ..."), percentages ("15% of 80"), number words ("seven
//! times six") and question wrappers ("what is ...?", "calculate ...").
//!
//! A recursive-descent parser over the clause's tokens builds an [`Expr`]; nothing is ever
//! passed to the calculator as raw words. Nesting is capped at [`MAX_DEPTH`] and there is no
//! backtracking beyond a fixed number of alternatives at the clause start, so parsing is
//! linear in the clause length.
//!
//! Thousands separators: a comma directly between digits ("1,000", "12,345.5") joins the
//! groups when every group after the first has exactly three digits. Inside a list phrase or
//! a `min(...)`/`max(...)` call this only happens when the list also has spaced commas or
//! "and" ("sum of 1,000 and 2,000" = 3000), so "sum of 1,2,3" and "sum of 100,200,300" are
//! lists of three numbers.

use crate::expr::{Expr, Op};
use crate::numbers::{is_number_word, parse_number_words, parse_ordinal};
use crate::text::{Kind, Tok, starts_with, strip_any_prefix, strip_any_suffix};

/// Deepest nesting (parentheses, calls, signs, powers, phrases) the parser follows; the
/// calculator itself accepts 64.
pub(crate) const MAX_DEPTH: u32 = 40;

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

const QUESTION_SUFFIXES: &[&[&str]] = &[
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
struct P<'a> {
    t: &'a [Tok],
    pos: usize,
    /// Where the innermost list or call argument list being parsed starts (`None` at the top
    /// level); decides whether "1,000" joins into one number (see the module docs).
    list_start: Option<usize>,
}

fn is_minus(t: &Tok) -> bool {
    matches!(t.kind, Kind::Sym('-' | '\u{2212}' | '\u{2013}'))
}

fn is_plain_digits(t: &Tok) -> bool {
    t.kind == Kind::Number && t.lower.bytes().all(|b| b.is_ascii_digit())
}

impl<'a> P<'a> {
    fn new(t: &'a [Tok]) -> Self {
        P {
            t,
            pos: 0,
            list_start: None,
        }
    }

    fn peek(&self, k: usize) -> Option<&'a Tok> {
        self.t.get(self.pos + k)
    }

    fn w(&self, k: usize) -> Option<&'a str> {
        self.peek(k).and_then(Tok::word)
    }

    fn rest(&self) -> &'a [Tok] {
        self.t.get(self.pos..).unwrap_or_default()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.t.len()
    }

    fn eat_w(&mut self, w: &str) -> bool {
        let hit = self.peek(0).is_some_and(|t| t.is_word(w));
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn eat_ws(&mut self, ws: &[&str]) -> bool {
        let hit = starts_with(self.rest(), ws);
        if hit {
            self.pos += ws.len();
        }
        hit
    }

    fn eat_any(&mut self, pats: &[&[&str]]) -> bool {
        match strip_any_prefix(self.rest(), pats) {
            Some(rest) => {
                self.pos = self.t.len() - rest.len();
                true
            }
            None => false,
        }
    }

    fn eat_sym(&mut self, c: char) -> bool {
        let hit = self.peek(0).is_some_and(|t| t.is_sym(c));
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn eat_minus(&mut self) -> bool {
        let hit = self.peek(0).is_some_and(is_minus);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// `**` written as two adjacent stars.
    fn at_double_star(&self) -> bool {
        match (self.peek(0), self.peek(1)) {
            (Some(a), Some(b)) => a.is_sym('*') && b.is_sym('*') && a.end == b.start,
            _ => false,
        }
    }

    // ---- expression levels -------------------------------------------------------------

    fn expr(&mut self, d: u32) -> Option<Expr> {
        let mut e = self.term(d)?;
        loop {
            let op = if self.eat_sym('+') || self.eat_w("plus") {
                Op::Add
            } else if self.eat_minus() || self.eat_w("minus") || self.eat_ws(&["take", "away"]) {
                Op::Sub
            } else {
                break;
            };
            let r = self.term(d)?;
            e = Expr::bin(op, e, r);
        }
        Some(e)
    }

    fn term(&mut self, d: u32) -> Option<Expr> {
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
        let mut e = self.unary(d)?;
        loop {
            if self.at_double_star() {
                return None;
            }
            let op = if self.eat_any(MUL) {
                Op::Mul
            } else if self.eat_any(DIV) {
                Op::Div
            } else if self.eat_any(REM) {
                Op::Rem
            } else {
                break;
            };
            let r = self.unary(d)?;
            e = Expr::bin(op, e, r);
        }
        Some(e)
    }

    fn unary(&mut self, d: u32) -> Option<Expr> {
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
    fn ordinal_power(&mut self) -> Option<Expr> {
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

    fn power(&mut self, d: u32) -> Option<Expr> {
        let base = self.postfix(d)?;
        self.power_rest(d, base)
    }

    /// The optional `^ exponent` after `base`.
    fn power_rest(&mut self, d: u32, base: Expr) -> Option<Expr> {
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
    fn percent_len(&self) -> usize {
        match self.peek(0) {
            Some(t) if t.is_sym('%') || t.is_word("percent") || t.is_word("pct") => 1,
            Some(t) if t.is_word("per") && self.peek(1).is_some_and(|n| n.is_word("cent")) => 2,
            _ => 0,
        }
    }

    fn postfix(&mut self, d: u32) -> Option<Expr> {
        let start = self.pos;
        let e = self.primary(d)?;
        self.postfix_rest(d, e, start)
    }

    /// Postfix words after `e` (which started at token `start`): "squared", "cubed",
    /// "rounded", "% of ...".
    fn postfix_rest(&mut self, d: u32, mut e: Expr, start: usize) -> Option<Expr> {
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
    fn round_tail(&mut self, x: Expr) -> Option<Expr> {
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

    fn number(&mut self) -> Option<Expr> {
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
    fn thousands_allowed(&self) -> bool {
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
    fn list_rest(&mut self, d: u32, first: Expr) -> Option<Vec<Expr>> {
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
    fn list(&mut self, d: u32) -> Option<Vec<Expr>> {
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
    fn call_args(&mut self, d: u32) -> Option<Vec<Expr>> {
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

    fn function(&mut self, name: &'static str, d: u32) -> Option<Expr> {
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

    fn primary(&mut self, d: u32) -> Option<Expr> {
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

    /// Word phrases that stand for a value: "the square root of 81", "the sum of 1, 2 and 3",
    /// "half of 10", "the difference between 10 and 3", ...
    fn phrase(&mut self, d: u32) -> Option<Expr> {
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
