//! Token prices and call cost: [`Pricing`] per model and [`cost_usd`], which prices input and
//! output tokens separately (never all tokens at the output price).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::types::Usage;

/// USD per million tokens for one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pricing {
    /// Price of a million prompt tokens.
    pub input_per_million: f64,
    /// Price of a million completion tokens.
    pub output_per_million: f64,
}

impl Pricing {
    /// A price pair.
    pub fn new(input_per_million: f64, output_per_million: f64) -> Self {
        Self {
            input_per_million,
            output_per_million,
        }
    }

    /// `input * in_price / 1e6 + output * out_price / 1e6`, rounded by [`round_usd`].
    pub fn cost(&self, usage: &Usage) -> f64 {
        // u64 → f64 loses precision only above 2^53 tokens.
        let (input, output) = (usage.input_tokens as f64, usage.output_tokens as f64);
        round_usd(input * self.input_per_million / 1e6 + output * self.output_per_million / 1e6)
    }
}

/// `a + b` for optional costs (an unpriced side counts 0; `None` only when both are), rounded
/// by [`round_usd`].
pub fn add_usd(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(round_usd(a.unwrap_or(0.0) + b.unwrap_or(0.0))),
    }
}

/// `usd` rounded to 1e-12 USD (far below any price): binary float noise such as
/// `0.00014000000000000001` for 100 tokens at 1 USD/M plus 20 at 2 USD/M becomes `0.00014`,
/// in run records, aggregates and reports. Sums of costs go through it too.
pub fn round_usd(usd: f64) -> f64 {
    if !usd.is_finite() || usd.abs() >= 1e6 {
        return usd;
    }
    (usd * 1e12).round() / 1e12
}

/// Cost of `usage` priced by `response_model` (what the server says it ran), then by
/// `requested_model`; `None` when neither is in `table`.
pub fn cost_usd(
    table: &HashMap<String, Pricing>,
    response_model: &str,
    requested_model: &str,
    usage: &Usage,
) -> Option<f64> {
    table
        .get(response_model)
        .or_else(|| table.get(requested_model))
        .map(|pricing| pricing.cost(usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_and_output_are_priced_separately() {
        let usage = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
        };
        let price = Pricing::new(2.0, 8.0);
        let cost = price.cost(&usage);
        assert!((cost - (0.002 + 0.004)).abs() < 1e-12, "{cost}");
    }

    #[test]
    fn lookup_prefers_response_model() {
        let mut table = HashMap::new();
        table.insert("gpt-4o-2024-08-06".to_owned(), Pricing::new(1.0, 1.0));
        table.insert("gpt-4o".to_owned(), Pricing::new(10.0, 10.0));
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 0,
        };
        assert_eq!(
            cost_usd(&table, "gpt-4o-2024-08-06", "gpt-4o", &usage),
            Some(1.0)
        );
        assert_eq!(cost_usd(&table, "unknown", "gpt-4o", &usage), Some(10.0));
        assert_eq!(cost_usd(&table, "unknown", "other", &usage), None);
    }

    #[test]
    fn costs_carry_no_binary_float_noise() {
        let p = Pricing::new(1.0, 2.0);
        let usage = Usage {
            input_tokens: 100,
            output_tokens: 20,
        };
        assert_eq!(100.0 * 1.0 / 1e6 + 20.0 * 2.0 / 1e6, 0.00014000000000000001);
        assert_eq!(p.cost(&usage), 0.00014);
        assert_eq!(serde_json::to_string(&p.cost(&usage)).unwrap(), "0.00014");
        // Sums too.
        assert_eq!(0.1 + 0.2, 0.30000000000000004);
        assert_eq!(round_usd(0.1 + 0.2), 0.3);
        // Sub-picodollar amounts vanish; huge, infinite and NaN values pass through.
        assert_eq!(round_usd(4e-13), 0.0);
        assert_eq!(round_usd(2e6 + 0.1), 2e6 + 0.1);
        assert!(round_usd(f64::NAN).is_nan());
    }
}
