//! The todo tools: `todo_add`, `todo_list`, `todo_complete`, `todo_delete`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ToolContext, ToolError, ToolErrorKind, TypedTool};
use crate::store::{Todo, TodoFilter, TodoLookupError, TodoSelector};

/// Longest title accepted (characters).
pub const MAX_TITLE_CHARS: usize = 500;
/// Most todos `todo_list` returns.
pub const MAX_LIST: usize = 1000;

/// Input of `todo_add`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TodoAddInput {
    /// The title, stored exactly as given.
    pub title: String,
}

/// Output of `todo_add`, `todo_complete` and `todo_delete`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TodoOutput {
    /// The todo added, completed or deleted.
    pub todo: Todo,
}

/// Input of `todo_list`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TodoListInput {
    /// Only done (true) or open (false) todos; all when absent.
    #[serde(default)]
    pub done: Option<bool>,
    /// Most todos returned, oldest first (1-1000, default 1000).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
}

/// Output of `todo_list`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TodoListOutput {
    pub todos: Vec<Todo>,
    /// How many todos match the filter (may exceed the todos returned when limited).
    pub count: u64,
}

/// Input of `todo_complete` and `todo_delete`: exactly one of id or title.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TodoSelectInput {
    /// The todo's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The todo's title (case-insensitive exact match).
    #[serde(default)]
    pub title: Option<String>,
}

impl TodoSelectInput {
    fn selector(&self) -> Result<TodoSelector, String> {
        match (&self.id, &self.title) {
            (Some(id), None) if !id.trim().is_empty() => Ok(TodoSelector::Id(id.trim().to_owned())),
            (None, Some(t)) if !t.trim().is_empty() => Ok(TodoSelector::Title(t.clone())),
            (Some(_), Some(_)) => Err("give either \"id\" or \"title\", not both".into()),
            (None, None) => Err("give the todo's \"id\" or \"title\"".into()),
            _ => Err("the todo's id or title is empty".into()),
        }
    }
}

fn lookup_error(e: TodoLookupError) -> ToolError {
    let kind = match e {
        TodoLookupError::Ambiguous { .. } => ToolErrorKind::Ambiguous,
        _ => ToolErrorKind::NotFound,
    };
    ToolError::new(kind, e.to_string())
}

/// Characters that print nothing: whitespace plus the invisible format characters (zero-width
/// space/joiners, word joiner, byte-order mark, soft hyphen) that `trim` keeps.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}')
}

fn check_title(title: &str) -> Result<(), String> {
    if title.chars().all(is_invisible) {
        return Err(
            "the todo title is empty; say what the todo is, e.g. \"add a todo to buy milk\"".into(),
        );
    }
    let n = title.chars().count();
    if n > MAX_TITLE_CHARS {
        return Err(format!(
            "the todo title is {n} characters; the limit is {MAX_TITLE_CHARS}"
        ));
    }
    Ok(())
}

/// `todo_add`.
pub struct TodoAdd;

impl TypedTool for TodoAdd {
    const NAME: &'static str = "todo_add";
    const DESCRIPTION: &'static str = "Add a todo with the given title (stored exactly as given).";
    type Input = TodoAddInput;
    type Output = TodoOutput;

    fn check(&self, input: &TodoAddInput) -> Result<(), String> {
        check_title(&input.title)
    }

    async fn run(&self, ctx: &ToolContext, input: TodoAddInput) -> Result<TodoOutput, ToolError> {
        check_title(&input.title).map_err(ToolError::invalid)?;
        let todo = ctx
            .store
            .todo_add(input.title, Some(ctx.effect_key()))
            .await?;
        Ok(TodoOutput { todo })
    }
}

/// `todo_list`.
pub struct TodoList;

impl TypedTool for TodoList {
    const NAME: &'static str = "todo_list";
    const DESCRIPTION: &'static str =
        "List todos, oldest first; optionally only done or open ones.";
    type Input = TodoListInput;
    type Output = TodoListOutput;

    async fn run(
        &self,
        ctx: &ToolContext,
        input: TodoListInput,
    ) -> Result<TodoListOutput, ToolError> {
        let limit = input
            .limit
            .map_or(MAX_LIST, |l| (l as usize).clamp(1, MAX_LIST));
        let (todos, count) = ctx
            .store
            .todo_list(TodoFilter {
                done: input.done,
                limit,
            })
            .await?;
        Ok(TodoListOutput { todos, count })
    }
}

/// `todo_complete`.
pub struct TodoComplete;

impl TypedTool for TodoComplete {
    const NAME: &'static str = "todo_complete";
    const DESCRIPTION: &'static str =
        "Mark a todo done, by id or by title (case-insensitive exact match).";
    type Input = TodoSelectInput;
    type Output = TodoOutput;

    fn check(&self, input: &TodoSelectInput) -> Result<(), String> {
        input.selector().map(|_| ())
    }

    async fn run(
        &self,
        ctx: &ToolContext,
        input: TodoSelectInput,
    ) -> Result<TodoOutput, ToolError> {
        let selector = input.selector().map_err(ToolError::invalid)?;
        let todo = ctx
            .store
            .todo_complete(selector, Some(ctx.effect_key()))
            .await?
            .map_err(lookup_error)?;
        Ok(TodoOutput { todo })
    }
}

/// `todo_delete`.
pub struct TodoDelete;

impl TypedTool for TodoDelete {
    const NAME: &'static str = "todo_delete";
    const DESCRIPTION: &'static str =
        "Delete a todo, by id or by title (case-insensitive exact match).";
    type Input = TodoSelectInput;
    type Output = TodoOutput;

    fn check(&self, input: &TodoSelectInput) -> Result<(), String> {
        input.selector().map(|_| ())
    }

    async fn run(
        &self,
        ctx: &ToolContext,
        input: TodoSelectInput,
    ) -> Result<TodoOutput, ToolError> {
        let selector = input.selector().map_err(ToolError::invalid)?;
        let todo = ctx
            .store
            .todo_delete(selector, Some(ctx.effect_key()))
            .await?
            .map_err(lookup_error)?;
        Ok(TodoOutput { todo })
    }
}

#[cfg(test)]
mod tests {
    use super::check_title;

    #[test]
    fn invisible_titles_are_empty() {
        assert!(check_title("\u{200B}").is_err());
        assert!(check_title(" \u{FEFF}\u{00AD} ").is_err());
        assert!(check_title("a\u{200B}").is_ok());
    }
}
