//! A/B experiments → MLflow: when an experiment ends (stopped or promoted) and when its
//! rollback guard decides, `crane serve` logs one MLflow run in the experiment
//! [`AB_EXPERIMENT`] (when a tracking URI is configured):
//!
//! - run name: the experiment's name (`NAME · guard rolled_back` for a guard's decision);
//! - params: `arms` (`planner=weight,...`), `primary_metric`, `alpha`, `min_effect`;
//! - metrics: per arm `arm.PLANNER.runs|successes|success_rate|mean_cost_usd|total_cost_usd|
//!   tokens|p50_ms|p95_ms|feedback_mean` and the analysis `srm_p_value`, `p_value`, `effect`,
//!   `ci_low`, `ci_high` (absent figures are skipped);
//! - tags: `crane.experiment`, `crane.tenant`, `crane.status`, `crane.decision`,
//!   `crane.winner`, `crane.promoted`, `crane.guard`, and `mlflow.note.content` with the
//!   analysis' reason;
//! - artifact: `analysis.json`, the experiment exactly as `GET /experiments/{name}` reports it.
//!
//! The export runs on its own task with a time cap; a failure is a warning in the log, never
//! an error of the request that ended the experiment.

use std::sync::Arc;
use std::time::Duration;

use crane_core::experiments::service::{ExperimentObserver, ExperimentView};

use super::TrackingSettings;
use super::mlflow::{Client, KeyValue, Metric, MlflowError, RetryBudget, RunStatus, sanitize_key};

/// The MLflow experiment the A/B experiments are logged to.
pub const AB_EXPERIMENT: &str = "crane-ab-experiments";

/// Longest time one export may take.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// What one MLflow run of an experiment holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentRunPayload {
    pub run_name: String,
    pub tags: Vec<KeyValue>,
    pub params: Vec<KeyValue>,
    pub metrics: Vec<Metric>,
    pub analysis_json: String,
}

/// The MLflow run of `view` (of `tenant`), at `now_ms`.
pub fn payload(tenant: &str, view: &ExperimentView, now_ms: i64) -> ExperimentRunPayload {
    let guard_status = view.guard.as_ref().map(|g| g.status.as_str());
    let run_name = match guard_status {
        Some(status) if status != "watching" => format!("{} · guard {status}", view.name),
        _ => view.name.clone(),
    };
    let decision = serde_json::to_value(view.analysis.decision)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut tags = vec![
        KeyValue::tag("crane.experiment", &view.name),
        KeyValue::tag("crane.tenant", tenant),
        KeyValue::tag("crane.status", &view.status),
        KeyValue::tag("crane.decision", &decision),
        KeyValue::tag("mlflow.runName", &run_name),
        KeyValue::tag("mlflow.source.name", "crane serve"),
        KeyValue::tag("mlflow.note.content", &view.analysis.reason),
    ];
    if let Some(w) = &view.analysis.winner {
        tags.push(KeyValue::tag("crane.winner", w));
    }
    if let Some(p) = &view.promoted {
        tags.push(KeyValue::tag("crane.promoted", p));
    }
    if let Some(status) = guard_status {
        tags.push(KeyValue::tag("crane.guard", status));
    }
    let arms = view
        .arms
        .iter()
        .map(|a| format!("{}={}", a.planner, a.weight))
        .collect::<Vec<_>>()
        .join(",");
    let params = vec![
        KeyValue::param("arms", &arms),
        KeyValue::param("primary_metric", &view.primary_metric),
        KeyValue::param("alpha", &view.alpha.to_string()),
        KeyValue::param("min_effect", &view.min_effect.to_string()),
    ];
    let mut metrics = Vec::new();
    let mut put = |key: String, value: Option<f64>| {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            metrics.push(Metric::new(&key, v, now_ms));
        }
    };
    for a in &view.arms {
        let arm = |m: &str| sanitize_key(&format!("arm.{}.{m}", a.planner));
        put(arm("runs"), Some(a.runs as f64));
        put(arm("successes"), Some(a.successes as f64));
        put(arm("success_rate"), a.success_rate);
        put(arm("mean_cost_usd"), a.mean_cost_usd);
        put(arm("total_cost_usd"), Some(a.total_cost_usd));
        put(arm("tokens"), Some(a.tokens as f64));
        put(arm("p50_ms"), a.p50_ms);
        put(arm("p95_ms"), a.p95_ms);
        put(arm("feedback_mean"), a.feedback_mean);
    }
    let an = &view.analysis;
    put("srm_p_value".into(), an.srm_p_value);
    put("p_value".into(), an.p_value);
    put("effect".into(), an.effect);
    put("ci_low".into(), an.ci_low);
    put("ci_high".into(), an.ci_high);
    if let Some(g) = &view.guard {
        put("guard.production_runs".into(), Some(g.runs as f64));
        put(
            "guard.production_successes".into(),
            Some(g.successes as f64),
        );
        put("guard.baseline_low".into(), Some(g.baseline_low));
    }
    let analysis_json = serde_json::to_string_pretty(view).unwrap_or_else(|_| "{}".into());
    ExperimentRunPayload {
        run_name,
        tags,
        params,
        metrics,
        analysis_json,
    }
}

