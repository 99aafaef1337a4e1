//! `crane eval`: the golden and adversarial datasets at 100 % with the rule planner, gates
//! (exit 1 naming the cases), bad usage (exit 2 naming file:line), `--repeat` pass rates,
//! `crane eval compare`, `--url` against a running server, and stored evals over HTTP.

use std::path::{Path, PathBuf};
use std::process::Output;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{DEADLINE, Server, assert_error, crane_command};

/// Runs `crane ARGS` from `cwd` with a deadline.
async fn crane(cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = crane_command(cwd);
    cmd.args(args).env("RUST_LOG", "warn").kill_on_drop(true);
    match tokio::time::timeout(DEADLINE * 4, cmd.output()).await {
        Ok(out) => out.expect("run crane"),
        Err(_) => panic!("crane {args:?} did not finish in time"),
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

fn dataset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn write(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Cases in a JSONL file (non-blank lines).
fn case_count(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}

const GOOD: &[&str] = &[
    r#"{"id": "calc", "prompt": "what is 7 times 6", "tags": ["calculator"], "expect": {"steps": [{"tool": "calculator", "input": {"expression": "7 * 6"}}], "result": {"value": 42}}}"#,
    r#"{"id": "reject", "prompt": "book a flight to Paris", "tags": ["impossible"], "expect": {"reject": true, "error_contains": ["book a flight"]}}"#,
    r#"{"id": "complete", "prompt": "mark buy milk as done", "setup_todos": ["buy milk"], "tags": ["todo"], "expect": {"steps": [{"tool": "todo_complete", "input": {"title": "buy milk"}}], "result": {"todo": {"title": "buy milk", "done": true}}}}"#,
];

/// `GOOD` with the calculator case expecting a wrong value.
const WRONG: &[&str] = &[
    r#"{"id": "calc", "prompt": "what is 7 times 6", "tags": ["calculator"], "expect": {"steps": [{"tool": "calculator", "input": {"expression": "7 * 6"}}], "result": {"value": 43}}}"#,
    r#"{"id": "reject", "prompt": "book a flight to Paris", "tags": ["impossible"], "expect": {"reject": true, "error_contains": ["book a flight"]}}"#,
    r#"{"id": "complete", "prompt": "mark buy milk as done", "setup_todos": ["buy milk"], "tags": ["todo"], "expect": {"steps": [{"tool": "todo_complete", "input": {"title": "buy milk"}}], "result": {"todo": {"title": "buy milk", "done": true}}}}"#,
];

/// Runs the dataset with the rule planner and the 100 % gate; checks the report's counts.
async fn passes_fully(name: &str, min_cases: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dataset(name);
    let report = dir.path().join("out/report.json");
    let data = dir.path().join("data");
    let out = crane(
        dir.path(),
        &[
            "eval",
            "--dataset",
            s(&path),
            "--planner",
            "rule",
            "--min-success-rate",
            "1.0",
            "--report",
            s(&report),
            "--data-dir",
            s(&data),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let cases = case_count(&path);
    assert!(
        cases >= min_cases,
        "{name} has {cases} cases; at least {min_cases} expected"
    );
    let r = read_json(&report);
    assert_eq!(r["dataset"]["cases"], cases, "{}", r["dataset"]);
    assert_eq!(r["repeat"], 1);
    assert_eq!(r["target"], "in_process");
    assert_eq!(r["gates"]["passed"], true, "{}", r["gates"]);
    let planners = r["planners"].as_array().unwrap();
    assert_eq!(planners.len(), 1);
    let summary = &planners[0]["summary"];
    assert_eq!(planners[0]["planner"], "rule");
    assert_eq!(summary["cases"], cases, "{summary}");
    assert_eq!(summary["runs"], cases, "{summary}");
    assert_eq!(summary["passed_runs"], cases, "{summary}");
    assert_eq!(summary["success_rate"], 1.0, "{summary}");
    assert_eq!(planners[0]["cases"].as_array().unwrap().len() as u64, cases);
    assert!(
        planners[0]["tags"]
            .as_object()
            .is_some_and(|t| !t.is_empty()),
        "no per-tag summary"
    );
    let markdown = std::fs::read_to_string(dir.path().join("out/report.md"))
        .expect("markdown next to the report");
    assert!(
        markdown.contains("## Per tag") && markdown.contains("| rule |"),
        "{markdown}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stored as eval"), "{stdout}");
    assert!(
        data.join("crane.db").exists(),
        "the eval was not stored in --data-dir"
    );
}

#[tokio::test]
async fn golden_set_passes_fully_with_the_rule_planner() {
    passes_fully("golden.jsonl", 100).await;
}

#[tokio::test]
async fn adversarial_set_passes_fully_with_the_rule_planner() {
    passes_fully("adversarial.jsonl", 30).await;
}

#[tokio::test]
async fn a_wrong_expectation_violates_the_gate_naming_the_case() {
    let dir = tempfile::tempdir().unwrap();
    let set = write(dir.path(), "wrong.jsonl", WRONG);
    let report = dir.path().join("r.json");
    let out = crane(
        dir.path(),
        &[
            "eval",
            "--dataset",
            s(&set),
            "--min-success-rate",
            "1",
            "--report",
            s(&report),
            "--no-store",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--min-success-rate"), "{}", describe(&out));
    assert!(
        stderr.contains("calc (0/1 passed"),
        "the gate should name the case:\n{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("result.value: 42, expected 43"),
        "{}",
        describe(&out)
    );
    let r = read_json(&report);
    assert_eq!(r["gates"]["passed"], false);
    assert_eq!(r["gates"]["violations"][0]["gate"], "min-success-rate");
    assert_eq!(
        r["gates"]["violations"][0]["cases"][0],
        "calc (0/1 passed, line 1)"
    );
    assert_eq!(r["planners"][0]["summary"]["passed_runs"], 2);
    assert!(
        !dir.path().join(".crane").exists(),
        "--no-store still stored the eval"
    );

    // A lower bar passes, and so does the latency gate at a generous bound.
    let out = crane(
        dir.path(),
        &[
            "eval",
            "--dataset",
            s(&set),
            "--min-success-rate",
            "0.6",
            "--max-p95-ms",
            "5000",
            "--no-store",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // An impossible latency bound fails naming the slow cases.
    let out = crane(
        dir.path(),
        &[
            "eval",
            "--dataset",
            s(&set),
            "--max-p95-ms",
            "0",
            "--no-store",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--max-p95-ms"),
        "{}",
        describe(&out)
    );
}

#[tokio::test]
async fn bad_usage_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = GOOD[0];
    let bad = write(
        dir.path(),
        "bad.jsonl",
        &[good, "", r#"{"id": "x", "prompt": "1+1", "expect": "#],
    );
    let out = crane(dir.path(), &["eval", "--dataset", s(&bad), "--no-store"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:", bad.display())),
        "should name file:line:\n{stderr}"
    );

    let typo = write(
        dir.path(),
        "typo.jsonl",
        &[r#"{"id": "x", "prompt": "1+1", "expect": {"reslt": {"value": 2}}}"#],
    );
    let out = crane(dir.path(), &["eval", "--dataset", s(&typo), "--no-store"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("typo.jsonl:1: "),
        "{}",
        describe(&out)
    );

    let missing = dir.path().join("missing.jsonl");
    let out = crane(
        dir.path(),
        &["eval", "--dataset", s(&missing), "--no-store"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing.jsonl"),
        "{}",
        describe(&out)
    );

    let set = write(dir.path(), "good.jsonl", GOOD);
    let out = crane(
        dir.path(),
        &[
            "eval",
            "--dataset",
            s(&set),
            "--planner",
            "gpt-9",
            "--no-store",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown planner 'gpt-9'") && stderr.contains("rule"),
        "{stderr}"
    );

    for args in [
        vec!["eval"],
        vec!["eval", "--dataset", s(&set), "--min-success-rate", "1.5"],
        vec!["eval", "--dataset", s(&set), "--repeat", "0"],
    ] {
        let out = crane(dir.path(), &args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
    }
}

#[tokio::test]
async fn repeat_reports_the_pass_rate_of_each_case() {
    let dir = tempfile::tempdir().unwrap();
    let set = write(dir.path(), "wrong.jsonl", WRONG);
    let report = dir.path().join("r.json");
    let out = crane(
        dir.path(),
        &[
            "eval",
            "--dataset",
            s(&set),
            "--repeat",
            "3",
            "--concurrency",
            "2",
            "--report",
            s(&report),
            "--no-store",
        ],
    )
    .await;
    // No gate set: exit 0 even with a failing case.
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let r = read_json(&report);
    assert_eq!(r["repeat"], 3);
    let planner = &r["planners"][0];
    assert_eq!(planner["summary"]["runs"], 9);
    assert_eq!(planner["summary"]["passed_runs"], 6);
    for case in planner["cases"].as_array().unwrap() {
        assert_eq!(case["runs"], 3, "{case}");
        assert_eq!(case["trials"].as_array().unwrap().len(), 3, "{case}");
        let want = if case["id"] == "calc" { 0.0 } else { 1.0 };
        assert_eq!(case["pass_rate"], want, "{case}");
    }
    let markdown = std::fs::read_to_string(dir.path().join("r.md")).unwrap();
    assert!(
        markdown.contains("## Pass rate per case (3 repeats)"),
        "{markdown}"
    );
    assert!(markdown.contains("calc: 0/3 (0%)"), "{markdown}");

    let out = crane(
        dir.path(),
        &[
            "eval",
            "--dataset",
            s(&set),
            "--repeat",
            "3",
            "--min-case-pass-rate",
            "0.5",
            "--no-store",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("calc (0/3 passed"),
        "{}",
        describe(&out)
    );
}

/// Sets every number under a `latency_ms` key to 1.0.
fn zero_latencies(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "latency_ms" {
                    set_numbers(v);
                } else {
                    zero_latencies(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(zero_latencies),
        _ => {}
    }
}

fn set_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(_) => *value = serde_json::json!(1.0),
        serde_json::Value::Object(map) => map.values_mut().for_each(set_numbers),
        serde_json::Value::Array(items) => items.iter_mut().for_each(set_numbers),
        _ => {}
    }
}

#[tokio::test]
async fn compare_lists_regressions_and_passes_identical_reports() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.jsonl", GOOD);
    let wrong = write(dir.path(), "wrong.jsonl", WRONG);
    let base = dir.path().join("base.json");
    let new = dir.path().join("new.json");
    for (set, report) in [(&good, &base), (&wrong, &new)] {
        let out = crane(
            dir.path(),
            &[
                "eval",
                "--dataset",
                s(set),
                "--report",
                s(report),
                "--no-store",
            ],
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    }
    // The two reports come from separate real runs whose latencies differ with machine load;
    // this test is about case regressions, so both get the same latency figures.
    for report in [&base, &new] {
        let mut doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
        zero_latencies(&mut doc);
        std::fs::write(report, doc.to_string()).unwrap();
    }
    let out = crane(dir.path(), &["eval", "compare", s(&base), s(&new)]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("case calc passed 1/1 and now passes 0/1"),
        "{stdout}"
    );

    let out = crane(dir.path(), &["eval", "compare", s(&base), s(&base)]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no regressions"),
        "{}",
        describe(&out)
    );

    // The fix is an improvement, not a regression.
    let out = crane(dir.path(), &["eval", "compare", s(&new), s(&base)]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("now passes"),
        "{}",
        describe(&out)
    );

    let out = crane(dir.path(), &["eval", "compare", s(&base), s(&good)]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "not a report: {}",
        describe(&out)
    );
}

#[tokio::test]
async fn url_mode_runs_against_a_live_server() {
    let server = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let set = write(dir.path(), "good.jsonl", GOOD);
    let report = dir.path().join("r.json");
    let out = crane(
        dir.path(),
        &[
            "eval",
            "--url",
            &server.base,
            "--dataset",
            s(&set),
            "--min-success-rate",
            "1",
            "--report",
            s(&report),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not stored"),
        "{}",
        describe(&out)
    );
    let r = read_json(&report);
    assert_eq!(r["target"], server.base);
    assert_eq!(
        r["planners"][0]["summary"]["passed_runs"], 3,
        "{}",
        r["planners"][0]["summary"]
    );
    // The runs (and the setup plan) are on the server.
    let (status, _, runs) = server.get("/runs?limit=10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 4, "{runs}");
    assert!(
        !dir.path().join(".crane").exists(),
        "--url stored the eval locally"
    );

    let out = crane(
        dir.path(),
        &[
            "eval",
            "--url",
            &server.base,
            "--dataset",
            s(&set),
            "--planner",
            "rule",
            "--planner",
            "rule",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[tokio::test]
async fn stored_evals_are_listed_and_served_over_http() {
    let server = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let set = write(dir.path(), "good.jsonl", GOOD);
    let data = server.data_dir();
    // `crane eval` on the server's store (its data dir, or its database).
    let eval = || async {
        let mut cmd = server.cli();
        cmd.current_dir(dir.path())
            .args(["eval", "--dataset", s(&set), "--data-dir", s(&data)])
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        tokio::time::timeout(DEADLINE * 4, cmd.output())
            .await
            .expect("crane eval finished in time")
            .expect("run crane")
    };
    let out = eval().await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let eval_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("stored as eval "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no eval id in stdout:\n{stdout}"))
        .to_owned();

    let (status, _, list) = server.get("/evals").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let first = &list["evals"][0];
    assert_eq!(first["eval_id"], eval_id, "{list}");
    assert_eq!(first["summary"]["cases"], 3, "{list}");
    assert_eq!(
        first["summary"]["planners"][0]["success_rate"], 1.0,
        "{list}"
    );
    assert!(
        first.get("report").is_none(),
        "the listing should not carry reports"
    );

    let (status, _, report) = server.get(&format!("/evals/{eval_id}")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["eval_id"], eval_id);
    assert_eq!(report["planners"][0]["cases"].as_array().unwrap().len(), 3);

    let (status, _, body) = server.get("/evals/no-such-eval").await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "not_found",
        "no-such-eval",
    );

    // Newest first.
    let out = eval().await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let (_, _, list) = server.get("/evals?limit=1").await;
    assert_eq!(list["evals"].as_array().unwrap().len(), 1);
    assert_ne!(list["evals"][0]["eval_id"], eval_id, "{list}");
    assert!(list["next_cursor"].is_string(), "{list}");
}
