//! The run lifecycle: accept a prompt, store the run, queue it, plan and execute it on a
//! worker, and let callers wait for, list, retry and cancel runs. Also crash recovery (runs left
//! pending or running are resumed at start) and draining on shutdown.
//!
//! With spend budgets ([`Runtime::set_budgets`]) a tenant's new runs are refused while a
//! `reject` budget is spent, each run plans within what its tenant's budgets leave, and what
//! planning spent is recorded against them before the run executes.

mod config;
mod error;
mod executor;
pub mod registry;
pub mod retry;
mod streamed;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::RuntimeConfig;
pub use error::RuntimeError;
pub use retry::RetryPolicy;

use crate::budgets::Budgets;
use crate::domain::{PlanSource, Run, RunStatus, now};
use crate::experiments::service::Experiments;
use crate::planning::semantic::cache::SemanticCache;
use crate::planning::{Allowance, PlanError, Planners, Planning};
use crate::store::{InsertOutcome, RunFilter, RunPage, Store};
use crate::tools::ToolRegistry;

/// A request to start a run.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    /// The tenant the run belongs to (`default` when `None`).
    pub tenant: Option<String>,
    pub prompt: String,
    pub user_id: Option<String>,
    pub metadata: Option<Value>,
    pub idempotency_key: Option<String>,
    pub trace_id: Option<String>,
    /// A plan supplied by the caller as (tool, input, reasoning); validated before it is stored.
    pub steps: Option<Vec<(String, Value, String)>>,
    /// The planner variant or alias to plan with (default: the `production` alias, else the
    /// default variant).
    pub planner: Option<String>,
}

/// What `submit` returns.
pub struct Submitted {
    /// The run as stored (pending), or the original run for a reused idempotency key.
    pub run: Run,
    /// True when an idempotency key matched an existing run.
    pub replayed: bool,
    /// Resolves with the finished run (only when asked to wait and the run is new).
    pub finished: Option<oneshot::Receiver<Run>>,
}

/// Told about every run a worker finishes (completed, failed or cancelled), after its final
/// state is stored. Called on the worker's task: an observer must not block (hand the run to a
/// bounded queue and return).
pub trait RunObserver: Send + Sync {
    fn finished(&self, run: &Run);
}

struct InFlight {
    cancel: CancellationToken,
    waiters: Vec<oneshot::Sender<Run>>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<Store>,
    pub(crate) registry: Arc<ToolRegistry>,
    pub(crate) planners: Arc<Planners>,
    pub(crate) config: RuntimeConfig,
    permits: Arc<Semaphore>,
    queued: AtomicUsize,
    inflight: Mutex<HashMap<String, InFlight>>,
    idle: tokio::sync::Notify,
    closing: AtomicBool,
    observer: std::sync::OnceLock<Arc<dyn RunObserver>>,
    budgets: std::sync::OnceLock<Arc<Budgets>>,
    experiments: std::sync::OnceLock<Arc<Experiments>>,
    pub(crate) semantic: std::sync::OnceLock<Arc<SemanticCache>>,
}

