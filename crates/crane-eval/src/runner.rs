//! Runs a dataset's cases with one planner variant, in process or against a live server, at
//! a bounded concurrency, and scores every trial.
//!
//! In process, every case that may touch todos gets a fresh store in its own temporary data
//! dir (so its `setup_todos` are isolated) and a runtime built like `crane run` builds it, with
//! the variant's planner chain; calculator-only cases and rejections share one such runtime
//! per worker (see [`needs_own_store`] and [`PlannerSpec::share_stores`]).
//!
//! Against a server (`--url`), each trial is `POST /runs?wait=true` and `setup_todos` are
//! added by a client plan first; the server has one store, so todos from other cases are
//! visible there — only in-process results are isolated.
//!
//! Trials run repeat-major (every case once, then every case again, ...), so repeats of one
//! case do not run at the same time.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crane_core::planning::{Planners, VariantSpec};
use crane_core::runtime::{NewRun, Runtime, RuntimeError};
use crane_core::store::{Store, StoreConfig};
use serde_json::{Value, json};

use crate::dataset::Case;
use crate::report::{TrialReport, VariantSummary};
use crate::scorers::{Outcome, Scorers};
use crane_settings::Settings;

/// A planner variant `--planner NAME` selected: a registered variant, or an alias resolved
/// to one (see `planning::variants`).
pub struct PlannerSpec {
    /// The name as given (variant or alias).
    pub name: String,
    /// The resolved variant's identity, recorded on the report.
    pub variant: VariantSummary,
    /// Plans depend on the prompt alone (not on the store's run history), so cases that
    /// cannot touch todos may share a store. A planner that retrieves past runs (few-shot
    /// examples, a persistent cache) must set this to false: every case then gets a fresh store.
    pub share_stores: bool,
}

impl PlannerSpec {
    /// `name` resolved against `planners` (aliases included).
    pub fn resolve(planners: &Planners, name: &str) -> Result<Self, String> {
        let (variant, alias) = planners.resolve(Some(name)).map_err(|e| e.to_string())?;
        Ok(Self {
            name: name.to_owned(),
            variant: summary(&variant.spec, alias),
            share_stores: true,
        })
    }
}

/// The report's record of a variant.
pub fn summary(spec: &VariantSpec, alias: Option<String>) -> VariantSummary {
    VariantSummary {
        name: spec.name.clone(),
        alias,
        kind: spec.kind.as_str().to_owned(),
        version: spec.version.clone(),
        prompt: spec
            .prompt
            .as_ref()
            .map(|p| format!("{}@{}", p.name, p.version)),
        prompt_hash: spec.prompt.as_ref().map(|p| p.hash.clone()),
        model: spec.model.clone().or_else(|| spec.tier.clone()),
    }
}

/// Where trials run.
pub enum Target {
    /// In this process, on temporary stores (see [`needs_own_store`]).
    InProcess {
        settings: Box<Settings>,
        planners: Arc<Planners>,
    },
    /// Against a running `crane serve` at `base` (`http://host:port`).
    Url {
        base: String,
        client: reqwest::Client,
    },
}

impl Target {
    /// In-process target planning with `planners` (built like `crane run` builds them).
    pub fn in_process(settings: Settings, planners: Arc<Planners>) -> Self {
        Self::InProcess {
            settings: Box::new(settings),
            planners,
        }
    }

    /// Server target; `base` must be an http(s) URL.
    pub fn url(base: &str) -> Result<Self, String> {
        let base = base.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("invalid --url '{base}': expected http://host:port"));
        }
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| format!("could not build the HTTP client: {e}"))?;
        Ok(Self::Url {
            base: base.to_owned(),
            client,
        })
    }

    /// `in_process` or the server URL, for reports.
    pub fn label(&self) -> String {
        match self {
            Self::InProcess { .. } => "in_process".into(),
            Self::Url { base, .. } => base.clone(),
        }
    }
}

/// Where temporary stores go: `$TMPDIR` when set, else `/dev/shm` when it exists (a RAM disk:
/// a throwaway store needs no fsync, and creating and checkpointing one on a real disk costs
/// milliseconds of fsync per case), else the system temp dir.
fn temp_root() -> PathBuf {
    if std::env::var_os("TMPDIR").is_none() {
        let shm = std::path::Path::new("/dev/shm");
        if shm.is_dir() && std::fs::metadata(shm).is_ok_and(|m| !m.permissions().readonly()) {
            return shm.to_owned();
        }
    }
    std::env::temp_dir()
}

/// A temporary data dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let path = temp_root().join(format!("crane-eval-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A runtime over a store in its own temporary data dir.
struct Sandbox {
    runtime: Runtime,
    store: Arc<Store>,
    dir: TempDir,
    drain_timeout: Duration,
}

