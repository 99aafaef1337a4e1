//! The run lifecycle against a server with the fault-injection tools: retries with backoff,
//! non-retryable failures, step timeouts, the retry and cancel endpoints, durability across a
//! graceful restart, recovery after kill -9, and draining on SIGTERM.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Server, assert_error, step_statuses};

fn attempt_statuses(step: &Value) -> Vec<String> {
    step["attempt_log"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempt_log in {step}"))
        .iter()
        .map(|a| a["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    let server = Server::start_debug(&[]).await;
    let run = server
        .run_steps(json!([{"tool": "debug_flaky", "input": {"fail_times": 2}}]))
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    let step = &run["execution_log"][0];
    assert_eq!(step["status"], "completed", "{step}");
    assert_eq!(step["attempts"], 3, "{step}");
    assert!(step["error"].is_null(), "{step}");
    assert_eq!(attempt_statuses(step), ["failed", "failed", "completed"]);
    let log = step["attempt_log"].as_array().unwrap();
    for (i, attempt) in log.iter().enumerate() {
        assert_eq!(attempt["attempt"], i + 1, "{attempt}");
        assert!(attempt["duration_ms"].as_f64().is_some(), "{attempt}");
        assert!(attempt["started_at"].is_string(), "{attempt}");
    }
    for failed in &log[..2] {
        assert_eq!(failed["error_kind"], "transient", "{failed}");
        assert!(
            failed["error"]
                .as_str()
                .is_some_and(|e| e.contains("transient")),
            "{failed}"
        );
        let backoff = failed["backoff_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("no backoff_ms: {failed}"));
        assert!(backoff <= 2_000, "backoff {backoff} ms is above the cap");
    }
    assert!(log[2]["backoff_ms"].is_null(), "{}", log[2]);
    assert!(log[2]["error"].is_null(), "{}", log[2]);
    assert_eq!(step["output"]["attempts"], 3, "{step}");
    assert_eq!(run["result"]["ok"], true, "{run}");
}

#[tokio::test]
async fn permanent_failures_are_not_retried() {
    let server = Server::start_debug(&[]).await;
    for kind in ["not_found", "invalid_input"] {
        let run = server
            .run_steps(json!([
                {"tool": "todo_add", "input": {"title": format!("before {kind}")}},
                {"tool": "debug_fail", "input": {"kind": kind}},
                {"tool": "todo_add", "input": {"title": format!("after {kind}")}},
            ]))
            .await;
        assert_eq!(run["status"], "failed", "{run}");
        // The failed step ends the run: step 3 never ran.
        assert_eq!(step_statuses(&run), ["completed", "failed"], "{run}");
        let step = &run["execution_log"][1];
        assert_eq!(step["attempts"], 1, "{kind} must not be retried: {step}");
        assert_eq!(attempt_statuses(step), ["failed"]);
        assert_eq!(step["attempt_log"][0]["error_kind"], kind, "{step}");
        assert!(step["attempt_log"][0]["backoff_ms"].is_null(), "{step}");
        let error = run["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("step 2") && error.contains("debug_fail"),
            "run error {error:?}"
        );
        assert!(
            error.contains(&format!("injected {kind} failure")),
            "run error {error:?}"
        );
        assert!(run["result"].is_null(), "{run}");
    }
    let todos = server.todo_titles().await;
    assert!(todos.contains(&"before not_found".to_owned()), "{todos:?}");
    assert!(!todos.iter().any(|t| t.starts_with("after")), "{todos:?}");

    // A transient failure that never clears uses every attempt.
    let run = server
        .run_steps(json!([{"tool": "debug_fail", "input": {"kind": "transient"}}]))
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["execution_log"][0]["attempts"], 3, "{run}");
    assert!(
        run["error"].as_str().unwrap().contains("after 3 attempts"),
        "{run}"
    );
}

#[tokio::test]
async fn slow_steps_time_out_and_are_retried() {
    let server =
        Server::start_debug(&["--step-timeout-ms", "200", "--retry-max-attempts", "2"]).await;
    let started = std::time::Instant::now();
    let run = server
        .run_steps(json!([{"tool": "debug_sleep", "input": {"ms": 5000}}]))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(run["status"], "failed", "{run}");
    let step = &run["execution_log"][0];
    assert_eq!(step["attempts"], 2, "{step}");
    assert_eq!(attempt_statuses(step), ["failed", "failed"]);
    assert_eq!(step["attempt_log"][0]["error_kind"], "timeout", "{step}");
    assert!(
        step["error"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out"),
        "{step}"
    );
    assert!(
        run["error"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out"),
        "{run}"
    );
    for attempt in step["attempt_log"].as_array().unwrap() {
        let ms = attempt["duration_ms"].as_f64().unwrap();
        assert!(
            (150.0..2_000.0).contains(&ms),
            "attempt took {ms} ms; the timeout is 200 ms"
        );
    }
    assert!(
        elapsed.as_millis() < 4_000,
        "the run took {elapsed:?}: the timeout was not enforced"
    );
}

#[tokio::test]
async fn retry_resumes_from_the_failed_step() {
    let server = Server::start_debug(&["--retry-max-attempts", "2"]).await;
    // The flaky step fails twice: both attempts of the first execution. The retry's first
    // attempt is its third call, which succeeds.
    let run = server
        .run_steps(json!([
            {"tool": "todo_add", "input": {"title": "retry me"}},
            {"tool": "debug_flaky", "input": {"fail_times": 2, "key": "k1"}},
        ]))
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(step_statuses(&run), ["completed", "failed"]);
    assert_eq!(run["execution_log"][1]["attempts"], 2);
    assert_eq!(run["retries"], 0);
    let run_id = run["run_id"].as_str().unwrap();
    let step1_before = run["execution_log"][0].clone();

    let (status, _, retried) = server
        .post_empty(&format!("/runs/{run_id}/retry?wait=true"))
        .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["run_id"], run_id);
    assert_eq!(retried["status"], "completed", "{retried}");
    assert_eq!(retried["retries"], 1, "{retried}");
    assert!(retried["error"].is_null(), "{retried}");
    assert_eq!(step_statuses(&retried), ["completed", "completed"]);
    assert_eq!(
        retried["execution_log"][0], step1_before,
        "step 1 must not be re-executed"
    );
    let step2 = &retried["execution_log"][1];
    assert_eq!(step2["attempts"], 1, "{step2}");
    assert_eq!(step2["output"]["attempts"], 3, "{step2}");
    assert_eq!(retried["result"], step2["output"]);
    assert_eq!(server.get_run(run_id).await, retried);

    let todos = server.todo_titles().await;
    assert_eq!(
        todos.iter().filter(|t| *t == "retry me").count(),
        1,
        "{todos:?}"
    );

    // Only failed runs can be retried.
    let (status, _, body) = server.post_empty(&format!("/runs/{run_id}/retry")).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict", "completed");
    let (status, _, body) = server.post_empty("/runs/no-such-run/retry").await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "not_found",
        "no-such-run",
    );
}

#[tokio::test]
async fn retry_without_wait_and_failing_again() {
    let server = Server::start_debug(&["--retry-max-attempts", "2"]).await;
    let run = server
        .run_steps(json!([
            {"tool": "todo_add", "input": {"title": "twice"}},
            {"tool": "debug_flaky", "input": {"fail_times": 4, "key": "k2"}},
        ]))
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    let run_id = run["run_id"].as_str().unwrap();
    // First retry: calls 3 and 4 fail too.
    let (status, _, first) = server.post_empty(&format!("/runs/{run_id}/retry")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["retries"], 1);
    let first = server
        .wait_for(run_id, "the first retry to fail", |r| {
            r["status"] == "failed"
        })
        .await;
    assert_eq!(first["retries"], 1);
    assert_eq!(first["execution_log"][1]["attempts"], 2, "{first}");
    // Second retry: call 5 succeeds.
    let (status, _, second) = server
        .post_empty(&format!("/runs/{run_id}/retry?wait=true"))
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["status"], "completed", "{second}");
    assert_eq!(second["retries"], 2);
    assert_eq!(
        second["execution_log"][1]["output"]["attempts"], 5,
        "{second}"
    );
    assert_eq!(second["execution_log"][0], run["execution_log"][0]);
}

#[tokio::test]
async fn running_runs_can_be_cancelled_once() {
    let server = Server::start_debug(&[]).await;
    let run = server
        .create_run(
            &json!({"prompt": "slow", "steps": [{"tool": "debug_sleep", "input": {"ms": 30000}}]}),
            false,
        )
        .await;
    let run_id = run["run_id"].as_str().unwrap();
    server
        .wait_for(run_id, "pending or running", |r| {
            r["status"] == "pending" || r["status"] == "running"
        })
        .await;
    let started = std::time::Instant::now();
    let (status, _, cancelled) = server.post_empty(&format!("/runs/{run_id}/cancel")).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(cancelled["completed_at"].is_string(), "{cancelled}");
    assert!(
        started.elapsed().as_secs() < 10,
        "cancel must interrupt the running step"
    );
    let stored = server.get_run(run_id).await;
    assert_eq!(stored["status"], "cancelled");
    let (status, _, body) = server.post_empty(&format!("/runs/{run_id}/cancel")).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict", "cancelled");
    // A cancelled run is not retryable.
    let (status, _, body) = server.post_empty(&format!("/runs/{run_id}/retry")).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict", "failed");
    let (status, _, body) = server.post_empty("/runs/no-such-run/cancel").await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "not_found",
        "no-such-run",
    );
    // A completed run cannot be cancelled.
    let done = server.run_prompt("what is 7 times 6").await;
    let (status, _, body) = server
        .post_empty(&format!(
            "/runs/{}/cancel",
            done["run_id"].as_str().unwrap()
        ))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict", "completed");
}

#[tokio::test]
async fn runs_survive_a_graceful_restart() {
    let mut server = Server::start_debug(&[]).await;
    let mut before = Vec::new();
    for prompt in [
        "Add a todo to buy milk, then show me all my tasks",
        "what is 7 times 6",
        "Add a todo to call the bank",
    ] {
        let run = server.run_prompt(prompt).await;
        assert_eq!(run["status"], "completed", "{run}");
        before.push(run);
    }
    let status = server.stop_graceful().await;
    assert!(status.success(), "graceful stop must exit 0, got {status}");
    server.restart().await;
    for run in &before {
        let after = server.get_run(run["run_id"].as_str().unwrap()).await;
        assert_eq!(&after, run, "the run changed across the restart");
    }
    let (_, _, page) = server.get("/runs").await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 3, "{page}");
    let todos = server.todo_titles().await;
    assert_eq!(todos, ["buy milk", "call the bank"]);
}

