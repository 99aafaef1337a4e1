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
    /// The plan cache.
    Cache,
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
