//! Todo records and their queries. Mutations take an effect key: a mutation already recorded
//! under that key returns its recorded result instead of acting twice (exactly-once side effects
//! when a step is re-executed after a crash).
//!
//! Listing is keyset-paginated on `seq` (the table's rowid, assigned in insertion order by the
//! one writer thread): a page continues strictly after (or before, newest first) the last `seq`
//! of the previous page, so todos added or deleted between pages never shift a page, never
//! repeat a todo and never skip one that existed at the first page. The `todos_done` index
//! (`done`, then the rowid implicitly) serves the filtered pages and counts.
//!
//! Selecting by title: a case-insensitive exact title wins; otherwise the todo whose title
//! contains the given words as a whole-word phrase (see [`TodoMatch::Partial`]), found with an
//! SQL `LIKE` prefilter on the lower-cased title and a word check in Rust.

use rusqlite::{Connection, OptionalExtension, params};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{SqliteStore, StoreError};
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
    /// A title: a case-insensitive exact match (surrounding whitespace ignored) wins; otherwise
    /// the one todo whose title contains these words as a phrase ([`TodoMatch::Partial`]).
    Title(String),
}

/// How the selected todo was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum TodoMatch {
    /// By its id.
    Id,
    /// Its title equals the given title, ignoring case and surrounding whitespace.
    Exact,
    /// No title equals the given one, and this is the only todo whose title contains the
    /// given words as whole words, consecutively and in the same order, ignoring case and
    /// punctuation ("call mom" matches "Call Mom tomorrow at 5pm", not "call my mom").
    Partial,
}

/// A todo selected by complete/delete, and how it was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selected {
    pub todo: Todo,
    pub matched: TodoMatch,
}

/// Most candidates an ambiguity error lists.
pub const MAX_CANDIDATES: usize = 10;

/// Why a todo could not be selected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TodoLookupError {
    #[error("todo not found: no todo has id '{0}'")]
    IdNotFound(String),
    #[error(
        "todo not found: no todo is titled '{0}' and no title contains those words (titles match case-insensitively; list todos to see them)"
    )]
    TitleNotFound(String),
    #[error("{}", ambiguous_message(title, *matched, candidates, *total))]
    Ambiguous {
        title: String,
        /// `Exact`: several titles equal the given one; `Partial`: none does and several
        /// contain its words.
        matched: TodoMatch,
        /// The first [`MAX_CANDIDATES`] matches, oldest first.
        candidates: Vec<Todo>,
        /// How many todos match in all.
        total: usize,
    },
}

fn ambiguous_message(title: &str, matched: TodoMatch, candidates: &[Todo], total: usize) -> String {
    let mut list = candidates
        .iter()
        .map(|t| format!("id {} \"{}\"", t.id, t.title))
        .collect::<Vec<_>>()
        .join(", ");
    if total > candidates.len() {
        list.push_str(&format!(" and {} more", total - candidates.len()));
    }
    match matched {
        TodoMatch::Partial => format!(
            "ambiguous title '{title}': no todo is titled exactly that and {total} todos contain those words ({list}); use the id or the full title instead"
        ),
        _ => format!("ambiguous title '{title}': {total} todos match ({list}); use the id instead"),
    }
}

/// Order of a todo listing: `oldest_first` (the order todos were added in) or `newest_first`
/// (the most recently added todo first).
// The variants carry no doc comments, so the schema is a plain string enum (tool schemas are
// shown to LLMs, where `enum` is the most widely understood form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum TodoOrder {
    #[default]
    OldestFirst,
    NewestFirst,
}

/// Filters and position of one page of todos.
#[derive(Debug, Clone)]
pub struct TodoFilter {
    /// Whose todos (`default` with auth off).
    pub tenant: String,
    /// Only done (`true`) or open (`false`) todos.
    pub done: Option<bool>,
    /// Most todos in the page.
    pub limit: usize,
    pub order: TodoOrder,
    /// Continue after this position: the [`TodoPage::next`] of the previous page (same
    /// `done` and `order`). `None`: the first page.
    pub after: Option<i64>,
}

impl Default for TodoFilter {
    fn default() -> Self {
        Self {
            tenant: crate::access::DEFAULT_TENANT.to_owned(),
            done: None,
            limit: 100,
            order: TodoOrder::OldestFirst,
            after: None,
        }
    }
}

