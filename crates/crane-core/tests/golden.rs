//! The golden set (data/golden.jsonl) run end to end: rule planner → validator → executor →
//! SQLite store, each case on a fresh store. Every mismatch is listed in one failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crane_core::domain::RunStatus;
use crane_core::runtime::{NewRun, Runtime, RuntimeConfig};
use crane_core::store::{Store, StoreConfig};
use crane_core::tools::builtin_registry;
use serde_json::Value;

fn golden_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/golden.jsonl")
}

/// `expected` is contained in `actual`: objects by key (recursively), arrays element-wise with
/// equal length, numbers within 1e-9 relative, everything else equal.
fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| subset(v, av))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| subset(x, y))
        }
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            e == a || (e - a).abs() <= 1e-9 * e.abs().max(a.abs())
        }
        _ => expected == actual,
    }
}

fn contains_all(text: &str, expect: &Value) -> Result<(), String> {
    for needle in expect["error_contains"].as_array().into_iter().flatten() {
        let needle = needle.as_str().unwrap_or_default();
        if !text.contains(needle) {
            return Err(format!("error {text:?} does not contain {needle:?}"));
        }
    }
    Ok(())
}

async fn check_case(case: &Value) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    for title in case["setup_todos"].as_array().into_iter().flatten() {
        store
            .todo_add(title.as_str().unwrap().to_owned(), None)
            .await
            .unwrap();
    }
    let runtime = Runtime::new(
        store,
        Arc::new(builtin_registry()),
        RuntimeConfig::default(),
    );
    let prompt = case["prompt"].as_str().unwrap().to_owned();
    let submitted = runtime
        .submit(
            NewRun {
                prompt,
                ..NewRun::default()
            },
            true,
        )
        .await
        .map_err(|e| format!("submit failed: {e}"))?;
    let run = submitted.finished.unwrap().await.unwrap();
    runtime.drain(std::time::Duration::from_secs(5)).await;
    let expect = &case["expect"];
    let error = run.error.clone().unwrap_or_default();

    if expect["reject"] == Value::Bool(true) {
        if run.status != RunStatus::Failed || run.plan.is_some() {
            return Err(format!(
                "expected a rejection, got status {:?} with plan {:?}",
                run.status, run.plan
            ));
        }
        return contains_all(&error, expect);
    }
    let plan = run
        .plan
        .as_ref()
        .ok_or_else(|| format!("no plan: {error}"))?;
    let steps: Vec<Value> = plan
        .steps
        .iter()
        .map(|s| serde_json::json!({"tool": s.tool, "input": s.input}))
        .collect();
    if Value::Array(steps.clone()) != expect["steps"] {
        return Err(format!(
            "steps {} != expected {}",
            Value::Array(steps),
            expect["steps"]
        ));
    }
    if expect["fail"] == Value::Bool(true) {
        if run.status != RunStatus::Failed {
            return Err(format!(
                "expected the run to fail, got {:?} result {:?}",
                run.status, run.result
            ));
        }
        return contains_all(&error, expect);
    }
    if run.status != RunStatus::Completed {
        return Err(format!("run {:?}: {error}", run.status));
    }
    let result = run.result.clone().unwrap_or(Value::Null);
    if let Some(expected) = expect.get("result")
        && !subset(expected, &result)
    {
        return Err(format!(
            "result {result} does not match expected {expected}"
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_set_plans_and_executes() {
    let text = std::fs::read_to_string(golden_path()).unwrap();
    let cases: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        cases.len() >= 80,
        "the golden set has {} cases; at least 80 expected",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(why) = check_case(case).await {
            failures.push(format!("{} ({:?}): {why}", case["id"], case["prompt"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn subset_matching_is_strict_where_it_matters() {
    use serde_json::json;
    assert!(subset(
        &json!({"value": 0.3}),
        &json!({"value": 0.3, "expression": "0.1+0.2"})
    ));
    assert!(!subset(
        &json!({"value": 0.3}),
        &json!({"value": 0.30000000000000004 + 1e-6})
    ));
    assert!(!subset(
        &json!({"todos": [{"title": "a"}]}),
        &json!({"todos": [{"title": "a"}, {"title": "b"}]})
    ));
    assert!(!subset(
        &json!({"todo": {"done": true}}),
        &json!({"todo": {"done": false}})
    ));
    assert!(!subset(&json!({"missing": 1}), &json!({})));
}
