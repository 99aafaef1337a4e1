//! `crane prompts`: the planner registry from the command line.
//!
//! - `list` — variants (kind, version, model, prompt, fallback, aliases), prompt templates
//!   (version, hash, registration state) and aliases.
//! - `show NAME` — a variant or alias (its declaration), or a template `NAME@VERSION` (its
//!   text and hash).
//! - `diff A B` — two templates (`NAME@VERSION`) or two variants: a unified diff of the
//!   template texts, or of the declarations and their templates.
//! - `promote VARIANT [--alias production] [--note TEXT]` — point an alias at a variant.
//! - `rollback [--alias production] [--note TEXT]` — move it back to its previous target.
//! - `history [--alias A]` — every move.
//!
//! Moves go straight to the data dir's store (a running `crane serve` on that data dir picks
//! them up within `[registry] alias_refresh_ms`), or through a server's API with `--url`.

use std::process::ExitCode;
use std::sync::Arc;

use crane_core::planning::Planners;
use crane_core::planning::prompt_library::PromptLibrary;
use crane_core::runtime::registry;
use crane_core::store::{AliasMove, Store};
use serde_json::{Value, json};

use crane_settings::Settings;

use crate::cli::Common;
use crate::cli::prompts::{PromptsArgs, PromptsCommand};

/// Exit code for bad usage.
const USAGE: u8 = 2;

struct Registry {
    store: Arc<Store>,
    planners: Planners,
    library: PromptLibrary,
}

async fn open(common: &Common) -> anyhow::Result<Registry> {
    let settings = Settings::load(&common.overrides())?;
    super::init_logging(&settings, "warn");
    let store = super::open_store(&settings).await?;
    let registry = settings.tool_registry();
    let (planners, library) = settings.planners(Arc::new(registry))?;
    Ok(Registry {
        store,
        planners,
        library,
    })
}

