//! Todo phrases that add ("add a todo to X", "remind me to X", "add X to my list", "add
//! todos: a, b and c") and list ("show my completed todos", "what's on my list"), plus the todo
//! vocabulary and title helpers shared with `target` (complete and delete phrases).
//!
//! Titles are cut from the prompt by byte span, so they keep the user's exact text. A title
//! that runs to the end of its clause (not quoted, not followed by "to my list") is *open*:
//! the splitter may extend it over punctuation that does not start a clear command (see
//! `split`).

use crate::text::{
    Kind, Tok, clean_title, ends_with, in_set, is_exactly, quoted_whole, strip_any_prefix,
    strip_prefix, trim_trailing_punct,
};

/// The titles of an add phrase.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Titles {
    /// One title, or several for `add "a" and "b"` / "add todos: a, b and c".
    pub(crate) list: Vec<String>,
    /// The last title runs to the end of the clause: not quoted and not followed by a "to my
    /// list" phrase, so text after the clause could still belong to it.
    pub(crate) open: bool,
}

/// The result of trying the explicit add forms.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AddParse {
    /// The phrase's titles.
    Titles(Titles),
    /// The phrase is an add command but has no title ("add a todo").
    NoTitle,
}

const TODO_NOUNS: &[&str] = &[
    "todo",
    "to-do",
    "task",
    "item",
    "reminder",
    "todos",
    "to-dos",
    "tasks",
    "items",
    "reminders",
    "entry",
];
pub(crate) const LIST_NOUNS: &[&str] = &[
    "list",
    "todos",
    "to-dos",
    "tasks",
    "reminders",
    "todo-list",
    "to-do-list",
    "checklist",
    "tasklist",
    "todolist",
];
/// Singular todo nouns ("the todo X", "another task").
pub(crate) const SINGULAR_NOUNS: &[&str] = &["todo", "to-do", "task", "item", "reminder", "entry"];
pub(crate) const OWNERS: &[&str] = &["my", "the", "our", "your"];

/// Index where a trailing "to/on/from my (todo) list" phrase starts, if `toks` ends with one.
/// `preps` are the prepositions accepted before it.
pub(crate) fn location_start(toks: &[Tok], preps: &[&str]) -> Option<usize> {
    let mut j = toks.len();
    let last = toks.get(j.checked_sub(1)?)?.word()?;
    if !in_set(last, LIST_NOUNS) {
        return None;
    }
    j -= 1;
    let word_at = |k: usize| toks.get(k).and_then(Tok::word);
    if j >= 2 && word_at(j - 2) == Some("to") && word_at(j - 1) == Some("do") {
        j -= 2;
    } else if j >= 1 && word_at(j - 1).is_some_and(|w| in_set(w, &["todo", "to-do", "task"])) {
        j -= 1;
    }
    if j >= 1 && word_at(j - 1).is_some_and(|w| in_set(w, OWNERS)) {
        j -= 1;
    }
    if j >= 1 && word_at(j - 1).is_some_and(|w| in_set(w, preps)) {
        j -= 1;
        if word_at(j) == Some("of") && j >= 1 && word_at(j - 1) == Some("out") {
            j -= 1;
        }
        return Some(j);
    }
    None
}

/// True when `toks` is only a name for the list itself ("my list", "the todo list", "todos").
pub(crate) fn is_list_name(toks: &[Tok]) -> bool {
    let words: Vec<&str> = toks.iter().filter_map(Tok::word).collect();
    words.len() == toks.len()
        && !words.is_empty()
        && words.last().is_some_and(|w| in_set(w, LIST_NOUNS))
        && words.iter().all(|w| {
            in_set(w, LIST_NOUNS)
                || in_set(w, OWNERS)
                || in_set(
                    w,
                    &[
                        "todo", "to-do", "task", "entire", "whole", "full", "all", "of",
                    ],
                )
        })
}

// ---- add -------------------------------------------------------------------------------

