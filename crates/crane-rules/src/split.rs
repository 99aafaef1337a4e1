//! Clause splitting: where one prompt becomes several steps.
//!
//! Candidate boundaries are runs of separators outside quotes: `,` `;` `&`, sentence ends
//! (`.`/`!`/`?` followed by a space), line breaks, and the words "and", "then", "after that",
//! "afterwards". Strong separators (everything except a plain "and", `,` and `&`) may start
//! any recognised command; weak ones only a *strong* command (one that cannot be the
//! continuation of a title or a number list: "list my todos", "mark it as done", "what is
//! ...", "add a todo ..."). So "add a todo to buy bread and butter" stays one todo and "sum of
//! 1, 2 and 3" one sum.
//!
//! Boundaries are decided right to left: a boundary is taken when the text from it to the
//! next taken boundary (or the end) parses as a whole command — or is clearly a calculation
//! ("what is (2 + 3"), which is then rejected with the calculator's own error. A clause that
//! still does not parse is then cut left to right at its first boundary whose left part
//! parses, so "list my todos and book a flight" is rejected naming exactly "book a flight".
//!
//! Titles are data. After an add clause whose title runs to the clause's end ("add a todo to
//! X", "remind me to X"), punctuation (`,` `;` `&` `.` `!` `?`, alone or with "and") starts a
//! new step only before a *strong* command; a weak one ("drop X", "delete X", "complete X",
//! "3 * 4") stays part of the title, and so do separators at the very end of the prompt ("buy
//! milk and and and"). So `add a todo to Robert'); DROP TABLE todos;--` is one todo with
//! exactly that title. Only "then", "after that", "afterwards" and a line break also start a
//! weak command there. The failure this avoids is the dangerous one: a split that should not
//! happen can delete or complete the wrong todo, a merge that should not happen only adds a
//! longer title.
//!
//! Each decision parses one segment and parsers stop at the first token that cannot fit, so
//! the total work stays near-linear in practice.

use std::ops::Range;

use crate::Rejection;
use crate::clause::{self, Command, Parsed, display};
use crate::diagnose;
use crate::expr::Expr;
use crate::text::{Kind, Tok};

/// A run of separator tokens `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Boundary {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) strong: bool,
}

/// Words usually followed by a period that does not end a sentence.
fn is_abbreviation(w: &str) -> bool {
    matches!(
        w,
        "dr" | "mr"
            | "mrs"
            | "ms"
            | "st"
            | "jr"
            | "sr"
            | "prof"
            | "vs"
            | "etc"
            | "no"
            | "approx"
            | "inc"
            | "ltd"
            | "co"
            | "mt"
            | "ft"
            | "ave"
            | "rd"
            | "dept"
            | "fig"
            | "vol"
            | "e.g"
            | "i.e"
            | "p"
            | "pp"
            | "min"
            | "max"
            | "hr"
            | "hrs"
    )
}

/// The separator at token `i`, if any: (tokens it spans, strong).
fn separator_at(toks: &[Tok], i: usize) -> Option<(usize, bool)> {
    let t = toks.get(i)?;
    if t.quoted {
        return None;
    }
    let prev = i.checked_sub(1).and_then(|k| toks.get(k));
    let next = toks.get(i + 1);
    match t.kind {
        Kind::Newline | Kind::Sym(';' | '\u{FF1B}') => Some((1, true)),
        Kind::Sym(',' | '\u{FF0C}' | '\u{3001}') => {
            let glued_digits = prev.is_some_and(|p| p.kind == Kind::Number && p.end == t.start)
                && next.is_some_and(|n| n.kind == Kind::Number && n.start == t.end);
            (!glued_digits).then_some((1, false))
        }
        Kind::Sym('.' | '!' | '?' | '\u{3002}' | '\u{FF1F}' | '\u{FF01}') => {
            let next = next?;
            if next.start == t.end && next.kind != Kind::Newline {
                return None; // "e.g.", "a.m."
            }
            // "1. add a todo": a numbered list marker, not a sentence end.
            let marker = t.is_sym('.')
                && prev.is_some_and(|p| p.kind == Kind::Number)
                && (i == 1 || toks.get(i - 2).is_some_and(|b| b.kind == Kind::Newline));
            // "call Dr. Smith": an abbreviation, not a sentence end.
            let abbreviation = t.is_sym('.')
                && prev.is_some_and(|p| p.end == t.start && p.word().is_some_and(is_abbreviation));
            (!marker && !abbreviation).then_some((1, true))
        }
        Kind::Sym('&') => Some((1, false)),
        Kind::Word => match t.lower.as_str() {
            "and" => Some((1, false)),
            "then" | "afterwards" | "afterward" => Some((1, true)),
            "after" if next.is_some_and(|n| n.is_word("that") && !n.quoted) => Some((2, true)),
            _ => None,
        },
        _ => None,
    }
}

/// All candidate boundaries, left to right, as maximal separator runs.
pub(crate) fn boundaries(toks: &[Tok]) -> Vec<Boundary> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let Some((len, strong)) = separator_at(toks, i) else {
            i += 1;
            continue;
        };
        let start = i;
        let mut strong = strong;
        i += len;
        while let Some((len, s)) = separator_at(toks, i) {
            strong |= s;
            i += len;
        }
        out.push(Boundary {
            start,
            end: i,
            strong,
        });
    }
    out
}

