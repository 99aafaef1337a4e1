//! The planning budget: the most tokens and USD the LLM calls for one prompt's planning may
//! spend (every layer of a chain and the repair rounds together). Checked before each call, so
//! one call can overshoot it by at most its own spend; when spent, the remaining LLM layers fail
//! with the `budget` category without a request and the rule planner (when in the chain) plans.
//!
//! A tenant's spend budgets (`crate::budgets`) reach planning as an [`Allowance`]: what is left of
//! them when the run's planning starts. It is checked before each call beside the per-run budget
//! (so the tighter of the two stops the calls), or, when nothing is left, no LLM call is made at
//! all and the rule planner plans.

use crate::domain::TokenUsage;

/// What a tenant's spend budgets leave for one run's planning.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Allowance {
    /// No spend budget applies.
    #[default]
    Unlimited,
    /// The run's LLM calls may spend up to this much; checked before each call.
    Limited(TenantLimit),
    /// A budget is spent: no LLM call at all, the rule planner plans. The text says which budget
    /// and until when.
    Exhausted(String),
}

/// What is left of a tenant's budgets (the smallest remainder over its windows).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantLimit {
    /// Input + output tokens.
    pub max_tokens: Option<u64>,
    /// USD (calls of unpriced models count 0).
    pub max_cost_usd: Option<f64>,
    /// Which budget this is, for the message, e.g. "tenant acme's day budget".
    pub budget: String,
    /// When that budget's window resets (RFC 3339).
    pub resets_at: String,
}

impl TenantLimit {
    /// Why no further LLM call may be made after this run's planning spent `usage` and `cost`,
    /// or `None`.
    pub fn exhausted(&self, usage: TokenUsage, cost: Option<f64>) -> Option<String> {
        let tokens = usage.input_tokens + usage.output_tokens;
        if let Some(max) = self.max_tokens
            && tokens >= max
        {
            return Some(format!(
                "{} is spent: {max} tokens were left for this run's planning ({tokens} spent); no further LLM call until it resets at {}",
                self.budget, self.resets_at
            ));
        }
        let spent = cost.unwrap_or(0.0);
        if let Some(max) = self.max_cost_usd
            && spent >= max
        {
            return Some(format!(
                "{} is spent: {max:.6} USD were left for this run's planning ({spent:.6} spent); no further LLM call until it resets at {}",
                self.budget, self.resets_at
            ));
        }
        None
    }
}

/// Limits per planned prompt; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlanningBudget {
    /// Input + output tokens.
    pub max_tokens: Option<u64>,
    /// USD, from the pricing table (calls of unpriced models count 0).
    pub max_cost_usd: Option<f64>,
}

impl PlanningBudget {
    /// Why no further LLM call may be made after spending `usage` and `cost`, or `None`.
    pub fn exhausted(&self, usage: TokenUsage, cost: Option<f64>) -> Option<String> {
        let tokens = usage.input_tokens + usage.output_tokens;
        if let Some(max) = self.max_tokens
            && tokens >= max
        {
            return Some(format!(
                "planning budget of {max} tokens per run spent ({tokens} so far); no further LLM call"
            ));
        }
        let spent = cost.unwrap_or(0.0);
        if let Some(max) = self.max_cost_usd
            && spent >= max
        {
            return Some(format!(
                "planning budget of {max} USD per run spent ({spent:.6} so far); no further LLM call"
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input_tokens: u64, output_tokens: u64) -> TokenUsage {
        TokenUsage {
            input_tokens,
            output_tokens,
        }
    }

    #[test]
    fn limits_apply_from_the_spend_on() {
        let none = PlanningBudget::default();
        assert_eq!(none.exhausted(usage(1_000_000, 1), Some(1e9)), None);

        let tokens = PlanningBudget {
            max_tokens: Some(300),
            ..PlanningBudget::default()
        };
        assert_eq!(tokens.exhausted(usage(0, 0), None), None);
        assert_eq!(tokens.exhausted(usage(250, 49), None), None);
        let why = tokens.exhausted(usage(250, 50), None).expect("spent");
        assert!(
            why.contains("300 tokens") && why.contains("300 so far"),
            "{why}"
        );

        let usd = PlanningBudget {
            max_cost_usd: Some(0.01),
            ..PlanningBudget::default()
        };
        assert_eq!(
            usd.exhausted(usage(10, 10), None),
            None,
            "unpriced calls cost 0"
        );
        assert_eq!(usd.exhausted(usage(10, 10), Some(0.009)), None);
        let why = usd.exhausted(usage(10, 10), Some(0.0125)).expect("spent");
        assert!(
            why.contains("0.01 USD") && why.contains("0.012500"),
            "{why}"
        );

        // A zero budget allows no call at all.
        let zero = PlanningBudget {
            max_tokens: Some(0),
            ..PlanningBudget::default()
        };
        assert!(zero.exhausted(usage(0, 0), None).is_some());
    }

    #[test]
    fn a_tenant_limit_names_the_budget_and_its_reset() {
        let limit = TenantLimit {
            max_tokens: Some(100),
            max_cost_usd: Some(0.5),
            budget: "tenant acme's day budget".into(),
            resets_at: "2026-05-02T00:00:00Z".into(),
        };
        assert_eq!(limit.exhausted(usage(60, 39), Some(0.49)), None);
        let why = limit.exhausted(usage(60, 40), None).expect("tokens spent");
        assert!(
            why.contains("tenant acme's day budget") && why.contains("2026-05-02T00:00:00Z"),
            "{why}"
        );
        let why = limit.exhausted(usage(1, 1), Some(0.5)).expect("USD spent");
        assert!(why.contains("0.500000 USD"), "{why}");
    }
}
