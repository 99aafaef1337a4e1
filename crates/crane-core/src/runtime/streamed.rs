//! Streamed planning and execution: plan a run with a [`StepSink`] and execute each step the
//! LLM layer hands out while the model is still writing the next ones.
//!
//! - Planning and execution run concurrently in the run's task (`join!`): the executing side
//!   takes each early step in order and runs it with the executor's per-step function; a step
//!   whose input is not valid on its own (e.g. a reference to a later step) is never handed
//!   out, so it waits for the whole plan.
//! - Durability: each completed early step is saved together with the plan so far (the steps
//!   handed out, `planner.partial` set). After a crash the run resumes with that partial plan;
//!   it is planned again and the new plan must begin with exactly the steps that ran (same tool
//!   and input), which are not run again; otherwise the run fails. A retried run whose plan is
//!   partial goes the same way.
//! - When planning finishes, the final plan (validated as a whole by the planner) must begin
//!   with exactly the steps that ran; it replaces the partial plan, is saved, and the remaining
//!   steps run through the executor's normal loop (with the full outputs of the early steps).
//! - When planning fails after a step ran (the plan became invalid, or the model's answer
//!   broke off), the run fails with the error naming the step and why; its step records and
//!   the partial plan stay, and `plan_failure` records the layers and what they cost.
//! - A step that fails early fails the run like any failed step, once planning finished (its
//!   spend is recorded; a cancel waits for planning too, as before streaming).
//! - When nothing was handed out (a rule plan, a cache hit, a server that answered in one
//!   body, streaming off) the outcome goes back to `plan_and_execute`'s normal path unchanged.

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Inner, executor, record_spend};
use crate::domain::StepStatus;
use std::sync::Arc;

use tracing::Instrument;

use crate::domain::{
    LayerFailure, Plan, PlanFailure, PlanSource, PlanStep, PlannerInfo, Run, RunStatus, VariantRef,
};
use crate::planning::semantic::cache::{Lookup, SemanticCache};
use crate::planning::{Allowance, EarlyStep, PlanError, StepSink};
use crate::store::StoreError;

/// What planning leaves to `plan_and_execute`.
#[expect(
    clippy::large_enum_variant,
    reason = "made and matched once per run; boxing would allocate on every run's path"
)]
pub(super) enum Planned {
    /// No step ran before planning finished: the normal path records, saves and executes it.
    Whole(Result<Plan, PlanError>),
    /// Steps ran early (or the plan contradicts steps that ran before): the run was finished
    /// here.
    Done(Result<(), StoreError>),
}

/// Whether the run needs planning: it has no plan, or only the partial plan of steps that ran
/// while an earlier streamed planning was still going.
pub(super) fn needs_plan(run: &Run) -> bool {
    run.plan.as_ref().is_none_or(|p| p.planner.partial)
}

/// Why the early execution stopped before planning finished.
enum Stop {
    /// A step failed (the run's error).
    Failed(String),
    Cancelled(String),
    /// A step of the new plan differs from the step that ran under the partial plan.
    Mismatch(String),
    Store(StoreError),
}

/// What the early execution did.
struct Early {
    /// Outputs of the steps in the execution log (full ones for the steps run here).
    outputs: Vec<Value>,
    /// The steps of the partial plan: the earlier partial plan's, then those handed out.
    known: Vec<PlanStep>,
    /// Steps run here.
    ran: usize,
    stop: Option<Stop>,
}

