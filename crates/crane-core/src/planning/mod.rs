//! Planning: turn a prompt into a validated [`Plan`].
//!
//! Today the chain is the deterministic rule planner; every plan, whoever produced it, goes
//! through [`validate::validate_plan`] before anything runs.

mod rule;
pub mod validate;

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::domain::{Plan, PlanSource, PlanStep, PlannerInfo};
use crate::tools::ToolRegistry;
pub use validate::{PlanViolation, validate_plan};

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
pub enum PlanError {
    /// The planner did not understand (part of) the prompt.
    #[error("{message}")]
    Rejected { message: String },
    /// The plan failed validation.
    #[error("the plan is invalid: {}", violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid { violations: Vec<PlanViolation> },
}

/// Plans prompts with the configured planner chain.
pub struct Planning {
    registry: Arc<ToolRegistry>,
}

impl Planning {
    pub fn new(registry: Arc<ToolRegistry>) -> Self {
        Self { registry }
    }

    /// The registry plans are validated against.
    pub fn registry(&self) -> &Arc<ToolRegistry> {
        &self.registry
    }

    /// Plans `prompt` and validates the result.
    pub async fn plan(&self, prompt: &str) -> Result<Plan, PlanError> {
        let started = Instant::now();
        let steps = rule::plan(prompt)?;
        let plan = Plan {
            plan_id: uuid::Uuid::now_v7().to_string(),
            planner: PlannerInfo {
                name: crane_rules::PLANNER_NAME.to_owned(),
                version: crane_rules::PLANNER_VERSION.to_owned(),
                source: PlanSource::Rule,
                latency_us: 0,
            },
            steps,
        };
        validate_plan(&plan.steps, &self.registry)
            .map_err(|violations| PlanError::Invalid { violations })?;
        let mut plan = plan;
        plan.planner.latency_us = started.elapsed().as_micros() as u64;
        Ok(plan)
    }
}

impl Planning {
    /// Validates a plan supplied by the caller.
    pub fn client_plan(&self, steps: Vec<(String, serde_json::Value, String)>) -> Result<Plan, PlanError> {
        let steps = number_steps(steps);
        validate_plan(&steps, &self.registry).map_err(|violations| PlanError::Invalid { violations })?;
        Ok(Plan {
            plan_id: uuid::Uuid::now_v7().to_string(),
            planner: PlannerInfo {
                name: "client".to_owned(),
                version: "1".to_owned(),
                source: PlanSource::Client,
                latency_us: 0,
            },
            steps,
        })
    }
}

/// Numbers raw planner steps from 1.
pub(crate) fn number_steps(raw: impl IntoIterator<Item = (String, serde_json::Value, String)>) -> Vec<PlanStep> {
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
