//! `crane bench-planning`: the LLM planning path's own overhead. An in-process mock
//! OpenAI-compatible upstream answers at once; at each target rate (open loop: a pacer thread
//! starts requests on schedule whether or not earlier ones finished) the benchmark measures (a)
//! calling the upstream directly with the same request bytes crane sends (rendered system
//! prompt with the schema instruction + plan schema, serialised once) and (b) planning through
//! crane (request building, provider client, structured-output parsing, plan validation), and
//! prints the p50/p99 of each, the difference, and the process CPU time per request of each
//! path. `--together` runs both paths at once instead of one after the other, so a stall of the
//! shared machine hits both. It also measures a call against an open circuit breaker. Figures, not assertions: see
//! docs/benchmarks.md.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Run the direct and the crane path at the same time (each at the full rate) instead of
    /// one after the other, so a stall of the machine hits both and cancels out of the
    /// overhead. CPU per path is then not separable; run without it for that.
    #[arg(long)]
    pub together: bool,
    /// Measure each rate this many times and print the median and worst overhead.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
}

fn cpu_text(us: Option<f64>) -> String {
    us.map_or("n/a".to_owned(), |us| format!("{us:.0} us"))
}

const PROMPT: &str = "what is 7 times 6";

/// Starts the mock upstream; returns its base URL and the size of the last request body it got.
async fn start_mock() -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let last_body = Arc::new(AtomicUsize::new(0));
    let last = last_body.clone();
    let plan = json!({"steps": [{"tool": "calculator", "input": {"expression": "7 * 6"}, "reasoning": "multiply"}]});
    let body = json!({
        "id": "bench", "object": "chat.completion", "model": "bench-model",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": plan.to_string()}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20}
    })
    .to_string();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |request: bytes::Bytes| {
            last.store(request.len(), Ordering::Relaxed);
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
    Ok((format!("http://{addr}/v1"), last_body))
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

/// What one path measured in a paced phase.
struct Phase {
    /// Latencies of the successful requests, sorted, in microseconds.
    latencies: Vec<u64>,
    failed: u64,
}

/// What one paced phase measured: each path's results, plus what the phase shares.
struct Paced {
    /// One per path, in the order the paths were given.
    paths: Vec<Phase>,
    /// How late the pacer handed requests over (its own sleep inaccuracy), sorted, in
    /// microseconds.
    late: Vec<u64>,
    /// Process CPU time (all threads: mock upstream, client, planner, harness) per tick (one
    /// request of every path).
    cpu_us_per_tick: Option<f64>,
}

/// CPU time (user + system) this process has used, in seconds (Linux /proc, 10 ms ticks).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Starts one request of a path; resolves to whether it succeeded.
type Start =
    Box<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send>;

/// Starts requests on an open-loop schedule of `rate` ticks per second for `duration`: at each
/// tick a dedicated OS thread spawns one request of every path in `paths` onto the runtime
/// (alternating which goes first), whether or not earlier requests finished. (Pacing from a
/// tokio task would send bursts: tokio's timer has millisecond resolution, so at 5 000/s it
/// would start five requests at once every millisecond.) A request's latency runs from the
/// moment it is handed to the runtime, so time spent waiting for a worker thread counts.
///
/// With two paths, both run at `rate` at the same time and see the same machine: a stall of
/// the process or the VM delays the requests of both, so it cancels out of their difference.
async fn paced(rate: u64, duration: Duration, paths: Vec<Start>) -> Paced {
    let total = rate.saturating_mul(duration.as_secs()).max(1);
    let count = paths.len();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let runtime = tokio::runtime::Handle::current();
    // Results stream back over a channel: keeping a JoinHandle per request would make the
    // harness itself allocate (and page-fault) in proportion to the request count.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u64, bool)>();
    let cpu_start = own_cpu_seconds();
    let pacer = std::thread::spawn(move || {
        let mut late = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        let start = Instant::now();
        for i in 0..total {
            let due = start + interval.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let sent = Instant::now();
            late.push(sent.saturating_duration_since(due).as_micros() as u64);
            for k in 0..count {
                // Alternate the order so neither path is always handed over first.
                let path = if i % 2 == 0 { k } else { count - 1 - k };
                let fut = paths[path]();
                let tx = tx.clone();
                runtime.spawn(async move {
                    let ok = fut.await;
                    let _ = tx.send((path, sent.elapsed().as_micros() as u64, ok));
                });
            }
        }
        late
    });
    let mut results: Vec<Phase> = (0..count)
        .map(|_| Phase {
            latencies: Vec::with_capacity(usize::try_from(total).unwrap_or(0)),
            failed: 0,
        })
        .collect();
    while let Some((path, us, ok)) = rx.recv().await {
        if ok {
            results[path].latencies.push(us);
        } else {
            results[path].failed += 1;
        }
    }
    let cpu_end = own_cpu_seconds();
    // The channel closed: the pacer dropped its sender, so it has returned.
    let mut late = pacer.join().unwrap_or_default();
    for phase in &mut results {
        phase.latencies.sort_unstable();
    }
    late.sort_unstable();
    let cpu_us_per_tick = cpu_start
        .zip(cpu_end)
        .map(|(a, b)| (b - a) / total as f64 * 1e6);
    Paced {
        paths: results,
        late,
        cpu_us_per_tick,
    }
}

/// Runs the benchmark.
pub async fn run(args: BenchPlanningArgs) -> anyhow::Result<ExitCode> {
    let (base, last_body) = start_mock().await?;
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
    // The same bytes crane sends in json_object mode: the rendered system prompt with the schema
    // instruction appended, the user prompt and the plan schema, serialised once up front.
    let system = crane_core::planning::prompt::PromptTemplate::builtin()
        .render(&registry, &crane_core::planning::prompt::default_examples())?;
    let schema = crane_core::planning::schema::plan_schema(&registry, 50);
    let system = format!(
        "{}\n\nAnswer with only a JSON object matching this schema:\n{schema}",
        system.trim_end()
    );
    let direct_body = Arc::new(
        json!({"model": "bench-model", "temperature": 0.0, "max_tokens": 512, "stream": false,
               "messages": [{"role": "system", "content": system}, {"role": "user", "content": PROMPT}],
               "response_format": {"type": "json_object", "schema": schema}})
        .to_string(),
    );
    let url = Arc::new(format!("{base}/chat/completions"));
    // Warm up connections and caches; note the request sizes the mock received.
    for _ in 0..200 {
        let _ = planning.plan(PROMPT).await;
    }
    let crane_bytes = last_body.load(Ordering::Relaxed);
    for _ in 0..200 {
        let _ = direct_client
            .post(url.as_str())
            .body(direct_body.to_string())
            .send()
            .await;
    }
    let direct_bytes = last_body.load(Ordering::Relaxed);
    println!(
        "crane bench-planning: mock upstream answering at once; open-loop rates {:?}/s, {} s each; request bytes: direct {direct_bytes}, crane {crane_bytes}",
        args.rates, args.duration
    );
    let direct_path = || -> Start {
        let client = direct_client.clone();
        let url = url.clone();
        let body = direct_body.clone();
        Box::new(move || {
            let client = client.clone();
            let url = url.clone();
            let body = body.clone();
            Box::pin(async move {
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
            })
        })
    };
    let crane_path = || -> Start {
        let planning = planning.clone();
        Box::new(move || {
            let planning = planning.clone();
            Box::pin(async move {
                planning
                    .plan(PROMPT)
                    .await
                    .is_ok_and(|p| p.planner.source == crane_core::domain::PlanSource::Llm)
            })
        })
    };
    if args.together {
        println!(
            "together: at each tick one direct request and one planned through crane, so both paths run at the full rate at once and share the machine's stalls"
        );
    }
    for &rate in &args.rates {
        let duration = Duration::from_secs(args.duration);
        let mut overheads = Vec::new();
        for round in 1..=args.rounds.max(1) {
            let (direct, crane, cpu) = if args.together {
                let both = paced(rate, duration, vec![direct_path(), crane_path()]).await;
                let [direct, crane] = <[Phase; 2]>::try_from(both.paths)
                    .map_err(|_| anyhow::anyhow!("expected the results of two paths"))?;
                let cpu = format!(
                    "process CPU per tick (one request of each path) {} | pacer late p99 {:.3} ms",
                    cpu_text(both.cpu_us_per_tick),
                    percentile(&both.late, 0.99)
                );
                (direct, crane, cpu)
            } else {
                let mut direct = paced(rate, duration, vec![direct_path()]).await;
                let mut crane = paced(rate, duration, vec![crane_path()]).await;
                let cpu = format!(
                    "process CPU per request: direct {}, crane {} | pacer late p99: direct {:.3} ms, crane {:.3} ms",
                    cpu_text(direct.cpu_us_per_tick),
                    cpu_text(crane.cpu_us_per_tick),
                    percentile(&direct.late, 0.99),
                    percentile(&crane.late, 0.99),
                );
                let (Some(direct), Some(crane)) = (direct.paths.pop(), crane.paths.pop()) else {
                    anyhow::bail!("expected the results of one path per phase");
                };
                (direct, crane, cpu)
            };
            let p = |phase: &Phase, q: f64| percentile(&phase.latencies, q);
            let overhead = p(&crane, 0.99) - p(&direct, 0.99);
            overheads.push(overhead);
            println!(
                "rate {rate}/s{}: direct p50 {:.3} ms p99 {:.3} ms ({} ok, {} failed) | crane p50 {:.3} ms p99 {:.3} ms ({} ok, {} failed) | overhead p50 {:+.3} ms p99 {overhead:+.3} ms",
                if args.rounds > 1 {
                    format!(" round {round}")
                } else {
                    String::new()
                },
                p(&direct, 0.5),
                p(&direct, 0.99),
                direct.latencies.len(),
                direct.failed,
                p(&crane, 0.5),
                p(&crane, 0.99),
                crane.latencies.len(),
                crane.failed,
                p(&crane, 0.5) - p(&direct, 0.5),
            );
            println!("  {cpu}");
        }
        if overheads.len() > 1 {
            overheads.sort_by(f64::total_cmp);
            let under = overheads.iter().filter(|&&o| o < 0.5).count();
            println!(
                "rate {rate}/s summary: overhead p99 median {:+.3} ms, worst {:+.3} ms; under 0.5 ms in {under} of {} rounds",
                overheads[overheads.len() / 2],
                overheads[overheads.len() - 1],
                overheads.len()
            );
        }
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
    let request = ChatRequest::new(
        "s",
        vec![Message {
            role: Role::User,
            content: PROMPT.into(),
        }],
        "plan",
        json!({"type": "object"}),
    );
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
