//! One clause → one command (which may add or target several todos): strips politeness and
//! sequencing words ("please", "can you", "then", "first,"), list bullets and trailing
//! punctuation, then tries each phrase family in a fixed order (list, explicit add, complete,
//! delete, arithmetic, bare "add X").

use crate::arithmetic;
use crate::expr::Expr;
use crate::target::{self, Target};
use crate::text::{
    Kind, Tok, ends_with, is_exactly, is_trailing_punct, strip_any_prefix, trim_trailing_punct,
};
use crate::todo::{self, AddParse};

/// What one clause asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Calc(Expr),
    Add(Vec<String>),
    List(Option<bool>),
    Complete(Vec<Target>),
    Delete(Vec<Target>),
}

/// A parsed clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    pub(crate) cmd: Command,
    /// Whether the clause is unambiguous enough to start a new step after a plain "and" or
    /// comma (weak clauses only split after "then", ";", a sentence end or a line break, and
    /// never out of an open title: see `split`).
    pub(crate) strong: bool,
    /// An add clause whose (last) title runs to the clause's end (see `todo::Titles::open`).
    pub(crate) open_title: bool,
}

impl Parsed {
    fn new(cmd: Command, strong: bool) -> Self {
        Parsed {
            cmd,
            strong,
            open_title: false,
        }
    }

    fn add(titles: todo::Titles) -> Self {
        Parsed {
            cmd: Command::Add(titles.list),
            strong: true,
            open_title: titles.open,
        }
    }
}

/// A hint added to a "could not understand" message.
pub(crate) type Hint = Option<&'static str>;

const COURTESY: &[&[&str]] = &[
    &["please"],
    &["pls"],
    &["plz"],
    &["kindly"],
    &["can", "you"],
    &["could", "you"],
    &["would", "you"],
    &["will", "you"],
    &["can", "u"],
    &["could", "u"],
    &["would", "you", "mind"],
    &["i", "want", "you", "to"],
    &["i", "need", "you", "to"],
    &["i'd", "like", "you", "to"],
    &["i", "would", "like", "you", "to"],
    &["i", "want", "to"],
    &["i", "want", "to", "know"],
    &["i'd", "like", "to", "know"],
    &["i", "would", "like", "to", "know"],
    &["i'd", "like", "to"],
    &["i", "would", "like", "to"],
    &["i", "wanna"],
    &["let's"],
    &["lets"],
    &["let", "us"],
    &["go", "ahead", "and"],
    &["now"],
    &["ok"],
    &["okay"],
    &["hey"],
    &["hi"],
    &["hello"],
    &["crane"],
    &["also"],
    &["and"],
    &["then"],
    &["next"],
    &["finally"],
    &["lastly"],
    &["afterwards"],
    &["afterward"],
    &["after", "that"],
    &["first"],
    &["firstly"],
    &["first", "of", "all"],
    &["secondly"],
    &["just"],
    &["oh"],
    &["so"],
    &["&"],
];

/// Most politeness words stripped from either end of a clause.
const MAX_ROUNDS: usize = 8;

/// Strips leading bullets/numbering and politeness words, trailing punctuation and a
/// trailing "please" / ", thanks".
pub(crate) fn normalize(toks: &[Tok]) -> &[Tok] {
    let mut t = toks;
    // "- add ...", "* add ...", "1. add ...", "2) add ..."
    if let (Some(a), Some(b)) = (t.first(), t.get(1)) {
        if matches!(a.kind, Kind::Sym('-' | '*' | '\u{2022}' | '>')) && b.kind == Kind::Word {
            t = &t[1..];
        } else if a.kind == Kind::Number
            && a.lower.bytes().all(|c| c.is_ascii_digit())
            && matches!(b.kind, Kind::Sym('.' | ')'))
            && t.get(2).is_some_and(|c| c.kind == Kind::Word)
        {
            t = &t[2..];
        }
    }
    // A few rounds at most: real prompts never stack more, and a cap keeps adversarial
    // "please and please and ..." linear.
    for _ in 0..MAX_ROUNDS {
        let Some(rest) = strip_any_prefix(t, COURTESY) else {
            break;
        };
        if rest.is_empty() {
            break;
        }
        t = rest;
        while t
            .first()
            .is_some_and(|x| matches!(x.kind, Kind::Sym(',' | ':')))
        {
            t = &t[1..];
        }
    }
    for _ in 0..MAX_ROUNDS {
        let before = t.len();
        t = trim_end(t);
        if ends_with(t, &["please"]) && t.len() > 1 {
            t = &t[..t.len() - 1];
        }
        for thanks in [&["thanks"][..], &["thank", "you"], &["thx"], &["ty"]] {
            let n = thanks.len();
            // "say thank you" / "send thanks" keep their words.
            let keep = t
                .len()
                .checked_sub(n + 1)
                .and_then(|k| t.get(k))
                .and_then(Tok::word)
                .is_some_and(|w| THANKS_OBJECT_OF.contains(&w));
            if ends_with(t, thanks) && t.len() > n && !keep {
                t = &t[..t.len() - n];
            }
        }
        if t.len() == before {
            break;
        }
    }
    t
}

