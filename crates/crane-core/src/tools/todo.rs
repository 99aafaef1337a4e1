//! The todo tools: `todo_add`, `todo_list`, `todo_complete`, `todo_delete`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cursor::{self, CursorError};
use super::{ToolContext, ToolError, ToolErrorKind, TypedTool};
use crate::store::{Todo, TodoFilter, TodoLookupError, TodoMatch, TodoOrder, TodoSelector};

/// Longest title accepted (characters).
pub const MAX_TITLE_CHARS: usize = 500;
/// Most todos one `todo_list` call returns.
pub const MAX_LIST: usize = 1000;
/// Todos `todo_list` returns when no limit is given.
pub const DEFAULT_LIST: usize = 100;

/// Input of `todo_add`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TodoAddInput {
    /// The title, stored exactly as given.
    pub title: String,
}

/// Output of `todo_add`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TodoOutput {
    /// The todo added.
    pub todo: Todo,
}

/// Output of `todo_complete` and `todo_delete`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TodoSelectOutput {
    /// The todo completed or deleted.
    pub todo: Todo,
    /// How it was found: "id", "exact" (its title equals the given one, ignoring case) or
    /// "partial" (no title equals it; this is the only todo whose title contains the given
    /// words as a phrase).
    pub matched: TodoMatch,
}

/// Input of `todo_list`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TodoListInput {
    /// Only done (true) or open (false) todos; all when absent.
    #[serde(default)]
    pub done: Option<bool>,
    /// Most todos in this page: 1-1000, default 100.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
    /// The next_cursor of an earlier todo_list output, to get the page after it (pass the same
    /// done and order). Absent or null: the first page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// "oldest_first" (default) or "newest_first". With newest_first, todos.0 is the most
    /// recently added todo (e.g. for "the last one I added").
    #[serde(default)]
    pub order: Option<TodoOrder>,
}

/// Output of `todo_list`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TodoListOutput {
    /// This page of todos, in the requested order.
    pub todos: Vec<Todo>,
    /// How many todos match the filter in all, on every page (may exceed the todos returned).
    pub count: u64,
    /// Pass as "cursor" to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Input of `todo_complete` and `todo_delete`: exactly one of id or title.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TodoSelectInput {
    /// The todo's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The todo's title: a case-insensitive exact match wins; otherwise the one todo whose
    /// title contains these words as a phrase ("call mom" finds "call mom tomorrow at 5pm").
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
            .todo_add_in(&ctx.tenant, input.title, Some(ctx.effect_key()))
            .await?;
        Ok(TodoOutput { todo })
    }
}

/// `todo_list`.
pub struct TodoList;

impl TodoListInput {
    fn order(&self) -> TodoOrder {
        self.order.unwrap_or_default()
    }

    /// Where the page starts: after the position the cursor names.
    fn after(&self) -> Result<Option<i64>, CursorError> {
        self.cursor
            .as_deref()
            .map(|c| cursor::decode(c, self.order(), self.done))
            .transpose()
    }
}

impl TypedTool for TodoList {
    const NAME: &'static str = "todo_list";
    const READ_ONLY: bool = true;
    const DESCRIPTION: &'static str = "List todos one page at a time (default 100, at most 1000 per call), oldest first; optionally only done or open ones. order \"newest_first\" puts the most recently added todo first (todos.0). count is how many todos match in all; next_cursor (null on the last page) passed back as cursor, with the same done and order, gives the next page.";
    type Input = TodoListInput;
    type Output = TodoListOutput;

    fn check(&self, input: &TodoListInput) -> Result<(), String> {
        input.after().map(|_| ()).map_err(|e| e.to_string())
    }

    async fn run(
        &self,
        ctx: &ToolContext,
        input: TodoListInput,
    ) -> Result<TodoListOutput, ToolError> {
        let after = input
            .after()
            .map_err(|e| ToolError::invalid(e.to_string()))?;
        let order = input.order();
        let limit = input
            .limit
            .map_or(DEFAULT_LIST, |l| (l as usize).clamp(1, MAX_LIST));
        let page = ctx
            .store
            .todo_list(TodoFilter {
                tenant: ctx.tenant.clone(),
                done: input.done,
                limit,
                order,
                after,
            })
            .await?;
        Ok(TodoListOutput {
            todos: page.todos,
            count: page.count,
            next_cursor: page.next.map(|seq| cursor::encode(order, input.done, seq)),
        })
    }
}

