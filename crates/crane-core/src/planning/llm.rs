//! The LLM planning layer: one provider, a prompt template, the registry's plan schema, model
//! routing, and one repair round. Whatever the model answers goes through the same validator
//! as rule plans; this layer never panics on bad output, it reports a categorised failure and
//! the chain moves on.
//!
//! With a [`StepSink`] (streamed planning) and a provider whose `stream` setting is on, the
//! first call asks for a streamed answer and hands each step out as soon as it is complete and
//! valid on its own ([`super::incremental`]). Once a step went out there is no repair round:
//! the whole answer must validate and begin with exactly the steps handed out, else the layer
//! fails and the chain stops ([`super::PlanError::InvalidAfterStep`]).

use std::sync::Arc;
use std::time::Instant;

use crane_llm::{ChatPrompt, ChatRequest, ChatResponse, LlmError, Message, OnText, Provider, Role};
use serde_json::Value;
use tracing::Instrument;

use super::incremental::{StepFeed, StepSink, raw_step};
use super::prompt::PromptTemplate;
use super::routing::{Tier, route};
use super::stats::PlannerStats;
use super::validate::{MAX_STEPS, validate_plan};
use super::{number_steps, schema};
use crate::domain::{LayerFailure, PlanSource, PlanStep, PlannerInfo, TokenUsage};
use crate::tools::ToolRegistry;

/// Settings of one LLM layer.
pub struct LlmLayerConfig {
    pub provider: Provider,
    pub template: PromptTemplate,
    pub few_shot: bool,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub tiers: Vec<Tier>,
}

/// One LLM layer of the planner chain.
pub struct LlmLayer {
    provider: Provider,
    template: PromptTemplate,
    /// Rendered system prompt and plan schema, serialised once for every call.
    prompt: Arc<ChatPrompt>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    tiers: Vec<Tier>,
}

/// What a planning call needs besides the prompt.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext<'a> {
    /// Planning must finish by then.
    pub deadline: tokio::time::Instant,
    /// W3C traceparent to send on LLM calls.
    pub traceparent: Option<&'a str>,
    /// Checked before every call against `earlier` plus what the chain spent so far.
    pub budget: super::PlanningBudget,
    /// Spent on this prompt before the chain started (planner variants tried before).
    pub earlier: Spend,
    /// What the tenant's spend budgets leave for this run's planning; checked before every
    /// call against the same spend as `budget`.
    pub tenant: Option<&'a super::budget::TenantLimit>,
}

/// What planning spent on LLM calls so far: every layer of the chain, repair rounds included.
/// The chain owns it, so a plan made after an earlier layer's billed but unusable answers (or a
/// rule fallback after them) still records what planning cost.
/// A failed chain carries it in [`super::PlanError::Exhausted`], so a run that got no plan still
/// records what its planning cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Spend {
    pub usage: TokenUsage,
    /// `None` until a priced call succeeded.
    pub cost_usd: Option<f64>,
}

impl Spend {
    /// True when no call was billed.
    pub fn is_empty(&self) -> bool {
        self.usage == TokenUsage::default() && self.cost_usd.is_none()
    }

    /// Adds `other` (e.g. the spend of another planner variant of the same run).
    pub fn add(&mut self, other: Spend) {
        self.usage = self.usage + other.usage;
        self.cost_usd = crane_llm::add_usd(self.cost_usd, other.cost_usd);
    }

    /// `(usage, cost_usd)` as plan and run records show them: no usage when nothing was billed.
    pub fn record(&self) -> (Option<TokenUsage>, Option<f64>) {
        if self.is_empty() {
            (None, None)
        } else {
            (Some(self.usage), self.cost_usd)
        }
    }
}

/// A plan from the model plus its record.
pub struct LlmPlan {
    pub steps: Vec<PlanStep>,
    pub info: PlannerInfo,
}

fn failure(layer: &str, category: &str, message: impl Into<String>) -> LayerFailure {
    LayerFailure {
        layer: layer.to_owned(),
        category: category.to_owned(),
        message: message.into(),
    }
}

