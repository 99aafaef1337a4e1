//! Streamed planning against the REAL model (llama.cpp's OpenAI-compatible server via
//! llama-cpp-python, SmolLM2-135M; see llm_real.rs): streamed plans complete or fail cleanly
//! (no hang, no panic, an error on every failed run), and, `#[ignore]`d, the measurement of
//! time-to-first-step and POST→completed with streaming on and off recorded in
//! docs/benchmarks.md:
//!
//! ```text
//! cargo test -p crane --test it stream_compare_on_the_real_model -- --ignored --nocapture
//! ```
//!
//! `CRANE_STREAM_COMPARE_CASES` sets how many golden prompts each way (default 24).

use std::time::Duration;

use serde_json::Value;

use crate::llm_faults::{LlmCrane, planner};
use crate::llm_real::{ALIAS, LlamaServer, ONE_MODEL_AT_A_TIME, RUN_LIMIT, golden, subset};

/// crane.toml for the real model: room for a cold CPU model, answers capped at 256 tokens.
fn config(stream: bool) -> String {
    format!(
        "[planner]\ndeadline_ms = 120000\nmax_tokens = 256\n\n\
         [runtime]\nwait_timeout_ms = 140000\n\n\
         [[llm.providers]]\nname = \"primary\"\ntimeout_ms = 120000\nmax_retries = 0\n\
         stream = {stream}\n"
    )
}

async fn crane(llama: &LlamaServer, stream: bool) -> LlmCrane {
    LlmCrane::start(
        &[
            ("CRANE_LLM_BASE_URL", llama.base_url.as_str()),
            ("CRANE_LLM_MODEL", ALIAS),
        ],
        Some(&config(stream)),
    )
    .await
}

fn timestamp(value: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// From the run's creation to its first step's start, when a step ran.
fn time_to_first_step(run: &Value) -> Option<Duration> {
    let created = timestamp(&run["created_at"])?;
    let started = timestamp(&run["execution_log"][0]["started_at"])?;
    (started - created).to_std().ok()
}

#[tokio::test]
async fn streamed_plans_from_the_real_model_complete_or_fail_cleanly() {
    let _one_model = ONE_MODEL_AT_A_TIME.lock().await;
    let llama = LlamaServer::start().await;
    let crane = crane(&llama, true).await;
    let mut problems = Vec::new();
    let mut early = 0;
    for case in subset(golden(), 8).into_iter().take(6) {
        let (run, elapsed) = crane.run_within(&case.prompt, RUN_LIMIT).await;
        let status = run["status"].as_str().unwrap_or_default();
        let info = planner(&run);
        match status {
            "completed" => {}
            "failed" if run["error"].as_str().is_some_and(|e| !e.trim().is_empty()) => {}
            other => problems.push(format!(
                "{}: ended {other:?} without an error: {run}",
                case.id
            )),
        }
        if info["partial"] == true && status == "completed" {
            problems.push(format!("{}: completed with a partial plan: {run}", case.id));
        }
        let ttfs = time_to_first_step(&run);
        if info["source"] == "llm" && ttfs.is_some_and(|t| t < elapsed) {
            early += 1;
        }
        println!(
            "{:>5.1}s {status:<9} {:<8} first step at {:?} {} error={}",
            elapsed.as_secs_f64(),
            info["source"].as_str().unwrap_or("-"),
            ttfs.map(|t| t.as_secs_f64()),
            case.id,
            run["error"]
        );
    }
    println!("{early} runs executed an LLM-planned step");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // llama-cpp-python streams without usage: crane says so once it decoded a stream.
    assert!(
        crane.logs().contains("streams answers without token usage"),
        "no streamed answer was decoded; crane log:\n{}",
        crane.logs()
    );
}

/// Median and 90th percentile (nearest rank) of `values`, in seconds.
fn median_p90(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let i = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        values[i]
    };
    (rank(0.5), rank(0.9))
}

#[tokio::test]
#[ignore = "measurement: minutes on the real model; see docs/benchmarks.md"]
async fn stream_compare_on_the_real_model() {
    let _one_model = ONE_MODEL_AT_A_TIME.lock().await;
    let n = std::env::var("CRANE_STREAM_COMPARE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let cases = subset(golden(), n);
    let llama = LlamaServer::start().await;
    // One crane per mode (each its own plan cache, so every prompt is planned by the model),
    // both warmed up on a prompt outside the set: llama.cpp's prefix cache then holds the
    // system prompt for both.
    let streamed = crane(&llama, true).await;
    let plain = crane(&llama, false).await;
    for crane in [&streamed, &plain] {
        crane
            .run_within("remind me to water the plants", RUN_LIMIT)
            .await;
    }
    println!(
        "{:<32} {:>9} {:>9} {:>9} {:>9}  status (streamed / plain)",
        "case", "ttfs_on", "ttfs_off", "total_on", "total_off"
    );
    let (mut ttfs_on, mut ttfs_off, mut total_on, mut total_off) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    for case in &cases {
        // Alternate which mode goes first, so neither always meets a warmer cache.
        let order = if total_on.len() % 2 == 0 {
            [(&streamed, true), (&plain, false)]
        } else {
            [(&plain, false), (&streamed, true)]
        };
        let mut row = [None, None, None, None];
        let mut statuses = [String::new(), String::new()];
        for (crane, on) in order {
            let (run, elapsed) = crane.run_within(&case.prompt, RUN_LIMIT).await;
            let status = format!(
                "{}/{}",
                run["status"].as_str().unwrap_or("-"),
                planner(&run)["source"].as_str().unwrap_or("-")
            );
            *outcomes
                .entry(format!("{} {status}", if on { "on " } else { "off" }))
                .or_default() += 1;
            let ttfs = time_to_first_step(&run).map(|t| t.as_secs_f64());
            let total = elapsed.as_secs_f64();
            if on {
                row[0] = ttfs;
                row[2] = Some(total);
                statuses[0] = status;
                total_on.push(total);
                ttfs_on.extend(ttfs);
            } else {
                row[1] = ttfs;
                row[3] = Some(total);
                statuses[1] = status;
                total_off.push(total);
                ttfs_off.extend(ttfs);
            }
        }
        let cell = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        println!(
            "{:<32} {:>9} {:>9} {:>9} {:>9}  {} / {}",
            case.id,
            cell(row[0]),
            cell(row[1]),
            cell(row[2]),
            cell(row[3]),
            statuses[0],
            statuses[1]
        );
    }
    let report = |name: &str, values: &mut Vec<f64>| {
        let (median, p90) = median_p90(values);
        println!(
            "{name:<28} n={:<3} median {median:.3} s  p90 {p90:.3} s",
            values.len()
        );
    };
    println!("\n{} golden prompts each way:", cases.len());
    report("time-to-first-step, stream", &mut ttfs_on);
    report("time-to-first-step, plain", &mut ttfs_off);
    report("POST→completed, stream", &mut total_on);
    report("POST→completed, plain", &mut total_off);
    println!("outcomes (status/source): {outcomes:?}");
    assert!(
        cases.len() >= 20 || n < 20,
        "the golden set has fewer than 20 prompts"
    );
}
