//! Step building: turns understood clauses into tool calls, resolving "it" to the todo of
//! the latest todo step (`${steps.N.todo.id}`), "the first/last one" to a position in the
//! latest list (`${steps.N.todos.K.id}`, inserting a `todo_list` step when the prompt has
//! none), and "the result" to the latest calculation (`${steps.N.value}`). Also writes each
//! step's reasoning sentence, and refuses titles longer than `todo_add` accepts.
//!
//! `todo_list` returns one page: at most `limit` todos (default 100, at most 1000), oldest
//! first unless `"order": "newest_first"`. So a position is always a non-negative index into
//! the page, never a negative one (which would count from the end of the *page*, not of the
//! list): a list referenced from the end ("the last one", "the second-to-last") is planned
//! newest first and "the last" is index 0; a list referenced at a position beyond the default
//! page ("the 150th") gets a `limit` that covers it, and a position beyond 1000 is refused. A
//! list referenced from both ends gets a second list step for the other order. A list no step
//! refers to stays `todo_list {}`.

use serde_json::{Map, Value, json};

use crate::clause::Command;
use crate::split::Clause;
use crate::target::Target;
use crate::text::escape_refs;
use crate::{MAX_STEPS, MAX_TITLE_CHARS, PlannedStep, Rejection};

/// The todos one `todo_list` page holds when no `limit` is given.
pub(crate) const DEFAULT_LIST_LIMIT: i64 = 100;
/// The largest `limit` `todo_list` accepts.
pub(crate) const MAX_LIST_LIMIT: i64 = 1000;

/// The order a list step's page is in, as far as later steps rely on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// No step refers to a position in the list.
    Any,
    /// Referenced from the start: the default order.
    OldestFirst,
    /// Referenced from the end.
    NewestFirst,
}

/// A `todo_list` step and what later steps need of it.
#[derive(Debug)]
struct ListStep {
    /// 1-based step number.
    step: usize,
    /// The done filter.
    done: Option<bool>,
    order: Order,
    /// The todos the page must hold (set when beyond the default page).
    limit: Option<i64>,
    /// Why the step was inserted ("the last one"), when the prompt did not ask for a list.
    inserted_for: Option<String>,
}

impl ListStep {
    fn input(&self) -> Value {
        let mut input = Map::new();
        if let Some(done) = self.done {
            input.insert("done".into(), json!(done));
        }
        if self.order == Order::NewestFirst {
            input.insert("order".into(), json!("newest_first"));
        }
        if let Some(limit) = self.limit {
            input.insert("limit".into(), json!(limit));
        }
        Value::Object(input)
    }

    fn reasoning(&self) -> String {
        let mut text = match self.done {
            None if self.inserted_for.is_none() => "List all todos".to_owned(),
            done => format!("List the {}todos", filter_words(done)),
        };
        if self.order == Order::NewestFirst {
            text.push_str(", newest first");
        }
        if let Some(limit) = self.limit {
            text.push_str(&format!(", up to {limit} of them"));
        }
        if let Some(why) = &self.inserted_for {
            text.push_str(&format!(", to find {why} one"));
        }
        text.push('.');
        text
    }
}

/// What earlier steps produced, for references.
#[derive(Default)]
struct Context {
    steps: Vec<PlannedStep>,
    /// The latest step whose output is one todo.
    last_todo: Option<usize>,
    /// Every `todo_list` step, in order; the last one is the one positions refer to.
    lists: Vec<ListStep>,
    /// The latest calculator step.
    last_calc: Option<usize>,
}

impl Context {
    fn push(&mut self, tool: &str, input: Value, reasoning: String) -> usize {
        self.steps.push(PlannedStep {
            tool: tool.to_owned(),
            input,
            reasoning,
        });
        self.steps.len()
    }

    fn push_list(&mut self, done: Option<bool>, inserted_for: Option<String>) -> usize {
        let step = self.push("todo_list", json!({}), String::new());
        self.lists.push(ListStep {
            step,
            done,
            order: Order::Any,
            limit: None,
            inserted_for,
        });
        self.lists.len() - 1
    }

    /// Writes every list step's input and reasoning from what later steps need of it.
    fn finish_lists(&mut self) {
        for list in &self.lists {
            if let Some(step) = list.step.checked_sub(1).and_then(|i| self.steps.get_mut(i)) {
                step.input = list.input();
                step.reasoning = list.reasoning();
            }
        }
    }
}

fn filter_words(done: Option<bool>) -> &'static str {
    match done {
        Some(true) => "completed ",
        Some(false) => "open ",
        None => "",
    }
}

