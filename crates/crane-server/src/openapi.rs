//! The OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Written by hand as JSON (openapi.json beside this file) rather than generated: the API is
//! small, and a test checks the document lists exactly the routes in [`crate::ROUTES`] and that
//! each of them is served, so the document cannot drift from the router.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The document's text.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
pub async fn document() -> Response {
    match serde_json::from_str::<Value>(DOCUMENT) {
        Ok(doc) => Json(doc).into_response(),
        Err(e) => crate::error::ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the embedded OpenAPI document is invalid: {e}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn document_lists_exactly_the_routes() {
        let doc: Value = serde_json::from_str(DOCUMENT).unwrap();
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let routed: BTreeSet<(String, String)> = super::super::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, routed);
    }

    /// Every operation can also answer the edge's errors (503 timeout, 500 internal, ...):
    /// each documents them with a `default` answer carrying the error body.
    #[test]
    fn every_operation_documents_other_errors() {
        let doc: Value = serde_json::from_str(DOCUMENT).unwrap();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                assert_eq!(
                    op["responses"]["default"]["$ref"], "#/components/responses/Default",
                    "{method} {path}"
                );
            }
        }
        assert_eq!(
            doc["components"]["responses"]["Default"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error"
        );
    }

    /// Checks `value` against the document's `schema`: every key it has is declared (the
    /// document does not say `additionalProperties: false`, so a JSON Schema validator would
    /// not catch an undocumented field), every required key is there, and the types match.
    /// Written here rather than with a validator crate for that first check.
    fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.trim_start_matches("#/components/schemas/");
            return check(doc, &doc["components"]["schemas"][name], value, at, errors);
        }
        if let Some(options) = schema["oneOf"].as_array() {
            let fits = options.iter().any(|o| {
                let mut e = Vec::new();
                check(doc, o, value, at, &mut e);
                e.is_empty()
            });
            if !fits {
                errors.push(format!("{at}: {value} matches no oneOf option"));
            }
            return;
        }
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let allowed: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let fits = allowed.is_empty()
            || allowed.contains(&kind)
            || (kind == "integer" && allowed.contains(&"number"));
        if !fits {
            errors.push(format!("{at}: {kind} where the document says {allowed:?}"));
            return;
        }
        if let Some(values) = schema["enum"].as_array()
            && !values.contains(value)
        {
            errors.push(format!("{at}: {value} is not in the enum {values:?}"));
        }
        match value {
            Value::Object(map) => {
                let Some(props) = schema["properties"].as_object() else {
                    return; // a free-form object (e.g. `metadata`, a tool's input)
                };
                for required in schema["required"].as_array().into_iter().flatten() {
                    let key = required.as_str().unwrap_or_default();
                    if !map.contains_key(key) {
                        errors.push(format!("{at}: required '{key}' is missing"));
                    }
                }
                for (key, item) in map {
                    match props.get(key) {
                        Some(s) => check(doc, s, item, &format!("{at}.{key}"), errors),
                        None => errors.push(format!("{at}.{key} is not in the document")),
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(doc, &schema["items"], item, &format!("{at}[{i}]"), errors);
                }
            }
            _ => {}
        }
    }

    /// A run with every optional field set, as the API returns it.
    fn full_run() -> crane_core::domain::Run {
        use crane_core::domain::*;
        let mut run = Run::new(
            "add milk".into(),
            Some("alice".into()),
            Some(serde_json::json!({"team": "a"})),
        );
        run.status = RunStatus::Completed;
        run.idempotency_key = Some("k1".into());
        run.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        run.planner = Some("production".into());
        let failure = LayerFailure {
            layer: "llm:primary".into(),
            category: "invalid_plan".into(),
            message: "bad".into(),
        };
        let usage = TokenUsage {
            input_tokens: 10,
            output_tokens: 2,
        };
        let mut planner = PlannerInfo::simple("llm", "1.0.0", PlanSource::Fallback);
        planner.latency_us = 12;
        planner.provider = Some("primary".into());
        planner.model = Some("m".into());
        planner.mode = Some("json_schema".into());
        planner.prompt = Some(PromptRef {
            name: "planner".into(),
            version: "1.0.0".into(),
            hash: "ab".into(),
        });
        planner.route = Some(RouteDecision {
            tier: "fast".into(),
            model: "m".into(),
            complexity: 3,
            reason: "short".into(),
        });
        planner.usage = Some(usage);
        planner.cost_usd = Some(0.5);
        planner.repaired = true;
        planner.attempts = vec![failure.clone()];
        planner.variant = Some(VariantRef {
            name: "v".into(),
            version: "1.0.0".into(),
            alias: Some("production".into()),
            fallback: Some("rule@1.1.0".into()),
        });
        let step = PlanStep {
            step_number: 1,
            tool: "todo_add".into(),
            input: serde_json::json!({"title": "milk"}),
            reasoning: "r".into(),
        };
        run.plan = Some(Plan {
            plan_id: "p".into(),
            planner,
            steps: vec![step],
        });
        run.plan_failure = Some(PlanFailure {
            attempts: vec![failure],
            usage: Some(usage),
            cost_usd: Some(0.25),
        });
        run.execution_log = vec![StepRecord {
            step_number: 1,
            tool: "todo_add".into(),
            input: serde_json::json!({"title": "milk"}),
            status: StepStatus::Completed,
            output: Some(serde_json::json!({"id": 1})),
            error: None,
            attempts: 2,
            attempt_log: vec![AttemptRecord {
                attempt: 1,
                status: StepStatus::Failed,
                error: Some("timeout".into()),
                error_kind: Some("timeout".into()),
                started_at: run.created_at,
                duration_ms: 1.5,
                backoff_ms: Some(100),
            }],
            started_at: run.created_at,
            finished_at: Some(run.created_at),
            duration_ms: Some(2.0),
        }];
        run.result = Some(serde_json::json!({"id": 1}));
        run.retries = 1;
        run.started_at = Some(run.created_at);
        run.completed_at = Some(run.created_at);
        run
    }

    #[test]
    fn the_run_schema_documents_every_field_a_run_has() {
        let doc: Value = serde_json::from_str(DOCUMENT).unwrap();
        let run = serde_json::to_value(full_run()).unwrap();
        let mut errors = Vec::new();
        check(
            &doc,
            &doc["components"]["schemas"]["Run"],
            &run,
            "run",
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:#?}");

        // The check can fail: an undocumented field and a wrong type are reported.
        let mut bad = run.clone();
        bad["surprise"] = Value::Bool(true);
        bad["retries"] = Value::String("one".into());
        let mut errors = Vec::new();
        check(
            &doc,
            &doc["components"]["schemas"]["Run"],
            &bad,
            "run",
            &mut errors,
        );
        assert_eq!(errors.len(), 2, "{errors:#?}");
    }
}
