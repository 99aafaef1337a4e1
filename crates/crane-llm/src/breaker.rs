//! Per-provider circuit breaker: closed → open after too many availability failures → one
//! half-open probe after the cooldown → closed on success or open again on failure.
//!
//! State lives behind a tiny `std::sync::Mutex` held only for a few field updates (never across
//! an `.await`). A call takes a [`Permit`] before sending and reports its outcome on it; a permit
//! dropped without an outcome (the caller's future was cancelled) frees the half-open probe slot
//! instead of wedging the breaker. Outcomes from calls that started before the last state change
//! are ignored (a slow success from before the breaker opened must not close it).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// When the breaker opens and how long it stays open.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Opens after this many consecutive failed calls (0 disables this rule). Default 5.
    pub consecutive_failures: u32,
    /// Opens when the failure rate over the window exceeds this (0.0–1.0). Default 0.5.
    pub failure_rate: f64,
    /// Number of most recent calls the failure rate is computed over (0 disables this rule).
    /// Default 20.
    pub window: u32,
    /// The failure-rate rule needs at least this many calls in the window. Default 10.
    pub min_calls: u32,
    /// Time open before one half-open probe is let through. Default 30 s.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: 20,
            min_calls: 10,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// The breaker's state as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast with `CircuitOpen`.
    Open,
    /// The cooldown is over: the next call is a probe (others fail fast while it runs).
    HalfOpen,
}

impl BreakerState {
    /// `"closed"`, `"open"` or `"half_open"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a call ended, from the breaker's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The provider answered.
    Success,
    /// An availability failure (rate limit, timeout, server, network).
    Failure,
    /// A failure that says nothing about availability (auth, config, invalid output): not
    /// counted while closed; a half-open probe ending like this closes the breaker (the server
    /// answered).
    Neutral,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    /// Bumped on every state change; permits from an older generation are ignored.
    generation: u64,
    consecutive: u32,
    /// Most recent counted calls, `true` = failure.
    window: VecDeque<bool>,
    opened_at: Instant,
    probe_in_flight: bool,
}

/// A circuit breaker for one provider.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    name: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Permission to send one call; report the outcome with [`Permit::record`].
#[must_use]
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    generation: u64,
    probe: bool,
    recorded: bool,
}

impl CircuitBreaker {
    pub(crate) fn new(name: impl Into<String>, config: BreakerConfig) -> Self {
        Self {
            name: name.into(),
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                generation: 0,
                consecutive: 0,
                window: VecDeque::new(),
                opened_at: Instant::now(),
                probe_in_flight: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The critical sections cannot panic half-way, so a poisoned lock still holds valid state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Current state; an open breaker whose cooldown is over reports `HalfOpen` (the next call
    /// will be the probe).
    pub(crate) fn state(&self) -> BreakerState {
        let inner = self.lock();
        match inner.state {
            BreakerState::Open if inner.opened_at.elapsed() >= self.config.cooldown => {
                BreakerState::HalfOpen
            }
            state => state,
        }
    }

    /// A permit when the call may go through; `None` when it must fail fast.
    pub(crate) fn try_acquire(&self) -> Option<Permit<'_>> {
        let mut inner = self.lock();
        let probe = match inner.state {
            BreakerState::Closed => false,
            BreakerState::Open => {
                if inner.opened_at.elapsed() < self.config.cooldown {
                    return None;
                }
                inner.state = BreakerState::HalfOpen;
                inner.generation += 1;
                tracing::info!(provider = %self.name, "circuit breaker half-open: sending a probe call");
                true
            }
            BreakerState::HalfOpen => {
                if inner.probe_in_flight {
                    return None;
                }
                true
            }
        };
        if probe {
            inner.probe_in_flight = true;
        }
        Some(Permit {
            breaker: self,
            generation: inner.generation,
            probe,
            recorded: false,
        })
    }

    fn record(&self, generation: u64, outcome: Outcome) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        match inner.state {
            BreakerState::HalfOpen => match outcome {
                Outcome::Success | Outcome::Neutral => self.close(&mut inner),
                Outcome::Failure => self.open(&mut inner, "the half-open probe failed"),
            },
            BreakerState::Closed => match outcome {
                Outcome::Neutral => {}
                Outcome::Success => {
                    inner.consecutive = 0;
                    self.push(&mut inner, false);
                }
                Outcome::Failure => {
                    inner.consecutive = inner.consecutive.saturating_add(1);
                    self.push(&mut inner, true);
                    if self.config.consecutive_failures > 0
                        && inner.consecutive >= self.config.consecutive_failures
                    {
                        let reason = format!("{} consecutive failures", inner.consecutive);
                        self.open(&mut inner, &reason);
                    } else if let Some(rate) = self.failure_rate(&inner) {
                        let reason = format!(
                            "failure rate {:.0}% over the last {} calls",
                            rate * 100.0,
                            inner.window.len()
                        );
                        self.open(&mut inner, &reason);
                    }
                }
            },
            BreakerState::Open => {}
        }
    }

    /// The window's failure rate when it exceeds the threshold with enough calls.
    fn failure_rate(&self, inner: &Inner) -> Option<f64> {
        let calls = inner.window.len();
        if self.config.window == 0 || calls == 0 || calls < self.config.min_calls as usize {
            return None;
        }
        let failures = inner.window.iter().filter(|&&failed| failed).count();
        let rate = failures as f64 / calls as f64;
        (rate > self.config.failure_rate).then_some(rate)
    }

    fn push(&self, inner: &mut Inner, failed: bool) {
        if self.config.window == 0 {
            return;
        }
        inner.window.push_back(failed);
        while inner.window.len() > self.config.window as usize {
            inner.window.pop_front();
        }
    }

    fn open(&self, inner: &mut Inner, reason: &str) {
        inner.state = BreakerState::Open;
        inner.generation += 1;
        inner.opened_at = Instant::now();
        inner.probe_in_flight = false;
        tracing::warn!(
            provider = %self.name,
            reason,
            cooldown_ms = u64::try_from(self.config.cooldown.as_millis()).unwrap_or(u64::MAX),
            "circuit breaker opened"
        );
    }

    fn close(&self, inner: &mut Inner) {
        inner.state = BreakerState::Closed;
        inner.generation += 1;
        inner.consecutive = 0;
        inner.window.clear();
        inner.probe_in_flight = false;
        tracing::info!(provider = %self.name, "circuit breaker closed");
    }
}

impl Permit<'_> {
    /// Whether this permit is the half-open probe.
    #[cfg(test)]
    pub(crate) fn is_probe(&self) -> bool {
        self.probe
    }

