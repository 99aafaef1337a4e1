//! Experiment tracking: crane's results in MLflow.
//!
//! - `eval_export`: every `crane eval` becomes one MLflow run per planner variant (params,
//!   metrics, tags, the JSON report and Markdown summary as artifacts), when
//!   `MLFLOW_TRACKING_URI` is set.
//! - `run_export`: opt-in (`CRANE_MLFLOW_LOG_RUNS=true` / `[tracking] log_runs = true`), every
//!   agent run `crane serve` finishes becomes an MLflow run, exported in batches by a background
//!   task behind a bounded queue. The run's worker only does a `try_send`.
//! - `experiment_export`: every A/B experiment that ends (stopped, promoted) and every rollback
//!   guard decision becomes an MLflow run (params, per-arm metrics, the analysis as an artifact).
//! - `mlflow`: the REST client they use.
//!
//! MLflow being down never fails or slows a run or an eval's verdict. The settings
//! (`[tracking]`, `MLFLOW_*`, `CRANE_MLFLOW_*`) are resolved by `crane_settings::tracking`.
//! Depends on the core runtime, the settings and the eval report types; never on the server
//! or the CLI. docs/tracking.md is the user guide.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod eval_export;
pub mod experiment_export;
pub mod mlflow;
pub mod run_export;

pub use crane_settings::tracking::{
    Auth, DEFAULT_EVAL_EXPERIMENT, DEFAULT_RUNS_EXPERIMENT, Endpoint, TrackingSettings, redact_uri,
};
