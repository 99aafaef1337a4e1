//! Todo phrases that complete ("mark X as done", "I finished X", "check off X") or delete
//! ("delete the todo X", "remove X from my list") a todo, and the ways such a phrase names its
//! todo: a title, an id, "it", or a position in a list ("the first one", "the last todo", "the
//! first and second ones").

use crate::numbers::{is_number_word, parse_number_words, parse_ordinal};
use crate::text::{
    Kind, Tok, clean_title, in_set, is_exactly, quoted_whole, starts_with, strip_any_prefix,
    strip_any_suffix, strip_prefix, trim_trailing_punct,
};
use crate::todo::{
    DONE_WORDS, OPEN_WORDS, SINGULAR_NOUNS, is_list_name, location_start, quoted_list, split_items,
};

/// How a complete/delete phrase names its todo.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// By title (matched case-insensitively by the runtime).
    Title(String),
    /// By id, as the user wrote it.
    Id(String),
    /// "it", "that one", "the one I just added": the todo of the latest todo step.
    Recent,
    /// "the first one", "the last todo": a position in the latest list (0-based; negative
    /// counts from the end), optionally among done (`Some(true)`) or open todos only.
    Position { index: i64, done: Option<bool> },
}

// ---- targets ---------------------------------------------------------------------------

/// Strips a trailing "from/on/in/off my (todo) list".
fn strip_location(toks: &[Tok]) -> (&[Tok], bool) {
    match location_start(toks, &["from", "on", "in", "off", "of", "onto", "to"]) {
        Some(j) if j > 0 => (&toks[..j], true),
        _ => (toks, false),
    }
}

/// "it", "that one", "the todo I just added", ...
fn is_recent(toks: &[Tok]) -> bool {
    const RECENT: &[&[&str]] = &[
        &["it"],
        &["that"],
        &["this"],
        &["that", "one"],
        &["this", "one"],
        &["that", "todo"],
        &["this", "todo"],
        &["that", "task"],
        &["this", "task"],
        &["that", "item"],
        &["the", "todo"],
        &["the", "task"],
        &["it", "too"],
        &["it", "as", "well"],
        &["the", "new", "one"],
        &["the", "new", "todo"],
        &["the", "new", "task"],
        &["the", "same", "one"],
        &["the", "same", "todo"],
    ];
    if RECENT.iter().any(|p| is_exactly(toks, p)) {
        return true;
    }
    // (the|that)? (one|todo|task|item) (that)? i (just)? (added|created|made)
    let mut i = 0;
    let w = |k: usize| toks.get(k).and_then(Tok::word);
    if w(i).is_some_and(|x| in_set(x, &["the", "that"])) {
        i += 1;
    }
    if !w(i).is_some_and(|x| x == "one" || in_set(x, SINGULAR_NOUNS)) {
        return false;
    }
    i += 1;
    if w(i) == Some("that") {
        i += 1;
    }
    if w(i) != Some("i") {
        return false;
    }
    i += 1;
    if w(i) == Some("just") {
        i += 1;
    }
    w(i).is_some_and(|x| in_set(x, &["added", "created", "made"])) && i + 1 == toks.len()
}

