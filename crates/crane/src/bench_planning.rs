//! `crane bench-planning`: the LLM planning path's own overhead. An in-process mock
//! OpenAI-compatible upstream answers at once; at each target rate (open loop: requests start on
//! schedule whether or not earlier ones finished) the benchmark measures (a) calling the
//! upstream directly with a request of the same size (rendered system prompt + plan schema,
//! serialised once) and (b) planning through crane (prompt
//! rendering, provider client, structured-output parsing, plan validation), and prints the
//! p50/p99 of each and the difference. It also measures a call against an open circuit breaker.
//! Figures, not assertions: see docs/benchmarks.md.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use crane_core::planning::{LlmLayerConfig, Planning, PlanningConfig, Strategy};
use crane_llm::{
    BreakerConfig, ChatRequest, Message, Provider, ProviderConfig, ProviderKind, Role,
    StructuredMode,
};
use serde_json::json;

/// Options of `crane bench-planning`.
#[derive(Debug, Clone, Args)]
pub struct BenchPlanningArgs {
    /// Target request rates per second.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1000u64, 5000])]
    pub rates: Vec<u64>,
    /// Seconds per rate and path.
    #[arg(long, default_value_t = 5)]
    pub duration: u64,
}

const PROMPT: &str = "what is 7 times 6";

async fn start_mock() -> anyhow::Result<String> {
    let plan = json!({"steps": [{"tool": "calculator", "input": {"expression": "7 * 6"}, "reasoning": "multiply"}]});
    let body = json!({
        "id": "bench", "object": "chat.completion", "model": "bench-model",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": plan.to_string()}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20}
    })
    .to_string();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |_b: bytes::Bytes| {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/v1"))
}

fn provider(base_url: &str, breaker: BreakerConfig) -> anyhow::Result<Provider> {
    let mut config = ProviderConfig::new("bench", ProviderKind::OpenAi, base_url, "bench-model");
    config.modes = vec![StructuredMode::JsonObject];
    config.breaker = breaker;
    config.retry.max_retries = 0;
    Provider::new(config).map_err(|e| anyhow::anyhow!("{e}"))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

/// Starts `make()` on an open-loop schedule of `rate` per second for `duration`; returns
/// sorted latencies in microseconds and how many failed.
async fn paced<F, Fut>(rate: u64, duration: Duration, make: F) -> (Vec<u64>, u64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    // Results stream back over a channel: keeping a JoinHandle per request would make the
    // harness itself allocate (and page-fault) in proportion to the request count.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, bool)>();
    let mut next = tokio::time::Instant::now();
    while started.elapsed() < duration {
        tokio::time::sleep_until(next).await;
        next += interval;
        let fut = make();
        let tx = tx.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let ok = fut.await;
            let _ = tx.send((t.elapsed().as_micros() as u64, ok));
        });
    }
    drop(tx);
    let mut latencies = Vec::new();
    let mut failed = 0;
    while let Some((us, ok)) = rx.recv().await {
        if ok {
            latencies.push(us);
        } else {
            failed += 1;
        }
    }
    latencies.sort_unstable();
    (latencies, failed)
}

/// Runs the benchmark.
pub async fn run(args: BenchPlanningArgs) -> anyhow::Result<ExitCode> {
    let base = start_mock().await?;
    let registry = Arc::new(crane_core::tools::builtin_registry());
    let layer = LlmLayerConfig {
        provider: provider(&base, BreakerConfig::default())?,
        template: crane_core::planning::prompt::PromptTemplate::builtin(),
        few_shot: true,
        temperature: Some(0.0),
        max_tokens: Some(512),
        tiers: Vec::new(),
    };
    let planning = Arc::new(Planning::with_config(
        registry.clone(),
        PlanningConfig {
            strategy: Strategy::LlmFirst,
            layers: vec![layer],
            cache_capacity: 0,
            ..PlanningConfig::default()
        },
    )?);
    // The direct path sends the same request through a plain client.
    let direct_client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    // Same wire size as crane's request: the rendered system prompt, the user prompt and the
    // plan schema, serialised once up front.
    let system = crane_core::planning::prompt::PromptTemplate::builtin()
        .render(&registry, &crane_core::planning::prompt::default_examples())?;
    let schema = crane_core::planning::schema::plan_schema(&registry, 50);
    let direct_body = Arc::new(
        json!({"model": "bench-model", "temperature": 0.0, "max_tokens": 512,
               "messages": [{"role": "system", "content": system}, {"role": "user", "content": PROMPT}],
               "response_format": {"type": "json_object", "schema": schema}})
        .to_string(),
    );
    let url = Arc::new(format!("{base}/chat/completions"));
    // Warm up connections and caches.
    for _ in 0..200 {
        let _ = planning.plan(PROMPT).await;
        let _ = direct_client
            .post(url.as_str())
            .body(direct_body.to_string())
            .send()
            .await;
    }
    println!(
        "crane bench-planning: mock upstream answering at once; open-loop rates {:?}/s, {} s each",
        args.rates, args.duration
    );
    for &rate in &args.rates {
        let duration = Duration::from_secs(args.duration);
        let (direct, direct_failed) = paced(rate, duration, || {
            let client = direct_client.clone();
            let url = url.clone();
            let body = direct_body.clone();
            async move {
                match client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                {
                    Ok(r) => r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        let (crane, crane_failed) = paced(rate, duration, || {
            let planning = planning.clone();
            async move {
                planning
                    .plan(PROMPT)
                    .await
                    .is_ok_and(|p| p.planner.source == crane_core::domain::PlanSource::Llm)
            }
        })
        .await;
        println!(
            "rate {rate}/s: direct p50 {:.3} ms p99 {:.3} ms ({} ok, {direct_failed} failed) | crane p50 {:.3} ms p99 {:.3} ms ({} ok, {crane_failed} failed) | overhead p50 {:+.3} ms p99 {:+.3} ms",
            percentile(&direct, 0.5),
            percentile(&direct, 0.99),
            direct.len(),
            percentile(&crane, 0.5),
            percentile(&crane, 0.99),
            crane.len(),
            percentile(&crane, 0.5) - percentile(&direct, 0.5),
            percentile(&crane, 0.99) - percentile(&direct, 0.99),
        );
    }

    // An open breaker: a provider at a closed port, opened by one failure.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let dead = provider(
        &format!("http://127.0.0.1:{closed}/v1"),
        BreakerConfig {
            consecutive_failures: 1,
            cooldown: Duration::from_secs(3600),
            ..BreakerConfig::default()
        },
    )?;
    let request = ChatRequest {
        system: "s".into(),
        messages: vec![Message {
            role: Role::User,
            content: PROMPT.into(),
        }],
        schema_name: "plan".into(),
        schema: json!({"type": "object"}),
        ..ChatRequest::default()
    };
    let _ = dead.chat(&request).await;
    let n = 100_000u32;
    let started = Instant::now();
    let mut open = 0;
    for _ in 0..n {
        if dead
            .chat(&request)
            .await
            .is_err_and(|e| e.kind == crane_llm::ErrorKind::CircuitOpen)
        {
            open += 1;
        }
    }
    let per_call = started.elapsed().as_secs_f64() / f64::from(n) * 1e6;
    println!(
        "open circuit breaker: {per_call:.2} us per rejected call ({open} of {n} rejected as circuit_open, breaker {})",
        dead.breaker_state().as_str()
    );
    Ok(ExitCode::SUCCESS)
}