/// Runs `crane prompts`.
pub async fn run(args: PromptsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PromptsCommand::List { common, json } => list(&open(&common).await?, json).await,
        PromptsCommand::Show { common, name, json } => {
            show(&open(&common).await?, &name, json).await
        }
        PromptsCommand::Diff { common, a, b } => diff(&open(&common).await?, &a, &b),
        PromptsCommand::Promote {
            common,
            variant,
            alias,
            note,
            url,
        } => {
            let moved = match url {
                Some(url) => {
                    api(
                        reqwest::Method::PUT,
                        &format!("{}/aliases/{alias}", url.trim_end_matches('/')),
                        json!({"variant": variant, "note": note}),
                    )
                    .await
                }
                None => {
                    let r = open(&common).await?;
                    r.planners.set_aliases(r.store.aliases().await?);
                    registry::move_alias(&r.store, &r.planners, &alias, &variant, note.as_deref())
                        .await
                        .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
                        .map_err(|e| e.to_string())
                }
            };
            report_move(moved)
        }
        PromptsCommand::Rollback {
            common,
            alias,
            note,
            url,
        } => {
            let moved = match url {
                Some(url) => {
                    api(
                        reqwest::Method::POST,
                        &format!("{}/aliases/{alias}/rollback", url.trim_end_matches('/')),
                        json!({"note": note}),
                    )
                    .await
                }
                None => {
                    let r = open(&common).await?;
                    registry::rollback_alias(&r.store, &r.planners, &alias, note.as_deref())
                        .await
                        .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
                        .map_err(|e| e.to_string())
                }
            };
            report_move(moved)
        }
        PromptsCommand::History {
            common,
            alias,
            json,
        } => {
            let r = open(&common).await?;
            let moves = r.store.alias_history(alias.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&moves)?);
            } else if moves.is_empty() {
                println!("no alias moves recorded");
            } else {
                for m in &moves {
                    print_move(m);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_move(m: &AliasMove) {
    println!(
        "{} {} {}: {} → {}{}",
        m.moved_at,
        m.kind,
        m.alias,
        m.from.as_deref().unwrap_or("(unset)"),
        m.to,
        m.note
            .as_deref()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default()
    );
}

fn report_move(moved: Result<Value, String>) -> anyhow::Result<ExitCode> {
    match moved {
        Ok(m) => {
            println!(
                "{} {}: {} → {}",
                m["kind"].as_str().unwrap_or("moved"),
                m["alias"].as_str().unwrap_or_default(),
                m["from"].as_str().unwrap_or("(unset)"),
                m["to"].as_str().unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// One registry call over HTTP; an error answer becomes its message.
async fn api(method: reqwest::Method, url: &str, body: Value) -> Result<Value, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .request(method, url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("could not reach {url}: {e}"))?;
    let status = response.status();
    let value: Value = response
        .json()
        .await
        .map_err(|e| format!("{url} answered {status} with a body that is not JSON: {e}"))?;
    if status.is_success() {
        Ok(value)
    } else {
        Err(value["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{url} answered {status}")))
    }
}

/// Registration state of a template: `registered`, `new` (not yet registered), or `CHANGED`.
fn state_of(
    registered: &[crane_core::store::PromptVersion],
    name: &str,
    version: &str,
    hash: &str,
) -> &'static str {
    match registered
        .iter()
        .find(|r| r.name == name && r.version == version)
    {
        None => "new",
        Some(r) if r.hash == hash => "registered",
        Some(_) => "CHANGED",
    }
}

async fn list(r: &Registry, json_out: bool) -> anyhow::Result<ExitCode> {
    let aliases = r.store.aliases().await?;
    let registered = r.store.prompt_versions().await?;
    let default = r.planners.default_variant().spec.name.clone();
    if json_out {
        let variants: Vec<Value> = r
            .planners
            .variants()
            .iter()
            .map(|v| serde_json::to_value(&v.spec).unwrap_or(Value::Null))
            .collect();
        let prompts: Vec<Value> = r
            .library
            .entries()
            .map(|e| {
                let t = &e.template;
                json!({"name": t.name, "version": t.version, "hash": t.hash, "source": e.source,
                       "state": state_of(&registered, &t.name, &t.version, &t.hash)})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"default": default, "variants": variants, "prompts": prompts, "aliases": aliases})
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("planner variants (default: {default}):");
    for v in r.planners.variants() {
        let s = &v.spec;
        let pointing: Vec<&str> = aliases
            .iter()
            .filter(|(_, t)| **t == s.name)
            .map(|(a, _)| a.as_str())
            .collect();
        let model = s
            .model
            .clone()
            .or_else(|| s.tier.as_ref().map(|t| format!("tier {t}")))
            .unwrap_or_else(|| "-".into());
        let prompt = s
            .prompt
            .as_ref()
            .map(|p| {
                format!(
                    "{}@{} ({})",
                    p.name,
                    p.version,
                    &p.hash[..12.min(p.hash.len())]
                )
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "  {:<16} {:<10} {:<8} model {:<20} prompt {:<32} fallback [{}]{}",
            s.name,
            s.kind.as_str(),
            s.version,
            model,
            prompt,
            s.fallback.join(", "),
            if pointing.is_empty() {
                String::new()
            } else {
                format!("  ← {}", pointing.join(", "))
            }
        );
    }
    println!("prompt templates:");
    for e in r.library.entries() {
        let t = &e.template;
        println!(
            "  {:<24} sha256 {}  {:<10}  {}",
            format!("{}@{}", t.name, t.version),
            &t.hash[..12],
            state_of(&registered, &t.name, &t.version, &t.hash),
            e.source
        );
    }
    println!("aliases:");
    if aliases.is_empty() {
        println!(
            "  none (runs use the default variant; set one with `crane prompts promote VARIANT`)"
        );
    }
    for (alias, variant) in &aliases {
        println!("  {alias} → {variant}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(r: &Registry, name: &str, json_out: bool) -> anyhow::Result<ExitCode> {
    if name.contains('@') {
        let entry = match r.library.get(name) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(USAGE));
            }
        };
        let t = &entry.template;
        if json_out {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"name": t.name, "version": t.version,
                    "hash": t.hash, "source": entry.source, "text": t.text}))?
            );
        } else {
            println!(
                "# {}@{}  sha256 {}  ({})",
                t.name, t.version, t.hash, entry.source
            );
            print!("{}", t.text);
        }
        return Ok(ExitCode::SUCCESS);
    }
    r.planners.set_aliases(r.store.aliases().await?);
    let (variant, alias) = match r.planners.resolve(Some(name)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    let mut body = serde_json::to_value(&variant.spec)?;
    if let Some(obj) = body.as_object_mut() {
        obj.insert("config_hash".into(), json!(variant.spec.config_hash()));
        if let Some(alias) = alias {
            obj.insert("resolved_from".into(), json!(alias));
        }
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        println!("{}", toml_like(&body));
    }
    Ok(ExitCode::SUCCESS)
}

/// `key = value` lines of a flat JSON object, for reading and diffing.
fn toml_like(body: &Value) -> String {
    let mut out = String::new();
    if let Some(obj) = body.as_object() {
        for (k, v) in obj {
            out.push_str(&format!("{k} = {v}\n"));
        }
    }
    out
}

fn unified(a_name: &str, a: &str, b_name: &str, b: &str) -> String {
    similar::TextDiff::from_lines(a, b)
        .unified_diff()
        .context_radius(3)
        .header(a_name, b_name)
        .to_string()
}

fn diff(r: &Registry, a: &str, b: &str) -> anyhow::Result<ExitCode> {
    let text = if a.contains('@') || b.contains('@') {
        let (ta, tb) = match (r.library.get(a), r.library.get(b)) {
            (Ok(x), Ok(y)) => (x, y),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(USAGE));
            }
        };
        unified(a, &ta.template.text, b, &tb.template.text)
    } else {
        let (va, vb) = match (r.planners.get(a), r.planners.get(b)) {
            (Some(x), Some(y)) => (x, y),
            (x, _) => {
                let missing = if x.is_none() { a } else { b };
                eprintln!(
                    "error: unknown planner variant '{missing}'; known: {}. To diff templates, use NAME@VERSION",
                    r.planners
                        .variants()
                        .iter()
                        .map(|v| v.spec.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Ok(ExitCode::from(USAGE));
            }
        };
        let mut out = unified(
            a,
            &toml_like(&serde_json::to_value(&va.spec)?),
            b,
            &toml_like(&serde_json::to_value(&vb.spec)?),
        );
        let text_of = |v: &crane_core::planning::Variant| {
            v.spec
                .prompt
                .as_ref()
                .and_then(|p| r.library.get(&format!("{}@{}", p.name, p.version)).ok())
                .map(|e| e.template.text.clone())
                .unwrap_or_default()
        };
        let (pa, pb) = (text_of(va), text_of(vb));
        if pa != pb {
            out.push_str(&unified(
                &format!("{a} prompt"),
                &pa,
                &format!("{b} prompt"),
                &pb,
            ));
        }
        out
    };
    if text.is_empty() {
        println!("no differences");
    } else {
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
