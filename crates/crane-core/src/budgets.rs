//! Spend budgets per tenant and window: the policy types (from `[[budgets]]`), and the UTC
//! window a moment falls in.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Serialize;

/// A budget's window (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Day,
    Month,
}

impl Window {
    /// The window's name as written in crane.toml and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// Start (inclusive) and end (exclusive) of the window `at` falls in.
    pub fn bounds(self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let day = |y, m, d| {
            Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
                .single()
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        match self {
            Self::Day => {
                let start = day(at.year(), at.month(), at.day());
                (start, start + chrono::Duration::days(1))
            }
            Self::Month => {
                let start = day(at.year(), at.month(), 1);
                let (y, m) = if at.month() == 12 {
                    (at.year() + 1, 1)
                } else {
                    (at.year(), at.month() + 1)
                };
                (start, day(y, m, 1))
            }
        }
    }
}

/// What happens to new runs when a budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    /// No LLM call: the rule planner plans.
    RuleOnly,
    /// New runs are refused (429 `budget_exhausted`) until the window resets.
    Reject,
}

/// One tenant's budget over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetPolicy {
    pub tenant: String,
    pub window: Window,
    pub max_usd: Option<f64>,
    pub max_tokens: Option<u64>,
    pub on_exhausted: OnExhausted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_utc_days_and_months() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        let (s, e) = Window::Day.bounds(at);
        assert_eq!(s.to_rfc3339(), "2026-12-31T00:00:00+00:00");
        assert_eq!(e.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        let (s, e) = Window::Month.bounds(at);
        assert_eq!(s.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(e.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        let feb = Utc.with_ymd_and_hms(2028, 2, 29, 12, 0, 0).unwrap();
        assert_eq!(
            Window::Month.bounds(feb).1.to_rfc3339(),
            "2028-03-01T00:00:00+00:00"
        );
    }
}