const ADD_LOCATION_PREPS: &[&str] = &["to", "on", "onto", "in", "into"];

/// Titles from `toks` with a trailing "to my list" removed; `None` if empty. Several quoted
/// titles joined by commas/"and" are separate todos; so are comma/"and" separated titles
/// after a plural keyword ("add todos: a, b and c").
fn add_titles(src: &str, toks: &[Tok], plural: bool) -> Option<Titles> {
    let toks = trim_trailing_punct(toks);
    match location_start(toks, &["to", "on", "onto"]) {
        Some(j) if j > 0 => titles(src, &toks[..j], plural).map(closed),
        _ => titles(src, toks, plural),
    }
}

/// `t`, marked as not open (a "to my list" phrase ends it).
fn closed(t: Titles) -> Titles {
    Titles { open: false, ..t }
}

/// One or more titles (see [`add_titles`]) from `toks`.
fn titles(src: &str, toks: &[Tok], plural: bool) -> Option<Titles> {
    if let Some(list) = quoted_list(src, toks) {
        return Some(Titles { list, open: false });
    }
    if plural {
        let items = split_items(toks);
        let open = items
            .last()
            .is_some_and(|last| !quoted_whole(trim_trailing_punct(last)));
        let list: Vec<String> = items
            .into_iter()
            .filter_map(|item| clean_title(src, item))
            .collect();
        if !list.is_empty() {
            return Some(Titles { list, open });
        }
    }
    let open = !quoted_whole(trim_trailing_punct(toks));
    clean_title(src, toks).map(|t| Titles {
        list: vec![t],
        open,
    })
}

/// Splits `toks` at unquoted commas and "and"/"&" (", and" counts once).
pub(crate) fn split_items(toks: &[Tok]) -> Vec<&[Tok]> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let sep = !t.quoted && (t.is_sym(',') || t.is_sym('&') || t.is_word("and"));
        if sep {
            items.push(&toks[start..i]);
            i += 1;
            while toks
                .get(i)
                .is_some_and(|n| n.is_word("and") || n.is_sym(','))
            {
                i += 1;
            }
            start = i;
        } else {
            i += 1;
        }
    }
    items.push(&toks[start..]);
    items.retain(|item| !item.is_empty());
    items
}

/// `"a", "b" and "c"`: two or more quoted strings joined by commas, "and" or "&".
pub(crate) fn quoted_list(src: &str, toks: &[Tok]) -> Option<Vec<String>> {
    let mut items = Vec::new();
    let mut i = 0;
    loop {
        let open = toks.get(i)?;
        let Kind::Sym(c) = open.kind else { return None };
        let close = crate::text::closing_quote(c)?;
        let mut j = i + 1;
        while toks.get(j).is_some_and(|t| t.quoted) {
            j += 1;
        }
        let end = toks.get(j)?;
        if !end.is_sym(close) || j == i + 1 {
            return None;
        }
        let text = src.get(open.end..end.start)?.trim();
        if text.is_empty() {
            return None;
        }
        items.push(text.to_owned());
        i = j + 1;
        if i >= toks.len() {
            break;
        }
        let mut seps = 0;
        while toks
            .get(i)
            .is_some_and(|t| t.is_sym(',') || t.is_sym('&') || t.is_word("and"))
        {
            i += 1;
            seps += 1;
        }
        if seps == 0 {
            return None;
        }
    }
    (items.len() >= 2).then_some(items)
}

fn to_add(titles: Option<Titles>) -> AddParse {
    titles.map_or(AddParse::NoTitle, AddParse::Titles)
}

