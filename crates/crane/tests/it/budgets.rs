//! Spend budgets per tenant, end to end against the real binary (`CRANE_AUTH=keys`): an
//! OpenAI-compatible wiremock upstream bills 120 tokens per planning call, and a wiremock
//! webhook receiver records the alerts. Runs spend until a budget crosses 80, 90, 95 and 100%
//! (the receiver gets each exactly once, several at once when one run jumps past them);
//! `GET /budgets` shows used/ratio/exhausted; a spent `rule_only` budget plans with the rule
//! planner without any LLM request; a spent `reject` budget answers `POST /runs` and retries
//! with `429 budget_exhausted` and `Retry-After`; a restart keeps the spend and the notified
//! marks; one tenant's budget never touches another tenant.

use std::time::Duration;

use chrono::{Datelike, TimeZone, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::llm_faults::{CALC, KEY, MODEL, PRICING, attempts, plan_ok, planner};
use crate::support::{DEADLINE, Server, error_of};

/// An admin key of `tenant`.
async fn key(server: &Server, tenant: &str) -> String {
    crate::support::cli_key(server, tenant, "admin").await.1
}

async fn call(
    server: &Server,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = server
        .client
        .request(method, server.url(path))
        .bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    server.send(req).await
}

/// `POST /runs?wait=true` for `prompt` as `key`'s tenant; the finished run.
async fn run(server: &Server, key: &str, prompt: &str) -> Value {
    let (status, _, run) = call(
        server,
        key,
        Method::POST,
        "/runs?wait=true",
        Some(json!({"prompt": prompt})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["result"]["value"], 42, "{run}");
    run
}

/// The one budget `GET /budgets` shows `key`'s tenant.
async fn budget(server: &Server, key: &str) -> Value {
    let (status, _, body) = call(server, key, Method::GET, "/budgets", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = body["budgets"].as_array().expect("budgets");
    assert_eq!(list.len(), 1, "{body}");
    list[0].clone()
}

/// Chat requests the LLM mock received.
async fn llm_calls(llm: &MockServer) -> usize {
    llm.received_requests().await.unwrap_or_default().len()
}

/// `(tenant, threshold)` of every alert the webhook received, in arrival order.
async fn alerts(hook: &MockServer) -> Vec<(String, u64)> {
    hook.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let v: Value = r.body_json().expect("alert body is JSON");
            (
                v["tenant"].as_str().unwrap_or_default().to_owned(),
                v["threshold"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The alert bodies the webhook received for `tenant`.
async fn bodies(hook: &MockServer, tenant: &str) -> Vec<Value> {
    hook.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.body_json::<Value>().expect("alert body is JSON"))
        .filter(|v| v["tenant"] == tenant)
        .collect()
}

/// Waits until the webhook received `tenant`'s alert for `threshold`; returns the thresholds
/// it received for `tenant` by then, in order.
async fn wait_alert(server: &Server, hook: &MockServer, tenant: &str, threshold: u64) -> Vec<u64> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let of_tenant: Vec<u64> = alerts(hook)
            .await
            .into_iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, n)| n)
            .collect();
        if of_tenant.contains(&threshold) {
            return of_tenant;
        }
        assert!(
            Instant::now() < deadline,
            "no {threshold}% alert for {tenant} (got {of_tenant:?}); logs:\n{}",
            server.logs()
        );
        // The webhook receiver (wiremock) offers no notification of a new request: poll it
        // within the deadline.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the sample `series` in `GET /metrics` (read with `key`).
async fn metric(server: &Server, key: &str, series: &str) -> Option<f64> {
    let text = server
        .client
        .get(server.url("/metrics"))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn budgets_notify_each_threshold_once_and_limit_only_their_tenant() {
    // Every planning call: a valid plan for CALC, billed 100 + 20 tokens (0.00014 USD).
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(plan_ok())
        .mount(&llm)
        .await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/budget"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hook)
        .await;
    // acme: 500 tokens a day, rule planner only when spent. beta: 300 tokens a month, then
    // runs are refused. gamma: no budget. (A run of this test across midnight UTC would see
    // acme's day reset.) The plan cache is off so that every run calls the model.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("crane.toml");
    std::fs::write(
        &config,
        format!(
            "[planner]\ncache_capacity = 0\n\n{PRICING}\n\
             [[budgets]]\ntenant = \"acme\"\nwindow = \"day\"\nmax_tokens = 500\nmax_usd = 1.0\non_exhausted = \"rule_only\"\n\n\
             [[budgets]]\ntenant = \"beta\"\nwindow = \"month\"\nmax_tokens = 300\non_exhausted = \"reject\"\n\n\
             [alerts]\nwebhook_url = \"{}/hooks/budget\"\n",
            hook.uri()
        ),
    )
    .unwrap();
    let base_url = format!("{}/v1", llm.uri());
    let mut server = Server::start_with_env(
        &["--config", config.to_str().unwrap()],
        &[
            ("CRANE_AUTH", "keys"),
            ("CRANE_LLM_BASE_URL", &base_url),
            ("CRANE_LLM_MODEL", MODEL),
            ("CRANE_LLM_API_KEY", KEY),
        ],
    )
    .await;
    let acme = key(&server, "acme").await;
    let beta = key(&server, "beta").await;
    let gamma = key(&server, "gamma").await;

    // Nothing spent yet.
    let b = budget(&server, &acme).await;
    assert_eq!(
        (
            &b["tenant"],
            &b["window"],
            &b["used_tokens"],
            &b["max_tokens"]
        ),
        (&json!("acme"), &json!("day"), &json!(0), &json!(500)),
        "{b}"
    );
    assert_eq!((&b["ratio"], &b["exhausted"]), (&json!(0.0), &json!(false)));
    let now = Utc::now();
    let tomorrow = Utc
        .with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
        .unwrap()
        + chrono::Duration::days(1);
    assert_eq!(
        b["resets_at"],
        tomorrow.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    // acme: 120, 240, 360 tokens — under 80%. The fourth run (480 = 96%) crosses 80, 90 and
    // 95% at once: three alerts, each once.
    for n in 1..=4 {
        let r = run(&server, &acme, CALC).await;
        assert_eq!(planner(&r)["source"], "llm", "run {n}: {r}");
    }
    assert_eq!(llm_calls(&llm).await, 4);
    assert_eq!(wait_alert(&server, &hook, "acme", 95).await, [80, 90, 95]);
    let b = budget(&server, &acme).await;
    assert_eq!(
        (&b["used_tokens"], &b["ratio"]),
        (&json!(480), &json!(0.96))
    );
    assert_eq!(b["exhausted"], false);
    let used_usd = b["used_usd"].as_f64().unwrap();
    assert!((used_usd - 0.00056).abs() < 1e-12, "{b}");
    assert_eq!(b["max_usd"], 1.0);

    // 20 tokens left: the fifth run may still call (and overshoots by its one call), crossing
    // 100%.
    let r = run(&server, &acme, CALC).await;
    assert_eq!(planner(&r)["source"], "llm", "{r}");
    assert_eq!(
        wait_alert(&server, &hook, "acme", 100).await,
        [80, 90, 95, 100]
    );
    let b = budget(&server, &acme).await;
    assert_eq!(
        (&b["used_tokens"], &b["ratio"], &b["exhausted"]),
        (&json!(600), &json!(1.2), &json!(true)),
        "{b}"
    );
    assert_eq!(b["notified"], json!([80, 90, 95, 100]));
    // The 100% alert as the webhook got it (Slack-compatible: `text`).
    let alert = bodies(&hook, "acme")
        .await
        .into_iter()
        .find(|a| a["threshold"] == 100)
        .unwrap();
    assert_eq!(alert["window"], "day");
    assert_eq!(alert["used_tokens"], 600);
    assert_eq!(alert["max_tokens"], 500);
    assert_eq!(alert["max_usd"], 1.0);
    assert_eq!(alert["ratio"], 1.2);
    assert_eq!(alert["resets_at"], b["resets_at"]);
    assert_eq!(alert["period_start"], b["period_start"]);
    assert!((alert["used_usd"].as_f64().unwrap() - 0.0007).abs() < 1e-12);
    let text = alert["text"].as_str().unwrap();
    assert!(
        text.contains("tenant acme has spent its day budget") && text.contains("rule planner"),
        "{text}"
    );
    // Logged (WARN) and exported.
    assert!(
        server.logs().contains("spend budget threshold crossed"),
        "{}",
        server.logs()
    );
    assert_eq!(
        metric(
            &server,
            &acme,
            "crane_budget_used_ratio{tenant=\"acme\",window=\"day\"}"
        )
        .await,
        Some(1.2)
    );

    // Spent with rule_only: the rule planner plans, no request reaches the model, and the plan
    // says why.
    let r = run(&server, &acme, CALC).await;
    assert_eq!(planner(&r)["source"], "fallback", "{r}");
    assert_eq!(attempts(&r), [("budget".to_owned(), "budget".to_owned())]);
    let why = r["plan"]["planner"]["attempts"][0]["message"]
        .as_str()
        .unwrap();
    assert!(why.contains("tenant acme's day budget is spent"), "{why}");
    assert_eq!(llm_calls(&llm).await, 5, "no LLM request");

    // gamma has no budget: the model plans, and GET /budgets is empty.
    let r = run(&server, &gamma, CALC).await;
    assert_eq!(planner(&r)["source"], "llm", "{r}");
    assert_eq!(llm_calls(&llm).await, 6);
    let (_, _, body) = call(&server, &gamma, Method::GET, "/budgets", None).await;
    assert_eq!(body, json!({"budgets": []}));

    // beta: a failed run (client plan, no LLM), then 240 tokens = 80%.
    let (status, _, failed) = call(
        &server,
        &beta,
        Method::POST,
        "/runs?wait=true",
        Some(json!({"prompt": "divide", "steps": [{"tool": "calculator", "input": {"expression": "1/0"}}]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(failed["status"], "failed", "{failed}");
    for _ in 0..2 {
        run(&server, &beta, CALC).await;
    }
    assert_eq!(wait_alert(&server, &hook, "beta", 80).await, [80]);
    assert_eq!(budget(&server, &beta).await["used_tokens"], 240);

    // A restart keeps the spend and the notified marks.
    server.stop_graceful().await;
    server.restart().await;
    let b = budget(&server, &acme).await;
    assert_eq!(
        (&b["used_tokens"], &b["exhausted"], &b["notified"]),
        (&json!(600), &json!(true), &json!([80, 90, 95, 100])),
        "{b}"
    );
    let r = run(&server, &acme, CALC).await;
    assert_eq!(planner(&r)["source"], "fallback", "{r}");
    assert_eq!(llm_calls(&llm).await, 8, "acme still makes no LLM request");
    // beta's third run: 360 tokens crosses 90, 95 and 100% — and 80% is not sent again (the
    // alerts go out in order, so a repeat would arrive before the 100% one).
    run(&server, &beta, CALC).await;
    assert_eq!(
        wait_alert(&server, &hook, "beta", 100).await,
        [80, 90, 95, 100]
    );

    // Spent with reject: new runs and retries are 429 budget_exhausted until the month resets.
    let now = Utc::now();
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let next_month = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).unwrap();
    let resets_at = next_month.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let calls = llm_calls(&llm).await;
    let failed_id = failed["run_id"].as_str().unwrap();
    for (path, body) in [
        ("/runs".to_owned(), Some(json!({"prompt": CALC}))),
        (format!("/runs/{failed_id}/retry"), None),
    ] {
        let (status, headers, body) = call(&server, &beta, Method::POST, &path, body).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{path}: {body}");
        let error = error_of(&body);
        assert_eq!(error["code"], "budget_exhausted", "{body}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("tenant beta's month budget is spent") && message.contains(&resets_at),
            "{message}"
        );
        assert_eq!(error["details"]["resets_at"], resets_at.as_str());
        assert_eq!(error["details"]["budget"]["exhausted"], true);
        let retry_after: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        let expected = (next_month - Utc::now()).num_seconds();
        assert!(
            (retry_after - expected).abs() <= 60 && retry_after >= 1,
            "Retry-After {retry_after}, about {expected} expected"
        );
    }
    assert_eq!(llm_calls(&llm).await, calls);

    // The other tenants are untouched: acme (rule_only) still runs, gamma still uses the model.
    run(&server, &acme, CALC).await;
    let r = run(&server, &gamma, CALC).await;
    assert_eq!(planner(&r)["source"], "llm", "{r}");
    // Exactly one alert per threshold, tenant and window over the whole test.
    let all = alerts(&hook).await;
    let of = |tenant: &str| -> Vec<u64> {
        all.iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, n)| *n)
            .collect()
    };
    assert_eq!(of("acme"), [80, 90, 95, 100]);
    assert_eq!(of("beta"), [80, 90, 95, 100]);
    assert_eq!(all.len(), 8, "{all:?}");
}