/// Plans the run, executing steps as they are handed out when its planner streams.
pub(super) async fn plan(
    inner: &Inner,
    run: &mut Run,
    cancel: &CancellationToken,
    traceparent: Option<&str>,
    allowance: &Allowance,
) -> Planned {
    // Steps of an earlier partial plan (a crash or a retry): the new plan must begin with them.
    let prior: Vec<PlanStep> = run
        .plan
        .as_ref()
        .filter(|p| p.planner.partial)
        .map(|p| p.steps.clone())
        .unwrap_or_default();
    // The run's own planner, else its experiment arm's.
    let requested = run
        .planner
        .clone()
        .or_else(|| run.experiment.as_ref().map(|e| e.arm.clone()));
    // The semantic plan cache, for a run that has not begun (no partial plan).
    let scope = match inner.semantic.get() {
        Some(_) if prior.is_empty() => inner
            .planners
            .cache_scope(requested.as_deref(), &run.prompt),
        _ => None,
    };
    if let (Some(cache), Some((scope, variant))) = (inner.semantic.get(), &scope)
        && let Some(plan) = semantic_hit(cache, &run.tenant, scope, variant, &run.prompt).await
    {
        return Planned::Whole(Ok(plan));
    }
    if !inner.planners.streams(requested.as_deref()) {
        let planned = inner
            .planners
            .plan_within(requested.as_deref(), &run.prompt, traceparent, allowance)
            .await;
        return check_prior(inner, run, planned, &prior).await;
    }
    let (sink, rx) = StepSink::channel();
    let prompt = run.prompt.clone();
    let planners = &inner.planners;
    let planning = async move {
        let planned = planners
            .plan_streamed(
                requested.as_deref(),
                &prompt,
                traceparent,
                allowance,
                Some(&sink),
            )
            .await;
        // Closes the channel: the executing side stops waiting for steps.
        drop(sink);
        planned
    };
    let executing = execute_early(inner, run, cancel, rx, &prior);
    let (planned, early) = tokio::join!(planning, executing);
    let Early {
        outputs,
        known,
        ran,
        stop,
    } = early;
    if ran == 0 && !matches!(stop, Some(Stop::Mismatch(_))) {
        return check_prior(inner, run, planned, &prior).await;
    }
    record_spend(inner, &run.tenant, &planned).await;
    let mut plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            record_plan_failure(run, e.failure_record());
            let message = match (&e, stop) {
                (_, Some(Stop::Store(e))) => return Planned::Done(Err(e)),
                (_, Some(Stop::Cancelled(why))) => {
                    return Planned::Done(
                        executor::finish(inner, run, RunStatus::Cancelled, Some(why)).await,
                    );
                }
                (_, Some(Stop::Failed(why))) => format!("{why}; planning failed as well: {e}"),
                (_, Some(Stop::Mismatch(why))) => why,
                (PlanError::InvalidAfterStep { .. }, None) => e.to_string(),
                (_, None) => format!(
                    "planning failed after step {} ran: {e}",
                    run.completed_steps()
                ),
            };
            return Planned::Done(
                executor::finish(inner, run, RunStatus::Failed, Some(message)).await,
            );
        }
    };
    let mismatch = match &stop {
        Some(Stop::Mismatch(why)) => Some(why.clone()),
        _ => differs(&plan.steps, &known),
    };
    if let Some(why) = mismatch {
        return Planned::Done(fail_contradicted(inner, run, &plan, why).await);
    }
    plan.planner.partial = false;
    run.plan = Some(plan);
    match stop {
        Some(Stop::Store(e)) => Planned::Done(Err(e)),
        Some(Stop::Cancelled(why)) => {
            Planned::Done(executor::finish(inner, run, RunStatus::Cancelled, Some(why)).await)
        }
        Some(Stop::Failed(why)) => {
            Planned::Done(executor::finish(inner, run, RunStatus::Failed, Some(why)).await)
        }
        Some(Stop::Mismatch(_)) | None => {
            // The whole plan replaces the partial one before any further step runs.
            if let Err(e) = inner.store.put_run(run).await {
                return Planned::Done(Err(e));
            }
            Planned::Done(executor::execute_rest(inner, run, cancel, outputs).await)
        }
    }
}

/// Runs each step handed out, in order, until planning finishes or a step does not complete.
async fn execute_early(
    inner: &Inner,
    run: &mut Run,
    cancel: &CancellationToken,
    mut rx: mpsc::UnboundedReceiver<EarlyStep>,
    prior: &[PlanStep],
) -> Early {
    let done_before = run.completed_steps();
    run.execution_log.truncate(done_before);
    let plan_id = run
        .plan
        .as_ref()
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), |p| p.plan_id.clone());
    let mut early = Early {
        outputs: executor::stored_outputs(run),
        known: prior.to_vec(),
        ran: 0,
        stop: None,
    };
    loop {
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                early.stop = Some(Stop::Cancelled("cancelled".into()));
                return early;
            }
            next = rx.recv() => next,
        };
        let Some(EarlyStep { step, planner }) = next else {
            return early;
        };
        let n = step.step_number as usize;
        if let Some(before) = n.checked_sub(1).and_then(|i| prior.get(i)) {
            if before.tool != step.tool || before.input != step.input {
                early.stop = Some(Stop::Mismatch(contradiction(n, before, Some(&step))));
                return early;
            }
            if n <= done_before {
                continue;
            }
        } else {
            early.known.push(step.clone());
        }
        // A step with side effects runs only once the plan so far (this step included) is
        // stored: after a crash the run resumes with the plan whose effects happened, and a run
        // not stored yet (a deferred one, see `Durability`) is stored before its first effect.
        if !executor::read_only_tool(inner, &step.tool) {
            run.plan = Some(partial_plan(&plan_id, planner.clone(), &early.known));
            if let Err(e) = inner.store.put_run(run).await {
                early.stop = Some(Stop::Store(e));
                return early;
            }
        }
        let record = executor::execute_step(inner, run, &step, &early.outputs, cancel).await;
        let (status, error) = executor::record_step(run, &mut early.outputs, record);
        early.ran += 1;
        run.plan = Some(partial_plan(&plan_id, planner, &early.known));
        match status {
            StepStatus::Completed => {
                // The plan so far goes with the step's record: a crash re-runs nothing.
                if let Err(e) = inner.store.put_run(run).await {
                    early.stop = Some(Stop::Store(e));
                    return early;
                }
            }
            StepStatus::Cancelled => {
                early.stop = Some(Stop::Cancelled("cancelled while step was running".into()));
                return early;
            }
            StepStatus::Failed | StepStatus::Running => {
                early.stop = Some(Stop::Failed(executor::step_failure(&step, error)));
                return early;
            }
        }
    }
}