fn ordinal(n: i64) -> String {
    const WORDS: [&str; 10] = [
        "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
        "tenth",
    ];
    if let Some(w) = usize::try_from(n - 1).ok().and_then(|i| WORDS.get(i)) {
        return (*w).to_owned();
    }
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// "the first", "the last", "the third-to-last", ...
fn position_words(index: i64) -> String {
    match index {
        -1 => "the last".to_owned(),
        i if i >= 0 => format!("the {}", ordinal(i.saturating_add(1))),
        i => format!("the {}-to-last", ordinal(i.saturating_neg())),
    }
}

/// The first characters of a long title, for messages.
fn preview(title: &str) -> String {
    let mut short: String = title.chars().take(40).collect();
    if short.len() < title.len() {
        short.push('\u{2026}');
    }
    short
}

/// Builds the steps for `clauses`.
pub(crate) fn build(clauses: Vec<Clause>) -> Result<Vec<PlannedStep>, Rejection> {
    let mut cx = Context::default();
    for clause in clauses {
        match clause.cmd {
            Command::Calc(expr) => {
                let prev = if expr.uses_prev() {
                    cx.last_calc.ok_or_else(|| Rejection {
                        message: format!(
                            "In \"{}\", there is no earlier calculation in this prompt for \"it\" or \"the result\" to refer to. {}",
                            clause.text,
                            crate::CAPABILITIES
                        ),
                        clause: Some(clause.text.clone()),
                    })?
                } else {
                    0
                };
                let expression = expr.render(prev);
                let reasoning = if prev > 0 {
                    format!("Calculate {expression}, using the result of step {prev}.")
                } else {
                    format!("Calculate {expression}.")
                };
                let n = cx.push("calculator", json!({ "expression": expression }), reasoning);
                cx.last_calc = Some(n);
            }
            Command::Add(titles) => {
                for title in titles {
                    let n = title.chars().count();
                    if n > MAX_TITLE_CHARS {
                        return Err(Rejection {
                            message: format!(
                                "the todo title \"{}\" is {n} characters; the limit is {MAX_TITLE_CHARS}. Titles are stored exactly as given, never shortened: use a shorter title.",
                                preview(&title)
                            ),
                            clause: None,
                        });
                    }
                    let reasoning = format!("Add the todo \"{title}\".");
                    let input = json!({ "title": escape_refs(&title) });
                    cx.last_todo = Some(cx.push("todo_add", input, reasoning));
                }
            }
            Command::List(done) => {
                cx.push_list(done, None);
            }
            Command::Complete(targets) => {
                for target in targets {
                    target_step(&mut cx, target, &clause.text, true)?;
                }
            }
            Command::Delete(targets) => {
                for target in targets {
                    target_step(&mut cx, target, &clause.text, false)?;
                }
            }
        }
    }
    cx.finish_lists();
    let n = cx.steps.len();
    if n > MAX_STEPS {
        return Err(Rejection {
            message: format!("the prompt asks for {n} steps; the limit is {MAX_STEPS}"),
            clause: None,
        });
    }
    Ok(cx.steps)
}

/// Adds a `todo_complete` (`complete`) or `todo_delete` step.
fn target_step(
    cx: &mut Context,
    target: Target,
    text: &str,
    complete: bool,
) -> Result<(), Rejection> {
    let (input, what) = resolve(cx, target, text)?;
    let (tool, reasoning) = if complete {
        ("todo_complete", format!("Mark {what} as done."))
    } else {
        ("todo_delete", format!("Delete {what}."))
    };
    let n = cx.push(tool, input, reasoning);
    cx.last_todo = Some(n);
    Ok(())
}

/// The input selecting `target`, and a description of it for the reasoning.
fn resolve(cx: &mut Context, target: Target, text: &str) -> Result<(Value, String), Rejection> {
    Ok(match target {
        Target::Title(title) => {
            let what = format!("the todo \"{title}\"");
            (json!({ "title": escape_refs(&title) }), what)
        }
        Target::Id(id) => {
            let what = format!("the todo with id \"{id}\"");
            (json!({ "id": escape_refs(&id) }), what)
        }
        Target::Recent => {
            let n = cx.last_todo.ok_or_else(|| Rejection {
                message: format!(
                    "In \"{text}\", there is no todo earlier in this prompt for \"it\" to refer to; name the todo instead (e.g. \"mark buy milk as done\"). {}",
                    crate::CAPABILITIES
                ),
                clause: Some(text.to_owned()),
            })?;
            let what = format!("the todo from step {n}");
            (json!({ "id": format!("${{steps.{n}.todo.id}}") }), what)
        }
        Target::Position { index, done } => {
            let (list, at) = position(cx, index, done, text)?;
            let what = format!(
                "{} {}todo listed in step {list}",
                position_words(index),
                filter_words(done)
            );
            (
                json!({ "id": format!("${{steps.{list}.todos.{at}.id}}") }),
                what,
            )
        }
    })
}

/// The list step (1-based) and the index in its page of position `index` (negative counts from
/// the end) among the todos matching `done`, adding or adjusting a list step as needed.
fn position(
    cx: &mut Context,
    index: i64,
    done: Option<bool>,
    text: &str,
) -> Result<(usize, i64), Rejection> {
    let (order, at) = if index < 0 {
        (Order::NewestFirst, index.saturating_add(1).saturating_neg())
    } else {
        (Order::OldestFirst, index)
    };
    let needed = at.saturating_add(1);
    if needed > MAX_LIST_LIMIT {
        return Err(Rejection {
            message: format!(
                "In \"{text}\", {} todo is beyond what one list holds (at most {MAX_LIST_LIMIT} todos, counted from the oldest or from the newest); name the todo instead. {}",
                position_words(index),
                crate::CAPABILITIES
            ),
            clause: Some(text.to_owned()),
        });
    }
    let usable = cx.lists.last().is_some_and(|l| {
        (done.is_none() || l.done == done) && (l.order == Order::Any || l.order == order)
    });
    if !usable {
        cx.push_list(done, Some(position_words(index)));
    }
    let Some(list) = cx.lists.last_mut() else {
        return Err(crate::not_understood(text, None));
    };
    list.order = order;
    if needed > DEFAULT_LIST_LIMIT {
        list.limit = Some(list.limit.map_or(needed, |l| l.max(needed)));
    }
    Ok((list.step, at))
}
