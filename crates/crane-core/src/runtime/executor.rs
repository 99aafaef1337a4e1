//! The executor: runs a plan's steps in order, each attempt under a timeout, retrying only
//! retryable failures with backoff, resolving references to earlier outputs, recording every
//! attempt and saving the run after each step.
//!
//! Step records are bounded ([`crate::domain::output`]): an output over the limit is recorded
//! as a truncated copy while the full output stays in memory for the later steps of this
//! execution. A run resumed from the store has only the stored copies; a reference into a
//! truncated one fails its step with a clear error instead of reading the preview.

use std::time::Instant;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Inner;
use crate::domain::{
    AttemptRecord, PlanStep, Run, RunStatus, StepRecord, StepStatus, now, output, reference,
};
use crate::store::StoreError;
use crate::tools::{ToolContext, ToolError, ToolErrorKind};

/// Executes the steps of `run.plan` not completed yet and leaves the run in a terminal state
/// (completed, failed or cancelled), saved. Nothing is saved before the first step finishes: a
/// crash before then leaves the run pending, and it is re-planned and resumed.
pub(super) async fn execute(
    inner: &Inner,
    run: &mut Run,
    cancel: &CancellationToken,
) -> Result<(), StoreError> {
    let first = run.completed_steps();
    run.execution_log.truncate(first);
    // The stored outputs of steps completed before (a truncated copy stays one: references
    // into it fail, see `reference::lookup`); then the full outputs of the steps run here.
    let outputs = stored_outputs(run);
    execute_rest(inner, run, cancel, outputs).await
}

/// The outputs of the steps in the execution log, as stored.
pub(super) fn stored_outputs(run: &Run) -> Vec<Value> {
    run.execution_log
        .iter()
        .map(|s| s.output.clone().unwrap_or(Value::Null))
        .collect()
}

/// [`execute`] after the execution log's steps (all completed), whose outputs are `outputs`
/// (full ones for steps run by this process, stored copies otherwise).
pub(super) async fn execute_rest(
    inner: &Inner,
    run: &mut Run,
    cancel: &CancellationToken,
    mut outputs: Vec<Value>,
) -> Result<(), StoreError> {
    let steps: Vec<PlanStep> = run
        .plan
        .as_ref()
        .map(|p| p.steps.clone())
        .unwrap_or_default();
    let first = run.execution_log.len();
    for step in steps.iter().skip(first) {
        if cancel.is_cancelled() {
            return finish(inner, run, RunStatus::Cancelled, Some("cancelled".into())).await;
        }
        let record = execute_step(inner, run, step, &outputs, cancel).await;
        let (status, error) = record_step(run, &mut outputs, record);
        match status {
            // Saved so that recovery resumes after this step. A read-only step is not worth a
            // commit: running it again after a crash changes nothing.
            StepStatus::Completed
                if (step.step_number as usize) < steps.len()
                    && !read_only_tool(inner, &step.tool) =>
            {
                inner.store.put_run(run).await?;
            }
            StepStatus::Completed => {}
            StepStatus::Cancelled => {
                return finish(
                    inner,
                    run,
                    RunStatus::Cancelled,
                    Some("cancelled while step was running".into()),
                )
                .await;
            }
            StepStatus::Failed | StepStatus::Running => {
                let message = step_failure(step, error);
                return finish(inner, run, RunStatus::Failed, Some(message)).await;
            }
        }
    }
    // The result is the last output as stored: bounded like the execution log.
    run.result = run.execution_log.last().and_then(|s| s.output.clone());
    finish(inner, run, RunStatus::Completed, None).await
}

/// Appends a finished step's record to the run (input and output bounded, the full output kept
/// in `outputs` for later references); returns its status and error.
pub(super) fn record_step(
    run: &mut Run,
    outputs: &mut Vec<Value>,
    mut record: StepRecord,
) -> (StepStatus, Option<String>) {
    let status = record.status;
    let error = record.error.clone();
    record.input = output::bounded(&record.input);
    let full = record.output.take();
    record.output = full.as_ref().map(output::bounded);
    outputs.push(full.unwrap_or(Value::Null));
    run.execution_log.push(record);
    (status, error)
}

