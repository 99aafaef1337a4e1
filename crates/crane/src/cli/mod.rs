//! Command-line interface definitions (clap). Every flag has a `CRANE_*` variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod analyze;
pub mod eval;
pub mod experiments;
pub mod keys;
pub mod prompts;

/// crane: an observable AI agent runtime in one binary.
#[derive(Debug, Parser)]
#[command(name = "crane", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Data directory (embedded SQLite lives there).
    #[arg(long, global = true, env = "CRANE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL database shared by every replica (postgres://user[:password]@host/db);
    /// without it, the embedded SQLite in the data dir.
    #[arg(
        long,
        global = true,
        env = "CRANE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Path of crane.toml (default: ./crane.toml when present).
    #[arg(long, global = true, env = "CRANE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (serve).
    #[arg(long, global = true, env = "CRANE_ADDR")]
    pub addr: Option<String>,
    /// Log format: text or json.
    #[arg(long, global = true, env = "CRANE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Longest prompt accepted, in characters (default 8000).
    #[arg(long, global = true, env = "CRANE_MAX_PROMPT_CHARS")]
    pub max_prompt_chars: Option<usize>,
    /// Runs executing at once (default 256).
    #[arg(long, global = true, env = "CRANE_WORKERS")]
    pub workers: Option<usize>,
    /// Timeout of one step attempt in milliseconds (default 10000).
    #[arg(long, global = true, env = "CRANE_STEP_TIMEOUT_MS")]
    pub step_timeout_ms: Option<u64>,
    /// Planner strategy: rule, llm_first or rule_first (default: llm_first when an LLM is
    /// configured, else rule).
    #[arg(long, global = true, env = "CRANE_PLANNER_STRATEGY")]
    pub planner_strategy: Option<String>,
    /// Register the fault-injection tools (debug_sleep, debug_flaky, debug_fail).
    #[arg(long, global = true, env = "CRANE_DEBUG_TOOLS", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub debug_tools: Option<bool>,
    /// Attempts per step for retryable failures (default 3).
    #[arg(long, global = true, env = "CRANE_RETRY_MAX_ATTEMPTS")]
    pub retry_max_attempts: Option<u32>,
}

impl Common {
    /// The settings these flags (and their `CRANE_*` variables) override.
    pub fn overrides(&self) -> crane_settings::Overrides {
        crane_settings::Overrides {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            config: self.config.clone(),
            addr: self.addr.clone(),
            log_format: self.log_format.clone(),
            max_prompt_chars: self.max_prompt_chars,
            workers: self.workers,
            step_timeout_ms: self.step_timeout_ms,
            planner_strategy: self.planner_strategy.clone(),
            debug_tools: self.debug_tools,
            retry_max_attempts: self.retry_max_attempts,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the HTTP server.
    Serve {
        #[command(flatten)]
        common: Common,
    },
    /// Plan and execute a prompt in-process; exit 0 when the run completed, 1 when it failed.
    Run {
        #[command(flatten)]
        common: Common,
        /// Print the final run as JSON.
        #[arg(long)]
        json: bool,
        /// Planner variant or alias (default: the `production` alias, else the default).
        #[arg(long, value_name = "NAME", env = "CRANE_PLANNER")]
        planner: Option<String>,
        /// The task in plain language.
        prompt: String,
    },
    /// Print the validated plan for a prompt without executing it.
    Plan {
        #[command(flatten)]
        common: Common,
        /// Planner variant or alias (default: the `production` alias, else the default).
        #[arg(long, value_name = "NAME", env = "CRANE_PLANNER")]
        planner: Option<String>,
        /// The task in plain language.
        prompt: String,
    },
    /// Planner variants, prompt templates and aliases: list, show, diff, promote, rollback.
    Prompts(prompts::PromptsArgs),
    /// API keys on the data dir: create (printed once), list, revoke.
    Keys(keys::KeysArgs),
    /// A/B experiments between planners, through a running server's API: list, show,
    /// create, stop, promote.
    Experiments(experiments::ExperimentsArgs),
    /// List tools with their JSON input schemas.
    Tools {
        #[command(flatten)]
        common: Common,
    },
    /// Benchmark: start a server, drive POST /runs?wait=true at a concurrency, print figures.
    Bench(crate::bench::BenchArgs),
    /// Benchmark the LLM planning path's overhead against a local mock upstream.
    BenchPlanning(crate::bench::planning::BenchPlanningArgs),
    /// The semantic plan cache with the real model: the paraphrase dataset per threshold
    /// (hits, wrong plans), embedding latency, index lookup at scale, memory per entry.
    BenchCache(crate::bench::cache::BenchCacheArgs),
    /// Evaluate planners on a JSONL golden dataset; exit 1 when a gate is violated.
    /// `crane eval compare BASE.json NEW.json` lists regressions between two reports.
    Eval(Box<eval::EvalArgs>),
    /// Analyses of stored runs: `crane analyze failures` groups failed runs by error category
    /// and similar prompts and writes them as regression cases.
    Analyze(analyze::AnalyzeArgs),
}
