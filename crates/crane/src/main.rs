//! The `crane` binary: CLI entry point. Parses arguments, loads settings, and dispatches to
//! the server, the in-process run/plan commands, the tool listing and the benchmark. This is
//! the only place (with the benchmark) that uses `anyhow`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod bench;
mod bench_planning;
mod cli;
mod config;
mod eval;
mod metrics_help;
mod planner_config;
mod prompts_cli;
mod server;
mod telemetry;
mod trace_export;
mod tracking;
mod variants_config;

/// mimalloc: the run path allocates many short-lived buffers (JSON, SQL parameters); measured
/// in docs/benchmarks.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use crane_core::domain::{Run, RunStatus};
use crane_core::runtime::{NewRun, Runtime, RuntimeError};
use crane_core::store::Store;
use crane_core::tools::builtin_registry;

use cli::{Cli, Command, Common};
use config::Settings;

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
    telemetry::shutdown();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Exit code for bad usage (matches clap's own).
const USAGE: u8 = 2;

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { common } => serve(common).await,
        Command::Run {
            common,
            json,
            planner,
            prompt,
        } => run(common, json, planner, prompt).await,
        Command::Plan {
            common,
            planner,
            prompt,
        } => plan(common, planner, prompt).await,
        Command::Prompts(args) => prompts_cli::run(args).await,
        Command::Tools { common } => {
            let settings = Settings::load(&common)?;
            let specs = registry(&settings).specs();
            println!("{}", serde_json::to_string_pretty(&specs)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => bench::run(args).await,
        Command::BenchPlanning(args) => bench_planning::run(args).await,
        Command::Eval(args) => eval::run(*args).await,
    }
}

fn init_logging(settings: &Settings, default_level: &str) {
    telemetry::init(settings.json_logs, default_level);
}

fn registry(settings: &Settings) -> crane_core::tools::ToolRegistry {
    if settings.debug_tools {
        crane_core::tools::registry_with_debug_tools()
    } else {
        builtin_registry()
    }
}

fn open_store(settings: &Settings) -> anyhow::Result<Arc<Store>> {
    Store::open(&settings.data_dir, &settings.store).with_context(|| {
        format!(
            "could not open the store in {}",
            settings.data_dir.display()
        )
    })
}

/// The store, the planner variants and the prompt templates, with every template and variant
/// version registered (a changed released version is refused) and the aliases loaded.
async fn open_runtime(
    settings: &Settings,
) -> anyhow::Result<(
    Runtime,
    Arc<crane_core::planning::prompt_library::PromptLibrary>,
)> {
    let store = open_store(settings)?;
    let (planners, library) = variants_config::build(settings, Arc::new(registry(settings)))?;
    let runtime = Runtime::with_planners(store, Arc::new(planners), settings.runtime.clone());
    let new = runtime.load_registry(&library).await?;
    for what in new {
        tracing::info!(registered = %what, "registered a new version");
    }
    Ok((runtime, Arc::new(library)))
}

async fn serve(common: Common) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&common)?;
    init_logging(&settings, "info");
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ])
        .context("invalid histogram buckets")?
        .install_recorder()
        .context("could not install the metrics recorder")?;
    metrics_help::describe();
    // The exporter buffers raw histogram samples until upkeep folds them into buckets; without
    // this task they pile up between scrapes (RSS grew ~100 bytes per run when unscraped).
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    metrics::gauge!("crane_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let (runtime, prompts) = open_runtime(&settings).await?;
    runtime.spawn_alias_refresh(settings.registry.alias_refresh());
    // Before recovery, so runs resumed after a restart are exported too.
    let exporter = tracking::run_export::RunExporter::start(&settings.tracking);
    if let Some(exporter) = &exporter {
        runtime.set_observer(exporter.observer());
    }
    let recovered = runtime.recover().await?;
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("could not listen on {}", settings.addr))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, data_dir = %settings.data_dir.display(), recovered, "crane listening");
    // Tests and scripts read the bound address (useful with --addr 127.0.0.1:0) from stdout.
    println!("crane listening on http://{local}");
    let state = server::AppState {
        runtime,
        metrics: Some(Arc::new(metrics)),
        wait_timeout: settings.wait_timeout,
        prompts,
    };
    server::serve(
        listener,
        state,
        settings.max_body_bytes,
        settings.drain_timeout,
    )
    .await?;
    // After the drain: the runs it finished are queued too.
    if let Some(exporter) = exporter {
        exporter.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}

fn usage_error(e: &RuntimeError) -> Option<ExitCode> {
    match e {
        RuntimeError::EmptyPrompt
        | RuntimeError::PromptTooLong { .. }
        | RuntimeError::InvalidPlan(crane_core::planning::PlanError::UnknownPlanner { .. }) => {
            eprintln!("error: {e}");
            Some(ExitCode::from(USAGE))
        }
        _ => None,
    }
}

async fn run(
    common: Common,
    json: bool,
    planner: Option<String>,
    prompt: String,
) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&common)?;
    init_logging(&settings, "warn");
    let (runtime, _) = open_runtime(&settings).await?;
    let submitted = match runtime
        .submit(
            NewRun {
                prompt,
                planner,
                ..NewRun::default()
            },
            true,
        )
        .await
    {
        Ok(s) => s,
        Err(e) => return usage_error(&e).ok_or_else(|| e.into()),
    };
    let run = match submitted.finished {
        Some(rx) => rx.await.context("the run was dropped before it finished")?,
        None => submitted.run,
    };
    runtime.drain(settings.drain_timeout).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print_run(&run);
    }
    Ok(if run.status == RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_run(run: &Run) {
    let source = run
        .plan
        .as_ref()
        .map(|p| {
            format!(
                ", planned by {} {} ({})",
                p.planner.name,
                p.planner.version,
                p.planner.source.as_str()
            )
        })
        .unwrap_or_default();
    println!("run {} {}{source}", run.run_id, run.status.as_str());
    for step in &run.execution_log {
        let outcome = match (&step.output, &step.error) {
            (_, Some(e)) => format!("error: {e}"),
            (Some(o), None) => o.to_string(),
            (None, None) => String::new(),
        };
        println!(
            "  {}. {} {} -> {} {outcome}",
            step.step_number,
            step.tool,
            step.input,
            format!("{:?}", step.status).to_lowercase()
        );
    }
    if let Some(result) = &run.result {
        println!("result: {result}");
    }
    if let Some(error) = &run.error {
        println!("error: {error}");
    }
}

async fn plan(common: Common, planner: Option<String>, prompt: String) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&common)?;
    init_logging(&settings, "warn");
    let (runtime, _) = open_runtime(&settings).await?;
    let planners = runtime.planners();
    if let Err(e) = planners.resolve(planner.as_deref()) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(USAGE));
    }
    let check = crane_core::runtime::check_prompt(&prompt, settings.runtime.max_prompt_chars);
    if let Err(e) = check {
        return usage_error(&e).ok_or_else(|| e.into());
    }
    match planners.plan(planner.as_deref(), &prompt, None).await {
        Ok(plan) => {
            println!("{}", serde_json::to_string_pretty(&plan)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
