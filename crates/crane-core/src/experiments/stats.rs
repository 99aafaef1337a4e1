//! The statistics of an experiment, from per-arm aggregates only (never from run rows, so an
//! experiment with millions of runs is analysed in microseconds).
//!
//! - Sample-ratio mismatch: Pearson's chi-square goodness of fit of the runs per arm against
//!   the arms' weights ([`srm_p_value`]); below [`SRM_ALPHA`] the assignment is broken and no
//!   decision is made.
//! - Primary metric, success rate, each arm against the first (the control): the difference,
//!   an always-valid confidence interval and an always-valid p-value from the mixture
//!   sequential probability ratio test (mSPRT, Johari, Pekelis & Walsh, "Always valid
//!   inference", 2017) with a normal mixing distribution over the difference (variance
//!   [`MIXING_VARIANCE`]) and the normal approximation of each rate. Unlike a fixed-horizon
//!   z-test, looking at the result after every run does not inflate false positives: the
//!   chance that the statistic ever crosses `1/alpha` under no difference is at most alpha.
//!   With more than two arms each comparison uses alpha / (arms - 1) (Bonferroni).
//! - Guardrails (cost, latency) are reported with normal intervals of their means.
//!
//! Distributions come from statrs; nothing here draws random numbers.

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// A sample-ratio-mismatch p-value below this blocks every decision.
pub const SRM_ALPHA: f64 = 0.001;

/// Variance of the normal mixture over the difference in success rates (a prior scale of
/// ±10 points): the mSPRT is most powerful for effects of about this size.
pub const MIXING_VARIANCE: f64 = 0.01;

/// Fewest runs per arm before any decision (the normal approximation needs some).
pub const MIN_RUNS_PER_ARM: u64 = 50;

/// Runs and successes of one arm, and its share of the traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmCounts {
    pub runs: u64,
    pub successes: u64,
    pub weight: f64,
}

/// Pearson's chi-square test of the runs per arm against the weights; `None` without runs
/// or with fewer than two arms of positive weight.
pub fn srm_p_value(arms: &[ArmCounts]) -> Option<f64> {
    let total: u64 = arms.iter().map(|a| a.runs).sum();
    let weights: f64 = arms.iter().map(|a| a.weight).sum();
    let live = arms.iter().filter(|a| a.weight > 0.0).count();
    if total == 0 || live < 2 || weights <= 0.0 {
        return None;
    }
    let mut stat = 0.0;
    for a in arms.iter().filter(|a| a.weight > 0.0) {
        let expected = total as f64 * a.weight / weights;
        let d = a.runs as f64 - expected;
        stat += d * d / expected;
    }
    let chi = ChiSquared::new((live - 1) as f64).ok()?;
    Some((1.0 - chi.cdf(stat)).clamp(0.0, 1.0))
}

/// One arm against the control, always valid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Success rate of the arm minus the control's.
    pub effect: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Always-valid p-value (1 / the mixture likelihood ratio, at most 1).
    pub p_value: f64,
}

fn rate(a: &ArmCounts) -> f64 {
    if a.runs == 0 {
        0.0
    } else {
        a.successes as f64 / a.runs as f64
    }
}

/// Variance of an observed rate; a rate of 0 or 1 is taken as one half a success away, so a
/// perfect arm does not get a zero variance.
fn rate_variance(a: &ArmCounts) -> f64 {
    let n = a.runs as f64;
    let p = ((a.successes as f64).clamp(0.5, n - 0.5)) / n;
    p * (1.0 - p) / n
}

/// The mSPRT of `arm` against `control` at level `alpha`; `None` until both have runs.
pub fn compare(control: &ArmCounts, arm: &ArmCounts, alpha: f64) -> Option<Comparison> {
    if control.runs < 2 || arm.runs < 2 {
        return None;
    }
    let effect = rate(arm) - rate(control);
    let v = rate_variance(arm) + rate_variance(control);
    let t = MIXING_VARIANCE;
    // log of the mixture likelihood ratio of "difference = 0".
    let log_lambda = 0.5 * (v / (v + t)).ln() + t * effect * effect / (2.0 * v * (v + t));
    let p_value = (-log_lambda).exp().min(1.0);
    // Every difference d whose ratio stays below 1/alpha: the confidence sequence.
    let half = (2.0 * v * (v + t) / t * ((1.0 / alpha).ln() + 0.5 * ((v + t) / v).ln())).sqrt();
    Some(Comparison {
        effect,
        ci_low: effect - half,
        ci_high: effect + half,
        p_value,
    })
}

/// What the analysis concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Continue,
    Winner,
    NoDifference,
    SrmFailed,
}

/// The analysis of an experiment's primary metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub srm_p_value: Option<f64>,
    /// The comparison of the arm that decides (the winner's, or the strongest one so far)
    /// against the control.
    pub decisive: Option<(usize, Comparison)>,
    /// Every arm but the control against the control, in arm order (index 1..).
    pub comparisons: Vec<Option<Comparison>>,
    pub decision: Decision,
    /// Index of the winning arm.
    pub winner: Option<usize>,
    /// The decision in words.
    pub reason: String,
}

