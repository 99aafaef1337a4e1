//! The experiments of every tenant as this process runs them: which arm a new run gets, what
//! finished runs add to their arm, and the analysis of an experiment.
//!
//! - The running experiments are cached and re-read from the store every half second
//!   ([`Experiments::spawn`]), so an experiment created, stopped or promoted through any
//!   replica applies on every replica within a second; assignment itself is a hash (see
//!   [`super::assign`]), so every replica gives a user the same arm.
//! - Outcomes are added to per-arm deltas in memory on the worker that finished the run (a
//!   hash-map update: no store write on the run's path) and flushed as increments once a
//!   second ([`Experiments::flush`]); the analysis reads the per-arm totals only. A process
//!   that dies loses at most its last second of outcome counts, never a run.
//! - Latency is kept as a histogram with [`BUCKETS_PER_DOUBLING`] buckets per doubling of
//!   milliseconds; p50/p95 are read from it (within ~9%).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::assign;
use super::guard::{self, GUARD_ARM, GuardStatus, PromotionGuard, Verdict};
use super::stats::{self, ArmCounts, Decision};
use crate::domain::{ExperimentArm, Run, RunStatus};
use crate::planning::variants::Planners;
use crate::store::{
    ArmDelta, ArmTotals, AuditEntry, CreateExperimentError, ExperimentRecord, GuardRecord, Store,
    StoreError,
};

/// Histogram buckets per doubling of the latency in ms.
pub const BUCKETS_PER_DOUBLING: f64 = 8.0;

/// One arm of an experiment: a planner (variant or alias) and its share of the traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmSpec {
    pub planner: String,
    pub weight: f64,
}

/// What an experiment is (stored as the record's `spec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSpec {
    pub arms: Vec<ArmSpec>,
    /// Only `success_rate` for now.
    pub primary_metric: String,
    pub alpha: f64,
    /// Smallest difference in success rate worth acting on.
    pub min_effect: f64,
    /// Mixed into the assignment hash.
    pub salt: String,
}

/// A running experiment as the cache holds it.
#[derive(Debug, Clone)]
struct Running {
    name: String,
    spec: ExperimentSpec,
    weights: Vec<f64>,
    /// `crane_experiment_runs_total` per arm: [completed, failed] (registered once, so a
    /// finished run costs an atomic add, not a label lookup).
    counters: Vec<[metrics::Counter; 2]>,
}

/// The latency histogram bucket of `ms`.
pub fn latency_bucket(ms: f64) -> u16 {
    if ms <= 1.0 || !ms.is_finite() {
        return 0;
    }
    (ms.log2() * BUCKETS_PER_DOUBLING).ceil().clamp(0.0, 1023.0) as u16
}

/// The upper bound in ms of a latency bucket.
pub fn bucket_upper_ms(bucket: u16) -> f64 {
    2f64.powf(f64::from(bucket) / BUCKETS_PER_DOUBLING)
}

/// The `q` quantile (0..1) of a histogram (ascending buckets), as its bucket's upper bound.
pub fn quantile_ms(buckets: &[(u16, u64)], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (b, n) in buckets {
        seen += n;
        if seen >= rank {
            return Some(bucket_upper_ms(*b));
        }
    }
    buckets.last().map(|(b, _)| bucket_upper_ms(*b))
}

/// Told when an experiment ends (stopped or promoted) and when its rollback guard decides,
/// with the experiment as reported. Called on a request's or the service's task: an observer
/// must not block (spawn the work and return).
pub trait ExperimentObserver: Send + Sync {
    fn ended(&self, tenant: &str, experiment: &ExperimentView);
}

/// The experiments of every tenant (see the module docs).
pub struct Experiments {
    store: Arc<Store>,
    observer: std::sync::OnceLock<Arc<dyn ExperimentObserver>>,
    /// The planners whose aliases a rollback moves (set by the runtime): the move applies here
    /// at once, on other replicas at their next alias refresh.
    planners: std::sync::OnceLock<Arc<Planners>>,
    running: RwLock<HashMap<String, Running>>,
    /// Watching rollback guards by tenant: (experiment, promoted variant).
    guards: RwLock<HashMap<String, Vec<(String, String)>>>,
    pending: Mutex<HashMap<(String, String, u32), ArmDelta>>,
}

