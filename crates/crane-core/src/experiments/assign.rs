//! Assignment of runs to an experiment's arms: a deterministic hash of (the experiment's
//! salt, the unit) picks an arm in proportion to the weights, so a user keeps their arm
//! across runs, restarts and replicas (every replica computes the same arm), and changing the
//! salt reshuffles everyone.
//!
//! The unit is the run's `user_id`, else its run id. SHA-256 (already in the tree for key
//! hashes) rather than the std hasher, whose output may change between Rust releases.

use sha2::{Digest, Sha256};

/// A point in [0, 1) fixed by `salt` and `unit`.
pub fn position(salt: &str, unit: &str) -> f64 {
    let digest = Sha256::new()
        .chain_update(salt.as_bytes())
        .chain_update([0u8])
        .chain_update(unit.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The top 53 bits: exactly representable, uniform in [0, 1).
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// The arm (index into `weights`) of `unit`; `None` when no weight is positive.
pub fn arm(weights: &[f64], salt: &str, unit: &str) -> Option<usize> {
    let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
    if total <= 0.0 {
        return None;
    }
    let mut at = position(salt, unit) * total;
    let mut last = None;
    for (i, w) in weights.iter().enumerate() {
        if *w <= 0.0 {
            continue;
        }
        last = Some(i);
        if at < *w {
            return Some(i);
        }
        at -= w;
    }
    // Rounding can leave `at` a hair past the last weight.
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_keeps_its_arm_and_the_split_follows_the_weights() {
        let weights = [3.0, 1.0];
        assert_eq!(arm(&weights, "s1", "user-7"), arm(&weights, "s1", "user-7"));
        let mut counts = [0usize; 2];
        for i in 0..40_000 {
            counts[arm(&weights, "s1", &format!("user-{i}")).unwrap_or(9)] += 1;
        }
        let share = counts[0] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.01, "{counts:?}");
        // Another salt reshuffles units.
        let moved = (0..1_000)
            .filter(|i| {
                let u = format!("user-{i}");
                arm(&[1.0, 1.0], "s1", &u) != arm(&[1.0, 1.0], "s2", &u)
            })
            .count();
        assert!((350..650).contains(&moved), "{moved}");
    }

    #[test]
    fn zero_weights_get_nothing() {
        assert_eq!(arm(&[0.0, 0.0], "s", "u"), None);
        for i in 0..100 {
            assert_eq!(arm(&[0.0, 2.0, 0.0], "s", &i.to_string()), Some(1));
        }
    }
}
