//! Gates: thresholds an eval must meet (`--min-success-rate`, `--max-p95-ms`,
//! `--max-cost-usd`, `--min-case-pass-rate`), checked for every planner. Each violation names
//! the gate, the planner, the measured value and the cases behind it; `crane eval` exits 1
//! when there is any.
//!
//! - `min_success_rate`: passed runs / runs ≥ X; the cases behind it are the failing ones.
//! - `max_p95_ms`: p95 trial latency ≤ N ms; the cases behind it have a trial slower than N.
//! - `max_cost_usd`: total planning cost of the planner's trials ≤ X; the cases behind it are
//!   the most expensive ones.
//! - `min_case_pass_rate`: every case passes at least X of its trials (with `--repeat`);
//!   the cases behind it are those below X.

use crate::report::{CaseReport, PlannerReport};
pub use crate::report::{GateOutcome, Violation};

/// Most cases named in one violation's message (the JSON lists up to [`MAX_CASES`]).
const MESSAGE_CASES: usize = 10;
/// Most cases listed per violation.
const MAX_CASES: usize = 100;

/// The thresholds set on the command line.
#[derive(Debug, Clone, Default)]
pub struct Gates {
    pub min_success_rate: Option<f64>,
    pub max_p95_ms: Option<f64>,
    pub max_cost_usd: Option<f64>,
    pub min_case_pass_rate: Option<f64>,
}

impl Gates {
    /// The gates that are set, for reports.
    pub fn describe(&self) -> Vec<String> {
        [
            ("min-success-rate", self.min_success_rate),
            ("max-p95-ms", self.max_p95_ms),
            ("max-cost-usd", self.max_cost_usd),
            ("min-case-pass-rate", self.min_case_pass_rate),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| format!("{name} {v}")))
        .collect()
    }

    /// Checks every planner against every set gate.
    pub fn check(&self, planners: &[PlannerReport]) -> GateOutcome {
        let mut violations = Vec::new();
        for p in planners {
            let s = &p.summary;
            if let Some(min) = self.min_success_rate
                && s.success_rate < min
            {
                let mut failing: Vec<&CaseReport> =
                    p.cases.iter().filter(|c| c.passed < c.runs).collect();
                failing.sort_by(|a, b| a.pass_rate.total_cmp(&b.pass_rate));
                let cases = failing
                    .iter()
                    .map(|c| format!("{} ({}/{} passed, line {})", c.id, c.passed, c.runs, c.line))
                    .collect();
                violations.push(violation(
                    "min-success-rate",
                    p,
                    min,
                    s.success_rate,
                    format!(
                        "success rate {:.4} < {min} ({} of {} runs failed)",
                        s.success_rate,
                        s.runs - s.passed_runs,
                        s.runs
                    ),
                    "failing cases",
                    cases,
                ));
            }
            if let Some(max) = self.max_p95_ms
                && s.latency_ms.p95 > max
            {
                let mut slow: Vec<&CaseReport> =
                    p.cases.iter().filter(|c| c.latency_ms.max > max).collect();
                slow.sort_by(|a, b| b.latency_ms.max.total_cmp(&a.latency_ms.max));
                let cases = slow
                    .iter()
                    .map(|c| format!("{} ({:.3} ms)", c.id, c.latency_ms.max))
                    .collect();
                violations.push(violation(
                    "max-p95-ms",
                    p,
                    max,
                    s.latency_ms.p95,
                    format!("p95 latency {:.3} ms > {max} ms", s.latency_ms.p95),
                    "cases slower than the limit",
                    cases,
                ));
            }
            if let Some(max) = self.max_cost_usd
                && s.cost_usd > max
            {
                let mut costly: Vec<(&CaseReport, f64)> = p
                    .cases
                    .iter()
                    .map(|c| (c, c.trials.iter().filter_map(|t| t.cost_usd).sum::<f64>()))
                    .filter(|(_, cost)| *cost > 0.0)
                    .collect();
                costly.sort_by(|a, b| b.1.total_cmp(&a.1));
                let cases = costly
                    .iter()
                    .map(|(c, cost)| format!("{} (${cost:.4})", c.id))
                    .collect();
                violations.push(violation(
                    "max-cost-usd",
                    p,
                    max,
                    s.cost_usd,
                    format!("total cost ${:.4} > ${max}", s.cost_usd),
                    "most expensive cases",
                    cases,
                ));
            }
            if let Some(min) = self.min_case_pass_rate {
                let mut low: Vec<&CaseReport> =
                    p.cases.iter().filter(|c| c.pass_rate < min).collect();
                if !low.is_empty() {
                    low.sort_by(|a, b| a.pass_rate.total_cmp(&b.pass_rate));
                    let lowest = low[0].pass_rate;
                    let cases = low
                        .iter()
                        .map(|c| {
                            format!("{} ({}/{} passed, line {})", c.id, c.passed, c.runs, c.line)
                        })
                        .collect();
                    violations.push(violation(
                        "min-case-pass-rate",
                        p,
                        min,
                        lowest,
                        format!(
                            "{} case(s) pass less than {min} of their runs (lowest {lowest:.3})",
                            low.len()
                        ),
                        "cases below the rate",
                        cases,
                    ));
                }
            }
        }
        GateOutcome {
            passed: violations.is_empty(),
            checked: self.describe(),
            violations,
        }
    }
}

