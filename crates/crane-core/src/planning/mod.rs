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
//!
//! Streamed planning ([`Planning::plan_streamed`], [`Planners::plan_streamed`]): an LLM layer
//! hands steps to a [`StepSink`] while the answer is still arriving ([`incremental`]). A cache
//! hit or a rule plan is never streamed. Once a step went out, nothing else is tried (no
//! repair round, next layer, rule fallback or fallback variant: the step may have run); a
//! failure then is [`PlanError::InvalidAfterStep`]. A streamed plan is validated as a whole
//! like any other, recorded the same way, and cached only then.

pub mod budget;
pub mod cache;
pub mod incremental;
pub mod llm;
pub mod prompt;
pub mod prompt_library;
pub mod routing;
mod rule;
pub mod schema;
pub mod semantic;
pub mod stats;
pub mod validate;
pub mod variants;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::Instrument;

use crate::domain::{LayerFailure, Plan, PlanFailure, PlanSource, PlanStep, PlannerInfo};
use crate::tools::ToolRegistry;
pub use budget::{Allowance, PlanningBudget, TenantLimit};
pub use incremental::{EarlyStep, StepSink};
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
    /// Every layer of the chain failed. `spend`: what the LLM calls of the failed layers (and
    /// planner variants) were billed, repair rounds included.
    #[error("no planner could plan this prompt: {}", describe(failures))]
    Exhausted {
        failures: Vec<LayerFailure>,
        spend: Spend,
    },
    /// The run asked for a planner variant or alias that is not registered.
    #[error("unknown planner '{name}'; known variants: {known}; aliases: {aliases}")]
    UnknownPlanner {
        name: String,
        known: String,
        aliases: String,
    },
    /// Streamed planning handed out steps `1..=step` (they may have run) and then the plan
    /// turned out invalid, or the model's answer failed: planning stops there, trying nothing
    /// else. `earlier`: the layers (or variants) that failed before; `spend`: what every LLM
    /// call was billed.
    #[error("the plan became invalid after step {step} was handed out for execution, so no other planner was tried: {} ({}): {}", failure.layer, failure.category, failure.message)]
    InvalidAfterStep {
        step: u32,
        failure: Box<LayerFailure>,
        earlier: Vec<LayerFailure>,
        spend: Spend,
    },
    /// A provider rejected crane's credentials or configuration: fix the config. `earlier`:
    /// the layers (or variants) that failed before it; `spend`: what their LLM calls were billed.
    #[error("LLM provider misconfigured ({}): {}; fix the provider's API key, URL or model in the configuration", failure.category, failure.message)]
    Misconfigured {
        failure: Box<LayerFailure>,
        earlier: Vec<LayerFailure>,
        spend: Spend,
    },
}

impl PlanError {
    /// What the failed planning spent on LLM calls (nothing unless a chain ran:
    /// [`PlanError::Exhausted`] or [`PlanError::Misconfigured`]).
    pub fn spend(&self) -> Spend {
        match self {
            Self::Exhausted { spend, .. }
            | Self::Misconfigured { spend, .. }
            | Self::InvalidAfterStep { spend, .. } => *spend,
            _ => Spend::default(),
        }
    }

