//! Handlers of the experiment endpoints (DESIGN.md "Experiments"): `POST /experiments`,
//! `GET /experiments`, `GET /experiments/{name}`, `POST /experiments/{name}/stop`,
//! `POST /experiments/{name}/promote` (moves the `production` alias to the winner), and
//! `POST /runs/{run_id}/feedback`. Experiments belong to the caller's tenant; every change is
//! audited.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use crane_core::access::Principal;
use crane_core::experiments::service::{ExperimentError, Experiments, GuardOptions, NewExperiment};
use crane_core::runtime::RuntimeError;
use crane_core::store::AuditEntry;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::runs::json_body;
use crate::state::AppState;

fn error(e: ExperimentError) -> ApiError {
    let message = e.to_string();
    match e {
        ExperimentError::Invalid(_) => ApiError::bad_request(message),
        ExperimentError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
        ExperimentError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
        ExperimentError::Store(e) => RuntimeError::Store(e).into(),
    }
}

fn service(state: &AppState) -> Result<&std::sync::Arc<Experiments>, ApiError> {
    state.runtime.experiments().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "experiments are not enabled in this process",
        )
    })
}

async fn audit(state: &AppState, principal: &Principal, action: &str, name: &str, details: Value) {
    let entry = AuditEntry {
        tenant: principal.tenant.clone(),
        actor: principal.actor().to_owned(),
        action: action.to_owned(),
        target: name.to_owned(),
        details,
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    if let Err(error) = state.runtime.store().audit(entry).await {
        tracing::error!(%error, "could not write the audit log");
    }
}

/// `POST /experiments`.
pub async fn create(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let new: NewExperiment = json_body(&headers, body)?;
    let view = service(&state)?
        .create(&principal.tenant, new, state.runtime.planners())
        .await
        .map_err(error)?;
    let arms: Vec<Value> = view
        .arms
        .iter()
        .map(|a| json!({"planner": a.planner, "weight": a.weight}))
        .collect();
    audit(
        &state,
        &principal,
        "experiment.created",
        &view.name,
        json!({"arms": arms}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /experiments`.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
) -> Result<Response, ApiError> {
    let all = service(&state)?
        .list(&principal.tenant)
        .await
        .map_err(error)?;
    Ok(Json(json!({ "experiments": all })).into_response())
}

/// `GET /experiments/{name}`.
pub async fn get(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let view = service(&state)?
        .view(&principal.tenant, &name)
        .await
        .map_err(error)?;
    Ok(Json(view).into_response())
}

/// Body of `POST /experiments/{name}/stop` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /experiments/{name}/stop`.
pub async fn stop(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let empty = matches!(&body, Ok(b) if b.is_empty());
    let req: Stop = if empty {
        Stop::default()
    } else {
        json_body(&headers, body)?
    };
    let view = service(&state)?
        .stop(&principal.tenant, &name, req.note.as_deref())
        .await
        .map_err(error)?;
    audit(
        &state,
        &principal,
        "experiment.stopped",
        &name,
        json!({"note": req.note}),
    )
    .await;
    Ok(Json(view).into_response())
}

/// Body of `POST /experiments/{name}/promote` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    /// The rollback guard (on by default; `{"enabled": false}` turns it off).
    #[serde(default)]
    pub guard: Option<GuardOptions>,
}

/// `POST /experiments/{name}/promote`: the winner becomes `production` and the experiment
/// stops; `409` while there is no winner. A rollback guard then watches the winner's
/// production runs (see `crane_core::experiments::guard`).
pub async fn promote(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let empty = matches!(&body, Ok(b) if b.is_empty());
    let req: Promote = if empty {
        Promote::default()
    } else {
        json_body(&headers, body)?
    };
    let options = req.guard.unwrap_or_default();
    options.check().map_err(error)?;
    let experiments = service(&state)?;
    let (view, winner) = experiments
        .promote(&principal.tenant, &name)
        .await
        .map_err(error)?;
    // An arm may be an alias: production points at the variant it stands for.
    let target = state
        .runtime
        .planners()
        .resolve(Some(&winner))
        .map(|(v, _)| v.spec.name.clone())
        .unwrap_or(winner.clone());
    let note = format!("experiment {name}: {}", view.analysis.reason);
    let moved = state
        .runtime
        .move_alias("production", &target, Some(&note))
        .await
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()))?;
    let guard = experiments
        .watch(
            &principal.tenant,
            &view,
            &target,
            moved.from.as_deref(),
            &options,
        )
        .await
        .map_err(error)?;
    audit(
        &state,
        &principal,
        "experiment.promoted",
        &name,
        json!({"winner": winner, "alias": "production", "from": moved.from, "to": moved.to,
               "guard": guard.is_some()}),
    )
    .await;
    let view = experiments
        .view(&principal.tenant, &name)
        .await
        .map_err(error)?;
    Ok(Json(json!({"experiment": view, "alias_move": moved, "guard": guard})).into_response())
}

/// Body of `POST /runs/{run_id}/feedback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    pub score: f64,
    #[serde(default)]
    pub comment: Option<String>,
}

/// `POST /runs/{run_id}/feedback`.
pub async fn feedback(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: FeedbackBody = json_body(&headers, body)?;
    let run = state
        .runtime
        .feedback(&principal.tenant, &run_id, req.score, req.comment)
        .await?;
    Ok(Json(run).into_response())
}
