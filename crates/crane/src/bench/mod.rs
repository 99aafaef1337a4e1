//! `crane bench`: the core benchmark. Starts `crane serve` (this same binary) on a free port
//! with a fresh data dir, drives `POST /runs?wait=true` at a fixed concurrency for a fixed
//! time with calculator and todo prompts, and prints completed runs/s, POST→completed latency
//! percentiles and the server's RSS at start and end. Figures, not assertions: see
//! docs/benchmarks.md. `planning` is `crane bench-planning`.

pub mod cache;
pub mod planning;

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

/// Options of `crane bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Prompt mix: calc, todo or mixed.
    #[arg(long, default_value = "mixed")]
    pub mix: String,
    /// Benchmark an already running server instead of starting one (RSS is then not reported).
    #[arg(long)]
    pub url: Option<String>,
    /// Run the benchmark with trace export off and on (OTLP/HTTP to a local sink that accepts
    /// and discards spans), `--rounds` pairs in alternating order, and print each run and the
    /// medians.
    #[arg(long)]
    pub otel_compare: bool,
    /// With `--otel-compare`: how many off/on pairs to run (the machine's noise drifts; the
    /// median of alternating pairs is steadier than one pair).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// With `--otel-compare`: run the export-off and export-on servers at the same time (each
    /// with `--concurrency` requests in flight), so both see the same machine noise.
    #[arg(long)]
    pub together: bool,
    /// Run the benchmark with authentication off and on (`CRANE_AUTH=keys`, every request
    /// with an operator key, a rate limit per key high enough never to refuse), `--rounds`
    /// times, both servers at once (like `--otel-compare --together`), and print the server
    /// CPU per run of each.
    #[arg(long)]
    pub auth_compare: bool,
    /// Extra arguments passed to the spawned `crane serve`.
    #[arg(long, allow_hyphen_values = true, num_args = 0..)]
    pub serve_args: Vec<String>,
}

const CALC: &[&str] = &[
    "what is (41*7)+13",
    "calculate 123456789 * 987654321",
    "what is 7 times 6",
    "0.1 + 0.2",
];
const TODO: &[&str] = &[
    "add a todo to buy milk",
    "add a todo to water the plants and then mark it done",
    "remind me to call mom",
    // The assignment's own example: every run adds a todo and lists them, so the list grows
    // through the benchmark (todo_list pages at 100 by default).
    "add a todo to buy milk, then show me all my tasks",
];

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU time (user + system) a process has used, in seconds (Linux /proc).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Server {
    child: tokio::process::Child,
    _dir: tempfile_dir::Dir,
    /// `Authorization` header value when the server requires keys.
    authorization: Option<String>,
}

mod tempfile_dir {
    //! A temporary directory removed on drop (std only).
    use std::path::PathBuf;
    pub struct Dir(pub PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A local OTLP/HTTP sink: answers 200 to every POST /v1/traces and counts requests.
async fn start_otlp_sink() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |_body: bytes::Bytes| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                (
                    [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), count))
}

