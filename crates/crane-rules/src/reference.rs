//! Step building: turns understood clauses into tool calls, resolving "it" to the todo of
//! the latest todo step (`${steps.N.todo.id}`), "the first/last one" to a position in the
//! latest list (`${steps.N.todos.0.id}`, `${steps.N.todos.-1.id}`, inserting a `todo_list`
//! step when the prompt has none), and "the result" to the latest calculation
//! (`${steps.N.value}`). Also writes each step's reasoning sentence.

use serde_json::{Value, json};

use crate::clause::Command;
use crate::split::Clause;
use crate::target::Target;
use crate::text::escape_refs;
use crate::{MAX_STEPS, PlannedStep, Rejection};

/// What earlier steps produced, for references.
#[derive(Default)]
struct Context {
    steps: Vec<PlannedStep>,
    /// The latest step whose output is one todo.
    last_todo: Option<usize>,
    /// The latest `todo_list` step and its filter.
    last_list: Option<(usize, Option<bool>)>,
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

fn list_input(done: Option<bool>) -> Value {
    match done {
        Some(d) => json!({ "done": d }),
        None => json!({}),
    }
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
                    let reasoning = format!("Add the todo \"{title}\".");
                    let input = json!({ "title": escape_refs(&title) });
                    cx.last_todo = Some(cx.push("todo_add", input, reasoning));
                }
            }
            Command::List(done) => {
                let reasoning = match done {
                    None => "List all todos.".to_owned(),
                    Some(_) => format!("List the {}todos.", filter_words(done)),
                };
                let n = cx.push("todo_list", list_input(done), reasoning);
                cx.last_list = Some((n, done));
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
            let list = match cx.last_list {
                Some((n, filter)) if done.is_none() || filter == done => n,
                _ => {
                    let reasoning = format!(
                        "List the {}todos to find {} one.",
                        filter_words(done),
                        position_words(index)
                    );
                    let n = cx.push("todo_list", list_input(done), reasoning);
                    cx.last_list = Some((n, done));
                    n
                }
            };
            let what = format!(
                "{} {}todo listed in step {list}",
                position_words(index),
                filter_words(done)
            );
            (
                json!({ "id": format!("${{steps.{list}.todos.{index}.id}}") }),
                what,
            )
        }
    })
}
