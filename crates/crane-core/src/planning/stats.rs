//! In-process planning statistics behind `GET /metrics/planner`: latency percentiles per plan
//! source (over a bounded window of recent plans), success / fallback / cache-hit rates, tokens
//! and cost per provider and model, and errors by category.
//!
//! Prometheus gets the same events as counters and histograms; this summary exists because
//! operators ask "what is p95 planning latency of LLM plans right now" without a Prometheus.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::domain::{PlanSource, TokenUsage};

/// Recent latencies kept per source.
const WINDOW: usize = 10_000;

#[derive(Default)]
struct ModelTotals {
    requests: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
}

#[derive(Default)]
struct Inner {
    latencies: BTreeMap<&'static str, VecDeque<u64>>,
    plans_by_source: BTreeMap<&'static str, u64>,
    attempts: u64,
    failures: u64,
    cache_hits: u64,
    cache_misses: u64,
    models: BTreeMap<(String, String), ModelTotals>,
    errors: BTreeMap<String, u64>,
}

/// Planning statistics; cheap to update (one short critical section per event).
#[derive(Default)]
pub struct PlannerStats {
    inner: Mutex<Inner>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

fn rate(num: u64, den: u64) -> Value {
    if den == 0 {
        Value::Null
    } else {
        json!(num as f64 / den as f64)
    }
}

impl PlannerStats {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if let Ok(mut inner) = self.inner.lock() {
            f(&mut inner);
        }
    }

    /// A plan was made by `source` in `latency_us`.
    pub fn plan_made(&self, source: PlanSource, latency_us: u64) {
        metrics::counter!("crane_plans_total", "source" => source.as_str()).increment(1);
        metrics::histogram!("crane_planning_duration_seconds", "source" => source.as_str())
            .record(latency_us as f64 / 1e6);
        if source == PlanSource::Fallback {
            metrics::counter!("crane_plan_fallbacks_total").increment(1);
        }
        self.with(|s| {
            s.attempts += 1;
            *s.plans_by_source.entry(source.as_str()).or_default() += 1;
            let window = s.latencies.entry(source.as_str()).or_default();
            if window.len() == WINDOW {
                window.pop_front();
            }
            window.push_back(latency_us);
        });
    }

    /// No layer could plan a prompt.
    pub fn plan_failed(&self) {
        metrics::counter!("crane_plan_failures_total").increment(1);
        self.with(|s| {
            s.attempts += 1;
            s.failures += 1;
        });
    }

    /// A plan-cache lookup.
    pub fn cache_lookup(&self, hit: bool) {
        metrics::counter!("crane_plan_cache_lookups_total", "result" => if hit { "hit" } else { "miss" }).increment(1);
        self.with(|s| {
            if hit {
                s.cache_hits += 1;
            } else {
                s.cache_misses += 1;
            }
        });
    }

    /// An LLM request finished (successfully or not) with this usage.
    pub fn llm_request(
        &self,
        provider: &str,
        model: &str,
        usage: TokenUsage,
        cost_usd: Option<f64>,
    ) {
        self.with(|s| {
            let t = s
                .models
                .entry((provider.to_owned(), model.to_owned()))
                .or_default();
            t.requests += 1;
            t.input_tokens += usage.input_tokens;
            t.output_tokens += usage.output_tokens;
            t.cost_usd = crane_llm::round_usd(t.cost_usd + cost_usd.unwrap_or(0.0));
        });
    }

    /// A planning error of this category (`timeout`, `rate_limit`, `invalid_output`, ...).
    pub fn error(&self, category: &str) {
        self.with(|s| *s.errors.entry(category.to_owned()).or_default() += 1);
    }

    /// The JSON summary.
    pub fn snapshot(&self) -> Value {
        let Ok(s) = self.inner.lock() else {
            return json!({});
        };
        let made: u64 = s.plans_by_source.values().sum();
        let fallbacks = s.plans_by_source.get("fallback").copied().unwrap_or(0);
        let mut by_source = serde_json::Map::new();
        for (source, window) in &s.latencies {
            let mut sorted: Vec<u64> = window.iter().copied().collect();
            sorted.sort_unstable();
            by_source.insert(
                (*source).to_owned(),
                json!({
                    "count": s.plans_by_source.get(source).copied().unwrap_or(0),
                    "p50_ms": percentile(&sorted, 0.50),
                    "p95_ms": percentile(&sorted, 0.95),
                    "p99_ms": percentile(&sorted, 0.99),
                }),
            );
        }
        let (mut input, mut output, mut cost) = (0u64, 0u64, 0f64);
        let models: Vec<Value> = s
            .models
            .iter()
            .map(|((provider, model), t)| {
                input += t.input_tokens;
                output += t.output_tokens;
                cost = crane_llm::round_usd(cost + t.cost_usd);
                json!({"provider": provider, "model": model, "requests": t.requests,
                       "input_tokens": t.input_tokens, "output_tokens": t.output_tokens, "cost_usd": t.cost_usd})
            })
            .collect();
        json!({
            "plans_total": made,
            "planning_attempts": s.attempts,
            "failures": s.failures,
            "by_source": by_source,
            "success_rate": rate(made, s.attempts),
            "fallback_rate": rate(fallbacks, made),
            "cache_hit_rate": rate(s.cache_hits, s.cache_hits + s.cache_misses),
            "cache": {"hits": s.cache_hits, "misses": s.cache_misses},
            "tokens": {"input": input, "output": output},
            "cost_usd": cost,
            "by_model": models,
            "errors_by_category": s.errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_only_mode_reports_no_fallbacks() {
        let stats = PlannerStats::default();
        for i in 0..100 {
            stats.plan_made(PlanSource::Rule, 10 + i);
        }
        stats.plan_failed();
        let snap = stats.snapshot();
        assert_eq!(snap["plans_total"], 100);
        assert_eq!(snap["fallback_rate"], 0.0);
        assert_eq!(snap["cache_hit_rate"], Value::Null);
        assert_eq!(snap["by_source"]["rule"]["count"], 100);
        assert!((snap["success_rate"].as_f64().unwrap() - 100.0 / 101.0).abs() < 1e-9);
        assert!(
            snap["by_source"]["rule"]["p99_ms"].as_f64().unwrap()
                >= snap["by_source"]["rule"]["p50_ms"].as_f64().unwrap()
        );
    }

    #[test]
    fn tokens_and_cost_aggregate_per_model() {
        let stats = PlannerStats::default();
        let usage = TokenUsage {
            input_tokens: 1000,
            output_tokens: 100,
        };
        stats.llm_request("primary", "m1", usage, Some(0.002));
        stats.llm_request("primary", "m1", usage, Some(0.002));
        stats.error("timeout");
        let snap = stats.snapshot();
        assert_eq!(snap["tokens"]["input"], 2000);
        assert_eq!(snap["by_model"][0]["requests"], 2);
        assert!((snap["cost_usd"].as_f64().unwrap() - 0.004).abs() < 1e-12);
        assert_eq!(snap["errors_by_category"]["timeout"], 1);
    }
}
