//! Handlers of the key and audit endpoints (admin keys, within their own tenant):
//! `POST /keys` `{"role", "name"?}` → the new key, shown once; `GET /keys` (ids, roles, names,
//! times — never a key or its hash); `DELETE /keys/{key_id}` (revoke; works at once on this
//! process, within a second everywhere); `GET /audit` (newest first, paged).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use crane_core::access::{Principal, Role, generate_key};
use crane_core::runtime::RuntimeError;
use crane_core::store::{ApiKeyRow, AuditEntry};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// Body of `POST /keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub role: String,
    pub name: Option<String>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn store_error(e: crane_core::store::StoreError) -> ApiError {
    ApiError::from(RuntimeError::Store(e))
}

/// `POST /keys`: a new key of the caller's tenant.
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let new: NewKey = crate::runs::json_body(&headers, body)?;
    let role: Role = new.role.parse().map_err(ApiError::bad_request)?;
    if let Some(name) = &new.name
        && (name.chars().count() > 200 || name.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "name: at most 200 characters, no control characters",
        ));
    }
    let generated = generate_key();
    let row = ApiKeyRow {
        key_id: generated.key_id.clone(),
        tenant: principal.tenant.clone(),
        role,
        name: new.name,
        hash: generated.hash.clone(),
        created_at: now(),
        revoked_at: None,
    };
    let store = state.runtime.store();
    store.insert_api_key(&row).await.map_err(store_error)?;
    store
        .audit(AuditEntry {
            tenant: principal.tenant.clone(),
            actor: principal.actor().to_owned(),
            action: "key.created".into(),
            target: row.key_id.clone(),
            details: json!({"role": role, "name": row.name}),
            at: row.created_at.clone(),
        })
        .await
        .map_err(store_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "key_id": row.key_id,
            "key": generated.key,
            "tenant": row.tenant,
            "role": role,
            "name": row.name,
            "created_at": row.created_at,
        })),
    )
        .into_response())
}

/// `GET /keys`: the caller's tenant's keys.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let keys = state
        .runtime
        .store()
        .list_api_keys(Some(&principal.tenant))
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "keys": keys })).into_response())
}

/// `DELETE /keys/{key_id}`: revokes one of the caller's tenant's keys.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(key_id): Path<String>,
) -> Result<Response, ApiError> {
    let store = state.runtime.store();
    let at = now();
    let revoked = store
        .revoke_api_key(&key_id, Some(&principal.tenant), &at)
        .await
        .map_err(store_error)?;
    let Some(key) = revoked else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("key {key_id} not found; GET /keys lists this tenant's keys"),
        ));
    };
    state.auth.forget(&key_id);
    store
        .audit(AuditEntry {
            tenant: principal.tenant.clone(),
            actor: principal.actor().to_owned(),
            action: "key.revoked".into(),
            target: key_id,
            details: json!({}),
            at,
        })
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "key": key })).into_response())
}

/// `GET /audit`: the caller's tenant's audit log, newest first.
pub async fn audit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<crate::paging::PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (limit, cursor) = crate::paging::page_query(query)?;
    let page = state
        .runtime
        .store()
        .list_audit(&principal.tenant, limit, cursor)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({
        "entries": page.entries,
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    }))
    .into_response())
}
