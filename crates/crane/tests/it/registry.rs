//! The planner registry end to end: variants declared in crane.toml and listed over the API,
//! prompt templates with versions and content hashes (a changed released version refused at
//! start), aliases moved over the API and the CLI without a restart (with history and
//! rollback), and every run recording its variant, version and prompt hash. LLM variants plan
//! through an OpenAI-compatible mock (wiremock), which shows what each variant sent.

use std::path::Path;
use std::process::Output;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::llm_faults::{LlmCrane, MODEL, calc_plan, chat_ok};
use crate::support::{DEADLINE, crane_command};

/// Text appended to the built-in template for version 1.1.0.
const MARKER: &str = "Prefer the shortest plan.";

fn builtin_template() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crane-core/prompts/planner-1.0.0.jinja"),
    )
    .expect("built-in template")
}

/// A prompts dir holding planner-1.1.0.jinja (the built-in text plus [`MARKER`]).
fn prompts_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("planner-1.1.0.jinja"),
        format!("{}\n{MARKER}\n", builtin_template()),
    )
    .expect("write template");
    dir
}

fn config(mock: &MockServer) -> String {
    format!(
        r#"
[[llm.providers]]
name = "local"
base_url = "{}/v1"
model = "{MODEL}"
max_retries = 0

[[planners]]
name = "llm-a"
kind = "llm"
version = "1.0.0"
provider = "local"
prompt = "planner@1.0.0"
temperature = 0.0
fallback = []

[[planners]]
name = "llm-b"
kind = "llm"
version = "2.1.0"
description = "shorter plans"
provider = "local"
model = "other-model"
prompt = "planner@1.1.0"
temperature = 0.7
max_tokens = 300
few_shot = false
"#,
        mock.uri()
    )
}

async fn mock_llm() -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(chat_ok(&calc_plan().to_string()))
        .mount(&mock)
        .await;
    mock
}