impl Experiments {
    /// The service over `store`, with the running experiments loaded.
    pub async fn load(store: Arc<Store>) -> Result<Arc<Self>, StoreError> {
        let this = Arc::new(Self {
            store,
            observer: std::sync::OnceLock::new(),
            planners: std::sync::OnceLock::new(),
            running: RwLock::new(HashMap::new()),
            guards: RwLock::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        });
        this.refresh().await?;
        Ok(this)
    }

    /// The planners a rollback's alias move applies to at once; false when set already.
    pub fn set_planners(&self, planners: Arc<Planners>) -> bool {
        self.planners.set(planners).is_ok()
    }

    /// Tells `observer` about every experiment that ends from now on; false when one is set.
    pub fn set_observer(&self, observer: Arc<dyn ExperimentObserver>) -> bool {
        self.observer.set(observer).is_ok()
    }

    async fn notify(&self, tenant: &str, name: &str) {
        if let Some(observer) = self.observer.get()
            && let Ok(view) = self.view(tenant, name).await
        {
            observer.ended(tenant, &view);
        }
    }

    /// Re-reads the running experiments from the store.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let mut fresh = HashMap::new();
        for record in self.store.running_experiments().await? {
            match spec_of(&record) {
                Ok(spec) => {
                    let weights = spec.arms.iter().map(|a| a.weight).collect();
                    // Labels stay bounded: one running experiment per tenant, a few arms each.
                    let counters = spec
                        .arms
                        .iter()
                        .map(|a| {
                            ["completed", "failed"].map(|outcome| {
                                metrics::counter!(
                                    "crane_experiment_runs_total",
                                    "experiment" => record.name.clone(),
                                    "arm" => a.planner.clone(),
                                    "outcome" => outcome,
                                )
                            })
                        })
                        .collect();
                    fresh.insert(
                        record.tenant.clone(),
                        Running {
                            name: record.name,
                            spec,
                            weights,
                            counters,
                        },
                    );
                }
                Err(error) => {
                    tracing::error!(tenant = %record.tenant, experiment = %record.name, %error, "stored experiment spec does not parse; its runs are not assigned")
                }
            }
        }
        if let Ok(mut running) = self.running.write() {
            *running = fresh;
        }
        let mut guards: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for record in self
            .store
            .experiment_guards(GuardStatus::Watching.as_str())
            .await?
        {
            if let Ok(g) = serde_json::from_str::<PromotionGuard>(&record.guard) {
                guards
                    .entry(record.tenant)
                    .or_default()
                    .push((record.experiment, g.variant));
            }
        }
        if let Ok(mut have) = self.guards.write() {
            *have = guards;
        }
        Ok(())
    }

    /// Refreshes the cache every `refresh` and flushes outcomes every `flush`, until the
    /// service is dropped.
    pub fn spawn(self: &Arc<Self>, refresh: Duration, flush: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut r = tokio::time::interval(refresh);
            let mut f = tokio::time::interval(flush);
            r.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            f.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let refreshing = tokio::select! {
                    _ = r.tick() => true,
                    _ = f.tick() => false,
                };
                let Some(this) = weak.upgrade() else { break };
                let result = if refreshing {
                    match this.refresh().await {
                        Ok(()) => this.check_guards().await.map(|_| ()),
                        Err(e) => Err(e),
                    }
                } else {
                    this.flush().await
                };
                if let Err(error) = result {
                    tracing::warn!(%error, refreshing, "experiments: store call failed; retrying at the next tick");
                }
            }
        });
    }

    /// The arm of a new run of `tenant` with no planner of its own: sticky by `user_id`, else
    /// by `run_id`. `None` when the tenant runs no experiment.
    pub fn assign(
        &self,
        tenant: &str,
        user_id: Option<&str>,
        run_id: &str,
    ) -> Option<ExperimentArm> {
        let running = self.running.read().ok()?;
        let exp = running.get(tenant)?;
        let unit = user_id.unwrap_or(run_id);
        let i = assign::arm(&exp.weights, &exp.spec.salt, unit)?;
        Some(ExperimentArm {
            name: exp.name.clone(),
            arm: exp.spec.arms.get(i)?.planner.clone(),
        })
    }

    /// The arm's index in the running experiment `tag` names, counting a finished run's
    /// outcome in its counter when `outcome` is given (0 completed, 1 failed).
    fn arm_index(&self, tenant: &str, tag: &ExperimentArm, outcome: Option<usize>) -> Option<u32> {
        let running = self.running.read().ok()?;
        let exp = running.get(tenant).filter(|e| e.name == tag.name)?;
        let i = exp.spec.arms.iter().position(|a| a.planner == tag.arm)?;
        if let Some(o) = outcome
            && let Some(c) = exp.counters.get(i).and_then(|c| c.get(o))
        {
            c.increment(1);
        }
        u32::try_from(i).ok()
    }

    fn with_delta(
        &self,
        tenant: &str,
        tag: &ExperimentArm,
        outcome: Option<usize>,
        f: impl FnOnce(&mut ArmDelta),
    ) {
        let Some(arm) = self.arm_index(tenant, tag, outcome) else {
            return;
        };
        if let Ok(mut pending) = self.pending.lock() {
            // Look up without allocating: a key is made only for the first run of an arm
            // since the last flush.
            let found = pending
                .iter_mut()
                .find(|((t, e, a), _)| *a == arm && t == tenant && e == &tag.name)
                .map(|(_, d)| d);
            match found {
                Some(delta) => f(delta),
                None => {
                    let mut delta = ArmDelta {
                        tenant: tenant.to_owned(),
                        experiment: tag.name.clone(),
                        arm,
                        ..ArmDelta::default()
                    };
                    f(&mut delta);
                    pending.insert((tenant.to_owned(), tag.name.clone(), arm), delta);
                }
            }
        }
    }

    /// Adds a finished run (completed or failed) to its arm's outcomes; cancelled runs and
    /// runs of no experiment (or of one that stopped) count nowhere.
    pub fn finished(&self, run: &Run) {
        if !matches!(run.status, RunStatus::Completed | RunStatus::Failed) {
            return;
        }
        let Some(tag) = &run.experiment else {
            self.guarded(run);
            return;
        };
        let cost = run
            .plan
            .as_ref()
            .and_then(|p| p.planner.cost_usd)
            .unwrap_or(0.0);
        let tokens = run
            .plan
            .as_ref()
            .and_then(|p| p.planner.usage)
            .map_or(0, |u| u.input_tokens + u.output_tokens);
        let ms = match (run.started_at.or(Some(run.created_at)), run.completed_at) {
            (Some(a), Some(b)) => (b - a).num_microseconds().unwrap_or(0).max(0) as f64 / 1000.0,
            _ => 0.0,
        };
        let success = run.status == RunStatus::Completed;
        let outcome = if success { 0 } else { 1 };
        self.with_delta(&run.tenant, tag, Some(outcome), |d| {
            d.runs += 1;
            d.successes += u64::from(success);
            d.cost_sum += cost;
            d.cost_sq += cost * cost;
            d.tokens += tokens;
            d.latency_sum_ms += ms;
            d.latency_sq_ms += ms * ms;
            let b = latency_bucket(ms);
            match d.latency_buckets.iter_mut().find(|(x, _)| *x == b) {
                Some((_, n)) => *n += 1,
                None => d.latency_buckets.push((b, 1)),
            }
        });
    }

    /// Counts a finished run outside any experiment for the rollback guard watching its
    /// variant, if any.
    fn guarded(&self, run: &Run) {
        let Some(variant) = run
            .plan
            .as_ref()
            .and_then(|p| p.planner.variant.as_ref())
            .map(|v| v.name.as_str())
        else {
            return;
        };
        let experiment = match self.guards.read() {
            Ok(guards) => match guards
                .get(&run.tenant)
                .and_then(|g| g.iter().find(|(_, v)| v == variant))
            {
                Some((experiment, _)) => experiment.clone(),
                None => return,
            },
            Err(_) => return,
        };
        let success = run.status == RunStatus::Completed;
        if let Ok(mut pending) = self.pending.lock() {
            let delta = pending
                .entry((run.tenant.clone(), experiment.clone(), GUARD_ARM))
                .or_insert_with(|| ArmDelta {
                    tenant: run.tenant.clone(),
                    experiment,
                    arm: GUARD_ARM,
                    ..ArmDelta::default()
                });
            delta.runs += 1;
            delta.successes += u64::from(success);
        }
    }

    /// Adds a feedback score to the run's arm (`previous`: the score it replaces).
    pub fn feedback(&self, run: &Run, score: f64, previous: Option<f64>) {
        let Some(tag) = &run.experiment else { return };
        self.with_delta(&run.tenant, tag, None, |d| match previous {
            Some(old) => d.feedback_sum += score - old,
            None => {
                d.feedback_n += 1;
                d.feedback_sum += score;
            }
        });
    }

    /// Writes the outcome deltas gathered since the last flush (put back if the store fails).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let deltas: Vec<ArmDelta> = match self.pending.lock() {
            Ok(mut p) => p.drain().map(|(_, d)| d).collect(),
            Err(_) => return Ok(()),
        };
        if deltas.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.add_arm_deltas(&deltas).await {
            if let Ok(mut pending) = self.pending.lock() {
                for d in deltas {
                    let key = (d.tenant.clone(), d.experiment.clone(), d.arm);
                    match pending.get_mut(&key) {
                        Some(have) => merge(have, &d),
                        None => {
                            pending.insert(key, d);
                        }
                    }
                }
            }
            return Err(e);
        }
        Ok(())
    }
}

