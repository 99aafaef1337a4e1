//! Failure analysis: a tenant's failed runs (newest first, up to a limit) grouped by error
//! category and, within a category, by near-duplicate prompts.
//!
//! Only `failed` runs are examined; a `cancelled` run is not a failure.
//!
//! Error categories (a small stable set, decided from what the run records, first match wins):
//! - `timeout` — the failed step's last attempt timed out (`error_kind = "timeout"`).
//! - `tool_error:<tool>` — a step of the plan failed otherwise (not found, invalid input after
//!   references, division by zero, ...); `<tool>` is the step's tool.
//! - `budget` — planning stopped because a spend budget was used up (a `budget` attempt in
//!   `plan_failure`).
//! - `llm_error` — an LLM call failed (`auth`, `config`, `rate_limit`, `timeout`, `server`,
//!   `network`, `circuit_open` in `plan_failure`); LLM timeouts count here, not as `timeout`.
//! - `plan_invalid` — a plan was made but did not validate (`invalid_plan`, `invalid_output`,
//!   `invalid_after_step` in `plan_failure`, or a run error "the plan is invalid: ...").
//! - `unknown_planner` — the run named a planner variant or alias that is not registered.
//! - `plan_rejected` — no plan: the planner did not understand the prompt (the rule planner's
//!   rejection, or every layer missed).
//! - `other` — failed with a plan and no failed step (e.g. a plan that changed after a step
//!   ran).
//!
//! Grouping within a category: with an embedder ([`Embed`]), greedy clustering — prompts in
//! order (newest first) join the group whose representative (its first, newest prompt) is the
//! most similar by cosine similarity, when at least the threshold (default
//! [`DEFAULT_THRESHOLD`]); otherwise they start a new group. Prompts equal after
//! [`normalize`] are embedded once. Without an embedder (or when embedding a prompt of the
//! category fails) prompts group by their normalised text: lower-case, every digit `#`,
//! whitespace collapsed. Work is O(prompts × groups) vector comparisons per category.

use std::collections::HashMap;

use serde::Serialize;

use crate::domain::StepStatus;
use crate::planning::semantic::cache::Embed;
use crate::store::{RunFilter, Store, StoreError};
use crate::{Run, RunStatus};

/// Failed runs examined by default (the newest).
pub const DEFAULT_LIMIT: usize = 1000;
/// Most failed runs one analysis may examine.
pub const MAX_LIMIT: usize = 10_000;
/// Least cosine similarity of two prompts in one group.
pub const DEFAULT_THRESHOLD: f32 = 0.80;
/// Most run ids listed per group.
pub const MAX_RUN_IDS: usize = 20;
/// Longest sample error message kept, in characters.
const MAX_ERROR_CHARS: usize = 500;
/// Runs per store page while collecting.
const PAGE: usize = 200;

/// What the analysis keeps of one failed run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub run_id: String,
    pub prompt: String,
    /// See the module documentation.
    pub category: String,
    /// The run's error message (empty when it has none).
    pub error: String,
}

impl Failure {
    /// The failure record of `run`.
    pub fn of(run: &Run) -> Self {
        Self {
            run_id: run.run_id.clone(),
            prompt: run.prompt.clone(),
            category: categorize(run),
            error: run.error.clone().unwrap_or_default(),
        }
    }
}

/// A group of failed runs with one category and similar prompts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureGroup {
    pub category: String,
    /// Failed runs in the group.
    pub size: usize,
    /// The group's newest prompt.
    pub representative_prompt: String,
    /// Its newest run ids, at most [`MAX_RUN_IDS`].
    pub run_ids: Vec<String>,
    /// The representative run's error (at most 500 characters).
    pub sample_error: String,
    /// `embedding` (clustered by cosine similarity) or `text` (by normalised text).
    pub method: &'static str,
}

/// The groups, largest first, and how many failed runs were examined.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureReport {
    pub groups: Vec<FailureGroup>,
    pub runs_examined: usize,
}

/// The error category of a failed run (see the module documentation).
pub fn categorize(run: &Run) -> String {
    if let Some(step) = run
        .execution_log
        .iter()
        .rev()
        .find(|s| s.status == StepStatus::Failed)
    {
        let kind = step
            .attempt_log
            .last()
            .and_then(|a| a.error_kind.as_deref());
        return if kind == Some("timeout") {
            "timeout".into()
        } else {
            format!("tool_error:{}", step.tool)
        };
    }
    if let Some(failure) = &run.plan_failure
        && !failure.attempts.is_empty()
    {
        let has = |set: &[&str]| {
            failure
                .attempts
                .iter()
                .any(|a| set.contains(&a.category.as_str()))
        };
        return if has(&["budget"]) {
            "budget"
        } else if has(&[
            "auth",
            "config",
            "rate_limit",
            "timeout",
            "server",
            "network",
            "circuit_open",
        ]) {
            "llm_error"
        } else if has(&["invalid_plan", "invalid_output", "invalid_after_step"]) {
            "plan_invalid"
        } else {
            "plan_rejected"
        }
        .into();
    }
    let error = run.error.as_deref().unwrap_or("");
    if error.starts_with("unknown planner") {
        "unknown_planner".into()
    } else if error.starts_with("the plan is invalid") {
        "plan_invalid".into()
    } else if run.plan.is_none() {
        "plan_rejected".into()
    } else {
        "other".into()
    }
}

