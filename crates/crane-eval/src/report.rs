//! The eval report: the JSON document (`--report`, stored in the `evals` table, read back by
//! `crane eval compare`), its short summary (for listings), the summary table printed on
//! stdout, and the Markdown rendering (`--markdown`).
//!
//! Rates: `success_rate` is passed runs / runs (a run is one trial of one case); a case's
//! `pass_rate` is its passed trials / its trials (with `--repeat`, this shows nondeterminism).
//! Latency percentiles are nearest-rank over every trial.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dataset::{ArgMatch, Case};
use crate::scorers::{Outcome, Score, Verdict};

/// Version of the report format.
pub const REPORT_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub report_version: u32,
    pub eval_id: String,
    pub created_at: String,
    pub crane_version: String,
    pub dataset: DatasetInfo,
    /// `in_process` or the server URL.
    pub target: String,
    pub repeat: usize,
    pub concurrency: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg_match: Option<ArgMatch>,
    /// Wall time of all trials, in ms.
    pub wall_ms: f64,
    pub planners: Vec<PlannerReport>,
    pub gates: GateOutcome,
}

/// Which dataset ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub path: String,
    /// Cases evaluated (after `--tag` filtering).
    pub cases: usize,
    /// Tags filtered on (`--tag`), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// Results of one planner variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannerReport {
    pub planner: String,
    /// What the variant is (kind, version, prompt, model), as the registry resolved it.
    #[serde(default)]
    pub variant: VariantSummary,
    /// Wall time of this planner's trials, in ms.
    pub wall_ms: f64,
    pub summary: Summary,
    /// The same figures per tag.
    pub tags: BTreeMap<String, Summary>,
    pub cases: Vec<CaseReport>,
}

/// A planner variant's identity, recorded on every report (and sent to MLflow as params).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VariantSummary {
    /// The variant's name (an alias given with `--planner` is resolved to it).
    pub name: String,
    /// The alias `--planner` named, when it was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// `rule`, `llm` or `rule-first`.
    pub kind: String,
    /// The variant's semantic version.
    pub version: String,
    /// `name@version` of the prompt template (LLM variants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// sha256 of the prompt template's text (LLM variants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_hash: Option<String>,
    /// The model the variant plans with (LLM variants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Aggregated figures over a set of cases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub cases: usize,
    pub runs: usize,
    pub passed_runs: usize,
    /// passed_runs / runs.
    pub success_rate: f64,
    /// Cases that passed every trial.
    pub passed_cases: usize,
    /// Cases that passed some trials but not all.
    pub flaky_cases: usize,
    pub latency_ms: Latency,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Per scorer: how often it applied, passed (checks), and its mean value.
    pub scorers: BTreeMap<String, ScorerStats>,
}

/// Latency statistics in ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// One scorer over a set of trials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScorerStats {
    /// Trials it applied to.
    pub applicable: usize,
    /// Trials whose check passed (checks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<usize>,
    /// passed / applicable (checks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_rate: Option<f64>,
    /// Mean value.
    pub mean: f64,
}

/// One case with all its trials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseReport {
    pub id: String,
    /// The prompt, shortened to 200 characters.
    pub prompt: String,
    pub tags: Vec<String>,
    /// Line in the dataset.
    pub line: usize,
    pub runs: usize,
    pub passed: usize,
    pub pass_rate: f64,
    pub latency_ms: Latency,
    pub trials: Vec<TrialReport>,
}

