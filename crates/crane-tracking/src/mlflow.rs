//! A small MLflow tracking client over its REST API 2.0: experiments by name, runs
//! (create, log-batch, update) and artifact upload through the tracking server's artifact proxy
//! (`mlflow-artifacts`). Every call retries transient failures (connection errors, timeouts,
//! HTTP 429 and 5xx) with full-jitter backoff inside a bounded total time; other failures are
//! returned at once as a typed [`MlflowError`].
//!
//! Hand-written rather than taken from a crate: crane needs six endpoints, and the MLflow
//! client crates on crates.io are unmaintained or pull a blocking HTTP stack.
//!
//! Limits enforced here so MLflow never rejects a batch: at most 1000 metrics, 100 params and
//! 100 tags per `runs/log-batch` (and 1000 entities in all), keys of at most 250 characters
//! from MLflow's allowed set, param values shortened to 6000 characters and tag values to 5000,
//! and no non-finite metric values (JSON cannot carry them).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Auth, Endpoint};

/// Most metrics in one `runs/log-batch` call.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// Most params in one `runs/log-batch` call.
pub const MAX_PARAMS_PER_BATCH: usize = 100;
/// Most tags in one `runs/log-batch` call.
pub const MAX_TAGS_PER_BATCH: usize = 100;
/// Most entities (metrics + params + tags) in one `runs/log-batch` call.
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// Longest key MLflow accepts.
const MAX_KEY_CHARS: usize = 250;
/// Longest param value MLflow (≥ 2.x) accepts.
const MAX_PARAM_VALUE_CHARS: usize = 6000;
/// Longest tag value we send (MLflow's limit is 8000 in recent versions, 5000 in older ones).
const MAX_TAG_VALUE_CHARS: usize = 5000;

/// An MLflow failure.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    /// The server could not be reached or did not answer in time.
    #[error("MLflow at {uri} is unreachable: {message}")]
    Unreachable { uri: String, message: String },
    /// The server answered with an error.
    #[error("MLflow {endpoint} answered HTTP {status}: {code}: {message}")]
    Api {
        endpoint: &'static str,
        status: u16,
        /// MLflow's `error_code`, e.g. `RESOURCE_DOES_NOT_EXIST`.
        code: String,
        message: String,
    },
    /// The answer was not the JSON MLflow documents.
    #[error("MLflow {endpoint} answered something unexpected: {message}")]
    Decode {
        endpoint: &'static str,
        message: String,
    },
    /// The experiment exists but was deleted.
    #[error(
        "MLflow experiment '{name}' is deleted; restore it (mlflow experiments restore) or choose another name"
    )]
    DeletedExperiment { name: String },
}

impl MlflowError {
    /// True for failures worth retrying: unreachable server, HTTP 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Api { status, .. } => *status == 429 || *status >= 500,
            Self::Decode { .. } | Self::DeletedExperiment { .. } => false,
        }
    }
}

/// A metric of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub step: i64,
}

/// A param or tag of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

impl Metric {
    /// A metric at step 0, its key made valid.
    pub fn new(key: &str, value: f64, timestamp: i64) -> Self {
        Self {
            key: sanitize_key(key),
            value,
            timestamp,
            step: 0,
        }
    }
}

impl KeyValue {
    /// A param: key made valid, value shortened to MLflow's limit.
    pub fn param(key: &str, value: &str) -> Self {
        Self {
            key: sanitize_key(key),
            value: truncate(value, MAX_PARAM_VALUE_CHARS),
        }
    }

    /// A tag: key made valid, value shortened.
    pub fn tag(key: &str, value: &str) -> Self {
        Self {
            key: sanitize_key(key),
            value: truncate(value, MAX_TAG_VALUE_CHARS),
        }
    }
}