/// "the first one", "the last todo", "the 2nd open task", "todo number 3", "the first of
/// them": a 0-based (or negative) index and an optional done filter.
fn parse_position(toks: &[Tok]) -> Option<(i64, Option<bool>)> {
    let w = |k: usize| toks.get(k).and_then(Tok::word);
    let mut i = 0;
    if w(i).is_some_and(|x| in_set(x, &["the", "my"])) {
        i += 1;
    }
    let rest = &toks[i..];
    let numbered = |toks: &[Tok]| -> Option<(i64, usize)> {
        // "number 3", "#3", "no. 3"
        let skip = if starts_with(toks, &["number"]) || starts_with(toks, &["#"]) {
            1
        } else if starts_with(toks, &["no", "."]) {
            2
        } else {
            return None;
        };
        let t = toks.get(skip)?;
        if t.kind == Kind::Number && t.lower.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = t.lower.parse().ok()?;
            return (n >= 1).then_some((n - 1, skip + 1));
        }
        if t.word().is_some_and(is_number_word) {
            let (n, used) = parse_number_words(&toks[skip..])?;
            let n: i64 = n.parse().ok()?;
            return (n >= 1).then_some((n - 1, skip + used));
        }
        None
    };
    let (index, used) = if let Some(r) = strip_any_prefix(
        rest,
        &[
            &["second", "to", "last"],
            &["second-to-last"],
            &["penultimate"],
            &["last", "but", "one"],
            &["next", "to", "last"],
        ],
    ) {
        (-2, rest.len() - r.len())
    } else if w(i).is_some_and(|x| in_set(x, &["last", "final", "bottom"])) {
        (-1, 1)
    } else if w(i) == Some("top") {
        (0, 1)
    } else if let Some(n) = w(i)
        .and_then(|x| x.strip_suffix("-to-last"))
        .and_then(crate::numbers::ordinal_word)
    {
        (-n, 1)
    } else if let Some((n, used)) = parse_ordinal(rest) {
        // "the third to last", "the 2nd from the end"
        let after = &rest[used..];
        match strip_any_prefix(
            after,
            &[
                &["to", "last"],
                &["from", "last"],
                &["from", "the", "end"],
                &["from", "the", "bottom"],
                &["last"],
            ],
        ) {
            Some(r) => (-n, rest.len() - r.len()),
            None => (n - 1, used),
        }
    } else if let Some(found) = numbered(rest) {
        found
    } else if w(i).is_some_and(|x| in_set(x, SINGULAR_NOUNS)) {
        // "todo number 2"
        let (n, used) = numbered(&rest[1..])?;
        (n, used + 1)
    } else {
        return None;
    };
    i += used;
    let mut done = None;
    if let Some(x) = w(i) {
        if in_set(x, DONE_WORDS) {
            done = Some(true);
            i += 1;
        } else if in_set(x, OPEN_WORDS) {
            done = Some(false);
            i += 1;
        }
    }
    if w(i).is_some_and(|x| x == "one" || in_set(x, SINGULAR_NOUNS)) {
        i += 1;
    }
    // "of them", "on the list" (list nouns were stripped already), "in that list"
    let tail = &toks[i..];
    let ok = tail.is_empty()
        || [
            &["of", "them"][..],
            &["of", "those"],
            &["of", "these"],
            &["one", "of", "them"],
            &["in", "that", "list"],
            &["in", "the", "list"],
            &["on", "the", "list"],
            &["on", "that", "list"],
            &["listed"],
            &["in", "it"],
            &["on", "it"],
        ]
        .iter()
        .any(|p| is_exactly(tail, p));
    ok.then_some((index, done))
}