async fn send(crane: &LlmCrane, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let _ = crane;
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn put_alias(crane: &LlmCrane, alias: &str, body: Value) -> (StatusCode, Value) {
    send(
        crane,
        crane
            .client
            .put(crane.url(&format!("/aliases/{alias}")))
            .json(&body),
    )
    .await
}

/// Runs `prompt` (with `planner` when given) and returns the finished run.
async fn run_with(crane: &LlmCrane, prompt: &str, planner: Option<&str>) -> (StatusCode, Value) {
    let mut body = json!({"prompt": prompt});
    if let Some(p) = planner {
        body["planner"] = json!(p);
    }
    send(
        crane,
        crane.client.post(crane.url("/runs?wait=true")).json(&body),
    )
    .await
}

fn variant_of(run: &Value) -> &Value {
    &run["plan"]["planner"]["variant"]
}

/// The chat requests the mock received, as JSON.
async fn requests(mock: &MockServer) -> Vec<Value> {
    mock.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

fn system_of(request: &Value) -> String {
    request["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn variants_are_listed_and_every_run_records_its_variant_and_prompt_hash() {
    let mock = mock_llm().await;
    let prompts = prompts_dir();
    let dir = prompts.path().to_str().unwrap().to_owned();
    let crane = LlmCrane::start(&[("CRANE_PROMPTS_DIR", &dir)], Some(&config(&mock))).await;

    let listed = crane.get_json("/planners").await;
    let names: Vec<&str> = listed["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rule", "default", "llm-a", "llm-b"], "{listed}");
    assert_eq!(listed["default"], "default");
    let b = crane.get_json("/planners/llm-b").await;
    assert_eq!(b["kind"], "llm");
    assert_eq!(b["version"], "2.1.0");
    assert_eq!(b["model"], "other-model");
    assert_eq!(b["temperature"], 0.7);
    assert_eq!(b["max_tokens"], 300);
    assert_eq!(b["few_shot"], false);
    assert_eq!(
        b["fallback"],
        json!(["rule"]),
        "llm variants fall back to rule by default"
    );
    assert_eq!(b["prompt"]["version"], "1.1.0");

    // The template as served is the file, and its hash is what the variant records.
    let t = crane.get_json("/prompts/planner/1.1.0").await;
    assert!(t["text"].as_str().unwrap().contains(MARKER));
    assert_eq!(t["hash"], b["prompt"]["hash"]);
    let all = crane.get_json("/prompts").await;
    let versions: Vec<String> = all["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}@{} used by {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap(),
                p["used_by"]
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            r#"planner@1.0.0 used by ["default","llm-a"]"#,
            r#"planner@1.1.0 used by ["llm-b"]"#
        ]
    );
    assert!(all["prompts"][1]["registered_at"].is_string(), "{all}");

    // Each variant's settings reach the wire.
    let (status, run) = run_with(&crane, "what is 7 times 6", Some("llm-b")).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["planner"], "llm-b");
    assert_eq!(
        variant_of(&run),
        &json!({"name": "llm-b", "version": "2.1.0"})
    );
    assert_eq!(run["plan"]["planner"]["prompt"]["hash"], t["hash"]);
    assert_eq!(run["plan"]["planner"]["prompt"]["version"], "1.1.0");
    let sent = requests(&mock).await;
    let last = sent.last().unwrap();
    assert_eq!(last["model"], "other-model");
    assert_eq!(last["temperature"], 0.7);
    assert_eq!(last["max_tokens"], 300);
    assert!(system_of(last).contains(MARKER));
    assert!(
        !system_of(last).contains("Task: Add a todo to buy milk"),
        "few_shot = false"
    );

    let (_, run) = run_with(&crane, "what is 7 times 6", Some("llm-a")).await;
    assert_eq!(variant_of(&run)["name"], "llm-a");
    let sent = requests(&mock).await;
    let last = sent.last().unwrap();
    assert_eq!(last["model"], MODEL);
    assert!(!system_of(last).contains(MARKER));
    assert!(system_of(last).contains("Task: Add a todo to buy milk"));

    // No planner and no production alias: the default variant.
    let (_, run) = run_with(&crane, "what is 7 times 6", None).await;
    assert_eq!(variant_of(&run)["name"], "default");
    assert!(run.get("planner").is_none(), "{run}");

    // An unknown planner is refused before anything is stored.
    let (status, body) = run_with(&crane, "what is 7 times 6", Some("nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "unknown_planner");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("llm-a") && message.contains("llm-b"),
        "{message}"
    );
    let (status, body) = send(&crane, crane.client.get(crane.url("/planners/nope"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn aliases_move_over_the_api_and_cli_without_a_restart_and_roll_back() {
    let mock = mock_llm().await;
    let prompts = prompts_dir();
    let dir = prompts.path().to_str().unwrap().to_owned();
    let crane = LlmCrane::start(&[("CRANE_PROMPTS_DIR", &dir)], Some(&config(&mock))).await;

    let (status, moved) = put_alias(
        &crane,
        "production",
        json!({"variant": "llm-a", "note": "first release"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["from"], Value::Null);
    assert_eq!(moved["to"], "llm-a");
    let (_, run) = run_with(&crane, "what is 7 times 6", None).await;
    assert_eq!(
        variant_of(&run),
        &json!({"name": "llm-a", "version": "1.0.0", "alias": "production"})
    );

    let (status, moved) = put_alias(&crane, "production", json!({"variant": "llm-b"})).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["from"], "llm-a");
    let (_, run) = run_with(&crane, "what is 7 times 6", None).await;
    assert_eq!(variant_of(&run)["name"], "llm-b");
    // A run may name the alias too.
    let (_, run) = run_with(&crane, "what is 7 times 6", Some("production")).await;
    assert_eq!(variant_of(&run)["alias"], "production");

    let (status, moved) = send(
        &crane,
        crane
            .client
            .post(crane.url("/aliases/production/rollback"))
            .json(&json!({"note": "b plans too long"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(
        (moved["from"].as_str(), moved["to"].as_str()),
        (Some("llm-b"), Some("llm-a"))
    );
    assert_eq!(moved["kind"], "rollback");
    let (_, run) = run_with(&crane, "what is 7 times 6", None).await;
    assert_eq!(variant_of(&run)["name"], "llm-a");

    // Nothing left to undo.
    let (status, body) = send(
        &crane,
        crane.client.post(crane.url("/aliases/production/rollback")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let history = crane.get_json("/aliases/production/history").await;
    let moves: Vec<(String, String, Value)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_owned(),
                m["to"].as_str().unwrap().to_owned(),
                m["note"].clone(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("promote".into(), "llm-a".into(), json!("first release")),
            ("promote".into(), "llm-b".into(), Value::Null),
            ("rollback".into(), "llm-a".into(), json!("b plans too long")),
        ]
    );

    // Bad moves are refused with what to do, and change nothing.
    for (alias, body, status, code) in [
        (
            "production",
            json!({"variant": "nope"}),
            StatusCode::NOT_FOUND,
            "unknown_planner",
        ),
        (
            "llm-a",
            json!({"variant": "llm-b"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "bad alias!",
            json!({"variant": "llm-b"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "production",
            json!({"variant": "llm-b", "extra": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "production",
            json!({"variant": "llm-b", "note": "x".repeat(1001)}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ] {
        let (got, answer) = put_alias(&crane, alias, body).await;
        assert_eq!(got, status, "{alias}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
    }
    let (status, body) = send(
        &crane,
        crane.client.post(crane.url("/aliases/never-set/rollback")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        crane.get_json("/planners").await["aliases"],
        json!({"production": "llm-a"})
    );

    // The CLI moves the alias in the data dir's store; the running server picks it up.
    let data_dir = crane.data_dir();
    let config_file = crane.root().join("crane.toml");
    let out = cli(
        crane.root(),
        &[
            "prompts",
            "promote",
            "llm-b",
            "--note",
            "from the cli",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--config",
            config_file.to_str().unwrap(),
        ],
        &dir,
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("production: llm-a → llm-b"),
        "{}",
        describe(&out)
    );
    let deadline = Instant::now() + DEADLINE;
    loop {
        let aliases = crane.get_json("/planners").await["aliases"].clone();
        if aliases == json!({"production": "llm-b"}) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never saw the CLI's move: {aliases}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, run) = run_with(&crane, "what is 7 times 6", None).await;
    assert_eq!(variant_of(&run)["name"], "llm-b");

    // And through the API with --url.
    let out = cli(
        crane.root(),
        &["prompts", "rollback", "--url", &crane.base],
        &dir,
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let (_, run) = run_with(&crane, "what is 7 times 6", None).await;
    assert_eq!(variant_of(&run)["name"], "llm-a");
}

async fn cli(cwd: &Path, args: &[&str], prompts_dir: &str) -> Output {
    let mut cmd = crane_command(cwd);
    cmd.env("CRANE_PROMPTS_DIR", prompts_dir).args(args);
    tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .expect("crane did not exit in time")
        .expect("run crane")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A rule-only registry: two rule variants, so no model is needed.
const RULE_CONFIG: &str = r#"
[[planners]]
name = "rules-v1"
kind = "rule"
version = "1.0.0"
description = "the rule planner, as released"

[[planners]]
name = "hybrid"
kind = "rule-first"
version = "0.1.0"
provider = "nowhere"
"#;

#[tokio::test]
async fn a_changed_template_or_declaration_without_a_version_bump_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let prompts = prompts_dir();
    let dir = prompts.path().to_str().unwrap().to_owned();
    let config_path = root.path().join("crane.toml");
    let mock = mock_llm().await;
    std::fs::write(&config_path, config(&mock)).unwrap();
    let run = |prompt: &'static str| {
        let root = root.path().to_owned();
        let dir = dir.clone();
        async move { cli(&root, &["run", "--planner", "llm-b", prompt], &dir).await }
    };
    let out = run("what is 7 times 6").await;
    assert!(out.status.success(), "{}", describe(&out));

    // Edit the released 1.1.0 template in place.
    let file = prompts.path().join("planner-1.1.0.jinja");
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{original}Also be polite.\n")).unwrap();
    let out = run("what is 7 times 6").await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("planner@1.1.0")
            && err.contains("changed since")
            && err.contains("planner-1.1.1.jinja"),
        "{err}"
    );
    // Saved as a new version instead (and the old file restored), it is accepted.
    std::fs::write(&file, &original).unwrap();
    std::fs::write(
        prompts.path().join("planner-1.1.1.jinja"),
        format!("{original}Also be polite.\n"),
    )
    .unwrap();
    let out = run("what is 7 times 6").await;
    assert!(out.status.success(), "{}", describe(&out));

    // A declaration that changes under the same version is refused too.
    let changed = config(&mock).replace("temperature = 0.7", "temperature = 0.9");
    std::fs::write(&config_path, &changed).unwrap();
    let out = run("what is 7 times 6").await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("llm-b@2.1.0") && err.contains("version = \"2.1.1\""),
        "{err}"
    );
    std::fs::write(
        &config_path,
        changed.replace("version = \"2.1.0\"", "version = \"2.2.0\""),
    )
    .unwrap();
    let out = run("what is 7 times 6").await;
    assert!(out.status.success(), "{}", describe(&out));

    // Earlier runs are untouched by the refusals.
    let out = cli(root.path(), &["prompts", "list", "--json"], &dir).await;
    assert!(out.status.success(), "{}", describe(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<String> = listed["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}@{} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap(),
                p["state"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            "planner@1.0.0 registered",
            "planner@1.1.0 registered",
            "planner@1.1.1 registered"
        ]
    );
}

#[tokio::test]
async fn the_prompts_cli_lists_shows_diffs_promotes_and_rolls_back() {
    let root = tempfile::tempdir().unwrap();
    let prompts = prompts_dir();
    let dir = prompts.path().to_str().unwrap().to_owned();
    let hybrid_provider = "[[llm.providers]]\nname = \"nowhere\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n";
    std::fs::write(
        root.path().join("crane.toml"),
        format!("{hybrid_provider}{RULE_CONFIG}"),
    )
    .unwrap();
    let crane = |args: &'static [&'static str]| {
        let root = root.path().to_owned();
        let dir = dir.clone();
        async move { cli(&root, args, &dir).await }
    };
    let stdout = |out: &Output| String::from_utf8_lossy(&out.stdout).into_owned();

    let out = crane(&["prompts", "list"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    for expected in [
        "rules-v1",
        "hybrid",
        "rule-first",
        "planner@1.1.0",
        "aliases:",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }

    let out = crane(&["prompts", "show", "planner@1.1.0"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stdout(&out).contains(MARKER));
    let out = crane(&["prompts", "show", "hybrid", "--json"]).await;
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["kind"], "rule-first");
    assert_eq!(shown["fallback"], json!(["rule"]));
    let out = crane(&["prompts", "show", "missing"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    let out = crane(&["prompts", "diff", "planner@1.0.0", "planner@1.1.0"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).contains(&format!("+{MARKER}")),
        "{}",
        stdout(&out)
    );
    let out = crane(&["prompts", "diff", "rules-v1", "hybrid"]).await;
    assert!(
        stdout(&out).contains("-kind = \"rule\"")
            && stdout(&out).contains("+kind = \"rule-first\""),
        "{}",
        stdout(&out)
    );

    let out = crane(&["prompts", "promote", "rules-v1"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let out = crane(&["prompts", "promote", "hybrid", "--note", "try hybrid"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let out = crane(&["run", "--json", "what is 2 plus 2"]).await;
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        variant_of(&run),
        &json!({"name": "hybrid", "version": "0.1.0", "alias": "production"}),
        "the rule part of the hybrid planned it"
    );
    let out = crane(&["prompts", "rollback", "--note", "back"]).await;
    assert!(
        stdout(&out).contains("production: hybrid → rules-v1"),
        "{}",
        describe(&out)
    );
    let out = crane(&["run", "--json", "what is 2 plus 2"]).await;
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(variant_of(&run)["name"], "rules-v1");
    let out = crane(&["prompts", "promote", "nope"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown planner variant 'nope'"));
    let out = crane(&["prompts", "history", "--json"]).await;
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 3, "{history}");
    let out = crane(&["run", "--planner", "nope", "what is 2 plus 2"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[tokio::test]
async fn eval_compares_variants_and_records_their_identity() {
    let mock = mock_llm().await;
    let root = tempfile::tempdir().unwrap();
    let prompts = prompts_dir();
    let dir = prompts.path().to_str().unwrap().to_owned();
    std::fs::write(root.path().join("crane.toml"), config(&mock)).unwrap();
    let dataset = root.path().join("cases.jsonl");
    std::fs::write(
        &dataset,
        r#"{"id": "calc", "prompt": "what is 7 times 6", "expect": {"steps": [{"tool": "calculator", "input": {"expression": "7*6"}}], "result": {"value": 42}}}
"#,
    )
    .unwrap();
    let report = root.path().join("report.json");
    let out = cli(
        root.path(),
        &[
            "eval",
            "--dataset",
            dataset.to_str().unwrap(),
            "--planner",
            "llm-b",
            "--planner",
            "rule",
            "--arg-match",
            "normalized",
            "--report",
            report.to_str().unwrap(),
        ],
        &dir,
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let b = &report["planners"][0];
    assert_eq!(b["planner"], "llm-b");
    assert_eq!(b["variant"]["version"], "2.1.0");
    assert_eq!(b["variant"]["kind"], "llm");
    assert_eq!(b["variant"]["prompt"], "planner@1.1.0");
    assert_eq!(b["variant"]["prompt_hash"].as_str().unwrap().len(), 64);
    assert_eq!(b["summary"]["passed_runs"], 1, "{b}");
    assert_eq!(
        b["summary"]["input_tokens"], 100,
        "the LLM variant was called"
    );
    let r = &report["planners"][1];
    assert_eq!(r["variant"]["kind"], "rule");
    assert_eq!(r["summary"]["input_tokens"], 0);
    // The aliases of the data dir resolve too.
    let out = cli(
        root.path(),
        &["prompts", "promote", "llm-a", "--alias", "candidate"],
        &dir,
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let out = cli(
        root.path(),
        &[
            "eval",
            "--dataset",
            dataset.to_str().unwrap(),
            "--planner",
            "candidate",
            "--report",
            "r2.json",
        ],
        &dir,
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value =
        serde_json::from_slice(&std::fs::read(root.path().join("r2.json")).unwrap()).unwrap();
    assert_eq!(report["planners"][0]["variant"]["name"], "llm-a");
    assert_eq!(report["planners"][0]["variant"]["alias"], "candidate");
    let out = cli(
        root.path(),
        &[
            "eval",
            "--dataset",
            dataset.to_str().unwrap(),
            "--planner",
            "nope",
        ],
        &dir,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown planner 'nope'"),
        "{}",
        describe(&out)
    );
}