/// The explicit add forms: "add a todo to X", "add todo X", "add a task: X", "create a todo
/// called X", "new todo: X", "remind me to X", "add X to my list", "put X on my list".
pub(crate) fn parse_add(src: &str, toks: &[Tok]) -> Option<AddParse> {
    const REMIND: &[&[&str]] = &[
        &["remind", "me", "to"],
        &["remind", "me", "about"],
        &["remind", "me", "of"],
        &["don't", "forget", "to"],
        &["dont", "forget", "to"],
        &["do", "not", "forget", "to"],
        &["don't", "let", "me", "forget", "to"],
        &["dont", "let", "me", "forget", "to"],
        &["remember", "to"],
        &["i", "need", "to", "remember", "to"],
        &["note", "to", "self"],
    ];
    if let Some(rest) = strip_any_prefix(toks, REMIND) {
        let rest = strip_prefix(rest, &[":"]).unwrap_or(rest);
        return Some(to_add(add_titles(src, rest, false)));
    }
    // "... and another one to buy eggs"
    if let Some(rest) = strip_any_prefix(toks, &[&["another"], &["add", "another"]]) {
        let rest = match rest.first().and_then(Tok::word) {
            Some(w) if w == "one" || in_set(w, SINGULAR_NOUNS) => &rest[1..],
            _ => rest,
        };
        let rest = strip_any_prefix(rest, &[&[":"], &["to"], &["called"], &["named"], &["-"]])
            .unwrap_or(rest);
        return Some(to_add(add_titles(src, rest, false)));
    }
    let first = toks.first()?.word()?;
    let verb = in_set(
        first,
        &[
            "add", "create", "make", "set", "put", "insert", "save", "log", "record",
        ],
    );
    // "add to my list: X", "add to my todos X"
    if verb && let Some(j) = location_prefix_len(&toks[1..]) {
        let rest = &toks[1 + j..];
        let rest = strip_prefix(rest, &[":"]).unwrap_or(rest);
        return Some(to_add(add_titles(src, rest, false)));
    }
    if let Some(parse) = keyword_add(src, toks, verb) {
        return Some(parse);
    }
    // "add X to my list", "put X on the todo list"
    if verb
        && first != "set"
        && let Some(j) = location_start(toks, ADD_LOCATION_PREPS)
        && j > 1
    {
        return titles(src, &toks[1..j], false).map(|t| AddParse::Titles(closed(t)));
    }
    None
}

/// Length of a leading "to my (todo) list" phrase.
fn location_prefix_len(toks: &[Tok]) -> Option<usize> {
    let w = |k: usize| toks.get(k).and_then(Tok::word);
    if !w(0).is_some_and(|p| in_set(p, ADD_LOCATION_PREPS)) {
        return None;
    }
    let mut k = 1;
    if w(k).is_some_and(|o| in_set(o, OWNERS)) {
        k += 1;
    }
    if w(k) == Some("to") && w(k + 1) == Some("do") {
        k += 2;
    } else if w(k).is_some_and(|n| in_set(n, &["todo", "to-do", "task"])) {
        k += 1;
    }
    w(k).is_some_and(|n| in_set(n, LIST_NOUNS)).then_some(k + 1)
}

