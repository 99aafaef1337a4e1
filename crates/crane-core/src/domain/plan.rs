//! A plan: the validated list of tool calls a planner produced for one prompt.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which layer produced a plan. `rule` plans in rule-only mode are reported as `rule`,
/// never as a fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanSource {
    /// The deterministic rule planner, as the configured planner.
    Rule,
    /// An LLM provider.
    Llm,
    /// The plan cache (the same prompt).
    Cache,
    /// The semantic plan cache: a similar prompt's plan, re-bound to this prompt's literals.
    SemanticCache,
    /// The rule planner, after the configured LLM layers failed.
    Fallback,
    /// Supplied by the caller with the request (validated like any other plan).
    Client,
}

impl PlanSource {
    /// The lower-case label used in JSON, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rule => "rule",
            Self::Llm => "llm",
            Self::Cache => "cache",
            Self::SemanticCache => "semantic_cache",
            Self::Fallback => "fallback",
            Self::Client => "client",
        }
    }
}

/// Which planner produced the plan, at which version, by which route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannerInfo {
    /// Planner name, e.g. `rule`.
    pub name: String,
    /// Planner version (semantic version string).
    pub version: String,
    /// Which layer produced the plan.
    pub source: PlanSource,
    /// Planning latency in microseconds.
    #[serde(default)]
    pub latency_us: u64,
    /// LLM provider that produced the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Model that produced the plan (as reported by the provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Structured-output mode the provider answered in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The prompt template used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptRef>,
    /// The model-routing decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteDecision>,
    /// Tokens used by planning (all LLM calls, repair included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// Cost of planning in USD, from the configured pricing table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// True when a repair round fixed the first answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repaired: bool,
    /// Why earlier layers of the chain did not produce the plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<LayerFailure>,
    /// The planner variant the run asked for (directly or through an alias), at its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<VariantRef>,
    /// True when the plan holds only the steps that ran while a streamed plan was still being
    /// generated: the run is still planning, or planning failed after those steps (the run
    /// failed), or crane stopped meanwhile. Never set on a plan that validated as a whole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// Which registered planner variant planned a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantRef {
    pub name: String,
    pub version: String,
    /// The alias the variant was reached through (e.g. `production`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// `name@version` of the fallback variant that made the plan after this one failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

impl PlannerInfo {
    /// Info for a planner that is not an LLM.
    pub fn simple(name: &str, version: &str, source: PlanSource) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            source,
            latency_us: 0,
            provider: None,
            model: None,
            mode: None,
            prompt: None,
            route: None,
            usage: None,
            cost_usd: None,
            repaired: false,
            attempts: Vec::new(),
            variant: None,
            partial: false,
        }
    }
}

/// A versioned prompt template, identified by name, version and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptRef {
    pub name: String,
    pub version: String,
    /// sha256 of the template text, hex.
    pub hash: String,
}

/// Which model tier planned a prompt, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteDecision {
    pub tier: String,
    pub model: String,
    pub complexity: u32,
    pub reason: String,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl std::ops::Add for TokenUsage {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
        }
    }
}

/// One layer of the planner chain that did not produce the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerFailure {
    /// e.g. `cache`, `llm:primary`, `rule`.
    pub layer: String,
    /// Error category (`miss`, `timeout`, `rate_limit`, `invalid_output`, `rejected`, ...).
    pub category: String,
    pub message: String,
}

/// One tool call in a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    /// 1-based position in the plan.
    pub step_number: u32,
    /// Tool name, as listed by `crane tools`.
    pub tool: String,
    /// Tool input; strings may hold `${steps.N.path}` references to earlier outputs.
    pub input: Value,
    /// Why the planner chose this step.
    #[serde(default)]
    pub reasoning: String,
}

/// A validated plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Unique id of this plan.
    pub plan_id: String,
    /// Who planned it.
    pub planner: PlannerInfo,
    /// Steps in execution order, numbered from 1.
    pub steps: Vec<PlanStep>,
}
