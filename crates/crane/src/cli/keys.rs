//! The arguments of `crane keys` (the command is `commands::keys`).

use clap::{Args, Subcommand};

use super::Common;

/// Options of `crane keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// Subcommands of `crane keys`: they work directly on the data dir.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once (only its hash is stored).
    Create {
        #[command(flatten)]
        common: Common,
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        /// admin, operator or viewer.
        #[arg(long)]
        role: String,
        /// A name to recognise the key by.
        #[arg(long)]
        name: Option<String>,
        /// Print {"key_id", "key", "tenant", "role"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the keys themselves): id, tenant, role, name, created, revoked.
    List {
        #[command(flatten)]
        common: Common,
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: it stops working within a second.
    Revoke {
        #[command(flatten)]
        common: Common,
        /// The key's id (`crane keys list`).
        key_id: String,
    },
}