/// The plan of the steps handed out so far.
fn partial_plan(plan_id: &str, mut planner: PlannerInfo, steps: &[PlanStep]) -> Plan {
    planner.partial = true;
    Plan {
        plan_id: plan_id.to_owned(),
        planner,
        steps: steps.to_vec(),
    }
}

/// The normal path's outcome, unless the plan contradicts the steps of an earlier partial
/// plan that already ran.
/// The semantic plan cache's plan for `prompt`, if it has one it may serve.
async fn semantic_hit(
    cache: &Arc<SemanticCache>,
    tenant: &str,
    scope: &str,
    variant: &VariantRef,
    prompt: &str,
) -> Option<Plan> {
    let started = std::time::Instant::now();
    let (c, t, s, p) = (
        Arc::clone(cache),
        tenant.to_owned(),
        scope.to_owned(),
        prompt.to_owned(),
    );
    let span = tracing::debug_span!(
        "plan_cache.semantic",
        crane.cache.result = tracing::field::Empty,
        crane.cache.similarity = tracing::field::Empty
    );
    let found = tokio::task::spawn_blocking(move || c.lookup(&t, &s, &p))
        .instrument(span.clone())
        .await
        .ok()?;
    match found {
        Lookup::Hit {
            steps,
            exact,
            similarity,
            ..
        } => {
            span.record(
                "crane.cache.result",
                if exact { "hit_exact" } else { "hit_semantic" },
            );
            span.record("crane.cache.similarity", f64::from(similarity));
            let source = if exact {
                PlanSource::Cache
            } else {
                PlanSource::SemanticCache
            };
            let mut planner = PlannerInfo::simple(&variant.name, &variant.version, source);
            planner.variant = Some(variant.clone());
            planner.latency_us = started.elapsed().as_micros() as u64;
            Some(Plan {
                plan_id: uuid::Uuid::now_v7().to_string(),
                planner,
                steps,
            })
        }
        Lookup::Refused {
            refusal,
            similarity,
        } => {
            span.record("crane.cache.result", "refused");
            span.record("crane.cache.similarity", f64::from(similarity));
            tracing::debug!(reason = %refusal, similarity, "semantic plan cache: near hit refused");
            None
        }
        Lookup::Miss => {
            span.record("crane.cache.result", "miss");
            None
        }
    }
}

/// Hands the plan of a run that completed to the semantic plan cache, when an LLM made it for
/// exactly the run's variant (in the background: nothing waits for the embedding or the
/// store). Only plans that ran to the end are cached: a plan that failed is not worth reusing.
pub(super) fn remember_completed(inner: &Arc<Inner>, run: &Run) {
    let Some(cache) = inner.semantic.get() else {
        return;
    };
    let Some(plan) = run.plan.as_ref() else {
        return;
    };
    if run.status != RunStatus::Completed
        || plan.planner.source != PlanSource::Llm
        || plan.planner.partial
    {
        return;
    }
    let requested = run
        .planner
        .clone()
        .or_else(|| run.experiment.as_ref().map(|e| e.arm.clone()));
    let Some((scope, variant)) = inner
        .planners
        .cache_scope(requested.as_deref(), &run.prompt)
    else {
        return;
    };
    let own = plan.planner.variant.as_ref().is_some_and(|v| {
        v.name == variant.name && v.version == variant.version && v.fallback.is_none()
    });
    if !own {
        return;
    }
    let (cache, tenant, prompt, steps) = (
        Arc::clone(cache),
        run.tenant.clone(),
        run.prompt.clone(),
        plan.steps.clone(),
    );
    tokio::spawn(async move {
        if let Err(error) = cache.remember(&tenant, &scope, &prompt, &steps).await {
            tracing::warn!(%error, "semantic plan cache: could not store the plan");
        }
    });
}

