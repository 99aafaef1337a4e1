//! Structured logs: with `CRANE_LOG_FORMAT=json` every line logged inside a run carries the
//! run's run_id and trace_id; prompts are not logged at info level.

use serde_json::{Value, json};

use crate::support::Server;

#[tokio::test]
async fn json_log_lines_about_a_run_carry_run_and_trace_ids() {
    check_run_logs(&[], None).await;
}

/// With trace export on and a request whose trace is not recorded (the caller's `traceparent`
/// says not sampled, so crane builds no span for the exporter), log lines about its run still
/// carry the run id and the caller's trace id.
#[tokio::test]
async fn log_lines_of_an_unrecorded_trace_still_carry_run_and_trace_ids() {
    let trace_id = "7af92f3577b34da6a3ce929d0e0e4739";
    let run = check_run_logs(
        // Nothing listens there; nothing of this request is exported anyway.
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")],
        Some(&format!("00-{trace_id}-00f067aa0ba902b7-00")),
    )
    .await;
    assert_eq!(run["trace_id"], trace_id);
}

/// Runs one run with a retried step under JSON logs at DEBUG for crane_core; checks the log
/// lines about it. Returns the run.
async fn check_run_logs(env: &[(&str, &str)], traceparent: Option<&str>) -> Value {
    let mut env = env.to_vec();
    env.extend([
        ("CRANE_LOG_FORMAT", "json"),
        ("RUST_LOG", "crane_core=debug,info"),
    ]);
    let server =
        Server::start_with_env(&["--debug-tools", "--retry-max-attempts", "2"], &env).await;
    let prompt = "secret-prompt-text-7f3a";
    let mut req = server.client.post(server.url("/runs?wait=true")).json(
        &json!({"prompt": prompt, "steps": [{"tool": "debug_flaky", "input": {"fail_times": 1}}]}),
    );
    if let Some(traceparent) = traceparent {
        req = req.header("traceparent", traceparent);
    }
    let (status, _, run) = server.send(req).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    let logs = server.logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    assert!(!lines.is_empty(), "no JSON log lines:\n{logs}");
    let retry: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "step attempt failed" || l["message"] == "retry")
        .collect();
    assert!(!retry.is_empty(), "no retry log line:\n{logs}");
    for line in retry {
        let run_span = line["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["name"] == "run"))
            .unwrap_or_else(|| panic!("no run span on {line}"));
        assert_eq!(run_span["run_id"], run["run_id"], "{line}");
        assert_eq!(run_span["trace_id"], run["trace_id"], "{line}");
    }
    // The prompt itself is not logged at info level or above.
    for line in &lines {
        let level = line["level"].as_str().unwrap_or("");
        if matches!(level, "INFO" | "WARN" | "ERROR") {
            assert!(
                !line.to_string().contains(prompt),
                "prompt logged at {level}: {line}"
            );
        }
    }
    run
}

/// A collector that cannot be reached: the spans of a recorded run are counted as failed in
/// `crane_trace_export_spans_total` and a warning says so (the SDK itself drops them silently).
#[tokio::test]
async fn failing_trace_export_is_counted_and_logged() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = Server::start_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20otlp-secret-42",
            ),
            ("OTEL_TRACES_SAMPLER", "always_on"),
            // Export each batch after 50 ms instead of 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    let run = server.run_prompt("what is 6 times 7").await;
    assert_eq!(run["status"], "completed", "{run}");

    // The exporter's attempt shows in the metrics once the batch was tried: the http, run
    // and step spans at least, none exported.
    server
        .wait_for_metric("crane_trace_export_spans_total{result=\"failed\"}", |v| {
            v >= 3.0
        })
        .await;
    let text = server.metrics_text().await;
    assert!(
        !text.contains("crane_trace_export_spans_total{result=\"exported\"}"),
        "{text}"
    );
    let logs = server.logs();
    assert!(logs.contains("trace export is failing"), "{logs}");
    assert!(!logs.contains("otlp-secret-42"), "{logs}");
}
