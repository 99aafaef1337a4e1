//! Per-request middleware: a trace id for every response (`X-Trace-ID`), taken from a valid
//! W3C `traceparent` request header or made fresh, plus HTTP request metrics labelled by route
//! template (never the raw path, so label values stay bounded).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace id of the current request, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct TraceId(pub String);

/// Parses `traceparent` (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`); returns the
/// trace id when the header is well formed and the id is not all zeros.
pub fn parse_traceparent(value: &str) -> Option<String> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let span_id = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    if !hex(version, 2)
        || version == "ff"
        || !hex(trace_id, 32)
        || !hex(span_id, 16)
        || !hex(flags, 2)
    {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if trace_id.bytes().all(|b| b == b'0') || span_id.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(trace_id.to_owned())
}

fn fresh_trace_id() -> String {
    format!("{:032x}", rand::random::<u128>() | 1)
}

/// Reads W3C trace context from request headers.
struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Adds `X-Trace-ID`, opens the request's server span (joined to an incoming `traceparent`)
/// and records HTTP metrics.
pub async fn middleware(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let incoming = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    let span = tracing::debug_span!(
        "http",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    let mut trace_id = None;
    if crate::telemetry::exporting() {
        if incoming.is_some() {
            let cx = opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&HeaderExtractor(req.headers()))
            });
            let _ = span.set_parent(cx);
        }
        trace_id = crane_core::telemetry::trace_id(&span);
    }
    let trace_id = trace_id.or(incoming).unwrap_or_else(fresh_trace_id);
    req.extensions_mut().insert(TraceId(trace_id.clone()));
    let mut response = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    if let Ok(v) = HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert("x-trace-id", v);
    }
    let status = response.status().as_u16().to_string();
    metrics::counter!("crane_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("crane_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing_follows_w3c() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(ok).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(
            parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(parse_traceparent("garbage"), None);
        assert_eq!(
            parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(fresh_trace_id().len(), 32);
    }
}
