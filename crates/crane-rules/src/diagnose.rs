//! Calculator diagnostics: errors that point at the fault.
//!
//! When a clause is clearly a calculation — "calculate X", "compute X", "evaluate X"; "what
//! is X", "how much is X", ... where X starts like an expression; or a bare symbolic
//! expression such as `(2+3` — but the rule grammar cannot read it, the
//! expression the user wrote is handed to the calculator (crane-calc) and the rejection carries
//! the calculator's own error instead of the generic "could not understand". Word operators the
//! rule grammar knows ("times", "divided by", "seven") are written as symbols first, so the
//! calculator complains about the real fault, and every position it reports is translated back
//! to a character column of the whole prompt ("unclosed parenthesis opened at column 11 of the
//! prompt").
//!
//! Planned calculations are checked too: input the calculator cannot read (too long, a bad
//! function argument) is rejected at plan time. Arithmetic failures of a well-formed
//! expression (division by zero, a result too large) are left to the run, where the calculator
//! tool reports them — the same for every planner.
//!
//! The check the splitter makes at a boundary ([`is_calc_request`]) looks at a few tokens; the
//! calculator runs at most once per clause, in time linear in the clause's length.

use crane_calc::CalcError;

use crate::Rejection;
use crate::arithmetic::QUESTION_SUFFIXES;
use crate::clause::{display, normalize};
use crate::expr::Expr;
use crate::numbers::{is_number_word, parse_number_words};
use crate::text::{Kind, Tok, strip_any_prefix, strip_any_suffix};

/// Verbs after which whatever follows is meant as an expression.
const CALC_VERBS: &[&[&str]] = &[
    &["calculate"],
    &["calc"],
    &["compute"],
    &["evaluate"],
    &["eval"],
];

/// Question words after which what follows is an expression only if it starts like one
/// ("what is (2" yes, "what is the weather" no).
const QUESTIONS: &[&[&str]] = &[
    &["what", "is"],
    &["what's"],
    &["whats"],
    &["how", "much", "is"],
    &["solve"],
    &["work", "out"],
    &["figure", "out"],
];

/// The calculator's names (functions and constants), plus words the rule grammar maps to one.
const NAMES: &[&str] = &[
    "sqrt", "abs", "round", "floor", "ceil", "ceiling", "min", "max", "pi", "e",
];

/// Symbols that make text look like arithmetic.
fn is_math_symbol(c: char) -> bool {
    matches!(
        c,
        '+' | '-'
            | '*'
            | '/'
            | '^'
            | '%'
            | '('
            | ')'
            | '['
            | ']'
            | '='
            | '\u{00D7}'
            | '\u{00F7}'
            | '\u{2212}'
            | '\u{2013}'
            | '\u{00B7}'
            | '\u{221A}'
            | '\u{03C0}'
    )
}

/// True when `toks` starts like an expression: a number, a sign or bracket, a calculator name,
/// a number word, or a name directly followed by `(`.
fn starts_like_math(toks: &[Tok]) -> bool {
    let Some(first) = toks.first() else {
        return false;
    };
    match first.kind {
        Kind::Number => true,
        Kind::Sym(c) => c == '.' || is_math_symbol(c),
        Kind::Word => {
            let w = first.lower.as_str();
            NAMES.contains(&w)
                || is_number_word(w)
                || matches!(w, "minus" | "negative")
                || toks
                    .get(1)
                    .is_some_and(|n| n.is_sym('(') && n.start == first.end)
        }
        Kind::Newline => false,
    }
}

/// True when all of `toks` is symbolic arithmetic: numbers, symbols and calculator names (or
/// names called like functions), with at least one number and one operator or bracket.
fn is_symbolic(toks: &[Tok]) -> bool {
    let mut number = false;
    let mut operator = false;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            Kind::Number => number = true,
            Kind::Sym(c) => operator |= is_math_symbol(c) || c == '!',
            Kind::Word => {
                let call = toks
                    .get(i + 1)
                    .is_some_and(|n| n.is_sym('(') && n.start == t.end);
                if !(call || NAMES.contains(&t.lower.as_str())) {
                    return false;
                }
            }
            Kind::Newline => return false,
        }
    }
    number && operator
}

/// A clause split into its wrapper and the expression part.
struct Request<'t> {
    /// What follows the wrapper (and precedes a trailing "equal", "for me", ...).
    expression: &'t [Tok],
    /// Introduced by a calculation verb ("calculate", "compute", ...).
    verb: bool,
    /// Introduced by a question ("what is", "how much is", "solve", ...).
    question: bool,
}

