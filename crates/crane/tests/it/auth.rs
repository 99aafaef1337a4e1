//! Tenants, API keys, roles and rate limits over real HTTP against the real binary
//! (`CRANE_AUTH=keys`): 401 without or with a bad key, 403 for a role without the right (every
//! route of the OpenAPI document is in the table below, so a new endpoint without a decision
//! here fails the test), another tenant's run is a 404, revocation (this process: at once;
//! another process: within a second), keys survive a restart and never reach the logs, 429
//! with Retry-After and the RateLimit headers, and auth off refused on a public address.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Server, cli_key, crane_command, error_of};

async fn call(
    server: &Server,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = server.client.request(method, server.url(path));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    server.send(req).await
}

/// Every route: (method, path with ids filled in, body, least role). `None` role: public.
fn table(run_id: &str, key_id: &str) -> Vec<(Method, String, Option<Value>, Option<&'static str>)> {
    let p = |s: &str| s.replace("{run_id}", run_id).replace("{key_id}", key_id);
    vec![
        (Method::GET, p("/health"), None, None),
        (
            Method::POST,
            p("/runs"),
            Some(json!({"prompt": "what is 2+2"})),
            Some("operator"),
        ),
        (Method::GET, p("/runs"), None, Some("viewer")),
        (Method::GET, p("/runs/{run_id}"), None, Some("viewer")),
        (
            Method::POST,
            p("/runs/{run_id}/retry"),
            None,
            Some("operator"),
        ),
        (
            Method::POST,
            p("/runs/{run_id}/cancel"),
            None,
            Some("operator"),
        ),
        (Method::GET, p("/tools"), None, Some("viewer")),
        (Method::GET, p("/metrics"), None, Some("viewer")),
        (Method::GET, p("/metrics/planner"), None, Some("viewer")),
        (Method::GET, p("/openapi.json"), None, Some("viewer")),
        (Method::GET, p("/evals"), None, Some("viewer")),
        (Method::GET, p("/evals/none"), None, Some("viewer")),
        (Method::GET, p("/planners"), None, Some("viewer")),
        (Method::GET, p("/planners/rule"), None, Some("viewer")),
        (Method::GET, p("/prompts"), None, Some("viewer")),
        (
            Method::GET,
            p("/prompts/planner/1.0.0"),
            None,
            Some("viewer"),
        ),
        (Method::GET, p("/aliases"), None, Some("viewer")),
        (
            Method::PUT,
            p("/aliases/candidate"),
            Some(json!({"variant": "rule"})),
            Some("admin"),
        ),
        (
            Method::POST,
            p("/aliases/candidate/rollback"),
            None,
            Some("admin"),
        ),
        (
            Method::GET,
            p("/aliases/candidate/history"),
            None,
            Some("viewer"),
        ),
        (
            Method::POST,
            p("/keys"),
            Some(json!({"role": "viewer"})),
            Some("admin"),
        ),
        (Method::GET, p("/keys"), None, Some("admin")),
        (Method::DELETE, p("/keys/{key_id}"), None, Some("admin")),
        (Method::GET, p("/audit"), None, Some("admin")),
        (Method::GET, p("/budgets"), None, Some("viewer")),
        (
            Method::POST,
            p("/runs/{run_id}/feedback"),
            Some(json!({"score": 1})),
            Some("operator"),
        ),
        (
            Method::POST,
            p("/experiments"),
            Some(json!({"name": "auth-exp", "arms": [{"planner": "rule"}, {"planner": "rule"}]})),
            Some("admin"),
        ),
        (Method::GET, p("/experiments"), None, Some("viewer")),
        (Method::GET, p("/experiments/none"), None, Some("viewer")),
        (
            Method::POST,
            p("/experiments/none/stop"),
            None,
            Some("admin"),
        ),
        (
            Method::POST,
            p("/experiments/none/promote"),
            None,
            Some("admin"),
        ),
        (Method::GET, p("/cache"), None, Some("viewer")),
        (Method::DELETE, p("/cache"), None, Some("admin")),
        (Method::GET, p("/analysis/failures"), None, Some("viewer")),
    ]
}

fn template(path: &str) -> String {
    // Turn a concrete path of the table back into the document's template.
    let parts: Vec<&str> = path.split('/').collect();
    let known = [
        ("runs", "{run_id}"),
        ("evals", "{eval_id}"),
        ("planners", "{name}"),
        ("aliases", "{alias}"),
        ("keys", "{key_id}"),
        ("experiments", "{name}"),
    ];
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| parts[j]).unwrap_or("");
        if let Some((_, t)) = known.iter().find(|(k, _)| *k == prev) {
            out.push((*t).to_owned());
        } else if prev == "prompts" {
            out.push("{name}".into());
        } else if i >= 2 && parts[i - 2] == "prompts" {
            out.push("{version}".into());
        } else {
            out.push((*part).to_owned());
        }
    }
    out.join("/")
}

