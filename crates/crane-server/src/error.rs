//! The HTTP error body `{"error": {"code", "message", "details"}}` and the mapping from runtime
//! errors to status codes. Every failure the server answers goes through here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crane_core::runtime::RuntimeError;
use crane_core::store::StoreError;
use serde_json::{Value, json};

/// An HTTP error with a stable machine-readable code.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// Seconds for the `Retry-After` header, when the client should come back later.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        response
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let message = e.to_string();
        match e {
            RuntimeError::EmptyPrompt => {
                Self::new(StatusCode::BAD_REQUEST, "empty_prompt", message)
            }
            RuntimeError::PromptTooLong { len, limit } => {
                Self::new(StatusCode::BAD_REQUEST, "prompt_too_long", message)
                    .with_details(json!({"length": len, "limit": limit}))
            }
            RuntimeError::InvalidRequest(_) => Self::bad_request(message),
            RuntimeError::InvalidPlan(crane_core::planning::PlanError::UnknownPlanner {
                known,
                aliases,
                ..
            }) => Self::new(StatusCode::BAD_REQUEST, "unknown_planner", message)
                .with_details(json!({"variants": known, "aliases": aliases})),
            RuntimeError::InvalidPlan(e) => {
                let details = match &e {
                    crane_core::planning::PlanError::Invalid { violations } => {
                        json!({"violations": violations})
                    }
                    _ => Value::Null,
                };
                Self::new(StatusCode::BAD_REQUEST, "invalid_plan", message).with_details(details)
            }
            RuntimeError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            RuntimeError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            RuntimeError::Overloaded { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
            }
            RuntimeError::ShuttingDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            RuntimeError::BudgetExhausted(refusal) => {
                let mut error =
                    Self::new(StatusCode::TOO_MANY_REQUESTS, "budget_exhausted", message)
                        .with_details(json!({
                            "budget": refusal.status,
                            "resets_at": refusal.status.resets_at,
                            "retry_after_secs": refusal.retry_after_secs,
                        }));
                error.retry_after = Some(refusal.retry_after_secs);
                error
            }
            RuntimeError::Store(StoreError::Unavailable(why)) => {
                tracing::warn!(%why, "the database is unavailable");
                let mut error = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    format!("crane cannot reach its database ({why}); retry shortly"),
                );
                error.retry_after = Some(1);
                error
            }
            RuntimeError::Store(error) => {
                tracing::error!(%error, "store error while answering a request");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "crane could not read or write its store; see the server log",
                )
            }
        }
    }
}
