//! The commands of the binary, one module each (`serve`, `run` and `plan`, `eval`, `prompts`),
//! and what several of them share: logging setup and opening the store and the runtime.

pub mod analyze;
pub mod eval;
pub mod experiments;
pub mod keys;
pub mod prompts;
pub mod run;
pub mod semantic;
pub mod serve;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use crane_core::budgets::Budgets;
use crane_core::runtime::Runtime;
use crane_core::store::Store;
use crane_settings::Settings;

use crate::cli::Common;

/// Exit code for bad usage (matches clap's own).
pub const USAGE: u8 = 2;

fn init_logging(settings: &Settings, default_level: &str) {
    crane_telemetry::init(settings.json_logs, default_level);
}

/// `crane tools`: every tool with its JSON input schema.
pub fn tools(common: Common) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&common.overrides())?;
    let specs = settings.tool_registry().specs();
    println!("{}", serde_json::to_string_pretty(&specs)?);
    Ok(ExitCode::SUCCESS)
}

/// The store the settings name: PostgreSQL (`--database-url`) or SQLite in the data dir.
async fn open_store(settings: &Settings) -> anyhow::Result<Arc<Store>> {
    let store = Store::connect(&settings.data_dir, &settings.store).await;
    match &settings.store.database_url {
        Some(url) => store.with_context(|| {
            format!(
                "could not open the PostgreSQL store at {}",
                crane_core::store::postgres::redact_url(url)
            )
        }),
        None => store.with_context(|| {
            format!(
                "could not open the store in {}",
                settings.data_dir.display()
            )
        }),
    }
}

/// The store, the planner variants and the prompt templates, with every template and variant
/// version registered (a changed released version is refused), the aliases loaded, and the
/// spend budgets (`[[budgets]]`) enforced.
async fn open_runtime(
    settings: &Settings,
) -> anyhow::Result<(
    Runtime,
    Arc<crane_core::planning::prompt_library::PromptLibrary>,
)> {
    let store = open_store(settings).await?;
    let (planners, library) = settings.planners(Arc::new(settings.tool_registry()))?;
    let runtime =
        Runtime::with_planners(store.clone(), Arc::new(planners), settings.runtime.clone());
    if !settings.access.budgets.is_empty() {
        let budgets = Budgets::load(store, settings.access.budgets.clone())
            .await
            .context("could not load the spend budgets' spend from the store")?;
        runtime.set_budgets(budgets);
    }
    let new = runtime.load_registry(&library).await?;
    for what in new {
        tracing::info!(registered = %what, "registered a new version");
    }
    Ok((runtime, Arc::new(library)))
}

/// With `[alerts] webhook_url` and budgets, sends their threshold alerts to the webhook (from a
/// background task); shut it down before exiting so queued alerts go out.
fn start_alerts(
    runtime: &Runtime,
    settings: &Settings,
) -> anyhow::Result<Option<Arc<crane_server::alerts::Webhook>>> {
    let (Some(budgets), Some(url)) = (runtime.budgets(), &settings.access.webhook_url) else {
        return Ok(None);
    };
    let webhook =
        crane_server::alerts::Webhook::start(crane_server::alerts::WebhookConfig::new(url))?;
    budgets.set_sink(webhook.clone());
    Ok(Some(webhook))
}

/// How long queued budget alerts may take to send at exit.
const ALERTS_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);