/// A key MLflow accepts: alphanumerics, `_ - . / space`; anything else becomes `_`; at most
/// 250 characters; never empty.
pub fn sanitize_key(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' ') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_KEY_CHARS)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn truncate(value: &str, max: usize) -> String {
    if value.chars().count() <= max {
        return value.to_owned();
    }
    let mut out: String = value.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// One `runs/log-batch` body's worth of entities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

/// Splits entities into batches within MLflow's per-call limits (non-finite metrics dropped),
/// in their original order. Empty input gives no batch.
pub fn chunk_batch(metrics: Vec<Metric>, params: Vec<KeyValue>, tags: Vec<KeyValue>) -> Vec<Batch> {
    let mut metrics = metrics
        .into_iter()
        .filter(|m| m.value.is_finite())
        .peekable();
    let mut params = params.into_iter().peekable();
    let mut tags = tags.into_iter().peekable();
    let mut out = Vec::new();
    while metrics.peek().is_some() || params.peek().is_some() || tags.peek().is_some() {
        let params: Vec<KeyValue> = params.by_ref().take(MAX_PARAMS_PER_BATCH).collect();
        let tags: Vec<KeyValue> = tags.by_ref().take(MAX_TAGS_PER_BATCH).collect();
        let room = (MAX_ENTITIES_PER_BATCH - params.len() - tags.len()).min(MAX_METRICS_PER_BATCH);
        let metrics: Vec<Metric> = metrics.by_ref().take(room).collect();
        out.push(Batch {
            metrics,
            params,
            tags,
        });
    }
    out
}

/// What `runs/create` returns that crane uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub run_id: String,
    pub experiment_id: String,
    /// E.g. `mlflow-artifacts:/1/<run>/artifacts`.
    pub artifact_uri: String,
}

/// A run's final status (`runs/update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    /// MLflow's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }
}

/// How long and how often a call is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// Attempts per call, in total.
    pub max_attempts: u32,
    /// Ceiling of the first backoff (full jitter, doubling).
    pub base_delay: Duration,
    /// Ceiling of any backoff.
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the call's first attempt.
    pub total: Duration,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            total: Duration::from_secs(10),
        }
    }
}

impl RetryBudget {
    fn policy(&self) -> crane_core::runtime::RetryPolicy {
        crane_core::runtime::RetryPolicy {
            max_attempts: self.max_attempts,
            base_delay: self.base_delay,
            max_delay: self.max_delay,
        }
    }
}

