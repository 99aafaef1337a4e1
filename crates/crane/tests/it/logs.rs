//! Structured logs: with `CRANE_LOG_FORMAT=json` every line logged inside a run carries the
//! run's run_id and trace_id; prompts are not logged at info level.

use serde_json::{Value, json};

use crate::support::Server;

#[tokio::test]
async fn json_log_lines_about_a_run_carry_run_and_trace_ids() {
    let server = Server::start_with_env(
        &["--debug-tools", "--retry-max-attempts", "2"],
        &[
            ("CRANE_LOG_FORMAT", "json"),
            ("RUST_LOG", "crane_core=debug,info"),
        ],
    )
    .await;
    let prompt = "secret-prompt-text-7f3a";
    let run = server
        .create_run(
            &json!({"prompt": prompt, "steps": [{"tool": "debug_flaky", "input": {"fail_times": 1}}]}),
            true,
        )
        .await;
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
}
