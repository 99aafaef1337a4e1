//! Agent runs → MLflow, off the hot path (opt-in: `CRANE_MLFLOW_LOG_RUNS=true`).
//!
//! The runtime tells [`RunObserver::finished`] about every finished run on the worker's task;
//! the observer copies the few fields MLflow gets into a [`RunRecord`] and `try_send`s it into a
//! bounded channel. When the channel is full the record is dropped and counted
//! (`crane_tracking_dropped_total{exporter="mlflow"}`): a slow or dead MLflow never blocks or
//! slows a run, and memory stays bounded.
//!
//! A background task takes records in batches (up to `batch_size`, or what arrived within
//! `flush_interval`) and exports each as one MLflow run — `runs/create` (tags), `runs/log-batch`
//! (params, metrics), `runs/update` (FINISHED / FAILED / KILLED with the real start and end
//! times) — with up to `concurrency` runs in flight. Transient failures (MLflow down, 429, 5xx)
//! keep the batch and retry it with exponential backoff (full jitter, capped at
//! [`MAX_BACKOFF`]); each record remembers how far it got, so a retry never creates a second
//! MLflow run for a record whose `runs/create` succeeded. Permanent failures (a 4xx) are logged
//! and counted as failed. On shutdown the task exports what is queued until
//! `shutdown_timeout`, then counts the rest as failed.
//!
//! Metrics (label `exporter="mlflow"`): `crane_tracking_exported_total`,
//! `crane_tracking_dropped_total`, `crane_tracking_failed_total`, `crane_tracking_retries_total`
//! and the gauge `crane_tracking_queue_depth` (updated as each exported run completes).

use std::sync::Arc;
use std::time::Duration;

use crane_core::domain::{Run, RunStatus as CraneStatus, Timestamp};
use crane_core::runtime::{RetryPolicy, RunObserver};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::TrackingSettings;
use super::mlflow::{Client, KeyValue, Metric, MlflowError, RetryBudget, RunInfo, RunStatus};

/// Longest backoff between two attempts at a batch while MLflow is failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
const EXPORTER: &str = "mlflow";

/// What MLflow gets of one finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub status: CraneStatus,
    pub user_id: Option<String>,
    pub trace_id: Option<String>,
    pub planner_name: Option<String>,
    pub planner_version: Option<String>,
    pub plan_source: Option<&'static str>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// `name@version` of the prompt template.
    pub prompt: Option<String>,
    pub prompt_hash: Option<String>,
    /// The registered planner variant (`name@version`) and the alias it was reached through.
    pub variant: Option<String>,
    pub variant_alias: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub planned_steps: usize,
    pub executed_steps: usize,
    pub attempts: u64,
    pub retries: u32,
    pub planning_us: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: Option<f64>,
}

impl RunRecord {
    /// Copies the exported fields of a finished run.
    pub fn from_run(run: &Run) -> Self {
        let plan = run.plan.as_ref();
        let planner = plan.map(|p| &p.planner);
        // Failed planning was billed too (`plan_failure`).
        let usage = run.planning_usage().unwrap_or_default();
        Self {
            run_id: run.run_id.clone(),
            status: run.status,
            user_id: run.user_id.clone(),
            trace_id: run.trace_id.clone(),
            planner_name: planner.map(|p| p.name.clone()),
            planner_version: planner.map(|p| p.version.clone()),
            plan_source: planner.map(|p| p.source.as_str()),
            provider: planner.and_then(|p| p.provider.clone()),
            model: planner.and_then(|p| p.model.clone()),
            prompt: planner
                .and_then(|p| p.prompt.as_ref())
                .map(|r| format!("{}@{}", r.name, r.version)),
            prompt_hash: planner
                .and_then(|p| p.prompt.as_ref())
                .map(|r| r.hash.clone()),
            variant: planner
                .and_then(|p| p.variant.as_ref())
                .map(|v| format!("{}@{}", v.name, v.version)),
            variant_alias: planner
                .and_then(|p| p.variant.as_ref())
                .and_then(|v| v.alias.clone()),
            created_at: run.created_at,
            started_at: run.started_at,
            completed_at: run.completed_at,
            planned_steps: plan.map_or(0, |p| p.steps.len()),
            executed_steps: run.execution_log.len(),
            attempts: run
                .execution_log
                .iter()
                .map(|s| u64::from(s.attempts))
                .sum(),
            retries: run.retries,
            planning_us: planner.map_or(0, |p| p.latency_us),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_usd: run.planning_cost_usd(),
        }
    }

