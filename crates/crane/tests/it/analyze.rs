//! Failure analysis end to end (`CRANE_AUTH=keys`, rule planner): runs of tenant `acme` fail
//! in three ways (a rejected prompt, a todo that does not exist, a division by zero) and some
//! complete; another tenant's failure stays out. `GET /analysis/failures` (viewer) groups them
//! by category and normalised prompt; bad limits are 400; `crane analyze failures --out` on the
//! same data dir after the server stopped writes a dataset that `crane eval --planner rule`
//! runs, where every regression case fails again (nothing was fixed).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Server, cli_key, crane_command, error_of};

async fn call(
    server: &Server,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = server
        .client
        .request(method, server.url(path))
        .bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let (status, _, body) = server.send(req).await;
    (status, body)
}

async fn run(server: &Server, key: &str, prompt: &str) -> Value {
    let (status, run) = call(
        server,
        key,
        Method::POST,
        "/runs?wait=true",
        Some(json!({"prompt": prompt})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    run
}

#[tokio::test]
async fn failed_runs_group_by_category_and_become_regression_cases() {
    let mut server = Server::start_with_env(&[], &[("CRANE_AUTH", "keys")]).await;
    let acme = cli_key(&server, "acme", "operator").await.1;
    let viewer = cli_key(&server, "acme", "viewer").await.1;
    let globex = cli_key(&server, "globex", "operator").await.1;

    let failing = [
        "book a flight to Paris",
        "what is 1/0",
        "mark buy milk as done",
        "What is 2/0",
        "what is 3 / 0",
        "book a flight to Paris",
    ];
    for prompt in failing {
        let r = run(&server, &acme, prompt).await;
        assert_eq!(r["status"], "failed", "{r}");
    }
    for prompt in ["what is 2+2", "add buy bread"] {
        let r = run(&server, &acme, prompt).await;
        assert_eq!(r["status"], "completed", "{r}");
    }
    let other = run(&server, &globex, "order a pizza").await;
    assert_eq!(other["status"], "failed", "{other}");

    let (status, body) = call(&server, &viewer, Method::GET, "/analysis/failures", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["runs_examined"], 6, "{body}");
    let groups: Vec<(String, u64, String)> = body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["category"].as_str().unwrap().to_owned(),
                g["size"].as_u64().unwrap(),
                g["representative_prompt"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Newest first (equal sizes in order of their newest run); the representative is the
    // group's newest prompt.
    assert_eq!(
        groups,
        vec![
            ("plan_rejected".into(), 2, "book a flight to Paris".into()),
            ("tool_error:calculator".into(), 2, "What is 2/0".into()),
            ("tool_error:calculator".into(), 1, "what is 3 / 0".into()),
            (
                "tool_error:todo_complete".into(),
                1,
                "mark buy milk as done".into()
            ),
        ],
        "{body}"
    );
    let first = &body["groups"][1];
    assert_eq!(first["method"], "text");
    assert_eq!(first["run_ids"].as_array().unwrap().len(), 2);
    assert!(
        first["sample_error"]
            .as_str()
            .unwrap()
            .contains("division by zero"),
        "{body}"
    );

    // Limits: the newest N; out of range is a 400 that says what to use.
    let (status, body) = call(
        &server,
        &viewer,
        Method::GET,
        "/analysis/failures?limit=1",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["runs_examined"], 1);
    assert_eq!(
        body["groups"][0]["representative_prompt"],
        "book a flight to Paris"
    );
    for bad in ["limit=0", "limit=10001", "limit=x", "threshold=2", "nope=1"] {
        let (status, body) = call(
            &server,
            &viewer,
            Method::GET,
            &format!("/analysis/failures?{bad}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(error_of(&body)["code"], "invalid_request", "{body}");
    }
    // Another tenant sees only its own failure; no key is 401.
    let (_, body) = call(&server, &globex, Method::GET, "/analysis/failures", None).await;
    assert_eq!(body["runs_examined"], 1, "{body}");
    assert_eq!(body["groups"][0]["representative_prompt"], "order a pizza");
    let (status, _, _) = server.get("/analysis/failures").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    server.stop_graceful().await;
    let dir = server.data_dir();
    let dataset = dir.join("failures.jsonl");
    let out = crane_command(&dir)
        .envs(
            server
                .env_var("CRANE_DATABASE_URL")
                .map(|u| ("CRANE_DATABASE_URL", u)),
        )
        .args(["analyze", "failures", "--tenant", "acme", "--json", "--out"])
        .arg(&dataset)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["runs_examined"], 6, "{report}");
    assert_eq!(report["groups"].as_array().unwrap().len(), 4, "{report}");
    let text = std::fs::read_to_string(&dataset).unwrap();
    let cases: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = cases.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "failure-plan_rejected-1",
            "failure-tool_error-calculator-1",
            "failure-tool_error-calculator-2",
            "failure-tool_error-todo_complete-1"
        ]
    );
    assert_eq!(cases[0]["tags"], json!(["failure", "plan_rejected"]));
    assert_eq!(cases[0]["expect"], json!({}));

    // The table, and an unknown tenant: nothing, exit 0.
    let out = crane_command(&dir)
        .envs(
            server
                .env_var("CRANE_DATABASE_URL")
                .map(|u| ("CRANE_DATABASE_URL", u)),
        )
        .args(["analyze", "failures", "--tenant", "acme", "--data-dir"])
        .arg(&dir)
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("6 failed runs of tenant acme in 4 groups"),
        "{table}"
    );
    let out = crane_command(&dir)
        .envs(
            server
                .env_var("CRANE_DATABASE_URL")
                .map(|u| ("CRANE_DATABASE_URL", u)),
        )
        .args(["analyze", "failures", "--tenant", "initech", "--data-dir"])
        .arg(&dir)
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no failed runs"));
    let out = crane_command(&dir)
        .envs(
            server
                .env_var("CRANE_DATABASE_URL")
                .map(|u| ("CRANE_DATABASE_URL", u)),
        )
        .args(["analyze", "failures", "--limit", "0", "--data-dir"])
        .arg(&dir)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // The regression cases run, and fail again: nothing was fixed.
    let eval_dir = tempfile::tempdir().unwrap();
    let out = crane_command(eval_dir.path())
        .args(["eval", "--planner", "rule", "--no-store", "--dataset"])
        .arg(&dataset)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("failing cases (rule): 4"), "{stdout}");
}
