//! Run records: insert (with idempotency keys), save, get, list with cursor pagination, and the
//! unfinished runs that recovery resumes.

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, StoreError};
use crate::domain::{Run, RunStatus};

/// Result of inserting a run.
#[derive(Debug)]
pub enum InsertOutcome {
    /// The run was stored.
    Inserted,
    /// A run with the same idempotency key exists; here it is.
    Existing(Box<Run>),
}

/// Filters for listing runs.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this tenant's runs (every tenant's when `None`).
    pub tenant: Option<String>,
    pub status: Option<RunStatus>,
    pub user_id: Option<String>,
    /// Page size (1..=200).
    pub limit: usize,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

/// One page of runs, newest first.
#[derive(Debug)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// Cursor of the next page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

pub(super) fn decode(body: &str) -> Result<Run, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("run body: {e}")))
}

pub(super) fn encode(run: &Run) -> Result<String, StoreError> {
    serde_json::to_string(run).map_err(|e| StoreError::Corrupt(format!("run body: {e}")))
}

/// The columns of a run's row, taken from the run before it moves to the writer.
pub(super) struct Row {
    pub(super) run_id: String,
    pub(super) status: &'static str,
    pub(super) user: Option<String>,
    pub(super) key: Option<String>,
    pub(super) created: String,
    pub(super) body: String,
    pub(super) tenant: String,
}

impl Row {
    pub(super) fn of(run: &Run) -> Result<Self, StoreError> {
        Ok(Self {
            run_id: run.run_id.clone(),
            status: run.status.as_str(),
            user: run.user_id.clone(),
            key: run.idempotency_key.clone(),
            created: run.created_at.to_rfc3339(),
            body: encode(run)?,
            tenant: run.tenant.clone(),
        })
    }
}

fn get_by_key(conn: &Connection, tenant: &str, key: &str) -> Result<Option<Run>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached(
            "SELECT body FROM runs WHERE tenant = ?1 AND idempotency_key = ?2 AND idempotency_key IS NOT NULL",
        )?
        .query_row([tenant, key], |r| r.get(0))
        .optional()?;
    body.as_deref().map(decode).transpose()
}

impl SqliteStore {
    /// Stores a new run. With an idempotency key already used, returns the original run.
    pub async fn insert_run(&self, run: &Run) -> Result<InsertOutcome, StoreError> {
        let Row {
            run_id,
            status,
            user,
            key,
            created,
            body,
            tenant,
        } = Row::of(run)?;
        self.write(move |conn| {
            if let Some(key) = &key
                && let Some(existing) = get_by_key(conn, &tenant, key)?
            {
                return Ok(InsertOutcome::Existing(Box::new(existing)));
            }
            conn.prepare_cached(
                "INSERT INTO runs (run_id, status, user_id, idempotency_key, created_at, updated_at, body, tenant)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
            )?
            .execute(params![run_id, status, user, key, created, body, tenant])?;
            Ok(InsertOutcome::Inserted)
        })
        .await
    }