/// The answer's steps. `Err((category, message))`: `invalid_plan` for an object that is not a
/// plan (no `steps` array: the provider already checked it is a JSON object, so this is the
/// model's mistake, repaired like any other invalid plan), `unsupported` when the model declined.
fn parse_steps(value: &Value) -> Result<Vec<PlanStep>, (String, String)> {
    let steps = value
        .get("steps")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            (
                "invalid_plan".to_owned(),
                "the answer has no \"steps\" array".to_owned(),
            )
        })?;
    if steps.is_empty() {
        let why = value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("the model returned no steps");
        return Err((
            "unsupported".to_owned(),
            format!("the model declined: {why}"),
        ));
    }
    Ok(number_steps(steps.iter().map(raw_step)))
}

impl LlmLayer {
    pub fn new(
        config: LlmLayerConfig,
        registry: &ToolRegistry,
    ) -> Result<Self, super::prompt::TemplateError> {
        let examples = if config.few_shot {
            super::prompt::default_examples()
        } else {
            Vec::new()
        };
        let system = config.template.render(registry, &examples)?;
        Ok(Self {
            provider: config.provider,
            template: config.template,
            prompt: Arc::new(ChatPrompt::new(
                system,
                "plan",
                schema::plan_schema(registry, MAX_STEPS),
            )),
            temperature: config.temperature,
            max_tokens: config.max_tokens,
            tiers: config.tiers,
        })
    }

    /// The layer's name in records: `llm:<provider>`.
    pub fn layer_name(&self) -> String {
        format!("llm:{}", self.provider.name())
    }

    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// Identity for the plan cache: provider, model and prompt hash.
    pub fn identity(&self) -> String {
        format!(
            "{}/{}/{}",
            self.provider.name(),
            self.provider.model(),
            self.template.hash
        )
    }

    /// Whether this layer asks for streamed answers when planning is streamed.
    pub fn streams(&self) -> bool {
        self.provider.config().stream
    }