/// A clause ready for step building: the command and the clause text (for messages).
#[derive(Debug, Clone)]
pub(crate) struct Clause {
    pub(crate) cmd: Command,
    pub(crate) text: String,
}

/// An understood clause: its tokens `range` and what it parsed to.
#[derive(Debug)]
struct Piece {
    range: Range<usize>,
    parsed: Parsed,
}

/// Splits the prompt into understood clauses, or rejects naming the first clause that is
/// not understood.
pub(crate) fn clauses(src: &str, toks: &[Tok]) -> Result<Vec<Clause>, Rejection> {
    let bounds = boundaries(toks);
    // Right to left: which boundaries start a new clause.
    let mut segments: Vec<(Range<usize>, Option<Parsed>)> = Vec::new();
    let mut seg_end = toks.len();
    // Where each boundary's sentence (text since the last strong boundary) starts.
    let mut sentence_start = Vec::with_capacity(bounds.len());
    let mut start = 0;
    for b in &bounds {
        sentence_start.push(start);
        if b.strong {
            start = b.end;
        }
    }
    for (k, b) in bounds.iter().enumerate().rev() {
        if b.end >= seg_end {
            // Separators at the end of the current segment ("..., and").
            seg_end = seg_end.min(b.start);
            continue;
        }
        let range = b.end..seg_end;
        // A weak complete/delete ("delete buy milk") may follow a plain "and" when the
        // sentence itself started with complete/delete: "complete X and delete Y".
        let sentence = sentence_start
            .get(k)
            .map_or(&toks[..0], |&s| &toks[s..b.start]);
        let target_run = clause::starts_with_target_verb(sentence);
        if !b.strong && !target_run && !clause::may_be_strong(&toks[range.clone()]) {
            continue;
        }
        match clause::parse_clause(src, &toks[range.clone()]) {
            Ok(p) => {
                let target_cmd = matches!(p.cmd, Command::Complete(_) | Command::Delete(_));
                if p.strong || b.strong || (target_run && target_cmd) {
                    segments.push((range, Some(p)));
                    seg_end = b.start;
                }
            }
            // "..., then what is (2 + 3": a calculation of its own, to be rejected with the
            // calculator's error rather than swallowed by the clause before it.
            Err(_) if diagnose::is_calc_request(&toks[range.clone()]) => {
                segments.push((range, None));
                seg_end = b.start;
            }
            Err(_) => {}
        }
    }
    segments.push((0..seg_end, None));
    segments.reverse();

    let mut pieces = Vec::new();
    for (range, parsed) in segments {
        if range.is_empty() || (parsed.is_none() && clause::is_filler(&toks[range.clone()])) {
            continue;
        }
        match parsed {
            Some(parsed) => pieces.push(Piece { range, parsed }),
            None => resolve_segment(src, toks, &bounds, range, &mut pieces)?,
        }
    }
    if pieces.is_empty() {
        return Err(crate::not_understood(src.trim(), None));
    }
    let mut out = Vec::with_capacity(pieces.len());
    for piece in keep_titles_whole(src, toks, pieces)? {
        let clause = &toks[piece.range];
        if let Command::Calc(expr) = &piece.parsed.cmd {
            diagnose::check_planned(src, clause, expr)?;
        }
        out.push(Clause {
            cmd: piece.parsed.cmd,
            text: display(src, clause).to_owned(),
        });
    }
    Ok(out)
}

/// True when the separators `gap` between an open title and what follows may belong to the
/// title: punctuation and "and" only (no line break, no "then"/"after that"/"afterwards", no
/// other words).
fn title_gap(gap: &[Tok]) -> bool {
    gap.iter().all(|t| match t.kind {
        Kind::Sym(_) => true,
        Kind::Word => t.lower == "and",
        Kind::Number | Kind::Newline => false,
    })
}

/// Extends every add clause whose title runs to its end over the weak clauses that follow it
/// after punctuation only, and over the separators that end the prompt unless a line break is
/// among them (see the module docs); the extended clause is parsed again, once.
fn keep_titles_whole(src: &str, toks: &[Tok], pieces: Vec<Piece>) -> Result<Vec<Piece>, Rejection> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut rest = pieces.into_iter().peekable();
    while let Some(piece) = rest.next() {
        if !piece.parsed.open_title {
            out.push(piece);
            continue;
        }
        let mut end = piece.range.end;
        while let Some(next) = rest.peek() {
            let gap = toks.get(end..next.range.start).unwrap_or_default();
            if next.parsed.strong || !title_gap(gap) {
                break;
            }
            end = next.range.end;
            rest.next();
        }
        // Nothing follows but separators ("buy milk and and and"): they are the title's.
        let tail = toks.get(end..).unwrap_or_default();
        if rest.peek().is_none() && tail.iter().all(|t| t.kind != Kind::Newline) {
            end = toks.len();
        }
        if end == piece.range.end {
            out.push(piece);
            continue;
        }
        let range = piece.range.start..end;
        let whole = &toks[range.clone()];
        match clause::parse_clause(src, whole) {
            Ok(parsed) if matches!(parsed.cmd, Command::Add(_)) => {
                out.push(Piece { range, parsed })
            }
            // Not expected; never guess which part to run.
            _ => return Err(crate::not_understood(display(src, whole), None)),
        }
    }
    Ok(out)
}