/// A waited-for run without an idempotency key is stored only when it finishes or before its
/// first side effect; whatever the answer shows is committed: a finished run is there at once,
/// and a read-only run (nothing stored before it finishes) whose bounded wait ended first is
/// stored before that answer, so it survives kill -9 and resumes.
#[tokio::test]
async fn waited_runs_are_stored_before_they_are_answered_and_survive_kill9() {
    let mut server = Server::start_debug(&["--step-timeout-ms", "60000"]).await;
    let done = server.run_prompt("what is 6 times 7").await;
    assert_eq!(done["status"], "completed", "{done}");
    server.kill9().await;
    server.restart().await;
    let stored = server.get_run(done["run_id"].as_str().unwrap()).await;
    assert_eq!(stored, done, "the answered run was not what was stored");

    let (status, _, acked) = server
        .post_json(
            "/runs?wait=true&timeout_ms=300",
            &json!({"prompt": "crash test", "steps": [
                {"tool": "debug_sleep", "input": {"ms": 1500}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{acked}");
    assert!(
        acked["status"] == "pending" || acked["status"] == "running",
        "{acked}"
    );
    let run_id = acked["run_id"].as_str().unwrap().to_owned();
    server.kill9().await;
    server.restart().await;
    let done = server.wait_status(&run_id, "completed").await;
    assert_eq!(step_statuses(&done), ["completed"], "{done}");
    assert_eq!(done["created_at"], acked["created_at"], "{done}");
}

#[tokio::test]
async fn kill9_mid_run_resumes_after_restart() {
    let mut server = Server::start_debug(&["--step-timeout-ms", "60000"]).await;
    let run = server
        .create_run(
            &json!({"prompt": "crash test", "steps": [
                {"tool": "todo_add", "input": {"title": "before crash"}},
                {"tool": "debug_sleep", "input": {"ms": 2000}},
                {"tool": "todo_add", "input": {"title": "after crash"}},
            ]}),
            false,
        )
        .await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    let mid = server
        .wait_for(&run_id, "step 1 completed while the run is running", |r| {
            r["status"] == "running" && r["execution_log"][0]["status"] == "completed"
        })
        .await;
    assert_eq!(step_statuses(&mid), ["completed"], "{mid}");
    server.kill9().await;
    server.restart().await;
    let done = server.wait_status(&run_id, "completed").await;
    assert_eq!(
        step_statuses(&done),
        ["completed", "completed", "completed"],
        "{done}"
    );
    assert_eq!(
        done["execution_log"][0], mid["execution_log"][0],
        "step 1 must not run again"
    );
    assert_eq!(done["plan"], run["plan"]);
    assert_eq!(done["created_at"], run["created_at"]);
    assert_eq!(done["result"]["todo"]["title"], "after crash", "{done}");
    let todos = server.todo_titles().await;
    assert_eq!(
        todos.iter().filter(|t| *t == "before crash").count(),
        1,
        "{todos:?}"
    );
    assert_eq!(
        todos.iter().filter(|t| *t == "after crash").count(),
        1,
        "{todos:?}"
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_runs() {
    let mut server = Server::start_debug(&[]).await;
    let run = server
        .create_run(
            &json!({"prompt": "drain", "steps": [{"tool": "debug_sleep", "input": {"ms": 1000}}]}),
            false,
        )
        .await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    assert_ne!(
        run["status"], "completed",
        "the run cannot have finished yet: {run}"
    );
    server.sigterm();
    let status = server.wait_exit().await;
    assert!(
        status.success(),
        "graceful shutdown must exit 0, got {status}"
    );
    server.restart().await;
    // Completed during the drain, not resumed by recovery after the restart.
    let after = server.get_run(&run_id).await;
    assert_eq!(after["status"], "completed", "{after}");
    assert_eq!(after["execution_log"][0]["attempts"], 1, "{after}");
    let logs = server.logs();
    assert!(
        !logs.contains("resuming unfinished run"),
        "nothing should be resumed:\n{logs}"
    );
}

#[tokio::test]
async fn queued_runs_wait_for_a_worker_and_can_be_cancelled() {
    let server = Server::start_debug(&["--workers", "1"]).await;
    let slow = server
        .create_run(
            &json!({"prompt": "slow", "steps": [{"tool": "debug_sleep", "input": {"ms": 30000}}]}),
            false,
        )
        .await;
    // The slow run holds the only worker before the second arrives (two spawned tasks may
    // otherwise take the worker in either order).
    server
        .wait_for(
            slow["run_id"].as_str().unwrap(),
            "the slow run to start",
            |r| r["status"] == "running",
        )
        .await;
    let queued = server
        .create_run(
            &json!({"prompt": "queued", "steps": [{"tool": "todo_add", "input": {"title": "never added"}}]}),
            false,
        )
        .await;
    let (slow_id, queued_id) = (
        slow["run_id"].as_str().unwrap(),
        queued["run_id"].as_str().unwrap(),
    );
    // The only worker is busy: the second run stays pending with nothing executed.
    let deadline = tokio::time::Instant::now() + crate::support::DEADLINE;
    loop {
        let (_, _, health) = server.get("/health").await;
        if health["active_runs"] == 2 && health["queue_depth"] == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue never built up: {health}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pending = server.get_run(queued_id).await;
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(pending["execution_log"], json!([]), "{pending}");

    let (status, _, cancelled) = server
        .post_empty(&format!("/runs/{queued_id}/cancel"))
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["execution_log"], json!([]), "{cancelled}");
    let (status, _, cancelled) = server.post_empty(&format!("/runs/{slow_id}/cancel")).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");

    let (_, _, health) = server.get("/health").await;
    assert_eq!(health["active_runs"], 0, "{health}");
    assert_eq!(health["queue_depth"], 0, "{health}");
    let todos = server.todo_titles().await;
    assert!(
        todos.is_empty(),
        "a cancelled queued run executed: {todos:?}"
    );
}

#[tokio::test]
async fn bounded_wait_answers_with_the_current_state() {
    let server = Server::start_debug(&[]).await;
    let started = std::time::Instant::now();
    let (status, _, run) = server
        .post_json(
            "/runs?wait=true&timeout_ms=200",
            &json!({"prompt": "slow", "steps": [{"tool": "debug_sleep", "input": {"ms": 30000}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert!(
        started.elapsed().as_secs() < 10,
        "the wait was not bounded by timeout_ms"
    );
    let state = run["status"].as_str().unwrap();
    assert!(state == "pending" || state == "running", "{run}");
    let run_id = run["run_id"].as_str().unwrap();
    let (status, _, cancelled) = server.post_empty(&format!("/runs/{run_id}/cancel")).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
}

#[tokio::test]
async fn a_run_rejected_by_the_planner_can_be_retried() {
    let server = Server::start_debug(&[]).await;
    let run = server.run_prompt("book a flight to Paris").await;
    assert_eq!(run["status"], "failed", "{run}");
    let run_id = run["run_id"].as_str().unwrap();
    let (status, _, retried) = server
        .post_empty(&format!("/runs/{run_id}/retry?wait=true"))
        .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["status"], "failed", "{retried}");
    assert_eq!(retried["retries"], 1, "{retried}");
    assert_eq!(retried["error"], run["error"], "{retried}");
}

/// Product bug (see the report): the stored status stays `pending`, with no `started_at`,
/// until the first step finishes, so a run executing a long first step is invisible to
/// `GET /runs?status=running`.
#[tokio::test]
async fn running_status_is_stored_when_execution_starts() {
    let server = Server::start_debug(&[]).await;
    let run = server
        .create_run(
            &json!({"prompt": "slow", "steps": [{"tool": "debug_sleep", "input": {"ms": 30000}}]}),
            false,
        )
        .await;
    let run_id = run["run_id"].as_str().unwrap();
    let running = server.wait_status(run_id, "running").await;
    assert!(running["started_at"].is_string(), "{running}");
    let (_, _, page) = server.get("/runs?status=running").await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 1, "{page}");
    let (status, _, _) = server.post_empty(&format!("/runs/{run_id}/cancel")).await;
    assert_eq!(status, StatusCode::OK);
}

/// Product bug (see the report): replaying an idempotency key with `?wait=true` answers at
/// once with the original run's current state instead of waiting for it to finish.
#[tokio::test]
async fn idempotent_replay_honours_wait() {
    let server = Server::start_debug(&[]).await;
    let body = json!({"prompt": "slow", "steps": [{"tool": "debug_sleep", "input": {"ms": 500}}]});
    let req = |wait: bool| {
        let path = if wait { "/runs?wait=true" } else { "/runs" };
        server
            .client
            .post(server.url(path))
            .header("Idempotency-Key", "slow-key")
            .json(&body)
    };
    let (status, _, first) = server.send(req(false)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (_, headers, replay) = server.send(req(true)).await;
    assert!(headers.get("idempotent-replayed").is_some());
    assert_eq!(replay["run_id"], first["run_id"]);
    assert_eq!(
        replay["status"], "completed",
        "?wait=true must wait for the original run: {replay}"
    );
}
