//! The arguments of `crane experiments` (the command is `commands::experiments`): the HTTP
//! API's experiment endpoints from the command line, against a running server.

use clap::{Args, Subcommand};

/// Options of `crane experiments`.
#[derive(Debug, Args)]
pub struct ExperimentsArgs {
    #[command(subcommand)]
    pub command: ExperimentsCommand,
}

/// Which server, and the key to call it with.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The server's base URL.
    #[arg(long, env = "CRANE_URL", default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// An API key (admin to create, stop or promote; viewer to read) when auth is on.
    #[arg(long, env = "CRANE_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

/// Subcommands of `crane experiments`.
#[derive(Debug, Subcommand)]
pub enum ExperimentsCommand {
    /// The tenant's experiments, newest first.
    List {
        #[command(flatten)]
        target: Target,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// One experiment: each arm's outcomes and the analysis.
    Show {
        #[command(flatten)]
        target: Target,
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Start an experiment: `--arm PLANNER[=WEIGHT]` twice or more (the first is the control).
    Create {
        #[command(flatten)]
        target: Target,
        name: String,
        #[arg(long = "arm", required = true)]
        arms: Vec<String>,
        #[arg(long)]
        alpha: Option<f64>,
        /// Smallest difference in success rate worth acting on (default 0.05).
        #[arg(long)]
        min_effect: Option<f64>,
    },
    /// Stop a running experiment.
    Stop {
        #[command(flatten)]
        target: Target,
        name: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Move `production` to the experiment's winner and stop it (fails without a winner).
    Promote {
        #[command(flatten)]
        target: Target,
        name: String,
        /// Do not watch the winner in production (no automatic rollback).
        #[arg(long)]
        no_guard: bool,
        /// Production runs the guard needs before it may roll back (default 50).
        #[arg(long, value_name = "N")]
        guard_min_runs: Option<u64>,
        /// How long the guard watches, in hours (default 24).
        #[arg(long, value_name = "H")]
        guard_hours: Option<f64>,
    },
}