/// One page of todos.
#[derive(Debug, Clone, PartialEq)]
pub struct TodoPage {
    pub todos: Vec<Todo>,
    /// How many todos match `done` in all, on every page.
    pub count: u64,
    /// Position of the page's last todo when more todos follow it; `None` on the last page.
    pub next: Option<i64>,
}

/// The key titles are matched by.
pub fn title_key(title: &str) -> String {
    title.trim().to_lowercase()
}

/// The words of a lower-cased title: maximal runs of letters and digits (everything else,
/// punctuation included, separates words).
pub(super) fn words(key: &str) -> Vec<&str> {
    key.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether `title` holds `phrase` as consecutive whole words.
pub(super) fn contains_phrase(title: &[&str], phrase: &[&str]) -> bool {
    !phrase.is_empty() && title.windows(phrase.len()).any(|w| w == phrase)
}

fn parse_time(s: &str, column: usize) -> rusqlite::Result<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&chrono::Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                column,
                rusqlite::types::Type::Text,
                Box::new(e),
            )
        })
}

/// A todo from the columns [`COLUMNS`] starting at index `at`.
fn todo_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Todo> {
    let created: String = r.get(at + 3)?;
    let completed: Option<String> = r.get(at + 4)?;
    Ok(Todo {
        id: r.get(at)?,
        title: r.get(at + 1)?,
        done: r.get(at + 2)?,
        created_at: parse_time(&created, at + 3)?,
        completed_at: completed
            .as_deref()
            .map(|c| parse_time(c, at + 4))
            .transpose()?,
    })
}

fn row_to_todo(r: &rusqlite::Row<'_>) -> rusqlite::Result<Todo> {
    todo_at(r, 0)
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

/// An effect recorded by complete/delete: the selection, or (recorded before `matched`
/// existed) the bare todo.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RecordedSelection {
    Selected(Selected),
    Todo(Todo),
}

impl RecordedSelection {
    /// The selection a replay of `selector` returns.
    pub(super) fn into_selected(self, selector: &TodoSelector) -> Selected {
        match self {
            Self::Selected(s) => s,
            // Recorded before partial matches existed: a title then matched exactly.
            Self::Todo(todo) => Selected {
                todo,
                matched: match selector {
                    TodoSelector::Id(_) => TodoMatch::Id,
                    TodoSelector::Title(_) => TodoMatch::Exact,
                },
            },
        }
    }
}

fn select(
    conn: &Connection,
    tenant: &str,
    selector: &TodoSelector,
) -> Result<Result<Selected, TodoLookupError>, StoreError> {
    match selector {
        TodoSelector::Id(id) => {
            let todo = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM todos WHERE id = ?1 AND tenant = ?2"
                ))?
                .query_row([id, tenant], row_to_todo)
                .optional()?;
            Ok(todo
                .map(|todo| Selected {
                    todo,
                    matched: TodoMatch::Id,
                })
                .ok_or_else(|| TodoLookupError::IdNotFound(id.clone())))
        }
        TodoSelector::Title(title) => {
            let key = title_key(title);
            let given = title.trim().to_owned();
            let mut exact = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM todos WHERE tenant = ?3 AND title_key = ?1 ORDER BY seq LIMIT ?2"
                ))?
                .query_map(params![key, MAX_CANDIDATES as i64 + 1, tenant], row_to_todo)?
                .collect::<Result<Vec<_>, _>>()?;
            match exact.len() {
                0 => {}
                1 => {
                    return Ok(Ok(Selected {
                        todo: exact.remove(0),
                        matched: TodoMatch::Exact,
                    }));
                }
                n => {
                    let total = if n > MAX_CANDIDATES {
                        conn.prepare_cached(
                            "SELECT COUNT(*) FROM todos WHERE tenant = ?2 AND title_key = ?1",
                        )?
                        .query_row([key.as_str(), tenant], |r| r.get::<_, i64>(0))?
                            as usize
                    } else {
                        n
                    };
                    exact.truncate(MAX_CANDIDATES);
                    return Ok(Err(TodoLookupError::Ambiguous {
                        title: given,
                        matched: TodoMatch::Exact,
                        candidates: exact,
                        total,
                    }));
                }
            }
            select_partial(conn, tenant, &key, given)
        }
    }
}

