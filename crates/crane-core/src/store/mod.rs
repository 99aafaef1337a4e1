//! The durable store behind one interface, [`Store`], with two backends:
//!
//! - embedded SQLite (WAL) in the data dir, the default ([`sqlite`]: group commit, a read pool,
//!   a checkpoint thread); the queries of each record kind live beside its types (`runs.rs`,
//!   `todos.rs`, ...);
//! - PostgreSQL ([`postgres`]), shared by several crane replicas (`CRANE_DATABASE_URL`): the
//!   same records and guarantees, plus leases on the runs a replica executes, so another
//!   replica resumes the runs of one that died.
//!
//! [`Store`] is an enum over the two, so callers hold one concrete `Arc<Store>` and every call
//! is a match, not a virtual call through a boxed future. Each backend has its own migrations.

mod audit;
mod budgets;
mod checkpoint;
mod evals;
mod experiments;
mod keys;
mod migrations;
pub(crate) mod plan_cache;
mod pool;
pub mod postgres;
mod registry;
mod runs;
mod sqlite;
mod todos;
mod writer;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

pub use audit::{AuditEntry, AuditPage};
pub use budgets::{BudgetSpendRow, SpendUpdate};
pub use evals::{EvalPage, EvalSummary, StoredEval};
pub use experiments::{ArmDelta, ArmTotals, CreateExperimentError, ExperimentRecord, GuardRecord};
pub use keys::ApiKeyRow;
pub use plan_cache::CacheEntryRecord;
pub use postgres::PgStore;
pub use registry::{AliasMove, PromptVersion, Registration, RollbackError};
pub use runs::{InsertOutcome, RunFilter, RunPage};
pub use sqlite::SqliteStore;
pub use todos::{
    MAX_CANDIDATES, Selected, Todo, TodoFilter, TodoLookupError, TodoMatch, TodoOrder, TodoPage,
    TodoSelector,
};

use crate::domain::{Run, RunStatus, Timestamp};

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Postgres(String),
    /// The database cannot be reached (PostgreSQL down, or no connection free in time).
    #[error("the database is unavailable ({0}); retry when it is back")]
    Unavailable(String),
    #[error("could not open the data dir {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the database was written by a newer crane (schema version {found}, this build knows {known}); upgrade crane"
    )]
    TooNew { found: i64, known: i64 },
    /// Another replica took over the run (this replica's lease on it lapsed).
    #[error("run {0} is now executed by another replica (this replica's lease on it lapsed)")]
    LeaseLost(String),
    #[error("the store is shut down")]
    Closed,
}

impl StoreError {
    /// True for failures that may pass on their own (a busy or locked database, a database
    /// that is down for a moment).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            Self::Unavailable(_) => true,
            _ => false,
        }
    }
}

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Survives a killed process (the default).
    #[default]
    Normal,
    /// Also survives an OS crash or power loss.
    Full,
}

/// Store settings.
#[derive(Clone)]
pub struct StoreConfig {
    pub synchronous: Synchronous,
    /// Read-only connections in the pool (SQLite).
    pub readers: usize,
    /// Most writes grouped in one transaction (SQLite).
    pub max_batch: usize,
    /// `postgres://...`: use this PostgreSQL database instead of SQLite in the data dir.
    /// May hold a password: never logged (see the `Debug` impl).
    pub database_url: Option<String>,
    /// Most connections this replica opens to PostgreSQL.
    pub pool_size: u32,
    /// How long a replica's claim on a run it executes lasts without a heartbeat
    /// (PostgreSQL): after it, another replica resumes the run.
    pub lease: std::time::Duration,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("synchronous", &self.synchronous)
            .field("readers", &self.readers)
            .field("max_batch", &self.max_batch)
            .field(
                "database_url",
                &self.database_url.as_deref().map(postgres::redact_url),
            )
            .field("pool_size", &self.pool_size)
            .field("lease", &self.lease)
            .finish()
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Normal,
            readers: 4,
            max_batch: 512,
            database_url: None,
            pool_size: 16,
            lease: std::time::Duration::from_secs(10),
        }
    }
}

