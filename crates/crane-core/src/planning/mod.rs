//! Planning: turn a prompt into a validated [`Plan`].
//!
//! The chain depends on the strategy:
//! - `rule` (default when no LLM is configured): the rule planner plans (source `rule`).
//! - `llm_first`: exact plan cache → each LLM layer in order (primary, secondary, ...) → the
//!   rule planner as fallback (source `fallback`) → an error listing why each layer failed.
//! - `rule_first`: the rule planner plans what it fully understands (free, instant); the cache
//!   and LLM layers take the rest.
//!
//! Every plan, whoever produced it, goes through [`validate::validate_plan`] before anything
//! runs. Auth/config errors from a provider fail the run loudly (unless configured to fall
//! back) rather than silently degrading every run to the rule planner.

pub mod cache;
pub mod llm;
pub mod prompt;
pub mod prompt_library;
pub mod routing;
mod rule;
pub mod schema;
pub mod stats;
pub mod validate;
pub mod variants;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::Instrument;

use crate::domain::{LayerFailure, Plan, PlanSource, PlanStep, PlannerInfo};
use crate::tools::ToolRegistry;
pub use llm::{LlmLayer, LlmLayerConfig, PlanContext, Spend};
pub use validate::{PlanViolation, validate_plan};
pub use variants::{Planners, Variant, VariantKind, VariantSpec};

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
pub enum PlanError {
    /// The planner did not understand (part of) the prompt.
    #[error("{message}")]
    Rejected { message: String },
    /// The plan failed validation.
    #[error("the plan is invalid: {}", violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid { violations: Vec<PlanViolation> },
    /// Every layer of the chain failed.
    #[error("no planner could plan this prompt: {}", describe(failures))]
    Exhausted { failures: Vec<LayerFailure> },
    /// The run asked for a planner variant or alias that is not registered.
    #[error("unknown planner '{name}'; known variants: {known}; aliases: {aliases}")]
    UnknownPlanner {
        name: String,
        known: String,
        aliases: String,
    },
    /// A provider rejected crane's credentials or configuration: fix the config.
    #[error("LLM provider misconfigured ({}): {}; fix the provider's API key, URL or model in the configuration", failure.category, failure.message)]
    Misconfigured { failure: LayerFailure },
}

fn describe(failures: &[LayerFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("{} ({}): {}", f.layer, f.category, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Which planners run, in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the rule planner.
    #[default]
    Rule,
    /// Cache → LLM layers → rule planner fallback.
    LlmFirst,
    /// Rule planner when it understands everything; otherwise cache → LLM layers.
    RuleFirst,
}

/// Planner chain settings.
pub struct PlanningConfig {
    pub strategy: Strategy,
    pub layers: Vec<LlmLayerConfig>,
    /// Plan-cache capacity (0 disables) and TTL.
    pub cache_capacity: usize,
    pub cache_ttl: Duration,
    /// Longest time planning may take (LLM calls, retries and repair included).
    pub deadline: Duration,
    /// Fall back to the next layer on auth/config errors instead of failing the run.
    pub fallback_on_auth_error: bool,
    /// `llm_first`: plan with the rule planner when every LLM layer failed. Off for
    /// registered variants, whose `fallback` list says what comes next.
    pub rule_fallback: bool,
}

impl Default for PlanningConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::Rule,
            layers: Vec::new(),
            cache_capacity: 10_000,
            cache_ttl: Duration::from_secs(3600),
            deadline: Duration::from_secs(30),
            fallback_on_auth_error: false,
            rule_fallback: true,
        }
    }
}

/// Plans prompts with the configured planner chain.
pub struct Planning {
    registry: Arc<ToolRegistry>,
    stats: Arc<stats::PlannerStats>,
    strategy: Strategy,
    layers: Vec<LlmLayer>,
    cache: Option<cache::PlanCache>,
    deadline: Duration,
    fallback_on_auth_error: bool,
    rule_fallback: bool,
}

impl Planning {
    /// Rule planner only.
    pub fn new(registry: Arc<ToolRegistry>) -> Self {
        Self {
            registry,
            stats: Arc::default(),
            strategy: Strategy::Rule,
            layers: Vec::new(),
            cache: None,
            deadline: Duration::from_secs(30),
            fallback_on_auth_error: false,
            rule_fallback: true,
        }
    }

