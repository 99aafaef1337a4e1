//! The audit log on PostgreSQL: the same append-only records as SQLite's `audit.rs`, listed
//! per tenant newest first by `seq` with a cursor.

use super::PgStore;
use crate::store::audit::{AuditColumns, fetch_limit, page};
use crate::store::{AuditEntry, AuditPage, StoreError};

impl PgStore {
    /// Appends an entry.
    pub async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (tenant, actor, action, target, details, at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(entry.tenant)
        .bind(entry.actor)
        .bind(entry.action)
        .bind(entry.target)
        .bind(entry.details.to_string())
        .bind(entry.at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A page of `tenant`'s audit log, newest first, `limit` entries after `cursor`.
    pub async fn list_audit(
        &self,
        tenant: &str,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<AuditPage, StoreError> {
        let rows: Vec<AuditColumns> = sqlx::query_as(
            "SELECT seq, tenant, actor, action, target, details, at FROM audit
             WHERE tenant = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(tenant)
        .bind(cursor.unwrap_or(i64::MAX))
        .bind(fetch_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(page(rows, limit))
    }
}