    /// MLflow's status for the run's final state.
    pub fn mlflow_status(&self) -> RunStatus {
        match self.status {
            CraneStatus::Completed => RunStatus::Finished,
            CraneStatus::Cancelled => RunStatus::Killed,
            CraneStatus::Failed | CraneStatus::Pending | CraneStatus::Running => RunStatus::Failed,
        }
    }

    /// Start and end of the run, in ms since the epoch.
    pub fn times_ms(&self) -> (i64, i64) {
        let start = self.created_at.timestamp_millis();
        let end = self.completed_at.map_or_else(
            || chrono::Utc::now().timestamp_millis(),
            |t| t.timestamp_millis(),
        );
        (start, end.max(start))
    }

    /// Tags sent with `runs/create`.
    pub fn tags(&self) -> Vec<KeyValue> {
        let mut tags = vec![
            KeyValue::tag("mlflow.runName", &self.run_id),
            KeyValue::tag("mlflow.source.name", "crane serve"),
            KeyValue::tag("crane.kind", "run"),
            KeyValue::tag("crane.run_id", &self.run_id),
            KeyValue::tag("crane.status", self.status.as_str()),
        ];
        let optional = [
            ("crane.user_id", self.user_id.as_deref()),
            ("mlflow.user", self.user_id.as_deref()),
            ("crane.trace_id", self.trace_id.as_deref()),
            ("crane.planner.name", self.planner_name.as_deref()),
            ("crane.planner.version", self.planner_version.as_deref()),
            ("crane.planner.source", self.plan_source),
            ("crane.prompt", self.prompt.as_deref()),
            ("crane.prompt_hash", self.prompt_hash.as_deref()),
            ("crane.variant", self.variant.as_deref()),
            ("crane.variant.alias", self.variant_alias.as_deref()),
        ];
        for (key, value) in optional {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                tags.push(KeyValue::tag(key, v));
            }
        }
        tags
    }

    /// Params sent with `runs/log-batch`.
    pub fn params(&self) -> Vec<KeyValue> {
        [
            ("planner", self.planner_name.as_deref()),
            ("planner_version", self.planner_version.as_deref()),
            ("provider", self.provider.as_deref()),
            ("model", self.model.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| KeyValue::param(k, v)))
        .collect()
    }

    /// Metrics sent with `runs/log-batch`, stamped with the run's end time.
    pub fn metrics(&self) -> Vec<Metric> {
        let (start, end) = self.times_ms();
        let ms = |a: Option<Timestamp>, b: Option<Timestamp>| match (a, b) {
            (Some(a), Some(b)) => Some((b - a).num_microseconds().unwrap_or(0) as f64 / 1000.0),
            _ => None,
        };
        let m = |k: &str, v: f64| Metric::new(k, v, end);
        let mut out = vec![
            m(
                "duration_ms",
                ms(Some(self.created_at), self.completed_at).unwrap_or((end - start) as f64),
            ),
            m(
                "success",
                f64::from(u8::from(self.status == CraneStatus::Completed)),
            ),
            m("steps", self.executed_steps as f64),
            m("planned_steps", self.planned_steps as f64),
            m("attempts", self.attempts as f64),
            m("run_retries", f64::from(self.retries)),
            m("planning_ms", self.planning_us as f64 / 1000.0),
            m("input_tokens", self.input_tokens as f64),
            m("output_tokens", self.output_tokens as f64),
            m("cost_usd", self.cost_usd.unwrap_or(0.0)),
        ];
        if let Some(q) = ms(Some(self.created_at), self.started_at) {
            out.push(m("queue_ms", q));
        }
        if let Some(e) = ms(self.started_at, self.completed_at) {
            out.push(m("execution_ms", e));
        }
        out
    }
}