/// Logs ended experiments to MLflow (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct ExperimentExporter {
    client: Arc<Client>,
}

impl ExperimentExporter {
    /// The exporter, when a tracking URI is configured.
    pub fn new(settings: &TrackingSettings) -> Option<Self> {
        let endpoint = settings.endpoint.as_ref()?;
        match Client::new(endpoint, RetryBudget::default()) {
            Ok(client) => Some(Self {
                client: Arc::new(client),
            }),
            Err(error) => {
                tracing::warn!(%error, "experiments will not be logged to MLflow");
                None
            }
        }
    }

    /// Logs one experiment now (what [`ExperimentObserver::ended`] spawns).
    pub async fn export(&self, tenant: &str, view: &ExperimentView) -> Result<String, MlflowError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let p = payload(tenant, view, now_ms);
        let start_ms = chrono::DateTime::parse_from_rfc3339(&view.created_at)
            .map_or(now_ms, |t| t.timestamp_millis());
        let client = &self.client;
        let experiment_id = client.experiment_id(AB_EXPERIMENT).await?;
        let run = client
            .create_run(&experiment_id, &p.run_name, start_ms, &p.tags)
            .await?;
        let rest = async {
            client
                .log_batch(&run.run_id, p.metrics, p.params, Vec::new())
                .await?;
            client
                .upload_artifact(
                    &run,
                    "analysis.json",
                    "application/json",
                    bytes::Bytes::from(p.analysis_json),
                )
                .await?;
            client
                .finish_run(&run.run_id, RunStatus::Finished, now_ms)
                .await
        };
        match rest.await {
            Ok(()) => Ok(client.run_url(&run.experiment_id, &run.run_id)),
            Err(e) => {
                let _ = client
                    .finish_run(&run.run_id, RunStatus::Failed, now_ms)
                    .await;
                Err(e)
            }
        }
    }
}

impl ExperimentObserver for ExperimentExporter {
    fn ended(&self, tenant: &str, experiment: &ExperimentView) {
        let this = self.clone();
        let (tenant, view) = (tenant.to_owned(), experiment.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(EXPORT_TIMEOUT, this.export(&tenant, &view)).await {
                Ok(Ok(url)) => {
                    tracing::info!(experiment = %view.name, %url, "experiment logged to MLflow")
                }
                Ok(Err(error)) => {
                    tracing::warn!(experiment = %view.name, %error, "could not log the experiment to MLflow")
                }
                Err(_) => {
                    tracing::warn!(experiment = %view.name, "MLflow did not take the experiment within 30 s")
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crane_core::experiments::service::{AnalysisView, ArmView};
    use crane_core::experiments::stats::Decision;

    fn arm(planner: &str, runs: u64, successes: u64) -> ArmView {
        ArmView {
            planner: planner.into(),
            weight: 1.0,
            runs,
            successes,
            success_rate: Some(successes as f64 / runs as f64),
            mean_cost_usd: None,
            cost_ci: None,
            total_cost_usd: 0.0,
            tokens: 10,
            p50_ms: Some(3.0),
            p95_ms: Some(f64::NAN),
            mean_ms: None,
            latency_ci_ms: None,
            feedback_mean: None,
            feedback_count: 0,
        }
    }

    #[test]
    fn the_payload_holds_every_arm_and_the_analysis() {
        let view = ExperimentView {
            name: "ab".into(),
            status: "stopped".into(),
            primary_metric: "success_rate".into(),
            alpha: 0.05,
            min_effect: 0.05,
            created_at: "2026-12-01T00:00:00Z".into(),
            stopped_at: None,
            promoted: Some("b".into()),
            note: None,
            arms: vec![arm("a", 100, 50), arm("b", 100, 90)],
            analysis: AnalysisView {
                srm_p_value: Some(0.9),
                p_value: Some(0.001),
                effect: Some(0.4),
                ci_low: Some(0.2),
                ci_high: Some(0.6),
                decision: Decision::Winner,
                winner: Some("b".into()),
                reason: "b is better".into(),
            },
            guard: None,
        };
        let p = payload("acme", &view, 1);
        assert_eq!(p.run_name, "ab");
        let metric = |k: &str| p.metrics.iter().find(|m| m.key == k).map(|m| m.value);
        assert_eq!(metric("arm.b.success_rate"), Some(0.9));
        assert_eq!(metric("arm.a.runs"), Some(100.0));
        assert_eq!(metric("effect"), Some(0.4));
        // Non-finite and absent figures are left out (MLflow refuses NaN).
        assert_eq!(metric("arm.a.p95_ms"), None);
        assert_eq!(metric("arm.a.mean_cost_usd"), None);
        let tag = |k: &str| p.tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
        assert_eq!(tag("crane.decision").as_deref(), Some("winner"));
        assert_eq!(tag("crane.promoted").as_deref(), Some("b"));
        assert!(
            p.params
                .iter()
                .any(|x| x.key == "arms" && x.value == "a=1,b=1")
        );
        let back: serde_json::Value = serde_json::from_str(&p.analysis_json).unwrap();
        assert_eq!(back["analysis"]["winner"], "b");
    }
}
