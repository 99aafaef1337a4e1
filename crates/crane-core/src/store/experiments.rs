//! The records of A/B experiments (issue 16): one row per experiment (per tenant and name, a
//! name is never reused), and per arm the running totals of its finished runs — counts, sums and
//! sums of squares of cost and latency, tokens, feedback — with a latency histogram kept as one
//! row per bucket.
//!
//! At most one experiment per tenant is `running`: a partial unique index holds that even when
//! two replicas start one at the same moment. Totals only ever grow, by increments
//! (`INSERT ... ON CONFLICT DO UPDATE SET runs = runs + excluded.runs, ...`), so replicas adding
//! the runs they finished at the same time never lose one another's update, and reading an
//! experiment's results reads these aggregates only, never the runs.
//!
//! The store does not interpret an experiment's `spec` (JSON the caller owns) nor the meaning of
//! an arm number or a histogram bucket.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, StoreError};

/// One stored experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentRecord {
    /// The tenant the experiment belongs to.
    pub tenant: String,
    /// Its name: unique per tenant, forever (a stopped experiment keeps it).
    pub name: String,
    /// `running` or `stopped`.
    pub status: String,
    /// The experiment's definition: opaque JSON the caller owns.
    pub spec: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was stopped (RFC 3339); `None` while it runs.
    pub stopped_at: Option<String>,
    /// The arm declared the winner when it stopped, if any.
    pub winner: Option<String>,
    /// A note left when it stopped, if any.
    pub note: Option<String>,
}

/// Why an experiment could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateExperimentError {
    /// The tenant has an experiment of that name already (running or stopped).
    #[error("an experiment of that name exists already (names are never reused)")]
    Duplicate,
    /// The new experiment is running and the tenant has another running one (its name).
    #[error("experiment '{0}' is running already; stop it first")]
    AnotherRunning(String),
}

/// What a batch of finished runs adds to one arm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmDelta {
    /// The experiment's tenant.
    pub tenant: String,
    /// The experiment's name.
    pub experiment: String,
    /// The arm the runs ran on.
    pub arm: u32,
    /// Runs finished.
    pub runs: u64,
    /// Of those, runs that succeeded.
    pub successes: u64,
    /// Sum of the runs' costs (USD).
    pub cost_sum: f64,
    /// Sum of the squares of the runs' costs.
    pub cost_sq: f64,
    /// Tokens the runs used.
    pub tokens: u64,
    /// Sum of the runs' latencies (ms).
    pub latency_sum_ms: f64,
    /// Sum of the squares of the runs' latencies.
    pub latency_sq_ms: f64,
    /// Runs to add per latency-histogram bucket: `(bucket, runs)`.
    pub latency_buckets: Vec<(u16, u64)>,
    /// Feedback scores received.
    pub feedback_n: u64,
    /// Sum of those scores.
    pub feedback_sum: f64,
}

/// The totals of one arm of an experiment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmTotals {
    /// The arm.
    pub arm: u32,
    /// Runs finished.
    pub runs: u64,
    /// Of those, runs that succeeded.
    pub successes: u64,
    /// Sum of the runs' costs (USD).
    pub cost_sum: f64,
    /// Sum of the squares of the runs' costs.
    pub cost_sq: f64,
    /// Tokens the runs used.
    pub tokens: u64,
    /// Sum of the runs' latencies (ms).
    pub latency_sum_ms: f64,
    /// Sum of the squares of the runs' latencies.
    pub latency_sq_ms: f64,
    /// Runs per latency-histogram bucket, `(bucket, runs)`, ascending bucket; buckets no run
    /// fell in are absent.
    pub latency_buckets: Vec<(u16, u64)>,
    /// Feedback scores received.
    pub feedback_n: u64,
    /// Sum of those scores.
    pub feedback_sum: f64,
}

/// The columns of an experiment, in the order [`ExperimentColumns`] and [`record_of`] take
/// them.
pub(super) const EXPERIMENT_COLUMNS: &str =
    "tenant, name, status, spec, created_at, stopped_at, winner, note";

