//! Handlers of the planner registry: `GET /planners` (variants, default, aliases),
//! `GET /planners/{name}` (a variant, or the variant an alias points to), `GET /prompts` and
//! `GET /prompts/{name}/{version}` (templates with hash and text), `GET /aliases`,
//! `PUT /aliases/{alias}` (move), `POST /aliases/{alias}/rollback`, and
//! `GET /aliases/{alias}/history`. Moves take effect for the next run, without a restart.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use crane_core::access::Principal;
use crane_core::planning::Variant;
use crane_core::runtime::RuntimeError;
use crane_core::runtime::registry::RegistryError;
use crane_core::store::{AliasMove, AuditEntry, RollbackError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::runs::json_body;
use crate::state::AppState;

fn variant_json(v: &Variant, aliases: &std::collections::BTreeMap<String, String>) -> Value {
    let mut body = serde_json::to_value(&v.spec).unwrap_or(Value::Null);
    if let Some(obj) = body.as_object_mut() {
        let pointing: Vec<&String> = aliases
            .iter()
            .filter(|(_, target)| **target == v.spec.name)
            .map(|(alias, _)| alias)
            .collect();
        obj.insert("aliases".into(), json!(pointing));
        obj.insert("config_hash".into(), json!(v.spec.config_hash()));
    }
    body
}

fn registry_error(e: RegistryError) -> ApiError {
    let message = e.to_string();
    match e {
        RegistryError::UnknownVariant { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_planner", message)
        }
        RegistryError::Rollback(RollbackError::Unknown(_)) => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_alias", message)
        }
        RegistryError::Rollback(RollbackError::NothingToUndo { .. })
        | RegistryError::RollbackRefused(_) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", message)
        }
        RegistryError::Rollback(RollbackError::Store(e)) | RegistryError::Store(e) => {
            RuntimeError::Store(e).into()
        }
        _ => ApiError::bad_request(message),
    }
}

/// `GET /planners`.
pub async fn planners(State(state): State<AppState>) -> Response {
    let planners = state.runtime.planners();
    let aliases = planners.aliases();
    Json(json!({
        "default": planners.default_variant().spec.name,
        "aliases": aliases,
        "variants": planners.variants().iter().map(|v| variant_json(v, &aliases)).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// `GET /planners/{name}`: a variant, or the one an alias points to.
pub async fn planner(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let planners = state.runtime.planners();
    let (variant, alias) = planners
        .resolve(Some(&name))
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "unknown_planner", e.to_string()))?;
    let mut body = variant_json(variant, &planners.aliases());
    if let (Some(obj), Some(alias)) = (body.as_object_mut(), alias) {
        obj.insert("resolved_from".into(), json!(alias));
    }
    Ok(Json(body).into_response())
}

/// `GET /prompts`: every template this server knows, with its registration.
pub async fn prompts(State(state): State<AppState>) -> Result<Response, ApiError> {
    let registered = state
        .runtime
        .store()
        .prompt_versions()
        .await
        .map_err(RuntimeError::Store)?;
    let used_by = |name: &str, version: &str| -> Vec<String> {
        state
            .runtime
            .planners()
            .variants()
            .iter()
            .filter(|v| {
                v.spec
                    .prompt
                    .as_ref()
                    .is_some_and(|p| p.name == name && p.version == version)
            })
            .map(|v| v.spec.name.clone())
            .collect()
    };
    let list: Vec<Value> = state
        .prompts
        .entries()
        .map(|e| {
            let t = &e.template;
            let at = registered
                .iter()
                .find(|r| r.name == t.name && r.version == t.version)
                .map(|r| r.registered_at.clone());
            json!({
                "name": t.name, "version": t.version, "hash": t.hash, "source": e.source,
                "registered_at": at, "used_by": used_by(&t.name, &t.version),
            })
        })
        .collect();
    Ok(Json(json!({"prompts": list})).into_response())
}

/// `GET /prompts/{name}/{version}`: one template with its text.
pub async fn prompt(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let entry = state
        .prompts
        .get(&format!("{name}@{version}"))
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()))?;
    let t = &entry.template;
    Ok(Json(json!({
        "name": t.name, "version": t.version, "hash": t.hash, "source": entry.source, "text": t.text,
    }))
    .into_response())
}

/// `GET /aliases`.
pub async fn aliases(State(state): State<AppState>) -> Result<Response, ApiError> {
    // The store is the truth (another process may have moved an alias a moment ago).
    state
        .runtime
        .refresh_aliases()
        .await
        .map_err(RuntimeError::Store)?;
    let planners = state.runtime.planners();
    let list: Vec<Value> = planners
        .aliases()
        .into_iter()
        .map(|(alias, variant)| {
            let version = planners.get(&variant).map(|v| v.spec.version.clone());
            json!({"alias": alias, "variant": variant, "version": version})
        })
        .collect();
    Ok(Json(json!({"aliases": list})).into_response())
}

/// Body of `PUT /aliases/{alias}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveAlias {
    pub variant: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// Body of `POST /aliases/{alias}/rollback` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    #[serde(default)]
    pub note: Option<String>,
}

/// `PUT /aliases/{alias}`: point the alias at a variant.
pub async fn move_alias(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(alias): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: MoveAlias = json_body(&headers, body)?;
    let moved = state
        .runtime
        .move_alias(&alias, req.variant.trim(), req.note.as_deref())
        .await
        .map_err(registry_error)?;
    tracing::info!(alias = %moved.alias, from = ?moved.from, to = %moved.to, "alias moved");
    audit_move(&state, &principal, "alias.moved", &moved).await;
    Ok(Json(moved).into_response())
}

/// Records an alias move in the caller's tenant's audit log (aliases are shared by every
/// tenant; the log says who moved it). A failure to audit is logged, not answered: the move
/// itself is committed.
async fn audit_move(state: &AppState, principal: &Principal, action: &str, moved: &AliasMove) {
    let entry = AuditEntry {
        tenant: principal.tenant.clone(),
        actor: principal.actor().to_owned(),
        action: action.to_owned(),
        target: moved.alias.clone(),
        details: json!({"from": moved.from, "to": moved.to, "note": moved.note}),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    if let Err(error) = state.runtime.store().audit(entry).await {
        tracing::error!(%error, "could not write the audit log");
    }
}

/// `POST /aliases/{alias}/rollback`: move the alias back to its previous target.
pub async fn rollback(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(alias): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let empty = matches!(&body, Ok(b) if b.is_empty());
    let req: Rollback = if empty {
        Rollback::default()
    } else {
        json_body(&headers, body)?
    };
    let moved = state
        .runtime
        .rollback_alias(&alias, req.note.as_deref())
        .await
        .map_err(registry_error)?;
    tracing::info!(alias = %moved.alias, from = ?moved.from, to = %moved.to, "alias rolled back");
    audit_move(&state, &principal, "alias.rolled_back", &moved).await;
    Ok(Json(moved).into_response())
}

/// `GET /aliases/{alias}/history`: every move, oldest first.
pub async fn history(
    State(state): State<AppState>,
    Path(alias): Path<String>,
) -> Result<Response, ApiError> {
    let moves = state
        .runtime
        .store()
        .alias_history(Some(&alias))
        .await
        .map_err(RuntimeError::Store)?;
    if moves.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_alias",
            format!("alias '{alias}' has never been set; GET /aliases lists aliases"),
        ));
    }
    Ok(Json(json!({"alias": alias, "history": moves})).into_response())
}
