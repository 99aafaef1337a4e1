//! The planner registry on PostgreSQL: the same records as SQLite's `registry.rs` (registered
//! prompt and variant versions, aliases, the history of alias moves, rollback).
//!
//! Several replicas may register the same version or move the same alias at once:
//! registering inserts first (`ON CONFLICT DO NOTHING`), so exactly one replica reports a
//! version `New`; every move of an alias, and a rollback with its check, run in one
//! transaction holding the alias's advisory lock, so moves of one alias never interleave and a
//! rollback replays a history no other replica is extending.

use std::collections::BTreeMap;

use sqlx::PgConnection;

use super::PgStore;
use crate::store::registry::{
    MOVE_COLUMNS, MoveColumns, compare, content_column, move_of, now, rollback_outcome,
    rollback_plan,
};
use crate::store::{AliasMove, PromptVersion, Registration, RollbackError, StoreError};

/// First key of the advisory locks on aliases (the second is the hash of the alias name):
/// the two-key lock space, apart from the migration lock's.
const ALIAS_LOCK: i32 = 0x616c_6961; // "alia"

/// Takes the advisory lock of `alias` until the transaction ends.
async fn lock_alias(conn: &mut PgConnection, alias: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(ALIAS_LOCK)
        .bind(alias)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves of `alias` (all aliases when `None`), oldest first.
async fn moves(conn: &mut PgConnection, alias: Option<&str>) -> Result<Vec<AliasMove>, StoreError> {
    let rows: Vec<MoveColumns> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MOVE_COLUMNS} FROM alias_moves WHERE $1::text IS NULL OR alias = $1 ORDER BY seq"
    )))
    .bind(alias)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(move_of).collect())
}

/// Points `alias` at `to` and records the move, in the caller's transaction (which holds the
/// alias's lock).
async fn insert_move(
    conn: &mut PgConnection,
    alias: &str,
    to: &str,
    kind: &str,
    note: Option<&str>,
) -> Result<AliasMove, StoreError> {
    let from: Option<(String,)> = sqlx::query_as("SELECT variant FROM aliases WHERE alias = $1")
        .bind(alias)
        .fetch_optional(&mut *conn)
        .await?;
    let from = from.map(|(v,)| v);
    let at = now();
    sqlx::query(
        "INSERT INTO aliases (alias, variant, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (alias) DO UPDATE SET variant = excluded.variant, updated_at = excluded.updated_at",
    )
    .bind(alias)
    .bind(to)
    .bind(&at)
    .execute(&mut *conn)
    .await?;
    let (seq,): (i64,) = sqlx::query_as(
        "INSERT INTO alias_moves (alias, from_variant, to_variant, kind, note, moved_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
    )
    .bind(alias)
    .bind(&from)
    .bind(to)
    .bind(kind)
    .bind(note)
    .bind(&at)
    .fetch_one(&mut *conn)
    .await?;
    Ok(AliasMove {
        seq,
        alias: alias.to_owned(),
        from,
        to: to.to_owned(),
        kind: kind.to_owned(),
        note: note.map(str::to_owned),
        moved_at: at,
    })
}

impl PgStore {
    /// Registers `name@version` with `hash` and its content in `table`: `New` for the replica
    /// whose insert lands, else compared with the registered hash.
    async fn register(
        &self,
        table: &'static str,
        name: &str,
        version: &str,
        hash: &str,
        content: &str,
    ) -> Result<Registration, StoreError> {
        let column = content_column(table);
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (name, version, hash, {column}, registered_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, version) DO NOTHING"
        )))
        .bind(name)
        .bind(version)
        .bind(hash)
        .bind(content)
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Registration::New);
        }
        let (registered_hash, registered_at): (String, String) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT hash, registered_at FROM {table} WHERE name = $1 AND version = $2"
            )))
            .bind(name)
            .bind(version)
            .fetch_one(&self.pool)
            .await?;
        Ok(compare(registered_hash, registered_at, hash))
    }

    /// Registers prompt template `name@version` with its content hash.
    pub async fn register_prompt(
        &self,
        name: &str,
        version: &str,
        hash: &str,
        source: &str,
    ) -> Result<Registration, StoreError> {
        self.register("prompt_versions", name, version, hash, source)
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
        self.register("variant_versions", name, version, hash, spec)
            .await
    }

    /// Every registered prompt version, by name then registration time (byte order, as in
    /// SQLite).
    pub async fn prompt_versions(&self) -> Result<Vec<PromptVersion>, StoreError> {
        let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT name, version, hash, source, registered_at FROM prompt_versions
             ORDER BY name COLLATE \"C\", registered_at COLLATE \"C\", version COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(name, version, hash, source, registered_at)| PromptVersion {
                    name,
                    version,
                    hash,
                    source,
                    registered_at,
                },
            )
            .collect())
    }

    /// Every alias and the variant it points to.
    pub async fn aliases(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT alias, variant FROM aliases")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Points `alias` at `variant` and records the move.
    pub async fn move_alias(
        &self,
        alias: &str,
        variant: &str,
        note: Option<&str>,
    ) -> Result<AliasMove, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_alias(&mut tx, alias).await?;
        let m = insert_move(&mut tx, alias, variant, "promote", note).await?;
        tx.commit().await?;
        Ok(m)
    }

    /// Moves `alias` back to where it pointed before its last promote that is not yet undone.
    /// The check passes `target` (the variant it would move to) before the move is made; an
    /// error from it cancels the rollback. History, check and move are one transaction under
    /// the alias's lock.
    pub async fn rollback_alias(
        &self,
        alias: &str,
        note: Option<&str>,
        check: impl FnOnce(&str) -> Result<(), String> + Send + 'static,
    ) -> Result<Result<AliasMove, String>, RollbackError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        lock_alias(&mut tx, alias).await?;
        let history = moves(&mut tx, Some(alias)).await?;
        let outcome = match rollback_plan(&history, check) {
            Ok(target) => {
                let m = insert_move(&mut tx, alias, &target, "rollback", note).await?;
                tx.commit().await.map_err(StoreError::from)?;
                Ok(m)
            }
            // Nothing moved: the transaction rolls back when dropped.
            Err(failure) => Err(failure),
        };
        rollback_outcome(alias.to_owned(), outcome)
    }

    /// Alias moves, oldest first; all aliases when `alias` is `None`.
    pub async fn alias_history(&self, alias: Option<&str>) -> Result<Vec<AliasMove>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        moves(&mut conn, alias).await
    }
}
