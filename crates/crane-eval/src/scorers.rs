//! Scorers: each looks at one case and one trial's outcome and returns a [`Score`] — a check
//! the case must pass (`pass: Some(..)`) or a measurement (`pass: None`) — or nothing when it
//! does not apply to the case. A trial passes when every applicable check passes.
//!
//! Built in: `plan_valid`, `tool_sequence`, `arguments` (exact or normalized), `result`
//! (subset match with numeric tolerance), `expected_failure`, `rejection`, `latency` (a check
//! only with `max_latency_ms`), `tokens` and `cost` (from the plan's `planner.usage` /
//! `planner.cost_usd`, plus the run's `plan_failure` when planning failed). Custom scorers
//! implement [`Scorer`] and are added with
//! [`Scorers::register`].

use std::collections::BTreeMap;

use crane_core::domain::{Run, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dataset::{ArgMatch, Case};

/// Default relative tolerance of numeric comparisons in results.
pub const DEFAULT_TOLERANCE: f64 = 1e-9;

/// What one trial of a case produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The run as crane reports it (in-process, or the body of `POST /runs?wait=true`).
    pub run: Option<Run>,
    /// The prompt was refused before any run existed (empty or too long), with the message.
    pub refused: Option<String>,
    /// The harness could not run the case (setup failed, server unreachable, run unfinished).
    pub harness_error: Option<String>,
    /// Submit → finished run, in milliseconds (setup excluded).
    pub latency_ms: f64,
}

impl Outcome {
    /// `completed`, `failed`, `cancelled`, ... for a run; `refused` or `error` otherwise.
    pub fn status(&self) -> &'static str {
        match (&self.harness_error, &self.run, &self.refused) {
            (Some(_), _, _) => "error",
            (None, Some(run), _) => run.status.as_str(),
            (None, None, Some(_)) => "refused",
            (None, None, None) => "error",
        }
    }

    /// The error message of the run, the refusal or the harness, if any.
    pub fn error(&self) -> Option<&str> {
        self.harness_error
            .as_deref()
            .or(self.refused.as_deref())
            .or(self.run.as_ref().and_then(|r| r.error.as_deref()))
    }

    /// Planned `(tool, input)` pairs; `None` when nothing was planned.
    pub fn steps(&self) -> Option<Vec<(&str, &Value)>> {
        let plan = self.run.as_ref()?.plan.as_ref()?;
        Some(
            plan.steps
                .iter()
                .map(|s| (s.tool.as_str(), &s.input))
                .collect(),
        )
    }
}

/// One scorer's verdict on one trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// `Some`: a check the trial must pass; `None`: a measurement only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<bool>,
    /// 1/0 for checks (or a fraction), the measured value for measurements.
    pub value: f64,
    /// Why a check failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Score {
    /// A passed or failed check.
    pub fn check(pass: bool, detail: impl FnOnce() -> String) -> Self {
        Self {
            pass: Some(pass),
            value: if pass { 1.0 } else { 0.0 },
            detail: (!pass).then(detail),
        }
    }

    /// A measurement.
    pub fn metric(value: f64) -> Self {
        Self {
            pass: None,
            value,
            detail: None,
        }
    }
}

/// A scorer. Implement it to add a custom check or measurement, then [`Scorers::register`] it.
pub trait Scorer: Send + Sync {
    /// Unique name, used as the key in reports.
    fn name(&self) -> &str;
    /// The verdict on one trial, or `None` when the scorer does not apply to this case.
    fn score(&self, case: &Case, outcome: &Outcome) -> Option<Score>;
}

/// All scores of one trial and whether it passed.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub pass: bool,
    pub scores: BTreeMap<String, Score>,
    /// `scorer: detail` of every failed check (and the harness error).
    pub failures: Vec<String>,
}

/// The scorers an eval applies, in order.
pub struct Scorers {
    list: Vec<Box<dyn Scorer>>,
}

impl Scorers {
    /// The built-in scorers. `arg_match` overrides every case's `expect.args`.
    pub fn builtin(arg_match: Option<ArgMatch>) -> Self {
        Self {
            list: vec![
                Box::new(PlanValid),
                Box::new(ToolSequence),
                Box::new(Arguments { force: arg_match }),
                Box::new(ResultMatch),
                Box::new(ExpectedFailure),
                Box::new(Rejection),
                Box::new(Latency),
                Box::new(Tokens),
                Box::new(Cost),
            ],
        }
    }