async fn check_prior(
    inner: &Inner,
    run: &mut Run,
    planned: Result<Plan, PlanError>,
    prior: &[PlanStep],
) -> Planned {
    if let Ok(plan) = &planned
        && let Some(why) = differs(&plan.steps, prior)
    {
        record_spend(inner, &run.tenant, &planned).await;
        return Planned::Done(fail_contradicted(inner, run, plan, why).await);
    }
    Planned::Whole(planned)
}

/// Why `steps` does not begin with `known` (same tool and input), if it does not.
fn differs(steps: &[PlanStep], known: &[PlanStep]) -> Option<String> {
    known.iter().enumerate().find_map(|(i, before)| {
        let step = steps.get(i);
        let same = step.is_some_and(|s| s.tool == before.tool && s.input == before.input);
        (!same).then(|| contradiction(i + 1, before, step))
    })
}

fn contradiction(n: usize, before: &PlanStep, now: Option<&PlanStep>) -> String {
    match now {
        Some(now) => format!(
            "the plan changed after step {n} ran: the new plan's step {n} is {} {}, but {} {} already ran; submit the task again",
            now.tool, now.input, before.tool, before.input
        ),
        None => format!(
            "the plan changed after step {n} ran: the new plan has no step {n}, but {} {} already ran; submit the task again",
            before.tool, before.input
        ),
    }
}

/// Fails a run whose new plan contradicts steps that ran: the partial plan stays, and what
/// the plan cost goes to `plan_failure`.
async fn fail_contradicted(
    inner: &Inner,
    run: &mut Run,
    plan: &Plan,
    why: String,
) -> Result<(), StoreError> {
    record_plan_failure(
        run,
        Some(PlanFailure {
            attempts: vec![LayerFailure {
                layer: plan.planner.name.clone(),
                category: "invalid_after_step".into(),
                message: why.clone(),
            }],
            usage: plan.planner.usage,
            cost_usd: plan.planner.cost_usd,
        }),
    );
    executor::finish(inner, run, RunStatus::Failed, Some(why)).await
}

/// Records a failed planning's layers and spend (a retried run keeps what earlier failed
/// planning was billed), as `plan_and_execute` does.
fn record_plan_failure(run: &mut Run, failure: Option<PlanFailure>) {
    let earlier = run.plan_failure.take();
    run.plan_failure = match (failure, earlier) {
        (Some(mut now), Some(before)) => {
            now.add_spend(&before);
            Some(now)
        }
        (now, before) => now.or(before),
    };
    if let Some(cost) = run.plan_failure.as_ref().and_then(|f| f.cost_usd) {
        tracing::Span::current().record("crane.cost.usd", cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PlanSource;
    use serde_json::json;

    fn step(n: u32, tool: &str, input: Value) -> PlanStep {
        PlanStep {
            step_number: n,
            tool: tool.into(),
            input,
            reasoning: "r".into(),
        }
    }

    #[test]
    fn a_plan_must_begin_with_the_steps_that_ran() {
        let ran = [step(1, "todo_add", json!({"title": "a"}))];
        let same = [
            step(1, "todo_add", json!({"title": "a"})),
            step(2, "todo_list", json!({})),
        ];
        assert_eq!(differs(&same, &ran), None);
        assert_eq!(differs(&same, &[]), None);
        // The reasoning may differ; tool and input may not.
        let mut reworded = same.clone();
        reworded[0].reasoning = "other".into();
        assert_eq!(differs(&reworded, &ran), None);
        let other = [step(1, "todo_add", json!({"title": "b"}))];
        let why = differs(&other, &ran).expect("a different input");
        assert!(why.contains("after step 1 ran"), "{why}");
        let why = differs(&[], &ran).expect("a shorter plan");
        assert!(why.contains("has no step 1"), "{why}");
    }

    #[test]
    fn only_runs_without_a_whole_plan_need_planning() {
        let mut run = Run::new("p".into(), None, None);
        assert!(needs_plan(&run));
        let info = PlannerInfo::simple("llm:p", "1", PlanSource::Llm);
        let partial = partial_plan("id", info, &[step(1, "todo_list", json!({}))]);
        assert!(partial.planner.partial);
        run.plan = Some(partial);
        assert!(needs_plan(&run));
        if let Some(plan) = run.plan.as_mut() {
            plan.planner.partial = false;
        }
        assert!(!needs_plan(&run));
    }
}
