//! Per-request middleware: a trace id for every response (`X-Trace-ID`), taken from a valid
//! W3C `traceparent` request header or made fresh; the request's trace sampled where it comes in
//! (with crane's default sampler: a dropped trace builds no span at all); plus HTTP request
//! metrics labelled by route template (never the raw path, so label values stay bounded).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crane_telemetry::RequestSampling;

/// The trace id of the current request, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct TraceId(pub String);

/// What a valid `traceparent` request header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub trace_id: String,
    /// The sampled flag: the caller records this trace.
    pub sampled: bool,
}

/// Parses `traceparent` (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`); returns the
/// trace id and sampled flag when the header is well formed and the ids are not all zeros.
pub fn parse_traceparent(value: &str) -> Option<Incoming> {
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
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(Incoming {
        trace_id: trace_id.to_owned(),
        sampled: flags & 1 == 1,
    })
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

/// The request method as a bounded label (span attribute and metrics): the standard methods,
/// anything else `_OTHER` (OpenTelemetry HTTP semantic conventions), so a client sending made-up
/// methods cannot grow the metric series without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// Adds `X-Trace-ID`, opens the request's server span (joined to an incoming `traceparent`)
/// unless the request's trace is dropped, and records HTTP metrics.
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
    let method = method_label(req.method()).to_owned();
    let (parent_sampled, mut trace_id) = match incoming {
        Some(incoming) => (Some(incoming.sampled), incoming.trace_id),
        None => (None, fresh_trace_id()),
    };
    let sampling = crane_telemetry::request_sampling(parent_sampled, &trace_id);
    let mut response = if sampling == RequestSampling::Drop {
        // Not recorded: no span, and runs started here are marked so that none of theirs is
        // built either. The trace id still answers X-Trace-ID and goes on the run.
        req.extensions_mut().insert(TraceId(trace_id.clone()));
        crane_core::telemetry::untraced(next.run(req)).await
    } else {
        let span = tracing::debug_span!(
            "http",
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
        );
        if sampling != RequestSampling::Off {
            if parent_sampled.is_some() {
                let cx = opentelemetry::global::get_text_map_propagator(|p| {
                    p.extract(&HeaderExtractor(req.headers()))
                });
                let _ = span.set_parent(cx);
            }
            // A root trace's id is the one the exporter gave it.
            if let Some(id) = crane_core::telemetry::trace_id(&span) {
                trace_id = id;
            }
        }
        req.extensions_mut().insert(TraceId(trace_id.clone()));
        let response = next.run(req).instrument(span.clone()).await;
        span.record("http.response.status_code", response.status().as_u16());
        response
    };
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
            parse_traceparent(ok),
            Some(Incoming {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                sampled: true
            })
        );
        assert_eq!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .map(|i| i.sampled),
            Some(false)
        );
        assert_eq!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03")
                .map(|i| i.sampled),
            Some(true)
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
