//! `crane eval` → MLflow: one MLflow run per planner variant of a report, in the eval
//! experiment (`MLFLOW_EXPERIMENT_NAME`, default `crane-evals`).
//!
//! - params: the variant's identity (name, alias, kind, version, prompt, prompt hash, model;
//!   absent ones skipped) and how the eval ran (dataset, repeat, concurrency, target, gates,
//!   crane version);
//! - metrics: the planner's summary (success rate, runs, latency percentiles, tokens, cost),
//!   `tool_accuracy` (the `tool_sequence` scorer's pass rate), every scorer's pass rate / mean
//!   (`scorer.NAME.pass_rate`), and per dataset tag (`tag.TAG.success_rate`);
//! - tags: `crane.eval_id`, `crane.dataset`, `crane.gates_passed`, `mlflow.runName`,
//!   `mlflow.source.name = crane eval`, a short `mlflow.note.content`;
//! - artifacts: `report.json` (the same text `--report` writes) and `summary.md`.
//!
//! Runs end FINISHED even when a gate is violated: MLflow's FAILED means the run itself broke,
//! while a violated gate is a result, recorded in `crane.gates_passed` and the
//! `gate_violations` metric. A run whose export broke halfway is marked FAILED (best effort).
//!
//! An export failure never changes the eval's exit code: calls retry transient failures within
//! 10 s, the whole export is capped at [`EXPORT_TIMEOUT`], and failures become a warning on
//! stderr.

use std::time::Duration;

use serde_json::Value;

use super::TrackingSettings;
use super::mlflow::{Client, KeyValue, Metric, MlflowError, RetryBudget, RunStatus};
use crane_eval::report::{PlannerReport, Report};

/// Longest time the whole export may take before the eval gives up on it.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// What one MLflow run of an eval holds.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRunPayload {
    pub run_name: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub tags: Vec<KeyValue>,
    pub params: Vec<KeyValue>,
    pub metrics: Vec<Metric>,
}

/// Logs `report` to MLflow when a tracking URI is configured; prints the run URLs, or a
/// warning, on stderr. Never fails.
pub async fn export(settings: &TrackingSettings, report: &Report, report_json: &Value) {
    let Some(endpoint) = &settings.endpoint else {
        return;
    };
    let client = match Client::new(endpoint, RetryBudget::default()) {
        Ok(c) => c,
        Err(e) => {
            warn(&e.to_string());
            return;
        }
    };
    let json_text = match serde_json::to_string_pretty(report_json) {
        Ok(t) => t,
        Err(e) => {
            warn(&format!("could not encode the report: {e}"));
            return;
        }
    };
    let work = export_all(&client, &settings.eval_experiment, report, json_text);
    if tokio::time::timeout(EXPORT_TIMEOUT, work).await.is_err() {
        warn(&format!(
            "MLflow at {} did not finish within {} s",
            client.display_uri(),
            EXPORT_TIMEOUT.as_secs()
        ));
    }
}

fn warn(message: &str) {
    eprintln!("warning: MLflow export failed: {message}; the eval's result is unaffected");
}

async fn export_all(client: &Client, experiment: &str, report: &Report, json_text: String) {
    let experiment_id = match client.experiment_id(experiment).await {
        Ok(id) => id,
        Err(e) => {
            warn(&e.to_string());
            return;
        }
    };
    let report_bytes = bytes::Bytes::from(json_text);
    let markdown = bytes::Bytes::from(report.markdown());
    for planner in &report.planners {
        let payload = payload(report, planner);
        match export_one(
            client,
            &experiment_id,
            payload,
            report_bytes.clone(),
            markdown.clone(),
        )
        .await
        {
            Ok(url) => eprintln!("mlflow: planner {} logged as {url}", planner.planner),
            Err(e) => {
                warn(&format!("planner {}: {e}", planner.planner));
                // The server is down: the next planner would only wait out the same retries.
                if e.is_retryable() {
                    return;
                }
            }
        }
    }
}

