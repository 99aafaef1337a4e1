//! Experiment tracking against a real MLflow tracking server (installed by
//! scripts/install-test-deps.sh into ~/.cache/crane/venv-mlflow, or `CRANE_TEST_MLFLOW`):
//! `crane eval` logs one MLflow run per planner (params, metrics equal to the JSON report,
//! tags, the report and summary as artifacts), and `crane serve` with per-run export on logs
//! every finished run in batches and flushes its queue at shutdown. Everything is read back over
//! MLflow's REST API. With MLflow down (nothing listening, or a wiremock answering 503/400), an
//! eval keeps its exit code with a warning, runs still complete, and the exporter's
//! dropped/failed/retry counters show in /metrics.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{DEADLINE, Server, crane_command};

fn mlflow_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CRANE_TEST_MLFLOW") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cache/crane/venv-mlflow/bin/mlflow")
}

/// A running MLflow tracking server (its own process group: `mlflow server` starts uvicorn as
/// a child, and both must go).
struct Mlflow {
    child: Child,
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Mlflow {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The group id is the leader's pid (process_group(0) below).
            let _ = std::process::Command::new("kill")
                .args(["-s", "KILL", "--"])
                .arg(format!("-{pid}"))
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.start_kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts MLflow the lean way (SQLite backend, one worker, no job execution) on a free port and
/// waits for `/health`.
async fn start_mlflow() -> Mlflow {
    let bin = mlflow_bin();
    assert!(
        bin.exists(),
        "MLflow is not installed at {}; run scripts/install-test-deps.sh",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("mlflow.log")).unwrap();
    let child = Command::new(&bin)
        .arg("server")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--workers", "1"])
        .arg("--backend-store-uri")
        .arg(format!(
            "sqlite:///{}",
            dir.path().join("mlflow.db").display()
        ))
        .arg("--artifacts-destination")
        .arg(dir.path().join("artifacts"))
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut mlflow = Mlflow {
        child,
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = mlflow
            .client
            .get(format!("{}/health", mlflow.base))
            .send()
            .await
            && r.status().is_success()
        {
            return mlflow;
        }
        if let Ok(Some(status)) = mlflow.child.try_wait() {
            let log =
                std::fs::read_to_string(mlflow._dir.path().join("mlflow.log")).unwrap_or_default();
            panic!("MLflow exited ({status}) before it was ready:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "MLflow did not answer /health within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Mlflow {
    async fn api_post(&self, endpoint: &str, body: &Value) -> Value {
        let r = self
            .client
            .post(format!("{}/api/2.0/mlflow/{endpoint}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "MLflow {endpoint}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The experiment's id, or None while it does not exist.
    async fn experiment_id(&self, name: &str) -> Option<String> {
        let r = self
            .client
            .get(
                reqwest::Url::parse_with_params(
                    &format!("{}/api/2.0/mlflow/experiments/get-by-name", self.base),
                    [("experiment_name", name)],
                )
                .unwrap(),
            )
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::NOT_FOUND {
            return None;
        }
        let v: Value = r.json().await.unwrap();
        Some(
            v["experiment"]["experiment_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    /// Every run of the experiment matching `filter` (MLflow search syntax).
    async fn search(&self, experiment_id: &str, filter: &str) -> Vec<Value> {
        let v = self
            .api_post(
                "runs/search",
                &json!({"experiment_ids": [experiment_id], "filter": filter, "max_results": 1000}),
            )
            .await;
        v["runs"].as_array().cloned().unwrap_or_default()
    }

    /// Polls until the experiment exists and `want` of its runs are in a terminal state.
    async fn wait_runs(&self, experiment: &str, want: usize) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        let mut last = Vec::new();
        loop {
            if let Some(id) = self.experiment_id(experiment).await {
                last = self.search(&id, "").await;
                let done = last
                    .iter()
                    .filter(|r| r["info"]["status"] != "RUNNING")
                    .count();
                if done >= want {
                    return last;
                }
            }
            assert!(
                Instant::now() < deadline,
                "MLflow experiment {experiment} did not get {want} finished runs within {DEADLINE:?}; last: {}",
                serde_json::to_string_pretty(&last).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn artifact(&self, info: &Value, name: &str) -> String {
        let uri = info["artifact_uri"].as_str().unwrap();
        let rel = uri
            .strip_prefix("mlflow-artifacts:/")
            .unwrap_or_else(|| panic!("artifact uri {uri}"));
        let r = self
            .client
            .get(format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{rel}/{name}",
                self.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "artifact {name} of {uri}");
        r.text().await.unwrap()
    }
}

/// `key → value` of a run's params or tags.
fn pairs(run: &Value, what: &str) -> std::collections::HashMap<String, String> {
    run["data"][what]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|kv| {
            (
                kv["key"].as_str().unwrap().to_owned(),
                kv["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn metrics_of(run: &Value) -> std::collections::HashMap<String, f64> {
    run["data"]["metrics"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            (
                m["key"].as_str().unwrap().to_owned(),
                m["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn dataset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// MLflow's variables, removed so the developer's environment cannot change a test.
const MLFLOW_ENV: &[&str] = &[
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "CRANE_MLFLOW_LOG_RUNS",
    "CRANE_MLFLOW_RUNS_EXPERIMENT",
];

/// Runs `crane eval ARGS` from `cwd` with `env`, with a deadline.
async fn crane_eval(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = crane_command(cwd);
    for var in MLFLOW_ENV {
        cmd.env_remove(var);
    }
    cmd.arg("eval")
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    match tokio::time::timeout(DEADLINE * 4, cmd.output()).await {
        Ok(out) => out.expect("run crane eval"),
        Err(_) => panic!("crane eval {args:?} did not finish in time"),
    }
}

#[tokio::test]
async fn eval_is_logged_to_mlflow_with_report_figures_and_artifacts() {
    let mlflow = start_mlflow().await;
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("out/report.json");
    let data = dir.path().join("data");
    let golden = dataset("golden.jsonl");
    let out = crane_eval(
        dir.path(),
        &[
            "--dataset",
            golden.to_str().unwrap(),
            "--planner",
            "rule",
            "--min-success-rate",
            "1.0",
            "--report",
            report_path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[
            ("MLFLOW_TRACKING_URI", &mlflow.base),
            ("MLFLOW_EXPERIMENT_NAME", "crane-it-evals"),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "mlflow: planner rule logged as {}/#/experiments/",
            mlflow.base
        )),
        "no MLflow run URL on stderr: {}",
        describe(&out)
    );
    assert!(!stderr.contains("warning"), "{}", describe(&out));

    let report_text = std::fs::read_to_string(&report_path).unwrap();
    let report: Value = serde_json::from_str(&report_text).unwrap();
    let eval_id = report["eval_id"].as_str().unwrap();
    let planner = &report["planners"][0];
    let summary = &planner["summary"];

    let exp = mlflow
        .experiment_id("crane-it-evals")
        .await
        .expect("the eval experiment was created");
    let runs = mlflow
        .search(&exp, &format!("tags.`crane.eval_id` = '{eval_id}'"))
        .await;
    assert_eq!(runs.len(), 1, "one MLflow run per planner: {runs:?}");
    let run = &runs[0];
    let info = &run["info"];
    assert_eq!(info["status"], "FINISHED", "{info}");
    assert!(
        stderr.contains(&format!(
            "/#/experiments/{exp}/runs/{}",
            info["run_id"].as_str().unwrap()
        )),
        "{stderr}"
    );

    // Params: the variant's identity and how the eval ran.
    let params = pairs(run, "params");
    let variant = &planner["variant"];
    assert_eq!(params["planner"], "rule");
    assert_eq!(params["variant"], variant["name"].as_str().unwrap());
    assert_eq!(params["kind"], variant["kind"].as_str().unwrap());
    assert_eq!(params["version"], variant["version"].as_str().unwrap());
    for optional in ["prompt", "prompt_hash", "model", "alias"] {
        assert_eq!(
            params.get(optional).map(String::as_str),
            variant[optional].as_str(),
            "param {optional}"
        );
    }
    assert_eq!(params["dataset"], golden.to_str().unwrap());
    assert_eq!(params["repeat"], "1");
    assert_eq!(params["concurrency"], report["concurrency"].to_string());
    assert_eq!(
        params["crane_version"],
        report["crane_version"].as_str().unwrap()
    );
    assert_eq!(params["gates"], "min-success-rate 1");

    // Metrics: equal to the report's figures.
    let metrics = metrics_of(run);
    let f = |v: &Value| v.as_f64().unwrap();
    assert_eq!(metrics["success_rate"], f(&summary["success_rate"]));
    assert_eq!(metrics["runs"], f(&summary["runs"]));
    assert_eq!(metrics["passed_runs"], f(&summary["passed_runs"]));
    assert_eq!(metrics["latency_p50_ms"], f(&summary["latency_ms"]["p50"]));
    assert_eq!(metrics["latency_p95_ms"], f(&summary["latency_ms"]["p95"]));
    assert_eq!(metrics["latency_p99_ms"], f(&summary["latency_ms"]["p99"]));
    assert_eq!(metrics["input_tokens"], f(&summary["input_tokens"]));
    assert_eq!(metrics["output_tokens"], f(&summary["output_tokens"]));
    assert_eq!(metrics["cost_usd"], f(&summary["cost_usd"]));
    assert_eq!(
        metrics["tool_accuracy"],
        f(&summary["scorers"]["tool_sequence"]["pass_rate"])
    );
    for (name, stats) in summary["scorers"].as_object().unwrap() {
        assert_eq!(metrics[&format!("scorer.{name}.mean")], f(&stats["mean"]));
        if let Some(rate) = stats["pass_rate"].as_f64() {
            assert_eq!(metrics[&format!("scorer.{name}.pass_rate")], rate);
        }
    }
    let tags_summary = planner["tags"].as_object().unwrap();
    assert!(!tags_summary.is_empty());
    for (tag, s) in tags_summary {
        assert_eq!(
            metrics[&format!("tag.{tag}.success_rate")],
            f(&s["success_rate"]),
            "tag {tag}"
        );
    }

    // Tags.
    let tags = pairs(run, "tags");
    assert_eq!(tags["crane.eval_id"], eval_id);
    assert_eq!(tags["crane.gates_passed"], "true");
    assert_eq!(tags["mlflow.source.name"], "crane eval");
    assert_eq!(tags["crane.dataset"], golden.to_str().unwrap());
    assert!(
        tags["mlflow.runName"].starts_with("rule · golden · "),
        "{tags:?}"
    );
    assert_eq!(info["run_name"], tags["mlflow.runName"].as_str());

    // Artifacts: the report as written, and the Markdown summary.
    let artifact = mlflow.artifact(info, "report.json").await;
    assert_eq!(
        artifact, report_text,
        "report.json artifact differs from --report"
    );
    let markdown = mlflow.artifact(info, "summary.md").await;
    assert_eq!(
        markdown,
        std::fs::read_to_string(dir.path().join("out/report.md")).unwrap()
    );
}

/// Value of a `{exporter="mlflow"}` series in a Prometheus text exposition.
fn exporter_metric(text: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{exporter=\"mlflow\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls /metrics until `pred` holds for the exporter counter `name`.
async fn wait_metric(server: &Server, name: &str, what: &str, pred: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = server.metrics_text().await;
        if let Some(v) = exporter_metric(&text, name)
            && pred(v)
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {what}; /metrics:\n{text}\nlogs:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms_of(ts: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

#[tokio::test]
async fn serve_exports_finished_runs_in_batches_and_flushes_at_shutdown() {
    let mlflow = start_mlflow().await;
    let experiment = "crane-it-runs";
    // Batches of 3; the interval is long, so a batch leaves either full or at shutdown.
    let mut server = Server::start_with_env(
        &[],
        &[
            ("MLFLOW_TRACKING_URI", &mlflow.base),
            ("CRANE_MLFLOW_LOG_RUNS", "true"),
            ("CRANE_MLFLOW_RUNS_EXPERIMENT", experiment),
            ("CRANE_MLFLOW_BATCH_SIZE", "3"),
            ("CRANE_MLFLOW_FLUSH_INTERVAL_MS", "600000"),
        ],
    )
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut runs = Vec::new();
    for (prompt, user) in [
        ("what is (41*7)+13", "alice"),
        (
            "add a todo to buy milk and then show me all my tasks",
            "bob",
        ),
        ("book a flight to Paris", "alice"),
    ] {
        let req = server
            .client
            .post(server.url("/runs?wait=true"))
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .json(&json!({"prompt": prompt, "user_id": user}));
        let (status, _, run) = server.send(req).await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        runs.push(run);
    }
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(runs[1]["status"], "completed");
    assert_eq!(runs[2]["status"], "failed");

    // A full batch goes out without waiting for the interval.
    let exported = mlflow.wait_runs(experiment, 3).await;
    assert_eq!(exported.len(), 3);
    for run in &runs {
        let id = run["run_id"].as_str().unwrap();
        let m = exported
            .iter()
            .find(|r| r["info"]["run_name"] == id)
            .unwrap_or_else(|| panic!("run {id} not in MLflow"));
        let tags = pairs(m, "tags");
        assert_eq!(tags["crane.run_id"], id);
        assert_eq!(tags["crane.status"], run["status"].as_str().unwrap());
        assert_eq!(tags["crane.user_id"], run["user_id"].as_str().unwrap());
        assert_eq!(tags["crane.trace_id"], trace_id);
        assert_eq!(tags["mlflow.source.name"], "crane serve");
        let want = if run["status"] == "completed" {
            "FINISHED"
        } else {
            "FAILED"
        };
        assert_eq!(m["info"]["status"], want, "{}", m["info"]);
        assert_eq!(m["info"]["start_time"], ms_of(&run["created_at"]));
        assert_eq!(m["info"]["end_time"], ms_of(&run["completed_at"]));
        let metrics = metrics_of(m);
        let steps = run["execution_log"].as_array().unwrap().len() as f64;
        assert_eq!(metrics["steps"], steps, "{metrics:?}");
        assert!(metrics["duration_ms"] >= 0.0);
        assert_eq!(metrics["success"], f64::from(u8::from(want == "FINISHED")));
        if let Some(planner) = run["plan"]["planner"].as_object() {
            assert_eq!(
                tags["crane.planner.name"],
                planner["name"].as_str().unwrap()
            );
            assert_eq!(
                tags["crane.planner.version"],
                planner["version"].as_str().unwrap()
            );
            assert_eq!(
                tags["crane.planner.source"],
                planner["source"].as_str().unwrap()
            );
            assert_eq!(
                pairs(m, "params")["planner"],
                planner["name"].as_str().unwrap()
            );
            if let Some(v) = planner.get("variant") {
                assert_eq!(
                    tags["crane.variant"],
                    format!(
                        "{}@{}",
                        v["name"].as_str().unwrap(),
                        v["version"].as_str().unwrap()
                    )
                );
            }
        }
    }
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("# HELP crane_tracking_exported_total"),
        "{metrics}"
    );
    wait_metric(&server, "crane_tracking_exported_total", "3", |v| v == 3.0).await;
    assert_eq!(
        exporter_metric(&metrics, "crane_tracking_dropped_total"),
        Some(0.0)
    );

    // Two more runs: the batch is not full and the interval is ten minutes, so only the
    // shutdown flush can export them.
    for prompt in ["what is 2+2", "what is 3*3"] {
        let run = server.run_prompt(prompt).await;
        assert_eq!(run["status"], "completed", "{run}");
    }
    let status = server.stop_graceful().await;
    assert!(status.success(), "{status:?}\n{}", server.logs());
    let exported = mlflow.wait_runs(experiment, 5).await;
    assert_eq!(exported.len(), 5, "{}", server.logs());
}

#[tokio::test]
async fn serve_exports_the_sampled_share_of_runs_chosen_by_trace_id() {
    let mlflow = start_mlflow().await;
    let experiment = "crane-it-sampled";
    let server = Server::start_with_env(
        &[],
        &[
            ("MLFLOW_TRACKING_URI", &mlflow.base),
            ("CRANE_MLFLOW_LOG_RUNS", "true"),
            ("CRANE_MLFLOW_RUNS_EXPERIMENT", experiment),
            ("CRANE_MLFLOW_RUNS_SAMPLE_RATIO", "0.5"),
            ("CRANE_MLFLOW_BATCH_SIZE", "2"),
            ("CRANE_MLFLOW_FLUSH_INTERVAL_MS", "600000"),
        ],
    )
    .await;
    // The trace id's low 64 bits decide, as OpenTelemetry's ratio sampler does: small ones
    // are kept at 0.5, large ones are not.
    let mut kept = Vec::new();
    for (i, low) in [
        "0000000000000001",
        "f000000000000001",
        "1000000000000002",
        "ff00000000000003",
    ]
    .iter()
    .enumerate()
    {
        let req = server
            .client
            .post(server.url("/runs?wait=true"))
            .header(
                "traceparent",
                format!("00-4bf92f3577b34da6{low}-00f067aa0ba902b7-01"),
            )
            .json(&json!({"prompt": format!("what is {i} plus 1")}));
        let (status, _, run) = server.send(req).await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        if !low.starts_with('f') {
            kept.push(run["run_id"].as_str().unwrap().to_owned());
        }
    }
    let skipped = wait_metric(&server, "crane_tracking_sampled_out_total", "2", |v| {
        v == 2.0
    })
    .await;
    assert_eq!(skipped, 2.0);
    let exported = mlflow.wait_runs(experiment, 2).await;
    let mut names: Vec<String> = exported
        .iter()
        .map(|r| {
            r["info"]["run_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    names.sort();
    kept.sort();
    assert_eq!(names, kept);
    let dropped = exporter_metric(&server.metrics_text().await, "crane_tracking_dropped_total");
    assert_eq!(dropped, Some(0.0));
}

#[tokio::test]
async fn eval_keeps_its_exit_code_when_mlflow_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let golden = dataset("golden.jsonl");
    let args = |report: &'static str| {
        vec![
            "--dataset".to_owned(),
            golden.to_str().unwrap().to_owned(),
            "--no-store".to_owned(),
            "--report".to_owned(),
            dir.path().join(report).to_str().unwrap().to_owned(),
        ]
    };

    // Nothing listens: connection refused, retried briefly, then a warning.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let a = args("a.json");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let out = crane_eval(dir.path(), &a, &[("MLFLOW_TRACKING_URI", &dead)]).await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: MLflow export failed") && stderr.contains("unreachable"),
        "{}",
        describe(&out)
    );
    assert!(took < Duration::from_secs(20), "eval took {took:?}");

    // A server answering 503: retried (more than one request), then a warning; a violated
    // gate still exits 1, not something else.
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_string("down for maintenance"))
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&mock)
        .await;
    let mut b = args("b.json");
    b.extend(["--max-p95-ms".to_owned(), "0".to_owned()]);
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let out = crane_eval(dir.path(), &b, &[("MLFLOW_TRACKING_URI", &mock.uri())]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: MLflow export failed") && stderr.contains("503"),
        "{}",
        describe(&out)
    );
    assert!(stderr.contains("eval gates violated"), "{}", describe(&out));
    let requests = mock.received_requests().await.unwrap();
    assert!(
        requests.len() > 1,
        "a 503 should be retried; got {} request(s)",
        requests.len()
    );
}

#[tokio::test]
async fn serve_runs_complete_when_mlflow_is_down_and_counters_show_it() {
    // Nothing listens on the tracking URI; the queue holds 2 runs.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut server = Server::start_with_env(
        &[],
        &[
            ("MLFLOW_TRACKING_URI", &dead),
            ("CRANE_MLFLOW_LOG_RUNS", "true"),
            ("CRANE_MLFLOW_QUEUE_CAPACITY", "2"),
            ("CRANE_MLFLOW_BATCH_SIZE", "1"),
            ("CRANE_MLFLOW_FLUSH_INTERVAL_MS", "10"),
            ("CRANE_MLFLOW_SHUTDOWN_TIMEOUT_MS", "500"),
        ],
    )
    .await;
    let started = std::time::Instant::now();
    for i in 0..10 {
        let run = server.run_prompt(&format!("what is {i}+1")).await;
        assert_eq!(run["status"], "completed", "{run}");
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "10 runs took {took:?} with MLflow down"
    );
    // One run is held by the retrying batch, two wait in the queue; the rest are dropped.
    wait_metric(&server, "crane_tracking_dropped_total", ">= 5", |v| {
        v >= 5.0
    })
    .await;
    wait_metric(&server, "crane_tracking_retries_total", ">= 1", |v| {
        v >= 1.0
    })
    .await;
    let text = server.metrics_text().await;
    assert_eq!(
        exporter_metric(&text, "crane_tracking_exported_total"),
        Some(0.0)
    );
    for name in [
        "crane_tracking_dropped_total",
        "crane_tracking_failed_total",
        "crane_tracking_retries_total",
        "crane_tracking_queue_depth",
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
    }
    // Shutdown waits for the flush at most its timeout.
    let t0 = std::time::Instant::now();
    let status = server.stop_graceful().await;
    assert!(status.success(), "{status:?}\n{}", server.logs());
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        t0.elapsed()
    );
    assert!(
        server.logs().contains("left unexported at shutdown"),
        "{}",
        server.logs()
    );
}

#[tokio::test]
async fn serve_counts_runs_mlflow_rejects_as_failed() {
    // An MLflow that knows the experiment but rejects every run.
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/2.0/mlflow/experiments/get-by-name"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"experiment": {"experiment_id": "7", "name": "crane-runs", "lifecycle_stage": "active"}}),
        ))
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/2.0/mlflow/runs/create"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "no runs today"}),
        ))
        .mount(&mock)
        .await;
    let server = Server::start_with_env(
        &[],
        &[
            ("MLFLOW_TRACKING_URI", &mock.uri()),
            ("CRANE_MLFLOW_LOG_RUNS", "true"),
            ("CRANE_MLFLOW_FLUSH_INTERVAL_MS", "10"),
        ],
    )
    .await;
    for i in 0..3 {
        let run = server.run_prompt(&format!("what is {i}*2")).await;
        assert_eq!(run["status"], "completed", "{run}");
    }
    wait_metric(&server, "crane_tracking_failed_total", "3", |v| v == 3.0).await;
    let text = server.metrics_text().await;
    assert_eq!(
        exporter_metric(&text, "crane_tracking_exported_total"),
        Some(0.0)
    );
    // A rejection is not retried.
    assert_eq!(
        exporter_metric(&text, "crane_tracking_retries_total"),
        Some(0.0)
    );
    assert!(
        server.logs().contains("no runs today"),
        "the rejection is logged: {}",
        server.logs()
    );
}

/// An A/B experiment that ends is logged as one MLflow run: params (arms, alpha), per-arm
/// metrics equal to what `GET /experiments/{name}` reports, tags, and the analysis artifact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_experiment_is_logged_to_mlflow_with_its_arms_and_analysis() {
    let mlflow = start_mlflow().await;
    let (_mock, config) = crate::experiments::mock_and_config().await;
    let crane =
        crate::llm_faults::LlmCrane::start(&[("MLFLOW_TRACKING_URI", &mlflow.base)], Some(&config))
            .await;
    let r = crane
        .client
        .post(crane.url("/experiments"))
        .json(&json!({"name": "tracked", "arms": [{"planner": "llm-bad"}, {"planner": "llm-good", "weight": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    for i in 0..12 {
        let r = crane
            .client
            .post(crane.url("/runs?wait=true"))
            .json(&json!({"prompt": "what is 7 times 6", "user_id": format!("u{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = crane
        .client
        .post(crane.url("/experiments/tracked/stop"))
        .json(&json!({"note": "enough"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();

    let runs = mlflow.wait_runs("crane-ab-experiments", 1).await;
    let run = runs
        .iter()
        .find(|r| r["info"]["run_name"] == "tracked")
        .unwrap_or_else(|| panic!("no run named tracked: {runs:?}"));
    assert_eq!(run["info"]["status"], "FINISHED");
    let params = pairs(run, "params");
    assert_eq!(params["arms"], "llm-bad=1,llm-good=2");
    assert_eq!(params["alpha"], "0.05");
    let tags = pairs(run, "tags");
    assert_eq!(tags["crane.experiment"], "tracked");
    assert_eq!(tags["crane.status"], "stopped");
    assert_eq!(
        tags["crane.decision"],
        view["analysis"]["decision"].as_str().unwrap()
    );
    let metrics = metrics_of(run);
    let mut total = 0.0;
    for arm in view["arms"].as_array().unwrap() {
        let planner = arm["planner"].as_str().unwrap();
        let runs = metrics[&format!("arm.{planner}.runs")];
        assert_eq!(runs, arm["runs"].as_f64().unwrap(), "{metrics:?}");
        total += runs;
        if let Some(rate) = arm["success_rate"].as_f64() {
            assert_eq!(metrics[&format!("arm.{planner}.success_rate")], rate);
        }
    }
    assert_eq!(total, 12.0, "{metrics:?}");
    let analysis: Value =
        serde_json::from_str(&mlflow.artifact(&run["info"], "analysis.json").await).unwrap();
    assert_eq!(analysis["name"], "tracked");
    assert_eq!(analysis["arms"], view["arms"]);
    assert_eq!(analysis["note"], "enough");
}