fn rank(role: &str) -> u8 {
    match role {
        "viewer" => 1,
        "operator" => 2,
        _ => 3,
    }
}

#[tokio::test]
async fn roles_tenants_and_keys_over_http() {
    let mut server = Server::start_with_env(&["--debug-tools"], &[("CRANE_AUTH", "keys")]).await;
    let (_, admin) = cli_key(&server, "acme", "admin").await;
    let (_, other_admin) = cli_key(&server, "globex", "admin").await;

    // No key, a malformed key, a well-formed unknown key: 401 unauthorized. /health is open.
    let (status, headers, body) = call(&server, None, Method::GET, "/runs", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_of(&body)["code"], "unauthorized");
    assert_eq!(headers["www-authenticate"], "Bearer");
    for bad in [
        "nope",
        &format!("crk_{}_{}", "0".repeat(16), "0".repeat(64)),
    ] {
        let (status, _, body) = call(&server, Some(bad), Method::GET, "/runs", None).await;
        assert_eq!(status, 401, "{body}");
        assert!(!body.to_string().contains(bad), "the key is never echoed");
    }
    let (status, _, _) = call(&server, None, Method::GET, "/health", None).await;
    assert_eq!(status, 200);

    // The admin makes an operator and a viewer key of its tenant over HTTP.
    let mut keys = vec![("admin", admin.clone())];
    for role in ["operator", "viewer"] {
        let (status, _, body) = call(
            &server,
            Some(&admin),
            Method::POST,
            "/keys",
            Some(json!({"role": role, "name": format!("{role} key")})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["tenant"], "acme");
        assert!(body["key"].as_str().unwrap().starts_with("crk_"));
        keys.push((role, body["key"].as_str().unwrap().to_owned()));
    }
    let (_, _, listed) = call(&server, Some(&admin), Method::GET, "/keys", None).await;
    let listed = listed["keys"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 3, "{listed:?}");
    for k in &keys {
        assert!(
            !serde_json::to_string(&listed).unwrap().contains(&k.1[20..]),
            "no secret listed"
        );
    }

    // A run of acme, and a throwaway key to revoke in the table.
    let operator = &keys[1].1;
    let (status, _, run) = call(
        &server,
        Some(operator),
        Method::POST,
        "/runs?wait=true",
        Some(json!({"prompt": "add a todo to buy milk"})),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["tenant"], "acme");
    let run_id = run["run_id"].as_str().unwrap().to_owned();

    // Every route of the document is in the table, so a new endpoint needs a decision here.
    let (_, _, doc) = call(&server, Some(&admin), Method::GET, "/openapi.json", None).await;
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let tabled: BTreeSet<String> = table("x", "y")
        .iter()
        .map(|(m, p, _, _)| format!("{m} {}", template(p)))
        .collect();
    assert_eq!(
        documented, tabled,
        "every route needs a row in the auth table"
    );

    // Each role on each route: allowed (anything but 401/403) or 403 forbidden.
    for (role, key) in &keys {
        for (method, path, body, least) in table(&run_id, "0000000000000000") {
            let (status, _, answer) = call(&server, Some(key), method.clone(), &path, body).await;
            let allowed = least.is_none_or(|least| rank(role) >= rank(least));
            if allowed {
                assert!(
                    status != 401 && status != 403,
                    "{role} {method} {path}: {status} {answer}"
                );
            } else {
                assert_eq!(status, 403, "{role} {method} {path}: {answer}");
                assert_eq!(error_of(&answer)["code"], "forbidden");
            }
        }
    }

    // Another tenant: acme's run is a 404 everywhere, and absent from its list.
    for (method, path) in [
        (Method::GET, format!("/runs/{run_id}")),
        (Method::POST, format!("/runs/{run_id}/retry")),
        (Method::POST, format!("/runs/{run_id}/cancel")),
    ] {
        let (status, _, body) = call(&server, Some(&other_admin), method, &path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.to_string().contains("buy milk"));
    }
    let (_, _, list) = call(&server, Some(&other_admin), Method::GET, "/runs", None).await;
    assert_eq!(list["runs"], json!([]), "{list}");
    // Todos: the other tenant's todo tools see none of acme's todos.
    let (_, _, listed_todos) = call(
        &server,
        Some(&other_admin),
        Method::POST,
        "/runs?wait=true",
        Some(json!({"prompt": "show my todos"})),
    )
    .await;
    assert_eq!(listed_todos["status"], "completed", "{listed_todos}");
    assert_eq!(listed_todos["result"]["count"], 0, "{listed_todos}");
    let (_, _, completed) = call(
        &server,
        Some(&other_admin),
        Method::POST,
        "/runs?wait=true",
        Some(json!({"prompt": "mark buy milk as done"})),
    )
    .await;
    assert_eq!(completed["status"], "failed", "{completed}");
    assert!(
        completed["error"].as_str().unwrap().contains("not found"),
        "{completed}"
    );
    let (_, _, mine) = call(
        &server,
        Some(operator),
        Method::POST,
        "/runs?wait=true",
        Some(json!({"prompt": "show my todos"})),
    )
    .await;
    assert_eq!(
        mine["result"]["count"], 1,
        "acme still has its todo: {mine}"
    );
    let (_, _, list) = call(&server, Some(&other_admin), Method::GET, "/keys", None).await;
    assert_eq!(
        list["keys"].as_array().unwrap().len(),
        1,
        "only globex's own key"
    );
    let viewer_id = listed.iter().find(|k| k["role"] == "viewer").unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, _) = call(
        &server,
        Some(&other_admin),
        Method::DELETE,
        &format!("/keys/{viewer_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "another tenant's key cannot be revoked");

    // Revoked through this process: refused at once.
    let viewer = keys[2].1.clone();
    let (status, _, _) = call(&server, Some(&viewer), Method::GET, "/runs", None).await;
    assert_eq!(status, 200);
    let (status, _, body) = call(
        &server,
        Some(&admin),
        Method::DELETE,
        &format!("/keys/{viewer_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["key"]["revoked_at"].is_string());
    let (status, _, _) = call(&server, Some(&viewer), Method::GET, "/runs", None).await;
    assert_eq!(status, 401);

    // Revoked by another process (the CLI on the data dir): refused within a second or so.
    let (operator_id, operator) = cli_key(&server, "acme", "operator").await;
    let (status, _, _) = call(&server, Some(&operator), Method::GET, "/runs", None).await;
    assert_eq!(status, 200);
    let out = server
        .cli()
        .args(["keys", "revoke", &operator_id, "--data-dir"])
        .arg(server.data_dir())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revoked = Instant::now();
    loop {
        let (status, _, _) = call(&server, Some(&operator), Method::GET, "/runs", None).await;
        if status == 401 {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(5),
            "a key revoked by another process still works after 5 s"
        );
        tokio::task::yield_now().await;
    }

    // A run cancelled by an operator is audited.
    let operator = keys[1].1.clone();
    let (status, _, slow) = call(
        &server,
        Some(&operator),
        Method::POST,
        "/runs",
        Some(json!({"prompt": "slow", "steps": [{"tool": "debug_sleep", "input": {"ms": 30000}}]})),
    )
    .await;
    assert_eq!(status, 201, "{slow}");
    let slow_id = slow["run_id"].as_str().unwrap();
    let (status, _, body) = call(
        &server,
        Some(&operator),
        Method::POST,
        &format!("/runs/{slow_id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The audit log has the key and run events, newest first, with the actor's key id.
    let (_, _, audit) = call(&server, Some(&admin), Method::GET, "/audit", None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["key.created", "key.revoked", "run.cancelled"] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }

    // Keys survive a restart; no secret ever reached the logs.
    server.stop_graceful().await;
    server.restart().await;
    let (status, _, body) = call(
        &server,
        Some(&admin),
        Method::GET,
        &format!("/runs/{run_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let logs = server.logs();
    for (_, key) in &keys {
        assert!(!logs.contains(&key[20..]), "a key reached the logs");
    }
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("crane.toml");
    std::fs::write(
        &config,
        "[limits]\nrequests_per_second = 3\nruns_per_minute = 2\n",
    )
    .unwrap();
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap()],
        &[("CRANE_AUTH", "keys")],
    )
    .await;
    let (_, key) = cli_key(&server, "acme", "operator").await;
    let (_, other) = cli_key(&server, "acme", "viewer").await;
    // Runs: 2 per minute per key.
    for _ in 0..2 {
        let (status, _, body) = call(
            &server,
            Some(&key),
            Method::POST,
            "/runs",
            Some(json!({"prompt": "what is 1+1"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, headers, body) = call(
        &server,
        Some(&key),
        Method::POST,
        "/runs",
        Some(json!({"prompt": "what is 1+1"})),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(error_of(&body)["code"], "rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(headers["ratelimit-policy"], "\"runs\";q=2;w=60");
    assert!(
        headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"runs\";r=0;t=")
    );
    // Requests: the same key is now over 3/s as well (3 requests in a burst), another key is not.
    let (status, _, body) = call(&server, Some(&key), Method::GET, "/runs", None).await;
    assert_eq!(status, 429, "{body}");
    let (status, _, _) = call(&server, Some(&other), Method::GET, "/runs", None).await;
    assert_eq!(status, 200, "keys have their own buckets");
}

#[tokio::test]
async fn auth_off_is_refused_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = crane_command(dir.path())
        .args(["serve", "--addr", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CRANE_AUTH"), "{stderr}");
}