/// "add (a|another|new) todo (item) (to my list) (:|to|called|...) TITLE", "new todo: X",
/// "todo: X".
fn keyword_add(src: &str, toks: &[Tok], verb: bool) -> Option<AddParse> {
    const ARTICLES: &[&str] = &[
        "a",
        "an",
        "another",
        "the",
        "new",
        "one",
        "more",
        "quick",
        "two",
        "three",
        "four",
        "five",
        "six",
        "some",
        "several",
        "these",
        "following",
        "few",
    ];
    const CONNECTORS: &[&[&str]] = &[
        &[":"],
        &["-"],
        &["\u{2013}"],
        &["\u{2014}"],
        &["="],
        &["to"],
        &["called"],
        &["named"],
        &["titled"],
        &["entitled"],
        &["saying"],
        &["that", "says"],
        &["which", "says"],
        &["reading"],
        &["for"],
        &["about"],
        &["with", "the", "title"],
        &["with", "title"],
    ];
    let mut i = usize::from(verb);
    let mut articles = 0;
    while toks
        .get(i)
        .and_then(Tok::word)
        .is_some_and(|w| in_set(w, ARTICLES))
    {
        i += 1;
        articles += 1;
    }
    let noun_len = match (
        toks.get(i).and_then(Tok::word),
        toks.get(i + 1).and_then(Tok::word),
    ) {
        (Some("to"), Some("do")) if articles > 0 => 2,
        (Some(n), _) if in_set(n, TODO_NOUNS) => 1,
        _ => return None,
    };
    let plural = noun_len == 1
        && toks
            .get(i)
            .and_then(Tok::word)
            .is_some_and(|n| in_set(n, &["todos", "to-dos", "tasks", "items", "reminders"]));
    if !verb {
        // Without a verb only "new todo X", "todo: X" and "todo X" are commands.
        let starts_new = toks.first().is_some_and(|t| t.is_word("new"));
        let colon = toks.get(i + noun_len).is_some_and(|t| t.is_sym(':'));
        let bare_todo = i == 0
            && toks
                .first()
                .is_some_and(|t| t.is_word("todo") || t.is_word("to-do"))
            && !toks
                .get(1)
                .and_then(Tok::word)
                .is_some_and(|w| in_set(w, LIST_NOUNS));
        if !(starts_new || colon || bare_todo) {
            return None;
        }
    }
    i += noun_len;
    if toks.get(i).is_some_and(|t| t.is_word("item")) {
        i += 1;
    }
    if let Some(j) = location_prefix_len(&toks[i..]) {
        i += j;
    }
    let rest = &toks[i..];
    let (rest, connected) = match strip_any_prefix(rest, CONNECTORS) {
        Some(r) => (r, true),
        None => (rest, false),
    };
    if verb && articles == 0 && !connected && location_start(toks, ADD_LOCATION_PREPS).is_some() {
        // "add task force meeting to my list": the noun belongs to the title.
        return None;
    }
    Some(to_add(add_titles(src, rest, plural)))
}

/// The bare form "add X" (tried after arithmetic, so "add 2 and 3" is a sum). Rejects "add
/// X to my calendar" and pronouns.
pub(crate) fn parse_add_bare(src: &str, toks: &[Tok]) -> Option<Titles> {
    let rest = strip_prefix(toks, &["add"])?;
    let rest = trim_trailing_punct(rest);
    let n = rest.len();
    let w = |k: usize| rest.get(k).and_then(Tok::word);
    for back in [3, 4] {
        if n >= back
            && w(n - back).is_some_and(|p| in_set(p, &["to", "on", "onto", "into", "in"]))
            && w(n - back + 1).is_some_and(|o| in_set(o, OWNERS))
        {
            return None;
        }
    }
    // "add 2" or "add 2 + 2" is an incomplete sum, not a todo titled "2".
    let numeric = rest.iter().all(|t| t.kind != Kind::Word);
    if numeric
        || rest.first().is_some_and(|t| t.is_word("to"))
        || is_exactly(rest, &["it"])
        || is_exactly(rest, &["that"])
        || is_exactly(rest, &["this"])
        || is_exactly(rest, &["them"])
    {
        return None;
    }
    titles(src, rest, false)
}

// ---- list ------------------------------------------------------------------------------

pub(crate) const DONE_WORDS: &[&str] = &[
    "completed",
    "complete",
    "done",
    "finished",
    "closed",
    "checked",
    "ticked",
    "resolved",
];
pub(crate) const OPEN_WORDS: &[&str] = &[
    "open",
    "pending",
    "incomplete",
    "unfinished",
    "remaining",
    "outstanding",
    "active",
    "undone",
    "uncompleted",
    "unchecked",
    "left",
    "unresolved",
    "uncomplete",
];