/// Why an experiment request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// Bad input: the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    #[error("no experiment named '{0}' (GET /experiments lists them)")]
    NotFound(String),
    /// The request conflicts with the experiment's state (another running, already stopped,
    /// no winner to promote).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request to start an experiment (DESIGN.md field names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewExperiment {
    pub name: String,
    pub arms: Vec<NewArm>,
    #[serde(default)]
    pub primary_metric: Option<String>,
    #[serde(default)]
    pub alpha: Option<f64>,
    /// Smallest difference in success rate worth acting on (default 0.05).
    #[serde(default)]
    pub min_effect: Option<f64>,
}

/// One arm of a [`NewExperiment`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewArm {
    pub planner: String,
    #[serde(default)]
    pub weight: Option<f64>,
}

/// An experiment as reported: its record, each arm's outcomes and the analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentView {
    pub name: String,
    pub status: String,
    pub primary_metric: String,
    pub alpha: f64,
    pub min_effect: f64,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// The arm promoted when the experiment ended with a promotion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub arms: Vec<ArmView>,
    pub analysis: AnalysisView,
    /// The rollback guard of a promotion (while watching, with the production runs so far).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<PromotionGuard>,
}

fn check_name(name: &str) -> Result<(), ExperimentError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ExperimentError::Invalid(format!(
            "experiment name '{name}' is not valid: use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter"
        )))
    }
}

