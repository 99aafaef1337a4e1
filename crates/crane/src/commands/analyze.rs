//! `crane analyze failures`: a tenant's failed runs grouped by error category and similar
//! prompts (`crane_core::analysis::failures`), read directly from the data dir or database,
//! printed as a table (or JSON), and optionally written as a JSONL eval dataset.
//!
//! The dataset has one case per group (its representative, newest prompt; the group's members
//! are near-duplicates and listed in the case's `note`), id `failure-<category>-<n>` (`:` in a
//! category becomes `-`), tags `["failure", CATEGORY]` and `expect: {}`: no known-good plan,
//! so the case passes only when a valid plan is made and the run completes — a regression
//! case that fails until the failure is fixed.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use crane_core::access::check_tenant;
use crane_core::analysis::{FailureReport, collect, group};
use crane_core::planning::semantic::cache::Embed;
use crane_eval::dataset::{Case, Expect};
use crane_settings::Settings;
use serde_json::json;

use super::USAGE;
use super::semantic::ModelEmbed;
use crate::cli::analyze::{AnalyzeArgs, AnalyzeCommand, FailuresArgs};

/// Member run ids named in a case's note.
const NOTE_RUN_IDS: usize = 5;

/// Runs `crane analyze`.
pub async fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AnalyzeCommand::Failures(args) => failures(args).await,
    }
}

async fn failures(args: FailuresArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = check_tenant(&args.tenant) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(USAGE));
    }
    if !(args.threshold.is_finite() && (0.0..=1.0).contains(&args.threshold)) {
        eprintln!(
            "error: invalid --threshold {}: use a cosine similarity between 0 and 1",
            args.threshold
        );
        return Ok(ExitCode::from(USAGE));
    }
    let embed: Option<Arc<dyn Embed>> = match &args.model_dir {
        Some(dir) => Some(load_model(dir).await?),
        None => None,
    };
    let settings = Settings::load(&args.common.overrides())?;
    let store = super::open_store(&settings).await?;
    let found = collect(&store, &args.tenant, args.limit as usize).await;
    store.close().await;
    let found = found.context("could not read the failed runs from the store")?;
    let threshold = args.threshold;
    let report = tokio::task::spawn_blocking(move || group(&found, embed.as_deref(), threshold))
        .await
        .context("the failure analysis stopped")?;

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "tenant": args.tenant,
                "runs_examined": report.runs_examined,
                "groups": report.groups,
            }))?
        );
    } else {
        print_table(&args.tenant, &report);
    }
    if let Some(out) = &args.out {
        let cases = cases(&report);
        if cases.is_empty() {
            eprintln!(
                "no failed runs for tenant {}: {} not written (a dataset needs a case)",
                args.tenant,
                out.display()
            );
        } else {
            std::fs::write(out, jsonl(&cases)?)
                .with_context(|| format!("could not write {}", out.display()))?;
            eprintln!(
                "wrote {} regression cases to {} (run them with `crane eval --dataset {}`)",
                cases.len(),
                out.display(),
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads the embedding model in `dir` (on the blocking pool).
async fn load_model(dir: &Path) -> anyhow::Result<Arc<dyn Embed>> {
    let owned = dir.to_owned();
    let model = tokio::task::spawn_blocking(move || crane_embed::Embedder::load(&owned))
        .await
        .context("the embedding model loader stopped")?
        .with_context(|| format!("could not load the embedding model from {}", dir.display()))?;
    Ok(Arc::new(ModelEmbed(model)))
}

fn print_table(tenant: &str, report: &FailureReport) {
    if report.groups.is_empty() {
        println!("no failed runs for tenant {tenant}");
        return;
    }
    println!(
        "{} failed runs of tenant {tenant} in {} groups",
        report.runs_examined,
        report.groups.len()
    );
    println!(
        "{:>5}  {:<28}  {:<9}  representative prompt",
        "size", "category", "method"
    );
    for g in &report.groups {
        println!(
            "{:>5}  {:<28}  {:<9}  {}",
            g.size,
            g.category,
            g.method,
            clip(&g.representative_prompt, 80)
        );
        println!("{:>5}  error: {}", "", clip(&g.sample_error, 100));
    }
}

/// `text` cut to `max` characters (with `…` when cut), on one line.
fn clip(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// One regression case per group, numbered within its category.
fn cases(report: &FailureReport) -> Vec<Case> {
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    report
        .groups
        .iter()
        .map(|g| {
            let n = counts.entry(g.category.as_str()).or_default();
            *n += 1;
            let slug: String = g
                .category
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            let ids: Vec<&str> = g
                .run_ids
                .iter()
                .take(NOTE_RUN_IDS)
                .map(String::as_str)
                .collect();
            Case {
                id: format!("failure-{slug}-{n}"),
                prompt: g.representative_prompt.clone(),
                tags: vec!["failure".into(), g.category.clone()],
                setup_todos: Vec::new(),
                expect: Expect::default(),
                note: Some(format!(
                    "{} failed run(s) like this, e.g. {}; error: {}",
                    g.size,
                    ids.join(", "),
                    clip(&g.sample_error, 200)
                )),
                line: 0,
            }
        })
        .collect()
}

fn jsonl(cases: &[Case]) -> anyhow::Result<String> {
    let mut out = String::new();
    for case in cases {
        out.push_str(&serde_json::to_string(case)?);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crane_core::analysis::FailureGroup;

    fn g(category: &str, size: usize, prompt: &str) -> FailureGroup {
        FailureGroup {
            category: category.into(),
            size,
            representative_prompt: prompt.into(),
            run_ids: (0..size).map(|i| format!("run-{i}")).collect(),
            sample_error: "step 1 (calculator) failed:\ndivision by zero".into(),
            method: "text",
        }
    }

    #[test]
    fn the_dataset_is_one_case_per_group_that_crane_eval_reads() {
        let report = FailureReport {
            groups: vec![
                g("tool_error:calculator", 7, "what is 1/0"),
                g("plan_rejected", 2, "book a flight to Paris"),
                g("tool_error:calculator", 1, "what is 5 mod 0"),
            ],
            runs_examined: 10,
        };
        let text = jsonl(&cases(&report)).unwrap();
        let parsed = crane_eval::dataset::parse(Path::new("f.jsonl"), &text).unwrap();
        let ids: Vec<&str> = parsed.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "failure-tool_error-calculator-1",
                "failure-plan_rejected-1",
                "failure-tool_error-calculator-2"
            ]
        );
        assert_eq!(parsed[0].tags, ["failure", "tool_error:calculator"]);
        assert_eq!(parsed[0].prompt, "what is 1/0");
        assert_eq!(parsed[0].expect, Expect::default());
        let note = parsed[0].note.as_deref().unwrap();
        assert!(note.starts_with("7 failed run(s) like this, e.g. run-0, run-1"));
        assert!(!note.contains('\n') && note.contains("division by zero"));
        // `expect: {}` on each line: the case passes only when the run completes.
        assert!(text.lines().all(|l| l.contains(r#""expect":{}"#)), "{text}");
    }

    #[test]
    fn clip_cuts_on_characters_and_flattens_lines() {
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip("ééééé", 3), "éé…");
    }
}