/// Parses what a complete/delete phrase refers to. The flag is true when the reference is
/// explicit (a pronoun, position, id, quoted title, "the todo X", or "... from my list").
pub(crate) fn parse_target(src: &str, toks: &[Tok]) -> Option<(Target, bool)> {
    let toks = trim_trailing_punct(toks);
    let (toks, located) = strip_location(toks);
    let first = toks.first()?;
    if first.word().is_some_and(|w| {
        in_set(
            w,
            &[
                "all",
                "every",
                "everything",
                "both",
                "them",
                "those",
                "these",
                "each",
                "any",
            ],
        )
    }) || is_list_name(toks)
    {
        return None;
    }
    if is_recent(toks) {
        return Some((Target::Recent, true));
    }
    if let Some((index, done)) = parse_position(toks) {
        return Some((Target::Position { index, done }, true));
    }
    // "the todo with id X", "id X"
    const ID: &[&[&str]] = &[
        &["with", "id"],
        &["with", "the", "id"],
        &["the", "todo", "with", "id"],
        &["the", "todo", "with", "the", "id"],
        &["todo", "with", "id"],
        &["the", "task", "with", "id"],
        &["task", "with", "id"],
        &["id"],
        &["the", "id"],
    ];
    if let Some(rest) = strip_any_prefix(toks, ID) {
        let rest = strip_prefix(rest, &[":"]).unwrap_or(rest);
        return clean_title(src, rest).map(|id| (Target::Id(id), true));
    }
    let mut t = toks;
    let mut explicit = located;
    let named = strip_any_prefix(
        t,
        &[
            &["the", "todo"],
            &["the", "to-do"],
            &["the", "task"],
            &["the", "item"],
            &["the", "reminder"],
            &["my", "todo"],
            &["my", "task"],
            &["todo"],
            &["to-do"],
            &["task"],
            &["item"],
        ],
    );
    if let Some(r) = named.filter(|r| !r.is_empty()) {
        t = r;
        explicit = true;
        const CALLED: &[&[&str]] = &[
            &["called"],
            &["named"],
            &["titled"],
            &["saying"],
            &[":"],
            &["-"],
            &["that", "says"],
            &["about"],
            &["for"],
            &["to"],
        ];
        if let Some(r) = strip_any_prefix(t, CALLED).filter(|r| !r.is_empty()) {
            t = r;
        }
    } else if t.len() >= 3
        && t.first().is_some_and(|x| x.is_word("the"))
        && t.last()
            .and_then(Tok::word)
            .is_some_and(|x| in_set(x, SINGULAR_NOUNS))
    {
        // "the buy milk todo"
        t = &t[1..t.len() - 1];
        explicit = true;
    }
    explicit |= quoted_whole(trim_trailing_punct(t));
    clean_title(src, t).map(|title| (Target::Title(title), explicit))
}

/// Like [`parse_target`], but also several todos at once: quoted titles (`"a" and "b"`) or
/// positions ("the first and second ones", "the first, third and last todos").
pub(crate) fn parse_targets(src: &str, toks: &[Tok]) -> Option<(Vec<Target>, bool)> {
    let body = trim_trailing_punct(toks);
    let (body, _) = strip_location(body);
    if let Some(titles) = quoted_list(src, body) {
        return Some((titles.into_iter().map(Target::Title).collect(), true));
    }
    // Lists of positions are short; long clauses skip the split (keeps parsing linear).
    let items = if body.len() <= 64 {
        split_items(body)
    } else {
        Vec::new()
    };
    if items.len() >= 2 {
        let last = items.len() - 1;
        let positions: Option<Vec<Target>> = items
            .iter()
            .enumerate()
            .map(|(k, item)| {
                // "the first and second todos": the plural noun closes the list.
                let item = match item.split_last() {
                    Some((noun, rest))
                        if k == last
                            && !rest.is_empty()
                            && noun.word().is_some_and(|w| {
                                in_set(w, &["ones", "todos", "to-dos", "tasks", "items"])
                            }) =>
                    {
                        rest
                    }
                    _ => item,
                };
                parse_position(item).map(|(index, done)| Target::Position { index, done })
            })
            .collect();
        if let Some(positions) = positions {
            return Some((positions, true));
        }
    }
    parse_target(src, toks).map(|(t, explicit)| (vec![t], explicit))
}

// ---- complete --------------------------------------------------------------------------

const DONE_END: &[&[&str]] = &[
    &["done"],
    &["complete"],
    &["completed"],
    &["finished"],
    &["resolved"],
    &["checked", "off"],
    &["ticked", "off"],
    &["checked"],
    &["off"],
];

/// Strips a trailing "(as) done" from `toks`; `None` when absent or negated ("as not done").
fn strip_done_end(toks: &[Tok]) -> Option<&[Tok]> {
    let rest = strip_any_suffix(toks, DONE_END)?;
    if rest
        .last()
        .and_then(Tok::word)
        .is_some_and(|w| in_set(w, &["not", "un", "no", "never"]))
    {
        return None;
    }
    Some(
        strip_any_suffix(
            rest,
            &[
                &["as"],
                &["to"],
                &["as", "being"],
                &["being"],
                &["as", "having", "been"],
            ],
        )
        .unwrap_or(rest),
    )
}