impl Sandbox {
    /// A fresh store holding `setup_todos`, and a runtime with the variants over it.
    async fn open(
        planners: &Arc<Planners>,
        settings: &Settings,
        setup_todos: &[String],
    ) -> Result<Self, String> {
        let config = StoreConfig {
            readers: 1,
            ..settings.store.clone()
        };
        // Creating the files and applying migrations blocks: keep it off the async workers so
        // it does not inflate the latency of trials running beside it.
        let (dir, store) = tokio::task::spawn_blocking(move || {
            let dir = TempDir::new()
                .map_err(|e| format!("could not create a temporary data dir: {e}"))?;
            let store = Store::open(&dir.0, &config)
                .map_err(|e| format!("could not open a store in {}: {e}", dir.0.display()))?;
            Ok::<_, String>((dir, store))
        })
        .await
        .map_err(|e| format!("could not open a store: {e}"))??;
        for title in setup_todos {
            if let Err(e) = store.todo_add(title.clone(), None).await {
                store.close().await;
                return Err(format!("setup_todos: could not add {title:?}: {e}"));
            }
        }
        Ok(Self {
            runtime: Runtime::with_planners(
                store.clone(),
                planners.clone(),
                settings.runtime.clone(),
            ),
            store,
            dir,
            drain_timeout: settings.drain_timeout,
        })
    }

    /// Runs `prompt` with `variant` to the end and times it.
    async fn run(&self, prompt: &str, variant: &str) -> Outcome {
        let started = Instant::now();
        let new = NewRun {
            prompt: prompt.to_owned(),
            planner: Some(variant.to_owned()),
            ..NewRun::default()
        };
        let mut outcome = match self.runtime.submit(new, true).await {
            Ok(submitted) => match submitted.finished {
                Some(rx) => match rx.await {
                    Ok(run) => Outcome {
                        run: Some(run),
                        ..Outcome::default()
                    },
                    Err(_) => harness("the run was dropped before it finished".into()),
                },
                None => harness("the runtime did not wait for the run".into()),
            },
            Err(
                e @ (RuntimeError::EmptyPrompt
                | RuntimeError::PromptTooLong { .. }
                | RuntimeError::InvalidRequest(_)),
            ) => Outcome {
                refused: Some(e.to_string()),
                ..Outcome::default()
            },
            Err(e) => harness(format!("submit failed: {e}")),
        };
        outcome.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        outcome
    }

    /// Drains the runtime, closes the store and removes the directory.
    async fn close(self) {
        let Self {
            runtime,
            store,
            dir,
            drain_timeout,
        } = self;
        runtime.drain(drain_timeout).await;
        drop(runtime);
        // A run's task lets go of the runtime (and its store) just after answering; the store
        // must be dropped (final checkpoint) before its directory is removed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&store) > 1 && Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        let _ = tokio::task::spawn_blocking(move || {
            drop(store);
            drop(dir);
        })
        .await;
    }
}

fn harness(e: String) -> Outcome {
    Outcome {
        harness_error: Some(e),
        ..Outcome::default()
    }
}

/// Whether a case needs a store of its own: it sets up todos, or may touch todos (its expected
/// plan uses a todo tool, or it has no expected plan and is not a rejection). Calculator-only
/// cases and rejections never read or write todos, so they share one store per worker: a
/// planner that wrongly touches todos there fails that case anyway, and the other cases on
/// that store cannot observe todos (they do not plan todo tools without failing too).
pub fn needs_own_store(case: &Case) -> bool {
    !case.setup_todos.is_empty()
        || match &case.expect.steps {
            Some(steps) => steps.iter().any(|s| s.tool != "calculator"),
            None => !case.expect.reject,
        }
}

/// Runs one trial of `case` in process, on a fresh store when it needs one, else on the
/// worker's shared store.
async fn in_process(
    case: &Case,
    planner: &PlannerSpec,
    settings: &Settings,
    planners: &Arc<Planners>,
    shared: &mut Option<Sandbox>,
) -> Outcome {
    let variant = planner.variant.name.as_str();
    if !planner.share_stores || needs_own_store(case) {
        return match Sandbox::open(planners, settings, &case.setup_todos).await {
            Ok(sandbox) => {
                let outcome = sandbox.run(&case.prompt, variant).await;
                sandbox.close().await;
                outcome
            }
            Err(e) => harness(e),
        };
    }
    if shared.is_none() {
        match Sandbox::open(planners, settings, &[]).await {
            Ok(sandbox) => *shared = Some(sandbox),
            Err(e) => return harness(e),
        }
    }
    match shared {
        Some(sandbox) => sandbox.run(&case.prompt, variant).await,
        None => harness("no shared store".into()),
    }
}

