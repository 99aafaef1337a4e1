//! API keys on PostgreSQL: the same records as SQLite's `keys.rs` (the SHA-256 of the secret,
//! never the key), listed and revoked within an optional tenant scope.

use super::PgStore;
use crate::store::keys::{COLUMNS, KeyColumns, key_of};
use crate::store::{ApiKeyRow, StoreError};

impl PgStore {
    /// Stores a new key.
    pub async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO api_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )))
        .bind(&key.key_id)
        .bind(&key.tenant)
        .bind(key.role.as_str())
        .bind(&key.name)
        .bind(&key.hash)
        .bind(&key.created_at)
        .bind(&key.revoked_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The key with this id (revoked or not).
    pub async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        let row: Option<KeyColumns> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE key_id = $1"
        )))
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(key_of))
    }

    /// Every key (of `tenant` when given), oldest first (byte order, as in SQLite).
    pub async fn list_api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows: Vec<KeyColumns> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE $1::text IS NULL OR tenant = $1
             ORDER BY created_at COLLATE \"C\", key_id COLLATE \"C\""
        )))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(key_of).collect())
    }

    /// Revokes a key (of `tenant` when given) at `at`; `None` when there is no such key (in
    /// that scope). A key already revoked keeps its first revocation time.
    pub async fn revoke_api_key(
        &self,
        key_id: &str,
        tenant: Option<&str>,
        at: &str,
    ) -> Result<Option<ApiKeyRow>, StoreError> {
        let row: Option<KeyColumns> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3)
             WHERE key_id = $1 AND ($2::text IS NULL OR tenant = $2)
             RETURNING {COLUMNS}"
        )))
        .bind(key_id)
        .bind(tenant)
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(key_of))
    }
}
