//! LLM planning under faults, end to end: the real `crane serve` binary plans through
//! OpenAI-compatible (and Anthropic) mock upstreams (wiremock) that fail in every way a model
//! server does. Each test asserts what the run records (`plan.planner.source`, `attempts`,
//! `usage`, `cost_usd`, `repaired`, or `plan_failure` when no plan was made), what the mock
//! received, and that nothing hangs.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::time::Instant;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{DEADLINE, assert_terminal, crane_command, plan_tools};

/// The API key used everywhere; it must never show up in anything crane outputs.
pub const KEY: &str = "sk-test-SECRET123";
/// The model the mocks serve.
pub const MODEL: &str = "test-model";
/// A prompt the rule planner understands (7 * 6 = 42).
pub const CALC: &str = "what is 7 times 6";
/// A prompt the rule planner rejects.
pub const NONSENSE: &str = "paint the fence blue";
/// Pricing for [`MODEL`]: input 1.0 USD and output 2.0 USD per million tokens.
pub const PRICING: &str =
    "[llm.pricing.test-model]\ninput_per_million = 1.0\noutput_per_million = 2.0\n";
/// Cost of one answer of [`chat_ok`] (100 input + 20 output tokens) at [`PRICING`].
const ONE_CALL_USD: f64 = 100.0 * 1.0 / 1e6 + 20.0 * 2.0 / 1e6;

/// A `crane serve` child with LLM environment variables and an optional crane.toml.
pub struct LlmCrane {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub client: reqwest::Client,
    root: tempfile::TempDir,
}

impl LlmCrane {
    /// Starts `crane serve` with `env` set and, when given, `config` as its crane.toml.
    pub async fn start(env: &[(&str, &str)], config: Option<&str>) -> Self {
        Self::start_with_log(env, config, "info").await
    }

    /// Like [`LlmCrane::start`] with `RUST_LOG` set to `log`.
    pub async fn start_with_log(env: &[(&str, &str)], config: Option<&str>, log: &str) -> Self {
        let mut crane = Self {
            child: None,
            base: String::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .expect("http client"),
            root: tempfile::tempdir().expect("temp dir"),
        };
        crane.spawn(env, config, log).await;
        crane
    }

