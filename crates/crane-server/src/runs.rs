//! Handlers of the run endpoints: create (with idempotency and `?wait=true`), get, list,
//! retry and cancel.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use crane_core::access::Principal;
use crane_core::domain::RunStatus;
use crane_core::runtime::{NewRun, Submitted};
use crane_core::store::{AuditEntry, RunFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;
use crate::trace::TraceId;

/// Body of `POST /runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    pub prompt: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    /// A plan supplied by the caller instead of planning the prompt.
    #[serde(default)]
    pub steps: Option<Vec<ClientStep>>,
    /// Planner variant or alias to plan with (default: the `production` alias, else the
    /// default variant).
    #[serde(default)]
    pub planner: Option<String>,
}

/// One caller-supplied step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientStep {
    pub tool: String,
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub reasoning: String,
    /// Optional; when present it must equal the step's position (from 1).
    #[serde(default)]
    pub step_number: Option<u32>,
}

/// `?wait=true` on create and retry.
#[derive(Debug, Default, Deserialize)]
pub struct WaitQuery {
    #[serde(default)]
    pub wait: Option<String>,
    /// Longest wait in milliseconds (capped by the server's wait timeout).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl WaitQuery {
    /// Whether the caller asked to wait for the run.
    pub(crate) fn wait(&self) -> Result<bool, ApiError> {
        match self.wait.as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") | Some("") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid wait '{other}': use wait=true or wait=false"
            ))),
        }
    }
}

/// Decodes a JSON body with errors that say what was wrong.
pub fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is too large",
            )
        } else {
            ApiError::bad_request(format!("could not read the request body: {e}"))
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !(mime == "application/json" || mime.ends_with("+json")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "expected Content-Type: application/json, got '{}'",
                if content_type.is_empty() {
                    "none"
                } else {
                    content_type
                }
            ),
        ));
    }
    if crate::limits::exceeds_depth(&body, crate::limits::MAX_JSON_DEPTH) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "invalid JSON body: objects and arrays are nested deeper than {} levels",
                crate::limits::MAX_JSON_DEPTH
            ),
        )
        .with_details(json!({"max_depth": crate::limits::MAX_JSON_DEPTH})));
    }
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("invalid JSON body: {e}"),
        )
    })
}

fn wait_bound(state: &AppState, q: &WaitQuery) -> Duration {
    q.timeout_ms
        .map(Duration::from_millis)
        .map_or(state.wait_timeout, |d| d.min(state.wait_timeout))
}

async fn answer(
    state: &AppState,
    submitted: Submitted,
    q: &WaitQuery,
    status: StatusCode,
) -> Response {
    let replayed = submitted.replayed;
    let mut run = submitted.run;
    // A replayed idempotent request with ?wait=true waits for the original run as well.
    if replayed
        && q.wait().unwrap_or(false)
        && !run.status.is_terminal()
        && let Ok(current) = state.runtime.wait(&run.run_id, wait_bound(state, q)).await
    {
        run = current;
    }
    if let Some(rx) = submitted.finished {
        if let Ok(Ok(done)) = tokio::time::timeout(wait_bound(state, q), rx).await {
            run = done;
        } else {
            // The run goes on after this answer: it is stored before it is acknowledged.
            if let Err(e) = state.runtime.acknowledge(&run).await {
                return ApiError::from(e).into_response();
            }
            if let Ok(current) = state.runtime.get(&run.run_id).await {
                run = current;
            }
        }
    }
    let location = format!("/runs/{}", run.run_id);
    let mut response = (status, Json(run)).into_response();
    if let Ok(v) = location.parse() {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            header::HeaderValue::from_static("true"),
        );
    }
    response
}

/// `POST /runs`.
pub async fn create(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    axum::Extension(trace): axum::Extension<TraceId>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let wait = q.wait()?;
    let req: CreateRun = json_body(&headers, body)?;
    if let Some(steps) = &req.steps {
        for (i, step) in steps.iter().enumerate() {
            if step.step_number.is_some_and(|n| n as usize != i + 1) {
                return Err(ApiError::bad_request(format!(
                    "steps[{i}].step_number must be {} (steps are numbered in order from 1)",
                    i + 1
                )));
            }
        }
    }
    // Stored in a column of its own (PostgreSQL's text cannot hold NUL).
    if req.user_id.as_deref().is_some_and(|u| u.contains('\0')) {
        return Err(ApiError::bad_request(
            "user_id must not contain a NUL character (\\u0000)",
        ));
    }
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .map_err(|_| {
                    ApiError::bad_request("the Idempotency-Key header must be visible ASCII")
                })?
                .trim();
            if key.is_empty() || key.len() > 255 {
                return Err(ApiError::bad_request(
                    "the Idempotency-Key header must be 1-255 characters",
                ));
            }
            Some(key.to_owned())
        }
    };
    let submitted = state
        .runtime
        .submit(
            NewRun {
                tenant: Some(principal.tenant),
                prompt: req.prompt,
                user_id: req.user_id,
                metadata: req.metadata,
                idempotency_key,
                trace_id: Some(trace.0),
                planner: req.planner,
                steps: req.steps.map(|steps| {
                    steps
                        .into_iter()
                        .map(|s| {
                            (
                                s.tool,
                                if s.input.is_null() {
                                    json!({})
                                } else {
                                    s.input
                                },
                                s.reasoning,
                            )
                        })
                        .collect()
                }),
            },
            wait,
        )
        .await?;
    Ok(answer(&state, submitted, &q, StatusCode::CREATED).await)
}

/// `GET /runs/{run_id}`.
pub async fn get(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.runtime.get_in(&principal.tenant, &run_id).await?).into_response())
}

/// Query of `GET /runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<String>,
    pub user_id: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// `GET /runs`.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "{} (known parameters: status, user_id, limit, cursor)",
            e.body_text()
        ))
    })?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid status '{s}': use pending, running, completed, failed or cancelled"
            ))
        })?),
    };
    let (limit, cursor) = crate::paging::page_params(q.limit, q.cursor.as_deref())?;
    let page = state
        .runtime
        .list(RunFilter {
            tenant: Some(principal.tenant),
            status,
            user_id: q.user_id,
            limit,
            cursor,
        })
        .await?;
    Ok(Json(json!({
        "runs": page.runs,
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    }))
    .into_response())
}

/// `POST /runs/{run_id}/retry`.
pub async fn retry(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(run_id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let wait = q.wait()?;
    // Another tenant's run is not found (and so cannot be retried).
    state.runtime.get_in(&principal.tenant, &run_id).await?;
    let submitted = state.runtime.retry(&run_id, wait).await?;
    Ok(answer(&state, submitted, &q, StatusCode::OK).await)
}

/// `POST /runs/{run_id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    state.runtime.get_in(&principal.tenant, &run_id).await?;
    let run = state.runtime.cancel(&run_id).await?;
    let audited = state
        .runtime
        .store()
        .audit(AuditEntry {
            tenant: principal.tenant.clone(),
            actor: principal.actor().to_owned(),
            action: "run.cancelled".into(),
            target: run_id,
            details: json!({"status": run.status.as_str()}),
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })
        .await;
    if let Err(error) = audited {
        tracing::error!(%error, "could not write the audit log");
    }
    Ok(Json(run).into_response())
}