/// An experiment's [`EXPERIMENT_COLUMNS`] as read.
pub(super) type ExperimentColumns = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The experiment of a row of [`EXPERIMENT_COLUMNS`].
pub(super) fn record_of(
    (tenant, name, status, spec, created_at, stopped_at, winner, note): ExperimentColumns,
) -> ExperimentRecord {
    ExperimentRecord {
        tenant,
        name,
        status,
        spec,
        created_at,
        stopped_at,
        winner,
        note,
    }
}

fn read_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExperimentRecord> {
    Ok(record_of((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    )))
}

fn read_guard(r: &rusqlite::Row<'_>) -> rusqlite::Result<GuardRecord> {
    Ok(GuardRecord {
        tenant: r.get(0)?,
        experiment: r.get(1)?,
        guard: r.get(2)?,
        status: r.get(3)?,
    })
}

/// The rollback guard of a promoted experiment, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRecord {
    /// The experiment's tenant.
    pub tenant: String,
    /// The experiment's name.
    pub experiment: String,
    /// The guard: opaque JSON the caller owns.
    pub guard: String,
    /// Its status (`watching`, `passed`, `rolled_back`).
    pub status: String,
}

/// The status of a running experiment.
pub(super) const RUNNING: &str = "running";

/// Newest first: by creation time, then by name (descending) among experiments created at the
/// same time.
pub(super) const NEWEST_FIRST: &str = "ORDER BY created_at DESC, name DESC";

/// The totals an arm's row adds up, as stored (counts as integers, sums as floats); the fields
/// are those of [`ArmTotals`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct ArmSums {
    pub runs: i64,
    pub successes: i64,
    pub cost_sum: f64,
    pub cost_sq: f64,
    pub tokens: i64,
    pub latency_sum_ms: f64,
    pub latency_sq_ms: f64,
    pub feedback_n: i64,
    pub feedback_sum: f64,
}

/// The key of an arm: tenant, experiment, arm.
pub(super) type ArmKey = (String, String, u32);

/// A batch of deltas as the rows to add: one per arm and one per (arm, bucket), each key once,
/// in ascending key order (so concurrent writers take the rows' locks in the same order and
/// never deadlock).
#[derive(Debug, Default, PartialEq)]
pub(super) struct Increments {
    /// What to add to each arm's totals.
    pub arms: BTreeMap<ArmKey, ArmSums>,
    /// Runs to add to each arm's histogram buckets.
    pub buckets: BTreeMap<(ArmKey, u16), i64>,
}

