//! The OpenAI-compatible client against wiremock: retries, rate limits, timeouts, network and
//! auth failures, invalid output, structured-mode fallback and memory, usage and cost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crane_llm::{ErrorKind, Pricing, Provider, StructuredMode};
use serde_json::json;
use wiremock::matchers::{bearer_token, body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{KEY, answer, bodies, completion, count, openai, request};

const CHAT: &str = "/v1/chat/completions";

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(&answer().to_string()))
}

async fn mount_ok(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ok())
        .mount(server)
        .await;
}

/// Mounts `template` ahead of the success mock for the first `times` requests.
async fn mount_first(server: &MockServer, template: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(template)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(server)
        .await;
}

fn only(mode: StructuredMode, server: &MockServer) -> Provider {
    let mut config = openai(server);
    config.modes = vec![mode];
    Provider::new(config).unwrap()
}

#[tokio::test]
async fn server_error_then_success_is_retried() {
    let server = MockServer::start().await;
    mount_first(
        &server,
        ResponseTemplate::new(500).set_body_string("boom"),
        1,
    )
    .await;
    mount_ok(&server).await;
    let provider = only(StructuredMode::JsonObject, &server);

    let response = provider.chat(&request()).await.unwrap();
    assert_eq!(response.value, answer());
    assert_eq!(response.attempts, 2);
    assert_eq!(response.mode, StructuredMode::JsonObject);
    assert_eq!(count(&server).await, 2);
}

#[tokio::test]
async fn server_503_exhausts_retries() {
    let server = MockServer::start().await;
    mount_first(
        &server,
        ResponseTemplate::new(503).set_body_string("unavailable"),
        100,
    )
    .await;
    let provider = Provider::new(openai(&server)).unwrap();

    let err = provider.chat(&request()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Server);
    assert_eq!(err.status, Some(503));
    assert!(err.message.contains("after 3 attempts"), "{err}");
    // max_retries (2) + 1 requests, all in the first mode: a 503 is not a mode rejection.
    let sent = bodies(&server).await;
    assert_eq!(sent.len(), 3);
    assert!(
        sent.iter()
            .all(|b| b["response_format"]["type"] == "json_schema")
    );
}

#[tokio::test]
async fn transient_500_on_a_working_mode_is_retried_not_downgraded() {
    let server = MockServer::start().await;
    mount_ok(&server).await;
    let provider = Provider::new(openai(&server)).unwrap();
    assert_eq!(
        provider.chat(&request()).await.unwrap().mode,
        StructuredMode::JsonSchema
    );

    mount_first(
        &server,
        ResponseTemplate::new(500).set_body_string("oops"),
        1,
    )
    .await;
    let response = provider.chat(&request()).await.unwrap();
    assert_eq!(response.mode, StructuredMode::JsonSchema);
    assert_eq!(response.attempts, 2);
    assert_eq!(provider.current_mode(), StructuredMode::JsonSchema);
}

#[tokio::test]
async fn rate_limit_retry_after_is_honoured() {
    let server = MockServer::start().await;
    mount_first(
        &server,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_body_string("{\"error\": \"slow down\"}"),
        1,
    )
    .await;
    mount_ok(&server).await;
    let provider = only(StructuredMode::JsonObject, &server);

    let started = Instant::now();
    let response = provider.chat(&request()).await.unwrap();
    assert_eq!(response.attempts, 2);
    assert_eq!(count(&server).await, 2);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn retry_after_ms_is_preferred_to_retry_after() {
    // OpenAI and Azure send both; the precise one wins. Here it says 30 s, past the deadline,
    // while `retry-after: 1` alone would have let the second attempt through.
    let server = MockServer::start().await;
    mount_first(
        &server,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .insert_header("retry-after-ms", "30000"),
        1,
    )
    .await;
    mount_ok(&server).await;
    let provider = only(StructuredMode::JsonObject, &server);
    let mut req = request();
    req.deadline = Some(tokio::time::Instant::now() + Duration::from_secs(5));

    let err = provider.chat(&req).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimit);
    assert!(err.message.contains("Retry-After 30s"), "{err}");
    assert_eq!(count(&server).await, 1);
}

