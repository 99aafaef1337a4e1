//! Helpers for crane's spans: the W3C `traceparent` of the current span (sent on outgoing LLM
//! calls), the trace id of a span, and whether prompt/message content may be recorded
//! (`CRANE_TRACE_CONTENT=1`; off by default, truncated).

use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Longest content recorded on a span, in characters.
pub const MAX_CONTENT_CHARS: usize = 1000;

/// `traceparent` for a span, when it belongs to an OpenTelemetry trace.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// The trace id of a span, when it belongs to an OpenTelemetry trace.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// True when prompt and message content may be recorded on spans.
pub fn record_content() -> bool {
    static FLAG: OnceLock<bool> = OnceLock::new();
    *FLAG
        .get_or_init(|| std::env::var("CRANE_TRACE_CONTENT").is_ok_and(|v| v == "1" || v == "true"))
}

/// Content truncated for a span attribute.
pub fn truncate(text: &str) -> String {
    text.chars().take(MAX_CONTENT_CHARS).collect()
}
