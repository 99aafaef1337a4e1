//! The HTTP server: routes, shared state, and a graceful shutdown that drains in-flight runs.
//! Only this crate knows HTTP; it turns requests into runtime calls and runtime errors into
//! JSON error bodies. Depends on the core runtime and the telemetry setup (edge sampling);
//! never on the evaluation harness, experiment tracking or the CLI.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod accept;
pub mod alerts;
mod analysis;
pub mod auth;
mod budgets;
mod cache;
mod error;
mod evals;
mod experiments;
mod keys;
pub mod limits;
mod openapi;
mod paging;
mod registry;
mod runs;
mod state;
pub mod trace;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

pub use error::ApiError;
pub use limits::HttpLimits;
pub use state::AppState;

/// Every route as (method, path template); the OpenAPI document lists exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/runs"),
    ("GET", "/runs"),
    ("GET", "/runs/{run_id}"),
    ("POST", "/runs/{run_id}/retry"),
    ("POST", "/runs/{run_id}/cancel"),
    ("GET", "/tools"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/metrics/planner"),
    ("GET", "/openapi.json"),
    ("GET", "/evals"),
    ("GET", "/evals/{eval_id}"),
    ("GET", "/planners"),
    ("GET", "/planners/{name}"),
    ("GET", "/prompts"),
    ("GET", "/prompts/{name}/{version}"),
    ("GET", "/aliases"),
    ("PUT", "/aliases/{alias}"),
    ("POST", "/aliases/{alias}/rollback"),
    ("GET", "/aliases/{alias}/history"),
    ("POST", "/keys"),
    ("GET", "/keys"),
    ("DELETE", "/keys/{key_id}"),
    ("GET", "/audit"),
    ("GET", "/budgets"),
    ("POST", "/experiments"),
    ("GET", "/experiments"),
    ("GET", "/experiments/{name}"),
    ("POST", "/experiments/{name}/stop"),
    ("POST", "/experiments/{name}/promote"),
    ("POST", "/runs/{run_id}/feedback"),
    ("GET", "/cache"),
    ("DELETE", "/cache"),
    ("GET", "/analysis/failures"),
];

/// Builds the router: the routes, then the edge limits (request timeout, panic catcher), then
/// the trace middleware around everything.
pub fn router(state: AppState, max_body_bytes: usize, limits: &HttpLimits) -> Router {
    let routes = Router::new()
        .route("/runs", post(runs::create).get(runs::list))
        .route("/runs/{run_id}", get(runs::get))
        .route("/runs/{run_id}/retry", post(runs::retry))
        .route("/runs/{run_id}/cancel", post(runs::cancel))
        .route("/tools", get(tools))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/metrics/planner", get(planner_metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/evals", get(evals::list))
        .route("/evals/{eval_id}", get(evals::get))
        .route("/planners", get(registry::planners))
        .route("/planners/{name}", get(registry::planner))
        .route("/prompts", get(registry::prompts))
        .route("/prompts/{name}/{version}", get(registry::prompt))
        .route("/aliases", get(registry::aliases))
        .route("/aliases/{alias}", axum::routing::put(registry::move_alias))
        .route("/aliases/{alias}/rollback", post(registry::rollback))
        .route("/aliases/{alias}/history", get(registry::history))
        .route("/keys", post(keys::create).get(keys::list))
        .route("/keys/{key_id}", axum::routing::delete(keys::revoke))
        .route("/audit", get(keys::audit))
        .route("/budgets", get(budgets::list))
        .route(
            "/experiments",
            post(experiments::create).get(experiments::list),
        )
        .route("/experiments/{name}", get(experiments::get))
        .route("/experiments/{name}/stop", post(experiments::stop))
        .route("/experiments/{name}/promote", post(experiments::promote))
        .route("/runs/{run_id}/feedback", post(experiments::feedback))
        .route("/cache", get(cache::stats).delete(cache::clear))
        .route("/analysis/failures", get(analysis::failures))
        // After routing, so the middleware knows the route template.
        .route_layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            auth::middleware,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes));
    limits::apply(routes, limits, state.wait_timeout)
        .layer(axum::middleware::from_fn(trace::middleware))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    let routes: Vec<String> = ROUTES.iter().map(|(m, p)| format!("{m} {p}")).collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route for {}; see /openapi.json for the API", uri.path()),
    )
    .with_details(json!({"routes": routes}))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; see /openapi.json for the API",
            uri.path()
        ),
    )
}

async fn health(State(state): State<AppState>) -> Response {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "active_runs": state.runtime.active_runs(),
        "queue_depth": state.runtime.queue_depth(),
    }))
    .into_response()
}

async fn tools(State(state): State<AppState>) -> Response {
    Json(json!({"tools": state.runtime.registry().specs()})).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_disabled",
            "metrics are not enabled",
        )
        .into_response();
    };
    metrics::gauge!("crane_active_runs").set(state.runtime.active_runs() as f64);
    metrics::gauge!("crane_queue_depth").set(state.runtime.queue_depth() as f64);
    if let Some(budgets) = state.runtime.budgets() {
        // The current window's ratio: 0 again once a window has reset.
        budgets.publish_gauges();
    }
    for layer in state
        .runtime
        .planners()
        .variants()
        .iter()
        .flat_map(|v| v.planning().layers())
    {
        let provider = layer.provider();
        // 0 closed, 1 half-open, 2 open.
        let value = match provider.breaker_state() {
            crane_llm::BreakerState::Closed => 0.0,
            crane_llm::BreakerState::HalfOpen => 1.0,
            crane_llm::BreakerState::Open => 2.0,
        };
        metrics::gauge!("crane_llm_circuit_breaker_state", "provider" => provider.name().to_owned()).set(value);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

async fn planner_metrics(State(state): State<AppState>) -> Response {
    Json(state.runtime.planners().stats().snapshot()).into_response()
}

/// Serves until SIGINT/SIGTERM within the edge `limits` (see [`limits`]), then stops accepting,
/// lets open connections finish their requests, drains in-flight runs (bounded) and closes the
/// store.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    max_body_bytes: usize,
    drain_timeout: Duration,
    limits: &HttpLimits,
) -> std::io::Result<()> {
    let runtime = state.runtime.clone();
    let app = router(state, max_body_bytes, limits);
    tracing::info!(
        header_read_timeout_ms = limits.header_read_timeout.as_millis(),
        request_timeout_ms = limits.request_timeout.as_millis(),
        max_connections = limits.max_connections,
        max_header_bytes = limits.max_header_bytes,
        max_body_bytes,
        "HTTP limits"
    );
    accept::serve_connections(listener, app, limits, shutdown_signal()).await;
    tracing::info!("shutting down: draining in-flight runs");
    let left = runtime.drain(drain_timeout).await;
    if left > 0 {
        tracing::warn!(
            left,
            "runs still unfinished at shutdown; they resume at the next start"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
