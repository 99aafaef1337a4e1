//! The circuit breaker seen through `Provider::chat`: opening after consecutive failures,
//! failing fast without network, the half-open probe, and failures that must not count.

use std::time::{Duration, Instant};

use crane_llm::{BreakerConfig, BreakerState, ErrorKind, Provider, StructuredMode};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{answer, completion, count, openai, request};

const CHAT: &str = "/v1/chat/completions";

fn provider(server: &MockServer, consecutive: u32, cooldown: Duration) -> Provider {
    let mut config = openai(server);
    config.modes = vec![StructuredMode::JsonObject];
    config.retry.max_retries = 0;
    config.breaker = BreakerConfig {
        consecutive_failures: consecutive,
        failure_rate: 0.5,
        window: 20,
        min_calls: 10,
        cooldown,
    };
    Provider::new(config).unwrap()
}

/// Waits (bounded) until the breaker's cooldown has passed and it lets a probe through. The
/// cooldown is wall-clock time measured by the breaker itself, so this polls its state.
async fn wait_half_open(provider: &Provider) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while provider.breaker_state() != BreakerState::HalfOpen {
        assert!(Instant::now() < deadline, "the breaker never half-opened");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn mount_failures(server: &MockServer, status: u16, times: u64) {
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(status).set_body_string("down"))
        .up_to_n_times(times)
        .with_priority(1)
        .mount(server)
        .await;
}

async fn mount_ok(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(&answer().to_string())))
        .mount(server)
        .await;
}

#[tokio::test]
async fn opens_fails_fast_then_half_opens_and_closes() {
    let server = MockServer::start().await;
    mount_failures(&server, 503, 3).await;
    mount_ok(&server).await;
    let provider = provider(&server, 3, Duration::from_millis(300));

    for _ in 0..3 {
        assert_eq!(
            provider.chat(&request()).await.unwrap_err().kind,
            ErrorKind::Server
        );
    }
    assert_eq!(provider.breaker_state(), BreakerState::Open);
    assert_eq!(count(&server).await, 3);

    // Fails fast without a request: microseconds (the best of a few calls, so a scheduler
    // hiccup on a loaded CI machine cannot fail the test).
    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let err = provider.chat(&request()).await.unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(err.kind, ErrorKind::CircuitOpen);
        assert!(elapsed < Duration::from_millis(50), "{elapsed:?}");
        fastest = fastest.min(elapsed);
    }
    assert!(fastest < Duration::from_millis(1), "{fastest:?}");
    assert_eq!(count(&server).await, 3, "no request while open");

    // Open for the whole cooldown, then half-open.
    assert_eq!(provider.breaker_state(), BreakerState::Open);
    wait_half_open(&provider).await;
    let response = provider.chat(&request()).await.unwrap();
    assert_eq!(response.value, answer());
    assert_eq!(provider.breaker_state(), BreakerState::Closed);
    assert_eq!(count(&server).await, 4);
}

#[tokio::test]
async fn failed_probe_reopens() {
    let server = MockServer::start().await;
    mount_failures(&server, 502, 100).await;
    let provider = provider(&server, 1, Duration::from_millis(50));

    assert_eq!(
        provider.chat(&request()).await.unwrap_err().kind,
        ErrorKind::Server
    );
    assert_eq!(provider.breaker_state(), BreakerState::Open);
    wait_half_open(&provider).await;
    // The probe goes through and fails: open again for another cooldown.
    assert_eq!(
        provider.chat(&request()).await.unwrap_err().kind,
        ErrorKind::Server
    );
    assert_eq!(provider.breaker_state(), BreakerState::Open);
    assert_eq!(
        provider.chat(&request()).await.unwrap_err().kind,
        ErrorKind::CircuitOpen
    );
    assert_eq!(count(&server).await, 2);
}