    /// Stores the full state of a run whether or not it is stored yet (insert or update by
    /// run id). The runtime stores some runs only when they finish or just before their first
    /// side effect (see `runtime::submit`); every later save of such a run goes through here.
    pub async fn put_run(&self, run: &Run) -> Result<(), StoreError> {
        let Row {
            run_id,
            status,
            user,
            key,
            created,
            body,
            tenant,
        } = Row::of(run)?;
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO runs (run_id, status, user_id, idempotency_key, created_at, updated_at, body, tenant)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?8, ?6, ?7)
                 ON CONFLICT (run_id) DO UPDATE SET status = excluded.status,
                    updated_at = excluded.updated_at, body = excluded.body",
            )?
            .execute(params![
                run_id,
                status,
                user,
                key,
                created,
                body,
                tenant,
                crate::domain::now().to_rfc3339()
            ])?;
            Ok(())
        })
        .await
    }

    /// Stores `run` unless a run with its id is stored already (then nothing changes).
    /// Returns true when it stored it.
    pub async fn insert_run_if_absent(&self, run: &Run) -> Result<bool, StoreError> {
        let Row {
            run_id,
            status,
            user,
            key,
            created,
            body,
            tenant,
        } = Row::of(run)?;
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "INSERT INTO runs (run_id, status, user_id, idempotency_key, created_at, updated_at, body, tenant)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7) ON CONFLICT (run_id) DO NOTHING",
                )?
                .execute(params![run_id, status, user, key, created, body, tenant])?;
            Ok(n == 1)
        })
        .await
    }

    /// Saves the full state of an existing run.
    pub async fn save_run(&self, run: &Run) -> Result<(), StoreError> {
        let body = encode(run)?;
        let run_id = run.run_id.clone();
        let status = run.status.as_str();
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE runs SET status = ?2, updated_at = ?3, body = ?4 WHERE run_id = ?1",
                )?
                .execute(params![
                    run_id,
                    status,
                    crate::domain::now().to_rfc3339(),
                    body
                ])?;
            if n == 0 {
                return Err(StoreError::Corrupt(format!("run {run_id} is not stored")));
            }
            Ok(())
        })
        .await
    }

    /// Saves `run` only if its stored status is still `expected`; returns false otherwise.
    /// Used to move a run out of a state another actor may be changing (cancel, retry).
    pub async fn save_run_if(&self, run: &Run, expected: &[RunStatus]) -> Result<bool, StoreError> {
        let body = encode(run)?;
        let run_id = run.run_id.clone();
        let status = run.status.as_str();
        let expected: Vec<&'static str> = expected.iter().map(|s| s.as_str()).collect();
        self.write(move |conn| {
            let current: Option<String> = conn
                .prepare_cached("SELECT status FROM runs WHERE run_id = ?1")?
                .query_row([&run_id], |r| r.get(0))
                .optional()?;
            match current {
                Some(s) if expected.contains(&s.as_str()) => {
                    conn.prepare_cached(
                        "UPDATE runs SET status = ?2, updated_at = ?3, body = ?4 WHERE run_id = ?1",
                    )?
                    .execute(params![
                        run_id,
                        status,
                        crate::domain::now().to_rfc3339(),
                        body
                    ])?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
        .await
    }

    /// Marks a stored `pending` run as `running` (started at `started_at`) without rewriting
    /// the rest of its record; does nothing when the run is in any other state.
    pub async fn mark_running(
        &self,
        run_id: &str,
        started_at: crate::domain::Timestamp,
    ) -> Result<bool, StoreError> {
        let run_id = run_id.to_owned();
        let started =
            serde_json::to_value(started_at).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let started = started.to_string();
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE runs SET status = 'running', updated_at = ?3,
                        body = json_set(body, '$.status', 'running', '$.started_at', json(?2))
                     WHERE run_id = ?1 AND status = 'pending'",
                )?
                .execute(params![run_id, started, crate::domain::now().to_rfc3339()])?;
            Ok(n == 1)
        })
        .await
    }

    /// The run with this id.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<Run>, StoreError> {
        let run_id = run_id.to_owned();
        // One row by key: read on the calling thread (see `Store::read_now`).
        self.read_now(move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM runs WHERE run_id = ?1")?
                .query_row([run_id], |r| r.get(0))
                .optional()?;
            body.as_deref().map(decode).transpose()
        })
        .await
    }

    /// A page of runs, newest first.
    pub async fn list_runs(&self, filter: RunFilter) -> Result<RunPage, StoreError> {
        self.read(move |conn| {
            let limit = filter.limit.clamp(1, 200);
            let before = filter.cursor.unwrap_or(i64::MAX);
            let mut stmt = conn.prepare_cached(
                "SELECT seq, body FROM runs
                 WHERE seq < ?1 AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR user_id = ?3)
                   AND (?5 IS NULL OR tenant = ?5)
                 ORDER BY seq DESC LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![
                    before,
                    filter.status.map(|s| s.as_str()),
                    filter.user_id,
                    limit as i64 + 1,
                    filter.tenant
                ],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )?;
            let mut runs = Vec::with_capacity(limit + 1);
            for row in rows {
                let (seq, body) = row?;
                runs.push((seq, body));
            }
            // One extra row was fetched to learn whether another page exists; the cursor is the
            // seq of the last run returned.
            let next_cursor = if runs.len() > limit {
                runs.truncate(limit);
                runs.last().map(|(seq, _)| *seq)
            } else {
                None
            };
            let runs = runs
                .iter()
                .map(|(_, body)| decode(body))
                .collect::<Result<_, _>>()?;
            Ok(RunPage { runs, next_cursor })
        })
        .await
    }

    /// Ids of runs left `pending` or `running`, oldest first (recovery resumes them).
    pub async fn unfinished_run_ids(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT run_id FROM runs WHERE status IN ('pending', 'running') ORDER BY seq",
            )?;
            let ids = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ids)
        })
        .await
    }

    /// Number of runs per status.
    pub async fn count_runs_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT status, COUNT(*) FROM runs GROUP BY status")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
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
    async fn runs_round_trip_and_paginate() {
        let (_dir, store) = store();
        let mut ids = Vec::new();
        for i in 0..5 {
            let run = Run::new(format!("p{i}"), None, None);
            ids.push(run.run_id.clone());
            assert!(matches!(
                store.insert_run(&run).await.unwrap(),
                InsertOutcome::Inserted
            ));
        }
        let mut run = store.get_run(&ids[2]).await.unwrap().unwrap();
        assert_eq!(run.prompt, "p2");
        run.status = RunStatus::Completed;
        store.save_run(&run).await.unwrap();

        let page = store
            .list_runs(RunFilter {
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            page.runs
                .iter()
                .map(|r| r.prompt.as_str())
                .collect::<Vec<_>>(),
            ["p4", "p3"]
        );
        let page2 = store
            .list_runs(RunFilter {
                limit: 2,
                cursor: page.next_cursor,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            page2
                .runs
                .iter()
                .map(|r| r.prompt.as_str())
                .collect::<Vec<_>>(),
            ["p2", "p1"]
        );
        let page3 = store
            .list_runs(RunFilter {
                limit: 2,
                cursor: page2.next_cursor,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page3.runs.len(), 1);
        assert!(page3.next_cursor.is_none());

        let done = store
            .list_runs(RunFilter {
                limit: 10,
                status: Some(RunStatus::Completed),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(done.runs.len(), 1);
        assert_eq!(store.unfinished_runs().await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn idempotency_key_returns_the_original() {
        let (_dir, store) = store();
        let mut a = Run::new("first".into(), None, None);
        a.idempotency_key = Some("k1".into());
        store.insert_run(&a).await.unwrap();
        let mut b = Run::new("second".into(), None, None);
        b.idempotency_key = Some("k1".into());
        match store.insert_run(&b).await.unwrap() {
            InsertOutcome::Existing(run) => assert_eq!(run.run_id, a.run_id),
            InsertOutcome::Inserted => panic!("duplicate key inserted"),
        }
        assert!(store.get_run(&b.run_id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn mark_running_only_moves_pending_runs() {
        let (_dir, store) = store();
        let mut run = Run::new("x".into(), None, None);
        store.insert_run(&run).await.unwrap();
        let at = crate::domain::now();
        assert!(store.mark_running(&run.run_id, at).await.unwrap());
        let stored = store.get_run(&run.run_id).await.unwrap().unwrap();
        assert_eq!(
            (stored.status, stored.started_at),
            (RunStatus::Running, Some(at))
        );
        run.status = RunStatus::Completed;
        store.save_run(&run).await.unwrap();
        assert!(!store.mark_running(&run.run_id, at).await.unwrap());
        assert_eq!(
            store.get_run(&run.run_id).await.unwrap().unwrap().status,
            RunStatus::Completed
        );
    }

    #[tokio::test]
    async fn conditional_save_only_from_expected_states() {
        let (_dir, store) = store();
        let mut run = Run::new("x".into(), None, None);
        store.insert_run(&run).await.unwrap();
        run.status = RunStatus::Cancelled;
        assert!(
            store
                .save_run_if(&run, &[RunStatus::Pending])
                .await
                .unwrap()
        );
        run.status = RunStatus::Running;
        assert!(
            !store
                .save_run_if(&run, &[RunStatus::Pending])
                .await
                .unwrap()
        );
        assert_eq!(
            store.get_run(&run.run_id).await.unwrap().unwrap().status,
            RunStatus::Cancelled
        );
    }
}
