//! Evaluations, API keys, audit, budgets and the planner registry on both backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use crane_core::access::Role;
use crane_core::store::{
    ApiKeyRow, AuditEntry, BudgetSpendRow, Registration, RollbackError, Store, StoreConfig,
};
use serde_json::json;

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

// Evaluations.

store_test!(
    evals_are_paged_newest_first_and_kept_per_tenant,
    |s: TestStore| async move {
        for i in 0..5 {
            let id = format!("e{i}");
            s.insert_eval(
                "acme",
                &id,
                "2025-01-01T00:00:00Z",
                &json!({"n": i}),
                &json!({"eval_id": id, "cases": [i]}),
            )
            .await
            .unwrap();
        }
        s.insert_eval("globex", "g0", "t", &json!({"g": true}), &json!([]))
            .await
            .unwrap();

        let mut pages = Vec::new();
        let mut cursor = None;
        loop {
            let page = s.list_evals("acme", 2, cursor).await.unwrap();
            pages.push(
                page.evals
                    .iter()
                    .map(|e| e.eval_id.clone())
                    .collect::<Vec<_>>(),
            );
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, [vec!["e4", "e3"], vec!["e2", "e1"], vec!["e0"]]);
        let first = s.list_evals("acme", 2, None).await.unwrap();
        assert_eq!(first.evals[0].summary, json!({"n": 4}));
        assert_eq!(first.evals[0].created_at, "2025-01-01T00:00:00Z");
        // A limit of 0 still returns one eval; all five fit in one page of 200.
        assert_eq!(s.list_evals("acme", 0, None).await.unwrap().evals.len(), 1);
        let all = s.list_evals("acme", 1000, None).await.unwrap();
        assert_eq!((all.evals.len(), all.next_cursor), (5, None));

        let got = s.get_eval("acme", "e1").await.unwrap().unwrap();
        assert_eq!(got.report, json!({"eval_id": "e1", "cases": [1]}));
        assert_eq!(got.summary, json!({"n": 1}));
        assert!(s.get_eval("acme", "nope").await.unwrap().is_none());

        // Tenants see only their own evals.
        assert!(s.get_eval("globex", "e1").await.unwrap().is_none());
        assert!(s.get_eval("acme", "g0").await.unwrap().is_none());
        let globex = s.list_evals("globex", 10, None).await.unwrap();
        assert_eq!(
            globex
                .evals
                .iter()
                .map(|e| e.eval_id.as_str())
                .collect::<Vec<_>>(),
            ["g0"]
        );
        assert!(
            s.list_evals("initech", 10, None)
                .await
                .unwrap()
                .evals
                .is_empty()
        );

        // Ids are unique (across tenants too).
        assert!(
            s.insert_eval("acme", "e1", "t", &json!({}), &json!({}))
                .await
                .is_err()
        );
        assert!(
            s.insert_eval("globex", "e1", "t", &json!({}), &json!({}))
                .await
                .is_err()
        );
        // Another replica sees the same evals.
        let b = other(&s).await;
        assert_eq!(b.get_eval("acme", "e1").await.unwrap().unwrap(), got);
    }
);

// API keys.

fn key(id: &str, tenant: &str, role: Role, created_at: &str) -> ApiKeyRow {
    ApiKeyRow {
        key_id: id.into(),
        tenant: tenant.into(),
        role,
        name: Some(format!("{id} key")),
        hash: format!("sha256-of-{id}"),
        created_at: created_at.into(),
        revoked_at: None,
    }
}