impl Experiments {
    /// Starts an experiment of `tenant` over planners `planners` knows (variants or aliases).
    pub async fn create(
        &self,
        tenant: &str,
        new: NewExperiment,
        planners: &Planners,
    ) -> Result<ExperimentView, ExperimentError> {
        let name = new.name.trim().to_owned();
        check_name(&name)?;
        if new.arms.len() < 2 {
            return Err(ExperimentError::Invalid(format!(
                "an experiment needs at least 2 arms; got {} (arms: [{{\"planner\": \"A\"}}, {{\"planner\": \"B\"}}])",
                new.arms.len()
            )));
        }
        let mut arms = Vec::with_capacity(new.arms.len());
        for (i, arm) in new.arms.iter().enumerate() {
            let planner = arm.planner.trim().to_owned();
            if let Err(e) = planners.resolve(Some(&planner)) {
                return Err(ExperimentError::Invalid(format!("arms[{i}].planner: {e}")));
            }
            if arms.iter().any(|a: &ArmSpec| a.planner == planner) {
                return Err(ExperimentError::Invalid(format!(
                    "arms[{i}].planner '{planner}' is already an arm; each arm needs its own planner"
                )));
            }
            let weight = arm.weight.unwrap_or(1.0);
            if !weight.is_finite() || weight <= 0.0 {
                return Err(ExperimentError::Invalid(format!(
                    "arms[{i}].weight must be a number above 0 (got {weight}); weights are relative shares of the traffic"
                )));
            }
            arms.push(ArmSpec { planner, weight });
        }
        let primary_metric = new.primary_metric.unwrap_or_else(|| "success_rate".into());
        if primary_metric != "success_rate" {
            return Err(ExperimentError::Invalid(format!(
                "primary_metric '{primary_metric}' is not supported; use success_rate"
            )));
        }
        let alpha = new.alpha.unwrap_or(0.05);
        if !(alpha > 0.0 && alpha <= 0.2) {
            return Err(ExperimentError::Invalid(format!(
                "alpha must be above 0 and at most 0.2 (got {alpha})"
            )));
        }
        let min_effect = new.min_effect.unwrap_or(0.05);
        if !(min_effect > 0.0 && min_effect < 1.0) {
            return Err(ExperimentError::Invalid(format!(
                "min_effect must be above 0 and below 1 (got {min_effect})"
            )));
        }
        let spec = ExperimentSpec {
            arms,
            primary_metric,
            alpha,
            min_effect,
            salt: uuid::Uuid::now_v7().simple().to_string(),
        };
        let record = ExperimentRecord {
            tenant: tenant.to_owned(),
            name: name.clone(),
            status: "running".into(),
            spec: serde_json::to_string(&spec).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            created_at: crate::domain::now().to_rfc3339(),
            stopped_at: None,
            winner: None,
            note: None,
        };
        match self.store.create_experiment(&record).await? {
            Ok(()) => {}
            Err(CreateExperimentError::Duplicate) => {
                return Err(ExperimentError::Invalid(format!(
                    "an experiment named '{name}' exists already (names are never reused); pick another name"
                )));
            }
            Err(CreateExperimentError::AnotherRunning(other)) => {
                return Err(ExperimentError::Conflict(format!(
                    "experiment '{other}' is running; a tenant runs one experiment at a time (POST /experiments/{other}/stop first)"
                )));
            }
        }
        self.refresh().await?;
        self.view(tenant, &name).await
    }

