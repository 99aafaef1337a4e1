//! Todo records and their queries. Mutations take an effect key: a mutation already recorded
//! under that key returns its recorded result instead of acting twice (exactly-once side effects
//! when a step is re-executed after a crash).

use rusqlite::{Connection, OptionalExtension, params};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::domain::{Timestamp, now};

/// A todo (field names fixed by DESIGN.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Todo {
    /// Stable id.
    pub id: String,
    /// Title exactly as given.
    pub title: String,
    pub done: bool,
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    #[schemars(with = "Option<String>")]
    pub completed_at: Option<Timestamp>,
}

/// How a todo is named in complete/delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TodoSelector {
    Id(String),
    /// Case-insensitive exact match on the title (surrounding whitespace ignored).
    Title(String),
}

/// Why a todo could not be selected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TodoLookupError {
    #[error("todo not found: no todo has id '{0}'")]
    IdNotFound(String),
    #[error(
        "todo not found: no todo is titled '{0}' (titles match case-insensitively; list todos to see them)"
    )]
    TitleNotFound(String),
    #[error("ambiguous title '{title}': {n} todos match ({list}); use the id instead", n = candidates.len(), list = describe(candidates))]
    Ambiguous {
        title: String,
        candidates: Vec<Todo>,
    },
}

fn describe(todos: &[Todo]) -> String {
    todos
        .iter()
        .map(|t| format!("id {} \"{}\"", t.id, t.title))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Filters for listing todos.
#[derive(Debug, Clone, Copy, Default)]
pub struct TodoFilter {
    /// Only done (`true`) or open (`false`) todos.
    pub done: Option<bool>,
    /// Most todos returned (oldest first).
    pub limit: usize,
}

/// The key titles are matched by.
pub fn title_key(title: &str) -> String {
    title.trim().to_lowercase()
}

fn row_to_todo(r: &rusqlite::Row<'_>) -> rusqlite::Result<Todo> {
    let created: String = r.get(3)?;
    let completed: Option<String> = r.get(4)?;
    let parse = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&chrono::Utc))
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    3,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
    };
    Ok(Todo {
        id: r.get(0)?,
        title: r.get(1)?,
        done: r.get(2)?,
        created_at: parse(&created)?,
        completed_at: completed.as_deref().map(parse).transpose()?,
    })
}

const COLUMNS: &str = "id, title, done, created_at, completed_at";

fn recorded<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let out: Option<String> = conn
        .prepare_cached("SELECT output FROM tool_effects WHERE effect_key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    out.map(|o| {
        serde_json::from_str(&o).map_err(|e| StoreError::Corrupt(format!("effect record: {e}")))
    })
    .transpose()
}

fn record<T: Serialize>(conn: &Connection, key: &str, value: &T) -> Result<(), StoreError> {
    let json = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    conn.prepare_cached("INSERT INTO tool_effects (effect_key, output) VALUES (?1, ?2)")?
        .execute(params![key, json])?;
    Ok(())
}

fn select(
    conn: &Connection,
    selector: &TodoSelector,
) -> Result<Result<Todo, TodoLookupError>, StoreError> {
    match selector {
        TodoSelector::Id(id) => {
            let todo = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM todos WHERE id = ?1"))?
                .query_row([id], row_to_todo)
                .optional()?;
            Ok(todo.ok_or_else(|| TodoLookupError::IdNotFound(id.clone())))
        }
        TodoSelector::Title(title) => {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM todos WHERE title_key = ?1 ORDER BY seq LIMIT 11"
            ))?;
            let mut found = stmt
                .query_map([title_key(title)], row_to_todo)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(match found.len() {
                0 => Err(TodoLookupError::TitleNotFound(title.trim().to_owned())),
                1 => Ok(found.remove(0)),
                _ => Err(TodoLookupError::Ambiguous {
                    title: title.trim().to_owned(),
                    candidates: found,
                }),
            })
        }
    }
}

impl Store {
    /// Adds a todo (once per effect key).
    pub async fn todo_add(
        &self,
        title: String,
        effect_key: Option<String>,
    ) -> Result<Todo, StoreError> {
        self.write(move |conn| {
            if let Some(key) = &effect_key
                && let Some(todo) = recorded::<Todo>(conn, key)?
            {
                return Ok(todo);
            }
            let todo = Todo {
                id: uuid::Uuid::now_v7().to_string(),
                title,
                done: false,
                created_at: now(),
                completed_at: None,
            };
            conn.prepare_cached(
                "INSERT INTO todos (id, title, title_key, done, created_at) VALUES (?1, ?2, ?3, 0, ?4)",
            )?
            .execute(params![todo.id, todo.title, title_key(&todo.title), todo.created_at.to_rfc3339()])?;
            if let Some(key) = &effect_key {
                record(conn, key, &todo)?;
            }
            Ok(todo)
        })
        .await
    }