store_test!(
    api_keys_are_listed_and_revoked_within_their_tenant,
    |s: TestStore| async move {
        let k2 = key("k2", "acme", Role::Viewer, "2026-01-02T00:00:00Z");
        let k1 = key("k1", "acme", Role::Admin, "2026-01-01T00:00:00Z");
        let g1 = ApiKeyRow {
            name: None,
            ..key("g1", "globex", Role::Operator, "2026-01-01T00:00:00Z")
        };
        for k in [&k2, &k1, &g1] {
            s.insert_api_key(k).await.unwrap();
        }
        // Ids are unique.
        assert!(s.insert_api_key(&k1).await.is_err());

        assert_eq!(s.get_api_key("k1").await.unwrap().unwrap(), k1);
        assert_eq!(s.get_api_key("g1").await.unwrap().unwrap(), g1);
        assert!(s.get_api_key("nope").await.unwrap().is_none());

        let ids = |keys: Vec<ApiKeyRow>| keys.into_iter().map(|k| k.key_id).collect::<Vec<_>>();
        // Oldest first, then by id.
        assert_eq!(
            ids(s.list_api_keys(Some("acme")).await.unwrap()),
            ["k1", "k2"]
        );
        assert_eq!(ids(s.list_api_keys(Some("globex")).await.unwrap()), ["g1"]);
        assert_eq!(
            ids(s.list_api_keys(None).await.unwrap()),
            ["g1", "k1", "k2"]
        );
        assert!(s.list_api_keys(Some("initech")).await.unwrap().is_empty());

        // Another tenant's admin cannot revoke (or see) the key.
        let at = "2026-02-01T00:00:00Z";
        assert!(
            s.revoke_api_key("g1", Some("acme"), at)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(s.get_api_key("g1").await.unwrap().unwrap().revoked_at, None);
        assert!(
            s.revoke_api_key("nope", Some("acme"), at)
                .await
                .unwrap()
                .is_none()
        );

        let revoked = s
            .revoke_api_key("k1", Some("acme"), at)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            revoked,
            ApiKeyRow {
                revoked_at: Some(at.into()),
                ..k1.clone()
            }
        );
        // Revoking again keeps the first time; without a scope any tenant's key is revoked.
        let again = s
            .revoke_api_key("k1", None, "2026-03-01T00:00:00Z")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.revoked_at.as_deref(), Some(at));
        let b = other(&s).await;
        let g = b
            .revoke_api_key("g1", None, "2026-03-01T00:00:00Z")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(g.revoked_at.as_deref(), Some("2026-03-01T00:00:00Z"));
        assert_eq!(
            s.get_api_key("g1").await.unwrap().unwrap().revoked_at,
            g.revoked_at
        );
        assert_eq!(s.get_api_key("k2").await.unwrap().unwrap().revoked_at, None);
    }
);

// Audit log.

fn entry(tenant: &str, action: &str, target: &str, n: u32) -> AuditEntry {
    AuditEntry {
        tenant: tenant.into(),
        actor: if n.is_multiple_of(2) {
            "local".into()
        } else {
            "k1".into()
        },
        action: action.into(),
        target: target.into(),
        details: json!({"n": n}),
        at: format!("2026-01-01T00:00:{n:02}Z"),
    }
}