#[tokio::test]
async fn only_one_half_open_probe_at_a_time() {
    let server = MockServer::start().await;
    mount_failures(&server, 500, 1).await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion(&answer().to_string()))
                .set_delay(Duration::from_millis(200)),
        )
        .mount(&server)
        .await;
    let provider = provider(&server, 1, Duration::from_millis(50));

    assert!(provider.chat(&request()).await.is_err());
    wait_half_open(&provider).await;
    // The second call starts once the slow probe has reached the server.
    let req = request();
    let (probe, other) = tokio::join!(provider.chat(&req), async {
        while count(&server).await < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        provider.chat(&req).await
    });
    assert!(probe.is_ok());
    assert_eq!(other.unwrap_err().kind, ErrorKind::CircuitOpen);
    assert_eq!(provider.breaker_state(), BreakerState::Closed);
    assert_eq!(count(&server).await, 2);
}

#[tokio::test]
async fn auth_and_invalid_output_do_not_open_it() {
    let server = MockServer::start().await;
    mount_failures(&server, 401, 4).await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("no json here")))
        .mount(&server)
        .await;
    let provider = provider(&server, 2, Duration::from_secs(60));

    for _ in 0..4 {
        assert_eq!(
            provider.chat(&request()).await.unwrap_err().kind,
            ErrorKind::Auth
        );
    }
    for _ in 0..4 {
        assert_eq!(
            provider.chat(&request()).await.unwrap_err().kind,
            ErrorKind::InvalidOutput
        );
    }
    assert_eq!(provider.breaker_state(), BreakerState::Closed);
    assert_eq!(count(&server).await, 8);
}

#[tokio::test]
async fn opens_on_failure_rate() {
    let server = MockServer::start().await;
    mount_ok(&server).await;
    let mut config = openai(&server);
    config.modes = vec![StructuredMode::JsonObject];
    config.retry.max_retries = 0;
    config.breaker = BreakerConfig {
        consecutive_failures: 0,
        failure_rate: 0.5,
        window: 6,
        min_calls: 4,
        cooldown: Duration::from_secs(60),
    };
    let provider = Provider::new(config).unwrap();

    // S F S F F: the rate is 3/5 = 60% > 50%.
    provider.chat(&request()).await.unwrap();
    mount_failures(&server, 503, 1).await;
    provider.chat(&request()).await.unwrap_err();
    provider.chat(&request()).await.unwrap();
    mount_failures(&server, 503, 1).await;
    provider.chat(&request()).await.unwrap_err();
    assert_eq!(provider.breaker_state(), BreakerState::Closed);
    mount_failures(&server, 503, 1).await;
    provider.chat(&request()).await.unwrap_err();
    assert_eq!(provider.breaker_state(), BreakerState::Open);
}

#[tokio::test]
async fn handles_for_other_models_share_the_breaker() {
    let server = MockServer::start().await;
    mount_failures(&server, 503, 2).await;
    mount_ok(&server).await;
    let provider = provider(&server, 2, Duration::from_secs(60));
    let other = provider.with_model("other-model").unwrap();
    assert_eq!(other.model(), "other-model");
    assert_eq!(other.name(), provider.name());

    // One failure through each handle: two consecutive failures of the server open it.
    for p in [&provider, &other] {
        assert_eq!(
            p.chat(&request()).await.unwrap_err().kind,
            ErrorKind::Server
        );
    }
    let models: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            body["model"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(models, [provider.model(), "other-model"]);
    assert_eq!(provider.breaker_state(), BreakerState::Open);
    assert_eq!(other.breaker_state(), BreakerState::Open);
    for p in [&provider, &other] {
        assert_eq!(
            p.chat(&request()).await.unwrap_err().kind,
            ErrorKind::CircuitOpen
        );
    }
    assert_eq!(count(&server).await, 2, "no request while open");

    // An empty model is a configuration error, not a handle.
    assert_eq!(
        provider.with_model(" ").unwrap_err().kind,
        ErrorKind::Config
    );
}
