//! Streamed LLM plans end to end: the real `crane serve` binary plans through a small
//! streaming mock model server (raw HTTP/1.1 over tokio: wiremock cannot pause mid-body) that
//! sends the plan as server-sent events and stops after step 1 until the test lets it go on.
//! The test sees step 1 completed in the run record while the model is still "writing" step 2,
//! so step 1 ran before the stream finished. Also: a plan whose step 2 turns out invalid after
//! step 1 ran (the run fails, step 1 stays recorded, no repair or fallback), the Anthropic
//! Messages stream, and a server that answers a streamed request with plain JSON.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::llm_faults::{KEY, LlmCrane, MODEL, PRICING, planner};
use crate::support::{DEADLINE, assert_terminal};

/// One piece of a scripted answer.
#[derive(Clone)]
enum Part {
    /// Bytes written (and flushed) as they are.
    Bytes(String),
    /// Waits until the test calls `notify_one` on it.
    Wait(Arc<Notify>),
}

/// A model server answering each request with the next script (the last one repeats); keeps
/// the JSON bodies it received.
struct StreamMock {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl StreamMock {
    async fn start(scripts: Vec<Vec<Part>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        let scripts = Arc::new(tokio::sync::Mutex::new(scripts));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (seen, scripts) = (seen.clone(), scripts.clone());
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut socket).await else {
                        return;
                    };
                    seen.lock().unwrap().push(body);
                    let script = {
                        let mut scripts = scripts.lock().await;
                        if scripts.len() > 1 {
                            scripts.remove(0)
                        } else {
                            scripts.first().cloned().unwrap_or_default()
                        }
                    };
                    for part in script {
                        match part {
                            Part::Bytes(bytes) => {
                                if socket.write_all(bytes.as_bytes()).await.is_err()
                                    || socket.flush().await.is_err()
                                {
                                    return;
                                }
                            }
                            Part::Wait(notify) => notify.notified().await,
                        }
                    }
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { url, bodies }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// Reads one request (head and Content-Length body); returns the body as JSON.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return serde_json::from_slice(&buf[end + 4..end + 4 + length]).ok();
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The head of an event-stream answer (body until the connection closes).
fn sse_head() -> Part {
    Part::Bytes(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
         connection: close\r\n\r\n"
            .to_owned(),
    )
}

/// OpenAI chunks carrying `text` as content deltas of a few characters each.
fn openai_deltas(text: &str) -> Part {
    let chars: Vec<char> = text.chars().collect();
    let events: String = chars
        .chunks(7)
        .map(|piece| {
            let chunk = json!({"model": MODEL, "choices": [{"index": 0, "delta": {"content": piece.iter().collect::<String>()}, "finish_reason": null}]});
            format!("data: {chunk}\n\n")
        })
        .collect();
    Part::Bytes(events)
}

/// The end of an OpenAI stream: finish reason, usage (100 in / 20 out), `[DONE]`.
fn openai_end() -> Part {
    let finish =
        json!({"model": MODEL, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    let usage = json!({"model": MODEL, "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 20}});
    Part::Bytes(format!(
        "data: {finish}\n\ndata: {usage}\n\ndata: [DONE]\n\n"
    ))
}

/// The plan text split after step 1: `(up to and including step 1, the rest)`.
fn plan_halves(title: &str, second: Value) -> (String, String) {
    let first = json!({"tool": "todo_add", "input": {"title": title}, "reasoning": "add it"});
    (
        format!("Sure! {{\"steps\": [{first}, "),
        format!("{second}]}}"),
    )
}

fn env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CRANE_LLM_BASE_URL", format!("{url}/v1")),
        ("CRANE_LLM_MODEL", MODEL.to_owned()),
        ("CRANE_LLM_API_KEY", KEY.to_owned()),
    ]
}

async fn start_crane(env: &[(&'static str, String)], config: &str) -> LlmCrane {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    LlmCrane::start(&env, Some(config)).await
}

/// `POST /runs` without waiting; the run id.
async fn submit(crane: &LlmCrane, prompt: &str) -> String {
    let response = crane
        .client
        .post(crane.url("/runs"))
        .json(&json!({"prompt": prompt}))
        .send()
        .await
        .expect("POST /runs");
    let run: Value = response.json().await.expect("run JSON");
    run["run_id"].as_str().expect("run_id").to_owned()
}

/// Polls `GET /runs/{id}` (the crane process's state) until `pred` holds.
async fn wait_run(
    crane: &LlmCrane,
    run_id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let run = crane.get_json(&format!("/runs/{run_id}")).await;
        if pred(&run) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id}: no {what} within {DEADLINE:?}; last state: {run}\nlogs:\n{}",
            crane.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn completed_steps(run: &Value) -> usize {
    run["execution_log"].as_array().map_or(0, |log| {
        log.iter().filter(|s| s["status"] == "completed").count()
    })
}

fn finished_at(step: &Value) -> chrono::DateTime<chrono::Utc> {
    step["finished_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .expect("finished_at")
        .with_timezone(&chrono::Utc)
}

const CONFIG: &str = "[planner]\ndeadline_ms = 20000\n";

#[tokio::test]
async fn step_one_runs_while_the_model_is_still_writing_step_two() {
    let go_on = Arc::new(Notify::new());
    let (head, rest) = plan_halves(
        "streamed milk",
        json!({"tool": "todo_list", "input": {}, "reasoning": "show"}),
    );
    let mock = StreamMock::start(vec![vec![
        sse_head(),
        openai_deltas(&head),
        Part::Wait(go_on.clone()),
        openai_deltas(&rest),
        openai_end(),
    ]])
    .await;
    let crane = start_crane(&env(&mock.url), &format!("{CONFIG}{PRICING}")).await;

    let run_id = submit(&crane, "add streamed milk and show my todos").await;
    let running = wait_run(&crane, &run_id, "step 1 completed", |r| {
        completed_steps(r) >= 1
    })
    .await;
    // The model has not sent step 2 yet: the plan so far is partial, saved with step 1.
    assert_eq!(running["status"], "running", "{running}");
    assert_eq!(planner(&running)["partial"], true, "{running}");
    assert_eq!(running["plan"]["steps"].as_array().map(Vec::len), Some(1));
    assert_eq!(running["execution_log"][0]["tool"], "todo_add");
    let step_one_done = finished_at(&running["execution_log"][0]);
    let released = chrono::Utc::now();
    go_on.notify_one();

    let run = wait_run(&crane, &run_id, "the end", |r| {
        r["status"] != "running" && r["status"] != "pending"
    })
    .await;
    assert_terminal(&run);
    assert_eq!(run["status"], "completed", "{run}");
    assert!(
        step_one_done < released,
        "step 1 finished before the stream went on"
    );
    let info = planner(&run);
    assert_eq!(info["source"], "llm", "{info}");
    assert!(info.get("partial").is_none(), "{info}");
    assert_eq!(
        info["usage"],
        json!({"input_tokens": 100, "output_tokens": 20})
    );
    assert_eq!(info["cost_usd"].to_string(), "0.00014", "{info}");
    let tools: Vec<&str> = run["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["todo_add", "todo_list"]);
    assert_eq!(completed_steps(&run), 2);
    assert!(run["result"].to_string().contains("streamed milk"), "{run}");
    let bodies = mock.bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["stream"], true);
    assert_eq!(bodies[0]["stream_options"]["include_usage"], true);

    // The same prompt again: an exact cache hit, planned whole (not streamed), no request.
    let (again, _) = crane.run_timed("add streamed milk and show my todos").await;
    assert_eq!(again["status"], "completed", "{again}");
    assert_eq!(planner(&again)["source"], "cache", "{again}");
    assert_eq!(mock.bodies().len(), 1);
}

#[tokio::test]
async fn a_plan_invalid_after_step_one_ran_fails_the_run_and_keeps_step_one() {
    let go_on = Arc::new(Notify::new());
    let (head, rest) = plan_halves(
        "half planned",
        json!({"tool": "weather", "input": {"city": "Oslo"}, "reasoning": "no such tool"}),
    );
    let mock = StreamMock::start(vec![vec![
        sse_head(),
        openai_deltas(&head),
        Part::Wait(go_on.clone()),
        openai_deltas(&rest),
        openai_end(),
    ]])
    .await;
    let crane = start_crane(&env(&mock.url), &format!("{CONFIG}{PRICING}")).await;
    let run_id = submit(&crane, "add half planned and check the weather").await;
    wait_run(&crane, &run_id, "step 1 completed", |r| {
        completed_steps(r) >= 1
    })
    .await;
    go_on.notify_one();
    let run = wait_run(&crane, &run_id, "the end", |r| {
        r["status"] != "running" && r["status"] != "pending"
    })
    .await;

    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("after step 1") && error.contains("weather"),
        "{error}"
    );
    assert_eq!(completed_steps(&run), 1, "{run}");
    assert_eq!(run["execution_log"][0]["tool"], "todo_add");
    // The partial plan of what ran stays; the failure and its cost are recorded.
    assert_eq!(planner(&run)["partial"], true, "{run}");
    assert_eq!(run["plan"]["steps"].as_array().map(Vec::len), Some(1));
    let failure = &run["plan_failure"];
    assert_eq!(failure["attempts"][0]["layer"], "llm:primary", "{failure}");
    assert_eq!(failure["usage"]["input_tokens"], 100, "{failure}");
    // No repair round, no rule fallback: one request.
    assert_eq!(mock.bodies().len(), 1);
    let metrics = crane.get_json("/metrics/planner").await;
    assert!(
        metrics["errors_by_category"]["invalid_after_step"].as_u64() >= Some(1),
        "{metrics}"
    );
}

#[tokio::test]
async fn anthropic_streamed_tool_use_runs_step_one_early() {
    let go_on = Arc::new(Notify::new());
    let (head, rest) = plan_halves(
        "anthropic milk",
        json!({"tool": "todo_list", "input": {}, "reasoning": "show"}),
    );
    // In the tools mode the plan is the tool_use input: no prose before the JSON.
    let head = head.trim_start_matches("Sure! ").to_owned();
    let event = |value: Value| {
        format!(
            "event: {}\ndata: {value}\n\n",
            value["type"].as_str().unwrap_or_default()
        )
    };
    let json_delta = |text: &str| {
        let chars: Vec<char> = text.chars().collect();
        chars
            .chunks(9)
            .map(|piece| {
                event(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": piece.iter().collect::<String>()}}))
            })
            .collect::<String>()
    };
    let start = event(
        json!({"type": "message_start", "message": {"model": MODEL, "usage": {"input_tokens": 100, "output_tokens": 1}}}),
    ) + &event(
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t1", "name": "plan", "input": {}}}),
    );
    let end = event(json!({"type": "content_block_stop", "index": 0}))
        + &event(
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}}),
        )
        + &event(json!({"type": "message_stop"}));
    let mock = StreamMock::start(vec![vec![
        sse_head(),
        Part::Bytes(start + &json_delta(&head)),
        Part::Wait(go_on.clone()),
        Part::Bytes(json_delta(&rest) + &end),
    ]])
    .await;
    let env = vec![
        ("CRANE_LLM_PROVIDER", "anthropic".to_owned()),
        ("CRANE_LLM_BASE_URL", mock.url.clone()),
        ("CRANE_LLM_MODEL", MODEL.to_owned()),
        ("CRANE_LLM_API_KEY", KEY.to_owned()),
    ];
    let crane = start_crane(&env, &format!("{CONFIG}{PRICING}")).await;
    let run_id = submit(&crane, "add anthropic milk and list").await;
    let running = wait_run(&crane, &run_id, "step 1 completed", |r| {
        completed_steps(r) >= 1
    })
    .await;
    assert_eq!(running["status"], "running", "{running}");
    go_on.notify_one();
    let run = wait_run(&crane, &run_id, "the end", |r| {
        r["status"] != "running" && r["status"] != "pending"
    })
    .await;
    assert_eq!(run["status"], "completed", "{run}");
    let info = planner(&run);
    assert_eq!(info["source"], "llm", "{info}");
    assert_eq!(info["mode"], "tools", "{info}");
    assert_eq!(
        info["usage"],
        json!({"input_tokens": 100, "output_tokens": 20})
    );
    assert_eq!(completed_steps(&run), 2);
    let bodies = mock.bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["stream"], true);
}

#[tokio::test]
async fn a_plain_json_answer_to_a_streamed_request_still_plans() {
    let plan = json!({"steps": [{"tool": "calculator", "input": {"expression": "7*6"}, "reasoning": "r"}]});
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": MODEL,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": plan.to_string()}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mock = StreamMock::start(vec![vec![Part::Bytes(answer)]]).await;
    let crane = start_crane(&env(&mock.url), &format!("{CONFIG}{PRICING}")).await;
    let (run, _) = crane.run_timed("what is 7 times 6").await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(planner(&run)["source"], "llm", "{run}");
    assert_eq!(run["result"]["value"], 42, "{run}");
    assert_eq!(planner(&run)["usage"]["input_tokens"], 100);
    assert_eq!(mock.bodies()[0]["stream"], true);
    drop(crane);

    // Streaming off (CRANE_LLM_STREAM=false): a plain request.
    let mut env = env(&mock.url);
    env.push(("CRANE_LLM_STREAM", "false".to_owned()));
    let crane = start_crane(&env, &format!("{CONFIG}{PRICING}")).await;
    let (run, _) = crane.run_timed("what is 6 times 7").await;
    assert_eq!(run["status"], "completed", "{run}");
    let bodies = mock.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1]["stream"], false);
    assert!(bodies[1].get("stream_options").is_none());
}