/// A prompt's text key: lower-case, every digit `#`, whitespace collapsed to one space.
pub fn normalize(prompt: &str) -> String {
    let mut out = String::with_capacity(prompt.len());
    for word in prompt.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars().flat_map(char::to_lowercase) {
            out.push(if c.is_ascii_digit() { '#' } else { c });
        }
    }
    out
}

/// The tenant's failed runs, newest first, at most `limit` (paged through the store).
pub async fn collect(
    store: &Store,
    tenant: &str,
    limit: usize,
) -> Result<Vec<Failure>, StoreError> {
    let mut out = Vec::new();
    let mut cursor = None;
    while out.len() < limit {
        let page = store
            .list_runs(RunFilter {
                tenant: Some(tenant.to_owned()),
                status: Some(RunStatus::Failed),
                user_id: None,
                limit: (limit - out.len()).min(PAGE),
                cursor,
            })
            .await?;
        if page.runs.is_empty() {
            break;
        }
        out.extend(page.runs.iter().map(Failure::of));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    out.truncate(limit);
    Ok(out)
}

/// Groups `failures` (newest first) by category and similar prompts; largest group first.
/// CPU-bound with an embedder: call it off the async workers.
pub fn group(failures: &[Failure], embed: Option<&dyn Embed>, threshold: f32) -> FailureReport {
    // Categories in order of first appearance, each with its failures in order.
    let mut categories: Vec<(&str, Vec<&Failure>)> = Vec::new();
    for f in failures {
        match categories.iter_mut().find(|(c, _)| *c == f.category) {
            Some((_, members)) => members.push(f),
            None => categories.push((&f.category, vec![f])),
        }
    }
    let mut groups = Vec::new();
    for (category, members) in categories {
        let clustered = embed.and_then(|e| by_embedding(&members, e, threshold));
        let (clusters, method) = match clustered {
            Some(c) => (c, "embedding"),
            None => (by_text(&members), "text"),
        };
        for cluster in clusters {
            let Some(first) = cluster.first() else {
                continue;
            };
            groups.push(FailureGroup {
                category: category.to_owned(),
                size: cluster.len(),
                representative_prompt: first.prompt.clone(),
                run_ids: cluster
                    .iter()
                    .take(MAX_RUN_IDS)
                    .map(|f| f.run_id.clone())
                    .collect(),
                sample_error: first.error.chars().take(MAX_ERROR_CHARS).collect(),
                method,
            });
        }
    }
    // Stable: equal sizes keep category and first-appearance order.
    groups.sort_by_key(|g| std::cmp::Reverse(g.size));
    FailureReport {
        groups,
        runs_examined: failures.len(),
    }
}

/// Groups of identical normalised prompts, in order of first appearance.
fn by_text<'a>(members: &[&'a Failure]) -> Vec<Vec<&'a Failure>> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut clusters: Vec<Vec<&Failure>> = Vec::new();
    for f in members {
        let key = normalize(&f.prompt);
        match index.get(&key) {
            Some(&i) => clusters[i].push(f),
            None => {
                index.insert(key, clusters.len());
                clusters.push(vec![f]);
            }
        }
    }
    clusters
}

/// Greedy clusters by cosine similarity to each cluster's representative; `None` when a
/// prompt could not be embedded (the caller falls back to text).
fn by_embedding<'a>(
    members: &[&'a Failure],
    embed: &dyn Embed,
    threshold: f32,
) -> Option<Vec<Vec<&'a Failure>>> {
    // Normalised text → cluster, so equal prompts are embedded once.
    let mut known: HashMap<String, usize> = HashMap::new();
    let mut reps: Vec<Vec<f32>> = Vec::new();
    let mut clusters: Vec<Vec<&Failure>> = Vec::new();
    for f in members {
        let key = normalize(&f.prompt);
        if let Some(&i) = known.get(&key) {
            clusters[i].push(f);
            continue;
        }
        let v = match embed.embed(&f.prompt) {
            Ok(v) => v,
            Err(error) => {
                tracing::warn!(%error, "could not embed a failed run's prompt; grouping by text");
                return None;
            }
        };
        let best = reps
            .iter()
            .enumerate()
            .map(|(i, r)| (i, cosine(&v, r)))
            .filter(|(_, s)| *s >= threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let i = match best {
            Some((i, _)) => i,
            None => {
                reps.push(v);
                clusters.push(Vec::new());
                clusters.len() - 1
            }
        };
        clusters[i].push(f);
        known.insert(key, i);
    }
    Some(clusters)
}

