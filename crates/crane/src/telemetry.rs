//! Logs and traces. Logs: `tracing-subscriber` fmt (text or JSON) filtered by `RUST_LOG`.
//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set,
//! crane's spans are exported over OTLP/HTTP (protobuf) with a batch processor; the standard
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME` and `OTEL_TRACES_SAMPLER(_ARG)` variables
//! are honoured by the OpenTelemetry SDK itself. Nothing is exported otherwise.
//!
//! crane's own spans are at DEBUG level and enabled for the OpenTelemetry layer only (per-layer
//! filters), so with export off and logs at info they are never created: the hot path stays
//! cheap.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Share of root traces sampled when `OTEL_TRACES_SAMPLER` is unset.
pub const DEFAULT_SAMPLE_RATIO: f64 = 0.1;

/// True when OTLP trace export is configured in the environment.
pub fn export_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

/// True when spans are being exported (set once at start).
pub fn exporting() -> bool {
    PROVIDER.get().is_some()
}

fn provider() -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("could not build the OTLP exporter: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let service = match service {
        Some(s) => s,
        None => {
            resource = resource.with_service_name("crane");
            "crane".to_owned()
        }
    };
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        // Arize Phoenix groups traces into projects by this attribute.
        .with_attribute(opentelemetry::KeyValue::new(
            "openinference.project.name",
            service,
        ))
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource);
    // crane's default when OTEL_TRACES_SAMPLER is unset: keep every trace a caller already
    // sampled (W3C traceparent flag) and DEFAULT_SAMPLE_RATIO of the others, so export costs
    // little at full load. OTEL_TRACES_SAMPLER=parentbased_always_on keeps everything.
    if std::env::var("OTEL_TRACES_SAMPLER").is_err() {
        builder = builder.with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
            opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(DEFAULT_SAMPLE_RATIO),
        )));
    }
    Ok(builder.build())
}

/// Installs logging (and trace export when configured). `default_level` applies when
/// `RUST_LOG` is unset.
pub fn init(json_logs: bool, default_level: &str) {
    let env_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json_logs {
        // `spans` lists the enclosing spans with their fields: inside a run, the `run` span
        // with run_id and trace_id.
        fmt.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed()
    } else {
        fmt.boxed()
    };
    let registry = tracing_subscriber::registry().with(fmt.with_filter(env_filter));
    if !export_configured() {
        let _ = registry.try_init();
        return;
    }
    match provider() {
        Ok(provider) => {
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            let tracer = provider.tracer("crane");
            // Source locations, thread names and busy/idle timing are left off: they cost time on
            // every span enter/exit and add nothing a run's trace needs.
            let otel = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_target(false)
                .with_level(false)
                // crane reads span contexts explicitly (traceparent on LLM calls); activating
                // the OpenTelemetry context on every poll of an instrumented future is pure cost.
                .with_context_activation(false)
                .with_filter(
                    Targets::new()
                        .with_target("crane", tracing::Level::DEBUG)
                        .with_target("crane_core", tracing::Level::DEBUG),
                );
            let _ = PROVIDER.set(provider);
            let _ = registry.with(otel).try_init();
        }
        Err(error) => {
            let _ = registry.try_init();
            tracing::error!(%error, "OTLP trace export is configured but could not start; traces are not exported");
        }
    }
}

/// Flushes and stops the exporter (call before exit).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.shutdown()
    {
        tracing::warn!(%error, "trace exporter shutdown failed");
    }
}