store_test!(
    the_audit_log_is_paged_newest_first_per_tenant,
    |s: TestStore| async move {
        let b = other(&s).await;
        let mut acme = Vec::new();
        for n in 0..7 {
            let e = entry("acme", "alias.moved", "production", n);
            // Both replicas append to the same log.
            let store = if n.is_multiple_of(2) { &s.store } else { &b };
            store.audit(e.clone()).await.unwrap();
            acme.push(e);
            if n.is_multiple_of(3) {
                s.audit(entry("globex", "key.created", "g1", n))
                    .await
                    .unwrap();
            }
        }
        acme.reverse();

        let mut pages = Vec::new();
        let mut cursor = None;
        loop {
            let page = s.list_audit("acme", 3, cursor).await.unwrap();
            pages.push(page.entries);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 3, 1],
            "{pages:?}"
        );
        assert_eq!(pages.concat(), acme);

        let globex = b.list_audit("globex", 10, None).await.unwrap();
        assert_eq!(globex.next_cursor, None);
        assert_eq!(
            globex
                .entries
                .iter()
                .map(|e| e.details["n"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [6, 3, 0]
        );
        assert!(globex.entries.iter().all(|e| e.tenant == "globex"));
        assert!(
            s.list_audit("initech", 10, None)
                .await
                .unwrap()
                .entries
                .is_empty()
        );
        // Exactly one page's worth: no next page.
        let exact = s.list_audit("acme", 7, None).await.unwrap();
        assert_eq!((exact.entries.len(), exact.next_cursor), (7, None));
    }
);

// Budgets.

store_test!(
    spend_adds_up_per_period_and_marks_thresholds_once,
    |s: TestStore| async move {
        let day = "2026-05-01T00:00:00Z";
        assert_eq!(s.budget_spend("acme", "day", day).await.unwrap(), None);

        let update = s
            .add_budget_spend("acme", "day", day, 120, 0.00014, |usd, tokens, notified| {
                assert_eq!((usd, tokens), (0.00014, 120));
                assert!(notified.is_empty());
                vec![80]
            })
            .await
            .unwrap();
        assert_eq!(update.newly, vec![80]);
        assert_eq!(update.row.notified, vec![80]);
        // Already marked: asking again marks nothing; the callback sees the marks. Sums carry
        // no float noise.
        let update = s
            .add_budget_spend("acme", "day", day, 120, 0.00014, |usd, tokens, notified| {
                assert_eq!(tokens, 240);
                assert_eq!(usd, 0.00028);
                assert_eq!(notified, [80]);
                vec![80, 95, 90, 95]
            })
            .await
            .unwrap();
        assert_eq!(update.newly, vec![90, 95]);
        assert_eq!(
            update.row,
            BudgetSpendRow {
                used_usd: 0.00028,
                used_tokens: 240,
                notified: vec![80, 90, 95],
            }
        );
        // Nothing new: nothing marked.
        let update = s
            .add_budget_spend("acme", "day", day, 0, 0.0, |_, _, _| vec![80, 90])
            .await
            .unwrap();
        assert!(update.newly.is_empty());
        assert_eq!(update.row.notified, vec![80, 90, 95]);
        // Negative or non-finite amounts add nothing.
        let update = s
            .add_budget_spend("acme", "day", day, 0, f64::NAN, |_, _, _| Vec::new())
            .await
            .unwrap();
        assert_eq!(update.row.used_usd, 0.00028);
        let update = s
            .add_budget_spend("acme", "day", day, 0, -1.0, |_, _, _| Vec::new())
            .await
            .unwrap();
        assert_eq!(update.row.used_usd, 0.00028);

        // Other periods, windows and tenants are separate rows.
        s.add_budget_spend("acme", "day", "2026-05-02T00:00:00Z", 1, 0.0, |_, _, _| {
            Vec::new()
        })
        .await
        .unwrap();
        s.add_budget_spend("acme", "month", day, 3, 0.5, |_, _, _| Vec::new())
            .await
            .unwrap();
        s.add_budget_spend("beta", "day", day, 7, 0.0, |_, _, _| Vec::new())
            .await
            .unwrap();
        let row = s.budget_spend("acme", "day", day).await.unwrap().unwrap();
        assert_eq!(
            row,
            BudgetSpendRow {
                used_usd: 0.00028,
                used_tokens: 240,
                notified: vec![80, 90, 95],
            }
        );
        // Stored: another replica sees the same spend and marks.
        let b = other(&s).await;
        let row = b.budget_spend("acme", "month", day).await.unwrap().unwrap();
        assert_eq!((row.used_tokens, row.used_usd), (3, 0.5));
        assert!(row.notified.is_empty());
        assert_eq!(
            b.budget_spend("beta", "day", day)
                .await
                .unwrap()
                .unwrap()
                .used_tokens,
            7
        );
        assert_eq!(
            b.budget_spend("acme", "day", day)
                .await
                .unwrap()
                .unwrap()
                .notified,
            vec![80, 90, 95]
        );
    }
);

store_test!(
    concurrent_spend_on_two_replicas_marks_each_threshold_exactly_once,
    |s: TestStore| async move {
        const ADDS: u64 = 50;
        let stores = [s.store.clone(), other(&s).await];
        let period = "2026-05-01T00:00:00Z";
        let mut tasks = Vec::new();
        for i in 0..ADDS {
            let store = stores[(i % 2) as usize].clone();
            tasks.push(tokio::spawn(async move {
                store
                    .add_budget_spend("acme", "day", period, 1, 0.01, |_, tokens, _| {
                        // Percent of a 50-token budget.
                        [50u8, 80, 100]
                            .into_iter()
                            .filter(|t| tokens * 100 >= u64::from(*t) * ADDS)
                            .collect()
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut updates = Vec::new();
        for t in tasks {
            updates.push(t.await.unwrap());
        }
        // Each writer saw the totals of the one before it: the totals it saw are 1..=50.
        let mut seen: Vec<u64> = updates.iter().map(|u| u.row.used_tokens).collect();
        seen.sort_unstable();
        assert_eq!(seen, (1..=ADDS).collect::<Vec<_>>());
        // Each threshold was reported by exactly one writer: the one that crossed it.
        let mut marked: BTreeMap<u8, Vec<u64>> = BTreeMap::new();
        for u in &updates {
            for t in &u.newly {
                marked.entry(*t).or_default().push(u.row.used_tokens);
            }
        }
        assert_eq!(
            marked,
            BTreeMap::from([(50, vec![25]), (80, vec![40]), (100, vec![50])])
        );
        let row = stores[1]
            .budget_spend("acme", "day", period)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row,
            BudgetSpendRow {
                used_usd: 0.5,
                used_tokens: ADDS,
                notified: vec![50, 80, 100],
            }
        );
    }
);

// Planner registry.

store_test!(
    a_version_registers_once_and_a_changed_hash_is_reported,
    |s: TestStore| async move {
        let r = s
            .register_prompt("planner", "1.1.0", "aaa", "source a")
            .await
            .unwrap();
        assert_eq!(r, Registration::New);
        let r = s
            .register_prompt("planner", "1.1.0", "aaa", "source a")
            .await
            .unwrap();
        assert_eq!(r, Registration::Unchanged);
        let r = s
            .register_prompt("planner", "1.1.0", "bbb", "source b")
            .await
            .unwrap();
        let listed = s.prompt_versions().await.unwrap();
        match &r {
            Registration::Changed {
                registered_hash,
                registered_at,
            } => {
                assert_eq!(registered_hash, "aaa");
                assert_eq!(registered_at, &listed[0].registered_at);
            }
            other => panic!("expected Changed, got {other:?}"),
        }
        // The changed content was not stored.
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].hash.as_str(), listed[0].source.as_str()),
            ("aaa", "source a")
        );

        // Another replica sees the registration.
        let b = other(&s).await;
        assert_eq!(
            b.register_prompt("planner", "1.1.0", "aaa", "source a")
                .await
                .unwrap(),
            Registration::Unchanged
        );
        assert_eq!(
            b.register_prompt("planner", "1.2.0", "ccc", "source c")
                .await
                .unwrap(),
            Registration::New
        );
        s.register_prompt("critic", "1.0.0", "ddd", "source d")
            .await
            .unwrap();
        let listed = s.prompt_versions().await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|p| format!("{}@{}", p.name, p.version))
                .collect::<Vec<_>>(),
            ["critic@1.0.0", "planner@1.1.0", "planner@1.2.0"]
        );

        // Variants are registered apart from prompts.
        let r = s.register_variant("v", "1.0.0", "h1", "{}").await.unwrap();
        assert_eq!(r, Registration::New);
        assert_eq!(
            b.register_variant("v", "1.0.0", "h1", "{}").await.unwrap(),
            Registration::Unchanged
        );
        let r = s.register_variant("v", "1.0.0", "h2", "{}").await.unwrap();
        assert!(
            matches!(&r, Registration::Changed { registered_hash, .. } if registered_hash == "h1"),
            "{r:?}"
        );
        assert_eq!(
            s.register_variant("planner", "1.1.0", "zzz", "{}")
                .await
                .unwrap(),
            Registration::New
        );
        assert_eq!(s.prompt_versions().await.unwrap().len(), 3);
    }
);

store_test!(
    replicas_registering_one_version_at_once_see_it_new_once,
    |s: TestStore| async move {
        let stores = [s.store.clone(), other(&s).await];
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = stores[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                store
                    .register_variant("v", "2.0.0", "same", "{}")
                    .await
                    .unwrap()
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let new = outcomes.iter().filter(|r| **r == Registration::New).count();
        assert_eq!(new, 1, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|r| matches!(r, Registration::New | Registration::Unchanged)),
            "{outcomes:?}"
        );
    }
);

store_test!(
    rollback_undoes_promotes_in_reverse_order,
    |s: TestStore| async move {
        let ok = |_: &str| Ok(());
        let first = s.move_alias("production", "a", None).await.unwrap();
        assert_eq!(
            (first.from, first.to.as_str(), first.kind.as_str()),
            (None, "a", "promote")
        );
        s.move_alias("production", "b", Some("try b"))
            .await
            .unwrap();
        let m = s.move_alias("production", "c", None).await.unwrap();
        assert_eq!(m.from.as_deref(), Some("b"));
        assert_eq!(s.aliases().await.unwrap()["production"], "c");

        let m = s
            .rollback_alias("production", Some("c is bad"), ok)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.from.as_deref(), m.to.as_str()), (Some("c"), "b"));
        assert_eq!(m.kind, "rollback");
        assert_eq!(m.note.as_deref(), Some("c is bad"));
        let m = s
            .rollback_alias("production", None, ok)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.to, "a");
        let err = s.rollback_alias("production", None, ok).await.unwrap_err();
        assert!(
            matches!(&err, RollbackError::NothingToUndo { alias, current } if alias == "production" && current == "a"),
            "{err}"
        );
        assert_eq!(s.aliases().await.unwrap()["production"], "a");

        // A promote after rollbacks is undone first.
        s.move_alias("production", "d", None).await.unwrap();
        let m = s
            .rollback_alias("production", None, ok)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.to, "a");

        let err = s.rollback_alias("candidate", None, ok).await.unwrap_err();
        assert!(
            matches!(&err, RollbackError::Unknown(a) if a == "candidate"),
            "{err}"
        );

        let history = s.alias_history(Some("production")).await.unwrap();
        assert_eq!(
            history.iter().map(|m| m.to.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c", "b", "a", "d", "a"]
        );
        assert_eq!(
            history.iter().map(|m| m.kind.as_str()).collect::<Vec<_>>(),
            [
                "promote", "promote", "promote", "rollback", "rollback", "promote", "rollback"
            ]
        );
        assert!(history.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(history[1].note.as_deref(), Some("try b"));
        assert!(s.alias_history(Some("candidate")).await.unwrap().is_empty());
    }
);