/// Splits a clause into its question/verb wrapper and the expression.
fn request(toks: &[Tok]) -> Request<'_> {
    let mut x = normalize(toks);
    let (mut verb, mut question) = (false, false);
    for _ in 0..3 {
        if let Some(rest) = strip_any_prefix(x, CALC_VERBS) {
            verb = true;
            x = rest;
        } else if let Some(rest) = strip_any_prefix(x, QUESTIONS) {
            question = true;
            x = rest;
        } else {
            break;
        }
    }
    for _ in 0..3 {
        match strip_any_suffix(x, QUESTION_SUFFIXES) {
            Some(rest) if !rest.is_empty() => x = rest,
            _ => break,
        }
    }
    Request {
        expression: x,
        verb,
        question,
    }
}

/// True when the clause asks for a calculation and what follows its verb or question words
/// starts like an expression ("calculate (2 + 3", "what is 2 +"; not "calculate my taxes").
/// Such a clause is a request in its own right, so the splitter may start a step there even
/// when it does not parse.
pub(crate) fn is_calc_request(toks: &[Tok]) -> bool {
    let r = request(toks);
    (r.verb || r.question) && starts_like_math(r.expression)
}

/// The calculator's rejection of a clause the rule grammar could not read, when the clause is
/// clearly a calculation; `None` otherwise (or when the calculator reads it after all).
pub(crate) fn reject_unreadable(src: &str, toks: &[Tok]) -> Option<Rejection> {
    let r = request(toks);
    let x = r.expression;
    if x.is_empty() {
        // "calculate" with nothing after it.
        return r.verb.then(|| {
            let clause = display(src, toks).to_owned();
            Rejection {
                message: format!(
                    "I could not calculate \"{clause}\": {}; say what to calculate, e.g. \"calculate (41*7)+13\".",
                    CalcError::Empty
                ),
                clause: Some(clause),
            }
        });
    }
    let clear = if r.verb {
        true
    } else if r.question {
        starts_like_math(x)
    } else {
        is_symbolic(x)
    };
    if !clear {
        return None;
    }
    let translation = Translation::new(src, x);
    let error = crane_calc::evaluate(&translation.text).err()?;
    Some(translation.reject(src, x, display(src, toks), &error))
}

/// Checks a planned calculation with the calculator. Input the calculator cannot read is
/// rejected here, pointing into the prompt where possible; arithmetic failures and
/// calculations that use an earlier result are left to the run.
pub(crate) fn check_planned(src: &str, toks: &[Tok], expr: &Expr) -> Result<(), Rejection> {
    if expr.uses_prev() {
        return Ok(());
    }
    let rendered = expr.render(0);
    let error = match crane_calc::evaluate(&rendered) {
        Ok(_) => return Ok(()),
        Err(e) if e.is_arithmetic() => return Ok(()),
        Err(e) => e,
    };
    // The user's own text, when the calculator fails on it the same way, gives prompt columns.
    let x = request(toks).expression;
    if !x.is_empty() {
        let translation = Translation::new(src, x);
        if let Err(own) = crane_calc::evaluate(&translation.text)
            && std::mem::discriminant(&own) == std::mem::discriminant(&error)
        {
            return Err(translation.reject(src, x, display(src, toks), &own));
        }
    }
    let clause = display(src, toks).to_owned();
    let shown = excerpt(&rendered);
    let mut message = format!(
        "I could not calculate \"{clause}\": {}",
        error.describe_with(|p| format!("character {p} of the calculator expression \"{shown}\""))
    );
    if error.position().is_none() {
        message.push_str(&format!(" (as written for the calculator: \"{shown}\")"));
    }
    message.push('.');
    Err(Rejection {
        message,
        clause: Some(clause),
    })
}

/// At most 60 characters of `s`.
fn excerpt(s: &str) -> String {
    if s.chars().count() <= 60 {
        s.to_owned()
    } else {
        let mut short: String = s.chars().take(59).collect();
        short.push('\u{2026}');
        short
    }
}

