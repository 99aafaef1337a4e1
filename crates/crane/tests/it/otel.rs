//! Traces into a real OTLP receiver (Arize Phoenix): a multi-step run planned by an LLM (a
//! wiremock OpenAI-compatible upstream) is exported over OTLP/HTTP; the test reads the spans
//! back from Phoenix's REST API and checks the span tree, the names and the gen_ai.*
//! attributes, and that the trace continues the caller's `traceparent`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::Server;

fn phoenix_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CRANE_TEST_PHOENIX") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cache/crane/venv-phoenix/bin/phoenix")
}

struct Phoenix {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Phoenix {
    fn drop(&mut self) {
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

async fn start_phoenix() -> Phoenix {
    let bin = phoenix_bin();
    assert!(
        bin.exists(),
        "Arize Phoenix is not installed at {}; run scripts/install-test-deps.sh",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(&bin)
        .arg("serve")
        .env("PHOENIX_HOST", "127.0.0.1")
        .env("PHOENIX_PORT", port.to_string())
        .env("PHOENIX_WORKING_DIR", dir.path())
        .env("PHOENIX_TELEMETRY_ENABLED", "false")
        // Its gRPC receiver always listens on 4317; the test uses OTLP/HTTP only.
        .env("PHOENIX_GRPC_PORT", free_port().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(r) = client.get(format!("{base}/v1/projects")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Phoenix did not start within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Phoenix {
        child,
        base,
        _dir: dir,
    }
}

fn plan_answer() -> Value {
    let plan = json!({"steps": [
        {"tool": "todo_add", "input": {"title": "trace me"}, "reasoning": "add"},
        {"tool": "todo_complete", "input": {"id": "${steps.1.todo.id}"}, "reasoning": "complete"}
    ]});
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "mock-model-2026",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": plan.to_string()}}],
        "usage": {"prompt_tokens": 321, "completion_tokens": 45}
    })
}

async fn spans_of(phoenix: &Phoenix, project: &str, trace_id: &str, want: usize) -> Vec<Value> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let url = format!("{}/v1/projects/{project}/spans?limit=1000", phoenix.base);
        if let Ok(r) = client.get(&url).send().await
            && let Ok(body) = r.json::<Value>().await
        {
            let spans: Vec<Value> = body["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|s| s["context"]["trace_id"] == trace_id)
                .collect();
            if spans.len() >= want {
                return spans;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Phoenix did not receive {want} spans of trace {trace_id} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

#[tokio::test]
async fn multi_step_run_is_traced_into_phoenix_with_genai_attributes() {
    let phoenix = start_phoenix().await;
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(plan_answer()))
        .mount(&llm)
        .await;
    let project = "crane-otel-it";
    let server = Server::start_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix.base.as_str()),
            ("OTEL_SERVICE_NAME", project),
            ("CRANE_LLM_BASE_URL", &format!("{}/v1", llm.uri())),
            ("CRANE_LLM_MODEL", "mock-model"),
        ],
    )
    .await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let req = server
        .client
        .post(server.url("/runs?wait=true"))
        .header("traceparent", format!("00-{trace_id}-{parent_span}-01"))
        .json(&json!({"prompt": "add a todo to trace me and then mark it done"}));
    let (status, headers, run) = server.send(req).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["plan"]["planner"]["source"], "llm", "{run}");
    assert_eq!(crate::support::trace_id(&headers), trace_id);
    assert_eq!(run["trace_id"], trace_id);

    // The LLM call carried the chat span's context on to the upstream.
    let received = llm.received_requests().await.unwrap();
    let sent = received[0]
        .headers
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        sent.starts_with(&format!("00-{trace_id}-")),
        "outgoing traceparent {sent}"
    );

