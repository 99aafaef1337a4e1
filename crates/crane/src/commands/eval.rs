//! `crane eval`: runs a JSONL golden dataset through one or more planner variants (in process,
//! or against a live server with `--url`) with the harness of the `crane-eval` crate, prints a
//! summary table, writes a JSON report and a Markdown summary, logs it to MLflow when
//! configured, stores the result in the `evals` table, and exits 1 when a gate is violated (2 on
//! bad usage). `crane eval compare BASE.json NEW.json` lists regressions between two reports.
//! docs/eval.md is the user guide.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use crane_core::store::Store;

use crane_eval::report::{self, CaseReport, DatasetInfo, PlannerReport, Report};
use crane_eval::{compare, dataset, gates, runner, scorers};
use crane_settings::Settings;

use crate::cli::eval::{EvalArgs, EvalCommand};

/// Exit code for bad usage (as clap's).
const USAGE: u8 = 2;

fn usage(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(USAGE))
}

/// Runs `crane eval`.
pub async fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    if let Some(EvalCommand::Compare { base, new }) = &args.command {
        return compare_reports(base, new);
    }
    let settings = Settings::load(&args.common.overrides())?;
    super::init_logging(&settings, "warn");
    let Some(path) = args.dataset.clone() else {
        return usage("--dataset FILE is required");
    };
    let mut cases = match dataset::load(&path) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    if !args.tag.is_empty() {
        cases.retain(|c| c.tags.iter().any(|t| args.tag.contains(t)));
        if cases.is_empty() {
            return usage(format!(
                "no case in {} has any of the tags {:?}",
                path.display(),
                args.tag
            ));
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for name in args.planners.iter().map(|n| n.trim()) {
        if names.contains(&name) {
            return usage(format!("planner '{name}' is given twice"));
        }
        names.push(name);
    }
    let (target, planners) = match &args.url {
        Some(url) => {
            let target = match runner::Target::url(url) {
                Ok(t) => t,
                Err(e) => return usage(e),
            };
            let mut specs = Vec::new();
            for name in &names {
                match remote_planner(&target, name).await {
                    Ok(spec) => specs.push(Arc::new(spec)),
                    Err(e) => return usage(e),
                }
            }
            (target, specs)
        }
        None => {
            let (planners, store) =
                match local_planners(&settings, args.no_store != Some(true)).await {
                    Ok(p) => p,
                    Err(e) => return Err(e),
                };
            let mut specs = Vec::new();
            for name in &names {
                match runner::PlannerSpec::resolve(&planners, name) {
                    Ok(spec) => specs.push(Arc::new(spec)),
                    Err(e) => {
                        if let Some(store) = store {
                            store.close().await;
                        }
                        return usage(e);
                    }
                }
            }
            if let Some(store) = store {
                store.close().await;
            }
            (
                runner::Target::in_process(settings.clone(), Arc::new(planners)),
                specs,
            )
        }
    };
    let in_process = args.url.is_none();
    let repeat = args.repeat as usize;
    let concurrency = args.concurrency.map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(4, |n| n.get())
                .max(4)
        },
        |c| c as usize,
    );
    let gates = gates::Gates {
        min_success_rate: args.min_success_rate,
        max_p95_ms: args.max_p95_ms,
        max_cost_usd: args.max_cost_usd,
        min_case_pass_rate: args.min_case_pass_rate,
    };
    let markdown_path = args
        .markdown
        .clone()
        .or_else(|| args.report.as_ref().map(|r| r.with_extension("md")));

    let cases = Arc::new(cases);
    let target = Arc::new(target);
    let scorers = Arc::new(scorers::Scorers::builtin(args.arg_match));
    let started = Instant::now();
    let progress = runner::Progress::new(cases.len() * repeat * planners.len());
    let mut planner_reports = Vec::new();
    for planner in &planners {
        let t0 = Instant::now();
        let trials = runner::run_planner(
            cases.clone(),
            planner.clone(),
            target.clone(),
            scorers.clone(),
            repeat,
            concurrency,
            progress.clone(),
        )
        .await;
        let wall = t0.elapsed().as_secs_f64() * 1000.0;
        let case_reports: Vec<CaseReport> = cases
            .iter()
            .zip(trials)
            .map(|(case, trials)| CaseReport::new(case, trials))
            .collect();
        let mut planner_report = PlannerReport::new(&planner.name, wall, case_reports);
        planner_report.variant = planner.variant.clone();
        planner_reports.push(planner_report);
    }
    progress.finish();
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;

    let gate_outcome = gates.check(&planner_reports);
    let report = Report {
        report_version: report::REPORT_VERSION,
        eval_id: uuid::Uuid::now_v7().to_string(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        crane_version: env!("CARGO_PKG_VERSION").to_owned(),
        dataset: DatasetInfo {
            path: path.display().to_string(),
            cases: cases.len(),
            tags: args.tag.clone(),
        },
        target: target.label(),
        repeat,
        concurrency,
        arg_match: args.arg_match,
        wall_ms: (wall_ms * 1000.0).round() / 1000.0,
        planners: planner_reports,
        gates: gate_outcome,
    };

    out(&report.table());
    let json = serde_json::to_value(&report).context("could not encode the report")?;
    if let Some(file) = &args.report {
        write(file, &serde_json::to_string_pretty(&json)?)?;
        out(&format!("report: {}\n", file.display()));
    }
    if let Some(file) = &markdown_path {
        write(file, &report.markdown())?;
        out(&format!("markdown: {}\n", file.display()));
    }
    crane_tracking::eval_export::export(&settings.tracking, &report, &json).await;
    if !in_process {
        out("not stored: results of --url evals are stored only by in-process evals\n");
    } else if args.no_store != Some(true) {
        store(&settings, &report, &json).await?;
        out(&format!(
            "stored as eval {} in {}\n",
            report.eval_id,
            settings.data_dir.display()
        ));
    }
    if report.gates.passed {
        if !report.gates.checked.is_empty() {
            out(&format!(
                "gates passed: {}\n",
                report.gates.checked.join(", ")
            ));
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("eval gates violated:");
        for v in &report.gates.violations {
            eprintln!("  - {}", v.message);
        }
        Ok(ExitCode::from(1))
    }
}

/// The variants an in-process eval plans with: built like `crane run` builds them, without
/// a plan cache (every trial must reach its planner, or `--repeat` would measure the cache).
/// With `register`, the data dir's store checks template and variant versions (a changed
/// released version is refused) and supplies the aliases.
async fn local_planners(
    settings: &Settings,
    register: bool,
) -> anyhow::Result<(crane_core::planning::Planners, Option<Arc<Store>>)> {
    let mut settings = settings.clone();
    settings.planner.cache_capacity = Some(0);
    let registry = settings.tool_registry();
    let (planners, library) = settings.planners(Arc::new(registry))?;
    if !register {
        return Ok((planners, None));
    }
    let store = super::open_store(&settings).await?;
    crane_core::runtime::registry::register_versions(&store, &planners, &library).await?;
    planners.set_aliases(store.aliases().await?);
    Ok((planners, Some(store)))
}

/// A planner of the server at `--url`: its identity from `GET /planners/{name}`.
async fn remote_planner(
    target: &runner::Target,
    name: &str,
) -> Result<runner::PlannerSpec, String> {
    let runner::Target::Url { base, client } = target else {
        return Err("not a server target".into());
    };
    let url = format!("{base}/planners/{name}");
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("could not reach {url}: {e}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        return Err(body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{url} answered {status}")));
    }
    let spec: crane_core::planning::VariantSpec = serde_json::from_value(body.clone())
        .map_err(|e| format!("{url} answered a variant crane cannot read: {e}"))?;
    let alias = body["resolved_from"].as_str().map(str::to_owned);
    Ok(runner::PlannerSpec {
        name: name.to_owned(),
        variant: runner::summary(&spec, alias),
        share_stores: true,
    })
}

/// Prints to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("could not write {}", path.display()))
}

/// Stores the eval in the data dir's `evals` table.
async fn store(
    settings: &Settings,
    report: &Report,
    json: &serde_json::Value,
) -> anyhow::Result<()> {
    let store = super::open_store(settings).await?;
    let result = store
        .insert_eval(
            crane_core::access::DEFAULT_TENANT,
            &report.eval_id,
            &report.created_at,
            &report.brief(),
            json,
        )
        .await
        .context("could not store the eval");
    store.close().await;
    result
}

fn compare_reports(base: &Path, new: &Path) -> anyhow::Result<ExitCode> {
    let (b, n) = match (compare::read(base), compare::read(new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    let comparison = compare::compare(&b, &n);
    out(&comparison.render(base, new));
    Ok(if comparison.regressions.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
