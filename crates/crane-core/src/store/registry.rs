//! The planner registry's records: registered versions of prompt templates and planner
//! variants (content hash per `name@version`, so a changed file or declaration that kept its
//! version is detected), aliases (`production`, `candidate`, any name → a variant), and the
//! history of every alias move, which `rollback` replays.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{SqliteStore, StoreError};

/// The outcome of registering a `name@version` with a content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// First time this version was seen; it is now registered.
    New,
    /// Registered before with the same content.
    Unchanged,
    /// Registered before with different content: the version must be bumped.
    Changed {
        registered_hash: String,
        registered_at: String,
    },
}

/// A registered prompt-template version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromptVersion {
    pub name: String,
    pub version: String,
    pub hash: String,
    pub source: String,
    pub registered_at: String,
}

/// One move of an alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasMove {
    pub seq: i64,
    pub alias: String,
    /// The variant it pointed to before (none for the first move).
    pub from: Option<String>,
    pub to: String,
    /// `promote` or `rollback`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub moved_at: String,
}

/// Why an alias could not be rolled back.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("alias '{0}' has never been set")]
    Unknown(String),
    #[error(
        "alias '{alias}' has no earlier target to roll back to (it was first set to '{current}')"
    )]
    NothingToUndo { alias: String, current: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The time stamped on registrations and alias moves.
pub(super) fn now() -> String {
    crate::domain::now().to_rfc3339()
}

/// The column holding a registered version's content in `table`.
pub(super) fn content_column(table: &str) -> &'static str {
    if table == "prompt_versions" {
        "source"
    } else {
        "spec"
    }
}

/// Registering content with `hash` where `registered_hash` is registered already.
pub(super) fn compare(registered_hash: String, registered_at: String, hash: &str) -> Registration {
    if registered_hash == hash {
        Registration::Unchanged
    } else {
        Registration::Changed {
            registered_hash,
            registered_at,
        }
    }
}

fn register(
    conn: &rusqlite::Connection,
    table: &str,
    name: &str,
    version: &str,
    hash: &str,
    extra: &str,
) -> Result<Registration, StoreError> {
    let existing: Option<(String, String)> = conn
        .prepare_cached(&format!(
            "SELECT hash, registered_at FROM {table} WHERE name = ?1 AND version = ?2"
        ))?
        .query_row(params![name, version], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match existing {
        Some((registered_hash, registered_at)) => compare(registered_hash, registered_at, hash),
        None => {
            let column = content_column(table);
            conn.prepare_cached(&format!(
                "INSERT INTO {table} (name, version, hash, {column}, registered_at) VALUES (?1, ?2, ?3, ?4, ?5)"
            ))?
            .execute(params![name, version, hash, extra, now()])?;
            Registration::New
        }
    })
}

/// The columns of an alias move, in the order [`MoveColumns`] and [`move_of`] take them.
pub(super) const MOVE_COLUMNS: &str = "seq, alias, from_variant, to_variant, kind, note, moved_at";

/// An alias move's [`MOVE_COLUMNS`] as read.
pub(super) type MoveColumns = (
    i64,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
);

/// The move of a row of [`MOVE_COLUMNS`].
pub(super) fn move_of((seq, alias, from, to, kind, note, moved_at): MoveColumns) -> AliasMove {
    AliasMove {
        seq,
        alias,
        from,
        to,
        kind,
        note,
        moved_at,
    }
}

fn read_move(r: &rusqlite::Row<'_>) -> rusqlite::Result<AliasMove> {
    Ok(move_of((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    )))
}