/// `todo_complete`.
pub struct TodoComplete;

impl TypedTool for TodoComplete {
    const NAME: &'static str = "todo_complete";
    const DESCRIPTION: &'static str = "Mark a todo done, by id or by title. A title matches a todo titled exactly that (ignoring case), else the one todo whose title contains its words as a phrase; several matches fail as ambiguous.";
    type Input = TodoSelectInput;
    type Output = TodoSelectOutput;

    fn check(&self, input: &TodoSelectInput) -> Result<(), String> {
        input.selector().map(|_| ())
    }

    async fn run(
        &self,
        ctx: &ToolContext,
        input: TodoSelectInput,
    ) -> Result<TodoSelectOutput, ToolError> {
        let selector = input.selector().map_err(ToolError::invalid)?;
        let selected = ctx
            .store
            .todo_complete_in(&ctx.tenant, selector, Some(ctx.effect_key()))
            .await?
            .map_err(lookup_error)?;
        Ok(TodoSelectOutput {
            todo: selected.todo,
            matched: selected.matched,
        })
    }
}

/// `todo_delete`.
pub struct TodoDelete;

impl TypedTool for TodoDelete {
    const NAME: &'static str = "todo_delete";
    const DESCRIPTION: &'static str = "Delete a todo, by id or by title. A title matches a todo titled exactly that (ignoring case), else the one todo whose title contains its words as a phrase; several matches fail as ambiguous.";
    type Input = TodoSelectInput;
    type Output = TodoSelectOutput;

    fn check(&self, input: &TodoSelectInput) -> Result<(), String> {
        input.selector().map(|_| ())
    }

    async fn run(
        &self,
        ctx: &ToolContext,
        input: TodoSelectInput,
    ) -> Result<TodoSelectOutput, ToolError> {
        let selector = input.selector().map_err(ToolError::invalid)?;
        let selected = ctx
            .store
            .todo_delete_in(&ctx.tenant, selector, Some(ctx.effect_key()))
            .await?
            .map_err(lookup_error)?;
        Ok(TodoSelectOutput {
            todo: selected.todo,
            matched: selected.matched,
        })
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

#[cfg(test)]
mod tool_tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use crate::store::{Store, StoreConfig};
    use crate::tools::{ToolContext, ToolErrorKind, builtin_registry};

    async fn call(
        ctx: &ToolContext,
        tool: &str,
        input: Value,
    ) -> Result<Value, (ToolErrorKind, String)> {
        let registry = builtin_registry();
        let tool = registry.get(tool).unwrap();
        tool.execute(ctx, input)
            .await
            .map_err(|e| (e.kind, e.message))
    }

    fn titles(out: &Value) -> Vec<String> {
        out["todos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn context(todos: usize) -> (tempfile::TempDir, ToolContext) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<Store> = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        for i in 0..todos {
            store.todo_add(format!("t{i}"), None).await.unwrap();
        }
        let ctx = ToolContext {
            store,
            run_id: "run".into(),
            tenant: crate::access::DEFAULT_TENANT.into(),
            step_number: 1,
        };
        (dir, ctx)
    }

    #[tokio::test]
    async fn todo_list_pages_with_a_default_of_100_and_a_cursor() {
        let (_dir, ctx) = context(150).await;
        let first = call(&ctx, "todo_list", json!({})).await.unwrap();
        assert_eq!(first["todos"].as_array().unwrap().len(), 100);
        assert_eq!(first["count"], 150);
        assert_eq!(titles(&first)[0], "t0");
        let cursor = first["next_cursor"].as_str().unwrap().to_owned();
        let second = call(&ctx, "todo_list", json!({"cursor": cursor}))
            .await
            .unwrap();
        assert_eq!(titles(&second).len(), 50);
        assert_eq!(titles(&second)[0], "t100");
        assert_eq!(second["count"], 150);
        assert_eq!(second["next_cursor"], Value::Null);
        // A null cursor is the first page, like an absent one.
        let again = call(&ctx, "todo_list", json!({"cursor": null}))
            .await
            .unwrap();
        assert_eq!(titles(&again), titles(&first));

        let newest = call(
            &ctx,
            "todo_list",
            json!({"order": "newest_first", "limit": 1}),
        )
        .await
        .unwrap();
        assert_eq!(titles(&newest), ["t149"]);
        assert_eq!(newest["count"], 150);
        let cursor = newest["next_cursor"].as_str().unwrap().to_owned();
        let next = call(
            &ctx,
            "todo_list",
            json!({"order": "newest_first", "limit": 2, "cursor": cursor}),
        )
        .await
        .unwrap();
        assert_eq!(titles(&next), ["t148", "t147"]);
    }

    #[tokio::test]
    async fn todo_list_refuses_foreign_and_malformed_cursors() {
        let (_dir, ctx) = context(3).await;
        let page = call(&ctx, "todo_list", json!({"limit": 1, "done": false}))
            .await
            .unwrap();
        let cursor = page["next_cursor"].as_str().unwrap().to_owned();
        let (kind, message) = call(&ctx, "todo_list", json!({"cursor": cursor}))
            .await
            .unwrap_err();
        assert_eq!(kind, ToolErrorKind::InvalidInput);
        assert!(message.contains("done=false"), "{message}");
        let (kind, message) = call(&ctx, "todo_list", json!({"cursor": "page-2"}))
            .await
            .unwrap_err();
        assert_eq!(kind, ToolErrorKind::InvalidInput);
        assert!(message.starts_with("invalid cursor 'page-2'"), "{message}");
    }

    #[tokio::test]
    async fn complete_and_delete_say_how_the_todo_was_matched() {
        let (_dir, ctx) = context(0).await;
        // Each call is its own step: effect keys are per step.
        let step = |n: u32| ToolContext {
            step_number: n,
            ..ctx.clone()
        };
        let added = call(
            &step(1),
            "todo_add",
            json!({"title": "call mom tomorrow at 5pm"}),
        )
        .await
        .unwrap();
        let done = call(&step(2), "todo_complete", json!({"title": "Call Mom"}))
            .await
            .unwrap();
        assert_eq!(done["matched"], "partial");
        assert_eq!(done["todo"]["id"], added["todo"]["id"]);
        assert_eq!(done["todo"]["done"], true);
        let by_id = call(&step(3), "todo_delete", json!({"id": added["todo"]["id"]}))
            .await
            .unwrap();
        assert_eq!(by_id["matched"], "id");
        let (kind, message) = call(&step(4), "todo_delete", json!({"title": "call mom"}))
            .await
            .unwrap_err();
        assert_eq!(kind, ToolErrorKind::NotFound);
        assert!(
            message.contains("no todo is titled 'call mom'"),
            "{message}"
        );
    }
}

#[cfg(test)]
mod schema_tests {
    use serde_json::{Value, json};

