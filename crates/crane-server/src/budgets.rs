//! `GET /budgets`: the caller's tenant's spend budgets in their current windows — used and
//! allowed tokens and USD, the ratio, whether the budget is spent, and when it resets.

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use crane_core::access::Principal;
use serde_json::json;

use crate::state::AppState;

/// `GET /budgets`.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let budgets = state
        .runtime
        .budgets()
        .map(|b| b.statuses(&principal.tenant))
        .unwrap_or_default();
    Json(json!({ "budgets": budgets })).into_response()
}