fn insert_move(
    conn: &rusqlite::Connection,
    alias: &str,
    to: &str,
    kind: &str,
    note: Option<&str>,
) -> Result<AliasMove, StoreError> {
    let from: Option<String> = conn
        .prepare_cached("SELECT variant FROM aliases WHERE alias = ?1")?
        .query_row([alias], |r| r.get(0))
        .optional()?;
    let at = now();
    conn.prepare_cached(
        "INSERT INTO aliases (alias, variant, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(alias) DO UPDATE SET variant = excluded.variant, updated_at = excluded.updated_at",
    )?
    .execute(params![alias, to, at])?;
    conn.prepare_cached(
        "INSERT INTO alias_moves (alias, from_variant, to_variant, kind, note, moved_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![alias, from, to, kind, note, at])?;
    Ok(AliasMove {
        seq: conn.last_insert_rowid(),
        alias: alias.to_owned(),
        from,
        to: to.to_owned(),
        kind: kind.to_owned(),
        note: note.map(str::to_owned),
        moved_at: at,
    })
}

/// Where `rollback` takes an alias: replaying its history, a promote pushes the target it
/// replaced and a rollback pops one; the target is the top of that stack.
pub(super) fn rollback_target(history: &[AliasMove]) -> Option<String> {
    let mut stack: Vec<Option<String>> = Vec::new();
    for m in history {
        if m.kind == "rollback" {
            stack.pop();
        } else {
            stack.push(m.from.clone());
        }
    }
    stack.pop().flatten()
}

impl SqliteStore {
    /// Registers prompt template `name@version` with its content hash.
    pub async fn register_prompt(
        &self,
        name: &str,
        version: &str,
        hash: &str,
        source: &str,
    ) -> Result<Registration, StoreError> {
        let (name, version, hash, source) = (
            name.to_owned(),
            version.to_owned(),
            hash.to_owned(),
            source.to_owned(),
        );
        self.write(move |conn| register(conn, "prompt_versions", &name, &version, &hash, &source))
            .await
    }

    /// Registers planner variant `name@version` with the hash of its declaration.
    pub async fn register_variant(
        &self,
        name: &str,
        version: &str,
        hash: &str,
        spec: &str,
    ) -> Result<Registration, StoreError> {
        let (name, version, hash, spec) = (
            name.to_owned(),
            version.to_owned(),
            hash.to_owned(),
            spec.to_owned(),
        );
        self.write(move |conn| register(conn, "variant_versions", &name, &version, &hash, &spec))
            .await
    }

    /// Every registered prompt version, by name then registration time.
    pub async fn prompt_versions(&self) -> Result<Vec<PromptVersion>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, version, hash, source, registered_at FROM prompt_versions
                 ORDER BY name, registered_at, version",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(PromptVersion {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    hash: r.get(2)?,
                    source: r.get(3)?,
                    registered_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Every alias and the variant it points to.
    pub async fn aliases(&self) -> Result<BTreeMap<String, String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT alias, variant FROM aliases")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<BTreeMap<_, _>, _>>()?)
        })
        .await
    }

    /// Points `alias` at `variant` and records the move.
    pub async fn move_alias(
        &self,
        alias: &str,
        variant: &str,
        note: Option<&str>,
    ) -> Result<AliasMove, StoreError> {
        let (alias, variant, note) = (
            alias.to_owned(),
            variant.to_owned(),
            note.map(str::to_owned),
        );
        self.write(move |conn| insert_move(conn, &alias, &variant, "promote", note.as_deref()))
            .await
    }

    /// Moves `alias` back to where it pointed before its last promote that is not yet undone.
    /// The check passes `target` (the variant it would move to) before the move is made; an
    /// error from it cancels the rollback.
    pub async fn rollback_alias(
        &self,
        alias: &str,
        note: Option<&str>,
        check: impl FnOnce(&str) -> Result<(), String> + Send + 'static,
    ) -> Result<Result<AliasMove, String>, RollbackError> {
        let name = alias.to_owned();
        let (alias, note) = (alias.to_owned(), note.map(str::to_owned));
        let outcome = self
            .write(move |conn| {
                let history = moves(conn, Some(&alias))?;
                match rollback_plan(&history, check) {
                    Ok(target) => {
                        insert_move(conn, &alias, &target, "rollback", note.as_deref()).map(Ok)
                    }
                    Err(failure) => Ok(Err(failure)),
                }
            })
            .await?;
        rollback_outcome(name, outcome)
    }

    /// Alias moves, oldest first; all aliases when `alias` is `None`.
    pub async fn alias_history(&self, alias: Option<&str>) -> Result<Vec<AliasMove>, StoreError> {
        let alias = alias.map(str::to_owned);
        self.read(move |conn| moves(conn, alias.as_deref())).await
    }
}

/// Why a rollback moves nothing.
pub(super) enum RollbackFailure {
    /// The alias has no history.
    Unknown,
    /// Nothing left to undo; the alias's current target.
    Nothing(String),
    /// The check refused the target.
    Refused(String),
}

/// Where a rollback of the alias with this `history` (oldest first) moves it, once `check`
/// accepted the target.
pub(super) fn rollback_plan(
    history: &[AliasMove],
    check: impl FnOnce(&str) -> Result<(), String>,
) -> Result<String, RollbackFailure> {
    let Some(last) = history.last() else {
        return Err(RollbackFailure::Unknown);
    };
    let Some(target) = rollback_target(history) else {
        return Err(RollbackFailure::Nothing(last.to.clone()));
    };
    check(&target).map_err(RollbackFailure::Refused)?;
    Ok(target)
}