/// A complete phrase; the flag is true for forms that can start a new step after a plain
/// "and" ("mark X as done", "check off X", "complete it", "I finished X").
pub(crate) fn parse_complete(src: &str, toks: &[Tok]) -> Option<(Vec<Target>, bool)> {
    let w0 = toks.first()?.word()?;
    let rest = &toks[1..];
    match w0 {
        "mark" => {
            if let Some(r) = strip_prefix(rest, &["off"]) {
                return parse_targets(src, r).map(|(t, _)| (t, true));
            }
            let (mid, _) = strip_location(trim_trailing_punct(rest));
            let mid = strip_done_end(mid)?;
            parse_targets(src, mid).map(|(t, _)| (t, true))
        }
        "set" => {
            let mid = strip_done_end(trim_trailing_punct(rest))?;
            parse_targets(src, mid).map(|(t, _)| (t, true))
        }
        "check" | "tick" | "cross" | "strike" => {
            if let Some(r) = strip_prefix(rest, &["off"]) {
                return parse_targets(src, r).map(|(t, _)| (t, true));
            }
            let k = rest.iter().rposition(|t| t.is_word("off"))?;
            let after = &rest[k + 1..];
            let after_ok = after.is_empty() || is_list_name(trim_trailing_punct(after));
            if k == 0 || !after_ok {
                return None;
            }
            parse_targets(src, &rest[..k]).map(|(t, _)| (t, true))
        }
        "i" | "i've" | "ive" | "i'm" | "im" | "we" | "we've" => {
            let mut i = 0;
            while rest.get(i).and_then(Tok::word).is_some_and(|w| {
                in_set(
                    w,
                    &[
                        "have", "am", "just", "already", "now", "finally", "totally", "are",
                    ],
                )
            }) && i < 3
            {
                i += 1;
            }
            let verb = rest.get(i)?.word()?;
            if !in_set(verb, &["finished", "completed", "did", "done"]) {
                return None;
            }
            let mut r = &rest[i + 1..];
            if let Some(x) = strip_prefix(r, &["with"]) {
                r = x;
            }
            if r.first()
                .and_then(Tok::word)
                .is_some_and(|w| in_set(w, &["not", "never"]))
            {
                return None;
            }
            parse_targets(src, r).map(|(t, _)| (t, true))
        }
        "complete" | "finish" | "resolve" => parse_targets(src, rest),
        _ => {
            if let Some(r) = strip_any_prefix(toks, &[&["done", "with"], &["finished", "with"]]) {
                return parse_targets(src, r);
            }
            // "buy milk is done"
            let body = trim_trailing_punct(toks);
            let before = strip_any_suffix(
                body,
                &[
                    &["is", "done"],
                    &["is", "complete"],
                    &["is", "completed"],
                    &["is", "finished"],
                    &["is", "now", "done"],
                    &["is", "now", "complete"],
                    &["is", "all", "done"],
                    &["has", "been", "done"],
                    &["has", "been", "completed"],
                ],
            )?;
            const QUESTION: &[&str] = &[
                "what", "which", "who", "how", "is", "when", "where", "why", "nothing",
            ];
            if before
                .first()
                .and_then(Tok::word)
                .is_some_and(|w| in_set(w, QUESTION))
            {
                return None;
            }
            parse_targets(src, before)
        }
    }
}

// ---- delete ----------------------------------------------------------------------------

