//! Logs and traces. Logs: `tracing-subscriber` fmt (text or JSON) filtered by `RUST_LOG`.
//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set,
//! crane's spans are exported over OTLP/HTTP (protobuf) with a batch processor; the standard
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME` and `OTEL_TRACES_SAMPLER(_ARG)` variables
//! are honoured. Nothing is exported otherwise.
//!
//! crane's own spans are at DEBUG level and enabled for the OpenTelemetry layer only (per-layer
//! filters), so with export off and logs at info they are never created: the hot path stays
//! cheap. With export on and a parent-based sampler (crane's default: `parentbased_always_on`
//! with a cap on root traces per second), an HTTP request is sampled where it comes in
//! ([`request_sampling`]) and a dropped one builds no span at all; [`SampledTraces`] keeps the
//! OpenTelemetry layer away from everything inside it.
//!
//! Also here: `trace_export` (the exporter wrapped so failures are counted and logged) and
//! `metrics_help` (the `# HELP` text of every Prometheus metric). Depends on the core runtime's
//! telemetry markers only; never on the server, the store or planning.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod metrics_help;
mod trace_export;

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

use crane_core::telemetry::UNTRACED_TARGET;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt as _, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample,
};
use tracing::dispatcher::WeakDispatch;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::{LookupSpan, Registry, SpanRef};
use tracing_subscriber::util::SubscriberInitExt;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Which of crane's spans and events (targets `crane*`, DEBUG and above) the OpenTelemetry
/// layer sees: all of them, except inside a trace that is not recorded.
///
/// tracing-opentelemetry builds OpenTelemetry data for every span it sees (a span builder with
/// its attributes, ids, a sampling decision, a context), sampled or not, and the registry stores
/// and enters every span some layer wants. So the layer sees as little as possible of traces
/// that will not be exported:
/// - a trace dropped where the request came in (crane's default sampler decides there, see
///   [`request_sampling`]) has its `run` span under [`UNTRACED_TARGET`]: the layer sees neither
///   it nor anything inside it. Such a request costs what it costs with export off.
/// - a trace the SDK's sampler dropped (an `OTEL_TRACES_SAMPLER` the operator chose) keeps
///   only spans at INFO or above (the `run` span: it carries the trace into the worker task, so
///   the spans created there find their trace instead of starting new ones) and trace edges,
///   spans with an `otel.kind` field (`http`: its trace id answers `X-Trace-ID`; `chat`: its
///   context goes to the model server as `traceparent`, with the sampled flag off).
///
/// Every other span or event follows the nearest enclosing span whose trace is known, as the
/// parent-based samplers do; with no enclosing span it starts a trace. A sampled trace keeps
/// its full span tree.
///
/// Used twice: as the OpenTelemetry layer's per-layer filter, and (when the logs want nothing
/// below INFO) in [`SkipUnsampled`] in front of the whole subscriber.
#[derive(Clone)]
struct SampledTraces {
    targets: Targets,
    /// The installed subscriber, set once it is installed: reading a span's OpenTelemetry
    /// context and walking the spans a filter hides need it, and a filter runs inside the
    /// dispatcher, where `dispatcher::get_default` is not available.
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

/// What is known about the trace of a span, cached on the span once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TraceState {
    /// Exported.
    Sampled,
    /// Dropped by the SDK's sampler: its context still travels (edges and runs kept).
    Unsampled,
    /// Dropped where the request came in: nothing of it is built.
    Untraced,
}

impl SampledTraces {
    fn new(targets: Targets, dispatch: Arc<OnceLock<WeakDispatch>>) -> Self {
        Self { targets, dispatch }
    }

    /// A span every recorded or SDK-unsampled trace keeps (see the type's documentation).
    fn always_kept(meta: &Metadata<'_>) -> bool {
        meta.is_span()
            && (*meta.level() <= Level::INFO || meta.fields().field("otel.kind").is_some())
    }

    /// Whether a span or event inside a trace in `state` is kept (`None`: no enclosing span).
    fn keep(meta: &Metadata<'_>, state: Option<TraceState>) -> bool {
        match state {
            None | Some(TraceState::Sampled) => true,
            Some(TraceState::Unsampled) => Self::always_kept(meta),
            Some(TraceState::Untraced) => false,
        }
    }