    /// The configured chain.
    pub fn with_config(
        registry: Arc<ToolRegistry>,
        config: PlanningConfig,
    ) -> Result<Self, prompt::TemplateError> {
        let layers = config
            .layers
            .into_iter()
            .map(|c| LlmLayer::new(c, &registry))
            .collect::<Result<Vec<_>, _>>()?;
        let strategy = if layers.is_empty() {
            Strategy::Rule
        } else {
            config.strategy
        };
        Ok(Self {
            registry,
            stats: Arc::default(),
            strategy,
            layers,
            cache: (config.cache_capacity > 0)
                .then(|| cache::PlanCache::new(config.cache_capacity, config.cache_ttl)),
            deadline: config.deadline,
            fallback_on_auth_error: config.fallback_on_auth_error,
            rule_fallback: config.rule_fallback,
        })
    }

    /// The registry plans are validated against.
    pub fn registry(&self) -> &Arc<ToolRegistry> {
        &self.registry
    }

    /// Planning statistics (`GET /metrics/planner`).
    pub fn stats(&self) -> &stats::PlannerStats {
        &self.stats
    }

    /// Records statistics into `stats` (shared by every variant of a [`Planners`] set).
    pub fn share_stats(&mut self, stats: Arc<stats::PlannerStats>) {
        self.stats = stats;
    }

    /// The strategy in effect.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The LLM layers, in chain order.
    pub fn layers(&self) -> &[LlmLayer] {
        &self.layers
    }

    /// Plans `prompt` and validates the result.
    pub async fn plan(&self, prompt: &str) -> Result<Plan, PlanError> {
        self.plan_traced(prompt, None).await
    }

    /// Plans `prompt`, sending `traceparent` on LLM calls.
    pub async fn plan_traced(
        &self,
        prompt: &str,
        traceparent: Option<&str>,
    ) -> Result<Plan, PlanError> {
        let started = Instant::now();
        let span = tracing::debug_span!(
            "plan",
            crane.plan.strategy = ?self.strategy,
            crane.plan.source = tracing::field::Empty,
            crane.planner.variant = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        let result = self
            .plan_inner(prompt, traceparent)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(plan) => {
                span.record("crane.plan.source", plan.planner.source.as_str());
                span.record("crane.planner.variant", plan.planner.name.as_str());
            }
            Err(_) => {
                span.record("error.type", "no_plan");
            }
        }
        match &result {
            Ok(plan) => self
                .stats
                .plan_made(plan.planner.source, plan.planner.latency_us),
            Err(e) => {
                self.stats.error(match e {
                    PlanError::Rejected { .. } => "rejected",
                    PlanError::Invalid { .. } => "invalid_plan",
                    PlanError::Exhausted { .. } => "exhausted",
                    // The provider call already counted its own category (auth or config).
                    PlanError::Misconfigured { .. } => "misconfigured",
                    PlanError::UnknownPlanner { .. } => "unknown_planner",
                });
                self.stats.plan_failed();
            }
        }
        tracing::debug!(
            elapsed_us = started.elapsed().as_micros() as u64,
            ok = result.is_ok(),
            "planned"
        );
        result
    }

    fn rule_plan(
        &self,
        prompt: &str,
        source: PlanSource,
    ) -> Result<(Vec<PlanStep>, PlannerInfo), PlanError> {
        let steps = rule::plan(prompt)?;
        tracing::debug_span!("validate_plan")
            .in_scope(|| validate_plan(&steps, &self.registry))
            .map_err(|violations| PlanError::Invalid { violations })?;
        Ok((
            steps,
            PlannerInfo::simple(
                crane_rules::PLANNER_NAME,
                crane_rules::PLANNER_VERSION,
                source,
            ),
        ))
    }

    async fn plan_inner(&self, prompt: &str, traceparent: Option<&str>) -> Result<Plan, PlanError> {
        let started = Instant::now();
        let (steps, mut info) = match self.strategy {
            Strategy::Rule => self.rule_plan(prompt, PlanSource::Rule)?,
            Strategy::RuleFirst => match self.rule_plan(prompt, PlanSource::Rule) {
                Ok(plan) => plan,
                Err(e) => {
                    let first = LayerFailure {
                        layer: "rule".into(),
                        category: "rejected".into(),
                        message: e.to_string(),
                    };
                    self.llm_chain(prompt, traceparent, vec![first], false)
                        .await?
                }
            },
            Strategy::LlmFirst => {
                self.llm_chain(prompt, traceparent, Vec::new(), self.rule_fallback)
                    .await?
            }
        };
        info.latency_us = started.elapsed().as_micros() as u64;
        Ok(Plan {
            plan_id: uuid::Uuid::now_v7().to_string(),
            planner: info,
            steps,
        })
    }

