//! Evaluation results on PostgreSQL: the same records and paging as SQLite's `evals.rs`
//! (summary and report stored as JSON text, listed newest first by `seq` with a cursor), one
//! statement per call.

use serde_json::Value;

use super::PgStore;
use crate::store::evals::{page, page_size, stored};
use crate::store::{EvalPage, StoreError, StoredEval};

impl PgStore {
    /// Stores an eval's summary and report under `eval_id` (which must be new) for `tenant`.
    pub async fn insert_eval(
        &self,
        tenant: &str,
        eval_id: &str,
        created_at: &str,
        summary: &Value,
        report: &Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO evals (eval_id, created_at, summary, report, tenant)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(eval_id)
        .bind(created_at)
        .bind(summary.to_string())
        .bind(report.to_string())
        .bind(tenant)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `tenant`'s eval with this id, report included.
    pub async fn get_eval(
        &self,
        tenant: &str,
        eval_id: &str,
    ) -> Result<Option<StoredEval>, StoreError> {
        if super::has_nul(eval_id) {
            return Ok(None);
        }
        let row: Option<(String, String, String, String)> = sqlx::query_as(
            "SELECT eval_id, created_at, summary, report FROM evals
             WHERE eval_id = $1 AND tenant = $2",
        )
        .bind(eval_id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        row.map(stored).transpose()
    }

    /// A page of `tenant`'s evals (summaries only), newest first. `limit` is clamped to
    /// 1..=200; `cursor` is the `next_cursor` of the previous page.
    pub async fn list_evals(
        &self,
        tenant: &str,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<EvalPage, StoreError> {
        let limit = page_size(limit);
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT seq, eval_id, created_at, summary FROM evals
             WHERE seq < $1 AND tenant = $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(cursor.unwrap_or(i64::MAX))
        .bind(tenant)
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        page(rows, limit)
    }
}