    /// The state of the trace `span` belongs to: the first of `span` and its ancestors that
    /// is untraced, has a cached state, or was seen by the OpenTelemetry layer (whose sampling
    /// decision then counts) decides, and the answer is cached on `span`. With none of these
    /// the trace counts as sampled, which leaves the decision to the layer.
    fn state<R>(&self, span: &SpanRef<'_, R>) -> TraceState
    where
        R: for<'a> LookupSpan<'a>,
    {
        let mut state = TraceState::Sampled;
        for (depth, ancestor) in span.scope().enumerate() {
            if let Some(known) = ancestor.extensions().get::<TraceState>() {
                if depth == 0 {
                    return *known;
                }
                state = *known;
                break;
            }
            if ancestor.metadata().target() == UNTRACED_TARGET {
                state = TraceState::Untraced;
                break;
            }
            // No extension guard may be held here: reading the context locks the span's data.
            let context = self
                .dispatch
                .get()
                .and_then(WeakDispatch::upgrade)
                .and_then(|dispatch| {
                    tracing_opentelemetry::get_otel_context(&ancestor.id(), &dispatch)
                });
            if let Some(cx) = context {
                state = if cx.span().span_context().is_sampled() {
                    TraceState::Sampled
                } else {
                    TraceState::Unsampled
                };
                break;
            }
        }
        span.extensions_mut().replace(state);
        state
    }
}

impl<S> Filter<S> for SampledTraces
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if !self.targets.would_enable(meta.target(), meta.level()) {
            return false;
        }
        if crane_core::telemetry::is_untraced() {
            // Handling a request, or running a run, whose trace is not recorded.
            return false;
        }
        // The enclosing span, whether or not this layer saw it (a per-layer filter's context
        // hides the spans it filtered out, the untraced `run` span among them).
        let Some(current) = cx.current_span().id().cloned() else {
            return true;
        };
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return true;
        };
        let state = dispatch
            .downcast_ref::<Registry>()
            .and_then(|registry| registry.span(&current))
            .map(|span| self.state(&span));
        Self::keep(meta, state)
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
/// span or event of a trace that is not exported is then wanted by no layer, and disabling it
/// here keeps it from being created at all. (A per-layer filter alone cannot: the registry
/// still creates, enters and closes a span that every per-layer filter rejected at run time.)
struct SkipUnsampled {
    traces: SampledTraces,
    /// The most verbose level the log filter may want.
    logs: LevelFilter,
}

impl SkipUnsampled {
    /// Whether this layer may disable `meta`: one of crane's, below what the logs want.
    fn may_skip(&self, meta: &Metadata<'_>) -> bool {
        LevelFilter::from_level(*meta.level()) > self.logs
            && self
                .traces
                .targets
                .would_enable(meta.target(), meta.level())
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
        if !self.may_skip(meta) {
            return true;
        }
        // Handling a request, or running a run, whose trace is not recorded.
        !crane_core::telemetry::is_untraced()
            && SampledTraces::keep(
                meta,
                cx.lookup_current().map(|span| self.traces.state(&span)),
            )
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // What the OpenTelemetry layer may want; the layers below decide the rest.
        <Targets as Filter<S>>::max_level_hint(&self.traces.targets)
    }
}

/// crane's sampler when `OTEL_TRACES_SAMPLER` is unset: OpenTelemetry's own default,
/// `parentbased_always_on` (every trace kept), with crane's cap on root traces per second.
pub const DEFAULT_SAMPLER: &str = "parentbased_always_on";

/// Most root traces crane's default sampler keeps per second, unless
/// `CRANE_TRACES_MAX_PER_SECOND` says otherwise.
pub const DEFAULT_MAX_TRACES_PER_SECOND: u32 = 100;

/// A parent-based sampler decided where requests come in ([`request_sampling`]), set once at
/// start: crane's default, or a `parentbased_*` `OTEL_TRACES_SAMPLER`.
struct EdgeSampling {
    /// Decides root traces (requests without a caller's sampled flag) by trace id.
    root: Sampler,
    /// crane's default only: at most this many root traces kept per second, so the cost of
    /// export (and the load on the trace backend) stays bounded however busy crane is. A
    /// fixed ratio alone would export 1 000 traces/s at 10 000 runs/s.
    cap: Option<governor::DefaultDirectRateLimiter>,
}

static EDGE_SAMPLER: OnceLock<EdgeSampling> = OnceLock::new();

