//! The todo tools end to end over HTTP: `todo_list` pages (cursor, order, count of every
//! match), a todo found by a shorter title, and step outputs over the stored-size limit kept
//! as a truncated copy while later steps still see the full output.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Server, assert_error, titles};

/// Adds `titles` in one client plan (at most 50, the plan limit).
async fn add_all(server: &Server, titles: &[String]) {
    let steps: Vec<Value> = titles
        .iter()
        .map(|t| json!({"tool": "todo_add", "input": {"title": t}}))
        .collect();
    let run = server.run_steps(Value::Array(steps)).await;
    assert_eq!(run["status"], "completed", "{run}");
}

#[tokio::test]
async fn todo_list_pages_through_every_todo_with_a_cursor_in_either_order() {
    let server = Server::start(&[]).await;
    let names: Vec<String> = (1..=5).map(|i| format!("task {i}")).collect();
    add_all(&server, &names).await;

    // Page 1 and page 2 in one plan: the second step continues after the first.
    let run = server
        .run_steps(json!([
            {"tool": "todo_list", "input": {"limit": 2}},
            {"tool": "todo_list", "input": {"limit": 2, "cursor": "${steps.1.next_cursor}"}},
        ]))
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    let first = &run["execution_log"][0]["output"];
    assert_eq!(titles(first), ["task 1", "task 2"]);
    assert_eq!(first["count"], 5);
    assert!(first["next_cursor"].is_string(), "{first}");
    assert_eq!(titles(&run["result"]), ["task 3", "task 4"]);
    assert_eq!(run["result"]["count"], 5);

    // The last page, from a cursor handed back by a client in a later run.
    let cursor = run["result"]["next_cursor"].clone();
    let last = server
        .run_steps(json!([{"tool": "todo_list", "input": {"limit": 2, "cursor": cursor}}]))
        .await;
    assert_eq!(titles(&last["result"]), ["task 5"]);
    assert_eq!(last["result"]["next_cursor"], Value::Null);

    // Newest first: index 0 is the most recent todo ("delete the last one").
    let run = server
        .run_steps(json!([
            {"tool": "todo_list", "input": {"order": "newest_first", "limit": 1}},
            {"tool": "todo_delete", "input": {"id": "${steps.1.todos.0.id}"}},
        ]))
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["result"]["todo"]["title"], "task 5");
    assert_eq!(run["result"]["matched"], "id");

    // A malformed cursor is refused when the plan is validated; nothing runs.
    let (status, _, body) = server
        .post_json(
            "/runs",
            &json!({"prompt": "x", "steps": [{"tool": "todo_list", "input": {"cursor": "page-2"}}]}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_plan",
        "invalid cursor 'page-2': not a next_cursor returned by todo_list",
    );

    // The schema every client and LLM sees carries the new fields.
    let (_, _, tools) = server.get("/tools").await;
    let list = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "todo_list")
        .unwrap()
        .clone();
    let props = &list["input_schema"]["properties"];
    assert_eq!(
        props["order"]["enum"],
        json!(["oldest_first", "newest_first", null])
    );
    assert!(
        props["cursor"].is_object() && props["limit"].is_object(),
        "{list}"
    );
    assert!(
        list["output_schema"]["properties"]["next_cursor"].is_object(),
        "{list}"
    );
}

#[tokio::test]
async fn a_todo_is_found_by_a_shorter_title_when_only_one_holds_those_words() {
    let server = Server::start(&[]).await;
    let added = server
        .run_prompt("remind me to call mom tomorrow at 5pm")
        .await;
    assert_eq!(added["status"], "completed", "{added}");
    let title = added["result"]["todo"]["title"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(title.starts_with("call mom "), "{title}");

    let done = server.run_prompt("mark call mom as done").await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["matched"], "partial", "{done}");
    assert_eq!(done["result"]["todo"]["title"], title.as_str());
    assert_eq!(done["result"]["todo"]["done"], true);
    assert_eq!(done["result"]["todo"]["id"], added["result"]["todo"]["id"]);

    // Two todos holding the words: ambiguous, naming both; nothing is deleted.
    server.run_prompt("remind me to call mom on sunday").await;
    let run = server.run_prompt("delete call mom").await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains("ambiguous title 'call mom'")
            && error.contains("2 todos contain those words"),
        "{error}"
    );
    assert!(
        error.contains(&format!("\"{title}\"")) && error.contains("\"call mom on sunday\""),
        "{error}"
    );
    assert_eq!(server.todo_titles().await.len(), 2);

    // An exact title still wins over longer ones.
    server.run_prompt("remind me to call mom").await;
    let run = server.run_prompt("delete call mom").await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["result"]["matched"], "exact");
    assert_eq!(run["result"]["todo"]["title"], "call mom");
}

#[tokio::test]
async fn an_output_over_the_limit_is_stored_truncated_and_referenced_whole() {
    let server = Server::start(&[]).await;
    // 150 todos with 400-character titles: a list of them is ~75 KiB of JSON.
    let long = "x".repeat(380);
    for batch in 0..3 {
        let names: Vec<String> = (0..50)
            .map(|i| format!("todo {:03} {long}", batch * 50 + i))
            .collect();
        add_all(&server, &names).await;
    }
    let run = server
        .run_steps(json!([
            {"tool": "todo_list", "input": {"limit": 1000}},
            {"tool": "todo_complete", "input": {"id": "${steps.1.todos.149.id}"}},
            {"tool": "todo_list", "input": {"limit": 1000}},
        ]))
        .await;
    assert_eq!(run["status"], "completed", "{}", run["error"]);
    let stored = &run["execution_log"][0]["output"];
    assert_eq!(stored["truncated"], true, "{:.300}", stored.to_string());
    assert_eq!(stored["limit_bytes"], 65536);
    let size = stored["size_bytes"].as_u64().unwrap();
    assert!(size > 65536, "{size}");
    assert!(stored.to_string().len() <= 65536);
    let preview = &stored["preview"];
    assert_eq!(preview["count"], 150);
    let kept = titles(preview);
    assert!(!kept.is_empty() && kept.len() < 150, "{}", kept.len());
    assert!(kept[0].starts_with("todo 000 "), "{}", kept[0]);
    // Step 2 referenced the 150th todo, which is not in the stored preview.
    let completed = &run["execution_log"][1]["output"]["todo"];
    assert!(
        completed["title"]
            .as_str()
            .unwrap()
            .starts_with("todo 149 "),
        "{completed}"
    );
    assert_eq!(completed["done"], true);
    // The run's result follows the same bound, and GET returns what was stored.
    assert_eq!(run["result"]["truncated"], true);
    let fetched = server.get_run(run["run_id"].as_str().unwrap()).await;
    assert_eq!(fetched["execution_log"], run["execution_log"]);
    assert_eq!(fetched["result"], run["result"]);
}