    /// Cache → LLM layers → (optionally) rule fallback.
    async fn llm_chain(
        &self,
        prompt: &str,
        traceparent: Option<&str>,
        mut failures: Vec<LayerFailure>,
        rule_fallback: bool,
    ) -> Result<(Vec<PlanStep>, PlannerInfo), PlanError> {
        let identity = self
            .layers
            .first()
            .map(|l| l.identity())
            .unwrap_or_default();
        let key = cache::key(&identity, prompt);
        if let Some(cache) = &self.cache {
            let hit = tracing::debug_span!("plan_cache.lookup").in_scope(|| cache.get(&key));
            tracing::debug!(hit = hit.is_some(), "plan cache lookup");
            self.stats.cache_lookup(hit.is_some());
            if let Some(hit) = hit {
                let mut info = PlannerInfo::simple(&hit.origin, "cached", PlanSource::Cache);
                info.attempts = failures;
                return Ok((hit.steps, info));
            }
        }
        let ctx = PlanContext {
            deadline: tokio::time::Instant::now() + self.deadline,
            traceparent,
        };
        let mut spend = llm::Spend::default();
        for layer in &self.layers {
            match layer
                .plan(prompt, &self.registry, ctx, &self.stats, &mut spend)
                .await
            {
                Ok(plan) => {
                    let mut info = plan.info;
                    info.attempts = failures;
                    if let Some(cache) = &self.cache {
                        cache.put(
                            key,
                            cache::CachedPlan {
                                steps: plan.steps.clone(),
                                origin: info.name.clone(),
                            },
                        );
                    }
                    return Ok((plan.steps, info));
                }
                Err((failure, kind)) => {
                    let misconfigured = matches!(
                        kind,
                        Some(crane_llm::ErrorKind::Auth | crane_llm::ErrorKind::Config)
                    );
                    if misconfigured {
                        tracing::error!(layer = %failure.layer, category = %failure.category, error = %failure.message, "LLM provider misconfigured");
                        if !self.fallback_on_auth_error {
                            return Err(PlanError::Misconfigured { failure });
                        }
                    } else {
                        tracing::warn!(layer = %failure.layer, category = %failure.category, error = %failure.message, "LLM layer failed; trying the next layer");
                    }
                    metrics::counter!("crane_plan_layer_failures_total", "reason" => failure.category.clone()).increment(1);
                    failures.push(failure);
                }
            }
        }
        if rule_fallback {
            tracing::debug!(reasons = %describe(&failures), "fallback to the rule planner");
            match self.rule_plan(prompt, PlanSource::Fallback) {
                Ok((steps, mut info)) => {
                    info.attempts = failures;
                    // Billed answers that were unusable still cost this run.
                    if !spend.is_empty() {
                        info.usage = Some(spend.usage);
                        info.cost_usd = spend.cost_usd;
                    }
                    return Ok((steps, info));
                }
                Err(e) => failures.push(LayerFailure {
                    layer: "rule".into(),
                    category: match e {
                        PlanError::Rejected { .. } => "rejected".into(),
                        _ => "invalid_plan".into(),
                    },
                    message: e.to_string(),
                }),
            }
        }
        Err(PlanError::Exhausted { failures })
    }

    /// Validates a plan supplied by the caller.
    pub fn client_plan(
        &self,
        steps: Vec<(String, serde_json::Value, String)>,
    ) -> Result<Plan, PlanError> {
        let steps = number_steps(steps);
        validate_plan(&steps, &self.registry)
            .map_err(|violations| PlanError::Invalid { violations })?;
        Ok(Plan {
            plan_id: uuid::Uuid::now_v7().to_string(),
            planner: PlannerInfo::simple("client", "1", PlanSource::Client),
            steps,
        })
    }
}

/// Numbers raw planner steps from 1.
pub(crate) fn number_steps(
    raw: impl IntoIterator<Item = (String, serde_json::Value, String)>,
) -> Vec<PlanStep> {
    raw.into_iter()
        .enumerate()
        .map(|(i, (tool, input, reasoning))| PlanStep {
            step_number: i as u32 + 1,
            tool,
            input,
            reasoning,
        })
        .collect()
}