/// The runtime: cheap to clone, shared by the server and the CLI.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    /// A runtime over `store` with the built-in tools and the rule planner.
    pub fn new(store: Arc<Store>, registry: Arc<ToolRegistry>, config: RuntimeConfig) -> Self {
        Self::with_planning(store, Planning::new(registry), config)
    }

    /// A runtime over `store` with a configured planner chain (its registry is used for
    /// execution too).
    pub fn with_planning(store: Arc<Store>, planning: Planning, config: RuntimeConfig) -> Self {
        Self::with_planners(store, Arc::new(Planners::single(planning)), config)
    }

    /// A runtime over `store` planning with a set of variants (aliases are loaded by
    /// [`Runtime::load_registry`]).
    pub fn with_planners(
        store: Arc<Store>,
        planners: Arc<Planners>,
        config: RuntimeConfig,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(config.workers.max(1)));
        Self {
            inner: Arc::new(Inner {
                store,
                registry: planners.registry().clone(),
                planners,
                config,
                permits,
                queued: AtomicUsize::new(0),
                inflight: Mutex::new(HashMap::new()),
                idle: tokio::sync::Notify::new(),
                closing: AtomicBool::new(false),
                observer: std::sync::OnceLock::new(),
                budgets: std::sync::OnceLock::new(),
                experiments: std::sync::OnceLock::new(),
                semantic: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Sets the observer told about every finished run; false when one is already set.
    pub fn set_observer(&self, observer: Arc<dyn RunObserver>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// Enforces and records spend budgets; false when budgets are already set.
    pub fn set_budgets(&self, budgets: Arc<Budgets>) -> bool {
        self.inner.budgets.set(budgets).is_ok()
    }

    /// Assigns new runs to the tenants' running experiments and records their outcomes;
    /// false when experiments are already set.
    pub fn set_experiments(&self, experiments: Arc<Experiments>) -> bool {
        experiments.set_planners(self.inner.planners.clone());
        self.inner.experiments.set(experiments).is_ok()
    }

    /// Serves and remembers plans through the semantic plan cache; false when one is set.
    pub fn set_semantic_cache(&self, cache: Arc<SemanticCache>) -> bool {
        self.inner.semantic.set(cache).is_ok()
    }

    /// The semantic plan cache, when set.
    pub fn semantic_cache(&self) -> Option<&Arc<SemanticCache>> {
        self.inner.semantic.get()
    }

    /// The experiments, when set.
    pub fn experiments(&self) -> Option<&Arc<Experiments>> {
        self.inner.experiments.get()
    }

    /// The spend budgets, when set.
    pub fn budgets(&self) -> Option<&Arc<Budgets>> {
        self.inner.budgets.get()
    }

    /// Refuses a new run of `tenant` while one of its `reject` budgets is spent.
    fn admit(&self, tenant: &str) -> Result<(), RuntimeError> {
        match self.inner.budgets.get() {
            Some(budgets) => budgets.admit(tenant).map_err(RuntimeError::BudgetExhausted),
            None => Ok(()),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The tool registry.
    pub fn registry(&self) -> &Arc<ToolRegistry> {
        &self.inner.registry
    }

    /// The planner variants.
    pub fn planners(&self) -> &Arc<Planners> {
        &self.inner.planners
    }

    /// The configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Runs currently queued or executing.
    pub fn active_runs(&self) -> usize {
        self.inner.inflight.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Runs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// Validates, stores and queues a new run. With `wait`, `finished` resolves with the
    /// finished run.
    pub async fn submit(&self, new: NewRun, wait: bool) -> Result<Submitted, RuntimeError> {
        check_prompt(&new.prompt, self.inner.config.max_prompt_chars)?;
        if self.inner.closing.load(Ordering::Relaxed) {
            return Err(RuntimeError::ShuttingDown);
        }
        let queued = self.inner.queued.load(Ordering::Relaxed);
        if queued >= self.inner.config.max_queue {
            return Err(RuntimeError::Overloaded { queued });
        }
        self.admit(
            new.tenant
                .as_deref()
                .unwrap_or(crate::access::DEFAULT_TENANT),
        )?;
        if new.planner.is_some() {
            self.inner
                .planners
                .resolve(new.planner.as_deref())
                .map_err(RuntimeError::InvalidPlan)?;
        }
        let plan = match new.steps {
            Some(steps) => Some(
                self.inner
                    .planners
                    .client_plan(steps)
                    .map_err(RuntimeError::InvalidPlan)?,
            ),
            None => None,
        };
        let mut run = Run::new(new.prompt, new.user_id, new.metadata);
        if let Some(tenant) = new.tenant {
            run.tenant = tenant;
        }
        run.plan = plan;
        run.idempotency_key = new.idempotency_key;
        run.trace_id = new.trace_id;
        // A run that names its planner, or brings its own plan, is in no experiment.
        if new.planner.is_none()
            && run.plan.is_none()
            && let Some(experiments) = self.inner.experiments.get()
        {
            run.experiment = experiments.assign(&run.tenant, run.user_id.as_deref(), &run.run_id);
        }
        run.planner = new.planner;
        // A caller that waits for the run and sends no idempotency key cannot see or name the
        // run before its answer: the run is stored once when it finishes, or before its first
        // side effect when its plan has one (see `Durability`). Everything acknowledged is still
        // committed first; a crash before then loses only an unanswered request that changed
        // nothing.
        let durability = if wait && run.idempotency_key.is_none() {
            Durability::Deferred
        } else {
            if let InsertOutcome::Existing(existing) = self.inner.store.insert_run(&run).await? {
                return Ok(Submitted {
                    run: *existing,
                    replayed: true,
                    finished: None,
                });
            }
            Durability::Stored
        };
        let finished = self.enqueue(run.clone(), wait, durability);
        Ok(Submitted {
            run,
            replayed: false,
            finished,
        })
    }

    /// Queues a pending run on a worker (stored already, or deferred: see [`Durability`]).
    fn enqueue(
        &self,
        run: Run,
        wait: bool,
        durability: Durability,
    ) -> Option<oneshot::Receiver<Run>> {
        let cancel = CancellationToken::new();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut map) = self.inner.inflight.lock() {
            map.insert(
                run.run_id.clone(),
                InFlight {
                    cancel: cancel.clone(),
                    waiters: if wait { vec![tx] } else { Vec::new() },
                },
            );
        }
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
        let inner = self.inner.clone();
        // The run's span is a child of the caller's (the HTTP request's) span, so a run executed
        // by a worker joins the trace of the request that created it.
        // INFO level: every log line about the run (at info and above) carries run_id and
        // trace_id through this span; its OpenTelemetry twin is the trace's `run` span. A run
        // whose trace is not recorded gets the same span under another target, which the trace
        // exporter ignores (with everything inside it).
        let untraced = crate::telemetry::is_untraced();
        macro_rules! run_span {
            ($($target:tt)*) => {
                tracing::info_span!(
                    $($target)*
                    parent: &tracing::Span::current(),
                    "run",
                    otel.name = "run",
                    run_id = %run.run_id,
                    trace_id = run.trace_id.as_deref().unwrap_or(""),
                    crane.run.id = %run.run_id,
                    crane.run.status = tracing::field::Empty,
                    crane.plan.source = tracing::field::Empty,
                    crane.planner.variant = tracing::field::Empty,
                    crane.cost.usd = tracing::field::Empty,
                    crane.experiment.name = tracing::field::Empty,
                    crane.experiment.arm = tracing::field::Empty,
                )
            };
        }
        let span = if untraced {
            run_span!(target: crate::telemetry::UNTRACED_TARGET,)
        } else {
            run_span!()
        };
        if let Some(e) = &run.experiment {
            span.record("crane.experiment.name", e.name.as_str());
            span.record("crane.experiment.arm", e.arm.as_str());
        }
        let worker = async move {
            let permit = async {
                tokio::select! {
                    p = inner.permits.clone().acquire_owned() => p.ok(),
                    _ = cancel.cancelled() => None,
                }
            }
            .instrument(tracing::debug_span!("queue"))
            .await;
            inner.queued.fetch_sub(1, Ordering::Relaxed);
            let mut run = run;
            let outcome = work(&inner, &mut run, &cancel, untraced, durability).await;
            drop(permit);
            let saved = match outcome {
                Err(error) => {
                    tracing::error!(run_id = %run.run_id, %error, "run could not be saved; it stays unfinished and resumes later (at the next start, or on any replica once its lease lapses)");
                    false
                }
                Ok(()) => {
                    if let Some(experiments) = inner.experiments.get() {
                        experiments.finished(&run);
                    }
                    streamed::remember_completed(&inner, &run);
                    if let Some(observer) = inner.observer.get() {
                        observer.finished(&run);
                    }
                    true
                }
            };
            let waiters = inner
                .inflight
                .lock()
                .ok()
                .and_then(|mut m| {
                    let entry = m.remove(&run.run_id);
                    if m.is_empty() {
                        inner.idle.notify_waiters();
                    }
                    entry
                })
                .map(|e| e.waiters)
                .unwrap_or_default();
            // A run whose final state is not stored is not handed to its waiters as finished:
            // their channel closes and they answer from the store (see `Runtime::wait`).
            if !saved {
                return;
            }
            // The last waiter gets the run itself; only extra waiters cost a clone.
            let mut waiters = waiters;
            let last = waiters.pop();
            for w in waiters {
                let _ = w.send(run.clone());
            }
            if let Some(w) = last {
                let _ = w.send(run);
            }
        }
        .instrument(span);
        if untraced {
            // The worker stays marked, so the trace exporter's filters can tell at once that
            // nothing it does is recorded.
            tokio::spawn(crate::telemetry::untraced(worker));
        } else {
            tokio::spawn(worker);
        }
        wait.then_some(rx)
    }

    /// Makes sure a run handed to a caller before it finished is stored (a deferred run, see
    /// `Durability`, is stored as `run` shows it unless its worker stored it already). Call it
    /// before acknowledging a run whose wait ended early: nothing is acknowledged before it is
    /// committed.
    pub async fn acknowledge(&self, run: &Run) -> Result<(), RuntimeError> {
        self.inner.store.insert_run_if_absent(run).await?;
        Ok(())
    }

    /// The run with this id.
    pub async fn get(&self, run_id: &str) -> Result<Run, RuntimeError> {
        self.inner
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(run_id.to_owned()))
    }

    /// The run with this id if it belongs to `tenant`; another tenant's run is `NotFound`, as
    /// if it did not exist.
    pub async fn get_in(&self, tenant: &str, run_id: &str) -> Result<Run, RuntimeError> {
        match self.get(run_id).await {
            Ok(run) if run.tenant == tenant => Ok(run),
            Ok(_) => Err(RuntimeError::NotFound(run_id.to_owned())),
            Err(e) => Err(e),
        }
    }

    /// Records a user's feedback (`score` 0..=1, an optional comment) on a finished run of
    /// `tenant` (another tenant's run is `NotFound`); feedback again replaces it. The run's
    /// experiment arm, if any, counts the score.
    pub async fn feedback(
        &self,
        tenant: &str,
        run_id: &str,
        score: f64,
        comment: Option<String>,
    ) -> Result<Run, RuntimeError> {
        if !(0.0..=1.0).contains(&score) {
            return Err(RuntimeError::InvalidRequest(format!(
                "score must be a number from 0 to 1 (got {score})"
            )));
        }
        if comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
            return Err(RuntimeError::InvalidRequest(
                "comment is longer than 2000 characters".into(),
            ));
        }
        let mut run = self.get_in(tenant, run_id).await?;
        if !run.status.is_terminal() {
            return Err(RuntimeError::Conflict(format!(
                "run {run_id} is {}; send feedback once it has finished",
                run.status.as_str()
            )));
        }
        let previous = run.feedback.as_ref().map(|f| f.score);
        run.feedback = Some(crate::domain::Feedback {
            score,
            comment,
            at: now(),
        });
        if !self.inner.store.save_run_if(&run, &[run.status]).await? {
            return Err(RuntimeError::Conflict(format!(
                "run {run_id} changed while recording feedback; try again"
            )));
        }
        if let Some(experiments) = self.inner.experiments.get() {
            experiments.feedback(&run, score, previous);
        }
        Ok(run)
    }

    /// Waits until the run finishes (or `timeout` passes) and returns its state then. A run
    /// executing here is awaited directly; one another replica executes (PostgreSQL) is
    /// followed in the store.
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Result<Run, RuntimeError> {
        let rx = {
            let mut map = self
                .inner
                .inflight
                .lock()
                .map_err(|_| RuntimeError::ShuttingDown)?;
            map.get_mut(run_id).map(|entry| {
                let (tx, rx) = oneshot::channel();
                entry.waiters.push(tx);
                rx
            })
        };
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(rx) = rx {
            if let Ok(Ok(run)) = tokio::time::timeout_at(deadline, rx).await {
                return Ok(run);
            }
            return self.get(run_id).await;
        }
        let run = self.get(run_id).await?;
        if run.status.is_terminal() || self.inner.store.postgres().is_none() {
            return Ok(run);
        }
        // Executed by another replica (PostgreSQL): follow the stored state until it finishes
        // or the time is up, checking often at first and then every REMOTE_WAIT_MAX.
        let mut every = Duration::from_millis(10);
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return self.get(run_id).await;
            }
            tokio::time::sleep_until((now + every).min(deadline)).await;
            let run = self.get(run_id).await?;
            if run.status.is_terminal() {
                return Ok(run);
            }
            every = (every * 2).min(REMOTE_WAIT_MAX);
        }
    }

    /// A page of runs, newest first.
    pub async fn list(&self, filter: RunFilter) -> Result<RunPage, RuntimeError> {
        Ok(self.inner.store.list_runs(filter).await?)
    }

    /// Re-executes a failed run from its failed step; completed steps are not repeated.
    pub async fn retry(&self, run_id: &str, wait: bool) -> Result<Submitted, RuntimeError> {
        let mut run = self.get(run_id).await?;
        if run.status != RunStatus::Failed {
            return Err(RuntimeError::Conflict(format!(
                "run {run_id} is {}; only failed runs can be retried",
                run.status.as_str()
            )));
        }
        self.admit(&run.tenant)?;
        let keep = run.completed_steps();
        run.execution_log.truncate(keep);
        run.status = RunStatus::Pending;
        run.error = None;
        run.result = None;
        run.completed_at = None;
        run.retries += 1;
        if !self
            .inner
            .store
            .save_run_if(&run, &[RunStatus::Failed])
            .await?
        {
            return Err(RuntimeError::Conflict(format!(
                "run {run_id} changed while retrying; try again"
            )));
        }
        let finished = self.enqueue(run.clone(), wait, Durability::Stored);
        Ok(Submitted {
            run,
            replayed: false,
            finished,
        })
    }

    /// Cancels a pending or running run and returns its state afterwards.
    pub async fn cancel(&self, run_id: &str) -> Result<Run, RuntimeError> {
        let token = self
            .inner
            .inflight
            .lock()
            .ok()
            .and_then(|m| m.get(run_id).map(|e| e.cancel.clone()));
        if let Some(token) = token {
            token.cancel();
            return self.wait(run_id, Duration::from_secs(10)).await;
        }
        let mut run = self.get(run_id).await?;
        if run.status.is_terminal() {
            return Err(RuntimeError::Conflict(format!(
                "run {run_id} is already {}; only pending or running runs can be cancelled",
                run.status.as_str()
            )));
        }
        // Not in flight here (e.g. owned by an instance that stopped): cancel in the store.
        run.status = RunStatus::Cancelled;
        run.error = Some("cancelled".into());
        run.completed_at = Some(now());
        if self
            .inner
            .store
            .save_run_if(&run, &[RunStatus::Pending, RunStatus::Running])
            .await?
        {
            Ok(run)
        } else {
            self.get(run_id).await
        }
    }

    /// Queues every run left pending or running by a previous process (with PostgreSQL: every
    /// run whose replica's lease lapsed, now leased to this one). Returns how many.
    pub async fn recover(&self) -> Result<usize, RuntimeError> {
        let runs = self.inner.store.unfinished_runs().await?;
        Ok(self.resume(runs))
    }

    /// Queues runs to resume from their last completed step, skipping any still executing
    /// here.
    fn resume(&self, runs: Vec<Run>) -> usize {
        let mut n = 0;
        for run in runs {
            let here = self
                .inner
                .inflight
                .lock()
                .is_ok_and(|m| m.contains_key(&run.run_id));
            if here {
                continue;
            }
            tracing::info!(run_id = %run.run_id, status = run.status.as_str(), completed_steps = run.completed_steps(), "resuming unfinished run");
            self.enqueue(run, false, Durability::Stored);
            n += 1;
        }
        n
    }

    /// With PostgreSQL, keeps the leases of the runs executing here (extended every third of
    /// the lease) and claims every `every` the runs of replicas whose lease lapsed (as many as
    /// the queue has room for), resuming them here. A run is leased exactly while this
    /// runtime has it in flight: one dropped after a failed save lapses and is claimed again
    /// (here or elsewhere) once the database answers. Does nothing with SQLite (one process
    /// owns the data dir; [`Runtime::recover`] resumes its runs at start). Stops when the
    /// runtime drains or is dropped.
    pub fn spawn_leases(&self, every: Duration) {
        let Some(pg) = self.inner.store.postgres() else {
            return;
        };
        let mut extend =
            tokio::time::interval_at(tokio::time::Instant::now() + pg.lease() / 3, pg.lease() / 3);
        extend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut claim = tokio::time::interval(every);
        claim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let extending = tokio::select! {
                    _ = extend.tick() => true,
                    _ = claim.tick() => false,
                };
                let Some(inner) = weak.upgrade() else { break };
                let runtime = Runtime { inner };
                if extending {
                    runtime.extend_leases().await;
                    continue;
                }
                if runtime.inner.closing.load(Ordering::Relaxed) {
                    break;
                }
                runtime.claim_orphaned().await;
            }
        });
    }

    async fn extend_leases(&self) {
        let ids: Vec<String> = self
            .inner
            .inflight
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if let Err(error) = self.inner.store.extend_leases(&ids).await {
            tracing::warn!(%error, runs = ids.len(), "could not extend the leases of the runs executing here");
        }
    }

    async fn claim_orphaned(&self) {
        let room = self
            .inner
            .config
            .max_queue
            .saturating_sub(self.inner.queued.load(Ordering::Relaxed))
            .min(RECLAIM_BATCH);
        if room == 0 {
            return;
        }
        match self.inner.store.claim_orphaned_runs(room).await {
            Ok(runs) if !runs.is_empty() => {
                let n = self.resume(runs);
                tracing::info!(runs = n, "resumed runs of a replica whose lease lapsed");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not claim the runs of lapsed replicas"),
        }
    }

    /// Stops accepting runs and waits up to `timeout` for in-flight runs to finish. Runs still
    /// unfinished then stay stored and resume at the next start. Returns how many were left.
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.inner.closing.store(true, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.inner.idle.notified();
            let left = self.active_runs();
            if left == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
        let left = self.active_runs();
        if let Some(experiments) = self.inner.experiments.get()
            && let Err(error) = experiments.flush().await
        {
            tracing::warn!(%error, "could not write the last experiment outcomes");
        }
        self.inner.store.close().await;
        left
    }
}

