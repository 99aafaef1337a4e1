//! A/B experiments on PostgreSQL: the same records as SQLite's `experiments.rs` (experiments,
//! per-arm totals, latency histograms as one row per bucket).
//!
//! Several replicas share them:
//! - creating an experiment inserts with `ON CONFLICT DO NOTHING`, so the primary key (one name
//!   per tenant, forever) and the partial unique index (one running experiment per tenant)
//!   decide a race between replicas; when the insert lands nowhere, the same transaction reads
//!   which record it met ([`CreateExperimentError::Duplicate`] or
//!   [`CreateExperimentError::AnotherRunning`]);
//! - a batch of arm deltas is two statements in one transaction (every arm row, then every
//!   bucket row, from arrays), each adding by increments, with the rows in key order so two
//!   replicas' batches lock the rows they share in the same order and never deadlock;
//! - an arm's totals and its histogram are read in one statement (one snapshot).

use super::{PgStore, has_nul};
use crate::store::experiments::{
    ArmSums, EXPERIMENT_COLUMNS, ExperimentColumns, NEWEST_FIRST, RUNNING, increments, record_of,
    totals_of, totals_query,
};
use crate::store::{
    ArmDelta, ArmTotals, CreateExperimentError, ExperimentRecord, GuardRecord, StoreError,
};

fn guard_of((tenant, experiment, guard, status): (String, String, String, String)) -> GuardRecord {
    GuardRecord {
        tenant,
        experiment,
        guard,
        status,
    }
}

/// Times a create retries when the running experiment it met stopped before it could be read.
const CREATE_ATTEMPTS: usize = 8;

/// A row of `totals_query` as PostgreSQL returns it.
type PgTotalsRow = (
    i64,
    i64,
    i64,
    f64,
    f64,
    i64,
    f64,
    f64,
    i64,
    f64,
    Option<i64>,
    Option<i64>,
);

