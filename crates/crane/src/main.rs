//! The `crane` binary: parses the command line ([`cli`]) and dispatches to a command
//! ([`commands`], [`bench`]). The only crate that uses `anyhow`: errors of the library crates
//! are typed, and turned into a message and an exit code here.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod bench;
mod cli;
mod commands;

/// mimalloc: the run path allocates many short-lived buffers (JSON, SQL parameters); measured
/// in docs/benchmarks.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(dispatch(cli.command));
    crane_telemetry::shutdown();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { common } => commands::serve::serve(common).await,
        Command::Run {
            common,
            json,
            planner,
            prompt,
        } => commands::run::run(common, json, planner, prompt).await,
        Command::Plan {
            common,
            planner,
            prompt,
        } => commands::run::plan(common, planner, prompt).await,
        Command::Prompts(args) => commands::prompts::run(args).await,
        Command::Keys(args) => commands::keys::run(args).await,
        Command::Experiments(args) => commands::experiments::run(args).await,
        Command::Tools { common } => commands::tools(common),
        Command::Bench(args) => bench::run(args).await,
        Command::BenchPlanning(args) => bench::planning::run(args).await,
        Command::BenchCache(args) => bench::cache::run(args).await,
        Command::Eval(args) => commands::eval::run(*args).await,
        Command::Analyze(args) => commands::analyze::run(args).await,
    }
}
