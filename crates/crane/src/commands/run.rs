//! `crane run` (plan and execute one prompt in process, print the run) and `crane plan` (print
//! the validated plan without executing it).

use std::process::ExitCode;

use anyhow::Context;
use crane_core::domain::{Run, RunStatus};
use crane_core::runtime::{NewRun, RuntimeError};
use crane_settings::Settings;

use super::USAGE;
use crate::cli::Common;

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

pub async fn run(
    common: Common,
    json: bool,
    planner: Option<String>,
    prompt: String,
) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&common.overrides())?;
    super::init_logging(&settings, "warn");
    let (runtime, _) = super::open_runtime(&settings).await?;
    let alerts = super::start_alerts(&runtime, &settings)?;
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
    if let Some(alerts) = alerts {
        alerts.shutdown(super::ALERTS_FLUSH).await;
    }
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

pub async fn plan(
    common: Common,
    planner: Option<String>,
    prompt: String,
) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&common.overrides())?;
    super::init_logging(&settings, "warn");
    let (runtime, _) = super::open_runtime(&settings).await?;
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