/// Analyses arms (the first is the control) at level `alpha`; `min_effect` is the smallest
/// difference worth acting on: once every interval lies within ±`min_effect`, the arms are
/// declared not different.
pub fn analyse(arms: &[ArmCounts], alpha: f64, min_effect: f64) -> Analysis {
    let srm = srm_p_value(arms);
    let k = arms.len();
    let level = alpha / (k.saturating_sub(1).max(1)) as f64;
    let comparisons: Vec<Option<Comparison>> = arms
        .iter()
        .skip(1)
        .map(|a| compare(&arms[0], a, level))
        .collect();
    let strongest = comparisons
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.map(|c| (i + 1, c)))
        .min_by(|a, b| a.1.p_value.total_cmp(&b.1.p_value));
    let done = |decision, winner, reason: String| Analysis {
        srm_p_value: srm,
        decisive: strongest,
        comparisons: comparisons.clone(),
        decision,
        winner,
        reason,
    };
    if let Some(p) = srm.filter(|p| *p < SRM_ALPHA) {
        return done(
            Decision::SrmFailed,
            None,
            format!(
                "sample ratio mismatch: the runs per arm do not match the weights (chi-square p = {p:.2e} < {SRM_ALPHA}); fix the assignment before trusting any result"
            ),
        );
    }
    let fewest = arms.iter().map(|a| a.runs).min().unwrap_or(0);
    if k < 2 || fewest < MIN_RUNS_PER_ARM {
        return done(
            Decision::Continue,
            None,
            format!(
                "too few runs: every arm needs {MIN_RUNS_PER_ARM} before a decision (fewest so far: {fewest})"
            ),
        );
    }
    if let Some((i, c)) = strongest
        && c.p_value <= level
    {
        let (winner, better) = if c.effect > 0.0 {
            (i, "higher")
        } else {
            (0, "lower")
        };
        return done(
            Decision::Winner,
            Some(winner),
            format!(
                "arm {i}'s success rate is {better} than the control's by {:.1} points (always-valid {:.0}% interval {:.1} to {:.1} points, p = {:.2e} ≤ {level:.3})",
                c.effect.abs() * 100.0,
                (1.0 - level) * 100.0,
                c.ci_low * 100.0,
                c.ci_high * 100.0,
                c.p_value
            ),
        );
    }
    let within = comparisons
        .iter()
        .all(|c| c.is_some_and(|c| c.ci_low > -min_effect && c.ci_high < min_effect));
    if within {
        return done(
            Decision::NoDifference,
            None,
            format!(
                "no difference: every arm's success rate is within ±{:.1} points of the control's (always-valid intervals)",
                min_effect * 100.0
            ),
        );
    }
    done(
        Decision::Continue,
        None,
        match strongest {
            Some((i, c)) => format!(
                "no decision yet: arm {i} differs by {:+.1} points, interval {:.1} to {:.1} points (p = {:.3} > {level:.3})",
                c.effect * 100.0,
                c.ci_low * 100.0,
                c.ci_high * 100.0,
                c.p_value
            ),
            None => "no decision yet".into(),
        },
    )
}