store_test!(
    a_refused_rollback_changes_nothing,
    |s: TestStore| async move {
        s.move_alias("production", "a", None).await.unwrap();
        s.move_alias("production", "b", None).await.unwrap();
        let refused = s
            .rollback_alias("production", None, |t| Err(format!("{t} is gone")))
            .await
            .unwrap();
        assert_eq!(refused.unwrap_err(), "a is gone");
        assert_eq!(s.aliases().await.unwrap()["production"], "b");
        assert_eq!(s.alias_history(None).await.unwrap().len(), 2);
        // The check sees the target and nothing else has changed: a later rollback works.
        let m = s
            .rollback_alias("production", None, |t| {
                if t == "a" {
                    Ok(())
                } else {
                    Err(format!("unexpected target {t}"))
                }
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.from.as_deref(), m.to.as_str()), (Some("b"), "a"));
    }
);

store_test!(
    alias_moves_are_shared_between_replicas,
    |s: TestStore| async move {
        let b = other(&s).await;
        s.move_alias("production", "a", None).await.unwrap();
        s.move_alias("candidate", "x", None).await.unwrap();
        b.move_alias("production", "b", Some("from b"))
            .await
            .unwrap();
        assert_eq!(
            s.aliases().await.unwrap(),
            BTreeMap::from([
                ("candidate".to_string(), "x".to_string()),
                ("production".to_string(), "b".to_string())
            ])
        );
        // A rollback on one replica replays the moves made on the other.
        let m = s
            .rollback_alias("production", None, |_| Ok(()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.from.as_deref(), m.to.as_str()), (Some("b"), "a"));
        assert_eq!(b.aliases().await.unwrap()["production"], "a");
        let on_s = s.alias_history(None).await.unwrap();
        assert_eq!(on_s, b.alias_history(None).await.unwrap());
        assert_eq!(
            on_s.iter()
                .map(|m| format!("{}:{}", m.alias, m.to))
                .collect::<Vec<_>>(),
            [
                "production:a",
                "candidate:x",
                "production:b",
                "production:a"
            ]
        );
        assert_eq!(
            b.alias_history(Some("candidate")).await.unwrap(),
            vec![on_s[1].clone()]
        );
    }
);