/// What `rollback_alias` of `alias` returns for the move it made or the reason it made none.
pub(super) fn rollback_outcome(
    alias: String,
    outcome: Result<AliasMove, RollbackFailure>,
) -> Result<Result<AliasMove, String>, RollbackError> {
    match outcome {
        Ok(m) => Ok(Ok(m)),
        Err(RollbackFailure::Refused(why)) => Ok(Err(why)),
        Err(RollbackFailure::Unknown) => Err(RollbackError::Unknown(alias)),
        Err(RollbackFailure::Nothing(current)) => {
            Err(RollbackError::NothingToUndo { alias, current })
        }
    }
}

fn moves(conn: &rusqlite::Connection, alias: Option<&str>) -> Result<Vec<AliasMove>, StoreError> {
    let rows = match alias {
        Some(a) => conn
            .prepare_cached(&format!(
                "SELECT {MOVE_COLUMNS} FROM alias_moves WHERE alias = ?1 ORDER BY seq"
            ))?
            .query_map([a], read_move)?
            .collect::<Result<Vec<_>, _>>()?,
        None => conn
            .prepare_cached(&format!(
                "SELECT {MOVE_COLUMNS} FROM alias_moves ORDER BY seq"
            ))?
            .query_map([], read_move)?
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::StoreConfig;

    fn store() -> (tempfile::TempDir, std::sync::Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_version_registers_once_and_a_changed_hash_is_reported() {
        let (_d, s) = store();
        let r = s
            .register_prompt("planner", "1.1.0", "aaa", "f")
            .await
            .unwrap();
        assert_eq!(r, Registration::New);
        let r = s
            .register_prompt("planner", "1.1.0", "aaa", "f")
            .await
            .unwrap();
        assert_eq!(r, Registration::Unchanged);
        let r = s
            .register_prompt("planner", "1.1.0", "bbb", "f")
            .await
            .unwrap();
        assert!(
            matches!(&r, Registration::Changed { registered_hash, .. } if registered_hash == "aaa"),
            "{r:?}"
        );
        // The changed content was not stored.
        let listed = s.prompt_versions().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].hash, "aaa");
        let r = s.register_variant("v", "1.0.0", "h1", "{}").await.unwrap();
        assert_eq!(r, Registration::New);
        let r = s.register_variant("v", "1.0.0", "h2", "{}").await.unwrap();
        assert!(matches!(r, Registration::Changed { .. }));
    }

    #[tokio::test]
    async fn rollback_undoes_promotes_in_reverse_order() {
        let (_d, s) = store();
        let ok = |_: &str| Ok(());
        s.move_alias("production", "a", None).await.unwrap();
        s.move_alias("production", "b", Some("try b"))
            .await
            .unwrap();
        let m = s.move_alias("production", "c", None).await.unwrap();
        assert_eq!(m.from.as_deref(), Some("b"));
        assert_eq!(s.aliases().await.unwrap()["production"], "c");

        let m = s
            .rollback_alias("production", Some("c is bad"), ok)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.from.as_deref(), m.to.as_str()), (Some("c"), "b"));
        assert_eq!(m.kind, "rollback");
        let m = s
            .rollback_alias("production", None, ok)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.to, "a");
        let err = s.rollback_alias("production", None, ok).await.unwrap_err();
        assert!(matches!(err, RollbackError::NothingToUndo { .. }), "{err}");
        assert_eq!(s.aliases().await.unwrap()["production"], "a");

        // A promote after rollbacks is undone first.
        s.move_alias("production", "d", None).await.unwrap();
        let m = s
            .rollback_alias("production", None, ok)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.to, "a");

        let err = s.rollback_alias("candidate", None, ok).await.unwrap_err();
        assert!(matches!(err, RollbackError::Unknown(_)), "{err}");

        let history = s.alias_history(Some("production")).await.unwrap();
        assert_eq!(
            history.iter().map(|m| m.to.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c", "b", "a", "d", "a"]
        );
        assert_eq!(history[1].note.as_deref(), Some("try b"));
    }

    #[tokio::test]
    async fn a_refused_rollback_changes_nothing() {
        let (_d, s) = store();
        s.move_alias("production", "a", None).await.unwrap();
        s.move_alias("production", "b", None).await.unwrap();
        let refused = s
            .rollback_alias("production", None, |t| Err(format!("{t} is gone")))
            .await
            .unwrap();
        assert_eq!(refused.unwrap_err(), "a is gone");
        assert_eq!(s.aliases().await.unwrap()["production"], "b");
        assert_eq!(s.alias_history(None).await.unwrap().len(), 2);
    }
}