/// Word operators written as the calculator's symbols.
const WORD_OPERATORS: &[(&[&str], &str)] = &[
    (&["plus"], "+"),
    (&["minus"], "-"),
    (&["negative"], "-"),
    (&["positive"], "+"),
    (&["take", "away"], "-"),
    (&["times"], "*"),
    (&["multiplied", "by"], "*"),
    (&["multiplied", "with"], "*"),
    (&["divided", "by"], "/"),
    (&["over"], "/"),
    (&["mod"], "%"),
    (&["modulo"], "%"),
    (&["modulus"], "%"),
    (&["percent"], "%"),
    (&["pct"], "%"),
    (&["to", "the", "power", "of"], "^"),
    (&["to", "the", "power"], "^"),
    (&["raised", "to", "the", "power", "of"], "^"),
    (&["raised", "to", "the", "power"], "^"),
    (&["raised", "to"], "^"),
    (&["squared"], "^2"),
    (&["cubed"], "^3"),
    (&["ceiling"], "ceil"),
];

/// The longest word operator at the start of `toks`: its symbol and length in tokens.
fn word_operator(toks: &[Tok]) -> Option<(&'static str, usize)> {
    WORD_OPERATORS
        .iter()
        .filter(|(words, _)| {
            toks.len() >= words.len() && toks.iter().zip(words.iter()).all(|(t, w)| t.is_word(w))
        })
        .max_by_key(|(words, _)| words.len())
        .map(|(words, symbol)| (*symbol, words.len()))
}

/// One piece of calculator text and the prompt token it came from.
struct Piece {
    /// 1-based character position of the piece in the calculator text.
    at: usize,
    /// The token (index into the expression's tokens) it came from.
    tok: usize,
    /// Copied verbatim, so positions inside it map character for character.
    verbatim: bool,
}

/// An expression's tokens written as calculator input, with a map back to the prompt.
struct Translation {
    text: String,
    /// Length of `text` in characters.
    len: usize,
    pieces: Vec<Piece>,
}

impl Translation {
    fn new(src: &str, x: &[Tok]) -> Self {
        let mut out = Translation {
            text: String::new(),
            len: 0,
            pieces: Vec::new(),
        };
        let mut i = 0;
        while let Some(t) = x.get(i) {
            let prev = i.checked_sub(1).and_then(|k| x.get(k));
            let original = src.get(t.start..t.end).unwrap_or_default();
            let (text, used, verbatim): (String, usize, bool) = match t.kind {
                Kind::Newline => (String::new(), 1, false),
                Kind::Number => (original.to_owned(), 1, true),
                Kind::Sym(c) => match c {
                    '\u{00D7}' | '\u{00B7}' => ("*".into(), 1, false),
                    '\u{00F7}' => ("/".into(), 1, false),
                    '\u{2212}' | '\u{2013}' => ("-".into(), 1, false),
                    '[' => ("(".into(), 1, false),
                    ']' => (")".into(), 1, false),
                    '\u{03C0}' => ("pi".into(), 1, false),
                    '\u{221A}' => ("sqrt".into(), 1, false),
                    // "1,000": a thousands separator, as the rule grammar reads it.
                    ',' if is_thousands_comma(prev, t, x.get(i + 1)) => (String::new(), 1, false),
                    _ => (original.to_owned(), 1, true),
                },
                Kind::Word => {
                    let times = t.is_word("x")
                        && prev.is_some_and(|p| p.kind == Kind::Number || p.is_sym(')'))
                        && x.get(i + 1).is_some();
                    if times {
                        ("*".into(), 1, false)
                    } else if let Some((symbol, used)) = word_operator(&x[i..]) {
                        (symbol.into(), used, false)
                    } else if is_number_word(&t.lower)
                        && let Some((n, used)) = parse_number_words(&x[i..])
                    {
                        (n, used, false)
                    } else {
                        (original.to_owned(), 1, true)
                    }
                }
            };
            if !text.is_empty() {
                let spaced = prev.is_some_and(|p| p.end < t.start) && !out.text.is_empty();
                if spaced {
                    out.text.push(' ');
                    out.len += 1;
                }
                out.pieces.push(Piece {
                    at: out.len + 1,
                    tok: i,
                    verbatim,
                });
                out.len += text.chars().count();
                out.text.push_str(&text);
            }
            i += used.max(1);
        }
        out
    }

