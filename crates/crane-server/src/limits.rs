//! Limits at the HTTP edge, so that no client can hold the server's resources without bound and
//! no request can take the process down:
//!
//! - [`HttpLimits`]: the header read timeout, header size and connection cap (enforced by the
//!   accept loop in `accept.rs`) and the request timeout (enforced here).
//! - [`apply`]: the per-request middleware every route gets, inside the trace middleware (so an
//!   answer made here still carries `X-Trace-ID` and is counted in the HTTP metrics): a request
//!   timeout that answers `503 {"error": {"code": "timeout"}}`, and a panic catcher that turns a
//!   handler panic into `500 {"error": {"code": "internal"}}` and logs it, and a guard that
//!   turns any error answer that is not JSON (axum's own rejections — a path parameter that is
//!   not UTF-8, a query string that does not deserialize — are plain text) into the JSON error
//!   body with that text as the message.
//! - [`MAX_JSON_DEPTH`] and [`exceeds_depth`]: JSON request bodies nested deeper than 64 levels
//!   are refused before they are parsed (serde_json's own limit is 128, and a deep `metadata` or
//!   tool input would be walked again by validation and storage).

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::runs::WaitQuery;

/// Deepest nesting of objects and arrays accepted in a JSON request body (the outermost
/// object is level 1).
pub const MAX_JSON_DEPTH: usize = 64;

/// The limits of the HTTP edge. The defaults are the settings' defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a client may take to send a request's line and headers; the connection is
    /// closed when it is over. It also bounds how long an idle keep-alive connection stays
    /// open, since the server is then waiting for the next request's headers.
    pub header_read_timeout: Duration,
    /// How long a request may take, from its headers to the answer's headers (reading the
    /// body included). A `?wait=true` request gets the server's wait bound on top.
    pub request_timeout: Duration,
    /// Most connections served at once. Beyond it the server stops accepting: new connections
    /// wait in the kernel's listen backlog (and, when that is full, the client's connect
    /// retries) until a served connection closes. Nothing is refused.
    pub max_connections: usize,
    /// Largest request line plus headers, in bytes; a larger head is answered `431` and the
    /// connection closed.
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// How long one request may take.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    request: Duration,
    /// The longest `?wait=true` wait (the server's wait timeout).
    wait: Duration,
}

/// Gives every route of `router` the request timeout, the panic catcher and the JSON error
/// guard. Call it before the trace middleware is layered on, so that it sits inside it.
pub fn apply<S>(router: Router<S>, limits: &HttpLimits, wait_timeout: Duration) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let bounds = Bounds {
        request: limits.request_timeout,
        wait: wait_timeout,
    };
    router
        .layer(axum::middleware::from_fn_with_state(
            bounds,
            request_timeout,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response as fn(Box<dyn Any + Send + 'static>) -> Response,
        ))
        .layer(axum::middleware::from_fn(json_errors))
}

/// Whether the answer's body is JSON.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime == "application/json" || mime.ends_with("+json")
        })
}

/// Longest plain-text error body kept as the message.
const MAX_TEXT_ERROR: usize = 4096;

/// Rewrites an error answer (4xx, 5xx) that is not JSON into the JSON error body, keeping its
/// status and headers and its text as the message. The contract is that every error is
/// `{"error": {"code", "message", "details"}}`, and axum's extractors answer their rejections
/// in plain text.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT_ERROR)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "invalid_request",
    };
    let mut answer = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().append(name.clone(), value.clone());
        }
    }
    answer
}

/// Answers `503 timeout` when the request is not answered within its bound. `?wait=true`
/// requests (create and retry wait for the run, at most the wait bound) get the wait bound on
/// top of the request timeout, so the wait itself is never cut short.
async fn request_timeout(State(bounds): State<Bounds>, req: Request, next: Next) -> Response {
    let waits = Query::<WaitQuery>::try_from_uri(req.uri())
        .ok()
        .is_some_and(|Query(q)| q.wait().unwrap_or(false));
    let bound = if waits {
        bounds.request.saturating_add(bounds.wait)
    } else {
        bounds.request
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    match tokio::time::timeout(bound, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
            tracing::warn!(%method, %path, timeout_ms = ms, "request timed out");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request was not answered within {ms} ms (server.request_timeout_ms); \
                     a request body that arrives too slowly ends the same way"
                ),
            )
            .with_details(json!({"timeout_ms": ms}))
            .into_response()
        }
    }
}

