//! `crane eval compare BASE.json NEW.json`: regressions between two reports.
//!
//! Planners are paired by name; when each report has exactly one planner they are paired
//! whatever their names (comparing a new variant against the old one). A regression is:
//! - a case that passed in BASE and fails in NEW. "Passed" means a strict majority of its
//!   trials passed, so one unlucky trial of a nondeterministic planner under `--repeat` is not
//!   a regression; a case that merely got less stable is noted;
//! - a success-rate drop larger than one case's share (1 / cases in NEW): noise is one case
//!   flipping, which the case check above reports anyway;
//! - p95 latency up by more than 50 % and by more than 5 ms (both: small absolute changes on
//!   sub-millisecond runs are scheduling noise);
//! - mean planning cost per run up by more than 25 % and by more than $0.0001, or mean
//!   tokens per run up by more than 25 % and by more than 50 tokens.
//!
//! Cases or planners present in only one report are noted, not counted as regressions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::report::{PlannerReport, Report};

/// p95 latency regression: relative and absolute thresholds (both must be exceeded).
pub const P95_RATIO: f64 = 1.5;
pub const P95_MIN_MS: f64 = 5.0;
/// Cost / token regressions: relative and absolute thresholds per run.
pub const COST_RATIO: f64 = 1.25;
pub const COST_MIN_USD: f64 = 0.0001;
pub const TOKENS_RATIO: f64 = 1.25;
pub const TOKENS_MIN: f64 = 50.0;

/// The comparison of two reports.
#[derive(Debug, Default)]
pub struct Comparison {
    /// One line per compared metric, for the table.
    pub rows: Vec<String>,
    pub regressions: Vec<String>,
    pub improvements: Vec<String>,
    pub notes: Vec<String>,
}

/// Reads a report written by `crane eval --report`.
pub fn read(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("could not read {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a crane eval report: {e}", path.display()))
}

/// Pairs the planners of two reports.
fn pairs<'a>(
    base: &'a Report,
    new: &'a Report,
    notes: &mut Vec<String>,
) -> Vec<(&'a PlannerReport, &'a PlannerReport)> {
    if let ([b], [n]) = (base.planners.as_slice(), new.planners.as_slice()) {
        return vec![(b, n)];
    }
    let mut out = Vec::new();
    for b in &base.planners {
        match new.planners.iter().find(|n| n.planner == b.planner) {
            Some(n) => out.push((b, n)),
            None => notes.push(format!("planner {} is only in BASE", b.planner)),
        }
    }
    for n in &new.planners {
        if !base.planners.iter().any(|b| b.planner == n.planner) {
            notes.push(format!("planner {} is only in NEW", n.planner));
        }
    }
    out
}

fn majority(passed: usize, runs: usize) -> bool {
    runs > 0 && passed * 2 > runs
}

fn per_run(total: f64, runs: usize) -> f64 {
    if runs == 0 { 0.0 } else { total / runs as f64 }
}

