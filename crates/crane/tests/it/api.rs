//! The HTTP API: the assignment flow, validation errors, tracing headers, idempotency,
//! listing, the OpenAPI document, metrics and the tool list.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Server, assert_error, error_of, plan_tools, step_statuses, titles, trace_id};

#[tokio::test]
async fn assignment_flow_adds_and_lists_todos() {
    let server = Server::start(&[]).await;
    let run = server
        .create_run(
            &json!({"prompt": "Add a todo to buy milk, then show me all my tasks"}),
            true,
        )
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(plan_tools(&run), ["todo_add", "todo_list"]);
    assert_eq!(
        run["plan"]["steps"][0]["input"],
        json!({"title": "buy milk"})
    );
    assert_eq!(run["plan"]["steps"][0]["step_number"], 1);
    assert_eq!(run["plan"]["steps"][1]["step_number"], 2);
    assert!(run["plan"]["plan_id"].is_string(), "{run}");
    assert!(run["plan"]["planner"]["name"].is_string(), "{run}");
    assert_eq!(step_statuses(&run), ["completed", "completed"]);
    for step in run["execution_log"].as_array().unwrap() {
        assert_eq!(step["attempts"], 1, "{step}");
        assert!(step["error"].is_null(), "{step}");
        assert!(step["duration_ms"].as_f64().is_some(), "{step}");
        assert!(
            step["started_at"].is_string() && step["finished_at"].is_string(),
            "{step}"
        );
    }
    assert_eq!(
        run["execution_log"][0]["output"]["todo"]["title"],
        "buy milk"
    );
    assert_eq!(run["execution_log"][0]["output"]["todo"]["done"], false);
    assert_eq!(titles(&run["result"]), ["buy milk"]);
    assert_eq!(run["result"]["count"], 1);
    assert!(run["error"].is_null(), "{run}");
    assert!(
        run["created_at"].is_string()
            && run["started_at"].is_string()
            && run["completed_at"].is_string()
    );
    assert_eq!(run["retries"], 0);
    // The stored run is the one answered.
    let stored = server.get_run(run["run_id"].as_str().unwrap()).await;
    assert_eq!(stored, run);
}

#[tokio::test]
async fn non_waiting_post_is_accepted_then_completes() {
    let server = Server::start(&[]).await;
    let (status, headers, run) = server
        .post_json("/runs", &json!({"prompt": "what is 7 times 6"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let status_now = run["status"].as_str().unwrap();
    assert!(
        ["pending", "running", "completed"].contains(&status_now),
        "unexpected status {status_now}"
    );
    let run_id = run["run_id"].as_str().unwrap();
    assert_eq!(
        headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/runs/{run_id}").as_str())
    );
    let done = server.wait_status(run_id, "completed").await;
    assert_eq!(done["result"]["value"], 42, "{done}");
    assert_eq!(plan_tools(&done), ["calculator"]);
}

#[tokio::test]
async fn unknown_task_fails_the_run_with_a_clear_error() {
    let server = Server::start(&[]).await;
    let run = server.run_prompt("book a flight to Paris").await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        error.contains("book a flight"),
        "error should name the clause: {error:?}"
    );
}

#[tokio::test]
async fn prompt_validation_errors() {
    let server = Server::start(&[]).await;
    for prompt in ["", "   \n\t "] {
        let (status, _, body) = server.post_json("/runs", &json!({"prompt": prompt})).await;
        assert_error(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "empty_prompt",
            "empty",
        );
    }
    let long = "a".repeat(8001);
    let (status, _, body) = server.post_json("/runs", &json!({"prompt": long})).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "prompt_too_long",
        "8000",
    );
    assert_eq!(body["error"]["details"]["limit"], 8000, "{body}");
    assert_eq!(body["error"]["details"]["length"], 8001, "{body}");
    // Exactly at the limit is accepted; the limit counts characters, not bytes.
    let (status, _, body) = server
        .post_json("/runs", &json!({"prompt": "a".repeat(8000)}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, body) = server
        .post_json("/runs", &json!({"prompt": "é".repeat(8000)}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, body) = server
        .post_json("/runs", &json!({"prompt": "é".repeat(8001)}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "prompt_too_long",
        "8001",
    );
    // None of the rejected requests created a run.
    let (_, _, page) = server.get("/runs").await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 2, "{page}");
}

#[tokio::test]
async fn request_format_errors() {
    let server = Server::start(&[]).await;
    let req = server
        .client
        .post(server.url("/runs"))
        .header("content-type", "application/json")
        .body("{\"prompt\": ");
    let (status, _, body) = server.send(req).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_json",
        "invalid JSON",
    );

    // Valid JSON of the wrong shape is invalid too.
    let (status, _, body) = server.post_json("/runs", &json!({"promt": "typo"})).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_json",
        "promt",
    );

    let req = server
        .client
        .post(server.url("/runs"))
        .header("content-type", "text/plain")
        .body("{\"prompt\": \"add a todo to buy milk\"}");
    let (status, _, body) = server.send(req).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "application/json",
    );

    let huge = json!({"prompt": "x".repeat(70 * 1024)});
    let (status, _, body) = server.post_json("/runs", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let error = error_of(&body);
    assert_eq!(error["code"], "body_too_large", "{body}");

    let (status, _, body) = server.get("/nope").await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "route_not_found",
        "/openapi.json",
    );
    assert!(
        body["error"]["details"]["routes"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r == "POST /runs")),
        "{body}"
    );

    let (status, _, body) = server.send(server.client.delete(server.url("/runs"))).await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "not allowed",
    );

    let (status, _, body) = server.get("/runs/does-not-exist").await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "not_found",
        "does-not-exist",
    );

    let (status, _, body) = server
        .post_json("/runs?wait=maybe", &json!({"prompt": "what is 1 plus 1"}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "wait",
    );
}

