//! crane-core: the layers below the HTTP server and the CLI.
//!
//! Data flows one way: `runtime` drives `planning` and `tools`, and everything durable goes
//! through `store`. `domain` holds the plain types shared by all of them and does no I/O.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod analysis;
pub mod budgets;
pub mod domain;
pub mod experiments;
pub mod planning;
pub mod runtime;
pub mod store;
pub mod telemetry;
pub mod tools;

pub use domain::{Plan, PlanStep, PlannerInfo, Run, RunStatus, StepRecord};