    // http, run, queue, plan, chat, execute_tool x2 (plus smaller spans).
    let spans = spans_of(&phoenix, project, trace_id, 7).await;
    // crane counted them as exported.
    server
        .wait_for_metric("crane_trace_export_spans_total{result=\"exported\"}", |v| {
            v >= 7.0
        })
        .await;
    let by_name: HashMap<&str, &Value> = spans
        .iter()
        .map(|s| (s["name"].as_str().unwrap_or(""), s))
        .collect();
    let id_of = |name: &str| -> String {
        by_name.get(name).unwrap_or_else(|| {
            panic!(
                "no span named {name:?}; got {:?}",
                by_name.keys().collect::<Vec<_>>()
            )
        })["context"]["span_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let http = by_name["POST /runs"];
    assert_eq!(
        http["parent_id"], parent_span,
        "the request span continues the caller's trace"
    );
    assert_eq!(attr(http, "http.route"), "/runs");
    let run_span = by_name["run"];
    assert_eq!(run_span["parent_id"].as_str().unwrap(), id_of("POST /runs"));
    assert_eq!(attr(run_span, "crane.run.id"), &run["run_id"]);
    assert_eq!(attr(run_span, "crane.plan.source"), "llm");
    assert_eq!(attr(run_span, "crane.run.status"), "completed");
    assert!(!attr(run_span, "crane.planner.variant").is_null());
    let plan = by_name["plan"];
    assert_eq!(plan["parent_id"].as_str().unwrap(), id_of("run"));

    let chat = by_name["chat mock-model"];
    assert_eq!(chat["parent_id"].as_str().unwrap(), id_of("plan"));
    // Phoenix classifies the span from its gen_ai.* attributes.
    assert_eq!(chat["span_kind"], "LLM");
    assert_eq!(attr(chat, "gen_ai.operation.name"), "chat");
    assert_eq!(attr(chat, "gen_ai.provider.name"), "openai");
    assert_eq!(attr(chat, "gen_ai.request.model"), "mock-model");
    assert_eq!(attr(chat, "gen_ai.response.model"), "mock-model-2026");
    assert_eq!(
        attr(chat, "gen_ai.usage.input_tokens").as_f64(),
        Some(321.0)
    );
    assert_eq!(
        attr(chat, "gen_ai.usage.output_tokens").as_f64(),
        Some(45.0)
    );
    assert!(
        attr(chat, "gen_ai.response.finish_reasons")
            .to_string()
            .contains("stop")
    );
    assert!(!attr(chat, "gen_ai.request.temperature").is_null());
    assert!(!attr(chat, "gen_ai.request.max_tokens").is_null());
    // Content is off by default.
    assert!(attr(chat, "gen_ai.input.messages").is_null());

    for tool in ["todo_add", "todo_complete"] {
        let step = by_name[format!("execute_tool {tool}").as_str()];
        assert_eq!(step["parent_id"].as_str().unwrap(), id_of("run"), "{tool}");
        assert_eq!(attr(step, "gen_ai.operation.name"), "execute_tool");
        assert_eq!(attr(step, "gen_ai.tool.name"), tool);
        assert!(
            attr(step, "gen_ai.tool.call.id")
                .as_str()
                .unwrap()
                .starts_with(run["run_id"].as_str().unwrap())
        );
    }

    // A request whose caller did not sample its trace: crane records none of it either (the
    // default sampler follows the caller's flag), still answers with the caller's trace id,
    // puts it on the run and tells the model server the trace is not sampled.
    let unsampled = "5cf92f3577b34da6a3ce929d0e0e4737";
    let req = server
        .client
        .post(server.url("/runs?wait=true"))
        .header("traceparent", format!("00-{unsampled}-{parent_span}-00"))
        .json(&json!({"prompt": "add a todo to leave me out of traces and then mark it done"}));
    let (status, headers, run) = server.send(req).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(crate::support::trace_id(&headers), unsampled);
    assert_eq!(run["trace_id"], unsampled);
    // (A new prompt: the plan cache does not answer it, the model does.)
    let received = llm.received_requests().await.unwrap();
    assert_eq!(received.len(), 2, "the model planned the unsampled run");
    let sent = received
        .last()
        .and_then(|r| r.headers.get("traceparent"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        sent.starts_with(&format!("00-{unsampled}-")) && sent.ends_with("-00"),
        "outgoing traceparent of an unsampled trace: {sent}"
    );

    // Then a sampled one. The exporter sends spans in the order they end, so once this
    // trace is in Phoenix, spans of the unsampled one would be too.
    let later = "6df92f3577b34da6a3ce929d0e0e4738";
    let req = server
        .client
        .post(server.url("/runs?wait=true"))
        .header("traceparent", format!("00-{later}-{parent_span}-01"))
        .json(&json!({"prompt": "add a todo to trace me later and then mark it done"}));
    let (status, _, run) = server.send(req).await;
    assert_eq!(status, 201, "{run}");
    spans_of(&phoenix, project, later, 7).await;
    let client = reqwest::Client::new();
    let all: Value = client
        .get(format!(
            "{}/v1/projects/{project}/spans?limit=1000",
            phoenix.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let leaked: Vec<&Value> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["context"]["trace_id"] == unsampled)
        .collect();
    assert!(
        leaked.is_empty(),
        "spans of an unsampled trace were exported: {leaked:?}"
    );
    // Traces of runs (the default sampler also keeps this test's own GET /metrics requests,
    // each a trace of one span).
    let traces: std::collections::HashSet<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] != "GET /metrics")
        .filter_map(|s| s["context"]["trace_id"].as_str())
        .collect();
    assert_eq!(
        traces,
        [trace_id, later].into_iter().collect(),
        "no span of the unsampled request started a trace of its own"
    );
}

/// What a new user does: sets only `OTEL_EXPORTER_OTLP_ENDPOINT` (no sampler, no service name,
/// no `traceparent`) and sends the assignment's own prompt. The first run's whole trace —
/// request, run, plan and one `execute_tool` span per step — arrives at the receiver, and the
/// server said at start which sampler and cap apply.
#[tokio::test]
async fn with_only_the_endpoint_set_the_first_run_is_traced() {
    let phoenix = start_phoenix().await;
    let server = Server::start_with_env(
        &[],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix.base.as_str())],
    )
    .await;
    let req = server
        .client
        .post(server.url("/runs?wait=true"))
        .json(&json!({"prompt": "Add a todo to buy milk, then show me all my tasks"}));
    let (status, headers, run) = server.send(req).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    let trace_id = crate::support::trace_id(&headers);
    assert_eq!(run["trace_id"], trace_id.as_str());

    // Default service name "crane" is the Phoenix project.
    let spans = spans_of(&phoenix, "crane", &trace_id, 5).await;
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    for name in [
        "POST /runs",
        "run",
        "plan",
        "execute_tool todo_add",
        "execute_tool todo_list",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let logs = server.logs();
    assert!(
        logs.contains("sampler parentbased_always_on")
            && logs.contains("at most 100 root traces per second"),
        "the start line names the sampler and the cap: {logs}"
    );
}
