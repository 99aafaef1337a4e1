//! Evaluation results (`crane eval`): one row per eval run with a small JSON summary (for
//! listings) and the full JSON report. The store does not interpret either document.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use super::{SqliteStore, StoreError};

/// One stored eval as listed: id, time and summary (no report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalSummary {
    pub eval_id: String,
    pub created_at: String,
    pub summary: Value,
}

/// One stored eval with its full report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEval {
    pub eval_id: String,
    pub created_at: String,
    pub summary: Value,
    pub report: Value,
}

/// One page of evals, newest first.
#[derive(Debug)]
pub struct EvalPage {
    pub evals: Vec<EvalSummary>,
    /// Cursor of the next page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// Decodes a stored summary or report (`what` names it in the error).
fn decode(what: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("eval {what}: {e}")))
}

/// The eval of a stored row (`eval_id, created_at, summary, report`).
pub(super) fn stored(
    (eval_id, created_at, summary, report): (String, String, String, String),
) -> Result<StoredEval, StoreError> {
    Ok(StoredEval {
        summary: decode("summary", &summary)?,
        report: decode("report", &report)?,
        eval_id,
        created_at,
    })
}

/// Most evals on one page, and the page size when asked for more or for none.
pub(super) fn page_size(limit: usize) -> usize {
    limit.clamp(1, 200)
}

/// The page of `rows` (`seq, eval_id, created_at, summary`, newest first, up to `limit + 1`
/// of them: one extra row tells whether another page exists).
pub(super) fn page(
    rows: Vec<(i64, String, String, String)>,
    limit: usize,
) -> Result<EvalPage, StoreError> {
    let more = rows.len() > limit;
    let mut evals = Vec::with_capacity(limit);
    let mut last_seq = None;
    for (seq, eval_id, created_at, summary) in rows.into_iter().take(limit) {
        last_seq = Some(seq);
        evals.push(EvalSummary {
            eval_id,
            created_at,
            summary: decode("summary", &summary)?,
        });
    }
    Ok(EvalPage {
        evals,
        next_cursor: if more { last_seq } else { None },
    })
}

impl SqliteStore {
    /// Stores an eval's summary and report under `eval_id` (which must be new) for `tenant`.
    pub async fn insert_eval(
        &self,
        tenant: &str,
        eval_id: &str,
        created_at: &str,
        summary: &Value,
        report: &Value,
    ) -> Result<(), StoreError> {
        let tenant = tenant.to_owned();
        let eval_id = eval_id.to_owned();
        let created_at = created_at.to_owned();
        let summary = summary.to_string();
        let report = report.to_string();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO evals (eval_id, created_at, summary, report, tenant) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![eval_id, created_at, summary, report, tenant])?;
            Ok(())
        })
        .await
    }

    /// `tenant`'s eval with this id, report included.
    pub async fn get_eval(
        &self,
        tenant: &str,
        eval_id: &str,
    ) -> Result<Option<StoredEval>, StoreError> {
        let eval_id = eval_id.to_owned();
        let tenant = tenant.to_owned();
        self.read(move |conn| {
            let row: Option<(String, String, String, String)> = conn
                .prepare_cached(
                    "SELECT eval_id, created_at, summary, report FROM evals WHERE eval_id = ?1 AND tenant = ?2",
                )?
                .query_row([eval_id, tenant], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            row.map(stored).transpose()
        })
        .await
    }

    /// A page of evals (summaries only), newest first. `limit` is clamped to 1..=200; `cursor`
    /// is the `next_cursor` of the previous page.
    pub async fn list_evals(
        &self,
        tenant: &str,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<EvalPage, StoreError> {
        let tenant = tenant.to_owned();
        self.read(move |conn| {
            let limit = page_size(limit);
            let mut stmt = conn.prepare_cached(
                "SELECT seq, eval_id, created_at, summary FROM evals WHERE seq < ?1 AND tenant = ?3 ORDER BY seq DESC LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![cursor.unwrap_or(i64::MAX), limit as i64 + 1, tenant], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            page(rows, limit)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::store::{Store, StoreConfig};

    #[tokio::test]
    async fn evals_round_trip_newest_first_and_paginate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        for i in 0..3 {
            let id = format!("e{i}");
            store
                .insert_eval(
                    "default",
                    &id,
                    "2025-01-01T00:00:00Z",
                    &json!({"n": i}),
                    &json!({"eval_id": id, "cases": [i]}),
                )
                .await
                .unwrap();
        }
        let page = store.list_evals("default", 2, None).await.unwrap();
        let ids: Vec<&str> = page.evals.iter().map(|e| e.eval_id.as_str()).collect();
        assert_eq!(ids, ["e2", "e1"]);
        assert_eq!(page.evals[0].summary, json!({"n": 2}));
        let next = store
            .list_evals("default", 2, page.next_cursor)
            .await
            .unwrap();
        assert_eq!(next.evals.len(), 1);
        assert_eq!(next.evals[0].eval_id, "e0");
        assert!(next.next_cursor.is_none());

        let got = store.get_eval("default", "e1").await.unwrap().unwrap();
        assert_eq!(got.report, json!({"eval_id": "e1", "cases": [1]}));
        assert!(store.get_eval("default", "nope").await.unwrap().is_none());
        // Ids are unique.
        assert!(
            store
                .insert_eval("default", "e1", "t", &json!({}), &json!({}))
                .await
                .is_err()
        );
    }
}