/// How the trace of an incoming HTTP request is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestSampling {
    /// Traces are not exported.
    Off,
    /// A sampler that is not parent-based (`OTEL_TRACES_SAMPLER=always_on`, `always_off`,
    /// `traceidratio`) decides, in the SDK, when the request's span starts.
    Sdk,
    /// The (parent-based) sampler keeps the trace: record it.
    Record,
    /// The (parent-based) sampler drops the trace: build nothing of it
    /// ([`crane_core::telemetry::untraced`]).
    Drop,
}

/// Samples an incoming request's trace before any span exists, as a parent-based sampler would
/// decide for the request's span (crane's default: every root trace, at most
/// [`DEFAULT_MAX_TRACES_PER_SECOND`] per second): `parent_sampled` is the
/// sampled flag of a valid `traceparent`, `trace_id` the id the request's trace gets when it has
/// none (32 lowercase hex digits).
pub fn request_sampling(parent_sampled: Option<bool>, trace_id: &str) -> RequestSampling {
    if !exporting() {
        return RequestSampling::Off;
    }
    let Some(edge) = EDGE_SAMPLER.get() else {
        return RequestSampling::Sdk;
    };
    if edge_keeps(&edge.root, edge.cap.as_ref(), parent_sampled, trace_id) {
        RequestSampling::Record
    } else {
        RequestSampling::Drop
    }
}

/// The decision of [`request_sampling`] with a parent-based sampler whose root sampler is
/// `root`: a caller's sampled flag decides; without one, `root` decides on `trace_id`, and a
/// root trace it keeps also needs a token from `cap` (when there is one).
fn edge_keeps(
    root: &Sampler,
    cap: Option<&governor::DefaultDirectRateLimiter>,
    parent_sampled: Option<bool>,
    trace_id: &str,
) -> bool {
    match parent_sampled {
        Some(sampled) => sampled,
        None => {
            TraceId::from_hex(trace_id).is_ok_and(|id| {
                root.should_sample(None, id, "http", &SpanKind::Server, &[], &[])
                    .decision
                    == SamplingDecision::RecordAndSample
            }) && cap.is_none_or(|cap| cap.check().is_ok())
        }
    }
}

/// The cap on root traces per second for crane's default sampler, from
/// `CRANE_TRACES_MAX_PER_SECOND` (`value`): unset means [`DEFAULT_MAX_TRACES_PER_SECOND`], `0`
/// no cap. Anything else is an error saying what to write.
fn traces_cap(value: Option<&str>) -> Result<Option<NonZeroU32>, String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(NonZeroU32::new(DEFAULT_MAX_TRACES_PER_SECOND));
    };
    value.parse::<u32>().map(NonZeroU32::new).map_err(|_| {
        format!(
            "CRANE_TRACES_MAX_PER_SECOND={value:?} is not a whole number of traces per second (0 for no cap); using {DEFAULT_MAX_TRACES_PER_SECOND}"
        )
    })
}

/// What is wrong with the OTLP protocol the operator asked for, if anything: crane sends
/// OTLP/HTTP with protobuf bodies only. `traces` is `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`,
/// `general` `OTEL_EXPORTER_OTLP_PROTOCOL` (the first wins, as the specification says).
fn protocol_problem(traces: Option<&str>, general: Option<&str>) -> Option<String> {
    let (name, value) = [
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", traces),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", general),
    ]
    .into_iter()
    .find_map(|(name, v)| Some((name, v.map(str::trim).filter(|v| !v.is_empty())?)))?;
    match value {
        "http/protobuf" => None,
        "grpc" => Some(format!(
            "{name}=grpc: crane exports OTLP over HTTP (http/protobuf) only; point the endpoint \
             at the collector's HTTP port (usually 4318, not gRPC's 4317) and unset {name}"
        )),
        other => Some(format!(
            "{name}={other:?}: crane exports OTLP as http/protobuf only; unset {name} or set it to http/protobuf"
        )),
    }
}

/// The root sampler behind crane's default (parent-based) sampler. An HTTP request's server
/// span exists only when [`request_sampling`] already kept the request, so a server-kind root
/// is always sampled; other roots (`crane run`, runs resumed at start) are sampled by trace id.
#[derive(Debug, Clone)]
struct EdgeRoot(Sampler);