    use crate::tools::builtin_registry;

    fn has_ref(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.contains_key("$ref") || m.values().any(has_ref),
            Value::Array(a) => a.iter().any(has_ref),
            _ => false,
        }
    }

    #[test]
    fn todo_list_input_schema_shows_paging_and_order() {
        let reg = builtin_registry();
        let spec = reg
            .specs()
            .into_iter()
            .find(|s| s.name == "todo_list")
            .unwrap();
        let props = &spec.input_schema["properties"];
        assert_eq!(
            props["order"]["enum"],
            json!(["oldest_first", "newest_first", null])
        );
        assert_eq!(props["cursor"]["type"], json!(["string", "null"]));
        assert_eq!(
            (
                props["limit"]["minimum"].clone(),
                props["limit"]["maximum"].clone()
            ),
            (json!(1), json!(1000))
        );
        assert!(
            spec.description.contains("newest_first") && spec.description.contains("next_cursor")
        );
        let out = &spec.output_schema["properties"];
        assert_eq!(out["next_cursor"]["type"], json!(["string", "null"]));
        // Input schemas are embedded in the plan schema: they must not point into $defs.
        for spec in reg.specs() {
            assert!(
                !has_ref(&spec.input_schema),
                "{} input has a $ref",
                spec.name
            );
        }
        assert!(
            reg.validate_input(
                "todo_list",
                &json!({"order": "newest_first", "limit": 1, "cursor": "x"}),
                &[]
            )
            .is_empty()
        );
        let v = reg.validate_input("todo_list", &json!({"order": "latest"}), &[]);
        assert_eq!(v[0].path, "input.order", "{v:?}");
        let v = reg.validate_input("todo_list", &json!({"limit": 0}), &[]);
        assert_eq!(v[0].path, "input.limit", "{v:?}");
    }
}