/// Words after which a trailing "thanks"/"thank you" is part of the request, not politeness.
const THANKS_OBJECT_OF: &[&str] = &[
    "say", "send", "write", "a", "my", "the", "to", "give", "express", "saying", "sending",
    "writing", "our", "big",
];

/// Trailing sentence punctuation, except a `!` glued to a number ("5!" is a factorial,
/// which crane cannot do, so it must not silently become "5").
fn trim_end(toks: &[Tok]) -> &[Tok] {
    let mut t = trim_trailing_punct(toks);
    while let Some(bang) = toks.get(t.len()) {
        let glued_to_number = bang.is_sym('!')
            && t.last()
                .is_some_and(|n| n.kind == Kind::Number && n.end == bang.start);
        if !glued_to_number {
            break;
        }
        t = &toks[..t.len() + 1];
    }
    t
}

/// True when the clause is only politeness or sequencing words ("hey crane", "thanks", "ok").
pub(crate) fn is_filler(toks: &[Tok]) -> bool {
    let mut t = trim_trailing_punct(toks);
    for _ in 0..MAX_ROUNDS {
        if t.is_empty() {
            return true;
        }
        if is_exactly(t, &["thanks"]) || is_exactly(t, &["thank", "you"]) || is_exactly(t, &["thx"])
        {
            return true;
        }
        match strip_any_prefix(t, COURTESY) {
            Some(rest) => t = trim_trailing_punct(rest),
            None => break,
        }
        while t
            .first()
            .is_some_and(|x| matches!(x.kind, Kind::Sym(',' | ':')))
        {
            t = &t[1..];
        }
    }
    t.is_empty()
}

/// Parses one clause; `Err` carries an optional hint for the rejection message.
pub(crate) fn parse_clause(src: &str, toks: &[Tok]) -> Result<Parsed, Hint> {
    let t = normalize(toks);
    if t.is_empty() || t.iter().all(is_trailing_punct) {
        return Err(None);
    }
    if let Some(filter) = todo::parse_list(t) {
        return Ok(Parsed::new(Command::List(filter), true));
    }
    match todo::parse_add(src, t) {
        Some(AddParse::Titles(titles)) => return Ok(Parsed::add(titles)),
        Some(AddParse::NoTitle) => {
            return Err(Some(
                " The todo needs a title, e.g. \"add a todo to buy milk\".",
            ));
        }
        None => {}
    }
    if let Some((target, strong)) = target::parse_complete(src, t) {
        return Ok(Parsed::new(Command::Complete(target), strong));
    }
    if let Some((target, strong)) = target::parse_delete(src, t) {
        return Ok(Parsed::new(Command::Delete(target), strong));
    }
    if let Some(a) = arithmetic::parse(t) {
        return Ok(Parsed::new(Command::Calc(a.expr), a.strong));
    }
    if let Some(titles) = todo::parse_add_bare(src, t) {
        return Ok(Parsed::add(titles));
    }
    Err(hint_for(t))
}

