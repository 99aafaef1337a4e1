//! Helpers for crane's spans: the W3C `traceparent` of the current span (sent on outgoing LLM
//! calls), the trace id of a span, whether prompt/message content may be recorded
//! (`CRANE_TRACE_CONTENT=1`; off by default, truncated), and the marker for requests whose trace
//! is not recorded ([`untraced`]).

use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Longest content recorded on a span, in characters.
pub const MAX_CONTENT_CHARS: usize = 1000;

/// Target of the `run` span of a run whose trace is not recorded. The trace exporter ignores
/// spans with this target and everything inside them; logs see the span as usual (same name
/// and fields; `RUST_LOG=crane_core::runtime=…` covers it).
pub const UNTRACED_TARGET: &str = "crane_core::runtime::untraced";

tokio::task_local! {
    /// Set while a request whose trace is not recorded is handled.
    static UNTRACED: ();
}

/// Runs `future` (the handling of one request) as one whose trace is not recorded: the trace
/// sampler dropped it where it came in. Runs it starts are marked so (their `run` span has
/// [`UNTRACED_TARGET`] and their worker runs inside `untraced` too), so exporting traces costs
/// them next to nothing, and their LLM calls send a `traceparent` whose sampled flag is off.
pub async fn untraced<F: std::future::Future>(future: F) -> F::Output {
    UNTRACED.scope((), future).await
}

/// True inside [`untraced`].
pub fn is_untraced() -> bool {
    UNTRACED.try_with(|_| ()).is_ok()
}

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