/// A delete phrase; the flag as for [`parse_complete`].
pub(crate) fn parse_delete(src: &str, toks: &[Tok]) -> Option<(Vec<Target>, bool)> {
    const VERBS: &[&[&str]] = &[
        &["delete"],
        &["remove"],
        &["erase"],
        &["drop"],
        &["cancel"],
        &["discard"],
        &["trash"],
        &["scrap"],
        &["clear"],
        &["get", "rid", "of"],
        &["forget", "about"],
    ];
    if let Some(rest) = strip_any_prefix(toks, VERBS) {
        let body = trim_trailing_punct(rest);
        let (inner, located) = strip_location(body);
        if !located {
            // "remove 3 from 10" is not about todos.
            let from_number = inner.windows(2).any(|w| {
                w.first().is_some_and(|a| a.is_word("from"))
                    && w.get(1).is_some_and(|b| b.kind == Kind::Number)
            });
            if from_number {
                return None;
            }
        }
        return parse_targets(src, body);
    }
    if toks.first().is_some_and(|t| t.is_word("take")) {
        let body = trim_trailing_punct(&toks[1..]);
        let (inner, located) = strip_location(body);
        if !located {
            return None;
        }
        let inner = strip_any_suffix(inner, &[&["off"], &["out", "of"]]).unwrap_or(inner);
        return parse_targets(src, inner).map(|(t, _)| (t, true));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenize;

    fn single(found: Option<(Vec<Target>, bool)>) -> Option<(Target, bool)> {
        found.and_then(|(mut t, strong)| (t.len() == 1).then(|| (t.remove(0), strong)))
    }

    fn complete(s: &str) -> Option<(Target, bool)> {
        single(parse_complete(s, &tokenize(s)))
    }

    fn delete(s: &str) -> Option<(Target, bool)> {
        single(parse_delete(s, &tokenize(s)))
    }

    fn t(s: &str) -> Target {
        Target::Title(s.to_owned())
    }

    #[test]
    fn complete_forms() {
        assert_eq!(
            complete("mark buy milk as done"),
            Some((t("buy milk"), true))
        );
        assert_eq!(
            complete("mark buy milk complete"),
            Some((t("buy milk"), true))
        );
        assert_eq!(complete("mark buy milk as not done"), None);
        assert_eq!(
            complete("complete the todo buy milk"),
            Some((t("buy milk"), true))
        );
        assert_eq!(complete("complete buy milk"), Some((t("buy milk"), false)));
        assert_eq!(complete("I finished buy milk"), Some((t("buy milk"), true)));
        assert_eq!(
            complete("I've finished buy milk"),
            Some((t("buy milk"), true))
        );
        assert_eq!(complete("check off buy milk"), Some((t("buy milk"), true)));
        assert_eq!(
            complete("cross buy milk off my list"),
            Some((t("buy milk"), true))
        );
        assert_eq!(complete("mark it done"), Some((Target::Recent, true)));
        assert_eq!(
            complete("mark the first one as complete"),
            Some((
                Target::Position {
                    index: 0,
                    done: None
                },
                true
            ))
        );
        assert_eq!(
            complete("complete the last open todo"),
            Some((
                Target::Position {
                    index: -1,
                    done: Some(false)
                },
                true
            ))
        );
        assert_eq!(complete("buy milk is done"), Some((t("buy milk"), false)));
        assert_eq!(complete("what is done"), None);
        assert_eq!(complete("complete all my todos"), None);
        assert_eq!(
            complete("complete the todo with id abc-1"),
            Some((Target::Id("abc-1".into()), true))
        );
    }

    #[test]
    fn delete_forms() {
        assert_eq!(
            delete("delete the todo buy milk"),
            Some((t("buy milk"), true))
        );
        assert_eq!(
            delete("remove buy milk from my list"),
            Some((t("buy milk"), true))
        );
        assert_eq!(delete("delete buy milk"), Some((t("buy milk"), false)));
        assert_eq!(delete("remove 3 from 10"), None);
        assert_eq!(
            delete("take buy milk off my list"),
            Some((t("buy milk"), true))
        );
        assert_eq!(delete("delete it"), Some((Target::Recent, true)));
        assert_eq!(
            delete("delete the second to last one"),
            Some((
                Target::Position {
                    index: -2,
                    done: None
                },
                true
            ))
        );
        assert_eq!(
            delete("delete todo number 3"),
            Some((
                Target::Position {
                    index: 2,
                    done: None
                },
                true
            ))
        );
        assert_eq!(delete("clear my list"), None);
        assert_eq!(
            delete("delete the buy milk todo"),
            Some((t("buy milk"), true))
        );
    }
}