async fn export_one(
    client: &Client,
    experiment_id: &str,
    p: EvalRunPayload,
    report_json: bytes::Bytes,
    markdown: bytes::Bytes,
) -> Result<String, MlflowError> {
    let run = client
        .create_run(experiment_id, &p.run_name, p.start_ms, &p.tags)
        .await?;
    let rest = async {
        client
            .log_batch(&run.run_id, p.metrics, p.params, Vec::new())
            .await?;
        client
            .upload_artifact(&run, "report.json", "application/json", report_json)
            .await?;
        client
            .upload_artifact(&run, "summary.md", "text/markdown; charset=utf-8", markdown)
            .await?;
        client
            .finish_run(&run.run_id, RunStatus::Finished, p.end_ms)
            .await
    };
    match rest.await {
        Ok(()) => Ok(client.run_url(&run.experiment_id, &run.run_id)),
        Err(e) => {
            let _ = client
                .finish_run(&run.run_id, RunStatus::Failed, p.end_ms)
                .await;
            Err(e)
        }
    }
}

/// File name of the dataset without its extension (`data/golden.jsonl` → `golden`).
fn dataset_stem(path: &str) -> &str {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    name.split_once('.').map_or(name, |(stem, _)| stem)
}

/// The MLflow run of one planner of a report.
pub fn payload(report: &Report, planner: &PlannerReport) -> EvalRunPayload {
    let end_ms = chrono::DateTime::parse_from_rfc3339(&report.created_at).map_or_else(
        |_| chrono::Utc::now().timestamp_millis(),
        |t| t.timestamp_millis(),
    );
    let start_ms = end_ms - report.wall_ms.max(0.0).round() as i64;
    let short_id: String = {
        let chars: Vec<char> = report.eval_id.chars().collect();
        chars[chars.len().saturating_sub(6)..].iter().collect()
    };
    let run_name = format!(
        "{} · {} · {short_id}",
        planner.planner,
        dataset_stem(&report.dataset.path)
    );
    let violations = report
        .gates
        .violations
        .iter()
        .filter(|v| v.planner == planner.planner)
        .count();
    let s = &planner.summary;

    let v = &planner.variant;
    let mut params = vec![KeyValue::param("planner", &planner.planner)];
    let text_params = [
        ("variant", Some(&v.name)),
        ("alias", v.alias.as_ref()),
        ("kind", Some(&v.kind)),
        ("version", Some(&v.version)),
        ("prompt", v.prompt.as_ref()),
        ("prompt_hash", v.prompt_hash.as_ref()),
        ("model", v.model.as_ref()),
    ];
    for (key, value) in text_params {
        if let Some(value) = value.filter(|x| !x.is_empty()) {
            params.push(KeyValue::param(key, value));
        }
    }
    params.push(KeyValue::param("dataset", &report.dataset.path));
    params.push(KeyValue::param(
        "dataset_cases",
        &report.dataset.cases.to_string(),
    ));
    if !report.dataset.tags.is_empty() {
        params.push(KeyValue::param(
            "dataset_tags",
            &report.dataset.tags.join(","),
        ));
    }
    params.push(KeyValue::param("repeat", &report.repeat.to_string()));
    params.push(KeyValue::param(
        "concurrency",
        &report.concurrency.to_string(),
    ));
    params.push(KeyValue::param("target", &report.target));
    if let Some(Value::String(m)) = report
        .arg_match
        .as_ref()
        .and_then(|m| serde_json::to_value(m).ok())
    {
        params.push(KeyValue::param("arg_match", &m));
    }
    params.push(KeyValue::param(
        "gates",
        &if report.gates.checked.is_empty() {
            "none".to_owned()
        } else {
            report.gates.checked.join("; ")
        },
    ));
    params.push(KeyValue::param("crane_version", &report.crane_version));

    let m = |key: &str, value: f64| Metric::new(key, value, end_ms);
    let mut metrics = vec![
        m("success_rate", s.success_rate),
        m("runs", s.runs as f64),
        m("passed_runs", s.passed_runs as f64),
        m("cases", s.cases as f64),
        m("passed_cases", s.passed_cases as f64),
        m("flaky_cases", s.flaky_cases as f64),
        m("latency_mean_ms", s.latency_ms.mean),
        m("latency_p50_ms", s.latency_ms.p50),
        m("latency_p95_ms", s.latency_ms.p95),
        m("latency_p99_ms", s.latency_ms.p99),
        m("latency_max_ms", s.latency_ms.max),
        m("input_tokens", s.input_tokens as f64),
        m("output_tokens", s.output_tokens as f64),
        m("total_tokens", (s.input_tokens + s.output_tokens) as f64),
        m("cost_usd", s.cost_usd),
        m("wall_ms", planner.wall_ms),
        m("gate_violations", violations as f64),
    ];
    if let Some(rate) = s.scorers.get("tool_sequence").and_then(|t| t.pass_rate) {
        metrics.push(m("tool_accuracy", rate));
    }
    for (name, stats) in &s.scorers {
        if let Some(rate) = stats.pass_rate {
            metrics.push(m(&format!("scorer.{name}.pass_rate"), rate));
        }
        metrics.push(m(&format!("scorer.{name}.mean"), stats.mean));
        metrics.push(m(
            &format!("scorer.{name}.applicable"),
            stats.applicable as f64,
        ));
    }
    for (tag, t) in &planner.tags {
        metrics.push(m(&format!("tag.{tag}.success_rate"), t.success_rate));
        metrics.push(m(&format!("tag.{tag}.runs"), t.runs as f64));
        metrics.push(m(&format!("tag.{tag}.latency_p95_ms"), t.latency_ms.p95));
    }

    let note = format!(
        "crane eval `{}` of `{}`: {}/{} runs passed ({:.1}%), p95 {:.1} ms; gates {}.",
        report.eval_id,
        report.dataset.path,
        s.passed_runs,
        s.runs,
        s.success_rate * 100.0,
        s.latency_ms.p95,
        if report.gates.passed {
            "passed"
        } else {
            "violated"
        }
    );
    let tags = vec![
        KeyValue::tag("mlflow.runName", &run_name),
        KeyValue::tag("mlflow.source.name", "crane eval"),
        KeyValue::tag("mlflow.source.type", "LOCAL"),
        KeyValue::tag("mlflow.note.content", &note),
        KeyValue::tag("crane.kind", "eval"),
        KeyValue::tag("crane.eval_id", &report.eval_id),
        KeyValue::tag("crane.dataset", &report.dataset.path),
        KeyValue::tag("crane.planner", &planner.planner),
        KeyValue::tag("crane.gates_passed", bool_str(report.gates.passed)),
        KeyValue::tag("crane.planner_gates_passed", bool_str(violations == 0)),
        KeyValue::tag("crane.target", &report.target),
    ];
    EvalRunPayload {
        run_name,
        start_ms,
        end_ms,
        tags,
        params,
        metrics,
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crane_eval::report::{DatasetInfo, Latency, ScorerStats, Summary, VariantSummary};

    fn report() -> Report {
        let mut planner = PlannerReport::new("llm-v2", 1234.5, Vec::new());
        planner.variant = VariantSummary {
            name: "llm-v2".into(),
            alias: Some("candidate".into()),
            kind: "llm".into(),
            version: "2.1.0".into(),
            prompt: Some("planner@3".into()),
            prompt_hash: Some("ab12".into()),
            model: None,
        };
        planner.summary = Summary {
            cases: 4,
            runs: 8,
            passed_runs: 6,
            success_rate: 0.75,
            passed_cases: 3,
            flaky_cases: 0,
            latency_ms: Latency {
                mean: 10.0,
                p50: 9.0,
                p95: 20.0,
                p99: 21.0,
                max: 22.0,
            },
            input_tokens: 100,
            output_tokens: 20,
            cost_usd: 0.0125,
            scorers: BTreeMap::from([
                (
                    "tool_sequence".to_owned(),
                    ScorerStats {
                        applicable: 8,
                        passed: Some(7),
                        pass_rate: Some(0.875),
                        mean: 0.875,
                    },
                ),
                (
                    "latency".to_owned(),
                    ScorerStats {
                        applicable: 8,
                        passed: None,
                        pass_rate: None,
                        mean: 10.0,
                    },
                ),
            ]),
        };
        planner.tags.insert(
            "multi step".into(),
            Summary {
                runs: 2,
                success_rate: 0.5,
                ..Summary::default()
            },
        );
        Report {
            report_version: 1,
            eval_id: "0192f0aa-0000-7000-8000-00000abcdef1".into(),
            created_at: "2026-11-02T10:00:01.500Z".into(),
            crane_version: "0.1.0".into(),
            dataset: DatasetInfo {
                path: "data/golden.jsonl".into(),
                cases: 4,
                tags: Vec::new(),
            },
            target: "in_process".into(),
            repeat: 2,
            concurrency: 4,
            arg_match: None,
            wall_ms: 1500.0,
            planners: vec![planner],
            gates: Default::default(),
        }
    }

    fn find<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a str> {
        kvs.iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.as_str())
    }

    fn metric(p: &EvalRunPayload, key: &str) -> Option<f64> {
        p.metrics.iter().find(|m| m.key == key).map(|m| m.value)
    }

    #[test]
    fn payload_carries_variant_params_and_skips_absent_ones() {
        let r = report();
        let p = payload(&r, &r.planners[0]);
        assert_eq!(find(&p.params, "planner"), Some("llm-v2"));
        assert_eq!(find(&p.params, "alias"), Some("candidate"));
        assert_eq!(find(&p.params, "kind"), Some("llm"));
        assert_eq!(find(&p.params, "version"), Some("2.1.0"));
        assert_eq!(find(&p.params, "prompt"), Some("planner@3"));
        assert_eq!(find(&p.params, "prompt_hash"), Some("ab12"));
        assert_eq!(find(&p.params, "model"), None);
        assert_eq!(find(&p.params, "dataset"), Some("data/golden.jsonl"));
        assert_eq!(find(&p.params, "repeat"), Some("2"));
        assert_eq!(find(&p.params, "gates"), Some("none"));
        let keys: std::collections::HashSet<&str> =
            p.params.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys.len(), p.params.len(), "param keys are unique");
    }

    #[test]
    fn payload_metrics_equal_the_summary() {
        let r = report();
        let p = payload(&r, &r.planners[0]);
        assert_eq!(metric(&p, "success_rate"), Some(0.75));
        assert_eq!(metric(&p, "passed_runs"), Some(6.0));
        assert_eq!(metric(&p, "latency_p95_ms"), Some(20.0));
        assert_eq!(metric(&p, "total_tokens"), Some(120.0));
        assert_eq!(metric(&p, "cost_usd"), Some(0.0125));
        assert_eq!(metric(&p, "tool_accuracy"), Some(0.875));
        assert_eq!(metric(&p, "scorer.tool_sequence.pass_rate"), Some(0.875));
        assert_eq!(metric(&p, "scorer.latency.pass_rate"), None);
        assert_eq!(metric(&p, "scorer.latency.mean"), Some(10.0));
        assert_eq!(metric(&p, "tag.multi step.success_rate"), Some(0.5));
        assert_eq!(metric(&p, "gate_violations"), Some(0.0));
        assert!(p.metrics.iter().all(|m| m.timestamp == p.end_ms));
    }

    #[test]
    fn payload_tags_and_times() {
        let r = report();
        let p = payload(&r, &r.planners[0]);
        assert_eq!(p.run_name, "llm-v2 · golden · bcdef1");
        assert_eq!(find(&p.tags, "mlflow.runName"), Some(p.run_name.as_str()));
        assert_eq!(find(&p.tags, "mlflow.source.name"), Some("crane eval"));
        assert_eq!(find(&p.tags, "crane.eval_id"), Some(r.eval_id.as_str()));
        assert_eq!(find(&p.tags, "crane.gates_passed"), Some("false"));
        // 2026-11-02T10:00:01.500Z
        assert_eq!(p.end_ms, 1_793_613_601_500);
        assert_eq!(p.end_ms - p.start_ms, 1500);
    }

    #[test]
    fn dataset_stems() {
        assert_eq!(dataset_stem("data/golden.jsonl"), "golden");
        assert_eq!(dataset_stem("x"), "x");
        assert_eq!(dataset_stem("a\\b.c.d"), "b");
    }
}
