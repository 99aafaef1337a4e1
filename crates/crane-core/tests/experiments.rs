//! Experiments through the runtime (SQLite): runs that name no planner are assigned an arm,
//! sticky per user and the same after a restart; the arm's planner plans them; a run that
//! names its planner is in no experiment; finished runs add up per arm and the analysis reads
//! the totals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod experiment_support;

use std::collections::HashMap;

use crane_core::domain::RunStatus;
use crane_core::experiments::service::{Experiments, analyse};
use crane_core::experiments::stats::Decision;
use crane_core::store::{Store, StoreConfig};
use experiment_support::{run, runtime, spec, start_experiment};

#[tokio::test]
async fn runs_are_assigned_sticky_arms_and_their_outcomes_add_up_per_arm() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    start_experiment(&store, "planner-ab").await;
    let rt = runtime(store.clone());
    let experiments = Experiments::load(store.clone()).await.unwrap();
    assert!(rt.set_experiments(experiments.clone()));

    let mut arm_of: HashMap<String, String> = HashMap::new();
    for round in 0..4 {
        for u in 0..50 {
            let user = format!("user-{u}");
            let done = run(&rt, Some(&user), None).await;
            assert_eq!(done.status, RunStatus::Completed);
            let tag = done.experiment.clone().expect("assigned");
            assert_eq!(tag.name, "planner-ab");
            // The arm's planner planned it.
            let json = serde_json::to_value(&done).unwrap();
            assert_eq!(json["plan"]["planner"]["variant"]["name"], tag.arm.as_str());
            assert_eq!(json["experiment"]["arm"], tag.arm.as_str());
            match arm_of.get(&user) {
                Some(arm) => assert_eq!(arm, &tag.arm, "user {user} changed arm in round {round}"),
                None => {
                    arm_of.insert(user, tag.arm);
                }
            }
        }
    }
    let a = arm_of.values().filter(|a| *a == "rules-a").count();
    assert!((10..=40).contains(&a), "split {a}/50");
    // A run that names its planner is in no experiment; a run without a user is assigned by
    // its run id.
    assert!(
        run(&rt, Some("user-1"), Some("rule"))
            .await
            .experiment
            .is_none()
    );
    assert!(run(&rt, None, None).await.experiment.is_some());

    experiments.flush().await.unwrap();
    let totals = store.arm_totals("default", "planner-ab").await.unwrap();
    let runs: u64 = totals.iter().map(|t| t.runs).sum();
    assert_eq!(runs, 201);
    assert!(totals.iter().all(|t| t.successes == t.runs));
    let (arms, analysis) = analyse(&spec(), &totals);
    assert_eq!(arms.iter().map(|a| a.runs).sum::<u64>(), 201);
    assert!(
        arms.iter()
            .all(|a| a.success_rate == Some(1.0) && a.p50_ms.is_some())
    );
    assert!(analysis.srm_p_value.unwrap() > 0.001, "{analysis:?}");
    assert_ne!(analysis.decision, Decision::Winner, "{analysis:?}");

    // Another process on the same store assigns every user the same arm.
    let again = Experiments::load(store.clone()).await.unwrap();
    for (user, arm) in &arm_of {
        let tag = again.assign("default", Some(user), "any-run").unwrap();
        assert_eq!(&tag.arm, arm);
    }
    // Another tenant runs no experiment.
    assert!(again.assign("other", Some("user-1"), "r").is_none());
    // Stopped: no more assignments after the next refresh.
    assert!(
        store
            .finish_experiment(
                "default",
                "planner-ab",
                None,
                Some("done"),
                "2026-12-07T00:00:00Z"
            )
            .await
            .unwrap()
    );
    again.refresh().await.unwrap();
    assert!(again.assign("default", Some("user-1"), "r").is_none());
}

/// What assignment and outcome recording cost in process, per run (a measurement, not a
/// check): `cargo test --release -p crane-core --test experiments -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "measurement; see docs/benchmarks.md"]
async fn assignment_and_recording_cost_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    start_experiment(&store, "planner-ab").await;
    let experiments = Experiments::load(store.clone()).await.unwrap();
    let mut run = crane_core::domain::Run::new("calculate 2+3".into(), None, None);
    run.status = RunStatus::Completed;
    run.started_at = Some(run.created_at);
    run.completed_at = Some(crane_core::domain::now());
    let n = 1_000_000;
    let t0 = std::time::Instant::now();
    for i in 0..n {
        let id = format!("01a25206-9845-74f1-949b-{i:012}");
        run.experiment = experiments.assign("default", None, &id);
        experiments.finished(&run);
    }
    let per = t0.elapsed().as_nanos() as f64 / f64::from(n);
    eprintln!("assign + finished: {per:.0} ns per run (run id formatting included)");
    experiments.flush().await.unwrap();
}
