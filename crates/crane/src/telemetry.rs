//! Logs and traces. Logs: `tracing-subscriber` fmt (text or JSON) filtered by `RUST_LOG`.
//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set,
//! crane's spans are exported over OTLP/HTTP (protobuf) with a batch processor; the standard
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME` and `OTEL_TRACES_SAMPLER(_ARG)` variables
//! are honoured by the OpenTelemetry SDK itself. Nothing is exported otherwise.
//!
//! crane's own spans are at DEBUG level and enabled for the OpenTelemetry layer only (per-layer
//! filters), so with export off and logs at info they are never created: the hot path stays
//! cheap. With export on, [`SampledTraces`] keeps the layer away from the inner spans of traces
//! the sampler dropped, so an unsampled run costs two spans (`http`, `run`) instead of all of
//! them.

use std::sync::{Arc, OnceLock};

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::dispatcher::WeakDispatch;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::util::SubscriberInitExt;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Which of crane's spans and events (targets `crane*`, DEBUG and above) the OpenTelemetry
/// layer sees: all of them, except inside a trace the sampler dropped.
///
/// tracing-opentelemetry builds OpenTelemetry data for every span it sees (a span builder with
/// its attributes, ids, a sampling decision, a context), sampled or not, and the registry stores
/// and enters every span some layer wants. With the default 10% sampling that was most of the
/// export cost. So once a trace's sampling decision is known, an unsampled trace keeps only:
/// - spans at INFO or above (the `run` span: it carries the trace into the worker task, so the
///   spans created there find their trace instead of starting new ones);
/// - trace edges, spans with an `otel.kind` field (`http`: its trace id answers `X-Trace-ID`;
///   `chat`: its context goes to the model server as `traceparent`, with the sampled flag off).
///
/// Every other span or event is kept only when the nearest enclosing span the layer saw is in a
/// sampled trace (or when there is none: it starts a trace). That follows the parent's sampled
/// flag, as the parent-based samplers do. A sampled trace keeps its full span tree.
///
/// Used twice: as the OpenTelemetry layer's per-layer filter, and (when the logs want nothing
/// below INFO) in [`SkipUnsampled`] in front of the whole subscriber.
#[derive(Clone)]
struct SampledTraces {
    targets: Targets,
    /// The installed subscriber, set once it is installed: reading a span's OpenTelemetry
    /// context needs it, and a filter runs inside the dispatcher, where
    /// `dispatcher::get_default` is not available.
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

/// Cached on a span the OpenTelemetry layer saw: whether its trace is sampled.
#[derive(Debug, Clone, Copy)]
struct TraceSampled(bool);

impl SampledTraces {
    fn new(targets: Targets, dispatch: Arc<OnceLock<WeakDispatch>>) -> Self {
        Self { targets, dispatch }
    }

    /// A span every trace keeps (see the type's documentation).
    fn always_kept(meta: &Metadata<'_>) -> bool {
        meta.is_span()
            && (*meta.level() <= Level::INFO || meta.fields().field("otel.kind").is_some())
    }

    /// Whether a span or event inside `parent` (the nearest enclosing span) is kept.
    fn keep<S>(&self, meta: &Metadata<'_>, parent: Option<SpanRef<'_, S>>) -> bool
    where
        S: for<'a> LookupSpan<'a>,
    {
        Self::always_kept(meta) || parent.is_none_or(|parent| self.sampled(&parent))
    }

    /// Whether `span`'s trace is sampled: decided (and the span started) by the OpenTelemetry
    /// layer on first use, then cached on the span. A span without OpenTelemetry data (not seen
    /// by the layer) counts as sampled, which leaves the decision to the layer as before.
    fn sampled<S>(&self, span: &SpanRef<'_, S>) -> bool
    where
        S: for<'a> LookupSpan<'a>,
    {
        if let Some(TraceSampled(sampled)) = span.extensions().get::<TraceSampled>() {
            return *sampled;
        }
        // No extension guard may be held here: reading the context locks the span's data.
        let sampled = self
            .dispatch
            .get()
            .and_then(WeakDispatch::upgrade)
            .and_then(|dispatch| tracing_opentelemetry::get_otel_context(&span.id(), &dispatch))
            .is_none_or(|cx| cx.span().span_context().is_sampled());
        span.extensions_mut().replace(TraceSampled(sampled));
        sampled
    }
}

impl<S> Filter<S> for SampledTraces
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        self.targets.would_enable(meta.target(), meta.level())
            && self.keep(meta, cx.lookup_current())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.targets.would_enable(meta.target(), meta.level()) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        <Targets as Filter<S>>::max_level_hint(&self.targets)
    }
}

/// In front of the whole subscriber when the log filter wants nothing below INFO: a crane DEBUG
/// span or event of an unsampled trace is then wanted by no layer, and disabling it here keeps
/// it from being created at all. (A per-layer filter alone cannot: the registry still creates,
/// enters and closes a span that every per-layer filter rejected at run time.)
struct SkipUnsampled {
    traces: SampledTraces,
    /// The most verbose level the log filter may want.
    logs: LevelFilter,
}

impl SkipUnsampled {
    /// Whether this layer may disable `meta`: one of crane's, below what the logs want, and
    /// not a span every trace keeps.
    fn may_skip(&self, meta: &Metadata<'_>) -> bool {
        LevelFilter::from_level(*meta.level()) > self.logs
            && self
                .traces
                .targets
                .would_enable(meta.target(), meta.level())
            && !SampledTraces::always_kept(meta)
    }
}

impl<S> Layer<S> for SkipUnsampled
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.may_skip(meta) {
            Interest::sometimes()
        } else {
            // No opinion: the layers below decide.
            Interest::always()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        !self.may_skip(meta) || self.traces.keep(meta, cx.lookup_current())
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // What the OpenTelemetry layer may want; the layers below decide the rest.
        <Targets as Filter<S>>::max_level_hint(&self.traces.targets)
    }
}

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

/// crane's spans and events (every `crane*` target) at DEBUG and above.
fn otel_targets() -> Targets {
    Targets::new()
        .with_target("crane", Level::DEBUG)
        .with_target("crane_core", Level::DEBUG)
}

/// Installs logging (and trace export when configured). `default_level` applies when
/// `RUST_LOG` is unset.
pub fn init(json_logs: bool, default_level: &str) {
    let env_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let log_level = env_filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
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
            let dispatch = Arc::new(OnceLock::new());
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
                .with_context_activation(false);
            let traces = SampledTraces::new(otel_targets(), dispatch.clone());
            let otel = otel.with_filter(traces.clone());
            // Logs at INFO or less never want crane's DEBUG spans: unsampled ones need not exist.
            let skip = (log_level <= LevelFilter::INFO).then_some(SkipUnsampled {
                traces,
                logs: log_level,
            });
            let _ = PROVIDER.set(provider);
            if registry.with(otel).with(skip).try_init().is_ok() {
                tracing::dispatcher::get_default(|installed| {
                    let _ = dispatch.set(installed.downgrade());
                });
            }
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::*;

    /// Keeps every exported span.
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collect {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    /// A caller's context, sampled or not (what a `traceparent` header carries).
    fn remote(trace: u128, sampled: bool) -> opentelemetry::Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let sc = SpanContext::new(
            TraceId::from(trace),
            SpanId::from(7u64),
            flags,
            true,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(sc)
    }

    /// One request: http → run → plan → (validate, chat) plus an event; returns the trace
    /// context the chat span would send as `traceparent`, and whether `plan` was created.
    fn request(trace: u128, sampled: bool) -> (SpanContext, bool) {
        let http = tracing::debug_span!(target: "crane::server", "http", otel.kind = "server");
        let _ = http.set_parent(remote(trace, sampled));
        http.in_scope(|| {
            let run = tracing::info_span!(target: "crane_core::runtime", "run", run_id = "r1");
            run.in_scope(|| {
                let plan = tracing::debug_span!(target: "crane_core::planning", "plan");
                let created = !plan.is_disabled();
                plan.in_scope(|| {
                    tracing::debug!(target: "crane_core::planning", "planned");
                    tracing::debug_span!(target: "crane_core::planning", "validate_plan")
                        .in_scope(|| {});
                    let chat = tracing::debug_span!(
                        target: "crane_core::planning::llm",
                        "chat",
                        otel.kind = "client"
                    );
                    let sc = chat.context().span().span_context().clone();
                    (sc, created)
                })
            })
        })
    }

    /// Runs a sampled and an unsampled request through the OpenTelemetry layer with
    /// [`SampledTraces`], plus either [`SkipUnsampled`] (logs at INFO) or a layer that wants
    /// every span (logs at DEBUG); checks what was exported and what was created.
    fn check(logs_at_info: bool) {
        let spans = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
                opentelemetry_sdk::trace::Sampler::AlwaysOff,
            )))
            .build();
        let dispatch = Arc::new(OnceLock::new());
        let traces = SampledTraces::new(otel_targets(), dispatch.clone());
        let otel = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_filter(traces.clone());
        let skip = logs_at_info.then(|| SkipUnsampled {
            traces,
            logs: LevelFilter::INFO,
        });
        let logs = (!logs_at_info).then_some(tracing_subscriber::layer::Identity::new());
        let subscriber = tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(logs)
                .with(otel)
                .with(skip),
        );
        let _ = dispatch.set(subscriber.downgrade());

        let (sampled, unsampled) = tracing::dispatcher::with_default(&subscriber, || {
            (request(1, true), request(2, false))
        });

        // A sampled trace keeps its whole tree, parented as before.
        let (chat, plan_created) = sampled;
        assert!(plan_created);
        assert!(chat.is_sampled());
        assert_eq!(chat.trace_id(), TraceId::from(1u128));
        let exported = spans.0.lock().unwrap().clone();
        let names: Vec<&str> = exported.iter().map(|s| s.name.as_ref()).collect();
        for name in ["http", "run", "plan", "validate_plan", "chat"] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        assert!(
            exported
                .iter()
                .all(|s| s.span_context.trace_id() == TraceId::from(1u128)),
            "only the sampled trace is exported"
        );
        let id = |name: &str| {
            exported
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.span_context.span_id())
        };
        let parent = |name: &str| {
            exported
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.parent_span_id)
        };
        assert_eq!(parent("run"), id("http"));
        assert_eq!(parent("plan"), id("run"));
        assert_eq!(parent("validate_plan"), id("plan"));
        assert_eq!(parent("chat"), id("plan"));
        let planned = exported.iter().find(|s| s.name == "plan").unwrap();
        assert_eq!(planned.events.len(), 1, "the event inside plan is kept");

        // An unsampled trace: the chat span still carries the caller's trace with the sampled
        // flag off (what goes out as `traceparent`); its inner spans exist only when the logs
        // want them.
        let (chat, plan_created) = unsampled;
        assert!(chat.is_valid());
        assert!(!chat.is_sampled());
        assert_eq!(chat.trace_id(), TraceId::from(2u128));
        assert_eq!(plan_created, !logs_at_info);
    }

    #[test]
    fn unsampled_traces_keep_only_their_edges_and_run_spans() {
        check(true);
        check(false);
    }
}
