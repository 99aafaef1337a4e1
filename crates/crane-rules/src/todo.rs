//! Todo phrases: adding ("add a todo to X", "remind me to X", "add X to my list"), listing
//! ("show my completed todos", "what's on my list"), completing ("mark X as done", "I finished
//! X", "check off X") and deleting ("delete the todo X", "remove X from my list"), plus the
//! ways a phrase can name its todo: a title, an id, "it", or a position in a list ("the first
//! one", "the last todo").
//!
//! Titles are cut from the prompt by byte span, so they keep the user's exact text.

use crate::numbers::{is_number_word, parse_number_words, parse_ordinal};
use crate::text::{
    Kind, Tok, clean_title, ends_with, in_set, is_exactly, quoted_whole, starts_with,
    strip_any_prefix, strip_any_suffix, strip_prefix, trim_trailing_punct,
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

/// The result of trying the explicit add forms.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AddParse {
    /// One title, or several for `add "a" and "b"` / "add todos: a, b and c".
    Titles(Vec<String>),
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
const LIST_NOUNS: &[&str] = &[
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
const OWNERS: &[&str] = &["my", "the", "our", "your"];

/// Index where a trailing "to/on/from my (todo) list" phrase starts, if `toks` ends with one.
/// `preps` are the prepositions accepted before it.
fn location_start(toks: &[Tok], preps: &[&str]) -> Option<usize> {
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
fn is_list_name(toks: &[Tok]) -> bool {
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
fn add_titles(src: &str, toks: &[Tok], plural: bool) -> Option<Vec<String>> {
    let toks = trim_trailing_punct(toks);
    let toks = match location_start(toks, &["to", "on", "onto"]) {
        Some(j) if j > 0 => &toks[..j],
        _ => toks,
    };
    titles(src, toks, plural)
}

/// One or more titles (see [`add_titles`]) from `toks`.
fn titles(src: &str, toks: &[Tok], plural: bool) -> Option<Vec<String>> {
    if let Some(list) = quoted_list(src, toks) {
        return Some(list);
    }
    if plural {
        let items: Vec<String> = split_items(toks)
            .into_iter()
            .filter_map(|item| clean_title(src, item))
            .collect();
        if !items.is_empty() {
            return Some(items);
        }
    }
    clean_title(src, toks).map(|t| vec![t])
}

/// Splits `toks` at unquoted commas and "and"/"&" (", and" counts once).
fn split_items(toks: &[Tok]) -> Vec<&[Tok]> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let sep = !t.quoted && (t.is_sym(',') || t.is_sym('&') || t.is_word("and"));
        if sep {
            items.push(&toks[start..i]);
            i += 1;
            while toks.get(i).is_some_and(|n| n.is_word("and") || n.is_sym(',')) {
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
fn quoted_list(src: &str, toks: &[Tok]) -> Option<Vec<String>> {
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

fn to_add(titles: Option<Vec<String>>) -> AddParse {
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
    if let Some(rest) = strip_prefix(toks, &["another"]) {
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
        return titles(src, &toks[1..j], false).map(AddParse::Titles);
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
    const ARTICLES: &[&str] = &["a", "an", "another", "the", "new", "one", "more", "quick"];
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
                .is_some_and(|t| t.is_word("todo") || t.is_word("to-do"));
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
pub(crate) fn parse_add_bare(src: &str, toks: &[Tok]) -> Option<Vec<String>> {
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

const DONE_WORDS: &[&str] = &[
    "completed",
    "complete",
    "done",
    "finished",
    "closed",
    "checked",
    "ticked",
    "resolved",
];
const OPEN_WORDS: &[&str] = &[
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
    let (rest, question) = if let Some(r) = strip_any_prefix(toks, QUESTIONS) {
        (r, true)
    } else if let Some(r) = strip_any_prefix(toks, VERBS) {
        (r, false)
    } else {
        let first = toks.first()?.word()?;
        if !(in_set(first, VERBLESS_START) || in_set(first, NOUNS)) {
            return None;
        }
        (toks, false)
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
    // Noun-less questions: "what's left?", "what have I completed?", "what do I have to do?"
    if question && filter.is_some() {
        return Some(filter);
    }
    if question && ends_with(rest, &["to", "do"]) && rest.iter().any(|t| t.is_word("i")) {
        return Some(Some(false));
    }
    None
}

// ---- targets ---------------------------------------------------------------------------

/// Strips a trailing "from/on/in/off my (todo) list".
fn strip_location(toks: &[Tok]) -> (&[Tok], bool) {
    match location_start(toks, &["from", "on", "in", "off", "of", "onto", "to"]) {
        Some(j) if j > 0 => (&toks[..j], true),
        _ => (toks, false),
    }
}

const SINGULAR_NOUNS: &[&str] = &["todo", "to-do", "task", "item", "reminder", "entry"];

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
    let items = split_items(body);
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

    fn add(s: &str) -> Option<AddParse> {
        parse_add(s, &tokenize(s))
    }

    fn title(s: &str) -> Option<String> {
        match add(s) {
            Some(AddParse::Title(t)) => Some(t),
            _ => None,
        }
    }

    fn list(s: &str) -> Option<Option<bool>> {
        parse_list(&tokenize(s))
    }

    fn complete(s: &str) -> Option<(Target, bool)> {
        parse_complete(s, &tokenize(s))
    }

    fn delete(s: &str) -> Option<(Target, bool)> {
        parse_delete(s, &tokenize(s))
    }

    fn t(s: &str) -> Target {
        Target::Title(s.to_owned())
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
    fn bare_add() {
        let s = "add eggs and milk";
        assert_eq!(parse_add_bare(s, &tokenize(s)).unwrap(), "eggs and milk");
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