store_test!(
    concurrent_moves_and_rollbacks_of_an_alias_never_interleave,
    |s: TestStore| async move {
        let stores = [s.store.clone(), other(&s).await];
        // Concurrent promotes: each move records the target the one before it left.
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = stores[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                store
                    .move_alias("production", &format!("v{i}"), None)
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let history = s.alias_history(Some("production")).await.unwrap();
        assert_eq!(history.len(), 20);
        assert_eq!(history[0].from, None);
        for w in history.windows(2) {
            assert_eq!(w[1].from.as_deref(), Some(w[0].to.as_str()), "{history:?}");
        }
        let last = history[19].to.clone();
        assert_eq!(stores[1].aliases().await.unwrap()["production"], last);

        // Concurrent rollbacks: each undoes a different promote, newest first.
        let mut tasks = Vec::new();
        for i in 0..6 {
            let store = stores[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                store
                    .rollback_alias("production", None, |_| Ok(()))
                    .await
                    .unwrap()
                    .unwrap()
            }));
        }
        let mut targets = Vec::new();
        for t in tasks {
            targets.push(t.await.unwrap().to);
        }
        let history = s.alias_history(Some("production")).await.unwrap();
        let rolled: Vec<&str> = history[20..].iter().map(|m| m.to.as_str()).collect();
        let expected: Vec<&str> = history[13..19]
            .iter()
            .rev()
            .map(|m| m.to.as_str())
            .collect();
        assert_eq!(rolled, expected);
        targets.sort_unstable();
        let mut sorted = expected.clone();
        sorted.sort_unstable();
        assert_eq!(targets, sorted);
        for w in history.windows(2) {
            assert_eq!(w[1].from.as_deref(), Some(w[0].to.as_str()));
        }
        assert_eq!(s.aliases().await.unwrap()["production"], history[13].to);
    }
);
