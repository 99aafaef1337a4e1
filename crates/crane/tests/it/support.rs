//! Test support: a `crane serve` child process on a temporary data dir, HTTP helpers, and
//! polling helpers that wait for a condition with a deadline (never a blind sleep).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long any condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Path of the binary under test.
pub fn crane_bin() -> &'static str {
    env!("CARGO_BIN_EXE_crane")
}

/// Every `CRANE_*` variable the binary reads, removed from children so the developer's
/// environment cannot change a test.
const CRANE_ENV: &[&str] = &[
    "CRANE_ADDR",
    "CRANE_DATA_DIR",
    "CRANE_DATABASE_URL",
    "CRANE_CONFIG",
    "CRANE_LOG_FORMAT",
    "CRANE_MAX_PROMPT_CHARS",
    "CRANE_WORKERS",
    "CRANE_STEP_TIMEOUT_MS",
    "CRANE_DEBUG_TOOLS",
    "CRANE_RETRY_MAX_ATTEMPTS",
    "CRANE_HEADER_READ_TIMEOUT_MS",
    "CRANE_REQUEST_TIMEOUT_MS",
    "CRANE_MAX_CONNECTIONS",
    "CRANE_MAX_HEADER_BYTES",
    "CRANE_LLM_PROVIDER",
    "CRANE_LLM_BASE_URL",
    "CRANE_LLM_API_KEY",
    "CRANE_LLM_MODEL",
    "CRANE_PROMPTS_DIR",
    "CRANE_PLANNER",
    "CRANE_URL",
    "CRANE_AUTH",
    "CRANE_ALERTS_WEBHOOK_URL",
];

/// A command for the binary with a clean `CRANE_*` environment, run from `cwd` (so no stray
/// `./crane.toml` or `./.crane` is picked up).
pub fn crane_command(cwd: &Path) -> Command {
    let mut cmd = Command::new(crane_bin());
    cmd.current_dir(cwd);
    for var in CRANE_ENV {
        cmd.env_remove(var);
    }
    // A developer's MLflow or trace collector must not receive the tests' evals, runs and
    // spans; tests set what they need.
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("MLFLOW_")
            || var.to_string_lossy().starts_with("CRANE_MLFLOW_")
            || var.to_string_lossy().starts_with("OTEL_")
        {
            cmd.env_remove(var);
        }
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

/// A running `crane serve`.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub client: reqwest::Client,
    root: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    starts: usize,
    /// The PostgreSQL database of a suite run on PostgreSQL (`CRANE_TEST_STORE=postgres`).
    _db: Option<crate::pg::TestDatabase>,
}

