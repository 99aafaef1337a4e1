//! The arguments of `crane prompts` (the command is `commands::prompts`).

use clap::{Args, Subcommand};

use super::Common;

/// Options of `crane prompts`.
#[derive(Debug, Args)]
pub struct PromptsArgs {
    #[command(subcommand)]
    pub command: PromptsCommand,
}

/// Subcommands of `crane prompts`.
#[derive(Debug, Subcommand)]
pub enum PromptsCommand {
    /// List variants, prompt templates and aliases.
    List {
        #[command(flatten)]
        common: Common,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a variant or alias, or a template NAME@VERSION with its text.
    Show {
        #[command(flatten)]
        common: Common,
        /// Variant, alias, or NAME@VERSION of a template.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Diff two templates (NAME@VERSION) or two variants.
    Diff {
        #[command(flatten)]
        common: Common,
        a: String,
        b: String,
    },
    /// Point an alias (default `production`) at a variant.
    Promote {
        #[command(flatten)]
        common: Common,
        /// The variant.
        variant: String,
        #[arg(long, default_value = "production")]
        alias: String,
        /// Why (kept in the history).
        #[arg(long)]
        note: Option<String>,
        /// Move it through this server's API (e.g. http://127.0.0.1:8000) instead of the
        /// data dir's store.
        #[arg(long, env = "CRANE_URL")]
        url: Option<String>,
    },
    /// Move an alias (default `production`) back to its previous variant.
    Rollback {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "production")]
        alias: String,
        #[arg(long)]
        note: Option<String>,
        #[arg(long, env = "CRANE_URL")]
        url: Option<String>,
    },
    /// Every move of an alias (all aliases without --alias).
    History {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        alias: Option<String>,
        #[arg(long)]
        json: bool,
    },
}
