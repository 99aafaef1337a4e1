//! A/B experiments end to end with the real binary (DESIGN.md "Experiments"): bad input is a
//! 400 that says what to fix; runs are assigned sticky arms whose planner plans them; with an
//! OpenAI-compatible mock where one arm's plans fail when executed and the other's succeed,
//! the analysis finds the winner and `promote` moves `production` to it (409 without one);
//! feedback is stored on the run and counted for its arm, and another tenant's run is a 404.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer};

use crate::llm_faults::{LlmCrane, MODEL, calc_plan, chat_ok};
use crate::support::DEADLINE;

/// Two LLM variants on one mock: `llm-good` plans a calculation, `llm-bad` plans completing a
/// todo that does not exist (the plan is valid; executing it fails).
pub(crate) async fn mock_and_config() -> (MockServer, String) {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/good/v1/chat/completions"))
        .respond_with(chat_ok(&calc_plan().to_string()))
        .mount(&mock)
        .await;
    let bad = json!({"steps": [{"tool": "todo_complete", "input": {"title": "a todo nobody added"}, "reasoning": "r"}]});
    Mock::given(method("POST"))
        .and(path("/bad/v1/chat/completions"))
        .respond_with(chat_ok(&bad.to_string()))
        .mount(&mock)
        .await;
    let config = format!(
        r#"
[[llm.providers]]
name = "good"
base_url = "{uri}/good/v1"
model = "{MODEL}"
max_retries = 0
stream = false

[[llm.providers]]
name = "bad"
base_url = "{uri}/bad/v1"
model = "{MODEL}"
max_retries = 0
stream = false

[[planners]]
name = "llm-good"
kind = "llm"
version = "1.0.0"
provider = "good"

[[planners]]
name = "llm-bad"
kind = "llm"
version = "1.0.0"
provider = "bad"
"#,
        uri = mock.uri()
    );
    (mock, config)
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn create(crane: &LlmCrane, body: Value) -> (StatusCode, Value) {
    send(crane.client.post(crane.url("/experiments")).json(&body)).await
}

async fn run(crane: &LlmCrane, body: Value) -> Value {
    let (status, run) = send(crane.client.post(crane.url("/runs?wait=true")).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    run
}

/// Polls `GET /experiments/{name}` until `pred` holds.
async fn experiment_until(crane: &LlmCrane, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, exp) =
            send(crane.client.get(crane.url(&format!("/experiments/{name}")))).await;
        assert_eq!(status, StatusCode::OK, "{exp}");
        if pred(&exp) {
            return exp;
        }
        assert!(Instant::now() < deadline, "experiment never matched: {exp}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_experiments_are_refused_with_what_to_fix() {
    let (_mock, config) = mock_and_config().await;
    let crane = LlmCrane::start(&[], Some(&config)).await;
    let arms = json!([{"planner": "llm-good"}, {"planner": "llm-bad"}]);
    for (body, says) in [
        (
            json!({"name": "x", "arms": [{"planner": "nope"}, {"planner": "llm-bad"}]}),
            "nope",
        ),
        (
            json!({"name": "x", "arms": [{"planner": "llm-good"}]}),
            "at least 2 arms",
        ),
        (
            json!({"name": "x", "arms": [{"planner": "llm-good", "weight": -1}, {"planner": "llm-bad"}]}),
            "weight",
        ),
        (
            json!({"name": "x", "arms": [{"planner": "llm-good"}, {"planner": "llm-good"}]}),
            "already an arm",
        ),
        (json!({"name": "", "arms": arms}), "name"),
        (json!({"name": "x", "arms": arms, "alpha": 2}), "alpha"),
        (
            json!({"name": "x", "arms": arms, "primary_metric": "cost"}),
            "primary_metric",
        ),
    ] {
        let (status, err) = create(&crane, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {err}");
        assert!(message(&err).contains(says), "{body} → {err}");
    }
    let (status, _) = create(&crane, json!({"name": "ab1", "arms": arms})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, err) = create(&crane, json!({"name": "ab1", "arms": arms})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(message(&err).contains("exists already"), "{err}");
    let (status, err) = create(&crane, json!({"name": "ab2", "arms": arms})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(message(&err).contains("ab1"), "{err}");
    let (status, _) = send(crane.client.get(crane.url("/experiments/none"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Too few runs: no winner to promote.
    let (status, err) = send(crane.client.post(crane.url("/experiments/ab1/promote"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(message(&err).contains("no winner"), "{err}");
    let (status, stopped) = send(crane.client.post(crane.url("/experiments/ab1/stop"))).await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    // Stopped: runs are no longer assigned, and a new experiment may start.
    let r = run(&crane, json!({"prompt": "what is 7 times 6"})).await;
    assert!(r.get("experiment").is_none(), "{r}");
    let (status, _) = create(&crane, json!({"name": "ab2", "arms": arms})).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arm_whose_plans_work_wins_and_is_promoted() {
    let (_mock, config) = mock_and_config().await;
    let crane = LlmCrane::start(&[], Some(&config)).await;
    let (status, exp) = create(
        &crane,
        json!({"name": "good-vs-bad", "arms": [{"planner": "llm-bad", "weight": 1}, {"planner": "llm-good", "weight": 1}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{exp}");
    assert_eq!(exp["analysis"]["decision"], "continue");

    // Sticky per user, and the arm's planner plans the run.
    let mut arms = std::collections::HashMap::new();
    for round in 0..3 {
        for u in 0..20 {
            let user = format!("user-{u}");
            let r = run(
                &crane,
                json!({"prompt": "what is 7 times 6", "user_id": user}),
            )
            .await;
            let arm = r["experiment"]["arm"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert_eq!(r["experiment"]["name"], "good-vs-bad", "{r}");
            assert_eq!(r["plan"]["planner"]["variant"]["name"], arm.as_str(), "{r}");
            let expected = if arm == "llm-good" {
                "completed"
            } else {
                "failed"
            };
            assert_eq!(r["status"], expected, "{r}");
            if let Some(first) = arms.insert(user.clone(), arm.clone()) {
                assert_eq!(first, arm, "{user} changed arm in round {round}");
            }
        }
    }
    // A run that names its planner is not in the experiment.
    let named = run(
        &crane,
        json!({"prompt": "what is 7 times 6", "planner": "llm-good"}),
    )
    .await;
    assert!(named.get("experiment").is_none(), "{named}");

    // Runs without a user (assigned by run id) until the analysis decides.
    for _ in 0..160 {
        run(&crane, json!({"prompt": "what is 7 times 6"})).await;
    }
    let exp = experiment_until(&crane, "good-vs-bad", |e| {
        e["arms"].as_array().is_some_and(|a| {
            a.iter()
                .map(|x| x["runs"].as_u64().unwrap_or(0))
                .sum::<u64>()
                == 220
        })
    })
    .await;
    assert_eq!(exp["analysis"]["decision"], "winner", "{exp}");
    assert_eq!(exp["analysis"]["winner"], "llm-good", "{exp}");
    assert!(
        exp["analysis"]["srm_p_value"].as_f64().unwrap() > 0.001,
        "{exp}"
    );
    assert!(exp["analysis"]["ci_low"].as_f64().unwrap() > 0.5, "{exp}");
    let arms_out = exp["arms"].as_array().unwrap();
    assert_eq!(arms_out[0]["success_rate"], 0.0);
    assert_eq!(arms_out[1]["success_rate"], 1.0);
    assert!(arms_out[1]["p50_ms"].as_f64().is_some());

    // Feedback: stored on the run, counted for its arm; bad scores refused.
    let r = run(
        &crane,
        json!({"prompt": "what is 7 times 6", "user_id": "fb"}),
    )
    .await;
    let id = r["run_id"].as_str().unwrap();
    let (status, err) = send(
        crane
            .client
            .post(crane.url(&format!("/runs/{id}/feedback")))
            .json(&json!({"score": 1.5})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, with) = send(
        crane
            .client
            .post(crane.url(&format!("/runs/{id}/feedback")))
            .json(&json!({"score": 0.8, "comment": "good answer"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{with}");
    assert_eq!(with["feedback"]["score"], 0.8);
    assert_eq!(
        crane.get_json(&format!("/runs/{id}")).await["feedback"]["comment"],
        "good answer"
    );
    let arm = r["experiment"]["arm"].as_str().unwrap().to_owned();
    experiment_until(&crane, "good-vs-bad", |e| {
        e["arms"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["planner"] == arm.as_str() && x["feedback_mean"] == 0.8)
        })
    })
    .await;

    // Promote: production → the winner, the experiment stops, the move is in the history.
    let (status, promoted) = send(
        crane
            .client
            .post(crane.url("/experiments/good-vs-bad/promote")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["experiment"]["status"], "stopped");
    assert_eq!(promoted["alias_move"]["to"], "llm-good");
    let history = crane.get_json("/aliases/production/history").await;
    let last = history["history"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["to"], "llm-good", "{history}");
    assert!(
        last["note"]
            .as_str()
            .unwrap_or_default()
            .contains("good-vs-bad"),
        "{history}"
    );
    let r = run(&crane, json!({"prompt": "what is 7 times 6"})).await;
    assert_eq!(r["plan"]["planner"]["variant"]["name"], "llm-good", "{r}");
    assert!(r.get("experiment").is_none(), "{r}");
    let (status, _) = send(
        crane
            .client
            .post(crane.url("/experiments/good-vs-bad/promote")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// The rollback guard: production pointed at `llm-bad`; the experiment promotes `llm-good`;
/// then `llm-good`'s model starts answering plans that fail, and once the guard has seen
/// `min_runs` production runs below `llm-bad`'s interval it moves production back, with a note
/// in the alias history and the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_winner_that_breaks_in_production_is_rolled_back() {
    let (mock, config) = mock_and_config().await;
    // llm-bad plans well for polite prompts: it succeeds in ~60% of the runs below.
    Mock::given(method("POST"))
        .and(path("/bad/v1/chat/completions"))
        .and(body_string_contains("please"))
        .respond_with(chat_ok(&calc_plan().to_string()))
        .with_priority(1)
        .mount(&mock)
        .await;
    let crane = LlmCrane::start(&[], Some(&config)).await;
    let (status, moved) = send(
        crane
            .client
            .put(crane.url("/aliases/production"))
            .json(&json!({"variant": "llm-bad"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let (status, exp) = create(
        &crane,
        json!({"name": "guarded", "arms": [{"planner": "llm-bad"}, {"planner": "llm-good"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{exp}");
    for i in 0..200 {
        let prompt = if i % 5 < 3 {
            "what is 7 times 6 please"
        } else {
            "what is 7 times 6"
        };
        run(&crane, json!({"prompt": prompt})).await;
    }
    let exp = experiment_until(&crane, "guarded", |e| {
        e["arms"].as_array().is_some_and(|a| {
            a.iter()
                .map(|x| x["runs"].as_u64().unwrap_or(0))
                .sum::<u64>()
                == 200
        })
    })
    .await;
    assert_eq!(exp["analysis"]["winner"], "llm-good", "{exp}");

    // Bad guard options are refused before anything moves.
    let (status, err) = send(
        crane
            .client
            .post(crane.url("/experiments/guarded/promote"))
            .json(&json!({"guard": {"min_runs": 20, "max_runs": 5}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(message(&err).contains("max_runs"), "{err}");

    let (status, promoted) = send(
        crane
            .client
            .post(crane.url("/experiments/guarded/promote"))
            .json(&json!({"guard": {"min_runs": 20}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["alias_move"]["from"], "llm-bad", "{promoted}");
    assert_eq!(promoted["guard"]["status"], "watching", "{promoted}");
    assert_eq!(promoted["guard"]["baseline"], "llm-bad", "{promoted}");
    assert_eq!(promoted["guard"]["min_runs"], 20, "{promoted}");

    // The winner breaks: its model now plans what fails.
    mock.reset().await;
    let bad = json!({"steps": [{"tool": "todo_complete", "input": {"title": "nobody added this"}, "reasoning": "r"}]});
    for p in ["/good/v1/chat/completions", "/bad/v1/chat/completions"] {
        Mock::given(method("POST"))
            .and(path(p))
            .respond_with(chat_ok(&bad.to_string()))
            .mount(&mock)
            .await;
    }
    // llm-bad's interval from the experiment is around [0.5, 0.7]; production runs of
    // llm-good now all fail.
    // (A new prompt each time: the exact plan cache would serve the good plans it holds.)
    for i in 0..25 {
        let r = run(
            &crane,
            json!({"prompt": format!("what is 7 times 6, case {i}")}),
        )
        .await;
        assert_eq!(r["status"], "failed", "{r}");
    }
    let exp = experiment_until(&crane, "guarded", |e| e["guard"]["status"] != "watching").await;
    assert_eq!(exp["guard"]["status"], "rolled_back", "{exp}");
    let history = crane.get_json("/aliases/production/history").await;
    let last = history["history"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["to"], "llm-bad", "{history}");
    assert!(
        last["note"]
            .as_str()
            .unwrap_or_default()
            .contains("rolled back"),
        "{history}"
    );
    let r = run(&crane, json!({"prompt": "what is 7 times 6"})).await;
    assert_eq!(r["plan"]["planner"]["variant"]["name"], "llm-bad", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_arms_find_no_winner_and_a_restart_keeps_the_experiment_and_the_arms() {
    let (_mock, config) = mock_and_config().await;
    // A third variant planning exactly like llm-good: an A/A experiment.
    let config = format!(
        "{config}\n[[planners]]\nname = \"llm-good-2\"\nkind = \"llm\"\nversion = \"1.0.0\"\nprovider = \"good\"\n"
    );
    let mut crane = LlmCrane::start(&[], Some(&config)).await;
    let (status, exp) = create(
        &crane,
        json!({"name": "a-vs-a", "arms": [{"planner": "llm-good"}, {"planner": "llm-good-2"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{exp}");
    let mut arm_of = std::collections::HashMap::new();
    for i in 0..150 {
        let user = format!("u{}", i % 30);
        let r = run(
            &crane,
            json!({"prompt": "what is 7 times 6", "user_id": user}),
        )
        .await;
        assert_eq!(r["status"], "completed", "{r}");
        arm_of.insert(
            user,
            r["experiment"]["arm"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let exp = experiment_until(&crane, "a-vs-a", |e| {
        e["arms"].as_array().is_some_and(|a| {
            a.iter()
                .map(|x| x["runs"].as_u64().unwrap_or(0))
                .sum::<u64>()
                == 150
        })
    })
    .await;
    assert_ne!(exp["analysis"]["decision"], "winner", "{exp}");
    let (status, _) = send(crane.client.post(crane.url("/experiments/a-vs-a/promote"))).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Killed and restarted: the experiment still runs, its counts stay, every user keeps
    // their arm.
    crane.kill9_and_restart(&[], Some(&config)).await;
    let exp = crane.get_json("/experiments/a-vs-a").await;
    assert_eq!(exp["status"], "running", "{exp}");
    let runs: u64 = exp["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["runs"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(runs, 150, "{exp}");
    for (user, arm) in &arm_of {
        let r = run(
            &crane,
            json!({"prompt": "what is 7 times 6", "user_id": user}),
        )
        .await;
        assert_eq!(r["experiment"]["arm"], arm.as_str(), "{user}: {r}");
    }
    // The arm's runs show in the metrics.
    let metrics = crane.get_text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("crane_experiment_runs_total{")
                && l.contains("experiment=\"a-vs-a\"")
                && l.contains("outcome=\"completed\"")),
        "{metrics}"
    );
}

/// `crane experiments ...` against the running server.
async fn cli(crane: &LlmCrane, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = crate::support::crane_command(dir.path())
        .arg("experiments")
        .args(args)
        .arg("--url")
        .arg(&crane.base)
        .output()
        .await
        .expect("run crane experiments");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_mirrors_the_api() {
    let (_mock, config) = mock_and_config().await;
    let crane = LlmCrane::start(&[], Some(&config)).await;
    let (code, out, err) = cli(
        &crane,
        &[
            "create",
            "cli-ab",
            "--arm",
            "llm-good",
            "--arm",
            "llm-bad=2",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("cli-ab (running)") && out.contains("llm-bad"),
        "{out}"
    );
    let (code, out, err) = cli(&crane, &["show", "cli-ab", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).expect("show --json");
    assert_eq!(shown["arms"][1]["weight"], 2.0);
    let (code, _, err) = cli(&crane, &["promote", "cli-ab"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no winner"), "{err}");
    let (code, _, err) = cli(
        &crane,
        &["create", "x", "--arm", "llm-good", "--arm", "llm-bad=lots"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("must be a number"), "{err}");
    let (code, out, _) = cli(&crane, &["stop", "cli-ab", "--note", "enough"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("cli-ab (stopped)"), "{out}");
    let (code, out, _) = cli(&crane, &["list", "--json"]).await;
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).expect("list --json");
    assert_eq!(listed["experiments"][0]["note"], "enough");
}
