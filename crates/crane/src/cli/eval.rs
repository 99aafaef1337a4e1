//! The arguments of `crane eval` (the command is `commands::eval`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use crane_eval::dataset::ArgMatch;
use crane_eval::gates;

use super::Common;

/// Options of `crane eval`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: Option<EvalCommand>,
    #[command(flatten)]
    pub common: Common,
    /// JSONL dataset to run (format: docs/eval.md).
    #[arg(long, required = true, env = "CRANE_EVAL_DATASET")]
    pub dataset: Option<PathBuf>,
    /// Planner variant to evaluate; repeat the flag to compare several side by side.
    #[arg(
        long = "planner",
        value_name = "NAME",
        default_value = "rule",
        env = "CRANE_EVAL_PLANNER",
        value_delimiter = ','
    )]
    pub planners: Vec<String>,
    /// Run every case N times (pass rate per case shows nondeterminism).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000), env = "CRANE_EVAL_REPEAT")]
    pub repeat: u32,
    /// Trials running at once (default: the number of CPUs, at least 4).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096), env = "CRANE_EVAL_CONCURRENCY")]
    pub concurrency: Option<u32>,
    /// Run against a live server (POST /runs?wait=true) instead of in process. The server has
    /// one store: setup_todos are isolated only in process.
    #[arg(long, env = "CRANE_EVAL_URL")]
    pub url: Option<String>,
    /// Only cases with this tag (repeatable: any of them).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Compare tool inputs exactly or normalized, overriding each case's `expect.args`.
    #[arg(long, value_enum, env = "CRANE_EVAL_ARG_MATCH")]
    pub arg_match: Option<ArgMatch>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE", env = "CRANE_EVAL_REPORT")]
    pub report: Option<PathBuf>,
    /// Write the Markdown summary here (default: next to --report, with .md).
    #[arg(long, value_name = "FILE", env = "CRANE_EVAL_MARKDOWN")]
    pub markdown: Option<PathBuf>,
    /// Gate: exit 1 when a planner's success rate (passed runs / runs) is below X.
    #[arg(long, value_name = "X", value_parser = gates::parse_rate, env = "CRANE_EVAL_MIN_SUCCESS_RATE")]
    pub min_success_rate: Option<f64>,
    /// Gate: exit 1 when a planner's p95 latency is above N ms.
    #[arg(long, value_name = "N", value_parser = gates::parse_non_negative, env = "CRANE_EVAL_MAX_P95_MS")]
    pub max_p95_ms: Option<f64>,
    /// Gate: exit 1 when a planner's total planning cost is above X USD.
    #[arg(long, value_name = "X", value_parser = gates::parse_non_negative, env = "CRANE_EVAL_MAX_COST_USD")]
    pub max_cost_usd: Option<f64>,
    /// Gate: exit 1 when any case passes less than X of its runs (with --repeat).
    #[arg(long, value_name = "X", value_parser = gates::parse_rate, env = "CRANE_EVAL_MIN_CASE_PASS_RATE")]
    pub min_case_pass_rate: Option<f64>,
    /// Do not store the result in the data dir's evals table.
    #[arg(long, env = "CRANE_EVAL_NO_STORE", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub no_store: Option<bool>,
}

/// Subcommands of `crane eval`.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// List regressions of NEW against BASE (two --report files); exit 1 on any.
    Compare {
        /// The baseline report.
        base: PathBuf,
        /// The report to check.
        new: PathBuf,
    },
}