/// One trial of one case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialReport {
    pub pass: bool,
    /// Run status, or `refused` / `error`.
    pub status: String,
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// `name version (source)` of the planner that made the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_by: Option<String>,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    pub scores: BTreeMap<String, Score>,
    /// `scorer: why` for every failed check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Planned steps (`[{tool, input}]`); kept for failed trials only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Value>,
    /// The run's result; failed trials only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error; failed trials only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TrialReport {
    /// The record of one scored trial.
    pub fn new(outcome: &Outcome, verdict: Verdict) -> Self {
        let plan = outcome.run.as_ref().and_then(|r| r.plan.as_ref());
        // A run that got no plan still cost its failed planning (`plan_failure`).
        let usage = outcome
            .run
            .as_ref()
            .and_then(|r| r.planning_usage())
            .unwrap_or_default();
        let failed = !verdict.pass;
        Self {
            pass: verdict.pass,
            status: outcome.status().to_owned(),
            latency_ms: round3(outcome.latency_ms),
            run_id: outcome.run.as_ref().map(|r| r.run_id.clone()),
            planned_by: plan.map(|p| {
                format!(
                    "{} {} ({})",
                    p.planner.name,
                    p.planner.version,
                    p.planner.source.as_str()
                )
            }),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_usd: outcome.run.as_ref().and_then(|r| r.planning_cost_usd()),
            scores: verdict.scores,
            failures: verdict.failures,
            steps: failed.then(|| outcome.steps()).flatten().map(|s| {
                Value::Array(
                    s.iter()
                        .map(|(t, i)| serde_json::json!({"tool": t, "input": i}))
                        .collect(),
                )
            }),
            result: failed
                .then(|| outcome.run.as_ref().and_then(|r| r.result.clone()))
                .flatten(),
            error: failed.then(|| outcome.error().map(str::to_owned)).flatten(),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency(mut values: Vec<f64>) -> Latency {
    values.sort_by(f64::total_cmp);
    let mean = if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    };
    Latency {
        mean: round3(mean),
        p50: percentile(&values, 0.50),
        p95: percentile(&values, 0.95),
        p99: percentile(&values, 0.99),
        max: values.last().copied().unwrap_or(0.0),
    }
}

/// Shortens `text` to `max` characters, noting the full length.
pub fn shorten(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max).collect();
    format!("{head}… ({n} chars)")
}

impl CaseReport {
    /// A case's record from its trials.
    pub fn new(case: &Case, trials: Vec<TrialReport>) -> Self {
        let passed = trials.iter().filter(|t| t.pass).count();
        let runs = trials.len();
        Self {
            id: case.id.clone(),
            prompt: shorten(&case.prompt, 200),
            tags: case.tags.clone(),
            line: case.line,
            runs,
            passed,
            pass_rate: if runs == 0 {
                0.0
            } else {
                passed as f64 / runs as f64
            },
            latency_ms: latency(trials.iter().map(|t| t.latency_ms).collect()),
            trials,
        }
    }
}

/// Aggregates cases.
pub fn summarize<'a>(cases: impl IntoIterator<Item = &'a CaseReport>) -> Summary {
    let mut s = Summary::default();
    let mut latencies = Vec::new();
    let mut scorer_sums: BTreeMap<String, (usize, usize, bool, f64)> = BTreeMap::new();
    for case in cases {
        s.cases += 1;
        s.runs += case.runs;
        s.passed_runs += case.passed;
        if case.runs > 0 && case.passed == case.runs {
            s.passed_cases += 1;
        } else if case.passed > 0 {
            s.flaky_cases += 1;
        }
        for t in &case.trials {
            latencies.push(t.latency_ms);
            s.input_tokens += t.input_tokens;
            s.output_tokens += t.output_tokens;
            s.cost_usd = crane_llm::round_usd(s.cost_usd + t.cost_usd.unwrap_or(0.0));
            for (name, score) in &t.scores {
                let e = scorer_sums.entry(name.clone()).or_default();
                e.0 += 1;
                e.1 += usize::from(score.pass == Some(true));
                e.2 |= score.pass.is_some();
                e.3 += score.value;
            }
        }
    }
    s.success_rate = if s.runs == 0 {
        0.0
    } else {
        s.passed_runs as f64 / s.runs as f64
    };
    s.latency_ms = latency(latencies);
    s.scorers = scorer_sums
        .into_iter()
        .map(|(name, (applicable, passed, check, sum))| {
            let stats = ScorerStats {
                applicable,
                passed: check.then_some(passed),
                pass_rate: check.then(|| passed as f64 / applicable.max(1) as f64),
                mean: round3(sum / applicable.max(1) as f64),
            };
            (name, stats)
        })
        .collect();
    s
}

impl PlannerReport {
    /// A planner's record from its cases.
    pub fn new(planner: &str, wall_ms: f64, cases: Vec<CaseReport>) -> Self {
        let mut by_tag: BTreeMap<String, Vec<&CaseReport>> = BTreeMap::new();
        for case in &cases {
            for tag in &case.tags {
                by_tag.entry(tag.clone()).or_default().push(case);
            }
        }
        let tags = by_tag
            .into_iter()
            .map(|(tag, list)| (tag, summarize(list)))
            .collect();
        Self {
            planner: planner.to_owned(),
            variant: VariantSummary {
                name: planner.to_owned(),
                ..VariantSummary::default()
            },
            wall_ms: round3(wall_ms),
            summary: summarize(&cases),
            tags,
            cases,
        }
    }
}