impl PgStore {
    /// Stores a new experiment, unless the tenant has one of that name already
    /// ([`CreateExperimentError::Duplicate`]) or the new one is running and the tenant has a
    /// running one ([`CreateExperimentError::AnotherRunning`]), also when another replica
    /// creates one at the same moment.
    pub async fn create_experiment(
        &self,
        record: &ExperimentRecord,
    ) -> Result<Result<(), CreateExperimentError>, StoreError> {
        let r = record;
        let mut tx = self.pool.begin().await?;
        for _ in 0..CREATE_ATTEMPTS {
            // A conflicting row another transaction is inserting makes this wait for its
            // outcome; each statement below then reads what is committed by now.
            let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO experiments ({EXPERIMENT_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"
            )))
            .bind(&r.tenant)
            .bind(&r.name)
            .bind(&r.status)
            .bind(&r.spec)
            .bind(&r.created_at)
            .bind(&r.stopped_at)
            .bind(&r.winner)
            .bind(&r.note)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                tx.commit().await?;
                return Ok(Ok(()));
            }
            let exists: Option<(i32,)> =
                sqlx::query_as("SELECT 1 FROM experiments WHERE tenant = $1 AND name = $2")
                    .bind(&r.tenant)
                    .bind(&r.name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_some() {
                return Ok(Err(CreateExperimentError::Duplicate));
            }
            let running: Option<(String,)> = sqlx::query_as(
                "SELECT name FROM experiments WHERE tenant = $1 AND status = 'running'",
            )
            .bind(&r.tenant)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((name,)) = running
                && r.status == RUNNING
            {
                return Ok(Err(CreateExperimentError::AnotherRunning(name)));
            }
            // The running experiment it met stopped in between: try again.
        }
        Err(StoreError::Postgres(format!(
            "could not create experiment '{}': the tenant's running experiment kept changing",
            r.name
        )))
    }

    /// The tenant's experiment of that name.
    pub async fn get_experiment(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<ExperimentRecord>, StoreError> {
        if has_nul(tenant) || has_nul(name) {
            return Ok(None);
        }
        let row: Option<ExperimentColumns> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE tenant = $1 AND name = $2"
        )))
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(record_of))
    }

    /// The tenant's experiments, newest first.
    pub async fn list_experiments(
        &self,
        tenant: &str,
    ) -> Result<Vec<ExperimentRecord>, StoreError> {
        if has_nul(tenant) {
            return Ok(Vec::new());
        }
        let rows: Vec<ExperimentColumns> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE tenant = $1 {NEWEST_FIRST}"
        )))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(record_of).collect())
    }

    /// Every tenant's running experiment, by tenant.
    pub async fn running_experiments(&self) -> Result<Vec<ExperimentRecord>, StoreError> {
        let rows: Vec<ExperimentColumns> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE status = 'running'
             ORDER BY tenant, name"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(record_of).collect())
    }

    /// Stops the tenant's running experiment `name` at `at`, with its winner and note; false
    /// when no such experiment is running.
    pub async fn finish_experiment(
        &self,
        tenant: &str,
        name: &str,
        winner: Option<&str>,
        note: Option<&str>,
        at: &str,
    ) -> Result<bool, StoreError> {
        if has_nul(tenant) || has_nul(name) {
            return Ok(false);
        }
        let changed = sqlx::query(
            "UPDATE experiments SET status = 'stopped', stopped_at = $3, winner = $4, note = $5
             WHERE tenant = $1 AND name = $2 AND status = 'running'",
        )
        .bind(tenant)
        .bind(name)
        .bind(at)
        .bind(winner)
        .bind(note)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// See `SqliteStore::set_experiment_guard`.
    pub async fn set_experiment_guard(
        &self,
        tenant: &str,
        name: &str,
        guard: &str,
        status: &str,
        expected: Option<&str>,
    ) -> Result<bool, StoreError> {
        if has_nul(tenant) || has_nul(name) || has_nul(guard) || has_nul(status) {
            return Ok(false);
        }
        let changed = sqlx::query(
            "UPDATE experiments SET guard = $3, guard_status = $4
             WHERE tenant = $1 AND name = $2 AND guard_status IS NOT DISTINCT FROM $5",
        )
        .bind(tenant)
        .bind(name)
        .bind(guard)
        .bind(status)
        .bind(expected)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// See `SqliteStore::experiment_guard`.
    pub async fn experiment_guard(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<GuardRecord>, StoreError> {
        if has_nul(tenant) || has_nul(name) {
            return Ok(None);
        }
        let row: Option<(String, String, String, String)> = sqlx::query_as(
            "SELECT tenant, name, guard, guard_status FROM experiments
             WHERE tenant = $1 AND name = $2 AND guard IS NOT NULL",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(guard_of))
    }

    /// See `SqliteStore::experiment_guards`.
    pub async fn experiment_guards(&self, status: &str) -> Result<Vec<GuardRecord>, StoreError> {
        if has_nul(status) {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT tenant, name, guard, guard_status FROM experiments
             WHERE guard_status = $1 ORDER BY tenant, name",
        )
        .bind(status)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(guard_of).collect())
    }

    /// Adds every delta (totals and histogram buckets) in one transaction, by increments.
    pub async fn add_arm_deltas(&self, deltas: &[ArmDelta]) -> Result<(), StoreError> {
        let inc = increments(deltas);
        if inc.arms.is_empty() {
            return Ok(());
        }
        let n = inc.arms.len();
        let (mut tenants, mut experiments, mut arms) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut sums: Vec<ArmSums> = Vec::with_capacity(n);
        for ((tenant, experiment, arm), s) in inc.arms {
            tenants.push(tenant);
            experiments.push(experiment);
            arms.push(i64::from(arm));
            sums.push(s);
        }
        let column = |f: fn(&ArmSums) -> i64| sums.iter().map(f).collect::<Vec<i64>>();
        let amounts = |f: fn(&ArmSums) -> f64| sums.iter().map(f).collect::<Vec<f64>>();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO experiment_arms AS a (tenant, experiment, arm, runs, successes, cost_sum,
                cost_sq, tokens, latency_sum_ms, latency_sq_ms, feedback_n, feedback_sum)
             SELECT t, e, arm, runs, successes, cost_sum, cost_sq, tokens, latency_sum_ms,
                latency_sq_ms, feedback_n, feedback_sum
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                $6::float8[], $7::float8[], $8::bigint[], $9::float8[], $10::float8[],
                $11::bigint[], $12::float8[])
                WITH ORDINALITY AS u(t, e, arm, runs, successes, cost_sum, cost_sq, tokens,
                   latency_sum_ms, latency_sq_ms, feedback_n, feedback_sum, ord)
             ORDER BY ord
             ON CONFLICT (tenant, experiment, arm) DO UPDATE SET
                runs = a.runs + excluded.runs,
                successes = a.successes + excluded.successes,
                cost_sum = a.cost_sum + excluded.cost_sum,
                cost_sq = a.cost_sq + excluded.cost_sq,
                tokens = a.tokens + excluded.tokens,
                latency_sum_ms = a.latency_sum_ms + excluded.latency_sum_ms,
                latency_sq_ms = a.latency_sq_ms + excluded.latency_sq_ms,
                feedback_n = a.feedback_n + excluded.feedback_n,
                feedback_sum = a.feedback_sum + excluded.feedback_sum",
        )
        .bind(&tenants)
        .bind(&experiments)
        .bind(&arms)
        .bind(column(|s| s.runs))
        .bind(column(|s| s.successes))
        .bind(amounts(|s| s.cost_sum))
        .bind(amounts(|s| s.cost_sq))
        .bind(column(|s| s.tokens))
        .bind(amounts(|s| s.latency_sum_ms))
        .bind(amounts(|s| s.latency_sq_ms))
        .bind(column(|s| s.feedback_n))
        .bind(amounts(|s| s.feedback_sum))
        .execute(&mut *tx)
        .await?;
        if !inc.buckets.is_empty() {
            let b = inc.buckets.len();
            let (mut tenants, mut experiments, mut arms, mut buckets, mut counts) = (
                Vec::with_capacity(b),
                Vec::with_capacity(b),
                Vec::with_capacity(b),
                Vec::with_capacity(b),
                Vec::with_capacity(b),
            );
            for (((tenant, experiment, arm), bucket), n) in inc.buckets {
                tenants.push(tenant);
                experiments.push(experiment);
                arms.push(i64::from(arm));
                buckets.push(i32::from(bucket));
                counts.push(n);
            }
            sqlx::query(
                "INSERT INTO experiment_latency AS l (tenant, experiment, arm, bucket, n)
                 SELECT t, e, arm, bucket, n
                 FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::int[], $5::bigint[])
                    WITH ORDINALITY AS u(t, e, arm, bucket, n, ord)
                 ORDER BY ord
                 ON CONFLICT (tenant, experiment, arm, bucket) DO UPDATE SET n = l.n + excluded.n",
            )
            .bind(&tenants)
            .bind(&experiments)
            .bind(&arms)
            .bind(&buckets)
            .bind(&counts)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The totals of each arm of the tenant's experiment `name`, by arm, histograms included
    /// (read from the aggregates in one statement); arms no run was added to are absent.
    pub async fn arm_totals(&self, tenant: &str, name: &str) -> Result<Vec<ArmTotals>, StoreError> {
        if has_nul(tenant) || has_nul(name) {
            return Ok(Vec::new());
        }
        let rows: Vec<PgTotalsRow> = sqlx::query_as(sqlx::AssertSqlSafe(totals_query("$1", "$2")))
            .bind(tenant)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        totals_of(
            rows.into_iter()
                .map(
                    |(
                        arm,
                        runs,
                        successes,
                        cost_sum,
                        cost_sq,
                        tokens,
                        latency_sum_ms,
                        latency_sq_ms,
                        feedback_n,
                        feedback_sum,
                        bucket,
                        n,
                    )| {
                        (
                            arm,
                            ArmSums {
                                runs,
                                successes,
                                cost_sum,
                                cost_sq,
                                tokens,
                                latency_sum_ms,
                                latency_sq_ms,
                                feedback_n,
                                feedback_sum,
                            },
                            bucket,
                            n,
                        )
                    },
                )
                .collect(),
        )
    }
}