    /// Adds a scorer; its name must be new.
    #[allow(dead_code)] // The extension point for custom scorers (used by tests).
    pub fn register(&mut self, scorer: Box<dyn Scorer>) -> Result<(), String> {
        if self.list.iter().any(|s| s.name() == scorer.name()) {
            return Err(format!(
                "a scorer named '{}' is already registered",
                scorer.name()
            ));
        }
        self.list.push(scorer);
        Ok(())
    }

    /// Scores one trial.
    pub fn judge(&self, case: &Case, outcome: &Outcome) -> Verdict {
        let mut scores = BTreeMap::new();
        let mut failures = Vec::new();
        if let Some(e) = &outcome.harness_error {
            failures.push(format!("harness: {e}"));
        }
        for scorer in &self.list {
            if let Some(score) = scorer.score(case, outcome) {
                if score.pass == Some(false) {
                    failures.push(format!(
                        "{}: {}",
                        scorer.name(),
                        score.detail.as_deref().unwrap_or("failed")
                    ));
                }
                scores.insert(scorer.name().to_owned(), score);
            }
        }
        Verdict {
            pass: failures.is_empty(),
            scores,
            failures,
        }
    }
}

/// The case expects a plan (it is not a rejection case).
fn expects_plan(case: &Case) -> bool {
    !case.expect.reject
}

fn error_contains(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let text = outcome.error().unwrap_or("");
    match case
        .expect
        .error_contains
        .iter()
        .find(|n| !text.contains(n.as_str()))
    {
        Some(needle) => Err(format!("error {text:?} does not contain {needle:?}")),
        None => Ok(()),
    }
}

/// A plan was made and passed validation.
struct PlanValid;

impl Scorer for PlanValid {
    fn name(&self) -> &str {
        "plan_valid"
    }
    fn score(&self, case: &Case, outcome: &Outcome) -> Option<Score> {
        expects_plan(case).then(|| {
            Score::check(outcome.steps().is_some(), || {
                format!(
                    "no valid plan: {}",
                    outcome.error().unwrap_or("no error message")
                )
            })
        })
    }
}

/// The planned tools, in order, equal the expected ones.
struct ToolSequence;

impl Scorer for ToolSequence {
    fn name(&self) -> &str {
        "tool_sequence"
    }
    fn score(&self, case: &Case, outcome: &Outcome) -> Option<Score> {
        let expected = case.expect.steps.as_ref()?;
        let want: Vec<&str> = expected.iter().map(|s| s.tool.as_str()).collect();
        let got: Option<Vec<&str>> = outcome.steps().map(|s| s.iter().map(|(t, _)| *t).collect());
        Some(Score::check(
            got.as_deref() == Some(want.as_slice()),
            || match &got {
                Some(got) => format!("tools {got:?} != expected {want:?}"),
                None => format!("no plan; expected tools {want:?}"),
            },
        ))
    }
}

/// Every expected step input equals the planned one (exact or normalized); `value` is the
/// fraction of expected inputs that matched.
struct Arguments {
    force: Option<ArgMatch>,
}

impl Scorer for Arguments {
    fn name(&self) -> &str {
        "arguments"
    }
    fn score(&self, case: &Case, outcome: &Outcome) -> Option<Score> {
        let expected = case.expect.steps.as_ref()?;
        let checked = expected.iter().filter(|s| s.input.is_some()).count();
        if checked == 0 {
            return None;
        }
        let mode = self.force.or(case.expect.args).unwrap_or_default();
        let got = outcome.steps().unwrap_or_default();
        let mut matched = 0;
        let mut first_diff = None;
        for (i, want) in expected.iter().enumerate() {
            let Some(want_input) = &want.input else {
                continue;
            };
            match got.get(i) {
                Some((_, input)) if args_match(want_input, input, mode) => matched += 1,
                Some((_, input)) => {
                    first_diff.get_or_insert_with(|| {
                        format!("step {}: input {input} != expected {want_input}", i + 1)
                    });
                }
                None => {
                    first_diff.get_or_insert_with(|| {
                        format!("step {}: not planned; expected input {want_input}", i + 1)
                    });
                }
            }
        }
        let extra = got.len() > expected.len();
        let pass = matched == checked && !extra;
        Some(Score {
            pass: Some(pass),
            value: matched as f64 / checked as f64,
            detail: (!pass).then(|| {
                first_diff.unwrap_or_else(|| {
                    format!("{} steps planned, {} expected", got.len(), expected.len())
                })
            }),
        })
    }
}

/// The run completed and its result contains the expected one.
struct ResultMatch;