/// The run's error when `step` failed.
pub(super) fn step_failure(step: &PlanStep, error: Option<String>) -> String {
    format!(
        "step {} ({}) failed: {}",
        step.step_number,
        step.tool,
        error.unwrap_or_default()
    )
}

pub(super) async fn finish(
    inner: &Inner,
    run: &mut Run,
    status: RunStatus,
    error: Option<String>,
) -> Result<(), StoreError> {
    run.status = status;
    run.error = error;
    let completed_at = now();
    run.completed_at = Some(completed_at);
    let source = run
        .plan
        .as_ref()
        .map_or("none", |p| p.planner.source.as_str());
    let span = tracing::Span::current();
    span.record("crane.run.status", status.as_str());
    span.record("crane.plan.source", source);
    if let Some(plan) = &run.plan {
        span.record("crane.planner.variant", plan.planner.name.as_str());
        if let Some(cost) = plan.planner.cost_usd {
            span.record("crane.cost.usd", cost);
        }
    }
    metrics::counter!("crane_runs_total", "status" => status.as_str(), "source" => source)
        .increment(1);
    let seconds = (completed_at - run.created_at)
        .num_microseconds()
        .unwrap_or(0) as f64
        / 1e6;
    metrics::histogram!("crane_run_duration_seconds", "status" => status.as_str())
        .record(seconds.max(0.0));
    // Insert or update: a deferred run is stored here for the first time.
    inner.store.put_run(run).await
}

/// True when the tool is registered and has no side effects.
pub(super) fn read_only_tool(inner: &Inner, name: &str) -> bool {
    inner.registry.get(name).is_some_and(|t| t.read_only())
}

/// True when every step of `plan` uses a read-only tool: executing it changes nothing, so it
/// needs no durable record before it runs.
pub(super) fn read_only(inner: &Inner, plan: &crate::domain::Plan) -> bool {
    plan.steps.iter().all(|s| read_only_tool(inner, &s.tool))
}

/// The tool's registered name as a static label (bounded: unknown names become "unknown").
fn registered_name(inner: &Inner, name: &str) -> &'static str {
    inner.registry.get(name).map_or("unknown", |t| t.name())
}

