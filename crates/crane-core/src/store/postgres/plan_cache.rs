//! The semantic plan cache's entries on PostgreSQL (see the SQLite module for the model).
//! Prompts and templates holding NUL (PostgreSQL text cannot) are not cached.

use super::{PgStore, has_nul};
use crate::store::StoreError;
use crate::store::plan_cache::{CACHE_COLUMNS, CacheColumns, CacheEntryRecord, entry_of};

impl PgStore {
    /// See `SqliteStore::put_cache_entry`.
    pub async fn put_cache_entry(&self, e: &CacheEntryRecord) -> Result<Option<i64>, StoreError> {
        if [
            &e.tenant,
            &e.scope,
            &e.key,
            &e.prompt,
            &e.model,
            &e.template,
        ]
        .iter()
        .any(|s| has_nul(s))
        {
            return Ok(None);
        }
        let id: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO plan_cache (tenant, scope, key, prompt, model, template, embedding,
                created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(&e.tenant)
        .bind(&e.scope)
        .bind(&e.key)
        .bind(&e.prompt)
        .bind(&e.model)
        .bind(&e.template)
        .bind(&e.embedding)
        .bind(&e.created_at)
        .bind(&e.expires_at)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.map(|(id,)| id))
    }

    /// See `SqliteStore::cache_entries_after`.
    pub async fn cache_entries_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<CacheEntryRecord>, StoreError> {
        let rows: Vec<CacheColumns> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CACHE_COLUMNS} FROM plan_cache WHERE id > $1 ORDER BY id LIMIT $2"
        )))
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(entry_of).collect())
    }

    /// See `SqliteStore::clear_cache`.
    pub async fn clear_cache(&self, tenant: &str) -> Result<u64, StoreError> {
        if has_nul(tenant) {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM plan_cache WHERE tenant = $1")
            .bind(tenant)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "INSERT INTO plan_cache_generations (tenant, generation) VALUES ($1, 1)
             ON CONFLICT (tenant) DO UPDATE
             SET generation = plan_cache_generations.generation + 1",
        )
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// See `SqliteStore::cache_generations`.
    pub async fn cache_generations(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT tenant, generation FROM plan_cache_generations")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// See `SqliteStore::delete_cache_entries`.
    pub async fn delete_cache_entries(&self, now: &str, ids: &[i64]) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM plan_cache WHERE expires_at < $1 OR id = ANY($2)")
            .bind(now)
            .bind(ids)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }
}