    /// Todos oldest first, and how many match the filter in total.
    pub async fn todo_list(&self, filter: TodoFilter) -> Result<(Vec<Todo>, u64), StoreError> {
        self.read(move |conn| {
            let done = filter.done.map(i64::from);
            let todos = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM todos WHERE (?1 IS NULL OR done = ?1) ORDER BY seq LIMIT ?2"
                ))?
                .query_map(params![done, filter.limit as i64], row_to_todo)?
                .collect::<Result<Vec<_>, _>>()?;
            let total: i64 = if todos.len() < filter.limit {
                todos.len() as i64
            } else {
                conn.prepare_cached("SELECT COUNT(*) FROM todos WHERE (?1 IS NULL OR done = ?1)")?
                    .query_row(params![done], |r| r.get(0))?
            };
            Ok((todos, total as u64))
        })
        .await
    }

    /// Marks a todo done (once per effect key). Completing a done todo returns it unchanged.
    pub async fn todo_complete(
        &self,
        selector: TodoSelector,
        effect_key: Option<String>,
    ) -> Result<Result<Todo, TodoLookupError>, StoreError> {
        self.mutate_selected(selector, effect_key, |conn, todo| {
            if !todo.done {
                todo.done = true;
                todo.completed_at = Some(now());
                conn.prepare_cached("UPDATE todos SET done = 1, completed_at = ?2 WHERE id = ?1")?
                    .execute(params![todo.id, todo.completed_at.map(|t| t.to_rfc3339())])?;
            }
            Ok(())
        })
        .await
    }

    /// Deletes a todo (once per effect key) and returns it.
    pub async fn todo_delete(
        &self,
        selector: TodoSelector,
        effect_key: Option<String>,
    ) -> Result<Result<Todo, TodoLookupError>, StoreError> {
        self.mutate_selected(selector, effect_key, |conn, todo| {
            conn.prepare_cached("DELETE FROM todos WHERE id = ?1")?
                .execute([&todo.id])?;
            Ok(())
        })
        .await
    }

    /// Selects a todo and applies `act` to it in one transaction, once per effect key: a
    /// mutation already recorded under the key returns its recorded result instead.
    async fn mutate_selected(
        &self,
        selector: TodoSelector,
        effect_key: Option<String>,
        act: fn(&Connection, &mut Todo) -> Result<(), StoreError>,
    ) -> Result<Result<Todo, TodoLookupError>, StoreError> {
        self.write(move |conn| {
            if let Some(key) = &effect_key
                && let Some(todo) = recorded::<Todo>(conn, key)?
            {
                return Ok(Ok(todo));
            }
            let mut todo = match select(conn, &selector)? {
                Ok(t) => t,
                Err(e) => return Ok(Err(e)),
            };
            act(conn, &mut todo)?;
            if let Some(key) = &effect_key {
                record(conn, key, &todo)?;
            }
            Ok(Ok(todo))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    #[tokio::test]
    async fn titles_are_kept_exactly_and_matched_case_insensitively() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let t = store
            .todo_add("Buy \"Milk\" 🥛 Ünïcode".into(), None)
            .await
            .unwrap();
        assert_eq!(t.title, "Buy \"Milk\" 🥛 Ünïcode");
        let done = store
            .todo_complete(TodoSelector::Title("buy \"milk\" 🥛 ünïcode".into()), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.id, t.id);
        assert!(done.done && done.completed_at.is_some());
        let err = store
            .todo_delete(TodoSelector::Title("walk the dog".into()), None)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "todo not found: no todo is titled 'walk the dog' (titles match case-insensitively; list todos to see them)"
        );
    }

    #[tokio::test]
    async fn ambiguous_titles_list_candidates_and_effects_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let a = store
            .todo_add("Buy milk".into(), Some("r1:1".into()))
            .await
            .unwrap();
        let again = store
            .todo_add("Buy milk".into(), Some("r1:1".into()))
            .await
            .unwrap();
        assert_eq!(a, again);
        store.todo_add("buy milk".into(), None).await.unwrap();
        let err = store
            .todo_complete(TodoSelector::Title("BUY MILK".into()), None)
            .await
            .unwrap()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("ambiguous title 'BUY MILK': 2 todos match"),
            "{msg}"
        );
        assert!(msg.contains(&a.id), "{msg}");
        let (all, total) = store
            .todo_list(TodoFilter {
                done: None,
                limit: 100,
            })
            .await
            .unwrap();
        assert_eq!((all.len(), total), (2, 2));

        let deleted = store
            .todo_delete(TodoSelector::Id(a.id.clone()), Some("r2:1".into()))
            .await
            .unwrap()
            .unwrap();
        // Replaying the same step returns the recorded result instead of "not found".
        let replay = store
            .todo_delete(TodoSelector::Id(a.id.clone()), Some("r2:1".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(deleted, replay);
        let (_, total) = store
            .todo_list(TodoFilter {
                done: Some(false),
                limit: 1,
            })
            .await
            .unwrap();
        assert_eq!(total, 1);
    }
}
