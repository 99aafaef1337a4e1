//! Runtime policies: concurrency, queue bound, prompt limit, step timeout and retry.

use std::time::Duration;

use super::retry::RetryPolicy;

/// Settings of the run lifecycle.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Runs executing at once.
    pub workers: usize,
    /// Runs waiting for a worker before new ones are refused as overloaded.
    pub max_queue: usize,
    /// Longest prompt accepted, in characters.
    pub max_prompt_chars: usize,
    /// Timeout of one step attempt.
    pub step_timeout: Duration,
    /// Retry policy for retryable step failures.
    pub retry: RetryPolicy,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            workers: 256,
            max_queue: 10_000,
            max_prompt_chars: 8_000,
            step_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}
