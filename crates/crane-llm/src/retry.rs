//! Retry policy: [`RetryConfig`], exponential backoff with full jitter, and `Retry-After`
//! parsing (delay-seconds or HTTP-date). The loop that applies them lives in `provider.rs`.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// How availability failures (rate limit, timeout, server, network) are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Retries after the first attempt of a call (mode fallbacks do not use them up). Default 2.
    pub max_retries: u32,
    /// Backoff base: retry `n` (from 0) sleeps uniformly in `[0, min(max_delay, base * 2^n)]`.
    pub base_delay: Duration,
    /// Backoff cap.
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryConfig {
    /// The largest sleep before retry number `retry` (0-based): `min(max_delay, base * 2^retry)`.
    pub(crate) fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// A full-jitter sleep before retry number `retry`: uniform in `[0, backoff_ceiling(retry)]`.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let ceiling = u64::try_from(self.backoff_ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=ceiling))
    }
}

/// Parses a `Retry-After` value: delay-seconds (`"2"`, also `"1.5"` as some gateways send) or an
/// HTTP-date, relative to `now`. A date in the past means "now".
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        let cfg = RetryConfig {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        assert_eq!(cfg.backoff_ceiling(0), Duration::from_millis(100));
        assert_eq!(cfg.backoff_ceiling(1), Duration::from_millis(200));
        assert_eq!(cfg.backoff_ceiling(2), Duration::from_millis(350));
        assert_eq!(cfg.backoff_ceiling(40), Duration::from_millis(350));
        for retry in 0..10 {
            for _ in 0..50 {
                assert!(cfg.backoff(retry) <= cfg.backoff_ceiling(retry));
            }
        }
        let zero = RetryConfig {
            base_delay: Duration::ZERO,
            ..cfg
        };
        assert_eq!(zero.backoff(3), Duration::ZERO);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