/// The answer to a request whose handler panicked: logged with the panic's message, answered
/// with the JSON error body (never a bare 500 page or a dropped connection).
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned());
    tracing::error!(panic = %message, "a request handler panicked; answered 500");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "crane failed while answering this request; see the server log",
    )
    .into_response()
}

/// Whether `body` nests objects and arrays deeper than `max` levels. A linear scan of the
/// brackets outside strings, without recursion, that stops at the first level too deep; it does
/// not check that `body` is valid JSON (the parser does that next).
pub fn exceeds_depth(body: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert!(!exceeds_depth(b"{}", 1));
        assert!(exceeds_depth(b"{\"a\":[]}", 1));
        assert!(!exceeds_depth(nested(64).as_bytes(), 64));
        assert!(exceeds_depth(nested(65).as_bytes(), 64));
        assert!(exceeds_depth(nested(100_000).as_bytes(), 64));
        // Brackets inside strings, escaped quotes included, are text.
        let text = format!(
            "{{\"a\": \"{} \\\" {}\"}}",
            "[".repeat(100),
            "{".repeat(100)
        );
        assert!(!exceeds_depth(text.as_bytes(), 1));
        // Siblings do not add up.
        let wide = format!("[{}]", vec![nested(10); 100].join(","));
        assert!(!exceeds_depth(wide.as_bytes(), 11));
        assert!(exceeds_depth(wide.as_bytes(), 10));
        // Unbalanced or invalid input never panics.
        assert!(!exceeds_depth(b"]]]]}}}\"\\", 1));
    }

    async fn call(app: Router, uri: &str) -> (StatusCode, serde_json::Value) {
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn limits(request_ms: u64) -> HttpLimits {
        HttpLimits {
            request_timeout: Duration::from_millis(request_ms),
            ..HttpLimits::default()
        }
    }

    #[tokio::test]
    async fn a_handler_panic_is_a_json_500() {
        async fn boom() -> &'static str {
            panic!("boom in a handler")
        }
        let app = apply(
            Router::new().route("/boom", get(boom)),
            &limits(1000),
            Duration::ZERO,
        );
        let (status, body) = call(app, "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal", "{body}");
    }

    #[tokio::test]
    async fn extractor_rejections_are_json_errors() {
        async fn by_id(axum::extract::Path(id): axum::extract::Path<String>) -> String {
            id
        }
        async fn text_error() -> (
            StatusCode,
            [(header::HeaderName, &'static str); 1],
            &'static str,
        ) {
            (StatusCode::CONFLICT, [(header::RETRY_AFTER, "1")], "")
        }
        let app = apply(
            Router::new()
                .route("/things/{id}", get(by_id))
                .route("/conflict", get(text_error)),
            &limits(1000),
            Duration::ZERO,
        );
        let (status, body) = call(app.clone(), "/things/%FF").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("UTF-8")),
            "{body}"
        );
        let (status, body) = call(app.clone(), "/things/ok").await;
        assert_eq!(status, StatusCode::OK, "{body}");

        let response = app
            .oneshot(Request::get("/conflict").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert!(is_json(response.headers()));
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
        assert_eq!(body["error"]["message"], "Conflict", "{body}");
    }

    #[tokio::test]
    async fn a_slow_request_is_cut_at_the_bound_but_a_wait_gets_the_wait_bound_on_top() {
        async fn slow() -> &'static str {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "done"
        }
        let app = apply(
            Router::new().route("/slow", get(slow)),
            &limits(50),
            Duration::from_secs(10),
        );
        let (status, body) = call(app.clone(), "/slow").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "timeout", "{body}");
        assert_eq!(body["error"]["details"]["timeout_ms"], 50, "{body}");
        let (status, _) = call(app.clone(), "/slow?wait=true").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = call(app, "/slow?wait=false").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