#[tokio::test]
async fn every_response_carries_a_trace_id() {
    let server = Server::start(&[]).await;
    let (status, headers, _) = server
        .post_json("/runs?wait=true", &json!({"prompt": "what is 2 plus 2"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let a = trace_id(&headers);
    let (status, headers, _) = server.post_json("/runs", &json!({"prompt": ""})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let b = trace_id(&headers);
    let (status, headers, _) = server.get("/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let c = trace_id(&headers);
    let (status, headers, _) = server.get("/runs/unknown-run").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let d = trace_id(&headers);
    let resp = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let e = trace_id(resp.headers());
    let (status, headers, _) = server.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    let f = trace_id(&headers);
    let all: HashSet<_> = [a, b, c, d, e, f].into_iter().collect();
    assert_eq!(
        all.len(),
        6,
        "fresh trace ids must differ per request: {all:?}"
    );
}

#[tokio::test]
async fn traceparent_is_honoured() {
    let server = Server::start(&[]).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let req = server
        .client
        .post(server.url("/runs?wait=true"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!({"prompt": "what is 3 plus 4"}));
    let (status, headers, run) = server.send(req).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(trace_id(&headers), trace);
    assert_eq!(run["trace_id"], trace, "{run}");
    let stored = server.get_run(run["run_id"].as_str().unwrap()).await;
    assert_eq!(stored["trace_id"], trace);

    // On an error answer too.
    let req = server
        .client
        .get(server.url("/runs/nope"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"));
    let (status, headers, _) = server.send(req).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(trace_id(&headers), trace);

    // An invalid traceparent is ignored: a fresh id is made.
    let req = server.client.get(server.url("/health")).header(
        "traceparent",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    );
    let (_, headers, _) = server.send(req).await;
    let fresh = trace_id(&headers);
    assert_ne!(fresh, "00000000000000000000000000000000");
    assert_ne!(fresh, trace);
}

#[tokio::test]
async fn idempotency_key_returns_the_same_run() {
    let server = Server::start(&[]).await;
    let body = json!({"prompt": "Add a todo to water the plants"});
    let first = server
        .send(
            server
                .client
                .post(server.url("/runs?wait=true"))
                .header("Idempotency-Key", "order-42")
                .json(&body),
        )
        .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.2);
    assert!(
        first.1.get("idempotent-replayed").is_none(),
        "first answer is not a replay"
    );
    assert_eq!(first.2["status"], "completed", "{}", first.2);
    let second = server
        .send(
            server
                .client
                .post(server.url("/runs?wait=true"))
                .header("Idempotency-Key", "order-42")
                .json(&body),
        )
        .await;
    assert!(second.0.is_success(), "{}", second.2);
    assert_eq!(
        second
            .1
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(second.2["run_id"], first.2["run_id"]);
    // Another key makes another run.
    let third = server
        .send(
            server
                .client
                .post(server.url("/runs"))
                .header("Idempotency-Key", "order-43")
                .json(&body),
        )
        .await;
    assert_eq!(third.0, StatusCode::CREATED);
    assert_ne!(third.2["run_id"], first.2["run_id"]);
    server
        .wait_status(third.2["run_id"].as_str().unwrap(), "completed")
        .await;

    let (_, _, page) = server.get("/runs").await;
    let ids: Vec<&Value> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["run_id"])
        .collect();
    assert_eq!(ids.len(), 2, "{page}");
    assert_eq!(
        ids.iter().filter(|id| ***id == first.2["run_id"]).count(),
        1
    );
    // The todo was added once per distinct key.
    let todos = server.todo_titles().await;
    assert_eq!(
        todos.iter().filter(|t| *t == "water the plants").count(),
        2,
        "{todos:?}"
    );

    // Concurrent requests with one new key still make exactly one run.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let req = server
                .client
                .post(server.url("/runs"))
                .header("Idempotency-Key", "race")
                .json(&json!({"prompt": "what is 6 times 7"}));
            tokio::spawn(async move {
                let resp = req.send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::CREATED);
                let replayed = resp.headers().get("idempotent-replayed").is_some();
                let run: Value = resp.json().await.unwrap();
                (run, replayed)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let ids: HashSet<String> = answers
        .iter()
        .map(|a| a.0["run_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "one key, one run: {ids:?}");
    let originals = answers.iter().filter(|a| !a.1).count();
    assert_eq!(originals, 1, "exactly one answer is the original");
    let (_, _, page) = server.get("/runs").await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 4, "{page}");

    let (status, _, body) = server
        .send(
            server
                .client
                .post(server.url("/runs"))
                .header("Idempotency-Key", "   ")
                .json(&body),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "Idempotency-Key",
    );
}

#[tokio::test]
async fn listing_paginates_and_filters() {
    let server = Server::start(&[]).await;
    let mut created = Vec::new();
    for i in 0..5 {
        let run = server.run_prompt(&format!("what is {i} plus 1")).await;
        assert_eq!(run["status"], "completed", "{run}");
        created.push(run["run_id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/runs?limit=2&cursor={c}"),
            None => "/runs?limit=2".to_owned(),
        };
        let (status, _, page) = server.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let runs = page["runs"].as_array().unwrap();
        assert!(runs.len() <= 2, "{page}");
        seen.extend(
            runs.iter()
                .map(|r| r["run_id"].as_str().unwrap().to_owned()),
        );
        match &page["next_cursor"] {
            Value::Null => break,
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("next_cursor must be a string or null, got {other}"),
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(
        seen, newest_first,
        "pages must list every run once, newest first"
    );

    let failed = server.run_prompt("book a flight to Paris").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let failed_id = failed["run_id"].clone();
    let (_, _, page) = server.get("/runs?status=failed").await;
    let ids: Vec<&Value> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["run_id"])
        .collect();
    assert_eq!(ids, [&failed_id], "{page}");
    assert!(page["next_cursor"].is_null());
    let (_, _, page) = server.get("/runs?status=completed&limit=200").await;
    let runs = page["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 5, "{page}");
    assert!(
        runs.iter()
            .all(|r| r["status"] == "completed" && r["run_id"] != failed_id)
    );

    // user_id filter.
    let mine = server
        .create_run(
            &json!({"prompt": "what is 9 plus 1", "user_id": "alice"}),
            true,
        )
        .await;
    let (_, _, page) = server.get("/runs?user_id=alice").await;
    let ids: Vec<&Value> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["run_id"])
        .collect();
    assert_eq!(ids, [&mine["run_id"]], "{page}");
}

#[tokio::test]
async fn listing_rejects_bad_parameters() {
    let server = Server::start(&[]).await;
    for (query, needle) in [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=abc", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=-5", "cursor"),
        ("colour=red", "colour"),
    ] {
        let (status, headers, body) = server.get(&format!("/runs?{query}")).await;
        assert_error(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            needle,
        );
        trace_id(&headers);
    }
}

#[tokio::test]
async fn invalid_client_plan_names_step_and_path() {
    let server = Server::start(&[]).await;
    let body = json!({
        "prompt": "custom plan",
        "steps": [
            {"tool": "todo_add", "input": {"title": 42}},
            {"tool": "send_email", "input": {}},
            {"tool": "todo_complete", "input": {"id": "${steps.1.todo.idd}"}},
        ]
    });
    let (status, _, body) = server.post_json("/runs", &body).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_plan",
        "step 1",
    );
    let violations = body["error"]["details"]["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let find = |step: u64, path: &str| {
        violations
            .iter()
            .find(|v| v["step_number"] == step && v["path"] == path)
            .unwrap_or_else(|| panic!("no violation for step {step} {path}: {body}"))
    };
    find(1, "input.title");
    assert!(
        find(2, "tool")["message"]
            .as_str()
            .unwrap()
            .contains("send_email")
    );
    assert!(
        find(3, "input.id")["message"]
            .as_str()
            .unwrap()
            .contains("idd")
    );
    let (_, _, page) = server.get("/runs").await;
    assert_eq!(
        page["runs"],
        json!([]),
        "an invalid plan must not create a run"
    );

    // Empty plan and unknown debug tools (not registered without --debug-tools).
    let (status, _, body) = server
        .post_json("/runs", &json!({"prompt": "x", "steps": []}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_plan",
        "no steps",
    );
    let (status, _, body) = server
        .post_json(
            "/runs",
            &json!({"prompt": "x", "steps": [{"tool": "debug_sleep", "input": {"ms": 1}}]}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_plan",
        "debug_sleep",
    );
}

#[tokio::test]
async fn client_plan_references_earlier_outputs() {
    let server = Server::start(&[]).await;
    let run = server
        .run_steps(json!([
            {"tool": "todo_add", "input": {"title": "call mom"}},
            {"tool": "todo_complete", "input": {"id": "${steps.1.todo.id}"}},
            {"tool": "todo_list", "input": {"done": true}},
        ]))
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["plan"]["planner"]["source"], "client", "{run}");
    let id = &run["execution_log"][0]["output"]["todo"]["id"];
    assert!(id.is_string());
    // The execution log records the resolved input.
    assert_eq!(run["execution_log"][1]["input"]["id"], *id);
    assert_eq!(run["execution_log"][1]["output"]["todo"]["done"], true);
    assert_eq!(titles(&run["result"]), ["call mom"]);
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let server = Server::start(&[]).await;
    let run = server.run_prompt("what is 1 plus 1").await;
    let run_id = run["run_id"].as_str().unwrap();
    let (status, _, doc) = server.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "{doc}"
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (template, ops) in paths {
        let path = template
            .replace("{run_id}", run_id)
            .replace("{name}", "rule")
            .replace("{version}", "1.0.0")
            .replace("{alias}", "production")
            .replace("{key_id}", "0000000000000000");
        for method in ops.as_object().expect("operations").keys() {
            let req = match method.as_str() {
                "get" => server.client.get(server.url(&path)),
                "post" if path == "/runs" => server
                    .client
                    .post(server.url(&path))
                    .json(&json!({"prompt": "what is 2 plus 2"})),
                "post" if path == "/keys" => server
                    .client
                    .post(server.url(&path))
                    .json(&json!({"role": "viewer"})),
                "post" => server.client.post(server.url(&path)),
                "delete" => server.client.delete(server.url(&path)),
                "put" => server
                    .client
                    .put(server.url(&path))
                    .json(&json!({"variant": "rule"})),
                other => panic!("unexpected method {other} in the document"),
            };
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {body}"
            );
            assert!(
                !(status == StatusCode::NOT_FOUND && body["error"]["code"] == "route_not_found"),
                "{method} {path} is documented but not routed"
            );
            assert!(
                !status.is_server_error(),
                "{method} {path}: {status} {body}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "the document lists only {checked} operations"
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let server = Server::start(&[]).await;
    server.run_prompt("what is 5 plus 5").await;
    let (status, _, _) = server.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    // Made-up methods and paths do not become label values.
    for method in ["FOOBAR1", "FOOBAR2"] {
        for path in ["/runs", "/no/such/path/1"] {
            let response = server
                .client
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    server.url(path),
                )
                .send()
                .await
                .unwrap();
            assert!(response.status().is_client_error(), "{method} {path}");
        }
    }
    let resp = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain"),
        "content type {content_type}"
    );
    let text = resp.text().await.unwrap();
    assert!(text.contains("crane_http_requests_total"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("crane_http_requests_total{") && l.contains("route=\"/health\"")),
        "requests are labelled by route: {text}"
    );
    assert!(text.contains("crane_runs_total"), "{text}");
    assert!(
        !text.contains("FOOBAR") && !text.contains("/no/such"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("crane_http_requests_total{")
                && l.contains("method=\"_OTHER\",route=\"unmatched\",status=\"404\"")
                && l.ends_with(" 2")),
        "{text}"
    );
    // Every sample line is `name{labels} value` or `name value`.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf" || value == "NaN",
            "bad sample: {line}"
        );
    }

    let (status, _, health) = server.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok", "{health}");
    let (status, _, planner) = server.get("/metrics/planner").await;
    assert_eq!(status, StatusCode::OK);
    assert!(planner.is_object(), "{planner}");
}

#[tokio::test]
async fn tools_are_listed_with_schemas() {
    let server = Server::start(&[]).await;
    let (status, _, body) = server.get("/tools").await;
    assert_eq!(status, StatusCode::OK);
    let tools = body["tools"].as_array().unwrap_or_else(|| panic!("{body}"));
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
    assert_eq!(
        names.len(),
        5,
        "debug tools are hidden without --debug-tools: {names:?}"
    );
    for tool in tools {
        assert!(
            tool["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{tool}"
        );
        assert_eq!(tool["input_schema"]["type"], "object", "{tool}");
        assert!(tool["output_schema"].is_object(), "{tool}");
    }
    let add = tools.iter().find(|t| t["name"] == "todo_add").unwrap();
    assert!(
        add["input_schema"]["properties"]["title"].is_object(),
        "{add}"
    );
    let calc = tools.iter().find(|t| t["name"] == "calculator").unwrap();
    assert!(
        calc["input_schema"]["properties"]["expression"].is_object(),
        "{calc}"
    );
}
