//! Runs on both backends: insert, idempotency per tenant, saves, listing; on PostgreSQL also
//! the leases of the scale-out queue (claim, fencing, release).

use std::collections::HashSet;
use std::time::Duration;

use crane_core::domain::{Run, RunStatus};
use crane_core::store::{InsertOutcome, RunFilter, StoreConfig, StoreError};

use crate::harness::TestStore;
use crate::store_test;

fn run(tenant: &str, key: Option<&str>) -> Run {
    let mut run = Run::new("calculate 2+3".into(), Some("u1".into()), None);
    run.tenant = tenant.into();
    run.idempotency_key = key.map(str::to_owned);
    run
}

store_test!(
    a_run_is_stored_found_and_listed_per_tenant,
    |s: TestStore| async move {
        let a = run("acme", None);
        let b = run("globex", None);
        assert!(matches!(
            s.insert_run(&a).await.unwrap(),
            InsertOutcome::Inserted
        ));
        assert!(matches!(
            s.insert_run(&b).await.unwrap(),
            InsertOutcome::Inserted
        ));
        assert_eq!(s.get_run(&a.run_id).await.unwrap().unwrap(), a);
        assert!(s.get_run("nope").await.unwrap().is_none());
        let page = s
            .list_runs(RunFilter {
                tenant: Some("acme".into()),
                limit: 10,
                ..RunFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(
            page.runs.iter().map(|r| &r.run_id).collect::<Vec<_>>(),
            [&a.run_id]
        );
        let counts = s.count_runs_by_status().await.unwrap();
        assert_eq!(counts, [("pending".to_string(), 2)]);
    }
);

store_test!(
    idempotency_keys_are_unique_per_tenant,
    |s: TestStore| async move {
        let first = run("acme", Some("k1"));
        assert!(matches!(
            s.insert_run(&first).await.unwrap(),
            InsertOutcome::Inserted
        ));
        match s.insert_run(&run("acme", Some("k1"))).await.unwrap() {
            InsertOutcome::Existing(existing) => assert_eq!(existing.run_id, first.run_id),
            InsertOutcome::Inserted => panic!("a reused key stored a second run"),
        }
        // Another tenant may use the same key.
        assert!(matches!(
            s.insert_run(&run("globex", Some("k1"))).await.unwrap(),
            InsertOutcome::Inserted
        ));
    }
);

store_test!(
    pages_of_runs_continue_without_repeats,
    |s: TestStore| async move {
        let mut ids = Vec::new();
        for _ in 0..7 {
            let r = run("acme", None);
            s.insert_run(&r).await.unwrap();
            ids.push(r.run_id);
        }
        ids.reverse();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = s
                .list_runs(RunFilter {
                    limit: 3,
                    cursor,
                    ..RunFilter::default()
                })
                .await
                .unwrap();
            seen.extend(page.runs.into_iter().map(|r| r.run_id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, ids);
    }
);

store_test!(
    saves_follow_the_run_and_conditional_saves_check_the_status,
    |s: TestStore| async move {
        let mut r = run("acme", None);
        s.insert_run(&r).await.unwrap();
        let started = crane_core::domain::now();
        assert!(s.mark_running(&r.run_id, started).await.unwrap());
        let stored = s.get_run(&r.run_id).await.unwrap().unwrap();
        assert_eq!(stored.status, RunStatus::Running);
        assert_eq!(stored.started_at, Some(started));
        assert!(!s.mark_running(&r.run_id, started).await.unwrap());

        r.status = RunStatus::Failed;
        r.error = Some("boom".into());
        s.save_run(&r).await.unwrap();
        assert_eq!(s.get_run(&r.run_id).await.unwrap().unwrap(), r);

        let mut retried = r.clone();
        retried.status = RunStatus::Pending;
        assert!(
            !s.save_run_if(&retried, &[RunStatus::Completed])
                .await
                .unwrap()
        );
        assert!(s.save_run_if(&retried, &[RunStatus::Failed]).await.unwrap());
        assert_eq!(
            s.get_run(&r.run_id).await.unwrap().unwrap().status,
            RunStatus::Pending
        );

        // put_run inserts or updates; insert_run_if_absent never overwrites.
        let mut fresh = run("acme", None);
        s.put_run(&fresh).await.unwrap();
        fresh.status = RunStatus::Completed;
        s.put_run(&fresh).await.unwrap();
        let mut other = fresh.clone();
        other.status = RunStatus::Failed;
        assert!(!s.insert_run_if_absent(&other).await.unwrap());
        assert_eq!(
            s.get_run(&fresh.run_id).await.unwrap().unwrap().status,
            RunStatus::Completed
        );
        let absent = run("acme", None);
        assert!(s.insert_run_if_absent(&absent).await.unwrap());

        let missing = run("acme", None);
        assert!(s.save_run(&missing).await.is_err());
    }
);

fn short_lease() -> StoreConfig {
    StoreConfig {
        lease: Duration::from_millis(300),
        ..StoreConfig::default()
    }
}

store_test!(
    unfinished_runs_are_resumed_only_when_no_live_replica_holds_them,
    short_lease(),
    |s: TestStore| async move {
        let mut done = run("acme", None);
        done.status = RunStatus::Completed;
        s.put_run(&done).await.unwrap();
        let pending = run("acme", None);
        s.insert_run(&pending).await.unwrap();
        if s.url.is_none() {
            // SQLite: one process owns the data dir; at start it resumes every unfinished run.
            let ids: Vec<_> = s
                .unfinished_runs()
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.run_id)
                .collect();
            assert_eq!(ids, std::slice::from_ref(&pending.run_id));
            return;
        }
        let b = s.another_replica(&short_lease()).await;
        // A extends its lease while it executes the run, well past the lease length: B may
        // not take it.
        for _ in 0..9 {
            assert_eq!(
                s.extend_leases(std::slice::from_ref(&pending.run_id))
                    .await
                    .unwrap(),
                1
            );
            // Time must pass here: what is tested is that 900 ms (three leases) later the
            // run is still A's.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(b.claim_orphaned_runs(10).await.unwrap().is_empty());
        // A stops (gracefully): its leases end and B claims the run at once.
        s.close().await;
        let claimed = b.claim_orphaned_runs(10).await.unwrap();
        assert_eq!(
            claimed.iter().map(|r| &r.run_id).collect::<Vec<_>>(),
            [&pending.run_id]
        );
        // Claimed once: nobody else gets it while B holds it.
        let c = s.another_replica(&short_lease()).await;
        assert!(c.claim_orphaned_runs(10).await.unwrap().is_empty());
        // B owns the run now: its saves land, a save by C (which does not hold it) is refused.
        let mut resumed = claimed[0].clone();
        resumed.status = RunStatus::Completed;
        let err = c.save_run(&resumed).await.unwrap_err();
        assert!(matches!(err, StoreError::LeaseLost(_)), "{err}");
        assert!(matches!(
            c.put_run(&resumed).await.unwrap_err(),
            StoreError::LeaseLost(_)
        ));
        b.save_run(&resumed).await.unwrap();
        assert_eq!(
            b.get_run(&pending.run_id).await.unwrap().unwrap().status,
            RunStatus::Completed
        );
    }
);

store_test!(
    replicas_claiming_at_once_split_the_orphaned_runs,
    short_lease(),
    |s: TestStore| async move {
        if s.url.is_none() {
            assert!(s.claim_orphaned_runs(10).await.unwrap().is_empty());
            return;
        }
        let mut all = HashSet::new();
        for _ in 0..200 {
            let r = run("acme", None);
            s.insert_run(&r).await.unwrap();
            all.insert(r.run_id);
        }
        s.close().await;
        let b = s.another_replica(&short_lease()).await;
        let c = s.another_replica(&short_lease()).await;
        let (mut got_b, mut got_c) = (Vec::new(), Vec::new());
        loop {
            let (x, y) = tokio::join!(b.claim_orphaned_runs(17), c.claim_orphaned_runs(17));
            let (x, y) = (x.unwrap(), y.unwrap());
            if x.is_empty() && y.is_empty() {
                break;
            }
            got_b.extend(x.into_iter().map(|r| r.run_id));
            got_c.extend(y.into_iter().map(|r| r.run_id));
        }
        let b_set: HashSet<_> = got_b.iter().cloned().collect();
        let c_set: HashSet<_> = got_c.iter().cloned().collect();
        assert_eq!(b_set.len(), got_b.len(), "B claimed a run twice");
        assert!(
            b_set.is_disjoint(&c_set),
            "a run was claimed by both replicas"
        );
        assert_eq!(&b_set | &c_set, all);
    }
);

store_test!(
    a_restarted_replica_takes_its_own_runs_back_at_once,
    |s: TestStore| async move {
        if s.url.is_none() {
            return;
        }
        let pending = run("acme", None);
        s.insert_run(&pending).await.unwrap();
        // Another replica may not take it: the lease (10 s) has not lapsed.
        let other = s.another_replica(&StoreConfig::default()).await;
        assert!(other.claim_orphaned_runs(10).await.unwrap().is_empty());
        // The same replica id (its data dir) after a restart takes it back at once.
        let again = s.reopened(&StoreConfig::default()).await;
        let ids: Vec<_> = again
            .unfinished_runs()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(ids, [pending.run_id]);
    }
);

store_test!(
    a_lease_nobody_extends_lapses_and_another_replica_takes_the_run,
    short_lease(),
    |s: TestStore| async move {
        if s.url.is_none() {
            return;
        }
        let pending = run("acme", None);
        s.insert_run(&pending).await.unwrap();
        let b = s.another_replica(&short_lease()).await;
        assert!(b.claim_orphaned_runs(10).await.unwrap().is_empty());
        // A stops extending (it died, or dropped the run after a failed save): once the 300 ms
        // lease has passed, B claims it, and A can no longer extend or save it.
        let t0 = std::time::Instant::now();
        let claimed = loop {
            let claimed = b.claim_orphaned_runs(10).await.unwrap();
            if !claimed.is_empty() {
                break claimed;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the lease never lapsed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            s.extend_leases(std::slice::from_ref(&pending.run_id))
                .await
                .unwrap(),
            0
        );
        assert!(matches!(
            s.save_run(&pending).await.unwrap_err(),
            StoreError::LeaseLost(_)
        ));
    }
);