    #[expect(clippy::too_many_arguments)]
    async fn call(
        &self,
        messages: Vec<Message>,
        model: Option<String>,
        ctx: PlanContext<'_>,
        usage: &mut TokenUsage,
        cost: &mut Option<f64>,
        stats: &PlannerStats,
        on_text: Option<OnText<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let mut spent = ctx.earlier;
        spent.add(Spend {
            usage: *usage,
            cost_usd: *cost,
        });
        let reason = ctx
            .budget
            .exhausted(spent.usage, spent.cost_usd)
            .or_else(|| {
                ctx.tenant
                    .and_then(|limit| limit.exhausted(spent.usage, spent.cost_usd))
            });
        if let Some(reason) = reason {
            // No request: nothing to trace or count as an LLM call.
            stats.error("budget");
            tracing::debug!(provider = %self.provider.name(), %reason, "planning budget spent");
            return Err(LlmError::new(
                crane_llm::ErrorKind::Budget,
                self.provider.name(),
                reason,
            ));
        }
        let request = ChatRequest {
            prompt: self.prompt.clone(),
            messages,
            model,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            deadline: Some(ctx.deadline),
            traceparent: ctx.traceparent.map(str::to_owned),
        };
        let requested = request
            .model
            .as_deref()
            .unwrap_or(self.provider.model())
            .to_owned();
        let span = tracing::debug_span!(
            "chat",
            otel.name = %format!("chat {requested}"),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = self.provider.kind().as_str(),
            gen_ai.request.model = %requested,
            gen_ai.request.temperature = self.temperature.map(crane_llm::temperature_f64),
            gen_ai.request.max_tokens = self.max_tokens.map(i64::from),
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            gen_ai.response.finish_reasons = tracing::field::Empty,
            gen_ai.input.messages = tracing::field::Empty,
            gen_ai.output.messages = tracing::field::Empty,
            crane.llm.provider = self.provider.name(),
            crane.llm.mode = tracing::field::Empty,
            crane.llm.repair = request.messages.len() > 1,
            crane.cost.usd = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        let mut request = request;
        // Outgoing calls carry the chat span's context; without export, the run's trace id.
        request.traceparent = crate::telemetry::traceparent(&span).or(request.traceparent);
        if crate::telemetry::record_content() {
            let text: Vec<&str> = request
                .messages
                .iter()
                .map(|m| m.content.as_str())
                .collect();
            span.record(
                "gen_ai.input.messages",
                crate::telemetry::truncate(&text.join("\n")),
            );
        }
        let started = Instant::now();
        let result = match on_text {
            Some(on_text) => {
                self.provider
                    .chat_stream(&request, on_text)
                    .instrument(span.clone())
                    .await
            }
            None => self.provider.chat(&request).instrument(span.clone()).await,
        };
        match &result {
            Ok(r) => {
                span.record("gen_ai.response.model", r.model.as_str());
                // OpenTelemetry integers are i64; tracing-opentelemetry exports u64 as strings.
                span.record("gen_ai.usage.input_tokens", r.usage.input_tokens as i64);
                span.record("gen_ai.usage.output_tokens", r.usage.output_tokens as i64);
                span.record("crane.llm.mode", r.mode.as_str());
                if let Some(reason) = &r.finish_reason {
                    span.record("gen_ai.response.finish_reasons", format!("[\"{reason}\"]"));
                }
                if let Some(cost) = r.cost_usd {
                    span.record("crane.cost.usd", cost);
                }
                if crate::telemetry::record_content() {
                    span.record(
                        "gen_ai.output.messages",
                        crate::telemetry::truncate(&r.raw_text),
                    );
                }
            }
            Err(e) => {
                span.record("error.type", e.kind.as_str());
            }
        }
        // Metrics and aggregates are keyed by the model crane asked for (`requested`: from its
        // configuration, so bounded, and the same for successes and errors); the model the
        // server reports (e.g. a dated snapshot) is on the span and the run's record.
        let status = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind.as_str(),
        };
        metrics::counter!("crane_llm_requests_total", "provider" => self.provider.name().to_owned(), "model" => requested.clone(), "status" => status).increment(1);
        metrics::histogram!("crane_llm_request_duration_seconds", "provider" => self.provider.name().to_owned(), "model" => requested.clone())
            .record(started.elapsed().as_secs_f64());
        match &result {
            Ok(r) => {
                usage.input_tokens += r.usage.input_tokens;
                usage.output_tokens += r.usage.output_tokens;
                if let Some(c) = r.cost_usd {
                    *cost = crane_llm::add_usd(*cost, Some(c));
                    metrics::counter!("crane_llm_cost_microdollars_total", "provider" => self.provider.name().to_owned(), "model" => requested.clone())
                        .increment((c * 1e6).round() as u64);
                }
                metrics::counter!("crane_llm_tokens_total", "provider" => self.provider.name().to_owned(), "model" => requested.clone(), "direction" => "input").increment(r.usage.input_tokens);
                metrics::counter!("crane_llm_tokens_total", "provider" => self.provider.name().to_owned(), "model" => requested.clone(), "direction" => "output").increment(r.usage.output_tokens);
                stats.llm_request(
                    self.provider.name(),
                    &requested,
                    TokenUsage {
                        input_tokens: r.usage.input_tokens,
                        output_tokens: r.usage.output_tokens,
                    },
                    r.cost_usd,
                );
            }
            Err(e) => stats.error(e.kind.as_str()),
        }
        result
    }