    /// The prompt column (1-based, in characters) of calculator position `p`.
    fn column(&self, src: &str, x: &[Tok], p: usize) -> usize {
        let col = |byte: usize| src.get(..byte).map_or(0, |s| s.chars().count()) + 1;
        if p > self.len {
            // Just past the end of the expression.
            return x.last().map_or(1, |t| col(t.end));
        }
        let k = self.pieces.partition_point(|piece| piece.at <= p);
        let Some(piece) = k.checked_sub(1).and_then(|k| self.pieces.get(k)) else {
            return x.first().map_or(1, |t| col(t.start));
        };
        let start = x.get(piece.tok).map_or(0, |t| t.start);
        let offset = if piece.verbatim { p - piece.at } else { 0 };
        col(start) + offset
    }

    /// The rejection of `clause` carrying the calculator's `error` on this text.
    fn reject(&self, src: &str, x: &[Tok], clause: &str, error: &CalcError) -> Rejection {
        let mut message = format!(
            "I could not calculate \"{clause}\": {}",
            error.describe_with(|p| format!("column {} of the prompt", self.column(src, x, p)))
        );
        if matches!(error, CalcError::UnexpectedEnd { .. })
            && x.last().is_some_and(|t| t.is_sym('%'))
        {
            message.push_str(
                " (% is the remainder operator; for a percentage say e.g. \"10% of 200\")",
            );
        }
        message.push('.');
        Rejection {
            message,
            clause: Some(clause.to_owned()),
        }
    }
}

/// A comma glued between digits with a three-digit group after it ("1,000").
fn is_thousands_comma(prev: Option<&Tok>, comma: &Tok, next: Option<&Tok>) -> bool {
    let digits = |t: &Tok| t.kind == Kind::Number && t.lower.bytes().all(|b| b.is_ascii_digit());
    prev.is_some_and(|p| digits(p) && p.end == comma.start)
        && next.is_some_and(|n| {
            n.kind == Kind::Number
                && n.start == comma.end
                && n.lower.bytes().take_while(u8::is_ascii_digit).count() == 3
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenize;

    fn translate(s: &str) -> String {
        Translation::new(s, &tokenize(s)).text
    }

    #[test]
    fn word_operators_become_symbols() {
        assert_eq!(translate("7 times (2 + 3"), "7 * (2 + 3");
        assert_eq!(translate("seven divided by zero"), "7 / 0");
        assert_eq!(translate("2 to the power of 3 squared"), "2 ^ 3 ^2");
        assert_eq!(translate("3 x 4 ÷ 2 − 1"), "3 * 4 / 2 - 1");
        assert_eq!(translate("x + 1"), "x + 1");
        assert_eq!(translate("1,000 + foo(2)"), "1000 + foo(2)");
        assert_eq!(translate("ceiling(2.5)"), "ceil(2.5)");
    }

    #[test]
    fn positions_map_to_prompt_columns() {
        let s = "calculate seven times (2 + 3";
        let toks = tokenize(s);
        let x = request(&toks).expression;
        let t = Translation::new(s, x);
        assert_eq!(t.text, "7 * (2 + 3");
        // "(" is character 5 of the translation and column 23 of the prompt.
        assert_eq!(t.column(s, x, 5), 23);
        // Inside a verbatim token, character by character; past the end, after the last one.
        assert_eq!(t.column(s, x, 1), 11);
        assert_eq!(t.column(s, x, 11), 29);
        let s = "what is 12345 + ab";
        let toks = tokenize(s);
        let x = request(&toks).expression;
        let t = Translation::new(s, x);
        assert_eq!(t.column(s, x, 3), 11);
        assert_eq!(t.column(s, x, 10), 18);
    }

    #[test]
    fn only_clear_calculations_are_diagnosed() {
        let clear = |s: &str| reject_unreadable(s, &tokenize(s)).is_some();
        assert!(clear("calculate (2 + 3"));
        assert!(clear("calculate my taxes"));
        assert!(clear("calculate"));
        assert!(clear("what is 2 +"));
        assert!(clear("(2+3"));
        assert!(clear("foo(3)"));
        assert!(!clear("what is the weather in 2024"));
        assert!(!clear("what is"));
        assert!(!clear("sum of 5"));
        assert!(!clear("book a flight"));
        assert!(!clear("1, 000"));
        // The calculator reads it: no calculator error to report.
        assert!(!clear("calculate 2 + 3"));
        let request = |s: &str| is_calc_request(&tokenize(s));
        assert!(request("what is (2"));
        assert!(request("please compute sqrt(-"));
        assert!(!request("calculate my taxes"));
        assert!(!request("(2+3"));
    }
}
