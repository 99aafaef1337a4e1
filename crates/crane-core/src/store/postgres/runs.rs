//! Run records on PostgreSQL: the same operations as SQLite's `runs.rs`, plus the leases of
//! the scale-out queue (see the module docs of [`super`]).
//!
//! Every unfinished run a replica stores, retries or claims is leased to it. Saves by the
//! worker (`save_run`, `put_run`, `mark_running`) are fenced on the lease: they change the row
//! only while this replica still holds it, so a replica that lost a run (paused past its lease,
//! cut off from the database) can never overwrite what the replica that resumed it wrote.

use sqlx::PgPool;

use super::PgStore;
use crate::domain::{Run, RunStatus, Timestamp};
use crate::store::runs::{Row, decode};
use crate::store::{InsertOutcome, RunFilter, RunPage, StoreError};

fn secs(lease_ms: i64) -> f64 {
    lease_ms as f64 / 1000.0
}

/// Extends `replica`'s leases on the unfinished runs among `run_ids`.
pub(super) async fn extend(
    pool: &PgPool,
    replica: &str,
    run_ids: &[String],
    lease_ms: i64,
) -> Result<u64, StoreError> {
    if run_ids.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "UPDATE runs SET lease_until = now() + make_interval(secs => $2)
         WHERE run_id = ANY($3) AND lease_owner = $1 AND status IN ('pending', 'running')",
    )
    .bind(replica)
    .bind(secs(lease_ms))
    .bind(run_ids)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Ends every lease `replica` holds now (graceful stop): another replica resumes those runs.
pub(super) async fn release(pool: &PgPool, replica: &str) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE runs SET lease_until = now() - interval '1 second'
         WHERE lease_owner = $1 AND status IN ('pending', 'running')",
    )
    .bind(replica)
    .execute(pool)
    .await?
    .rows_affected())
}

fn is_unfinished(status: &str) -> bool {
    matches!(status, "pending" | "running")
}

