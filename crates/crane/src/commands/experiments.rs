//! `crane experiments`: list, show, create, stop and promote experiments through a running
//! server's HTTP API (so every replica sees them at once and the audit log names the key).

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::cli::experiments::{ExperimentsArgs, ExperimentsCommand, Target};

/// Runs `crane experiments ...`; exit 1 with the server's message when it refuses.
pub async fn run(args: ExperimentsArgs) -> anyhow::Result<ExitCode> {
    let outcome = match args.command {
        ExperimentsCommand::List { target, json } => {
            call(&target, reqwest::Method::GET, "/experiments", None)
                .await
                .map(|v| {
                    if json {
                        print_json(&v);
                    } else {
                        for e in v["experiments"].as_array().into_iter().flatten() {
                            print_summary(e);
                        }
                    }
                })
        }
        ExperimentsCommand::Show { target, name, json } => call(
            &target,
            reqwest::Method::GET,
            &format!("/experiments/{name}"),
            None,
        )
        .await
        .map(|v| {
            if json {
                print_json(&v)
            } else {
                print_detail(&v)
            }
        }),
        ExperimentsCommand::Create {
            target,
            name,
            arms,
            alpha,
            min_effect,
        } => match parse_arms(&arms) {
            Err(e) => Err(e),
            Ok(arms) => {
                let mut body = json!({"name": name, "arms": arms});
                if let Some(a) = alpha {
                    body["alpha"] = json!(a);
                }
                if let Some(m) = min_effect {
                    body["min_effect"] = json!(m);
                }
                call(&target, reqwest::Method::POST, "/experiments", Some(body))
                    .await
                    .map(|v| print_detail(&v))
            }
        },
        ExperimentsCommand::Stop { target, name, note } => call(
            &target,
            reqwest::Method::POST,
            &format!("/experiments/{name}/stop"),
            Some(json!({"note": note})),
        )
        .await
        .map(|v| print_detail(&v)),
        ExperimentsCommand::Promote {
            target,
            name,
            no_guard,
            guard_min_runs,
            guard_hours,
        } => {
            let mut guard = serde_json::Map::new();
            if no_guard {
                guard.insert("enabled".into(), false.into());
            }
            if let Some(n) = guard_min_runs {
                guard.insert("min_runs".into(), n.into());
            }
            if let Some(h) = guard_hours {
                guard.insert("window_hours".into(), h.into());
            }
            let body = serde_json::json!({ "guard": guard });
            call(
                &target,
                reqwest::Method::POST,
                &format!("/experiments/{name}/promote"),
                Some(body),
            )
            .await
            .map(|v| {
                println!(
                    "production → {} (was {})",
                    v["alias_move"]["to"].as_str().unwrap_or("?"),
                    v["alias_move"]["from"].as_str().unwrap_or("nothing")
                );
                match v["guard"].as_object() {
                    Some(g) => println!(
                        "rollback guard: watching {} against {} (from {:.1}% success) for {} runs or until {}",
                        g["promoted"].as_str().unwrap_or("?"),
                        g["baseline"].as_str().unwrap_or("?"),
                        g["baseline_low"].as_f64().unwrap_or(0.0) * 100.0,
                        g["min_runs"],
                        g["until"].as_str().unwrap_or("?")
                    ),
                    None => println!("rollback guard: none"),
                }
                print_detail(&v["experiment"]);
            })
        }
    };
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `planner[=weight]` → `{"planner", "weight"}`.
fn parse_arms(arms: &[String]) -> Result<Vec<Value>, String> {
    arms.iter()
        .map(|a| match a.split_once('=') {
            None => Ok(json!({"planner": a})),
            Some((planner, w)) => w
                .trim()
                .parse::<f64>()
                .map(|w| json!({"planner": planner.trim(), "weight": w}))
                .map_err(|_| {
                    format!("--arm {a}: the weight after '=' must be a number, e.g. --arm small=2")
                }),
        })
        .collect()
}

async fn call(
    target: &Target,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let url = format!("{}{path}", target.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.request(method, &url);
    if let Some(key) = &target.key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let response = req
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

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn print_summary(e: &Value) {
    println!(
        "{:<24} {:<8} {:<14} {}",
        e["name"].as_str().unwrap_or(""),
        e["status"].as_str().unwrap_or(""),
        e["analysis"]["decision"].as_str().unwrap_or(""),
        e["analysis"]["reason"].as_str().unwrap_or("")
    );
}

fn num(v: &Value, scale: f64, digits: usize) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{:.*}", digits, x * scale))
}

fn print_detail(e: &Value) {
    println!(
        "{} ({}), alpha {}",
        e["name"].as_str().unwrap_or(""),
        e["status"].as_str().unwrap_or(""),
        e["alpha"]
    );
    println!(
        "  {:<20} {:>6} {:>8} {:>9} {:>9} {:>9} {:>11} {:>9}",
        "arm", "weight", "runs", "success%", "p50 ms", "p95 ms", "mean USD", "feedback"
    );
    for a in e["arms"].as_array().into_iter().flatten() {
        println!(
            "  {:<20} {:>6} {:>8} {:>9} {:>9} {:>9} {:>11} {:>9}",
            a["planner"].as_str().unwrap_or(""),
            a["weight"],
            a["runs"],
            num(&a["success_rate"], 100.0, 1),
            num(&a["p50_ms"], 1.0, 1),
            num(&a["p95_ms"], 1.0, 1),
            num(&a["mean_cost_usd"], 1.0, 6),
            num(&a["feedback_mean"], 1.0, 2),
        );
    }
    println!(
        "  decision: {} — {}",
        e["analysis"]["decision"].as_str().unwrap_or(""),
        e["analysis"]["reason"].as_str().unwrap_or("")
    );
}
