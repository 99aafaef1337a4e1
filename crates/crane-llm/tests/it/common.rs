//! Shared fixtures: provider configurations with short delays, a standard request, and
//! OpenAI-style response bodies.

use std::time::Duration;

use crane_llm::{
    ApiKey, BreakerConfig, ChatRequest, Message, ProviderConfig, ProviderKind, RetryConfig,
};
use serde_json::{Value, json};
use wiremock::MockServer;

/// The API key used by every test provider; it must never appear in an error.
pub const KEY: &str = "sk-test-SECRET-0123456789";

/// Retries with millisecond backoff and a breaker that stays out of the way.
pub fn config(kind: ProviderKind, base_url: String) -> ProviderConfig {
    let mut config = ProviderConfig::new("test", kind, base_url, "test-model");
    config.api_key = Some(ApiKey::new(KEY));
    config.request_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_millis(500);
    config.retry = RetryConfig {
        max_retries: 2,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    config.breaker = BreakerConfig {
        consecutive_failures: 1_000,
        failure_rate: 1.0,
        window: 20,
        min_calls: 1_000,
        cooldown: Duration::from_millis(50),
    };
    config
}

/// An OpenAI-compatible provider pointed at `server` (`{uri}/v1`).
pub fn openai(server: &MockServer) -> ProviderConfig {
    config(ProviderKind::OpenAi, format!("{}/v1", server.uri()))
}

/// The plan schema used by the tests.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"steps": {"type": "array", "items": {"type": "object"}}},
        "required": ["steps"],
        "additionalProperties": false
    })
}

/// A typical planner request.
pub fn request() -> ChatRequest {
    ChatRequest::new(
        "You turn tasks into plans.",
        vec![Message::user("add 2 and 2")],
        "plan",
        schema(),
    )
}

/// The answer the mocks return.
pub fn answer() -> Value {
    json!({"steps": [{"tool": "calculator", "input": {"expression": "2+2"}}]})
}

/// A chat completion whose message content is `content`.
pub fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
}

/// Request bodies the server received, in order.
pub async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.body_json::<Value>().unwrap())
        .collect()
}

/// Number of requests the server received.
pub async fn count(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}
