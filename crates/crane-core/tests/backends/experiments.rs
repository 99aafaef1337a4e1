//! A/B experiments on both backends: names unique per tenant forever, at most one running
//! experiment per tenant (also when replicas race), finishing, and per-arm totals that
//! replicas add to at the same time without losing an update.

use std::collections::BTreeMap;
use std::sync::Arc;

use crane_core::store::{
    ArmDelta, ArmTotals, CreateExperimentError, ExperimentRecord, Store, StoreConfig,
};

use crate::harness::TestStore;
use crate::store_test;

/// A second handle on the same records: another replica on PostgreSQL, the same store on
/// SQLite (one process owns its data dir).
async fn other(s: &TestStore) -> Arc<Store> {
    if s.url.is_some() {
        s.another_replica(&StoreConfig::default()).await
    } else {
        s.store.clone()
    }
}

fn experiment(tenant: &str, name: &str, created_at: &str) -> ExperimentRecord {
    ExperimentRecord {
        tenant: tenant.into(),
        name: name.into(),
        status: "running".into(),
        spec: format!(r#"{{"arms":["a","b"],"name":"{name}"}}"#),
        created_at: created_at.into(),
        stopped_at: None,
        winner: None,
        note: None,
    }
}

fn stopped(tenant: &str, name: &str, created_at: &str) -> ExperimentRecord {
    ExperimentRecord {
        status: "stopped".into(),
        stopped_at: Some(created_at.into()),
        ..experiment(tenant, name, created_at)
    }
}

fn names(list: &[ExperimentRecord]) -> Vec<&str> {
    list.iter().map(|e| e.name.as_str()).collect()
}

store_test!(
    experiments_are_stored_and_listed_newest_first_per_tenant,
    |s: TestStore| async move {
        let old = stopped("acme", "old", "2026-01-01T00:00:00Z");
        let live = experiment("acme", "live", "2026-03-01T00:00:00Z");
        let mid = stopped("acme", "mid", "2026-02-01T00:00:00Z");
        let tie = stopped("acme", "tie", "2026-02-01T00:00:00Z");
        for e in [&old, &live, &mid, &tie] {
            s.create_experiment(e).await.unwrap().unwrap();
        }
        assert_eq!(s.get_experiment("acme", "live").await.unwrap(), Some(live));
        assert_eq!(s.get_experiment("acme", "old").await.unwrap(), Some(old));
        assert!(s.get_experiment("acme", "nope").await.unwrap().is_none());
        assert!(s.get_experiment("acme", "live\0").await.unwrap().is_none());
        // Newest first; among those created at the same time, by name (descending).
        let listed = s.list_experiments("acme").await.unwrap();
        assert_eq!(names(&listed), ["live", "tie", "mid", "old"]);
        assert_eq!(listed[2], mid);
        // Tenants see only their own.
        assert!(s.list_experiments("globex").await.unwrap().is_empty());
        assert!(s.get_experiment("globex", "live").await.unwrap().is_none());
        assert!(s.list_experiments("acme\0").await.unwrap().is_empty());
        // Another replica sees the same.
        let b = other(&s).await;
        assert_eq!(b.list_experiments("acme").await.unwrap(), listed);
    }
);

store_test!(
    a_name_is_unique_per_tenant_forever,
    |s: TestStore| async move {
        let a = experiment("acme", "a", "2026-01-01T00:00:00Z");
        s.create_experiment(&a).await.unwrap().unwrap();
        assert_eq!(
            s.create_experiment(&a).await.unwrap(),
            Err(CreateExperimentError::Duplicate)
        );
        // The name is taken whatever the new one's status or spec.
        let again = ExperimentRecord {
            spec: "{}".into(),
            ..stopped("acme", "a", "2026-01-02T00:00:00Z")
        };
        assert_eq!(
            s.create_experiment(&again).await.unwrap(),
            Err(CreateExperimentError::Duplicate)
        );
        // Also once it stopped.
        assert!(
            s.finish_experiment("acme", "a", None, None, "2026-01-03T00:00:00Z")
                .await
                .unwrap()
        );
        let b = other(&s).await;
        assert_eq!(
            b.create_experiment(&experiment("acme", "a", "2026-01-04T00:00:00Z"))
                .await
                .unwrap(),
            Err(CreateExperimentError::Duplicate)
        );
        // The stored one is unchanged.
        let stored = s.get_experiment("acme", "a").await.unwrap().unwrap();
        assert_eq!(
            (stored.spec, stored.status),
            (a.spec, "stopped".to_string())
        );
        // Another tenant may use the name.
        b.create_experiment(&experiment("globex", "a", "2026-01-04T00:00:00Z"))
            .await
            .unwrap()
            .unwrap();
    }
);

store_test!(
    one_experiment_runs_per_tenant_until_it_is_finished,
    |s: TestStore| async move {
        let b = other(&s).await;
        s.create_experiment(&experiment("acme", "first", "2026-01-01T00:00:00Z"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            b.create_experiment(&experiment("acme", "second", "2026-01-02T00:00:00Z"))
                .await
                .unwrap(),
            Err(CreateExperimentError::AnotherRunning("first".into()))
        );
        assert!(s.get_experiment("acme", "second").await.unwrap().is_none());
        // A stopped one (e.g. imported) may be stored beside it.
        b.create_experiment(&stopped("acme", "archived", "2026-01-02T00:00:00Z"))
            .await
            .unwrap()
            .unwrap();
        // Another tenant runs its own at the same time and never sees acme's.
        b.create_experiment(&experiment("globex", "g", "2026-01-03T00:00:00Z"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(names(&s.list_experiments("globex").await.unwrap()), ["g"]);
        assert!(s.get_experiment("globex", "first").await.unwrap().is_none());
        let running = s.running_experiments().await.unwrap();
        assert_eq!(
            running
                .iter()
                .map(|e| (e.tenant.as_str(), e.name.as_str()))
                .collect::<Vec<_>>(),
            [("acme", "first"), ("globex", "g")]
        );
        assert!(running.iter().all(|e| e.status == "running"));

        // Finishing stops it with its winner and note, once.
        let at = "2026-01-05T00:00:00Z";
        assert!(
            b.finish_experiment("acme", "first", Some("b"), Some("b is cheaper"), at)
                .await
                .unwrap()
        );
        let first = s.get_experiment("acme", "first").await.unwrap().unwrap();
        assert_eq!(
            first,
            ExperimentRecord {
                status: "stopped".into(),
                stopped_at: Some(at.into()),
                winner: Some("b".into()),
                note: Some("b is cheaper".into()),
                ..experiment("acme", "first", "2026-01-01T00:00:00Z")
            }
        );
        assert!(
            !s.finish_experiment("acme", "first", Some("a"), None, "2026-01-06T00:00:00Z")
                .await
                .unwrap()
        );
        assert_eq!(
            s.get_experiment("acme", "first").await.unwrap(),
            Some(first)
        );
        // Not running (stopped, unknown, another tenant's): nothing to finish.
        assert!(
            !s.finish_experiment("acme", "archived", None, None, at)
                .await
                .unwrap()
        );
        assert!(
            !s.finish_experiment("acme", "nope", None, None, at)
                .await
                .unwrap()
        );
        assert!(
            !s.finish_experiment("acme", "g", None, None, at)
                .await
                .unwrap()
        );
        assert!(
            !s.finish_experiment("acme\0", "g", None, None, at)
                .await
                .unwrap()
        );
        assert_eq!(
            names(&b.running_experiments().await.unwrap()),
            ["g"],
            "acme has none running"
        );

        // Once it stopped, a new one runs; without winner or note they stay empty.
        s.create_experiment(&experiment("acme", "second", "2026-01-07T00:00:00Z"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            names(&b.running_experiments().await.unwrap()),
            ["second", "g"]
        );
        assert!(
            s.finish_experiment("acme", "second", None, None, "2026-01-08T00:00:00Z")
                .await
                .unwrap()
        );
        let second = b.get_experiment("acme", "second").await.unwrap().unwrap();
        assert_eq!(
            (second.status.as_str(), second.winner, second.note),
            ("stopped", None, None)
        );
        assert_eq!(
            names(&s.list_experiments("acme").await.unwrap()),
            ["second", "archived", "first"]
        );
    }
);

store_test!(
    replicas_starting_experiments_at_once_run_one,
    |s: TestStore| async move {
        let stores = [s.store.clone(), other(&s).await];
        // Different names, all running: exactly one runs, the others name it.
        let mut tasks = Vec::new();
        for i in 0..10 {
            let store = stores[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                let e = experiment("acme", &format!("e{i}"), "2026-01-01T00:00:00Z");
                store.create_experiment(&e).await.unwrap()
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let running = s.running_experiments().await.unwrap();
        assert_eq!(running.len(), 1, "{running:?}");
        let winner = running[0].name.clone();
        assert_eq!(
            outcomes.iter().filter(|o| o.is_ok()).count(),
            1,
            "{outcomes:?}"
        );
        assert!(
            outcomes.iter().all(|o| match o {
                Ok(()) => true,
                Err(CreateExperimentError::AnotherRunning(name)) => *name == winner,
                Err(CreateExperimentError::Duplicate) => false,
            }),
            "{outcomes:?}"
        );
        assert_eq!(names(&s.list_experiments("acme").await.unwrap()), [winner]);

        // One name: exactly one is created, the others are duplicates.
        let mut tasks = Vec::new();
        for i in 0..10 {
            let store = stores[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                let e = stopped("globex", "same", "2026-01-01T00:00:00Z");
                store.create_experiment(&e).await.unwrap()
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        assert_eq!(
            outcomes.iter().filter(|o| o.is_ok()).count(),
            1,
            "{outcomes:?}"
        );
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Ok(()) | Err(CreateExperimentError::Duplicate))),
            "{outcomes:?}"
        );
    }
);

/// The deltas of batch `i`: both arms, amounts exact in binary (sums never round), buckets
/// that vary with `i`.
fn batch(i: u64) -> Vec<ArmDelta> {
    let arm = |arm: u32, runs: u64| ArmDelta {
        tenant: "acme".into(),
        experiment: "x".into(),
        arm,
        runs,
        successes: runs - i % 2,
        cost_sum: 0.25 * runs as f64,
        cost_sq: 0.0625 * runs as f64,
        tokens: 100 * runs,
        latency_sum_ms: 512.0 * runs as f64,
        latency_sq_ms: 262_144.0 * runs as f64,
        latency_buckets: vec![((i % 3) as u16, runs - 1), (10 + arm as u16, 1)],
        feedback_n: i % 2,
        feedback_sum: if i % 4 == 1 {
            -1.0
        } else {
            0.5 * (i % 2) as f64
        },
    };
    vec![arm(0, 2), arm(1, 3)]
}

store_test!(
    arm_deltas_from_two_replicas_add_up_exactly,
    |s: TestStore| async move {
        const BATCHES: u64 = 40;
        s.create_experiment(&experiment("acme", "x", "2026-01-01T00:00:00Z"))
            .await
            .unwrap()
            .unwrap();
        assert!(s.arm_totals("acme", "x").await.unwrap().is_empty());
        // Only arm 0 so far: arm 1 is simply absent.
        s.add_arm_deltas(&batch(0)[..1]).await.unwrap();
        let first = s.arm_totals("acme", "x").await.unwrap();
        assert_eq!(first.iter().map(|a| a.arm).collect::<Vec<_>>(), [0]);
        assert_eq!(first[0].latency_buckets, [(0, 1), (10, 1)]);

        let stores = [s.store.clone(), other(&s).await];
        let mut tasks = Vec::new();
        for i in 1..=BATCHES {
            let store = stores[(i % 2) as usize].clone();
            tasks.push(tokio::spawn(async move {
                store.add_arm_deltas(&batch(i)).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // An empty batch adds nothing; other experiments and tenants are apart.
        s.add_arm_deltas(&[]).await.unwrap();
        stores[1]
            .add_arm_deltas(&[ArmDelta {
                tenant: "globex".into(),
                ..batch(0)[1].clone()
            }])
            .await
            .unwrap();

        // What the batches add, summed here.
        let mut expected: BTreeMap<u32, ArmTotals> = BTreeMap::new();
        let mut buckets: BTreeMap<(u32, u16), u64> = BTreeMap::new();
        for d in (1..=BATCHES)
            .flat_map(batch)
            .chain(std::iter::once(batch(0)[0].clone()))
        {
            let t = expected.entry(d.arm).or_insert_with(|| ArmTotals {
                arm: d.arm,
                ..ArmTotals::default()
            });
            t.runs += d.runs;
            t.successes += d.successes;
            t.cost_sum += d.cost_sum;
            t.cost_sq += d.cost_sq;
            t.tokens += d.tokens;
            t.latency_sum_ms += d.latency_sum_ms;
            t.latency_sq_ms += d.latency_sq_ms;
            t.feedback_n += d.feedback_n;
            t.feedback_sum += d.feedback_sum;
            for (b, n) in d.latency_buckets {
                if n > 0 {
                    *buckets.entry((d.arm, b)).or_default() += n;
                }
            }
        }
        for ((arm, b), n) in buckets {
            if let Some(t) = expected.get_mut(&arm) {
                t.latency_buckets.push((b, n));
            }
        }
        let expected: Vec<ArmTotals> = expected.into_values().collect();
        assert_eq!(expected[0].runs, 2 * (BATCHES + 1));
        assert_eq!(expected[1].runs, 3 * BATCHES);
        assert_eq!(expected[1].latency_buckets.last(), Some(&(11, BATCHES)));

        for store in &stores {
            assert_eq!(store.arm_totals("acme", "x").await.unwrap(), expected);
        }
        let globex = s.arm_totals("globex", "x").await.unwrap();
        assert_eq!(globex.len(), 1);
        assert_eq!((globex[0].arm, globex[0].runs), (1, 3));
        assert!(s.arm_totals("acme", "other").await.unwrap().is_empty());
        assert!(s.arm_totals("acme\0", "x").await.unwrap().is_empty());
    }
);

store_test!(
    experiments_and_their_totals_survive_a_restart,
    |s: TestStore| async move {
        let done = stopped("acme", "done", "2026-01-01T00:00:00Z");
        let live = experiment("acme", "live", "2026-01-02T00:00:00Z");
        s.create_experiment(&done).await.unwrap().unwrap();
        s.create_experiment(&live).await.unwrap().unwrap();
        s.add_arm_deltas(&[ArmDelta {
            tenant: "acme".into(),
            experiment: "live".into(),
            arm: 7,
            runs: 4,
            successes: 3,
            cost_sum: 1.5,
            latency_buckets: vec![(65_535, 2), (0, 2)],
            feedback_n: 1,
            feedback_sum: 1.0,
            ..ArmDelta::default()
        }])
        .await
        .unwrap();
        let totals = s.arm_totals("acme", "live").await.unwrap();
        assert_eq!(
            totals,
            [ArmTotals {
                arm: 7,
                runs: 4,
                successes: 3,
                cost_sum: 1.5,
                latency_buckets: vec![(0, 2), (65_535, 2)],
                feedback_n: 1,
                feedback_sum: 1.0,
                ..ArmTotals::default()
            }]
        );

        // SQLite: the same data dir opened again after the store closed; PostgreSQL: the
        // replica restarted, and another replica.
        s.close().await;
        let mut again = vec![s.reopened(&StoreConfig::default()).await];
        if s.url.is_some() {
            again.push(s.another_replica(&StoreConfig::default()).await);
        }
        for store in again {
            assert_eq!(
                store.list_experiments("acme").await.unwrap(),
                [live.clone(), done.clone()]
            );
            assert_eq!(
                store.running_experiments().await.unwrap(),
                std::slice::from_ref(&live)
            );
            assert_eq!(store.arm_totals("acme", "live").await.unwrap(), totals);
            // Still one running per tenant, and names still taken.
            assert_eq!(
                store
                    .create_experiment(&experiment("acme", "next", "2026-01-03T00:00:00Z"))
                    .await
                    .unwrap(),
                Err(CreateExperimentError::AnotherRunning("live".into()))
            );
            assert_eq!(
                store.create_experiment(&done).await.unwrap(),
                Err(CreateExperimentError::Duplicate)
            );
        }
    }
);

store_test!(
    a_rollback_guard_is_set_once_and_decided_by_one_replica,
    |s: TestStore| async move {
        s.create_experiment(&stopped("acme", "g", "2026-01-01T00:00:00Z"))
            .await
            .unwrap()
            .unwrap();
        assert!(s.experiment_guard("acme", "g").await.unwrap().is_none());
        // Set once: a second promotion cannot put another guard on it.
        assert!(
            s.set_experiment_guard("acme", "g", r#"{"v":1}"#, "watching", None)
                .await
                .unwrap()
        );
        assert!(
            !s.set_experiment_guard("acme", "g", r#"{"v":2}"#, "watching", None)
                .await
                .unwrap()
        );
        let watching = s.experiment_guards("watching").await.unwrap();
        assert_eq!(watching.len(), 1);
        assert_eq!(watching[0].guard, r#"{"v":1}"#);
        assert_eq!(watching[0].experiment, "g");
        // Two replicas decide at once: exactly one compare-and-set wins.
        let b = other(&s).await;
        let (x, y) = tokio::join!(
            s.set_experiment_guard("acme", "g", r#"{"v":3}"#, "rolled_back", Some("watching")),
            b.set_experiment_guard("acme", "g", r#"{"v":4}"#, "passed", Some("watching")),
        );
        assert!(x.unwrap() ^ y.unwrap());
        assert!(s.experiment_guards("watching").await.unwrap().is_empty());
        let decided = b.experiment_guard("acme", "g").await.unwrap().unwrap();
        assert!(["rolled_back", "passed"].contains(&decided.status.as_str()));
        // Another tenant's experiment of that name is not touched.
        assert!(s.experiment_guard("globex", "g").await.unwrap().is_none());
        assert!(
            !s.set_experiment_guard("globex", "g", "{}", "watching", None)
                .await
                .unwrap()
        );
    }
);