/// Compares NEW against BASE.
pub fn compare(base: &Report, new: &Report) -> Comparison {
    let mut c = Comparison::default();
    for (b, n) in pairs(base, new, &mut c.notes) {
        let label = if b.planner == n.planner {
            b.planner.clone()
        } else {
            format!("{} → {}", b.planner, n.planner)
        };
        let (bs, ns) = (&b.summary, &n.summary);

        // Cases.
        let new_cases: BTreeMap<&str, _> = n.cases.iter().map(|c| (c.id.as_str(), c)).collect();
        for bc in &b.cases {
            let Some(nc) = new_cases.get(bc.id.as_str()) else {
                c.notes
                    .push(format!("{label}: case {} is only in BASE", bc.id));
                continue;
            };
            let (was, now) = (majority(bc.passed, bc.runs), majority(nc.passed, nc.runs));
            if was && !now {
                let why = nc
                    .trials
                    .iter()
                    .find(|t| !t.pass)
                    .map(|t| t.failures.join("; "))
                    .unwrap_or_default();
                c.regressions.push(format!(
                    "{label}: case {} passed {}/{} and now passes {}/{}: {}",
                    bc.id,
                    bc.passed,
                    bc.runs,
                    nc.passed,
                    nc.runs,
                    crate::report::shorten(&why, 300)
                ));
            } else if !was && now {
                c.improvements.push(format!(
                    "{label}: case {} now passes ({}/{} → {}/{})",
                    bc.id, bc.passed, bc.runs, nc.passed, nc.runs
                ));
            } else if nc.pass_rate < bc.pass_rate {
                c.notes.push(format!(
                    "{label}: case {} is less stable ({}/{} → {}/{}; within noise)",
                    bc.id, bc.passed, bc.runs, nc.passed, nc.runs
                ));
            }
        }
        let base_ids: std::collections::HashSet<&str> =
            b.cases.iter().map(|c| c.id.as_str()).collect();
        for nc in n
            .cases
            .iter()
            .filter(|nc| !base_ids.contains(nc.id.as_str()))
        {
            let state = if majority(nc.passed, nc.runs) {
                "passes"
            } else {
                "FAILS"
            };
            c.notes.push(format!(
                "{label}: case {} is new and {state} ({}/{})",
                nc.id, nc.passed, nc.runs
            ));
        }

        // Success rate: noise is one case's share.
        let noise = 1.0 / ns.cases.max(1) as f64;
        let drop = bs.success_rate - ns.success_rate;
        c.rows.push(format!(
            "{label:<16} success rate   {:>10.4} → {:>10.4}  ({:+.4})",
            bs.success_rate,
            ns.success_rate,
            ns.success_rate - bs.success_rate
        ));
        if drop > noise + 1e-12 {
            c.regressions.push(format!(
                "{label}: success rate dropped {:.4} → {:.4} (more than one case's share, {noise:.4})",
                bs.success_rate, ns.success_rate
            ));
        }

        // Latency.
        let (bp, np) = (bs.latency_ms.p95, ns.latency_ms.p95);
        c.rows.push(format!(
            "{label:<16} p95 ms         {bp:>10.3} → {np:>10.3}  ({:+.3})",
            np - bp
        ));
        if np > bp * P95_RATIO && np - bp > P95_MIN_MS {
            c.regressions.push(format!(
                "{label}: p95 latency rose {bp:.3} ms → {np:.3} ms (more than +{:.0}% and +{P95_MIN_MS} ms)",
                (P95_RATIO - 1.0) * 100.0
            ));
        }

        // Cost and tokens per run.
        let (bc, nc) = (per_run(bs.cost_usd, bs.runs), per_run(ns.cost_usd, ns.runs));
        c.rows.push(format!(
            "{label:<16} cost USD/run   {bc:>10.6} → {nc:>10.6}  ({:+.6})",
            nc - bc
        ));
        if nc > bc * COST_RATIO && nc - bc > COST_MIN_USD {
            c.regressions.push(format!(
                "{label}: cost per run rose ${bc:.6} → ${nc:.6} (more than +{:.0}% and +${COST_MIN_USD})",
                (COST_RATIO - 1.0) * 100.0
            ));
        }
        let bt = per_run((bs.input_tokens + bs.output_tokens) as f64, bs.runs);
        let nt = per_run((ns.input_tokens + ns.output_tokens) as f64, ns.runs);
        c.rows.push(format!(
            "{label:<16} tokens/run     {bt:>10.1} → {nt:>10.1}  ({:+.1})",
            nt - bt
        ));
        if nt > bt * TOKENS_RATIO && nt - bt > TOKENS_MIN {
            c.regressions.push(format!(
                "{label}: tokens per run rose {bt:.1} → {nt:.1} (more than +{:.0}% and +{TOKENS_MIN})",
                (TOKENS_RATIO - 1.0) * 100.0
            ));
        }
    }
    c
}

