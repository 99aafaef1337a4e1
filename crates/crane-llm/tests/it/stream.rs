//! Streamed answers against wiremock upstreams: server-sent events from an OpenAI-compatible
//! server (content and tool-call deltas, the usage chunk) and from the Anthropic Messages API,
//! a plain JSON answer to a streamed request, streaming turned off, and the retry rule (a
//! failure before any text is retried; an error in the stream after text arrived is not).
//! Wiremock sends a body at once, so these check the decoding and the rules, not the timing
//! (crane's end-to-end tests stream with a delay).

use crane_llm::{ErrorKind, Provider, ProviderKind, StructuredMode};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{answer, bodies, completion, config, count, openai, request};

const CHAT: &str = "/v1/chat/completions";

/// An SSE body of `data:` events.
fn sse(events: &[String]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

fn sse_response(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

fn chunk(delta: Value) -> String {
    json!({"model": "test-model", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
        .to_string()
}

/// `text` streamed in pieces of `size` bytes (on char boundaries), with the usage chunk.
fn openai_stream(text: &str, size: usize) -> String {
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}))];
    let chars: Vec<char> = text.chars().collect();
    for piece in chars.chunks(size) {
        events.push(chunk(json!({"content": piece.iter().collect::<String>()})));
    }
    events
        .push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).to_string());
    events.push(
        json!({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 20}})
            .to_string(),
    );
    events.push("[DONE]".to_owned());
    sse(&events)
}

fn provider(server: &MockServer, mode: StructuredMode) -> Provider {
    let mut config = openai(server);
    config.modes = vec![mode];
    Provider::new(config).unwrap()
}

#[tokio::test]
async fn openai_stream_hands_out_the_text_and_decodes_the_answer() {
    let server = MockServer::start().await;
    let text = format!("Here: {}", answer());
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(sse_response(openai_stream(&text, 3)))
        .mount(&server)
        .await;
    let provider = provider(&server, StructuredMode::JsonObject);
    let mut pieces = Vec::new();
    let response = provider
        .chat_stream(&request(), &mut |t: &str| pieces.push(t.to_owned()))
        .await
        .unwrap();
    assert!(response.streamed);
    assert_eq!(response.value, answer());
    assert_eq!(pieces.concat(), text);
    assert!(pieces.len() > 5, "{pieces:?}");
    assert_eq!(response.raw_text, text);
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (100, 20)
    );
    assert_eq!(response.finish_reason.as_deref(), Some("stop"));
    let body = &bodies(&server).await[0];
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn openai_stream_of_tool_call_arguments() {
    let server = MockServer::start().await;
    let args = answer().to_string();
    let (a, b) = args.split_at(10);
    let call = |piece: &str| {
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    };
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(sse_response(sse(&[call(a), call(b), "[DONE]".to_owned()])))
        .mount(&server)
        .await;
    let provider = provider(&server, StructuredMode::Tools);
    let mut text = String::new();
    let response = provider
        .chat_stream(&request(), &mut |t: &str| text.push_str(t))
        .await
        .unwrap();
    assert_eq!(text, args);
    assert_eq!(response.value, answer());
}

#[tokio::test]
async fn a_plain_json_answer_to_a_streamed_request_works() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(&answer().to_string())))
        .mount(&server)
        .await;
    let provider = provider(&server, StructuredMode::JsonObject);
    let mut calls = 0;
    let response = provider
        .chat_stream(&request(), &mut |_: &str| calls += 1)
        .await
        .unwrap();
    assert!(!response.streamed);
    assert_eq!(calls, 0);
    assert_eq!(response.value, answer());
    assert_eq!(response.usage.input_tokens, 100);
    assert_eq!(bodies(&server).await[0]["stream"], true);
}

#[tokio::test]
async fn streaming_off_sends_a_plain_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(&answer().to_string())))
        .mount(&server)
        .await;
    let mut config = openai(&server);
    config.modes = vec![StructuredMode::JsonObject];
    config.stream = false;
    let provider = Provider::new(config).unwrap();
    let response = provider
        .chat_stream(&request(), &mut |_: &str| {})
        .await
        .unwrap();
    assert_eq!(response.value, answer());
    let body = &bodies(&server).await[0];
    assert_eq!(body["stream"], false);
    assert!(body.get("stream_options").is_none());
    // `chat` never streams.
    provider.chat(&request()).await.unwrap();
    assert_eq!(bodies(&server).await[1]["stream"], false);
}

#[tokio::test]
async fn a_failure_before_any_text_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(sse_response(sse(&[
            json!({"error": {"message": "model is loading"}}).to_string(),
        ])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(sse_response(openai_stream(&answer().to_string(), 4)))
        .mount(&server)
        .await;
    let provider = provider(&server, StructuredMode::JsonObject);
    let response = provider
        .chat_stream(&request(), &mut |_: &str| {})
        .await
        .unwrap();
    assert_eq!(response.attempts, 2);
    assert_eq!(response.value, answer());
}

#[tokio::test]
async fn an_error_after_text_arrived_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(sse_response(sse(&[
            chunk(json!({"content": "{\"steps\": [{\"tool\""})),
            json!({"error": {"message": "the worker crashed"}}).to_string(),
        ])))
        .mount(&server)
        .await;
    let provider = provider(&server, StructuredMode::JsonObject);
    let mut text = String::new();
    let err = provider
        .chat_stream(&request(), &mut |t: &str| text.push_str(t))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Server);
    assert!(err.message.contains("the worker crashed"), "{err}");
    assert!(err.message.contains("not retried"), "{err}");
    assert_eq!(count(&server).await, 1);
    assert_eq!(text, "{\"steps\": [{\"tool\"");
}

#[tokio::test]
async fn a_stream_cut_before_the_json_is_complete_is_invalid_output() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(sse_response(sse(&[chunk(
            json!({"content": "{\"steps\": ["}),
        )])))
        .mount(&server)
        .await;
    let provider = provider(&server, StructuredMode::JsonObject);
    let err = provider
        .chat_stream(&request(), &mut |_: &str| {})
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidOutput, "{err}");
    assert_eq!(count(&server).await, 1);
}

#[tokio::test]
async fn anthropic_stream_of_a_tool_use_block() {
    let server = MockServer::start().await;
    let input = answer().to_string();
    let (a, b) = input.split_at(7);
    let events = [
        json!({"type": "message_start", "message": {"model": "claude-test", "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t1", "name": "plan", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": a}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": b}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ];
    let body: String = events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect();
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(sse_response(body))
        .mount(&server)
        .await;
    let provider = Provider::new(config(ProviderKind::Anthropic, server.uri())).unwrap();
    let mut text = String::new();
    let response = provider
        .chat_stream(&request(), &mut |t: &str| text.push_str(t))
        .await
        .unwrap();
    assert!(response.streamed);
    assert_eq!(text, input);
    assert_eq!(response.value, answer());
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (30, 9)
    );
    assert_eq!(response.model, "claude-test");
    assert_eq!(bodies(&server).await[0]["stream"], true);
}