impl Report {
    /// The short summary stored for listings (`GET /evals`).
    pub fn brief(&self) -> Value {
        serde_json::json!({
            "eval_id": self.eval_id,
            "created_at": self.created_at,
            "dataset": self.dataset.path,
            "cases": self.dataset.cases,
            "repeat": self.repeat,
            "target": self.target,
            "gates_passed": self.gates.passed,
            "planners": self.planners.iter().map(|p| serde_json::json!({
                "planner": p.planner,
                "runs": p.summary.runs,
                "passed_runs": p.summary.passed_runs,
                "success_rate": p.summary.success_rate,
                "p95_ms": p.summary.latency_ms.p95,
                "cost_usd": p.summary.cost_usd,
            })).collect::<Vec<_>>(),
        })
    }

    /// The summary table printed on stdout.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "crane eval: {} cases from {} × {} repeat(s), {}, concurrency {}, {:.0} ms",
            self.dataset.cases,
            self.dataset.path,
            self.repeat,
            if self.target == "in_process" {
                "in process".to_owned()
            } else {
                format!("against {}", self.target)
            },
            self.concurrency,
            self.wall_ms
        );
        let _ = writeln!(
            out,
            "{:<12} {:>6} {:>6} {:>7} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "planner",
            "cases",
            "runs",
            "passed",
            "success",
            "flaky",
            "p50 ms",
            "p95 ms",
            "max ms",
            "tokens",
            "cost USD"
        );
        for p in &self.planners {
            let s = &p.summary;
            let _ = writeln!(
                out,
                "{:<12} {:>6} {:>6} {:>7} {:>7.1}% {:>6} {:>9.3} {:>9.3} {:>9.3} {:>9} {:>10.4}",
                p.planner,
                s.cases,
                s.runs,
                s.passed_runs,
                s.success_rate * 100.0,
                s.flaky_cases,
                s.latency_ms.p50,
                s.latency_ms.p95,
                s.latency_ms.max,
                s.input_tokens + s.output_tokens,
                s.cost_usd
            );
        }
        for p in &self.planners {
            let failing: Vec<&CaseReport> = worst(&p.cases)
                .into_iter()
                .filter(|c| c.passed < c.runs)
                .collect();
            if failing.is_empty() {
                continue;
            }
            let _ = writeln!(out, "failing cases ({}): {}", p.planner, failing.len());
            for c in failing.iter().take(20) {
                let why = c
                    .trials
                    .iter()
                    .find(|t| !t.pass)
                    .map(|t| t.failures.join("; "))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {} (line {}) {}/{}: {}",
                    c.id,
                    c.line,
                    c.passed,
                    c.runs,
                    shorten(&why, 300)
                );
            }
            if failing.len() > 20 {
                let _ = writeln!(
                    out,
                    "  ... and {} more (see the report)",
                    failing.len() - 20
                );
            }
        }
        out
    }

    /// The Markdown summary.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# crane eval: {}\n", cell(&self.dataset.path));
        let _ = writeln!(md, "- eval id: `{}`", self.eval_id);
        let _ = writeln!(
            md,
            "- created: {} (crane {})",
            self.created_at, self.crane_version
        );
        let _ = writeln!(
            md,
            "- {} cases × {} repeat(s), {}, concurrency {}, wall time {:.0} ms",
            self.dataset.cases,
            self.repeat,
            if self.target == "in_process" {
                "in process".to_owned()
            } else {
                format!("against {}", self.target)
            },
            self.concurrency,
            self.wall_ms
        );
        if self.gates.passed {
            let _ = writeln!(
                md,
                "- gates: **passed** ({})",
                if self.gates.checked.is_empty() {
                    "none set".to_owned()
                } else {
                    self.gates.checked.join(", ")
                }
            );
        } else {
            let _ = writeln!(md, "- gates: **violated**");
            for v in &self.gates.violations {
                let _ = writeln!(md, "  - {}", cell(&v.message));
            }
        }

        let _ = writeln!(md, "\n## Summary\n");
        let _ = writeln!(
            md,
            "| planner | cases | runs | passed | success | flaky | p50 ms | p95 ms | max ms | tokens | cost USD |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for p in &self.planners {
            let s = &p.summary;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.1}% | {} | {:.3} | {:.3} | {:.3} | {} | {:.4} |",
                cell(&p.planner),
                s.cases,
                s.runs,
                s.passed_runs,
                s.success_rate * 100.0,
                s.flaky_cases,
                s.latency_ms.p50,
                s.latency_ms.p95,
                s.latency_ms.max,
                s.input_tokens + s.output_tokens,
                s.cost_usd
            );
        }

        let _ = writeln!(md, "\n## Scorers\n");
        let names: Vec<&String> = self
            .planners
            .iter()
            .flat_map(|p| p.summary.scorers.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let _ = writeln!(
            md,
            "| scorer | {} |",
            self.planners
                .iter()
                .map(|p| cell(&p.planner))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(md, "|---|{}", "---:|".repeat(self.planners.len()));
        for name in names {
            let cells: Vec<String> = self
                .planners
                .iter()
                .map(|p| match p.summary.scorers.get(name) {
                    Some(ScorerStats {
                        pass_rate: Some(r),
                        passed: Some(n),
                        applicable,
                        ..
                    }) => {
                        format!("{:.1}% ({n}/{applicable})", r * 100.0)
                    }
                    Some(s) => format!("mean {} ({} runs)", s.mean, s.applicable),
                    None => "–".into(),
                })
                .collect();
            let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
        }

        let _ = writeln!(md, "\n## Per tag\n");
        let tags: Vec<&String> = self
            .planners
            .iter()
            .flat_map(|p| p.tags.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let _ = writeln!(
            md,
            "| tag | cases | {} |",
            self.planners
                .iter()
                .map(|p| format!("{} success | {} p95 ms", cell(&p.planner), cell(&p.planner)))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(md, "|---|---:|{}", "---:|---:|".repeat(self.planners.len()));
        for tag in tags {
            let cases = self
                .planners
                .iter()
                .filter_map(|p| p.tags.get(tag))
                .map(|s| s.cases)
                .max()
                .unwrap_or(0);
            let cells: Vec<String> = self
                .planners
                .iter()
                .map(|p| match p.tags.get(tag) {
                    Some(s) => format!(
                        "{:.1}% ({}/{}) | {:.3}",
                        s.success_rate * 100.0,
                        s.passed_runs,
                        s.runs,
                        s.latency_ms.p95
                    ),
                    None => "– | –".into(),
                })
                .collect();
            let _ = writeln!(md, "| {} | {cases} | {} |", cell(tag), cells.join(" | "));
        }

        for p in &self.planners {
            let _ = writeln!(md, "\n## Worst cases: {}\n", cell(&p.planner));
            let failing: Vec<&CaseReport> = worst(&p.cases)
                .into_iter()
                .filter(|c| c.passed < c.runs)
                .collect();
            if failing.is_empty() {
                let _ = writeln!(md, "Every case passed every trial.\n");
            } else {
                let _ = writeln!(md, "| case | line | pass rate | why (first failed trial) |");
                let _ = writeln!(md, "|---|---:|---:|---|");
                for c in failing.iter().take(25) {
                    let why = c
                        .trials
                        .iter()
                        .find(|t| !t.pass)
                        .map(|t| t.failures.join("; "))
                        .unwrap_or_default();
                    let _ = writeln!(
                        md,
                        "| {} | {} | {}/{} | {} |",
                        cell(&c.id),
                        c.line,
                        c.passed,
                        c.runs,
                        cell(&shorten(&why, 300))
                    );
                }
                if failing.len() > 25 {
                    let _ = writeln!(
                        md,
                        "\n... and {} more failing cases (see the JSON report).",
                        failing.len() - 25
                    );
                }
                md.push('\n');
            }
            let mut slow: Vec<&CaseReport> = p.cases.iter().collect();
            slow.sort_by(|a, b| b.latency_ms.max.total_cmp(&a.latency_ms.max));
            let _ = writeln!(
                md,
                "Slowest cases:\n\n| case | max ms | mean ms |\n|---|---:|---:|"
            );
            for c in slow.iter().take(5) {
                let _ = writeln!(
                    md,
                    "| {} | {:.3} | {:.3} |",
                    cell(&c.id),
                    c.latency_ms.max,
                    c.latency_ms.mean
                );
            }
        }

        if self.planners.len() > 1 {
            let _ = writeln!(md, "\n## Planners side by side\n");
            let diffs = side_by_side(&self.planners);
            if diffs.is_empty() {
                let _ = writeln!(
                    md,
                    "Every case has the same pass rate and plan under every planner."
                );
            } else {
                let _ = writeln!(
                    md,
                    "Cases whose pass rate or plan differs between planners:\n"
                );
                let _ = writeln!(
                    md,
                    "| case | {} |",
                    self.planners
                        .iter()
                        .map(|p| cell(&p.planner))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
                let _ = writeln!(md, "|---|{}", "---|".repeat(self.planners.len()));
                for (id, cells) in diffs {
                    let _ = writeln!(
                        md,
                        "| {} | {} |",
                        cell(&id),
                        cells
                            .iter()
                            .map(|c| cell(c))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    );
                }
            }
        }

        if self.repeat > 1 {
            let _ = writeln!(md, "\n## Pass rate per case ({} repeats)\n", self.repeat);
            for p in &self.planners {
                let unstable: Vec<&CaseReport> =
                    p.cases.iter().filter(|c| c.passed < c.runs).collect();
                if unstable.is_empty() {
                    let _ = writeln!(
                        md,
                        "- {}: every case passed {}/{}.",
                        cell(&p.planner),
                        self.repeat,
                        self.repeat
                    );
                } else {
                    let _ = writeln!(
                        md,
                        "- {}: {} case(s) below 100%:",
                        cell(&p.planner),
                        unstable.len()
                    );
                    for c in unstable {
                        let _ = writeln!(
                            md,
                            "  - {}: {}/{} ({:.0}%)",
                            cell(&c.id),
                            c.passed,
                            c.runs,
                            c.pass_rate * 100.0
                        );
                    }
                }
            }
        }
        md
    }
}

/// Cases ordered worst first: lowest pass rate, then slowest.
fn worst(cases: &[CaseReport]) -> Vec<&CaseReport> {
    let mut list: Vec<&CaseReport> = cases.iter().collect();
    list.sort_by(|a, b| {
        a.pass_rate
            .total_cmp(&b.pass_rate)
            .then(b.latency_ms.max.total_cmp(&a.latency_ms.max))
    });
    list
}

/// Cases whose pass rate, or plan in a failed trial, differs between planners: (id, one cell
/// per planner).
fn side_by_side(planners: &[PlannerReport]) -> Vec<(String, Vec<String>)> {
    let Some(first) = planners.first() else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for case in &first.cases {
        let per: Vec<Option<&CaseReport>> = planners
            .iter()
            .map(|p| p.cases.iter().find(|c| c.id == case.id))
            .collect();
        let rates: Vec<Option<f64>> = per.iter().map(|c| c.map(|c| c.pass_rate)).collect();
        // Failed trials keep their plan, so differing failures show as differing plans.
        let plans: Vec<Option<String>> = per
            .iter()
            .map(|c| {
                c.and_then(|c| c.trials.iter().find(|t| !t.pass))
                    .and_then(|t| t.steps.as_ref())
                    .map(Value::to_string)
            })
            .collect();
        if rates.windows(2).all(|w| w[0] == w[1]) && plans.windows(2).all(|w| w[0] == w[1]) {
            continue;
        }
        let cells = per
            .iter()
            .map(|c| match c {
                Some(c) => {
                    let mark = if c.passed == c.runs { "pass" } else { "FAIL" };
                    let why = c
                        .trials
                        .iter()
                        .find(|t| !t.pass)
                        .map(|t| t.failures.join("; "))
                        .unwrap_or_default();
                    if why.is_empty() {
                        format!("{mark} {}/{}", c.passed, c.runs)
                    } else {
                        format!("{mark} {}/{}: {}", c.passed, c.runs, shorten(&why, 120))
                    }
                }
                None => "–".into(),
            })
            .collect();
        rows.push((case.id.clone(), cells));
    }
    rows
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The gates' verdict, as stored in the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    pub passed: bool,
    /// The gates that were set, e.g. `min-success-rate 1`.
    pub checked: Vec<String>,
    pub violations: Vec<Violation>,
}

/// One violated gate for one planner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// The flag without its leading dashes, e.g. `min-success-rate`.
    pub gate: String,
    pub planner: String,
    pub threshold: f64,
    pub actual: f64,
    /// Ids of the cases behind the violation, worst first.
    pub cases: Vec<String>,
    /// One line for humans.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn trial(pass: bool, ms: f64) -> TrialReport {
        TrialReport {
            pass,
            status: "completed".into(),
            latency_ms: ms,
            run_id: None,
            planned_by: None,
            input_tokens: 10,
            output_tokens: 5,
            cost_usd: Some(0.001),
            scores: BTreeMap::from([("result".to_owned(), Score::check(pass, || "wrong".into()))]),
            failures: if pass {
                vec![]
            } else {
                vec!["result: wrong".into()]
            },
            steps: None,
            result: None,
            error: None,
        }
    }

    fn case_report(id: &str, tags: &[&str], trials: Vec<TrialReport>) -> CaseReport {
        let case: Case = serde_json::from_value(
            serde_json::json!({"id": id, "prompt": "p", "tags": tags, "expect": {}}),
        )
        .unwrap();
        CaseReport::new(&case, trials)
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[3.0], 0.95), 3.0);
        assert_eq!(percentile(&[], 0.95), 0.0);
    }

    #[test]
    fn summaries_count_runs_cases_tags_and_flakiness() {
        let cases = vec![
            case_report(
                "a",
                &["calc"],
                vec![trial(true, 1.0), trial(true, 2.0), trial(true, 3.0)],
            ),
            case_report(
                "b",
                &["calc", "todo"],
                vec![trial(true, 1.0), trial(false, 4.0), trial(true, 1.0)],
            ),
            case_report(
                "c",
                &["todo"],
                vec![trial(false, 1.0), trial(false, 1.0), trial(false, 1.0)],
            ),
        ];
        assert!((cases[1].pass_rate - 2.0 / 3.0).abs() < 1e-12);
        let p = PlannerReport::new("rule", 10.0, cases);
        let s = &p.summary;
        assert_eq!(
            (
                s.cases,
                s.runs,
                s.passed_runs,
                s.passed_cases,
                s.flaky_cases
            ),
            (3, 9, 5, 1, 1)
        );
        assert!((s.success_rate - 5.0 / 9.0).abs() < 1e-12);
        assert_eq!(s.latency_ms.max, 4.0);
        assert_eq!((s.input_tokens, s.output_tokens), (90, 45));
        assert!((s.cost_usd - 0.009).abs() < 1e-12);
        assert_eq!(s.scorers["result"].passed, Some(5));
        assert_eq!(p.tags["calc"].runs, 6);
        assert_eq!(p.tags["todo"].passed_runs, 2);
        assert_eq!(worst(&p.cases)[0].id, "c");
    }

    #[test]
    fn failed_planning_spend_counts_in_the_trial_and_the_totals() {
        use crane_core::domain::{LayerFailure, PlanFailure, Run, RunStatus, TokenUsage};
        let mut run = Run::new("paint the fence blue".into(), None, None);
        run.status = RunStatus::Failed;
        run.error = Some("no planner could plan this prompt".into());
        run.plan_failure = Some(PlanFailure {
            attempts: vec![LayerFailure {
                layer: "llm:primary".into(),
                category: "invalid_plan".into(),
                message: "invalid plan after one repair round".into(),
            }],
            usage: Some(TokenUsage {
                input_tokens: 200,
                output_tokens: 40,
            }),
            cost_usd: Some(0.00028),
        });
        let outcome = Outcome {
            run: Some(run),
            latency_ms: 3.0,
            ..Outcome::default()
        };
        let verdict = Verdict {
            pass: false,
            scores: BTreeMap::new(),
            failures: vec!["result: no plan".into()],
        };
        let t = TrialReport::new(&outcome, verdict);
        assert_eq!((t.input_tokens, t.output_tokens), (200, 40));
        assert_eq!(t.cost_usd, Some(0.00028));
        assert_eq!(t.planned_by, None);
        let p = PlannerReport::new(
            "llm",
            1.0,
            vec![
                case_report("failed", &[], vec![t]),
                case_report("planned", &[], vec![trial(true, 1.0)]),
            ],
        );
        assert_eq!((p.summary.input_tokens, p.summary.output_tokens), (210, 45));
        assert!(
            (p.summary.cost_usd - 0.00128).abs() < 1e-12,
            "{:?}",
            p.summary
        );
    }

    #[test]
    fn planners_side_by_side_show_only_differing_cases() {
        let a = PlannerReport::new(
            "rule",
            1.0,
            vec![
                case_report("same", &[], vec![trial(true, 1.0)]),
                case_report("differs", &[], vec![trial(true, 1.0)]),
            ],
        );
        let b = PlannerReport::new(
            "llm",
            1.0,
            vec![
                case_report("same", &[], vec![trial(true, 1.0)]),
                case_report("differs", &[], vec![trial(false, 1.0)]),
            ],
        );
        let rows = side_by_side(&[a, b]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "differs");
        assert_eq!(rows[0].1, ["pass 1/1", "FAIL 0/1: result: wrong"]);
    }

    #[test]
    fn markdown_cells_are_escaped_and_prompts_shortened() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        let long = "x".repeat(300);
        assert_eq!(shorten(&long, 5), "xxxxx… (300 chars)");
        assert_eq!(shorten("héllo", 5), "héllo");
    }
}