fn violation(
    gate: &str,
    p: &PlannerReport,
    threshold: f64,
    actual: f64,
    what: String,
    cases_label: &str,
    mut cases: Vec<String>,
) -> Violation {
    let shown: Vec<&str> = cases
        .iter()
        .take(MESSAGE_CASES)
        .map(String::as_str)
        .collect();
    let more = cases.len().saturating_sub(MESSAGE_CASES);
    let list = if cases.is_empty() {
        String::new()
    } else if more > 0 {
        format!("; {cases_label}: {} and {more} more", shown.join(", "))
    } else {
        format!("; {cases_label}: {}", shown.join(", "))
    };
    cases.truncate(MAX_CASES);
    Violation {
        gate: gate.to_owned(),
        planner: p.planner.clone(),
        threshold,
        actual,
        message: format!(
            "gate --{gate} violated by planner {}: {what}{list}",
            p.planner
        ),
        cases,
    }
}

/// Parses a rate in [0, 1] (for clap).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a rate between 0 and 1"))
    }
}

/// Parses a finite non-negative number (for clap).
pub fn parse_non_negative(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} must be a finite number >= 0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Case;
    use crate::report::TrialReport;
    use crate::scorers::Score;
    use std::collections::BTreeMap;

    fn trial(pass: bool, ms: f64, cost: Option<f64>) -> TrialReport {
        TrialReport {
            pass,
            status: "completed".into(),
            latency_ms: ms,
            run_id: None,
            planned_by: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: cost,
            scores: BTreeMap::from([("result".to_owned(), Score::check(pass, || "x".into()))]),
            failures: vec![],
            steps: None,
            result: None,
            error: None,
        }
    }

    fn planner(cases: Vec<(&str, Vec<TrialReport>)>) -> PlannerReport {
        let cases = cases
            .into_iter()
            .map(|(id, trials)| {
                let case: Case = serde_json::from_value(
                    serde_json::json!({"id": id, "prompt": "p", "expect": {}}),
                )
                .unwrap();
                CaseReport::new(&case, trials)
            })
            .collect();
        PlannerReport::new("rule", 1.0, cases)
    }

    #[test]
    fn all_gates_pass_on_a_clean_run() {
        let p = planner(vec![
            ("a", vec![trial(true, 1.0, None)]),
            ("b", vec![trial(true, 2.0, None)]),
        ]);
        let gates = Gates {
            min_success_rate: Some(1.0),
            max_p95_ms: Some(5.0),
            max_cost_usd: Some(0.0),
            min_case_pass_rate: Some(1.0),
        };
        let out = gates.check(&[p]);
        assert!(out.passed, "{out:?}");
        assert_eq!(out.checked.len(), 4);
        assert!(Gates::default().check(&[]).passed);
    }

    #[test]
    fn success_rate_gate_names_the_failing_cases() {
        let p = planner(vec![
            ("good", vec![trial(true, 1.0, None)]),
            ("bad", vec![trial(false, 1.0, None)]),
        ]);
        let out = Gates {
            min_success_rate: Some(1.0),
            ..Gates::default()
        }
        .check(&[p]);
        assert!(!out.passed);
        let v = &out.violations[0];
        assert_eq!((v.gate.as_str(), v.actual), ("min-success-rate", 0.5));
        assert_eq!(v.cases, ["bad (0/1 passed, line 0)"]);
        assert!(
            v.message.contains("--min-success-rate") && v.message.contains("bad"),
            "{}",
            v.message
        );
        // 0.5 meets a 0.5 gate.
        let p = planner(vec![
            ("good", vec![trial(true, 1.0, None)]),
            ("bad", vec![trial(false, 1.0, None)]),
        ]);
        assert!(
            Gates {
                min_success_rate: Some(0.5),
                ..Gates::default()
            }
            .check(&[p])
            .passed
        );
    }

    #[test]
    fn latency_cost_and_case_pass_rate_gates() {
        let p = planner(vec![
            (
                "fast",
                vec![trial(true, 1.0, Some(0.01)), trial(true, 1.0, Some(0.01))],
            ),
            (
                "slow",
                vec![trial(true, 50.0, Some(0.5)), trial(false, 60.0, Some(0.5))],
            ),
        ]);
        let out = Gates {
            max_p95_ms: Some(10.0),
            max_cost_usd: Some(0.1),
            min_case_pass_rate: Some(0.6),
            ..Gates::default()
        }
        .check(&[p]);
        let gates: Vec<&str> = out.violations.iter().map(|v| v.gate.as_str()).collect();
        assert_eq!(gates, ["max-p95-ms", "max-cost-usd", "min-case-pass-rate"]);
        assert_eq!(out.violations[0].cases, ["slow (60.000 ms)"]);
        assert_eq!(out.violations[1].cases[0], "slow ($1.0000)");
        assert_eq!(out.violations[2].cases, ["slow (1/2 passed, line 0)"]);
        assert_eq!(out.violations[2].actual, 0.5);
    }

    #[test]
    fn gate_values_are_checked() {
        assert_eq!(parse_rate("0.95"), Ok(0.95));
        assert!(parse_rate("1.5").is_err());
        assert!(parse_rate("x").is_err());
        assert!(parse_non_negative("-1").is_err());
        assert!(parse_non_negative("inf").is_err());
        assert_eq!(parse_non_negative("250"), Ok(250.0));
    }
}
