//! The bound on stored step outputs, through the runtime: an output over the limit is stored
//! as a truncated copy (execution log and result) while later steps of the same execution
//! still reference the full output; a run resumed from the store (here: retried) that
//! references a truncated output fails with a clear error instead of reading the preview.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crane_core::domain::output::{MAX_STORED_BYTES, json_size, truncated_size};
use crane_core::domain::{Run, RunStatus, StepStatus};
use crane_core::runtime::{NewRun, Runtime, RuntimeConfig};
use crane_core::store::{Store, StoreConfig};
use crane_core::tools::{
    ToolContext, ToolError, ToolErrorKind, TypedTool, builtin_registry, typed,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Input of `big_output`.
#[derive(Deserialize, JsonSchema)]
struct BigInput {
    /// How many items.
    items: usize,
}

/// Output of `big_output`.
#[derive(Serialize, JsonSchema)]
struct BigOutput {
    items: Vec<String>,
    count: usize,
}

fn item(i: usize) -> String {
    format!("item {i:05} {}", "x".repeat(40))
}

/// Returns `items` strings of about 50 bytes each.
struct Big;

impl TypedTool for Big {
    const NAME: &'static str = "big_output";
    const DESCRIPTION: &'static str = "Test: a large output.";
    type Input = BigInput;
    type Output = BigOutput;

    async fn run(&self, _ctx: &ToolContext, input: BigInput) -> Result<BigOutput, ToolError> {
        Ok(BigOutput {
            items: (0..input.items).map(item).collect(),
            count: input.items,
        })
    }
}

/// Input and output of `echo`.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Echoed {
    value: Value,
}

/// Echoes its input; fails (not retryably) while the switch is on.
struct Echo {
    failing: Arc<AtomicBool>,
}

impl TypedTool for Echo {
    const NAME: &'static str = "echo";
    const DESCRIPTION: &'static str = "Test: echo the value.";
    type Input = Echoed;
    type Output = Echoed;

    async fn run(&self, _ctx: &ToolContext, input: Echoed) -> Result<Echoed, ToolError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(ToolError::new(
                ToolErrorKind::Internal,
                "echo is switched off",
            ));
        }
        Ok(input)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    runtime: Runtime,
    failing: Arc<AtomicBool>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let failing = Arc::new(AtomicBool::new(false));
    let mut registry = builtin_registry();
    registry.register(Arc::new(typed(Big)));
    registry.register(Arc::new(typed(Echo {
        failing: failing.clone(),
    })));
    let runtime = Runtime::new(store, Arc::new(registry), RuntimeConfig::default());
    Fixture {
        _dir: dir,
        runtime,
        failing,
    }
}

async fn run_steps(runtime: &Runtime, steps: &[(&str, Value)]) -> Run {
    let steps = steps
        .iter()
        .map(|(tool, input)| ((*tool).to_owned(), input.clone(), "test".to_owned()))
        .collect();
    let submitted = runtime
        .submit(
            NewRun {
                prompt: "test plan".into(),
                steps: Some(steps),
                ..NewRun::default()
            },
            true,
        )
        .await
        .unwrap();
    submitted.finished.unwrap().await.unwrap()
}

#[tokio::test]
async fn large_outputs_are_stored_truncated_and_referenced_whole_within_the_run() {
    let f = fixture();
    let full = json!({"items": (0..3000).map(item).collect::<Vec<_>>(), "count": 3000});
    let full_size = json_size(&full);
    assert!(full_size > 2 * MAX_STORED_BYTES, "{full_size}");
    let run = run_steps(
        &f.runtime,
        &[
            ("big_output", json!({"items": 3000})),
            // The last item is far outside the stored preview.
            ("echo", json!({"value": "${steps.1.items.-1}"})),
            ("echo", json!({"value": "${steps.1.count} items"})),
            ("big_output", json!({"items": 2000})),
        ],
    )
    .await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let log = &run.execution_log;
    let stored = log[0].output.as_ref().unwrap();
    assert_eq!(truncated_size(stored), Some(full_size as u64));
    assert!(json_size(stored) <= MAX_STORED_BYTES);
    assert_eq!(stored["limit_bytes"], MAX_STORED_BYTES);
    assert_eq!(stored["preview"]["count"], 3000);
    let kept = stored["preview"]["items"].as_array().unwrap();
    assert!(!kept.is_empty() && kept.len() < 3000);
    assert_eq!(kept[0], item(0));
    assert_eq!(log[1].output, Some(json!({"value": item(2999)})));
    assert_eq!(log[2].output, Some(json!({"value": "3000 items"})));
    // The result is the last output as stored: bounded the same way.
    let result = run.result.as_ref().unwrap();
    assert!(truncated_size(result).is_some(), "{result:.200}");
    assert_eq!(Some(result), log[3].output.as_ref());
    // What the store holds is what the caller was handed.
    let stored_run = f.runtime.get(&run.run_id).await.unwrap();
    assert_eq!(stored_run.execution_log, run.execution_log);
    assert_eq!(stored_run.result, run.result);
    // Small outputs are untouched.
    let small = run_steps(&f.runtime, &[("big_output", json!({"items": 3}))]).await;
    assert_eq!(
        small.result,
        Some(json!({"items": [item(0), item(1), item(2)], "count": 3}))
    );
}

#[tokio::test]
async fn a_resumed_run_refuses_to_read_a_truncated_output() {
    let f = fixture();
    for (items, resumable) in [(3, true), (3000, false)] {
        f.failing.store(true, Ordering::SeqCst);
        let run = run_steps(
            &f.runtime,
            &[
                ("big_output", json!({"items": items})),
                ("echo", json!({"value": "${steps.1.items.-1}"})),
            ],
        )
        .await;
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(
            run.execution_log[1].error.as_deref(),
            Some("echo is switched off")
        );

        // A retry resumes from the stored step 1.
        f.failing.store(false, Ordering::SeqCst);
        let retried = f.runtime.retry(&run.run_id, true).await.unwrap();
        let run = retried.finished.unwrap().await.unwrap();
        if resumable {
            assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
            assert_eq!(run.result, Some(json!({"value": item(2)})));
            continue;
        }
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.execution_log[1].status, StepStatus::Failed);
        let error = run.execution_log[1].error.clone().unwrap();
        assert!(
            error.starts_with("reference ${steps.1.items.-1} needs step 1's full output"),
            "{error}"
        );
        assert!(
            error.contains(&format!("over the {MAX_STORED_BYTES}-byte limit"))
                && error.contains("Submit the task again as a new run"),
            "{error}"
        );
        // Nothing was read from the preview.
        assert_eq!(run.execution_log[1].output, None);
    }
}