impl Comparison {
    /// The text printed by `crane eval compare`.
    pub fn render(&self, base: &Path, new: &Path) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "crane eval compare: BASE {} → NEW {}",
            base.display(),
            new.display()
        );
        for row in &self.rows {
            let _ = writeln!(out, "  {row}");
        }
        if self.regressions.is_empty() {
            let _ = writeln!(out, "no regressions");
        } else {
            let _ = writeln!(out, "{} regression(s):", self.regressions.len());
            for r in &self.regressions {
                let _ = writeln!(out, "  - {r}");
            }
        }
        if !self.improvements.is_empty() {
            let _ = writeln!(out, "{} improvement(s):", self.improvements.len());
            for r in &self.improvements {
                let _ = writeln!(out, "  + {r}");
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Case;
    use crate::gates::GateOutcome;
    use crate::report::{CaseReport, DatasetInfo, TrialReport};
    use crate::scorers::Score;

    fn trial(pass: bool, ms: f64) -> TrialReport {
        TrialReport {
            pass,
            status: "completed".into(),
            latency_ms: ms,
            run_id: None,
            planned_by: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: None,
            scores: BTreeMap::from([("result".to_owned(), Score::check(pass, || "x".into()))]),
            failures: if pass {
                vec![]
            } else {
                vec!["result: x".into()]
            },
            steps: None,
            result: None,
            error: None,
        }
    }

    /// A report with one planner; `cases` is (id, per-trial pass, latency).
    fn report(planner: &str, cases: &[(&str, &[bool], f64)]) -> Report {
        let cases = cases
            .iter()
            .map(|(id, passes, ms)| {
                let case: Case = serde_json::from_value(
                    serde_json::json!({"id": id, "prompt": "p", "expect": {}}),
                )
                .unwrap();
                CaseReport::new(&case, passes.iter().map(|p| trial(*p, *ms)).collect())
            })
            .collect();
        Report {
            report_version: 1,
            eval_id: "e".into(),
            created_at: "t".into(),
            crane_version: "0".into(),
            dataset: DatasetInfo {
                path: "d".into(),
                cases: 0,
                tags: vec![],
            },
            target: "in_process".into(),
            repeat: 1,
            concurrency: 1,
            arg_match: None,
            wall_ms: 1.0,
            planners: vec![PlannerReport::new(planner, 1.0, cases)],
            gates: GateOutcome::default(),
        }
    }

    #[test]
    fn identical_reports_have_no_regressions() {
        let r = report("rule", &[("a", &[true], 1.0), ("b", &[false], 1.0)]);
        let c = compare(&r, &r);
        assert!(c.regressions.is_empty(), "{c:?}");
        assert_eq!(c.rows.len(), 4);
    }

    #[test]
    fn a_case_that_now_fails_is_a_regression() {
        let base = report("rule", &[("a", &[true], 1.0), ("b", &[true], 1.0)]);
        let new = report("rule", &[("a", &[true], 1.0), ("b", &[false], 1.0)]);
        let c = compare(&base, &new);
        assert_eq!(c.regressions.len(), 1, "{c:?}");
        assert!(
            c.regressions[0].contains("case b passed 1/1 and now passes 0/1"),
            "{c:?}"
        );
        // And the other way round is an improvement.
        let c = compare(&new, &base);
        assert!(
            c.regressions.is_empty() && c.improvements.len() == 1,
            "{c:?}"
        );
    }

    #[test]
    fn one_failed_repeat_is_noise_a_lost_majority_is_not() {
        let base = report("rule", &[("a", &[true, true, true], 1.0)]);
        let flaky = report("rule", &[("a", &[true, false, true], 1.0)]);
        let c = compare(&base, &flaky);
        assert!(c.regressions.is_empty(), "{c:?}");
        assert!(c.notes[0].contains("less stable"), "{c:?}");
        let broken = report("rule", &[("a", &[false, false, true], 1.0)]);
        let c = compare(&base, &broken);
        // The case; with one case, its share is the whole success rate, so that is not counted
        // again.
        assert_eq!(c.regressions.len(), 1, "{c:?}");
        assert!(
            c.regressions[0].contains("case a passed 3/3 and now passes 1/3"),
            "{c:?}"
        );
    }

    #[test]
    fn success_rate_drop_beyond_one_case() {
        let ids: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        let mk = |failing: usize| {
            let cases: Vec<(&str, &[bool], f64)> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    (
                        id.as_str(),
                        if i < failing {
                            &[false][..]
                        } else {
                            &[true][..]
                        },
                        1.0,
                    )
                })
                .collect();
            report("rule", &cases)
        };
        let c = compare(&mk(0), &mk(2));
        assert!(
            c.regressions
                .iter()
                .any(|r| r.contains("success rate dropped")),
            "{c:?}"
        );
        let c = compare(&mk(0), &mk(1));
        assert!(
            !c.regressions.iter().any(|r| r.contains("success rate")),
            "{c:?}"
        );
    }

    #[test]
    fn latency_needs_both_relative_and_absolute_growth() {
        let base = report("rule", &[("a", &[true], 1.0)]);
        // +200% but only +2 ms: noise.
        assert!(
            compare(&base, &report("rule", &[("a", &[true], 3.0)]))
                .regressions
                .is_empty()
        );
        // +900% and +9 ms: regression.
        let c = compare(&base, &report("rule", &[("a", &[true], 10.0)]));
        assert!(
            c.regressions.iter().any(|r| r.contains("p95 latency")),
            "{c:?}"
        );
        // +20% and +20 ms: not beyond 50%.
        let base = report("rule", &[("a", &[true], 100.0)]);
        assert!(
            compare(&base, &report("rule", &[("a", &[true], 120.0)]))
                .regressions
                .is_empty()
        );
    }

    #[test]
    fn planners_pair_by_name_or_alone() {
        let base = report("rule", &[("a", &[true], 1.0)]);
        let new = report("llm-v2", &[("a", &[false], 1.0)]);
        let c = compare(&base, &new);
        assert!(
            c.regressions[0].starts_with("rule → llm-v2: case a"),
            "{c:?}"
        );
    }
}