    /// The run's record of a failed chain (`Run::plan_failure`): every failed layer and what
    /// they cost. `None` for errors that are not a chain running out of layers.
    pub fn failure_record(&self) -> Option<PlanFailure> {
        match self {
            Self::Exhausted { failures, spend } => {
                let (usage, cost_usd) = spend.record();
                Some(PlanFailure {
                    attempts: failures.clone(),
                    usage,
                    cost_usd,
                })
            }
            Self::Misconfigured {
                failure,
                earlier,
                spend,
            }
            | Self::InvalidAfterStep {
                failure,
                earlier,
                spend,
                ..
            } => {
                let (usage, cost_usd) = spend.record();
                let mut attempts = earlier.clone();
                attempts.push(LayerFailure::clone(failure));
                Some(PlanFailure {
                    attempts,
                    usage,
                    cost_usd,
                })
            }
            _ => None,
        }
    }
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
    /// Most tokens / USD one prompt's LLM calls may spend.
    pub budget: PlanningBudget,
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
            budget: PlanningBudget::default(),
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
    budget: PlanningBudget,
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
            budget: PlanningBudget::default(),
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
            budget: config.budget,
        })
    }

    /// The identity of this chain's first LLM layer when it would ask an LLM to plan `prompt`
    /// (see [`variants::Planners::cache_scope`]); `None` for rule-only chains, and for
    /// rule-first chains whose rule planner plans `prompt` itself.
    pub fn cache_identity(&self, prompt: &str) -> Option<String> {
        match self.strategy {
            Strategy::Rule => None,
            Strategy::RuleFirst if self.rule_plan(prompt, PlanSource::Rule).is_ok() => None,
            Strategy::RuleFirst | Strategy::LlmFirst => self.layers.first().map(LlmLayer::identity),
        }
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
        self.plan_after(prompt, traceparent, Spend::default()).await
    }

    /// Like [`Planning::plan_traced`] after `earlier` was already spent on this prompt (by
    /// planner variants tried before): the planning budget counts it. The plan and errors
    /// report this chain's own spend only.
    pub async fn plan_after(
        &self,
        prompt: &str,
        traceparent: Option<&str>,
        earlier: Spend,
    ) -> Result<Plan, PlanError> {
        self.plan_within(prompt, traceparent, earlier, &Allowance::Unlimited)
            .await
    }

    /// Like [`Planning::plan_after`] within what the tenant's spend budgets leave
    /// (`allowance`): a limit checked before every LLM call, or, when a budget is spent, no LLM
    /// call at all (the rule planner plans, and the plan's attempts say why).
    pub async fn plan_within(
        &self,
        prompt: &str,
        traceparent: Option<&str>,
        earlier: Spend,
        allowance: &Allowance,
    ) -> Result<Plan, PlanError> {
        self.plan_streamed(prompt, traceparent, earlier, allowance, None)
            .await
    }

    /// Whether planning with this chain can hand out steps early: an LLM layer asks for
    /// streamed answers.
    pub fn streams(&self) -> bool {
        self.strategy != Strategy::Rule && self.layers.iter().any(LlmLayer::streams)
    }

    /// Like [`Planning::plan_within`], handing the steps of a streamed LLM answer to `sink` as
    /// they arrive (module doc).
    pub async fn plan_streamed(
        &self,
        prompt: &str,
        traceparent: Option<&str>,
        earlier: Spend,
        allowance: &Allowance,
        sink: Option<&StepSink>,
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
            .plan_inner(prompt, traceparent, earlier, allowance, sink)
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
                    PlanError::InvalidAfterStep { .. } => "invalid_after_step",
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

    async fn plan_inner(
        &self,
        prompt: &str,
        traceparent: Option<&str>,
        earlier: Spend,
        allowance: &Allowance,
        sink: Option<&StepSink>,
    ) -> Result<Plan, PlanError> {
        let started = Instant::now();
        let tenant = match allowance {
            Allowance::Limited(limit) => Some(limit),
            Allowance::Unlimited | Allowance::Exhausted(_) => None,
        };
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
                    if let Allowance::Exhausted(why) = allowance {
                        return Err(PlanError::Exhausted {
                            failures: vec![first, self.budget_spent(why)],
                            spend: Spend::default(),
                        });
                    }
                    self.llm_chain(
                        prompt,
                        traceparent,
                        earlier,
                        vec![first],
                        false,
                        tenant,
                        sink,
                    )
                    .await?
                }
            },
            Strategy::LlmFirst => {
                if let Allowance::Exhausted(why) = allowance {
                    // No LLM call at all: the rule planner plans, whatever the chain's
                    // fallback setting (a spent budget is not a failing model).
                    let failure = self.budget_spent(why);
                    match self.rule_plan(prompt, PlanSource::Fallback) {
                        Ok((steps, mut info)) => {
                            info.attempts = vec![failure];
                            (steps, info)
                        }
                        Err(e) => {
                            return Err(PlanError::Exhausted {
                                failures: vec![failure, rule_failure(&e)],
                                spend: Spend::default(),
                            });
                        }
                    }
                } else {
                    self.llm_chain(
                        prompt,
                        traceparent,
                        earlier,
                        Vec::new(),
                        self.rule_fallback,
                        tenant,
                        sink,
                    )
                    .await?
                }
            }
        };
        info.latency_us = started.elapsed().as_micros() as u64;
        Ok(Plan {
            plan_id: uuid::Uuid::now_v7().to_string(),
            planner: info,
            steps,
        })
    }

    /// The attempt recorded when a tenant's spend budget kept every LLM layer from calling.
    fn budget_spent(&self, why: &str) -> LayerFailure {
        self.stats.error("budget");
        metrics::counter!("crane_plan_layer_failures_total", "reason" => "budget").increment(1);
        tracing::debug!(reason = %why, "spend budget spent; no LLM call");
        LayerFailure {
            layer: "budget".into(),
            category: "budget".into(),
            message: why.to_owned(),
        }
    }

    /// Cache → LLM layers → (optionally) rule fallback. `tenant`: what the tenant's spend
    /// budgets leave, checked before every call. `sink`: streamed planning; once a layer
    /// handed out a step, its failure ends the chain.
    #[expect(clippy::too_many_arguments)]
    async fn llm_chain(
        &self,
        prompt: &str,
        traceparent: Option<&str>,
        earlier: Spend,
        mut failures: Vec<LayerFailure>,
        rule_fallback: bool,
        tenant: Option<&TenantLimit>,
        sink: Option<&StepSink>,
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
            budget: self.budget,
            earlier,
            tenant,
        };
        let mut spend = llm::Spend::default();
        for layer in &self.layers {
            match layer
                .plan(prompt, &self.registry, ctx, &self.stats, &mut spend, sink)
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
                Err((failure, _)) if sink.is_some_and(|s| s.emitted() > 0) => {
                    let step = sink.map_or(0, StepSink::emitted);
                    tracing::warn!(layer = %failure.layer, category = %failure.category, error = %failure.message, step, "LLM plan failed after steps were handed out; no fallback");
                    metrics::counter!("crane_plan_layer_failures_total", "reason" => "invalid_after_step").increment(1);
                    return Err(PlanError::InvalidAfterStep {
                        step,
                        failure: Box::new(failure),
                        earlier: failures,
                        spend,
                    });
                }
                Err((failure, kind)) => {
                    let misconfigured = matches!(
                        kind,
                        Some(crane_llm::ErrorKind::Auth | crane_llm::ErrorKind::Config)
                    );
                    if misconfigured {
                        tracing::error!(layer = %failure.layer, category = %failure.category, error = %failure.message, "LLM provider misconfigured");
                        if !self.fallback_on_auth_error {
                            return Err(PlanError::Misconfigured {
                                failure: Box::new(failure),
                                earlier: failures,
                                spend,
                            });
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
                    (info.usage, info.cost_usd) = spend.record();
                    return Ok((steps, info));
                }
                Err(e) => failures.push(rule_failure(&e)),
            }
        }
        Err(PlanError::Exhausted { failures, spend })
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

/// The attempt recorded when the rule planner could not plan (as a fallback).
fn rule_failure(e: &PlanError) -> LayerFailure {
    LayerFailure {
        layer: "rule".into(),
        category: match e {
            PlanError::Rejected { .. } => "rejected".into(),
            _ => "invalid_plan".into(),
        },
        message: e.to_string(),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crane_llm::{Pricing, Provider, ProviderConfig, ProviderKind, StructuredMode};
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::domain::TokenUsage;

    const MODEL: &str = "test-model";
    /// A prompt the rule planner rejects.
    const NONSENSE: &str = "paint the fence blue";
    /// One answer of [`mock_openai`] (100 input + 20 output tokens) at 1 / 2 USD per million.
    const ONE_CALL_USD: f64 = 100.0 * 1.0 / 1e6 + 20.0 * 2.0 / 1e6;

    /// An OpenAI-compatible server answering every chat call with a plan that names an unknown
    /// tool (invalid, also after the repair round), billed 100 input and 20 output tokens.
    /// Returns its base URL and how many requests it answered. crane-core has no HTTP server
    /// dependency: this is HTTP/1.1 by hand (keep-alive, Content-Length bodies only).
    async fn mock_openai() -> (String, Arc<AtomicUsize>) {
        let plan =
            json!({"steps": [{"tool": "weather", "input": {"city": "Oslo"}, "reasoning": "r"}]});
        let body = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": plan.to_string()}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
        })
        .to_string();
        mock_server("200 OK", body).await
    }

    /// A server answering every request with `status` and the JSON `body`.
    async fn mock_server(status: &str, body: String) -> (String, Arc<AtomicUsize>) {
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answered = Arc::new(AtomicUsize::new(0));
        let count = answered.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (response, count) = (response.clone(), count.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        // One request: headers, then Content-Length bytes of body.
                        let request_len = loop {
                            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                                let length = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                                    .unwrap_or(0);
                                if buf.len() >= end + 4 + length {
                                    break end + 4 + length;
                                }
                            }
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        buf.drain(..request_len);
                        count.fetch_add(1, Ordering::SeqCst);
                        if socket.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}/v1"), answered)
    }

    fn layer(name: &str, base_url: &str) -> LlmLayerConfig {
        let mut config = ProviderConfig::new(name, ProviderKind::OpenAi, base_url, MODEL);
        config.modes = vec![StructuredMode::JsonSchema];
        config.retry.max_retries = 0;
        config.pricing.insert(
            MODEL.to_owned(),
            Pricing {
                input_per_million: 1.0,
                output_per_million: 2.0,
            },
        );
        LlmLayerConfig {
            provider: Provider::new(config).unwrap(),
            template: prompt::PromptTemplate::builtin(),
            few_shot: false,
            temperature: None,
            max_tokens: None,
            tiers: Vec::new(),
        }
    }

    fn llm_planning(layers: Vec<LlmLayerConfig>, rule_fallback: bool) -> Planning {
        Planning::with_config(
            Arc::new(crate::tools::builtin_registry()),
            PlanningConfig {
                strategy: Strategy::LlmFirst,
                layers,
                cache_capacity: 0,
                rule_fallback,
                ..PlanningConfig::default()
            },
        )
        .unwrap()
    }

    fn categories(failures: &[LayerFailure]) -> Vec<(&str, &str)> {
        failures
            .iter()
            .map(|f| (f.layer.as_str(), f.category.as_str()))
            .collect()
    }

    #[track_caller]
    fn assert_spend(spend: Spend, calls: u64) {
        assert_eq!(
            spend.usage,
            TokenUsage {
                input_tokens: 100 * calls,
                output_tokens: 20 * calls
            }
        );
        let cost = spend.cost_usd.expect("priced calls have a cost");
        assert!(
            (cost - calls as f64 * ONE_CALL_USD).abs() < 1e-12,
            "{cost} for {calls} calls"
        );
    }

    #[tokio::test]
    async fn exhausted_chain_carries_the_spend_of_every_failed_layer() {
        let (url, answered) = mock_openai().await;
        // Two layers, each answering invalid plans twice (first answer and repair), and a
        // rule fallback that rejects the prompt.
        let planning = llm_planning(vec![layer("primary", &url), layer("secondary", &url)], true);
        let err = planning
            .plan(NONSENSE)
            .await
            .expect_err("no layer can plan");
        assert_eq!(answered.load(Ordering::SeqCst), 4);
        let PlanError::Exhausted { failures, spend } = &err else {
            panic!("expected Exhausted, got {err:?}");
        };
        assert_eq!(
            categories(failures),
            [
                ("llm:primary", "invalid_plan"),
                ("llm:secondary", "invalid_plan"),
                ("rule", "rejected")
            ]
        );
        assert_spend(*spend, 4);
        assert_eq!(err.spend(), *spend);

        // The run's record of it.
        let record = err.failure_record().expect("a record");
        assert_eq!(record.attempts, *failures);
        assert_eq!(record.usage, Some(spend.usage));
        assert_eq!(record.cost_usd, spend.cost_usd);
    }

    #[tokio::test]
    async fn exhausted_without_rule_fallback_and_without_billed_calls() {
        let (url, _) = mock_openai().await;
        let planning = llm_planning(vec![layer("primary", &url)], false);
        let err = planning.plan(NONSENSE).await.expect_err("invalid plans");
        assert_eq!(
            categories(match &err {
                PlanError::Exhausted { failures, .. } => failures,
                other => panic!("expected Exhausted, got {other:?}"),
            }),
            [("llm:primary", "invalid_plan")]
        );
        assert_spend(err.spend(), 2);

        // Nothing billed (the rule planner alone): the record has attempts, no usage or cost.
        let err = PlanError::Exhausted {
            failures: Vec::new(),
            spend: Spend::default(),
        };
        let record = err.failure_record().expect("a record");
        assert_eq!((record.usage, record.cost_usd), (None, None));
        let rejected = PlanError::Rejected {
            message: "no".into(),
        };
        assert_eq!(rejected.failure_record(), None);
        assert!(rejected.spend().is_empty());
    }

    #[tokio::test]
    async fn misconfigured_layer_keeps_the_earlier_failures_and_their_spend() {
        let (url, answered) = mock_openai().await;
        let (denied, denials) = mock_server(
            "401 Unauthorized",
            json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
                .to_string(),
        )
        .await;
        // The primary answers invalid plans (billed twice), the secondary rejects the key:
        // a loud error, not a fallback, that still records the primary's failure and cost.
        let planning = llm_planning(
            vec![layer("primary", &url), layer("secondary", &denied)],
            true,
        );
        let err = planning.plan(NONSENSE).await.expect_err("misconfigured");
        assert_eq!(answered.load(Ordering::SeqCst), 2);
        assert_eq!(denials.load(Ordering::SeqCst), 1);
        let PlanError::Misconfigured {
            failure,
            earlier,
            spend,
        } = &err
        else {
            panic!("expected Misconfigured, got {err:?}");
        };
        assert_eq!(failure.layer, "llm:secondary");
        assert_eq!(categories(earlier), [("llm:primary", "invalid_plan")]);
        assert_spend(*spend, 2);
        let record = err.failure_record().expect("a record");
        assert_eq!(
            categories(&record.attempts),
            [
                ("llm:primary", "invalid_plan"),
                ("llm:secondary", failure.category.as_str())
            ]
        );
        assert_eq!(record.usage, Some(spend.usage));
        assert!(
            err.to_string().contains("fix the provider's API key"),
            "{err}"
        );
    }

    fn llm_variant(name: &str, planning: Planning, fallback: &[&str]) -> Variant {
        Variant::new(
            VariantSpec {
                name: name.into(),
                kind: VariantKind::Llm,
                version: "1.0.0".into(),
                fallback: fallback.iter().map(|f| (*f).to_owned()).collect(),
                builtin: false,
                ..VariantSpec::rule()
            },
            planning,
        )
    }

    #[tokio::test]
    async fn variant_fallback_sums_the_spend_of_every_variant_tried() {
        let (url, answered) = mock_openai().await;
        let registry = Arc::new(crate::tools::builtin_registry());
        let planners = Planners::new(
            registry,
            vec![
                llm_variant(
                    "a",
                    llm_planning(vec![layer("primary", &url)], false),
                    &["b"],
                ),
                llm_variant("b", llm_planning(vec![layer("primary", &url)], false), &[]),
                llm_variant(
                    "c",
                    llm_planning(vec![layer("primary", &url)], false),
                    &["rule"],
                ),
            ],
            "a",
        )
        .unwrap();

        // a then b: both exhausted, each after two billed answers.
        let err = planners
            .plan(Some("a"), NONSENSE, None)
            .await
            .expect_err("no variant can plan");
        assert_eq!(answered.load(Ordering::SeqCst), 4);
        let PlanError::Exhausted { failures, spend } = &err else {
            panic!("expected Exhausted, got {err:?}");
        };
        assert_eq!(
            categories(failures),
            [("variant:a", "exhausted"), ("variant:b", "exhausted")]
        );
        assert_spend(*spend, 4);

        // c fails (two billed answers), the rule variant plans: the plan records c's spend.
        let plan = planners
            .plan(Some("c"), "what is 7 times 6", None)
            .await
            .expect("the rule variant plans");
        assert_eq!(plan.planner.source, PlanSource::Rule);
        assert_eq!(
            categories(&plan.planner.attempts),
            [("variant:c", "exhausted")]
        );
        assert_spend(
            Spend {
                usage: plan.planner.usage.expect("usage"),
                cost_usd: plan.planner.cost_usd,
            },
            2,
        );
    }

    #[tokio::test]
    async fn a_tenant_allowance_limits_the_calls_and_a_spent_one_allows_none() {
        let (url, answered) = mock_openai().await;
        // 100 tokens left: the first answer (120, invalid) spends them, so the repair round is
        // not sent and the rule fallback plans.
        let left = Allowance::Limited(TenantLimit {
            max_tokens: Some(100),
            max_cost_usd: None,
            budget: "tenant acme's day budget".into(),
            resets_at: "2026-05-02T00:00:00Z".into(),
        });
        let planning = llm_planning(vec![layer("primary", &url)], true);
        let plan = planning
            .plan_within("what is 7 times 6", None, Spend::default(), &left)
            .await
            .expect("the rule fallback plans");
        assert_eq!(answered.load(Ordering::SeqCst), 1);
        assert_eq!(plan.planner.source, PlanSource::Fallback);
        assert_eq!(
            categories(&plan.planner.attempts),
            [("llm:primary", "budget")]
        );
        let why = &plan.planner.attempts[0].message;
        assert!(
            why.contains("tenant acme's day budget is spent") && why.contains("2026-05-02"),
            "{why}"
        );
        assert_spend(
            Spend {
                usage: plan.planner.usage.expect("usage"),
                cost_usd: plan.planner.cost_usd,
            },
            1,
        );

        // Spent: no call at all, and the rule planner plans even in a chain without a rule
        // fallback.
        let spent = Allowance::Exhausted("tenant acme's day budget is spent".into());
        let strict = llm_planning(vec![layer("primary", &url)], false);
        let plan = strict
            .plan_within("what is 7 times 6", None, Spend::default(), &spent)
            .await
            .expect("the rule planner plans");
        assert_eq!(answered.load(Ordering::SeqCst), 1, "no LLM request");
        assert_eq!(plan.planner.source, PlanSource::Fallback);
        assert_eq!(categories(&plan.planner.attempts), [("budget", "budget")]);
        assert_eq!(plan.planner.usage, None);
        let err = strict
            .plan_within(NONSENSE, None, Spend::default(), &spent)
            .await
            .expect_err("the rule planner rejects it");
        let PlanError::Exhausted { failures, spend } = &err else {
            panic!("expected Exhausted, got {err:?}");
        };
        assert_eq!(
            categories(failures),
            [("budget", "budget"), ("rule", "rejected")]
        );
        assert!(spend.is_empty());
        assert_eq!(answered.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_planning_budget_counts_the_spend_of_earlier_variants() {
        let (url, answered) = mock_openai().await;
        let registry = Arc::new(crate::tools::builtin_registry());
        // 240 tokens per run: variant a spends it all (two answers of 120), so b may not call.
        let budgeted = |url: &str| {
            Planning::with_config(
                registry.clone(),
                PlanningConfig {
                    strategy: Strategy::LlmFirst,
                    layers: vec![layer("primary", url)],
                    cache_capacity: 0,
                    rule_fallback: false,
                    budget: PlanningBudget {
                        max_tokens: Some(240),
                        max_cost_usd: None,
                    },
                    ..PlanningConfig::default()
                },
            )
            .unwrap()
        };
        let planners = Planners::new(
            registry.clone(),
            vec![
                llm_variant("a", budgeted(&url), &["b"]),
                llm_variant("b", budgeted(&url), &[]),
            ],
            "a",
        )
        .unwrap();
        let err = planners
            .plan(Some("a"), NONSENSE, None)
            .await
            .expect_err("no variant can plan");
        assert_eq!(answered.load(Ordering::SeqCst), 2, "b made no call");
        let PlanError::Exhausted { failures, spend } = &err else {
            panic!("expected Exhausted, got {err:?}");
        };
        assert_eq!(
            categories(failures),
            [("variant:a", "exhausted"), ("variant:b", "exhausted")]
        );
        assert!(
            failures[1].message.contains("(budget)"),
            "{}",
            failures[1].message
        );
        assert_spend(*spend, 2);

        // Alone, b has the whole budget: its answer and repair round.
        let err = planners
            .plan(Some("b"), NONSENSE, None)
            .await
            .expect_err("invalid");
        assert_eq!(answered.load(Ordering::SeqCst), 4);
        assert_spend(err.spend(), 2);
    }
}
