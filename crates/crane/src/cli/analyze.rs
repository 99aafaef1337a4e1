//! The arguments of `crane analyze` (the command is `commands::analyze`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Common;

/// Options of `crane analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(subcommand)]
    pub command: AnalyzeCommand,
}

/// Subcommands of `crane analyze`: they read the data dir (or database) directly.
#[derive(Debug, Subcommand)]
pub enum AnalyzeCommand {
    /// Group a tenant's failed runs by error category and similar prompts; optionally write
    /// them as a JSONL eval dataset of regression cases (`--out`).
    Failures(FailuresArgs),
}

/// Options of `crane analyze failures`.
#[derive(Debug, Args)]
pub struct FailuresArgs {
    #[command(flatten)]
    pub common: Common,
    /// The tenant whose failed runs are analysed.
    #[arg(long, default_value = crane_core::access::DEFAULT_TENANT)]
    pub tenant: String,
    /// Failed runs examined, newest first (1-10000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Least cosine similarity of two prompts in one group (with --model-dir).
    #[arg(long, default_value_t = crane_core::analysis::DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// Write one eval case per group (JSONL, the format `crane eval --dataset` reads).
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: Option<PathBuf>,
    /// A sentence-transformers folder (config.json, tokenizer.json, model.safetensors) to
    /// group prompts by embedding similarity; without it, by normalised text.
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// Print the groups as JSON.
    #[arg(long)]
    pub json: bool,
}
