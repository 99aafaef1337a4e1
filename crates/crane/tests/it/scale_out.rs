//! Several replicas on one PostgreSQL database (DESIGN.md "Scale-out"), end to end with the
//! real binary: a replica SIGKILLed under load loses no acknowledged run and duplicates no todo
//! effect (another replica resumes its runs once their lease lapses); `?wait=true` answers
//! whichever replica executes the run; state changed on one replica applies on the others;
//! the database going away answers 503 at once and runs in flight finish when it is back.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::pg::{Proxy, TestDatabase};
use crate::support::{DEADLINE, Server};

/// A config with a short lease, so a dead replica's runs are resumed within a second.
fn config_file(dir: &std::path::Path, extra: &str) -> String {
    let path = dir.join("crane.toml");
    std::fs::write(
        &path,
        format!("[store]\nlease_ms = 1000\npool_size = 8\n{extra}"),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

async fn replica(db_url: &str, config: &str) -> Server {
    Server::start_with_env(
        &["--debug-tools", "--config", config],
        &[("CRANE_DATABASE_URL", db_url)],
    )
    .await
}

/// A run that adds a todo, sleeps (so it is mid-flight when its replica dies) and adds another.
fn slow_run(i: usize) -> Value {
    json!({
        "prompt": format!("scale-out run {i}"),
        "steps": [
            {"tool": "todo_add", "input": {"title": format!("first {i}")}},
            {"tool": "debug_sleep", "input": {"ms": 400}},
            {"tool": "todo_add", "input": {"title": format!("second {i}")}},
        ]
    })
}

/// POSTs run `i` (idempotency key `run-i`) without waiting; the run id when acknowledged.
async fn submit(server: &Server, i: usize) -> Option<String> {
    let resp = server
        .client
        .post(server.url("/runs"))
        .header("idempotency-key", format!("run-{i}"))
        .json(&slow_run(i))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body: Value = resp.json().await.ok()?;
    body["run_id"].as_str().map(str::to_owned)
}

/// Waits until every run in `ids` is finished (read through `server`); their final states.
async fn wait_all_finished(server: &Server, ids: &[String]) -> Vec<Value> {
    let deadline = Instant::now() + DEADLINE;
    let mut done = Vec::new();
    for id in ids {
        loop {
            let (status, _, run) = server.get(&format!("/runs/{id}")).await;
            assert_eq!(status, StatusCode::OK, "run {id} is not found: {run}");
            if ["completed", "failed", "cancelled"].contains(&run["status"].as_str().unwrap_or(""))
            {
                done.push(run);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} never finished: {run}\nlogs:\n{}",
                server.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_under_load_loses_no_acknowledged_run_and_repeats_no_effect() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "");
    let mut replicas = [
        replica(&db.url(), &config).await,
        replica(&db.url(), &config).await,
        replica(&db.url(), &config).await,
    ];

    // Load on all three replicas at once.
    let first = 90;
    let acked: Vec<(usize, Option<String>)> = futures_util::future::join_all((0..first).map(|i| {
        let server = &replicas[i % 3];
        async move { (i, submit(server, i).await) }
    }))
    .await;
    assert!(
        acked.iter().all(|(_, id)| id.is_some()),
        "a replica refused a run before the kill"
    );
    // The victim's runs are mid-flight (sleeping between their two todos): kill it now.
    replicas[0].kill9().await;
    let victim_runs: Vec<String> = acked
        .iter()
        .filter(|(i, _)| i % 3 == 0)
        .filter_map(|(_, id)| id.clone())
        .collect();

    // The load goes on on the survivors.
    let more: Vec<(usize, Option<String>)> =
        futures_util::future::join_all((first..first + 30).map(|i| {
            let server = &replicas[1 + i % 2];
            async move { (i, submit(server, i).await) }
        }))
        .await;

    // A client of the dead replica retries its request with the same idempotency key on a
    // survivor and waits: it gets its original run, finished by whichever replica resumed it.
    let (status, headers, resumed) = replicas[1]
        .send(
            replicas[1]
                .client
                .post(replicas[1].url("/runs?wait=true"))
                .header("idempotency-key", "run-0")
                .json(&slow_run(0)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{resumed}");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(resumed["run_id"], victim_runs[0].as_str());
    assert_eq!(resumed["status"], "completed", "{resumed}");

    let ids: Vec<String> = acked
        .into_iter()
        .chain(more)
        .map(|(i, id)| id.unwrap_or_else(|| panic!("run {i} was not acknowledged")))
        .collect();
    let finished = wait_all_finished(&replicas[2], &ids).await;
    let not_completed: Vec<&Value> = finished
        .iter()
        .filter(|r| r["status"] != "completed")
        .collect();
    assert!(
        not_completed.is_empty(),
        "runs lost or failed: {not_completed:?}"
    );
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "two requests got the same run"
    );

    // Every effect exactly once: two todos per run, no title twice.
    let todos = db.count("SELECT count(*) FROM todos").await;
    let distinct = db.count("SELECT count(DISTINCT title) FROM todos").await;
    assert_eq!(distinct, todos, "a todo effect was applied twice");
    assert_eq!(todos, 2 * ids.len() as i64, "a todo effect is missing");

    // The dead replica's runs were finished by the survivors.
    let resumed_here = replicas[1]
        .logs()
        .matches("resuming unfinished run")
        .count()
        + replicas[2]
            .logs()
            .matches("resuming unfinished run")
            .count();
    assert!(
        resumed_here > 0,
        "no survivor resumed the dead replica's runs"
    );
    assert!(victim_runs.len() == first / 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_and_reads_work_on_any_replica() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "");
    let a = replica(&db.url(), &config).await;
    let b = replica(&db.url(), &config).await;

    let run = a.run_prompt("add a todo to buy milk").await;
    assert_eq!(run["status"], "completed", "{run}");
    // Any replica reads any run, and the todos are shared.
    let seen = b.get_run(run["run_id"].as_str().unwrap()).await;
    assert_eq!(seen, run);
    assert_eq!(b.todo_titles().await, ["buy milk"]);

    // A run executing on A, waited for through B (an idempotent replay with ?wait=true).
    let body = json!({"prompt": "slow", "steps": [{"tool": "debug_sleep", "input": {"ms": 300}}]});
    let (status, _, started) = a
        .send(
            a.client
                .post(a.url("/runs"))
                .header("idempotency-key", "w1")
                .json(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let (status, _, waited) = b
        .send(
            b.client
                .post(b.url("/runs?wait=true"))
                .header("idempotency-key", "w1")
                .json(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{waited}");
    assert_eq!(waited["run_id"], started["run_id"]);
    assert_eq!(waited["status"], "completed", "{waited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_answers_503_and_runs_in_flight_finish_when_it_returns() {
    let db = TestDatabase::create().await;
    let proxy = Proxy::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "");
    let server = replica(&db.url_via(Some(proxy.port)), &config).await;

    let body = json!({
        "prompt": "in flight",
        "steps": [
            {"tool": "todo_add", "input": {"title": "before"}},
            {"tool": "debug_sleep", "input": {"ms": 600}},
            {"tool": "todo_add", "input": {"title": "after"}},
        ]
    });
    let (status, _, run) = server.post_json("/runs", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    server
        .wait_for(&run_id, "the first step done", |r| {
            r["execution_log"].as_array().is_some_and(|l| !l.is_empty())
        })
        .await;

    proxy.down();
    let t0 = Instant::now();
    let (status, headers, err) = server
        .post_json("/runs", &json!({"prompt": "calculate 2+3"}))
        .await;
    let took = t0.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["error"]["code"], "store_unavailable", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("database")),
        "{err}"
    );
    assert!(headers.contains_key("retry-after"));
    assert!(
        took < Duration::from_secs(5),
        "a request with the database down took {took:?}"
    );
    let (status, _, _) = server.get(&format!("/runs/{run_id}")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    // Back: the run in flight resumes (its save failed while the database was away; its lease
    // lapses and the replica claims it again) and completes with each todo added once.
    proxy.up();
    let done = server.wait_status(&run_id, "completed").await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        db.count("SELECT count(*) FROM todos WHERE title = 'before'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM todos WHERE title = 'after'")
            .await,
        1
    );
    let (status, _, again) = server
        .post_json("/runs?wait=true", &json!({"prompt": "calculate 2+3"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["status"], "completed");
}

/// Two rule variants, so alias moves need no model.
const VARIANTS: &str = r#"
[[planners]]
name = "rules-v1"
kind = "rule"
version = "1.0.0"

[[planners]]
name = "rules-v2"
kind = "rule"
version = "2.0.0"
"#;

/// Polls `check` until it holds; how long that took (panics after `DEADLINE`).
async fn time_until<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !check().await {
        assert!(t0.elapsed() < DEADLINE, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_revocations_and_alias_moves_on_one_replica_apply_on_the_others() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), VARIANTS);
    let env = [
        ("CRANE_DATABASE_URL", db.url()),
        ("CRANE_AUTH", "keys".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Server::start_with_env(&["--config", &config], &env).await;
    let b = Server::start_with_env(&["--config", &config], &env).await;
    let (_, admin) = crate::support::cli_key(&a, "acme", "admin").await;
    let bearer = |k: &str| format!("Bearer {k}");

    // A key made on A works on B.
    let (status, _, made) = a
        .send(
            a.client
                .post(a.url("/keys"))
                .header("authorization", bearer(&admin))
                .json(&json!({"role": "operator", "name": "ci"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (key_id, key) = (
        made["key_id"].as_str().unwrap().to_owned(),
        made["key"].as_str().unwrap().to_owned(),
    );
    let runs_on_b = |key: String| {
        let b = &b;
        async move {
            b.send(
                b.client
                    .get(b.url("/runs"))
                    .header("authorization", bearer(&key)),
            )
            .await
            .0
        }
    };
    assert_eq!(runs_on_b(key.clone()).await, StatusCode::OK);

    // Revoked on A: refused on B within the key cache's half second (bound here: 2 s).
    let (status, _, revoked) = a
        .send(
            a.client
                .delete(a.url(&format!("/keys/{key_id}")))
                .header("authorization", bearer(&admin)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    let took = time_until("the revocation on B", || {
        let key = key.clone();
        async { runs_on_b(key).await == StatusCode::UNAUTHORIZED }
    })
    .await;
    assert!(
        took < Duration::from_secs(2),
        "B accepted a revoked key for {took:?}"
    );

    // The production alias moved on A: B plans with the new variant.
    let planner_on_b = || {
        let (b, admin) = (&b, admin.clone());
        async move {
            let (_, _, run) = b
                .send(
                    b.client
                        .post(b.url("/runs?wait=true"))
                        .header("authorization", bearer(&admin))
                        .json(&json!({"prompt": "calculate 2+3"})),
                )
                .await;
            run["plan"]["planner"]["variant"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    let (status, _, moved) = a
        .send(
            a.client
                .put(a.url("/aliases/production"))
                .header("authorization", bearer(&admin))
                .json(&json!({"variant": "rules-v2", "note": "scale-out test"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let took = time_until("the alias move on B", || async {
        planner_on_b().await == "rules-v2"
    })
    .await;
    assert!(
        took < Duration::from_secs(2),
        "B planned with the old variant for {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_assigns_a_user_the_same_arm_and_outcomes_add_up() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), VARIANTS);
    let a = replica(&db.url(), &config).await;
    let b = replica(&db.url(), &config).await;
    let (status, _, exp) = a
        .post_json(
            "/experiments",
            &json!({"name": "ab", "arms": [{"planner": "rules-v1"}, {"planner": "rules-v2"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{exp}");
    // B learns of the experiment within its half-second refresh.
    let took = time_until("B assigning runs", || async {
        let (_, _, r) = b
            .post_json(
                "/runs?wait=true",
                &json!({"prompt": "calculate 1+1", "user_id": "probe"}),
            )
            .await;
        r.get("experiment").is_some()
    })
    .await;
    assert!(
        took < Duration::from_secs(2),
        "B took {took:?} to see the experiment"
    );
    let mut runs = 1;
    for u in 0..20 {
        let body = json!({"prompt": "calculate 2+3", "user_id": format!("user-{u}")});
        let (_, _, on_a) = a.post_json("/runs?wait=true", &body).await;
        let (_, _, on_b) = b.post_json("/runs?wait=true", &body).await;
        runs += 2;
        assert_eq!(
            on_a["experiment"], on_b["experiment"],
            "user-{u}: {on_a} vs {on_b}"
        );
        assert_eq!(on_a["experiment"]["name"], "ab");
    }
    // Both replicas' outcomes add up in the shared totals (each flushes once a second).
    time_until("both replicas' outcomes in the totals", || async {
        let (_, _, e) = b.get("/experiments/ab").await;
        e["arms"].as_array().is_some_and(|arms| {
            arms.iter()
                .map(|x| x["runs"].as_u64().unwrap_or(0))
                .sum::<u64>()
                == runs
        })
    })
    .await;
    // Stopped on B: A stops assigning within its refresh.
    let (status, _, _) = b.post_empty("/experiments/ab/stop").await;
    assert_eq!(status, StatusCode::OK);
    time_until("A to stop assigning", || async {
        let (_, _, r) = a
            .post_json(
                "/runs?wait=true",
                &json!({"prompt": "calculate 1+1", "user_id": "probe"}),
            )
            .await;
        r.get("experiment").is_none()
    })
    .await;
}