#[tokio::test]
async fn rate_limit_retry_after_beyond_deadline_fails_fast() {
    let server = MockServer::start().await;
    mount_first(
        &server,
        ResponseTemplate::new(429).insert_header("retry-after", "30"),
        100,
    )
    .await;
    let provider = only(StructuredMode::JsonObject, &server);
    let mut req = request();
    req.deadline = Some(tokio::time::Instant::now() + Duration::from_secs(2));

    let started = Instant::now();
    let err = provider.chat(&req).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimit);
    assert_eq!(err.status, Some(429));
    assert!(err.message.contains("deadline"), "{err}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(count(&server).await, 1);
}

#[tokio::test]
async fn connection_refused_is_network() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = crate::common::config(
        crane_llm::ProviderKind::OpenAi,
        format!("http://127.0.0.1:{port}/v1"),
    );
    config.modes = vec![StructuredMode::JsonObject];
    let provider = Provider::new(config).unwrap();

    let err = provider.chat(&request()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Network, "{err}");
    assert_eq!(err.status, None);
    assert!(err.message.contains("could not connect"), "{err}");
    // Nothing reached the server: not retried (the breaker handles a dead server).
    assert!(err.message.contains("not retried"), "{err}");
    assert!(!err.message.contains("attempts"), "one attempt only: {err}");
}

#[tokio::test]
async fn a_host_that_does_not_resolve_is_not_retried() {
    // `.invalid` never resolves (RFC 2606), with or without network.
    let mut config = crate::common::config(
        crane_llm::ProviderKind::OpenAi,
        "http://llm.crane-test.invalid/v1".to_owned(),
    );
    config.modes = vec![StructuredMode::JsonObject];
    let provider = Provider::new(config).unwrap();

    let err = provider.chat(&request()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Network, "{err}");
    assert!(err.message.contains("could not resolve the host"), "{err}");
    assert!(err.message.contains("not retried"), "{err}");
    assert!(err.message.contains("llm.crane-test.invalid"), "{err}");
    assert!(!err.message.contains("attempts"), "one attempt only: {err}");
}

#[tokio::test]
async fn slow_response_is_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ok().set_delay(Duration::from_secs(1)))
        .mount(&server)
        .await;
    let mut config = openai(&server);
    config.modes = vec![StructuredMode::JsonObject];
    config.request_timeout = Duration::from_millis(100);
    config.retry.max_retries = 1;
    let provider = Provider::new(config).unwrap();

    let started = Instant::now();
    let err = provider.chat(&request()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_millis(900));
    assert_eq!(count(&server).await, 2);
}

#[tokio::test]
async fn deadline_clips_the_request_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ok().set_delay(Duration::from_secs(1)))
        .mount(&server)
        .await;
    let provider = only(StructuredMode::JsonObject, &server);
    let mut req = request();
    req.deadline = Some(tokio::time::Instant::now() + Duration::from_millis(150));

    let started = Instant::now();
    let err = provider.chat(&req).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_millis(600));

    // A deadline already in the past fails without a request.
    req.deadline = Some(tokio::time::Instant::now());
    let before = count(&server).await;
    assert_eq!(
        provider.chat(&req).await.unwrap_err().kind,
        ErrorKind::Timeout
    );
    assert_eq!(count(&server).await, before);
}

#[tokio::test]
async fn malformed_json_body_is_invalid_output() {
    let server = MockServer::start().await;
    mount_first(
        &server,
        ResponseTemplate::new(200).set_body_string("{\"choices\": [oops"),
        100,
    )
    .await;
    let provider = only(StructuredMode::JsonObject, &server);

    let err = provider.chat(&request()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidOutput, "{err}");
    assert_eq!(err.status, Some(200));
    assert_eq!(count(&server).await, 1, "invalid output is not retried");
}

