//! The OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Written by hand as JSON (openapi.json beside this file) rather than generated: the API is
//! small, and a test checks the document lists exactly the routes in [`super::ROUTES`] and that
//! each of them is served, so the document cannot drift from the router.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The document's text.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
pub async fn document() -> Response {
    match serde_json::from_str::<Value>(DOCUMENT) {
        Ok(doc) => Json(doc).into_response(),
        Err(e) => super::ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the embedded OpenAPI document is invalid: {e}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn document_lists_exactly_the_routes() {
        let doc: Value = serde_json::from_str(DOCUMENT).unwrap();
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let routed: BTreeSet<(String, String)> = super::super::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, routed);
    }
}