fn counter(name: &'static str) -> metrics::Counter {
    metrics::counter!(name, "exporter" => EXPORTER)
}

/// Whether a run with this trace id (else run id) is exported at `ratio`: the rule of
/// OpenTelemetry's `TraceIdRatioBased` sampler (the trace id's low 64 bits below
/// `ratio` × 2⁶⁴), so with the same ratio the exported runs are those whose traces were kept,
/// and a retried run gets the same answer. Runs without a trace id hash their run id.
pub fn sampled(trace_id: Option<&str>, run_id: &str, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let low = trace_id
        .filter(|t| t.len() == 32)
        .and_then(|t| u64::from_str_radix(&t[16..], 16).ok())
        .unwrap_or_else(|| {
            // FNV-1a: stable across processes and versions, unlike std's hasher.
            run_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
        });
    // Compare in 63 bits, as the OpenTelemetry SDK does, so the product cannot overflow.
    (low >> 1) < (ratio * (1u64 << 63) as f64) as u64
}

/// The observer handed to the runtime: a non-blocking hand-off into the exporter's queue.
struct Observer {
    tx: mpsc::Sender<RunRecord>,
    dropped: metrics::Counter,
    /// Fraction of runs exported ([`sampled`]).
    ratio: f64,
    sampled_out: metrics::Counter,
}

impl RunObserver for Observer {
    fn finished(&self, run: &Run) {
        if !sampled(run.trace_id.as_deref(), &run.run_id, self.ratio) {
            self.sampled_out.increment(1);
            return;
        }
        // A full queue costs no copy of the run.
        if self.tx.capacity() == 0 {
            self.dropped.increment(1);
            return;
        }
        if self.tx.try_send(RunRecord::from_run(run)).is_err() {
            self.dropped.increment(1);
        }
    }
}

/// The running exporter: its queue and background task.
pub struct RunExporter {
    tx: mpsc::Sender<RunRecord>,
    ratio: f64,
    shutdown: watch::Sender<Option<Instant>>,
    task: tokio::task::JoinHandle<()>,
    timeout: Duration,
}

/// Knobs of the export loop.
#[derive(Debug, Clone)]
struct LoopConfig {
    experiment: String,
    batch_size: usize,
    flush_interval: Duration,
    concurrency: usize,
    backoff: RetryPolicy,
}

impl RunExporter {
    /// Starts the exporter when per-run export is on and a tracking URI is set; `None`
    /// otherwise (a warning is logged when `log_runs` is on without a URI).
    pub fn start(settings: &TrackingSettings) -> Option<Self> {
        if !settings.log_runs {
            return None;
        }
        let Some(endpoint) = &settings.endpoint else {
            tracing::warn!(
                "per-run MLflow export is on but MLFLOW_TRACKING_URI is not set; runs are not exported"
            );
            return None;
        };
        // One quick retry per call smooths over a blip; longer outages are the loop's business.
        let budget = RetryBudget {
            max_attempts: 2,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(100),
            total: Duration::from_secs(1),
        };
        let client = match Client::new(endpoint, budget) {
            Ok(c) => c,
            Err(error) => {
                tracing::error!(%error, "per-run MLflow export disabled");
                return None;
            }
        };
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let (shutdown, shutdown_rx) = watch::channel(None);
        for name in [
            "crane_tracking_exported_total",
            "crane_tracking_dropped_total",
            "crane_tracking_sampled_out_total",
            "crane_tracking_failed_total",
            "crane_tracking_retries_total",
        ] {
            counter(name).increment(0);
        }
        metrics::gauge!("crane_tracking_queue_depth", "exporter" => EXPORTER).set(0.0);
        tracing::info!(
            uri = %client.display_uri(),
            experiment = %settings.runs_experiment,
            sample_ratio = settings.runs_sample_ratio,
            queue_capacity = settings.queue_capacity,
            batch_size = settings.batch_size,
            "exporting finished runs to MLflow"
        );
        let config = LoopConfig {
            experiment: settings.runs_experiment.clone(),
            batch_size: settings.batch_size.max(1),
            flush_interval: settings.flush_interval,
            concurrency: settings.concurrency.max(1),
            backoff: RetryPolicy {
                max_attempts: u32::MAX,
                base_delay: Duration::from_millis(500),
                max_delay: MAX_BACKOFF,
            },
        };
        let task = tokio::spawn(export_loop(client, config, rx, shutdown_rx));
        Some(Self {
            tx,
            ratio: settings.runs_sample_ratio,
            shutdown,
            task,
            timeout: settings.shutdown_timeout,
        })
    }