/// `POST path` with a JSON body; returns the status and the decoded body (Null if not JSON).
async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<(u16, Value), String> {
    let resp = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .text()
        .await
        .map_err(|e| format!("POST {url}: reading the answer: {e}"))?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Runs one trial of `case` against a server.
async fn over_http(case: &Case, planner: &str, base: &str, client: &reqwest::Client) -> Outcome {
    let url = format!("{base}/runs?wait=true");
    if !case.setup_todos.is_empty() {
        let steps: Vec<Value> = case
            .setup_todos
            .iter()
            .map(|t| json!({"tool": "todo_add", "input": {"title": t}}))
            .collect();
        match post(client, &url, &json!({"prompt": "setup", "steps": steps})).await {
            Ok((201, run)) if run["status"] == "completed" => {}
            Ok((status, body)) => {
                return harness(format!("setup_todos failed: HTTP {status}: {body}"));
            }
            Err(e) => return harness(format!("setup_todos failed: {e}")),
        }
    }
    let started = Instant::now();
    let answer = post(
        client,
        &url,
        &json!({"prompt": case.prompt, "planner": planner}),
    )
    .await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut outcome = match answer {
        Ok((201, body)) => match serde_json::from_value::<crane_core::domain::Run>(body) {
            Ok(run) if run.status.is_terminal() => Outcome {
                run: Some(run),
                ..Outcome::default()
            },
            Ok(run) => harness(format!(
                "run {} still {} after the server's wait bound",
                run.run_id,
                run.status.as_str()
            )),
            Err(e) => harness(format!("the server's run is not a run: {e}")),
        },
        Ok((400 | 413, body)) => Outcome {
            refused: Some(
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("refused")
                    .to_owned(),
            ),
            ..Outcome::default()
        },
        Ok((status, body)) => harness(format!("HTTP {status}: {body}")),
        Err(e) => harness(e),
    };
    outcome.latency_ms = latency_ms;
    outcome
}

/// Progress on stderr (only when it is a terminal): a bar, done/total, failures, elapsed.
pub struct Progress {
    total: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
    started: Instant,
    enabled: bool,
    stop: AtomicBool,
}

impl Progress {
    /// A progress display for `total` trials; silent unless stderr is a terminal.
    pub fn new(total: usize) -> Arc<Self> {
        let progress = Arc::new(Self {
            total,
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            started: Instant::now(),
            enabled: std::io::stderr().is_terminal(),
            stop: AtomicBool::new(false),
        });
        if progress.enabled {
            let p = progress.clone();
            tokio::spawn(async move {
                while !p.stop.load(Ordering::Relaxed) {
                    p.draw();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
        progress
    }

    fn tick(&self, pass: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if !pass {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn draw(&self) {
        let done = self.done.load(Ordering::Relaxed);
        let width = 30;
        let filled = (done * width).checked_div(self.total).unwrap_or(width);
        let bar: String = "#".repeat(filled) + &".".repeat(width - filled.min(width));
        let mut err = std::io::stderr().lock();
        // Checked under the lock `finish` takes, so no bar is drawn after the line is cleared.
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        let _ = write!(
            err,
            "\r[{bar}] {done}/{} trials, {} failed, {:.1}s ",
            self.total,
            self.failed.load(Ordering::Relaxed),
            self.started.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }

    /// Stops drawing and clears the line.
    pub fn finish(&self) {
        let mut err = std::io::stderr().lock();
        if !self.stop.swap(true, Ordering::Relaxed) && self.enabled {
            let _ = write!(err, "\r{:80}\r", "");
            let _ = err.flush();
        }
    }
}

/// Runs every case `repeat` times with `planner` on `target`, `concurrency` trials at once.
/// Returns the trials of each case, in dataset order.
pub async fn run_planner(
    cases: Arc<Vec<Case>>,
    planner: Arc<PlannerSpec>,
    target: Arc<Target>,
    scorers: Arc<Scorers>,
    repeat: usize,
    concurrency: usize,
    progress: Arc<Progress>,
) -> Vec<Vec<TrialReport>> {
    let n = cases.len();
    let total = n * repeat;
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, total.max(1)) {
        let (planner, cases, target, scorers, next, progress) = (
            planner.clone(),
            cases.clone(),
            target.clone(),
            scorers.clone(),
            next.clone(),
            progress.clone(),
        );
        workers.spawn(async move {
            let mut done = Vec::new();
            let mut shared = None;
            loop {
                let job = next.fetch_add(1, Ordering::Relaxed);
                if job >= total {
                    break;
                }
                let case = &cases[job % n];
                let outcome = match target.as_ref() {
                    Target::InProcess { settings, planners } => {
                        in_process(case, &planner, settings, planners, &mut shared).await
                    }
                    Target::Url { base, client } => {
                        over_http(case, &planner.name, base, client).await
                    }
                };
                let verdict = scorers.judge(case, &outcome);
                progress.tick(verdict.pass);
                done.push((job, TrialReport::new(&outcome, verdict)));
            }
            if let Some(sandbox) = shared {
                sandbox.close().await;
            }
            done
        });
    }
    let mut trials: Vec<Vec<TrialReport>> = (0..n).map(|_| Vec::with_capacity(repeat)).collect();
    let mut all = Vec::with_capacity(total);
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(done) => all.extend(done),
            Err(e) => tracing::error!(error = %e, "an eval worker stopped"),
        }
    }
    all.sort_by_key(|(job, _)| *job);
    for (job, trial) in all {
        trials[job % n].push(trial);
    }
    // A worker that panicked lost its trial: count it as a failed one, never as missing.
    for (case, list) in cases.iter().zip(trials.iter_mut()) {
        while list.len() < repeat {
            let outcome = Outcome {
                harness_error: Some("the eval worker running this trial stopped".into()),
                ..Outcome::default()
            };
            let verdict = scorers.judge(case, &outcome);
            list.push(TrialReport::new(&outcome, verdict));
        }
    }
    trials
}