async fn start_server(
    args: &BenchArgs,
    env: &[(String, String)],
) -> anyhow::Result<(Server, String)> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("crane-bench-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let exe: PathBuf = std::env::current_exe()?;
    // With keys required, an operator key made on the data dir before the server starts.
    let authorization = if env.iter().any(|(k, v)| k == "CRANE_AUTH" && v == "keys") {
        let out = tokio::process::Command::new(&exe)
            .args([
                "keys", "create", "--tenant", "bench", "--role", "operator", "--json",
            ])
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .await
            .context("could not run crane keys create")?;
        if !out.status.success() {
            bail!(
                "crane keys create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let created: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let key = created["key"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("crane keys create printed no key"))?;
        Some(format!("Bearer {key}"))
    } else {
        None
    };
    let child = tokio::process::Command::new(exe)
        .arg("serve")
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&dir)
        .args(&args.serve_args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("could not start crane serve")?;
    Ok((
        Server {
            child,
            _dir: tempfile_dir::Dir(dir),
            authorization,
        },
        format!("http://127.0.0.1:{port}"),
    ))
}

async fn wait_healthy(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the server did not become healthy within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.auth_compare {
        return auth_compare(&args).await;
    }
    if !args.otel_compare {
        run_once(&args, &[]).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.url.is_some() {
        bail!("--otel-compare starts its own servers; do not combine it with --url");
    }
    let (sink, received) = start_otlp_sink().await?;
    let export = [("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), sink.clone())];
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds.max(1) {
        if args.together {
            println!(
                "== round {round}: trace export OFF and ON at the same time (ON: OTLP/HTTP to a local sink at {sink}, default sampler)"
            );
            let mut both = run_together(
                &args,
                &[("trace export OFF", &[]), ("trace export ON", &export)],
            )
            .await?
            .into_iter();
            off.extend(both.next());
            on.extend(both.next());
            continue;
        }
        // Alternate which goes first, so a drift in the machine's load favours neither.
        for export_on in [round % 2 == 0, round % 2 == 1] {
            if export_on {
                println!(
                    "== round {round}: trace export ON (OTLP/HTTP to a local sink at {sink}, default sampler)"
                );
                on.push(run_once(&args, &export).await?);
            } else {
                println!("== round {round}: trace export OFF");
                off.push(run_once(&args, &[]).await?);
            }
        }
    }
    println!(
        "OTLP export requests received by the sink: {}",
        received.load(Ordering::Relaxed)
    );
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let show = |x: Option<f64>, unit: &str| x.map_or("n/a".to_owned(), |x| format!("{x:.0}{unit}"));
    let pct = |x: Option<f64>| x.map_or("n/a".to_owned(), |x| format!("{x:+.1}%"));
    // Each round's ON against the same round's OFF, then the median of those changes.
    let paired = |f: fn(&Figures) -> Option<f64>| {
        median(
            off.iter()
                .zip(&on)
                .filter_map(|(a, b)| Some((f(b)? / f(a)? - 1.0) * 100.0))
                .collect(),
        )
    };
    println!(
        "median of {} rounds: throughput off {} on {} | server CPU per run off {} on {} | per-round change, median: throughput {}, server CPU per run {}",
        off.len(),
        show(
            median(off.iter().map(|f| f.throughput).collect()),
            " runs/s"
        ),
        show(median(on.iter().map(|f| f.throughput).collect()), " runs/s"),
        show(
            median(off.iter().filter_map(|f| f.cpu_us_per_run).collect()),
            " us"
        ),
        show(
            median(on.iter().filter_map(|f| f.cpu_us_per_run).collect()),
            " us"
        ),
        pct(paired(|f| Some(f.throughput))),
        pct(paired(|f| f.cpu_us_per_run)),
    );
    Ok(ExitCode::SUCCESS)
}

/// `--auth-compare`: auth off and on, side by side, `--rounds` times.
async fn auth_compare(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if args.url.is_some() {
        bail!("--auth-compare starts its own servers; do not combine it with --url");
    }
    // A rate limit far above what one core serves, so the limiter runs on every request but
    // never refuses one.
    let config = std::env::temp_dir().join(format!("crane-bench-auth-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "[limits]\nrequests_per_second = 1000000\nruns_per_minute = 100000000\n",
    )?;
    let keys = [
        ("CRANE_AUTH".to_owned(), "keys".to_owned()),
        ("CRANE_CONFIG".to_owned(), config.display().to_string()),
    ];
    let off_env = [("CRANE_CONFIG".to_owned(), config.display().to_string())];
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds.max(1) {
        println!("== round {round}: auth OFF and auth ON (keys, rate limits) at the same time");
        let mut both = run_together(args, &[("auth OFF", &off_env), ("auth ON (keys)", &keys)])
            .await?
            .into_iter();
        off.extend(both.next());
        on.extend(both.next());
    }
    let _ = std::fs::remove_file(&config);
    let mut deltas: Vec<f64> = off
        .iter()
        .zip(&on)
        .filter_map(|(a, b)| Some(b.cpu_us_per_run? - a.cpu_us_per_run?))
        .collect();
    deltas.sort_by(f64::total_cmp);
    let list: Vec<String> = deltas.iter().map(|d| format!("{d:+.1}")).collect();
    println!(
        "auth ON - OFF, server CPU per run (us), per round: {} | median {}",
        list.join(", "),
        deltas
            .get(deltas.len() / 2)
            .map_or("n/a".to_owned(), |d| format!("{d:+.1} us"))
    );
    Ok(ExitCode::SUCCESS)
}

/// The headline figures of one benchmark run.
struct Figures {
    throughput: f64,
    cpu_us_per_run: Option<f64>,
}

async fn run_once(args: &BenchArgs, env: &[(String, String)]) -> anyhow::Result<Figures> {
    let mut figures = run_together(args, &[("", env)]).await?;
    figures
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no figures measured"))
}

/// One server under load: its URL, and the child process when this benchmark started it.
struct Target {
    label: &'static str,
    base: String,
    server: Option<Server>,
}

/// Starts one server per `(label, env)` (or uses `--url`), drives all of them at the same time
/// — each with `--concurrency` requests in flight — and prints and returns each one's figures.
/// Servers measured together share the machine's noise, so their figures compare directly.
async fn run_together(
    args: &BenchArgs,
    servers: &[(&'static str, &[(String, String)])],
) -> anyhow::Result<Vec<Figures>> {
    let prompts: Vec<&'static str> = match args.mix.as_str() {
        "calc" => CALC.to_vec(),
        "todo" => TODO.to_vec(),
        "mixed" => CALC.iter().chain(TODO).copied().collect(),
        other => bail!("unknown mix '{other}' (use calc, todo or mixed)"),
    };
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut targets = Vec::new();
    for (label, env) in servers {
        let (server, base) = match &args.url {
            Some(url) => (None, url.trim_end_matches('/').to_owned()),
            None => {
                let (s, b) = start_server(args, env).await?;
                (Some(s), b)
            }
        };
        wait_healthy(&client, &base).await?;
        targets.push(Target {
            label,
            base,
            server,
        });
    }
    let pids: Vec<Option<u32>> = targets
        .iter()
        .map(|t| t.server.as_ref().and_then(|s| s.child.id()))
        .collect();
    let rss_start: Vec<Option<u64>> = pids.iter().map(|p| p.and_then(rss_kib)).collect();

    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let completed: Vec<Arc<AtomicU64>> = targets.iter().map(|_| Arc::default()).collect();
    let failed: Vec<Arc<AtomicU64>> = targets.iter().map(|_| Arc::default()).collect();
    let mut tasks: Vec<Vec<tokio::task::JoinHandle<Vec<u64>>>> = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        let url = format!("{}/runs?wait=true", target.base);
        let authorization = target.server.as_ref().and_then(|s| s.authorization.clone());
        let mut per_target = Vec::new();
        for worker in 0..args.concurrency {
            let client = client.clone();
            let url = url.clone();
            let authorization = authorization.clone();
            let prompts = prompts.clone();
            let (measuring, stop, completed, failed) = (
                measuring.clone(),
                stop.clone(),
                completed[t].clone(),
                failed[t].clone(),
            );
            per_target.push(tokio::spawn(async move {
                let mut latencies_us: Vec<u64> = Vec::with_capacity(1 << 16);
                let mut i = worker;
                while !stop.load(Ordering::Relaxed) {
                    let prompt = prompts[i % prompts.len()];
                    i += 1;
                    let body = format!("{{\"prompt\":{}}}", serde_json::Value::from(prompt));
                    let started = Instant::now();
                    let mut req = client.post(&url).header("content-type", "application/json");
                    if let Some(auth) = &authorization {
                        req = req.header("authorization", auth);
                    }
                    let res = req.body(body).send().await;
                    let ok = match res {
                        Ok(r) => match r.bytes().await {
                            Ok(b) => memchr_completed(&b),
                            Err(_) => false,
                        },
                        Err(_) => false,
                    };
                    if measuring.load(Ordering::Relaxed) {
                        if ok {
                            completed.fetch_add(1, Ordering::Relaxed);
                            latencies_us.push(started.elapsed().as_micros() as u64);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies_us
            }));
        }
        tasks.push(per_target);
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let rss_warm: Vec<Option<u64>> = pids.iter().map(|p| p.and_then(rss_kib)).collect();
    let cpu_start: Vec<Option<f64>> = pids.iter().map(|p| p.and_then(cpu_seconds)).collect();
    let own_cpu_start = cpu_seconds(std::process::id());
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_end: Vec<Option<f64>> = pids.iter().map(|p| p.and_then(cpu_seconds)).collect();
    let own_cpu_end = cpu_seconds(std::process::id());
    stop.store(true, Ordering::Relaxed);
    let mut all_latencies = Vec::new();
    for per_target in tasks {
        let mut latencies = Vec::new();
        for t in per_target {
            latencies.extend(t.await.unwrap_or_default());
        }
        latencies.sort_unstable();
        all_latencies.push(latencies);
    }
    let mb =
        |k: Option<u64>| k.map_or("n/a".to_owned(), |k| format!("{:.1} MB", k as f64 / 1024.0));
    let mut figures = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        let latencies = &all_latencies[t];
        let rss_end = pids[t].and_then(rss_kib);
        let n = completed[t].load(Ordering::Relaxed);
        if !target.label.is_empty() {
            println!("-- {}", target.label);
        }
        println!(
            "crane bench: mix={} concurrency={} duration={}s (after {}s warm-up)",
            args.mix, args.concurrency, args.duration, args.warmup
        );
        println!(
            "completed runs:   {n} ({} failed or not completed)",
            failed[t].load(Ordering::Relaxed)
        );
        println!(
            "throughput:       {:.0} completed runs/s",
            n as f64 / elapsed
        );
        println!(
            "POST->completed:  p50 {:.3} ms  p95 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            percentile(latencies, 0.50),
            percentile(latencies, 0.95),
            percentile(latencies, 0.99),
            percentile(latencies, 1.0)
        );
        println!(
            "server RSS:       start {}  after warm-up {}  end {}",
            mb(rss_start[t]),
            mb(rss_warm[t]),
            mb(rss_end)
        );
        let cpu_us_per_run = cpu_start[t]
            .zip(cpu_end[t])
            .filter(|_| n > 0)
            .map(|(a, b)| (b - a) / n as f64 * 1e6);
        if let (Some(a), Some(b)) = (cpu_start[t], cpu_end[t]) {
            let per_run = cpu_us_per_run.unwrap_or(0.0);
            println!(
                "server CPU:       {:.2} cores, {per_run:.1} us per completed run",
                (b - a) / elapsed
            );
        }
        figures.push(Figures {
            throughput: n as f64 / elapsed,
            cpu_us_per_run,
        });
    }
    if let (Some(a), Some(b)) = (own_cpu_start, own_cpu_end) {
        println!("load generator:   {:.2} cores", (b - a) / elapsed);
    }
    for target in targets {
        if let Some(mut s) = target.server {
            if let Some(pid) = s.child.id() {
                // Ask for a graceful stop so the drain path is exercised too.
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(30), s.child.wait()).await;
        }
    }
    Ok(figures)
}

/// True when a run JSON body reports `"status":"completed"` (cheap check, no full parse).
fn memchr_completed(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"status\":\"completed\"";
    body.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}