/// A list request; `Some(filter)` where the filter is `Some(true)` for done todos,
/// `Some(false)` for open ones.
pub(crate) fn parse_list(toks: &[Tok]) -> Option<Option<bool>> {
    const VERBS: &[&[&str]] = &[
        &["show"],
        &["list"],
        &["display"],
        &["view"],
        &["see"],
        &["print"],
        &["get"],
        &["give"],
        &["fetch"],
        &["read"],
        &["tell"],
        &["check"],
        &["review"],
        &["pull", "up"],
        &["bring", "up"],
        &["let", "me", "see"],
        &["can", "i", "see"],
        &["how", "many"],
        &["count"],
        &["do", "i", "have"],
        &["have", "i", "got"],
    ];
    const QUESTIONS: &[&[&str]] = &[
        &["what"],
        &["which"],
        &["what", "are"],
        &["what're"],
        &["which", "are"],
        &["what's"],
        &["whats"],
        &["what", "is"],
        &["what", "remains"],
    ];
    const FILLER: &[&str] = &[
        "me",
        "us",
        "all",
        "of",
        "my",
        "our",
        "the",
        "every",
        "entire",
        "whole",
        "full",
        "current",
        "currently",
        "please",
        "now",
        "again",
        "that",
        "which",
        "are",
        "is",
        "i",
        "have",
        "i've",
        "ive",
        "still",
        "already",
        "yet",
        "been",
        "being",
        "marked",
        "as",
        "to",
        "do",
        "got",
        "there",
        "in",
        "on",
        "so",
        "far",
        "any",
        "some",
        "and",
        "or",
        "both",
        "your",
        "with",
        "you",
        "just",
        "for",
        "mine",
        "here",
        "right",
        "they",
        "were",
        "was",
        "has",
        "need",
        "stuff",
        "that's",
        "what",
    ];
    const NEGATIONS: &[&str] = &[
        "not", "haven't", "havent", "hasn't", "isn't", "aren't", "arent", "don't", "didn't",
        "never",
    ];
    const NOUNS: &[&str] = &[
        "todos",
        "todo",
        "to-dos",
        "to-do",
        "tasks",
        "task",
        "item",
        "items",
        "list",
        "todo-list",
        "to-do-list",
        "checklist",
        "reminders",
        "entries",
        "everything",
        "things",
        "them",
        "those",
        "these",
        "ones",
    ];
    const VERBLESS_START: &[&str] = &[
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
    ];
    if is_exactly(toks, &["list"]) || is_exactly(toks, &["show", "list"]) {
        return Some(None);
    }
    let (rest, question, verb) = if let Some(r) = strip_any_prefix(toks, QUESTIONS) {
        (r, true, false)
    } else if let Some(r) = strip_any_prefix(toks, VERBS) {
        (r, false, true)
    } else {
        let first = toks.first()?.word()?;
        if !(in_set(first, VERBLESS_START) || in_set(first, NOUNS)) {
            return None;
        }
        (toks, false, false)
    };
    let (mut noun, mut done, mut open, mut negated) = (false, false, false, false);
    for t in rest {
        let w = t.word()?;
        if in_set(w, NOUNS) {
            noun = true;
        } else if in_set(w, DONE_WORDS) {
            done = true;
        } else if in_set(w, OPEN_WORDS) {
            open = true;
        } else if in_set(w, NEGATIONS) {
            negated = true;
        } else if !in_set(w, FILLER) {
            return None;
        }
    }
    let filter = match (done, open || negated && done) {
        (true, true) if !negated => None,
        (_, true) => Some(false),
        (true, false) => Some(true),
        (false, false) => None,
    };
    if noun {
        return Some(filter);
    }
    // Noun-less: "what's left?", "what have I completed?", "show me what I've finished".
    if filter.is_some() && (question || verb) {
        return Some(filter);
    }
    if question && ends_with(rest, &["to", "do"]) && rest.iter().any(|t| t.is_word("i")) {
        return Some(Some(false));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenize;

    fn add(s: &str) -> Option<AddParse> {
        parse_add(s, &tokenize(s))
    }

    fn title(s: &str) -> Option<String> {
        match add(s) {
            Some(AddParse::Titles(t)) if t.list.len() == 1 => t.list.into_iter().next(),
            _ => None,
        }
    }

    fn list(s: &str) -> Option<Option<bool>> {
        parse_list(&tokenize(s))
    }

    #[test]
    fn add_forms() {
        assert_eq!(title("add a todo to buy milk").unwrap(), "buy milk");
        assert_eq!(title("add todo 2 apples").unwrap(), "2 apples");
        assert_eq!(title("add a task: call mom").unwrap(), "call mom");
        assert_eq!(title("remind me to call mom").unwrap(), "call mom");
        assert_eq!(title("add buy eggs to my list").unwrap(), "buy eggs");
        assert_eq!(title("add buy eggs to my todo list").unwrap(), "buy eggs");
        assert_eq!(title("add buy eggs to my todos").unwrap(), "buy eggs");
        assert_eq!(title("create a todo called Pay Rent").unwrap(), "Pay Rent");
        assert_eq!(title("new todo: X").unwrap(), "X");
        assert_eq!(title("todo: water plants").unwrap(), "water plants");
        assert_eq!(title("add to my list: eggs").unwrap(), "eggs");
        assert_eq!(title("put milk on the list").unwrap(), "milk");
        assert_eq!(
            title("add task force meeting to my list").unwrap(),
            "task force meeting"
        );
        assert_eq!(title("add a todo \"Buy Milk\"").unwrap(), "Buy Milk");
        assert_eq!(
            title("add a to do to water plants").unwrap(),
            "water plants"
        );
        assert_eq!(add("add a todo"), Some(AddParse::NoTitle));
        assert_eq!(add("add eggs"), None);
        assert_eq!(add("todo list"), None);
    }

    #[test]
    fn open_titles_run_to_the_end_of_the_clause() {
        let open = |s: &str| match add(s) {
            Some(AddParse::Titles(t)) => t.open,
            other => panic!("{s:?}: {other:?}"),
        };
        assert!(open("add a todo to buy milk"));
        assert!(open("remind me to call mom"));
        assert!(open("add todos: milk, eggs and bread"));
        assert!(!open("add a todo \"buy milk\""));
        assert!(!open("add a todo to buy milk to my list"));
        assert!(!open("add buy milk to my list"));
        assert!(!open("add todos \"a\" and \"b\""));
        assert!(!open("add todos: milk and \"eggs\""));
    }

    #[test]
    fn bare_add() {
        let s = "add eggs and milk";
        let bare = parse_add_bare(s, &tokenize(s)).unwrap();
        assert_eq!(bare.list, ["eggs and milk"]);
        assert!(bare.open);
        let s = "add a flight to my calendar";
        assert_eq!(parse_add_bare(s, &tokenize(s)), None);
        let s = "add it";
        assert_eq!(parse_add_bare(s, &tokenize(s)), None);
    }

    #[test]
    fn list_forms() {
        assert_eq!(list("show me all my tasks"), Some(None));
        assert_eq!(list("list my todos"), Some(None));
        assert_eq!(list("what's on my list"), Some(None));
        assert_eq!(list("show my completed todos"), Some(Some(true)));
        assert_eq!(list("show open todos"), Some(Some(false)));
        assert_eq!(list("show pending tasks"), Some(Some(false)));
        assert_eq!(list("which todos are not done yet"), Some(Some(false)));
        assert_eq!(list("what's left"), Some(Some(false)));
        assert_eq!(list("what do I still have to do"), Some(Some(false)));
        assert_eq!(list("what have I completed"), Some(Some(true)));
        assert_eq!(list("how many todos do I have"), Some(None));
        assert_eq!(list("my todos"), Some(None));
        assert_eq!(list("complete my todos"), None);
        assert_eq!(list("what is 2 + 2"), None);
        assert_eq!(list("show me the weather"), None);
    }
}