impl Scorer for ResultMatch {
    fn name(&self) -> &str {
        "result"
    }
    fn score(&self, case: &Case, outcome: &Outcome) -> Option<Score> {
        if case.expect.reject || case.expect.fail {
            return None;
        }
        let Some(run) = outcome
            .run
            .as_ref()
            .filter(|r| r.status == RunStatus::Completed)
        else {
            return Some(Score::check(false, || {
                format!(
                    "run {} (expected completed): {}",
                    outcome.status(),
                    outcome.error().unwrap_or("no error message")
                )
            }));
        };
        let Some(expected) = &case.expect.result else {
            return Some(Score::check(true, String::new));
        };
        let actual = run.result.clone().unwrap_or(Value::Null);
        let tolerance = case.expect.tolerance.unwrap_or(DEFAULT_TOLERANCE);
        let diff = subset_diff(expected, &actual, tolerance, "result");
        Some(Score::check(diff.is_none(), || {
            format!("{} (actual result {actual})", diff.unwrap_or_default())
        }))
    }
}

/// The run was planned and then failed, with the expected error.
struct ExpectedFailure;

impl Scorer for ExpectedFailure {
    fn name(&self) -> &str {
        "expected_failure"
    }
    fn score(&self, case: &Case, outcome: &Outcome) -> Option<Score> {
        if !case.expect.fail {
            return None;
        }
        let failed = outcome
            .run
            .as_ref()
            .is_some_and(|r| r.status == RunStatus::Failed && r.plan.is_some())
            && outcome.harness_error.is_none();
        if !failed {
            return Some(Score::check(false, || {
                let result = outcome
                    .run
                    .as_ref()
                    .and_then(|r| r.result.clone())
                    .unwrap_or(Value::Null);
                format!(
                    "expected a planned run to fail; got {} (result {result})",
                    outcome.status()
                )
            }));
        }
        let contains = error_contains(case, outcome);
        Some(Score::check(contains.is_ok(), || {
            contains.err().unwrap_or_default()
        }))
    }
}

/// Nothing was planned: the prompt was refused or the planner rejected it.
struct Rejection;

impl Scorer for Rejection {
    fn name(&self) -> &str {
        "rejection"
    }
    fn score(&self, case: &Case, outcome: &Outcome) -> Option<Score> {
        if !case.expect.reject {
            return None;
        }
        let rejected = outcome.harness_error.is_none()
            && (outcome.refused.is_some()
                || outcome
                    .run
                    .as_ref()
                    .is_some_and(|r| r.status == RunStatus::Failed && r.plan.is_none()));
        if !rejected {
            return Some(Score::check(false, || match outcome.steps() {
                Some(steps) => format!(
                    "expected a rejection; got status {} with plan {}",
                    outcome.status(),
                    describe_steps(&steps)
                ),
                None => format!(
                    "expected a rejection; got {}",
                    outcome.error().unwrap_or(outcome.status())
                ),
            }));
        }
        let contains = error_contains(case, outcome);
        Some(Score::check(contains.is_ok(), || {
            contains.err().unwrap_or_default()
        }))
    }
}

/// Latency in ms; a check when the case sets `max_latency_ms`.
struct Latency;

impl Scorer for Latency {
    fn name(&self) -> &str {
        "latency"
    }
    fn score(&self, case: &Case, outcome: &Outcome) -> Option<Score> {
        let ms = outcome.latency_ms;
        Some(match case.expect.max_latency_ms {
            Some(max) => Score {
                pass: Some(ms <= max),
                value: ms,
                detail: (ms > max).then(|| format!("{ms:.3} ms > max_latency_ms {max}")),
            },
            None => Score::metric(ms),
        })
    }
}

/// Planning tokens (input + output), when the planner (or failed planning) reports usage.
struct Tokens;

impl Scorer for Tokens {
    fn name(&self) -> &str {
        "tokens"
    }
    fn score(&self, _case: &Case, outcome: &Outcome) -> Option<Score> {
        let usage = outcome.run.as_ref()?.planning_usage()?;
        Some(Score::metric(
            (usage.input_tokens + usage.output_tokens) as f64,
        ))
    }
}

/// Planning cost in USD, when the planner (or failed planning) reports it.
struct Cost;

impl Scorer for Cost {
    fn name(&self) -> &str {
        "cost"
    }
    fn score(&self, _case: &Case, outcome: &Outcome) -> Option<Score> {
        let cost = outcome.run.as_ref()?.planning_cost_usd()?;
        Some(Score::metric(cost))
    }
}