    /// Asks the model for a plan; validates it; on invalid output tries one repair round. Adds
    /// the tokens and cost of every answered call to `spend`; a plan records the total. With
    /// `sink`, steps are handed out early (module doc); the caller reads `sink.emitted()`.
    pub async fn plan(
        &self,
        prompt: &str,
        registry: &ToolRegistry,
        ctx: PlanContext<'_>,
        stats: &PlannerStats,
        spend: &mut Spend,
        sink: Option<&StepSink>,
    ) -> Result<LlmPlan, (LayerFailure, Option<crane_llm::ErrorKind>)> {
        let layer = self.layer_name();
        let decision = route(prompt, &self.tiers);
        let model = decision.as_ref().map(|d| d.model.clone());
        let Spend {
            usage,
            cost_usd: cost,
        } = spend;
        let user = Message {
            role: Role::User,
            content: prompt.to_owned(),
        };
        let mut feed = sink.filter(|_| self.streams()).map(|sink| {
            let mut info = self.info(model.as_deref().unwrap_or(self.provider.model()));
            info.route = decision.clone();
            info.partial = true;
            StepFeed::new(registry, sink, info)
        });
        let mut push = |text: &str| {
            if let Some(feed) = feed.as_mut() {
                feed.push(text);
            }
        };
        let on_text: Option<OnText<'_>> = sink.filter(|_| self.streams()).map(|_| &mut push as _);
        let first = self
            .call(
                vec![user.clone()],
                model.clone(),
                ctx,
                usage,
                cost,
                stats,
                on_text,
            )
            .await
            .map_err(|e| {
                (
                    failure(&layer, e.kind.as_str(), e.to_string()),
                    Some(e.kind),
                )
            })?;
        let emitted = feed.as_ref().map_or(&[][..], StepFeed::emitted);
        if !emitted.is_empty() {
            return self.finish_streamed(&first, emitted, registry, decision, *usage, *cost);
        }

        let problem = match parse_steps(&first.value) {
            Ok(steps) => match validate_plan(&steps, registry) {
                Ok(()) => {
                    return Ok(self.finish(steps, &first, decision, *usage, *cost, false));
                }
                Err(violations) => violations
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            },
            Err((category, message)) if category == "unsupported" => {
                stats.error("unsupported");
                return Err((failure(&layer, &category, message), None));
            }
            Err((_, message)) => message,
        };
        stats.error("invalid_plan");
        tracing::debug!(layer = %layer, %problem, "LLM plan invalid; asking for a repair");
        let repair = Message {
            role: Role::User,
            content: format!(
                "That plan is invalid: {problem}. Answer again with a corrected JSON plan that uses only the listed tools and matches their input schemas."
            ),
        };
        let assistant = Message {
            role: Role::Assistant,
            content: first.raw_text.clone(),
        };
        let second = self
            .call(
                vec![user, assistant, repair],
                model,
                ctx,
                usage,
                cost,
                stats,
                None,
            )
            .await
            .map_err(|e| {
                (
                    failure(&layer, e.kind.as_str(), format!("repair: {e}")),
                    Some(e.kind),
                )
            })?;
        match parse_steps(&second.value) {
            Ok(steps) => match validate_plan(&steps, registry) {
                Ok(()) => Ok(self.finish(steps, &second, decision, *usage, *cost, true)),
                Err(violations) => Err((
                    failure(
                        &layer,
                        "invalid_plan",
                        format!(
                            "invalid plan after one repair round: {}",
                            violations
                                .iter()
                                .map(|v| v.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    ),
                    None,
                )),
            },
            Err((category, message)) => Err((
                failure(&layer, &category, format!("after repair: {message}")),
                None,
            )),
        }
    }

    /// The answer of a call that handed out `emitted`: valid as a whole and beginning with
    /// exactly those steps (tool and input), or a failure without a repair round.
    fn finish_streamed(
        &self,
        response: &ChatResponse,
        emitted: &[PlanStep],
        registry: &ToolRegistry,
        route: Option<crate::domain::RouteDecision>,
        usage: TokenUsage,
        cost: Option<f64>,
    ) -> Result<LlmPlan, (LayerFailure, Option<crane_llm::ErrorKind>)> {
        let layer = self.layer_name();
        let invalid = |message: String| Err((failure(&layer, "invalid_plan", message), None));
        let steps = match parse_steps(&response.value) {
            Ok(steps) => steps,
            Err((_, message)) => return invalid(message),
        };
        if let Err(violations) = validate_plan(&steps, registry) {
            return invalid(
                violations
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        if let Some(early) = emitted
            .iter()
            .zip(&steps)
            .find(|(early, step)| early.tool != step.tool || early.input != step.input)
            .map(|(early, _)| early)
            .or_else(|| emitted.get(steps.len()))
        {
            return invalid(format!(
                "the complete answer does not begin with the steps read from the stream \
                 (step {} differs)",
                early.step_number
            ));
        }
        Ok(self.finish(steps, response, route, usage, cost, false))
    }

    /// The record of this layer's plans, before the call's outcome is known.
    fn info(&self, model: &str) -> PlannerInfo {
        let mut info =
            PlannerInfo::simple(&self.layer_name(), &self.template.version, PlanSource::Llm);
        info.provider = Some(self.provider.name().to_owned());
        info.model = Some(model.to_owned());
        info.prompt = Some(self.template.reference());
        info
    }

    fn finish(
        &self,
        steps: Vec<PlanStep>,
        response: &ChatResponse,
        route: Option<crate::domain::RouteDecision>,
        usage: TokenUsage,
        cost: Option<f64>,
        repaired: bool,
    ) -> LlmPlan {
        let mut info = self.info(&response.model);
        info.mode = Some(response.mode.as_str().to_owned());
        info.route = route;
        info.usage = Some(usage);
        info.cost_usd = cost;
        info.repaired = repaired;
        LlmPlan { steps, info }
    }
}