/// The todo whose title contains the words of `key` as a phrase, when exactly one does.
fn select_partial(
    conn: &Connection,
    tenant: &str,
    key: &str,
    given: String,
) -> Result<Result<Selected, TodoLookupError>, StoreError> {
    let phrase = words(key);
    if phrase.is_empty() {
        return Ok(Err(TodoLookupError::TitleNotFound(given)));
    }
    // Words hold only letters and digits, so none of LIKE's special characters (% _ \) need
    // escaping. Every title holding the phrase matches the pattern; the word check below
    // drops the rest ("recall moment" for "call mom").
    let pattern = format!("%{}%", phrase.join("%"));
    // Only the key and rowid: SQLite scans the (smaller) title index instead of the table.
    let mut matches: Vec<i64> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT seq, title_key FROM todos WHERE tenant = ?2 AND title_key LIKE ?1",
        )?;
        let mut rows = stmt.query([pattern.as_str(), tenant])?;
        while let Some(row) = rows.next()? {
            let title: String = row.get(1)?;
            if contains_phrase(&words(&title), &phrase) {
                matches.push(row.get(0)?);
            }
        }
    }
    let total = matches.len();
    matches.sort_unstable();
    let mut candidates = Vec::with_capacity(total.min(MAX_CANDIDATES));
    let mut by_seq = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM todos WHERE seq = ?1"))?;
    for seq in matches.iter().take(MAX_CANDIDATES) {
        candidates.push(by_seq.query_row([seq], row_to_todo)?);
    }
    Ok(match total {
        0 => Err(TodoLookupError::TitleNotFound(given)),
        1 => Ok(Selected {
            todo: candidates.remove(0),
            matched: TodoMatch::Partial,
        }),
        _ => Err(TodoLookupError::Ambiguous {
            title: given,
            matched: TodoMatch::Partial,
            candidates,
            total,
        }),
    })
}

/// One page of todos on `conn` (see [`Store::todo_list`]).
fn list_page(conn: &Connection, filter: TodoFilter) -> Result<TodoPage, StoreError> {
    let limit = filter.limit.max(1);
    // Keyset bounds: seq starts at 1, so the first page is "after 0" oldest first and
    // "before i64::MAX" newest first.
    let (cmp, dir, start) = match filter.order {
        TodoOrder::OldestFirst => (">", "ASC", 0),
        TodoOrder::NewestFirst => ("<", "DESC", i64::MAX),
    };
    let after = filter.after.unwrap_or(start);
    let done_clause = if filter.done.is_some() {
        "done = ?4 AND "
    } else {
        ""
    };
    // One static statement per (filter, order): `(?3 IS NULL OR done = ?3)` would keep SQLite
    // from using the index.
    let sql = format!(
        "SELECT seq, {COLUMNS} FROM todos WHERE tenant = ?3 AND {done_clause}seq {cmp} ?1 ORDER BY seq {dir} LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let fetch = limit as i64 + 1;
    let map = |r: &rusqlite::Row<'_>| Ok((r.get::<_, i64>(0)?, todo_at(r, 1)?));
    let mut rows = match filter.done {
        Some(done) => stmt
            .query_map(params![after, fetch, filter.tenant, done], map)?
            .collect::<Result<Vec<_>, _>>()?,
        None => stmt
            .query_map(params![after, fetch, filter.tenant], map)?
            .collect::<Result<Vec<_>, _>>()?,
    };
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(|(seq, _)| *seq)
    } else {
        None
    };
    let todos: Vec<Todo> = rows.into_iter().map(|(_, t)| t).collect();
    // A first page that is not full holds every matching todo: no need to count.
    let count = if filter.after.is_none() && !more {
        todos.len() as u64
    } else {
        // Kept by triggers in the same transactions as the todos (migration 6).
        let n: i64 = match filter.done {
            Some(done) => conn
                .prepare_cached(
                    "SELECT COALESCE(SUM(n), 0) FROM todo_counts WHERE tenant = ?2 AND done = ?1",
                )?
                .query_row(params![done, filter.tenant], |r| r.get(0))?,
            None => conn
                .prepare_cached("SELECT COALESCE(SUM(n), 0) FROM todo_counts WHERE tenant = ?1")?
                .query_row([&filter.tenant], |r| r.get(0))?,
        };
        n as u64
    };
    Ok(TodoPage { todos, count, next })
}