    /// An experiment of `tenant` with its arms' outcomes and the analysis.
    pub async fn view(&self, tenant: &str, name: &str) -> Result<ExperimentView, ExperimentError> {
        let record = self
            .store
            .get_experiment(tenant, name)
            .await?
            .ok_or_else(|| ExperimentError::NotFound(name.to_owned()))?;
        self.view_of(record).await
    }

    async fn view_of(&self, record: ExperimentRecord) -> Result<ExperimentView, ExperimentError> {
        let spec = spec_of(&record)?;
        let totals = self.store.arm_totals(&record.tenant, &record.name).await?;
        let (arms, analysis) = analyse(&spec, &totals);
        let guard = match self
            .store
            .experiment_guard(&record.tenant, &record.name)
            .await?
        {
            Some(r) => serde_json::from_str::<PromotionGuard>(&r.guard)
                .ok()
                .map(|mut g| {
                    if g.status == GuardStatus::Watching
                        && let Some(t) = totals.iter().find(|t| t.arm == GUARD_ARM)
                    {
                        g.runs = t.runs;
                        g.successes = t.successes;
                    }
                    g
                }),
            None => None,
        };
        Ok(ExperimentView {
            name: record.name,
            status: record.status,
            primary_metric: spec.primary_metric,
            alpha: spec.alpha,
            min_effect: spec.min_effect,
            created_at: record.created_at,
            stopped_at: record.stopped_at,
            promoted: record.winner,
            note: record.note,
            arms,
            analysis,
            guard,
        })
    }

    /// Every experiment of `tenant`, newest first.
    pub async fn list(&self, tenant: &str) -> Result<Vec<ExperimentView>, ExperimentError> {
        let mut out = Vec::new();
        for record in self.store.list_experiments(tenant).await? {
            out.push(self.view_of(record).await?);
        }
        Ok(out)
    }

    /// Stops a running experiment (its outcomes so far are kept).
    pub async fn stop(
        &self,
        tenant: &str,
        name: &str,
        note: Option<&str>,
    ) -> Result<ExperimentView, ExperimentError> {
        self.finish(tenant, name, None, note).await
    }

    async fn finish(
        &self,
        tenant: &str,
        name: &str,
        winner: Option<&str>,
        note: Option<&str>,
    ) -> Result<ExperimentView, ExperimentError> {
        let _ = self.flush().await;
        let at = crate::domain::now().to_rfc3339();
        if !self
            .store
            .finish_experiment(tenant, name, winner, note, &at)
            .await?
        {
            let view = self.view(tenant, name).await?;
            return Err(ExperimentError::Conflict(format!(
                "experiment '{name}' is {} already",
                view.status
            )));
        }
        self.refresh().await?;
        self.notify(tenant, name).await;
        self.view(tenant, name).await
    }

    /// Ends a running experiment whose analysis found a winner, naming it; the caller moves
    /// the `production` alias. `Conflict` without a winner (or when not running).
    pub async fn promote(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<(ExperimentView, String), ExperimentError> {
        let _ = self.flush().await;
        let view = self.view(tenant, name).await?;
        if view.status != "running" {
            return Err(ExperimentError::Conflict(format!(
                "experiment '{name}' is {}; only a running experiment can be promoted",
                view.status
            )));
        }
        let Some(winner) = view.analysis.winner.clone() else {
            return Err(ExperimentError::Conflict(format!(
                "experiment '{name}' has no winner to promote ({}: {})",
                serde_json::to_value(view.analysis.decision)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                view.analysis.reason
            )));
        };
        let note = format!("promoted: {}", view.analysis.reason);
        let view = self
            .finish(tenant, name, Some(&winner), Some(&note))
            .await?;
        Ok((view, winner))
    }
}

/// How a promotion's rollback guard watches (`None` fields take the defaults).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardOptions {
    /// False: no guard. Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub min_runs: Option<u64>,
    #[serde(default)]
    pub max_runs: Option<u64>,
    #[serde(default)]
    pub window_hours: Option<f64>,
}

