//! Todo records on PostgreSQL: the same operations, results and errors as SQLite's `todos.rs`
//! (whose module docs describe selection by title and keyset pagination), on a database
//! several replicas write at once.
//!
//! - Exactly once per effect key across replicas: a mutation claims its key first, inserting
//!   its `tool_effects` row in the mutation's own transaction (see [`claim`]); a second
//!   transaction with the same key waits for the first and then returns what the first
//!   recorded, never acting itself.
//! - The todo a complete/delete acts on is locked (`FOR UPDATE`) before it changes, so two
//!   transactions acting on one todo behave as if one ran after the other: the second sees it
//!   done (completing it again changes nothing) or gone (it selects again).
//! - A page and its count are read by one statement (one snapshot). Counts are the sums of
//!   the `todo_counts` shards the trigger keeps (migration 1).
//! - An add is one statement (the effect key's row and the todo together): a todo add is on
//!   the path of most runs, and each round trip costs both processes CPU.

use sqlx::PgConnection;

use super::PgStore;
use crate::domain::{Timestamp, now};
use crate::store::todos::{RecordedSelection, contains_phrase, title_key, words};
use crate::store::{
    MAX_CANDIDATES, Selected, StoreError, Todo, TodoFilter, TodoLookupError, TodoMatch, TodoOrder,
    TodoPage, TodoSelector,
};

/// The columns of a todo, in [`TodoRow`] order.
type TodoRow = (String, String, bool, String, Option<String>);

/// Most times a complete/delete selects again because the todo it selected was deleted by a
/// concurrent transaction before it could lock it.
const MAX_RESELECTS: usize = 8;

/// What `output` holds while the transaction that claimed a key is still running (never
/// visible to another transaction: it is replaced before the claim commits).
const PENDING_OUTPUT: &str = "";

fn parse_time(s: &str, column: &str) -> Result<Timestamp, StoreError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&chrono::Utc))
        .map_err(|e| StoreError::Corrupt(format!("todo {column} '{s}': {e}")))
}

/// A title (or title key) as PostgreSQL stores it: text cannot hold NUL, and titles are kept
/// exactly as given (NUL included, as SQLite does), so `\` is written `\\` and NUL `\0`.
/// Injective, so equal titles have equal stored forms (exact matches compare stored forms).
fn stored_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\0', '\\']) {
        s.replace('\\', "\\\\").replace('\0', "\\0").into()
    } else {
        s.into()
    }
}