    /// The observer to give the runtime (`Runtime::set_observer`).
    pub fn observer(&self) -> Arc<dyn RunObserver> {
        Arc::new(Observer {
            tx: self.tx.clone(),
            dropped: counter("crane_tracking_dropped_total"),
            ratio: self.ratio,
            sampled_out: counter("crane_tracking_sampled_out_total"),
        })
    }

    /// Exports what is queued, waiting at most the shutdown timeout; what is left is counted
    /// as failed.
    pub async fn shutdown(self) {
        let deadline = Instant::now() + self.timeout;
        let _ = self.shutdown.send(Some(deadline));
        let queued = self.tx.max_capacity() - self.tx.capacity();
        if queued > 0 {
            tracing::info!(queued, timeout = ?self.timeout, "flushing queued runs to MLflow");
        }
        // The loop stops itself at the deadline; the margin covers a request in flight.
        let mut task = self.task;
        if tokio::time::timeout(self.timeout + Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// A record on its way to MLflow, remembering how far it got.
struct Pending {
    record: RunRecord,
    run: Option<RunInfo>,
    logged: bool,
}

impl Pending {
    fn new(record: RunRecord) -> Self {
        Self {
            record,
            run: None,
            logged: false,
        }
    }
}

enum Outcome {
    Exported,
    Retry(MlflowError),
    Failed(MlflowError),
}

/// Exports one record from where it left off.
async fn export_record(client: &Client, experiment_id: &str, p: &mut Pending) -> Outcome {
    let result = async {
        let (start, end) = p.record.times_ms();
        if p.run.is_none() {
            let info = client
                .create_run(experiment_id, &p.record.run_id, start, &p.record.tags())
                .await?;
            p.run = Some(info);
        }
        let Some(run_id) = p.run.as_ref().map(|r| r.run_id.clone()) else {
            return Ok(());
        };
        if !p.logged {
            client
                .log_batch(&run_id, p.record.metrics(), p.record.params(), Vec::new())
                .await?;
            p.logged = true;
        }
        client
            .finish_run(&run_id, p.record.mlflow_status(), end)
            .await
    }
    .await;
    match result {
        Ok(()) => Outcome::Exported,
        Err(e) if e.is_retryable() => Outcome::Retry(e),
        Err(e) => Outcome::Failed(e),
    }
}

/// Exports `batch` once (up to `concurrency` runs at a time); keeps in `batch` what should be
/// retried and returns the first transient error then.
async fn attempt_batch(
    client: &Client,
    config: &LoopConfig,
    experiment_id: &mut Option<String>,
    batch: &mut Vec<Pending>,
    progress: &(dyn Fn() + Sync),
) -> Result<(), MlflowError> {
    let exp = match experiment_id {
        Some(id) => id.clone(),
        None => match client.experiment_id(&config.experiment).await {
            Ok(id) => {
                *experiment_id = Some(id.clone());
                id
            }
            Err(e) if e.is_retryable() => return Err(e),
            Err(error) => {
                tracing::error!(%error, experiment = %config.experiment, dropped = batch.len(), "MLflow experiment unusable; runs not exported");
                counter("crane_tracking_failed_total").increment(batch.len() as u64);
                batch.clear();
                return Ok(());
            }
        },
    };
    let exp: Arc<str> = exp.into();
    let mut todo = std::mem::take(batch).into_iter();
    let mut set = JoinSet::new();
    let mut first_transient = None;
    let spawn = |set: &mut JoinSet<(Pending, Outcome)>, mut p: Pending| {
        let client = client.clone();
        let exp = exp.clone();
        set.spawn(async move {
            let outcome = export_record(&client, &exp, &mut p).await;
            (p, outcome)
        });
    };
    for p in todo.by_ref().take(config.concurrency) {
        spawn(&mut set, p);
    }
    while let Some(joined) = set.join_next().await {
        progress();
        let Ok((p, outcome)) = joined else {
            // A panicking export task loses its record; count it.
            counter("crane_tracking_failed_total").increment(1);
            continue;
        };
        match outcome {
            Outcome::Exported => counter("crane_tracking_exported_total").increment(1),
            Outcome::Retry(e) => {
                first_transient.get_or_insert(e);
                batch.push(p);
            }
            Outcome::Failed(error) => {
                tracing::warn!(%error, run_id = %p.record.run_id, "MLflow rejected a run; not exported");
                counter("crane_tracking_failed_total").increment(1);
            }
        }
        // Once MLflow is failing, the rest of the batch waits for the retry instead of
        // hammering it one record at a time.
        if let Some(next) = todo.next() {
            if first_transient.is_some() {
                batch.push(next);
                batch.extend(todo.by_ref());
            } else {
                spawn(&mut set, next);
            }
        }
    }
    match first_transient {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn deadline_of(rx: &watch::Receiver<Option<Instant>>) -> Option<Instant> {
    *rx.borrow()
}

async fn export_loop(
    client: Client,
    config: LoopConfig,
    mut rx: mpsc::Receiver<RunRecord>,
    mut shutdown: watch::Receiver<Option<Instant>>,
) {
    let mut experiment_id: Option<String> = None;
    let mut batch: Vec<Pending> = Vec::new();
    let mut failing_since: Option<(Instant, u32)> = None;
    let depth = metrics::gauge!("crane_tracking_queue_depth", "exporter" => EXPORTER);
    loop {
        let stopping = deadline_of(&shutdown);
        if batch.is_empty() {
            if stopping.is_some() {
                // Shutting down: take what is queued, in batches, until the deadline.
                while batch.len() < config.batch_size {
                    match rx.try_recv() {
                        Ok(r) => batch.push(Pending::new(r)),
                        Err(_) => break,
                    }
                }
                if batch.is_empty() {
                    break;
                }
            } else {
                // Wait for the first record, then for the batch to fill or the interval to end.
                tokio::select! {
                    r = rx.recv() => match r {
                        Some(r) => batch.push(Pending::new(r)),
                        None => break,
                    },
                    _ = shutdown.changed() => continue,
                }
                let fill_until = Instant::now() + config.flush_interval;
                while batch.len() < config.batch_size {
                    tokio::select! {
                        r = rx.recv() => match r {
                            Some(r) => batch.push(Pending::new(r)),
                            None => break,
                        },
                        _ = tokio::time::sleep_until(fill_until) => break,
                        _ = shutdown.changed() => break,
                    }
                }
            }
        }
        let progress = || depth.set(rx.len() as f64);
        progress();
        let attempt =
            attempt_batch(&client, &config, &mut experiment_id, &mut batch, &progress).await;
        progress();
        match attempt {
            Ok(()) => {
                if let Some((since, attempts)) = failing_since.take() {
                    tracing::info!(
                        after = ?since.elapsed(),
                        failed_attempts = attempts,
                        "MLflow export recovered"
                    );
                }
            }
            Err(error) => {
                counter("crane_tracking_retries_total").increment(1);
                let (_, attempts) = failing_since.get_or_insert((Instant::now(), 0));
                *attempts += 1;
                let attempts = *attempts;
                if attempts == 1 {
                    tracing::warn!(%error, queued = rx.len() + batch.len(), "MLflow export failing; retrying with backoff (runs queue up to the bound, then are dropped)");
                } else {
                    tracing::debug!(%error, attempts, "MLflow export still failing");
                }
                let delay = config
                    .backoff
                    .backoff(attempts.min(20))
                    .max(Duration::from_millis(50));
                let stopping = deadline_of(&shutdown);
                if let Some(deadline) = stopping
                    && Instant::now() + delay >= deadline
                {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    // Shutdown: stop backing off; the deadline now bounds the retries.
                    _ = shutdown.changed() => {}
                }
            }
        }
        if let Some(deadline) = deadline_of(&shutdown)
            && Instant::now() >= deadline
        {
            break;
        }
    }
    // Whatever could not be exported before the deadline.
    let left = batch.len() + rx.len();
    if left > 0 {
        tracing::warn!(left, "MLflow export: runs left unexported at shutdown");
        counter("crane_tracking_failed_total").increment(left as u64);
    }
    rx.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crane_core::domain::{
        Plan, PlanSource, PlanStep, PlannerInfo, PromptRef, StepRecord, StepStatus, TokenUsage,
    };

    fn run() -> Run {
        let mut run = Run::new("add milk".into(), Some("alice".into()), None);
        run.status = CraneStatus::Completed;
        run.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        let t0 = run.created_at;
        run.started_at = Some(t0 + chrono::Duration::milliseconds(2));
        run.completed_at = Some(t0 + chrono::Duration::milliseconds(12));
        let mut planner = PlannerInfo::simple("llm", "1.2.0", PlanSource::Llm);
        planner.model = Some("gpt-x".into());
        planner.provider = Some("openai".into());
        planner.prompt = Some(PromptRef {
            name: "planner".into(),
            version: "3".into(),
            hash: "deadbeef".into(),
        });
        planner.usage = Some(TokenUsage {
            input_tokens: 300,
            output_tokens: 40,
        });
        planner.cost_usd = Some(0.002);
        planner.latency_us = 1500;
        planner.variant = Some(crane_core::domain::VariantRef {
            name: "llm-v2".into(),
            version: "2.0.0".into(),
            alias: Some("candidate".into()),
            fallback: None,
        });
        run.plan = Some(Plan {
            plan_id: "p1".into(),
            planner,
            steps: vec![PlanStep {
                step_number: 1,
                tool: "todo_add".into(),
                input: serde_json::json!({"title": "milk"}),
                reasoning: String::new(),
            }],
        });
        run.execution_log = vec![StepRecord {
            step_number: 1,
            tool: "todo_add".into(),
            input: serde_json::json!({"title": "milk"}),
            status: StepStatus::Completed,
            output: None,
            error: None,
            attempts: 2,
            attempt_log: Vec::new(),
            started_at: t0,
            finished_at: None,
            duration_ms: None,
        }];
        run
    }

    fn get<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a str> {
        kvs.iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.as_str())
    }

    #[test]
    fn record_payload_has_tags_params_and_metrics() {
        let r = RunRecord::from_run(&run());
        let tags = r.tags();
        assert_eq!(get(&tags, "mlflow.runName"), Some(r.run_id.as_str()));
        assert_eq!(get(&tags, "crane.run_id"), Some(r.run_id.as_str()));
        assert_eq!(get(&tags, "crane.status"), Some("completed"));
        assert_eq!(get(&tags, "crane.user_id"), Some("alice"));
        assert_eq!(get(&tags, "crane.planner.name"), Some("llm"));
        assert_eq!(get(&tags, "crane.planner.version"), Some("1.2.0"));
        assert_eq!(get(&tags, "crane.planner.source"), Some("llm"));
        assert_eq!(get(&tags, "crane.prompt"), Some("planner@3"));
        assert_eq!(get(&tags, "crane.prompt_hash"), Some("deadbeef"));
        assert_eq!(get(&tags, "crane.variant"), Some("llm-v2@2.0.0"));
        assert_eq!(get(&tags, "crane.variant.alias"), Some("candidate"));
        assert_eq!(
            get(&tags, "crane.trace_id"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let params = r.params();
        assert_eq!(get(&params, "planner"), Some("llm"));
        assert_eq!(get(&params, "model"), Some("gpt-x"));
        let metric = |k: &str| {
            r.metrics()
                .into_iter()
                .find(|m| m.key == k)
                .map(|m| m.value)
        };
        assert_eq!(metric("duration_ms"), Some(12.0));
        assert_eq!(metric("queue_ms"), Some(2.0));
        assert_eq!(metric("execution_ms"), Some(10.0));
        assert_eq!(metric("steps"), Some(1.0));
        assert_eq!(metric("attempts"), Some(2.0));
        assert_eq!(metric("input_tokens"), Some(300.0));
        assert_eq!(metric("output_tokens"), Some(40.0));
        assert_eq!(metric("cost_usd"), Some(0.002));
        assert_eq!(metric("planning_ms"), Some(1.5));
        assert_eq!(metric("success"), Some(1.0));
        let (start, end) = r.times_ms();
        assert_eq!(end - start, 12);
        assert_eq!(r.mlflow_status(), RunStatus::Finished);
    }

    #[test]
    fn a_run_without_a_plan_exports_what_its_failed_planning_cost() {
        let mut failed = run();
        failed.status = CraneStatus::Failed;
        failed.plan = None;
        failed.plan_failure = Some(crane_core::domain::PlanFailure {
            attempts: Vec::new(),
            usage: Some(TokenUsage {
                input_tokens: 200,
                output_tokens: 40,
            }),
            cost_usd: Some(0.00028),
        });
        let r = RunRecord::from_run(&failed);
        let metric = |k: &str| {
            r.metrics()
                .into_iter()
                .find(|m| m.key == k)
                .map(|m| m.value)
        };
        assert_eq!(metric("input_tokens"), Some(200.0));
        assert_eq!(metric("output_tokens"), Some(40.0));
        assert_eq!(metric("cost_usd"), Some(0.00028));
        assert_eq!(metric("success"), Some(0.0));
        assert_eq!(r.planned_steps, 0);
    }

    #[test]
    fn statuses_map_to_mlflow() {
        let mut r = RunRecord::from_run(&run());
        r.status = CraneStatus::Failed;
        assert_eq!(r.mlflow_status(), RunStatus::Failed);
        r.status = CraneStatus::Cancelled;
        assert_eq!(r.mlflow_status(), RunStatus::Killed);
    }

    #[test]
    fn a_run_without_plan_or_user_has_no_empty_tags() {
        let mut bare = Run::new("x".into(), None, None);
        bare.status = CraneStatus::Failed;
        let r = RunRecord::from_run(&bare);
        let tags = r.tags();
        assert!(get(&tags, "crane.user_id").is_none());
        assert!(get(&tags, "crane.planner.name").is_none());
        assert!(r.params().is_empty());
        assert!(r.metrics().iter().all(|m| m.value.is_finite()));
    }

    #[tokio::test]
    async fn observer_drops_and_never_blocks_when_the_queue_is_full() {
        let (tx, mut rx) = mpsc::channel(2);
        let observer = Observer {
            tx,
            dropped: metrics::Counter::noop(),
            ratio: 1.0,
            sampled_out: metrics::Counter::noop(),
        };
        let r = run();
        for _ in 0..5 {
            observer.finished(&r);
        }
        assert_eq!(rx.len(), 2);
        assert_eq!(rx.recv().await.map(|x| x.run_id), Some(r.run_id.clone()));
    }

    #[test]
    fn sampling_follows_the_trace_id_like_the_otel_ratio_sampler() {
        // Low 64 bits 0: always under the ratio; all ones: never (below 1.0).
        let low = "4bf92f3577b34da60000000000000000";
        let high = "4bf92f3577b34da6ffffffffffffffff";
        assert!(sampled(Some(low), "r", 0.01));
        assert!(!sampled(Some(high), "r", 0.99));
        assert!(sampled(Some(high), "r", 1.0));
        assert!(!sampled(Some(low), "r", 0.0));
        // The same id gets the same answer; about `ratio` of many ids are kept.
        let ids: Vec<String> = (0..10_000u64)
            .map(|i| format!("{:016x}{:016x}", i, i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let kept = ids.iter().filter(|t| sampled(Some(t), "r", 0.25)).count();
        assert!((2_300..2_700).contains(&kept), "{kept}");
        assert!(
            ids.iter()
                .all(|t| sampled(Some(t), "r", 0.25) == sampled(Some(t), "x", 0.25))
        );
        // Without a trace id, the run id decides, stably.
        let by_run = (0..1_000)
            .filter(|i| sampled(None, &format!("run-{i}"), 0.5))
            .count();
        assert!((400..600).contains(&by_run), "{by_run}");
        assert_eq!(sampled(None, "run-1", 0.5), sampled(None, "run-1", 0.5));
    }

    #[tokio::test]
    async fn observer_exports_only_sampled_runs() {
        let (tx, mut rx) = mpsc::channel(10);
        let observer = Observer {
            tx,
            dropped: metrics::Counter::noop(),
            ratio: 0.5,
            sampled_out: metrics::Counter::noop(),
        };
        let mut kept = run();
        kept.trace_id = Some("4bf92f3577b34da60000000000000001".into());
        let mut skipped = run();
        skipped.trace_id = Some("4bf92f3577b34da6f000000000000001".into());
        observer.finished(&skipped);
        observer.finished(&kept);
        assert_eq!(rx.len(), 1);
        assert_eq!(rx.recv().await.map(|r| r.trace_id), Some(kept.trace_id));
    }

    fn settings(uri: &str, batch: usize) -> TrackingSettings {
        TrackingSettings {
            endpoint: Some(super::super::Endpoint {
                uri: uri.into(),
                auth: super::super::Auth::None,
            }),
            log_runs: true,
            batch_size: batch,
            flush_interval: Duration::from_millis(20),
            shutdown_timeout: Duration::from_millis(300),
            ..TrackingSettings::default()
        }
    }

    #[tokio::test]
    async fn batches_are_exported_and_a_dead_server_never_blocks_shutdown_beyond_its_bound() {
        // Nothing listens on this port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let exporter =
            RunExporter::start(&settings(&format!("http://127.0.0.1:{port}"), 10)).unwrap();
        let observer = exporter.observer();
        let r = run();
        let t0 = std::time::Instant::now();
        for _ in 0..100 {
            observer.finished(&r);
        }
        assert!(t0.elapsed() < Duration::from_millis(100));
        let t1 = std::time::Instant::now();
        exporter.shutdown().await;
        assert!(
            t1.elapsed() < Duration::from_secs(3),
            "shutdown took {:?}",
            t1.elapsed()
        );
    }

    #[tokio::test]
    async fn a_retry_resumes_where_the_export_stopped_without_a_second_mlflow_run() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/2.0/mlflow/experiments/get-by-name"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"experiment": {"experiment_id": "3", "lifecycle_stage": "active"}}),
            ))
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/2.0/mlflow/runs/create"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"run": {"info": {
                "run_id": "m1", "experiment_id": "3", "artifact_uri": "mlflow-artifacts:/3/m1/artifacts"
            }}})))
            .mount(&mock)
            .await;
        // log-batch fails both attempts of the first call, then works.
        Mock::given(method("POST"))
            .and(path("/api/2.0/mlflow/runs/log-batch"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(2)
            .with_priority(1)
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/2.0/mlflow/runs/log-batch"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
            .with_priority(2)
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/2.0/mlflow/runs/update"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
            .mount(&mock)
            .await;

        let mut s = settings(&mock.uri(), 10);
        s.shutdown_timeout = Duration::from_secs(5);
        let exporter = RunExporter::start(&s).unwrap();
        exporter.observer().finished(&run());
        let deadline = Instant::now() + Duration::from_secs(10);
        let count = |reqs: &[wiremock::Request], p: &str| {
            reqs.iter().filter(|r| r.url.path().ends_with(p)).count()
        };
        loop {
            let reqs = mock.received_requests().await.unwrap();
            if count(&reqs, "runs/update") == 1 {
                assert_eq!(count(&reqs, "runs/create"), 1, "one MLflow run only");
                assert_eq!(count(&reqs, "runs/log-batch"), 3);
                let update: serde_json::Value = reqs
                    .iter()
                    .find(|r| r.url.path().ends_with("runs/update"))
                    .unwrap()
                    .body_json()
                    .unwrap();
                assert_eq!(update["status"], "FINISHED");
                assert_eq!(update["run_id"], "m1");
                break;
            }
            assert!(Instant::now() < deadline, "never finished: {reqs:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        exporter.shutdown().await;
    }

    #[test]
    fn off_unless_asked() {
        let mut s = settings("http://127.0.0.1:1", 1);
        s.log_runs = false;
        assert!(RunExporter::start(&s).is_none());
        let s = TrackingSettings {
            log_runs: true,
            ..TrackingSettings::default()
        };
        assert!(RunExporter::start(&s).is_none());
    }
}