/// The MLflow REST client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The tracking URI without a trailing slash.
    base: String,
    auth: Auth,
    retry: RetryBudget,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &super::redact_uri(&self.base))
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `endpoint` with `retry` as the budget of every call.
    pub fn new(endpoint: &Endpoint, retry: RetryBudget) -> Result<Self, MlflowError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .user_agent(concat!("crane/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MlflowError::Unreachable {
                uri: super::redact_uri(&endpoint.uri),
                message: format!("could not build the HTTP client: {e}"),
            })?;
        Ok(Self {
            http,
            base: endpoint.uri.trim_end_matches('/').to_owned(),
            auth: endpoint.auth.clone(),
            retry,
        })
    }

    /// The tracking URI (credentials removed), for messages.
    pub fn display_uri(&self) -> String {
        super::redact_uri(&self.base)
    }

    /// The MLflow UI page of a run.
    pub fn run_url(&self, experiment_id: &str, run_id: &str) -> String {
        format!(
            "{}/#/experiments/{experiment_id}/runs/{run_id}",
            self.display_uri()
        )
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Auth::None => req,
            Auth::Bearer(token) => req.bearer_auth(token),
            Auth::Basic { username, password } => req.basic_auth(username, Some(password)),
        }
    }

    /// Sends one request built by `build`, retrying within the budget; returns the JSON body
    /// of a 2xx answer (`Null` when empty).
    async fn call(
        &self,
        endpoint: &'static str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, MlflowError> {
        let started = Instant::now();
        let policy = self.retry.policy();
        let mut attempt = 1u32;
        loop {
            let result = self.once(endpoint, self.authorize(build())).await;
            match result {
                Err(e) if e.is_retryable() && attempt < self.retry.max_attempts => {
                    let delay = policy.backoff(attempt);
                    if started.elapsed() + delay > self.retry.total {
                        return Err(e);
                    }
                    tracing::debug!(endpoint, attempt, error = %e, ?delay, "MLflow call failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn once(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<Value, MlflowError> {
        let unreachable = |e: reqwest::Error| MlflowError::Unreachable {
            uri: self.display_uri(),
            message: error_chain(&e),
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(unreachable)?;
        if status.is_success() {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&body).map_err(|e| MlflowError::Decode {
                endpoint,
                message: format!("invalid JSON ({e})"),
            });
        }
        let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let text = String::from_utf8_lossy(&body);
        Err(MlflowError::Api {
            endpoint,
            status: status.as_u16(),
            code: parsed["error_code"]
                .as_str()
                .unwrap_or(status.canonical_reason().unwrap_or("error"))
                .to_owned(),
            message: parsed["message"]
                .as_str()
                .map_or_else(|| truncate(text.trim(), 300), |m| truncate(m, 300)),
        })
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.base)
    }

    async fn post(&self, endpoint: &'static str, body: &Value) -> Result<Value, MlflowError> {
        let url = self.api(endpoint);
        self.call(endpoint, || self.http.post(&url).json(body))
            .await
    }

    /// The id of the experiment named `name`, created when it does not exist.
    pub async fn experiment_id(&self, name: &str) -> Result<String, MlflowError> {
        const GET: &str = "experiments/get-by-name";
        let url = reqwest::Url::parse_with_params(&self.api(GET), [("experiment_name", name)])
            .map_err(|e| MlflowError::Unreachable {
                uri: self.display_uri(),
                message: format!("invalid tracking URI: {e}"),
            })?;
        let lookup = || async {
            match self.call(GET, || self.http.get(url.clone())).await {
                Ok(v) => {
                    let exp = &v["experiment"];
                    if exp["lifecycle_stage"] == "deleted" {
                        return Err(MlflowError::DeletedExperiment {
                            name: name.to_owned(),
                        });
                    }
                    string_at(&exp["experiment_id"], GET).map(Some)
                }
                Err(MlflowError::Api { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => Ok(None),
                Err(e) => Err(e),
            }
        };
        if let Some(id) = lookup().await? {
            return Ok(id);
        }
        match self
            .post("experiments/create", &json!({"name": name}))
            .await
        {
            Ok(v) => string_at(&v["experiment_id"], "experiments/create"),
            // Another process created it between our lookup and our create.
            Err(MlflowError::Api { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => {
                lookup().await?.ok_or_else(|| MlflowError::Decode {
                    endpoint: GET,
                    message: format!("experiment '{name}' exists but cannot be found by name"),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a run (status RUNNING) with its tags.
    pub async fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        start_time_ms: i64,
        tags: &[KeyValue],
    ) -> Result<RunInfo, MlflowError> {
        const EP: &str = "runs/create";
        let v = self
            .post(
                EP,
                &json!({
                    "experiment_id": experiment_id,
                    "run_name": run_name,
                    "start_time": start_time_ms,
                    "tags": tags,
                }),
            )
            .await?;
        let info = &v["run"]["info"];
        Ok(RunInfo {
            run_id: string_at(&info["run_id"], EP)?,
            experiment_id: string_at(&info["experiment_id"], EP)?,
            artifact_uri: info["artifact_uri"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Logs metrics, params and tags, in as many `runs/log-batch` calls as MLflow's limits need.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<KeyValue>,
        tags: Vec<KeyValue>,
    ) -> Result<(), MlflowError> {
        for batch in chunk_batch(metrics, params, tags) {
            self.post(
                "runs/log-batch",
                &json!({
                    "run_id": run_id,
                    "metrics": batch.metrics,
                    "params": batch.params,
                    "tags": batch.tags,
                }),
            )
            .await?;
        }
        Ok(())
    }

    /// Sets a run's final status and end time.
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        end_time_ms: i64,
    ) -> Result<(), MlflowError> {
        self.post(
            "runs/update",
            &json!({"run_id": run_id, "status": status.as_str(), "end_time": end_time_ms}),
        )
        .await
        .map(drop)
    }

    /// Uploads `bytes` as the run's artifact `name` through the server's artifact proxy.
    pub async fn upload_artifact(
        &self,
        run: &RunInfo,
        name: &str,
        content_type: &'static str,
        bytes: bytes::Bytes,
    ) -> Result<(), MlflowError> {
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}/{name}",
            self.base,
            artifact_path(run)
        );
        self.call("mlflow-artifacts/artifacts", || {
            self.http
                .put(&url)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes.clone())
        })
        .await
        .map(drop)
    }
}

/// The path of a run's artifact directory under the server's artifact proxy: taken from its
/// `mlflow-artifacts:` URI (`mlflow-artifacts:/1/<run>/artifacts` or
/// `mlflow-artifacts://host/1/<run>/artifacts`), else the default layout
/// `{experiment}/{run}/artifacts`.
pub fn artifact_path(run: &RunInfo) -> String {
    if let Some(rest) = run.artifact_uri.strip_prefix("mlflow-artifacts:") {
        let path = match rest.strip_prefix("//") {
            // Skip the authority.
            Some(after) => after.find('/').map_or("", |i| &after[i..]),
            None => rest,
        };
        let path = path.trim_matches('/');
        if !path.is_empty() {
            return path.to_owned();
        }
    }
    format!("{}/{}/artifacts", run.experiment_id, run.run_id)
}

fn string_at(v: &Value, endpoint: &'static str) -> Result<String, MlflowError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| MlflowError::Decode {
            endpoint,
            message: format!("expected an id string, got {v}"),
        })
}

/// An error with its sources ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(n: usize) -> Vec<Metric> {
        (0..n)
            .map(|i| Metric::new(&format!("m{i}"), i as f64, 1))
            .collect()
    }

    fn kvs(n: usize, prefix: &str) -> Vec<KeyValue> {
        (0..n)
            .map(|i| KeyValue::param(&format!("{prefix}{i}"), "v"))
            .collect()
    }

    #[test]
    fn chunks_respect_every_limit_and_keep_everything_in_order() {
        let batches = chunk_batch(metrics(2500), kvs(250, "p"), kvs(130, "t"));
        for b in &batches {
            assert!(b.metrics.len() <= MAX_METRICS_PER_BATCH);
            assert!(b.params.len() <= MAX_PARAMS_PER_BATCH);
            assert!(b.tags.len() <= MAX_TAGS_PER_BATCH);
            assert!(b.metrics.len() + b.params.len() + b.tags.len() <= MAX_ENTITIES_PER_BATCH);
        }
        let all_metrics: Vec<String> = batches
            .iter()
            .flat_map(|b| b.metrics.iter().map(|m| m.key.clone()))
            .collect();
        assert_eq!(
            all_metrics,
            (0..2500).map(|i| format!("m{i}")).collect::<Vec<_>>()
        );
        assert_eq!(batches.iter().map(|b| b.params.len()).sum::<usize>(), 250);
        assert_eq!(batches.iter().map(|b| b.tags.len()).sum::<usize>(), 130);
        // First batch: 100 params + 100 tags leave room for 800 metrics.
        assert_eq!(batches[0].metrics.len(), 800);
        assert_eq!(batches.len(), 3);
    }

    #[test]
    fn small_input_is_one_batch_and_empty_input_none() {
        let batches = chunk_batch(metrics(3), kvs(2, "p"), kvs(1, "t"));
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].metrics.len(), 3);
        assert!(chunk_batch(vec![], vec![], vec![]).is_empty());
    }

    #[test]
    fn non_finite_metrics_are_dropped() {
        let ms = vec![
            Metric::new("a", f64::NAN, 0),
            Metric::new("b", 1.5, 0),
            Metric::new("c", f64::INFINITY, 0),
        ];
        let batches = chunk_batch(ms, vec![], vec![]);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].metrics.len(), 1);
        assert_eq!(batches[0].metrics[0].key, "b");
    }

    #[test]
    fn keys_are_made_valid_and_values_shortened() {
        assert_eq!(sanitize_key("tag.arith:hard/ok v1"), "tag.arith_hard/ok v1");
        assert_eq!(sanitize_key("naïve→x"), "na_ve_x");
        assert_eq!(sanitize_key(""), "_");
        assert_eq!(sanitize_key(&"k".repeat(300)).len(), 250);
        let long = KeyValue::param("p", &"x".repeat(7000));
        assert_eq!(long.value.chars().count(), 6000);
        assert!(long.value.ends_with('…'));
        let tag = KeyValue::tag("t", &"y".repeat(6000));
        assert_eq!(tag.value.chars().count(), 5000);
        assert_eq!(KeyValue::tag("t", "short").value, "short");
    }

    #[test]
    fn artifact_paths_follow_the_run_artifact_uri() {
        let mut run = RunInfo {
            run_id: "r1".into(),
            experiment_id: "7".into(),
            artifact_uri: "mlflow-artifacts:/7/r1/artifacts".into(),
        };
        assert_eq!(artifact_path(&run), "7/r1/artifacts");
        run.artifact_uri = "mlflow-artifacts://tracking.example:5000/team/7/r1/artifacts".into();
        assert_eq!(artifact_path(&run), "team/7/r1/artifacts");
        run.artifact_uri = "s3://bucket/7/r1/artifacts".into();
        assert_eq!(artifact_path(&run), "7/r1/artifacts");
        run.artifact_uri = String::new();
        assert_eq!(artifact_path(&run), "7/r1/artifacts");
    }

    #[test]
    fn retryable_failures_are_transport_429_and_5xx() {
        let api = |status| MlflowError::Api {
            endpoint: "runs/create",
            status,
            code: "X".into(),
            message: String::new(),
        };
        assert!(api(503).is_retryable());
        assert!(api(500).is_retryable());
        assert!(api(429).is_retryable());
        assert!(!api(400).is_retryable());
        assert!(!api(404).is_retryable());
        assert!(
            MlflowError::Unreachable {
                uri: "x".into(),
                message: "refused".into()
            }
            .is_retryable()
        );
    }
}
