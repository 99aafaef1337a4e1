//! Plain data types of crane: plans, runs, step records, references between steps.
//! Nothing in here does I/O; every type serialises to the JSON contract in DESIGN.md.

pub mod output;
mod plan;
pub mod reference;
mod run;
mod time;

pub use plan::{
    LayerFailure, Plan, PlanSource, PlanStep, PlannerInfo, PromptRef, RouteDecision, TokenUsage,
    VariantRef,
};
pub use run::{
    AttemptRecord, ExperimentArm, Feedback, PlanFailure, Run, RunStatus, StepRecord, StepStatus,
};
pub use time::{Timestamp, now};