impl ShouldSample for EdgeRoot {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[opentelemetry::KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let sampler = if *span_kind == SpanKind::Server {
            &Sampler::AlwaysOn
        } else {
            &self.0
        };
        sampler.should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

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

/// Builds the tracer provider. `cap`: the cap on root traces per second for crane's default
/// sampler.
fn provider(cap: Option<NonZeroU32>) -> Result<SdkTracerProvider, String> {
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
    let exporter = crate::trace_export::MonitoredExporter::new(
        exporter,
        crate::trace_export::header_secrets(),
    );
    let mut builder = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource);
    // A parent-based sampler (crane's default, or one the operator chose) decides from the
    // caller's sampled flag, or for a root from the trace id: HTTP requests are then sampled
    // where they come in (request_sampling), so a dropped request costs no span at all.
    // crane's default also caps the root traces kept per second.
    let sampler = std::env::var("OTEL_TRACES_SAMPLER").ok();
    let crane_default = sampler.as_deref().is_none_or(|s| s.trim().is_empty());
    if let Some(root) = parent_based_root(
        sampler.as_deref(),
        std::env::var("OTEL_TRACES_SAMPLER_ARG").ok().as_deref(),
    ) {
        let cap = cap.filter(|_| crane_default).map(|per_second| {
            governor::RateLimiter::direct(governor::Quota::per_second(per_second))
        });
        let _ = EDGE_SAMPLER.set(EdgeSampling {
            root: root.clone(),
            cap,
        });
        builder = builder.with_sampler(Sampler::ParentBased(Box::new(EdgeRoot(root))));
    }
    Ok(builder.build())
}

/// The root sampler of the parent-based sampler that `OTEL_TRACES_SAMPLER` (`sampler`) and
/// `OTEL_TRACES_SAMPLER_ARG` (`arg`) name, or `None` for one that is not parent-based (the SDK
/// then reads them itself). Unset: crane's default, [`DEFAULT_SAMPLER`] (the specification's
/// default: a user who sets only the endpoint sees every trace; the per-second cap of
/// [`provider`] bounds what a busy service exports). A ratio that is not a number in [0, 1]
/// counts as 1, as the specification says.
fn parent_based_root(sampler: Option<&str>, arg: Option<&str>) -> Option<Sampler> {
    let sampler = sampler.map(str::trim).filter(|s| !s.is_empty());
    match sampler.map(str::to_ascii_lowercase).as_deref() {
        None => Some(Sampler::AlwaysOn),
        Some("parentbased_always_on") => Some(Sampler::AlwaysOn),
        Some("parentbased_always_off") => Some(Sampler::AlwaysOff),
        Some("parentbased_traceidratio") => {
            let ratio = arg
                .and_then(|a| a.trim().parse::<f64>().ok())
                .filter(|r| (0.0..=1.0).contains(r))
                .unwrap_or(1.0);
            Some(Sampler::TraceIdRatioBased(ratio))
        }
        Some(_) => None,
    }
}

/// The one line logged at start when traces are exported: which sampler decides and what caps
/// it, with the variables that change them.
fn sampling_summary(sampler: Option<&str>, arg: Option<&str>, cap: Option<NonZeroU32>) -> String {
    match sampler.map(str::trim).filter(|s| !s.is_empty()) {
        None => match cap {
            Some(cap) => format!(
                "trace export on: sampler {DEFAULT_SAMPLER} (every trace a caller did not drop), \
                 at most {cap} root traces per second (CRANE_TRACES_MAX_PER_SECOND; \
                 OTEL_TRACES_SAMPLER to change the sampler)"
            ),
            None => format!(
                "trace export on: sampler {DEFAULT_SAMPLER} (every trace a caller did not drop), \
                 no cap on root traces per second (CRANE_TRACES_MAX_PER_SECOND=0)"
            ),
        },
        Some(sampler) => {
            let arg = arg
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| format!(" (OTEL_TRACES_SAMPLER_ARG={a})"))
                .unwrap_or_default();
            format!(
                "trace export on: sampler {sampler}{arg} from OTEL_TRACES_SAMPLER, no cap on \
                 root traces per second (the cap applies to crane's default sampler only)"
            )
        }
    }
}