#[tokio::test]
async fn a_crash_after_an_early_step_replans_around_it_and_reruns_nothing() {
    // The first answer stops after step 1 for good; crane is killed meanwhile. After the
    // restart the run is planned again (the second answer), must begin with step 1, and only
    // step 2 runs.
    let never = Arc::new(Notify::new());
    let (head, rest) = plan_halves(
        "crash milk",
        json!({"tool": "todo_list", "input": {}, "reasoning": "show"}),
    );
    let mock = StreamMock::start(vec![
        vec![sse_head(), openai_deltas(&head), Part::Wait(never)],
        vec![
            sse_head(),
            openai_deltas(&format!("{head}{rest}")),
            openai_end(),
        ],
    ])
    .await;
    let env = env(&mock.url);
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = format!("{CONFIG}{PRICING}");
    let mut crane = start_crane(&env, &config).await;
    let run_id = submit(&crane, "add crash milk and list my todos").await;
    let before = wait_run(&crane, &run_id, "step 1 completed", |r| {
        completed_steps(r) >= 1
    })
    .await;
    assert_eq!(planner(&before)["partial"], true, "{before}");

    crane.kill9_and_restart(&refs, Some(&config)).await;
    let run = wait_run(&crane, &run_id, "the end", |r| {
        r["status"] != "running" && r["status"] != "pending"
    })
    .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert!(planner(&run).get("partial").is_none(), "{run}");
    assert_eq!(completed_steps(&run), 2, "{run}");
    // Step 1 is the record made before the crash, not a second execution.
    assert_eq!(run["execution_log"][0], before["execution_log"][0]);
    let listed = run["result"].to_string();
    assert_eq!(listed.matches("crash milk").count(), 1, "{listed}");
    assert_eq!(mock.bodies().len(), 2);
}
