//! Span and metric content, checked in process: spans go to OpenTelemetry's in-memory exporter
//! through the same tracing-opentelemetry layer the binary uses; metrics go to a debugging
//! recorder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use crane_core::runtime::{NewRun, Runtime, RuntimeConfig};
use crane_core::store::{Store, StoreConfig};
use crane_core::tools::registry_with_debug_tools;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

fn runtime(dir: &std::path::Path) -> Runtime {
    let store = Store::open(dir, &StoreConfig::default()).unwrap();
    let config = RuntimeConfig {
        retry: crane_core::runtime::RetryPolicy {
            max_attempts: 3,
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(2),
        },
        ..RuntimeConfig::default()
    };
    Runtime::new(store, Arc::new(registry_with_debug_tools()), config)
}

fn steps() -> Vec<(String, serde_json::Value, String)> {
    vec![
        (
            "todo_add".into(),
            json!({"title": "span me"}),
            String::new(),
        ),
        (
            "debug_flaky".into(),
            json!({"fail_times": 1}),
            String::new(),
        ),
        (
            "calculator".into(),
            json!({"expression": "2+2"}),
            String::new(),
        ),
    ]
}

/// One test in this binary: it installs the process-wide subscriber and metrics recorder.
#[tokio::test]
async fn a_run_produces_spans_and_metrics() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let submitted = rt
        .submit(
            NewRun {
                prompt: "traced".into(),
                steps: Some(steps()),
                ..NewRun::default()
            },
            true,
        )
        .await
        .unwrap();
    let run = submitted.finished.unwrap().await.unwrap();
    assert_eq!(run.status.as_str(), "completed");
    rt.drain(std::time::Duration::from_secs(5)).await;
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let by_name: HashMap<String, &opentelemetry_sdk::trace::SpanData> =
        spans.iter().map(|s| (s.name.to_string(), s)).collect();
    let attr = |span: &str, key: &str| -> Option<String> {
        by_name[span]
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    let run_span = by_name
        .get("run")
        .unwrap_or_else(|| panic!("no run span: {:?}", by_name.keys()));
    assert_eq!(
        attr("run", "crane.run.id").as_deref(),
        Some(run.run_id.as_str())
    );
    assert_eq!(
        attr("run", "crane.run.status").as_deref(),
        Some("completed")
    );
    assert_eq!(attr("run", "crane.plan.source").as_deref(), Some("client"));
    for (tool, n) in [("todo_add", 1), ("debug_flaky", 2), ("calculator", 3)] {
        let name = format!("execute_tool {tool}");
        let span = by_name
            .get(name.as_str())
            .unwrap_or_else(|| panic!("no {name} span"));
        assert_eq!(
            span.parent_span_id,
            run_span.span_context.span_id(),
            "{name} is a child of run"
        );
        assert_eq!(
            span.span_context.trace_id(),
            run_span.span_context.trace_id()
        );
        assert_eq!(
            attr(&name, "gen_ai.operation.name").as_deref(),
            Some("execute_tool")
        );
        assert_eq!(attr(&name, "gen_ai.tool.name").as_deref(), Some(tool));
        assert_eq!(
            attr(&name, "gen_ai.tool.call.id"),
            Some(format!("{}:{n}", run.run_id))
        );
    }
    // The retry is an event on the flaky step's span, with its backoff.
    let flaky = by_name["execute_tool debug_flaky"];
    assert_eq!(
        attr("execute_tool debug_flaky", "crane.step.attempts").as_deref(),
        Some("2")
    );
    let retry = flaky
        .events
        .iter()
        .find(|e| e.name == "retry")
        .expect("a retry event");
    assert!(
        retry
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "backoff_ms")
    );
    assert!(by_name.contains_key("queue"));

    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str, labels: &[(&str, &str)]| -> u64 {
        snapshot
            .iter()
            .filter(|(key, ..)| {
                key.key().name() == name
                    && labels
                        .iter()
                        .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => *n,
                _ => 0,
            })
            .sum()
    };
    assert_eq!(
        counter(
            "crane_runs_total",
            &[("status", "completed"), ("source", "client")]
        ),
        1
    );
    assert_eq!(
        counter(
            "crane_tool_executions_total",
            &[("tool", "debug_flaky"), ("outcome", "completed")]
        ),
        1
    );
    assert_eq!(
        counter(
            "crane_tool_executions_total",
            &[("tool", "todo_add"), ("outcome", "completed")]
        ),
        1
    );
    assert_eq!(
        counter("crane_step_retries_total", &[("tool", "debug_flaky")]),
        1
    );
    assert!(
        snapshot
            .iter()
            .any(|(key, ..)| key.key().name() == "crane_run_duration_seconds"),
        "run duration histogram missing"
    );
}