impl GuardOptions {
    /// Checks the options; the message says what to fix.
    pub fn check(&self) -> Result<(), ExperimentError> {
        if self.min_runs == Some(0) {
            return Err(ExperimentError::Invalid(
                "guard.min_runs must be at least 1".into(),
            ));
        }
        if let (Some(min), Some(max)) = (self.min_runs, self.max_runs)
            && max < min
        {
            return Err(ExperimentError::Invalid(format!(
                "guard.max_runs ({max}) must be at least guard.min_runs ({min})"
            )));
        }
        if let Some(h) = self.window_hours
            && !(h.is_finite() && h > 0.0 && h <= 24.0 * 365.0)
        {
            return Err(ExperimentError::Invalid(format!(
                "guard.window_hours must be above 0 and at most 8760 (got {h})"
            )));
        }
        Ok(())
    }
}

/// A decision a rollback guard took.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardEvent {
    pub tenant: String,
    pub experiment: String,
    pub guard: PromotionGuard,
}

impl Experiments {
    /// Puts a rollback guard on the promoted experiment `name` of `tenant`: `production` was
    /// moved from `restore_to` to `variant` (the winner `view` names). `None` when the options
    /// turn it off, or when there is nothing to roll back to.
    pub async fn watch(
        &self,
        tenant: &str,
        view: &ExperimentView,
        variant: &str,
        restore_to: Option<&str>,
        options: &GuardOptions,
    ) -> Result<Option<PromotionGuard>, ExperimentError> {
        if options.enabled == Some(false) {
            return Ok(None);
        }
        let (Some(winner), Some(restore_to)) = (view.promoted.as_deref(), restore_to) else {
            return Ok(None);
        };
        if restore_to == variant {
            return Ok(None);
        }
        // The baseline: the best other arm, by its interval's lower bound.
        let baseline = view
            .arms
            .iter()
            .filter(|a| a.planner != winner)
            .filter_map(|a| {
                guard::wilson(a.successes, a.runs, view.alpha).map(|ci| (a.planner.clone(), ci))
            })
            .max_by(|a, b| a.1.0.total_cmp(&b.1.0));
        let Some((baseline, (low, high))) = baseline else {
            return Ok(None);
        };
        let now = chrono::Utc::now();
        let hours = options
            .window_hours
            .unwrap_or(guard::DEFAULT_WINDOW_HOURS as f64);
        let min_runs = options.min_runs.unwrap_or(guard::DEFAULT_MIN_RUNS);
        let g = PromotionGuard {
            status: GuardStatus::Watching,
            promoted: winner.to_owned(),
            variant: variant.to_owned(),
            restore_to: restore_to.to_owned(),
            baseline,
            baseline_low: low,
            baseline_high: high,
            min_runs,
            max_runs: options
                .max_runs
                .unwrap_or(guard::DEFAULT_MAX_RUNS)
                .max(min_runs),
            promoted_at: now.to_rfc3339(),
            until: (now + chrono::Duration::seconds((hours * 3600.0) as i64)).to_rfc3339(),
            runs: 0,
            successes: 0,
            decided_at: None,
            reason: None,
        };
        let text = serde_json::to_string(&g).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if !self
            .store
            .set_experiment_guard(tenant, &view.name, &text, g.status.as_str(), None)
            .await?
        {
            return Err(ExperimentError::Conflict(format!(
                "experiment '{}' has a rollback guard already",
                view.name
            )));
        }
        self.refresh().await?;
        Ok(Some(g))
    }

    /// Decides every watching guard whose production runs allow it: passes it, or rolls
    /// `production` back (alias history note + audit log). Returns the decisions this replica
    /// took (another replica may take the same one first: then it is not repeated here).
    pub async fn check_guards(&self) -> Result<Vec<GuardEvent>, StoreError> {
        let watching = matches!(self.guards.read(), Ok(g) if !g.is_empty());
        if !watching {
            return Ok(Vec::new());
        }
        self.flush().await?;
        let mut events = Vec::new();
        for record in self
            .store
            .experiment_guards(GuardStatus::Watching.as_str())
            .await?
        {
            if let Some(event) = self.check_guard(&record).await? {
                events.push(event);
            }
        }
        if !events.is_empty() {
            self.refresh().await?;
        }
        Ok(events)
    }