/// A calculation of a lone number or constant.
fn is_trivial(p: &Parsed) -> bool {
    matches!(&p.cmd, Command::Calc(Expr::Num(_) | Expr::Const(_)))
}

/// How many boundaries [`resolve_segment`] tries before naming the whole rest as not
/// understood (keeps adversarial prompts linear).
const MAX_PREFIX_ATTEMPTS: usize = 16;

/// Parses a segment no boundary inside could split: whole if possible, else cut at the first
/// boundary whose left part parses and continue with the rest.
fn resolve_segment(
    src: &str,
    toks: &[Tok],
    bounds: &[Boundary],
    range: Range<usize>,
    out: &mut Vec<Piece>,
) -> Result<(), Rejection> {
    let mut cur = range.start;
    // Boundaries strictly inside the segment, in order.
    let first = bounds.partition_point(|b| b.start < range.start);
    let inner: Vec<Boundary> = bounds[first..]
        .iter()
        .take_while(|b| b.end < range.end)
        .copied()
        .collect();
    let mut next_bound = 0;
    while cur < range.end {
        let whole = &toks[cur..range.end];
        let hint = match clause::parse_clause(src, whole) {
            // A lone number cut off by the fallback ("what is 2 + 2 and 3") is not a request.
            Ok(p) if cur > range.start && is_trivial(&p) => None,
            Ok(parsed) => {
                out.push(Piece {
                    range: cur..range.end,
                    parsed,
                });
                return Ok(());
            }
            Err(hint) => hint,
        };
        let mut advanced = false;
        let mut attempts = 0;
        while let Some(b) = inner.get(next_bound) {
            next_bound += 1;
            if b.start <= cur {
                continue;
            }
            attempts += 1;
            if attempts > MAX_PREFIX_ATTEMPTS {
                break;
            }
            let left = &toks[cur..b.start];
            if let Ok(parsed) = clause::parse_clause(src, left)
                && !is_trivial(&parsed)
            {
                out.push(Piece {
                    range: cur..b.start,
                    parsed,
                });
                cur = b.end;
                advanced = true;
                break;
            }
        }
        if !advanced {
            if clause::is_filler(whole) {
                // Only politeness left ("..., thanks"): nothing more was asked.
                return Ok(());
            }
            return Err(diagnose::reject_unreadable(src, whole)
                .unwrap_or_else(|| crate::not_understood(display(src, whole), hint)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenize;

    fn bounds(s: &str) -> Vec<(usize, usize, bool)> {
        boundaries(&tokenize(s))
            .into_iter()
            .map(|b| (b.start, b.end, b.strong))
            .collect()
    }

    fn texts(s: &str) -> Vec<String> {
        clauses(s, &tokenize(s))
            .unwrap()
            .into_iter()
            .map(|c| c.text)
            .collect()
    }

    #[test]
    fn separator_runs() {
        assert_eq!(bounds("a, and then b"), vec![(1, 4, true)]);
        assert_eq!(bounds("a and b"), vec![(1, 2, false)]);
        assert_eq!(bounds("1,000 and 2"), vec![(3, 4, false)]);
        assert_eq!(bounds("Dr. Who; e.g. x"), vec![(3, 4, true), (7, 8, true)]);
        assert_eq!(bounds("\"a and b\" and c"), vec![(5, 6, false)]);
        assert_eq!(bounds("do it after that x"), vec![(2, 4, true)]);
        assert_eq!(bounds("1. a"), vec![]);
    }

    #[test]
    fn splits_only_before_commands() {
        assert_eq!(
            texts("Add a todo to buy milk, then show me all my tasks"),
            ["Add a todo to buy milk", "show me all my tasks"]
        );
        assert_eq!(
            texts("add a todo to buy bread and butter"),
            ["add a todo to buy bread and butter"]
        );
        assert_eq!(
            texts("what is the sum of 1, 2 and 3?"),
            ["what is the sum of 1, 2 and 3"]
        );
        assert_eq!(
            texts("list my todos and mark the first one as complete"),
            ["list my todos", "mark the first one as complete"]
        );
        assert_eq!(
            texts("what is 2 plus 2 and 3 times 3"),
            ["what is 2 plus 2", "3 times 3"]
        );
        assert_eq!(texts("list my todos, please"), ["list my todos, please"]);
    }

    #[test]
    fn names_the_part_not_understood() {
        let s = "list my todos and book a flight";
        let err = clauses(s, &tokenize(s)).unwrap_err();
        assert_eq!(err.clause.as_deref(), Some("book a flight"));
        let s = "book a flight and list my todos";
        let err = clauses(s, &tokenize(s)).unwrap_err();
        assert_eq!(err.clause.as_deref(), Some("book a flight"));
    }
}