/// Checks a prompt against the limits (empty or blank, too long).
pub fn check_prompt(prompt: &str, limit: usize) -> Result<(), RuntimeError> {
    if prompt.trim().is_empty() {
        return Err(RuntimeError::EmptyPrompt);
    }
    // Byte length bounds the char count from above: count chars only when it matters.
    if prompt.len() > limit {
        let len = prompt.chars().count();
        if len > limit {
            return Err(RuntimeError::PromptTooLong { len, limit });
        }
    }
    Ok(())
}

/// When a run's record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Stored (pending) before it was queued; saved after planning (a plan that is not a pure
    /// function of the prompt), after each completed step and at the end.
    Stored,
    /// Not stored yet (a waited-for run without an idempotency key): stored just before its
    /// first step with a side effect (with its plan, so recovery runs the same plan), else
    /// once when it finishes. A plan of read-only tools only ([`crate::tools::Tool::read_only`])
    /// is planned, executed and stored in one commit.
    Deferred,
}

/// Plans (when the run has no plan yet) and executes a run; saves its final state.
async fn work(
    inner: &Inner,
    run: &mut Run,
    cancel: &CancellationToken,
    untraced: bool,
    durability: Durability,
) -> Result<(), crate::store::StoreError> {
    if cancel.is_cancelled() {
        return executor::finish(
            inner,
            run,
            RunStatus::Cancelled,
            Some("cancelled before it started".into()),
        )
        .await;
    }
    run.status = RunStatus::Running;
    if run.started_at.is_none() {
        run.started_at = Some(now());
    }
    // The API must show a run that is executing as running. Most runs finish in well under a
    // millisecond, so the `running` checkpoint is written only when the run is still going after
    // RUNNING_CHECKPOINT_DELAY; it is conditional on the stored run still being pending, so it
    // can never overwrite a later state. A deferred run has no record to mark.
    if durability == Durability::Deferred {
        return plan_and_execute(inner, run, cancel, untraced, durability).await;
    }
    let checkpoint = {
        let store = inner.store.clone();
        let run_id = run.run_id.clone();
        let started_at = run.started_at.unwrap_or_else(now);
        tokio::spawn(async move {
            tokio::time::sleep(RUNNING_CHECKPOINT_DELAY).await;
            let _ = store.mark_running(&run_id, started_at).await;
        })
    };
    let result = plan_and_execute(inner, run, cancel, untraced, durability).await;
    checkpoint.abort();
    result
}