/// Cosine similarity; 0 for vectors of different length or zero norm.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Plan;
    use crate::domain::{AttemptRecord, LayerFailure, PlanFailure, StepRecord, now};
    use serde_json::json;

    fn failed(prompt: &str, error: &str) -> Run {
        let mut run = Run::new(prompt.into(), None, None);
        run.status = RunStatus::Failed;
        run.error = Some(error.into());
        run
    }

    fn with_failed_step(mut run: Run, tool: &str, kind: &str) -> Run {
        run.plan = Some(
            serde_json::from_value::<Plan>(json!({
                "plan_id": "p",
                "planner": {"name": "rule", "version": "1", "source": "rule"},
                "steps": [{"step_number": 1, "tool": tool, "input": {}}],
            }))
            .unwrap(),
        );
        run.execution_log.push(StepRecord {
            step_number: 1,
            tool: tool.into(),
            input: json!({}),
            status: StepStatus::Failed,
            output: None,
            error: Some("boom".into()),
            attempts: 1,
            attempt_log: vec![AttemptRecord {
                attempt: 1,
                status: StepStatus::Failed,
                error: Some("boom".into()),
                error_kind: Some(kind.into()),
                started_at: now(),
                duration_ms: 1.0,
                backoff_ms: None,
            }],
            started_at: now(),
            finished_at: Some(now()),
            duration_ms: Some(1.0),
        });
        run
    }

    fn with_attempts(mut run: Run, categories: &[&str]) -> Run {
        run.plan_failure = Some(PlanFailure {
            attempts: categories
                .iter()
                .map(|c| LayerFailure {
                    layer: "llm:primary".into(),
                    category: (*c).into(),
                    message: "m".into(),
                })
                .collect(),
            usage: None,
            cost_usd: None,
        });
        run
    }

    #[test]
    fn categories_come_from_what_the_run_records() {
        let rejected = failed("book a flight to Paris", "I could not understand ...");
        assert_eq!(categorize(&rejected), "plan_rejected");
        let step = with_failed_step(
            failed(
                "what is 1/0",
                "step 1 (calculator) failed: division by zero",
            ),
            "calculator",
            "invalid_input",
        );
        assert_eq!(categorize(&step), "tool_error:calculator");
        let slow = with_failed_step(failed("sleep", "timed out"), "debug_sleep", "timeout");
        assert_eq!(categorize(&slow), "timeout");
        let cases: &[(&[&str], &str)] = &[
            (&["timeout", "rejected"], "llm_error"),
            (&["rate_limit"], "llm_error"),
            (&["invalid_output", "rejected"], "plan_invalid"),
            (&["invalid_after_step"], "plan_invalid"),
            (&["rejected", "budget"], "budget"),
            (&["miss", "rejected"], "plan_rejected"),
        ];
        for (attempts, want) in cases {
            let run = with_attempts(failed("x", "no planner could plan"), attempts);
            assert_eq!(categorize(&run), *want, "{attempts:?}");
        }
        assert_eq!(
            categorize(&failed("x", "the plan is invalid: step 1: ...")),
            "plan_invalid"
        );
        assert_eq!(
            categorize(&failed("x", "unknown planner 'nope'; known variants: ...")),
            "unknown_planner"
        );
        // A plan and no failed step.
        let mut changed = with_failed_step(failed("x", "the plan changed"), "calculator", "x");
        changed.execution_log.clear();
        assert_eq!(categorize(&changed), "other");
    }

    #[test]
    fn normalize_folds_case_digits_and_whitespace() {
        assert_eq!(normalize("  What is 12 *\t3 "), "what is ## * #");
        assert_eq!(normalize("What is 7*3"), normalize("what  is 9*1"));
        assert_eq!(normalize(""), "");
    }

    fn failure(n: usize, prompt: &str, category: &str) -> Failure {
        Failure {
            run_id: format!("r{n}"),
            prompt: prompt.into(),
            category: category.into(),
            error: format!("error {n}"),
        }
    }

    #[test]
    fn text_fallback_groups_equal_normalised_prompts_per_category() {
        let failures = vec![
            failure(1, "what is 1/0", "tool_error:calculator"),
            failure(2, "book a flight to Paris", "plan_rejected"),
            failure(3, "What is 2/0", "tool_error:calculator"),
            failure(4, "what is 3 / 0", "tool_error:calculator"),
            failure(5, "what is 5/0", "plan_rejected"),
        ];
        let report = group(&failures, None, DEFAULT_THRESHOLD);
        assert_eq!(report.runs_examined, 5);
        let summary: Vec<(&str, usize, &str)> = report
            .groups
            .iter()
            .map(|g| {
                (
                    g.category.as_str(),
                    g.size,
                    g.representative_prompt.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("tool_error:calculator", 2, "what is 1/0"),
                ("tool_error:calculator", 1, "what is 3 / 0"),
                ("plan_rejected", 1, "book a flight to Paris"),
                ("plan_rejected", 1, "what is 5/0"),
            ]
        );
        let first = &report.groups[0];
        assert_eq!(first.run_ids, vec!["r1", "r3"]);
        assert_eq!(first.sample_error, "error 1");
        assert_eq!(first.method, "text");
    }

    /// Bag-of-words vectors over a fixed vocabulary (unknown words share one slot).
    struct Words;

    const VOCAB: &[&str] = &[
        "book", "flight", "to", "paris", "rome", "a", "hotel", "in", "order", "pizza",
    ];

    impl Embed for Words {
        fn embed(&self, text: &str) -> Result<Vec<f32>, String> {
            if text.contains("poison") {
                return Err("cannot embed".into());
            }
            let mut v = vec![0.0; VOCAB.len() + 1];
            for w in text.to_lowercase().split_whitespace() {
                let i = VOCAB.iter().position(|v| *v == w).unwrap_or(VOCAB.len());
                v[i] += 1.0;
            }
            Ok(v)
        }
        fn dims(&self) -> usize {
            VOCAB.len() + 1
        }
        fn model_id(&self) -> &str {
            "words"
        }
    }

    #[test]
    fn embedding_clusters_near_duplicates_greedily() {
        let failures = vec![
            failure(1, "book a flight to Paris", "plan_rejected"),
            failure(2, "order a pizza", "plan_rejected"),
            failure(3, "book a flight to Rome", "plan_rejected"),
            failure(4, "BOOK  a flight to paris", "plan_rejected"),
            failure(5, "book a hotel in Rome", "plan_rejected"),
        ];
        let report = group(&failures, Some(&Words), 0.75);
        let summary: Vec<(usize, &str, Vec<&str>)> = report
            .groups
            .iter()
            .map(|g| {
                (
                    g.size,
                    g.representative_prompt.as_str(),
                    g.run_ids.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        // flight to Paris ~ flight to Rome: 4/5 = 0.8; hotel in Rome: 2/sqrt(25) = 0.4.
        assert_eq!(
            summary,
            vec![
                (3, "book a flight to Paris", vec!["r1", "r3", "r4"]),
                (1, "order a pizza", vec!["r2"]),
                (1, "book a hotel in Rome", vec!["r5"]),
            ]
        );
        assert!(report.groups.iter().all(|g| g.method == "embedding"));
        // A higher threshold splits Paris from Rome; the identical prompt stays.
        let strict = group(&failures, Some(&Words), 0.95);
        assert_eq!(strict.groups.len(), 4);
        assert_eq!(strict.groups[0].run_ids, vec!["r1", "r4"]);
    }

    #[test]
    fn a_category_that_cannot_be_embedded_falls_back_to_text() {
        let failures = vec![
            failure(1, "poison 1", "plan_rejected"),
            failure(2, "poison 2", "plan_rejected"),
            failure(3, "order a pizza", "tool_error:calculator"),
        ];
        let report = group(&failures, Some(&Words), DEFAULT_THRESHOLD);
        assert_eq!(report.groups[0].size, 2);
        assert_eq!(report.groups[0].method, "text");
        assert_eq!(report.groups[1].method, "embedding");
    }

    #[test]
    fn run_ids_are_capped_and_errors_truncated() {
        let long = "e".repeat(2000);
        let failures: Vec<Failure> = (0..30)
            .map(|n| Failure {
                error: long.clone(),
                ..failure(n, "what is 1/0", "tool_error:calculator")
            })
            .collect();
        let report = group(&failures, None, DEFAULT_THRESHOLD);
        assert_eq!(report.groups.len(), 1);
        assert_eq!(report.groups[0].size, 30);
        assert_eq!(report.groups[0].run_ids.len(), MAX_RUN_IDS);
        assert_eq!(report.groups[0].sample_error.chars().count(), 500);
        assert_eq!(group(&[], None, 0.8).groups, vec![]);
    }

    #[test]
    fn cosine_handles_odd_vectors() {
        assert_eq!(cosine(&[1.0, 0.0], &[1.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-6);
    }
}
