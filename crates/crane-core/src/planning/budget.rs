//! The planning budget: the most tokens and USD the LLM calls for one prompt's planning may
//! spend (every layer of a chain and the repair rounds together). Checked before each call, so
//! one call can overshoot it by at most its own spend; when spent, the remaining LLM layers fail
//! with the `budget` category without a request and the rule planner (when in the chain) plans.

use crate::domain::TokenUsage;

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
}