/// `[tool {input}, ...]` for messages.
pub fn describe_steps(steps: &[(&str, &Value)]) -> String {
    let parts: Vec<String> = steps.iter().map(|(t, i)| format!("{t} {i}")).collect();
    format!("[{}]", parts.join(", "))
}

/// `None` when `expected` is contained in `actual` — objects by key (recursively), arrays
/// element-wise with equal length, numbers within `tolerance` (relative), everything else
/// equal — otherwise the first difference, named by its path.
pub fn subset_diff(expected: &Value, actual: &Value, tolerance: f64, path: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().find_map(|(k, v)| match a.get(k) {
            Some(av) => subset_diff(v, av, tolerance, &format!("{path}.{k}")),
            None => Some(format!("{path}.{k}: missing (expected {v})")),
        }),
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Some(format!("{path}: {} items, expected {}", a.len(), e.len()));
            }
            e.iter()
                .zip(a)
                .enumerate()
                .find_map(|(i, (x, y))| subset_diff(x, y, tolerance, &format!("{path}[{i}]")))
        }
        (Value::Number(e), Value::Number(a)) => {
            let (x, y) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            let close = x == y || (x - y).abs() <= tolerance * x.abs().max(y.abs());
            (!close).then(|| format!("{path}: {a}, expected {e}"))
        }
        _ => (expected != actual).then(|| format!("{path}: {actual}, expected {expected}")),
    }
}

/// Whether a planned input matches an expected one under `mode`.
pub fn args_match(expected: &Value, actual: &Value, mode: ArgMatch) -> bool {
    match mode {
        ArgMatch::Exact => expected == actual,
        ArgMatch::Normalized => normalize(expected, None) == normalize(actual, None),
    }
}