/// The durable store: SQLite or PostgreSQL (see the module docs).
// One per process, behind an Arc: the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Calls the same method on whichever backend the store is.
macro_rules! on_backend {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$method($($arg),*).await,
            Store::Postgres(p) => p.$method($($arg),*).await,
        }
    };
}

impl Store {
    /// Opens (creating if needed) the SQLite database `crane.db` in `data_dir` and applies
    /// pending migrations.
    pub fn open(data_dir: &Path, config: &StoreConfig) -> Result<Arc<Self>, StoreError> {
        Ok(Arc::new(Self::Sqlite(SqliteStore::open(data_dir, config)?)))
    }

    /// Opens the store `config` names: PostgreSQL when it has a `database_url` (migrating it),
    /// else SQLite in `data_dir`.
    pub async fn connect(data_dir: &Path, config: &StoreConfig) -> Result<Arc<Self>, StoreError> {
        match &config.database_url {
            Some(url) => {
                let replica = postgres::replica_id(data_dir)?;
                Ok(Arc::new(Self::Postgres(
                    PgStore::connect(url, &replica, config).await?,
                )))
            }
            None => Self::open(data_dir, config),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The PostgreSQL backend, when this is one.
    pub fn postgres(&self) -> Option<&PgStore> {
        match self {
            Self::Postgres(p) => Some(p),
            Self::Sqlite(_) => None,
        }
    }

    /// Stops writing: SQLite finishes the writes already queued; PostgreSQL releases this
    /// replica's leases and closes its pool. Later writes fail with `Closed`.
    pub async fn close(&self) {
        on_backend!(self.close())
    }

    // Runs.

    /// Stores a new run. With an idempotency key the tenant used already, returns that run.
    pub async fn insert_run(&self, run: &Run) -> Result<InsertOutcome, StoreError> {
        on_backend!(self.insert_run(run))
    }

    /// Stores the full state of a run whether or not it is stored yet (insert or update by
    /// run id).
    pub async fn put_run(&self, run: &Run) -> Result<(), StoreError> {
        on_backend!(self.put_run(run))
    }

    /// Stores `run` unless a run with its id is stored already; true when it stored it.
    pub async fn insert_run_if_absent(&self, run: &Run) -> Result<bool, StoreError> {
        on_backend!(self.insert_run_if_absent(run))
    }

    /// Saves the full state of an existing run.
    pub async fn save_run(&self, run: &Run) -> Result<(), StoreError> {
        on_backend!(self.save_run(run))
    }

    /// Saves `run` only if its stored status is one of `expected`; false otherwise.
    pub async fn save_run_if(&self, run: &Run, expected: &[RunStatus]) -> Result<bool, StoreError> {
        on_backend!(self.save_run_if(run, expected))
    }

    /// Marks a stored `pending` run `running`; false when it is in any other state.
    pub async fn mark_running(
        &self,
        run_id: &str,
        started_at: Timestamp,
    ) -> Result<bool, StoreError> {
        on_backend!(self.mark_running(run_id, started_at))
    }

    /// The run with this id.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<Run>, StoreError> {
        on_backend!(self.get_run(run_id))
    }

    /// A page of runs, newest first.
    pub async fn list_runs(&self, filter: RunFilter) -> Result<RunPage, StoreError> {
        on_backend!(self.list_runs(filter))
    }

    /// Runs left `pending` or `running` that this process should resume at start, oldest
    /// first: with SQLite every one; with PostgreSQL its own (same replica id) and those whose
    /// replica's lease lapsed, which this replica now holds (see [`Store::claim_orphaned_runs`]).
    pub async fn unfinished_runs(&self) -> Result<Vec<Run>, StoreError> {
        match self {
            Self::Sqlite(s) => {
                let mut runs = Vec::new();
                for id in s.unfinished_run_ids().await? {
                    if let Some(run) = s.get_run(&id).await? {
                        runs.push(run);
                    }
                }
                Ok(runs)
            }
            Self::Postgres(p) => p.claim_at_start().await,
        }
    }

    /// PostgreSQL: claims up to `limit` unfinished runs whose replica's lease lapsed (a replica
    /// that died or lost the database), oldest first, with `FOR UPDATE SKIP LOCKED`, so two
    /// replicas never claim the same run. SQLite: none (one process owns the data dir).
    pub async fn claim_orphaned_runs(&self, limit: usize) -> Result<Vec<Run>, StoreError> {
        match self {
            Self::Sqlite(_) => Ok(Vec::new()),
            Self::Postgres(p) => p.claim_orphaned_runs(limit).await,
        }
    }

    /// PostgreSQL: extends this replica's leases on the runs it executes (`run_ids`). SQLite:
    /// nothing to do.
    pub async fn extend_leases(&self, run_ids: &[String]) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(_) => Ok(0),
            Self::Postgres(p) => p.extend_leases(run_ids).await,
        }
    }

    /// Number of runs per status.
    pub async fn count_runs_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
        on_backend!(self.count_runs_by_status())
    }

    // Todos.

    /// Adds a todo of tenant `default` (once per effect key).
    pub async fn todo_add(
        &self,
        title: String,
        effect_key: Option<String>,
    ) -> Result<Todo, StoreError> {
        self.todo_add_in(crate::access::DEFAULT_TENANT, title, effect_key)
            .await
    }

    /// Adds a todo of `tenant` (once per effect key: a key recorded already returns the todo
    /// it added).
    pub async fn todo_add_in(
        &self,
        tenant: &str,
        title: String,
        effect_key: Option<String>,
    ) -> Result<Todo, StoreError> {
        on_backend!(self.todo_add_in(tenant, title, effect_key))
    }

    /// One page of todos in the filter's order, how many match the filter in all, and where
    /// the next page starts.
    pub async fn todo_list(&self, filter: TodoFilter) -> Result<TodoPage, StoreError> {
        on_backend!(self.todo_list(filter))
    }

    /// Marks a todo of tenant `default` done (see [`Store::todo_complete_in`]).
    pub async fn todo_complete(
        &self,
        selector: TodoSelector,
        effect_key: Option<String>,
    ) -> Result<Result<Selected, TodoLookupError>, StoreError> {
        self.todo_complete_in(crate::access::DEFAULT_TENANT, selector, effect_key)
            .await
    }

    /// Marks one of `tenant`'s todos done (once per effect key). Completing a done todo
    /// returns it unchanged.
    pub async fn todo_complete_in(
        &self,
        tenant: &str,
        selector: TodoSelector,
        effect_key: Option<String>,
    ) -> Result<Result<Selected, TodoLookupError>, StoreError> {
        on_backend!(self.todo_complete_in(tenant, selector, effect_key))
    }

    /// Deletes a todo of tenant `default` (see [`Store::todo_delete_in`]).
    pub async fn todo_delete(
        &self,
        selector: TodoSelector,
        effect_key: Option<String>,
    ) -> Result<Result<Selected, TodoLookupError>, StoreError> {
        self.todo_delete_in(crate::access::DEFAULT_TENANT, selector, effect_key)
            .await
    }

    /// Deletes one of `tenant`'s todos (once per effect key) and returns it.
    pub async fn todo_delete_in(
        &self,
        tenant: &str,
        selector: TodoSelector,
        effect_key: Option<String>,
    ) -> Result<Result<Selected, TodoLookupError>, StoreError> {
        on_backend!(self.todo_delete_in(tenant, selector, effect_key))
    }

    // Evaluations.

    /// Stores an evaluation's summary and full report.
    pub async fn insert_eval(
        &self,
        tenant: &str,
        eval_id: &str,
        created_at: &str,
        summary: &Value,
        report: &Value,
    ) -> Result<(), StoreError> {
        on_backend!(self.insert_eval(tenant, eval_id, created_at, summary, report))
    }

    /// One of `tenant`'s evaluations.
    pub async fn get_eval(
        &self,
        tenant: &str,
        eval_id: &str,
    ) -> Result<Option<StoredEval>, StoreError> {
        on_backend!(self.get_eval(tenant, eval_id))
    }

    /// A page of `tenant`'s evaluations, newest first.
    pub async fn list_evals(
        &self,
        tenant: &str,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<EvalPage, StoreError> {
        on_backend!(self.list_evals(tenant, limit, cursor))
    }

    // API keys.

    /// Stores a new API key (its hash only).
    pub async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        on_backend!(self.insert_api_key(key))
    }

    /// The key with this id.
    pub async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        on_backend!(self.get_api_key(key_id))
    }

    /// The keys of `tenant` (every tenant's when `None`).
    pub async fn list_api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKeyRow>, StoreError> {
        on_backend!(self.list_api_keys(tenant))
    }

    /// Revokes a key (of `tenant` when given) at `at`; the key as it is afterwards.
    pub async fn revoke_api_key(
        &self,
        key_id: &str,
        tenant: Option<&str>,
        at: &str,
    ) -> Result<Option<ApiKeyRow>, StoreError> {
        on_backend!(self.revoke_api_key(key_id, tenant, at))
    }

    // Audit log.

    /// Appends an entry to the audit log.
    pub async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        on_backend!(self.audit(entry))
    }

    /// A page of `tenant`'s audit log, newest first.
    pub async fn list_audit(
        &self,
        tenant: &str,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<AuditPage, StoreError> {
        on_backend!(self.list_audit(tenant, limit, cursor))
    }

    // Budgets.

    /// The spend of `tenant`'s `window` budget in the period starting at `period_start`.
    pub async fn budget_spend(
        &self,
        tenant: &str,
        window: &str,
        period_start: &str,
    ) -> Result<Option<BudgetSpendRow>, StoreError> {
        on_backend!(self.budget_spend(tenant, window, period_start))
    }

    /// Adds spend to a period and marks the thresholds `crossed` picks, in one transaction.
    pub async fn add_budget_spend<F>(
        &self,
        tenant: &str,
        window: &str,
        period_start: &str,
        tokens: u64,
        usd: f64,
        crossed: F,
    ) -> Result<SpendUpdate, StoreError>
    where
        F: FnOnce(f64, u64, &[u8]) -> Vec<u8> + Send + 'static,
    {
        on_backend!(self.add_budget_spend(tenant, window, period_start, tokens, usd, crossed))
    }

    // A/B experiments.

    /// Stores a new experiment. `Duplicate` when the tenant has an experiment of that name
    /// already (running or stopped: names are never reused); `AnotherRunning` (with its name)
    /// when the new one is running and the tenant has a running one. Checked in the
    /// transaction that inserts, and held by unique indexes when replicas race.
    pub async fn create_experiment(
        &self,
        record: &ExperimentRecord,
    ) -> Result<Result<(), CreateExperimentError>, StoreError> {
        on_backend!(self.create_experiment(record))
    }

    /// The tenant's experiment of that name.
    pub async fn get_experiment(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<ExperimentRecord>, StoreError> {
        on_backend!(self.get_experiment(tenant, name))
    }

    /// The tenant's experiments, newest first (by `created_at`, then name).
    pub async fn list_experiments(
        &self,
        tenant: &str,
    ) -> Result<Vec<ExperimentRecord>, StoreError> {
        on_backend!(self.list_experiments(tenant))
    }

    /// Every tenant's running experiment (at most one each), by tenant: what replicas poll.
    pub async fn running_experiments(&self) -> Result<Vec<ExperimentRecord>, StoreError> {
        on_backend!(self.running_experiments())
    }

    /// Stops the tenant's running experiment `name` at `at` with its winner and note; false
    /// when it is not running (stopped already, or unknown).
    pub async fn finish_experiment(
        &self,
        tenant: &str,
        name: &str,
        winner: Option<&str>,
        note: Option<&str>,
        at: &str,
    ) -> Result<bool, StoreError> {
        on_backend!(self.finish_experiment(tenant, name, winner, note, at))
    }

    /// Adds every delta (arm totals and latency-histogram buckets) in one transaction, by
    /// increments: replicas adding at the same time never lose an update. Non-finite amounts
    /// add nothing; counts saturate.
    pub async fn add_arm_deltas(&self, deltas: &[ArmDelta]) -> Result<(), StoreError> {
        on_backend!(self.add_arm_deltas(deltas))
    }

    // The semantic plan cache.

    /// Stores a plan-cache entry; its id, or `None` when the tenant has one for its key.
    pub async fn put_cache_entry(&self, e: &CacheEntryRecord) -> Result<Option<i64>, StoreError> {
        on_backend!(self.put_cache_entry(e))
    }

    /// Up to `limit` plan-cache entries with an id above `after`, by id.
    pub async fn cache_entries_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<CacheEntryRecord>, StoreError> {
        on_backend!(self.cache_entries_after(after, limit))
    }

    /// Deletes the tenant's plan-cache entries and bumps its generation.
    pub async fn clear_cache(&self, tenant: &str) -> Result<u64, StoreError> {
        on_backend!(self.clear_cache(tenant))
    }

    /// Every tenant's plan-cache generation.
    pub async fn cache_generations(&self) -> Result<Vec<(String, i64)>, StoreError> {
        on_backend!(self.cache_generations())
    }

    /// Deletes expired plan-cache entries and the given ids.
    pub async fn delete_cache_entries(&self, now: &str, ids: &[i64]) -> Result<u64, StoreError> {
        on_backend!(self.delete_cache_entries(now, ids))
    }

    /// Sets the rollback guard of the tenant's experiment `name` (opaque JSON) and its status,
    /// only while its guard status is `expected` (`None`: no guard yet); false when not.
    pub async fn set_experiment_guard(
        &self,
        tenant: &str,
        name: &str,
        guard: &str,
        status: &str,
        expected: Option<&str>,
    ) -> Result<bool, StoreError> {
        on_backend!(self.set_experiment_guard(tenant, name, guard, status, expected))
    }

    /// The rollback guard of the tenant's experiment `name`, if it has one.
    pub async fn experiment_guard(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<GuardRecord>, StoreError> {
        on_backend!(self.experiment_guard(tenant, name))
    }

    /// Every experiment guard whose status is `status`, by tenant and name.
    pub async fn experiment_guards(&self, status: &str) -> Result<Vec<GuardRecord>, StoreError> {
        on_backend!(self.experiment_guards(status))
    }

    /// The totals of each arm of the tenant's experiment `name`, by arm, with its latency
    /// histogram; arms nothing was added to yet are absent. Reads the aggregates only.
    pub async fn arm_totals(&self, tenant: &str, name: &str) -> Result<Vec<ArmTotals>, StoreError> {
        on_backend!(self.arm_totals(tenant, name))
    }

    // Planner registry.

    /// Registers a prompt-template version (see [`Registration`]).
    pub async fn register_prompt(
        &self,
        name: &str,
        version: &str,
        hash: &str,
        source: &str,
    ) -> Result<Registration, StoreError> {
        on_backend!(self.register_prompt(name, version, hash, source))
    }

    /// Registers a planner-variant version (see [`Registration`]).
    pub async fn register_variant(
        &self,
        name: &str,
        version: &str,
        hash: &str,
        spec: &str,
    ) -> Result<Registration, StoreError> {
        on_backend!(self.register_variant(name, version, hash, spec))
    }

    /// Every registered prompt-template version.
    pub async fn prompt_versions(&self) -> Result<Vec<PromptVersion>, StoreError> {
        on_backend!(self.prompt_versions())
    }

    /// Alias → variant.
    pub async fn aliases(&self) -> Result<BTreeMap<String, String>, StoreError> {
        on_backend!(self.aliases())
    }

    /// Points `alias` at `variant` and records the move.
    pub async fn move_alias(
        &self,
        alias: &str,
        variant: &str,
        note: Option<&str>,
    ) -> Result<AliasMove, StoreError> {
        on_backend!(self.move_alias(alias, variant, note))
    }

    /// Moves `alias` back to its previous target when `check` accepts it (in one
    /// transaction).
    pub async fn rollback_alias(
        &self,
        alias: &str,
        note: Option<&str>,
        check: impl FnOnce(&str) -> Result<(), String> + Send + 'static,
    ) -> Result<Result<AliasMove, String>, RollbackError> {
        on_backend!(self.rollback_alias(alias, note, check))
    }

    /// Alias moves, oldest first; all aliases when `alias` is `None`.
    pub async fn alias_history(&self, alias: Option<&str>) -> Result<Vec<AliasMove>, StoreError> {
        on_backend!(self.alias_history(alias))
    }
}