impl PgStore {
    /// Inserts `row` leased to this replica; false when a run with its id or its tenant's
    /// idempotency key exists (nothing changes then).
    async fn insert_row(&self, row: &Row) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "INSERT INTO runs (run_id, status, user_id, idempotency_key, created_at, updated_at,
                               body, tenant, lease_owner, lease_until)
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, now() + make_interval(secs => $9))
             ON CONFLICT DO NOTHING",
        )
        .bind(&row.run_id)
        .bind(row.status)
        .bind(&row.user)
        .bind(&row.key)
        .bind(&row.created)
        .bind(&row.body)
        .bind(&row.tenant)
        .bind(&*self.replica)
        .bind(secs(self.lease_ms()))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Stores a new run. With an idempotency key already used by the tenant (on any replica),
    /// returns the original run.
    pub async fn insert_run(&self, run: &Run) -> Result<InsertOutcome, StoreError> {
        let row = Row::of(run)?;
        if self.insert_row(&row).await? {
            return Ok(InsertOutcome::Inserted);
        }
        if let Some(key) = &row.key {
            let body: Option<(String,)> =
                sqlx::query_as("SELECT body FROM runs WHERE tenant = $1 AND idempotency_key = $2")
                    .bind(&row.tenant)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some((body,)) = body {
                return Ok(InsertOutcome::Existing(Box::new(decode(&body)?)));
            }
        }
        Err(StoreError::Corrupt(format!(
            "run {} is stored already",
            row.run_id
        )))
    }

    /// Stores the full state of a run whether or not it is stored yet; an update only while
    /// this replica holds the run's lease.
    pub async fn put_run(&self, run: &Run) -> Result<(), StoreError> {
        let row = Row::of(run)?;
        let n = sqlx::query(
            "INSERT INTO runs (run_id, status, user_id, idempotency_key, created_at, updated_at,
                               body, tenant, lease_owner, lease_until)
             VALUES ($1, $2, $3, $4, $5, $10, $6, $7, $8, now() + make_interval(secs => $9))
             ON CONFLICT (run_id) DO UPDATE SET status = excluded.status,
                updated_at = excluded.updated_at, body = excluded.body
             WHERE runs.lease_owner = excluded.lease_owner",
        )
        .bind(&row.run_id)
        .bind(row.status)
        .bind(&row.user)
        .bind(&row.key)
        .bind(&row.created)
        .bind(&row.body)
        .bind(&row.tenant)
        .bind(&*self.replica)
        .bind(secs(self.lease_ms()))
        .bind(crate::domain::now().to_rfc3339())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::LeaseLost(row.run_id));
        }
        Ok(())
    }

    /// Stores `run` unless a run with its id is stored already; true when it stored it.
    pub async fn insert_run_if_absent(&self, run: &Run) -> Result<bool, StoreError> {
        self.insert_row(&Row::of(run)?).await
    }

    /// Saves the full state of a run this replica holds the lease on.
    pub async fn save_run(&self, run: &Run) -> Result<(), StoreError> {
        let row = Row::of(run)?;
        let n = sqlx::query(
            "UPDATE runs SET status = $2, updated_at = $3, body = $4
             WHERE run_id = $1 AND lease_owner = $5",
        )
        .bind(&row.run_id)
        .bind(row.status)
        .bind(crate::domain::now().to_rfc3339())
        .bind(&row.body)
        .bind(&*self.replica)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 1 {
            return Ok(());
        }
        let exists: Option<(i64,)> = sqlx::query_as("SELECT seq FROM runs WHERE run_id = $1")
            .bind(&row.run_id)
            .fetch_optional(&self.pool)
            .await?;
        Err(match exists {
            Some(_) => StoreError::LeaseLost(row.run_id),
            None => StoreError::Corrupt(format!("run {} is not stored", row.run_id)),
        })
    }

    /// Saves `run` only if its stored status is one of `expected` (whichever replica holds
    /// it). An unfinished result (a retry) is leased to this replica, which executes it; a
    /// finished one (a cancel) ends the lease, so the replica executing it stops at its next
    /// save.
    pub async fn save_run_if(&self, run: &Run, expected: &[RunStatus]) -> Result<bool, StoreError> {
        let row = Row::of(run)?;
        let expected: Vec<&'static str> = expected.iter().map(|s| s.as_str()).collect();
        let owner = is_unfinished(row.status).then(|| self.replica.to_string());
        let n = sqlx::query(
            "UPDATE runs SET status = $2, updated_at = $3, body = $4, lease_owner = $5,
                lease_until = CASE WHEN $5::text IS NULL THEN NULL
                                   ELSE now() + make_interval(secs => $6) END
             WHERE run_id = $1 AND status = ANY($7)",
        )
        .bind(&row.run_id)
        .bind(row.status)
        .bind(crate::domain::now().to_rfc3339())
        .bind(&row.body)
        .bind(owner)
        .bind(secs(self.lease_ms()))
        .bind(&expected)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Marks a stored `pending` run this replica holds `running`.
    pub async fn mark_running(
        &self,
        run_id: &str,
        started_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let started =
            serde_json::to_string(&started_at).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let n = sqlx::query(
            "UPDATE runs SET status = 'running', updated_at = $3,
                body = (body::jsonb || jsonb_build_object('status', 'running', 'started_at', $2::jsonb))::text
             WHERE run_id = $1 AND status = 'pending' AND lease_owner = $4",
        )
        .bind(run_id)
        .bind(started)
        .bind(crate::domain::now().to_rfc3339())
        .bind(&*self.replica)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// The run with this id.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<Run>, StoreError> {
        if super::has_nul(run_id) {
            return Ok(None);
        }
        let body: Option<(String,)> = sqlx::query_as("SELECT body FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        body.map(|(b,)| decode(&b)).transpose()
    }

    /// A page of runs, newest first.
    pub async fn list_runs(&self, filter: RunFilter) -> Result<RunPage, StoreError> {
        if filter.user_id.as_deref().is_some_and(super::has_nul) {
            return Ok(RunPage {
                runs: Vec::new(),
                next_cursor: None,
            });
        }
        let limit = filter.limit.clamp(1, 200);
        let before = filter.cursor.unwrap_or(i64::MAX);
        let mut rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, body FROM runs
             WHERE seq < $1 AND ($2::text IS NULL OR status = $2)
               AND ($3::text IS NULL OR user_id = $3) AND ($5::text IS NULL OR tenant = $5)
             ORDER BY seq DESC LIMIT $4",
        )
        .bind(before)
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.user_id)
        .bind(limit as i64 + 1)
        .bind(filter.tenant)
        .fetch_all(&self.pool)
        .await?;
        // One extra row tells whether another page exists; the cursor is the seq of the last
        // run returned.
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|(seq, _)| *seq)
        } else {
            None
        };
        let runs = rows
            .iter()
            .map(|(_, body)| decode(body))
            .collect::<Result<_, _>>()?;
        Ok(RunPage { runs, next_cursor })
    }

    /// Claims up to `limit` unfinished runs whose lease lapsed (their replica died, stopped or
    /// lost the database), oldest first: each is leased to this replica in the same statement,
    /// and rows another replica is claiming at the same moment are skipped (`SKIP LOCKED`).
    pub async fn claim_orphaned_runs(&self, limit: usize) -> Result<Vec<Run>, StoreError> {
        self.claim(limit, false).await
    }

    /// At start: [`PgStore::claim_orphaned_runs`] plus the runs this replica (the same replica
    /// id, kept in the data dir) left unfinished before it restarted, whose lease may not have
    /// lapsed yet; nothing runs here yet, so they are not in flight.
    pub async fn claim_at_start(&self) -> Result<Vec<Run>, StoreError> {
        self.claim(usize::MAX, true).await
    }

    async fn claim(&self, limit: usize, own: bool) -> Result<Vec<Run>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows: Vec<(i64, String)> = sqlx::query_as(
            "UPDATE runs SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
             WHERE seq IN (
                SELECT seq FROM runs
                WHERE status IN ('pending', 'running')
                  AND (lease_until IS NULL OR lease_until < now() OR ($4 AND lease_owner = $1))
                ORDER BY seq LIMIT $3
                FOR UPDATE SKIP LOCKED)
             RETURNING seq, body",
        )
        .bind(&*self.replica)
        .bind(secs(self.lease_ms()))
        .bind(limit)
        .bind(own)
        .fetch_all(&self.pool)
        .await?;
        rows.sort_unstable_by_key(|(seq, _)| *seq);
        rows.iter().map(|(_, body)| decode(body)).collect()
    }

    /// Number of runs per status.
    pub async fn count_runs_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM runs GROUP BY status")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
            .collect())
    }
}