#[tokio::test]
async fn non_json_content_in_json_object_mode_is_invalid_output() {
    let server = MockServer::start().await;
    mount_first(
        &server,
        ResponseTemplate::new(200).set_body_json(completion("Sure! I would add 2 and 2.")),
        100,
    )
    .await;
    let provider = only(StructuredMode::JsonObject, &server);

    let err = provider.chat(&request()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidOutput);
    assert!(err.message.contains("Sure! I would add"), "{err}");
    assert_eq!(count(&server).await, 1);
}

#[tokio::test]
async fn empty_choices_is_invalid_output() {
    let server = MockServer::start().await;
    mount_first(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"model": "m", "choices": []})),
        100,
    )
    .await;
    let provider = only(StructuredMode::JsonObject, &server);

    let err = provider.chat(&request()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidOutput);
    assert!(err.message.contains("no choices"), "{err}");
    assert_eq!(count(&server).await, 1);
}

#[tokio::test]
async fn unauthorized_is_auth_without_retry_and_without_the_key() {
    let server = MockServer::start().await;
    mount_first(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({
            "error": {"message": format!("Incorrect API key provided: {KEY}"), "type": "invalid_request_error"}
        })),
        100,
    )
    .await;
    let provider = Provider::new(openai(&server)).unwrap();

    let err = provider.chat(&request()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert_eq!(err.status, Some(401));
    assert!(err.message.contains("API key"), "{err}");
    assert!(!err.message.contains(KEY));
    assert!(!err.to_string().contains(KEY));
    assert!(!format!("{err:?}").contains(KEY));
    assert!(!format!("{provider:?}").contains(KEY));
    assert!(!format!("{:?}", provider.config()).contains(KEY));
    assert_eq!(count(&server).await, 1, "auth failures are not retried");
}