    async fn check_guard(&self, record: &GuardRecord) -> Result<Option<GuardEvent>, StoreError> {
        let Ok(mut g) = serde_json::from_str::<PromotionGuard>(&record.guard) else {
            tracing::error!(tenant = %record.tenant, experiment = %record.experiment, "stored rollback guard does not parse; it is ignored");
            return Ok(None);
        };
        let totals = self
            .store
            .arm_totals(&record.tenant, &record.experiment)
            .await?;
        let (runs, successes) = totals
            .iter()
            .find(|t| t.arm == GUARD_ARM)
            .map_or((0, 0), |t| (t.runs, t.successes));
        let now = chrono::Utc::now();
        let verdict = g.evaluate(runs, successes, now);
        let (mut status, mut reason) = match verdict {
            Verdict::Watch => return Ok(None),
            Verdict::Pass(r) => (GuardStatus::Passed, r),
            Verdict::Rollback(r) => (GuardStatus::RolledBack, r),
        };
        if status == GuardStatus::RolledBack {
            let current = self.store.aliases().await?.get("production").cloned();
            if current.as_deref() != Some(g.variant.as_str()) {
                status = GuardStatus::Passed;
                reason = format!(
                    "guard stood down: production points at {} now, not at the promoted {}",
                    current.as_deref().unwrap_or("nothing"),
                    g.variant
                );
            }
        }
        g.status = status;
        g.runs = runs;
        g.successes = successes;
        g.decided_at = Some(now.to_rfc3339());
        g.reason = Some(reason.clone());
        let text = serde_json::to_string(&g).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if !self
            .store
            .set_experiment_guard(
                &record.tenant,
                &record.experiment,
                &text,
                status.as_str(),
                Some(GuardStatus::Watching.as_str()),
            )
            .await?
        {
            // Another replica decided first.
            return Ok(None);
        }
        let mut details =
            serde_json::json!({"reason": reason, "runs": runs, "successes": successes});
        if status == GuardStatus::RolledBack {
            let note = format!("experiment {}: {reason}", record.experiment);
            let restore_to = g.restore_to.clone();
            match self
                .store
                .move_alias("production", &restore_to, Some(&note))
                .await
            {
                Ok(moved) => {
                    details["from"] = serde_json::json!(moved.from);
                    details["to"] = serde_json::json!(moved.to);
                    if let Some(planners) = self.planners.get() {
                        planners.set_aliases(self.store.aliases().await?);
                    }
                }
                Err(error) => {
                    tracing::error!(%error, experiment = %record.experiment, "rollback guard could not move production back");
                    return Err(error);
                }
            }
            tracing::warn!(tenant = %record.tenant, experiment = %record.experiment, %reason, "rollback guard moved production back");
        } else {
            tracing::info!(tenant = %record.tenant, experiment = %record.experiment, %reason, "rollback guard passed");
        }
        let action = if status == GuardStatus::RolledBack {
            "experiment.rolled_back"
        } else {
            "experiment.guard_passed"
        };
        if let Err(error) = self
            .store
            .audit(AuditEntry {
                tenant: record.tenant.clone(),
                actor: "guard".into(),
                action: action.into(),
                target: record.experiment.clone(),
                details,
                at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            })
            .await
        {
            tracing::error!(%error, "could not write the audit log");
        }
        self.notify(&record.tenant, &record.experiment).await;
        Ok(Some(GuardEvent {
            tenant: record.tenant.clone(),
            experiment: record.experiment.clone(),
            guard: g,
        }))
    }
}

fn merge(into: &mut ArmDelta, d: &ArmDelta) {
    into.runs += d.runs;
    into.successes += d.successes;
    into.cost_sum += d.cost_sum;
    into.cost_sq += d.cost_sq;
    into.tokens += d.tokens;
    into.latency_sum_ms += d.latency_sum_ms;
    into.latency_sq_ms += d.latency_sq_ms;
    into.feedback_n += d.feedback_n;
    into.feedback_sum += d.feedback_sum;
    for (b, n) in &d.latency_buckets {
        match into.latency_buckets.iter_mut().find(|(x, _)| x == b) {
            Some((_, m)) => *m += n,
            None => into.latency_buckets.push((*b, *n)),
        }
    }
}

