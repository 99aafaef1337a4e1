//! crane's deterministic rule planner: turns a plain-language prompt into validated tool
//! calls for the calculator and the todo tools, or rejects it naming the clause it did not
//! understand. Pure (no I/O), never panics, and near-linear in the prompt length.
//!
//! ```
//! use crane_rules::plan;
//! use serde_json::json;
//!
//! let steps = plan("Add a todo to buy milk, then mark it done").unwrap();
//! assert_eq!(steps[0].tool, "todo_add");
//! assert_eq!(steps[0].input, json!({"title": "buy milk"}));
//! assert_eq!(steps[1].input, json!({"id": "${steps.1.todo.id}"}));
//!
//! let steps = plan("What is 7 times 6?").unwrap();
//! assert_eq!(steps[0].input, json!({"expression": "7 * 6"}));
//!
//! let err = plan("list my todos and book a flight").unwrap_err();
//! assert_eq!(err.clause.as_deref(), Some("book a flight"));
//! ```
//!
//! Pipeline: `text` tokenizes (keeping byte spans so titles are cut verbatim); `split` finds
//! clause boundaries; `clause` normalises each clause and tries the phrase families in
//! `todo` (add, list), `target` (complete, delete) and `arithmetic` (with the operator
//! `grammar`, `numbers` and the `expr` printer), and `diagnose` checks calculations with the
//! calculator; `reference` builds the steps and their `${steps.N...}` references.
//!
//! Splitting on "and"/commas only happens where the next part is a recognised command, so a
//! title like "buy bread and butter" or a list like "sum of 1, 2 and 3" stays whole. Titles are
//! data: a bare "delete X"/"complete X"/"drop X" after "and" or punctuation inside an add
//! clause stays in the title (write "then", or "delete the todo X", to make it a separate
//! step), so `add a todo to Robert'); DROP TABLE todos;--` adds exactly that title; `${` in a
//! title is escaped (`$${`) so it is stored literally, never read as a reference; a title over
//! [`MAX_TITLE_CHARS`] is refused, never shortened. A clause that is clearly a calculation but
//! cannot be read ("calculate (2 + 3") is refused with the calculator's own error and the
//! column in the prompt (`diagnose`). Positions in a list ("the last one", "the 150th") are
//! planned for `todo_list`'s pages (`reference`).
//!
//! Nothing is ever half planned: a prompt is planned whole or rejected whole.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod arithmetic;
mod clause;
mod diagnose;
mod expr;
mod grammar;
mod numbers;
mod reference;
mod split;
mod target;
mod text;
mod todo;

/// One planned tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    /// The tool's name (`calculator`, `todo_add`, `todo_list`, `todo_complete`,
    /// `todo_delete`).
    pub tool: String,
    /// The tool's input; strings may hold `${steps.N.PATH}` references to earlier steps.
    pub input: serde_json::Value,
    /// A short human sentence saying why the step is there.
    pub reasoning: String,
}

/// Why a prompt was not planned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// A message for the user.
    pub message: String,
    /// The clause that was not understood, verbatim from the prompt.
    pub clause: Option<String>,
}

/// The planner's name, recorded with every plan.
pub const PLANNER_NAME: &str = "rule";
/// The planner's version; bumped whenever planning behaviour changes.
pub const PLANNER_VERSION: &str = "1.1.0";
/// Most steps one prompt may plan.
pub const MAX_STEPS: usize = 50;
/// Longest todo title planned, in characters (the `todo_add` tool's limit). A longer title
/// is refused, never shortened.
pub const MAX_TITLE_CHARS: usize = 500;

/// What crane can do, appended to "could not understand" messages.
pub(crate) const CAPABILITIES: &str = "crane can do arithmetic (e.g. \"what is 7 times 6\") and manage todos (add, list, complete, delete).";

/// The rejection for a clause that was not understood.
pub(crate) fn not_understood(clause: &str, hint: Option<&str>) -> Rejection {
    Rejection {
        message: format!(
            "I could not understand \"{clause}\".{} {CAPABILITIES}",
            hint.unwrap_or("")
        ),
        clause: Some(clause.to_owned()),
    }
}

/// Plans `prompt` into tool calls, or rejects it.
///
/// Deterministic and panic-free; every clause of the prompt must be understood (nothing is
/// dropped silently) and at most [`MAX_STEPS`] steps are planned.
pub fn plan(prompt: &str) -> Result<Vec<PlannedStep>, Rejection> {
    if prompt.trim().is_empty() {
        return Err(Rejection {
            message: "the prompt is empty".to_owned(),
            clause: None,
        });
    }
    let toks = text::tokenize(prompt);
    let clauses = split::clauses(prompt, &toks)?;
    reference::build(clauses)
}