    /// Reports how the call ended.
    pub(crate) fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.breaker.record(self.generation, outcome);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.recorded || !self.probe {
            return;
        }
        // The probe was cancelled before it finished: let the next call probe instead.
        let mut inner = self.breaker.lock();
        if inner.generation == self.generation && inner.state == BreakerState::HalfOpen {
            inner.probe_in_flight = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(consecutive: u32, cooldown_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(
            "test",
            BreakerConfig {
                consecutive_failures: consecutive,
                failure_rate: 0.5,
                window: 10,
                min_calls: 4,
                cooldown: Duration::from_millis(cooldown_ms),
            },
        )
    }

    fn call(b: &CircuitBreaker, outcome: Outcome) -> bool {
        match b.try_acquire() {
            Some(permit) => {
                permit.record(outcome);
                true
            }
            None => false,
        }
    }

    #[test]
    fn opens_after_consecutive_failures() {
        let b = CircuitBreaker::new(
            "test",
            BreakerConfig {
                consecutive_failures: 3,
                window: 0, // failure-rate rule disabled
                cooldown: Duration::from_secs(60),
                ..BreakerConfig::default()
            },
        );
        assert!(call(&b, Outcome::Failure));
        assert!(call(&b, Outcome::Failure));
        assert!(call(&b, Outcome::Success)); // resets the streak
        assert!(call(&b, Outcome::Failure));
        assert!(call(&b, Outcome::Failure));
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(call(&b, Outcome::Failure));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire().is_none());
    }

    #[test]
    fn neutral_outcomes_do_not_count() {
        let b = breaker(2, 60_000);
        for _ in 0..10 {
            assert!(call(&b, Outcome::Neutral));
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn opens_on_failure_rate() {
        let b = breaker(0, 60_000); // consecutive rule disabled
        // F S F S F: 3/5 = 60% > 50% once min_calls (4) is reached.
        assert!(call(&b, Outcome::Failure));
        assert!(call(&b, Outcome::Success));
        assert!(call(&b, Outcome::Failure));
        assert!(call(&b, Outcome::Success));
        assert_eq!(b.state(), BreakerState::Closed); // 2/4 = 50%, not above
        assert!(call(&b, Outcome::Failure));
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn half_open_probe_closes_or_reopens() {
        let b = breaker(1, 0);
        assert!(call(&b, Outcome::Failure));
        // Cooldown 0: the next acquire is the probe; a concurrent one fails fast.
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire().unwrap();
        assert!(probe.is_probe());
        assert!(b.try_acquire().is_none());
        probe.record(Outcome::Failure);
        let probe = b.try_acquire().unwrap();
        probe.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
        let permit = b.try_acquire().unwrap();
        assert!(!permit.is_probe());
        permit.record(Outcome::Success);
    }

    #[test]
    fn cancelled_probe_frees_the_slot() {
        let b = breaker(1, 0);
        assert!(call(&b, Outcome::Failure));
        let probe = b.try_acquire().unwrap();
        drop(probe);
        assert!(b.try_acquire().is_some());
    }

    #[test]
    fn stale_success_does_not_close_an_open_breaker() {
        let b = breaker(1, 60_000);
        let slow = b.try_acquire().unwrap();
        assert!(call(&b, Outcome::Failure));
        assert_eq!(b.state(), BreakerState::Open);
        slow.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Open);
    }
}