    /// Kills the server (SIGKILL) and starts it again on the same data dir with `env` and
    /// `config` (a new port).
    pub async fn kill9_and_restart(&mut self, env: &[(&str, &str)], config: Option<&str>) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill -9 crane");
        }
        self.spawn(env, config, "info").await;
    }

    async fn spawn(&mut self, env: &[(&str, &str)], config: Option<&str>, log: &str) {
        let root = self.root.path();
        let mut cmd = crane_command(root);
        cmd.env_remove("CRANE_PLANNER_STRATEGY");
        cmd.env("RUST_LOG", log);
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd.arg("serve")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(root.join("data"));
        if let Some(text) = config {
            let file = root.join("crane.toml");
            std::fs::write(&file, text).expect("write crane.toml");
            cmd.arg("--config").arg(&file);
        }
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("server.log"))
            .expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
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
        self.base = line
            .strip_prefix("crane listening on ")
            .unwrap_or_else(|| panic!("unexpected first stdout line: {line:?}"))
            .trim()
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    /// The temporary root (crane.toml and the data dir live here).
    pub fn root(&self) -> &std::path::Path {
        self.root.path()
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Everything the server wrote to stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /runs?wait=true` for `prompt`, bounded; asserts 201 and a finished run. Returns
    /// the run and how long it took.
    pub async fn run_timed(&self, prompt: &str) -> (Value, Duration) {
        self.run_within(prompt, DEADLINE).await
    }

    /// Like [`LlmCrane::run_timed`], failing when the answer takes longer than `limit`.
    pub async fn run_within(&self, prompt: &str, limit: Duration) -> (Value, Duration) {
        let started = Instant::now();
        let request = self
            .client
            .post(self.url("/runs?wait=true"))
            .json(&json!({"prompt": prompt}))
            .send();
        let response = match tokio::time::timeout(limit, request).await {
            Ok(response) => response.expect("POST /runs"),
            Err(_) => panic!(
                "POST /runs?wait=true for {prompt:?} did not answer within {limit:?}; logs:\n{}",
                self.logs()
            ),
        };
        let status = response.status();
        let text = response.text().await.expect("response body");
        let run: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::CREATED, "POST /runs {prompt:?}: {text}");
        assert_terminal(&run);
        (run, started.elapsed())
    }

    /// `POST /runs?wait=true` for `prompt`; the finished run.
    pub async fn run(&self, prompt: &str) -> Value {
        self.run_timed(prompt).await.0
    }

    /// `GET path` as JSON, asserting 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
    }

    /// `GET path` as text, asserting 200.
    pub async fn get_text(&self, path: &str) -> String {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.text().await.expect("body")
    }

    /// The value of the Prometheus sample `name{labels}` (labels exactly as rendered, e.g.
    /// `provider="primary"`), or `None` when the series is absent.
    pub async fn metric(&self, name: &str, labels: &str) -> Option<f64> {
        let text = self.get_text("/metrics").await;
        let wanted = format!("{name}{{{labels}}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&wanted))
            .and_then(|value| value.trim().parse().ok())
    }
}

impl Drop for LlmCrane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("crane server logs ({}):\n{}", self.base, self.logs());
        }
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}

/// The environment for one OpenAI-compatible provider at `mock` (named `primary`).
fn openai_env(mock: &MockServer) -> Vec<(&'static str, String)> {
    vec![
        ("CRANE_LLM_BASE_URL", format!("{}/v1", mock.uri())),
        ("CRANE_LLM_MODEL", MODEL.to_owned()),
        ("CRANE_LLM_API_KEY", KEY.to_owned()),
    ]
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Starts crane against `mock` (env contract) with an optional crane.toml.
async fn crane_for(mock: &MockServer, config: Option<&str>) -> LlmCrane {
    LlmCrane::start(&as_refs(&openai_env(mock)), config).await
}

/// The plan answer for [`CALC`].
pub fn calc_plan() -> Value {
    json!({"steps": [{"tool": "calculator", "input": {"expression": "7*6"}, "reasoning": "r"}]})
}

/// A Chat Completions answer whose message content is `content`, with usage 100 in / 20 out.
pub fn chat_ok(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    }))
}

/// A valid plan answer for [`CALC`].
pub fn plan_ok() -> ResponseTemplate {
    chat_ok(&calc_plan().to_string())
}

fn chat_mock(template: ResponseTemplate) -> Mock {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(template)
}

/// A mock answering every chat call with `template`.
async fn mock_always(template: ResponseTemplate) -> MockServer {
    let mock = MockServer::start().await;
    chat_mock(template).mount(&mock).await;
    mock
}

/// A mock answering the first `n` chat calls with `first`, then `then`.
async fn mock_first_then(first: ResponseTemplate, n: u64, then: ResponseTemplate) -> MockServer {
    let mock = MockServer::start().await;
    chat_mock(first)
        .up_to_n_times(n)
        .with_priority(1)
        .mount(&mock)
        .await;
    chat_mock(then).with_priority(2).mount(&mock).await;
    mock
}

/// Requests the mock received so far.
async fn received(mock: &MockServer) -> Vec<Request> {
    mock.received_requests().await.unwrap_or_default()
}

/// JSON bodies of the requests the mock received.
async fn bodies(mock: &MockServer) -> Vec<Value> {
    received(mock)
        .await
        .iter()
        .map(|r| r.body_json::<Value>().expect("request body is JSON"))
        .collect()
}

/// `(layer, category)` of each recorded planner attempt.
pub fn attempts(run: &Value) -> Vec<(String, String)> {
    run["plan"]["planner"]["attempts"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    (
                        a["layer"].as_str().unwrap_or_default().to_owned(),
                        a["category"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The planner record of a run.
pub fn planner(run: &Value) -> &Value {
    &run["plan"]["planner"]
}

/// Asserts the run completed with the calculator answer 42 from a plan of `source`.
#[track_caller]
fn assert_calc_run(run: &Value, source: &str) {
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(planner(run)["source"], source, "{run}");
    assert_eq!(plan_tools(run), ["calculator"], "{run}");
    assert_eq!(run["result"]["value"], 42, "{run}");
}

/// Asserts a fallback run: completed by the rule planner after the LLM failed with `category`.
#[track_caller]
fn assert_fallback(run: &Value, category: &str) {
    assert_calc_run(run, "fallback");
    assert_eq!(
        attempts(run),
        pairs(&[("llm:primary", category)]),
        "{}",
        planner(run)
    );
    let message = run["plan"]["planner"]["attempts"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        !message.trim().is_empty(),
        "attempt without a message: {run}"
    );
}

/// Content of the last message of a chat request body.
fn last_message(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// Asserts `text` does not contain the API key.
#[track_caller]
fn assert_no_key(what: &str, text: &str) {
    assert!(
        !text.contains(KEY) && !text.contains("SECRET123"),
        "the API key leaked into {what}:\n{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// The happy path: what a successful LLM plan records.

#[tokio::test]
async fn llm_plan_records_provider_usage_cost_and_request_shape() {
    let mock = mock_always(plan_ok()).await;
    let crane = crane_for(&mock, Some(PRICING)).await;
    let run = crane.run(CALC).await;
    assert_calc_run(&run, "llm");
    let info = planner(&run);
    assert_eq!(info["provider"], "primary", "{info}");
    assert_eq!(info["model"], MODEL, "{info}");
    assert_eq!(info["mode"], "json_schema", "{info}");
    assert_eq!(info["name"], "llm:primary", "{info}");
    assert_eq!(info["prompt"]["name"], "planner", "{info}");
    assert_eq!(
        info["prompt"]["hash"].as_str().map(str::len),
        Some(64),
        "{info}"
    );
    assert_eq!(
        info["usage"],
        json!({"input_tokens": 100, "output_tokens": 20})
    );
    // Exactly, as written in the JSON: no binary float noise (0.00014000000000000001).
    assert_eq!(info["cost_usd"].to_string(), "0.00014");
    let cost = info["cost_usd"].as_f64().expect("cost_usd");
    assert!(
        (cost - ONE_CALL_USD).abs() < 1e-12,
        "cost {cost} != 0.00014"
    );
    assert!(info.get("repaired").is_none_or(|r| r == false), "{info}");
    assert!(attempts(&run).is_empty(), "{info}");
    assert_eq!(run["plan"]["steps"][0]["input"]["expression"], "7*6");

    // What crane sent: one request, the model, structured output, the prompt, the key.
    let requests = received(&mock).await;
    assert_eq!(requests.len(), 1);
    let auth = requests[0]
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(auth, format!("Bearer {KEY}"));
    let body: Value = requests[0].body_json().expect("JSON body");
    assert_eq!(body["model"], MODEL);
    // Streamed planning asks for a stream (on by default); this mock answers plain JSON,
    // which is decoded as the normal answer.
    assert_eq!(body["stream"], true);
    assert_eq!(body["response_format"]["type"], "json_schema");
    let schema = &body["response_format"]["json_schema"]["schema"];
    assert!(schema["properties"]["steps"].is_object(), "{schema}");
    assert_eq!(last_message(&body), CALC);
    assert_eq!(body["messages"][0]["role"], "system");

    // Aggregates.
    let stats = crane.get_json("/metrics/planner").await;
    assert_eq!(stats["plans_total"], 1, "{stats}");
    assert_eq!(stats["by_source"]["llm"]["count"], 1, "{stats}");
    assert_eq!(stats["fallback_rate"], 0.0, "{stats}");
    assert_eq!(
        stats["tokens"],
        json!({"input": 100, "output": 20}),
        "{stats}"
    );
    let model = &stats["by_model"][0];
    assert_eq!(model["provider"], "primary", "{stats}");
    assert_eq!(model["model"], MODEL, "{stats}");
    assert_eq!(model["requests"], 1, "{stats}");
    assert_eq!(model["input_tokens"], 100, "{stats}");
    assert_eq!(model["output_tokens"], 20, "{stats}");
    let model_cost = model["cost_usd"].as_f64().expect("by_model cost");
    assert!((model_cost - ONE_CALL_USD).abs() < 1e-12, "{stats}");
    let total_cost = stats["cost_usd"].as_f64().expect("cost_usd");
    assert!((total_cost - ONE_CALL_USD).abs() < 1e-12, "{stats}");

    let metrics = crane.get_text("/metrics").await;
    assert!(metrics.contains("crane_llm_requests_total"), "{metrics}");
    assert!(metrics.contains("crane_llm_tokens_total"), "{metrics}");
    assert_eq!(
        crane
            .metric("crane_llm_circuit_breaker_state", "provider=\"primary\"")
            .await,
        Some(0.0)
    );
}

#[tokio::test]
async fn unpriced_model_records_usage_without_cost() {
    let mock = mock_always(plan_ok()).await;
    let crane = crane_for(&mock, None).await;
    let run = crane.run(CALC).await;
    assert_calc_run(&run, "llm");
    assert_eq!(
        planner(&run)["usage"],
        json!({"input_tokens": 100, "output_tokens": 20})
    );
    assert!(planner(&run).get("cost_usd").is_none(), "{run}");
}

// ---------------------------------------------------------------------------------------------
// Availability failures: retries, fallback, timeouts.

#[tokio::test]
async fn server_error_then_ok_is_retried() {
    // Only json_schema configured: a 500 can not be a mode rejection, so it is retried as is.
    let mock = mock_first_then(ResponseTemplate::new(500), 1, plan_ok()).await;
    let config = format!(
        "[[llm.providers]]\nname = \"primary\"\nbase_url = \"{}/v1\"\nmodel = \"{MODEL}\"\n\
         modes = [\"json_schema\"]\n",
        mock.uri()
    );
    let crane = LlmCrane::start(&[], Some(&config)).await;
    let run = crane.run(CALC).await;
    assert_calc_run(&run, "llm");
    assert!(attempts(&run).is_empty(), "{run}");
    let sent = bodies(&mock).await;
    assert_eq!(sent.len(), 2, "one failure, one retry");
    assert_eq!(sent[0], sent[1], "the retry resends the same request");
    assert_eq!(planner(&run)["mode"], "json_schema");
}

#[tokio::test]
async fn bare_500_on_the_first_request_downgrades_the_structured_mode() {
    // llama.cpp answers json_schema with a 500: with the default modes crane moves on to
    // json_object, succeeds, and starts there from then on.
    let mock = mock_first_then(ResponseTemplate::new(500), 1, plan_ok()).await;
    let crane = crane_for(&mock, None).await;
    let run = crane.run(CALC).await;
    assert_calc_run(&run, "llm");
    assert_eq!(planner(&run)["mode"], "json_object", "{run}");
    let sent = bodies(&mock).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["response_format"]["type"], "json_schema");
    assert_eq!(sent[1]["response_format"]["type"], "json_object");
    let run = crane.run("what is 6 times 7").await;
    assert_eq!(planner(&run)["mode"], "json_object", "{run}");
    let sent = bodies(&mock).await;
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2]["response_format"]["type"], "json_object");
}

#[tokio::test]
async fn unavailable_server_falls_back_after_retries() {
    let mock = mock_always(ResponseTemplate::new(503).set_body_string("overloaded")).await;
    let crane = crane_for(&mock, None).await;
    let (run, elapsed) = crane.run_timed(CALC).await;
    assert_fallback(&run, "server");
    let message = run["plan"]["planner"]["attempts"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("503"), "{message}");
    // The default policy: the first attempt and two retries.
    assert_eq!(received(&mock).await.len(), 3);
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");

    let stats = crane.get_json("/metrics/planner").await;
    assert_eq!(stats["fallback_rate"], 1.0, "{stats}");
    assert_eq!(stats["by_source"]["fallback"]["count"], 1, "{stats}");
    assert_eq!(stats["errors_by_category"]["server"], 1, "{stats}");
}

#[tokio::test]
async fn rate_limit_retry_after_is_honoured() {
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after", "1")
        .set_body_json(json!({"error": {"message": "slow down"}}));
    let mock = mock_first_then(limited, 1, plan_ok()).await;
    let crane = crane_for(&mock, None).await;
    let (run, elapsed) = crane.run_timed(CALC).await;
    assert_calc_run(&run, "llm");
    let sent = bodies(&mock).await;
    assert_eq!(sent.len(), 2);
    // A 429 is not a mode rejection: the retry uses the same mode.
    assert_eq!(sent[1]["response_format"]["type"], "json_schema");
    assert!(
        elapsed >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured (run took {elapsed:?})"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[tokio::test]
async fn connection_refused_falls_back_fast() {
    let url = format!("http://127.0.0.1:{}/v1", closed_port());
    let crane = LlmCrane::start(
        &[
            ("CRANE_LLM_BASE_URL", url.as_str()),
            ("CRANE_LLM_MODEL", MODEL),
        ],
        None,
    )
    .await;
    let (run, elapsed) = crane.run_timed(CALC).await;
    assert_fallback(&run, "network");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    // Nothing reached the server: one attempt, no backoff before the fallback.
    let message = planner(&run)["attempts"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("not retried"), "{message}");
    assert!(!message.contains("attempts"), "{message}");
}

#[tokio::test]
async fn slow_response_times_out_and_falls_back() {
    let mock = mock_always(plan_ok().set_delay(Duration::from_secs(10))).await;
    let config = format!(
        "[[llm.providers]]\nname = \"primary\"\nbase_url = \"{}/v1\"\nmodel = \"{MODEL}\"\n\
         timeout_ms = 300\nmax_retries = 0\n",
        mock.uri()
    );
    let crane = LlmCrane::start(&[], Some(&config)).await;
    let (run, elapsed) = crane.run_timed(CALC).await;
    assert_fallback(&run, "timeout");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert_eq!(received(&mock).await.len(), 1);
}

#[tokio::test]
async fn planning_deadline_bounds_a_slow_provider() {
    // The provider's own timeout is the 30 s default; the planner's deadline cuts it short.
    let mock = mock_always(plan_ok().set_delay(Duration::from_secs(20))).await;
    let crane = crane_for(&mock, Some("[planner]\ndeadline_ms = 500\n")).await;
    let (run, elapsed) = crane.run_timed(CALC).await;
    assert_fallback(&run, "timeout");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

// ---------------------------------------------------------------------------------------------
// Bad answers: not a usable JSON object (no repair), or an invalid plan (one repair round).

#[tokio::test]
async fn malformed_body_falls_back_without_repair() {
    let mock = mock_always(
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/json")
            .set_body_string("{\"choices\": [{\"message\": "),
    )
    .await;
    let crane = crane_for(&mock, None).await;
    let run = crane.run(CALC).await;
    assert_fallback(&run, "invalid_output");
    assert_eq!(received(&mock).await.len(), 1);
}

#[tokio::test]
async fn empty_choices_fall_back() {
    let mock = mock_always(ResponseTemplate::new(200).set_body_json(json!({
        "model": MODEL, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 0}
    })))
    .await;
    let crane = crane_for(&mock, None).await;
    let run = crane.run(CALC).await;
    assert_fallback(&run, "invalid_output");
    let message = run["plan"]["planner"]["attempts"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("no choices"), "{message}");
}

#[tokio::test]
async fn model_declining_falls_back_as_unsupported() {
    let declined = json!({"steps": [], "error": "I cannot do that"}).to_string();
    let mock = mock_always(chat_ok(&declined)).await;
    let crane = crane_for(&mock, None).await;
    let run = crane.run(CALC).await;
    assert_fallback(&run, "unsupported");
    assert_eq!(received(&mock).await.len(), 1, "a refusal is not repaired");
}

/// One invalid first answer: with `repair_ok` the repair answer is valid (→ llm, repaired),
/// otherwise it repeats the bad answer (→ fallback, invalid_plan). The repair request must
/// quote the validation problem (`needle`).
async fn repair_case(bad: Value, needle: &str, repair_ok: bool) {
    let then = if repair_ok {
        plan_ok()
    } else {
        chat_ok(&bad.to_string())
    };
    let mock = mock_first_then(chat_ok(&bad.to_string()), 1, then).await;
    let crane = crane_for(&mock, Some(PRICING)).await;
    let run = crane.run(CALC).await;

    let sent = bodies(&mock).await;
    assert_eq!(sent.len(), 2, "exactly one repair round for {bad}: {run}");
    let repair = last_message(&sent[1]);
    assert!(
        repair.contains("invalid") && repair.contains(needle),
        "the repair request should quote the problem ({needle:?}): {repair}"
    );
    // The repair conversation: the task, the model's first answer, the correction request.
    let messages = sent[1]["messages"].as_array().expect("messages");
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "user"],
        "{}",
        sent[1]
    );
    assert_eq!(messages[1]["content"], CALC);
    assert_eq!(
        serde_json::from_str::<Value>(messages[2]["content"].as_str().unwrap_or("")).ok(),
        Some(bad.clone())
    );

    if repair_ok {
        assert_calc_run(&run, "llm");
        assert_eq!(planner(&run)["repaired"], true, "{run}");
    } else {
        assert_fallback(&run, "invalid_plan");
        let message = run["plan"]["planner"]["attempts"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("repair"), "{message}");
    }
    // Both calls were billed, and the run says so, whoever made the final plan.
    assert_eq!(
        planner(&run)["usage"],
        json!({"input_tokens": 200, "output_tokens": 40}),
        "{run}"
    );
    let cost = planner(&run)["cost_usd"].as_f64().expect("cost");
    assert!((cost - 2.0 * ONE_CALL_USD).abs() < 1e-12, "{cost}");
    let stats = crane.get_json("/metrics/planner").await;
    assert!(
        stats["errors_by_category"]["invalid_plan"].as_u64() >= Some(1),
        "{stats}"
    );
    assert_eq!(stats["by_model"][0]["requests"], 2, "{stats}");
}

#[tokio::test]
async fn answer_not_matching_the_plan_schema_is_repaired() {
    let bad = json!({"plan": "multiply 7 by 6"});
    repair_case(bad.clone(), "steps", true).await;
    repair_case(bad, "steps", false).await;
}

#[tokio::test]
async fn unknown_tool_is_repaired() {
    let bad = json!({"steps": [{"tool": "weather", "input": {"city": "Oslo"}, "reasoning": "r"}]});
    repair_case(bad.clone(), "unknown tool 'weather'", true).await;
    repair_case(bad, "unknown tool 'weather'", false).await;
}

#[tokio::test]
async fn wrong_argument_types_are_repaired() {
    let bad = json!({"steps": [{"tool": "todo_add", "input": {"title": 5}, "reasoning": "r"}]});
    repair_case(bad.clone(), "input.title", true).await;
    repair_case(bad, "input.title", false).await;
}

#[tokio::test]
async fn metrics_count_the_requested_model_and_runs_record_the_reported_one() {
    // Servers report dated snapshots (or anything else) as the answering model: per-model
    // series and aggregates stay on the configured name, so they are bounded and successes
    // and errors of one model share a series; the run records what actually answered.
    let answer = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "test-model-2026-01-01",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": calc_plan().to_string()}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    });
    let mock = mock_first_then(
        ResponseTemplate::new(503),
        1,
        ResponseTemplate::new(200).set_body_json(answer),
    )
    .await;
    let config = format!(
        "[[llm.providers]]\nname = \"primary\"\nbase_url = \"{}/v1\"\nmodel = \"{MODEL}\"\n\
         max_retries = 0\n{PRICING}",
        mock.uri()
    );
    let crane = LlmCrane::start(&[], Some(&config)).await;
    assert_fallback(&crane.run(CALC).await, "server");
    let run = crane.run(CALC).await;
    assert_calc_run(&run, "llm");
    assert_eq!(planner(&run)["model"], "test-model-2026-01-01", "{run}");

    let labels =
        |status: &str| format!("provider=\"primary\",model=\"{MODEL}\",status=\"{status}\"");
    assert_eq!(
        crane
            .metric("crane_llm_requests_total", &labels("ok"))
            .await,
        Some(1.0)
    );
    assert_eq!(
        crane
            .metric("crane_llm_requests_total", &labels("server"))
            .await,
        Some(1.0)
    );
    let text = crane.get_text("/metrics").await;
    assert!(!text.contains("2026-01-01"), "{text}");
    let stats = crane.get_json("/metrics/planner").await;
    assert_eq!(
        stats["by_model"].as_array().map(Vec::len),
        Some(1),
        "{stats}"
    );
    assert_eq!(stats["by_model"][0]["model"], MODEL, "{stats}");
    assert_eq!(stats["by_model"][0]["requests"], 1, "{stats}");
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker.

#[tokio::test]
async fn variants_on_one_provider_share_its_circuit_breaker() {
    // Two planner variants send different models to the same provider. The server is down:
    // the failures of one variant open the provider's breaker for the other one too.
    let mock = mock_always(ResponseTemplate::new(503)).await;
    let variant = |name: &str| {
        format!(
            "[[planners]]\nname = \"{name}\"\nkind = \"llm\"\nversion = \"1.0.0\"\n\
             provider = \"primary\"\nmodel = \"{name}-model\"\n"
        )
    };
    let config = format!(
        "[[llm.providers]]\nname = \"primary\"\nbase_url = \"{}/v1\"\nmodel = \"{MODEL}\"\n\
         max_retries = 0\nbreaker_failures = 2\nbreaker_cooldown_ms = 600000\n{}{}",
        mock.uri(),
        variant("small"),
        variant("big")
    );
    let crane = LlmCrane::start(&[], Some(&config)).await;
    let run_with = |variant_name: &'static str| {
        let crane = &crane;
        async move {
            let response = crane
                .client
                .post(crane.url("/runs?wait=true"))
                .json(&json!({"prompt": CALC, "planner": variant_name}))
                .send()
                .await
                .expect("POST /runs");
            assert_eq!(response.status(), StatusCode::CREATED);
            let run: Value = response.json().await.expect("run JSON");
            assert_calc_run(&run, "rule");
            assert_eq!(planner(&run)["variant"]["name"], variant_name, "{run}");
            assert_eq!(planner(&run)["variant"]["fallback"], "rule@1.1.0", "{run}");
            let attempt = &planner(&run)["attempts"][0];
            assert_eq!(attempt["layer"], format!("variant:{variant_name}"), "{run}");
            attempt["message"].as_str().unwrap_or_default().to_owned()
        }
    };

    for _ in 0..2 {
        let message = run_with("small").await;
        assert!(message.contains("llm:primary (server)"), "{message}");
    }
    let models: Vec<Value> = bodies(&mock)
        .await
        .iter()
        .map(|b| b["model"].clone())
        .collect();
    assert_eq!(models, [json!("small-model"), json!("small-model")]);
    assert_eq!(
        crane
            .metric("crane_llm_circuit_breaker_state", "provider=\"primary\"")
            .await,
        Some(2.0),
        "open"
    );

    // The other variant finds the breaker open: no request, an instant fallback.
    let message = run_with("big").await;
    assert!(message.contains("llm:primary (circuit_open)"), "{message}");
    assert_eq!(received(&mock).await.len(), 2, "no request while open");
}

#[tokio::test]
async fn circuit_breaker_opens_then_closes_after_cooldown() {
    let mock = mock_always(ResponseTemplate::new(503)).await;
    let config = format!(
        "[[llm.providers]]\nname = \"primary\"\nbase_url = \"{}/v1\"\nmodel = \"{MODEL}\"\n\
         max_retries = 0\nbreaker_failures = 2\nbreaker_cooldown_ms = 3000\n",
        mock.uri()
    );
    let crane = LlmCrane::start(&[], Some(&config)).await;
    let breaker = || crane.metric("crane_llm_circuit_breaker_state", "provider=\"primary\"");

    // Two availability failures open the breaker.
    for _ in 0..2 {
        let run = crane.run(CALC).await;
        assert_fallback(&run, "server");
    }
    let opened = Instant::now();
    assert_eq!(received(&mock).await.len(), 2);
    assert_eq!(breaker().await, Some(2.0), "open");

    // While open (3 s): fail fast, no request reaches the server.
    for _ in 0..3 {
        let (run, elapsed) = crane.run_timed(CALC).await;
        assert_fallback(&run, "circuit_open");
        assert!(elapsed < Duration::from_millis(1000), "took {elapsed:?}");
    }
    if opened.elapsed() < Duration::from_millis(2900) {
        assert_eq!(received(&mock).await.len(), 2, "requests sent while open");
    }

    // The server recovers; after the cooldown one probe goes through and closes the breaker.
    mock.reset().await;
    chat_mock(plan_ok()).mount(&mock).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if breaker().await == Some(1.0) {
            break; // half-open: the cooldown passed
        }
        assert!(
            Instant::now() < deadline,
            "the breaker never became half-open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = crane.run(CALC).await;
    assert_calc_run(&run, "llm");
    assert_eq!(received(&mock).await.len(), 1, "one probe");
    assert_eq!(breaker().await, Some(0.0), "closed again");
    let run = crane.run("what is 6 times 7").await;
    assert_calc_run(&run, "llm");

    let stats = crane.get_json("/metrics/planner").await;
    assert_eq!(stats["errors_by_category"]["circuit_open"], 3, "{stats}");
    assert_eq!(stats["errors_by_category"]["server"], 2, "{stats}");
}

// ---------------------------------------------------------------------------------------------
// Misconfiguration fails loudly.

fn unauthorized() -> ResponseTemplate {
    // Like OpenAI, the body echoes (part of) the key; crane must not repeat it.
    ResponseTemplate::new(401).set_body_json(json!({"error": {
        "message": format!("Incorrect API key provided: {KEY}."),
        "type": "invalid_request_error", "code": "invalid_api_key"
    }}))
}

#[tokio::test]
async fn auth_failure_fails_the_run_loudly() {
    let mock = mock_always(unauthorized()).await;
    let crane = crane_for(&mock, None).await;
    let run = crane.run(CALC).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("misconfigured"), "{error}");
    assert!(error.contains("auth"), "{error}");
    assert!(error.contains("API key"), "{error}");
    assert!(error.contains("401"), "{error}");
    assert!(
        run["execution_log"].as_array().is_none_or(Vec::is_empty),
        "{run}"
    );
    assert_eq!(
        received(&mock).await.len(),
        1,
        "auth failures are not retried"
    );
    assert_no_key("the run", &run.to_string());
    let stats = crane.get_json("/metrics/planner").await;
    assert_eq!(stats["failures"], 1, "{stats}");
    assert_eq!(stats["errors_by_category"]["auth"], 1, "{stats}");
    assert_eq!(stats["errors_by_category"]["misconfigured"], 1, "{stats}");
    assert_no_key("/metrics/planner", &stats.to_string());
    assert_no_key("/metrics", &crane.get_text("/metrics").await);
    assert_no_key("the server log", &crane.logs());
}

#[tokio::test]
async fn auth_failure_falls_back_when_configured() {
    let mock = mock_always(unauthorized()).await;
    let crane = crane_for(&mock, Some("[planner]\nfallback_on_auth_error = true\n")).await;
    let run = crane.run(CALC).await;
    assert_fallback(&run, "auth");
    assert_no_key("the run", &run.to_string());
    assert_no_key("the server log", &crane.logs());
}

#[tokio::test]
async fn wrong_endpoint_fails_the_run_as_misconfigured() {
    let mock = mock_always(plan_ok()).await;
    let url = format!("{}/wrong", mock.uri());
    let crane = LlmCrane::start(
        &[
            ("CRANE_LLM_BASE_URL", url.as_str()),
            ("CRANE_LLM_MODEL", MODEL),
        ],
        None,
    )
    .await;
    let run = crane.run(CALC).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("misconfigured (config)"), "{error}");
    assert!(error.contains("404"), "{error}");
    // A 4xx may mean "this structured mode is not supported": every mode was tried once.
    let requests = received(&mock).await;
    assert_eq!(requests.len(), 4, "one request per structured mode");
    assert!(
        requests
            .iter()
            .all(|r| r.url.path() == "/wrong/chat/completions"),
        "{requests:?}"
    );
    let stats = crane.get_json("/metrics/planner").await;
    assert_eq!(stats["failures"], 1, "{stats}");
    assert_eq!(stats["errors_by_category"]["config"], 1, "{stats}");
    assert_eq!(stats["errors_by_category"]["misconfigured"], 1, "{stats}");
    assert!(
        stats["errors_by_category"].get("auth").is_none(),
        "a wrong URL is not an auth error: {stats}"
    );
}

#[tokio::test]
async fn retry_after_beyond_the_deadline_falls_back_at_once() {
    let limited = ResponseTemplate::new(429).insert_header("retry-after", "120");
    let mock = mock_always(limited).await;
    let crane = crane_for(&mock, None).await;
    let (run, elapsed) = crane.run_timed(CALC).await;
    assert_fallback(&run, "rate_limit");
    let message = run["plan"]["planner"]["attempts"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("Retry-After"), "{message}");
    assert!(
        elapsed < Duration::from_secs(3),
        "waited for Retry-After: {elapsed:?}"
    );
    assert_eq!(received(&mock).await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The chain: every layer failing, cache, strategies, failover.

#[tokio::test]
async fn every_layer_failing_fails_the_run_listing_each_layer() {
    let mock = mock_always(ResponseTemplate::new(503)).await;
    let crane = crane_for(&mock, None).await;
    let (run, elapsed) = crane.run_timed(NONSENSE).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("llm:primary (server)"), "{error}");
    assert!(error.contains("rule (rejected)"), "{error}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    let stats = crane.get_json("/metrics/planner").await;
    assert_eq!(stats["failures"], 1, "{stats}");
    assert_eq!(stats["errors_by_category"]["exhausted"], 1, "{stats}");
}

#[tokio::test]
async fn plan_cache_serves_repeated_prompts() {
    let mock = mock_always(plan_ok()).await;
    let crane = crane_for(&mock, Some(PRICING)).await;
    let first = crane.run(CALC).await;
    assert_calc_run(&first, "llm");
    // Whitespace differences hit the same entry.
    let second = crane.run("what  is 7 times\t6 ").await;
    assert_calc_run(&second, "cache");
    assert_eq!(
        received(&mock).await.len(),
        1,
        "the cache answered the second run"
    );
    assert!(planner(&second).get("usage").is_none(), "{second}");
    assert_ne!(first["plan"]["plan_id"], second["plan"]["plan_id"]);
    // Case matters (titles are case-sensitive): a different prompt goes to the model.
    let third = crane.run("What is 7 times 6").await;
    assert_calc_run(&third, "llm");
    assert_eq!(received(&mock).await.len(), 2);

    let stats = crane.get_json("/metrics/planner").await;
    assert_eq!(stats["cache"], json!({"hits": 1, "misses": 2}), "{stats}");
    let rate = stats["cache_hit_rate"].as_f64().expect("rate");
    assert!((rate - 1.0 / 3.0).abs() < 1e-9, "{stats}");
    assert_eq!(stats["by_source"]["cache"]["count"], 1, "{stats}");
    assert_eq!(stats["by_model"][0]["requests"], 2, "{stats}");
}

#[tokio::test]
async fn plan_cache_can_be_disabled() {
    let mock = mock_always(plan_ok()).await;
    let crane = crane_for(&mock, Some("[planner]\ncache_capacity = 0\n")).await;
    for _ in 0..2 {
        assert_calc_run(&crane.run(CALC).await, "llm");
    }
    assert_eq!(received(&mock).await.len(), 2);
}

#[tokio::test]
async fn rule_first_strategy_calls_the_llm_only_for_what_rules_reject() {
    let mock = mock_always(plan_ok()).await;
    let mut env = openai_env(&mock);
    env.push(("CRANE_PLANNER_STRATEGY", "rule_first".to_owned()));
    let crane = LlmCrane::start(&as_refs(&env), None).await;

    let run = crane.run(CALC).await;
    assert_calc_run(&run, "rule");
    assert_eq!(
        received(&mock).await.len(),
        0,
        "the rule planner understood it"
    );

    let run = crane.run(NONSENSE).await;
    assert_calc_run(&run, "llm");
    assert_eq!(attempts(&run), pairs(&[("rule", "rejected")]));
    assert_eq!(received(&mock).await.len(), 1);
}

#[tokio::test]
async fn rule_first_with_failing_llm_fails_listing_both_layers() {
    let mock = mock_always(ResponseTemplate::new(503)).await;
    let mut env = openai_env(&mock);
    env.push(("CRANE_PLANNER_STRATEGY", "rule_first".to_owned()));
    let crane = LlmCrane::start(&as_refs(&env), None).await;
    let run = crane.run(NONSENSE).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("rule (rejected)"), "{error}");
    assert!(error.contains("llm:primary (server)"), "{error}");
}

#[tokio::test]
async fn secondary_provider_takes_over_when_primary_is_down() {
    let down = mock_always(ResponseTemplate::new(503)).await;
    let up = mock_always(plan_ok()).await;
    let config = format!(
        "[[llm.providers]]\nname = \"primary\"\nbase_url = \"{}/v1\"\nmodel = \"{MODEL}\"\n\
         max_retries = 0\n\n\
         [[llm.providers]]\nname = \"secondary\"\nbase_url = \"{}/v1\"\nmodel = \"{MODEL}\"\n\n{PRICING}",
        down.uri(),
        up.uri()
    );
    let crane = LlmCrane::start(&[], Some(&config)).await;
    let run = crane.run(CALC).await;
    assert_calc_run(&run, "llm");
    let info = planner(&run);
    assert_eq!(info["provider"], "secondary", "{info}");
    assert_eq!(info["name"], "llm:secondary", "{info}");
    assert_eq!(attempts(&run), pairs(&[("llm:primary", "server")]));
    assert_eq!(received(&down).await.len(), 1);
    assert_eq!(received(&up).await.len(), 1);
    let stats = crane.get_json("/metrics/planner").await;
    let by_model = stats["by_model"].as_array().expect("by_model");
    assert_eq!(by_model.len(), 1, "only the secondary answered: {stats}");
    assert_eq!(by_model[0]["provider"], "secondary", "{stats}");
    assert_eq!(stats["errors_by_category"]["server"], 1, "{stats}");
    // Both breakers are exported.
    for provider in ["primary", "secondary"] {
        let labels = format!("provider=\"{provider}\"");
        assert_eq!(
            crane
                .metric("crane_llm_circuit_breaker_state", &labels)
                .await,
            Some(0.0),
            "{provider}"
        );
    }
}

#[tokio::test]
async fn plan_after_an_unusable_primary_records_the_whole_spend() {
    let bad = json!({"steps": [{"tool": "weather", "input": {}, "reasoning": "r"}]}).to_string();
    let wrong = mock_always(chat_ok(&bad)).await;
    let right = mock_always(plan_ok()).await;
    let config = format!(
        "[[llm.providers]]\nname = \"primary\"\nbase_url = \"{}/v1\"\nmodel = \"{MODEL}\"\n\n\
         [[llm.providers]]\nname = \"secondary\"\nbase_url = \"{}/v1\"\nmodel = \"{MODEL}\"\n\n{PRICING}",
        wrong.uri(),
        right.uri()
    );
    let crane = LlmCrane::start(&[], Some(&config)).await;
    let run = crane.run(CALC).await;
    assert_calc_run(&run, "llm");
    assert_eq!(planner(&run)["provider"], "secondary", "{run}");
    assert_eq!(attempts(&run), pairs(&[("llm:primary", "invalid_plan")]));
    assert_eq!(received(&wrong).await.len(), 2, "first answer and repair");
    // Planning made three billed calls: two to the primary, one to the secondary.
    assert_eq!(
        planner(&run)["usage"],
        json!({"input_tokens": 300, "output_tokens": 60}),
        "{run}"
    );
    let cost = planner(&run)["cost_usd"].as_f64().expect("cost");
    assert!((cost - 3.0 * ONE_CALL_USD).abs() < 1e-12, "{cost}");
    let stats = crane.get_json("/metrics/planner").await;
    let total = stats["cost_usd"].as_f64().expect("cost");
    assert!((total - 3.0 * ONE_CALL_USD).abs() < 1e-12, "{stats}");
}

/// An answer naming a tool crane does not have: invalid, and the same again after repair.
fn invalid_plan_answer() -> ResponseTemplate {
    chat_ok(
        &json!({"steps": [{"tool": "weather", "input": {"city": "Oslo"}, "reasoning": "r"}]})
            .to_string(),
    )
}

/// `(layer, category)` of each attempt in a failed run's `plan_failure`.
fn failure_attempts(run: &Value) -> Vec<(String, String)> {
    run["plan_failure"]["attempts"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    (
                        a["layer"].as_str().unwrap_or_default().to_owned(),
                        a["category"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Sum of the Prometheus samples of `name` whose labels contain `label`.
fn metric_sum(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn failed_planning_records_what_the_invalid_answers_cost() {
    // The model answers an invalid plan twice (first answer and repair); the rule fallback
    // rejects the prompt: the run fails with no plan, and still records what it was billed.
    let mock = mock_always(invalid_plan_answer()).await;
    let crane = crane_for(&mock, Some(PRICING)).await;
    let run = crane.run(NONSENSE).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["plan"].is_null(), "{run}");
    assert_eq!(received(&mock).await.len(), 2, "first answer and repair");
    assert_eq!(
        failure_attempts(&run),
        pairs(&[("llm:primary", "invalid_plan"), ("rule", "rejected")]),
        "{run}"
    );
    let message = run["plan_failure"]["attempts"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("repair"), "{message}");
    assert_eq!(
        run["plan_failure"]["usage"],
        json!({"input_tokens": 200, "output_tokens": 40}),
        "{run}"
    );
    assert_eq!(
        run["plan_failure"]["cost_usd"].to_string(),
        "0.00028",
        "{run}"
    );
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("llm:primary (invalid_plan)"), "{error}");

    // Stored with the run.
    let id = run["run_id"].as_str().expect("run_id");
    let stored = crane.get_json(&format!("/runs/{id}")).await;
    assert_eq!(stored["plan_failure"], run["plan_failure"], "{stored}");

    // A retry plans again and fails again: the run's record adds up both failed plannings.
    let response = crane
        .client
        .post(crane.url(&format!("/runs/{id}/retry?wait=true")))
        .send()
        .await
        .expect("POST retry");
    assert_eq!(response.status(), StatusCode::OK);
    let retried: Value = response.json().await.expect("run JSON");
    assert_eq!(retried["status"], "failed", "{retried}");
    assert_eq!(retried["retries"], 1, "{retried}");
    assert_eq!(
        received(&mock).await.len(),
        4,
        "two more calls for the retry"
    );
    assert_eq!(
        retried["plan_failure"]["usage"],
        json!({"input_tokens": 400, "output_tokens": 80}),
        "{retried}"
    );
    let cost = retried["plan_failure"]["cost_usd"]
        .as_f64()
        .expect("cost_usd");
    assert!((cost - 4.0 * ONE_CALL_USD).abs() < 1e-12, "{cost}");
    assert_eq!(
        failure_attempts(&retried),
        pairs(&[("llm:primary", "invalid_plan"), ("rule", "rejected")]),
        "the attempts are the latest planning's: {retried}"
    );

    // The aggregates count each billed call once (at the LLM layer), not again for the run.
    let stats = crane.get_json("/metrics/planner").await;
    assert_eq!(
        stats["tokens"],
        json!({"input": 400, "output": 80}),
        "{stats}"
    );
    assert_eq!(stats["cost_usd"].to_string(), "0.00056", "{stats}");
    let metrics = crane.get_text("/metrics").await;
    assert_eq!(
        metric_sum(&metrics, "crane_llm_tokens_total", "direction=\"input\""),
        400.0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(&metrics, "crane_llm_tokens_total", "direction=\"output\""),
        80.0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "crane_llm_cost_microdollars_total",
            "provider=\"primary\""
        ),
        (4.0 * ONE_CALL_USD * 1e6).round(),
        "{metrics}"
    );

    // A run that planned records no plan_failure.
    let ok = mock_always(plan_ok()).await;
    let crane = crane_for(&ok, Some(PRICING)).await;
    let run = crane.run(CALC).await;
    assert_calc_run(&run, "llm");
    assert!(run.get("plan_failure").is_none(), "{run}");
}

#[tokio::test]
async fn eval_totals_count_the_spend_of_runs_that_got_no_plan() {
    let mock = mock_always(invalid_plan_answer()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let dataset = dir.path().join("cases.jsonl");
    std::fs::write(
        &dataset,
        format!(
            "{}\n",
            json!({"id": "fence", "prompt": NONSENSE, "expect": {"reject": true}})
        ),
    )
    .expect("write dataset");
    let config = dir.path().join("crane.toml");
    std::fs::write(&config, PRICING).expect("write crane.toml");
    let report = dir.path().join("report.json");
    let mut cmd = crate::support::crane_command(dir.path());
    cmd.env_remove("CRANE_PLANNER_STRATEGY");
    for (name, value) in openai_env(&mock) {
        cmd.env(name, value);
    }
    cmd.arg("eval")
        .arg("--dataset")
        .arg(&dataset)
        .arg("--planner")
        .arg("default")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--no-store")
        .arg("--report")
        .arg(&report)
        .kill_on_drop(true);
    let out = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .expect("crane eval finishes")
        .expect("run crane eval");
    let describe = format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{describe}");
    assert_eq!(received(&mock).await.len(), 2, "{describe}");
    let text = std::fs::read_to_string(&report).expect("report");
    let report: Value = serde_json::from_str(&text).expect("report JSON");
    let planner = &report["planners"][0];
    assert_eq!(planner["planner"], "default", "{planner}");
    let trial = &planner["cases"][0]["trials"][0];
    assert_eq!(trial["status"], "failed", "{trial}");
    assert_eq!(
        (&trial["input_tokens"], &trial["output_tokens"]),
        (&json!(200), &json!(40)),
        "{trial}"
    );
    let summary = &planner["summary"];
    assert_eq!(
        (&summary["input_tokens"], &summary["output_tokens"]),
        (&json!(200), &json!(40)),
        "{summary}"
    );
    let cost = summary["cost_usd"].as_f64().expect("cost_usd");
    assert!((cost - 2.0 * ONE_CALL_USD).abs() < 1e-12, "{summary}");
    assert_eq!(summary["scorers"]["tokens"]["mean"], 240.0, "{summary}");
}

#[tokio::test]
async fn env_provider_takes_its_settings_from_the_primary_entry() {
    // CRANE_LLM_* name the server; a `[[llm.providers]]` entry named "primary" tunes it (the
    // environment wins for what both set). One layer, not two.
    let mock = mock_always(plan_ok().set_delay(Duration::from_secs(10))).await;
    let config = "[[llm.providers]]\nname = \"primary\"\nmodel = \"other-model\"\n\
                  base_url = \"http://127.0.0.1:9/v1\"\ntimeout_ms = 300\nmax_retries = 0\n";
    let crane = crane_for(&mock, Some(config)).await;
    let (run, elapsed) = crane.run_timed(CALC).await;
    assert_fallback(&run, "timeout");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    let sent = bodies(&mock).await;
    assert_eq!(sent.len(), 1, "the environment's base URL is used");
    assert_eq!(sent[0]["model"], MODEL, "the environment's model is used");
}

#[tokio::test]
async fn duplicate_provider_names_are_rejected_at_start() {
    let config = "[[llm.providers]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\n\
                  [[llm.providers]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n";
    let root = tempfile::tempdir().expect("temp dir");
    let file = root.path().join("crane.toml");
    std::fs::write(&file, config).expect("write");
    let mut cmd = crane_command(root.path());
    cmd.arg("serve")
        .arg("--addr")
        .arg("127.0.0.1:0")
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .expect("crane serve exits on a bad config")
        .expect("run crane");
    assert!(
        !out.status.success(),
        "started with duplicate provider names"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"a\"") || stderr.contains("'a'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("more than once") || stderr.contains("duplicate"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages API.

#[tokio::test]
async fn anthropic_provider_plans_with_a_tool_use_block() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [
                {"type": "text", "text": "Here is the plan."},
                {"type": "tool_use", "id": "toolu_1", "name": "plan", "input": calc_plan()}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 321, "output_tokens": 45}
        })))
        .mount(&mock)
        .await;
    let crane = LlmCrane::start(
        &[
            ("CRANE_LLM_PROVIDER", "anthropic"),
            ("CRANE_LLM_BASE_URL", mock.uri().as_str()),
            ("CRANE_LLM_MODEL", "claude-test"),
            ("CRANE_LLM_API_KEY", KEY),
        ],
        Some("[llm.pricing.claude-test]\ninput_per_million = 3.0\noutput_per_million = 15.0\n"),
    )
    .await;
    let run = crane.run(CALC).await;
    assert_calc_run(&run, "llm");
    let info = planner(&run);
    assert_eq!(info["mode"], "tools", "{info}");
    assert_eq!(info["model"], "claude-test", "{info}");
    assert_eq!(
        info["usage"],
        json!({"input_tokens": 321, "output_tokens": 45})
    );
    let cost = info["cost_usd"].as_f64().expect("cost");
    let expected = 321.0 * 3.0 / 1e6 + 45.0 * 15.0 / 1e6;
    assert!((cost - expected).abs() < 1e-12, "{cost} != {expected}");

    let requests = received(&mock).await;
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0].headers.get("authorization").is_none(),
        "no bearer token to Anthropic"
    );
    let body: Value = requests[0].body_json().expect("JSON body");
    assert_eq!(body["model"], "claude-test");
    assert!(body["max_tokens"].as_u64().is_some(), "{body}");
    assert!(body["system"].is_string(), "{body}");
    assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "plan"}));
    assert!(
        body["tools"][0]["input_schema"]["properties"]["steps"].is_object(),
        "{body}"
    );
    assert_eq!(
        body["messages"][0],
        json!({"role": "user", "content": CALC})
    );
    assert_no_key("the run", &run.to_string());
}

#[tokio::test]
async fn anthropic_overloaded_falls_back_as_server_error() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(529).set_body_json(
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ))
        .mount(&mock)
        .await;
    let crane = LlmCrane::start(
        &[
            ("CRANE_LLM_PROVIDER", "anthropic"),
            ("CRANE_LLM_BASE_URL", mock.uri().as_str()),
            ("CRANE_LLM_MODEL", "claude-test"),
        ],
        None,
    )
    .await;
    let run = crane.run(CALC).await;
    assert_fallback(&run, "server");
}

// ---------------------------------------------------------------------------------------------
// Secrets.

#[tokio::test]
async fn api_key_appears_nowhere_crane_writes() {
    // A server that fails in several ways, each echoing the key, with debug logging on.
    let mock = MockServer::start().await;
    let echo = |status: u16| {
        ResponseTemplate::new(status)
            .set_body_string(format!("{{\"error\": \"bad request for key {KEY}\"}}"))
    };
    chat_mock(echo(503))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&mock)
        .await;
    chat_mock(chat_ok(&format!("not json at all {KEY}")))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&mock)
        .await;
    chat_mock(plan_ok()).with_priority(3).mount(&mock).await;
    let crane =
        LlmCrane::start_with_log(&as_refs(&openai_env(&mock)), Some(PRICING), "debug").await;
    let mut outputs = Vec::new();
    for prompt in [CALC, "what is 6 times 7", "what is 7 times 7", NONSENSE] {
        let run = crane.run(prompt).await;
        outputs.push(run.to_string());
        let id = run["run_id"].as_str().expect("run id");
        outputs.push(crane.get_json(&format!("/runs/{id}")).await.to_string());
    }
    let first: Value = serde_json::from_str(&outputs[0]).expect("run");
    assert_fallback(&first, "server");
    let second: Value = serde_json::from_str(&outputs[2]).expect("run");
    assert_fallback(&second, "invalid_output");
    outputs.push(crane.get_json("/runs").await.to_string());
    outputs.push(crane.get_json("/metrics/planner").await.to_string());
    outputs.push(crane.get_text("/metrics").await);
    for (i, text) in outputs.iter().enumerate() {
        assert_no_key(&format!("output {i}"), text);
    }
    let logs = crane.logs();
    assert!(
        logs.contains("primary"),
        "the log should mention the failing provider:\n{logs}"
    );
    assert_no_key("the server log", &logs);
}

// ---------------------------------------------------------------------------------------------
// Planning budget.

#[tokio::test]
async fn a_spent_token_budget_stops_the_repair_round_and_falls_back() {
    // Each answer bills 120 tokens and names an unknown tool. With 100 tokens per run, the
    // repair round is not sent: the rule planner plans, and the run records why and the spend.
    let mock = mock_always(invalid_plan_answer()).await;
    let config = format!("[planner]\nmax_run_tokens = 100\n\n{PRICING}");
    let crane = crane_for(&mock, Some(&config)).await;
    let run = crane.run(CALC).await;
    assert_calc_run(&run, "fallback");
    assert_eq!(received(&mock).await.len(), 1, "no repair call");
    assert_eq!(attempts(&run), pairs(&[("llm:primary", "budget")]), "{run}");
    let message = planner(&run)["attempts"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("budget of 100 tokens"), "{message}");
    assert_eq!(
        planner(&run)["usage"],
        json!({"input_tokens": 100, "output_tokens": 20}),
        "{run}"
    );
    let stats = crane.get_json("/metrics/planner").await;
    assert_eq!(stats["errors_by_category"]["budget"], 1, "{stats}");
    assert_eq!(
        crane
            .metric(
                "crane_llm_requests_total",
                &format!("provider=\"primary\",model=\"{MODEL}\",status=\"ok\"")
            )
            .await,
        Some(1.0),
        "only the billed call counts as a request"
    );
}

#[tokio::test]
async fn a_spent_cost_budget_skips_the_remaining_providers() {
    // The primary's first answer costs more than the per-run budget: neither its repair round
    // nor the secondary provider is asked.
    let mock = mock_always(invalid_plan_answer()).await;
    let config = format!(
        "[planner]\nmax_run_cost_usd = {}\n\n\
         [[llm.providers]]\nname = \"secondary\"\nbase_url = \"{}/v1\"\nmodel = \"{MODEL}\"\n\n{PRICING}",
        ONE_CALL_USD / 2.0,
        mock.uri()
    );
    let crane = crane_for(&mock, Some(&config)).await;
    let run = crane.run(CALC).await;
    assert_calc_run(&run, "fallback");
    assert_eq!(received(&mock).await.len(), 1);
    assert_eq!(
        attempts(&run),
        pairs(&[("llm:primary", "budget"), ("llm:secondary", "budget")]),
        "{run}"
    );
    let cost = planner(&run)["cost_usd"].as_f64().expect("cost_usd");
    assert!((cost - ONE_CALL_USD).abs() < 1e-12, "{cost}");

    // A budget that is not a number of USD is refused at start.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("crane.toml");
    std::fs::write(&file, "[planner]\nmax_run_cost_usd = -1.0\n").expect("write crane.toml");
    let out = crate::support::crane_command(dir.path())
        .args(["plan", "--config"])
        .arg(&file)
        .arg(CALC)
        .output()
        .await
        .expect("crane plan");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_run_cost_usd must be"), "{stderr}");
}
