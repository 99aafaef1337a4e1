//! `crane bench-cache`: the semantic plan cache's evidence and figures, with the real model.
//!
//! 1. The paraphrase dataset (`data/paraphrases.jsonl`): for every pair, `a`'s plan becomes a
//!    cache entry and `b` is looked up the way `crane serve` does (similarity of the two
//!    embeddings against a threshold, then the literal guard and plan validation). Per
//!    threshold and kind: how many pairs were served, and how many served plans differ from
//!    `plan_b` (wrong plans, which must be 0). The hit rate that matters is on `paraphrase`
//!    pairs (same meaning, same literals).
//! 2. Embedding latency of the dataset's prompts (one at a time, p50/p99).
//! 3. The index at `--entries` entries: lookup p50/p99 (embedding excluded), recall@1,
//!    memory per entry (`planning::semantic::index::bench_index`), plus the mean size of a
//!    stored template.
//!
//! Exit 1 when a wrong plan was served at the threshold `crane serve` uses by default, or when
//! the paraphrase hit rate is under `--min-paraphrase-hit-rate`: the test command runs it as a
//! gate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use crane_core::domain::PlanStep;
use crane_core::planning::semantic::cache::{DEFAULT_THRESHOLD, Embed};
use crane_core::planning::semantic::index::bench_index;
use crane_core::planning::semantic::template::PlanTemplate;
use crane_eval::report::percentile;
use serde::Deserialize;
use serde_json::Value;

use crate::commands::semantic::ModelEmbed;

/// Options of `crane bench-cache`.
#[derive(Debug, Clone, Args)]
pub struct BenchCacheArgs {
    /// The sentence-transformers folder (all-MiniLM-L6-v2; scripts/install-embedding-model.sh).
    #[arg(long, env = "CRANE_EMBED_MODEL_DIR")]
    pub model_dir: PathBuf,
    /// The paraphrase dataset.
    #[arg(long, default_value = "data/paraphrases.jsonl")]
    pub dataset: PathBuf,
    /// Entries in the index benchmark (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    pub entries: usize,
    /// Lookups timed in the index benchmark.
    #[arg(long, default_value_t = 2_000)]
    pub queries: usize,
    /// Fail when fewer paraphrase pairs than this (0..1) are served at the default threshold.
    #[arg(long, default_value_t = 0.0)]
    pub min_paraphrase_hit_rate: f64,
}

#[derive(Debug, Deserialize)]
struct Pair {
    id: String,
    kind: String,
    a: String,
    plan_a: Vec<Step>,
    b: String,
    plan_b: Option<Vec<Step>>,
}

#[derive(Debug, Clone, Deserialize)]
struct Step {
    tool: String,
    input: Value,
}

fn steps(plan: &[Step]) -> Vec<PlanStep> {
    plan.iter()
        .enumerate()
        .map(|(i, s)| PlanStep {
            step_number: i as u32 + 1,
            tool: s.tool.clone(),
            input: s.input.clone(),
            reasoning: String::new(),
        })
        .collect()
}

fn same(served: &[PlanStep], expected: Option<&Vec<Step>>) -> bool {
    let Some(expected) = expected else {
        return false;
    };
    served.len() == expected.len()
        && served
            .iter()
            .zip(expected)
            .all(|(s, e)| s.tool == e.tool && s.input == e.input)
}

/// One pair as the cache would see it.
struct Scored {
    kind: String,
    similarity: f32,
    /// `Some(correct)` when the guard served a plan; `None` when it refused (or `a`'s plan
    /// could not be a template).
    served: Option<bool>,
    id: String,
}