/// Runs one step (references resolved against `outputs`, input checked, attempts with
/// timeout and retries) and returns its record; records nothing on the run.
pub(super) async fn execute_step(
    inner: &Inner,
    run: &Run,
    step: &PlanStep,
    outputs: &[Value],
    cancel: &CancellationToken,
) -> StepRecord {
    let span = tracing::debug_span!(
        "execute_tool",
        otel.name = %format!("execute_tool {}", registered_name(inner, &step.tool)),
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = %step.tool,
        gen_ai.tool.call.id = %format!("{}:{}", run.run_id, step.step_number),
        crane.step.number = i64::from(step.step_number),
        crane.step.attempts = tracing::field::Empty,
        crane.step.status = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    let record = execute_step_inner(inner, run, step, outputs, cancel)
        .instrument(span.clone())
        .await;
    span.record("crane.step.attempts", i64::from(record.attempts));
    span.record(
        "crane.step.status",
        format!("{:?}", record.status).to_lowercase(),
    );
    if let Some(kind) = record.attempt_log.last().and_then(|a| a.error_kind.clone()) {
        span.record("error.type", kind);
    } else if record.status == StepStatus::Failed {
        span.record("error.type", "invalid_input");
    }
    record
}

async fn execute_step_inner(
    inner: &Inner,
    run: &Run,
    step: &PlanStep,
    outputs: &[Value],
    cancel: &CancellationToken,
) -> StepRecord {
    let started_at = now();
    let clock = Instant::now();
    let mut record = StepRecord {
        step_number: step.step_number,
        tool: step.tool.clone(),
        input: step.input.clone(),
        status: StepStatus::Running,
        output: None,
        error: None,
        attempts: 0,
        attempt_log: Vec::new(),
        started_at,
        finished_at: None,
        duration_ms: None,
    };
    let done = |mut record: StepRecord, status: StepStatus| {
        let outcome = match status {
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Running => "running",
        };
        let tool = registered_name(inner, &step.tool);
        metrics::counter!("crane_tool_executions_total", "tool" => tool, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("crane_step_duration_seconds", "tool" => tool)
            .record(clock.elapsed().as_secs_f64());
        record.status = status;
        record.finished_at = Some(now());
        record.duration_ms = Some(clock.elapsed().as_secs_f64() * 1e3);
        record
    };

    let input = match reference::resolve(&step.input, outputs) {
        Ok(input) => input,
        Err(e) => {
            record.error = Some(e.to_string());
            return done(record, StepStatus::Failed);
        }
    };
    record.input = input.clone();
    let violations = inner.registry.validate_input(&step.tool, &input, &[]);
    if let Some(v) = violations.first() {
        record.error = Some(format!(
            "{}: {} (after resolving references)",
            v.path, v.message
        ));
        return done(record, StepStatus::Failed);
    }
    let Some(tool) = inner.registry.get(&step.tool) else {
        record.error = Some(format!("unknown tool '{}'", step.tool));
        return done(record, StepStatus::Failed);
    };
    let ctx = ToolContext {
        store: inner.store.clone(),
        run_id: run.run_id.clone(),
        tenant: run.tenant.clone(),
        step_number: step.step_number,
    };
    let policy = inner.config.retry;
    let max_attempts = policy.max_attempts.max(1);
    loop {
        let attempt = record.attempts + 1;
        record.attempts = attempt;
        let attempt_started = now();
        let attempt_clock = Instant::now();
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            r = tokio::time::timeout(inner.config.step_timeout, tool.execute(&ctx, input.clone())) => Some(
                r.unwrap_or_else(|_| Err(ToolError::new(
                    ToolErrorKind::Timeout,
                    format!("timed out after {} ms", inner.config.step_timeout.as_millis()),
                )))
            ),
        };
        let duration_ms = attempt_clock.elapsed().as_secs_f64() * 1e3;
        let Some(result) = result else {
            record.error = Some("cancelled".into());
            return done(record, StepStatus::Cancelled);
        };
        match result {
            Ok(output) => {
                record.attempt_log.push(AttemptRecord {
                    attempt,
                    status: StepStatus::Completed,
                    error: None,
                    error_kind: None,
                    started_at: attempt_started,
                    duration_ms,
                    backoff_ms: None,
                });
                record.output = Some(output);
                record.error = None;
                return done(record, StepStatus::Completed);
            }
            Err(e) => {
                let retry = e.kind.is_retryable() && attempt < max_attempts;
                let e_kind = e.kind.as_str();
                let backoff = retry.then(|| policy.backoff(attempt));
                tracing::debug!(run_id = %run.run_id, step = step.step_number, attempt, kind = e.kind.as_str(), error = %e, retry, "step attempt failed");
                record.attempt_log.push(AttemptRecord {
                    attempt,
                    status: StepStatus::Failed,
                    error: Some(e.message.clone()),
                    error_kind: Some(e.kind.as_str().to_owned()),
                    started_at: attempt_started,
                    duration_ms,
                    backoff_ms: backoff.map(|b| b.as_millis() as u64),
                });
                record.error = Some(if attempt > 1 {
                    format!("{} (after {attempt} attempts)", e.message)
                } else {
                    e.message
                });
                let Some(backoff) = backoff else {
                    return done(record, StepStatus::Failed);
                };
                metrics::counter!("crane_step_retries_total", "tool" => tool.name()).increment(1);
                tracing::debug!(attempt, backoff_ms = backoff.as_millis() as u64, error.type = e_kind, "retry");
                tokio::select! {
                    _ = cancel.cancelled() => {
                        record.error = Some("cancelled".into());
                        return done(record, StepStatus::Cancelled);
                    }
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}
