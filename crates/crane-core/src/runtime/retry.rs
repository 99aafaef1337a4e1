//! Retry policy: exponential backoff with full jitter, for retryable failures only.
//!
//! Hand-written rather than taken from a retry crate: the executor records every attempt,
//! races each sleep against cancellation and decides retryability from the tool's error
//! category, so all a crate would contribute is the three-line delay formula below.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently a step is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total (1 = no retry).
    pub max_attempts: u32,
    /// Cap of the first backoff.
    pub base_delay: Duration,
    /// Cap of any backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the backoff after attempt `attempt` (1-based): base · 2^(attempt-1),
    /// capped at `max_delay`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// A full-jitter backoff: uniform in [0, ceiling(attempt)].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_micros() as u64;
        Duration::from_micros(rand::rng().random_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(3), Duration::from_millis(400));
        assert_eq!(p.ceiling(4), Duration::from_millis(500));
        assert_eq!(p.ceiling(60), Duration::from_millis(500));
        for attempt in 1..8 {
            assert!(p.backoff(attempt) <= p.ceiling(attempt));
        }
    }
}