/// Longest pause between two reads of a run another replica executes (see [`Runtime::wait`]).
const REMOTE_WAIT_MAX: Duration = Duration::from_millis(200);

/// Most orphaned runs claimed at once (see [`Runtime::spawn_leases`]).
const RECLAIM_BATCH: usize = 64;

/// How long a run executes before its `running` state is written.
const RUNNING_CHECKPOINT_DELAY: Duration = Duration::from_millis(2);

/// Adds what this planning spent (a plan's usage and cost, or a failed chain's) to the tenant's
/// budgets. A store failure is logged and never fails the run.
async fn record_spend(
    inner: &Inner,
    tenant: &str,
    planned: &Result<crate::domain::Plan, PlanError>,
) {
    let Some(budgets) = inner.budgets.get() else {
        return;
    };
    let (usage, cost) = match planned {
        Ok(plan) => (
            plan.planner.usage.unwrap_or_default(),
            plan.planner.cost_usd,
        ),
        Err(e) => {
            let spend = e.spend();
            (spend.usage, spend.cost_usd)
        }
    };
    let tokens = usage.input_tokens + usage.output_tokens;
    if let Err(error) = budgets.record(tenant, tokens, cost.unwrap_or(0.0)).await {
        tracing::warn!(%error, tenant, tokens, "could not record planning spend against the tenant's budgets");
    }
}

