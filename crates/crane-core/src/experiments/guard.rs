//! The rollback guard of a promoted experiment: after `promote` moved the `production` alias to
//! the winner, the guard watches the production runs of the promoted variant and moves the
//! alias back when they do worse than the experiment said the other arms do.
//!
//! What it checks (the choice, written down in ARCHITECTURE.md):
//! - It counts the finished runs (completed or failed) of the tenant that ran on the promoted
//!   variant outside any experiment after the promotion, as a pseudo-arm ([`GUARD_ARM`]) of the
//!   experiment's stored totals (increments, so every replica's runs add up).
//! - The baseline is the best of the other arms: its success-rate Wilson interval at the
//!   experiment's level (1 − alpha) over the experiment's runs.
//! - Once at least `min_runs` production runs are in, a success rate below the baseline's lower
//!   bound rolls `production` back to what it pointed at before the promotion, with a note in
//!   the alias history. The check runs as runs come in, so a broken winner is caught early.
//! - The window closes after `max_runs` production runs or at `until` (24 h by default): the
//!   guard has passed and stops counting.
//! - Deciding is a compare-and-set on the stored guard status, so with several replicas one
//!   decides and moves the alias.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

/// The arm number under which a guard counts the promoted variant's production runs (far above
/// any real arm, so the analysis of the experiment never reads it).
pub const GUARD_ARM: u32 = 1_000_000;

/// Production runs needed before the guard may roll back.
pub const DEFAULT_MIN_RUNS: u64 = 50;
/// Production runs after which the guard has passed.
pub const DEFAULT_MAX_RUNS: u64 = 1_000;
/// How long the guard watches at most.
pub const DEFAULT_WINDOW_HOURS: u64 = 24;

/// The guard's state, watching (`watching`) or decided (`passed`, `rolled_back`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardStatus {
    Watching,
    Passed,
    RolledBack,
}

impl GuardStatus {
    /// The label stored and reported.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Watching => "watching",
            Self::Passed => "passed",
            Self::RolledBack => "rolled_back",
        }
    }
}

/// A promoted experiment's guard (stored as JSON with the experiment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionGuard {
    pub status: GuardStatus,
    /// The winning arm as named in the experiment (variant or alias).
    pub promoted: String,
    /// The variant `production` was moved to.
    pub variant: String,
    /// What `production` pointed at before; the rollback target.
    pub restore_to: String,
    /// The best other arm and its success-rate interval.
    pub baseline: String,
    pub baseline_low: f64,
    pub baseline_high: f64,
    pub min_runs: u64,
    pub max_runs: u64,
    /// When the promotion happened and until when the guard watches (RFC 3339).
    pub promoted_at: String,
    pub until: String,
    /// The production runs and successes seen when the guard decided.
    #[serde(default)]
    pub runs: u64,
    #[serde(default)]
    pub successes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the guard concludes from the production runs so far.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Watch,
    Pass(String),
    Rollback(String),
}

/// The Wilson score interval of `successes` out of `runs` at level `1 - alpha`; `None`
/// without runs. (A closed formula over the normal quantile statrs gives.)
pub fn wilson(successes: u64, runs: u64, alpha: f64) -> Option<(f64, f64)> {
    if runs == 0 {
        return None;
    }
    let z = Normal::standard().inverse_cdf(1.0 - alpha / 2.0);
    let n = runs as f64;
    let p = successes.min(runs) as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

impl PromotionGuard {
    /// The verdict after `runs` production runs of which `successes` succeeded, at `now`.
    pub fn evaluate(
        &self,
        runs: u64,
        successes: u64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Verdict {
        let rate = if runs > 0 {
            successes as f64 / runs as f64
        } else {
            0.0
        };
        if runs >= self.min_runs && rate < self.baseline_low {
            return Verdict::Rollback(format!(
                "rolled back: {} succeeded in {:.1}% of {runs} production runs, below {}'s interval [{:.1}%, {:.1}%] from the experiment",
                self.promoted,
                rate * 100.0,
                self.baseline,
                self.baseline_low * 100.0,
                self.baseline_high * 100.0
            ));
        }
        let expired = chrono::DateTime::parse_from_rfc3339(&self.until)
            .map(|until| now >= until)
            .unwrap_or(true);
        if runs >= self.max_runs || expired {
            return Verdict::Pass(format!(
                "guard passed: {} succeeded in {:.1}% of {runs} production runs (baseline {} from {:.1}%)",
                self.promoted,
                rate * 100.0,
                self.baseline,
                self.baseline_low * 100.0
            ));
        }
        Verdict::Watch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(low: f64) -> PromotionGuard {
        let now = chrono::Utc::now();
        PromotionGuard {
            status: GuardStatus::Watching,
            promoted: "b".into(),
            variant: "b".into(),
            restore_to: "a".into(),
            baseline: "a".into(),
            baseline_low: low,
            baseline_high: low + 0.1,
            min_runs: 50,
            max_runs: 1000,
            promoted_at: now.to_rfc3339(),
            until: (now + chrono::Duration::hours(24)).to_rfc3339(),
            runs: 0,
            successes: 0,
            decided_at: None,
            reason: None,
        }
    }

    #[test]
    fn wilson_matches_the_textbook_interval() {
        // 81 of 263 at 95%: the worked example gives [0.2553, 0.3662].
        let (lo, hi) = wilson(81, 263, 0.05).unwrap_or_default();
        assert!((lo - 0.2553).abs() < 5e-4, "{lo}");
        assert!((hi - 0.3662).abs() < 5e-4, "{hi}");
        assert_eq!(wilson(0, 0, 0.05), None);
        let (lo, hi) = wilson(10, 10, 0.05).unwrap_or_default();
        assert!(lo > 0.6 && (hi - 1.0).abs() < 1e-12);
    }

    #[test]
    fn rolls_back_only_after_min_runs_and_below_the_baseline() {
        let g = guard(0.8);
        let now = chrono::Utc::now();
        // A terrible start, but too few runs to judge.
        assert_eq!(g.evaluate(49, 0, now), Verdict::Watch);
        assert!(matches!(g.evaluate(50, 20, now), Verdict::Rollback(_)));
        // At the baseline's lower bound: keeps watching.
        assert_eq!(g.evaluate(50, 40, now), Verdict::Watch);
        assert!(matches!(g.evaluate(1000, 950, now), Verdict::Pass(_)));
    }

    #[test]
    fn passes_when_the_window_closes() {
        let mut g = guard(0.8);
        g.until = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
        assert!(matches!(
            g.evaluate(3, 3, chrono::Utc::now()),
            Verdict::Pass(_)
        ));
        // A broken winner is still rolled back when the window closes with enough runs.
        assert!(matches!(
            g.evaluate(60, 1, chrono::Utc::now()),
            Verdict::Rollback(_)
        ));
    }

    #[test]
    fn the_stored_form_round_trips() {
        let g = guard(0.5);
        let text = serde_json::to_string(&g).unwrap_or_default();
        assert!(text.contains("\"status\":\"watching\""), "{text}");
        let back: PromotionGuard = serde_json::from_str(&text).unwrap_or_else(|_| guard(0.0));
        assert_eq!(back, g);
    }
}