/// First words of every command form that can be strong (see [`Parsed::strong`]). A clause
/// after a plain "and" or comma that starts with anything else cannot start a new step, so
/// the splitter does not parse it at all.
const STRONG_STARTERS: &[&str] = &[
    // todo_list
    "show",
    "list",
    "display",
    "view",
    "see",
    "print",
    "get",
    "give",
    "fetch",
    "read",
    "tell",
    "check",
    "review",
    "pull",
    "bring",
    "let",
    "can",
    "how",
    "count",
    "do",
    "have",
    "what",
    "which",
    "what's",
    "whats",
    "what're",
    "my",
    "our",
    "the",
    "all",
    "open",
    "pending",
    "incomplete",
    "unfinished",
    "remaining",
    "outstanding",
    "active",
    "completed",
    "done",
    "finished",
    "closed",
    "current",
    "todos",
    "todo",
    "to-dos",
    "to-do",
    "tasks",
    "task",
    "item",
    "items",
    "todo-list",
    "to-do-list",
    "checklist",
    "reminders",
    "entries",
    "everything",
    "things",
    // todo_add
    "add",
    "create",
    "make",
    "set",
    "put",
    "insert",
    "save",
    "log",
    "record",
    "new",
    "remind",
    "don't",
    "dont",
    "remember",
    "another",
    "i",
    "note",
    // todo_complete / todo_delete
    "mark",
    "tick",
    "cross",
    "strike",
    "i've",
    "ive",
    "i'm",
    "im",
    "we",
    "we've",
    "complete",
    "finish",
    "resolve",
    "it",
    "that",
    "this",
    "first",
    "second",
    "third",
    "last",
    "delete",
    "remove",
    "erase",
    "drop",
    "cancel",
    "discard",
    "trash",
    "scrap",
    "clear",
    "forget",
    "take",
    // calculator
    "calculate",
    "calc",
    "compute",
    "evaluate",
    "eval",
    "solve",
    "work",
    "figure",
    "find",
    "determine",
    "result",
    "value",
    "answer",
    "i'd",
    "subtract",
    "multiply",
    "divide",
    "square",
    "cube",
    "halve",
    "negate",
    "raise",
    "increase",
    "decrease",
    "reduce",
];

/// Cheap pre-check for the splitter: false when the clause cannot be a strong command.
pub(crate) fn may_be_strong(toks: &[Tok]) -> bool {
    normalize(toks)
        .first()
        .and_then(Tok::word)
        .is_some_and(|w| STRONG_STARTERS.contains(&w))
}

/// True when the clause starts with a complete or delete verb.
pub(crate) fn starts_with_target_verb(toks: &[Tok]) -> bool {
    const VERBS: &[&str] = &[
        "complete", "finish", "resolve", "mark", "check", "tick", "cross", "strike", "delete",
        "remove", "erase", "drop", "cancel", "discard", "trash", "scrap", "get", "forget", "take",
    ];
    normalize(toks)
        .first()
        .and_then(Tok::word)
        .is_some_and(|w| VERBS.contains(&w))
}

/// A hint for common near-misses.
fn hint_for(t: &[Tok]) -> Hint {
    let first = t.first().and_then(Tok::word)?;
    let all = t.iter().take(8).any(|x| {
        x.word().is_some_and(|w| {
            matches!(
                w,
                "all" | "every" | "everything" | "both" | "list" | "todos" | "tasks"
            )
        })
    });
    match first {
        "complete" | "finish" | "delete" | "remove" | "clear" | "empty" | "mark" | "check"
            if all =>
        {
            Some(
                " crane completes or deletes one todo per step; name each todo (or say \"the first one\" after listing).",
            )
        }
        "mark" | "set" => Some(
            " To complete a todo say e.g. \"mark buy milk as done\" (marking a todo as not done is not supported).",
        ),
        _ => None,
    }
}

/// The clause text to quote in messages: its span without trailing punctuation (or the raw
/// span if that would leave nothing).
pub(crate) fn display<'s>(src: &'s str, toks: &[Tok]) -> &'s str {
    let trimmed = trim_end(toks);
    let shown = if trimmed.is_empty() { toks } else { trimmed };
    crate::text::span(src, shown).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenize;

    fn parse(s: &str) -> Result<Parsed, Hint> {
        parse_clause(s, &tokenize(s))
    }

    #[test]
    fn politeness_and_numbering_are_ignored() {
        let p = parse("Could you please show me my todos, thanks!").unwrap();
        assert_eq!(p.cmd, Command::List(None));
        let p = parse("1. add a todo to buy milk").unwrap();
        assert_eq!(p.cmd, Command::Add(vec!["buy milk".into()]));
        let p = parse("- list my todos").unwrap();
        assert_eq!(p.cmd, Command::List(None));
        let p = parse("then, calculate 2+2 please").unwrap();
        assert!(matches!(p.cmd, Command::Calc(_)) && p.strong);
    }

    #[test]
    fn families_are_tried_in_order() {
        assert_eq!(
            parse("add 2 and 3").unwrap().cmd,
            Command::Calc(arithmetic::parse(&tokenize("2 + 3")).unwrap().expr)
        );
        assert_eq!(
            parse("add milk and eggs").unwrap().cmd,
            Command::Add(vec!["milk and eggs".into()])
        );
        assert_eq!(
            parse("add 2 apples to my list").unwrap().cmd,
            Command::Add(vec!["2 apples".into()])
        );
        assert!(parse("book a flight").is_err());
        assert!(parse("?").is_err());
        assert!(parse("add a todo").unwrap_err().is_some());
    }
}