/// Mean and a 95% normal interval of a mean, from the count, sum and sum of squares.
pub fn mean_interval(n: u64, sum: f64, sum_sq: f64) -> Option<(f64, f64, f64)> {
    if n == 0 {
        return None;
    }
    let n_f = n as f64;
    let mean = sum / n_f;
    if n < 2 {
        return Some((mean, mean, mean));
    }
    let var = ((sum_sq - n_f * mean * mean) / (n_f - 1.0)).max(0.0);
    let z = Normal::standard().inverse_cdf(0.975);
    let half = z * (var / n_f).sqrt();
    Some((mean, mean - half, mean + half))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn arm(runs: u64, successes: u64) -> ArmCounts {
        ArmCounts {
            runs,
            successes,
            weight: 1.0,
        }
    }

    #[test]
    fn a_balanced_split_passes_the_srm_check_and_a_skewed_one_fails_it() {
        let p = srm_p_value(&[arm(5_000, 0), arm(5_050, 0)]).unwrap();
        assert!(p > 0.5, "{p}");
        let p = srm_p_value(&[arm(5_000, 0), arm(5_400, 0)]).unwrap();
        assert!(p < SRM_ALPHA, "{p}");
        // Weights 3:1.
        let p = srm_p_value(&[
            ArmCounts {
                runs: 7_500,
                successes: 0,
                weight: 3.0,
            },
            ArmCounts {
                runs: 2_500,
                successes: 0,
                weight: 1.0,
            },
        ])
        .unwrap();
        assert!(p > 0.9, "{p}");
        assert_eq!(srm_p_value(&[arm(0, 0), arm(0, 0)]), None);
        let a = analyse(&[arm(5_000, 4_000), arm(5_400, 5_000)], 0.05, 0.02);
        assert_eq!(a.decision, Decision::SrmFailed);
        assert!(a.reason.contains("sample ratio mismatch"), "{}", a.reason);
    }

    #[test]
    fn a_clear_difference_wins_and_equal_arms_end_in_no_difference() {
        let a = analyse(&[arm(2_000, 1_000), arm(2_000, 1_300)], 0.05, 0.02);
        assert_eq!(a.decision, Decision::Winner, "{}", a.reason);
        assert_eq!(a.winner, Some(1));
        let (_, c) = a.decisive.unwrap();
        assert!((c.effect - 0.15).abs() < 1e-9);
        assert!(c.ci_low > 0.0 && c.ci_high > c.effect && c.p_value < 0.05);
        // The control can win too.
        let a = analyse(&[arm(2_000, 1_300), arm(2_000, 1_000)], 0.05, 0.02);
        assert_eq!((a.decision, a.winner), (Decision::Winner, Some(0)));
        // Equal rates and many runs: every interval within ±2 points.
        let a = analyse(&[arm(200_000, 100_000), arm(200_000, 100_100)], 0.05, 0.02);
        assert_eq!(a.decision, Decision::NoDifference, "{}", a.reason);
        // Few runs: continue.
        let a = analyse(&[arm(10, 1), arm(10, 9)], 0.05, 0.02);
        assert_eq!(a.decision, Decision::Continue);
        assert!(a.reason.contains("too few runs"), "{}", a.reason);
    }

    /// Runs `batches` batches of `batch` runs per arm with success rates `rates`, analysing
    /// after every batch; the first decisive analysis, and after how many runs per arm.
    fn simulate(
        rng: &mut StdRng,
        rates: &[f64],
        batch: u64,
        batches: u64,
    ) -> Option<(Decision, Option<usize>, u64)> {
        let mut arms: Vec<ArmCounts> = rates.iter().map(|_| arm(0, 0)).collect();
        for b in 1..=batches {
            for (a, rate) in arms.iter_mut().zip(rates) {
                a.runs += batch;
                a.successes += (0..batch).filter(|_| rng.random::<f64>() < *rate).count() as u64;
            }
            let analysis = analyse(&arms, 0.05, 0.0);
            if analysis.decision != Decision::Continue {
                return Some((analysis.decision, analysis.winner, b * batch));
            }
        }
        None
    }

    /// Peeking after every batch of an A/A experiment does not inflate false positives: over
    /// 2 000 experiments (up to 40 looks each) at most alpha of them ever declare a winner.
    #[test]
    fn checking_aa_experiments_after_every_batch_keeps_false_positives_under_alpha() {
        let mut rng = StdRng::seed_from_u64(15);
        let experiments = 2_000;
        let mut false_positives = 0;
        for _ in 0..experiments {
            if let Some((Decision::Winner, _, _)) = simulate(&mut rng, &[0.7, 0.7], 50, 40) {
                false_positives += 1;
            }
        }
        let rate = false_positives as f64 / experiments as f64;
        eprintln!(
            "A/A: {false_positives} of {experiments} experiments declared a winner at some look ({rate})"
        );
        assert!(
            rate <= 0.05,
            "false-positive rate {rate} over {experiments} A/A experiments"
        );
    }

    /// A 10-point difference (50% → 60%) is found, for the right arm, within 2 000 runs per
    /// arm in at least 95% of 300 experiments.
    #[test]
    fn a_ten_point_difference_is_found_within_a_bounded_number_of_runs() {
        let mut rng = StdRng::seed_from_u64(16);
        let experiments = 300;
        let mut found = 0;
        let mut needed = Vec::new();
        for _ in 0..experiments {
            match simulate(&mut rng, &[0.5, 0.6], 50, 40) {
                Some((Decision::Winner, Some(1), n)) => {
                    found += 1;
                    needed.push(n);
                }
                Some((Decision::Winner, other, n)) => {
                    panic!("the worse arm {other:?} won after {n} runs per arm")
                }
                _ => {}
            }
        }
        needed.sort_unstable();
        eprintln!(
            "50% vs 60%: found in {found} of {experiments}; runs per arm needed: median {}, p95 {}",
            needed.get(needed.len() / 2).copied().unwrap_or(0),
            needed.get(needed.len() * 95 / 100).copied().unwrap_or(0)
        );
        assert!(
            found * 100 >= experiments * 95,
            "found {found} of {experiments}"
        );
    }

    #[test]
    fn mean_intervals_cover_the_mean() {
        let (mean, low, high) = mean_interval(4, 10.0, 30.0).unwrap();
        assert!((mean - 2.5).abs() < 1e-12 && low < mean && mean < high);
        assert_eq!(mean_interval(0, 0.0, 0.0), None);
        assert_eq!(mean_interval(1, 3.0, 9.0), Some((3.0, 3.0, 3.0)));
    }
}
