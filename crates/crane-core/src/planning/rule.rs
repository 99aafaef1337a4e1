//! Adapter from the pure rule planner (crate crane-rules) to plan steps.

use super::{PlanError, number_steps};
use crate::domain::PlanStep;

/// Plans with the rule planner. A leading byte-order mark (text pasted from some editors) is
/// not part of the task.
pub fn plan(prompt: &str) -> Result<Vec<PlanStep>, PlanError> {
    let prompt = prompt.trim_start_matches('\u{FEFF}');
    let steps =
        crane_rules::plan(prompt).map_err(|r| PlanError::Rejected { message: r.message })?;
    Ok(number_steps(
        steps.into_iter().map(|s| (s.tool, s.input, s.reasoning)),
    ))
}