#[tokio::test]
async fn json_schema_rejected_falls_back_to_json_object_and_is_remembered() {
    let server = MockServer::start().await;
    // llama.cpp: json_schema → HTTP 500; json_object with a schema → grammar-enforced JSON.
    Mock::given(method("POST"))
        .and(path(CHAT))
        .and(body_partial_json(
            json!({"response_format": {"type": "json_schema"}}),
        ))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "error": {"code": 500, "message": "Internal Server Error", "type": "server_error"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .and(body_partial_json(
            json!({"response_format": {"type": "json_object"}}),
        ))
        .respond_with(ok())
        .mount(&server)
        .await;
    let provider = Provider::new(openai(&server)).unwrap();
    assert_eq!(provider.current_mode(), StructuredMode::JsonSchema);

    let first = provider.chat(&request()).await.unwrap();
    assert_eq!(first.mode, StructuredMode::JsonObject);
    assert_eq!(first.value, answer());
    assert_eq!(first.attempts, 2);
    assert_eq!(provider.current_mode(), StructuredMode::JsonObject);

    let second = provider.chat(&request()).await.unwrap();
    assert_eq!(second.mode, StructuredMode::JsonObject);
    assert_eq!(second.attempts, 1);

    let sent = bodies(&server).await;
    let types: Vec<&str> = sent
        .iter()
        .map(|b| b["response_format"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["json_schema", "json_object", "json_object"]);
    assert_eq!(
        sent[1]["response_format"]["schema"],
        crate::common::schema()
    );
}

#[tokio::test]
async fn client_errors_in_every_mode_become_config() {
    let server = MockServer::start().await;
    mount_first(
        &server,
        ResponseTemplate::new(400).set_body_string("{\"error\": \"unknown field\"}"),
        100,
    )
    .await;
    let provider = Provider::new(openai(&server)).unwrap();

    let err = provider.chat(&request()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config);
    assert_eq!(err.status, Some(400));
    assert_eq!(count(&server).await, 4, "one request per mode, no retries");
    assert_eq!(provider.current_mode(), StructuredMode::JsonSchema);
}

#[tokio::test]
async fn tools_mode_parses_tool_call_arguments() {
    let server = MockServer::start().await;
    let arguments = answer().to_string();
    Mock::given(method("POST"))
        .and(path(CHAT))
        .and(body_partial_json(json!({
            "tool_choice": {"type": "function", "function": {"name": "plan"}},
            "tools": [{"type": "function", "function": {"name": "plan"}}]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "test-model",
            "choices": [{
                "message": {"role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "plan", "arguments": arguments}
                }]},
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10}
        })))
        .mount(&server)
        .await;
    let provider = only(StructuredMode::Tools, &server);

    let response = provider.chat(&request()).await.unwrap();
    assert_eq!(response.mode, StructuredMode::Tools);
    assert_eq!(response.value, answer());
    assert_eq!(response.raw_text, arguments);
    assert_eq!(response.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(response.usage.input_tokens, 50);
    assert_eq!(
        bodies(&server).await[0]["tools"][0]["function"]["parameters"],
        crate::common::schema()
    );
}

#[tokio::test]
async fn prompt_mode_extracts_json_from_fences_and_prose() {
    let server = MockServer::start().await;
    let fenced = format!("Here is the plan:\n```json\n{}\n```", answer());
    let prose = format!("Sure! {} Hope that helps {{:", answer());
    mount_first(
        &server,
        ResponseTemplate::new(200).set_body_json(completion(&fenced)),
        1,
    )
    .await;
    mount_first(
        &server,
        ResponseTemplate::new(200).set_body_json(completion(&prose)),
        1,
    )
    .await;
    let provider = only(StructuredMode::Prompt, &server);

    for expected_raw in [&fenced, &prose] {
        let response = provider.chat(&request()).await.unwrap();
        assert_eq!(response.mode, StructuredMode::Prompt);
        assert_eq!(response.value, answer());
        assert_eq!(&response.raw_text, expected_raw);
    }
    let sent = bodies(&server).await;
    assert!(sent[0].get("response_format").is_none());
    assert!(sent[0].get("tools").is_none());
    let system = sent[0]["messages"][0]["content"].as_str().unwrap();
    assert!(system.starts_with("You turn tasks into plans."));
    assert!(system.contains("Answer with only a JSON object matching this schema"));
}

#[tokio::test]
async fn usage_and_cost_price_input_and_output_separately() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .and(body_partial_json(json!({"model": "routed-model"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "routed-model-2025-01-01",
            "choices": [{"message": {"content": answer().to_string()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 500}
        })))
        .mount(&server)
        .await;
    let mut config = openai(&server);
    config.modes = vec![StructuredMode::JsonObject];
    config.pricing = HashMap::from([
        (
            "routed-model-2025-01-01".to_owned(),
            Pricing::new(1.0, 10.0),
        ),
        ("routed-model".to_owned(), Pricing::new(100.0, 100.0)),
    ]);
    let provider = Provider::new(config.clone()).unwrap();
    let mut req = request();
    req.model = Some("routed-model".to_owned());

    let response = provider.chat(&req).await.unwrap();
    assert_eq!(response.model, "routed-model-2025-01-01");
    assert_eq!(response.usage.input_tokens, 1000);
    assert_eq!(response.usage.output_tokens, 500);
    // 1000 * 1.0 / 1e6 + 500 * 10.0 / 1e6
    let cost = response.cost_usd.unwrap();
    assert!((cost - 0.006).abs() < 1e-12, "{cost}");

    // Falls back to the requested model's price, and to None when nothing is priced.
    config.pricing.remove("routed-model-2025-01-01");
    let provider = Provider::new(config.clone()).unwrap();
    let cost = provider.chat(&req).await.unwrap().cost_usd.unwrap();
    assert!((cost - 0.15).abs() < 1e-12, "{cost}");
    config.pricing.clear();
    let provider = Provider::new(config).unwrap();
    assert_eq!(provider.chat(&req).await.unwrap().cost_usd, None);
}

#[tokio::test]
async fn traceparent_and_bearer_headers_are_sent() {
    let server = MockServer::start().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    Mock::given(method("POST"))
        .and(path(CHAT))
        .and(header("traceparent", traceparent))
        .and(bearer_token(KEY))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    let provider = only(StructuredMode::JsonObject, &server);
    let mut req = request();
    req.traceparent = Some(traceparent.to_owned());

    let response = provider.chat(&req).await.unwrap();
    assert_eq!(response.attempts, 1);
    server.verify().await;
}
