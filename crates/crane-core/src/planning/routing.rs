//! Model routing: a complexity estimate of the prompt picks a model tier from config (e.g.
//! `fast` for one-clause prompts, `strong` for the rest). The decision and its reason are
//! recorded on the plan.

use crate::domain::RouteDecision;

/// A model tier: prompts with complexity ≤ `max_complexity` may use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub name: String,
    pub model: String,
    /// Highest complexity this tier takes; `None` takes everything.
    pub max_complexity: Option<u32>,
}

/// Estimates complexity: one point per clause (split on then/and/commas/semicolons), one per
/// reference to an earlier result ("it", "them", "the first/last one", "the result"), one per
/// 25 words beyond the first 25. Linear in the prompt length.
pub fn complexity(prompt: &str) -> (u32, String) {
    let lower = prompt.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    let connectors = words
        .iter()
        .filter(|w| matches!(**w, "then" | "and" | "also" | "after"))
        .count()
        + prompt.matches([',', ';']).count();
    let clauses = 1 + connectors as u32;
    let references = words
        .iter()
        .filter(|w| {
            matches!(
                **w,
                "it" | "them" | "first" | "last" | "result" | "previous"
            )
        })
        .count() as u32;
    let length = (words.len().saturating_sub(25) / 25) as u32;
    let score = clauses + references + length;
    let reason = format!(
        "{clauses} clause(s), {references} reference(s), {} word(s) → complexity {score}",
        words.len()
    );
    (score, reason)
}

/// Picks the first tier whose limit admits the prompt; the last tier when none does.
pub fn route(prompt: &str, tiers: &[Tier]) -> Option<RouteDecision> {
    let (score, why) = complexity(prompt);
    let tier = tiers
        .iter()
        .find(|t| t.max_complexity.is_none_or(|max| score <= max))
        .or_else(|| tiers.last())?;
    let limit = tier
        .max_complexity
        .map_or("no limit".to_owned(), |m| format!("limit {m}"));
    Some(RouteDecision {
        tier: tier.name.clone(),
        model: tier.model.clone(),
        complexity: score,
        reason: format!("{why}; tier {} ({limit})", tier.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<Tier> {
        vec![
            Tier {
                name: "fast".into(),
                model: "small".into(),
                max_complexity: Some(2),
            },
            Tier {
                name: "strong".into(),
                model: "big".into(),
                max_complexity: None,
            },
        ]
    }

    #[test]
    fn simple_prompts_go_fast_and_compound_ones_strong() {
        let d = route("what is 7 times 6", &tiers()).unwrap();
        assert_eq!((d.tier.as_str(), d.model.as_str()), ("fast", "small"));
        let d = route(
            "add a todo to buy milk, then list my todos and delete the last one",
            &tiers(),
        )
        .unwrap();
        assert_eq!(d.tier, "strong");
        assert!(d.reason.contains("clause"), "{}", d.reason);
        assert!(route("x", &[]).is_none());
    }
}
