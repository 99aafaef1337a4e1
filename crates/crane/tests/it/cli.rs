//! The CLI: `crane run`, `crane plan` and `crane tools`, their output and exit codes, and
//! `CRANE_DATA_DIR` as an alternative to `--data-dir`.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::support::{DEADLINE, crane_command, titles};

/// Runs `crane ARGS` from `cwd` (with extra env), with a deadline; returns its output.
async fn crane(cwd: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = crane_command(cwd);
    cmd.args(args).env("RUST_LOG", "warn").kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    match tokio::time::timeout(DEADLINE, cmd.output()).await {
        Ok(out) => out.expect("run crane"),
        Err(_) => panic!("crane {args:?} did not finish within {DEADLINE:?}"),
    }
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", describe(out)))
}

#[tokio::test]
async fn run_json_prints_the_completed_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let out = crane(
        dir.path(),
        &["run", "--json", "--data-dir", data, "what is 7 times 6"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let run = stdout_json(&out);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["result"]["value"], 42, "{run}");
    assert_eq!(run["plan"]["steps"][0]["tool"], "calculator", "{run}");
    assert!(run["run_id"].is_string());
    assert!(Path::new(data).is_dir(), "the data dir was not created");
}

#[tokio::test]
async fn run_of_an_unknown_task_exits_1_naming_the_clause() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = crane(
        dir.path(),
        &[
            "run",
            "--data-dir",
            data.to_str().unwrap(),
            "book a flight to Paris",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = describe(&out).to_lowercase();
    assert!(text.contains("failed"), "{text}");
    assert!(
        text.contains("book a flight"),
        "the output should name the clause:\n{text}"
    );

    let out = crane(
        dir.path(),
        &[
            "run",
            "--json",
            "--data-dir",
            data.to_str().unwrap(),
            "book a flight to Paris",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let run = stdout_json(&out);
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("book a flight"),
        "{run}"
    );
}

#[tokio::test]
async fn run_with_an_empty_prompt_is_bad_usage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for prompt in ["", "   "] {
        let out = crane(
            dir.path(),
            &["run", "--data-dir", data.to_str().unwrap(), prompt],
            &[],
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("empty"),
            "{}",
            describe(&out)
        );
    }
    // A missing prompt is bad usage too (clap).
    let out = crane(
        dir.path(),
        &["run", "--data-dir", data.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[tokio::test]
async fn plan_prints_the_plan_without_executing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let out = crane(
        dir.path(),
        &["plan", "--data-dir", data, "add a todo to buy milk"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let plan = stdout_json(&out);
    assert_eq!(plan["steps"][0]["tool"], "todo_add", "{plan}");
    assert_eq!(plan["steps"][0]["input"]["title"], "buy milk", "{plan}");
    assert_eq!(plan["steps"][0]["step_number"], 1, "{plan}");
    assert!(plan["planner"]["name"].is_string(), "{plan}");

    // Nothing was executed: the todo list in the same data dir is empty.
    let out = crane(
        dir.path(),
        &["run", "--json", "--data-dir", data, "show me all my tasks"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout_json(&out)["result"]["count"], 0);

    let out = crane(
        dir.path(),
        &["plan", "--data-dir", data, "book a flight to Paris"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        describe(&out).to_lowercase().contains("book a flight"),
        "{}",
        describe(&out)
    );
}

#[tokio::test]
async fn tools_lists_the_builtin_tools() {
    let dir = tempfile::tempdir().unwrap();
    let out = crane(dir.path(), &["tools"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let tools = stdout_json(&out);
    let tools = tools
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {tools}"));
    assert_eq!(tools.len(), 5, "{tools:?}");
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for want in [
        "calculator",
        "todo_add",
        "todo_list",
        "todo_complete",
        "todo_delete",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for tool in tools {
        assert!(
            tool["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{tool}"
        );
        assert!(tool["input_schema"].is_object(), "{tool}");
        assert!(tool["output_schema"].is_object(), "{tool}");
    }
}

#[tokio::test]
async fn data_dir_from_the_environment() {
    let cwd = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let env = [("CRANE_DATA_DIR", data.path())];
    let out = crane(
        cwd.path(),
        &["run", "--json", "add a todo to buy milk"],
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout_json(&out)["status"], "completed");

    let out = crane(cwd.path(), &["run", "--json", "show me all my tasks"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let run = stdout_json(&out);
    assert_eq!(titles(&run["result"]), ["buy milk"], "{run}");
    assert!(
        !cwd.path().join(".crane").exists(),
        "CRANE_DATA_DIR was ignored: the default ./.crane was used"
    );
    assert!(
        std::fs::read_dir(data.path()).unwrap().next().is_some(),
        "nothing stored in CRANE_DATA_DIR"
    );

    // The flag wins over the variable.
    let other = tempfile::tempdir().unwrap();
    let out = crane(
        cwd.path(),
        &[
            "run",
            "--json",
            "--data-dir",
            other.path().to_str().unwrap(),
            "show me all my tasks",
        ],
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout_json(&out)["result"]["count"], 0);
}

#[tokio::test]
async fn a_hosted_llm_without_a_key_is_reported_at_start() {
    // CRANE_LLM_MODEL alone means api.openai.com, which refuses keyless calls: say so at
    // start-up, naming what to set. (The rule strategy keeps this test off the network.)
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = crane(
        dir.path(),
        &[
            "run",
            "--planner-strategy",
            "rule",
            "--data-dir",
            data.to_str().unwrap(),
            "what is 7 times 6",
        ],
        &[("CRANE_LLM_MODEL", Path::new("gpt-4o-mini"))],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("api.openai.com needs an API key") && stderr.contains("CRANE_LLM_API_KEY"),
        "{}",
        describe(&out)
    );

    // With a key there is nothing to report.
    let out = crane(
        dir.path(),
        &[
            "run",
            "--planner-strategy",
            "rule",
            "--data-dir",
            data.to_str().unwrap(),
            "what is 1 plus 1",
        ],
        &[
            ("CRANE_LLM_MODEL", Path::new("gpt-4o-mini")),
            ("CRANE_LLM_API_KEY", Path::new("sk-test")),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("needs an API key"),
        "{}",
        describe(&out)
    );
}