impl SqliteStore {
    /// Adds a todo of `tenant` (once per effect key).
    pub async fn todo_add_in(
        &self,
        tenant: &str,
        title: String,
        effect_key: Option<String>,
    ) -> Result<Todo, StoreError> {
        let tenant = tenant.to_owned();
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
                "INSERT INTO todos (id, title, title_key, done, created_at, tenant) VALUES (?1, ?2, ?3, 0, ?4, ?5)",
            )?
            .execute(params![todo.id, todo.title, title_key(&todo.title), todo.created_at.to_rfc3339(), tenant])?;
            if let Some(key) = &effect_key {
                record(conn, key, &todo)?;
            }
            Ok(todo)
        })
        .await
    }

    /// One page of todos in the filter's order, how many match the filter in all, and where
    /// the next page starts. Pages are read on one connection snapshot (page and count agree).
    pub async fn todo_list(&self, filter: TodoFilter) -> Result<TodoPage, StoreError> {
        // A page is bounded (MAX_LIST todos): read on the calling thread.
        self.read_now(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let page = list_page(&tx, filter)?;
            tx.finish()?;
            Ok(page)
        })
        .await
    }

    /// Marks one of `tenant`'s todos done (once per effect key). Completing a done todo
    /// returns it unchanged.
    pub async fn todo_complete_in(
        &self,
        tenant: &str,
        selector: TodoSelector,
        effect_key: Option<String>,
    ) -> Result<Result<Selected, TodoLookupError>, StoreError> {
        self.mutate_selected(tenant, selector, effect_key, |conn, todo| {
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

    /// Deletes one of `tenant`'s todos (once per effect key) and returns it.
    pub async fn todo_delete_in(
        &self,
        tenant: &str,
        selector: TodoSelector,
        effect_key: Option<String>,
    ) -> Result<Result<Selected, TodoLookupError>, StoreError> {
        self.mutate_selected(tenant, selector, effect_key, |conn, todo| {
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
        tenant: &str,
        selector: TodoSelector,
        effect_key: Option<String>,
        act: fn(&Connection, &mut Todo) -> Result<(), StoreError>,
    ) -> Result<Result<Selected, TodoLookupError>, StoreError> {
        let tenant = tenant.to_owned();
        self.write(move |conn| {
            if let Some(key) = &effect_key
                && let Some(found) = recorded::<RecordedSelection>(conn, key)?
            {
                return Ok(Ok(found.into_selected(&selector)));
            }
            let mut selected = match select(conn, &tenant, &selector)? {
                Ok(s) => s,
                Err(e) => return Ok(Err(e)),
            };
            act(conn, &mut selected.todo)?;
            if let Some(key) = &effect_key {
                record(conn, key, &selected)?;
            }
            Ok(Ok(selected))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::StoreConfig;

    /// The SQLite backend of a store opened by [`open`] (for queries of its own).
    fn sqlite(store: &Store) -> &SqliteStore {
        match store {
            Store::Sqlite(s) => s,
            Store::Postgres(_) => panic!("open() opens SQLite"),
        }
    }

    fn open() -> (tempfile::TempDir, std::sync::Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        (dir, store)
    }

    fn by_title(title: &str) -> TodoSelector {
        TodoSelector::Title(title.into())
    }

    #[tokio::test]
    async fn titles_are_kept_exactly_and_matched_case_insensitively() {
        let (_dir, store) = open();
        let t = store
            .todo_add("Buy \"Milk\" 🥛 Ünïcode".into(), None)
            .await
            .unwrap();
        assert_eq!(t.title, "Buy \"Milk\" 🥛 Ünïcode");
        let done = store
            .todo_complete(by_title("buy \"milk\" 🥛 ünïcode"), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.todo.id, t.id);
        assert_eq!(done.matched, TodoMatch::Exact);
        assert!(done.todo.done && done.todo.completed_at.is_some());
        let err = store
            .todo_delete(by_title("walk the dog"), None)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "todo not found: no todo is titled 'walk the dog' and no title contains those words (titles match case-insensitively; list todos to see them)"
        );
    }

    #[tokio::test]
    async fn ambiguous_titles_list_candidates_and_effects_apply_once() {
        let (_dir, store) = open();
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
            .todo_complete(by_title("BUY MILK"), None)
            .await
            .unwrap()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("ambiguous title 'BUY MILK': 2 todos match"),
            "{msg}"
        );
        assert!(msg.contains(&a.id), "{msg}");
        let page = store.todo_list(TodoFilter::default()).await.unwrap();
        assert_eq!((page.todos.len(), page.count), (2, 2));

        let deleted = store
            .todo_delete(TodoSelector::Id(a.id.clone()), Some("r2:1".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(deleted.matched, TodoMatch::Id);
        // Replaying the same step returns the recorded result instead of "not found".
        let replay = store
            .todo_delete(TodoSelector::Id(a.id.clone()), Some("r2:1".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(deleted, replay);
        let page = store
            .todo_list(TodoFilter {
                done: Some(false),
                limit: 1,
                ..TodoFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.count, 1);
    }

    #[tokio::test]
    async fn a_shorter_title_finds_the_one_todo_holding_its_words() {
        let (_dir, store) = open();
        let mom = store
            .todo_add("Call Mom tomorrow at 5pm".into(), None)
            .await
            .unwrap();
        store
            .todo_add("recall the moment".into(), None)
            .await
            .unwrap();
        store.todo_add("call my mom".into(), None).await.unwrap();
        store.todo_add("call momma".into(), None).await.unwrap();
        let found = store
            .todo_complete(by_title("call mom"), Some("r1:1".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.todo.id, mom.id);
        assert_eq!(found.matched, TodoMatch::Partial);
        assert!(found.todo.done);
        // The replay returns the recorded selection, matched kind included.
        let replay = store
            .todo_complete(by_title("call mom"), Some("r1:1".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(replay, found);
        // Punctuation and case do not matter; word order does.
        let found = store
            .todo_delete(by_title("MOM, tomorrow!"), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.todo.id, found.matched), (mom.id, TodoMatch::Partial));
        let err = store
            .todo_delete(by_title("tomorrow mom"), None)
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, TodoLookupError::TitleNotFound(ref t) if t == "tomorrow mom"));
    }

    #[tokio::test]
    async fn an_exact_title_wins_over_titles_that_contain_it() {
        let (_dir, store) = open();
        store.todo_add("buy milk today".into(), None).await.unwrap();
        let exact = store.todo_add("Buy Milk".into(), None).await.unwrap();
        store
            .todo_add("buy milk and eggs".into(), None)
            .await
            .unwrap();
        let found = store
            .todo_delete(by_title(" buy milk "), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.todo.id, found.matched), (exact.id, TodoMatch::Exact));
        // Now only partial matches are left, and there are two.
        let err = store
            .todo_delete(by_title("buy milk"), None)
            .await
            .unwrap()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "ambiguous title 'buy milk': no todo is titled exactly that and 2 todos contain those words (id "
            ),
            "{msg}"
        );
        assert!(
            msg.contains("\"buy milk today\"") && msg.contains("\"buy milk and eggs\""),
            "{msg}"
        );
        assert!(!msg.contains("more"), "{msg}");
    }

    #[tokio::test]
    async fn ambiguity_lists_at_most_ten_candidates_and_counts_the_rest() {
        let (_dir, store) = open();
        for i in 0..13 {
            store
                .todo_add(format!("water plant {i}"), None)
                .await
                .unwrap();
        }
        for _ in 0..12 {
            store.todo_add("Dup".into(), None).await.unwrap();
        }
        let err = store
            .todo_complete(by_title("water plant"), None)
            .await
            .unwrap()
            .unwrap_err();
        let TodoLookupError::Ambiguous {
            matched,
            candidates,
            total,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(
            (*matched, candidates.len(), *total),
            (TodoMatch::Partial, 10, 13)
        );
        assert_eq!(candidates[0].title, "water plant 0");
        assert!(
            err.to_string().contains("\"water plant 9\" and 3 more)"),
            "{err}"
        );
        let err = store
            .todo_complete(by_title("dup"), None)
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ambiguous title 'dup': 12 todos match"),
            "{err}"
        );
        assert!(err.to_string().contains(" and 2 more)"), "{err}");
    }

    #[tokio::test]
    async fn effects_recorded_before_match_kinds_existed_still_replay() {
        let (_dir, store) = open();
        let t = store.todo_add("buy milk".into(), None).await.unwrap();
        // What the previous version recorded for a delete: the bare todo.
        let key = "old-run:2".to_owned();
        let todo = t.clone();
        sqlite(&store)
            .write(move |conn| {
                conn.execute("DELETE FROM todos", [])?;
                record(conn, &key, &todo)
            })
            .await
            .unwrap();
        let replay = store
            .todo_delete(by_title("buy milk"), Some("old-run:2".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            replay,
            Selected {
                todo: t,
                matched: TodoMatch::Exact
            }
        );
    }

    #[test]
    fn words_split_on_anything_but_letters_and_digits() {
        assert_eq!(
            words("call mom's cell—now, at 5pm"),
            ["call", "mom", "s", "cell", "now", "at", "5pm"]
        );
        assert!(contains_phrase(
            &words("réserver un café ☕"),
            &["un", "café"]
        ));
        assert!(!contains_phrase(&words("call momma"), &["call", "mom"]));
        assert!(!contains_phrase(&words("anything"), &[]));
    }

    async fn all_pages(store: &Store, filter: TodoFilter) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut filter = filter;
        loop {
            let page = store.todo_list(filter.clone()).await.unwrap();
            pages.push(page.todos.iter().map(|t| t.title.clone()).collect());
            match page.next {
                Some(next) => filter.after = Some(next),
                None => return pages,
            }
        }
    }

    #[tokio::test]
    async fn pages_cover_every_todo_once_in_either_order() {
        let (_dir, store) = open();
        for t in ["a", "b", "c", "d", "e"] {
            store.todo_add(t.into(), None).await.unwrap();
        }
        let two = TodoFilter {
            limit: 2,
            ..TodoFilter::default()
        };
        assert_eq!(
            all_pages(&store, two.clone()).await,
            [vec!["a", "b"], vec!["c", "d"], vec!["e"]]
        );
        let newest = TodoFilter {
            order: TodoOrder::NewestFirst,
            ..two.clone()
        };
        assert_eq!(
            all_pages(&store, newest).await,
            [vec!["e", "d"], vec!["c", "b"], vec!["a"]]
        );
        // An exactly full last page says so: no empty page after it.
        let five = TodoFilter {
            limit: 5,
            ..TodoFilter::default()
        };
        let page = store.todo_list(five).await.unwrap();
        assert_eq!((page.todos.len(), page.count, page.next), (5, 5, None));
        // The count is every match, on every page.
        let page = store
            .todo_list(TodoFilter {
                after: store.todo_list(two.clone()).await.unwrap().next,
                ..two.clone()
            })
            .await
            .unwrap();
        assert_eq!((page.todos.len(), page.count), (2, 5));
    }

    #[tokio::test]
    async fn pages_stay_stable_while_todos_are_added_and_deleted() {
        let (_dir, store) = open();
        for t in ["a", "b", "c", "d"] {
            store.todo_add(t.into(), None).await.unwrap();
        }
        let two = TodoFilter {
            limit: 2,
            ..TodoFilter::default()
        };
        let first = store.todo_list(two.clone()).await.unwrap();
        // Between pages: the first todo is deleted and two are added.
        store
            .todo_delete(by_title("a"), None)
            .await
            .unwrap()
            .unwrap();
        store.todo_add("e".into(), None).await.unwrap();
        store.todo_add("f".into(), None).await.unwrap();
        let second = store
            .todo_list(TodoFilter {
                after: first.next,
                ..two.clone()
            })
            .await
            .unwrap();
        // An offset would skip "c" (everything moved up by one); the keyset does not.
        let titles: Vec<&str> = second.todos.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles, ["c", "d"]);
        assert_eq!(second.count, 5);

        // Newest first: todos added after the first page do not push old ones onto the next.
        let newest = TodoFilter {
            order: TodoOrder::NewestFirst,
            ..two.clone()
        };
        let first = store.todo_list(newest.clone()).await.unwrap();
        let titles: Vec<&str> = first.todos.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles, ["f", "e"]);
        store.todo_add("g".into(), None).await.unwrap();
        store.todo_add("h".into(), None).await.unwrap();
        let second = store
            .todo_list(TodoFilter {
                after: first.next,
                ..newest
            })
            .await
            .unwrap();
        let titles: Vec<&str> = second.todos.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles, ["d", "c"], "an offset would repeat f and e");
    }

    #[tokio::test]
    async fn filtered_pages_and_counts_use_the_done_index() {
        let (_dir, store) = open();
        for i in 0..6 {
            let t = store.todo_add(format!("t{i}"), None).await.unwrap();
            if i % 2 == 0 {
                store
                    .todo_complete(TodoSelector::Id(t.id), None)
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
        let open_first = TodoFilter {
            done: Some(false),
            limit: 2,
            ..TodoFilter::default()
        };
        let pages = all_pages(&store, open_first).await;
        assert_eq!(pages, [vec!["t1", "t3"], vec!["t5"]]);
        let done_newest = TodoFilter {
            done: Some(true),
            limit: 2,
            order: TodoOrder::NewestFirst,
            after: None,
            ..TodoFilter::default()
        };
        assert_eq!(
            all_pages(&store, done_newest).await,
            [vec!["t4", "t2"], vec!["t0"]]
        );

        // Every page query and count is an index search in key order: no full scan of the
        // table and no sort of the matching rows, however many todos there are.
        let plans = sqlite(&store)
            .read(|conn| {
                let mut plans = Vec::new();
                for done in [None, Some(true)] {
                    for order in [TodoOrder::OldestFirst, TodoOrder::NewestFirst] {
                        let (cmp, dir) = match order {
                            TodoOrder::OldestFirst => (">", "ASC"),
                            TodoOrder::NewestFirst => ("<", "DESC"),
                        };
                        let clause = if done.is_some() { "done = 1 AND " } else { "" };
                        plans.push(explain(conn, &format!(
                            "SELECT seq, {COLUMNS} FROM todos WHERE tenant = 'default' AND {clause}seq {cmp} 5 ORDER BY seq {dir} LIMIT 3"
                        ))?);
                    }
                }
                Ok(plans)
            })
            .await
            .unwrap();
        // Pages are scoped by tenant: (tenant, rowid) and (tenant, done, rowid) keep key order.
        for plan in &plans {
            assert!(plan.contains("INDEX todos_tenant"), "{plan}");
        }
        for plan in &plans[2..4] {
            assert!(plan.contains("INDEX todos_tenant_done"), "{plan}");
        }
        for plan in &plans {
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    /// The counts a page reports come from `todo_counts` (kept by triggers); they must equal
    /// COUNT(*) over the rows after every kind of change, per tenant and done/open.
    #[tokio::test]
    async fn kept_counts_equal_the_rows_after_adds_completes_and_deletes() {
        let (_dir, store) = open();
        for i in 0..7 {
            store.todo_add(format!("a{i}"), None).await.unwrap();
        }
        for i in 0..3 {
            store
                .todo_add_in("other", format!("b{i}"), None)
                .await
                .unwrap();
        }
        store
            .todo_complete(by_title("a1"), None)
            .await
            .unwrap()
            .unwrap();
        store
            .todo_complete(by_title("a2"), None)
            .await
            .unwrap()
            .unwrap();
        store
            .todo_delete(by_title("a3"), None)
            .await
            .unwrap()
            .unwrap();
        store
            .todo_delete(by_title("a2"), None)
            .await
            .unwrap()
            .unwrap();
        let counted = |tenant: &'static str, done: Option<bool>| {
            let store = store.clone();
            async move {
                let page = store
                    .todo_list(TodoFilter {
                        tenant: tenant.into(),
                        done,
                        limit: 1,
                        ..TodoFilter::default()
                    })
                    .await
                    .unwrap();
                let rows: i64 = sqlite(&store)
                    .read(move |conn| {
                        Ok(conn.query_row(
                            "SELECT COUNT(*) FROM todos WHERE tenant = ?1 AND (?2 IS NULL OR done = ?2)",
                            params![tenant, done],
                            |r| r.get(0),
                        )?)
                    })
                    .await
                    .unwrap();
                (page.count, rows as u64)
            }
        };
        for (tenant, done, want) in [
            ("default", None, 5),
            ("default", Some(true), 1),
            ("default", Some(false), 4),
            ("other", None, 3),
            ("other", Some(true), 0),
            ("nobody", None, 0),
        ] {
            let (count, rows) = counted(tenant, done).await;
            assert_eq!((count, rows), (want, want), "{tenant} {done:?}");
        }
    }

    fn explain(conn: &Connection, sql: &str) -> Result<String, StoreError> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(3))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows.join("; "))
    }
}