/// `untraced`: the run's trace is not recorded (see [`crate::telemetry::untraced`]).
async fn plan_and_execute(
    inner: &Inner,
    run: &mut Run,
    cancel: &CancellationToken,
    untraced: bool,
    durability: Durability,
) -> Result<(), crate::store::StoreError> {
    if streamed::needs_plan(run) {
        // Sent on LLM calls when no span of the run carries an exported trace context: export
        // off, or a trace not recorded (sampled flag off, so the model server does not record
        // it either).
        let flags = if untraced { "00" } else { "01" };
        let traceparent = run
            .trace_id
            .as_ref()
            .map(|t| format!("00-{t}-{:016x}-{flags}", rand::random::<u64>() | 1));
        let allowance = inner
            .budgets
            .get()
            .map_or(Allowance::Unlimited, |b| b.allowance(&run.tenant));
        let planned =
            match streamed::plan(inner, run, cancel, traceparent.as_deref(), &allowance).await {
                streamed::Planned::Whole(planned) => planned,
                streamed::Planned::Done(result) => return result,
            };
        record_spend(inner, &run.tenant, &planned).await;
        match planned {
            Ok(plan) => {
                let deterministic = plan.planner.source == PlanSource::Rule;
                run.plan = Some(plan);
                // A rule plan is a pure function of the prompt and planner version: after a
                // crash it is re-made identically. Any other plan is saved before it runs.
                if durability == Durability::Stored && !deterministic {
                    inner.store.save_run(run).await?;
                }
            }
            Err(e) => {
                // Every layer failed, or a provider is misconfigured: record why, and what the
                // LLM calls cost. A retried run keeps what its earlier failed planning was billed.
                let earlier = run.plan_failure.take();
                run.plan_failure = match (e.failure_record(), earlier) {
                    (Some(mut now), Some(before)) => {
                        now.add_spend(&before);
                        Some(now)
                    }
                    (now, before) => now.or(before),
                };
                if let Some(cost) = run.plan_failure.as_ref().and_then(|f| f.cost_usd) {
                    tracing::Span::current().record("crane.cost.usd", cost);
                }
                return executor::finish(inner, run, RunStatus::Failed, Some(e.to_string())).await;
            }
        }
    }
    // A deferred run is stored with its plan (planned or the caller's) before its first side
    // effect; a plan of read-only tools only is stored once, when it finishes.
    if durability == Durability::Deferred
        && run
            .plan
            .as_ref()
            .is_some_and(|p| !executor::read_only(inner, p))
    {
        inner.store.put_run(run).await?;
    }
    executor::execute(inner, run, cancel).await
}
