//! Handlers of the eval endpoints: `GET /evals` (stored `crane eval` results, newest first,
//! summaries only) and `GET /evals/{eval_id}` (one full report).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crane_core::runtime::RuntimeError;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /evals`.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<crane_core::access::Principal>,
    query: Result<Query<crate::paging::PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (limit, cursor) = crate::paging::page_query(query)?;
    let page = state
        .runtime
        .store()
        .list_evals(&principal.tenant, limit, cursor)
        .await
        .map_err(|e| ApiError::from(RuntimeError::Store(e)))?;
    Ok(Json(json!({
        "evals": page.evals,
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    }))
    .into_response())
}

/// `GET /evals/{eval_id}`: the full report.
pub async fn get(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<crane_core::access::Principal>,
    Path(eval_id): Path<String>,
) -> Result<Response, ApiError> {
    match state
        .runtime
        .store()
        .get_eval(&principal.tenant, &eval_id)
        .await
    {
        Ok(Some(eval)) => Ok(Json(eval.report).into_response()),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("eval {eval_id} not found; GET /evals lists stored evals"),
        )),
        Err(e) => Err(RuntimeError::Store(e).into()),
    }
}