/// A count as stored (saturated).
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A sum as stored: non-finite amounts add nothing (SQLite would store NaN as NULL).
fn amount(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// Merges `deltas` into the rows to add (see [`Increments`]); buckets that add no run are left
/// out.
pub(super) fn increments(deltas: &[ArmDelta]) -> Increments {
    let mut out = Increments::default();
    for d in deltas {
        let key = (d.tenant.clone(), d.experiment.clone(), d.arm);
        let s = out.arms.entry(key.clone()).or_default();
        s.runs = s.runs.saturating_add(count(d.runs));
        s.successes = s.successes.saturating_add(count(d.successes));
        s.cost_sum += amount(d.cost_sum);
        s.cost_sq += amount(d.cost_sq);
        s.tokens = s.tokens.saturating_add(count(d.tokens));
        s.latency_sum_ms += amount(d.latency_sum_ms);
        s.latency_sq_ms += amount(d.latency_sq_ms);
        s.feedback_n = s.feedback_n.saturating_add(count(d.feedback_n));
        s.feedback_sum += amount(d.feedback_sum);
        for &(bucket, n) in &d.latency_buckets {
            if n > 0 {
                let b = out.buckets.entry((key.clone(), bucket)).or_default();
                *b = b.saturating_add(count(n));
            }
        }
    }
    out
}

/// A stored count (never negative).
pub(super) fn count_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A stored arm or bucket number.
pub(super) fn number_of<T: TryFrom<i64>>(what: &str, v: i64) -> Result<T, StoreError> {
    T::try_from(v).map_err(|_| StoreError::Corrupt(format!("experiment {what} {v} out of range")))
}

/// The columns [`totals_of`] reads, one row per arm and bucket (an arm without buckets has one
/// row with `NULL` bucket), ordered by arm then bucket; `tenant` and `experiment` are the
/// backend's placeholders for them. One statement, so one snapshot: the totals and the
/// histogram agree.
pub(super) fn totals_query(tenant: &str, experiment: &str) -> String {
    format!(
        "SELECT a.arm, a.runs, a.successes, a.cost_sum, a.cost_sq, a.tokens, a.latency_sum_ms,
                a.latency_sq_ms, a.feedback_n, a.feedback_sum, CAST(l.bucket AS BIGINT), l.n
         FROM experiment_arms a
         LEFT JOIN experiment_latency l
            ON l.tenant = a.tenant AND l.experiment = a.experiment AND l.arm = a.arm
         WHERE a.tenant = {tenant} AND a.experiment = {experiment}
         ORDER BY a.arm, l.bucket"
    )
}

/// One row of [`totals_query`]: the arm's totals, then a bucket and its count (if any).
pub(super) type TotalsRow = (i64, ArmSums, Option<i64>, Option<i64>);

/// The arms of the rows of [`totals_query`] (ordered by arm then bucket).
pub(super) fn totals_of(rows: Vec<TotalsRow>) -> Result<Vec<ArmTotals>, StoreError> {
    let mut arms: Vec<ArmTotals> = Vec::new();
    for (arm, s, bucket, n) in rows {
        let arm: u32 = number_of("arm", arm)?;
        if arms.last().is_none_or(|a| a.arm != arm) {
            arms.push(ArmTotals {
                arm,
                runs: count_of(s.runs),
                successes: count_of(s.successes),
                cost_sum: s.cost_sum,
                cost_sq: s.cost_sq,
                tokens: count_of(s.tokens),
                latency_sum_ms: s.latency_sum_ms,
                latency_sq_ms: s.latency_sq_ms,
                latency_buckets: Vec::new(),
                feedback_n: count_of(s.feedback_n),
                feedback_sum: s.feedback_sum,
            });
        }
        if let (Some(bucket), Some(n), Some(totals)) = (bucket, n, arms.last_mut()) {
            totals
                .latency_buckets
                .push((number_of("histogram bucket", bucket)?, count_of(n)));
        }
    }
    Ok(arms)
}

impl SqliteStore {
    /// Stores a new experiment, unless the tenant has one of that name already
    /// ([`CreateExperimentError::Duplicate`]) or the new one is running and the tenant has a
    /// running one ([`CreateExperimentError::AnotherRunning`]).
    pub async fn create_experiment(
        &self,
        record: &ExperimentRecord,
    ) -> Result<Result<(), CreateExperimentError>, StoreError> {
        let r = record.clone();
        self.write(move |conn| {
            // One writer: the checks and the insert see the same database.
            let exists = conn
                .prepare_cached("SELECT 1 FROM experiments WHERE tenant = ?1 AND name = ?2")?
                .query_row(params![r.tenant, r.name], |_| Ok(()))
                .optional()?;
            if exists.is_some() {
                return Ok(Err(CreateExperimentError::Duplicate));
            }
            if r.status == RUNNING {
                let running: Option<String> = conn
                    .prepare_cached(
                        "SELECT name FROM experiments WHERE tenant = ?1 AND status = 'running'",
                    )?
                    .query_row([&r.tenant], |row| row.get(0))
                    .optional()?;
                if let Some(name) = running {
                    return Ok(Err(CreateExperimentError::AnotherRunning(name)));
                }
            }
            conn.prepare_cached(&format!(
                "INSERT INTO experiments ({EXPERIMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?
            .execute(params![
                r.tenant,
                r.name,
                r.status,
                r.spec,
                r.created_at,
                r.stopped_at,
                r.winner,
                r.note
            ])?;
            Ok(Ok(()))
        })
        .await
    }

    /// The tenant's experiment of that name.
    pub async fn get_experiment(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<ExperimentRecord>, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.read_now(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE tenant = ?1 AND name = ?2"
                ))?
                .query_row(params![tenant, name], read_record)
                .optional()?)
        })
        .await
    }

    /// The tenant's experiments, newest first.
    pub async fn list_experiments(
        &self,
        tenant: &str,
    ) -> Result<Vec<ExperimentRecord>, StoreError> {
        let tenant = tenant.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE tenant = ?1 {NEWEST_FIRST}"
            ))?;
            let rows = stmt.query_map([tenant], read_record)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Every tenant's running experiment, by tenant.
    pub async fn running_experiments(&self) -> Result<Vec<ExperimentRecord>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE status = 'running'
                 ORDER BY tenant, name"
            ))?;
            let rows = stmt.query_map([], read_record)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
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
        let (tenant, name, winner, note, at) = (
            tenant.to_owned(),
            name.to_owned(),
            winner.map(str::to_owned),
            note.map(str::to_owned),
            at.to_owned(),
        );
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE experiments SET status = 'stopped', stopped_at = ?3, winner = ?4, note = ?5
                     WHERE tenant = ?1 AND name = ?2 AND status = 'running'",
                )?
                .execute(params![tenant, name, at, winner, note])?;
            Ok(changed == 1)
        })
        .await
    }

    /// Sets the rollback guard of the tenant's experiment `name` (opaque JSON) with its
    /// `status`, only while its guard status is `expected` (`None`: no guard yet) — a
    /// compare-and-set, so of two replicas deciding at once one wins. False when it was not.
    pub async fn set_experiment_guard(
        &self,
        tenant: &str,
        name: &str,
        guard: &str,
        status: &str,
        expected: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (tenant, name, guard, status, expected) = (
            tenant.to_owned(),
            name.to_owned(),
            guard.to_owned(),
            status.to_owned(),
            expected.map(str::to_owned),
        );
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE experiments SET guard = ?3, guard_status = ?4
                     WHERE tenant = ?1 AND name = ?2 AND guard_status IS ?5",
                )?
                .execute(params![tenant, name, guard, status, expected])?;
            Ok(changed == 1)
        })
        .await
    }

    /// The rollback guard of the tenant's experiment `name` and its status, if it has one.
    pub async fn experiment_guard(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<GuardRecord>, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.read_now(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT tenant, name, guard, guard_status FROM experiments
                     WHERE tenant = ?1 AND name = ?2 AND guard IS NOT NULL",
                )?
                .query_row(params![tenant, name], read_guard)
                .optional()?)
        })
        .await
    }

    /// Every experiment whose guard status is `status` (e.g. `watching`), by tenant and name.
    pub async fn experiment_guards(&self, status: &str) -> Result<Vec<GuardRecord>, StoreError> {
        let status = status.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT tenant, name, guard, guard_status FROM experiments
                 WHERE guard_status = ?1 ORDER BY tenant, name",
            )?;
            let rows = stmt.query_map([status], read_guard)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Adds every delta (totals and histogram buckets) in one transaction, by increments.
    pub async fn add_arm_deltas(&self, deltas: &[ArmDelta]) -> Result<(), StoreError> {
        let inc = increments(deltas);
        if inc.arms.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let mut arms = conn.prepare_cached(
                "INSERT INTO experiment_arms (tenant, experiment, arm, runs, successes, cost_sum,
                    cost_sq, tokens, latency_sum_ms, latency_sq_ms, feedback_n, feedback_sum)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (tenant, experiment, arm) DO UPDATE SET
                    runs = runs + excluded.runs,
                    successes = successes + excluded.successes,
                    cost_sum = cost_sum + excluded.cost_sum,
                    cost_sq = cost_sq + excluded.cost_sq,
                    tokens = tokens + excluded.tokens,
                    latency_sum_ms = latency_sum_ms + excluded.latency_sum_ms,
                    latency_sq_ms = latency_sq_ms + excluded.latency_sq_ms,
                    feedback_n = feedback_n + excluded.feedback_n,
                    feedback_sum = feedback_sum + excluded.feedback_sum",
            )?;
            for ((tenant, experiment, arm), s) in &inc.arms {
                arms.execute(params![
                    tenant,
                    experiment,
                    arm,
                    s.runs,
                    s.successes,
                    s.cost_sum,
                    s.cost_sq,
                    s.tokens,
                    s.latency_sum_ms,
                    s.latency_sq_ms,
                    s.feedback_n,
                    s.feedback_sum
                ])?;
            }
            let mut buckets = conn.prepare_cached(
                "INSERT INTO experiment_latency (tenant, experiment, arm, bucket, n)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, experiment, arm, bucket) DO UPDATE SET n = n + excluded.n",
            )?;
            for (((tenant, experiment, arm), bucket), n) in &inc.buckets {
                buckets.execute(params![tenant, experiment, arm, bucket, n])?;
            }
            Ok(())
        })
        .await
    }

    /// The totals of each arm of the tenant's experiment `name`, by arm, histograms included
    /// (read from the aggregates in one statement); arms no run was added to are absent.
    pub async fn arm_totals(&self, tenant: &str, name: &str) -> Result<Vec<ArmTotals>, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&totals_query("?1", "?2"))?;
            let rows = stmt.query_map(params![tenant, name], |r| {
                Ok((
                    r.get(0)?,
                    ArmSums {
                        runs: r.get(1)?,
                        successes: r.get(2)?,
                        cost_sum: r.get(3)?,
                        cost_sq: r.get(4)?,
                        tokens: r.get(5)?,
                        latency_sum_ms: r.get(6)?,
                        latency_sq_ms: r.get(7)?,
                        feedback_n: r.get(8)?,
                        feedback_sum: r.get(9)?,
                    },
                    r.get(10)?,
                    r.get(11)?,
                ))
            })?;
            totals_of(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{Store, StoreConfig};

    fn delta(arm: u32, runs: u64, buckets: Vec<(u16, u64)>) -> ArmDelta {
        ArmDelta {
            tenant: "acme".into(),
            experiment: "x".into(),
            arm,
            runs,
            successes: runs,
            cost_sum: 0.5,
            latency_buckets: buckets,
            ..ArmDelta::default()
        }
    }

    #[test]
    fn increments_merge_each_key_once_in_key_order() {
        let inc = increments(&[
            delta(1, 2, vec![(3, 1), (1, 1), (4, 0)]),
            delta(0, 1, vec![(3, 1)]),
            ArmDelta {
                cost_sq: f64::NAN,
                feedback_sum: -1.5,
                ..delta(1, 3, vec![(3, 2)])
            },
        ]);
        let key = |arm| ("acme".to_string(), "x".to_string(), arm);
        assert_eq!(
            inc.arms.keys().cloned().collect::<Vec<_>>(),
            [key(0), key(1)]
        );
        let one = inc.arms[&key(1)];
        assert_eq!((one.runs, one.successes, one.cost_sum), (5, 5, 1.0));
        // NaN adds nothing; negative amounts are kept (feedback may be negative).
        assert_eq!((one.cost_sq, one.feedback_sum), (0.0, -1.5));
        // Empty buckets are left out.
        assert_eq!(
            inc.buckets.into_iter().collect::<Vec<_>>(),
            [((key(0), 3), 1), ((key(1), 1), 1), ((key(1), 3), 3)]
        );
        assert_eq!(
            increments(&[ArmDelta {
                runs: u64::MAX,
                ..ArmDelta::default()
            }])
            .arms
            .values()
            .next()
            .unwrap()
            .runs,
            i64::MAX
        );
    }

    #[tokio::test]
    async fn totals_add_up_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let record = ExperimentRecord {
            tenant: "acme".into(),
            name: "x".into(),
            status: "running".into(),
            spec: "{}".into(),
            created_at: "2026-05-01T00:00:00Z".into(),
            stopped_at: None,
            winner: None,
            note: None,
        };
        store.create_experiment(&record).await.unwrap().unwrap();
        assert!(store.arm_totals("acme", "x").await.unwrap().is_empty());
        store
            .add_arm_deltas(&[delta(1, 2, vec![(3, 2)]), delta(0, 1, vec![])])
            .await
            .unwrap();
        store
            .add_arm_deltas(&[delta(1, 1, vec![(2, 1)])])
            .await
            .unwrap();
        let expected = vec![
            ArmTotals {
                arm: 0,
                runs: 1,
                successes: 1,
                cost_sum: 0.5,
                ..ArmTotals::default()
            },
            ArmTotals {
                arm: 1,
                runs: 3,
                successes: 3,
                cost_sum: 1.0,
                latency_buckets: vec![(2, 1), (3, 2)],
                ..ArmTotals::default()
            },
        ];
        assert_eq!(store.arm_totals("acme", "x").await.unwrap(), expected);
        drop(store);
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        assert_eq!(store.arm_totals("acme", "x").await.unwrap(), expected);
        assert_eq!(
            store.get_experiment("acme", "x").await.unwrap(),
            Some(record)
        );
    }
}
