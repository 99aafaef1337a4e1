//! The run's span carries its experiment and arm (the trace says which arm planned it). Its
//! own test binary: it installs the process-wide tracing subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crane_core::experiments::service::{ArmSpec, ExperimentSpec, Experiments};
use crane_core::planning::Planning;
use crane_core::planning::variants::{Planners, Variant, VariantSpec};
use crane_core::runtime::{NewRun, Runtime, RuntimeConfig};
use crane_core::store::{ExperimentRecord, Store, StoreConfig};
use crane_core::tools::builtin_registry;

fn runtime(store: Arc<Store>) -> Runtime {
    let registry = Arc::new(builtin_registry());
    let variant = |name: &str| {
        let mut spec = VariantSpec::rule();
        spec.name = name.into();
        spec.builtin = false;
        Variant::new(spec, Planning::new(registry.clone()))
    };
    let planners = Planners::new(
        registry.clone(),
        vec![variant("rules-a"), variant("rules-b")],
        "rule",
    )
    .unwrap();
    Runtime::with_planners(store, Arc::new(planners), RuntimeConfig::default())
}

fn spec() -> ExperimentSpec {
    ExperimentSpec {
        arms: ["rules-a", "rules-b"]
            .map(|p| ArmSpec {
                planner: p.into(),
                weight: 1.0,
            })
            .to_vec(),
        primary_metric: "success_rate".into(),
        alpha: 0.05,
        min_effect: 0.05,
        salt: "salt-1".into(),
    }
}

async fn run(rt: &Runtime, user: Option<&str>, planner: Option<&str>) -> crane_core::domain::Run {
    let submitted = rt
        .submit(
            NewRun {
                prompt: "calculate 2+3".into(),
                user_id: user.map(str::to_owned),
                planner: planner.map(str::to_owned),
                ..NewRun::default()
            },
            true,
        )
        .await
        .unwrap();
    submitted.finished.unwrap().await.unwrap()
}

/// The run's span carries its experiment and arm (the trace says which arm planned it).
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
    store
        .create_experiment(&ExperimentRecord {
            tenant: "default".into(),
            name: "traced-ab".into(),
            status: "running".into(),
            spec: serde_json::to_string(&spec()).unwrap(),
            created_at: crane_core::domain::now().to_rfc3339(),
            stopped_at: None,
            winner: None,
            note: None,
        })
        .await
        .unwrap()
        .unwrap();
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