pub async fn run(args: BenchCacheArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.dataset)
        .with_context(|| format!("could not read {}", args.dataset.display()))?;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let pair: Pair = serde_json::from_str(line)
            .with_context(|| format!("{} line {}", args.dataset.display(), n + 1))?;
        pairs.push(pair);
    }
    if pairs.is_empty() {
        bail!("{} holds no pairs", args.dataset.display());
    }
    let started = Instant::now();
    let dir = args.model_dir.clone();
    let model = tokio::task::spawn_blocking(move || crane_embed::Embedder::load(&dir))
        .await?
        .with_context(|| format!("could not load the model in {}", args.model_dir.display()))?;
    let embed = ModelEmbed(model);
    println!(
        "model {} ({} dims) loaded in {:.0} ms",
        embed.model_id(),
        embed.dims(),
        started.elapsed().as_secs_f64() * 1e3
    );
    let registry = crane_core::tools::builtin_registry();

    // Embedding latency: every prompt of the dataset, one call each.
    let mut latencies = Vec::new();
    let mut vectors: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for _warm in 0..3 {
        let _ = embed.embed("add a todo to buy milk");
    }
    for p in &pairs {
        for prompt in [&p.a, &p.b] {
            if vectors.contains_key(prompt.as_str()) {
                continue;
            }
            let t = Instant::now();
            let v = embed
                .embed(prompt)
                .map_err(|e| anyhow::anyhow!("embedding '{prompt}': {e}"))?;
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
            vectors.insert(prompt.clone(), v);
        }
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "embedding, one prompt at a time ({} prompts, mean {:.0} chars): p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        vectors.keys().map(|k| k.len()).sum::<usize>() as f64 / vectors.len().max(1) as f64,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );

    // The guard over every pair, with the real similarities.
    let mut scored = Vec::new();
    let mut template_bytes = Vec::new();
    for p in &pairs {
        let sim = crane_embed::cosine(&vectors[&p.a], &vectors[&p.b]);
        let served = match PlanTemplate::from_plan(&p.a, &steps(&p.plan_a), &registry) {
            Ok(t) => {
                template_bytes.push(serde_json::to_string(&t).map_or(0, |s| s.len()));
                t.bind_checked(&p.b, &registry)
                    .ok()
                    .map(|s| same(&s.steps, p.plan_b.as_ref()))
            }
            Err(_) => None,
        };
        scored.push(Scored {
            kind: p.kind.clone(),
            similarity: sim,
            served,
            id: p.id.clone(),
        });
    }
    let kinds = ["paraphrase", "literal", "negation", "operation"];
    println!();
    println!(
        "{:>9}  {}  wrong plans",
        "threshold",
        kinds
            .iter()
            .map(|k| format!("{k:>16}"))
            .collect::<Vec<_>>()
            .join("")
    );
    let mut thresholds: Vec<f32> = (10..=19).map(|i| i as f32 * 0.05).collect();
    if !thresholds
        .iter()
        .any(|t| (t - DEFAULT_THRESHOLD).abs() < 1e-6)
    {
        thresholds.push(DEFAULT_THRESHOLD);
    }
    let mut at_default = (0usize, 0usize, 0usize);
    for &t in &thresholds {
        let mut cells = Vec::new();
        let mut wrong = 0;
        for kind in kinds {
            let of: Vec<&Scored> = scored.iter().filter(|s| s.kind == kind).collect();
            let served = of
                .iter()
                .filter(|s| s.similarity >= t && s.served.is_some())
                .count();
            let bad = of
                .iter()
                .filter(|s| s.similarity >= t && s.served == Some(false))
                .count();
            wrong += bad;
            cells.push(format!("{:>16}", format!("{served}/{} served", of.len())));
            if (t - DEFAULT_THRESHOLD).abs() < 1e-6 && kind == "paraphrase" {
                at_default = (served, of.len(), 0);
            }
        }
        let label = if (t - DEFAULT_THRESHOLD).abs() < 1e-6 {
            format!("{t:.2}*")
        } else {
            format!("{t:.2}")
        };
        println!("{label:>9}  {}  {wrong}", cells.join(""));
        if (t - DEFAULT_THRESHOLD).abs() < 1e-6 {
            at_default.2 = wrong;
        }
    }
    println!(
        "(* the default threshold of crane serve; a pair is served when its similarity reaches the threshold and the guard binds and validates b)"
    );
    for s in scored.iter().filter(|s| s.served == Some(false)) {
        println!(
            "WRONG PLAN: {} ({}, similarity {:.3})",
            s.id, s.kind, s.similarity
        );
    }
    let mut by_kind: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for s in &scored {
        by_kind
            .entry(s.kind.as_str())
            .or_default()
            .push(f64::from(s.similarity));
    }
    for (kind, mut sims) in by_kind {
        sims.sort_by(f64::total_cmp);
        println!(
            "similarity of {kind} pairs: min {:.3}, median {:.3}, max {:.3}",
            sims[0],
            percentile(&sims, 0.5),
            sims[sims.len() - 1]
        );
    }
    let (hits, paraphrases, wrong) = at_default;
    let hit_rate = hits as f64 / paraphrases.max(1) as f64;
    println!(
        "at the default threshold {DEFAULT_THRESHOLD:.2}: paraphrase hit rate {:.1}% ({hits}/{paraphrases}), wrong plans {wrong}",
        hit_rate * 100.0
    );
    let mean_template =
        template_bytes.iter().sum::<usize>() as f64 / template_bytes.len().max(1) as f64;

    if args.entries > 0 {
        println!();
        let (entries, queries, dims) = (args.entries, args.queries, embed.dims());
        let report =
            tokio::task::spawn_blocking(move || bench_index(entries, queries, dims, 7)).await?;
        println!("{report}");
        println!(
            "memory per entry: index {:.0} B + template {:.0} B (mean JSON) + embedding blob {} B in the store",
            report.bytes_per_entry,
            mean_template,
            dims * 4
        );
    }
    if wrong > 0 {
        eprintln!("error: {wrong} wrong plan(s) served at the default threshold");
        return Ok(ExitCode::from(1));
    }
    if hit_rate < args.min_paraphrase_hit_rate {
        eprintln!(
            "error: paraphrase hit rate {:.1}% is under the gate {:.1}%",
            hit_rate * 100.0,
            args.min_paraphrase_hit_rate * 100.0
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
