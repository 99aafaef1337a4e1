//! What the experiment tests share: a runtime with two rule variants (`rules-a`, `rules-b`),
//! an experiment between them, and a waited-for run.

use std::sync::Arc;

use crane_core::experiments::service::{ArmSpec, ExperimentSpec};
use crane_core::planning::Planning;
use crane_core::planning::variants::{Planners, Variant, VariantSpec};
use crane_core::runtime::{NewRun, Runtime, RuntimeConfig};
use crane_core::store::{ExperimentRecord, Store};
use crane_core::tools::builtin_registry;

pub fn runtime(store: Arc<Store>) -> Runtime {
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

pub fn spec() -> ExperimentSpec {
    ExperimentSpec {
        arms: vec![
            ArmSpec {
                planner: "rules-a".into(),
                weight: 1.0,
            },
            ArmSpec {
                planner: "rules-b".into(),
                weight: 1.0,
            },
        ],
        primary_metric: "success_rate".into(),
        alpha: 0.05,
        min_effect: 0.05,
        salt: "salt-1".into(),
    }
}

pub async fn run(
    rt: &Runtime,
    user: Option<&str>,
    planner: Option<&str>,
) -> crane_core::domain::Run {
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

/// Starts experiment `name` of tenant `default` between `rules-a` and `rules-b`.
pub async fn start_experiment(store: &Store, name: &str) {
    store
        .create_experiment(&ExperimentRecord {
            tenant: "default".into(),
            name: name.into(),
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
}