/// One arm's outcomes as reported (DESIGN.md's field names).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmView {
    pub planner: String,
    pub weight: f64,
    pub runs: u64,
    pub successes: u64,
    pub success_rate: Option<f64>,
    pub mean_cost_usd: Option<f64>,
    pub cost_ci: Option<(f64, f64)>,
    pub total_cost_usd: f64,
    pub tokens: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub latency_ci_ms: Option<(f64, f64)>,
    pub feedback_mean: Option<f64>,
    pub feedback_count: u64,
}

/// The analysis as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalysisView {
    pub srm_p_value: Option<f64>,
    pub p_value: Option<f64>,
    pub effect: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub decision: Decision,
    pub winner: Option<String>,
    pub reason: String,
}

/// The arms' outcomes and the analysis of an experiment, from its spec and per-arm totals.
pub fn analyse(spec: &ExperimentSpec, totals: &[ArmTotals]) -> (Vec<ArmView>, AnalysisView) {
    let arms: Vec<ArmView> = spec
        .arms
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let t = totals
                .iter()
                .find(|t| t.arm as usize == i)
                .cloned()
                .unwrap_or_default();
            let cost = stats::mean_interval(t.runs, t.cost_sum, t.cost_sq);
            let latency = stats::mean_interval(t.runs, t.latency_sum_ms, t.latency_sq_ms);
            ArmView {
                planner: a.planner.clone(),
                weight: a.weight,
                runs: t.runs,
                successes: t.successes,
                success_rate: (t.runs > 0).then(|| t.successes as f64 / t.runs as f64),
                mean_cost_usd: cost.map(|c| c.0),
                cost_ci: cost.map(|c| (c.1, c.2)),
                total_cost_usd: t.cost_sum,
                tokens: t.tokens,
                p50_ms: quantile_ms(&t.latency_buckets, 0.5),
                p95_ms: quantile_ms(&t.latency_buckets, 0.95),
                mean_ms: latency.map(|l| l.0),
                latency_ci_ms: latency.map(|l| (l.1, l.2)),
                feedback_mean: (t.feedback_n > 0).then(|| t.feedback_sum / t.feedback_n as f64),
                feedback_count: t.feedback_n,
            }
        })
        .collect();
    let counts: Vec<ArmCounts> = arms
        .iter()
        .map(|a| ArmCounts {
            runs: a.runs,
            successes: a.successes,
            weight: a.weight,
        })
        .collect();
    let a = stats::analyse(&counts, spec.alpha, spec.min_effect);
    let decisive = a.decisive.map(|(_, c)| c);
    let view = AnalysisView {
        srm_p_value: a.srm_p_value,
        p_value: decisive.map(|c| c.p_value),
        effect: decisive.map(|c| c.effect),
        ci_low: decisive.map(|c| c.ci_low),
        ci_high: decisive.map(|c| c.ci_high),
        decision: a.decision,
        winner: a
            .winner
            .and_then(|i| spec.arms.get(i))
            .map(|arm| arm.planner.clone()),
        reason: a.reason,
    };
    (arms, view)
}

/// Reads an experiment's record as stored with its spec.
pub fn spec_of(record: &ExperimentRecord) -> Result<ExperimentSpec, StoreError> {
    serde_json::from_str(&record.spec)
        .map_err(|e| StoreError::Corrupt(format!("experiment {} spec: {e}", record.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_come_from_the_histogram_within_a_bucket() {
        let mut buckets: Vec<(u16, u64)> = Vec::new();
        for ms in [3.0, 5.0, 10.0, 10.0, 200.0] {
            let b = latency_bucket(ms);
            match buckets.iter_mut().find(|(x, _)| *x == b) {
                Some((_, n)) => *n += 1,
                None => buckets.push((b, 1)),
            }
        }
        buckets.sort_unstable();
        // The 3rd of 5 samples (10 ms), reported as its bucket's upper bound (< 9% above).
        let p50 = quantile_ms(&buckets, 0.5).unwrap_or(0.0);
        assert!((10.0..=10.0 * 1.09).contains(&p50), "{p50}");
        let p95 = quantile_ms(&buckets, 0.95).unwrap_or(0.0);
        assert!((200.0..=220.0).contains(&p95), "{p95}");
        assert_eq!(quantile_ms(&[], 0.5), None);
        assert_eq!(latency_bucket(0.2), 0);
    }
}