/// crane's spans and events (every `crane*` target) at DEBUG and above, except the `run`
/// spans of traces that are not recorded.
fn otel_targets() -> Targets {
    Targets::new()
        .with_target("crane", Level::DEBUG)
        .with_target("crane_core", Level::DEBUG)
        .with_target(UNTRACED_TARGET, LevelFilter::OFF)
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
    let (cap, cap_error) =
        match traces_cap(std::env::var("CRANE_TRACES_MAX_PER_SECOND").ok().as_deref()) {
            Ok(cap) => (cap, None),
            Err(error) => (NonZeroU32::new(DEFAULT_MAX_TRACES_PER_SECOND), Some(error)),
        };
    match provider(cap) {
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
                if let Some(error) = cap_error {
                    tracing::error!(%error, "invalid trace sampling setting");
                }
                tracing::info!(
                    "{}",
                    sampling_summary(
                        std::env::var("OTEL_TRACES_SAMPLER").ok().as_deref(),
                        std::env::var("OTEL_TRACES_SAMPLER_ARG").ok().as_deref(),
                        cap,
                    )
                );
                let env = |name| std::env::var(name).ok();
                if let Some(problem) = protocol_problem(
                    env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").as_deref(),
                    env("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref(),
                ) {
                    tracing::error!(%problem, "unsupported OTLP protocol; sending http/protobuf anyway");
                }
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

    /// A request crane's default sampler dropped where it came in: no `http` span, the `run`
    /// span under [`UNTRACED_TARGET`], the same inner spans. Returns the chat span's context
    /// and whether `plan` was created.
    fn untraced_request() -> (SpanContext, bool) {
        let run = tracing::info_span!(target: UNTRACED_TARGET, "run", run_id = "r3");
        run.in_scope(|| {
            let plan = tracing::debug_span!(target: "crane_core::planning", "plan");
            let created = !plan.is_disabled();
            plan.in_scope(|| {
                tracing::debug!(target: "crane_core::planning", "planned");
                let chat = tracing::debug_span!(
                    target: "crane_core::planning::llm",
                    "chat",
                    otel.kind = "client"
                );
                let sc = chat.context().span().span_context().clone();
                (sc, created)
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
                // Roots are sampled: a span of the untraced request that reached the layer
                // would start an exported trace.
                opentelemetry_sdk::trace::Sampler::AlwaysOn,
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

        let (sampled, unsampled, untraced) = tracing::dispatcher::with_default(&subscriber, || {
            (request(1, true), request(2, false), untraced_request())
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

        // A trace dropped where it came in: the OpenTelemetry layer sees nothing of it (no
        // span starts a trace of its own, the chat span has no context), and its inner spans
        // exist only when the logs want them.
        let (chat, plan_created) = untraced;
        assert!(
            !chat.is_valid(),
            "the untraced chat span got a trace: {chat:?}"
        );
        assert_eq!(plan_created, !logs_at_info);
        let exported = spans.0.lock().unwrap().clone();
        assert!(
            exported
                .iter()
                .all(|s| s.span_context.trace_id() == TraceId::from(1u128)),
            "only the sampled trace is exported: {:?}",
            exported.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
    }

    #[test]
    fn only_http_protobuf_is_accepted_as_the_otlp_protocol() {
        assert_eq!(protocol_problem(None, None), None);
        assert_eq!(protocol_problem(Some(" "), Some("http/protobuf")), None);
        assert_eq!(protocol_problem(Some("http/protobuf"), Some("grpc")), None);
        let grpc = protocol_problem(None, Some("grpc")).expect("a problem");
        assert!(
            grpc.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc") && grpc.contains("4318"),
            "{grpc}"
        );
        let json = protocol_problem(Some("http/json"), None).expect("a problem");
        assert!(
            json.contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=\"http/json\""),
            "{json}"
        );
    }

    #[test]
    fn the_default_sampler_caps_root_traces_per_second() {
        // Every root trace passes the ratio; the cap keeps the first 5 of a burst. (Tokens come
        // back at 5 per second: the loop takes far less than the 200 ms one token needs.)
        let cap =
            governor::RateLimiter::direct(governor::Quota::per_second(NonZeroU32::new(5).unwrap()));
        let kept = (0..50)
            .filter(|_| {
                edge_keeps(
                    &Sampler::AlwaysOn,
                    Some(&cap),
                    None,
                    &format!("{:032x}", rand::random::<u128>() | 1),
                )
            })
            .count();
        assert_eq!(kept, 5);
        // A caller's sampled flag is not capped (its trace is already being recorded).
        assert!(edge_keeps(&Sampler::AlwaysOn, Some(&cap), Some(true), "x"));

        assert_eq!(
            traces_cap(None),
            Ok(NonZeroU32::new(DEFAULT_MAX_TRACES_PER_SECOND))
        );
        assert_eq!(traces_cap(Some(" 250 ")), Ok(NonZeroU32::new(250)));
        assert_eq!(traces_cap(Some("0")), Ok(None));
        let error = traces_cap(Some("lots")).unwrap_err();
        assert!(error.contains("CRANE_TRACES_MAX_PER_SECOND") && error.contains("whole number"));
    }

    #[test]
    fn the_start_line_names_the_sampler_and_the_cap() {
        let line = sampling_summary(None, None, NonZeroU32::new(100));
        assert!(line.contains("parentbased_always_on"), "{line}");
        assert!(
            line.contains("at most 100 root traces per second"),
            "{line}"
        );
        assert!(line.contains("CRANE_TRACES_MAX_PER_SECOND"), "{line}");
        let line = sampling_summary(Some(""), None, None);
        assert!(line.contains("no cap"), "{line}");
        let line = sampling_summary(Some("parentbased_traceidratio"), Some("0.25"), None);
        assert!(
            line.contains("parentbased_traceidratio (OTEL_TRACES_SAMPLER_ARG=0.25)"),
            "{line}"
        );
    }

    #[test]
    fn parent_based_samplers_are_decided_by_crane() {
        let ratio = |s: Option<Sampler>| match s {
            Some(Sampler::TraceIdRatioBased(r)) => Some(r),
            Some(Sampler::AlwaysOn) => Some(1.0),
            Some(Sampler::AlwaysOff) => Some(0.0),
            _ => None,
        };
        // Unset: OpenTelemetry's default, every trace (crane's cap bounds the rate).
        assert_eq!(ratio(parent_based_root(None, None)), Some(1.0));
        assert_eq!(ratio(parent_based_root(Some(" "), None)), Some(1.0));
        assert_eq!(
            ratio(parent_based_root(Some("parentbased_always_on"), None)),
            Some(1.0)
        );
        assert_eq!(
            ratio(parent_based_root(Some("ParentBased_Always_Off"), None)),
            Some(0.0)
        );
        assert_eq!(
            ratio(parent_based_root(
                Some("parentbased_traceidratio"),
                Some("0.25")
            )),
            Some(0.25)
        );
        assert_eq!(
            ratio(parent_based_root(
                Some("parentbased_traceidratio"),
                Some("2")
            )),
            Some(1.0)
        );
        assert_eq!(
            ratio(parent_based_root(Some("parentbased_traceidratio"), None)),
            Some(1.0)
        );
        for sdk in ["always_on", "always_off", "traceidratio", "jaeger_remote"] {
            assert!(parent_based_root(Some(sdk), Some("0.5")).is_none(), "{sdk}");
        }
    }

    #[test]
    fn ratio_sampler_decides_at_the_edge_by_parent_flag_then_trace_id() {
        // parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG=0.1.
        let root = Sampler::TraceIdRatioBased(0.1);
        // The ratio sampler reads the id's low 8 bytes: low values are kept.
        let low = "ffffffffffffffff0000000000000001";
        let high = "0000000000000000ffffffffffffffff";
        assert!(edge_keeps(&root, None, None, low));
        assert!(!edge_keeps(&root, None, None, high));
        assert!(
            edge_keeps(&root, None, Some(true), high),
            "a caller's sampled flag wins"
        );
        assert!(
            !edge_keeps(&root, None, Some(false), low),
            "so does its unsampled flag"
        );
        assert!(!edge_keeps(&root, None, None, "not hex"));

        // About 10% of fresh ids are kept.
        let kept = (0..10_000)
            .filter(|_| {
                edge_keeps(
                    &root,
                    None,
                    None,
                    &format!("{:032x}", rand::random::<u128>()),
                )
            })
            .count();
        assert!((800..1200).contains(&kept), "{kept} of 10 000 kept");

        // Behind the parent-based sampler: a server span (the edge already kept its request)
        // is always sampled; other roots are sampled by trace id.
        let edge = EdgeRoot(root);
        let id = TraceId::from_hex(high).unwrap();
        let decide = |kind: SpanKind| edge.should_sample(None, id, "x", &kind, &[], &[]).decision;
        assert_eq!(decide(SpanKind::Server), SamplingDecision::RecordAndSample);
        assert_eq!(decide(SpanKind::Internal), SamplingDecision::Drop);
    }

    #[test]
    fn unsampled_traces_keep_only_their_edges_and_run_spans() {
        check(true);
        check(false);
    }
}