/// Normalized form of a tool input: `expression` strings without any whitespace, other strings
/// trimmed with whitespace runs collapsed to one space, numbers as f64.
fn normalize(value: &Value, key: Option<&str>) -> Value {
    match value {
        Value::String(s) if key == Some("expression") => {
            Value::String(s.split_whitespace().collect())
        }
        Value::String(s) => Value::String(s.split_whitespace().collect::<Vec<_>>().join(" ")),
        Value::Number(n) => n.as_f64().map_or(Value::Number(n.clone()), Value::from),
        Value::Array(a) => Value::Array(a.iter().map(|v| normalize(v, None)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), normalize(v, Some(k))))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crane_core::domain::{Plan, PlanSource, PlanStep, PlannerInfo, TokenUsage};
    use serde_json::json;

    fn case(expect: Value) -> Case {
        serde_json::from_value(json!({"id": "c", "prompt": "p", "expect": expect})).unwrap()
    }

    fn run(
        status: RunStatus,
        steps: Option<Vec<(&str, Value)>>,
        result: Option<Value>,
        error: Option<&str>,
    ) -> Outcome {
        let mut run = Run::new("p".into(), None, None);
        run.status = status;
        run.plan = steps.map(|steps| Plan {
            plan_id: "plan".into(),
            planner: PlannerInfo::simple("rule", "1", PlanSource::Rule),
            steps: steps
                .into_iter()
                .enumerate()
                .map(|(i, (tool, input))| PlanStep {
                    step_number: i as u32 + 1,
                    tool: tool.into(),
                    input,
                    reasoning: String::new(),
                })
                .collect(),
        });
        run.result = result;
        run.error = error.map(str::to_owned);
        Outcome {
            run: Some(run),
            latency_ms: 1.5,
            ..Outcome::default()
        }
    }

    fn calc_case() -> Case {
        case(
            json!({"steps": [{"tool": "calculator", "input": {"expression": "7 * 6"}}], "result": {"value": 42}}),
        )
    }

    #[test]
    fn a_correct_run_passes_every_check() {
        let out = run(
            RunStatus::Completed,
            Some(vec![("calculator", json!({"expression": "7 * 6"}))]),
            Some(json!({"expression": "7 * 6", "value": 42})),
            None,
        );
        let v = Scorers::builtin(None).judge(&calc_case(), &out);
        assert!(v.pass, "{:?}", v.failures);
        let names: Vec<&str> = v.scores.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "arguments",
                "latency",
                "plan_valid",
                "result",
                "tool_sequence"
            ]
        );
        assert_eq!(v.scores["latency"], Score::metric(1.5));
    }

    #[test]
    fn argument_match_exact_or_normalized() {
        let out = run(
            RunStatus::Completed,
            Some(vec![("calculator", json!({"expression": "7*6"}))]),
            Some(json!({"value": 42})),
            None,
        );
        let exact = Scorers::builtin(None).judge(&calc_case(), &out);
        assert!(!exact.pass);
        assert_eq!(exact.failures.len(), 1, "{:?}", exact.failures);
        assert!(
            exact.failures[0].starts_with("arguments: step 1"),
            "{:?}",
            exact.failures
        );
        assert!(
            Scorers::builtin(Some(ArgMatch::Normalized))
                .judge(&calc_case(), &out)
                .pass
        );
        let mut per_case = calc_case();
        per_case.expect.args = Some(ArgMatch::Normalized);
        assert!(Scorers::builtin(None).judge(&per_case, &out).pass);

        assert!(args_match(
            &json!({"title": " buy  milk "}),
            &json!({"title": "buy milk"}),
            ArgMatch::Normalized
        ));
        assert!(!args_match(
            &json!({"title": "buy milk"}),
            &json!({"title": "Buy milk"}),
            ArgMatch::Normalized
        ));
        assert!(!args_match(
            &json!({"title": "buymilk"}),
            &json!({"title": "buy milk"}),
            ArgMatch::Normalized
        ));
        assert!(args_match(
            &json!({"n": 1}),
            &json!({"n": 1.0}),
            ArgMatch::Normalized
        ));
    }

    #[test]
    fn wrong_tools_and_extra_steps_fail() {
        let out = run(
            RunStatus::Completed,
            Some(vec![
                ("calculator", json!({"expression": "7 * 6"})),
                ("todo_list", json!({})),
            ]),
            Some(json!({"count": 0})),
            None,
        );
        let v = Scorers::builtin(None).judge(&calc_case(), &out);
        assert!(!v.pass);
        assert_eq!(v.scores["tool_sequence"].pass, Some(false));
        assert_eq!(v.scores["arguments"].pass, Some(false));
        assert_eq!(v.scores["result"].pass, Some(false));
        // Tool-only expectations skip the argument check.
        let tools_only = case(json!({"steps": [{"tool": "calculator"}]}));
        let ok = run(
            RunStatus::Completed,
            Some(vec![("calculator", json!({"expression": "1"}))]),
            None,
            None,
        );
        let v = Scorers::builtin(None).judge(&tools_only, &ok);
        assert!(v.pass && !v.scores.contains_key("arguments"), "{v:?}");
    }

    #[test]
    fn result_subset_with_tolerance() {
        assert_eq!(
            subset_diff(
                &json!({"value": 0.3}),
                &json!({"value": 0.3, "x": 1}),
                1e-9,
                "r"
            ),
            None
        );
        assert!(
            subset_diff(
                &json!({"value": 0.3}),
                &json!({"value": 0.300001}),
                1e-9,
                "r"
            )
            .is_some()
        );
        assert_eq!(
            subset_diff(
                &json!({"value": 0.3}),
                &json!({"value": 0.300001}),
                1e-3,
                "r"
            ),
            None
        );
        assert_eq!(
            subset_diff(
                &json!({"todos": [{"title": "a"}]}),
                &json!({"todos": [{"title": "a"}, {"title": "b"}]}),
                0.0,
                "result"
            ),
            Some("result.todos: 2 items, expected 1".into())
        );
        assert_eq!(
            subset_diff(
                &json!({"todo": {"done": true}}),
                &json!({"todo": {"done": false}}),
                0.0,
                "result"
            ),
            Some("result.todo.done: false, expected true".into())
        );
        assert!(
            subset_diff(&json!({"missing": 1}), &json!({}), 0.0, "r")
                .unwrap()
                .contains("missing")
        );
        let c = case(json!({"result": {"value": 0.3}, "tolerance": 0.01}));
        let out = run(
            RunStatus::Completed,
            Some(vec![]),
            Some(json!({"value": 0.301})),
            None,
        );
        assert!(Scorers::builtin(None).judge(&c, &out).pass);
    }

    #[test]
    fn expected_failure_and_rejection() {
        let fail_case = case(
            json!({"steps": [{"tool": "calculator"}], "fail": true, "error_contains": ["division by zero"]}),
        );
        let failed = run(
            RunStatus::Failed,
            Some(vec![("calculator", json!({}))]),
            None,
            Some("division by zero"),
        );
        assert!(Scorers::builtin(None).judge(&fail_case, &failed).pass);
        let other = run(
            RunStatus::Failed,
            Some(vec![("calculator", json!({}))]),
            None,
            Some("overflow"),
        );
        let v = Scorers::builtin(None).judge(&fail_case, &other);
        assert_eq!(v.scores["expected_failure"].pass, Some(false));
        let completed = run(
            RunStatus::Completed,
            Some(vec![("calculator", json!({}))]),
            Some(json!({"value": 1})),
            None,
        );
        assert!(!Scorers::builtin(None).judge(&fail_case, &completed).pass);

        let reject_case = case(json!({"reject": true, "error_contains": ["could not understand"]}));
        let rejected = run(
            RunStatus::Failed,
            None,
            None,
            Some("I could not understand \"x\"."),
        );
        let v = Scorers::builtin(None).judge(&reject_case, &rejected);
        assert!(v.pass, "{v:?}");
        assert!(!v.scores.contains_key("plan_valid"));
        let refused = Outcome {
            refused: Some("I could not understand: the prompt is too long".into()),
            ..Outcome::default()
        };
        assert!(Scorers::builtin(None).judge(&reject_case, &refused).pass);
        let planned = run(
            RunStatus::Completed,
            Some(vec![("todo_delete", json!({"title": "x"}))]),
            None,
            None,
        );
        let v = Scorers::builtin(None).judge(&reject_case, &planned);
        assert!(!v.pass);
        assert!(v.failures[0].contains("todo_delete"), "{:?}", v.failures);
    }

    #[test]
    fn harness_errors_fail_the_trial() {
        let out = Outcome {
            harness_error: Some("connection refused".into()),
            ..Outcome::default()
        };
        let v = Scorers::builtin(None).judge(&case(json!({})), &out);
        assert!(!v.pass);
        assert_eq!(v.failures[0], "harness: connection refused");
    }

    #[test]
    fn latency_tokens_and_cost() {
        let mut out = run(
            RunStatus::Completed,
            Some(vec![("calculator", json!({}))]),
            Some(json!({})),
            None,
        );
        let plan = out.run.as_mut().unwrap().plan.as_mut().unwrap();
        plan.planner.usage = Some(TokenUsage {
            input_tokens: 100,
            output_tokens: 20,
        });
        plan.planner.cost_usd = Some(0.002);
        let c = case(json!({"max_latency_ms": 1.0}));
        let v = Scorers::builtin(None).judge(&c, &out);
        assert_eq!(v.scores["tokens"], Score::metric(120.0));
        assert_eq!(v.scores["cost"], Score::metric(0.002));
        assert_eq!(v.scores["latency"].pass, Some(false));
        assert!(!v.pass);
    }

    #[test]
    fn tokens_and_cost_count_failed_planning() {
        let mut out = run(
            RunStatus::Failed,
            None,
            None,
            Some("no planner could plan this prompt"),
        );
        let failed = out.run.as_mut().unwrap();
        failed.plan_failure = Some(crane_core::domain::PlanFailure {
            attempts: Vec::new(),
            usage: Some(TokenUsage {
                input_tokens: 200,
                output_tokens: 40,
            }),
            cost_usd: Some(0.00028),
        });
        let v = Scorers::builtin(None).judge(&case(json!({})), &out);
        assert_eq!(v.scores["tokens"], Score::metric(240.0));
        assert_eq!(v.scores["cost"], Score::metric(0.00028));
    }

    struct TitleIsLowercase;
    impl Scorer for TitleIsLowercase {
        fn name(&self) -> &str {
            "lowercase_titles"
        }
        fn score(&self, _case: &Case, outcome: &Outcome) -> Option<Score> {
            let steps = outcome.steps()?;
            let titles: Vec<&str> = steps
                .iter()
                .filter_map(|(_, i)| i["title"].as_str())
                .collect();
            (!titles.is_empty()).then(|| {
                Score::check(titles.iter().all(|t| *t == t.to_lowercase()), || {
                    "uppercase title".into()
                })
            })
        }
    }

    #[test]
    fn custom_scorers_plug_in() {
        let mut scorers = Scorers::builtin(None);
        scorers.register(Box::new(TitleIsLowercase)).unwrap();
        assert!(scorers.register(Box::new(TitleIsLowercase)).is_err());
        let out = run(
            RunStatus::Completed,
            Some(vec![("todo_add", json!({"title": "Buy"}))]),
            Some(json!({})),
            None,
        );
        let v = scorers.judge(&case(json!({})), &out);
        assert!(!v.pass);
        assert_eq!(v.failures, ["lowercase_titles: uppercase title"]);
    }
}
