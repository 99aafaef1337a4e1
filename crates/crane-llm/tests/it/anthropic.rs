//! The Anthropic Messages client against wiremock: required headers, tool_use answers, usage,
//! 529 "overloaded" retries and the fallback from tools to prompt mode.

use std::collections::HashMap;

use crane_llm::{ErrorKind, Pricing, Provider, ProviderKind, StructuredMode};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{KEY, answer, bodies, config, count, request};

const MESSAGES: &str = "/v1/messages";

fn tool_use() -> Value {
    json!({
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [
            {"type": "text", "text": "Here is the plan."},
            {"type": "tool_use", "id": "toolu_1", "name": "plan", "input": answer()}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 200, "output_tokens": 40}
    })
}

fn provider(server: &MockServer) -> Provider {
    let mut config = config(ProviderKind::Anthropic, server.uri());
    config.pricing = HashMap::from([("claude-test".to_owned(), Pricing::new(3.0, 15.0))]);
    Provider::new(config).unwrap()
}

/// Matches only requests carrying the key and the API version.
fn messages_mock() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
}

#[tokio::test]
async fn tool_use_answer_is_parsed_with_usage() {
    let server = MockServer::start().await;
    messages_mock()
        .and(body_partial_json(json!({
            "tool_choice": {"type": "tool", "name": "plan"},
            "max_tokens": 1024,
            "system": "You turn tasks into plans."
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(tool_use()))
        .expect(1)
        .mount(&server)
        .await;
    let provider = provider(&server);

    let response = provider.chat(&request()).await.unwrap();
    assert_eq!(response.mode, StructuredMode::Tools);
    assert_eq!(response.value, answer());
    assert_eq!(response.model, "claude-test");
    assert_eq!(response.finish_reason.as_deref(), Some("tool_use"));
    assert_eq!(response.usage.input_tokens, 200);
    assert_eq!(response.usage.output_tokens, 40);
    let cost = response.cost_usd.unwrap();
    assert!((cost - (200.0 * 3.0 + 40.0 * 15.0) / 1e6).abs() < 1e-12);
    let sent = bodies(&server).await;
    assert_eq!(sent[0]["tools"][0]["input_schema"], crate::common::schema());
    assert_eq!(sent[0]["messages"][0]["role"], "user");
    server.verify().await;
}

#[tokio::test]
async fn overloaded_529_is_retried() {
    let server = MockServer::start().await;
    messages_mock()
        .respond_with(ResponseTemplate::new(529).set_body_json(json!({
            "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    messages_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(tool_use()))
        .mount(&server)
        .await;
    let provider = provider(&server);

    let response = provider.chat(&request()).await.unwrap();
    assert_eq!(response.attempts, 2);
    assert_eq!(response.mode, StructuredMode::Tools);
    assert_eq!(count(&server).await, 2);
}

#[tokio::test]
async fn overloaded_529_exhausted_is_server() {
    let server = MockServer::start().await;
    messages_mock()
        .respond_with(ResponseTemplate::new(529).set_body_string("overloaded"))
        .mount(&server)
        .await;
    let provider = provider(&server);

    let err = provider.chat(&request()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Server);
    assert_eq!(err.status, Some(529));
    assert_eq!(count(&server).await, 3);
}

#[tokio::test]
async fn tools_rejected_falls_back_to_prompt() {
    let server = MockServer::start().await;
    messages_mock()
        .and(body_partial_json(json!({"tool_choice": {"type": "tool"}})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "tools are not supported"}
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    messages_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "claude-test",
            "content": [{"type": "text", "text": format!("```json\n{}\n```", answer())}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 5}
        })))
        .mount(&server)
        .await;
    let provider = provider(&server);

    let response = provider.chat(&request()).await.unwrap();
    assert_eq!(response.mode, StructuredMode::Prompt);
    assert_eq!(response.value, answer());
    assert_eq!(response.finish_reason.as_deref(), Some("end_turn"));
    assert_eq!(provider.current_mode(), StructuredMode::Prompt);
    let second = provider.chat(&request()).await.unwrap();
    assert_eq!(second.attempts, 1);
    assert_eq!(count(&server).await, 3);
    let sent = bodies(&server).await;
    assert!(sent[1].get("tools").is_none());
    assert!(
        sent[1]["system"]
            .as_str()
            .unwrap()
            .contains("Answer with only a JSON object matching this schema")
    );
}

#[tokio::test]
async fn wrong_key_is_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "type": "error",
            "error": {"type": "authentication_error", "message": format!("invalid x-api-key {KEY}")}
        })))
        .mount(&server)
        .await;
    let provider = provider(&server);

    let err = provider.chat(&request()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(!err.to_string().contains(KEY), "{err}");
    assert_eq!(count(&server).await, 1);
}