/// The title a [`stored_text`] form stands for.
fn stored_title(s: String) -> String {
    if !s.contains('\\') {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn to_todo((id, title, done, created, completed): TodoRow) -> Result<Todo, StoreError> {
    Ok(Todo {
        id,
        title: stored_title(title),
        done,
        created_at: parse_time(&created, "created_at")?,
        completed_at: completed
            .as_deref()
            .map(|c| parse_time(c, "completed_at"))
            .transpose()?,
    })
}

/// Claims `key` for the mutation of the transaction on `conn`: true when the key is new (its
/// row is inserted, with [`PENDING_OUTPUT`], and the mutation goes ahead and [`record`]s its
/// output), false when a mutation recorded under it already committed.
///
/// Why the key first, with `ON CONFLICT DO NOTHING`: the key's primary-key entry serializes
/// every transaction using the key before any of them touches a todo. A second transaction
/// inserting the same key while the first is running waits on the first's uncommitted row;
/// when the first commits, the insert does nothing and (READ COMMITTED: each statement sees
/// what committed before it) [`recorded`] reads the first one's output; when the first rolls
/// back (an error, or a lookup that found nothing, which records nothing), the second
/// inserts the key and acts itself. Locking the todo instead would not do: an add has no row
/// to lock, and two replicas selecting by title could lock different todos.
async fn claim(conn: &mut PgConnection, key: &str) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "INSERT INTO tool_effects (effect_key, output) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(key)
    .bind(PENDING_OUTPUT)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The output recorded under `key` by a committed mutation.
async fn recorded<T: serde::de::DeserializeOwned>(
    conn: &mut PgConnection,
    key: &str,
) -> Result<T, StoreError> {
    let out: Option<(String,)> =
        sqlx::query_as("SELECT output FROM tool_effects WHERE effect_key = $1")
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((out,)) = out else {
        return Err(StoreError::Corrupt(format!(
            "effect record '{key}' vanished after it was claimed"
        )));
    };
    serde_json::from_str(&out).map_err(|e| StoreError::Corrupt(format!("effect record: {e}")))
}

/// Records `value` as the output of the mutation that [`claim`]ed `key`.
async fn record<T: serde::Serialize>(
    conn: &mut PgConnection,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query("UPDATE tool_effects SET output = $2 WHERE effect_key = $1")
        .bind(key)
        .bind(json)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Selects one of `tenant`'s todos as SQLite's `select` does: by id; or by a case-insensitive
/// exact title; or else by the only title holding the given words as a phrase.
async fn select(
    conn: &mut PgConnection,
    tenant: &str,
    selector: &TodoSelector,
) -> Result<Result<Selected, TodoLookupError>, StoreError> {
    match selector {
        // PostgreSQL text cannot hold NUL, and ids never do.
        TodoSelector::Id(id) if super::has_nul(id) => {
            Ok(Err(TodoLookupError::IdNotFound(id.clone())))
        }
        TodoSelector::Id(id) => {
            let row: Option<TodoRow> = sqlx::query_as(
                "SELECT id, title, done, created_at, completed_at FROM todos
                 WHERE id = $1 AND tenant = $2",
            )
            .bind(id)
            .bind(tenant)
            .fetch_optional(&mut *conn)
            .await?;
            Ok(match row {
                Some(row) => Ok(Selected {
                    todo: to_todo(row)?,
                    matched: TodoMatch::Id,
                }),
                None => Err(TodoLookupError::IdNotFound(id.clone())),
            })
        }
        TodoSelector::Title(title) => {
            let key = title_key(title);
            let given = title.trim().to_owned();
            // The window count is taken before the LIMIT: the total of every exact match, in
            // the same statement (snapshot) as the candidates.
            let rows: Vec<(String, String, bool, String, Option<String>, i64)> = sqlx::query_as(
                "SELECT id, title, done, created_at, completed_at, COUNT(*) OVER ()
                 FROM todos WHERE tenant = $1 AND title_key = $2 ORDER BY seq LIMIT $3",
            )
            .bind(tenant)
            .bind(stored_text(&key))
            .bind(MAX_CANDIDATES as i64)
            .fetch_all(&mut *conn)
            .await?;
            let total = rows.first().map_or(0, |r| r.5);
            let mut exact = rows
                .into_iter()
                .map(|(id, title, done, created, completed, _)| {
                    to_todo((id, title, done, created, completed))
                })
                .collect::<Result<Vec<_>, _>>()?;
            match total {
                0 => select_partial(conn, tenant, &key, given).await,
                1 => Ok(exact
                    .pop()
                    .map(|todo| Selected {
                        todo,
                        matched: TodoMatch::Exact,
                    })
                    .ok_or(TodoLookupError::TitleNotFound(given))),
                n => Ok(Err(TodoLookupError::Ambiguous {
                    title: given,
                    matched: TodoMatch::Exact,
                    candidates: exact,
                    total: usize::try_from(n).unwrap_or(usize::MAX),
                })),
            }
        }
    }
}

/// The todo whose title contains the words of `key` as a phrase, when exactly one does.
async fn select_partial(
    conn: &mut PgConnection,
    tenant: &str,
    key: &str,
    given: String,
) -> Result<Result<Selected, TodoLookupError>, StoreError> {
    let phrase = words(key);
    if phrase.is_empty() {
        return Ok(Err(TodoLookupError::TitleNotFound(given)));
    }
    // As in SQLite: words hold only letters and digits, so none of LIKE's special characters
    // (% _ \) need escaping; the prefilter keeps every title holding the phrase and the word
    // check drops the rest ("recall moment" for "call mom"). One statement reads the matches
    // and their columns, oldest first, so the candidates and the total agree.
    let pattern = format!("%{}%", phrase.join("%"));
    let rows: Vec<(String, String, String, bool, String, Option<String>)> = sqlx::query_as(
        "SELECT title_key, id, title, done, created_at, completed_at FROM todos
         WHERE tenant = $1 AND title_key LIKE $2 ORDER BY seq",
    )
    .bind(tenant)
    .bind(&pattern)
    .fetch_all(&mut *conn)
    .await?;
    let mut total = 0;
    let mut candidates = Vec::new();
    for (title_key, id, title, done, created, completed) in rows {
        if !contains_phrase(&words(&stored_title(title_key)), &phrase) {
            continue;
        }
        total += 1;
        if candidates.len() < MAX_CANDIDATES {
            candidates.push(to_todo((id, title, done, created, completed))?);
        }
    }
    Ok(match total {
        0 => Err(TodoLookupError::TitleNotFound(given)),
        1 => candidates
            .pop()
            .map(|todo| Selected {
                todo,
                matched: TodoMatch::Partial,
            })
            .ok_or(TodoLookupError::TitleNotFound(given)),
        _ => Err(TodoLookupError::Ambiguous {
            title: given,
            matched: TodoMatch::Partial,
            candidates,
            total,
        }),
    })
}

/// Locks the todo with `id` until the transaction ends and returns its current state;
/// `None` when it was deleted since it was selected.
async fn lock(conn: &mut PgConnection, id: &str) -> Result<Option<Todo>, StoreError> {
    let row: Option<TodoRow> = sqlx::query_as(
        "SELECT id, title, done, created_at, completed_at FROM todos WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(to_todo).transpose()
}

/// The page statement for a `done` filter (or none) and an order, with the count of every
/// matching todo (the sum of the `todo_counts` shards) on each row — one row with no todo when
/// the page is empty. One static statement per combination, so each page plans on its own
/// index (`todos_tenant` or `todos_tenant_done`). Parameters: `$1` tenant, `$2` position,
/// `$3` rows, `$4` done (or NULL).
fn page_sql(done: bool, order: TodoOrder) -> &'static str {
    macro_rules! with_count {
        ($page:literal) => {
            concat!(
                "SELECT p.seq, p.id, p.title, p.done, p.created_at, p.completed_at, c.n
                 FROM (SELECT COALESCE(SUM(n), 0)::BIGINT AS n FROM todo_counts
                       WHERE tenant = $1 AND ($4::BOOLEAN IS NULL OR done = $4)) c
                 LEFT JOIN LATERAL (",
                $page,
                ") p ON TRUE"
            )
        };
    }
    match (done, order) {
        (false, TodoOrder::OldestFirst) => with_count!(
            "SELECT seq, id, title, done, created_at, completed_at FROM todos
             WHERE tenant = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3"
        ),
        (false, TodoOrder::NewestFirst) => with_count!(
            "SELECT seq, id, title, done, created_at, completed_at FROM todos
             WHERE tenant = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        ),
        (true, TodoOrder::OldestFirst) => with_count!(
            "SELECT seq, id, title, done, created_at, completed_at FROM todos
             WHERE tenant = $1 AND done = $4 AND seq > $2 ORDER BY seq ASC LIMIT $3"
        ),
        (true, TodoOrder::NewestFirst) => with_count!(
            "SELECT seq, id, title, done, created_at, completed_at FROM todos
             WHERE tenant = $1 AND done = $4 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        ),
    }
}

/// What a complete/delete does to the locked todo.
#[derive(Clone, Copy)]
enum Action {
    Complete,
    Delete,
}

impl PgStore {
    /// Adds a todo of `tenant` (once per effect key, across replicas), in one statement: the
    /// todo (its id and time are made here, so its recorded output is known before the
    /// statement) is inserted only when the effect key's row could be inserted with it; a key
    /// another transaction is inserting makes this one wait for it (see [`claim`]), and a key
    /// already recorded returns the recorded todo.
    pub async fn todo_add_in(
        &self,
        tenant: &str,
        title: String,
        effect_key: Option<String>,
    ) -> Result<Todo, StoreError> {
        let todo = Todo {
            id: uuid::Uuid::now_v7().to_string(),
            title,
            done: false,
            created_at: now(),
            completed_at: None,
        };
        let output =
            serde_json::to_string(&todo).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let insert = match &effect_key {
            None => sqlx::query(
                "INSERT INTO todos (id, title, title_key, done, created_at, tenant)
                 VALUES ($1, $2, $3, FALSE, $4, $5)",
            ),
            Some(_) => sqlx::query(
                "WITH claim AS (
                    INSERT INTO tool_effects (effect_key, output) VALUES ($6, $7)
                    ON CONFLICT DO NOTHING RETURNING 1)
                 INSERT INTO todos (id, title, title_key, done, created_at, tenant)
                 SELECT $1, $2, $3, FALSE, $4, $5 WHERE EXISTS (SELECT 1 FROM claim)",
            ),
        }
        .bind(&todo.id)
        .bind(stored_text(&todo.title))
        .bind(stored_text(&title_key(&todo.title)))
        .bind(todo.created_at.to_rfc3339())
        .bind(tenant);
        let insert = match &effect_key {
            None => insert,
            Some(key) => insert.bind(key).bind(output),
        };
        let added = insert.execute(&self.pool).await?.rows_affected();
        match effect_key {
            Some(key) if added == 0 => {
                let mut conn = self.pool.acquire().await?;
                recorded::<Todo>(&mut conn, &key).await
            }
            _ => Ok(todo),
        }
    }

    /// One page of todos in the filter's order, how many match the filter in all, and where
    /// the next page starts; the page and the count are read by one statement (one snapshot).
    pub async fn todo_list(&self, filter: TodoFilter) -> Result<TodoPage, StoreError> {
        let limit = filter.limit.max(1);
        // Keyset bounds: seq starts at 1, so the first page is "after 0" oldest first and
        // "before i64::MAX" newest first.
        let start = match filter.order {
            TodoOrder::OldestFirst => 0,
            TodoOrder::NewestFirst => i64::MAX,
        };
        type PageRow = (
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<bool>,
            Option<String>,
            Option<String>,
            i64,
        );
        let rows: Vec<PageRow> = sqlx::query_as(page_sql(filter.done.is_some(), filter.order))
            .bind(&filter.tenant)
            .bind(filter.after.unwrap_or(start))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1)
            .bind(filter.done)
            .fetch_all(&self.pool)
            .await?;
        let count = rows.first().map_or(0, |r| u64::try_from(r.6).unwrap_or(0));
        let mut page = Vec::with_capacity(rows.len());
        for row in rows {
            // An empty page is one row of the count with no todo.
            if let (Some(seq), Some(id), Some(title), Some(done), Some(created), completed) =
                (row.0, row.1, row.2, row.3, row.4, row.5)
            {
                page.push((seq, to_todo((id, title, done, created, completed))?));
            }
        }
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more { page.last().map(|r| r.0) } else { None };
        let todos = page.into_iter().map(|(_, t)| t).collect();
        Ok(TodoPage { todos, count, next })
    }

    /// Marks one of `tenant`'s todos done (once per effect key, across replicas). Completing
    /// a done todo returns it unchanged.
    pub async fn todo_complete_in(
        &self,
        tenant: &str,
        selector: TodoSelector,
        effect_key: Option<String>,
    ) -> Result<Result<Selected, TodoLookupError>, StoreError> {
        self.mutate_selected(tenant, selector, effect_key, Action::Complete)
            .await
    }

    /// Deletes one of `tenant`'s todos (once per effect key, across replicas) and returns it.
    pub async fn todo_delete_in(
        &self,
        tenant: &str,
        selector: TodoSelector,
        effect_key: Option<String>,
    ) -> Result<Result<Selected, TodoLookupError>, StoreError> {
        self.mutate_selected(tenant, selector, effect_key, Action::Delete)
            .await
    }

    /// Selects a todo, locks it and applies `action` to it in one transaction, once per
    /// effect key: a mutation already recorded under the key returns its recorded result
    /// instead. A lookup that finds nothing (or too much) records nothing: the transaction,
    /// and with it the key's claim, is rolled back.
    async fn mutate_selected(
        &self,
        tenant: &str,
        selector: TodoSelector,
        effect_key: Option<String>,
        action: Action,
    ) -> Result<Result<Selected, TodoLookupError>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(key) = &effect_key
            && !claim(&mut tx, key).await?
        {
            let found = recorded::<RecordedSelection>(&mut tx, key).await?;
            tx.rollback().await?;
            return Ok(Ok(found.into_selected(&selector)));
        }
        let mut reselects = 0;
        let mut selected = loop {
            let selected = match select(&mut tx, tenant, &selector).await? {
                Ok(s) => s,
                Err(e) => {
                    tx.rollback().await?;
                    return Ok(Err(e));
                }
            };
            // READ COMMITTED: the lock waits for a transaction changing the todo and returns
            // the todo as that one left it (done), or nothing (deleted: select again, which
            // now sees the deletion).
            if let Some(todo) = lock(&mut tx, &selected.todo.id).await? {
                break Selected { todo, ..selected };
            }
            reselects += 1;
            if reselects >= MAX_RESELECTS {
                return Err(StoreError::Postgres(format!(
                    "the todos matching the selection kept being deleted by other transactions ({MAX_RESELECTS} attempts)"
                )));
            }
        };
        match action {
            Action::Complete => {
                if !selected.todo.done {
                    let at = now();
                    sqlx::query("UPDATE todos SET done = TRUE, completed_at = $2 WHERE id = $1")
                        .bind(&selected.todo.id)
                        .bind(at.to_rfc3339())
                        .execute(&mut *tx)
                        .await?;
                    selected.todo.done = true;
                    selected.todo.completed_at = Some(at);
                }
            }
            Action::Delete => {
                sqlx::query("DELETE FROM todos WHERE id = $1")
                    .bind(&selected.todo.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let Some(key) = &effect_key {
            record(&mut tx, key, &selected).await?;
        }
        tx.commit().await?;
        Ok(Ok(selected))
    }
}
