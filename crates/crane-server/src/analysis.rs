//! `GET /analysis/failures?limit=N&threshold=X`: the caller's tenant's failed runs (the newest
//! `limit`, default 1000, at most 10000) grouped by error category and similar prompts
//! (`crane_core::analysis::failures`). Prompts are compared with the semantic cache's
//! embedding model when the server has one, else by normalised text; the grouping runs on the
//! blocking pool.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::response::{IntoResponse, Response};
use crane_core::access::Principal;
use crane_core::analysis::failures::{self, DEFAULT_LIMIT, DEFAULT_THRESHOLD, MAX_LIMIT};
use crane_core::runtime::RuntimeError;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

/// The query of `GET /analysis/failures`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailuresQuery {
    limit: Option<usize>,
    threshold: Option<f32>,
}

/// `GET /analysis/failures`.
pub async fn failures(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<FailuresQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "{} (known parameters: limit, threshold)",
            e.body_text()
        ))
    })?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "invalid limit {limit}: use 1-{MAX_LIMIT} (failed runs examined, newest first)"
        )));
    }
    let threshold = q.threshold.unwrap_or(DEFAULT_THRESHOLD);
    if !(threshold.is_finite() && (0.0..=1.0).contains(&threshold)) {
        return Err(ApiError::bad_request(format!(
            "invalid threshold {threshold}: use a cosine similarity between 0 and 1"
        )));
    }
    let found = failures::collect(state.runtime.store(), &principal.tenant, limit)
        .await
        .map_err(|e| ApiError::from(RuntimeError::Store(e)))?;
    let embed = state.runtime.semantic_cache().map(|c| c.embedder());
    let report =
        tokio::task::spawn_blocking(move || failures::group(&found, embed.as_deref(), threshold))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "the failure analysis task stopped");
                ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the failure analysis stopped; see the server log",
                )
            })?;
    Ok(Json(report).into_response())
}