impl Server {
    /// Starts `crane serve` with `args` on a fresh data dir.
    pub async fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[]).await
    }

    /// Starts `crane serve` with `args` and extra environment variables on a fresh data dir.
    pub async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let db = if crate::pg::suite_on_postgres()
            && !env.iter().any(|(k, _)| k == "CRANE_DATABASE_URL")
        {
            let db = crate::pg::TestDatabase::create().await;
            env.push(("CRANE_DATABASE_URL".into(), db.url()));
            Some(db)
        } else {
            None
        };
        let mut server = Self {
            child: None,
            base: String::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            root,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env,
            starts: 0,
            _db: db,
        };
        server.spawn().await;
        server
    }

    /// Starts a server with the fault-injection tools and `args`.
    pub async fn start_debug(args: &[&str]) -> Self {
        let mut all = vec!["--debug-tools"];
        all.extend_from_slice(args);
        Self::start(&all).await
    }

    /// `crane` (a CLI command) in the server's data dir, on the server's database (its
    /// `CRANE_DATABASE_URL` when it has one).
    pub fn cli(&self) -> Command {
        let mut cmd = crane_command(&self.data_dir());
        if let Some(url) = self.env_var("CRANE_DATABASE_URL") {
            cmd.env("CRANE_DATABASE_URL", url);
        }
        cmd
    }

    /// An environment variable the server was started with.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The data directory (kept across restarts).
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.root.path().join(format!("server-{n}.log"))
    }

    /// Everything the server processes wrote to stderr so far.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                let text = std::fs::read_to_string(self.log_path(n)).unwrap_or_default();
                format!("--- server start {n} ---\n{text}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).expect("log file");
        let mut cmd = crane_command(self.root.path());
        cmd.arg("serve")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn crane serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = match tokio::time::timeout(DEADLINE, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                panic!(
                    "crane serve did not announce its address ({other:?}); logs:\n{}",
                    self.logs()
                );
            }
        };
        let base = line
            .strip_prefix("crane listening on ")
            .unwrap_or_else(|| panic!("unexpected first stdout line: {line:?}"))
            .trim()
            .to_owned();
        assert!(
            base.starts_with("http://127.0.0.1:"),
            "unexpected address {base}"
        );
        // Keep draining stdout so the child can never block on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.base = base;
        self.child = Some(child);
    }

    /// Starts the server again on the same data dir with the same arguments (new port).
    pub async fn restart(&mut self) {
        self.spawn().await;
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("the server is running")
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the server process to exit (after a signal), with a deadline.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        match tokio::time::timeout(DEADLINE, child.wait()).await {
            Ok(status) => status.expect("wait for crane"),
            Err(_) => {
                let _ = child.start_kill();
                panic!(
                    "crane did not exit within {DEADLINE:?}; logs:\n{}",
                    self.logs()
                );
            }
        }
    }

    /// Graceful stop: SIGTERM, then wait for the exit status.
    pub async fn stop_graceful(&mut self) -> ExitStatus {
        // A served request proves the signal handler is installed.
        let (status, _, _) = self.get("/health").await;
        assert_eq!(status, StatusCode::OK);
        self.sigterm();
        self.wait_exit().await
    }

    /// Hard kill (SIGKILL), as a crash would.
    pub async fn kill9(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        child.kill().await.expect("kill -9 crane");
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and decodes the JSON answer (Null when the body is not JSON).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, Value) {
        let resp = req.send().await.expect("request to crane");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> (StatusCode, HeaderMap, Value) {
        self.send(self.client.get(self.url(path))).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, HeaderMap, Value) {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    /// `POST path` without a body.
    pub async fn post_empty(&self, path: &str) -> (StatusCode, HeaderMap, Value) {
        self.send(self.client.post(self.url(path))).await
    }

    /// Creates a run (`POST /runs`, optionally `?wait=true`), asserting 201; returns the run.
    pub async fn create_run(&self, body: &Value, wait: bool) -> Value {
        let path = if wait { "/runs?wait=true" } else { "/runs" };
        let (status, _, run) = self.post_json(path, body).await;
        assert_eq!(status, StatusCode::CREATED, "POST {path} {body}: {run}");
        assert!(run["run_id"].is_string(), "no run_id in {run}");
        run
    }

    /// `GET /metrics` as text, asserting 200.
    pub async fn metrics_text(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("metrics text")
    }

    /// Polls `GET /metrics` until the sample `series` (name and labels exactly as rendered,
    /// e.g. `crane_x_total{result="ok"}`) exists and satisfies `pred`; returns its value. Fails
    /// at the deadline with the last scrape and the server's logs.
    pub async fn wait_for_metric(&self, series: &str, pred: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let text = self.metrics_text().await;
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok());
            if let Some(value) = value.filter(|v| pred(*v)) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{series} never matched (last {value:?}):\n{text}\nlogs:\n{}",
                self.logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Runs a prompt to completion (`?wait=true`); returns the finished run.
    pub async fn run_prompt(&self, prompt: &str) -> Value {
        let run = self
            .create_run(&serde_json::json!({"prompt": prompt}), true)
            .await;
        assert_terminal(&run);
        run
    }

    /// Runs a caller-supplied plan to completion (`?wait=true`).
    pub async fn run_steps(&self, steps: Value) -> Value {
        let run = self
            .create_run(
                &serde_json::json!({"prompt": "client plan", "steps": steps}),
                true,
            )
            .await;
        assert_terminal(&run);
        run
    }

    /// `GET /runs/{id}`, asserting 200.
    pub async fn get_run(&self, run_id: &str) -> Value {
        let (status, _, run) = self.get(&format!("/runs/{run_id}")).await;
        assert_eq!(status, StatusCode::OK, "GET /runs/{run_id}: {run}");
        run
    }

    /// Polls `GET /runs/{id}` until `pred` holds; fails with `what` and the last state at the
    /// deadline.
    pub async fn wait_for(&self, run_id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let run = self.get_run(run_id).await;
            if pred(&run) {
                return run;
            }
            if Instant::now() >= deadline {
                panic!(
                    "run {run_id}: gave up waiting for {what} after {DEADLINE:?}; last state:\n{}\nlogs:\n{}",
                    serde_json::to_string_pretty(&run).unwrap_or_default(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until the run reached `status`.
    pub async fn wait_status(&self, run_id: &str, status: &str) -> Value {
        self.wait_for(run_id, &format!("status {status}"), |r| {
            r["status"] == status
        })
        .await
    }

    /// Titles of every todo, listed through a new run of "show me all my tasks".
    pub async fn todo_titles(&self) -> Vec<String> {
        let run = self.run_prompt("show me all my tasks").await;
        assert_eq!(run["status"], "completed", "listing todos failed: {run}");
        titles(&run["result"])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("crane server logs ({}):\n{}", self.base, self.logs());
        }
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}

/// Asserts the run is in a terminal state.
pub fn assert_terminal(run: &Value) {
    let status = run["status"].as_str().unwrap_or("");
    assert!(
        matches!(status, "completed" | "failed" | "cancelled"),
        "expected a finished run, got status {status:?}: {run}"
    );
}

/// Titles in a `todo_list` output.
pub fn titles(list_output: &Value) -> Vec<String> {
    list_output["todos"]
        .as_array()
        .unwrap_or_else(|| panic!("not a todo_list output: {list_output}"))
        .iter()
        .map(|t| t["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Tools used by each step of the run's plan.
pub fn plan_tools(run: &Value) -> Vec<String> {
    run["plan"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("run has no plan: {run}"))
        .iter()
        .map(|s| s["tool"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Statuses of the execution log.
pub fn step_statuses(run: &Value) -> Vec<String> {
    run["execution_log"]
        .as_array()
        .unwrap_or_else(|| panic!("run has no execution_log: {run}"))
        .iter()
        .map(|s| s["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The `{"error": {...}}` object of an error answer, checked for shape.
pub fn error_of(body: &Value) -> &Value {
    let error = &body["error"];
    assert!(error["code"].is_string(), "no error.code in {body}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| !m.trim().is_empty()),
        "no error.message in {body}"
    );
    assert!(error.get("details").is_some(), "no error.details in {body}");
    error
}

/// Asserts an error answer: status, code, and a message containing `needle` (any case).
pub fn assert_error(
    status: StatusCode,
    body: &Value,
    want_status: StatusCode,
    code: &str,
    needle: &str,
) {
    assert_eq!(status, want_status, "unexpected status; body: {body}");
    let error = error_of(body);
    assert_eq!(error["code"], code, "unexpected code in {body}");
    let message = error["message"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        message.contains(&needle.to_lowercase()),
        "message {message:?} should mention {needle:?}"
    );
}

/// The `x-trace-id` header, asserted present and a 32-hex-digit W3C trace id.
pub fn trace_id(headers: &HeaderMap) -> String {
    let id = headers
        .get("x-trace-id")
        .unwrap_or_else(|| panic!("no x-trace-id header in {headers:?}"))
        .to_str()
        .expect("ascii x-trace-id")
        .to_owned();
    assert_eq!(id.len(), 32, "trace id {id:?} is not 32 hex digits");
    assert!(
        id.bytes().all(|b| b.is_ascii_hexdigit()),
        "trace id {id:?} is not hex"
    );
    id
}

/// `crane keys create --json` on the server's data dir (it works beside a running server);
/// returns (key_id, key).
pub async fn cli_key(server: &Server, tenant: &str, role: &str) -> (String, String) {
    let out = crane_command(&server.data_dir())
        .envs(
            server
                .env_var("CRANE_DATABASE_URL")
                .map(|u| ("CRANE_DATABASE_URL", u)),
        )
        .args([
            "keys", "create", "--tenant", tenant, "--role", role, "--json",
        ])
        .arg("--data-dir")
        .arg(server.data_dir())
        .output()
        .await
        .expect("run crane keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("keys create --json");
    assert_eq!(v["tenant"], tenant);
    assert_eq!(v["role"], role);
    (
        v["key_id"].as_str().expect("key_id").to_owned(),
        v["key"].as_str().expect("key").to_owned(),
    )
}
