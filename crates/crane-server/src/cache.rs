//! `GET /cache` (viewer): the semantic plan cache's counters — entries (of the caller's
//! tenant), exact and semantic hits, misses, refused near-hits by reason, the mean similarity
//! of hits; `{"enabled": false}` when the cache is off. `DELETE /cache` (admin): deletes the
//! caller's tenant's entries on every replica (audited).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use crane_core::access::Principal;
use crane_core::store::AuditEntry;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /cache`.
pub async fn stats(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
) -> Result<Response, ApiError> {
    let Some(cache) = state.runtime.semantic_cache() else {
        return Ok(Json(json!({"enabled": false})).into_response());
    };
    let mut body = serde_json::to_value(cache.stats()).unwrap_or(Value::Null);
    // The caller's tenant's entries only: other tenants' counts are not its business.
    body["entries"] = json!(cache.entries_of(&principal.tenant));
    Ok(Json(body).into_response())
}

/// `DELETE /cache`.
pub async fn clear(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
) -> Result<Response, ApiError> {
    let Some(cache) = state.runtime.semantic_cache() else {
        return Ok(Json(json!({"enabled": false, "deleted": 0})).into_response());
    };
    let deleted = cache
        .clear(&principal.tenant)
        .await
        .map_err(crane_core::runtime::RuntimeError::from)?;
    let entry = AuditEntry {
        tenant: principal.tenant.clone(),
        actor: principal.actor().to_owned(),
        action: "cache.cleared".into(),
        target: "semantic".into(),
        details: json!({"deleted": deleted}),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    if let Err(error) = state.runtime.store().audit(entry).await {
        tracing::error!(%error, "could not write the audit log");
    }
    Ok(Json(json!({"enabled": true, "deleted": deleted})).into_response())
}
