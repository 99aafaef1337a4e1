//! The commands of the binary, one module each (`serve`, `run` and `plan`, `eval`, `prompts`),
//! and what several of them share: logging setup and opening the store and the runtime.

pub mod eval;
pub mod prompts;
pub mod run;
pub mod serve;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
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
    let (planners, library) = settings.planners(Arc::new(settings.tool_registry()))?;
    let runtime = Runtime::with_planners(store, Arc::new(planners), settings.runtime.clone());
    let new = runtime.load_registry(&library).await?;
    for what in new {
        tracing::info!(registered = %what, "registered a new version");
    }
    Ok((runtime, Arc::new(library)))
}
