//! The run's span carries its experiment and arm (the trace says which arm planned it). Its
//! own test binary: it installs the process-wide tracing subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod experiment_support;

use crane_core::experiments::service::Experiments;
use crane_core::store::{Store, StoreConfig};
use experiment_support::{run, runtime, start_experiment};

#[tokio::test]
async fn the_run_span_carries_the_experiment_and_arm() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    start_experiment(&store, "traced-ab").await;
    let rt = runtime(store.clone());
    rt.set_experiments(Experiments::load(store.clone()).await.unwrap());
    let done = run(&rt, Some("user-9"), None).await;
    let tag = done.experiment.clone().expect("assigned");
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let run_span = spans.iter().find(|s| s.name == "run").unwrap_or_else(|| {
        panic!(
            "no run span in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    });
    let attr = |key: &str| {
        run_span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attr("crane.experiment.name").as_deref(), Some("traced-ab"));
    assert_eq!(
        attr("crane.experiment.arm").as_deref(),
        Some(tag.arm.as_str())
    );
}
